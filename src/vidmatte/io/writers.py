"""Output files: PNG sequences and video containers, each written atomically (temp name, rename when complete).

Which codec a file gets is decided by its extension (the CLI contract):
  .mp4 H.264 (no alpha) | .mov H.264, or ProRes 4444 when it carries alpha | .webm VP9 (with alpha for RGBA)
  | .mkv H.264, or FFV1 when it carries alpha | a path ending in "/" or an existing folder: a sequence of images, PNG
  unless the run names another ``image_format`` (TIFF, OpenEXR: ``io.image_formats``).

Every file says what it can of its alpha: RGBA video files and PNGs carry an ``alpha_mode`` tag (straight or
premultiplied), TIFFs their ExtraSamples tag, EXRs a header attribute; video files keep the input's timecode.
"""

from __future__ import annotations

import errno
import glob
import os
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from ..errors import OutputError, OutputExists, UsageError
from .atomic import AtomicOutput, why_not_ours
from .image_formats import (BIT_DEPTHS, DEFAULT_BIT_DEPTH, EXTENSION, FORMAT_OF_EXTENSION, IMAGE_FORMATS,
                            alpha_mode, exr_attributes, exr_channels, png_with_text, tiff_with_alpha_mode,
                            write_exr, write_layers_in_place)
from .probe import LARGE_FRAME_PIXELS, is_pattern, list_images

KINDS = ("composition", "alpha", "foreground", "rgba", "trimap", "layers")  # trimap: guided mode's propagated guidance;
# layers: several objects' alpha and colours, one multi-layer EXR per frame
VIDEO_EXTENSIONS = (".mp4", ".mov", ".webm", ".mkv")
# One-frame outputs (a single image in, e.g. `--alpha cutout.png`); JPEG has no alpha channel.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".exr")
DEPTH_KINDS = ("alpha", "foreground", "rgba")  # what PNG/TIFF hold in 16 bits (a composition stays 8-bit)
X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow",
                "placebo")
CRF_RANGES = {"libx264": ("H.264", 51), "libvpx-vp9": ("VP9", 63)}  # encoder -> (name, highest crf)


@dataclass(frozen=True)
class Codec:
    name: str
    pix_fmt: str
    options: tuple = ()

    @property
    def needs_even_size(self) -> bool:
        return "420" in self.pix_fmt


def _x264(preset: str) -> Codec:
    return Codec("libx264", "yuv420p", (("preset", preset),))


_VP9_FAST = (("deadline", "realtime"), ("cpu-used", "8"), ("row-mt", "1"), ("b", "0"))


def choose_codec(ext: str, alpha: bool, preset: str) -> Codec:
    if ext == ".mp4":
        if alpha:
            raise UsageError("an .mp4 (H.264) cannot carry alpha; use .mov, .webm, .mkv or a folder/ for --rgba")
        return _x264(preset)
    if ext == ".mov":
        return Codec("prores_ks", "yuva444p10le", (("profile", "4"), ("vendor", "apl0"))) if alpha else _x264(preset)
    if ext == ".webm":
        return Codec("libvpx-vp9", "yuva420p" if alpha else "yuv420p", _VP9_FAST)
    if ext == ".mkv":
        return Codec("ffv1", "bgra") if alpha else _x264(preset)
    raise UsageError(f"unsupported output extension {ext or '(none)'!r}; use one of "
                     f"{', '.join(VIDEO_EXTENSIONS)} or a folder/ for a PNG sequence")


@dataclass(frozen=True)
class OutputSpec:
    kind: str  # composition | alpha | foreground | rgba
    path: Path
    is_sequence: bool
    bit_depth: int = 8  # PNG/TIFF alpha, foreground, RGBA: 8 or 16; EXR: 16 (half) or 32 (float)
    image_format: str | None = "png"  # png | tiff | exr for a folder's frames or one image file; None: a video (or
    # an image format with no choices, JPEG/WebP)
    premultiplied: bool = False  # RGBA colour times alpha
    object: int | None = None  # several subjects in one run: the object this output holds (None: the whole matte)

    @property
    def carries_alpha(self) -> bool:
        return self.kind in ("rgba", "layers")  # layers: every object's colour beside its alpha

    @property
    def samples(self) -> str:
        """What the file holds: "u8", "u16", "half" or "float"."""
        if self.image_format == "exr":
            return "half" if self.bit_depth == 16 else "float"
        if self.image_format in ("png", "tiff") and self.kind in DEPTH_KINDS and self.bit_depth == 16:
            return "u16"
        return "u8"

    @property
    def is_image(self) -> bool:
        return not self.is_sequence and self.path.suffix.lower() in IMAGE_EXTENSIONS


