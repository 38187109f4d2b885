"""Temporally coherent augmentation for training clips.

Every random choice is drawn once per clip from a ``torch.Generator`` (so runs are reproducible and resumable)
and then either held constant or interpolated smoothly from a start to an end value over the clip, so frames of a
clip change the way a camera or a scene would, never independently. Tensors are [T,C,H,W] floats in 0..1.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

EASINGS = {
    "linear": lambda t: t,
    "ease_in_out": lambda t: t * t * (3 - 2 * t),
    "ease_in": lambda t: t * t,
    "ease_out": lambda t: 1 - (1 - t) * (1 - t),
    "sine": lambda t: 0.5 - 0.5 * math.cos(math.pi * t),
}


def uniform(gen: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand((), generator=gen))


def chance(gen: torch.Generator, p: float) -> bool:
    return float(torch.rand((), generator=gen)) < p


def choice(gen: torch.Generator, options: list):
    return options[int(torch.randint(len(options), (), generator=gen))]


def sample_frame_indices(available: int, length: int, gen: torch.Generator, max_speed: float = 1.0,
                         p_reverse: float = 0.0) -> list[int]:
    """Frame indices for a clip of ``length``: random start (shift), playback speed in [1/max_speed, max_speed]
    (slow motion repeats frames, fast motion skips), optional reversal. Indices bounce at the ends when the
    source is short, so any source length works."""
    if available <= 0:
        raise ValueError("a clip source has no frames")
    speed = math.exp(uniform(gen, -math.log(max_speed), math.log(max_speed))) if max_speed > 1 else 1.0
    span = (length - 1) * speed
    start = uniform(gen, 0, max(available - 1 - span, 0))
    period = max(2 * (available - 1), 1)
    indices = []
    for i in range(length):
        pos = int(round(start + i * speed)) % period
        indices.append(pos if pos < available else period - pos)  # ping-pong past the end
    if chance(gen, p_reverse):
        indices.reverse()
    return indices


def _affine_params(gen: torch.Generator, strength: dict) -> tuple[float, float, float, float, float]:
    return (
        uniform(gen, -strength.get("degrees", 0.0), strength.get("degrees", 0.0)),
        math.exp(uniform(gen, -math.log(strength.get("scale", 1.0)), math.log(strength.get("scale", 1.0)))),
        uniform(gen, -strength.get("translate", 0.0), strength.get("translate", 0.0)),
        uniform(gen, -strength.get("translate", 0.0), strength.get("translate", 0.0)),
        uniform(gen, -strength.get("shear", 0.0), strength.get("shear", 0.0)),
    )


def motion_thetas(length: int, gen: torch.Generator, strength: dict, aspect: float) -> Tensor:
    """[T,2,3] affine matrices (normalised coordinates) moving from a random start pose to a random end pose
    with a random easing curve. ``aspect`` = W/H so rotations stay rigid on non-square frames."""
    start, end = _affine_params(gen, strength), _affine_params(gen, strength)
    ease = EASINGS[choice(gen, sorted(EASINGS))]
    thetas = []
    for t in range(length):
        a = ease(t / max(length - 1, 1))
        deg, scale, tx, ty, shear = (s + (e - s) * a for s, e in zip(start, end))
        rad, sh = math.radians(deg), math.radians(shear)
        # Output pixel -> input pixel (what grid_sample wants): inverse scale, rotation and shear.
        cos, sin = math.cos(rad) / scale, math.sin(rad) / scale
        thetas.append([[cos, (-sin + math.tan(sh) * cos) * aspect, tx], [sin / aspect, cos, ty]])
    return torch.tensor(thetas, dtype=torch.float32)


def warp(x: Tensor, thetas: Tensor, size: tuple[int, int]) -> Tensor:
    """Apply per-frame affine ``thetas`` [T,2,3] to x [T,C,H,W], sampling an output of ``size`` (h, w)."""
    thetas = thetas.to(x.device, x.dtype)
    grid = F.affine_grid(thetas, [x.shape[0], x.shape[1], *size], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def crop_to_aspect(x: Tensor, size: tuple[int, int], gen: torch.Generator) -> Tensor:
    """Random crop of x [T,C,H,W] to the aspect ratio of ``size`` then resize (the same crop for all frames)."""
    h, w = x.shape[-2:]
    th, tw = size
    scale = min(h / th, w / tw)
    ch, cw = max(1, int(th * scale)), max(1, int(tw * scale))
    top = int(uniform(gen, 0, h - ch + 1e-6)) if h > ch else 0
    left = int(uniform(gen, 0, w - cw + 1e-6)) if w > cw else 0
    x = x[..., top:top + ch, left:left + cw]
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)


def _lerp_over_time(gen: torch.Generator, length: int, low: float, high: float, vary: float) -> Tensor:
    """[T] values starting at a random value in [low, high] and drifting by up to ``vary`` over the clip."""
    start = uniform(gen, low, high)
    end = start + uniform(gen, -vary, vary)
    return torch.linspace(start, end, length)


def color_jitter(x: Tensor, gen: torch.Generator, cfg: dict) -> Tensor:
    """Brightness, contrast, saturation and hue, each drifting slowly over time. x [T,3,H,W]."""
    t = x.shape[0]
    b = _lerp_over_time(gen, t, -cfg.get("brightness", 0.0), cfg.get("brightness", 0.0), 0.05).view(t, 1, 1, 1)
    c = _lerp_over_time(gen, t, 1 - cfg.get("contrast", 0.0), 1 + cfg.get("contrast", 0.0), 0.05).view(t, 1, 1, 1)
    s = _lerp_over_time(gen, t, 1 - cfg.get("saturation", 0.0), 1 + cfg.get("saturation", 0.0), 0.05)
    h = _lerp_over_time(gen, t, -cfg.get("hue", 0.0), cfg.get("hue", 0.0), 0.02)
    x = x + b
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * c + mean
    gray = grayscale(x)
    x = gray + (x - gray) * s.view(t, 1, 1, 1)
    return rotate_hue(x, h).clamp(0, 1)


def grayscale(x: Tensor) -> Tensor:
    """Luma (BT.601) repeated on 3 channels. x [T,3,H,W]."""
    weights = torch.tensor([0.299, 0.587, 0.114], device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x * weights).sum(1, keepdim=True).expand_as(x)


def rotate_hue(x: Tensor, turns: Tensor) -> Tensor:
    """Rotate hue by ``turns`` [T] (fractions of a full turn) in YIQ space. x [T,3,H,W]."""
    to_yiq = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]],
                          device=x.device, dtype=x.dtype)
    from_yiq = torch.linalg.inv(to_yiq)
    yiq = torch.einsum("ij,tjhw->tihw", to_yiq, x)
    angle = (turns * 2 * math.pi).to(x.device, x.dtype).view(-1, 1, 1)
    i, q = yiq[:, 1], yiq[:, 2]
    yiq = torch.stack([yiq[:, 0], i * angle.cos() - q * angle.sin(), i * angle.sin() + q * angle.cos()], dim=1)
    return torch.einsum("ij,tjhw->tihw", from_yiq, yiq)


def gaussian_blur(x: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian blur of x [T,C,H,W] (reflect padding)."""
    if sigma <= 0:
        return x
    radius = max(1, int(math.ceil(2.5 * sigma)))
    coords = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    kernel = torch.exp(-coords ** 2 / (2 * sigma ** 2))
    kernel = kernel / kernel.sum()
    c = x.shape[1]
    pad_h, pad_w = min(radius, x.shape[-2] - 1), min(radius, x.shape[-1] - 1)
    x = F.pad(x, (pad_w, pad_w, 0, 0), mode="reflect")
    x = F.conv2d(x, kernel[radius - pad_w:radius + pad_w + 1].view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    x = F.pad(x, (0, 0, pad_h, pad_h), mode="reflect")
    return F.conv2d(x, kernel[radius - pad_h:radius + pad_h + 1].view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def pause(clip: list[Tensor], gen: torch.Generator, max_fraction: float = 0.5) -> list[Tensor]:
    """Freeze a random span of frames (a person standing still / a paused video), identically in every tensor."""
    t = clip[0].shape[0]
    if t < 3:
        return clip
    start = int(torch.randint(0, t - 1, (), generator=gen))
    span = int(torch.randint(1, max(2, int(t * max_fraction)) + 1, (), generator=gen))
    index = torch.arange(t)
    index[start:start + span] = start
    return [x[index] for x in clip]


def augment_clip(fgr: Tensor, pha: Tensor, bgr: Tensor, gen: torch.Generator, size: tuple[int, int],
                 cfg: dict) -> tuple[Tensor, Tensor, Tensor]:
    """fgr [T,3,h,w], pha [T,1,h,w], bgr [T,3,h',w'] (any sizes, 0..1) -> the same at ``size`` (H, W), augmented.

    The foreground layer (fgr+pha) and the background move independently; colour, blur, noise and grayscale are
    applied per layer with clip-level parameters. ``cfg`` keys (probabilities / strengths) are documented in
    configs/train/*.yaml; an empty dict only resizes.
    """
    t = fgr.shape[0]
    aspect = size[1] / size[0]
    fg = torch.cat([fgr, pha], dim=1)
    fg = crop_to_aspect(fg, size, gen) if cfg.get("crop", True) else F.interpolate(fg, size=size, mode="bilinear")
    bgr = crop_to_aspect(bgr, size, gen)
    if chance(gen, cfg.get("p_motion", 0.0)):
        fg = warp(fg, motion_thetas(t, gen, cfg.get("motion_fg", {}), aspect), size)
    if chance(gen, cfg.get("p_motion", 0.0)):
        bgr = warp(bgr, motion_thetas(t, gen, cfg.get("motion_bg", {}), aspect), size)
    if chance(gen, cfg.get("p_flip", 0.0)):
        fg = fg.flip(-1)
    if chance(gen, cfg.get("p_flip", 0.0)):
        bgr = bgr.flip(-1)
    fgr, pha = fg[:, :3].clamp(0, 1), fg[:, 3:].clamp(0, 1)
    if chance(gen, cfg.get("p_color", 0.0)):
        fgr = color_jitter(fgr, gen, cfg.get("color", {}))
    if chance(gen, cfg.get("p_color", 0.0)):
        bgr = color_jitter(bgr, gen, cfg.get("color", {}))
    if chance(gen, cfg.get("p_grayscale", 0.0)):
        fgr, bgr = grayscale(fgr), grayscale(bgr)  # both layers, as a black-and-white camera would
    if chance(gen, cfg.get("p_sharpness", 0.0)):
        amount = uniform(gen, 0.0, cfg.get("sharpness", 1.0))
        fgr = (fgr + amount * (fgr - gaussian_blur(fgr, 1.0))).clamp(0, 1)
    if chance(gen, cfg.get("p_blur", 0.0)):
        sigma = uniform(gen, 0.1, cfg.get("blur_sigma", 1.5))
        fgr, pha = gaussian_blur(fgr, sigma), gaussian_blur(pha, sigma)  # defocus blurs colour and alpha alike
    if chance(gen, cfg.get("p_blur", 0.0)):
        bgr = gaussian_blur(bgr, uniform(gen, 0.1, cfg.get("blur_sigma", 1.5) * 2))
    if chance(gen, cfg.get("p_noise", 0.0)):
        std = uniform(gen, 0.0, cfg.get("noise_std", 0.03))
        fgr = (fgr + std * torch.randn(fgr.shape, generator=gen)).clamp(0, 1)
        bgr = (bgr + std * torch.randn(bgr.shape, generator=gen)).clamp(0, 1)
    if chance(gen, cfg.get("p_pause", 0.0)):
        fgr, pha = pause([fgr, pha], gen)
    return fgr.contiguous(), pha.contiguous(), bgr.contiguous()
