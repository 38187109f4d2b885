"""Keyframe guidance from the command line: ``INDEX:PATH`` specs, a folder of images named by frame index, or a
TCVOM workspace; read once into trimaps (keyframes are few) and served by frame index (``Keyframes``), which a
guided matter takes when it is made.

A TCVOM workspace is a folder holding every frame as ``NNNNN_rgb.png`` and, beside the keyframes, their trimaps as
``NNNNN_trimap.png`` (``data/benchmark.py`` writes one under ``<clip>/tcvom/``). Its frames are read as the image
sequence ``<folder>/*_rgb.png`` (a glob the image-sequence reader accepts, in natural order); a trimap's frame index
is the position of its ``_rgb`` file in that sequence, which is its number when the frames are numbered from 0.
"""

from __future__ import annotations

import glob
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np

from ..errors import GuidanceError
from ..io.probe import IMAGE_EXTENSIONS, list_images
from .formats import MissingObject, read_guidance

TCVOM_FRAME = re.compile(r"(\d+)_rgb\.png", re.IGNORECASE)
OBJECT_FILE = re.compile(r"(\d+)_(\d+)")  # a keyframe folder's per-object mask: <frame>_<object id>.png
TCVOM_TRIMAP = re.compile(r"(\d+)_trimap\.png", re.IGNORECASE)


class Keyframes:
    """Trimaps at a few frame indices: ``at(i)`` is uint8 [H,W] {0,128,255} or None.

    The arrays are read-only and shared: copy one before changing it.
    """

    def __init__(self, trimaps: dict[int, np.ndarray], sources: dict[int, str] | None = None):
        self.trimaps = dict(sorted(trimaps.items()))
        for trimap in self.trimaps.values():
            trimap.setflags(write=False)
        self.sources = sources or {}  # index -> where its trimap came from, for messages

    def indices(self) -> list[int]:
        """The keyframes' frame indices, ascending."""
        return list(self.trimaps)

    def at(self, index: int) -> np.ndarray | None:
        return self.trimaps.get(index)

    def __len__(self) -> int:
        return len(self.trimaps)


@dataclass
class TcvomWorkspace:
    """A TCVOM workspace folder: ``frames`` is the glob to read its frames with, ``keyframes`` maps frame index
    (position in that sequence) -> trimap file."""

    folder: Path
    frames: str
    frame_count: int
    keyframes: dict[int, Path] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def detect_tcvom(folder: str | os.PathLike) -> TcvomWorkspace | None:
    """The TCVOM workspace in ``folder``, or None when it holds no ``NNNNN_rgb.png`` frame."""
    folder = Path(folder)
    if not folder.is_dir() or not any(TCVOM_FRAME.fullmatch(p.name) for p in folder.iterdir()):
        return None
    pattern = os.path.join(glob.escape(str(folder)), "*_rgb.png")  # escaped: a folder named "take[1]" still works
    frames = list_images(Path(pattern))  # exactly the files, in the order, the image-sequence reader uses
    position = {}
    for i, path in enumerate(frames):
        match = TCVOM_FRAME.fullmatch(path.name)
        if match is None:
            raise GuidanceError(f"{folder} looks like a TCVOM workspace but {path.name} is not named NNNNN_rgb.png")
        position[int(match.group(1))] = i
    workspace = TcvomWorkspace(folder, pattern, len(frames))
    for path in sorted(folder.iterdir()):
        match = TCVOM_TRIMAP.fullmatch(path.name)
        if match is None:
            continue
        number = int(match.group(1))
        if number not in position:
            raise GuidanceError(f"TCVOM workspace {folder}: {path.name} has no frame {number:05d}_rgb.png beside it")
        if position[number] in workspace.keyframes:
            raise GuidanceError(f"TCVOM workspace {folder}: two trimaps for frame {number}")
        workspace.keyframes[position[number]] = path
        if position[number] != number:
            workspace.warnings.append(f"TCVOM workspace {folder}: {path.name} is frame {position[number]} of the "
                                      "sequence (frames are numbered by position from 0)")
    return workspace


def parse_spec(spec: str) -> tuple[int, Path]:
    """``"INDEX:PATH"`` -> (index, path). Only the first colon separates, so ``12:C:\\masks\\a.png`` works."""
    index, sep, path = spec.partition(":")
    if not sep or not path or not re.fullmatch(r"\d+", index.strip()):
        raise GuidanceError(f"keyframe {spec!r} is not INDEX:PATH (e.g. 0:masks/first.png; frames count from 0)")
    return int(index), Path(path)


