"""What a worker runs: a task (a whole item, one chunk of a long one, or the stitching of its chunks), in-process
through ``pipeline.Job`` with its own ``JobControl``; and the worker's lasting state (weights loaded once).

Workers live in a local process pool or in Ray actors (executors.py); both hand tasks to a ``Worker`` and get a
``TaskResult`` back. Progress leaves through ``report`` (a queue the coordinator drains) as plain tuples.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..errors import Cancelled, VidmatteError
from ..job import JobControl, ProgressEvent
from ..modes import MODES, RunSettings
from . import records

ITEM, CHUNK, STITCH = "item", "chunk", "stitch"
REPORT_EVERY = 0.5  # seconds between a task's progress messages (and one at each pass's end)


@dataclass
class Task:
    id: int
    item: str  # the item's name (its folder under --output-dir)
    kind: str  # ITEM, CHUNK or STITCH
    mode: str
    settings: RunSettings  # the mode's settings for this job (vidmatte.modes): input, outputs, range, options
    output_folder: str  # the item's folder, DIR/<item>/
    frames: int | None = None  # frames it will write, when known (the batch bar's total)
    lead_in: int = 0  # CHUNK: frames before the chunk that warm the recurrent state
    chunks: list = field(default_factory=list)  # STITCH: the chunks' settings, in order
    started: dict | None = None  # the item's record to leave (status "started") once this task's work begins


@dataclass
class TaskResult:
    task_id: int
    frames: int = 0
    seconds: float = 0.0
    error: str | None = None  # one line, as the CLI would print it
    cancelled: bool = False
    warning: str | None = None  # what the job warned of (joined), e.g. --allow-partial kept a damaged input's frames
    details: dict = field(default_factory=dict)  # what the job reported of its run (ConvertResult.details)
    outputs: dict = field(default_factory=dict)  # what it wrote (ConvertResult.outputs: kind -> path or {id: path})
    load_seconds: float = 0.0  # time spent loading weights for this task (0 once the worker has them)


class Worker:
    """One worker: its CPU allotment, its loaded weights (by model, backend, threads...), where progress goes."""

    def __init__(self, cpus: int, report: Callable[[tuple], None], preload: dict | None = None):
        self.cpus, self.report = cpus, report
        self._runners: dict = {}
        self._loading = 0.0
        self.control: JobControl | None = None
        self.stopping = False  # the batch was cancelled: a task handed over after that does not start
        if preload:  # the batch's model, loaded when the worker starts rather than in its first item
            try:
                self.runner(**preload)
            except VidmatteError:
                pass  # missing weights: each item that needs them says so


    def runner(self, model: str = "rvm-mobilenetv3", backend: str = "onnxruntime", threads: int | None = None,
               device: str = "auto", cache: str | None = None):
        """``backends.open_runner``, loading each set of weights once per worker; threads: the allotment."""
        from ..backends import open_runner

        key = (model, backend, threads or self.cpus, device, cache)
        if key not in self._runners:
            started = time.monotonic()
            self._runners[key] = open_runner(model, backend, threads=threads or self.cpus, device=device,
                                             cache=cache)
            self._loading += time.monotonic() - started
        return self._runners[key]

    def run(self, task: Task) -> TaskResult:
        warnings: list[str] = []  # the job's warning channel: they go to the item's record and row
        self.control = control = JobControl(cpus=self.cpus, on_progress=self._reporter(task),
                                            on_warning=warnings.append)
        self._loading = 0.0
        started = time.monotonic()
        result = TaskResult(task.id)
        try:
            if self.stopping:
                raise Cancelled("the batch was cancelled before this task started")
            if task.started is not None:
                # Only now, not when the batch was planned: an item a cancelled --force run never reached keeps
                # its "done" record, and the next run skips it instead of redoing it.
                records.write(Path(task.output_folder), task.started)
            if task.kind == STITCH:
                from .chunks import stitch

                result.frames = stitch(task.settings, task.chunks, MODES[task.mode].kinds, task.output_folder,
                                       control)
            else:
                outcome = self._matte(task, control)
                result.frames, result.details, result.outputs = outcome.frames, outcome.details, outcome.outputs
                if outcome.warning:
                    warnings.insert(0, outcome.warning)
        except Cancelled:
            result.cancelled, result.error = True, "cancelled"
        except VidmatteError as exc:
            result.error = str(exc)
        except Exception as exc:  # a worker reports, it does not die: the other items go on
            result.error = f"{type(exc).__name__}: {exc}"
        finally:
            self.control = None
        result.warning = "; ".join(dict.fromkeys(warnings)) or None
        result.seconds, result.load_seconds = time.monotonic() - started, self._loading
        return result

    def _matte(self, task: Task, control: JobControl):
        job, matter = MODES[task.mode].build(task.settings, control, self.runner)
        if task.lead_in:
            matter.lead_in = task.lead_in
        return job.run(matter)

    def cancel(self) -> None:
        self.stopping = True
        control = self.control
        if control is not None:
            control.cancel()

    def _reporter(self, task: Task) -> Callable[[ProgressEvent], None]:
        last = [0.0]

        def on_progress(event: ProgressEvent) -> None:
            now = time.monotonic()
            writing = event.pass_index == event.passes - 1
            if now - last[0] >= REPORT_EVERY or (event.total is not None and event.done >= event.total):
                last[0] = now
                self.report((task.id, event.pass_name, writing, event.done, event.total))

        return on_progress
