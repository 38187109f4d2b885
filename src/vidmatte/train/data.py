"""Training data: matte sources (foreground + alpha), backgrounds, segmentation sets, and the clip composer.

Layouts read (all frames RGB, alpha single-channel or any channel of an RGB image):
- VideoMatte240K: ``<root>/fgr/<clip>/`` and ``<root>/pha/<clip>/`` as frame folders or ``<clip>.mp4`` videos.
- ImageMatte (Distinctions-646 / Adobe style): ``<root>/fg/<name>`` and ``<root>/alpha/<name>``.
- DVM (nowsyn/DVM): ``<root>/fg/image/<split>/{fg,alpha}/<name>``, ``<root>/fg/video/<split>/<clip>/{f,a}.mp4`` as
  mattes (type ``dvm``), ``<root>/bg/<split>/*.mp4`` as backgrounds (type ``dvm_backgrounds``): ``data.dvm_layout``.
- Bench clips from ``vidmatte bench build``: ``<root>/<clip>/{com,pha,fgr,bgr}/00000.png`` (fgr + pha as mattes,
  bgr as background videos).
- Backgrounds: folders of images and/or videos (searched recursively).
- Segmentation: ``img/`` + ``seg/`` pairs (Supervisely Person as preprocessed for RVM), COCO panoptic
  (person segments of ``panoptic_*.json`` + PNGs), YouTubeVIS (``JPEGImages/<video>/`` + instances json, RLE).
- Generated mattes/backgrounds (for tests and smoke runs), no files needed.

Every sample is drawn from a ``torch.Generator`` seeded by (run seed, step), so a batch depends only on its step:
that is what makes resuming exact and lets DataLoader workers run in any order.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..io.images import IMAGE_EXTENSIONS
from .augment import augment_clip, choice, sample_frame_indices, uniform

VIDEO_EXTS = {".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v"}


# ----------------------------------------------------------------------------------------------------- reading
def read_image(path: str | os.PathLike, channels: int = 3) -> Tensor:
    """An image file -> float [C,H,W] in 0..1 (channels 3: RGB; 1: the luminance/first channel, for alpha)."""
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("RGB" if channels == 3 else "L")
        array = np.asarray(im, dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1) if channels == 3 else torch.from_numpy(array)[None]


class FrameSequence:
    """A clip stored as a folder of images or as one video file; ``read(indices)`` -> [T,C,H,W] 0..1."""

    def __init__(self, path: str | os.PathLike, channels: int = 3):
        self.path = Path(path)
        self.channels = channels
        if self.path.is_dir():
            self.frames = sorted(p for p in self.path.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
            if not self.frames:
                raise ValueError(f"no image frames in {self.path}")
            self._length = len(self.frames)
        else:
            self.frames = None
            self._length = None

    def __len__(self) -> int:
        if self._length is None:
            import av

            with av.open(str(self.path)) as container:
                stream = container.streams.video[0]
                self._length = stream.frames or sum(1 for _ in container.decode(stream))
        return self._length

    def read(self, indices: list[int]) -> Tensor:
        if self.frames is not None:
            return torch.stack([read_image(self.frames[i], self.channels) for i in indices])
        import av

        wanted, found = set(indices), {}
        with av.open(str(self.path)) as container:
            for i, frame in enumerate(container.decode(video=0)):
                if i in wanted:
                    array = frame.to_ndarray(format="rgb24" if self.channels == 3 else "gray")
                    t = torch.from_numpy(array.astype(np.float32) / 255.0)
                    found[i] = t.permute(2, 0, 1) if self.channels == 3 else t[None]
                if i >= max(wanted):
                    break
        last = found[max(found)] if found else None
        if last is None:
            raise ValueError(f"could not decode frames from {self.path}")
        return torch.stack([found.get(i, last) for i in indices])


def _clip_entries(folder: Path) -> dict[str, Path]:
    """Clips in a folder: sub-folders of frames and video files, keyed by name without extension."""
    entries = {}
    for p in sorted(folder.iterdir()):
        if p.is_dir() or p.suffix.lower() in VIDEO_EXTS:
            entries[p.stem if p.is_file() else p.name] = p
    return entries


def _files(folder: Path, exts: set[str]) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in exts)


# ----------------------------------------------------------------------------------------------- matte sources
class VideoMatteSource:
    """VideoMatte240K layout: fgr/<clip> and pha/<clip> (frame folders or videos) with the same clip names."""

    def __init__(self, root: str | os.PathLike):
        root = Path(root)
        fgr, pha = _clip_entries(root / "fgr"), _clip_entries(root / "pha")
        names = sorted(set(fgr) & set(pha))
        if not names:
            raise ValueError(f"no matching fgr/ and pha/ clips under {root}")
        self.clips = [(FrameSequence(fgr[n], 3), FrameSequence(pha[n], 1)) for n in names]

    def __len__(self) -> int:
        return len(self.clips)

    def load(self, index: int, length: int, gen: torch.Generator, temporal: dict) -> tuple[Tensor, Tensor]:
        fgr, pha = self.clips[index]
        idx = sample_frame_indices(min(len(fgr), len(pha)), length, gen, temporal.get("max_speed", 1.0),
                                   temporal.get("p_reverse", 0.0))
        return fgr.read(idx), pha.read(idx)


class BenchClipSource(VideoMatteSource):
    """Clips written by ``vidmatte bench build``: <root>/<clip>/{com,pha,fgr,bgr}/00000.png (fgr and pha used)."""

    def __init__(self, root: str | os.PathLike):
        root = Path(root)
        clips = [d for d in sorted(root.iterdir()) if (d / "fgr").is_dir() and (d / "pha").is_dir()]
        if not clips:
            raise ValueError(f"no bench clips (<clip>/fgr, <clip>/pha) under {root}")
        self.clips = [(FrameSequence(d / "fgr", 3), FrameSequence(d / "pha", 1)) for d in clips]


class ImageMatteSource:
    """ImageMatte layout: fg/<name> and alpha/<name>; a still repeated over time (motion comes from augmentation)."""

    def __init__(self, root: str | os.PathLike):
        root = Path(root)
        fg = {p.stem: p for p in _files(root / "fg", IMAGE_EXTENSIONS)}
        alpha = {p.stem: p for p in _files(root / "alpha", IMAGE_EXTENSIONS)}
        self.items = [(fg[n], alpha[n]) for n in sorted(set(fg) & set(alpha))]
        if not self.items:
            raise ValueError(f"no matching fg/ and alpha/ images under {root}")

    def __len__(self) -> int:
        return len(self.items)

    def load(self, index: int, length: int, gen: torch.Generator, temporal: dict) -> tuple[Tensor, Tensor]:
        fg, alpha = self.items[index]
        return read_image(fg, 3)[None].expand(length, -1, -1, -1), read_image(alpha, 1)[None].expand(length, -1, -1, -1)


class DvmVideoSource(VideoMatteSource):
    """DVM's foreground videos of one split: ``fg/video/<split>/<clip>/{f,a}.mp4``."""

    def __init__(self, root: str | os.PathLike, split: str = "train"):
        from ..data.dvm_layout import video_foregrounds

        base = Path(root) / "fg" / "video" / split
        self.clips = [(FrameSequence(base / n / "f.mp4", 3), FrameSequence(base / n / "a.mp4", 1))
                      for n in video_foregrounds(Path(root), split)]


