"""Write under a temporary name in the final folder, rename when complete.

A crash, Ctrl-C or full disk never leaves a half-written file under the final name, and an existing output is only
replaced (with ``overwrite``) once the new one is complete. An existing output *folder* is replaced only when it
holds nothing but frames a run of ours wrote there: every folder of frames we write carries a small record,
``.vidmatte-frames.json``, listing its frames and their sizes, written into the folder before it is renamed into
place (so it appears with the frames, and travels with a copy of the folder). A frame's name proves nothing (users
number their own frames ``00000.png`` too): a folder without the record, with anything it does not list, or with a
listed frame of another size is refused whole, and nothing in it is touched.

Temporary names carry the writing process's pid and a per-job token, ``.{stem}.vidmatte-{pid}-{token}.part{ext}``:
two jobs of one process never share one, and a later run can tell the leftovers of a killed process (SIGKILL,
power loss) from those of a run still in progress.

Every file vidmatte writes goes through here: ``AtomicOutput`` for the outputs of a run (video files and folders of
frames), ``atomic_path`` and ``write_atomic`` for everything else (plates, checkpoints, weights, uploads...).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .._version import __version__
from ..errors import OutputError

# What ImageSequenceWriter writes: five digits (more once a sequence passes 99999 frames, as "%05d" does), then the
# format's extension (io.image_formats.EXTENSION).
FRAME_NAME = re.compile(r"\d{5,}\.(?:png|tif|exr)")
# Any temporary of ours, whatever output it belongs to (older versions had no token, and left ".old" folders); the
# writing process's pid in group 1.
TEMPORARY_NAME = re.compile(r"\..*\.vidmatte-(\d+)(?:-[0-9a-f]+)?\.(?:part.*|old)")
# In every folder of frames we write: which frames it holds and their sizes (what a later run may replace).
MARKER = ".vidmatte-frames.json"
MARKER_WRITER = "vidmatte"


def temporary_sibling(final: Path, token: str | None = None) -> Path:
    """A hidden name beside ``final`` that keeps its extension (muxers pick formats by extension)."""
    token = token or secrets.token_hex(3)
    return final.with_name(f".{final.stem}.vidmatte-{os.getpid()}-{token}.part{final.suffix}")


@contextmanager
def atomic_path(final: Path) -> Iterator[Path]:
    """A temporary name beside ``final`` to write to: renamed to ``final`` when the block completes, removed (file
    or folder) when it raises, so ``final`` never holds a partial file. Whether ``final`` may be replaced is the
    caller's to check first."""
    final = Path(final)
    temp = temporary_sibling(final)
    try:
        yield temp
        os.replace(temp, final)
    except BaseException:
        if temp.is_dir() and not temp.is_symlink():
            shutil.rmtree(temp, ignore_errors=True)
        else:
            temp.unlink(missing_ok=True)
        raise


def write_atomic(final: Path, data: bytes | str) -> None:
    """``data`` (text in the locale's encoding, as ``Path.write_text`` writes it) under ``final``, atomically."""
    with atomic_path(final) as temp:
        if isinstance(data, bytes):
            temp.write_bytes(data)
        else:
            temp.write_text(data)


def _temporaries_of(final: Path) -> re.Pattern:
    """Our temporary names for ``final`` only (pid in group 1): its .part files/folders and older .old folders."""
    stem, suffix, name = (re.escape(s) for s in (final.stem, final.suffix, final.name))
    tail = r"(?:-[0-9a-f]+)?"
    return re.compile(rf"\.{stem}\.vidmatte-(\d+){tail}\.part{suffix}|\.{name}\.vidmatte-(\d+){tail}\.old")


def process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True  # another job of this very process
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # someone else's process: assume it is still writing
    return True


def remove_stale_temporaries(final: Path) -> None:
    """Remove the temporaries of ``final`` left by processes that no longer exist (killed runs)."""
    pattern = _temporaries_of(final)
    try:
        siblings = list(final.parent.iterdir())
    except OSError:
        return  # the caller reports an unusable folder itself
    for path in siblings:
        match = pattern.fullmatch(path.name)
        if match and not process_alive(int(match.group(1) or match.group(2))):
            _remove_ours(path)


def frame_files(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if FRAME_NAME.fullmatch(p.name) and p.is_file() and not p.is_symlink()]


def write_marker(folder: Path) -> None:
    """Record the frames of ``folder`` (a temporary of ours, about to be renamed into place) as ours."""
    frames = {p.name: p.stat().st_size for p in sorted(frame_files(folder))}
    record = {"written_by": MARKER_WRITER, "version": __version__, "frames": frames}
    (folder / MARKER).write_text(json.dumps(record, separators=(",", ":")) + "\n")


def _written_frames(folder: Path) -> dict[str, int] | None:
    """{frame name: size} from the folder's record; None without a readable record of ours."""
    path = folder / MARKER
    if path.is_symlink() or not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    frames = record.get("frames") if isinstance(record, dict) and record.get("written_by") == MARKER_WRITER else None
    if not isinstance(frames, dict) or not all(isinstance(size, int) for size in frames.values()):
        return None
    return frames


