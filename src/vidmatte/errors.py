"""Errors a user can act on. The CLI prints their message on one line and exits with ``exit_code``."""

from __future__ import annotations


class VidmatteError(Exception):
    """Base class: a problem we can explain in one line (no traceback unless --debug)."""

    exit_code = 1


class UsageError(VidmatteError):
    """The command line or arguments are wrong (exit 2)."""

    exit_code = 2


class InputError(VidmatteError):
    """The input cannot be read or is not what it claims to be (exit 1)."""


class OutputError(VidmatteError):
    """An output cannot be written (exists, unwritable folder, disk full...) (exit 1)."""


class OutputExists(UsageError):
    """An output's target exists and replacing it was not allowed; ``allow`` is how the user allows it, in the
    words of their front end (the command line's ``--overwrite``, the API's ``overwrite=True``)."""

    def __init__(self, target, allow: str = "--overwrite"):
        super().__init__(target, allow)
        self.target, self.allow = target, allow

    def __str__(self) -> str:
        return f"{self.target} exists; pass {self.allow} to replace it (it was left untouched)"


class ModelError(VidmatteError):
    """Weights are missing, fail verification or cannot be fetched (exit 1)."""


class PartialInputError(InputError):
    """The input broke part-way through; ``frames_ok`` frames were processed before it did."""

    def __init__(self, message: str, frames_ok: int):
        super().__init__(message)
        self.frames_ok = frames_ok


class Cancelled(VidmatteError):
    """The job was cancelled (Ctrl-C, SIGTERM, a UI's cancel button); its outputs were not written (exit 130)."""

    exit_code = 130


class GuidanceError(UsageError):
    """A trimap, mask or keyframe given by the user cannot be used as guidance (exit 2)."""
