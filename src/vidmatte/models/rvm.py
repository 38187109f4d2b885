"""Robust Video Matting (Lin et al., 2021) in PyTorch, written for this project from the published architecture.

``MattingNetwork`` keeps no state: the recurrent state goes in and out of every call, with the same meaning as the
ONNX graph's ``r1i..r4i -> r1o..r4o``. Inputs are [B,3,H,W] (one frame per item) or [B,T,3,H,W] (clips); the GRUs
step through T inside one call, which is what training uses.

Parameter names match the official RVM checkpoints (``backbone.*``, ``aspp.*``, ``decoder.*``, ``project_mat.*``,
``project_seg.*``, ``refiner.*``), so ``rvm_mobilenetv3.pth`` / ``rvm_resnet50.pth`` load with ``strict=True``.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .backbones import MobileNetV3LargeEncoder, ResNet50Encoder

VARIANTS = ("mobilenetv3", "resnet50")
REFINERS = ("deep_guided_filter", "fast_guided_filter")


def flatten_time(x: Tensor) -> Tensor:
    """[B,T,C,H,W] -> [B*T,C,H,W]; 4-D tensors pass through."""
    return x.flatten(0, 1) if x.ndim == 5 else x


def unflatten_time(x: Tensor, like: Tensor) -> Tensor:
    """Undo ``flatten_time`` using the batch/time sizes of ``like``."""
    # size(0), size(1) rather than shape[:2]: an ONNX trace keeps them dynamic (batch, frames).
    return x.reshape(like.size(0), like.size(1), *x.shape[1:]) if like.ndim == 5 else x


def resize_by(x: Tensor, scale: float | Tensor) -> Tensor:
    """Bilinear resize of [N,C,H,W] by ``scale`` (output floor(H*scale)), half-pixel centres, no antialiasing.

    Source coordinates are computed as ``(i + 0.5) / scale - 0.5`` in float32, the same arithmetic ONNX Runtime uses
    for the official graph's Resize(scales=...). ``F.interpolate`` multiplies by a rounded reciprocal instead; at
    1280 px that moves samples by ~4e-5 px, enough to push alpha off the ONNX result by 2e-4 at ratio 0.375.
    A tensor ``scale`` (ONNX export) becomes a Resize node reading the ratio at run time.
    """
    if isinstance(scale, Tensor):
        if torch.jit.is_tracing() and not torch.onnx.is_in_onnx_export():
            return _scripted_resize()(x, scale)  # TorchScript export: the ratio stays a run-time input
        return _ResizeByScale.apply(x, scale)
    if torch.jit.is_tracing():
        # TorchScript: index tables would freeze the traced input size; interpolate keeps H and W dynamic.
        return F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False,
                             recompute_scale_factor=False)
    return _resize_exact(x, float(scale))


_SCRIPTED_RESIZE = None


def _scripted_resize():
    """A scripted resize reading the ratio from a tensor; tracing keeps calls to scripted functions, so a traced
    model built with it takes the downsample ratio at run time. Compiled on first use only."""
    global _SCRIPTED_RESIZE
    if _SCRIPTED_RESIZE is None:
        def resize_by_tensor(x: Tensor, scale: Tensor) -> Tensor:
            s = float(scale.reshape(-1)[0])
            return F.interpolate(x, scale_factor=[s, s], mode="bilinear", align_corners=False,
                                 recompute_scale_factor=False)

        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _SCRIPTED_RESIZE = torch.jit.script(resize_by_tensor)
    return _SCRIPTED_RESIZE


def _axis_index(in_size: int, scale: np.float32, device: torch.device) -> tuple[int, Tensor, Tensor, Tensor]:
    out_size = int(np.float32(in_size) * scale)
    dst = torch.arange(out_size, device=device, dtype=torch.float32)
    src = ((dst + 0.5) / float(scale) - 0.5).clamp(min=0.0)
    i0 = src.floor().long().clamp(max=in_size - 1)
    i1 = (i0 + 1).clamp(max=in_size - 1)
    return out_size, i0, i1, src - i0


def _resize_exact(x: Tensor, scale: float) -> Tensor:
    s = np.float32(scale)
    if s <= 0:
        raise ValueError(f"resize scale must be positive, got {scale}")
    # Rows first: selecting whole rows is a cheap copy and leaves fewer rows for the strided column gather.
    _, i0, i1, w = _axis_index(x.shape[-2], s, x.device)
    w = w.to(x.dtype)[:, None]
    x = x.index_select(-2, i0) * (1 - w) + x.index_select(-2, i1) * w
    _, i0, i1, w = _axis_index(x.shape[-1], s, x.device)
    w = w.to(x.dtype)
    return x.index_select(-1, i0) * (1 - w) + x.index_select(-1, i1) * w


class _ResizeByScale(torch.autograd.Function):
    """Resize by a run-time ratio; exported as ONNX Resize(scales=[1,1,r,r]) like the official graph."""

    @staticmethod
    def forward(ctx, x: Tensor, scale: Tensor) -> Tensor:  # type: ignore[override]
        return _resize_exact(x, float(scale.reshape(-1)[0]))

    @staticmethod
    def symbolic(g, x, scale):  # pragma: no cover - only called by the ONNX exporter
        ones = g.op("Constant", value_t=torch.tensor([1.0, 1.0], dtype=torch.float32))
        scale = g.op("Cast", g.op("Reshape", scale, g.op("Constant", value_t=torch.tensor([1]))), to_i=1)
        scales = g.op("Concat", ones, scale, scale, axis_i=0)
        roi = g.op("Constant", value_t=torch.tensor([], dtype=torch.float32))
        return g.op("Resize", x, roi, scales, coordinate_transformation_mode_s="pytorch_half_pixel",
                    mode_s="linear", nearest_mode_s="floor")


def upsample2(x: Tensor) -> Tensor:
    return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)


class LRASPP(nn.Module):
    """Lite R-ASPP: a 1x1 conv branch gated by a global-context branch. [N,cin,h,w] -> [N,cout,h,w]."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.aspp1 = nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(True))
        self.aspp2 = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(cin, cout, 1, bias=False), nn.Sigmoid())

    def forward(self, x: Tensor) -> Tensor:
        return self.aspp1(x) * self.aspp2(x)


