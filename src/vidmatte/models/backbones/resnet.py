"""ResNet-50 encoder (He et al. 2016) as RVM uses it: layer4 dilated (output stride 16) and four feature maps.

Parameter names follow torchvision's ``resnet50`` (``conv1``, ``bn1``, ``layer{k}.{i}.conv{j}``,
``downsample.{0,1}``) so the official ``rvm_resnet50.pth`` loads with ``strict=True``.
Like the official RVM ResNet encoder, the input is not ImageNet-normalised.
"""

from __future__ import annotations

from torch import Tensor, nn

from .mobilenetv3 import init_weights


class Bottleneck(nn.Module):
    """1x1 reduce -> 3x3 (stride/dilation) -> 1x1 expand (x4), plus the (projected) identity."""

    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int = 1, dilation: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        cout = planes * self.expansion
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


RESNET50_BLOCKS = (3, 4, 6, 3)
RESNET101_BLOCKS = (3, 4, 23, 3)


class ResNet50Encoder(nn.Module):
    """src [N,3,H,W] RGB 0..1 -> features at 1/2 (64 ch), 1/4 (256), 1/8 (512), 1/16 (2048).

    ``in_channels``, ``dilate_layer4=False`` and ``width_divisor`` (every width divided, for small test and smoke
    networks) serve DVM's encoder (RGB + trimap in, layer4 at 1/32), which shares these names and blocks but reads
    the features out itself (``models.dvm``).
    ``blocks``: ``RESNET101_BLOCKS`` for BackgroundMattingV2's ResNet-101 (which takes ``in_channels`` 6: source and
    plate)."""

    feature_channels = (64, 256, 512, 2048)

    def __init__(self, in_channels: int = 3, dilate_layer4: bool = True, width_divisor: int = 1,
                 blocks: tuple[int, ...] = RESNET50_BLOCKS):
        super().__init__()
        stem = 64 // width_divisor
        self._cin = stem
        self._dilation = 1
        self.conv1 = nn.Conv2d(in_channels, stem, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(stem)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = self._make_layer(64 // width_divisor, blocks[0])
        self.layer2 = self._make_layer(128 // width_divisor, blocks[1], stride=2)
        self.layer3 = self._make_layer(256 // width_divisor, blocks[2], stride=2)
        self.layer4 = self._make_layer(512 // width_divisor, blocks[3], stride=2, dilate=dilate_layer4)
        init_weights(self)

    def _make_layer(self, planes: int, blocks: int, stride: int = 1, dilate: bool = False) -> nn.Sequential:
        # As in torchvision: a dilated layer's first block keeps the previous dilation, the others use the new one.
        first_dilation = self._dilation
        if dilate:
            self._dilation *= stride
            stride = 1
        downsample = None
        if stride != 1 or self._cin != planes * Bottleneck.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self._cin, planes * Bottleneck.expansion, 1, stride, bias=False),
                nn.BatchNorm2d(planes * Bottleneck.expansion),
            )
        layers = [Bottleneck(self._cin, planes, stride, first_dilation, downsample)]
        self._cin = planes * Bottleneck.expansion
        layers += [Bottleneck(self._cin, planes, dilation=self._dilation) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: Tensor) -> list[Tensor]:
        f1 = self.relu(self.bn1(self.conv1(x)))
        f2 = self.layer1(self.maxpool(f1))
        f3 = self.layer2(f2)
        f4 = self.layer4(self.layer3(f3))
        return [f1, f2, f3, f4]
