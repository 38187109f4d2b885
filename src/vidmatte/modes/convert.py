"""The convert mode: RVM's recurrent network over the frames, no guidance (``vidmatte convert``, the page's "auto")."""

from __future__ import annotations

from dataclasses import dataclass

from ..matters.recurrent import DEFAULT_WARMUP
from .base import DEFAULT_MODEL, PICTURE_KINDS, RunSettings, check_counts, job_options, with_foreground

BACKENDS = ("onnxruntime", "onnxruntime-whole", "torch")
KINDS = PICTURE_KINDS


@dataclass(kw_only=True)
class ConvertSettings(RunSettings):
    model: str = DEFAULT_MODEL  # a registered name or an .onnx path
    backend: str = "onnxruntime"
    downsample_ratio: float | None = None  # None: RVM's rule, min(512 / max(h, w), 1)
    seq_chunk: int = 1  # frames per network call (torch backend)
    warmup: int = DEFAULT_WARMUP
    threads: int | None = None  # inference threads (None: the job's CPUs)


def check_model(settings: ConvertSettings) -> None:
    from ..errors import UsageError

    if settings.backend not in BACKENDS:
        raise UsageError(f"backend must be one of {', '.join(BACKENDS)}, not {settings.backend!r}")
    if settings.downsample_ratio is not None and not 0 < settings.downsample_ratio <= 1:
        raise UsageError(f"--downsample-ratio must be in (0, 1], not {settings.downsample_ratio}")
    check_counts(settings.threads, settings.seq_chunk, settings.warmup)


def build(settings: ConvertSettings, control, runners=None, sinks: tuple = ()):
    from ..backends.base import resolve_device
    from ..matters.recurrent import RecurrentMatter
    from ..pipeline import Job

    if runners is None:
        from ..backends import open_runner as runners
    options = job_options(settings, KINDS, control.warn, sinks)
    check_model(settings)
    job = Job(settings.input, options, control)  # the input and every output checked before the model loads
    device = resolve_device(settings.backend, settings.device)
    job.details["device"] = device.name
    runner = runners(settings.model, settings.backend, threads=settings.threads, device=device,
                     cache=settings.cache_dir)
    return job, with_foreground(RecurrentMatter(runner, settings.downsample_ratio, seq_chunk=settings.seq_chunk,
                                                warmup=settings.warmup), settings)
