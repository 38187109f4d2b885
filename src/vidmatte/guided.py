"""The full-resolution half of RVM's deep guided filter, fused with what users want from it.

RVM runs its network on a small copy of the frame and ends with a guided filter: per pixel, a linear map
``out = A * x + b`` whose coefficients A, b (4 channels each: R, G, B and alpha) are computed at low resolution and
bilinearly upsampled to the frame. In the official ONNX graph that last step is a chain of full-resolution
operators (two Resizes of 4 channels, ReduceMean, Concat, Mul, Add, Split, Add, Clip): about a third of the
model's time at 1080p, plus the float copy of the whole frame it needs as input. Here the same arithmetic runs as
one pass over the uint8 frame that writes the composition (and/or alpha and foreground) directly, without any
full-size float intermediate. The results equal the official graph's within float rounding (tests/test_guided.py).

Resampling follows ONNX Runtime's ``Resize`` (linear, ``pytorch_half_pixel``) exactly, so the small frame fed to
the network and the upsampled coefficients match the official graph's.
"""

from __future__ import annotations

from functools import lru_cache

import numba
import numpy as np

# Compiled kernels are cached on disk (next to this file, or numba's user cache when that is read-only), so only
# the first run on a machine pays the few seconds of compilation. nogil: they run beside ONNX Runtime and the
# decode/encode threads. fastmath lets LLVM vectorise; the error it adds is ~1e-7, far below 1/255.
_kernel = numba.njit(nogil=True, cache=True, fastmath=True)

_EMPTY_RGB = np.empty((0, 0, 3), np.uint8)
_EMPTY_RGB_F = np.empty((0, 0, 3), np.float32)
_EMPTY_ALPHA = np.empty((0, 0), np.float32)
_EMPTY_ALPHA_U8 = np.empty((0, 0), np.uint8)


