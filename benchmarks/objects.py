"""Several subjects in one guided run against one run per subject (issue 23's cost goal: 2 objects in <= 0.7x the
time of two runs).

Each case runs `vidmatte guided --object 1,2[,3]` once and `vidmatte guided --object N` for each of its objects, as
separate processes (what a user would otherwise do: the separate runs each pay for starting up, loading the weights
and decoding the clip), interleaved and repeated, so that the shared machine's load falls on both sides alike.
Reported: the median of each side's wall time and their ratio (one run / the sum of the separate runs), and how many
alpha values differ between them away from where the objects overlap (there they must be equal).

Cases (real footage from ../shared/data, not in the repo):
- people2: MatAnyone's test-sample0 (two people in a street interview), 1080p scaled to 960x540, frames 0-23,
  each person's own first-frame mask (written as <frame>_<id>.png into a temporary keyframe folder);
- judo2, judo3: Cutie's judo clip (854x480, 16 frames), objects 1-2 and 1-3 of its palette masks (object 2 enters
  at frame 5, object 3 at frame 8: they are propagated from there);
- bike2: Cutie's bike clip (854x480, 4 frames), rider and bike.

    PYTHONPATH=src python benchmarks/objects.py --data ../shared/data [--repeats 3] [--only people2,judo2]
    PYTHONPATH=src python benchmarks/objects.py --data ../shared/data --picture docs/images/objects_bike.png

``--picture``: the bike clip in one run (rider and bike), its 4 frames with each object tinted over the darkened
frame (rider green, bike magenta), the tracker (default) above the flow alone (`--propagator flow`).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

CASES = {
    "people2": {"input": "video_people/matanyone_test-sample0/test-sample0.mp4", "objects": [1, 2],
                "masks": {1: "video_people/matanyone_test-sample0/masks/test-sample0_1.png",
                          2: "video_people/matanyone_test-sample0/masks/test-sample0_2.png"},
                "options": ["--input-resize", "960x540", "--end-frame", "24"], "size": (960, 540)},
    "judo2": {"input": "video_people/cutie_examples/images/judo", "objects": [1, 2],
              "keyframes": "video_people/cutie_examples/masks/judo"},
    "judo3": {"input": "video_people/cutie_examples/images/judo", "objects": [1, 2, 3],
              "keyframes": "video_people/cutie_examples/masks/judo"},
    "bike2": {"input": "video_people/cutie_examples/images/bike", "objects": [1, 2],
              "keyframes": "video_people/cutie_examples/masks/bike"},
}


def keyframe_folder(case: dict, data: Path, work: Path) -> Path:
    """The case's keyframes: its palette-mask folder, or its per-object masks as <frame>_<id>.png at the run's size."""
    if "keyframes" in case:
        return data / case["keyframes"]
    folder = work / "keyframes"
    folder.mkdir(exist_ok=True)
    for object_id, mask in case["masks"].items():
        image = cv2.imread(str(data / mask), cv2.IMREAD_GRAYSCALE)
        image = cv2.resize(image, case["size"], interpolation=cv2.INTER_NEAREST)
        cv2.imwrite(str(folder / f"0_{object_id}.png"), image)
    return folder


def run(args: list[str]) -> float:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "vidmatte", "guided", *args, "--quiet", "--overwrite"],
                          capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"vidmatte guided {' '.join(args)} failed: {done.stderr.strip()}")
    return time.perf_counter() - started


def alpha_frames(folder: Path) -> list[np.ndarray]:
    return [cv2.imread(str(p), cv2.IMREAD_GRAYSCALE).astype(np.int16) for p in sorted(folder.glob("*.png"))]


def compare(work: Path, objects: list[int]) -> dict:
    """Alpha values (8-bit) differing between the one run and the separate runs, away from the pixels where the
    separate runs' alphas sum past 1 (there the one run makes them exclusive) and there; the most the objects'
    alphas sum to in the one run."""
    together = {i: alpha_frames(work / "together" / str(i)) for i in objects}
    alone = {i: alpha_frames(work / f"alone{i}") for i in objects}
    away = overlap = 0
    most = 0
    for k in range(len(alone[objects[0]])):
        total = sum(alone[i][k] for i in objects)
        overlapping = total > 255
        for i in objects:
            differ = together[i][k] != alone[i][k]
            away += int(np.count_nonzero(differ & ~overlapping))
            overlap += int(np.count_nonzero(differ & overlapping))
        most = max(most, int(sum(together[i][k] for i in objects).max()))
    return {"differing_away_from_overlap": away, "differing_in_overlap": overlap, "max_alpha_sum_u8": most}


def picture(data: Path, path: Path) -> None:
    clip = data / "video_people/cutie_examples"
    frames = sorted((clip / "images/bike").glob("*.jpg"))
    rows = []
    with tempfile.TemporaryDirectory(prefix="vidmatte-objects-picture-") as temp:
        for propagator in ("track", "flow"):
            out = Path(temp) / propagator
            run([str(clip / "images/bike"), "--keyframes", str(clip / "masks/bike"), "--object", "all",
                 "--propagator", propagator, "--alpha", f"{out}/"])
            tiles = []
            for k, frame_path in enumerate(frames):
                frame = cv2.imread(str(frame_path)).astype(np.float32)
                bike, rider = (cv2.imread(str(out / str(i) / f"{k:05d}.png"), cv2.IMREAD_GRAYSCALE)
                               .astype(np.float32)[..., None] / 255 for i in (1, 2))
                shown = frame * 0.35 + (bike * np.array([255, 40, 255]) + rider * np.array([40, 255, 40])) * 0.65
                tile = shown.clip(0, 255).astype(np.uint8)[100:440, 230:680]
                cv2.putText(tile, f"{propagator}, frame {k}", (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6,
                            (255, 255, 255), 1, cv2.LINE_AA)
                tiles.append(tile)
            rows.append(np.hstack(tiles))
    sheet = np.vstack(rows)
    cv2.imwrite(str(path), cv2.resize(sheet, None, fx=0.6, fy=0.6, interpolation=cv2.INTER_AREA))
    print(f"wrote {path}", file=sys.stderr)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", help="cases, comma-separated")
    parser.add_argument("--json", help="write the results here too")
    parser.add_argument("--picture", help="draw the bike clip's two objects into this PNG instead")
    options = parser.parse_args()
    data = Path(options.data)
    if options.picture:
        picture(data, Path(options.picture))
        return 0
    names = options.only.split(",") if options.only else list(CASES)
    results = {}
    for name in names:
        case = CASES[name]
        with tempfile.TemporaryDirectory(prefix=f"vidmatte-objects-{name}-") as temp:
            work = Path(temp)
            common = [str(data / case["input"]), "--keyframes", str(keyframe_folder(case, data, work)),
                      *case.get("options", [])]
            ids = case["objects"]
            together, separate = [], []
            for repeat in range(options.repeats):
                together.append(run([*common, "--object", ",".join(map(str, ids)), "--alpha", f"{work}/together/"]))
                separate.append(sum(run([*common, "--object", str(i), "--alpha", f"{work}/alone{i}/"]) for i in ids))
                print(f"{name} repeat {repeat + 1}: one run {together[-1]:.1f} s, {len(ids)} runs {separate[-1]:.1f} s "
                      f"({together[-1] / separate[-1]:.2f}x)", file=sys.stderr)
            one, apart = statistics.median(together), statistics.median(separate)
            results[name] = {"objects": ids, "one_run_s": round(one, 2), "separate_runs_s": round(apart, 2),
                             "ratio": round(one / apart, 3),
                             "ratios": [round(a / b, 3) for a, b in zip(together, separate)], **compare(work, ids)}
    print("| case | objects | one run (s) | separate runs (s) | ratio | per repeat | alphas differing away from "
          "overlaps | max alpha sum (8-bit) |")
    print("|---|---|---|---|---|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {','.join(map(str, r['objects']))} | {r['one_run_s']} | {r['separate_runs_s']} | "
              f"{r['ratio']:.2f}x | {', '.join(f'{x:.2f}' for x in r['ratios'])} | "
              f"{r['differing_away_from_overlap']} | {r['max_alpha_sum_u8']} |")
    if options.json:
        Path(options.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
