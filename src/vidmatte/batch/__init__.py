"""``vidmatte batch``: many videos, or one long one, over a local process pool or a Ray cluster (docs/BATCH.md).

manifest.py (items) -> coordinator.py (plan, records, summary) -> executors.py (pool / Ray) -> tasks.py (a worker
builds the item's mode from its settings, ``vidmatte.modes``, and runs the job) -> chunks.py (one long video in
pieces, stitched).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UsageError
from ..modes import MODES
from .coordinator import Coordinator, Plan, Summary, output_kind

__all__ = ["BatchRequest", "run_batch", "Summary"]


@dataclass
class BatchRequest:
    """What a batch is asked to do: its items (inputs or a manifest), where they go, how it scales out, and the
    options of the mode every item gets unless its manifest line overrides one (by the mode command's option
    names, e.g. ``{"downsample_ratio": "auto", "method": None}``)."""

    output_dir: str
    inputs: list[str] = field(default_factory=list)
    manifest: str | None = None
    outputs: str = "composition.mp4,alpha/"
    mode: str = "convert"
    workers: int | None = None
    ray: str | None = None  # None: a local process pool; "local": start a local Ray; else a cluster's address
    chunk_frames: int | None = None
    lead_in: int | None = None
    force: bool = False
    quiet: bool = False
    options: dict = field(default_factory=dict)


def run_batch(request: BatchRequest, coerce) -> Summary:
    """Check the request, gather the items, run them on the chosen executor and return the summary.

    ``coerce(column, text) -> (option name, value)`` types a manifest column as the mode's command line would."""
    from ..job import JobControl
    from ..progress import BatchBar
    from . import chunks, manifest

    _check_request(request)
    outputs = parse_output_names(request.outputs)
    _check_pictures(outputs, request.options)
    if request.manifest:
        items, rejected = manifest.read_manifest(request.manifest, request.mode, coerce)
    else:
        items, rejected = manifest.from_inputs(request.inputs, request.mode)
    manifest.name_items(items, rejected)
    output_dir = Path(request.output_dir)
    if not output_dir.parent.is_dir():
        raise UsageError(f"the folder of --output-dir does not exist: {output_dir.parent}")
    output_dir.mkdir(exist_ok=True)
    plan = Plan(output_dir, outputs, request.chunk_frames,
                chunks.DEFAULT_LEAD_IN if request.lead_in is None else request.lead_in, request.force)
    machine = JobControl().machine_cpus()
    executor = open_executor(request, machine, _preload(request.options, items))
    try:
        bar = BatchBar(len(items) + len(rejected), enabled=not request.quiet)
        with _interruptible():
            return Coordinator(plan, request.options, executor, bar).run(items, rejected)
    finally:
        executor.close()


@contextlib.contextmanager
def _interruptible():
    """Ctrl-C and SIGTERM stop the batch (running items cancelled, finished ones kept: a re-run resumes), even when
    the process was started with SIGINT ignored, as a shell does for a job put in the background (`&`), where
    Python then never raises KeyboardInterrupt; `vidmatte convert` installs its handlers the same way."""
    def interrupt(signum, frame):
        raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers belong to the main thread; a caller elsewhere cancels by other means
        return
    previous = {s: signal.signal(s, interrupt) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _check_request(request: BatchRequest) -> None:
    from ..modes import mode
    from ..modes.base import check_counts, check_device, check_range, parse_ratio

    if bool(request.inputs) == bool(request.manifest):
        raise UsageError("give INPUTS or --manifest FILE (one of them)")
    for name in ("workers", "chunk_frames"):
        value = getattr(request, name)
        if value is not None and value < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be at least 1, not {value}")
    if request.lead_in is not None and request.lead_in < 0:
        raise UsageError(f"--lead-in must be 0 or more, not {request.lead_in}")
    options = request.options
    check_counts(options.get("threads"), options.get("seq_chunk", 1), options.get("warmup", 0))
    mode(request.mode).check_method(options.get("method"), options.get("checkpoint"))
    parse_ratio(options.get("downsample_ratio", "auto"))
    check_device(options.get("device", "auto"))  # the text only: each worker probes its own machine's GPU
    check_range(options.get("start_frame", 0), options.get("end_frame"))
    if request.ray is not None:
        from ..extras import require

        require("ray", "--ray")  # before --output-dir is made


def parse_output_names(text: str) -> list[str]:
    """``composition.mp4,alpha/`` -> names, each checked as the mode's command would check its path."""
    from ..io.writers import parse_output

    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise UsageError("--outputs names nothing; e.g. --outputs composition.mp4,alpha/")
    known = {kind for mode in MODES.values() for kind in mode.kinds}
    kinds = [output_kind(name) for name in names]
    for name, kind in zip(names, kinds):
        if "/" in name.rstrip("/") or kind not in known:
            raise UsageError(f"--outputs: {name!r} must be a kind ({', '.join(sorted(known))}) with an extension "
                             "or a trailing '/', e.g. alpha.mp4 or alpha/")
        parse_output(kind, name if name.endswith("/") else f"/nonexistent-folder/{name}")
    if len(set(kinds)) != len(kinds):
        raise UsageError(f"--outputs names one kind twice: {text}")
    return names


def _check_pictures(names: list[str], options: dict) -> None:
    """--image-format, --bit-depth and --premultiplied against --outputs, as an item would check them, before anything
    is made: a missing extra (EXR) would otherwise fail every item in its worker."""
    from ..io.writers import check_bit_depth, check_image_format, parse_output

    specs = [parse_output(output_kind(name), name if name.endswith("/") else f"/nonexistent-folder/{name}",
                          options.get("bit_depth"), options.get("image_format", "png"),
                          options.get("premultiplied", False)) for name in names]
    check_bit_depth(specs, options.get("bit_depth"))
    check_image_format(specs, options.get("image_format", "png"), options.get("premultiplied", False))


def _preload(options: dict, items) -> dict | None:
    """The weights every worker loads when it starts (RVM for convert, and for guided's prior)."""
    if not any(item.mode == "convert" or (item.mode == "guided" and options.get("prior") != "none")
               for item in items):
        return None
    return {"model": options.get("model", "rvm-mobilenetv3"), "backend": options.get("backend", "onnxruntime"),
            "device": options.get("device", "auto"), "cache": options.get("cache_dir")}


def open_executor(request: BatchRequest, machine_cpus: int, preload: dict | None):
    from .executors import LocalPool, RayPool

    if request.ray is None:
        workers = request.workers or max(1, machine_cpus // 2)
        return LocalPool(workers, max(1, machine_cpus // workers), preload)
    return RayPool(request.workers, preload, None if request.ray == "local" else request.ray)