def parse_output(kind: str, path: str, bit_depth: int | None = None, image_format: str = "png",
                 premultiplied: bool = False) -> OutputSpec:
    """Decide sequence vs. container from the path, and reject impossible combinations before any work starts.

    ``image_format`` is a folder's (a one-image output's format is its extension's); ``bit_depth`` None is the
    format's own default (8, EXR 16)."""
    if kind not in KINDS:
        raise UsageError(f"unknown output kind {kind!r}")
    p = Path(path).expanduser()
    if kind == "layers":  # --layers DIR/: a folder of multi-layer EXRs, whatever --image-format says
        if p.suffix.lower() in VIDEO_EXTENSIONS + IMAGE_EXTENSIONS and not str(path).endswith(("/", os.sep)):
            raise UsageError(f"--layers writes a folder of multi-layer EXR files, one per frame: give a folder/, "
                             f"not {path}")
        if bit_depth not in (None, 16, 32):
            raise UsageError(f"--bit-depth {bit_depth}: --layers holds half (16) or float (32) samples")
        return OutputSpec(kind, p, True, bit_depth or 16, "exr", premultiplied)
    ext = p.suffix.lower()
    # An existing folder without a trailing "/" is a PNG sequence (the CLI contract), unless its name says a file
    # was meant ("x.mp4"): check_outputs refuses that instead of filling the folder with frames.
    is_sequence = str(path).endswith(("/", os.sep)) or (p.is_dir() and ext not in VIDEO_EXTENSIONS + IMAGE_EXTENSIONS)
    if not is_sequence and ext in IMAGE_EXTENSIONS:
        if kind == "rgba" and ext in (".jpg", ".jpeg"):
            raise UsageError("JPEG cannot carry alpha; use .png, .tif or .webp for --rgba")
    elif not is_sequence:
        choose_codec(ext, kind == "rgba", "superfast")  # raises on a bad extension
    if bit_depth not in (None, 8, 16, 32):
        raise UsageError(f"--bit-depth must be 8 or 16 (PNG, TIFF) or 16 or 32 (EXR: half or float), not {bit_depth}")
    if image_format not in IMAGE_FORMATS:
        raise UsageError(f"--image-format must be one of {', '.join(IMAGE_FORMATS)}, not {image_format!r}")
    if is_sequence:
        fmt = image_format
    else:
        fmt = FORMAT_OF_EXTENSION.get(ext) if ext in IMAGE_EXTENSIONS else None
    if fmt is not None and bit_depth is not None and bit_depth not in BIT_DEPTHS[fmt]:
        if fmt == "exr":
            raise UsageError(f"--bit-depth {bit_depth}: EXR holds half (16) or float (32) samples")
        raise UsageError(f"--bit-depth {bit_depth} (float) is for EXR; {fmt.upper()} holds 8 or 16 bits ({p})")
    depth = bit_depth if bit_depth is not None else DEFAULT_BIT_DEPTH.get(fmt, 8)
    return OutputSpec(kind, p, is_sequence, depth, fmt, premultiplied)


def check_outputs(specs: list[OutputSpec], source: str | os.PathLike, overwrite: bool, frames: int | None) -> None:
    """Every refusal that can be made before any work starts (UsageError/OutputError; nothing is touched)."""
    inputs = _input_paths(Path(source))
    seen = set()
    for spec in specs:
        if spec.is_image and frames != 1:
            raise UsageError(f"{spec.path} holds one image but the input has {frames or 'several'} frames; "
                             "use a folder/ or a video file")
        _check_not_input(spec, inputs)
        resolved = Path(os.path.realpath(spec.path))
        if resolved in seen:
            raise UsageError(f"{spec.path} is requested twice")
        seen.add(resolved)
        _check_target(spec)
        check_writable(spec, overwrite)
    _check_not_nested(specs)


