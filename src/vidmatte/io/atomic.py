"""Write under a temporary name in the final folder, rename when complete.

A crash, Ctrl-C or full disk never leaves a half-written file under the final name, and an existing output is only
replaced (with ``overwrite``) once the new one is complete.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path


def temporary_sibling(final: Path) -> Path:
    """A hidden name beside ``final`` that keeps its extension (muxers pick formats by extension)."""
    return final.with_name(f".{final.stem}.vidmatte-{os.getpid()}.part{final.suffix}")


class AtomicOutput:
    """A file or folder that appears under its final name only when ``commit()`` is called."""

    def __init__(self, final: Path, is_dir: bool):
        self.final = Path(final)
        self.is_dir = is_dir
        self.temp = temporary_sibling(self.final)
        self._remove(self.temp)  # leftovers of an earlier run with the same pid
        if is_dir:
            self.temp.mkdir(parents=False)

    def commit(self) -> None:
        if self.is_dir and self.final.exists():
            # rename() cannot replace a non-empty folder: move the old one aside, then drop it.
            trash = self.final.with_name(f".{self.final.name}.vidmatte-{os.getpid()}.old")
            os.replace(self.final, trash)
            os.replace(self.temp, self.final)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(self.temp, self.final)

    def abort(self) -> None:
        self._remove(self.temp)

    @staticmethod
    def _remove(path: Path) -> None:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        elif path.exists():
            path.unlink()
