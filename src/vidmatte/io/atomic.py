"""Write under a temporary name in the final folder, rename when complete.

A crash, Ctrl-C or full disk never leaves a half-written file under the final name, and an existing output is only
replaced (with ``overwrite``) once the new one is complete. An existing output *folder* only ever loses the frame
files a previous run of ours wrote there (``NNNNN.png``): anything else in it stops the replacement.

Temporary names carry the writing process's pid and a per-job token, ``.{stem}.vidmatte-{pid}-{token}.part{ext}``:
two jobs of one process never share one, and a later run can tell the leftovers of a killed process (SIGKILL,
power loss) from those of a run still in progress.
"""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path

from ..errors import OutputError

# What PngSequenceWriter writes: five digits (more once a sequence passes 99999 frames, as "%05d" does).
FRAME_NAME = re.compile(r"\d{5,}\.png")
# Any temporary of ours, whatever output it belongs to (older versions had no token, and left ".old" folders).
TEMPORARY_NAME = re.compile(r"\..*\.vidmatte-\d+(-[0-9a-f]+)?\.(part.*|old)")


def temporary_sibling(final: Path, token: str | None = None) -> Path:
    """A hidden name beside ``final`` that keeps its extension (muxers pick formats by extension)."""
    token = token or secrets.token_hex(3)
    return final.with_name(f".{final.stem}.vidmatte-{os.getpid()}-{token}.part{final.suffix}")


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


def foreign_entries(folder: Path) -> list[Path]:
    """Entries of ``folder`` that vidmatte did not write: anything but frame files and our temporaries."""
    ours = set(frame_files(folder))
    return sorted(p for p in folder.iterdir() if p not in ours and not TEMPORARY_NAME.fullmatch(p.name))


def _remove_ours(path: Path) -> None:
    """Remove a temporary of ours: a file, or a folder's frame files and then the folder if nothing else is left."""
    try:
        if path.is_symlink() or not path.is_dir():
            path.unlink()
            return
        for frame in frame_files(path):
            frame.unlink()
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
        foreign = foreign_entries(self.final)
        if foreign:
            self._refuse(f"now holds {', '.join(p.name for p in foreign[:3])}, which vidmatte did not write")
        for frame in frame_files(self.final):
            frame.unlink()
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
