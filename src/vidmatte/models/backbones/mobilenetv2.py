"""MobileNetV2 encoder (Sandler et al. 2018) as BackgroundMattingV2 uses it: any number of input channels, the last
1x1 expansion to 1280 channels dropped, and the 1/32 stage kept at output stride 16 (stride 1 on block 14, dilation
2 on blocks 15 to 17).

Parameter names follow torchvision's ``mobilenet_v2`` (``features.{i}``; an inverted residual's ``conv`` sequence
holds [expand 1x1 ConvBNReLU6,] depthwise 3x3 ConvBNReLU6, the linear 1x1 projection and its BatchNorm) so a
BackgroundMattingV2 checkpoint loads with ``strict=True``.
"""

from __future__ import annotations

from torch import Tensor, nn

from .mobilenetv3 import init_weights

# (expansion t, output channels c, repeats n, first stride s): the paper's table 2, width multiplier 1.
STAGES = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))
STEM_CHANNELS = 32
UNSTRIDED_BLOCK = 14  # the first 1/32 block runs at stride 1 ...
DILATED_FROM = 15  # ... and the blocks after it dilate by 2, so the deepest features stay at 1/16


def conv_bn_relu6(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1, dilation: int = 1):
    padding = dilation * (kernel - 1) // 2
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, padding, dilation=dilation, groups=groups, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU6(inplace=True))


class InvertedResidual(nn.Module):
    """1x1 expansion (skipped when t = 1) -> depthwise 3x3 -> linear 1x1 projection, plus the input when the
    shape is kept."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int, dilation: int = 1):
        super().__init__()
        hidden = cin * expand
        layers = [conv_bn_relu6(cin, hidden, 1)] if expand != 1 else []
        layers += [conv_bn_relu6(hidden, hidden, 3, stride, groups=hidden, dilation=dilation),
                   nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.conv = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv(x) if self.residual else self.conv(x)


def _blocks(first_index: int) -> list[InvertedResidual]:
    blocks, cin, index = [], STEM_CHANNELS, first_index
    for expand, cout, repeats, first_stride in STAGES:
        for i in range(repeats):
            stride = first_stride if i == 0 and index != UNSTRIDED_BLOCK else 1
            dilation = 2 if index >= DILATED_FROM else 1
            blocks.append(InvertedResidual(cin, cout, stride, expand, dilation))
            cin, index = cout, index + 1
    return blocks


class MobileNetV2Encoder(nn.Module):
    """x [N,C,H,W] -> (x4 1/16 320 ch, x3 1/8 32, x2 1/4 24, x1 1/2 16, x0 the input), as BGMv2's decoder takes
    them."""

    feature_channels = (320, 32, 24, 16)

    def __init__(self, in_channels: int = 3):
        super().__init__()
        self.features = nn.Sequential(conv_bn_relu6(in_channels, STEM_CHANNELS, 3, stride=2), *_blocks(1))
        init_weights(self)

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        f = self.features
        x1 = f[1](f[0](x))
        x2 = f[3](f[2](x1))
        x3 = f[6](f[5](f[4](x2)))
        x4 = f[7:](x3)
        return x4, x3, x2, x1, x
