"""Still image files into uint8 (or 16-bit) arrays: the one place vidmatte reads an image with OpenCV.

Three readings, each what some caller really needs:

- ``read_rgb``: [H,W,3] RGB, 8-bit, EXIF orientation applied, alpha dropped (frames, plates, backgrounds);
- ``read_gray``: [H,W] 8-bit, colour converted to luminance (trimaps, masks, scribbles);
- ``read_unchanged``: as stored, grey [H,W] or RGB/RGBA [H,W,3|4], 8 or 16 bit, no EXIF rotation (frames and alphas
  that must come back exactly as written).

Guidance images are read with PIL instead (``guidance.formats``, ``io.source``): they need a palette's indices.
"""

from __future__ import annotations

import os

import numpy as np

from ..errors import InputError

# What can be read as an image (by extension); a sequence's frames, backgrounds, datasets' files.
IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp"}


def read_rgb(path: str | os.PathLike, what: str = "image", error: type[Exception] = InputError) -> np.ndarray:
    import cv2

    return cv2.cvtColor(_decode(path, cv2.IMREAD_COLOR, what, error), cv2.COLOR_BGR2RGB)


def read_gray(path: str | os.PathLike, what: str = "image", error: type[Exception] = InputError) -> np.ndarray:
    import cv2

    return _decode(path, cv2.IMREAD_GRAYSCALE, what, error)


def read_unchanged(path: str | os.PathLike, what: str = "image", error: type[Exception] = InputError) -> np.ndarray:
    import cv2

    image = _decode(path, cv2.IMREAD_UNCHANGED, what, error)
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2RGBA if image.shape[2] == 4 else cv2.COLOR_BGR2RGB)
    return image


def _decode(path: str | os.PathLike, flags: int, what: str, error: type[Exception]) -> np.ndarray:
    """``error("cannot read {what} {path}")`` (``what`` may be empty) when the file cannot be read or decoded, with
    the system's reason when there is one."""
    import cv2

    subject = f"{what} {path}" if what else str(path)
    # Read the bytes ourselves: cv2.imread prints its own warning on stderr for files it cannot open, and gives no
    # reason. imdecode applies EXIF orientation as imread does.
    try:
        data = np.fromfile(path, np.uint8)
    except OSError as exc:
        raise error(f"cannot read {subject} ({exc.strerror or exc})") from None
    image = cv2.imdecode(data, flags) if data.size else None
    if image is None:
        raise error(f"cannot read {subject}")
    return image
