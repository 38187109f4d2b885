"""Generated green and blue screens for benchmarks and tests: uneven light, a crease, a shadow, and spill.

A studio screen is never one colour: the light falls off towards its edges and corners, the cloth folds (a crease
is a narrow band darker on one side and lit a little on the other) and the subject or the stands cast soft shadows
on it. Light on the subject bounced from the screen (spill) tints its edges towards the screen's colour where they
are thin (hair, fringes): that tint is what foreground decontamination must remove.
"""

from __future__ import annotations

import numpy as np

SCREEN_COLOURS = {"green": (0.22, 0.66, 0.27), "blue": (0.10, 0.24, 0.72)}  # lit paint, not the nominal key


def screen_background(height: int, width: int, colour: str | tuple, rng: np.random.Generator,
                      crease: bool = True, shadow: bool = True, light: float = 0.35) -> np.ndarray:
    """float32 [H,W,3] 0..1: a screen of ``colour`` (a SCREEN_COLOURS name or RGB) lit unevenly (the brightness
    varies by about ``light`` either way), with a shaded crease and a soft shadow when asked."""
    rgb = np.asarray(SCREEN_COLOURS.get(colour, colour) if isinstance(colour, str) else colour, np.float32)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    u, v = x / width, y / height
    cx, cy = rng.uniform(0.2, 0.8), rng.uniform(0.1, 0.5)  # the key light's centre
    falloff = np.exp(-((u - cx) ** 2 + (v - cy) ** 2) / (2 * 0.45 ** 2))
    tilt = rng.uniform(-1, 1) * (u - 0.5) + rng.uniform(-0.5, 0.5) * (v - 0.5)
    lit = 1 - light + light * (falloff + 0.5 * tilt)
    if crease:  # a fold from top to bottom, across the frame at an angle: shade on one side, a highlight beside
        x0, slope = rng.uniform(0.25, 0.75), rng.uniform(-0.3, 0.3)
        d = (u - x0 - slope * (v - 0.5)) * width  # signed px from the fold
        sigma = max(2.0, 0.012 * width)
        lit = lit * (1 - 0.35 * np.exp(-((d + sigma) / sigma) ** 2) + 0.12 * np.exp(-((d - 1.5 * sigma) / sigma) ** 2))
    if shadow:  # a soft shadow low on the screen (a stand, the subject's own)
        sx, sy = rng.uniform(0.2, 0.8), rng.uniform(0.7, 0.95)
        blob = np.exp(-(((u - sx) / 0.18) ** 2 + ((v - sy) / 0.12) ** 2))
        lit = lit * (1 - 0.45 * blob)
    return np.clip(rgb * lit[..., None], 0, 1).astype(np.float32)


def spill(foreground: np.ndarray, alpha: np.ndarray, screen: np.ndarray, strength: float = 0.5) -> np.ndarray:
    """The foreground as a camera sees it in front of the screen: tinted towards the screen's colour (at the
    foreground's brightness) where alpha is fractional, ``strength`` (1 - alpha) of the way. float32 [H,W,3]."""
    a = alpha[..., None]
    brightness = foreground.mean(axis=2, keepdims=True)
    tint = screen / np.maximum(screen.mean(axis=2, keepdims=True), 1e-3) * brightness
    t = strength * (1 - a) * (a > 0)
    return np.clip(foreground + t * (tint - foreground), 0, 1).astype(np.float32)
