"""The only frame loop: read -> matte -> compose -> write.

Three stages overlap in threads joined by small bounded queues, so memory stays flat for any length of video:
  decoder thread:  file -> upright RGB uint8 -> the network's input (on the fast ONNX path a small copy only)
  caller's thread: the network (ONNX Runtime / PyTorch release the GIL while they compute)
  writer thread:   full-resolution pictures from the network's results (``Matte``), encoding, muxing
The CLI, the Python API and any UI call ``convert``; none of them has a loop of its own.
"""

from __future__ import annotations

import os
import queue
import sys
import threading
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from .compose import alpha_to_u16, planes_to_rgb_u8, rgba
from .errors import InputError, PartialInputError, UsageError
from .io.audio import AudioTrack
from .io.backgrounds import Background
from .io.probe import LARGE_FRAME_PIXELS
from .io.readers import open_reader
from .io.writers import OutputSpec, check_writable, open_writer
from .matte import DenseMatte, Matte
from .matters.recurrent import RecurrentMatter
from .interrupt import INTERRUPTED
from .progress import Progress

# Frames in flight cost memory: a 4K frame is ~100 MB as float input and ~130 MB as fgr + pha. Each hand-over
# has a fixed number of slots (a tensor holds its slot from creation until the next stage is done with it), so at
# most `slots` frames exist per hand-over: 4 at 1080p to smooth out jitter, 2 at 4K to keep memory flat.
SLOT_BYTES = 256 << 20
MAX_SLOTS = 4
_END = object()


