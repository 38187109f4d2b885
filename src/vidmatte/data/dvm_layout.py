"""DVM's dataset layout (nowsyn/DVM README), read by ``vidmatte bench build`` and by the training data sources::

    <root>/fg/image/{train,test}/fg/<name>.png       foreground colours (Adobe Image Matting style)
    <root>/fg/image/{train,test}/alpha/<name>.png    their alpha
    <root>/fg/video/{train,test}/<NNNN>/f.mp4        a foreground video
    <root>/fg/video/{train,test}/<NNNN>/a.mp4        its alpha video
    <root>/bg/{train,test}/<NNNN>.mp4                high-resolution background videos

As in the seed's ``data/video_processor.py``, every foreground (image or video) is composited over a background
video; which one comes from a pairs file in the seed's format (``data/test_fg_bg_names.txt``: one
``image+<fg name>+<bg file>`` or ``video+<fg folder>+<bg file>`` per line; lines naming missing files are skipped, as
the seed skips them) or, without one, from a seeded draw. The motion of image foregrounds and the composition itself
are the project's (``data.synthesis``), not the seed's random walk.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InputError
from ..io.images import IMAGE_EXTENSIONS


def image_foregrounds(root: Path, split: str) -> list[str]:
    """Names with both ``fg/`` and ``alpha/`` files under fg/image/<split>."""
    base = Path(root) / "fg" / "image" / split
    if not (base / "fg").is_dir():
        return []
    return sorted(p.name for p in (base / "fg").iterdir()
                  if p.suffix.lower() in IMAGE_EXTENSIONS and (base / "alpha" / p.name).is_file())


def video_foregrounds(root: Path, split: str) -> list[str]:
    """Folders with both f.mp4 and a.mp4 under fg/video/<split>."""
    base = Path(root) / "fg" / "video" / split
    if not base.is_dir():
        return []
    return sorted(d.name for d in base.iterdir() if (d / "f.mp4").is_file() and (d / "a.mp4").is_file())


def background_videos(root: Path, split: str) -> list[str]:
    base = Path(root) / "bg" / split
    return sorted(p.name for p in base.glob("*.mp4")) if base.is_dir() else []


def foreground_spec(kind: str, name: str, split: str) -> dict:
    """A ``data.synthesis.load_foreground`` entry, paths relative to the root."""
    if kind == "image":
        fg = f"fg/image/{split}/fg/{name}"
        return {"image": fg, "alpha": f"fg/image/{split}/alpha/{name}", "fg": fg}
    folder = f"fg/video/{split}/{name}"
    return {"video": f"{folder}/f.mp4", "alpha_video": f"{folder}/a.mp4", "fg_video": f"{folder}/f.mp4"}


def read_pairs(path: Path) -> list[tuple[str, str, str]]:
    pairs = []
    for number, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.strip().split("+")
        if len(parts) != 3 or parts[0] not in ("image", "video"):
            raise InputError(f"{path}:{number}: expected image+<fg>+<bg> or video+<fg>+<bg>, got {line.strip()!r}")
        pairs.append((parts[0], parts[1], parts[2]))
    return pairs


def dvm_clips(root: Path, split: str = "test", pairs: str | None = None, seed: int = 0,
              limit: int | None = None) -> list[dict]:
    """Benchmark clip entries (``name``, ``fg``, ``bg``) for the DVM-layout dataset at ``root``."""
    root = Path(root)
    images, videos = image_foregrounds(root, split), video_foregrounds(root, split)
    backgrounds = background_videos(root, split)
    if not backgrounds or not (images or videos):
        raise InputError(f"{root}: no DVM layout for split {split!r} (want fg/image/{split}/{{fg,alpha}}/ or "
                         f"fg/video/{split}/<clip>/{{f,a}}.mp4, and bg/{split}/*.mp4)")
    if pairs:
        known = {"image": set(images), "video": set(videos)}
        chosen = [(kind, fg, bg) for kind, fg, bg in read_pairs(root / pairs)
                  if fg in known[kind] and bg in backgrounds]
    else:
        order = np.random.default_rng(seed).permutation(len(backgrounds))
        foregrounds = [("image", n) for n in images] + [("video", n) for n in videos]
        chosen = [(kind, fg, backgrounds[order[i % len(order)]]) for i, (kind, fg) in enumerate(foregrounds)]
    if not chosen:
        raise InputError(f"{root / pairs}: none of its pairs names files present under {root}")
    clips = [{"name": f"{kind}_{Path(fg).stem}_{Path(bg).stem}", "fg": foreground_spec(kind, fg, split),
              "bg": {"video": f"bg/{split}/{bg}"}} for kind, fg, bg in chosen]
    return clips[:limit] if limit else clips