class DvmMatteSource:
    """DVM's foregrounds of one split: its images (an ``ImageMatteSource``) then its videos."""

    def __init__(self, root: str | os.PathLike, split: str = "train"):
        from ..data.dvm_layout import image_foregrounds

        root = Path(root)
        self.images = ImageMatteSource(root / "fg" / "image" / split) if image_foregrounds(root, split) else None
        self.videos = DvmVideoSource(root, split)
        if self.images is None and not self.videos.clips:
            raise ValueError(f"no DVM foregrounds under {root}/fg/{{image,video}}/{split}")

    def __len__(self) -> int:
        return (len(self.images) if self.images else 0) + len(self.videos)

    def load(self, index: int, length: int, gen: torch.Generator, temporal: dict) -> tuple[Tensor, Tensor]:
        images = len(self.images) if self.images else 0
        if index < images:
            return self.images.load(index, length, gen, temporal)
        return self.videos.load(index - images, length, gen, temporal)


def dvm_backgrounds(root: str | os.PathLike, split: str = "train") -> "BackgroundSource":
    """DVM's background videos of one split (``bg/<split>/*.mp4``)."""
    return BackgroundSource([Path(root) / "bg" / split])


def _smooth_noise(gen: torch.Generator, channels: int, size: tuple[int, int], cells: int) -> Tensor:
    """Smooth random texture [C,H,W] in 0..1 (bicubic upsampling of a small random grid)."""
    grid = torch.rand(1, channels, cells, cells, generator=gen)
    return torch.nn.functional.interpolate(grid, size=size, mode="bicubic", align_corners=False)[0].clamp(0, 1)


