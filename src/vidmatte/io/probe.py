"""What the reader sees in an input: size, rate, frame count, rotation, audio, pixel format, alpha.

Inputs are files (video, image, folder of images, a glob pattern of images such as ``shots/cam1_*.png``) or live
sources: ``webcam`` / ``webcam:N`` (the platform's camera N), a device path (``/dev/video2``), or anything FFmpeg
opens with a named input format (``--input-format``, like ffmpeg's ``-f``: ``v4l2``, ``avfoundation``, ``dshow``,
``lavfi``...). Live sources have no length.
"""

from __future__ import annotations

import glob
import os
import re
import sys
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path

from ..errors import InputError, UsageError
from .images import IMAGE_EXTENSIONS
DEFAULT_SEQUENCE_FPS = 30.0
LARGE_FRAME_PIXELS = 2560 * 1440  # above this, readers and writers favour memory over a few percent of speed/size


@dataclass
class SourceInfo:
    path: str
    kind: str  # "video" | "images" | "image" | "live"
    width: int  # as displayed (after rotation)
    height: int
    fps: float
    frames: int | None  # exact for images; the container's count (or an estimate) for video
    rotation: int = 0  # degrees counter-clockwise the stored picture is turned for display
    pix_fmt: str | None = None
    codec: str | None = None
    duration: float | None = None
    audio: str | None = None  # e.g. "aac 44100 Hz stereo"
    time_base: Fraction | None = None
    input_format: str | None = None  # FFmpeg demuxer for live sources (v4l2, avfoundation, lavfi...)
    input_options: dict | None = None  # its options, e.g. {"video_size": "1280x720", "framerate": "30"}
    alpha: bool = False  # the stored picture carries an alpha channel (ProRes 4444, FFV1 BGRA, VP9 alpha, RGBA PNG)
    timecode: str | None = None  # of the first frame, "HH:MM:SS:FF" (";" before FF: drop-frame), as a camera's MOV

    def to_dict(self) -> dict:
        d = asdict(self)
        d["time_base"] = str(self.time_base) if self.time_base else None
        return d


