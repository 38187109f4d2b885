"""The page's one-gesture first masks measured on the DAVIS-2016 development clips (docs/WEB.md has the table).

    python benchmarks/one_gesture_masks.py [--margin 0.05] [--json out.json]

For each clip of ../shared/data/video_objects_davis2016, frame 0 and its true mask:
  box    the true mask's bounding box grown by ``--margin`` of its size on every side (clipped to the frame), given
         to ``guide.grabcut_box`` exactly as the page's Box tool sends it;
  click  one click given to the page's click tool (``guide.PersonPicker.mask_at``: RVM's matte component under the
         click) at the mask's centroid, or, when the centroid falls outside the mask, at the mask's interior point
         farthest from its edge (the column ``at`` says which).
The score is the IoU of the proposed mask with the true mask (0 when the tool proposes nothing: RVM finds people
only). Real footage, never copied into the repo; the script says so and exits 0 when the data are absent.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("VIDMATTE_SHARED_DATA", REPO.parent / "shared" / "data")) / "video_objects_davis2016"


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def box_of(mask: np.ndarray, margin: float) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(mask)
    h, w = mask.shape
    x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
    mx, my = round(margin * (x1 - x0)), round(margin * (y1 - y0))
    return max(0, x0 - mx), max(0, y0 - my), min(w, x1 + mx), min(h, y1 + my)


def click_of(mask: np.ndarray) -> tuple[int, int, str]:
    """The centroid when it is on the object, else the interior point farthest from the mask's edge."""
    ys, xs = np.nonzero(mask)
    cx, cy = int(round(xs.mean())), int(round(ys.mean()))
    if mask[cy, cx]:
        return cx, cy, "centroid"
    distance = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 5)
    y, x = np.unravel_index(int(np.argmax(distance)), distance.shape)
    return int(x), int(y), "interior"


def measure(margin: float) -> list[dict]:
    from vidmatte.errors import GuidanceError
    from vidmatte.io.source import open_source
    from vidmatte.web import guide

    picker = guide.PersonPicker()
    rows = []
    for clip in sorted(p for p in DATA.iterdir() if (p / "video.mp4").is_file()):
        frame = open_source(clip / "video.mp4").frame(0).image
        truth = cv2.imread(str(clip / "masks" / "00000.png"), cv2.IMREAD_GRAYSCALE) > 127
        row = {"clip": clip.name, "object_pct": round(100 * truth.mean(), 1)}
        started = time.perf_counter()
        try:
            row["box"] = iou(guide.grabcut_box(frame, box_of(truth, margin)), truth)
        except GuidanceError:
            row["box"] = 0.0
        row["box_s"] = round(time.perf_counter() - started, 2)
        x, y, row["at"] = click_of(truth)
        try:
            row["click"] = iou(picker.mask_at(frame, x, y), truth)
        except GuidanceError:  # "no person under the click"
            row["click"] = 0.0
        rows.append(row)
        print(f"{row['clip']:16s} box {row['box']:.3f} ({row['box_s']} s)  click {row['click']:.3f} ({row['at']})",
              flush=True)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--margin", type=float, default=0.05, help="box margin, a fraction of the box's size")
    parser.add_argument("--json", type=Path, help="write the rows here")
    args = parser.parse_args()
    if not DATA.is_dir():
        print(f"skipped: the DAVIS clips are not at {DATA}")
        return 0
    rows = measure(args.margin)
    print(f"mean IoU over {len(rows)} clips: box {np.mean([r['box'] for r in rows]):.3f}, "
          f"click {np.mean([r['click'] for r in rows]):.3f}")
    print("| clip | object % | box IoU | click IoU (at) |\n|---|---|---|---|")
    for r in rows:
        print(f"| {r['clip']} | {r['object_pct']} | {r['box']:.3f} | {r['click']:.3f} ({r['at']}) |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
