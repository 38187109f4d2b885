"""A re-readable frame source: any input read forward, backward or from frame N, memory flat in its length.

Frame numbers are the input's positions in presentation order, exactly as ``VideoReader``/``ImageReader`` number
them. A video file is indexed once, lazily, by demuxing its packets without decoding them: the sorted pts give each
frame number its pts, the keyframe flags give the seek points. Reading from frame N seeks to the last keyframe at or
before N and decodes forward, identifying frames by pts; reading backward decodes bounded segments from the end,
each forward into a small buffer that is then yielded reversed. Live sources only go forward.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Protocol

import numpy as np

from ..errors import InputError, PartialInputError, UsageError
from .images import IMAGE_EXTENSIONS
from .probe import SourceInfo, open_container, probe
from .readers import (Frame, broken_stream, check_complete, check_intact, decode_video, image_files,
                      open_video_stream, read_image, sequence_time_base, to_frame)

# Reverse reading holds one segment of decoded RGB frames: at most this many bytes and this many frames (at 1080p
# the budget allows 43 frames, at 4K 10).
SEGMENT_BUDGET_BYTES = 256 * 2 ** 20
MAX_SEGMENT_FRAMES = 64
FINGERPRINT_BYTES = 1 << 20  # of each input file, hashed to tell an edited input from the same one


def open_source(path: str | os.PathLike, sequence_fps: float | None = None, input_format: str | None = None,
                input_options: dict | None = None) -> "FrameSource":
    """A video file, image folder/pattern, image or live source (camera, FFmpeg device) as a ``FrameSource``."""
    info = probe(path, sequence_fps, input_format, input_options)
    if info.kind == "live":
        return LiveSource(info)
    if info.kind == "video":
        return VideoFileSource(info)
    return ImageSource(info)


class FrameSource:
    """Frames of one input by index range, forward or backward (see the module doc)."""

    seekable = True

    def __init__(self, info: SourceInfo):
        self.info = info

    def frames(self, start: int = 0, stop: int | None = None, reverse: bool = False,
               decoder_threads: int | None = None) -> Iterator[Frame]:
        """Frames ``start <= index < stop`` (None: to the end), by increasing index, or decreasing when reverse."""
        if start < 0 or (stop is not None and stop < 0):
            raise UsageError(f"frame numbers start at 0 (got start {start}, stop {stop})")
        if stop is not None and stop <= start:
            return iter(())
        return self._frames(start, stop, reverse, decoder_threads)

    def _frames(self, start: int, stop: int | None, reverse: bool, decoder_threads: int | None) -> Iterator[Frame]:
        raise NotImplementedError

    def _length(self) -> int | None:
        return self.info.frames

    def expected_frames(self, start: int = 0, stop: int | None = None) -> int | None:
        """How many frames ``frames(start, stop)`` should yield (None when the input does not say)."""
        total = self._length()
        if total is None:
            return None if stop is None else max(stop - start, 0)
        return max(min(total, total if stop is None else stop) - start, 0)

    def fingerprint(self) -> dict:
        """What identifies this input's content cheaply, to tell whether work cached from it still applies: the
        probe (size, frames, codec...) plus each file's size, modification time and a hash of its first MiB
        (of 1 MiB shared out over an image sequence's files, at least 4 KiB each)."""
        info = {k: v for k, v in self.info.to_dict().items() if k != "path"}
        files = self._content_files()
        digest = hashlib.sha256()
        share = max(FINGERPRINT_BYTES // len(files), 4096)  # an image sequence: a little of every file
        for path in files:
            stat = path.stat()
            digest.update(f"{path.name}\0{stat.st_size}\0{stat.st_mtime_ns}\0".encode())
            with open(path, "rb") as f:
                digest.update(f.read(share))
        return {"probe": info, "files": len(files), "content": digest.hexdigest()}

    def _content_files(self) -> list[Path]:
        return [Path(self.info.path)]

    def frame(self, index: int) -> Frame:
        """Frame ``index`` alone (random access; a video decodes from the keyframe before it)."""
        for frame in self.frames(index, index + 1):
            return frame
        raise InputError(f"{self.info.path} has no frame {index} ({self._length()} frames)")


class LiveSource(FrameSource):
    """A camera or device: what comes out now, once."""

    seekable = False

    def _frames(self, start, stop, reverse, decoder_threads):
        if reverse or start > 0:
            raise UsageError(f"{self.info.path} is a live source: it can only be read forward from its first frame "
                             "(record it to a file to read it backward or from a later frame)")
        return decode_video(self.info, 0, stop, decoder_threads)


class ImageSource(FrameSource):
    """A folder or pattern of images, or one image: every frame is a file, so any order is direct."""

    def __init__(self, info: SourceInfo):
        super().__init__(info)
        self._files = image_files(info)

    def _length(self) -> int:
        return len(self._files)

    def _content_files(self) -> list[Path]:
        return self._files

    def _frames(self, start, stop, reverse, decoder_threads):
        stop = len(self._files) if stop is None else min(stop, len(self._files))
        order = range(stop - 1, start - 1, -1) if reverse else range(start, stop)
        time_base = sequence_time_base(self.info)
        for index in order:
            yield Frame(index, read_image(self.info, self._files[index]), index, time_base)


@dataclass
class PtsIndex:
    """Each frame's pts in presentation order, and the frames a decoder can start from."""

    pts: list[int]
    position: dict[int, int]  # pts -> frame index
    keyframes: list[int]  # frame indices, ascending; always starts with 0 (the file's start is a seek point)

    def keyframe_at_or_before(self, index: int) -> list[int]:
        """The seek points at or before ``index``, nearest first."""
        return [k for k in reversed(self.keyframes) if k <= index]


def build_pts_index(info: SourceInfo) -> PtsIndex | None:
    """Demux (no decoding) the video stream's packets; None when their pts cannot number the frames."""
    import av

    container = open_container(info.path)
    stream = container.streams.video[0]
    pts: list[int] = []
    key_pts: list[int] = []
    try:
        for packet in container.demux(stream):
            if packet.size == 0:  # the demuxer's end-of-stream marker
                continue
            if packet.is_discard:  # before an edit list's start: the decoder drops these frames
                continue
            if packet.pts is None:
                return None
            pts.append(packet.pts)
            if packet.is_keyframe:
                key_pts.append(packet.pts)
    except av.error.FFmpegError:
        return None  # damaged: reading by counting reports it exactly as a forward read does
    finally:
        container.close()
    order = sorted(pts)
    if not order or len(set(order)) != len(order):
        return None
    position = {p: i for i, p in enumerate(order)}
    keyframes = sorted({0} | {position[p] for p in key_pts})
    return PtsIndex(order, position, keyframes)


class _IndexMismatch(Exception):
    """The decoder's frames do not match the packet index (a frame without pts, a frame the decoder dropped...)."""


@dataclass
class _Progress:
    next_index: int  # one past the last frame that came out
    yielded: int = 0


class VideoFileSource(FrameSource):
    """A video file, read from any frame in either direction (see the module doc)."""

    segment_budget = SEGMENT_BUDGET_BYTES
    max_segment_frames = MAX_SEGMENT_FRAMES

    def __init__(self, info: SourceInfo):
        super().__init__(info)
        self._index: PtsIndex | None = None
        self._indexed = False

    def pts_index(self) -> PtsIndex | None:
        if not self._indexed:
            self._index = build_pts_index(self.info)
            self._indexed = True
        return self._index

    def _length(self) -> int | None:
        return len(self._index.pts) if self._index is not None else self.info.frames

    def segment_frames(self) -> int:
        """K: the most decoded frames a reverse read holds at once."""
        frame_bytes = self.info.width * self.info.height * 3
        return max(1, min(self.max_segment_frames, self.segment_budget // frame_bytes))

    def _frames(self, start, stop, reverse, decoder_threads):
        if reverse:
            return self._backward(start, stop, decoder_threads)
        if start == 0 or self.pts_index() is None:
            return decode_video(self.info, start, stop, decoder_threads)  # the reference: decode and count
        return self._forward_from(start, stop, decoder_threads)

    def _forward_from(self, start: int, stop: int | None, threads: int | None) -> Iterator[Frame]:
        total = len(self.pts_index().pts)
        stop = total if stop is None else min(stop, total)
        if start >= stop:
            return  # past the end: nothing, as a counting read gives
        progress = _Progress(start)
        damaged: list[int] = []
        container, stream = open_video_stream(self.info, threads)
        try:
            for frame in self._span(container, stream, start, stop, damaged, progress):
                progress.yielded += 1
                yield frame
        except _IndexMismatch:
            self._index = None  # numbering by pts is not trustworthy here: count, as a forward read does
            container.close()
            yield from decode_video(self.info, progress.next_index, stop, threads)
            return
        finally:
            container.close()
        check_complete(self._as_indexed(), start, stop, progress.next_index)
        check_intact(self.info, damaged, progress.yielded)

    def _as_indexed(self) -> SourceInfo:
        """``info`` with the exact frame count of the index (the container's may be an estimate)."""
        return dataclasses.replace(self.info, frames=len(self._index.pts)) if self._index else self.info

    def _span(self, container, stream, start: int, stop: int, damaged: list[int],
              progress: _Progress) -> Iterator[Frame]:
        """Frames ``start..stop-1`` in order, decoded from the nearest keyframe at or before ``start``.

        A seek may land after the keyframe asked for (containers index seek points by dts, or by pts): then the
        first frame out is already past ``start`` and the keyframe before is tried.
        """
        import av

        index = self._index
        for key in index.keyframe_at_or_before(start):
            container.seek(index.pts[key], stream=stream, backward=True, any_frame=False)
            expected = start
            try:
                for frame in container.decode(stream):
                    position = index.position.get(frame.pts)
                    if position is None:
                        raise _IndexMismatch
                    if position < expected:
                        if expected > start:  # went backwards after the span began
                            raise _IndexMismatch
                        continue  # decoded only as a reference for the frames we want
                    if position > expected:
                        if expected == start:
                            break  # the seek overshot: try the keyframe before
                        raise _IndexMismatch  # a frame the index promised did not come out
                    if frame.is_corrupt:
                        damaged.append(position)
                    yield to_frame(frame, position, stream.time_base, self.info.rotation)
                    expected += 1
                    progress.next_index = expected
                    if expected >= stop:
                        return
                else:
                    return  # the stream ended early: the caller compares what came out with the index
            except av.error.FFmpegError as exc:
                raise broken_stream(self.info, expected, exc, progress.yielded) from None
        raise _IndexMismatch  # no seek point led to `start`

    def _segments(self, start: int, stop: int) -> list[tuple[int, int]]:
        """[a, b) ranges covering start..stop-1, each within one GOP and at most K frames, first to last."""
        size = self.segment_frames()
        gop_starts = [k for k in self._index.keyframes if start < k < stop]
        bounds = [start] + gop_starts + [stop]
        segments = []
        for a, b in zip(bounds, bounds[1:]):
            # A long GOP (one keyframe for the whole file) is cut into chunks of K, and each chunk is decoded from
            # that keyframe again: slow (quadratic in the GOP's length) but memory stays flat.
            segments += [(s, min(s + size, b)) for s in range(a, b, size)]
        return segments

    def _backward(self, start: int, stop: int | None, threads: int | None) -> Iterator[Frame]:
        if stop is not None and stop <= self.segment_frames() and self._index is None:
            # A short range at the start (RVM's warm-up reads frames 8..1) is one segment decoded from frame 0:
            # no need to demux the whole file for an index first, which costs a full read of a long video.
            chunk = list(decode_video(self.info, start, stop, threads))
            while chunk:
                yield chunk.pop()
            return
        index = self.pts_index()
        if index is None:
            yield from self._backward_by_counting(start, stop, threads)
            return
        total = len(index.pts)
        stop = total if stop is None else min(stop, total)
        if start >= stop:
            return
        damaged: list[int] = []
        progress = _Progress(stop)
        container, stream = open_video_stream(self.info, threads)
        try:
            for a, b in reversed(self._segments(start, stop)):
                segment = self._decode_segment(container, stream, a, b, damaged, progress, threads)
                while segment:  # pop: a frame handed out is no longer held here
                    progress.yielded += 1
                    yield segment.pop()
        finally:
            container.close()
        check_intact(self.info, damaged, progress.yielded)

    def _decode_segment(self, container, stream, a: int, b: int, damaged: list[int], progress: _Progress,
                        threads: int | None) -> list[Frame]:
        try:
            if self._index is None:
                raise _IndexMismatch
            segment = list(self._span(container, stream, a, b, damaged, progress))
        except _IndexMismatch:
            self._index = None
            segment = list(decode_video(self.info, a, b, threads))
        if len(segment) < b - a:
            done = progress.yielded
            raise PartialInputError(f"{self.info.path}: the stream ended at frame {a + len(segment)} of "
                                    f"{self._length()} (truncated?); {done} frames decoded", done)
        return segment

    def _backward_by_counting(self, start: int, stop: int | None, threads: int | None) -> Iterator[Frame]:
        """No usable pts: number frames by decoding from the start, one chunk of K at a time from the end. Each
        chunk decodes everything before it again (quadratic time) so that memory stays one chunk."""
        total = self._count_decoded(threads)
        stop = total if stop is None else min(stop, total)
        size = self.segment_frames()
        for b in range(stop, start, -size):
            chunk = list(decode_video(self.info, max(b - size, start), b, threads))
            while chunk:
                yield chunk.pop()

    def _count_decoded(self, threads: int | None) -> int:
        import av

        container, stream = open_video_stream(self.info, threads)
        count = 0
        try:
            for _ in container.decode(stream):
                count += 1
        except av.error.FFmpegError:
            pass  # the reading itself reports the break
        finally:
            container.close()
        return count


# --- guidance (trimaps, masks, plates) zipped with frames by index ---

class GuidanceSource(Protocol):
    """Per-frame guidance (a trimap, a mask, a clean plate...) by frame index; None where there is none."""

    def at(self, index: int) -> object | None: ...


def with_guidance(frames: Iterable[Frame], guidance: GuidanceSource | None) -> Iterator[tuple[Frame, object | None]]:
    """Each frame with the guidance for its index (None where there is none, or no guidance at all)."""
    for frame in frames:
        yield frame, (guidance.at(frame.index) if guidance is not None else None)


class FileGuidance:
    """A folder of per-frame images named by frame index (``00012.png`` or ``12.png``), read as uint8 arrays:
    [H,W] for grey images (and palette images with a grey palette), [H,W,3] RGB otherwise (alpha dropped)."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise InputError(f"guidance folder not found: {self.folder}")
        self.files: dict[int, Path] = {}
        for path in self.folder.iterdir():
            if path.suffix.lower() not in IMAGE_EXTENSIONS or not re.fullmatch(r"\d+", path.stem):
                continue
            index = int(path.stem)
            if index in self.files:
                raise InputError(f"two guidance images for frame {index}: {self.files[index].name} and {path.name}")
            self.files[index] = path
        if not self.files:
            raise InputError(f"no images named by frame number (00012.png or 12.png) in {self.folder}")

    def indices(self) -> list[int]:
        return sorted(self.files)

    def at(self, index: int) -> np.ndarray | None:
        path = self.files.get(index)
        return None if path is None else read_guidance_image(path)


def read_guidance_image(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            if im.mode == "P":  # palette: its colours, grey when the palette is
                im = im.convert("RGB")
                rgb = np.asarray(im)
                if (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all():
                    return np.ascontiguousarray(rgb[..., 0])
                return np.ascontiguousarray(rgb)
            if im.mode in ("I;16", "I;16B", "I"):  # 16-bit grey: keep the top 8 bits
                return (np.asarray(im, dtype=np.uint32) >> 8).clip(0, 255).astype(np.uint8)
            grey = im.mode in ("1", "L", "LA")
            return np.ascontiguousarray(np.asarray(im.convert("L" if grey else "RGB")))
    except (UnidentifiedImageError, OSError) as exc:
        raise InputError(f"cannot read guidance image {path}: {exc}") from None
