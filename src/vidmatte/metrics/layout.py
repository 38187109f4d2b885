"""Read RVM's evaluation layout: ``<root>/<clip>/pha/<frame>.png`` (optional ``fgr/``, ``com/``), or an alpha video
``<root>/<clip>/pha.mp4`` (any container FFmpeg reads). Prediction and truth are matched clip by clip and frame by
frame by name; the first mismatch is reported in one line."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..errors import InputError
from ..io.images import IMAGE_EXTENSIONS, read_unchanged
from ..io.probe import natural_key
VIDEO_EXTS = {".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v"}


@dataclass
class Track:
    """One layer of one clip (e.g. pha): either a list of image files or one video file."""

    clip: str
    layer: str
    files: list[Path] | None = None
    video: Path | None = None
    _decoded: list[np.ndarray] | None = None

    @property
    def names(self) -> list[str]:
        if self.files is not None:
            return [f.stem for f in self.files]
        return [f"{i:05d}" for i in range(len(self._frames()))]

    def _frames(self) -> list[np.ndarray]:
        # A clip's video is decoded once and kept: benchmark clips are short, and frames are revisited by index.
        if self._decoded is None:
            from ..io.readers import open_reader

            self._decoded = [f.image for f in open_reader(self.video)]
        return self._decoded

    def __len__(self) -> int:
        return len(self.files) if self.files is not None else len(self._frames())

    def load(self, i: int, channels: int) -> np.ndarray:
        """Frame i as uint8: [H,W] for channels=1 (first channel of an RGB alpha), [H,W,3] RGB for 3."""
        if self.files is not None:
            image = read_unchanged(self.files[i], what="")
            if image.dtype != np.uint8:  # 16-bit PNG alphas: keep the 8-bit convention of the field
                image = (image.astype(np.float64) / np.iinfo(image.dtype).max * 255).round().astype(np.uint8)
            if image.ndim == 3 and image.shape[2] == 4:
                image = image[..., :3]
            if channels == 1:  # blue, the channel OpenCV stores first: the three are equal in an RGB alpha
                return image if image.ndim == 2 else image[..., 2]
            return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB) if image.ndim == 2 else image
        image = self._frames()[i]
        return image[..., 0] if channels == 1 else image


def find_track(clip_dir: Path, layer: str) -> Track | None:
    """``<clip>/<layer>/`` with images, or ``<clip>/<layer>.<video ext>``; None if neither exists."""
    folder = clip_dir / layer
    if folder.is_dir():
        files = sorted((f for f in folder.iterdir() if f.suffix.lower() in IMAGE_EXTENSIONS),
                       key=lambda f: natural_key(f.name))
        if not files:
            raise InputError(f"{folder} holds no images")
        return Track(clip_dir.name, layer, files=files)
    for ext in VIDEO_EXTS:
        if (clip_dir / f"{layer}{ext}").is_file():
            return Track(clip_dir.name, layer, video=clip_dir / f"{layer}{ext}")
    return None


def list_clips(root: Path, what: str) -> dict[str, Path]:
    """Clip folders under ``root`` that hold a ``pha`` layer; a root that is itself a clip counts as one clip."""
    if not root.is_dir():
        raise InputError(f"{what} folder not found: {root}")
    if find_track(root, "pha") is not None:
        return {root.name: root}
    folders = sorted(root.iterdir(), key=lambda d: natural_key(d.name))
    clips = {d.name: d for d in folders if d.is_dir() and find_track(d, "pha")}
    if not clips:
        raise InputError(f"{what} {root} has no clips: expected <clip>/pha/*.png or <clip>/pha.mp4 under it")
    return clips


@dataclass
class ClipPair:
    name: str
    pred: Track
    true: Track
    pred_fgr: Track | None
    true_fgr: Track | None
    trimap: Track | None
    image: Track | None  # the input composite (for report thumbnails), if the truth has com/


def match_clips(pred_root: Path, gt_root: Path, trimap_root: Path | None = None) -> list[ClipPair]:
    """Pair prediction and truth clips; InputError naming the first clip, frame or size that does not match."""
    pred_clips = list_clips(pred_root, "prediction")
    gt_clips = list_clips(gt_root, "ground truth")
    if len(pred_clips) == 1 and len(gt_clips) == 1:  # two single clips: compare them whatever their names
        pred_clips = {next(iter(gt_clips)): next(iter(pred_clips.values()))}
    missing = [c for c in gt_clips if c not in pred_clips]
    extra = [c for c in pred_clips if c not in gt_clips]
    if missing:
        raise InputError(f"clip {missing[0]!r} is in the ground truth but not in the prediction {pred_root}")
    if extra:
        raise InputError(f"clip {extra[0]!r} is in the prediction but not in the ground truth {gt_root}")
    pairs = []
    for name, gt_dir in gt_clips.items():
        pred_dir = pred_clips[name]
        pred, true = find_track(pred_dir, "pha"), find_track(gt_dir, "pha")
        _check_frames(name, "pha", pred, true)
        trimap = None
        if trimap_root is not None:
            trimap = _find_trimaps(trimap_root, name)
            _check_frames(name, "trimap", trimap, true, pred_label="trimaps")
        pred_fgr, true_fgr = find_track(pred_dir, "fgr"), find_track(gt_dir, "fgr")
        if pred_fgr is not None and true_fgr is not None:
            _check_frames(name, "fgr", pred_fgr, true_fgr)
        else:
            pred_fgr = true_fgr = None
        pairs.append(ClipPair(name, pred, true, pred_fgr, true_fgr, trimap, find_track(gt_dir, "com")))
    return pairs


def _find_trimaps(root: Path, clip: str) -> Track:
    """Trimaps for a clip: ``<root>/<clip>/trimap/`` (what `bench build` writes) or ``<root>/<clip>/*.png``."""
    for candidate in (root / clip / "trimap", root / clip):
        if candidate.is_dir():
            track = find_track(candidate.parent, candidate.name)
            if track is not None:
                return track
    raise InputError(f"no trimaps for clip {clip!r} under {root} (expected {root / clip / 'trimap'}/*.png)")


def _check_frames(clip: str, layer: str, pred: Track, true: Track, pred_label: str = "prediction") -> None:
    if len(pred) != len(true):
        raise InputError(f"clip {clip!r}: {pred_label} has {len(pred)} {layer} frames, ground truth has {len(true)}")
    if pred.files is not None and true.files is not None:
        for a, b in zip(pred.names, true.names):
            if a != b:
                raise InputError(f"clip {clip!r}: {layer} frame names differ ({pred_label} {a!r}, ground truth {b!r})")
    shape_p, shape_t = pred.load(0, 1).shape, true.load(0, 1).shape
    if shape_p != shape_t:
        raise InputError(f"clip {clip!r}: {layer} frame {true.names[0]} is {shape_p[1]}x{shape_p[0]} in the "
                         f"{pred_label} but {shape_t[1]}x{shape_t[0]} in the ground truth")
