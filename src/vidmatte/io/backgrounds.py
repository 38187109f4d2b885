"""Composition backgrounds: a colour, an image or a video, scaled to cover the output (I/O, not compositing)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..compose import parse_colour
from ..errors import InputError, UsageError
from .images import IMAGE_EXTENSIONS, read_rgb


def check_background(spec: str) -> None:
    """Refuse a --background that is neither a colour nor a readable file before any work starts."""
    if parse_colour(spec) is not None:
        return
    path = Path(spec).expanduser()
    if not path.exists():
        raise UsageError(f"--background {spec!r} is not a colour (green, black, white, #RRGGBB) nor an existing "
                         "image or video")
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise UsageError(f"--background {spec!r} cannot be read ({exc.strerror or exc})") from None
    if not path.is_file():
        raise UsageError(f"--background {spec!r} is a folder; give an image or a video")


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
        elif Path(spec).suffix.lower() in IMAGE_EXTENSIONS:
            self._still = self._cover(read_rgb(spec, "background image"))
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


class _BackgroundVideo:
    """Frames of a background video, looped when the input is longer, decoded lazily (one frame ahead)."""

    def __init__(self, path: str, fit):
        from .readers import open_reader

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
