"""MobileNetV3-Large encoder (Howard et al. 2019) as RVM uses it: the last stage dilated so the deepest feature
stays at 1/16, and four feature maps returned instead of class scores.

Module and parameter names follow torchvision's ``mobilenet_v3_large`` (``features.{i}.block.{j}.{0,1}``,
``fc1``/``fc2`` in squeeze-excitation) so official RVM state dicts load unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

# ImageNet statistics: the pretrained encoder expects normalised RGB.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# torchvision's MobileNetV3 BatchNorm settings (kept so the official checkpoint behaves identically).
BN_EPS = 0.001
BN_MOMENTUM = 0.01


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round channel counts to a multiple of ``divisor`` without dropping more than 10% (MobileNet convention)."""
    new_value = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if new_value < 0.9 * value:
        new_value += divisor
    return new_value


class ConvBNAct(nn.Sequential):
    """conv -> BatchNorm -> optional activation; children 0, 1, 2 as in torchvision's Conv2dNormActivation."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1, dilation: int = 1,
                 activation: type[nn.Module] | None = nn.ReLU):
        padding = (kernel - 1) // 2 * dilation
        layers: list[nn.Module] = [
            nn.Conv2d(cin, cout, kernel, stride, padding, dilation=dilation, groups=groups, bias=False),
            nn.BatchNorm2d(cout, eps=BN_EPS, momentum=BN_MOMENTUM),
        ]
        if activation is not None:
            layers.append(activation(inplace=True))
        super().__init__(*layers)


class SqueezeExcitation(nn.Module):
    """Channel attention: global pool -> reduce -> ReLU -> expand -> hard-sigmoid, multiplied back onto the input.
    ``names``: the two convs' attribute names (torchvision's fc1/fc2 here; timm's conv_reduce/conv_expand in FTP-VM's
    encoder), so each layout's checkpoints load strictly."""

    def __init__(self, channels: int, squeeze: int, names: tuple[str, str] = ("fc1", "fc2")):
        super().__init__()
        self.names = names
        setattr(self, names[0], nn.Conv2d(channels, squeeze, 1))
        setattr(self, names[1], nn.Conv2d(squeeze, channels, 1))

    def forward(self, x: Tensor) -> Tensor:
        scale = torch.relu(getattr(self, self.names[0])(torch.nn.functional.adaptive_avg_pool2d(x, 1)))
        return x * torch.nn.functional.hardsigmoid(getattr(self, self.names[1])(scale))


@dataclass(frozen=True)
class BlockConfig:
    cin: int
    kernel: int
    expanded: int
    cout: int
    use_se: bool
    hardswish: bool
    stride: int
    dilation: int


class InvertedResidual(nn.Module):
    """MobileNetV3 bottleneck: (1x1 expand) -> depthwise -> (SE) -> 1x1 project, residual when shapes allow."""

    def __init__(self, cfg: BlockConfig):
        super().__init__()
        act = nn.Hardswish if cfg.hardswish else nn.ReLU
        self.use_residual = cfg.stride == 1 and cfg.cin == cfg.cout
        layers: list[nn.Module] = []
        if cfg.expanded != cfg.cin:
            layers.append(ConvBNAct(cfg.cin, cfg.expanded, 1, activation=act))
        # A dilated block keeps its resolution: dilation replaces the stride (torchvision does the same).
        stride = 1 if cfg.dilation > 1 else cfg.stride
        layers.append(ConvBNAct(cfg.expanded, cfg.expanded, cfg.kernel, stride, groups=cfg.expanded,
                                dilation=cfg.dilation, activation=act))
        if cfg.use_se:
            layers.append(SqueezeExcitation(cfg.expanded, make_divisible(cfg.expanded // 4)))
        layers.append(ConvBNAct(cfg.expanded, cfg.cout, 1, activation=None))
        self.block = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        out = self.block(x)
        return out + x if self.use_residual else out


# (cin, kernel, expanded, cout, SE, hardswish, stride, dilation): MobileNetV3-Large with the last stage dilated.
LARGE_BLOCKS = [
    BlockConfig(16, 3, 16, 16, False, False, 1, 1),
    BlockConfig(16, 3, 64, 24, False, False, 2, 1),  # -> 1/4 (f2 after the next block)
    BlockConfig(24, 3, 72, 24, False, False, 1, 1),
    BlockConfig(24, 5, 72, 40, True, False, 2, 1),  # -> 1/8
    BlockConfig(40, 5, 120, 40, True, False, 1, 1),
    BlockConfig(40, 5, 120, 40, True, False, 1, 1),
    BlockConfig(40, 3, 240, 80, False, True, 2, 1),  # -> 1/16
    BlockConfig(80, 3, 200, 80, False, True, 1, 1),
    BlockConfig(80, 3, 184, 80, False, True, 1, 1),
    BlockConfig(80, 3, 184, 80, False, True, 1, 1),
    BlockConfig(80, 3, 480, 112, True, True, 1, 1),
    BlockConfig(112, 3, 672, 112, True, True, 1, 1),
    BlockConfig(112, 5, 672, 160, True, True, 2, 2),  # dilated: stays at 1/16
    BlockConfig(160, 5, 960, 160, True, True, 1, 2),
    BlockConfig(160, 5, 960, 160, True, True, 1, 2),
]


class MobileNetV3LargeEncoder(nn.Module):
    """src [N,3,H,W] RGB 0..1 -> features at 1/2 (16 ch), 1/4 (24), 1/8 (40), 1/16 (960)."""

    feature_channels = (16, 24, 40, 960)

    def __init__(self):
        super().__init__()
        layers: list[nn.Module] = [ConvBNAct(3, 16, 3, stride=2, activation=nn.Hardswish)]
        layers += [InvertedResidual(cfg) for cfg in LARGE_BLOCKS]
        layers.append(ConvBNAct(160, 960, 1, activation=nn.Hardswish))
        self.features = nn.Sequential(*layers)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        init_weights(self)

    def forward(self, x: Tensor) -> list[Tensor]:
        x = (x - self.mean) / self.std
        f = self.features
        f1 = f[1](f[0](x))
        f2 = f[3](f[2](f1))
        f3 = f[6](f[5](f[4](f2)))
        x = f3
        for i in range(7, 17):
            x = f[i](x)
        return [f1, f2, f3, x]


def init_weights(module: nn.Module) -> None:
    """Kaiming init for convs, identity BatchNorm: a sensible start when training from scratch."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
