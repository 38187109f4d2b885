"""``vidmatte bench davis DIR``: guided matting measured as video object segmentation, the field's way (issue 26).

A folder of clips as ``../shared/data/video_objects_davis2016`` holds them: ``<clip>/video.mp4`` and
``<clip>/masks/00000.png ...`` (a human-drawn mask for every frame). Each row is run on every clip, given the true
mask of frame 0 (``first``), or of frame 0 and the middle frame (``first_and_middle``), and judged on every other
frame: J (region similarity), F (boundary F-measure), lost (share of frames with J < 0.5) and fps (the row's
run, file to alpha PNGs, on this machine). Rows:
  track: ``vidmatte guided`` as it is (its default propagator, ``guidance.track``);
  flow:  ``vidmatte guided --propagator flow``, the keyframe-anchored flow alone (the mode before issue 26);
  rvm:   RVM alone (``vidmatte convert``), no guidance: it sees people, not objects;
  still: the keyframe's mask held still (the floor).
The guided rows also say how well their confidence predicts a lost frame (``doubtful`` frames against J < 0.5).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from ..metrics.segmentation import LOST_BELOW, boundary_f, region_similarity

ROWS = {"track": "vidmatte guided (default propagator: tracking)",
        "flow": "vidmatte guided --propagator flow (the mode before issue 26)",
        "rvm": "RVM alone (vidmatte convert), no guidance",
        "still": "the keyframe's mask held still (floor)"}
KEYFRAMES = ("first", "first_and_middle")


def find_clips(root: Path) -> dict[str, tuple[Path, list[Path]]]:
    """{clip: (video, [mask files in frame order])} of every sub-folder with a video.mp4 and masks/*.png."""
    from ..errors import InputError

    if not root.is_dir():
        raise InputError(f"no such folder: {root}")
    clips = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        masks = sorted((folder / "masks").glob("*.png"))
        if (folder / "video.mp4").is_file() and masks:
            clips[folder.name] = (folder / "video.mp4", masks)
    if not clips:
        raise InputError(f"{root}: no clips (sub-folders with video.mp4 and masks/*.png)")
    return clips


def read_mask(path: Path) -> np.ndarray:
    from ..io.images import read_gray

    return read_gray(path) > 127


def keyframe_indices(kind: str, frames: int) -> list[int]:
    return [0] if kind == "first" else sorted({0, frames // 2})


def run_row(row: str, video: Path, masks: list[Path], keys: list[int], out: Path, cache: str | None) -> dict:
    """Run one row on one clip; its alpha PNGs go to ``out``. Returns {"seconds", "details"}."""
    from .. import api
    from ..job import JobControl

    started = time.monotonic()
    details: dict = {}
    quiet = JobControl(on_warning=lambda message: None, on_note=lambda message: None)  # the table says it all
    if row in ("track", "flow"):
        result = api.convert_guided(str(video), {k: read_mask(masks[k]) for k in keys}, output_type="png_sequence",
                                    output_alpha=str(out), guidance="mask", cache=cache, control=quiet,
                                    propagator="auto" if row == "track" else "flow")
        details = result.details
    elif row == "rvm":
        model = api.load(cache=cache)  # a matter (the registry's RVM weights from ``cache``)
        api.convert_video(model, input_source=str(video), output_type="png_sequence", output_alpha=str(out),
                          control=quiet)
    elif row != "still":
        raise ValueError(f"unknown row {row!r}")
    return {"seconds": time.monotonic() - started, "details": details}


def predicted(row: str, out: Path, masks: list[Path], keys: list[int], index: int) -> np.ndarray:
    """Frame ``index``'s predicted subject: alpha >= 0.5, or the last keyframe's mask at or before it (still)."""
    if row == "still":
        return read_mask(masks[max(k for k in keys if k <= index)])
    alpha = cv2.imread(str(sorted(out.glob("*.png"))[index]), cv2.IMREAD_UNCHANGED)
    return alpha >= (128 if alpha.dtype == np.uint8 else 32768)


def bench(root: Path, rows: list[str], keyframes: str = "first", clips: list[str] | None = None,
          cache: str | None = None, say: Callable[[str], None] = print) -> dict:
    """Every row on every clip: {"rows": {row: {"clips": {clip: {...}}, "mean": {...}}}, ...}."""
    from ..errors import UsageError

    found = find_clips(root)
    if clips:
        missing = [c for c in clips if c not in found]
        if missing:
            raise UsageError(f"no clip {missing[0]!r} in {root} (there: {', '.join(found)})")
        found = {c: found[c] for c in clips}
    results: dict = {"root": str(root), "keyframes": keyframes, "rows": {}}
    for row in rows:
        per_clip = {}
        for name, (video, masks) in found.items():
            keys = keyframe_indices(keyframes, len(masks))
            with tempfile.TemporaryDirectory(prefix="vidmatte-davis-") as tmp:
                out = Path(tmp) / "pha"
                ran = run_row(row, video, masks, keys, out, cache)
                judged = [i for i in range(len(masks)) if i not in keys]
                j, f = [], []
                for i in judged:
                    truth, mine = read_mask(masks[i]), predicted(row, out, masks, keys, i)
                    j.append(region_similarity(mine, truth))
                    f.append(boundary_f(mine, truth))
            confidence = ran["details"].get("confidence", {})
            per_clip[name] = {
                "J": float(np.mean(j)), "F": float(np.mean(f)), "lost": float(np.mean(np.array(j) < LOST_BELOW)),
                "fps": len(masks) / ran["seconds"] if row != "still" else None,
                "frames": judged, "J_frames": [round(v, 4) for v in j],
                "confidence": [confidence.get(str(i)) for i in judged] if confidence else None,
                "doubtful_frames": ran["details"].get("doubtful_frames"),
                "suggested_keyframe": ran["details"].get("suggested_keyframe")}
            c = per_clip[name]
            say(f"bench davis: {row} {name}: J {c['J']:.3f} F {c['F']:.3f} lost {c['lost']:.2f}"
                + (f", {c['fps']:.1f} fps" if c["fps"] else ""))
        results["rows"][row] = {"clips": per_clip, "mean": _mean(per_clip)}
        results["rows"][row]["doubt"] = doubt_quality(per_clip)
    return results


def _mean(per_clip: dict) -> dict:
    values = list(per_clip.values())
    fps = [v["fps"] for v in values if v["fps"]]
    return {"J": float(np.mean([v["J"] for v in values])), "F": float(np.mean([v["F"] for v in values])),
            "lost": float(np.mean([v["lost"] for v in values])), "J_min": float(min(v["J"] for v in values)),
            "fps": float(np.mean(fps)) if fps else None}


def doubt_quality(per_clip: dict, below: float | None = None) -> dict | None:
    """How well "confidence < DOUBT" predicts a lost frame (J < 0.5) over every judged frame of the clips:
    precision, recall and counts; None for a row without confidence."""
    from ..matters.guided import DOUBT

    below = DOUBT if below is None else below
    pairs = [(j, c) for v in per_clip.values() if v["confidence"] for j, c in zip(v["J_frames"], v["confidence"])
             if c is not None]
    if not pairs:
        return None
    lost = np.array([j < LOST_BELOW for j, _ in pairs])
    flagged = np.array([c < below for _, c in pairs])
    hits = int(np.count_nonzero(lost & flagged))
    return {"threshold": below, "frames": len(pairs), "lost": int(lost.sum()), "flagged": int(flagged.sum()),
            "precision": hits / flagged.sum() if flagged.any() else None,
            "recall": hits / lost.sum() if lost.any() else None}


def table(results: dict, held_out: list[str] | None = None) -> str:
    """The rows side by side (markdown): mean J, F, lost, min J, fps; then J per clip."""
    rows = results["rows"]
    lines = ["| row | J mean | F mean | lost | J min | fps |", "|---|---|---|---|---|---|"]
    for row, r in rows.items():
        m = r["mean"]
        lines.append(f"| {row}: {ROWS[row]} | {m['J']:.3f} | {m['F']:.3f} | {m['lost']:.3f} | {m['J_min']:.3f} | "
                     + (f"{m['fps']:.1f} |" if m["fps"] else "- |"))
    clips = list(next(iter(rows.values()))["clips"])
    lines += ["", "| clip | " + " | ".join(f"{row} J" for row in rows) + " |",
              "|---|" + "---|" * len(rows)]
    for clip in clips:
        mark = " (held out)" if held_out and clip in held_out else ""
        lines.append(f"| {clip}{mark} | " + " | ".join(f"{rows[row]['clips'][clip]['J']:.3f}" for row in rows) + " |")
    return "\n".join(lines)
