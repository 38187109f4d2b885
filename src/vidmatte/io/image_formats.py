"""The still formats of folder outputs (and one-image outputs): PNG, TIFF and OpenEXR, and what each says of its alpha.

- PNG and TIFF hold what the writer gives them: uint8 or uint16, grey, RGB or RGBA, in the video's own (sRGB /
  Rec.709) encoding. RGBA is straight unless the run asked for ``--premultiplied``; PNG says which in a ``tEXt``
  chunk (``alpha_mode``), TIFF in its ExtraSamples tag (1 associated = premultiplied, 2 unassociated = straight),
  which OpenCV's TIFF writer leaves out: without it editors do not know the fourth channel is alpha at all.
- OpenEXR (the ``openexr`` package, the ``exr`` extra) holds half (``--bit-depth 16``) or float (32) channels. Its
  colour is *linear* (the sRGB transfer decoded), as the format's convention is and compositors assume; alpha is
  alpha. A matte is written as ``Y`` and ``A`` (the same values: grey readers such as OpenCV's show ``Y``,
  compositors take ``A``); RGB as ``R, G, B``; RGBA as ``R, G, B, A``; a layered file (``write_layers_exr``) as
  ``<id>.A, <id>.R, <id>.G, <id>.B`` per object. The header says ``alpha_mode`` (straight | premultiplied) and
  ``colour`` (the encoding of R, G, B).
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

from ..errors import OutputError

IMAGE_FORMATS = ("png", "tiff", "exr")
EXTENSION = {"png": ".png", "tiff": ".tif", "exr": ".exr"}  # of a folder's frames
FORMAT_OF_EXTENSION = {".png": "png", ".tif": "tiff", ".tiff": "tiff", ".exr": "exr"}
BIT_DEPTHS = {"png": (8, 16), "tiff": (8, 16), "exr": (16, 32)}  # EXR: 16 half, 32 float
DEFAULT_BIT_DEPTH = {"png": 8, "tiff": 8, "exr": 16}
ALPHA_MODES = ("straight", "premultiplied")
EXR_COLOUR = "linear, sRGB/Rec.709 primaries (the input's sRGB transfer decoded)"


def alpha_mode(premultiplied: bool) -> str:
    return ALPHA_MODES[bool(premultiplied)]


# --- PNG ---------------------------------------------------------------------------------------------------------
def png_with_text(encoded: bytes, text: dict[str, str]) -> bytes:
    """An encoded PNG with ``tEXt`` chunks added right after IHDR (OpenCV's encoder writes none)."""
    if not text:
        return encoded
    ihdr_end = 8 + 8 + 13 + 4  # signature, then IHDR: length, type, 13 bytes of data, CRC
    chunks = b""
    for key, value in text.items():
        data = key.encode("latin-1") + b"\0" + value.encode("latin-1")
        chunks += struct.pack(">I", len(data)) + b"tEXt" + data + struct.pack(">I", zlib.crc32(b"tEXt" + data))
    return encoded[:ihdr_end] + chunks + encoded[ihdr_end:]


def png_text(data: bytes) -> dict[str, str]:
    """The ``tEXt`` chunks of a PNG file's bytes."""
    text, pos = {}, 8
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if kind == b"tEXt":
            key, _, value = data[pos + 8:pos + 8 + length].partition(b"\0")
            text[key.decode("latin-1")] = value.decode("latin-1")
        if kind == b"IEND":
            break
        pos += 12 + length
    return text


# --- TIFF --------------------------------------------------------------------------------------------------------
EXTRA_SAMPLES = 338  # TIFF tag: what the channels beyond the colour ones are
ASSOCIATED_ALPHA, UNASSOCIATED_ALPHA = 1, 2


def tiff_with_alpha_mode(encoded: bytes, premultiplied: bool) -> bytes:
    """An encoded RGBA TIFF whose first directory says its fourth channel is alpha, associated (premultiplied) or
    unassociated (straight).

    The directory is rewritten at the end of the file with the tag added (directories are sorted by tag and the
    entries' offsets point elsewhere in the file, so the old one is left as unused bytes) and the header pointed at
    it: 12 bytes more, no image data moved.
    """
    order = {b"II": "<", b"MM": ">"}.get(encoded[:2])
    if order is None or struct.unpack(order + "H", encoded[2:4])[0] != 42:
        return encoded  # BigTIFF (over 4 GB) or not a TIFF: OpenCV writes neither for a frame
    ifd = struct.unpack(order + "I", encoded[4:8])[0]
    count = struct.unpack(order + "H", encoded[ifd:ifd + 2])[0]
    entries = {}
    for i in range(count):
        raw = encoded[ifd + 2 + 12 * i: ifd + 14 + 12 * i]
        entries[struct.unpack(order + "H", raw[:2])[0]] = raw
    value = ASSOCIATED_ALPHA if premultiplied else UNASSOCIATED_ALPHA
    entries[EXTRA_SAMPLES] = struct.pack(order + "HHIHH", EXTRA_SAMPLES, 3, 1, value, 0)  # SHORT, 1 value, inline
    next_ifd = encoded[ifd + 2 + 12 * count: ifd + 6 + 12 * count]
    body = encoded + b"\0" * (len(encoded) % 2)  # a directory starts on a word boundary
    directory = struct.pack(order + "H", len(entries)) + b"".join(entries[t] for t in sorted(entries)) + next_ifd
    return body[:4] + struct.pack(order + "I", len(body)) + body[8:] + directory


def tiff_extra_samples(data: bytes) -> int | None:
    """The ExtraSamples value of a TIFF's first directory (None without the tag)."""
    order = {b"II": "<", b"MM": ">"}[data[:2]]
    ifd = struct.unpack(order + "I", data[4:8])[0]
    for i in range(struct.unpack(order + "H", data[ifd:ifd + 2])[0]):
        tag, kind, n, value = struct.unpack(order + "HHIH", data[ifd + 2 + 12 * i: ifd + 12 + 12 * i])
        if tag == EXTRA_SAMPLES:
            return value
    return None


# --- colour ------------------------------------------------------------------------------------------------------
_LINEAR_LUT: np.ndarray | None = None


def srgb_to_linear(values: np.ndarray) -> np.ndarray:
    """sRGB-encoded 0..1 (float) or uint8 -> linear float32, through a 16-bit table (a per-pixel pow costs ~80 ms
    on a 1080p frame; the table ~10 ms, and 16 bits of the display encoding are more than an 8-bit video holds)."""
    global _LINEAR_LUT
    if _LINEAR_LUT is None:
        c = np.arange(65536, dtype=np.float64) / 65535
        _LINEAR_LUT = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4).astype(np.float32)
    if values.dtype == np.uint8:
        return _LINEAR_LUT[values.astype(np.uint16) * 257]
    if values.dtype == np.uint16:
        return _LINEAR_LUT[values]
    index = np.empty(values.shape, np.uint16)
    np.copyto(index, np.clip(values * np.float32(65535) + np.float32(0.5), 0, 65535), casting="unsafe")
    return _LINEAR_LUT[index]


