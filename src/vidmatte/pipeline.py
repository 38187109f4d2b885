"""The only frame loop: read -> matte -> write, for every mode, the CLI, the API, a page and the batch runner.

A job is a ``Matter`` (what a mode built: RVM's recurrent matter, the guided or the plate matter; ``vidmatte.modes``)
run over a re-readable source in the passes the matter asks for (e.g. a warm-up, then the writing pass;
docs/ARCHITECTURE.md). Within a pass three stages overlap in threads joined by bounded hand-overs, so memory stays flat for any length of video:
  decoder thread:  source -> upright RGB uint8 -> ``matter.prepare`` (cheap, per frame)
  caller's thread: ``matter.matte`` (ONNX Runtime / PyTorch release the GIL while they compute)
  writer thread:   ``Matte`` -> pictures -> every sink of the ``OutputSet`` (files, previews); writing pass only
The caller steers the job through a ``JobControl`` (progress, cancel, stop-input, CPU allotment, warnings): the loop
draws nothing and prints nothing, and nothing here is process-wide, so several jobs can run in one process.
"""

from __future__ import annotations

import os
import queue
import sys
import threading
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from .errors import InputError, PartialInputError, UsageError
from .io.probe import LARGE_FRAME_PIXELS, shift_timecode
from .io.source import open_source
from .io.writers import OutputSpec, check_outputs
from .job import JobControl, PassClock
from .matters.base import Matter, Pass, Span
from .outputs import FileSink, LayersSink, OutputSet, StreamInfo

# Frames in flight cost memory: a 4K frame is ~100 MB as float input and ~130 MB as fgr + pha. Each hand-over
# has a fixed number of slots (a frame holds its slot from ``prepare`` until the next stage is done with it), so at
# most `slots` frames exist per hand-over: 4 at 1080p to smooth out jitter, 2 at 4K to keep memory flat.
SLOT_BYTES = 256 << 20
MAX_SLOTS = 4
_END = object()


def return_large_buffers_to_the_os() -> None:
    """Have glibc mmap every allocation of 1 MiB or more, so freed frame buffers leave the process at once.

    glibc's default threshold adapts upwards (to 32 MiB) after large frees, after which 25 MB frames are carved from
    per-thread heaps that the decode/write threads keep: hundreds of MB of extra peak memory on a 4K clip
    (benchmarks/memory_4k.py). Used above 1440p only: fresh pages for every frame buffer cost page faults that
    smaller frames (CPU-bound, not memory-bound) should not pay. The one process-wide setting the pipeline makes:
    it changes how much memory is returned, never a result, so other jobs in the process are unaffected.
    """
    global _MALLOC_TUNED
    if _MALLOC_TUNED or not sys.platform.startswith("linux"):
        return
    _MALLOC_TUNED = True
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 1 << 20)  # M_MMAP_THRESHOLD; setting it also turns off the dynamic adjustment
    except (OSError, AttributeError):
        pass


_MALLOC_TUNED = False