def _input_paths(source: Path) -> list[Path]:
    """What the input is made of: the file, or the folder and its images, or the files a glob pattern matches."""
    if is_pattern(source):
        return [Path(p) for p in glob.glob(str(source))]
    if source.is_dir():
        return [source, *list_images(source)]
    return [source] if os.path.lexists(source) else []


def _same(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)  # also hard links, and symlinks either way
    except OSError:  # one of them does not exist (yet)
        return os.path.realpath(a) == os.path.realpath(b)


def _inside(path: Path, folder: Path) -> bool:
    """``path`` is ``folder`` or below it, by the names given or through symlinks."""
    for resolve in (os.path.abspath, os.path.realpath):
        outer, inner = Path(resolve(folder)), Path(resolve(path))
        if inner == outer or outer in inner.parents:
            return True
    return False


def _check_not_input(spec: OutputSpec, inputs: list[Path]) -> None:
    for item in inputs:
        if _same(spec.path, item):
            raise UsageError(f"output {spec.path} is the input")
        if spec.is_sequence and _inside(item, spec.path):
            raise UsageError(f"output folder {spec.path} contains the input ({item}); write the frames to a new "
                             "folder")


def _check_target(spec: OutputSpec) -> None:
    """A file output must not name a folder; a sequence folder may only hold frames an earlier run wrote (its record
    says which)."""
    path = spec.path
    if not spec.is_sequence:
        if path.is_dir():
            raise UsageError(f"{path} is an existing folder, not a file; choose another name (it was left untouched)")
        return
    if not os.path.lexists(path):
        return
    if not path.is_dir():
        raise UsageError(f"{path} exists and is not a folder; a PNG sequence needs a folder (it was left untouched)")
    why = why_not_ours(path)
    if why is not None:
        raise UsageError(f"output folder {path} {why}")


def _check_not_nested(specs: list[OutputSpec]) -> None:
    """An output inside a sequence folder would be foreign content there (and lost when the folder is renamed)."""
    for folder in (s for s in specs if s.is_sequence):
        for other in specs:
            if other is not folder and _inside(other.path, folder.path):
                raise UsageError(f"{other.path} is inside the PNG-sequence folder {folder.path}; write it elsewhere")


def check_writable(spec: OutputSpec, overwrite: bool) -> None:
    """Refuse before doing any work: an existing output without --overwrite (``OutputExists``), or a folder we cannot
    write to."""
    target = spec.path
    exists = target.exists() and not (target.is_dir() and not any(target.iterdir()))
    if exists and not overwrite:
        raise OutputExists(target)
    # The temporary goes beside the real folder (AtomicOutput follows a symlinked folder; "./" has no name).
    if not target.name or (spec.is_sequence and target.is_dir()):
        target = Path(os.path.realpath(target))
    parent = target.parent
    if spec.object is not None and spec.is_sequence and not os.path.lexists(parent):
        parent = parent.parent  # an object's folder (pha/2/) goes in one made for the objects (pha/) when needed
    if not parent.exists():
        raise OutputError(f"output folder does not exist: {parent}")
    if not parent.is_dir():
        raise OutputError(f"output folder is not a folder: {parent}")
    # os.access says yes to root even on read-only mounts: create (and remove) a file to be sure.
    try:
        with tempfile.NamedTemporaryFile(dir=parent, prefix=".vidmatte-probe-"):
            pass
    except OSError as exc:
        raise OutputError(f"output folder is not writable: {parent} ({exc.strerror})") from None


def check_encoding(specs: list[OutputSpec], crf: int | None, preset: str) -> str | None:
    """Refuse encoder settings the requested outputs cannot take; a warning for a --crf none of them uses."""
    if preset not in X264_PRESETS:
        raise UsageError(f"--preset must be one of x264's presets ({', '.join(X264_PRESETS)}), not {preset!r}")
    if crf is None:
        return None
    encoders = {choose_codec(s.path.suffix.lower(), s.carries_alpha, preset).name
                for s in specs if not s.is_sequence and not s.is_image}
    used = sorted(encoders & set(CRF_RANGES))
    if not used:
        return "--crf is ignored: no output is encoded with H.264 or VP9 (PNG, ProRes and FFV1 are lossless or fixed)"
    for encoder in used:
        name, highest = CRF_RANGES[encoder]
        if not 0 <= crf <= highest:
            raise UsageError(f"--crf {crf} is out of range for {name} outputs (0..{highest})")
    return None