class SyntheticMatteSource:
    """Generated people-like mattes: a textured head-and-body shape with soft edges moving across the frame."""

    def __init__(self, count: int = 64, size: tuple[int, int] = (64, 64)):
        self.count, self.size = count, tuple(size)

    def __len__(self) -> int:
        return self.count

    def load(self, index: int, length: int, gen: torch.Generator, temporal: dict) -> tuple[Tensor, Tensor]:
        h, w = self.size
        yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
        colour = _smooth_noise(gen, 3, (h, w), 4) * 0.6 + 0.2
        cx0, cx1 = uniform(gen, 0.3, 0.7), uniform(gen, 0.3, 0.7)
        radius, softness = uniform(gen, 0.1, 0.16), uniform(gen, 0.01, 0.04)
        fgr, pha = [], []
        for t in range(length):
            cx = cx0 + (cx1 - cx0) * t / max(length - 1, 1)
            head = ((xx - cx) ** 2 + (yy - 0.3) ** 2).sqrt() - radius
            body = torch.maximum(((xx - cx) / (radius * 1.8)).abs() - 1, (yy - 0.75) / 0.3 - 1 + 0.0 * xx) * radius
            body = torch.maximum(body, (0.45 - yy))
            dist = torch.minimum(head, body)
            pha.append(torch.sigmoid(-dist / softness)[None])
            fgr.append(colour)
        return torch.stack(fgr), torch.stack(pha)


# ----------------------------------------------------------------------------------------------- backgrounds
class BackgroundSource:
    """Images and videos found under the given folders; images are stills held over the clip."""

    def __init__(self, roots: list[str | os.PathLike]):
        self.items: list[Path] = []
        for root in roots:
            self.items += _files(Path(root), IMAGE_EXTENSIONS | VIDEO_EXTS)
        if not self.items:
            raise ValueError(f"no background images or videos under {', '.join(map(str, roots))}")

    def __len__(self) -> int:
        return len(self.items)

    def load(self, index: int, length: int, gen: torch.Generator, temporal: dict) -> Tensor:
        path = self.items[index]
        if path.suffix.lower() in IMAGE_EXTENSIONS:
            return read_image(path, 3)[None].expand(length, -1, -1, -1)
        seq = FrameSequence(path, 3)
        return seq.read(sample_frame_indices(len(seq), length, gen, temporal.get("max_speed", 1.0),
                                             temporal.get("p_reverse", 0.0)))


class BenchBackgroundSource:
    """The ``bgr/`` frame folders of ``vidmatte bench build`` clips, as background videos."""

    def __init__(self, root: str | os.PathLike):
        self.clips = [FrameSequence(d / "bgr", 3) for d in sorted(Path(root).iterdir()) if (d / "bgr").is_dir()]
        if not self.clips:
            raise ValueError(f"no bench clips with bgr/ under {root}")

    def __len__(self) -> int:
        return len(self.clips)

    def load(self, index: int, length: int, gen: torch.Generator, temporal: dict) -> Tensor:
        seq = self.clips[index]
        return seq.read(sample_frame_indices(len(seq), length, gen, temporal.get("max_speed", 1.0),
                                             temporal.get("p_reverse", 0.0)))


class SyntheticBackgroundSource:
    """Generated smooth textures with a slow drift (stand-ins for background videos)."""

    def __init__(self, count: int = 64, size: tuple[int, int] = (64, 64)):
        self.count, self.size = count, tuple(size)

    def __len__(self) -> int:
        return self.count

    def load(self, index: int, length: int, gen: torch.Generator, temporal: dict) -> Tensor:
        h, w = self.size
        big = _smooth_noise(gen, 3, (h, w + length), 6)
        return torch.stack([big[:, :, t:t + w] for t in range(length)])


# ----------------------------------------------------------------------------------------------- segmentation
class SegmentationPairsSource:
    """``img/<name>`` + ``seg/<name>`` person masks (Supervisely Person as preprocessed by RVM, or any such pairs)."""

    def __init__(self, root: str | os.PathLike, image_dir: str = "img", mask_dir: str = "seg"):
        root = Path(root)
        images = {p.stem: p for p in _files(root / image_dir, IMAGE_EXTENSIONS)}
        masks = {p.stem: p for p in _files(root / mask_dir, IMAGE_EXTENSIONS)}
        self.items = [(images[n], masks[n]) for n in sorted(set(images) & set(masks))]
        if not self.items:
            raise ValueError(f"no matching {image_dir}/ and {mask_dir}/ files under {root}")

    def __len__(self) -> int:
        return len(self.items)

    def load(self, index: int, length: int, gen: torch.Generator, temporal: dict) -> tuple[Tensor, Tensor]:
        img, mask = self.items[index]
        mask = (read_image(mask, 1) > 0.5).float()
        return read_image(img, 3)[None].expand(length, -1, -1, -1), mask[None].expand(length, -1, -1, -1)


