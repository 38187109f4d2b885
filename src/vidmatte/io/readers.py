"""Frame sources: a video file (anything FFmpeg decodes), a live source (camera), a folder of images, an image.

Every reader yields upright uint8 RGB frames [H,W,3] with their presentation timestamps, so writers can keep the
input's timing (variable frame rate included).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import numpy as np

from ..errors import InputError, PartialInputError
from .images import read_rgb
from .probe import LARGE_FRAME_PIXELS, SourceInfo, list_images, open_container, probe


@dataclass
class Frame:
    index: int  # position in the input (before --start-frame is applied)
    image: np.ndarray  # uint8 [H,W,3] RGB, upright
    pts: int  # presentation timestamp in ``time_base`` units
    time_base: Fraction


def open_reader(path: str | os.PathLike, start_frame: int = 0, end_frame: int | None = None,
                fps: float | None = None, input_format: str | None = None,
                input_options: dict | None = None) -> "VideoReader | ImageReader":
    """Frames ``start_frame <= index < end_frame`` of ``path`` (video, live source, image folder or image)."""
    info = probe(path, fps, input_format, input_options)
    if start_frame < 0 or (end_frame is not None and end_frame <= start_frame):
        raise InputError(f"empty frame range: start {start_frame}, end {end_frame}")
    cls = VideoReader if info.kind in ("video", "live") else ImageReader
    return cls(info, start_frame, end_frame)


class _Reader:
    decoder_threads: int | None = None  # video: None is FFmpeg's choice (cores + 1); the pipeline sets fewer
    def __init__(self, info: SourceInfo, start_frame: int, end_frame: int | None):
        self.info = info
        self.start_frame = start_frame
        self.end_frame = end_frame

    def expected_frames(self) -> int | None:
        """How many frames this reader should yield (None when the container does not say)."""
        total = self.info.frames
        if total is None:  # a live source runs until --end-frame (or Ctrl-C)
            live_bound = self.info.kind == "live" and self.end_frame is not None
            return self.end_frame - self.start_frame if live_bound else None
        stop = total if self.end_frame is None else min(total, self.end_frame)
        return max(stop - self.start_frame, 0)

    def _in_range(self, index: int) -> bool:
        return index >= self.start_frame

    def _past_end(self, index: int) -> bool:
        return self.end_frame is not None and index >= self.end_frame


class VideoReader(_Reader):
    def __iter__(self) -> Iterator[Frame]:
        return decode_video(self.info, self.start_frame, self.end_frame, self.decoder_threads)


def open_video_stream(info: SourceInfo, decoder_threads: int | None = None):
    """(container, first video stream) with the decoder threads set as every reader of ``info`` sets them."""
    container = open_container(info.path, info.input_format, info.input_options)
    stream = container.streams.video[0]
    # Frame threads decode ahead (fast), but each holds whole frames: above ~1440p slice threads keep memory flat.
    large = info.width * info.height > LARGE_FRAME_PIXELS
    stream.thread_type = "SLICE" if large else "FRAME"
    if not large and decoder_threads:
        stream.thread_count = decoder_threads
    return container, stream


def decode_video(info: SourceInfo, start: int = 0, stop: int | None = None,
                 decoder_threads: int | None = None) -> Iterator[Frame]:
    """Frames ``start <= index < stop`` decoded from the beginning, each numbered by counting (the reference
    numbering every other way of reading a video must agree with)."""
    import av

    container, stream = open_video_stream(info, decoder_threads)
    index = 0
    damaged: list[int] = []
    try:
        try:
            for frame in container.decode(stream):
                if stop is not None and index >= stop:
                    break
                if index >= start:
                    if frame.is_corrupt:
                        damaged.append(index)
                    yield to_frame(frame, index, stream.time_base, info.rotation)
                index += 1
        except av.error.FFmpegError as exc:
            raise broken_stream(info, index, exc, max(index - start, 0)) from None
    finally:
        container.close()
    check_complete(info, start, stop, index)
    check_intact(info, damaged, max(index - start, 0))


def broken_stream(info: SourceInfo, index: int, exc: Exception, done: int) -> PartialInputError:
    reason = getattr(exc, "strerror", None) or exc
    return PartialInputError(f"{info.path}: the stream broke at frame {index} ({reason}); {done} frames decoded", done)


def check_complete(info: SourceInfo, start: int, stop: int | None, decoded_until: int) -> None:
    """Raise when the stream ended before the frames the container promised (``decoded_until``: one past the last
    frame that came out)."""
    if decoded_until == 0:
        raise InputError(f"{info.path}: no frame could be decoded")
    declared = info.frames
    wanted = declared if stop is None else min(declared or 0, stop)
    # The container's index promises `declared` frames; more than one missing means the file is truncated.
    if declared and decoded_until < wanted - 1:
        done = max(decoded_until - start, 0)
        raise PartialInputError(
            f"{info.path}: the stream ended at frame {decoded_until} of {declared} (truncated?); "
            f"{done} frames decoded", done)


def check_intact(info: SourceInfo, damaged: list[int], done: int) -> None:
    """Corrupt data inside the stream: FFmpeg conceals it (the frames come out, with smeared blocks) and flags
    the frames; say which, so a damaged file is not passed off as a clean result."""
    if not damaged:
        return
    damaged = sorted(damaged)
    shown = ", ".join(str(i) for i in damaged[:5]) + (f" and {len(damaged) - 5} more" if len(damaged) > 5 else "")
    raise PartialInputError(
        f"{info.path}: corrupt data in frame{'s' if len(damaged) > 1 else ''} {shown}; the decoder concealed "
        f"it, so those frames may show artefacts; {done} frames decoded", done)


def to_frame(frame, index: int, time_base: Fraction, rotation: int) -> Frame:
    """A decoded PyAV frame as an upright RGB ``Frame``."""
    image = frame.to_ndarray(format="rgb24")
    turns = rotation // 90
    if turns:
        image = np.ascontiguousarray(np.rot90(image, k=turns))
    pts = frame.pts if frame.pts is not None else index
    return Frame(index, image, pts, time_base or Fraction(1, 1000))


class ImageReader(_Reader):
    def __iter__(self) -> Iterator[Frame]:
        time_base = sequence_time_base(self.info)
        for index, file in enumerate(image_files(self.info)):
            if self._past_end(index):
                break
            if self._in_range(index):
                yield Frame(index, read_image(self.info, file), index, time_base)


def image_files(info: SourceInfo) -> list[Path]:
    path = Path(info.path)
    return list_images(path) if info.kind == "images" else [path]


def sequence_time_base(info: SourceInfo) -> Fraction:
    return Fraction(1, 1) / Fraction(info.fps).limit_denominator(1001)


def read_image(info: SourceInfo, file: Path) -> np.ndarray:
    """One image of a sequence as uint8 RGB, checked against the sequence's size."""
    image = read_rgb(file)
    if (image.shape[1], image.shape[0]) != (info.width, info.height):
        raise InputError(f"{file} is {image.shape[1]}x{image.shape[0]} but the sequence is "
                         f"{info.width}x{info.height}; all images must have one size")
    return image


def iter_rgba(path: str | os.PathLike) -> Iterator[np.ndarray]:
    """Decode a video that carries alpha (ProRes 4444, FFV1, VP9 with alpha) to uint8 [H,W,4] RGBA frames.

    FFmpeg's native VP9/VP8 decoders drop the alpha plane that WebM stores beside each block, so those streams are
    decoded with libvpx, which restores it.
    """
    import av

    container = open_container(Path(path))
    try:
        stream = container.streams.video[0]
        if stream.codec_context.name in ("vp8", "vp9") and stream.metadata.get("alpha_mode") == "1":
            decoder = av.Codec(f"libvpx-{stream.codec_context.name}", "r").create()
            for packet in container.demux(stream):
                for frame in decoder.decode(packet):
                    yield frame.to_ndarray(format="rgba")
        else:
            for frame in container.decode(stream):
                yield frame.to_ndarray(format="rgba")
    finally:
        container.close()