def takes_16_bit(spec: OutputSpec) -> bool:
    return spec.image_format in ("png", "tiff", "exr")


def check_bit_depth(specs: list[OutputSpec], given: int | None) -> None:
    """A --bit-depth above 8 is refused where it would be silently ignored (parse_output refused the depths a
    format cannot hold)."""
    if given is None or given == 8:
        return
    for spec in specs:
        if spec.kind == "alpha" and not takes_16_bit(spec):
            raise UsageError(f"--bit-depth {given}: {spec.path} holds 8-bit alpha only; 16-bit is for PNG/TIFF (a "
                             "folder/, .png or .tif), 16 and 32 for EXR (--image-format exr or .exr)")
    takers = [s for s in specs if s.image_format == "exr" or (s.image_format in ("png", "tiff")
                                                               and s.kind in DEPTH_KINDS)]
    if not takers:
        raise UsageError(f"--bit-depth {given} applies to alpha, foreground and RGBA images (16-bit PNG or TIFF) and "
                         "to EXR (16 half, 32 float); no output here is one")


def check_image_format(specs: list[OutputSpec], image_format: str, premultiplied: bool) -> str | None:
    """Refuse an EXR without its extra and --premultiplied without an RGBA output (one-line UsageErrors, before any
    work); a warning for an --image-format no output uses."""
    from ..extras import require

    if any(s.image_format == "exr" for s in specs):
        require("exr", "EXR output (--image-format exr, .exr)", "OpenEXR")
    if premultiplied and not any(s.carries_alpha for s in specs):
        raise UsageError("--premultiplied applies to --rgba (and --layers) outputs (the colour stored times "
                         "alpha); none is requested")
    if image_format != "png" and not any(s.is_sequence for s in specs):
        return f"--image-format {image_format} is ignored: it is for folder/ outputs (a file's extension names its own)"
    return None


def _disk_error(exc: OSError, path: Path) -> OutputError:
    if exc.errno == errno.ENOSPC:
        return OutputError(f"disk full while writing {path}")
    return OutputError(f"cannot write {path}: {exc.strerror or exc}")


def _write_image(path: Path, image, spec: OutputSpec) -> None:
    """One frame of ``spec`` to ``path``: float planes to EXR (``--layers``: named channels, every object's), the
    rest through OpenCV (with the alpha's tags)."""
    if spec.kind == "layers":  # image: {object id: (alpha, foreground)}
        write_layers_in_place(path, image, spec.bit_depth, spec.premultiplied, spec.path)
        return
    if spec.image_format == "exr":
        write_exr(path, exr_channels(image, matte=spec.kind == "alpha"), spec.bit_depth,
                  exr_attributes(spec.premultiplied, colour=image.ndim == 3), spec.path)
        return
    _imwrite(path, image, spec.path, premultiplied=spec.premultiplied)


def _imwrite(path: Path, image: np.ndarray, shown_as: Path, premultiplied: bool = False) -> None:
    """uint8/uint16 gray, RGB or RGBA -> an image file (format by extension); errors name ``shown_as``. RGBA PNGs
    and TIFFs say whether their colour is premultiplied."""
    import cv2

    alpha = image.ndim == 3 and image.shape[2] == 4
    if image.ndim == 3:
        code = cv2.COLOR_RGBA2BGRA if image.shape[2] == 4 else cv2.COLOR_RGB2BGR
        image = cv2.cvtColor(image, code)
    # PNG level 1: still lossless; higher levels cost several times the encode time for ~10% smaller files.
    params = [cv2.IMWRITE_PNG_COMPRESSION, 1] if path.suffix.lower() == ".png" else []
    ok, encoded = cv2.imencode(path.suffix.lower(), image, params)
    if not ok:
        raise OutputError(f"cannot encode {shown_as}")
    data = encoded.data
    if alpha and path.suffix.lower() == ".png":
        data = png_with_text(encoded.tobytes(), {"alpha_mode": alpha_mode(premultiplied)})
    elif alpha and path.suffix.lower() in (".tif", ".tiff"):
        data = tiff_with_alpha_mode(encoded.tobytes(), premultiplied)
    # Encoding in memory and writing here turns a full disk into ENOSPC (and no libpng noise on stderr).
    try:
        with open(path, "wb") as fh:
            fh.write(data)
    except OSError as exc:
        raise _disk_error(exc, shown_as) from None


