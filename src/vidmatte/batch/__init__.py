"""``vidmatte batch``: many videos, or one long one, over a local process pool or a Ray cluster (docs/BATCH.md).

manifest.py (items) -> coordinator.py (plan, records, summary) -> executors.py (pool / Ray) -> tasks.py (a worker
runs ``pipeline.Job``) -> chunks.py (one long video in pieces, stitched); modes.py lists what an item can run as.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import threading
from pathlib import Path

from ..errors import UsageError
from .coordinator import Coordinator, Plan, Summary, output_kind
from .modes import MODES

__all__ = ["run_batch", "Summary"]


def run_batch(args: argparse.Namespace, coerce) -> Summary:
    """Check the command line, gather the items, run them on the chosen executor and return the summary."""
    from ..cli.batch import BATCH_DESTS
    from ..job import JobControl
    from ..progress import BatchBar
    from . import chunks, manifest

    _check_arguments(args)
    outputs = parse_output_names(args.outputs)
    if args.manifest:
        items, rejected = manifest.read_manifest(args.manifest, args.mode, set(MODES), coerce)
    else:
        items, rejected = manifest.from_inputs(args.inputs, args.mode)
    manifest.name_items(items, rejected)
    output_dir = Path(args.output_dir)
    if not output_dir.parent.is_dir():
        raise UsageError(f"the folder of --output-dir does not exist: {output_dir.parent}")
    output_dir.mkdir(exist_ok=True)
    plan = Plan(output_dir, outputs, args.chunk_frames,
                chunks.DEFAULT_LEAD_IN if args.lead_in is None else args.lead_in, args.force)
    base = {k: v for k, v in vars(args).items() if k not in BATCH_DESTS}
    machine = JobControl().machine_cpus()
    executor = open_executor(args, machine, _preload(args, items))
    try:
        bar = BatchBar(len(items) + len(rejected), enabled=not args.quiet)
        with _interruptible():
            return Coordinator(plan, base, executor, bar).run(items, rejected)
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


def _check_arguments(args: argparse.Namespace) -> None:
    from ..cli.convert import check_model_options, check_range, parse_ratio

    if bool(args.inputs) == bool(args.manifest):
        raise UsageError("give INPUTS or --manifest FILE (one of them)")
    for name in ("workers", "chunk_frames"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be at least 1, not {value}")
    if args.lead_in is not None and args.lead_in < 0:
        raise UsageError(f"--lead-in must be 0 or more, not {args.lead_in}")
    check_model_options(args)
    MODES[args.mode].check_method(args.method, args.checkpoint)
    parse_ratio(args.downsample_ratio)
    check_range(args.start_frame, args.end_frame)
    if args.ray is not None:
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


def _preload(args: argparse.Namespace, items) -> dict | None:
    """The weights every worker loads when it starts (RVM for convert, and for guided's prior)."""
    if not any(item.mode == "convert" or (item.mode == "guided" and args.prior != "none") for item in items):
        return None
    return {"model": args.model, "backend": args.backend, "device": args.device, "cache": args.cache_dir}


def open_executor(args: argparse.Namespace, machine_cpus: int, preload: dict | None):
    from .executors import LocalPool, RayPool

    if args.ray is None:
        workers = args.workers or max(1, machine_cpus // 2)
        return LocalPool(workers, max(1, machine_cpus // workers), preload)
    return RayPool(args.workers, preload, None if args.ray == "local" else args.ray)
