"""What a batch is made of: items from command-line inputs (files, folders, globs) or a manifest (CSV or JSON Lines).

Every problem with one line (a missing column, an unknown mode, an input that is not there, an option the mode does
not have, a CSV field beyond the header's columns) rejects that line alone, with its line number; the other items go
on. Relative paths in a manifest are read from the manifest's folder, so a manifest travels with its footage.
"""

from __future__ import annotations

import csv
import glob
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..errors import UsageError
from ..io.probe import IMAGE_EXTENSIONS, is_pattern, list_images
from ..modes import ALIASES, MODES

# Columns with a meaning of their own; any other column is a per-item override of one of the mode's options.
INPUT, NAME, MODE, KEYFRAMES, KEYFRAME, PLATE = "input", "item", "mode", "keyframes", "keyframe", "plate"
RESERVED = {INPUT, NAME, MODE, KEYFRAMES, KEYFRAME, PLATE}
CHECKPOINT = "checkpoint"  # an override like any option, but a path: read from the manifest's folder


@dataclass
class Item:
    """One video to matte: its input, its mode, its guidance and the options that differ from the batch's."""

    input: str
    mode: str
    where: str  # "a.mp4" (a command-line input) or "jobs.csv line 4": how messages point at it
    name: str = ""  # the folder under --output-dir; made unique by ``name_items``
    keyframes: str | None = None  # a keyframe folder (guided)
    keyframe: list[str] = field(default_factory=list)  # INDEX:PATH (guided)
    plate: str | None = None  # the clean background plate (background mode)
    overrides: dict = field(default_factory=dict)  # option dest -> value, typed as the mode's parser types it


@dataclass
class Rejected:
    """A line or input that cannot become an item; it fails with ``reason`` and nothing is written for it."""

    name: str
    reason: str


Coerce = Callable[[str, str], tuple[str, object]]  # (column, text) -> (option dest, typed value); ValueError


def from_inputs(inputs: list[str], mode: str) -> tuple[list[Item], list[Rejected]]:
    """Command-line inputs: files, folders of videos (or a folder of images: one item), glob patterns."""
    items, rejected = [], []
    for text in inputs:
        paths = _expand(text)
        if not paths:
            rejected.append(Rejected(_stem(text), f"{text}: no such file or folder" if not is_pattern(text)
                                     else f"{text}: no file matches"))
        items += [Item(str(p), mode, str(p)) for p in paths]
    return items, rejected


def _expand(text: str) -> list[Path]:
    if is_pattern(text):
        matches = sorted(Path(p) for p in glob.glob(text))
        return [p for p in matches if p.is_file() and p.suffix.lower() not in IMAGE_EXTENSIONS] or \
            ([Path(text)] if matches else [])  # a pattern of images is one image-sequence input
    path = Path(text)
    if path.is_dir():
        return _videos_in(path) or ([path] if list_images(path) else [])
    return [path] if path.exists() else []


def _videos_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and not p.name.startswith(".") and p.suffix.lower() not in IMAGE_EXTENSIONS)


def read_manifest(path: str, mode: str, coerce: Coerce) -> tuple[list[Item], list[Rejected]]:
    """Items from a CSV (header row) or JSON Lines manifest; every bad line is rejected on its own."""
    manifest = Path(path)
    if not manifest.is_file():
        raise UsageError(f"manifest not found: {path}")
    try:
        text = manifest.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read the manifest {path}: {exc}") from None
    rows = _jsonl_rows(text, manifest.name) if manifest.suffix.lower() in (".jsonl", ".ndjson") \
        else _csv_rows(text, manifest.name)
    items, rejected = [], []
    for where, row in rows:
        try:
            items.append(_item(row, where, manifest.parent, mode, coerce))
        except ValueError as exc:
            rejected.append(Rejected(_row_name(row, where), f"{where}: {exc}"))
    return items, rejected


def _csv_rows(text: str, name: str):
    reader = csv.DictReader(text.splitlines())
    for row in reader:
        where = f"{name} line {reader.line_num}"
        extra = [v.strip() for v in row.pop(None, [])]  # fields beyond the header's columns (DictReader's restkey)
        cells = {(k or "").strip(): (v or "").strip() for k, v in row.items()}
        if any(extra):
            # No column names them: a shifted or mistyped line, refused as a JSON line's unknown key is.
            yield where, ValueError(f"{len(cells) + len(extra)} fields where the header names {len(cells)} "
                                    f"columns (extra: {', '.join(map(repr, filter(None, extra)))})")
        elif any(cells.values()):  # blank lines are not items
            yield where, {k: v for k, v in cells.items() if v}