def folder_keyframes(folder: str | os.PathLike) -> tuple[dict[int, Path], list[str]]:
    """Frame index -> file of a keyframe folder: a TCVOM workspace's trimaps, or images named 00012.png or 12.png."""
    workspace = detect_tcvom(folder)
    if workspace is not None:
        return dict(workspace.keyframes), list(workspace.warnings)
    return _numbered_images(Path(folder)), []


def _numbered_images(folder: Path) -> dict[int, Path]:
    """Frame index -> image of a folder whose images are named by frame index (00012.png or 12.png); other files
    are ignored."""
    if not folder.is_dir():
        raise GuidanceError(f"guidance folder not found: {folder}")
    files: dict[int, Path] = {}
    for path in folder.iterdir():
        if path.suffix.lower() not in IMAGE_EXTENSIONS or not re.fullmatch(r"\d+", path.stem):
            continue
        index = int(path.stem)
        if index in files:
            raise GuidanceError(f"two guidance images for frame {index}: {files[index].name} and {path.name}")
        files[index] = path
    if not files:
        if _object_files(folder):
            raise GuidanceError(f"{folder} holds per-object masks (<frame>_<id>.png): give --object with their ids "
                                "(1,2) or all")
        raise GuidanceError(f"no images named by frame number (00012.png or 12.png) in {folder}")
    return files


def collect_keyframes(specs: Iterable[str], folder: str | os.PathLike | None) -> tuple[dict[int, Path], list[str]]:
    """Frame index -> guidance file from both sources; refuses two files for one index and none at all."""
    files, warnings = folder_keyframes(folder) if folder is not None else ({}, [])
    for spec in specs:
        index, path = parse_spec(spec)
        if index in files:
            raise GuidanceError(f"two guidance images for frame {index}: {files[index]} and {path}")
        files[index] = path
    if not files:
        raise GuidanceError("no keyframe given: name one as INDEX:PATH or give a folder of images named by frame "
                            "index (00012.png)")
    return files, warnings


def load_keyframes(specs: Iterable[str], folder: str | os.PathLike | None, frame_count: int | None,
                   frame_size: tuple[int, int], kind: str = "auto", object_id: int | None = None,
                   band: int | None = None) -> tuple[Keyframes, list[str]]:
    """Read every keyframe into a trimap (uint8 [H,W] {0,128,255}, H x W = ``frame_size`` as (width, height)).

    ``specs`` are ``INDEX:PATH`` strings, ``folder`` a keyframe folder or TCVOM workspace (or None);
    ``frame_count`` is the clip's length (None: unknown, not checked). ``kind``, ``object_id`` and ``band`` apply
    to every keyframe (see ``formats.read_guidance``). Returns (keyframes, warnings); ``GuidanceError`` otherwise.
    """
    specs = list(specs)
    per_object = _object_files(Path(folder)) if folder is not None and not specs and object_id is not None else {}
    if per_object:  # a folder of <frame>_<id>.png masks: this object's files, each a one-object mask or trimap
        found, warnings = load_object_keyframes([], folder, frame_count, frame_size, kind, [object_id], band)
        return found[object_id], warnings
    files, warnings = collect_keyframes(specs, folder)
    from_folder = set(files) - {parse_spec(spec)[0] for spec in specs}
    keyframes, more = read_keyframes(files, frame_count, frame_size, kind, object_id, band, from_folder)
    return keyframes, warnings + more