class CocoPanopticPersonSource:
    """COCO panoptic: images/<file>.jpg, the panoptic json, and its PNGs; the mask is every 'person' segment."""

    def __init__(self, images: str | os.PathLike, panoptic_json: str | os.PathLike, panoptic_masks: str | os.PathLike,
                 category: str = "person"):
        with open(panoptic_json) as fh:
            meta = json.load(fh)
        person_ids = {c["id"] for c in meta["categories"] if c["name"] == category}
        self.items = []
        for ann in meta["annotations"]:
            segment_ids = [s["id"] for s in ann["segments_info"] if s["category_id"] in person_ids]
            if segment_ids:
                image = Path(images) / (Path(ann["file_name"]).stem + ".jpg")
                self.items.append((image, Path(panoptic_masks) / ann["file_name"], segment_ids))
        if not self.items:
            raise ValueError(f"no {category} segments in {panoptic_json}")

    def __len__(self) -> int:
        return len(self.items)

    def load(self, index: int, length: int, gen: torch.Generator, temporal: dict) -> tuple[Tensor, Tensor]:
        from PIL import Image

        image, png, segment_ids = self.items[index]
        with Image.open(png) as im:
            rgb = np.asarray(im.convert("RGB"), dtype=np.int64)
        ids = rgb[..., 0] + 256 * rgb[..., 1] + 256 * 256 * rgb[..., 2]  # the panoptic id encoding
        mask = torch.from_numpy(np.isin(ids, segment_ids).astype(np.float32))[None]
        return read_image(image, 3)[None].expand(length, -1, -1, -1), mask[None].expand(length, -1, -1, -1)


def decode_rle(rle: dict) -> np.ndarray:
    """COCO run-length encoding (``counts`` as a list or as the compressed string) -> uint8 mask [H,W]."""
    from pycocotools import mask as coco_mask

    if isinstance(rle["counts"], list):  # uncompressed: pycocotools decodes the compressed form only
        rle = coco_mask.frPyObjects(rle, *rle["size"])
    return coco_mask.decode(rle)


class YouTubeVISPersonSource:
    """YouTubeVIS: JPEGImages/<video>/*.jpg + an instances json; the mask is the union of 'person' instances."""

    def __init__(self, root: str | os.PathLike, annotations: str | os.PathLike, category: str = "person"):
        with open(annotations) as fh:
            meta = json.load(fh)
        person = {c["id"] for c in meta["categories"] if c["name"] == category}
        by_video: dict[int, list] = {}
        for ann in meta["annotations"]:
            if ann["category_id"] in person:
                by_video.setdefault(ann["video_id"], []).append(ann["segmentations"])
        self.root = Path(root) / "JPEGImages"
        self.videos = [(v, by_video[v["id"]]) for v in meta["videos"] if v["id"] in by_video]
        if not self.videos:
            raise ValueError(f"no {category} instances in {annotations}")

    def __len__(self) -> int:
        return len(self.videos)

    def load(self, index: int, length: int, gen: torch.Generator, temporal: dict) -> tuple[Tensor, Tensor]:
        video, instances = self.videos[index]
        idx = sample_frame_indices(len(video["file_names"]), length, gen, temporal.get("max_speed", 1.0),
                                   temporal.get("p_reverse", 0.0))
        frames, masks = [], []
        for i in idx:
            frames.append(read_image(self.root / video["file_names"][i], 3))
            mask = np.zeros((video["height"], video["width"]), np.uint8)
            for segs in instances:
                if segs[i] is not None:
                    mask |= decode_rle(segs[i])
            masks.append(torch.from_numpy(mask.astype(np.float32))[None])
        return torch.stack(frames), torch.stack(masks)


class SyntheticSegmentationSource:
    """Generated segmentation samples: a synthetic matte composited on a synthetic background, mask = alpha > 0.5."""

    def __init__(self, count: int = 64, size: tuple[int, int] = (64, 64)):
        self.mattes, self.backgrounds = SyntheticMatteSource(count, size), SyntheticBackgroundSource(count, size)

    def __len__(self) -> int:
        return len(self.mattes)

    def load(self, index: int, length: int, gen: torch.Generator, temporal: dict) -> tuple[Tensor, Tensor]:
        fgr, pha = self.mattes.load(index, length, gen, temporal)
        bgr = self.backgrounds.load(index, length, gen, temporal)
        return fgr * pha + bgr * (1 - pha), (pha > 0.5).float()