def natural_key(name: str):
    """'frame2' sorts before 'frame10'."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def list_images(folder: Path) -> list[Path]:
    """The images of a folder, or those a glob pattern (``shots/cam1_*.png``) matches, in natural order."""
    pattern = is_pattern(folder)
    candidates = [Path(p) for p in glob.glob(str(folder))] if pattern else list(folder.iterdir())
    files = [p for p in candidates if p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")
             and p.is_file()]
    # A pattern may span folders (shots/*/0001.png): order by the whole path there.
    return sorted(files, key=lambda p: natural_key(str(p) if pattern else p.name))


def is_pattern(path: str | os.PathLike) -> bool:
    """A glob pattern rather than a path (and no file of that very name exists)."""
    return glob.has_magic(str(path)) and not Path(path).exists()


def live_source(spec: str | os.PathLike, input_format: str | None = None) -> tuple[str, str] | None:
    """(FFmpeg url, input format) when ``spec`` names a live source, else None (a file or folder)."""
    spec = str(spec)
    if input_format:
        return spec, input_format
    camera = re.fullmatch(r"webcam(?::(\d+))?", spec)
    if camera:
        index = int(camera.group(1) or 0)
        if sys.platform.startswith("linux"):
            return f"/dev/video{index}", "v4l2"
        if sys.platform == "darwin":
            return str(index), "avfoundation"
        raise UsageError("on this system name the camera as FFmpeg does, e.g. "
                         "--input-format dshow \"video=Integrated Camera\"")
    if re.fullmatch(r"/dev/video\d+", spec):
        return spec, "v4l2"
    return None


def probe(path: str | os.PathLike, fps: float | None = None, input_format: str | None = None,
          input_options: dict | None = None) -> SourceInfo:
    live = live_source(path, input_format)
    if live is not None:
        return _probe_live(*live, input_options)
    p = Path(path)
    if is_pattern(p):
        return _probe_folder(p, fps)
    if not p.exists():
        raise InputError(f"input not found: {p}")
    if not os.access(p, os.R_OK):
        raise InputError(f"input is not readable: {p}")
    if p.is_dir():
        return _probe_folder(p, fps)
    if p.suffix.lower() in IMAGE_EXTENSIONS:
        h, w = _image_size(p)
        return SourceInfo(str(p), "image", w, h, fps or DEFAULT_SEQUENCE_FPS, 1, codec=p.suffix.lower()[1:])
    return _probe_video(p)


def _image_size(p: Path) -> tuple[int, int]:
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(p) as im:
            im = ImageOps.exif_transpose(im)
            return im.height, im.width
    except (UnidentifiedImageError, OSError) as exc:
        raise InputError(f"cannot read image {p}: {exc}") from None


def _probe_folder(p: Path, fps: float | None) -> SourceInfo:
    images = list_images(p)
    if not images:
        where = "match the pattern" if is_pattern(p) else "in folder"
        raise InputError(f"no images (png/jpg/tif/webp/bmp) {where} {p}")
    h, w = _image_size(images[0])
    return SourceInfo(str(p), "images", w, h, fps or DEFAULT_SEQUENCE_FPS, len(images), codec="image sequence")


def open_container(p: Path | str, input_format: str | None = None, options: dict | None = None):
    import av

    try:
        container = av.open(str(p), format=input_format, options=options or None, metadata_errors="ignore")
    except (av.error.FFmpegError, UnicodeDecodeError) as exc:  # (FFmpeg's errors subclass ValueError: first)
        if input_format:
            raise InputError(f"cannot open live source {p} ({input_format}: {_ffmpeg_reason(exc)})") from None
        raise InputError(f"not a readable video or image: {p} ({_ffmpeg_reason(exc)})") from None
    except ValueError as exc:  # PyAV: no such input format
        if not input_format:
            raise InputError(f"not a readable video or image: {p} ({exc})") from None
        raise UsageError(f"FFmpeg has no input format {input_format!r} here (see `ffmpeg -devices`)") from None
    if not container.streams.video:
        container.close()
        raise InputError(f"no video stream in {p}")
    return container


def _ffmpeg_reason(exc: Exception) -> str:
    return getattr(exc, "strerror", None) or str(exc).split(":")[0] or type(exc).__name__


def _probe_video(p: Path) -> SourceInfo:
    container = open_container(p)
    try:
        stream = container.streams.video[0]
        rotation = first_frame_rotation(container, stream)
        ctx = stream.codec_context
        width, height = ctx.width, ctx.height
        if rotation in (90, 270):
            width, height = height, width
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        fps = float(rate) if rate else DEFAULT_SEQUENCE_FPS
        frames, duration = _video_length(container, stream, fps)
        audio = None
        if container.streams.audio:
            a = container.streams.audio[0]
            audio = f"{a.codec_context.name} {a.codec_context.sample_rate} Hz {a.codec_context.layout.name}"
        return SourceInfo(str(p), "video", width, height, fps, frames, rotation, ctx.pix_fmt, ctx.name,
                          duration, audio, stream.time_base, alpha=stream_has_alpha(stream),
                          timecode=source_timecode(container, stream))
    finally:
        container.close()


def source_timecode(container, stream) -> str | None:
    """The timecode FFmpeg reports for a video: the video stream's, the container's (Matroska: TIMECODE), or a
    timecode track's (a MOV's tmcd stream)."""
    for metadata in (stream.metadata, container.metadata, *(s.metadata for s in container.streams)):
        for key, value in metadata.items():
            if key.lower() == "timecode" and TIMECODE.fullmatch(value.strip()):
                return value.strip()
    return None


TIMECODE = re.compile(r"\d{2}:\d{2}:\d{2}[:;.]\d{2,3}")


def shift_timecode(timecode: str, frames: int, fps: float) -> str:
    """``timecode`` moved ``frames`` frames later at ``fps`` (drop-frame timecodes, "HH:MM:SS;FF", skip frame
    numbers 0 and 1 (2 and 3 at 59.94) of every minute but each tenth, as SMPTE 12M counts them)."""
    if not frames:
        return timecode
    hh, mm, ss, ff = (int(v) for v in re.split(r"[:;.]", timecode))
    base = round(fps)
    drop = ";" in timecode or "." in timecode
    per_minute = base * 60
    if drop:
        skip = 2 if base <= 30 else 4
        minutes = hh * 60 + mm
        count = (minutes * 60 + ss) * base + ff - skip * (minutes - minutes // 10)
        count += frames
        per_ten = per_minute * 10 - skip * 9
        tens, rest = divmod(count, per_ten)
        extra = 0 if rest < skip else skip * ((rest - skip) // (per_minute - skip))
        count += skip * 9 * tens + extra
        sep = ";"
    else:
        count = ((hh * 60 + mm) * 60 + ss) * base + ff + frames
        sep = ":"
    count %= base * 86400  # a day wraps
    ff, seconds = count % base, count // base
    return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}{sep}{ff:02d}"


def _video_length(container, stream, fps: float) -> tuple[int | None, float | None]:
    """(frames, seconds) of the video stream itself.

    The container's duration is that of its longest stream: in a WebM/Matroska file with a longer audio track it
    is the audio's. When the video stream says neither its frame count nor its duration, its packets are counted
    (demuxing only: cheap next to decoding).
    """
    if stream.duration is not None and stream.time_base:
        duration = float(stream.duration * stream.time_base)
        return stream.frames or int(round(duration * fps)), duration
    if stream.frames:
        return stream.frames, (container.duration / 1_000_000 if container.duration else None)
    counted = _count_packets(container.name)
    if counted is not None:
        return counted
    duration = container.duration / 1_000_000 if container.duration else None
    return (int(round(duration * fps)) if duration else None), duration


def _count_packets(path: str) -> tuple[int, float | None] | None:
    """(packets, seconds from the first pts to the end of the last packet) of the video stream; None if unreadable."""
    import av

    count, first, end = 0, None, None
    container = open_container(path)  # from the start (raw streams cannot seek back)
    stream = container.streams.video[0]
    try:
        for packet in container.demux(stream):
            if packet.size == 0 or packet.is_discard:
                continue
            count += 1
            if packet.pts is not None:
                first = packet.pts if first is None else min(first, packet.pts)
                end = max(end or packet.pts, packet.pts + (packet.duration or 0))
    except av.error.FFmpegError:
        return None
    finally:
        container.close()
    if not count:
        return None
    duration = float((end - first) * stream.time_base) if first is not None and stream.time_base else None
    return count, duration


def stream_has_alpha(stream) -> bool:
    """Alpha in the stored picture: in the pixel format (ProRes 4444, FFV1, PNG), or, for VP8/VP9 in WebM, in the
    stream's ``alpha_mode`` tag (the alpha plane sits beside each block and the native decoder's format hides it)."""
    import av

    if stream.metadata.get("alpha_mode") == "1":
        return True
    pix_fmt = stream.codec_context.pix_fmt
    try:
        return bool(pix_fmt) and any(c.is_alpha for c in av.VideoFormat(pix_fmt).components)
    except ValueError:
        return False


def _probe_live(url: str, input_format: str, options: dict | None = None) -> SourceInfo:
    """A camera or generator: size and rate from the stream, no frame count (it runs until stopped)."""
    container = open_container(url, input_format, options)
    try:
        stream = container.streams.video[0]
        ctx = stream.codec_context
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        return SourceInfo(url, "live", ctx.width, ctx.height, float(rate) if rate else DEFAULT_SEQUENCE_FPS, None,
                          0, ctx.pix_fmt, ctx.name, None, None, stream.time_base, input_format, options)
    finally:
        container.close()


def first_frame_rotation(container, stream) -> int:
    """Rotation as FFmpeg reports it on decoded frames (the display matrix), normalised to 0/90/180/270."""
    import av

    try:
        for frame in container.decode(stream):
            return int(round(frame.rotation / 90.0)) * 90 % 360
    except av.error.FFmpegError:
        return 0
    return 0
