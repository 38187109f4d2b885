"""Guidance made on the page: a first mask in one gesture, keyframes, and a look at the propagation before a run.

- click a person: RVM's alpha of that frame (a still frame, repeated so the recurrent state settles), and the
  connected component of alpha > 0.5 under the click;
- drag a box or scribble: OpenCV's GrabCut (no weights), started from the box or from the scribbled labels;
- every first mask becomes a trimap with the same unknown band ``vidmatte guided`` gives a mask
  (``guidance.formats.trimap_from_mask``, ``default_band``), which the brushes then refine.
A keyframe is stored per subject (object 1, 2...) as the image the page sent (a mask or a trimap), scaled to the
frame's size with nearest neighbour, and read back exactly as ``vidmatte guided --keyframe INDEX:PATH`` reads a file.
"""

from __future__ import annotations

import threading
from pathlib import Path

import cv2
import numpy as np

from ..errors import GuidanceError, InputError
from ..guidance.formats import default_band, read_guidance, trimap_from_mask
from ..guidance.keyframes import Keyframes, load_keyframes
from ..io.atomic import atomic_path
from .previews import write_png

GRABCUT_ITERATIONS = 5
GRABCUT_SIDE = 480  # GrabCut runs on the frame scaled to this longer side (its cost grows with the pixels)
PROPAGATION_PREVIEW_FRAMES = 12
PERSON_STEPS = 3  # RVM on a still frame settles within a few steps (as the guided matter's prior check does)


MAX_OBJECTS = 8  # subjects one job may mark (each has its own colour on the page)


def keyframe_path(folder: Path, index: int, object_id: int = 1) -> Path:
    """Object 1's keyframes keep the name jobs had before the page marked several subjects (``00012.png``); a
    further object's are named as ``vidmatte guided --keyframes`` names per-object masks (``00012_2.png``)."""
    name = f"{index:05d}.png" if object_id == 1 else f"{index:05d}_{object_id}.png"
    return folder / "keyframes" / name


def job_objects(job: dict) -> dict[int, list[int]]:
    """{object id: its keyframes} of a job row, object 1 first (a job stored before several subjects: {1: ...})."""
    more = {int(k): list(v) for k, v in (job.get("objects") or {}).items()}
    return {1: list(job["keyframes"]), **dict(sorted(more.items()))}


def save_keyframe(folder: Path, index: int, image_path: Path, frame_size: tuple[int, int],
                  object_id: int = 1) -> np.ndarray:
    """Read the guidance image at ``image_path`` (a mask or trimap, at the frame's size or a scale of it) exactly as
    ``vidmatte guided`` reads a keyframe file, and store its trimap as object ``object_id``'s keyframe ``index``;
    returns the trimap. ``GuidanceError`` when it cannot guide (nothing is stored then)."""
    trimap, _ = read_guidance(image_path, frame_size)
    target = keyframe_path(folder, index, object_id)
    target.parent.mkdir(exist_ok=True)
    with atomic_path(target) as partial:
        write_png(partial, trimap)
    return trimap


def read_keyframes(folder: Path, indices: list[int], frame_size: tuple[int, int],
                   frames: int | None = None, object_id: int = 1) -> Keyframes:
    """An object's stored keyframes, read as the CLI reads ``--keyframe INDEX:PATH``."""
    specs = [f"{index}:{keyframe_path(folder, index, object_id)}" for index in indices]
    return load_keyframes(specs, None, frames, frame_size)[0]


