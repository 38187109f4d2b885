"""Per-item records: what was made from what, so a re-run skips finished items and resumes an interrupted batch.

``DIR/<item>/.vidmatte-batch.json`` says which input (a fingerprint: size, modification time and a hash of its first
and last MiB; also of guidance files), which options and which vidmatte version made the item's outputs, and
whether the job finished. A re-run skips an item whose record matches and whose outputs are all there; an item whose
record says it started (a crash, Ctrl-C, a killed worker) or made from something else is redone, replacing only its
own outputs. The record is written atomically (temporary name, then rename), after the outputs are in place.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from .._version import __version__

RECORD_NAME = ".vidmatte-batch.json"
_SAMPLE = 1 << 20  # bytes hashed at each end of a file


def fingerprint(path: str | os.PathLike) -> dict | None:
    """Cheap identity of a file or folder (size, mtime, ends' hash; a folder: its files' names, sizes, mtimes)."""
    p = Path(path)
    try:
        if p.is_dir():
            entries = sorted((f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in p.iterdir() if f.is_file())
            return {"folder": hashlib.sha256(json.dumps(entries).encode()).hexdigest()}
        stat = p.stat()
        digest = hashlib.sha256()
        with open(p, "rb") as fh:
            digest.update(fh.read(_SAMPLE))
            if stat.st_size > _SAMPLE:
                fh.seek(max(_SAMPLE, stat.st_size - _SAMPLE))
                digest.update(fh.read(_SAMPLE))
        return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256_ends": digest.hexdigest()}
    except OSError:
        return None  # a glob pattern or an unreadable input: the job reports it


def describe(item, options: dict) -> dict:
    """What an item's outputs depend on: the record a finished run leaves, minus its status and timings."""
    guidance = [spec.partition(":")[2] for spec in item.keyframe] + [p for p in (item.keyframes, item.plate) if p]
    weights = options.get("checkpoint")  # new weights under the same name make other outputs: redo the item
    made_from = {"weights": fingerprint(weights)} if weights else {}
    return {**made_from, "version": __version__, "mode": item.mode, "input": str(item.input),
            "fingerprint": fingerprint(item.input), "guidance": {g: fingerprint(g) for g in guidance},
            "options": options}


def record_path(folder: Path) -> Path:
    return folder / RECORD_NAME


def read(folder: Path) -> dict | None:
    try:
        return json.loads(record_path(folder).read_text())
    except (OSError, ValueError):
        return None


def write(folder: Path, record: dict) -> None:
    """Replace the record atomically: a reader sees the old one or the new one, never half of one."""
    from ..io.atomic import write_atomic

    folder.mkdir(parents=True, exist_ok=True)
    write_atomic(record_path(folder), json.dumps(record, indent=1, sort_keys=True) + "\n")


def is_finished(folder: Path, made_from: dict, outputs: list[Path]) -> bool:
    """The item was finished from the same input, guidance, options and version, and its outputs are there."""
    record = read(folder)
    if record is None or record.get("status") != "done":
        return False
    same = all(record.get(key) == value for key, value in made_from.items())
    written = [folder / name for name in record.get("written", [])]  # several objects' outputs, by id
    return same and all(p.exists() for p in outputs + written)


def is_ours(folder: Path) -> bool:
    """A record (finished or not) says the outputs in ``folder`` were written by a batch: they may be replaced."""
    return read(folder) is not None
