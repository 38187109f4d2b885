"""The batch's one coordinator: items -> tasks -> an executor; results -> records, the bar and the summary.

    items (manifest.py) ──> plan: skip finished (records.py), fail what cannot run, chunk long videos (chunks.py)
                        ──> executor.submit(task) (executors.py: local pool or Ray) ──> Worker.run (tasks.py)
    results ──> records, a stitch task once every chunk of an item is in, the summary; progress events ──> one bar

Every frame is matted by ``pipeline.Job`` inside a worker; the coordinator reads no frames.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import VidmatteError
from ..modes import MODES
from . import chunks, records
from .manifest import Item, Rejected
from .tasks import CHUNK, ITEM, STITCH, Task, TaskResult

# Not part of what makes an item's outputs: they change how, not what.
_NOT_RECORDED = {"overwrite", "threads", "quiet", "json", "cache_dir", "output_folder", "input_format",
                 "input_option", "work", "input", "keyframe", "keyframes", "plate"}


@dataclass
class Plan:
    output_dir: Path
    outputs: list[str]  # names inside DIR/<item>/: "composition.mp4", "alpha/"...
    chunk_frames: int | None = None
    lead_in: int = chunks.DEFAULT_LEAD_IN
    force: bool = False


@dataclass
class Summary:
    items: int = 0
    done: int = 0
    skipped: int = 0
    failed: int = 0
    seconds: float = 0.0
    failures: dict = field(default_factory=dict)
    rows: list = field(default_factory=list)  # (item, status, frames, seconds, reason) for the table
    interrupted: bool = False

    def to_json(self) -> dict:
        return {"items": self.items, "done": self.done, "skipped": self.skipped, "failed": self.failed,
                "seconds": round(self.seconds, 3), "failures": self.failures}

    def fail(self, item: str, reason: str) -> None:
        self.failed += 1
        self.failures[item] = reason
        self.rows.append((item, "failed", None, None, reason))


def output_kind(name: str) -> str:
    """``alpha/`` -> alpha, ``composition.mp4`` -> composition: the stem names the kind."""
    return Path(name.rstrip("/")).stem


@dataclass
class _ItemState:
    item: Item
    folder: Path  # DIR/<item>/
    made_from: dict
    settings: object = None  # the item's mode settings (vidmatte.modes)
    pieces: list = field(default_factory=list)  # the chunks' settings, in order (chunked items)
    open_tasks: int = 0
    frames: int = 0
    seconds: float = 0.0
    error: str | None = None
    details: dict = field(default_factory=dict)  # what a whole-item job reported (chunked items report nothing)
    written: list = field(default_factory=list)  # several objects: every output written, relative to the folder
    warning: str | None = None  # e.g. --allow-partial kept what a damaged input gave


def _several_objects(options: dict) -> bool:
    from ..guidance.keyframes import several_objects

    try:
        return several_objects(options.get("object"))
    except VidmatteError:  # a bad --object: the item fails when it is built, with that message
        return False


def _per_object_outputs(outputs: dict, folder: Path) -> list[str]:
    """The per-object outputs of a job's ``outputs`` (kind -> {id: path}), relative to the item's folder."""
    paths = [path for value in outputs.values() if isinstance(value, dict) for path in value.values()]
    return sorted(os.path.relpath(path, folder) for path in paths)


class Coordinator:
    def __init__(self, plan: Plan, base_options: dict, executor, bar=None):
        """``base_options``: the mode's options for every item, by its command's option names."""
        self.plan, self.base_options, self.executor, self.bar = plan, base_options, executor, bar
        self.summary = Summary()
        self.states: dict[str, _ItemState] = {}
        self.tasks: dict[int, Task] = {}
        self.futures: dict[Future, int] = {}
        self.written: dict[int, int] = {}  # task id -> frames written so far (writing passes)

    # --- planning ---------------------------------------------------------------------------------------------
    def run(self, items: list[Item], rejected: list[Rejected]) -> Summary:
        started = time.monotonic()
        self.summary.items = len(items) + len(rejected)
        for entry in rejected:
            self.summary.fail(entry.name, entry.reason)
        try:
            for item in items:
                self._plan_item(item)
            self._follow()
        except KeyboardInterrupt:
            self.summary.interrupted = True
            self.executor.cancel()
            self._collect_after_cancel()
        finally:
            self.summary.seconds = time.monotonic() - started
            if self.bar is not None:
                self.bar.close()
        return self.summary

    def _plan_item(self, item: Item) -> None:
        mode = MODES[item.mode]
        folder = self.plan.output_dir / item.name
        wrong = [n for n in self.plan.outputs if output_kind(n) not in mode.kinds]
        if wrong:
            return self.summary.fail(item.name, f"{item.mode} mode makes no {', '.join(map(output_kind, wrong))}")
        options = self._item_options(item, folder)
        try:
            mode.check_method(options.get("method"), options.get("checkpoint"))
        except VidmatteError as exc:
            return self.summary.fail(item.name, f"{item.where}: {exc}")
        options["method"] = options.get("method") or "classical"  # each mode's default, as records before --method
        made_from = records.describe(item, self._recorded_options(options, mode.kinds))
        finals = [folder / name for name in self.plan.outputs]
        if _several_objects(options):  # outputs named by object id (alpha/2/, composition.2.mp4): the record has them
            finals = [path for path, name in zip(finals, self.plan.outputs) if name.endswith("/")]
        if not self.plan.force and records.is_finished(folder, made_from, finals):
            self.summary.skipped += 1
            self.summary.rows.append((item.name, "skipped", None, None, "finished earlier"))
            return None
        options["overwrite"] = options.get("overwrite") or self.plan.force or records.is_ours(folder)
        folder.mkdir(parents=True, exist_ok=True)
        state = self.states[item.name] = _ItemState(item, folder, made_from)
        try:
            state.settings = mode.settings_from(options)
            pieces = self._chunk(state.settings, folder, mode)
        except VidmatteError as exc:
            return self._item_failed(state, str(exc))
        if pieces is None:
            return self._submit(Task(self._next_id(), item.name, ITEM, item.mode, state.settings, str(folder),
                                     _expected(state.settings)))
        state.pieces = [piece for piece, _, _ in pieces]
        for piece, lead_in, frames in pieces:
            if not chunks.is_done(piece):  # a resumed batch keeps the chunks it finished
                self._submit(Task(self._next_id(), item.name, CHUNK, item.mode, piece, str(folder), frames,
                                  lead_in))
        if state.open_tasks == 0:
            self._submit_stitch(state)
        return None

    def _chunk(self, settings, folder: Path, mode):
        if not self.plan.chunk_frames or not mode.chunkable:
            return None
        work = folder / chunks.WORK_NAME
        pieces = chunks.plan(settings, self.plan.chunk_frames, self.plan.lead_in, work)
        if pieces is not None:
            work.mkdir(exist_ok=True)
        return pieces

    def _item_options(self, item: Item, folder: Path) -> dict:
        """The mode's options for this item, by its command's names: the batch's, the item's overrides, its paths."""
        options = dict(self.base_options)
        if "method" in item.overrides:  # the batch's --checkpoint goes with the batch's --method, not the item's
            options["checkpoint"] = None
        options.update(item.overrides)
        options.update(input=item.input, keyframe=list(item.keyframe), keyframes=item.keyframes, plate=item.plate,
                       input_format=None, input_option=[], work=None)
        options.update({kind: None for kind in MODES[item.mode].kinds})
        for name in self.plan.outputs:
            options[output_kind(name)] = str(folder / name) + ("/" if name.endswith("/") else "")
        return options

    def _recorded_options(self, options: dict, kinds: tuple[str, ...]) -> dict:
        """What the outputs depend on, with outputs by name (a moved --output-dir still matches)."""
        options = {k: v for k, v in sorted(options.items()) if k not in _NOT_RECORDED and k not in kinds}
        return {**options, "outputs": list(self.plan.outputs)}

    # --- running ----------------------------------------------------------------------------------------------
    def _next_id(self) -> int:
        return len(self.tasks)

    def _submit(self, task: Task) -> None:
        task.started = {**self.states[task.item].made_from, "status": "started"}  # the worker writes it (tasks.py)
        self.tasks[task.id] = task
        self.states[task.item].open_tasks += 1
        if self.bar is not None:
            self.bar.add_total(task.frames if task.kind != STITCH else 0)
        self.futures[self.executor.submit(task)] = task.id

    def _submit_stitch(self, state: _ItemState) -> None:
        self._submit(Task(self._next_id(), state.item.name, STITCH, state.item.mode, state.settings,
                          str(state.folder), chunks=state.pieces))

    def _follow(self) -> None:
        while self.futures:
            finished, _ = wait(list(self.futures), timeout=0.25, return_when=FIRST_COMPLETED)
            self._show_progress()
            for future in finished:
                self._finished(self.tasks[self.futures.pop(future)], _result(future))

    def _finished(self, task: Task, result: TaskResult) -> None:
        state = self.states[task.item]
        state.open_tasks -= 1
        self.written[task.id] = result.frames if task.kind != STITCH else 0
        if task.kind != STITCH:
            state.frames += result.frames
            state.seconds += result.seconds
        if task.kind == ITEM:
            state.details = result.details
            state.written = _per_object_outputs(result.outputs, state.folder)
        if result.warning:
            state.warning = state.warning or result.warning
        if result.error:
            state.error = state.error or result.error
        if state.open_tasks:
            return
        if state.error:
            return self._item_failed(state, state.error)
        if task.kind == CHUNK:
            return self._submit_stitch(state)
        self._item_done(state)

    def _item_done(self, state: _ItemState) -> None:
        folder = state.folder
        warned = {"warning": state.warning} if state.warning else {}
        # several objects: the outputs are named by object id (alpha/2/, composition.2.mp4), which only the finished
        # run knows; a re-run checks those are there
        written = {"written": state.written} if state.written else {}
        records.write(folder, {**state.made_from, "status": "done", "frames": state.frames,
                               "seconds": round(state.seconds, 3), "details": state.details, **warned, **written})
        self.summary.done += 1
        note = "; ".join(filter(None, (state.warning, _note(state.details))))
        self.summary.rows.append((state.item.name, "done", state.frames, state.seconds, note))
        if self.bar is not None:
            self.bar.item_finished(state.item.name)

    def _item_failed(self, state: _ItemState, reason: str) -> None:
        if reason == "cancelled":
            return  # an interrupted batch: the item is neither done nor failed; a re-run resumes it
        records.write(state.folder, {**state.made_from, "status": "failed", "reason": reason})
        self.summary.fail(state.item.name, reason)
        if self.bar is not None:
            self.bar.item_finished(state.item.name)

    def _collect_after_cancel(self) -> None:
        """Cancelled jobs remove their temporary outputs; wait for them (bounded) so nothing is left half-done."""
        deadline = time.monotonic() + 60
        while self.futures and time.monotonic() < deadline:
            finished, _ = wait(list(self.futures), timeout=0.5)
            for future in finished:
                task = self.tasks[self.futures.pop(future)]
                result = _result(future)
                if not result.error:  # finished before the cancel reached it: keep the work
                    self._finished(task, result)

    def _show_progress(self) -> None:
        events = self.executor.progress()
        if self.bar is None:
            return
        for task_id, pass_name, writing, done, total in events:
            task = self.tasks[task_id]
            if writing and task.kind != STITCH:
                self.written[task_id] = done
            self.bar.current(task.item, f"{pass_name} {done}/{total if total is not None else '?'}")
        self.bar.frames(sum(self.written.values()))


def _result(future: Future) -> TaskResult:
    if future.cancelled():
        return TaskResult(-1, error="cancelled", cancelled=True)
    try:
        return future.result()
    except Exception as exc:  # the worker process or actor died under the task
        return TaskResult(-1, error=f"the worker stopped ({type(exc).__name__}: {exc})".strip())


def _note(details: dict) -> str:
    """What the table says of a finished item: where a guided item's keyframes disagree, or its matted subject jumps
    (lost, or a real jump: a keyframe may be needed)."""
    notes = [f"{what} at frames " + ", ".join(f"{a}-{b}" if a != b else f"{a}" for a, b in details[key])
             for key, what in (("contradicting_frames", "keyframes disagree"), ("jumping_frames", "subject jumps"))
             if details.get(key)]
    return "; ".join(notes)


def _expected(settings) -> int | None:
    """Frames an item will write, for the bar (the container's count; None when it cannot be known cheaply)."""
    from ..io.source import open_source

    try:
        return open_source(settings.input, settings.fps).expected_frames(settings.start_frame, settings.end_frame)
    except (VidmatteError, OSError, ValueError):
        return None

