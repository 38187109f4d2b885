"""The official DVM matting checkpoint's keys and shapes, derived from the official module definitions (facts read
from nowsyn/DVM at c045693, ``models/networks.py`` ``RN50(4, shift=2, add_refine_stage=True)`` as the README's
train and test commands build it, ``models/resnet.py`` ``resnet50(4, add_layer4=True, add_layer0=True)``, and
``dcn/deform_conv.py`` ``ModulatedDeformConvPack``), independently of ``vidmatte.models.dvm``. Each entry records
the file and class it comes from. Run as a script to regenerate ``dvm_official_state_dict.json``.

The official checkpoint files (``best_net_Base.pth`` on Google Drive) are not available here (we download no weights
from outside PyPI), so strict loading is checked against this layout, not against the file. The official repository
has no trimap propagation network, so there is no layout to write for it.
"""

from __future__ import annotations

import json
from pathlib import Path

from official_layout import bottleneck_stages

JSON_PATH = Path(__file__).with_name("dvm_official_state_dict.json")
SHIFT = 2  # the README's --shift 2
ITERS = SHIFT + 1
CHL = [64, 256, 512, 1024, 2048]  # RN50's chl


class Layout:
    def __init__(self):
        self.entries: dict[str, dict] = {}
        self.source = ""

    def add(self, name: str, shape: list[int]) -> None:
        self.entries[name] = {"shape": shape, "from": self.source}

    def conv(self, name, cin, cout, kh, kw=None, bias=True):
        self.add(f"{name}.weight", [cout, cin, kh, kw or kh])
        if bias:
            self.add(f"{name}.bias", [cout])

    def bn(self, name, c):
        for p in ("weight", "bias", "running_mean", "running_var"):
            self.add(f"{name}.{p}", [c])
        self.add(f"{name}.num_batches_tracked", [])

    def conv_layer(self, name, cin, cout, k):  # networks.py _ConvLayer(bn=True): conv (no bias), norm, relu
        self.conv(f"{name}.conv", cin, cout, k, bias=False)
        self.bn(f"{name}.norm", cout)


def resnet50(lay: Layout, prefix: str, inc: int) -> None:
    lay.source = "models/resnet.py ResNet(inc=4, Bottleneck, [3, 4, 6, 3], add_layer4=True, add_layer0=True)"
    lay.conv(f"{prefix}.conv1", inc, 64, 7, bias=False)
    lay.bn(f"{prefix}.bn1", 64)
    bottleneck_stages(lay, [f"{prefix}.layer{layer}" for layer in (1, 2, 3, 4)], [3, 4, 6, 3])


def official_layout() -> dict[str, dict]:
    lay = Layout()
    resnet50(lay, "encoder", 4)
    for i, nf in enumerate(CHL[:4]):
        lay.source = "models/networks.py BasicFlowLayer(nf, groups=8) with dcn/deform_conv.py ModulatedDeformConvPack"
        lay.conv(f"fusion.flow{i}.off_conv1", nf * 2, nf, 3)
        lay.conv(f"fusion.flow{i}.off_conv2", nf, nf, 3)
        lay.add(f"fusion.flow{i}.dcnpack.weight", [nf, nf, 3, 3])
        lay.add(f"fusion.flow{i}.dcnpack.bias", [nf])
        lay.conv(f"fusion.flow{i}.dcnpack.conv_offset_mask", nf, 8 * 3 * 9, 3)
    for i, nf in enumerate(CHL):
        lay.source = "models/networks.py CSAttention(nf*iters, iters): CAttentionLayer fc (no bias), SAttentionLayer"
        c = nf * ITERS
        lay.add(f"fusion.attn{i}.ca.fc.0.weight", [c // ITERS, c])
        lay.add(f"fusion.attn{i}.ca.fc.2.weight", [c, c // ITERS])
        lay.conv(f"fusion.attn{i}.sa.conv", 2, 1, 7, bias=False)
        lay.source = "models/networks.py FusionNet fuse = _ConvLayer(iters*nf, nf, 1)"
        lay.conv_layer(f"fusion.fuse{i}", c, nf, 1)
    for i, nf in enumerate(CHL):
        lay.source = "models/networks.py Decoder skip = GCN(nf, nf) (k=7, biased convolutions)"
        lay.conv(f"decoder.skip{i}.conv_l1", nf, nf, 7, 1)
        lay.conv(f"decoder.skip{i}.conv_l2", nf, nf, 1, 7)
        lay.conv(f"decoder.skip{i}.conv_r1", nf, nf, 1, 7)
        lay.conv(f"decoder.skip{i}.conv_r2", nf, nf, 7, 1)
    # Decoder: deconv0 = PsDeconvLayer(nf0, nf0, 4, ...), deconvK = PsDeconvLayer(nfK, nf(K-1), nf(K-1), ...)
    for i, (cin, cout, skip) in enumerate([(64, 64, 4), (256, 64, 64), (512, 256, 256), (1024, 512, 512),
                                           (2048, 1024, 1024)]):
        lay.source = ("models/networks.py PsDeconvLayer: rs = _ConvLayer(inc, ouc*4, 1), "
                      "deconv = _ConvLayer(ouc+sc, ouc, 3)")
        lay.conv_layer(f"decoder.deconv{i}.rs", cin, cout * 4, 1)
        lay.conv_layer(f"decoder.deconv{i}.deconv", cout + skip, cout, 3)
    lay.source = "models/networks.py RN50 pred_head = Conv2d(64, 1, 3, 1, 1)"
    lay.conv("pred_head", 64, 1, 3)
    lay.source = "models/networks.py RN50 refine = RefineLayer(4, 64) (add_refine_stage)"
    for j, cin in enumerate([4, 64, 64], 1):
        lay.conv_layer(f"refine.conv{j}", cin, 64, 3)
    lay.source = "models/networks.py RN50 refine_head = Conv2d(64, 1, 3, 1, 1) (add_refine_stage)"
    lay.conv("refine_head", 64, 1, 3)
    return lay.entries


if __name__ == "__main__":
    layout = official_layout()
    JSON_PATH.write_text(json.dumps(layout, indent=1) + "\n")
    print(f"{JSON_PATH}: {len(layout)} entries")
