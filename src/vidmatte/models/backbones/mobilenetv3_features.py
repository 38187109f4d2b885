"""MobileNetV3-Large as FTP-VM uses it: a feature extractor in timm's module layout, fed raw RGB 0..1.

FTP-VM builds its encoder with ``timm.create_model("mobilenetv3_large_100", features_only=True,
out_indices=(0, 1, 2, 3))`` (timm 0.4.12). Its checkpoint therefore names the encoder ``conv_stem``, ``bn1``,
``blocks.{stage}.{block}.{conv_pw,bn1,conv_dw,bn2,se.conv_reduce,se.conv_expand,conv_pwl,bn3}`` (the first,
depthwise-separable block: ``conv_dw,bn1,conv_pw,bn2``; the last stage: ``conv,bn1``), uses BatchNorm's default
eps (1e-5), no dilation, and no ImageNet normalisation of its input. Features come out at 1/2, 1/4, 1/8 and 1/16
(16, 24, 40, 112 channels); the 1/32 stages (``blocks.5``, ``blocks.6``) are built, so a checkpoint loads strictly,
but never run, since nothing reads them.

The layers are the same as torchvision's (and so RVM's encoder): ``rvm_encoder_state`` maps RVM's weights here.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .mobilenetv3 import IMAGENET_MEAN, IMAGENET_STD, LARGE_BLOCKS, BN_EPS as RVM_BN_EPS, BlockConfig, \
    SqueezeExcitation, make_divisible

BN_EPS = 1e-5  # timm's default BatchNorm eps (RVM's torchvision encoder uses 1e-3)
# LARGE_BLOCKS grouped into timm's stages; stage 5's first block strides (RVM dilates it instead).
STAGES = ((0,), (1, 2), (3, 4, 5), (6, 7, 8, 9), (10, 11), (12, 13, 14))
FEATURE_STAGES = (0, 1, 2, 4)  # the stages whose outputs are FTP-VM's four features
FEATURE_CHANNELS = (16, 24, 40, 112)


def _activation(cfg: BlockConfig) -> nn.Module:
    return nn.Hardswish(inplace=True) if cfg.hardswish else nn.ReLU(inplace=True)


class DepthwiseSeparable(nn.Module):
    """The first block (no expansion): depthwise -> BN -> act -> pointwise -> BN, plus the input."""

    def __init__(self, cfg: BlockConfig):
        super().__init__()
        self.conv_dw = nn.Conv2d(cfg.cin, cfg.cin, cfg.kernel, cfg.stride, cfg.kernel // 2, groups=cfg.cin,
                                 bias=False)
        self.bn1 = nn.BatchNorm2d(cfg.cin, eps=BN_EPS)
        self.act = _activation(cfg)
        self.conv_pw = nn.Conv2d(cfg.cin, cfg.cout, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cfg.cout, eps=BN_EPS)
        self.residual = cfg.stride == 1 and cfg.cin == cfg.cout

    def forward(self, x: Tensor) -> Tensor:
        out = self.bn2(self.conv_pw(self.act(self.bn1(self.conv_dw(x)))))
        return out + x if self.residual else out


class InvertedBottleneck(nn.Module):
    """expand 1x1 -> depthwise -> (squeeze-excite) -> project 1x1, residual when shapes allow."""

    def __init__(self, cfg: BlockConfig):
        super().__init__()
        self.conv_pw = nn.Conv2d(cfg.cin, cfg.expanded, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cfg.expanded, eps=BN_EPS)
        self.conv_dw = nn.Conv2d(cfg.expanded, cfg.expanded, cfg.kernel, cfg.stride, cfg.kernel // 2,
                                 groups=cfg.expanded, bias=False)
        self.bn2 = nn.BatchNorm2d(cfg.expanded, eps=BN_EPS)
        self.act = _activation(cfg)
        self.se = (SqueezeExcitation(cfg.expanded, make_divisible(cfg.expanded / 4), ("conv_reduce", "conv_expand"))
                   if cfg.use_se else nn.Identity())
        self.conv_pwl = nn.Conv2d(cfg.expanded, cfg.cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cfg.cout, eps=BN_EPS)
        self.residual = cfg.stride == 1 and cfg.cin == cfg.cout

    def forward(self, x: Tensor) -> Tensor:
        out = self.act(self.bn1(self.conv_pw(x)))
        out = self.se(self.act(self.bn2(self.conv_dw(out))))
        out = self.bn3(self.conv_pwl(out))
        return out + x if self.residual else out


class ConvBnAct(nn.Module):
    """The last stage: 1x1 conv -> BN -> hard-swish (timm's names conv, bn1)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout, eps=BN_EPS)

    def forward(self, x: Tensor) -> Tensor:
        return nn.functional.hardswish(self.bn1(self.conv(x)))


def _block(index: int) -> nn.Module:
    cfg = LARGE_BLOCKS[index]
    cfg = BlockConfig(**{**cfg.__dict__, "dilation": 1})
    return DepthwiseSeparable(cfg) if cfg.expanded == cfg.cin else InvertedBottleneck(cfg)


class MobileNetV3LargeFeatures(nn.Module):
    """x [N,3,H,W] RGB 0..1 (not normalised) -> [1/2 (16 ch), 1/4 (24), 1/8 (40), 1/16 (112)]."""

    channels = FEATURE_CHANNELS

    def __init__(self):
        super().__init__()
        self.conv_stem = nn.Conv2d(3, 16, 3, 2, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16, eps=BN_EPS)
        stages = [nn.Sequential(*[_block(i) for i in stage]) for stage in STAGES]
        self.blocks = nn.Sequential(*stages, nn.Sequential(ConvBnAct(160, 960)))

    def forward(self, x: Tensor) -> list[Tensor]:
        x = nn.functional.hardswish(self.bn1(self.conv_stem(x)))
        features = []
        for stage in range(FEATURE_STAGES[-1] + 1):
            x = self.blocks[stage](x)
            if stage in FEATURE_STAGES:
                features.append(x)
        return features


# --- RVM's encoder weights in this layout ---------------------------------------------------------------------

def _torchvision_block_names(index: int) -> list[tuple[str, str]]:
    """(RVM name prefix, timm name prefix) pairs for LARGE_BLOCKS[index] (torchvision's features.{index + 1})."""
    stage = next(s for s, members in enumerate(STAGES) if index in members)
    src, dst = f"features.{index + 1}.block", f"blocks.{stage}.{STAGES[stage].index(index)}"
    cfg = LARGE_BLOCKS[index]
    if cfg.expanded == cfg.cin:
        return [(f"{src}.0.0", f"{dst}.conv_dw"), (f"{src}.0.1", f"{dst}.bn1"),
                (f"{src}.1.0", f"{dst}.conv_pw"), (f"{src}.1.1", f"{dst}.bn2")]
    pairs = [(f"{src}.0.0", f"{dst}.conv_pw"), (f"{src}.0.1", f"{dst}.bn1"),
             (f"{src}.1.0", f"{dst}.conv_dw"), (f"{src}.1.1", f"{dst}.bn2")]
    last = 2
    if cfg.use_se:
        pairs += [(f"{src}.2.fc1", f"{dst}.se.conv_reduce"), (f"{src}.2.fc2", f"{dst}.se.conv_expand")]
        last = 3
    return pairs + [(f"{src}.{last}.0", f"{dst}.conv_pwl"), (f"{src}.{last}.1", f"{dst}.bn3")]


def rvm_name_pairs() -> list[tuple[str, str]]:
    """Every RVM encoder module (torchvision names, ``features.*``) and its FTP-VM backbone counterpart: all of them
    match one to one (same kernels and channels); only RVM's stage-5 dilation and BN eps differ."""
    pairs = [("features.0.0", "conv_stem"), ("features.0.1", "bn1")]
    for index in range(len(LARGE_BLOCKS)):
        pairs += _torchvision_block_names(index)
    return pairs + [("features.16.0", "blocks.6.0.conv"), ("features.16.1", "blocks.6.0.bn1")]


def rvm_encoder_state(rvm_backbone_state: dict[str, Tensor]) -> dict[str, Tensor]:
    """RVM's ``backbone.*`` weights (without the prefix) -> this module's state dict, computing the same function:

    - RVM normalises its input with ImageNet statistics, FTP-VM does not: the normalisation is folded into the stem
      (the weights divided by std, the mean's response moved into BatchNorm's running mean; exact but for the
      one-pixel border, where the zero padding differs);
    - BatchNorm eps 1e-3 -> 1e-5: each BN's weight is rescaled so it divides by the same amount.
    """
    out: dict[str, Tensor] = {}
    for src, dst in rvm_name_pairs():
        for key, value in rvm_backbone_state.items():
            if key.startswith(src + "."):
                out[dst + key[len(src):]] = value.clone()
    for prefix in {k.rsplit(".", 1)[0] for k in out if k.endswith("running_var")}:
        var = out[f"{prefix}.running_var"]
        out[f"{prefix}.weight"] *= torch.sqrt(var + BN_EPS) / torch.sqrt(var + RVM_BN_EPS)
    _fold_normalisation(out)
    return out


def _fold_normalisation(state: dict[str, Tensor]) -> None:
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    weight = state["conv_stem.weight"] / std
    state["conv_stem.weight"] = weight
    # conv((x - mean) / std) = conv(x / std) - sum(weight * mean): the constant joins BN's running mean.
    state["bn1.running_mean"] = state["bn1.running_mean"] + (weight * mean).sum((1, 2, 3))