# --- first masks -------------------------------------------------------------------------------------------
def grabcut_box(frame: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """bool [H,W] object inside ``box`` (x0, y0, x1, y1 in frame pixels)."""
    h, w = frame.shape[:2]
    x0, y0, x1, y1 = _clip_box(box, w, h)
    scale = min(1.0, GRABCUT_SIDE / max(h, w))
    small = _scaled(frame, scale)
    rect = (int(x0 * scale), int(y0 * scale), max(1, int((x1 - x0) * scale)), max(1, int((y1 - y0) * scale)))
    mask = np.zeros(small.shape[:2], np.uint8)
    _grabcut(small, mask, rect, cv2.GC_INIT_WITH_RECT)
    return _full_size(mask, (w, h))


def grabcut_scribbles(frame: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """bool [H,W] object from scribbles: ``labels`` uint8 [H,W] 255 = object, 0 = background, else unmarked.
    Unmarked pixels inside the scribbles' bounding box (grown by a tenth) start as probably object."""
    h, w = frame.shape[:2]
    if not (labels == 255).any():
        raise GuidanceError("scribble over the object first (foreground brush)")
    scale = min(1.0, GRABCUT_SIDE / max(h, w))
    small, marks = _scaled(frame, scale), _scaled(labels, scale, cv2.INTER_NEAREST)
    ys, xs = np.nonzero(marks == 255)
    pad = max(2, int(0.1 * max(marks.shape)))
    mask = np.full(marks.shape, cv2.GC_BGD, np.uint8)
    mask[max(0, ys.min() - pad):ys.max() + pad + 1, max(0, xs.min() - pad):xs.max() + pad + 1] = cv2.GC_PR_FGD
    mask[marks == 255] = cv2.GC_FGD
    mask[marks == 0] = cv2.GC_BGD
    _grabcut(small, mask, None, cv2.GC_INIT_WITH_MASK)
    return _full_size(mask, (w, h))


def _grabcut(image: np.ndarray, mask: np.ndarray, rect, mode: int) -> None:
    background, foreground = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    # GrabCut seeds its colour models with k-means from OpenCV's thread RNG: seeded, the same gesture on the same
    # frame proposes the same mask (otherwise it depends on whatever ran before on that thread).
    cv2.setRNGSeed(0)
    try:
        cv2.grabCut(cv2.cvtColor(image, cv2.COLOR_RGB2BGR), mask, rect, background, foreground,
                    GRABCUT_ITERATIONS, mode)
    except cv2.error:
        raise GuidanceError("GrabCut found no object there: mark a larger box or more of the object") from None


def _scaled(image: np.ndarray, scale: float, interpolation=cv2.INTER_AREA) -> np.ndarray:
    if scale >= 1.0:
        return image
    h, w = image.shape[:2]
    return cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=interpolation)


def _full_size(grabcut_mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    obj = np.isin(grabcut_mask, (cv2.GC_FGD, cv2.GC_PR_FGD)).astype(np.uint8)
    if obj.shape[::-1] != size:
        obj = cv2.resize(obj, size, interpolation=cv2.INTER_NEAREST)
    if not obj.any():
        raise GuidanceError("GrabCut found no object there: mark a larger box or more of the object")
    return obj.astype(bool)


def _clip_box(box, width: int, height: int) -> tuple[int, int, int, int]:
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    x0, x1 = sorted((max(0, min(width, x0)), max(0, min(width, x1))))
    y0, y1 = sorted((max(0, min(height, y0)), max(0, min(height, y1))))
    if x1 - x0 < 4 or y1 - y0 < 4:
        raise GuidanceError("drag a box around the object (at least a few pixels each way)")
    if (x1 - x0) >= width - 1 and (y1 - y0) >= height - 1:
        raise GuidanceError("the box covers the whole frame: GrabCut needs some background outside it")
    return x0, y0, x1, y1


class PersonPicker:
    """RVM loaded once per server, on first use, shared by requests under a lock (one frame at a time)."""

    def __init__(self, model: str = "rvm-mobilenetv3", cache: str | None = None):
        self.model, self.cache = model, cache
        self._matter = None
        self._lock = threading.Lock()

    def mask_at(self, frame: np.ndarray, x: int, y: int) -> np.ndarray:
        """bool [H,W]: the connected component of RVM's alpha > 0.5 under (x, y)."""
        h, w = frame.shape[:2]
        if not (0 <= x < w and 0 <= y < h):
            raise GuidanceError(f"the click ({x}, {y}) is outside the {w}x{h} frame")
        alpha = self._alpha(frame)
        _, components = cv2.connectedComponents((alpha > 0.5).astype(np.uint8), connectivity=8)
        label = components[y, x]
        if label == 0:
            raise GuidanceError("no person under the click (RVM finds people only): drag a box or scribble instead")
        return components == label

    def _alpha(self, frame: np.ndarray) -> np.ndarray:
        with self._lock:
            if self._matter is None:
                from ..backends import open_runner
                from ..matters.recurrent import RecurrentMatter

                self._matter = RecurrentMatter(open_runner(self.model, cache=self.cache), warmup=0)
            self._matter.reset()
            for _ in range(PERSON_STEPS):
                alpha = self._matter.step(frame)[1]
        return alpha


def trimap_of(mask: np.ndarray) -> np.ndarray:
    """A first mask as the trimap the page shows and refines: the CLI's band for a mask at this size."""
    h, w = mask.shape
    return trimap_from_mask(mask, default_band((w, h)))


# --- a look at the propagation --------------------------------------------------------------------------------
def propagation_preview(source, trimap: np.ndarray, start: int, count: int, out: Path,
                        size: tuple[int, int]) -> list[int]:
    """Carry keyframe ``start``'s trimap forward over up to ``count`` frames, as the guided matter's forward pass
    does, and write each as ``out/NNNNN.png`` at ``size``; returns the frame indices written."""
    from ..guidance.propagate import FlowPropagator

    out.mkdir(parents=True, exist_ok=True)
    propagator, written = FlowPropagator(), []
    frames = source.frames(start, start + count + 1)
    try:
        for frame in frames:
            if frame.index == start:
                result = propagator.start(frame.image, trimap)
            else:
                result = propagator.step(frame.image)
            write_png(out / f"{frame.index:05d}.png", cv2.resize(result.trimap, size,
                                                                 interpolation=cv2.INTER_NEAREST))
            written.append(frame.index)
    finally:
        getattr(frames, "close", lambda: None)()
    if not written:
        raise InputError(f"frame {start} could not be read")
    return written