class ConvGRU(nn.Module):
    """Convolutional GRU over ``channels`` channels.

    x: [B,C,H,W] or [B,T,C,H,W]; h: None (zeros) or a state broadcastable to [B,C,H,W] (the ONNX convention
    starts from zeros of shape [1,1,1,1]). Returns (output with x's shape, last state [B,C,H,W]).
    """

    def __init__(self, channels: int, kernel_size: int = 3, padding: int = 1):
        super().__init__()
        self.channels = channels
        self.ih = nn.Sequential(nn.Conv2d(channels * 2, channels * 2, kernel_size, padding=padding), nn.Sigmoid())
        self.hh = nn.Sequential(nn.Conv2d(channels * 2, channels, kernel_size, padding=padding), nn.Tanh())

    def step(self, x: Tensor, h: Tensor) -> Tensor:
        r, z = self.ih(torch.cat([x, h], dim=1)).split(self.channels, dim=1)
        c = self.hh(torch.cat([x, r * h], dim=1))
        return (1 - z) * h + z * c

    def forward(self, x: Tensor, h: Optional[Tensor]) -> tuple[Tensor, Tensor]:
        first = x if x.ndim == 4 else x[:, 0]
        h = torch.zeros_like(first) if h is None else h.expand_as(first)
        if x.ndim == 4:
            h = self.step(x, h)
            return h, h
        outputs = []
        for xt in x.unbind(dim=1):
            h = self.step(xt, h)
            outputs.append(h)
        return torch.stack(outputs, dim=1), h


