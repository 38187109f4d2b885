"""The official TCVOM trimap generation module's checkpoint keys and shapes, derived from the official module
definitions (facts read from yunkezhang/TCVOM-TGM at 9a60266, ``model.py``: ``STM``, ``Encoder_M``, ``Encoder_Q``,
``KeyValue``, ``Decoder``, ``Refine``, ``ResBlock``; the trunks are torchvision's ``resnet50`` ``conv1``/``bn1``/
``layer1..3``, renamed ``res2..res4`` by those classes), independently of ``vidmatte.models.tgm``. Each entry records
the class it comes from. Run as a script to regenerate ``tgm_official_state_dict.json``; the tests read the JSON.

The checkpoint ``online_finetune_test.py`` writes is ``FullModelFinetune.model.state_dict()``, i.e. the ``STM``'s
keys below; ``test_mf_2.py`` loads it into ``STM()``. The released ``trimap_ep150.pth`` itself is not available here
(OneDrive; we download no weights from elsewhere), so strict loading is checked against this layout, not the file.
"""

from __future__ import annotations

import json
from pathlib import Path

from official_layout import bottleneck_stages

JSON_PATH = Path(__file__).with_name("tgm_official_state_dict.json")


class Layout:
    def __init__(self):
        self.entries: dict[str, dict] = {}
        self.source = ""

    def conv(self, name, cin, cout, k, bias=True):
        self.entries[f"{name}.weight"] = {"shape": [cout, cin, k, k], "from": self.source}
        if bias:
            self.entries[f"{name}.bias"] = {"shape": [cout], "from": self.source}

    def bn(self, name, c):
        for p in ("weight", "bias", "running_mean", "running_var"):
            self.entries[f"{name}.{p}"] = {"shape": [c], "from": self.source}
        self.entries[f"{name}.num_batches_tracked"] = {"shape": [], "from": self.source}

    def buffer(self, name, shape):
        self.entries[name] = {"shape": shape, "from": self.source}

    def resnet50_to_layer3(self, prefix):  # torchvision resnet50's stem and layer1..3
        self.conv(f"{prefix}.conv1", 3, 64, 7, bias=False)
        self.bn(f"{prefix}.bn1", 64)
        bottleneck_stages(self, [f"{prefix}.res{stage}" for stage in (2, 3, 4)], [3, 4, 6])
        self.buffer(f"{prefix}.mean", [1, 3, 1, 1])
        self.buffer(f"{prefix}.std", [1, 3, 1, 1])

    def resblock(self, name, c):  # ResBlock(indim == outdim, stride 1): no downsample conv
        self.conv(f"{name}.conv1", c, c, 3)
        self.conv(f"{name}.conv2", c, c, 3)


def official_layout() -> dict[str, dict]:
    lay = Layout()
    lay.source = "model.py Encoder_M (resnet50 conv1/bn1/layer1-3 as res2-res4, conv1_m, conv1_o, mean/std buffers)"
    lay.conv("Encoder_M.conv1_m", 1, 64, 7, bias=False)
    lay.conv("Encoder_M.conv1_o", 1, 64, 7, bias=False)
    lay.resnet50_to_layer3("Encoder_M")
    lay.source = "model.py Encoder_Q (resnet50 conv1/bn1/layer1-3 as res2-res4, mean/std buffers)"
    lay.resnet50_to_layer3("Encoder_Q")
    for name in ("KV_M_r4", "KV_Q_r4"):
        lay.source = f"model.py STM.{name} = KeyValue(1024, keydim=128, valdim=512)"
        lay.conv(f"{name}.Key", 1024, 128, 3)
        lay.conv(f"{name}.Value", 1024, 512, 3)
    lay.source = "model.py STM.Decoder = Decoder(256): convFM, ResMM, RF3 = Refine(512, 256), RF2 = Refine(256, 256)"
    lay.conv("Decoder.convFM", 1024, 256, 3)
    lay.resblock("Decoder.ResMM", 256)
    for name, cin in (("RF3", 512), ("RF2", 256)):
        lay.conv(f"Decoder.{name}.convFS", cin, 256, 3)
        lay.resblock(f"Decoder.{name}.ResFS", 256)
        lay.resblock(f"Decoder.{name}.ResMM", 256)
    lay.conv("Decoder.pred2", 256, 2, 3)
    return lay.entries


if __name__ == "__main__":
    JSON_PATH.write_text(json.dumps(official_layout(), indent=1) + "\n")
    print(f"{JSON_PATH}: {len(official_layout())} entries")