def side_threads(cpus: int) -> int:
    """Threads for each of decoding and encoding: half the job's CPUs, at least one.

    The network takes every core it is given; FFmpeg's own choice (cores + 1 decoder threads, 1.5 x cores for x264)
    only adds switching and duplicated lookahead work beside it. On 2 cores, 2 frame-decoding threads and 1 x264
    thread ran the 1080p pipeline 12% faster (median of 6 interleaved repeats, faster in 5 of 6;
    docs/BENCHMARKS.md). A single x264 superfast thread still encodes 1080p at ~35 fps.
    """
    return max(1, cpus // 2)


def slots_for(width: int, height: int) -> int:
    per_frame = width * height * 4 * 4  # float32 RGB in, float32 RGB + alpha out
    return max(2, min(MAX_SLOTS, 1 + SLOT_BYTES // per_frame))


@dataclass(frozen=True)
class _Stamp:
    """What later stages need to know of an input frame: not its pixels, which the matter's result carries."""

    index: int
    pts: int


@dataclass
class ConvertOptions:
    outputs: list[OutputSpec]
    background: str = "green"
    start_frame: int = 0
    end_frame: int | None = None  # exclusive
    input_resize: tuple[int, int] | None = None  # (width, height) before matting, as RVM's convert_video
    sequence_fps: float | None = None  # frame rate given to image-folder inputs
    input_format: str | None = None  # FFmpeg input format of a live source (v4l2, avfoundation, lavfi...)
    input_options: dict | None = None  # and its options ({"video_size": "1280x720", "framerate": "30"})
    crf: int | None = None
    bitrate: str | None = None
    preset: str = "superfast"
    encoder_threads: int | None = None  # None: side_threads() up to 1440p; 0: the encoder's own choice
    overwrite: bool = False
    allow_partial: bool = False
    sinks: list = field(default_factory=list)  # more sinks beside the files, e.g. outputs.CallbackSink previews


@dataclass
class ConvertResult:
    frames: int
    seconds: float
    outputs: dict = field(default_factory=dict)
    warning: str | None = None
    details: dict = field(default_factory=dict)  # what the matter reports of its run (``summary()``), e.g. reuse

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def to_json(self) -> dict:
        return {"frames": self.frames, "seconds": round(self.seconds, 3), "fps": round(self.fps, 3),
                "outputs": self.outputs, **self.details}


def convert(source: str | os.PathLike, matter: Matter, options: ConvertOptions,
            control: JobControl | None = None) -> ConvertResult:
    """Matte every frame of ``source`` and write the requested outputs (all or nothing under final names).

    ``control`` follows and steers the job (progress, cancel, stop-input, CPUs, warnings). Raises ``Cancelled``
    when cancelled.
    """
    return Job(source, options, control or JobControl()).run(matter)


def written_outputs(sinks: list) -> dict:
    """What ``--json`` lists under "outputs": kind -> path; with several objects, kind -> {object id: path}."""
    written: dict = {}
    for sink in sinks:
        if not isinstance(sink, (FileSink, LayersSink)):
            continue
        spec = sink.spec
        if spec.object is None:
            written[spec.kind] = str(spec.path)
        else:
            written.setdefault(spec.kind, {})[str(spec.object)] = str(spec.path)
    return written


class Job:
    """One run of ``convert``. Created first, it checks everything about the input and the outputs (so a caller can
    report a typo before loading a model); ``run(matter)`` then runs the matter's passes and commits or removes."""

    def __init__(self, source, options: ConvertOptions, control: JobControl):
        if not options.outputs and not options.sinks:
            raise UsageError("no output requested")
        self.options, self.control = options, control
        self.details: dict = {}  # what the mode says of the run beside the matter's summary, e.g. its "device"
        self.source = open_source(source, options.sequence_fps, options.input_format, options.input_options)
        info = self.source.info
        if options.start_frame < 0 or (options.end_frame is not None and options.end_frame <= options.start_frame):
            raise UsageError(f"empty frame range: start {options.start_frame}, end {options.end_frame}")
        expected = self.source.expected_frames(options.start_frame, options.end_frame)
        if expected == 0 and options.start_frame:
            raise InputError(f"the start frame ({options.start_frame}) is past the end of the input "
                             f"({self.source.expected_frames()} frames)")
        check_outputs(options.outputs, Path(source), options.overwrite, expected)
        self.width, self.height = options.input_resize or (info.width, info.height)
        self.large_frames = self.width * self.height > LARGE_FRAME_PIXELS
        if self.large_frames:
            return_large_buffers_to_the_os()
        self.cpus = control.machine_cpus()
        stop = options.end_frame if expected is None else options.start_frame + expected
        self.span = Span(options.start_frame, stop, self.source.seekable)
        self.background = None
        if any(spec.kind == "composition" for spec in options.outputs) or options.sinks:
            from .io.backgrounds import Background

            self.background = Background(options.background, self.width, self.height)  # a bad colour says so now
        self.frames_written = 0

    # --- orchestration ----------------------------------------------------------------------------------
    def run(self, matter: Matter) -> ConvertResult:
        self.matter = matter
        self.matter.reset()  # a new video: state (and the auto downsample ratio) start afresh
        passes = self.matter.passes(self.span)
        self.control.log.debug("job: %s (%dx%d, frames %s..%s), %d CPUs, passes: %s", self.source.info.path,
                               self.width, self.height, self.span.first, self.span.stop, self.cpus,
                               ", ".join(f"{p.name} {p.start}..{p.stop}{' backward' if p.reverse else ''}"
                                         for p in passes))
        outputs = self.open_outputs()
        started = time.monotonic()
        try:
            for i, p in enumerate(passes):
                self.matter.begin_pass(p)
                clock = PassClock(self.control, p.name, i, len(passes), self._pass_total(p))
                input_error = _PassRun(self, p, clock, outputs if p.writes else None).run()
                if not p.writes and input_error is not None and not isinstance(input_error, PartialInputError):
                    raise input_error  # a damaged range is the writing pass's to report, where it counts
            return self._finish(outputs, input_error, time.monotonic() - started)
        except BaseException:
            outputs.abort()
            raise

    def _pass_total(self, p: Pass) -> int | None:
        if p.writes:
            return self.source.expected_frames(p.start, p.stop)
        return p.length

    def _finish(self, outputs: OutputSet, input_error: BaseException | None, seconds: float) -> ConvertResult:
        if input_error is not None and not isinstance(input_error, PartialInputError):
            raise input_error
        if self.frames_written == 0:
            if input_error is None and self.options.start_frame:
                raise InputError(f"the start frame ({self.options.start_frame}) is past the end of the input")
            raise input_error or InputError("no frames to process")
        outputs.close()
        result = ConvertResult(self.frames_written, seconds, written_outputs(outputs.sinks))
        summary = getattr(self.matter, "summary", None)  # optional in the Matter protocol
        result.details = {**self.details, **(dict(summary()) if summary is not None else {})}
        if input_error is not None:
            if not self.options.allow_partial:
                raise PartialInputError(f"{input_error}; the outputs keep them all ({self.frames_written} frames; "
                                        "allowing a partial input accepts this)", self.frames_written)
            result.warning = str(input_error)
        return result

    def open_outputs(self) -> OutputSet:
        """The job's sinks, under temporary names until closed (the writing pass; batch stitching too)."""
        sinks: list = []
        try:
            stream = self._stream_info()
            threads = self._encoder_threads()
            for spec in self.options.outputs:
                if spec.kind == "layers":
                    sinks.append(LayersSink(spec))
                    continue
                sinks.append(FileSink(spec, stream, crf=self.options.crf, bitrate=self.options.bitrate,
                                      preset=self.options.preset, threads=threads))
            return OutputSet(sinks + list(self.options.sinks), self.background)
        except BaseException:
            OutputSet(sinks, self.background).abort()
            raise

    def _stream_info(self) -> StreamInfo:
        info, options = self.source.info, self.options
        time_base = info.time_base or 1 / Fraction(info.fps).limit_denominator(1001)
        return StreamInfo(
            self.width, self.height, time_base, info.fps, str(info.path),
            has_audio=info.kind == "video" and bool(info.audio),
            start_seconds=float(options.start_frame / info.fps) if options.start_frame else 0.0,
            end_seconds=float(options.end_frame / info.fps) if options.end_frame else None,
            # The outputs start at the range's first frame: so does their timecode.
            timecode=shift_timecode(info.timecode, options.start_frame, info.fps) if info.timecode else None)

    def _encoder_threads(self) -> int:
        if self.options.encoder_threads is not None:
            return self.options.encoder_threads
        # Above 1440p one x264 thread takes ~110 ms a frame, too close to the network's time: x264 decides there.
        return 0 if self.large_frames else side_threads(self.cpus)

    def resize(self, image: np.ndarray) -> np.ndarray:
        if (image.shape[1], image.shape[0]) == (self.width, self.height):
            return image
        import cv2

        return cv2.resize(image, (self.width, self.height), interpolation=cv2.INTER_AREA)


class _PassRun:
    """One pass over the source: decoder thread -> matter (this thread) -> writer thread (writing pass only)."""

    def __init__(self, job: Job, p: Pass, clock: PassClock, outputs: OutputSet | None):
        self.job, self.p, self.clock, self.outputs = job, p, clock, outputs
        self.matter, self.control = job.matter, job.control
        self.stop = threading.Event()  # this pass is over (error, cancel): every stage leaves at once
        # A chunk of seq_chunk frames is gathered before the network runs: one more slot than that keeps the decoder
        # busy meanwhile (fewer would deadlock).
        slots = max(slots_for(job.width, job.height), job.matter.seq_chunk + 1)
        self.input_slots = threading.Semaphore(slots)  # prepared frames, freed once matted
        self.output_slots = threading.Semaphore(slots)  # mattes, freed once written
        self.decoded: queue.Queue = queue.Queue()  # bounded by input_slots
        self.matted: queue.Queue = queue.Queue()  # bounded by output_slots
        self.writer_errors: list[BaseException] = []

    def run(self) -> BaseException | None:
        """Returns the source's error (if any) for the job to judge; raises what must abort the job."""
        decoder = threading.Thread(target=self._decode, name="vidmatte-decode", daemon=True)
        writer = threading.Thread(target=self._write, name="vidmatte-write", daemon=True)
        decoder.start()
        if self.outputs is not None:
            writer.start()
        try:
            input_error = self._matte()
            if self.outputs is not None:
                writer.join()
        finally:
            # Every path out of a pass, error and cancel included, leaves no thread behind: the stages see `stop`
            # within one frame and return (a writer finishes the frame it is encoding, then leaves its container
            # for the job to close or remove).
            self.stop.set()
            decoder.join()
            if writer.is_alive():
                writer.join()
        if self.writer_errors:
            raise self.writer_errors[0]
        self.control.raise_if_cancelled()
        return input_error

    # --- the three stages -------------------------------------------------------------------------------
    def _decode(self) -> None:
        job, p = self.job, self.p
        frames = job.source.frames(p.start, p.stop, reverse=p.reverse, decoder_threads=max(2, side_threads(job.cpus)))
        try:
            for frame in frames:
                if not self._acquire(self.input_slots, live_stop=True):
                    break
                image = job.resize(frame.image)
                self.decoded.put((_Stamp(frame.index, frame.pts), self.matter.prepare(image, frame.index)))
        except BaseException as exc:  # forwarded to the caller's thread, which decides what it means
            self.decoded.put(exc)
            return
        finally:
            getattr(frames, "close", lambda: None)()  # the source's container closes here, in the thread that used it
        self.decoded.put(_END)

    def _matte(self) -> BaseException | None:
        """Runs in the caller's thread; returns the decoder's exception (if any) after forwarding the end."""
        foreground = self.outputs is not None and self.outputs.needs_foreground
        while True:
            if self.control.cancelled:
                self._end_writer()
                return None
            stamps, payloads, ending = self._gather(self.matter.seq_chunk)
            if stamps:
                if self.outputs is not None and not all(self._acquire(self.output_slots) for _ in stamps):
                    return None
                mattes = self.matter.matte(payloads)
                del payloads
                for stamp, matte in zip(stamps, mattes):
                    self.input_slots.release()
                    if self.outputs is not None:
                        self.matted.put((stamp, matte.trim(foreground)))
                    self.clock.advance()
                del mattes
            if ending is not None:
                self._end_writer()
                return ending if isinstance(ending, BaseException) else None

    def _end_writer(self) -> None:
        if self.outputs is not None:
            self.matted.put(_END)

    def _gather(self, count: int) -> tuple[list, list, object]:
        """Up to ``count`` decoded frames; ``ending`` is _END, the decoder's exception or a stop (else None)."""
        stamps, payloads = [], []
        while len(stamps) < count:
            item = self._get(self.decoded)
            if item is _END or item is None or isinstance(item, BaseException):
                return stamps, payloads, (_END if item is None else item)
            stamps.append(item[0])
            payloads.append(item[1])
            del item
        return stamps, payloads, None

    def _write(self) -> None:
        try:
            while True:
                item = self._get(self.matted)
                if item is _END or item is None:
                    return
                stamp, matte = item
                del item
                self.outputs.write(stamp.index, stamp.pts, matte)
                del matte
                self.output_slots.release()
                self.job.frames_written += 1
        except BaseException as exc:
            self.writer_errors.append(exc)
            self.stop.set()

    # --- helpers ----------------------------------------------------------------------------------------
    def _halted(self, live_stop: bool = False) -> bool:
        if self.stop.is_set() or self.control.cancelled:
            return True
        # A camera was stopped: read no more, finish what is in flight (the normal end of a recording).
        return live_stop and self.control.input_stopped

    def _acquire(self, slots: threading.Semaphore, live_stop: bool = False) -> bool:
        """Wait for a free slot; give up (False) when the pass is stopping."""
        while not self._halted(live_stop):
            if slots.acquire(timeout=0.1):
                return True
        return False

    def _get(self, q: queue.Queue):
        while not self._halted():
            try:
                return q.get(timeout=0.1)
            except queue.Empty:
                continue
        return None