# --- OpenEXR -----------------------------------------------------------------------------------------------------
def exr_channels(image: np.ndarray, matte: bool = True) -> dict[str, np.ndarray]:
    """Float [H,W] (a matte: ``Y`` and ``A``, the same values, since grey readers such as OpenCV's show ``Y`` and
    compositors take ``A``; not a matte, e.g. a trimap: ``Y`` alone), [H,W,3] (colour) or [H,W,4] (colour and
    alpha) -> named EXR channels."""
    if image.ndim == 2:
        return {"Y": image, "A": image} if matte else {"Y": image}
    return {name: image[..., i] for i, name in enumerate("RGBA"[:image.shape[2]])}


def write_exr(path: Path, channels: dict[str, np.ndarray], bit_depth: int = 16,
              attributes: dict[str, str] | None = None, shown_as: Path | None = None) -> None:
    """Named float channels -> one OpenEXR file (half for ``bit_depth`` 16, float for 32; lossless compression).

    Colour is PIZ-compressed (wavelets: at 1080p RGBA about a third smaller and half the time of ZIP on a grainy
    picture), a lone matte ZIP (smaller and faster there); both are OpenEXR 1.x codecs every reader knows.

    ``path`` is written in place: callers give a temporary name (a folder output's temporary folder, an
    ``AtomicOutput``'s file), renamed when the job completes.
    """
    import OpenEXR

    dtype = np.float16 if bit_depth == 16 else np.float32
    colour = any(name.rpartition(".")[2] in ("R", "G", "B") for name in channels)
    compression = OpenEXR.PIZ_COMPRESSION if colour else OpenEXR.ZIP_COMPRESSION
    header = {"compression": compression, "type": OpenEXR.scanlineimage, **(attributes or {})}
    planes = {name: np.ascontiguousarray(plane, dtype=dtype) for name, plane in channels.items()}
    try:
        with OpenEXR.File(header, planes) as exr:
            exr.write(str(path))
    except OSError as exc:
        raise OutputError(f"cannot write {shown_as or path}: {exc.strerror or exc}") from None
    except Exception as exc:  # OpenEXR reports a full disk or a bad channel as a RuntimeError
        raise OutputError(f"cannot write {shown_as or path}: {exc}") from None


