"""Low-resolution pictures for the page's timeline: the input's frames once at upload, alpha and composition as a
run writes them (a ``CallbackSink`` beside the file outputs), and propagated guidance before a run.

The page scrubs and plays these JPEGs; painting happens on the input preview and is scaled to the frame's size on
the server (nearest neighbour, so labels survive).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import cv2
import numpy as np

from ..io.atomic import write_atomic
from ..outputs import CallbackSink

PREVIEW_SIDE = 640  # the longer side of the timeline's pictures
JPEG_QUALITY = 85


def preview_size(width: int, height: int) -> tuple[int, int]:
    """(width, height) of the previews: the longer side at most PREVIEW_SIDE, never upscaled."""
    scale = min(1.0, PREVIEW_SIDE / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def shrink(image: np.ndarray, size: tuple[int, int], interpolation=cv2.INTER_AREA) -> np.ndarray:
    if (image.shape[1], image.shape[0]) == size:
        return image
    return cv2.resize(image, size, interpolation=interpolation)


def write_jpeg(path: Path, rgb_or_grey: np.ndarray) -> None:
    image = rgb_or_grey if rgb_or_grey.ndim == 2 else cv2.cvtColor(rgb_or_grey, cv2.COLOR_RGB2BGR)
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise OSError(f"cannot encode {path.name}")
    # A temporary name first: the page is told how many pictures exist, and must never read half of one.
    write_atomic(path, data.tobytes())


def count_pictures(folder: Path) -> int:
    """The complete pictures in a preview folder (temporary names start with a dot); 0 if there is none."""
    try:
        return sum(1 for entry in os.scandir(folder) if not entry.name.startswith("."))
    except FileNotFoundError:
        return 0


def write_png(path: Path, image: np.ndarray) -> None:
    image = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    if not cv2.imwrite(str(path), image):
        raise OSError(f"cannot write {path.name}")


def write_input_previews(source, folder: Path, size: tuple[int, int]) -> int:
    """Every frame of ``source`` (a ``FrameSource``) as ``folder/00000.jpg...`` at ``size``; returns the count."""
    folder.mkdir(parents=True, exist_ok=True)
    count = 0
    frames = source.frames()
    try:
        for frame in frames:
            write_jpeg(folder / f"{frame.index:05d}.jpg", shrink(frame.image, size))
            count += 1
    finally:
        getattr(frames, "close", lambda: None)()
    return count


def run_preview_sink(folder: Path, size: tuple[int, int]) -> CallbackSink:
    """A sink writing each frame's alpha and composition as ``folder/{alpha,composition}/NNNNN.jpg`` at ``size``
    (what an earlier run left in ``folder`` is removed first)."""
    folders = {kind: folder / kind for kind in ("alpha", "composition")}
    for path in folders.values():
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
    # Frames are written in order, composition after alpha: the composition pictures count the frames shown.

    def write(index: int, pictures) -> None:
        write_jpeg(folders["alpha"] / f"{index:05d}.jpg", shrink(pictures.alpha_u8, size))
        write_jpeg(folders["composition"] / f"{index:05d}.jpg", shrink(pictures.composition, size))

    return CallbackSink(write, kinds=("alpha", "composition"))
