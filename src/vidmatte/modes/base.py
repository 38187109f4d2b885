"""What every mode shares: a run's input, range and outputs as settings, checked in one place, and the mode's row.

A front end (the CLI, the API, the page, a batch worker) turns what its user gave into a mode's settings dataclass
and calls ``Mode.build(settings, control)``, which checks them (one-line ``UsageError``s, warnings through the job's
channel), opens the input and outputs as a ``pipeline.Job`` and returns it with the mode's matter. Nothing here
imports numpy or the networks at import time: front ends read the tables (kinds, methods, defaults) to draw their
options, and pay for the heavy parts only when a run is built.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Callable

from ..errors import UsageError

PICTURE_KINDS = ("composition", "alpha", "foreground", "rgba")  # every mode writes these
FOREGROUND_METHODS = ("auto", "none", "estimate", "despill")  # matters.foreground, matters.plate
FOREGROUND_HELP = ("the foreground colours (--foreground, --rgba, --composition): auto: the mode's own (RVM's "
                   "predicted colours; the guided solver's; in background mode unmixed from the plate, and "
                   "despilled on a green or blue screen); none: the frame's colours as they are; estimate: the "
                   "old background taken out of the mixed pixels by multi-level foreground estimation (in "
                   "background mode: unmixed from the plate, no despill); despill: the mode's own, then the "
                   "screen's colour (or the clear background's, when it is one saturated colour) limited on the "
                   "subject's fractional pixels")
DEFAULT_MODEL = "rvm-mobilenetv3"
IMAGE_FORMATS = ("png", "tiff", "exr")  # of folder outputs (io.image_formats writes them)


@dataclass(kw_only=True)
class RunSettings:
    """A run's input, range, outputs and encoding, whatever the mode (``vidmatte convert --help``'s names)."""

    input: str
    outputs: dict[str, str] = field(default_factory=dict)  # kind -> path; a PNG sequence's path ends in "/"
    bit_depth: int | None = None  # None: the format's own (8; EXR 16); PNG/TIFF 8|16, EXR 16 (half)|32 (float)
    image_format: str = "png"  # of folder outputs: png|tiff|exr (io.image_formats)
    premultiplied: bool = False  # RGBA outputs' colour times alpha (straight by default)
    background: str = "green"  # the composition's: green|black|white|#RRGGBB|image|video path
    start_frame: int = 0
    end_frame: int | None = None  # exclusive
    fps: float | None = None  # frame rate of an image-folder input
    input_resize: tuple[int, int] | None = None  # (width, height) before matting
    input_format: str | None = None  # FFmpeg input format of a live source
    input_options: dict[str, str] | None = None  # and its options
    crf: int | None = None
    bitrate: str | None = None
    preset: str = "superfast"
    overwrite: bool = False
    allow_partial: bool = False
    cache_dir: str | None = None  # weights folder (None: $VIDMATTE_CACHE or ~/.cache/vidmatte)
    device: str = "auto"  # where the networks run: auto|cpu|cuda|cuda:N (mps: --backend torch); backends/device.py
    foreground_method: str = "auto"  # FOREGROUND_METHODS: how the foreground colours are made


@dataclass(frozen=True)
class Mode:
    """One row of ``MODES``: what the mode is called, what it takes and makes, and how a run of it is built."""

    name: str
    settings: type  # its RunSettings dataclass
    kinds: tuple[str, ...]  # the outputs it can write
    methods: tuple[str, ...]  # what ``method`` may name (() none: one way to run)
    chunkable: bool  # one long video may be split over batch workers (a recurrent state can be warmed mid-clip)
    builder: Callable  # (settings, control, runners, sinks) -> (job, matter); it imports the heavy parts itself
    summary: str

    def build(self, settings: RunSettings, control, runners=None, sinks: tuple = ()):
        """The checked ``pipeline.Job`` and the mode's matter for ``settings``; ``runners`` opens weights as
        ``backends.open_runner`` does (a batch worker passes one that keeps them loaded); ``sinks``: more outputs
        beside the files (the page's previews)."""
        return self.builder(settings, control, runners=runners, sinks=sinks)

    def check_method(self, method: str | None, checkpoint: str | None) -> None:
        """A method this mode has (None: its default), and a checkpoint only beside a network method."""
        if method is not None and method not in self.methods:
            if not self.methods:
                raise UsageError(f"{self.name} mode has no --method (it runs RVM), not {method!r}")
            raise UsageError(f"{self.name} mode has no method {method!r}; choose {', '.join(self.methods)}")
        if checkpoint and method in (None, "classical"):
            raise UsageError(f"--checkpoint is for a network method of {self.name} mode "
                             f"({', '.join(m for m in self.methods if m != 'classical') or 'it has none'})")

    def settings_from(self, options: dict) -> RunSettings:
        """Settings from options by their command-line names (``vars(args)`` of the mode's command, or a batch item's
        options): outputs by kind (``alpha="pha/"``), text forms parsed (``"1280x720"``, ``"auto"``, ``KEY=VALUE``)
        with the command line's one-line errors; names the mode does not have are ignored."""
        values = dict(options)
        values["outputs"] = {kind: values[kind] for kind in self.kinds if values.get(kind)}
        if isinstance(values.get("input_resize"), str):
            values["input_resize"] = parse_size(values["input_resize"])
        if isinstance(values.get("downsample_ratio"), str):
            values["downsample_ratio"] = parse_ratio(values["downsample_ratio"])
        if "input_option" in values:
            values["input_options"] = parse_input_options(values["input_option"] or [])
        names = {f.name for f in fields(self.settings)}
        return self.settings(**{k: v for k, v in values.items() if k in names})


def job_options(settings: RunSettings, kinds: tuple[str, ...], warn: Callable[[str], None], sinks: tuple = (),
                objects: list[int] | None = None):
    """The pipeline's options for ``settings``, every check a run's outputs and range need made before any work
    starts; warnings (a --crf no output uses, --fps on a video) go to ``warn``. ``objects``: several subjects in
    one run, each output becoming one per object (``pha/`` -> ``pha/<id>/``, ``comp.mp4`` -> ``comp.<id>.mp4``;
    ``--layers`` stays one folder)."""
    from ..io.backgrounds import check_background
    from ..io.writers import check_bit_depth, check_encoding, check_image_format, parse_output
    from ..pipeline import ConvertOptions

    if settings.foreground_method not in FOREGROUND_METHODS:
        raise UsageError(f"--foreground-method must be one of {', '.join(FOREGROUND_METHODS)}, "
                         f"not {settings.foreground_method!r}")
    unknown = set(settings.outputs) - set(kinds)
    if unknown:
        raise UsageError(f"this mode makes no {', '.join(sorted(unknown))} output")
    outputs = [parse_output(kind, settings.outputs[kind], settings.bit_depth, settings.image_format,
                            settings.premultiplied) for kind in kinds if settings.outputs.get(kind)]
    if objects is not None:
        outputs = per_object_outputs(outputs, objects)
    if not outputs and not sinks:
        named = ", ".join(f"--{kind}" for kind in kinds)
        raise UsageError(f"no output requested; give at least one of {named}")
    check_range(settings.start_frame, settings.end_frame)
    check_device(settings.device)
    check_bit_depth(outputs, settings.bit_depth)
    for message in (check_image_format(outputs, settings.image_format, settings.premultiplied),
                    check_encoding(outputs, settings.crf, settings.preset),
                    check_fps(settings.fps, settings.input, settings.input_format)):
        if message:
            warn(message)
    if settings.outputs.get("composition"):
        check_background(settings.background)
    return ConvertOptions(outputs=outputs, background=settings.background, start_frame=settings.start_frame,
                          end_frame=settings.end_frame, input_resize=settings.input_resize,
                          sequence_fps=settings.fps, input_format=settings.input_format,
                          input_options=settings.input_options, crf=settings.crf, bitrate=settings.bitrate,
                          preset=settings.preset, overwrite=settings.overwrite, allow_partial=settings.allow_partial,
                          sinks=list(sinks))


def per_object_outputs(outputs: list, objects: list[int]) -> list:
    """Each output spec as one per object (``job_options``); a ``--layers`` folder holds them all as it is."""
    from dataclasses import replace

    return [spec if spec.kind == "layers" else replace(spec, path=object_path(spec.path, i, spec.is_sequence),
                                                       object=i)
            for spec in outputs for i in (objects if spec.kind != "layers" else [None])]


def object_path(path, object_id: int, is_sequence: bool):
    """Where one object's output goes: a folder ``pha/`` -> ``pha/<id>/``; a file ``comp.mp4`` -> ``comp.<id>.mp4``."""
    from pathlib import Path

    path = Path(path)
    if is_sequence:
        return path / str(object_id)
    return path.with_name(f"{path.stem}.{object_id}{path.suffix}")


def with_foreground(matter, settings: RunSettings):
    """The matter, its colours remade by ``settings.foreground_method`` when that is not the mode's own."""
    if settings.foreground_method == "auto":
        return matter
    from ..matters.foreground import ForegroundMatter

    return ForegroundMatter(matter, settings.foreground_method)


def parse_ratio(text: str) -> float | None:
    """``--downsample-ratio``: "auto" (None: RVM's rule) or a number in (0, 1]."""
    if text == "auto":
        return None
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"--downsample-ratio must be 'auto' or a number, not {text!r}") from None
    if not 0 < value <= 1:
        raise UsageError(f"--downsample-ratio must be in (0, 1], not {value}")
    return value