def _listed(path: Path, written: dict[str, int]) -> bool:
    """``path`` is a frame the record lists, unchanged in size since (not replaced by a file of the user's)."""
    if path.name not in written or path.is_symlink() or not path.is_file():
        return False
    try:
        return path.stat().st_size == written[path.name]
    except OSError:
        return False


def why_not_ours(folder: Path) -> str | None:
    """Why the existing ``folder`` may not be replaced by a new run's frames, or None when it may: it is empty, or
    its record lists every entry in it (our temporaries aside). The reason completes "output folder X ..."."""
    entries = sorted(p for p in folder.iterdir() if not TEMPORARY_NAME.fullmatch(p.name))
    if not entries:
        return None
    written = _written_frames(folder)
    if written is None:
        if all(FRAME_NAME.fullmatch(p.name) for p in entries):
            return ("holds frames (00000.png...) but no record that vidmatte wrote them (a folder written by an "
                    f"older vidmatte has none, nor frames made elsewhere; {MARKER} is the record): it was left "
                    "untouched; choose a new folder, or delete this one yourself if it is an old output")
        return f"holds {_names(entries)}, which vidmatte did not write; choose a new or empty folder"
    foreign = [p for p in entries if p.name != MARKER and not _listed(p, written)]
    if not foreign:
        return None
    changed = [p for p in foreign if p.name in written]
    why = "changed since vidmatte wrote them" if len(changed) == len(foreign) else "which vidmatte did not write"
    return (f"holds {_names(foreign)}, {why}; it was left untouched: choose a new folder, or move those files out "
            "first")


def _names(paths: list[Path]) -> str:
    names = ", ".join(p.name + ("/" if p.is_dir() else "") for p in paths[:3])
    return names + (f" and {len(paths) - 3} more" if len(paths) > 3 else "")


def _remove_ours(path: Path) -> None:
    """Remove a temporary of ours: a file, or a folder's frame files (and record), then the folder if nothing else is
    left."""
    try:
        if path.is_symlink() or not path.is_dir():
            path.unlink()
            return
        for frame in frame_files(path):
            frame.unlink()
        (path / MARKER).unlink(missing_ok=True)
        path.rmdir()  # fails, keeping the folder, if someone put something else in it
    except OSError:
        pass


class AtomicOutput:
    """A file or folder that appears under its final name only when ``commit()`` is called."""

    def __init__(self, final: Path, is_dir: bool):
        final = Path(final)
        # A symlink to a folder stays a symlink: the real folder is the one replaced (a rename would replace the
        # link with a folder), and "./" has no name of its own to put a temporary beside.
        self.final = Path(os.path.realpath(final)) if (is_dir and final.is_dir()) or not final.name else final
        self.is_dir = is_dir
        self.kept: Path | None = None  # where the finished output was left when commit had to refuse
        remove_stale_temporaries(self.final)
        self.temp = temporary_sibling(self.final)
        if is_dir:
            self.temp.mkdir(parents=False)

    def commit(self) -> None:
        try:
            if self.is_dir:
                write_marker(self.temp)  # before the rename: the folder never appears without its record
            if self.is_dir and os.path.lexists(self.final):
                self._clear_old_folder()
            os.replace(self.temp, self.final)
        except OSError as exc:
            raise OutputError(f"cannot put {self.final} in place: {exc.strerror or exc}") from None

    def _clear_old_folder(self) -> None:
        """rename() cannot replace a non-empty folder: remove our frames from the old one, then the folder itself.

        Checked again here, not only before the run: something may have been put in the folder meanwhile.
        """
        if not self.final.is_dir() or self.final.is_symlink():
            self._refuse("is no longer a folder")
        why = why_not_ours(self.final)
        if why is not None:
            self._refuse(why.split(";")[0])
        written = _written_frames(self.final) or {}
        for frame in frame_files(self.final):
            if _listed(frame, written):
                frame.unlink()
        (self.final / MARKER).unlink(missing_ok=True)
        for leftover in self.final.iterdir():  # only our temporaries are left: those of killed runs go too
            match = re.search(r"\.vidmatte-(\d+)", leftover.name)
            if match and not process_alive(int(match.group(1))):
                _remove_ours(leftover)
        try:
            self.final.rmdir()
        except OSError:  # a file arrived between the listing and here, or another run is writing into it
            self._refuse("is not empty after removing its old frames")

    def _refuse(self, why: str) -> None:
        """Keep the old folder and the new frames (under a visible name a later run's cleanup will not touch)."""
        kept = self.final.with_name(f"{self.final.name}.vidmatte-new-{secrets.token_hex(3)}")
        try:
            os.replace(self.temp, kept)
        except OSError:
            kept = self.temp
        self.kept = kept
        raise OutputError(f"{self.final} {why}; it was kept as it is, and the new frames are in {kept}")

    def abort(self) -> None:
        if self.kept is None:
            _remove_ours(self.temp)