# ----------------------------------------------------------------------------------------------- building
def build_source(spec: dict):
    """A source from a config entry ``{type: ..., root: ..., ...}``."""
    kind = spec.get("type")
    args = {k: v for k, v in spec.items() if k not in ("type", "weight")}
    kinds = {
        "videomatte": VideoMatteSource, "imagematte": ImageMatteSource, "bench": BenchClipSource,
        "synthetic_matte": SyntheticMatteSource, "backgrounds": BackgroundSource,
        "bench_backgrounds": BenchBackgroundSource,
        "dvm": DvmMatteSource, "dvm_backgrounds": dvm_backgrounds,
        "synthetic_background": SyntheticBackgroundSource, "segmentation_pairs": SegmentationPairsSource,
        "coco_panoptic": CocoPanopticPersonSource, "youtubevis": YouTubeVISPersonSource,
        "synthetic_segmentation": SyntheticSegmentationSource,
    }
    if kind not in kinds:
        raise ValueError(f"unknown data source type {kind!r}; known: {', '.join(sorted(kinds))}")
    try:
        return kinds[kind](**args)
    except TypeError as exc:
        raise ValueError(f"bad arguments for data source {kind!r}: {exc}") from None


def step_generator(seed: int, step: int, stream: int) -> torch.Generator:
    """The generator for one step's batch: a pure function of (seed, step, stream) so resuming is exact."""
    return torch.Generator().manual_seed((seed * 1_000_003 + step * 7919 + stream * 104_729) % (2 ** 63))


def _pick(sources: list, weights: list[float], gen: torch.Generator):
    total = sum(weights)
    r, acc = uniform(gen, 0, total), 0.0
    for source, weight in zip(sources, weights):
        acc += weight
        if r <= acc:
            return source
    return sources[-1]


class ClipComposer:
    """Builds training batches: matte (fgr, pha) over a background, augmented, at a fixed size.

    ``matting_batch(step)`` -> dict fgr [B,T,3,H,W], pha [B,T,1,H,W], bgr, src (composite), all 0..1.
    ``segmentation_batch(step)`` -> dict src [B,T,3,H,W], seg [B,T,1,H,W] in {0,1}.
    """

    def __init__(self, mattes: list, matte_weights: list[float], backgrounds: list, segmentation: list | None,
                 seed: int, augmentation: dict, temporal: dict):
        self.mattes, self.matte_weights = mattes, matte_weights
        self.backgrounds, self.segmentation = backgrounds, segmentation or []
        self.seed, self.augmentation, self.temporal = seed, augmentation, temporal

    def matting_clip(self, gen: torch.Generator, length: int, size: tuple[int, int]) -> dict[str, Tensor]:
        source = _pick(self.mattes, self.matte_weights, gen)
        fgr, pha = source.load(int(torch.randint(len(source), (), generator=gen)), length, gen, self.temporal)
        bg_source = choice(gen, self.backgrounds)
        bgr = bg_source.load(int(torch.randint(len(bg_source), (), generator=gen)), length, gen, self.temporal)
        fgr, pha, bgr = augment_clip(fgr, pha, bgr, gen, size, self.augmentation)
        return {"fgr": fgr, "pha": pha, "bgr": bgr, "src": fgr * pha + bgr * (1 - pha)}

    def matting_batch(self, step: int, batch: int, length: int, size: tuple[int, int], stream: int = 0):
        gen = step_generator(self.seed, step, stream)
        clips = [self.matting_clip(gen, length, size) for _ in range(batch)]
        return {k: torch.stack([c[k] for c in clips]) for k in clips[0]}

    def segmentation_batch(self, step: int, batch: int, length: int, size: tuple[int, int]):
        if not self.segmentation:
            raise ValueError("no segmentation data configured")
        gen = step_generator(self.seed, step, stream=9)
        srcs, segs = [], []
        for _ in range(batch):
            source = choice(gen, self.segmentation)
            img, mask = source.load(int(torch.randint(len(source), (), generator=gen)), length, gen, self.temporal)
            # Augment image and mask together: treat the image as the "foreground" with the mask as its alpha.
            img, mask, _ = augment_clip(img, mask, img, gen, size, {**self.augmentation, "p_blur": 0.0,
                                                                      "p_pause": 0.0})
            srcs.append(img)
            segs.append((mask > 0.5).float())
        return {"src": torch.stack(srcs), "seg": torch.stack(segs)}