def read_keyframes(given: dict, frame_count: int | None, frame_size: tuple[int, int], kind: str = "auto",
                   object_id: int | None = None, band: int | None = None,
                   may_lack_object: set[int] = frozenset()) -> tuple[Keyframes, list[str]]:
    """``{frame index: guidance image path or numpy array}`` (the API's ``keyframes=``) -> (keyframes, warnings),
    with the checks ``load_keyframes`` makes. Masks at ``may_lack_object`` (a keyframe folder's) without the
    object asked for are skipped (Cutie/DAVIS folders: later masks add objects and omit earlier ones)."""
    if not isinstance(given, dict) or not given:
        raise GuidanceError("no keyframe given: pass keyframes={frame index: trimap or mask (path or array)}")
    bad = [i for i in given if isinstance(i, bool) or not isinstance(i, (int, np.integer)) or i < 0]
    if bad:
        raise GuidanceError(f"keyframe index {bad[0]!r} is not a frame number (0, 1, 2...)")
    if frame_count is not None:
        outside = [i for i in sorted(given) if i >= frame_count]
        if outside:
            raise GuidanceError(f"keyframe {outside[0]} ({_name(given[outside[0]])}) is outside the clip: it has "
                                f"{frame_count} frames (0..{frame_count - 1})")
    trimaps, warnings, skipped = {}, [], []
    for index in sorted(given):
        try:
            trimaps[int(index)], more = read_guidance(given[index], frame_size, kind, object_id, band)
        except MissingObject:
            if index not in may_lack_object:  # guidance named for this object must hold it
                raise
            skipped.append(int(index))
            continue
        warnings += more
    if not trimaps:
        raise GuidanceError(f"no keyframe mask holds object {object_id}")
    if skipped:
        warnings.append(f"object {object_id} is not in the masks of frame {', '.join(map(str, skipped))}: "
                        "those frames are not keyframes for it")
    return Keyframes(trimaps, {i: _name(given[i]) for i in trimaps}), warnings


def parse_objects(value) -> int | list[int] | str | None:
    """``--object`` / ``object=``: None or one id (one subject, as before), or several subjects: ``"1,2,3"``, a list
    of ids or ``"all"`` (every id the keyframes hold). Ids are positive integers (0 is background)."""
    if value is None or isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        ids = [] if value is None else [int(value)]
        single = True
    elif isinstance(value, str) and value.strip().lower() == "all":
        return "all"
    elif isinstance(value, str):
        parts = [part.strip() for part in value.split(",")]
        if not all(re.fullmatch(r"\d+", part) for part in parts):
            raise GuidanceError(f"--object must be an id, ids separated by commas (1,2,3) or 'all', not {value!r}")
        ids, single = [int(part) for part in parts], "," not in value
    elif isinstance(value, (list, tuple)) and value and all(
            isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value):
        ids, single = [int(v) for v in value], False
    else:
        raise GuidanceError(f"object must be an id, a list of ids or 'all', not {value!r}")
    if any(i <= 0 for i in ids):
        raise GuidanceError(f"object ids are 1 or more (0 is the background), not {min(ids)}")
    if len(set(ids)) != len(ids):
        raise GuidanceError(f"object {next(i for i in ids if ids.count(i) > 1)} is named twice")
    return (ids[0] if ids else None) if single else ids


def several_objects(value) -> bool:
    """Whether ``--object`` asks for several subjects (a list, even of one id, or "all"): outputs then get one
    file or folder per object."""
    return isinstance(parse_objects(value), (list, str))


def load_object_keyframes(specs: Iterable[str], folder: str | os.PathLike | None, frame_count: int | None,
                          frame_size: tuple[int, int], kind: str = "auto", objects="all",
                          band: int | None = None) -> tuple[dict[int, Keyframes], list[str]]:
    """Several subjects' keyframes: {object id: Keyframes}, ascending ids, and warnings.

    Either a keyframe folder of per-object masks named ``<frame>_<id>.png`` (each a one-object mask or a trimap),
    or palette / label masks (``--keyframe INDEX:PATH`` or a folder of ``00012.png``) whose indices are the ids.
    ``objects``: "all" (every id found) or a list of ids, each of which must have at least one keyframe. A mask that
    lacks an object is not a keyframe for it (Cutie's convention: later masks add objects)."""
    specs = list(specs)
    per_object = _object_files(Path(folder)) if folder is not None and not specs else {}
    if per_object:
        ids = _chosen(objects, per_object, f"in {folder} (files are named <frame>_<id>.png)")
        return _each_object(ids, lambda i: read_keyframes(per_object[i], frame_count, frame_size, kind, None, band))
    files, warnings = collect_keyframes(specs, folder)
    found, more = _each_labelled_object(files, objects, frame_count, frame_size, kind, band)
    return found, warnings + more