class ImageSequenceWriter:
    """``00000.png``, ``00001.png``... (``.tif``, ``.exr`` by the spec's format) in a folder that appears under its
    final name when complete."""

    def __init__(self, spec: OutputSpec):
        self.spec = spec
        self._extension = EXTENSION[spec.image_format or "png"]
        try:
            self._out = AtomicOutput(spec.path, is_dir=True)
        except OSError as exc:
            raise _disk_error(exc, spec.path) from None
        self._count = 0

    def write(self, image: np.ndarray, pts: int | None = None) -> None:
        _write_image(self._out.temp / f"{self._count:05d}{self._extension}", image, self.spec)
        self._count += 1

    def close(self) -> None:
        self._out.commit()

    def abort(self) -> None:
        self._out.abort()

    discard = abort


PngSequenceWriter = ImageSequenceWriter  # its former name


class ImageFileWriter(ImageSequenceWriter):
    """One image file (``cutout.png``) for a one-frame input; the pipeline refuses longer inputs beforehand."""

    def __init__(self, spec: OutputSpec):
        self.spec = spec
        self._out = AtomicOutput(spec.path, is_dir=False)
        self._count = 0

    def write(self, image: np.ndarray, pts: int | None = None) -> None:
        if self._count:
            raise UsageError(f"{self.spec.path} holds one image; write a longer input to a folder/ or a video")
        _write_image(self._out.temp, image, self.spec)
        self._count = 1