class BottleneckBlock(nn.Module):
    """1/16 stage: a GRU on half the channels of the (LR-ASPP) feature, the other half passed through."""

    def __init__(self, channels: int):
        super().__init__()
        self.channels = channels
        self.gru = ConvGRU(channels // 2)

    def forward(self, x: Tensor, r: Optional[Tensor]) -> tuple[Tensor, Tensor]:
        a, b = x.split(self.channels // 2, dim=-3)
        b, r = self.gru(b, r)
        return torch.cat([a, b], dim=-3), r


class UpsamplingBlock(nn.Module):
    """Upsample x2, crop to the skip size, concat (x, encoder skip f, downsampled source s), conv, half-GRU."""

    def __init__(self, cin: int, skip_channels: int, src_channels: int, cout: int):
        super().__init__()
        self.out_channels = cout
        self.conv = nn.Sequential(
            nn.Conv2d(cin + skip_channels + src_channels, cout, 3, 1, 1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(True),
        )
        self.gru = ConvGRU(cout // 2)

    def forward(self, x: Tensor, f: Tensor, s: Tensor, r: Optional[Tensor]) -> tuple[Tensor, Tensor]:
        like = x
        x, f, s = flatten_time(x), flatten_time(f), flatten_time(s)
        x = upsample2(x)[:, :, : s.size(2), : s.size(3)]
        x = unflatten_time(self.conv(torch.cat([x, f, s], dim=1)), like)
        a, b = x.split(self.out_channels // 2, dim=-3)
        b, r = self.gru(b, r)
        return torch.cat([a, b], dim=-3), r


class OutputBlock(nn.Module):
    """Final x2 upsample to the (downsampled) source resolution, concat the source, two conv-BN-ReLU."""

    def __init__(self, cin: int, src_channels: int, cout: int):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(cin + src_channels, cout, 3, 1, 1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(True),
            nn.Conv2d(cout, cout, 3, 1, 1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(True),
        )

    def forward(self, x: Tensor, s: Tensor) -> Tensor:
        like = x
        x, s = flatten_time(x), flatten_time(s)
        x = upsample2(x)[:, :, : s.size(2), : s.size(3)]
        return unflatten_time(self.conv(torch.cat([x, s], dim=1)), like)


class RecurrentDecoder(nn.Module):
    """Decoder with ConvGRUs at 1/16, 1/8, 1/4 and 1/2; the source image is fed in again at every scale."""

    def __init__(self, feature_channels: tuple[int, ...], decoder_channels: tuple[int, ...]):
        super().__init__()
        self.avgpool = nn.AvgPool2d(2, 2, count_include_pad=False, ceil_mode=True)
        self.decode4 = BottleneckBlock(feature_channels[3])
        self.decode3 = UpsamplingBlock(feature_channels[3], feature_channels[2], 3, decoder_channels[0])
        self.decode2 = UpsamplingBlock(decoder_channels[0], feature_channels[1], 3, decoder_channels[1])
        self.decode1 = UpsamplingBlock(decoder_channels[1], feature_channels[0], 3, decoder_channels[2])
        self.decode0 = OutputBlock(decoder_channels[2], 3, decoder_channels[3])

    def _pool(self, x: Tensor) -> Tensor:
        return unflatten_time(self.avgpool(flatten_time(x)), x)

    def forward(self, s0: Tensor, f1: Tensor, f2: Tensor, f3: Tensor, f4: Tensor, r1: Optional[Tensor],
                r2: Optional[Tensor], r3: Optional[Tensor], r4: Optional[Tensor]) -> list[Tensor]:
        s1 = self._pool(s0)
        s2 = self._pool(s1)
        s3 = self._pool(s2)
        x4, r4 = self.decode4(f4, r4)
        x3, r3 = self.decode3(x4, f3, s3, r3)
        x2, r2 = self.decode2(x3, f2, s2, r2)
        x1, r1 = self.decode1(x2, f1, s1, r1)
        x0 = self.decode0(x1, s0)
        return [x0, r1, r2, r3, r4]


class Projection(nn.Module):
    """1x1 conv head on [N,C,H,W] or [B,T,C,H,W]."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 1)

    def forward(self, x: Tensor) -> Tensor:
        return unflatten_time(self.conv(flatten_time(x)), x)


class BoxFilter(nn.Module):
    """Mean over a (2r+1)^2 window with zero padding, as two separable depthwise convolutions. No parameters."""

    def __init__(self, radius: int):
        super().__init__()
        self.radius = radius

    def forward(self, x: Tensor) -> Tensor:
        k = 2 * self.radius + 1
        c = x.shape[1]
        kx = torch.full((c, 1, 1, k), 1 / k, device=x.device, dtype=x.dtype)
        ky = torch.full((c, 1, k, 1), 1 / k, device=x.device, dtype=x.dtype)
        x = F.conv2d(x, kx, padding=(0, self.radius), groups=c)
        return F.conv2d(x, ky, padding=(self.radius, 0), groups=c)


class FastGuidedFilterRefiner(nn.Module):
    """Classical fast guided filter (He & Sun 2015): fit A, b at low resolution, apply at full resolution."""

    def __init__(self, radius: int = 1, eps: float = 1e-5):
        super().__init__()
        self.box = BoxFilter(radius)
        self.eps = eps

    def forward(self, fine_src: Tensor, base_src: Tensor, base_fgr: Tensor, base_pha: Tensor,
                base_hid: Tensor) -> tuple[Tensor, Tensor]:
        lr_x = torch.cat([base_src, base_src.mean(1, keepdim=True)], dim=1)
        lr_y = torch.cat([base_fgr, base_pha], dim=1)
        hr_x = torch.cat([fine_src, fine_src.mean(1, keepdim=True)], dim=1)
        mean_x, mean_y = self.box(lr_x), self.box(lr_y)
        cov_xy = self.box(lr_x * lr_y) - mean_x * mean_y
        var_x = self.box(lr_x * lr_x) - mean_x * mean_x
        a = cov_xy / (var_x + self.eps)
        b = mean_y - a * mean_x
        return apply_guided_coefficients(a, b, hr_x)


def apply_guided_coefficients(a: Tensor, b: Tensor, guide: Tensor) -> tuple[Tensor, Tensor]:
    """Both guided filters end alike: upsample the low-res linear coefficients to the guide's size and apply them.

    a, b: [B,4,h,w]; guide: [B,4,H,W] (RGB + grey) -> (fgr [B,3,H,W], pha [B,1,H,W]).
    """
    size = guide.shape[2:]
    a = F.interpolate(a, size, mode="bilinear", align_corners=False)
    b = F.interpolate(b, size, mode="bilinear", align_corners=False)
    return (a * guide + b).split([3, 1], dim=1)


class DeepGuidedFilterRefiner(nn.Module):
    """Deep guided filter (Wu et al. 2018): like the fast guided filter, but A is predicted by a small network
    from the local statistics and the decoder's hidden features."""

    def __init__(self, hid_channels: int = 16):
        super().__init__()
        # A fixed 3x3 mean filter stored as a parameter, as in the official checkpoint (key refiner.box_filter.weight).
        self.box_filter = nn.Conv2d(4, 4, kernel_size=3, padding=1, bias=False, groups=4)
        self.box_filter.weight.data[...] = 1 / 9
        self.conv = nn.Sequential(
            nn.Conv2d(4 * 2 + hid_channels, hid_channels, 1, bias=False),
            nn.BatchNorm2d(hid_channels),
            nn.ReLU(True),
            nn.Conv2d(hid_channels, hid_channels, 1, bias=False),
            nn.BatchNorm2d(hid_channels),
            nn.ReLU(True),
            nn.Conv2d(hid_channels, 4, 1, bias=True),
        )

    def forward(self, fine_src: Tensor, base_src: Tensor, base_fgr: Tensor, base_pha: Tensor,
                base_hid: Tensor) -> tuple[Tensor, Tensor]:
        fine_x = torch.cat([fine_src, fine_src.mean(1, keepdim=True)], dim=1)
        base_x = torch.cat([base_src, base_src.mean(1, keepdim=True)], dim=1)
        base_y = torch.cat([base_fgr, base_pha], dim=1)
        mean_x = self.box_filter(base_x)
        mean_y = self.box_filter(base_y)
        cov_xy = self.box_filter(base_x * base_y) - mean_x * mean_y
        var_x = self.box_filter(base_x * base_x) - mean_x * mean_x
        a = self.conv(torch.cat([cov_xy, var_x, base_hid], dim=1))
        b = mean_y - a * mean_x
        return apply_guided_coefficients(a, b, fine_x)


class MattingNetwork(nn.Module):
    """RVM: encoder -> LR-ASPP -> recurrent decoder -> heads (-> guided-filter refiner).

    Args:
        variant: "mobilenetv3" or "resnet50".
        refiner: "deep_guided_filter" (default, as trained) or "fast_guided_filter".
        refine_always: also run the refiner when ``downsample_ratio == 1``. The official PyTorch code skips it;
            the official ONNX graph cannot branch and always runs it, so set this to reproduce the ONNX graph.
    """

    def __init__(self, variant: str = "mobilenetv3", refiner: str = "deep_guided_filter", refine_always: bool = False):
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"unknown variant {variant!r}; choose one of {', '.join(VARIANTS)}")
        if refiner not in REFINERS:
            raise ValueError(f"unknown refiner {refiner!r}; choose one of {', '.join(REFINERS)}")
        self.variant, self.refiner_name, self.refine_always = variant, refiner, refine_always
        if variant == "mobilenetv3":
            self.backbone = MobileNetV3LargeEncoder()
            self.aspp = LRASPP(960, 128)
            self.decoder = RecurrentDecoder((16, 24, 40, 128), (80, 40, 32, 16))
        else:
            self.backbone = ResNet50Encoder()
            self.aspp = LRASPP(2048, 256)
            self.decoder = RecurrentDecoder((64, 256, 512, 256), (128, 64, 32, 16))
        self.project_mat = Projection(16, 4)
        self.project_seg = Projection(16, 1)
        self.refiner = DeepGuidedFilterRefiner() if refiner == "deep_guided_filter" else FastGuidedFilterRefiner()

    def model_args(self) -> dict:
        """Constructor arguments, stored in checkpoints so they describe themselves."""
        return {"variant": self.variant, "refiner": self.refiner_name, "refine_always": self.refine_always}

    def forward(self, src: Tensor, r1: Optional[Tensor] = None, r2: Optional[Tensor] = None,
                r3: Optional[Tensor] = None, r4: Optional[Tensor] = None, downsample_ratio: float = 1.0,
                segmentation_pass: bool = False) -> list[Tensor]:
        """src: [B,3,H,W] or [B,T,3,H,W] RGB 0..1; r1..r4: previous states or None (zeros).

        Returns [fgr (like src, 0..1), pha ([B,(T,)1,H,W], 0..1), r1, r2, r3, r4], or with
        ``segmentation_pass`` [seg logits ([B,(T,)1,h,w] at the downsampled size), r1..r4].
        """
        if src.ndim not in (4, 5) or src.shape[-3] != 3:
            raise ValueError(f"src must be [B,3,H,W] or [B,T,3,H,W], got {tuple(src.shape)}")
        resized = not (isinstance(downsample_ratio, (int, float)) and downsample_ratio == 1)
        src_sm = unflatten_time(resize_by(flatten_time(src), downsample_ratio), src) if resized else src

        feats = self.backbone(flatten_time(src_sm))
        feats[3] = self.aspp(feats[3])
        f1, f2, f3, f4 = (unflatten_time(f, src_sm) for f in feats)
        hid, *rec = self.decoder(src_sm, f1, f2, f3, f4, r1, r2, r3, r4)

        if segmentation_pass:
            return [self.project_seg(hid), *rec]
        fgr_residual, pha = self.project_mat(hid).split([3, 1], dim=-3)
        if resized or self.refine_always:
            fgr_residual, pha = self._refine(src, src_sm, fgr_residual, pha, hid)
        fgr = (fgr_residual + src).clamp(0.0, 1.0)
        return [fgr, pha.clamp(0.0, 1.0), *rec]

    def _refine(self, src: Tensor, src_sm: Tensor, fgr_residual: Tensor, pha: Tensor,
                hid: Tensor) -> tuple[Tensor, Tensor]:
        fgr_residual, pha = self.refiner(flatten_time(src), flatten_time(src_sm), flatten_time(fgr_residual),
                                         flatten_time(pha), flatten_time(hid))
        return unflatten_time(fgr_residual, src), unflatten_time(pha, src)


def build_model(variant: str = "mobilenetv3", refiner: str = "deep_guided_filter",
                refine_always: bool = False) -> MattingNetwork:
    return MattingNetwork(variant, refiner, refine_always)