def read_object_keyframes(given: dict, frame_count: int | None, frame_size: tuple[int, int], kind: str = "auto",
                          objects="all", band: int | None = None) -> tuple[dict[int, Keyframes], list[str]]:
    """``load_object_keyframes`` for ``{frame index: label map or palette mask (path or array)}`` (the API's), or
    for ``{object id: {frame index: that object's trimap or mask}}`` (the page's marks: one drawing per object)."""
    if not isinstance(given, dict) or not given:
        raise GuidanceError("no keyframe given: pass keyframes={frame index: palette or label mask (path or array)}")
    if all(isinstance(marks, dict) for marks in given.values()):  # per object
        ids = _chosen(objects, given, "among the marks")
        return _each_object(ids, lambda i: read_keyframes(given[i], frame_count, frame_size, kind, None, band))
    return _each_labelled_object(given, objects, frame_count, frame_size, kind, band)


def _chosen(objects, available: dict, where: str) -> list[int]:
    """The ids ``objects`` asks for ("all": every one available), each of which must be available."""
    objects = parse_objects(objects)
    ids = sorted(available) if objects == "all" else objects
    missing = [i for i in ids if i not in available]
    if missing:
        raise GuidanceError(f"no keyframe for object {missing[0]} {where}; objects there: "
                            f"{', '.join(map(str, sorted(available)))}")
    return ids


def _each_labelled_object(given: dict, objects, frame_count, frame_size, kind, band):
    """Every chosen object's keyframes out of palette or label masks ({frame index: path or array})."""
    objects = parse_objects(objects)
    ids = sorted(set().union(*(_ids_in(g) for g in given.values()))) if objects == "all" else objects
    if not ids:
        raise GuidanceError("--object all: the keyframe masks hold no object ids (give palette or label masks, "
                            "or per-object masks named <frame>_<id>.png)")
    return _each_object(ids, lambda i: read_keyframes(given, frame_count, frame_size, kind, i, band,
                                                      may_lack_object=set(given)))


def _each_object(ids: list[int], read) -> tuple[dict[int, Keyframes], list[str]]:
    """{id: read(id)'s keyframes} and the warnings worth saying (``_news``); an error names its object."""
    found: dict[int, Keyframes] = {}
    warnings: list[str] = []
    for i in ids:
        try:
            found[int(i)], more = read(i)
        except GuidanceError as exc:
            raise GuidanceError(f"object {i}: {exc}") from None
        warnings += _news(more, warnings)
    return found, warnings


def _news(more: list[str], said: list[str]) -> list[str]:
    """An object's reading warnings worth saying with several objects: not that a mask lacks it (Cutie's
    convention: the run says which keyframes each object has), nor what another object's reading said of the same
    file (a resized mask)."""
    return [w for w in more if " is not in the masks of frame " not in w and w not in said]


def _object_files(folder: Path) -> dict[int, dict[int, Path]]:
    """{object id: {frame index: file}} of a folder's ``<frame>_<id>.png`` masks (empty when it has none)."""
    if not folder.is_dir():
        return {}
    found: dict[int, dict[int, Path]] = {}
    for path in sorted(folder.iterdir()):
        match = OBJECT_FILE.fullmatch(path.stem)
        if match is None or path.suffix.lower() not in IMAGE_EXTENSIONS:
            continue
        frame, object_id = int(match.group(1)), int(match.group(2))
        if object_id == 0:
            raise GuidanceError(f"{path}: object ids are 1 or more (0 is the background)")
        if frame in found.setdefault(object_id, {}):
            raise GuidanceError(f"two masks for object {object_id} at frame {frame}: "
                                f"{found[object_id][frame].name} and {path.name}")
        found[object_id][frame] = path
    return found


def _ids_in(guidance) -> set[int]:
    """The object ids of a palette or label mask (its non-zero values); none for a trimap or a two-level mask."""
    from .formats import BG_MAX, COLOUR, PALETTE, array_values, read_values

    storage, values = array_values(guidance) if isinstance(guidance, np.ndarray) else read_values(Path(guidance))
    if storage == COLOUR:
        return set()
    ids = {int(v) for v in np.unique(values) if v != 0}
    if storage == PALETTE or (len(ids) > 1 and max(ids) <= BG_MAX):
        return ids
    return {1} if len(ids) == 1 and storage != PALETTE and max(ids) <= BG_MAX else set()


def _name(guidance) -> str:
    return f"array {list(guidance.shape)}" if isinstance(guidance, np.ndarray) else str(guidance)
