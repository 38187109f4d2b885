"""Turning (fgr, pha) into the pictures users asked for: composition over a background, alpha, foreground, RGBA.

Everything here works in uint8 with OpenCV's SIMD kernels: a float numpy composite of a 1080p frame costs about
27 ms, more than the whole per-frame budget beside the model.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from .errors import InputError, UsageError

# RVM's convert_video composites on this green; keeping it makes ported scripts produce the same pictures.
NAMED_COLOURS = {"green": (120, 255, 155), "black": (0, 0, 0), "white": (255, 255, 255)}


def alpha_to_u8(pha: np.ndarray) -> np.ndarray:
    """float [H,W] 0..1 -> uint8 [H,W] (rounded, saturated)."""
    import cv2

    return cv2.convertScaleAbs(pha, alpha=255.0)


def alpha_to_u16(pha: np.ndarray) -> np.ndarray:
    return np.clip(pha * 65535.0 + 0.5, 0, 65535).astype(np.uint16)


def planes_to_rgb_u8(chw: np.ndarray) -> np.ndarray:
    """float [3,H,W] 0..1 (the network's layout) -> uint8 [H,W,3] without a float HWC intermediate."""
    import cv2

    return cv2.merge([cv2.convertScaleAbs(plane, alpha=255.0) for plane in chw])


def composite(fgr: np.ndarray, alpha: np.ndarray, background: np.ndarray) -> np.ndarray:
    """fgr uint8 [H,W,3], alpha float32 [H,W] 0..1, background uint8 [H,W,3] -> uint8 [H,W,3] = fgr*a + bg*(1-a)."""
    import cv2

    return cv2.blendLinear(fgr, background, alpha, 1.0 - alpha)


def rgba(fgr: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Straight (un-premultiplied) RGBA uint8 [H,W,4], as PNG, ProRes 4444 and VP9 alpha expect."""
    import cv2

    return cv2.merge([*cv2.split(fgr), alpha])


class Background:
    """A background for the composition, already at the output size: ``frame(i)`` -> uint8 [H,W,3]."""

    def __init__(self, spec: str, width: int, height: int):
        self.width, self.height = width, height
        colour = parse_colour(spec)
        self._video = None
        self._colour = None if colour is None else np.array(colour, np.uint8).reshape(1, 1, 3)
        if colour is not None:
            self._still = np.empty((height, width, 3), np.uint8)
            self._still[:] = colour
        elif Path(spec).suffix.lower() in {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp"}:
            self._still = self._cover(_read_image(spec))
        elif Path(spec).exists():
            self._still = None
            self._video = _BackgroundVideo(spec, self._cover)
        else:
            raise UsageError(f"--background {spec!r} is not a colour (green, black, white, #RRGGBB) nor an existing "
                             "image or video")

    def frame(self, index: int) -> np.ndarray:
        return self._still if self._video is None else self._video.frame(index)

    def frame_or_colour(self, index: int) -> np.ndarray:
        """Like ``frame``, but a solid colour comes as one pixel, uint8 [1,1,3], for kernels that broadcast it."""
        if self._colour is not None:
            return self._colour
        return self.frame(index)

    def _cover(self, image: np.ndarray) -> np.ndarray:
        """Scale to cover the output (keep aspect ratio), centre-crop the excess."""
        import cv2

        h, w = image.shape[:2]
        scale = max(self.width / w, self.height / h)
        nw, nh = max(self.width, round(w * scale)), max(self.height, round(h * scale))
        resized = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        y, x = (nh - self.height) // 2, (nw - self.width) // 2
        return np.ascontiguousarray(resized[y:y + self.height, x:x + self.width])

    def close(self) -> None:
        if self._video is not None:
            self._video.close()


def parse_colour(spec: str) -> tuple[int, int, int] | None:
    if spec.lower() in NAMED_COLOURS:
        return NAMED_COLOURS[spec.lower()]
    if re.fullmatch(r"#[0-9a-fA-F]{6}", spec):
        return tuple(int(spec[i:i + 2], 16) for i in (1, 3, 5))
    if spec.startswith("#"):
        raise UsageError(f"bad colour {spec!r}; use #RRGGBB")
    return None


def _read_image(path: str) -> np.ndarray:
    import cv2

    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise InputError(f"cannot read background image {path}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


class _BackgroundVideo:
    """Frames of a background video, looped when the input is longer, decoded lazily (one frame ahead)."""

    def __init__(self, path: str, fit):
        from .io.readers import open_reader

        self._open = lambda: iter(open_reader(path))
        self._fit = fit
        self._frames = self._open()
        self._index = -1
        self._current = None
        self._path = path

    def frame(self, index: int) -> np.ndarray:
        while self._index < index:
            try:
                raw = next(self._frames)
            except StopIteration:
                if self._index < 0:
                    raise InputError(f"background video {self._path} has no frames") from None
                self._frames = self._open()  # loop
                raw = next(self._frames)
            self._current = self._fit(raw.image)
            self._index += 1
        return self._current

    def close(self) -> None:
        self._frames = iter(())
