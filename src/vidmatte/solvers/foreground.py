"""Multi-level foreground estimation (Germer, Uelwer, Conrad, Harmeling 2020), numpy only.

Given an image I and its alpha, find F and B with I = alpha F + (1 - alpha) B that are smooth where alpha is
smooth. The cost per pixel i is (alpha_i F_i + (1 - alpha_i) B_i - I_i)^2 plus, for each 4-neighbour j,
(eps_r + omega |alpha_i - alpha_j|) (|F_i - F_j|^2 + |B_i - B_j|^2). It is solved coarse to fine: at every level
F and B are upsampled from the previous level and refined by a few sweeps of per-pixel 2x2 solves (Jacobi sweeps
here, so that numpy can do a whole image at once; the paper sweeps in place).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from .fill import push_pull


def _neighbours(a: np.ndarray) -> list[np.ndarray]:
    """The 4 neighbours of every pixel (edge pixels see themselves)."""
    p = np.pad(a, [(1, 1), (1, 1)] + [(0, 0)] * (a.ndim - 2), mode="edge")
    return [p[:-2, 1:-1], p[2:, 1:-1], p[1:-1, :-2], p[1:-1, 2:]]


def _resize(a: np.ndarray, h: int, w: int, interpolation: int) -> np.ndarray:
    out = cv2.resize(a, (w, h), interpolation=interpolation)
    return out.reshape(h, w, *a.shape[2:])


def estimate_foreground(image: np.ndarray, alpha: np.ndarray, eps_r: float = 5e-3, omega: float = 1e-1,
                        small_size: int = 32, small_iterations: int = 10,
                        big_iterations: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """image float [H,W,3] 0..1 (or uint8), alpha [H,W] 0..1 -> (foreground, background), float32 [H,W,3] 0..1."""
    if image.dtype == np.uint8:
        image = image.astype(np.float32) / 255
    image = image.astype(np.float32)
    alpha = alpha.astype(np.float32)
    h0, w0 = alpha.shape
    if image.shape[:2] != (h0, w0):
        raise ValueError(f"image {image.shape[:2]} and alpha {alpha.shape} sizes differ")
    levels = max(1, math.ceil(math.log2(max(h0, w0))))
    fg = np.broadcast_to(image.reshape(-1, 3).mean(0), (1, 1, 3)).astype(np.float32)
    bg = fg.copy()
    for level in range(levels + 1):
        h = round(h0 ** (level / levels))
        w = round(w0 ** (level / levels))
        img = _resize(image, h, w, cv2.INTER_LINEAR)
        a = _resize(alpha, h, w, cv2.INTER_LINEAR)
        fg = _resize(fg, h, w, cv2.INTER_NEAREST)
        bg = _resize(bg, h, w, cv2.INTER_NEAREST)
        weights = [eps_r + omega * np.abs(a - n) for n in _neighbours(a)]
        wsum = sum(weights)
        a11 = a * a + wsum
        a12 = a * (1 - a)
        a22 = (1 - a) ** 2 + wsum
        det = a11 * a22 - a12 * a12
        iterations = small_iterations if min(h, w) <= small_size else big_iterations
        for _ in range(iterations):
            b1 = a[..., None] * img + sum(wj[..., None] * n for wj, n in zip(weights, _neighbours(fg)))
            b2 = (1 - a)[..., None] * img + sum(wj[..., None] * n for wj, n in zip(weights, _neighbours(bg)))
            fg = np.clip((a22[..., None] * b1 - a12[..., None] * b2) / det[..., None], 0, 1)
            bg = np.clip((a11[..., None] * b2 - a12[..., None] * b1) / det[..., None], 0, 1)
    return fg.astype(np.float32), bg.astype(np.float32)


DESPILL_SOLID = 0.9  # alpha above which a pixel is the subject's own colour, left as it is
REFERENCE_SOLID = 0.95  # the subject's own colours, which a fringe may share, are read where alpha is above this
REFERENCE_SIDE = 160  # ... at this longer side (a smooth field: where the subject's nearest solid parts are)


def despill(foreground: np.ndarray, alpha: np.ndarray, key: np.ndarray) -> np.ndarray:
    """Classical despill: where the screen's channel (green for a green screen, the key's strongest) exceeds the
    larger of the other two, the excess is the screen's light and is taken out (the classical limit, g <= max(r,
    b): a neutral fringe, grey or white hair, comes back exactly; the light is not given back to the other channels,
    which would turn a green fringe magenta). Only on the subject's fractional pixels (alpha below DESPILL_SOLID,
    fading to none at 1): hair, motion blur and edges catch the screen's light. A fringe of something that is itself
    of the screen's hue (a green shirt's edge) keeps the excess its solid neighbours have: what is removed is the
    excess beyond the nearest solid colours' (``solid_excess``), so the shirt's edge does not turn magenta.
    foreground float32 [H,W,3] 0..1, alpha [H,W], key RGB [3] -> float32 [H,W,3]."""
    k = int(np.argmax(key))
    out = foreground.astype(np.float32, copy=True)
    excess = key_excess(out, key)
    weight = np.clip((1 - alpha) / (1 - DESPILL_SOLID), 0, 1) * (alpha > 0)
    removed = np.maximum(excess - solid_excess(excess, alpha), 0) * weight
    out[..., k] -= removed
    return np.clip(out, 0, 1)


def key_excess(colours: np.ndarray, key: np.ndarray) -> np.ndarray:
    """float32 [H,W]: how far the screen's channel (the key's strongest) exceeds the larger of the other two."""
    k = int(np.argmax(key))
    others = [c for c in range(3) if c != k]
    return np.maximum(colours[..., k] - np.maximum(colours[..., others[0]], colours[..., others[1]]), 0)


def solid_excess(excess: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Per pixel, the key-channel excess of the subject's nearest solid pixels (float32 [H,W]): their excess spread
    smoothly (push-pull at REFERENCE_SIDE) over the rest; zeros when nothing is solid."""
    solid = (alpha > REFERENCE_SOLID).astype(np.float32)
    if not solid.any():
        return np.zeros_like(excess)
    h, w = alpha.shape
    scale = min(1.0, REFERENCE_SIDE / max(h, w))
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    weight = cv2.resize(solid, size, interpolation=cv2.INTER_AREA)
    weighted = cv2.resize(excess * solid, size, interpolation=cv2.INTER_AREA)
    filled = push_pull(np.repeat(weighted[..., None], 3, axis=2), weight)[..., 0]
    return cv2.resize(filled.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