def _jsonl_rows(text: str, name: str):
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        where = f"{name} line {number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            yield where, ValueError(f"not JSON ({exc.msg})")
            continue
        yield where, row if isinstance(row, dict) else ValueError("not a JSON object")


def _item(row, where: str, base: Path, mode: str, coerce: Coerce) -> Item:
    if isinstance(row, ValueError):
        raise row
    if not row.get(INPUT):
        raise ValueError(f"missing column {INPUT!r}")
    item_mode = str(row.get(MODE) or mode)
    item_mode = ALIASES.get(item_mode, item_mode)  # the page's names for two modes: auto, plate
    if item_mode not in MODES:
        raise ValueError(f"unknown mode {item_mode!r}; choose {', '.join(sorted(MODES))}")
    source = _resolve(base, str(row[INPUT]))
    if not is_pattern(source) and not Path(source).exists():
        raise ValueError(f"input not found: {source}")
    name = str(row.get(NAME) or "")
    if name and (name != Path(name).name or name.startswith(".")):
        raise ValueError(f"item name must be a plain folder name, not {name!r}")
    item = Item(source, item_mode, where, name=name)
    if row.get(KEYFRAMES):
        item.keyframes = _existing(base, str(row[KEYFRAMES]), "keyframe folder")
    item.keyframe = [_keyframe(base, spec) for spec in _as_list(row.get(KEYFRAME))]
    if row.get(PLATE):
        plate = str(row[PLATE])
        # auto, green, blue, #RRGGBB name a plate the mode makes (a file of that name beside the manifest wins)
        named = plate.lower() in ("auto", "green", "blue") or plate.startswith("#")
        item.plate = plate if named and not Path(_resolve(base, plate)).exists() else _existing(base, plate, "plate")
    for column, value in row.items():
        if column not in RESERVED and value not in (None, ""):
            if isinstance(value, list):  # JSON Lines: "object": [1, 2] is --object 1,2
                value = ",".join(str(v) for v in value)
            dest, typed = coerce(column, str(value) if not isinstance(value, bool) else str(value).lower())
            item.overrides[dest] = _weights(base, typed) if dest == CHECKPOINT else typed
    return item


def _as_list(value) -> list[str]:
    """``"0:a.png;40:b.png"`` (CSV) or ``["0:a.png", "40:b.png"]`` (JSON)."""
    if not value:
        return []
    if isinstance(value, list):
        return [str(v) for v in value]
    return [part.strip() for part in str(value).split(";") if part.strip()]


def _keyframe(base: Path, spec: str) -> str:
    index, sep, path = spec.partition(":")
    if not sep or not index.strip().isdigit():
        raise ValueError(f"keyframe must look like INDEX:PATH, not {spec!r}")
    return f"{int(index)}:{_existing(base, path, 'keyframe')}"


def _existing(base: Path, path: str, what: str) -> str:
    resolved = _resolve(base, path)
    if not Path(resolved).exists():
        raise ValueError(f"{what} not found: {resolved}")
    return resolved


def _weights(base: Path, checkpoint: str) -> str:
    """A checkpoint file beside the manifest; a name that is no file here (``rvm-init``) goes to the method as is."""
    resolved = _resolve(base, checkpoint)
    return resolved if Path(resolved).exists() else checkpoint


def _resolve(base: Path, path: str) -> str:
    p = Path(os.path.expanduser(path))
    return str(p if p.is_absolute() else base / p)


def _row_name(row, where: str) -> str:
    if isinstance(row, dict) and (row.get(NAME) or row.get(INPUT)):
        return str(row.get(NAME) or _stem(str(row[INPUT])))
    return where.replace(" ", "-")


def _stem(text: str) -> str:
    path = Path(text.rstrip("/" + os.sep))
    return path.stem if path.suffix else path.name or "item"


def name_items(items: list[Item], rejected: list[Rejected]) -> None:
    """Each item's folder: its input's name without extension, made unique (``clip``, ``clip-2``...)."""
    taken: set[str] = set()
    for entry in [*items, *rejected]:
        base = entry.name or _stem(entry.input)
        name, n = base, 1
        while name in taken:
            n += 1
            name = f"{base}-{n}"
        entry.name = name
        taken.add(name)