@lru_cache(maxsize=32)
def taps(in_len: int, out_len: int, scale: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each output index: the two source indices and the weight of the second, as ORT's linear Resize.

    ``pytorch_half_pixel``: source = (x + 0.5) / scale - 0.5 (0 for a length-1 output), clamped to the input.
    Computed in float32 like ORT, so the weights are bit-identical to the graph's.
    """
    x = np.arange(out_len, dtype=np.float32)
    if out_len > 1:
        source = (x + np.float32(0.5)) / np.float32(scale) - np.float32(0.5)
    else:
        source = np.zeros(1, np.float32)
    source = np.clip(source, 0, in_len - 1).astype(np.float32)
    first = np.minimum(source.astype(np.int64), in_len - 1)
    second = np.minimum(first + 1, in_len - 1)
    weight = (source - first).astype(np.float32)
    for array in (first, second, weight):
        array.setflags(write=False)
    return first.astype(np.int32), second.astype(np.int32), weight


def small_size(height: int, width: int, ratio: float) -> tuple[int, int]:
    """The network's input size for a frame, as the graph computes it (floor of size * float32 ratio)."""
    r = np.float32(ratio)
    return max(1, int(np.float32(height) * r)), max(1, int(np.float32(width) * r))


def shrink(frame: np.ndarray, ratio: float) -> np.ndarray:
    """uint8 [H,W,3] RGB -> float32 [1,3,h,w] 0..1: the graph's input Resize, without a full-size float copy."""
    height, width = frame.shape[:2]
    h, w = small_size(height, width, ratio)
    out = np.empty((1, 3, h, w), np.float32)
    _shrink(frame, *taps(height, h, float(np.float32(ratio))), *taps(width, w, float(np.float32(ratio))), out[0])
    return out


@_kernel
def _shrink(frame, y0, y1, wy, x0, x1, wx, out):
    h, w = out.shape[1], out.shape[2]
    row = np.empty((3, frame.shape[1]), np.float32)
    inv = np.float32(1 / 255)
    for y in range(h):
        a, b, t = y0[y], y1[y], wy[y]
        for x in range(frame.shape[1]):
            for c in range(3):
                top = np.float32(frame[a, x, c])
                row[c, x] = top + (np.float32(frame[b, x, c]) - top) * t
        for c in range(3):
            for x in range(w):
                left = row[c, x0[x]]
                out[c, y, x] = (left + (row[c, x1[x]] - left) * wx[x]) * inv


def widen(coefficients: np.ndarray, width: int) -> np.ndarray:
    """float32 [8,h,w] -> [h,8,W]: each low-res row upsampled along x (rows are blended later, per output row).

    Upsampling x first touches h rows instead of H, a quarter of the work at ratio 0.25.
    """
    _, h, w = coefficients.shape
    out = np.empty((h, 8, width), np.float32)
    first, second, weight = taps(w, width, float(np.float32(width) / np.float32(w)))
    _widen(coefficients, first, second, weight, out)
    return out


@_kernel
def _widen(coefficients, x0, x1, wx, out):
    for i in range(coefficients.shape[1]):
        for j in range(8):
            for x in range(out.shape[2]):
                left = coefficients[j, i, x0[x]]
                out[i, j, x] = left + (coefficients[j, i, x1[x]] - left) * wx[x]


def apply(frame: np.ndarray, coefficients: np.ndarray, *, background: np.ndarray | None = None,
          composition: bool = False, foreground_u8: bool = False, foreground: bool = False,
          alpha: bool = False, alpha_u8: bool = False) -> dict[str, np.ndarray]:
    """Apply guided-filter coefficients to a full-size frame and produce only the pictures asked for.

    frame: uint8 [H,W,3] RGB. coefficients: float32 [8,h,w], A (R,G,B,mean) then b, as the graph computes them.
    background: uint8 [H,W,3] or [1,1,3] (a solid colour), needed for ``composition``.
    Returns a dict with the requested keys: composition/foreground_u8 uint8 [H,W,3], foreground float32 [H,W,3],
    alpha float32 [H,W], alpha_u8 uint8 [H,W]. Foreground and alpha are clipped to 0..1 as in the graph; the
    composition is ``fgr * a + bg * (1 - a)`` rounded from float, not from the rounded foreground.
    """
    height, width = frame.shape[:2]
    if composition and background is None:
        raise ValueError("a composition needs a background")

    def out(wanted: bool, shape: tuple, dtype, empty: np.ndarray) -> np.ndarray:
        return np.empty(shape, dtype) if wanted else empty

    results = {
        "composition": out(composition, (height, width, 3), np.uint8, _EMPTY_RGB),
        "foreground_u8": out(foreground_u8, (height, width, 3), np.uint8, _EMPTY_RGB),
        "foreground": out(foreground, (height, width, 3), np.float32, _EMPTY_RGB_F),
        "alpha": out(alpha, (height, width), np.float32, _EMPTY_ALPHA),
        "alpha_u8": out(alpha_u8, (height, width), np.uint8, _EMPTY_ALPHA_U8),
    }
    h = coefficients.shape[1]
    rows = taps(h, height, float(np.float32(height) / np.float32(h)))
    bg = background if background is not None else _EMPTY_RGB
    _apply(frame, widen(coefficients, width), *rows, bg, *results.values())
    return {name: array for name, array in results.items() if array.size}


@_kernel
def _apply(frame, wide, y0, y1, wy, bg, composition, foreground_u8, foreground, alpha, alpha_u8):
    height, width = frame.shape[0], frame.shape[1]
    k = np.empty((8, width), np.float32)  # this row's coefficients, then its fgr (x255) and alpha
    inv, one, zero, half = np.float32(1 / 255), np.float32(1), np.float32(0), np.float32(0.5)
    for y in range(height):
        top, bottom, t = wide[y0[y]], wide[y1[y]], wy[y]
        for j in range(8):
            for x in range(width):
                k[j, x] = top[j, x] + (bottom[j, x] - top[j, x]) * t
        for x in range(width):
            r, g, b = frame[y, x, 0] * inv, frame[y, x, 1] * inv, frame[y, x, 2] * inv
            mean = (r + g + b) / np.float32(3)
            a = min(max(k[3, x] * mean + k[7, x], zero), one)
            # RVM's graph adds the frame back to the filtered residual before clipping: fgr = A*x + b + x
            k[0, x] = min(max(k[0, x] * r + k[4, x] + r, zero), one) * np.float32(255)
            k[1, x] = min(max(k[1, x] * g + k[5, x] + g, zero), one) * np.float32(255)
            k[2, x] = min(max(k[2, x] * b + k[6, x] + b, zero), one) * np.float32(255)
            k[3, x] = a
        if alpha.shape[0]:
            for x in range(width):
                alpha[y, x] = k[3, x]
        if alpha_u8.shape[0]:
            for x in range(width):
                alpha_u8[y, x] = np.uint8(k[3, x] * np.float32(255) + half)
        if foreground.shape[0]:
            for x in range(width):
                for c in range(3):
                    foreground[y, x, c] = k[c, x] * inv
        if foreground_u8.shape[0]:
            for x in range(width):
                for c in range(3):
                    foreground_u8[y, x, c] = np.uint8(k[c, x] + half)
        if composition.shape[0]:
            by = 0 if bg.shape[0] == 1 else y
            if bg.shape[1] == 1:
                g0, g1, g2 = np.float32(bg[by, 0, 0]), np.float32(bg[by, 0, 1]), np.float32(bg[by, 0, 2])
                for x in range(width):
                    a = k[3, x]
                    composition[y, x, 0] = np.uint8((k[0, x] - g0) * a + g0 + half)
                    composition[y, x, 1] = np.uint8((k[1, x] - g1) * a + g1 + half)
                    composition[y, x, 2] = np.uint8((k[2, x] - g2) * a + g2 + half)
            else:
                for x in range(width):
                    a = k[3, x]
                    for c in range(3):
                        under = np.float32(bg[by, x, c])
                        composition[y, x, c] = np.uint8((k[c, x] - under) * a + under + half)