def exr_attributes(premultiplied: bool, colour: bool) -> dict[str, str]:
    attributes = {"alpha_mode": alpha_mode(premultiplied), "software": "vidmatte"}
    if colour:
        attributes["colour"] = EXR_COLOUR
    return attributes


def layer_channels(layers: dict, premultiplied: bool = False) -> dict[str, np.ndarray]:
    """{id: (alpha float [H,W] 0..1, foreground [H,W,3] float 0..1 or uint8, sRGB-encoded; or None)} -> the
    channels of a layered EXR: ``<id>.A`` and, with a foreground, ``<id>.R``, ``<id>.G``, ``<id>.B`` (linear;
    times alpha when ``premultiplied``)."""
    channels = {}
    for key, (alpha, foreground) in layers.items():
        name = str(key)
        if not name or "." in name:
            raise ValueError(f"a layer's id must be a non-empty name without '.', not {name!r}")
        alpha = np.asarray(alpha, np.float32)
        channels[f"{name}.A"] = alpha
        if foreground is not None:
            linear = srgb_to_linear(np.asarray(foreground))
            if premultiplied:
                linear = linear * alpha[..., None]
            for i, c in enumerate("RGB"):
                channels[f"{name}.{c}"] = linear[..., i]
    return channels


def write_layers_exr(path: str | Path, layers: dict, bit_depth: int = 16, premultiplied: bool = False) -> None:
    """One multi-layer OpenEXR: a channel group per object (``<id>.A`` alpha; ``<id>.R/.G/.B`` its foreground,
    linear), half floats for ``bit_depth`` 16, floats for 32; the header says ``alpha_mode``, ``colour`` and
    ``layers`` (the ids, comma-separated, in the order given). The file appears under ``path`` only when complete
    (``io.atomic.atomic_path``: written beside it, then renamed)."""
    from .atomic import atomic_path

    with atomic_path(Path(path)) as temp:
        write_layers_in_place(temp, layers, bit_depth, premultiplied, shown_as=Path(path))


def write_layers_in_place(path: Path, layers: dict, bit_depth: int = 16, premultiplied: bool = False,
                          shown_as: Path | None = None) -> None:
    """``write_layers_exr`` to ``path`` as it is named (a temporary already: a ``--layers`` folder's frame)."""
    if bit_depth not in BIT_DEPTHS["exr"]:
        raise ValueError(f"an EXR's bit depth is 16 (half) or 32 (float), not {bit_depth}")
    attributes = exr_attributes(premultiplied, colour=True)
    attributes["layers"] = ",".join(str(k) for k in layers)
    write_exr(path, layer_channels(layers, premultiplied), bit_depth, attributes, shown_as=shown_as or path)


def read_exr(path: str | Path) -> tuple[dict[str, np.ndarray], dict]:
    """(channels by name, header) of an OpenEXR file, each channel as stored (float16 or float32)."""
    import OpenEXR

    with OpenEXR.File(str(path), separate_channels=True) as exr:
        return {name: channel.pixels.copy() for name, channel in exr.channels().items()}, dict(exr.header())