def return_large_buffers_to_the_os() -> None:
    """Have glibc mmap every allocation of 1 MiB or more, so freed frame buffers leave the process at once.

    glibc's default threshold adapts upwards (to 32 MiB) after large frees, after which 25 MB frames are carved from
    per-thread heaps that the decode/write threads keep: hundreds of MB of extra peak memory on a 4K clip
    (benchmarks/memory_4k.py). Used above 1440p only: fresh pages for every frame buffer cost page faults that
    smaller frames (CPU-bound, not memory-bound) should not pay. Process-wide and sticky; a no-op off glibc.
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



def side_threads() -> int:
    """Threads for each of decoding and encoding: half the cores, at least one.

    The network takes every core it is given; FFmpeg's own choice (cores + 1 decoder threads, 1.5 x cores for x264)
    only adds switching and duplicated lookahead work beside it. On 2 cores, 2 frame-decoding threads and 1 x264
    thread ran the 1080p pipeline 12% faster (median of 6 interleaved repeats, faster in 5 of 6;
    docs/BENCHMARKS.md). A single x264 superfast thread still encodes 1080p at ~35 fps.
    """
    return max(1, (os.cpu_count() or 2) // 2)


def slots_for(width: int, height: int) -> int:
    per_frame = width * height * 4 * 4  # float32 RGB in, float32 RGB + alpha out
    return max(2, min(MAX_SLOTS, 1 + SLOT_BYTES // per_frame))


@dataclass(frozen=True)
class _Stamp:
    """What later stages need to know of an input frame: not its pixels, which are freed after the tensor is made."""

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
    progress: bool = True


@dataclass
class ConvertResult:
    frames: int
    seconds: float
    outputs: dict = field(default_factory=dict)
    warning: str | None = None

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def to_json(self) -> dict:
        return {"frames": self.frames, "seconds": round(self.seconds, 3), "fps": round(self.fps, 3),
                "outputs": self.outputs}


def convert(source: str | os.PathLike, matter: RecurrentMatter, options: ConvertOptions) -> ConvertResult:
    """Matte every frame of ``source`` and write the requested outputs (all or nothing under final names)."""
    if not options.outputs:
        raise UsageError("no output requested; give at least one of --composition, --alpha, --foreground, --rgba")
    reader = open_reader(source, options.start_frame, options.end_frame, options.sequence_fps, options.input_format,
                         options.input_options)
    _check_outputs(Path(source), options, reader.expected_frames())
    reader.decoder_threads = max(2, side_threads())  # two frame threads keep up with any network rate below 4K
    width, height = options.input_resize or (reader.info.width, reader.info.height)
    if width * height > LARGE_FRAME_PIXELS:
        return_large_buffers_to_the_os()
    matter.reset()  # a new video: the recurrent state (and the auto downsample ratio) start afresh
    job = _Job(reader, matter, options, width, height)
    return job.run()


def _takes_16_bit(spec: OutputSpec) -> bool:
    return spec.is_sequence or spec.path.suffix.lower() in (".png", ".tif", ".tiff")


def _check_outputs(source: Path, options: ConvertOptions, frames: int | None) -> None:
    seen = set()
    for spec in options.outputs:
        if spec.is_image and frames != 1:
            raise UsageError(f"{spec.path} holds one image but the input has {frames or 'several'} frames; "
                             "use a folder/ or a video file")
        resolved = spec.path.resolve()
        if resolved == source.resolve():
            raise UsageError(f"output {spec.path} is the input")
        if resolved in seen:
            raise UsageError(f"{spec.path} is requested twice")
        seen.add(resolved)
        check_writable(spec, options.overwrite)


class _Job:
    def __init__(self, reader, matter: RecurrentMatter, options: ConvertOptions, width: int, height: int):
        self.reader, self.matter, self.options = reader, matter, options
        self.width, self.height = width, height
        self.stop = threading.Event()  # abort: every stage leaves at once
        self.stop_reading = threading.Event()  # a live source was stopped: read no more, finish what is in flight
        self.live = reader.info.kind == "live"
        self.errors: list[BaseException] = []
        # A chunk of seq_chunk frames is gathered before the network runs: one more slot than that keeps the decoder
        # busy meanwhile (fewer would deadlock).
        slots = max(slots_for(width, height), matter.seq_chunk + 1)
        self.input_slots = threading.Semaphore(slots)  # float tensors made by the decoder, freed after inference
        self.output_slots = threading.Semaphore(slots)  # network outputs, freed once written
        self.decoded: queue.Queue = queue.Queue()  # bounded by input_slots
        self.matted: queue.Queue = queue.Queue()  # bounded by output_slots
        self.writers: list = []
        self.kinds = {spec.kind for spec in options.outputs}
        self.needs_foreground = bool(self.kinds - {"alpha"})
        self.large_frames = width * height > LARGE_FRAME_PIXELS
        self.background: Background | None = None
        self.frames_written = 0

    # --- the three stages -------------------------------------------------------------------------------
    def _decode(self) -> None:
        try:
            for frame in self.reader:
                if not self._acquire(self.input_slots, self.stop_reading):
                    break
                image = self._resize(frame.image)
                # For a network that takes the whole frame as float, large frames wait as uint8 (25 MB at 4K) and
                # become float (100 MB) only when the network is ready for them; everything else is prepared here,
                # off the network's thread.
                payload = image if self.large_frames and not self.matter.fused_tail else self.matter.prepare(image)
                self.decoded.put((_Stamp(frame.index, frame.pts), payload))
        except BaseException as exc:  # forwarded to the caller's thread, which decides what it means
            self.decoded.put(exc)
            return
        self.decoded.put(_END)

    def _matte(self, progress: Progress) -> BaseException | None:
        """Runs in the caller's thread; returns the decoder's exception (if any) after forwarding the end."""
        while True:
            if INTERRUPTED.is_set():
                if not self.live:
                    raise KeyboardInterrupt
                # Stopping a camera is the normal end of a recording: finish the outputs with what was matted.
                self.stop_reading.set()
                self.matted.put(_END)
                return None
            stamps, payloads, ending = self._gather(self.matter.seq_chunk)
            if stamps:
                if not all(self._acquire(self.output_slots) for _ in stamps):
                    return None
                mattes = self.matter.matte(payloads)
                del payloads
                for stamp, matte in zip(stamps, mattes):
                    self.input_slots.release()
                    self.matted.put((stamp, self._hand_over(matte)))
                    progress.update()
                del mattes
            if ending is not None:
                self.matted.put(_END)
                return ending if isinstance(ending, BaseException) else None

    def _hand_over(self, matte: Matte) -> Matte:
        """Dense results drop fgr when no output uses it and, for large frames, pack it to uint8 here.

        Above 1440p the float planes (100 MB at 4K) waiting in the hand-over dominate peak memory, so they are
        packed at the cost of ~30 ms of the network's thread; smaller frames keep that work on the writer.
        (Guided results are the uint8 frame plus small coefficients already.)
        """
        if isinstance(matte, DenseMatte):
            if not self.needs_foreground:
                matte.fgr = None
            elif self.large_frames:
                matte.fgr = planes_to_rgb_u8(matte.fgr)
        return matte

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
        first_pts = None
        try:
            while True:
                item = self._get(self.matted)
                if item is _END or item is None:
                    return
                stamp, matte = item
                del item
                first_pts = stamp.pts if first_pts is None else first_pts
                self._write_frame(stamp, matte, stamp.pts - first_pts)
                del matte
                self.output_slots.release()
                self.frames_written += 1
        except BaseException as exc:
            self.errors.append(exc)
            self.stop.set()

    def _write_frame(self, stamp: _Stamp, matte: Matte, pts: int) -> None:
        background = None
        if "composition" in self.kinds:  # a solid colour as one pixel where the matte can use it (no full copy)
            background = (self.background.frame_or_colour(stamp.index) if matte.takes_colour_pixel
                          else self.background.frame(stamp.index))
        pictures = matte.pictures(background, foreground=bool(self.kinds & {"foreground", "rgba"}),
                                  alpha=bool(self.kinds & {"alpha", "rgba"}))
        for spec, writer in self.writers:
            if spec.kind == "alpha":
                sixteen = spec.bit_depth == 16 and _takes_16_bit(spec)
                writer.write(alpha_to_u16(pictures.alpha) if sixteen else pictures.alpha_u8, pts)
            elif spec.kind == "foreground":
                writer.write(pictures.foreground, pts)
            elif spec.kind == "rgba":
                writer.write(rgba(pictures.foreground, pictures.alpha_u8), pts)
            else:
                writer.write(pictures.composition, pts)

    # --- orchestration ----------------------------------------------------------------------------------
    def run(self) -> ConvertResult:
        self._open_writers()
        progress = Progress(self.reader.expected_frames(), self.options.progress)
        decoder = threading.Thread(target=self._decode, name="vidmatte-decode", daemon=True)
        writer = threading.Thread(target=self._write, name="vidmatte-write", daemon=True)
        decoder.start()
        writer.start()
        try:
            input_error = self._matte(progress)
            writer.join()
        except BaseException:
            self._abort(decoder, writer)
            progress.close()
            raise
        progress.close()
        if self.errors:
            self._abort(decoder, writer)
            raise self.errors[0]
        return self._finish(input_error, progress.elapsed)

    def _finish(self, input_error: BaseException | None, seconds: float) -> ConvertResult:
        if input_error is not None and not isinstance(input_error, PartialInputError):
            self._abort_writers()
            raise input_error
        if self.frames_written == 0:
            self._abort_writers()
            if input_error is None and self.options.start_frame:
                raise InputError(f"--start-frame {self.options.start_frame} is past the end of the input")
            raise input_error or InputError("no frames to process")
        self._close_writers()
        outputs = {spec.kind: str(spec.path) for spec, _ in self.writers}
        result = ConvertResult(self.frames_written, seconds, outputs)
        if input_error is not None:
            if not self.options.allow_partial:
                raise PartialInputError(f"{input_error}; the outputs keep them all ({self.frames_written} frames; "
                                        "--allow-partial accepts this)", self.frames_written)
            result.warning = str(input_error)
        return result

    def _open_writers(self) -> None:
        info = self.reader.info
        time_base = info.time_base or 1 / Fraction(info.fps).limit_denominator(1001)
        start_seconds = float(self.options.start_frame / info.fps) if self.options.start_frame else 0.0
        end_seconds = float(self.options.end_frame / info.fps) if self.options.end_frame else None
        try:
            for spec in self.options.outputs:
                audio = None
                if spec.kind != "alpha" and not spec.is_sequence and info.kind == "video" and info.audio:
                    audio = AudioTrack(info.path, start_seconds, end_seconds)
                writer = open_writer(spec, self.width, self.height, time_base, info.fps, crf=self.options.crf,
                                     bitrate=self.options.bitrate, preset=self.options.preset, audio=audio,
                                     threads=self._encoder_threads())
                self.writers.append((spec, writer))
            if any(spec.kind == "composition" for spec in self.options.outputs):
                self.background = Background(self.options.background, self.width, self.height)
        except BaseException:
            self._abort_writers()
            raise

    def _encoder_threads(self) -> int:
        if self.options.encoder_threads is not None:
            return self.options.encoder_threads
        # Above 1440p one x264 thread takes ~110 ms a frame, too close to the network's time: x264 decides there.
        return 0 if self.large_frames else side_threads()

    def _close_writers(self) -> None:
        try:
            for _, writer in self.writers:
                writer.close()
        except BaseException:
            self._abort_writers()  # commit is all or nothing for this run's files that are not final yet
            raise
        finally:
            if self.background is not None:
                self.background.close()

    def _abort(self, decoder: threading.Thread, writer: threading.Thread) -> None:
        self.stop.set()
        decoder.join(timeout=0.5)
        writer.join(timeout=1.0)
        # A writer thread still inside an encoder call must not have its container closed under it (x264's own
        # threads can deadlock); its temporary files are simply removed and the process is on its way out.
        self._abort_writers(close=not writer.is_alive())

    def _abort_writers(self, close: bool = True) -> None:
        for _, writer in self.writers:
            writer.abort() if close else writer.discard()

    # --- helpers ----------------------------------------------------------------------------------------
    def _resize(self, image: np.ndarray) -> np.ndarray:
        if (image.shape[1], image.shape[0]) == (self.width, self.height):
            return image
        import cv2

        return cv2.resize(image, (self.width, self.height), interpolation=cv2.INTER_AREA)

    def _acquire(self, slots: threading.Semaphore, also: threading.Event | None = None) -> bool:
        """Wait for a free slot; give up (False) when the job is stopping (or ``also`` is set)."""
        while not self.stop.is_set() and not (also is not None and also.is_set()):
            if slots.acquire(timeout=0.1):
                return True
        return False

    def _get(self, q: queue.Queue):
        while not self.stop.is_set():
            try:
                return q.get(timeout=0.1)
            except queue.Empty:
                continue
        return None


def warn(message: str) -> None:
    print(f"vidmatte: warning: {message}", file=sys.stderr)
