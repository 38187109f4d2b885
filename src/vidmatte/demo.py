"""The built-in demo input: a short clip synthesised at run time from a public-domain photo of a person.

The photo ships inside a dependency (matplotlib's ``grace_hopper.jpg``, a US Navy portrait; or scikit-image's
``astronaut.png`` when present), so the demo needs no data from the user and nothing from the network.
A slow, smooth camera move (pan + zoom) over the photo makes the subject move in frame, which exercises the
recurrent state the way real footage does.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from .errors import InputError

SIZE = 448  # square frames: the portrait photos keep their subject whole
FRAMES = 48
FPS = 24


def find_sample_photo() -> Path:
    for package, relative in (("matplotlib", "mpl-data/sample_data/grace_hopper.jpg"),
                              ("skimage", "data/astronaut.png")):
        spec = importlib.util.find_spec(package)
        if spec and spec.submodule_search_locations:
            candidate = Path(list(spec.submodule_search_locations)[0]) / relative
            if candidate.exists():
                return candidate
    raise InputError("no sample photo found: the demo uses matplotlib's grace_hopper.jpg (pip install matplotlib)")


def _ease(t: float) -> float:
    return 0.5 - 0.5 * np.cos(np.pi * t)


def synthesise_frames(photo: np.ndarray, frames: int = FRAMES, size: int = SIZE) -> list[np.ndarray]:
    """uint8 RGB photo -> ``frames`` uint8 [size,size,3] views: a crop window that zooms in and drifts sideways."""
    import cv2

    h, w = photo.shape[:2]
    side = min(h, w)
    out = []
    for i in range(frames):
        t = _ease(i / max(frames - 1, 1))
        crop = side * (1.0 - 0.18 * t)  # zoom in by 18 %
        cx = w / 2 + (0.5 - t) * (w - crop) * 0.9  # drift across the free width
        cy = h / 2 + (side - crop) * 0.25  # and a little downwards
        affine = np.float32([[size / crop, 0, size / 2 - cx * size / crop],
                             [0, size / crop, size / 2 - cy * size / crop]])
        out.append(cv2.warpAffine(photo, affine, (size, size), flags=cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_REFLECT))
    return out


def gradient_background(size: int = SIZE) -> np.ndarray:
    """A soft blue-violet studio gradient, so the composition reads as 'new background' at a glance."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    top, bottom = np.array([40, 90, 170], np.float32), np.array([150, 60, 140], np.float32)
    image = top * (1 - y[..., None]) + bottom * y[..., None]
    image += 25 * np.exp(-((x - 0.7) ** 2 + (y - 0.3) ** 2) / 0.05)[..., None]
    return np.clip(image, 0, 255).astype(np.uint8)


def write_clip(path: Path, frames: list[np.ndarray], fps: int = FPS) -> None:
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = frames[0].shape[1], frames[0].shape[0]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "16", "preset": "fast"}
        for image in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode(None))
