"""The official BackgroundMattingV2 checkpoints' keys and shapes, derived from the official module definitions (facts
read from PeterL1n/BackgroundMattingV2 ``model/model.py``, ``mobilenet.py``, ``resnet.py``, ``decoder.py``,
``refiner.py``, which build on torchvision's ``MobileNetV2``, ``ResNet`` (Bottleneck) and DeepLabV3 ``ASPP``), and the
ConvLSTM modules the seed adds (DavidZhang73/ENGN8501GroupProject ``model/decoderConvLSTM.py`` and ``convLSTM.py``),
independently of ``vidmatte.models.bgmv2``. Each entry records where it comes from. Run as a script to regenerate
``bgmv2_official_state_dict.json``; the tests read the JSON.

No official checkpoint is downloaded (they are hosted on Google Drive, not a package registry), so strict loading is
checked against this layout, not against the files.
"""

from __future__ import annotations

import json
from pathlib import Path

import ftpvm_official_layout
from official_layout import bottleneck_stages

JSON_PATH = Path(__file__).with_name("bgmv2_official_state_dict.json")


class Layout(ftpvm_official_layout.Layout):
    """The FTP-VM layout writer's entries; here convolutions default to no bias (BGMv2's mostly have none)."""

    def conv(self, name, cin, cout, k, bias=False, groups=1):
        super().conv(name, cin, cout, k, bias=bias, groups=groups)

    def bn(self, name, c):
        self.norm(name, c)


def mobilenetv2(lay: Layout, prefix: str, in_channels: int) -> None:
    """torchvision MobileNetV2 (inverted_residual_setting t,c,n,s: 1,16,1,1 | 6,24,2,2 | 6,32,3,2 | 6,64,4,2 |
    6,96,3,1 | 6,160,3,2 | 6,320,1,1; stem ConvBNReLU(3->32, s2)); BGMv2's mobilenet.py replaces features[0][0] with
    a Conv2d(in_channels, 32, 3, 2, 1, bias=False) and drops features[18] (the 1280 1x1 conv) and the classifier.
    Dilation changes no shapes."""
    lay.source = "BackgroundMattingV2 model/mobilenet.py MobileNetV2Encoder (torchvision MobileNetV2)"
    lay.conv(f"{prefix}.features.0.0", in_channels, 32, 3)
    lay.bn(f"{prefix}.features.0.1", 32)
    cin, index = 32, 1
    for t, c, n, _ in [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                       (6, 320, 1, 1)]:
        for _ in range(n):
            hidden, b, j = cin * t, f"{prefix}.features.{index}.conv", 0
            if t != 1:  # InvertedResidual: expand ConvBNReLU
                lay.conv(f"{b}.0.0", cin, hidden, 1)
                lay.bn(f"{b}.0.1", hidden)
                j = 1
            lay.conv(f"{b}.{j}.0", hidden, hidden, 3, groups=hidden)  # depthwise ConvBNReLU
            lay.bn(f"{b}.{j}.1", hidden)
            lay.conv(f"{b}.{j + 1}", hidden, c, 1)  # linear projection
            lay.bn(f"{b}.{j + 2}", c)
            cin, index = c, index + 1


def resnet(lay: Layout, prefix: str, in_channels: int, blocks: list[int]) -> None:
    """torchvision ResNet with Bottleneck (expansion 4), replace_stride_with_dilation [False, False, True]; BGMv2's
    resnet.py replaces conv1 with Conv2d(in_channels, 64, 7, 2, 3, bias=False) and deletes avgpool and fc."""
    lay.source = "BackgroundMattingV2 model/resnet.py ResNetEncoder (torchvision ResNet, Bottleneck)"
    lay.conv(f"{prefix}.conv1", in_channels, 64, 7)
    lay.bn(f"{prefix}.bn1", 64)
    bottleneck_stages(lay, [f"{prefix}.layer{layer}" for layer in (1, 2, 3, 4)], blocks)


