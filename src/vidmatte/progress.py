"""Progress bars on stderr (frames, fps, ETA), drawn by tqdm, only when stderr is a terminal."""

from __future__ import annotations

import sys
import time

from tqdm import tqdm

_FORMAT = "{desc} {percentage:3.0f}%|{bar:24}| {n_fmt}/{total_fmt} frames [{elapsed}<{remaining}, {rate_fmt}]"
_FORMAT_NO_TOTAL = "{desc} {n_fmt} frames [{elapsed}, {rate_fmt}]"


def _bar(total: int | None, label: str, stream) -> tqdm:
    return tqdm(total=total, desc=label, unit="frame", file=stream, dynamic_ncols=True, leave=True,
                bar_format=_FORMAT if total else _FORMAT_NO_TOTAL, mininterval=0.25)


class Progress:
    """A counter with a bar: ``update()`` once per item, ``close()`` at the end (eval, bench)."""

    def __init__(self, total: int | None, enabled: bool = True, label: str = "matting", stream=None):
        stream = stream or sys.stderr
        self.enabled = enabled and stream.isatty()
        self.start = time.monotonic()
        self._bar = _bar(total, label, stream) if self.enabled else None

    def update(self, n: int = 1) -> None:
        if self._bar is not None:
            self._bar.update(n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.start


class ProgressBar:
    """Draws a job's ``ProgressEvent``s (``job.JobControl.on_progress``): one bar per pass, named after it."""

    def __init__(self, enabled: bool = True, stream=None):
        self.stream = stream or sys.stderr
        self.enabled = enabled and self.stream.isatty()
        self._bar: tqdm | None = None
        self._pass: int | None = None

    def update(self, event) -> None:
        if not self.enabled:
            return
        if event.pass_index != self._pass:
            self.close()
            label = event.pass_name if event.passes == 1 else \
                f"{event.pass_name} ({event.pass_index + 1}/{event.passes})"
            self._bar, self._pass = _bar(event.total, label, self.stream), event.pass_index
        self._bar.update(event.done - self._bar.n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


class BatchBar:
    """One bar for a whole batch: frames written over all items (fps, ETA), items finished, the items running."""

    def __init__(self, items: int, enabled: bool = True, stream=None):
        self.stream = stream or sys.stderr
        self.items, self.finished = items, 0
        self._running: dict[str, str] = {}
        self._bar = _bar(0, self._label(), self.stream) if enabled and self.stream.isatty() else None
        if self._bar is not None:
            self._bar.bar_format = _FORMAT + " {postfix}"

    def _label(self) -> str:
        return f"batch {self.finished}/{self.items} items"

    def add_total(self, frames: int | None) -> None:
        if self._bar is not None and frames:
            self._bar.total += frames
            self._bar.refresh()

    def frames(self, written: int) -> None:
        if self._bar is not None and written != self._bar.n:
            self._bar.update(written - self._bar.n)

    def current(self, item: str, status: str) -> None:
        self._running[item] = status
        self._show()

    def item_finished(self, item: str | None = None) -> None:
        self.finished += 1
        self._running.pop(item, None)
        self._show()

    def _show(self) -> None:
        if self._bar is not None:
            self._bar.set_description(self._label(), refresh=False)
            shown = ", ".join(f"{name}: {status}" for name, status in list(self._running.items())[-3:])
            self._bar.set_postfix_str(shown)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
