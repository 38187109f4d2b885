"""One guidance image (a trimap or an object mask, in the formats people and tools save them) -> a clean trimap.

A trimap here is always uint8 [H,W] with values exactly 0 (background), 128 (unknown) and 255 (foreground), at
the frame's size. The rules, and why:

- **Reading.** Pillow, so that a palette PNG's indices (object ids in DAVIS/Cutie masks) are not confused with its
  colours. A palette whose used colours are all greys is read as those greys (GCA's trimaps are palette PNGs with a
  0/128/255 grey palette); any other palette is a mask whose indices are object ids. 16-bit grey keeps its top 8
  bits. An image with an alpha channel is read **premultiplied** (grey x alpha / 255): an opaque RGBA trimap
  (ViTMatte's demo, pymatting's lemur: alpha is 255 everywhere) reads as its grey, and a trimap painted on a
  transparent layer reads as it looks over black, so unpainted (transparent) pixels are background.
- **Trimap levels.** <= 25 is background, >= 230 is foreground, anything between is unknown. The unknown region is
  often not 128 (pymatting draws it as 102) and anti-aliased trimaps (ViTMatte's demo) have edge pixels at 32, 64,
  96, 160, 190, 192...: a wide middle makes every such pixel unknown, which is the safe side (a solver refines
  unknown pixels; a wrong definite pixel it never revisits). 25 and 230 leave about 10% of the range to JPEG noise
  around the two ends.
- **Masks.** 0 is background; the object is one palette index (``object_id``), the only non-zero value of a
  two-level image, or for a soft grey mask (several levels, some between 25 and 230) the pixels >= 128. A grey image
  whose non-zero values are all small (<= 25: a label map 0/1/2...) is read like a palette, one object per value.
  A mask becomes a trimap with an unknown band of ``band`` pixels straddling its edge: ``band // 2`` inside (the
  object eroded) and the rest outside (the object dilated), with an elliptic kernel so corners are not squared.
  The default band is 10 pixels at 1080p, scaled by the frame's short side (4 at 480p, 7 at 720p, 20 at 2160p,
  never below 2): masks from segmentation tools are off by a few pixels at the edge, more in pixels at a larger
  size.
- **kind="auto".** A non-grey palette or colour image is a mask; a grey image with at most two levels is a mask
  (0 vs non-zero); a grey image with levels between 25 and 230 is a trimap; with an ``object_id`` it is a mask.
- **Size.** The guidance must have the frame's size; if only the scale differs (aspect ratios within 1%) it is
  resized with nearest-neighbour (ids and levels survive) and a warning says so. A guidance image up to 15 rows or
  columns short of (or beyond) the frames (under 1%), with the other side equal, is codec padding (H.264 stores
  1080p as 1088 rows when the encoder sets no cropping: MatAnyone's test-sample2 and its 1920x1080 mask; Cutie's
  853-px-wide judo mask for 854-px frames): it is padded with background (or cropped) at the bottom or right, with
  a warning. Anything else is refused.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from ..errors import GuidanceError

BG_MAX = 25  # trimap grey <= this: background
FG_MIN = 230  # trimap grey >= this: foreground (between: unknown)
MASK_SOFT_THRESHOLD = 128  # a soft grey mask's object: grey >= this
BAND_AT_1080P = 10  # default unknown band of a mask (pixels, whole width) at a 1080-pixel short side
MIN_BAND = 2
ASPECT_TOLERANCE = 0.01  # relative aspect-ratio difference still resized rather than refused
CODEC_PADDING = 16  # fewer rows or columns than this differing: codec padding, not another picture
KINDS = ("auto", "trimap", "mask")



class MissingObject(GuidanceError):
    """A multi-object mask without the object asked for. In a keyframe folder that is Cutie's convention (a later
    mask adds new objects and says nothing of earlier ones), so the loader skips such a mask there."""


# How an image was stored, which decides what its values mean.
GREY, PALETTE, COLOUR = "grey", "palette", "colour"


def read_guidance(path: str | os.PathLike | np.ndarray, frame_size: tuple[int, int], kind: str = "auto",
                  object_id: int | None = None, band: int | None = None) -> tuple[np.ndarray, list[str]]:
    """The trimap of one guidance image: uint8 [H,W], values exactly {0, 128, 255}, H x W = ``frame_size``.

    ``path`` is an image file, or the image itself as a numpy array (an API caller's: see ``array_values``).
    ``frame_size`` is (width, height). ``kind`` is "auto", "trimap" or "mask" (see the module doc); ``object_id``
    picks one object of a multi-object mask; ``band`` is the unknown band of a mask in frame pixels (None: the
    default for the frame size). Returns (trimap, warnings); raises ``GuidanceError`` (one line) when unusable.
    """
    if kind not in KINDS:
        raise GuidanceError(f"guidance kind must be one of {', '.join(KINDS)} (got {kind!r})")
    if band is not None and band < 0:
        raise GuidanceError(f"the mask band must be 0 or more pixels (got {band})")
    if isinstance(path, np.ndarray):
        storage, values = array_values(path)
        path = f"array {list(path.shape)}"  # how messages name it
    else:
        path = Path(path)
        storage, values = read_values(path)
    values, warnings = fit_size(values, frame_size, path)
    if resolve_kind(storage, values, kind, object_id, path) == "trimap":
        trimap = trimap_from_grey(values)
        check_trimap(trimap, path, f"read as a trimap: grey <= {BG_MAX} is background, >= {FG_MIN} foreground")
        return trimap, warnings
    mask = object_mask(storage, values, object_id, path)
    check_trimap(np.where(mask, 255, 0), path, "read as a mask: 0 is background, the object foreground")
    band = default_band(frame_size) if band is None else band
    trimap = trimap_from_mask(mask, band)
    check_trimap(trimap, path, f"the object is thinner than the {band}-pixel unknown band: give a smaller band")
    return trimap, warnings


def read_trimap(path: str | os.PathLike) -> np.ndarray:
    """A grey trimap image at its own size -> uint8 [H,W] {0,128,255}, its levels read as ``read_guidance`` reads
    them, but neither fitted to a frame nor refused for lacking foreground or background: a true trimap (a
    benchmark's, for the oracle) may lack either on some frames. A palette or colour image is refused."""
    path = Path(path)
    storage, values = read_values(path)
    resolve_kind(storage, values, "trimap", None, path)
    return trimap_from_grey(values)


def read_values(path: Path) -> tuple[str, np.ndarray]:
    """(storage, values): GREY uint8 [H,W] 0..255, PALETTE uint8 [H,W] indices, or COLOUR uint8 [H,W,3] RGB."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()
            return _values_of(im)
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc).splitlines()[0]
        raise GuidanceError(f"cannot read guidance image {path}: {reason}") from None


def array_values(array: np.ndarray) -> tuple[str, np.ndarray]:
    """An image given as an array -> (storage, values) as ``read_values`` makes them: bool or integer [H,W] (a mask,
    a label map or a grey trimap; values 0..255), float [H,W] in 0..1 (a soft mask or trimap, scaled to 0..255),
    uint8 [H,W,3] RGB or [H,W,4] RGBA (read premultiplied, as a file is). There is no palette: object ids are the
    values of a label map."""
    if array.ndim == 3 and array.shape[2] in (3, 4) and array.dtype == np.uint8:
        return _grey_or_colour(_premultiplied(array) if array.shape[2] == 4 else array)
    if array.ndim != 2 or array.size == 0:
        raise GuidanceError(f"guidance array must be [H,W] (grey, mask or labels) or uint8 [H,W,3|4], got shape "
                            f"{list(array.shape)} {array.dtype}")
    if array.dtype == bool:
        return GREY, np.where(array, 255, 0).astype(np.uint8)
    if np.issubdtype(array.dtype, np.floating) and np.isfinite(array).all() and 0 <= array.min() <= array.max() <= 1:
        return GREY, np.rint(array * 255).astype(np.uint8)
    if np.issubdtype(array.dtype, np.integer) and 0 <= array.min() and array.max() <= 255:
        return GREY, array.astype(np.uint8)
    raise GuidanceError(f"guidance array of {array.dtype} must hold 0..255 (integers) or 0..1 (floats)")


def _values_of(im) -> tuple[str, np.ndarray]:
    if im.mode == "P":
        return _palette_values(im)
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):  # 16-bit grey: keep the top 8 bits
        return GREY, (np.asarray(im, dtype=np.uint32) >> 8).clip(0, 255).astype(np.uint8)
    if im.mode in ("1", "L"):
        return GREY, np.asarray(im.convert("L")).copy()
    if "A" in im.getbands():  # LA, RGBA, PA...: as it looks over black
        rgba = np.asarray(im.convert("RGBA"))
        return _grey_or_colour(_premultiplied(rgba))
    return _grey_or_colour(np.asarray(im.convert("RGB")))


def _palette_values(im) -> tuple[str, np.ndarray]:
    indices = np.asarray(im).copy()
    colours = np.zeros((256, 3), np.uint8)
    palette = np.asarray(im.getpalette() or [], np.uint8).reshape(-1, 3)[:256]
    colours[:len(palette)] = palette
    used = colours[np.unique(indices)]
    if (used == used[:, :1]).all():  # a grey palette (GCA's trimaps): the greys are the values
        return GREY, colours[indices, 0]
    return PALETTE, indices


def _premultiplied(rgba: np.ndarray) -> np.ndarray:
    """uint8 [H,W,4] -> uint8 [H,W,3] RGB x alpha / 255 (unchanged where alpha is 255)."""
    alpha = rgba[..., 3:4].astype(np.uint16)
    if (alpha == 255).all():
        return rgba[..., :3].copy()
    return ((rgba[..., :3].astype(np.uint16) * alpha + 127) // 255).astype(np.uint8)


def _grey_or_colour(rgb: np.ndarray) -> tuple[str, np.ndarray]:
    if (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all():
        return GREY, np.ascontiguousarray(rgb[..., 0])
    return COLOUR, rgb


def fit_size(values: np.ndarray, frame_size: tuple[int, int], path: Path) -> tuple[np.ndarray, list[str]]:
    """``values`` at ``frame_size`` (width, height): unchanged; padded with background or cropped at the bottom or
    right when one side differs by codec padding; resized nearest-neighbour when only the scale differs (aspect
    within 1%); each with a warning. Anything else is a ``GuidanceError``."""
    width, height = frame_size
    h, w = values.shape[:2]
    if (w, h) == (width, height):
        return values, []
    if (w == width and _codec_padding(h, height)) or (h == height and _codec_padding(w, width)):
        return _padded_or_cropped(values, width, height), [
            f"guidance {path} is {w}x{h}: {'padded with background' if w * h < width * height else 'cropped'} at "
            f"the {'bottom' if w == width else 'right'} to the frames' {width}x{height} (codec padding)"]
    if abs(w * height - width * h) > ASPECT_TOLERANCE * width * h:
        raise GuidanceError(f"guidance {path} is {w}x{h} but the frames are {width}x{height} "
                            "(not the same picture at another scale)")
    resized = cv2.resize(values, (width, height), interpolation=cv2.INTER_NEAREST)
    return resized, [f"guidance {path} is {w}x{h}: resized to the frames' {width}x{height} (nearest neighbour)"]


def _codec_padding(side: int, frame_side: int) -> bool:
    """Could ``side`` and ``frame_side`` differ only by a codec's padding (a few rows, under 1% of the side)?"""
    return abs(side - frame_side) < CODEC_PADDING and abs(side - frame_side) <= 0.01 * frame_side


def _padded_or_cropped(values: np.ndarray, width: int, height: int) -> np.ndarray:
    """The top-left ``height`` x ``width`` of ``values``, zeros (background, in every format) where it is short."""
    fitted = np.zeros((height, width) + values.shape[2:], values.dtype)
    h, w = min(height, values.shape[0]), min(width, values.shape[1])
    fitted[:h, :w] = values[:h, :w]
    return fitted


def resolve_kind(storage: str, values: np.ndarray, kind: str, object_id: int | None, path: Path) -> str:
    """"trimap" or "mask" for this image (see the module doc for "auto")."""
    if kind == "trimap":
        if storage != GREY:
            what = "a palette mask" if storage == PALETTE else "a colour image"
            raise GuidanceError(f"guidance {path} is {what}, not a grey trimap (give it as a mask)")
        if object_id is not None:
            raise GuidanceError(f"an object id picks an object of a mask, but {path} is given as a trimap")
        return "trimap"
    if kind == "mask" or storage != GREY or object_id is not None:
        return "mask"
    levels = np.unique(values)
    if len(levels) <= 2:
        return "mask"
    return "trimap" if ((levels > BG_MAX) & (levels < FG_MIN)).any() else "mask"


def trimap_from_grey(grey: np.ndarray) -> np.ndarray:
    """Grey uint8 [H,W] -> trimap uint8 [H,W] {0,128,255}: <= 25 background, >= 230 foreground, else unknown."""
    trimap = np.full(grey.shape, 128, np.uint8)
    trimap[grey <= BG_MAX] = 0
    trimap[grey >= FG_MIN] = 255
    return trimap


def object_mask(storage: str, values: np.ndarray, object_id: int | None, path: Path) -> np.ndarray:
    """bool [H,W]: the object's pixels (see the module doc for which object)."""
    if storage == COLOUR:
        return _colour_object(values, object_id, path)
    if storage == PALETTE:
        return _labelled_object(values, object_id, path, "palette indices")
    nonzero = np.unique(values[values != 0])
    if object_id is not None or (len(nonzero) > 1 and nonzero.max() <= BG_MAX):
        return _labelled_object(values, object_id, path, "grey levels")  # a label map 0/1/2...
    if len(nonzero) <= 1:
        return values != 0  # binary: 0 vs anything else (0/255, 0/1...)
    return values >= MASK_SOFT_THRESHOLD  # soft or anti-aliased: half-way


def _labelled_object(labels: np.ndarray, object_id: int | None, path: Path, what: str) -> np.ndarray:
    ids = [int(i) for i in np.unique(labels) if i != 0]
    if object_id is not None:
        if object_id not in ids:
            raise MissingObject(f"mask {path} has no object {object_id} (objects present: {_id_list(ids)})")
        return labels == object_id
    if len(ids) > 1:
        raise GuidanceError(f"mask {path} holds {len(ids)} objects ({what} {_id_list(ids)}): "
                            "give an object id to pick one")
    return labels != 0


def _colour_object(rgb: np.ndarray, object_id: int | None, path: Path) -> np.ndarray:
    nonblack = rgb.any(axis=2)
    colours = np.unique(rgb[nonblack], axis=0)
    if object_id is not None or len(colours) > 1:
        raise GuidanceError(f"mask {path} is an RGB image with {len(colours)} colours besides black: objects are "
                            "only told apart in a palette PNG (indices are object ids) or a grey label image")
    return nonblack


def _id_list(ids: list[int], most: int = 12) -> str:
    shown = ", ".join(str(i) for i in ids[:most])
    return shown + (", ..." if len(ids) > most else "") if ids else "none"


def default_band(frame_size: tuple[int, int]) -> int:
    """The default unknown band (pixels) of a mask at ``frame_size`` (width, height): 10 at a 1080-pixel short
    side, proportional to the short side, at least 2."""
    return max(MIN_BAND, round(BAND_AT_1080P * min(frame_size) / 1080))


def trimap_from_mask(mask: np.ndarray, band: int) -> np.ndarray:
    """bool [H,W] object -> trimap uint8 [H,W] {0,128,255} with ``band`` unknown pixels across the edge
    (``band // 2`` inside the object, the rest outside)."""
    inside, outside = band // 2, band - band // 2
    fg = _erode(mask, inside)
    bg = ~_dilate(mask, outside)
    trimap = np.full(mask.shape, 128, np.uint8)
    trimap[fg] = 255
    trimap[bg] = 0
    return trimap


def _disc(radius: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def _erode(mask: np.ndarray, radius: int) -> np.ndarray:
    # The default border counts as inside: an object cut by the frame edge stays foreground up to the edge.
    return mask if radius == 0 else cv2.erode(mask.astype(np.uint8), _disc(radius)).astype(bool)


def _dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    return mask if radius == 0 else cv2.dilate(mask.astype(np.uint8), _disc(radius)).astype(bool)


def check_trimap(trimap: np.ndarray, path: str | os.PathLike, how: str) -> None:
    """Refuse a trimap (or mask: 0/255) with no definite foreground or no definite background: there is nothing to
    propagate or solve from. ``how`` says how the image was read, for the message."""
    for value, name in ((255, "foreground"), (0, "background")):
        if not (trimap == value).any():
            raise GuidanceError(f"guidance {path} has no known {name} ({how})")
