"""The full-resolution half of RVM's deep guided filter, fused with what users want from it.

RVM runs its network on a small copy of the frame and ends with a guided filter: per pixel, a linear map
``out = A * x + b`` whose coefficients A, b (4 channels each: R, G, B and alpha) are computed at low resolution and
bilinearly upsampled to the frame. In the official ONNX graph that last step is a chain of full-resolution
operators (two Resizes of 4 channels, ReduceMean, Concat, Mul, Add, Split, Add, Clip): about a third of the
model's time at 1080p, plus the float copy of the whole frame it needs as input. Here the same arithmetic runs as
one pass over the uint8 frame that writes the composition (and/or alpha and foreground) directly, without any
full-size float intermediate. The results equal the official graph's within float rounding (tests/test_rvm_tail.py).

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
    Computed in float32 like ORT. Cached, so the arrays are read-only.
    """
    x = np.arange(out_len, dtype=np.float32)
    if out_len > 1:
        source = (x + np.float32(0.5)) / np.float32(scale) - np.float32(0.5)
    else:
        source = np.zeros(1, np.float32)
    source = np.clip(source, 0, in_len - 1).astype(np.float32)
    first = np.minimum(source.astype(np.int32), in_len - 1)
    second = np.minimum(first + 1, in_len - 1).astype(np.int32)
    weight = (source - first).astype(np.float32)
    for array in (first, second, weight):
        array.setflags(write=False)
    return first, second, weight


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
    """float32 [8,h,w] -> [8,h,W]: each low-res row upsampled along x (rows are blended later, per output row).

    Upsampling x first touches h rows instead of H, a quarter of the work at ratio 0.25. OpenCV's float bilinear
    resize uses the same half-pixel rule as ORT's ``pytorch_half_pixel`` (equal to float rounding) and is ~3x
    faster than a gather loop; with the 8 planes stacked as one tall image, the vertical scale is exactly 1.
    """
    import cv2

    planes, h, w = coefficients.shape
    if w == 1:  # nothing to interpolate (OpenCV would too, but say it plainly)
        return np.repeat(coefficients, width, axis=2)
    wide = cv2.resize(coefficients.reshape(planes * h, w), (width, planes * h), interpolation=cv2.INTER_LINEAR)
    return wide.reshape(planes, h, width)


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
    import cv2

    height, width = frame.shape[:2]
    if composition and background is None:
        raise ValueError("a composition needs a background")
    if composition and background.shape not in ((height, width, 3), (1, 1, 3)):
        # The kernel indexes the background by the frame's coordinates: another size would read out of bounds.
        raise ValueError(f"background must be [{height},{width},3] or [1,1,3], got {list(background.shape)}")

    def planes(wanted: bool, count: int, dtype) -> np.ndarray:
        return np.empty((count, height, width) if wanted else (count, 0, 0), dtype)

    # Planar in and out: per-channel rows are contiguous, which lets LLVM vectorise the kernel (2.8 vs 12.7 ms a
    # 1080p composition); splitting and merging the interleaved pictures costs ~1 ms each with OpenCV.
    out = {"composition": planes(composition, 3, np.uint8), "foreground_u8": planes(foreground_u8, 3, np.uint8),
           "foreground": planes(foreground, 3, np.float32), "alpha": planes(alpha, 1, np.float32),
           "alpha_u8": planes(alpha_u8, 1, np.uint8)}
    under = np.zeros((3, 1, 1), np.uint8)
    if composition:
        under = np.ascontiguousarray(background.reshape(1, 1, 3).transpose(2, 0, 1)) if background.size == 3 \
            else np.stack(cv2.split(background))
    h = coefficients.shape[1]
    rows = taps(h, height, float(np.float32(height) / np.float32(h)))
    _apply(*cv2.split(frame), widen(coefficients, width), *rows, under, *out.values())
    merged = {}
    for name, array in out.items():
        if array.size:
            merged[name] = array[0] if len(array) == 1 else cv2.merge(list(array))
    return merged


@_kernel
def _at(wide, j, i0, i1, t, x):
    """Coefficient j at column x of the current output row: a blend of low-res rows i0 and i1."""
    return wide[j, i0, x] + (wide[j, i1, x] - wide[j, i0, x]) * t


@_kernel
def _apply(red, green, blue, wide, y0, y1, wy, under, composition, foreground_u8, foreground, alpha, alpha_u8):
    """red, green, blue uint8 [H,W]; wide [8,h,W]; under uint8 [3,H,W] or [3,1,1] (the background);
    outputs planar [C,H,W], or empty when not wanted."""
    width = red.shape[1]
    inv, one, zero, half = np.float32(1 / 255), np.float32(1), np.float32(0), np.float32(0.5)
    third, full = np.float32(1 / 3), np.float32(255)
    fgr = np.empty((3, width), np.float32)  # this row's foreground, 0..255
    bg = np.empty((3, width), np.float32)
    a = np.empty(width, np.float32)
    for y in range(red.shape[0]):
        i0, i1, t = y0[y], y1[y], wy[y]
        for x in range(width):
            r, g, b = np.float32(red[y, x]) * inv, np.float32(green[y, x]) * inv, np.float32(blue[y, x]) * inv
            a_mean, b_mean = _at(wide, 3, i0, i1, t, x), _at(wide, 7, i0, i1, t, x)
            a[x] = min(max(a_mean * ((r + g + b) * third) + b_mean, zero), one)
            # RVM's graph adds the frame back to the filtered residual before clipping: fgr = A*x + b + x.
            # (Written out per channel: a loop over (channel, value) pairs keeps LLVM from vectorising.)
            fgr[0, x] = min(max(_at(wide, 0, i0, i1, t, x) * r + _at(wide, 4, i0, i1, t, x) + r, zero), one) * full
            fgr[1, x] = min(max(_at(wide, 1, i0, i1, t, x) * g + _at(wide, 5, i0, i1, t, x) + g, zero), one) * full
            fgr[2, x] = min(max(_at(wide, 2, i0, i1, t, x) * b + _at(wide, 6, i0, i1, t, x) + b, zero), one) * full
        if alpha.shape[1]:
            for x in range(width):
                alpha[0, y, x] = a[x]
        if alpha_u8.shape[1]:
            for x in range(width):
                alpha_u8[0, y, x] = np.uint8(np.int32(a[x] * full + half))
        if foreground.shape[1]:
            for c in range(3):
                for x in range(width):
                    foreground[c, y, x] = fgr[c, x] * inv
        if foreground_u8.shape[1]:
            for c in range(3):
                for x in range(width):
                    foreground_u8[c, y, x] = np.uint8(np.int32(fgr[c, x] + half))
        if composition.shape[1]:
            by = 0 if under.shape[1] == 1 else y
            for c in range(3):
                if under.shape[2] == 1:
                    for x in range(width):
                        bg[c, x] = np.float32(under[c, by, 0])
                else:
                    for x in range(width):
                        bg[c, x] = np.float32(under[c, by, x])
                for x in range(width):
                    composition[c, y, x] = np.uint8(np.int32((fgr[c, x] - bg[c, x]) * a[x] + bg[c, x] + half))