class VideoFileWriter:
    """One video stream (+ the input's audio, when given) in a container chosen by extension."""

    def __init__(self, spec: OutputSpec, width: int, height: int, time_base: Fraction, fps: float,
                 crf: int | None = None, bitrate: str | None = None, preset: str = "superfast",
                 audio=None, threads: int = 0, timecode: str | None = None):
        import av

        self.spec = spec
        self.codec = choose_codec(spec.path.suffix.lower(), spec.carries_alpha, preset)
        self.width, self.height = width, height
        self._pad = (height % 2, width % 2) if self.codec.needs_even_size else (0, 0)
        self._out = AtomicOutput(spec.path, is_dir=False)
        ext = spec.path.suffix.lower()
        # QuickTime keeps keys of its own (alpha_mode) only as "mdta" metadata; Matroska takes any tag.
        tagged = spec.carries_alpha and ext in (".mov", ".mp4")
        try:
            self.container = av.open(str(self._out.temp), mode="w",
                                     options={"movflags": "use_metadata_tags"} if tagged else None)
        except (av.error.FFmpegError, OSError) as exc:
            raise _disk_error(exc if isinstance(exc, OSError) else OSError(errno.EIO, str(exc)), spec.path) from None
        if timecode:  # MOV/MP4 get a timecode track (tmcd), Matroska a TIMECODE tag
            self.container.metadata["timecode"] = timecode
        if spec.carries_alpha:  # neither ProRes, VP9 nor FFV1 has a flag of its own for premultiplied colour
            self.container.metadata["alpha_mode"] = alpha_mode(spec.premultiplied)
        rate = Fraction(fps).limit_denominator(1001) if fps else Fraction(30)
        stream = self.container.add_stream(self.codec.name, rate=rate)
        stream.width, stream.height = width + self._pad[1], height + self._pad[0]
        stream.pix_fmt = self.codec.pix_fmt
        stream.time_base = time_base
        stream.codec_context.time_base = time_base
        stream.thread_count = threads
        options = dict(self.codec.options)
        if bitrate:
            stream.bit_rate = _parse_bitrate(bitrate)
        elif self.codec.name in ("libx264", "libvpx-vp9"):
            options["crf"] = str(crf if crf is not None else (18 if self.codec.name == "libx264" else 30))
        if self.codec.name == "libx264" and width * height > LARGE_FRAME_PIXELS:
            # B-frames make x264 hold several whole frames: ~250 MB at 4K against ~40 MB without them, for files
            # roughly a tenth larger. Above 1440p memory is the tighter budget (benchmarks/memory_4k.py).
            options["x264-params"] = "bframes=0"
        stream.options = options
        self.stream = stream
        # Muxers may replace the stream's time base when the header is written (WebM/MKV use 1/1000); frames
        # keep the input's time base and FFmpeg rescales the packets.
        self.time_base = time_base
        self.audio = audio.attach(self.container) if audio is not None else None
        self._av = av

    def write(self, image: np.ndarray, pts: int) -> None:
        if self._pad != (0, 0):  # 4:2:0 needs even sizes: replicate the last row/column rather than fail
            pad = ((0, self._pad[0]), (0, self._pad[1])) + ((0, 0),) * (image.ndim - 2)
            image = np.pad(image, pad, mode="edge")
        frame = self._to_frame(image)
        frame.pts = pts
        frame.time_base = self.time_base
        self._mux(self.stream.encode(frame))

    def _to_frame(self, image: np.ndarray):
        """uint8 gray/RGB/RGBA -> a VideoFrame the encoder takes as is.

        For 4:2:0 encoders the conversion is done here with OpenCV (about 0.6 ms for a 1080p frame against 5 ms in
        swscale), with the same BT.601 limited-range matrix swscale applies to untagged RGB.
        """
        if self.codec.pix_fmt == "yuv420p" and (image.ndim == 2 or image.shape[2] == 3):
            return self._av.VideoFrame.from_ndarray(_to_i420(image), format="yuv420p")
        fmt = "gray" if image.ndim == 2 else ("rgba" if image.shape[2] == 4 else "rgb24")
        return self._av.VideoFrame.from_ndarray(image, format=fmt)

    def _mux(self, packets) -> None:
        try:
            self.container.mux(packets)
        except OSError as exc:
            raise _disk_error(exc, self.spec.path) from None

    def close(self) -> None:
        self._mux(self.stream.encode(None))
        if self.audio is not None:
            self.audio.copy()
        try:
            self.container.close()
        except OSError as exc:
            raise _disk_error(exc, self.spec.path) from None
        self._out.commit()

    def abort(self) -> None:
        try:
            self.container.close()
        except Exception:  # closing a half-written container may fail; the temp file is removed either way
            pass
        self._out.abort()

    def discard(self) -> None:
        """Remove the temporary file without touching the container (another thread may be inside it)."""
        self._out.abort()


def _to_i420(image: np.ndarray) -> np.ndarray:
    """uint8 RGB [H,W,3] or gray [H,W] (even sizes) -> planar I420 [H*3/2, W], BT.601 limited range."""
    import cv2

    if image.ndim == 3:
        return cv2.cvtColor(image, cv2.COLOR_RGB2YUV_I420)
    h, w = image.shape
    planes = np.full((h * 3 // 2, w), 128, np.uint8)  # neutral chroma
    planes[:h] = cv2.convertScaleAbs(image, alpha=219 / 255, beta=16)  # luma in 16..235, as swscale maps gray
    return planes


def _parse_bitrate(text: str) -> int:
    text = text.strip().lower()
    scale = {"k": 1_000, "m": 1_000_000}.get(text[-1:], 1)
    try:
        return int(float(text.rstrip("km")) * scale)
    except ValueError:
        raise UsageError(f"bad bitrate {text!r}; use e.g. 8M or 4000k") from None


def open_writer(spec: OutputSpec, width: int, height: int, time_base: Fraction, fps: float, **options):
    """A writer with ``write(image, pts)``, ``close()`` (commit) and ``abort()`` (remove the temp file)."""
    if spec.is_sequence:
        return ImageSequenceWriter(spec)
    if spec.is_image:
        return ImageFileWriter(spec)
    return VideoFileWriter(spec, width, height, time_base, fps, **options)
