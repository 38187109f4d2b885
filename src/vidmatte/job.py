"""Job control: what a caller hands ``pipeline.convert`` to follow and steer one job.

Everything a job needs from its host travels in here rather than in process-wide state, so several jobs can live in
one process (a web server, a batch worker) and run, cancel and finish independently. The CLI maps SIGINT/SIGTERM
onto ``cancel``/``stop_input`` and draws ``on_progress`` as a bar; a page polls the last event; a batch worker sets
``cpus`` to its allotment.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from .errors import Cancelled


@dataclass(frozen=True)
class ProgressEvent:
    """Where a job stands: frame ``done`` of ``total`` (None: unknown, e.g. a camera) in pass ``pass_index``."""

    pass_name: str  # "warm-up", "matting", ...
    pass_index: int  # 0-based
    passes: int
    done: int
    total: int | None
    elapsed: float  # seconds since this pass started

    @property
    def fps(self) -> float:
        return self.done / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def eta(self) -> float | None:
        """Seconds left in this pass, at this pass's rate so far."""
        if self.total is None or self.fps <= 0:
            return None
        return max(self.total - self.done, 0) / self.fps


@dataclass
class JobControl:
    """Progress out, cancel and stop in, the job's messages out, and the CPUs the job may use.

    A job's warnings (``warn``: something the user should know about the result) and notes (``note``: what it
    decided along the way, e.g. how much of an estimated plate was never seen empty) have one channel each: the
    front end renders them (the CLI as ``vidmatte: warning:`` lines, the page in the job's row, batch in the item's
    record); without a handler they go to the "vidmatte" logger.
    """

    on_progress: Callable[[ProgressEvent], None] | None = None
    on_warning: Callable[[str], None] | None = None
    on_note: Callable[[str], None] | None = None
    cpus: int | None = None  # the job's CPU allotment; None: the whole machine
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("vidmatte"))
    _cancel: threading.Event = field(default_factory=threading.Event, repr=False)
    _stop_input: threading.Event = field(default_factory=threading.Event, repr=False)

    def cancel(self) -> None:
        """Abort: every stage leaves at once, nothing is written under a final name, ``convert`` raises Cancelled."""
        self._cancel.set()

    def stop_input(self) -> None:
        """Read no more frames (a camera's end), finish what is in flight and write the outputs."""
        self._stop_input.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    @property
    def input_stopped(self) -> bool:
        return self._stop_input.is_set()

    def warn(self, message: str) -> None:
        (self.on_warning or self.log.warning)(message)

    def note(self, message: str) -> None:
        (self.on_note or self.log.info)(message)

    def raise_if_cancelled(self) -> None:
        if self._cancel.is_set():
            raise Cancelled("cancelled; no output was written")

    def machine_cpus(self) -> int:
        return max(1, self.cpus or len(_available_cpus()))


def _available_cpus() -> set[int] | range:
    """The CPUs this process may run on (a container or taskset may allow fewer than the machine has)."""
    try:
        return os.sched_getaffinity(0)
    except (AttributeError, OSError):
        return range(os.cpu_count() or 1)


class PassClock:
    """Counts one pass's frames and reports them to the job's ``on_progress``."""

    def __init__(self, control: JobControl, name: str, index: int, passes: int, total: int | None):
        self.control, self.name, self.index, self.passes, self.total = control, name, index, passes, total
        self.start = time.monotonic()
        self.done = 0

    def advance(self, n: int = 1) -> None:
        self.done += n
        self.report()

    def report(self) -> None:
        if self.control.on_progress is not None:
            self.control.on_progress(ProgressEvent(self.name, self.index, self.passes, self.done, self.total,
                                                   self.elapsed))

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.start
