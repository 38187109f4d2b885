"""The modes a batch item can run in: how to build its job, which outputs it makes, whether it can be chunked.

Add a mode by adding a row: its command module must offer ``build_job(args, control, runners) -> (job, matter)``
(``vidmatte.cli.convert`` and ``vidmatte.cli.guided`` do). A mode that does not exist yet is listed with the reason
its items fail, so manifests written for it are accepted and say why they did not run.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from ..cli.background import PLATE_METHODS
from ..cli.guided import GUIDED_METHODS
from ..errors import UsageError

PICTURE_KINDS = ("composition", "alpha", "foreground", "rgba")


@dataclass(frozen=True)
class Mode:
    name: str
    module: str | None  # the command module with build_job; None: not available
    kinds: tuple[str, ...]  # what --outputs may name
    chunkable: bool  # one long video may be split over workers (a recurrent state can be warmed mid-clip)
    methods: tuple[str, ...] = ()  # what --method (or a manifest's method column) may name; () none
    unavailable: str | None = None

    def check_method(self, method: str | None, checkpoint: str | None) -> None:
        """A method this mode has (None: its default), and --checkpoint only beside a network method."""
        if method is not None and method not in self.methods:
            if not self.methods:
                raise UsageError(f"{self.name} mode has no --method (it runs RVM), not {method!r}")
            raise UsageError(f"{self.name} mode has no method {method!r}; choose {', '.join(self.methods)}")
        if checkpoint and method in (None, "classical"):
            raise UsageError(f"--checkpoint is for a network method of {self.name} mode "
                             f"({', '.join(m for m in self.methods if m != 'classical') or 'it has none'})")

    def build_job(self, args, control, runners):
        if self.module is None:
            raise UsageError(self.unavailable)
        return importlib.import_module(self.module).build_job(args, control, runners)


MODES = {
    "convert": Mode("convert", "vidmatte.cli.convert", PICTURE_KINDS, chunkable=True),
    # Keyframes propagate over the whole clip in both directions: a chunk could not see the keyframes of the others.
    "guided": Mode("guided", "vidmatte.cli.guided", PICTURE_KINDS + ("trimap",), chunkable=False,
                   methods=GUIDED_METHODS),
    # The plate is aligned frame by frame and needs no state from earlier frames, but RVM's person prior does:
    # not chunked, like guided items.
    "background": Mode("background", "vidmatte.cli.background", PICTURE_KINDS, chunkable=False,
                       methods=PLATE_METHODS),
}