def aspp(lay: Layout, cin: int) -> None:
    """torchvision deeplabv3 ASPP(cin, [3, 6, 9]), out_channels 256: convs.0 1x1 ConvBNReLU, convs.1-3 ASPPConv
    (3x3 dilated), convs.4 ASPPPooling (AdaptiveAvgPool2d, conv, BN, ReLU), project (1x1 conv 1280->256, BN, ReLU,
    Dropout)."""
    lay.source = "BackgroundMattingV2 model/model.py Base: torchvision deeplabv3 ASPP"
    for i, k in enumerate([1, 3, 3, 3]):
        lay.conv(f"aspp.convs.{i}.0", cin, 256, k)
        lay.bn(f"aspp.convs.{i}.1", 256)
    lay.conv("aspp.convs.4.1", cin, 256, 1)
    lay.bn("aspp.convs.4.2", 256)
    lay.conv("aspp.project.0", 5 * 256, 256, 1)
    lay.bn("aspp.project.1", 256)


def decoder(lay: Layout, feature_channels: list[int], convlstm: bool) -> None:
    """model/decoder.py Decoder([256, 128, 64, 48, 37], feature_channels); decoderConvLSTM.py adds convLSTM1-3 =
    ConvLSTM(input_dim=channels[k], hidden_dim=channels[k]) whose cell conv is Conv2d(in+hidden, 4*hidden, 3,
    bias=True)."""
    channels = [256, 128, 64, 48, 37]
    for k in range(1, 4):
        lay.source = "BackgroundMattingV2 model/decoder.py Decoder"
        lay.conv(f"decoder.conv{k}", feature_channels[k - 1] + channels[k - 1], channels[k], 3)
        lay.bn(f"decoder.bn{k}", channels[k])
        if convlstm:
            lay.source = "ENGN8501GroupProject model/decoderConvLSTM.py Decoder, model/convLSTM.py ConvLSTMCell"
            lay.conv(f"decoder.convLSTM{k}.cell_list.0.conv", 2 * channels[k], 4 * channels[k], 3, bias=True)
    lay.source = "BackgroundMattingV2 model/decoder.py Decoder"
    lay.conv("decoder.conv4", feature_channels[3] + channels[3], channels[4], 3, bias=True)


def refiner(lay: Layout, kernel_size: int = 3) -> None:
    """model/refiner.py Refiner: channels [32, 24, 16, 12, 4]; conv1 (32+6+4 -> 24), conv2 (24 -> 16), conv3
    (16+6 -> 12), all without bias, each with a BatchNorm; conv4 (12 -> 4) with bias."""
    lay.source = "BackgroundMattingV2 model/refiner.py Refiner"
    lay.conv("refiner.conv1", 42, 24, kernel_size)
    lay.bn("refiner.bn1", 24)
    lay.conv("refiner.conv2", 24, 16, kernel_size)
    lay.bn("refiner.bn2", 16)
    lay.conv("refiner.conv3", 22, 12, kernel_size)
    lay.bn("refiner.bn3", 12)
    lay.conv("refiner.conv4", 12, 4, kernel_size, bias=True)


def official_layout(backbone: str, refine: bool = True, convlstm: bool = False) -> dict[str, dict]:
    """MattingRefine(backbone) (or MattingBase with refine=False): in_channels 6 (source + plate)."""
    lay = Layout()
    if backbone == "mobilenetv2":
        mobilenetv2(lay, "backbone", 6)
        aspp(lay, 320)
        decoder(lay, [32, 24, 16, 6], convlstm)
    else:
        resnet(lay, "backbone", 6, {"resnet50": [3, 4, 6, 3], "resnet101": [3, 4, 23, 3]}[backbone])
        aspp(lay, 2048)
        decoder(lay, [512, 256, 64, 6], convlstm)
    if refine:
        refiner(lay)
    return lay.entries


CONFIGURATIONS = {
    "refine-mobilenetv2": ("mobilenetv2", True, False),
    "refine-resnet50": ("resnet50", True, False),
    "base-mobilenetv2": ("mobilenetv2", False, False),
    "refine-mobilenetv2-convlstm": ("mobilenetv2", True, True),
}


def all_layouts() -> dict[str, dict]:
    return {name: official_layout(*args) for name, args in CONFIGURATIONS.items()}


def to_json(layouts: dict[str, dict]) -> str:
    """One line per key, so a diff of the file reads as a diff of the layout."""
    groups = []
    for name, entries in layouts.items():
        lines = ",\n".join(f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in entries.items())
        groups.append(f" {json.dumps(name)}: {{\n{lines}\n }}")
    return "{\n" + ",\n".join(groups) + "\n}\n"


if __name__ == "__main__":
    JSON_PATH.write_text(to_json(all_layouts()))
    print(f"{JSON_PATH}: {', '.join(f'{k} {len(v)}' for k, v in all_layouts().items())}")