def parse_size(text: str | None, flag: str = "--input-resize") -> tuple[int, int] | None:
    """``1280x720`` -> (1280, 720)."""
    if not text:
        return None
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise UsageError(f"{flag} must look like 1280x720, not {text!r}") from None
    if w <= 0 or h <= 0:
        raise UsageError(f"{flag} must be positive, not {text!r}")
    return w, h


def parse_input_options(pairs: list[str]) -> dict | None:
    """``["video_size=1280x720", ...]`` -> {"video_size": "1280x720", ...} (None when empty)."""
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--input-option must look like KEY=VALUE, not {pair!r}")
        options[key] = value
    return options or None


def check_range(start: int, end: int | None) -> None:
    if start < 0:
        raise UsageError(f"--start-frame must be 0 or more, not {start}")
    if end is not None and end <= start:
        raise UsageError(f"--end-frame ({end}) must be greater than --start-frame ({start})")


def check_fps(fps: float | None, source: str, input_format: str | None) -> str | None:
    """Refuse a frame rate that is not positive; a warning when the input is a video, which has its own."""
    from pathlib import Path

    from ..io.probe import IMAGE_EXTENSIONS, live_source

    if fps is None:
        return None
    if not math.isfinite(fps) or fps <= 0:
        raise UsageError(f"--fps must be a positive number, not {fps:g}")
    path = Path(source)
    is_video = live_source(source, input_format) is not None or (path.is_file()
                                                                  and path.suffix.lower() not in IMAGE_EXTENSIONS)
    return "--fps is ignored: it sets the frame rate of image inputs; a video keeps its own" if is_video else None


def check_device(text) -> str:
    """``--device``: auto, cpu, cuda or cuda:N (one-line UsageError otherwise); whether that device can be used is
    decided when the mode builds its networks (``backends.device``)."""
    from ..backends.device import check_device as check

    return check(text)


def bind_device(runners, device):
    """``runners`` (``backends.open_runner`` or a batch worker's) opening every set of weights on ``device``."""
    from ..backends.base import runners_on

    return runners_on(runners, device)


def check_counts(threads: int | None, seq_chunk: int = 1, warmup: int = 0) -> None:
    """The model's counts: --seq-chunk and --threads at least 1, --warmup 0 or more."""
    if seq_chunk < 1 or (threads is not None and threads < 1):
        raise UsageError("--seq-chunk and --threads must be at least 1")
    if warmup < 0:
        raise UsageError(f"--warmup must be 0 (off) or a number of frames, not {warmup}")
