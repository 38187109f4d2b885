"""Guided matting on real footage, looked at: contact sheets and end-to-end speed of `vidmatte guided`.

Runs the command a user runs on the real clips of ``../shared/data`` (no ground truth exists for them, so this is for
looking, not scoring) and makes one contact sheet per run: sampled frames in columns; rows = the input with the
propagated trimap drawn over it (green: definite subject, yellow: unknown band, a red frame around keyframes), and
the composition over a checkerboard. It prints a table of frames, seconds and fps per run (end to end, as timed by
the command itself).

    python benchmarks/real_footage.py --out docs/images            # every run
    python benchmarks/real_footage.py --only dog,judo --out /tmp/sheets

Licences decide what a sheet may show in the repository's docs (shared/data/MANIFEST.md): the Cutie clips (MIT) and
the sam2 clips (Apache-2.0) are shown in full; MatAnyone's clips (S-Lab licence, non-commercial) only as our mattes
(alpha and trimap rows, no picture of theirs) unless ``--full`` is given for a local look.
The dog's masks (``benchmarks/masks/01_dog_00000.png``, ``01_dog_00119.png``) were drawn for this: GrabCut from a
box, the legs added by hand as polygons, the ground under the belly (frame 0) or above the head (frame 119) removed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

HERE = Path(__file__).resolve().parent
DATA = Path(os.environ.get("VIDMATTE_SHARED_DATA", HERE.parent.parent / "shared" / "data"))
VIDEOS = DATA / "video_people"
TILE_WIDTH = 300
COLUMNS = 5


@dataclass
class Run:
    name: str
    input: Path
    guidance: list[str]  # `vidmatte guided` arguments naming the keyframes
    permissive: bool  # the footage's licence lets the repository show its pictures
    frames: int | None = None  # process only the first N frames
    extra: list[str] = field(default_factory=list)


def runs() -> list[Run]:
    cutie = VIDEOS / "cutie_examples"
    judo = [Run(f"judo_object{i}", cutie / "images" / "judo", ["--keyframes", str(cutie / "masks" / "judo"),
                                                              "--object", str(i)], True) for i in (1, 2, 3, 4)]
    bike = [Run(f"bike_{what}", cutie / "images" / "bike", ["--keyframes", str(cutie / "masks" / "bike"),
                                                            "--object", str(i)], True)
            for i, what in ((1, "bike"), (2, "rider"))]
    sample0 = VIDEOS / "matanyone_test-sample0"
    people = [Run(f"interview_person{i}", sample0 / "test-sample0.mp4",
                  ["--keyframe", f"0:{sample0 / 'masks' / f'test-sample0_{i}.png'}"], False) for i in (1, 2)]
    kitten = VIDEOS / "matanyone_test-sample2_cat"  # named for a kitten; the clip and its mask show a man
    return judo + bike + [
        Run("dog", VIDEOS / "sam2" / "01_dog.mp4", ["--keyframe", f"0:{HERE / 'masks' / '01_dog_00000.png'}"], True,
            frames=120),
        Run("dog_flow", VIDEOS / "sam2" / "01_dog.mp4", ["--keyframe", f"0:{HERE / 'masks' / '01_dog_00000.png'}"],
            True, frames=120, extra=["--propagator", "flow"]),
        Run("dog_memory", VIDEOS / "sam2" / "01_dog.mp4", ["--keyframe", f"0:{HERE / 'masks' / '01_dog_00000.png'}"],
            True, frames=120, extra=["--propagator", "memory"]),
        Run("dog_two_keyframes", VIDEOS / "sam2" / "01_dog.mp4",
            ["--keyframe", f"0:{HERE / 'masks' / '01_dog_00000.png'}",
             "--keyframe", f"119:{HERE / 'masks' / '01_dog_00119.png'}"], True, frames=120),
        Run("kitten", kitten / "test-sample2.mp4", ["--keyframe", f"0:{kitten / 'test-sample2.png'}"], False),
    ] + people


def run_guided(run: Run, folder: Path) -> dict:
    """`vidmatte guided` as a user runs it; returns its --json line."""
    command = [sys.executable, "-m", "vidmatte", "guided", str(run.input), *run.guidance, *run.extra,
               "--alpha", str(folder / "alpha") + "/", "--trimaps", str(folder / "trimaps") + "/",
               "--composition", str(folder / "composition") + "/", "--background", str(_checkerboard(folder)),
               "--json", "--quiet"]
    if run.frames:
        command += ["--end-frame", str(run.frames)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{run.name}: vidmatte guided failed: {done.stderr.strip()}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _checkerboard(folder: Path) -> Path:
    squares = (np.indices((45, 80)).sum(axis=0) % 2).astype(np.uint8)
    board = cv2.resize(squares * 90 + 110, (1920, 1080), interpolation=cv2.INTER_NEAREST)
    cv2.imwrite(str(folder / "checkerboard.png"), board)
    return folder / "checkerboard.png"


def read_input_frames(path: Path, indices: list[int]) -> dict[int, np.ndarray]:
    """RGB frames at ``indices`` (the project's own reader, so numbering matches the outputs)."""
    from vidmatte.io.source import open_source

    wanted = set(indices)
    return {f.index: f.image for f in open_source(str(path)).frames(0, max(indices) + 1) if f.index in wanted}


def sheet(run: Run, folder: Path, keyframes: set[int], full: bool) -> np.ndarray:
    alphas = sorted((folder / "alpha").glob("*.png"))
    picks = np.linspace(0, len(alphas) - 1, min(COLUMNS, len(alphas))).round().astype(int).tolist()
    show_pictures = full or run.permissive
    inputs = read_input_frames(run.input, picks) if show_pictures else {}
    crop = _subject_box([cv2.imread(str(alphas[i]), cv2.IMREAD_GRAYSCALE) for i in picks])
    rows = {"guidance": [], "result": []}
    for index in picks:
        trimap = cv2.imread(str(sorted((folder / "trimaps").glob("*.png"))[index]), cv2.IMREAD_GRAYSCALE)
        if show_pictures:
            rows["guidance"].append(_overlay(inputs[index], trimap))
            composition = cv2.imread(str(sorted((folder / "composition").glob("*.png"))[index]))[..., ::-1]
            rows["result"].append(composition)
        else:  # their picture may not be shown: our trimap and our alpha only
            rows["guidance"].append(np.repeat(trimap[..., None], 3, axis=2))
            alpha = cv2.imread(str(alphas[index]), cv2.IMREAD_GRAYSCALE)
            rows["result"].append(np.repeat(alpha[..., None], 3, axis=2))
    lines = []
    for name, tiles in rows.items():
        lines.append(np.hstack([_tile(t[crop], i in keyframes, f"frame {i}" if name == "guidance" else "")
                                for t, i in zip(tiles, picks)]))
    return np.vstack(lines)


def _subject_box(alphas: list[np.ndarray]) -> tuple[slice, slice]:
    """The part of the frame the subject covers in any sampled frame, grown by a quarter, at the frame's aspect
    ratio: small subjects (a bike, a person far off) are shown large enough to judge their edges."""
    h, w = alphas[0].shape
    ys, xs = np.nonzero(np.maximum.reduce(alphas) > 12)
    if len(ys) == 0:
        return slice(None), slice(None)
    cy, cx = (ys.min() + ys.max()) / 2, (xs.min() + xs.max()) / 2
    half_h = max((ys.max() - ys.min()) / 2, (xs.max() - xs.min()) / 2 * h / w) * 1.25 + 8
    half_w = half_h * w / h
    if half_h * 2 >= h * 0.8:
        return slice(None), slice(None)
    top = int(np.clip(cy - half_h, 0, h - 2 * half_h))
    left = int(np.clip(cx - half_w, 0, w - 2 * half_w))
    return slice(top, top + int(2 * half_h)), slice(left, left + int(2 * half_w))


def _overlay(rgb: np.ndarray, trimap: np.ndarray) -> np.ndarray:
    shown = rgb.astype(np.float32)
    for value, colour in ((255, (0, 255, 0)), (128, (255, 220, 0))):
        where = trimap == value
        shown[where] = 0.55 * shown[where] + 0.45 * np.array(colour, np.float32)
    return shown.astype(np.uint8)


def _tile(rgb: np.ndarray, keyframe: bool, label: str) -> np.ndarray:
    h, w = rgb.shape[:2]
    tile = cv2.resize(rgb, (TILE_WIDTH, round(h * TILE_WIDTH / w)), interpolation=cv2.INTER_AREA)
    tile = np.ascontiguousarray(tile)
    if keyframe:
        cv2.rectangle(tile, (0, 0), (tile.shape[1] - 1, tile.shape[0] - 1), (255, 0, 0), 4)
    if label:
        cv2.putText(tile, label + (" (keyframe)" if keyframe else ""), (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                    (255, 255, 255), 1, cv2.LINE_AA)
    return cv2.copyMakeBorder(tile, 2, 2, 2, 2, cv2.BORDER_CONSTANT, value=(255, 255, 255))


def keyframe_indices(run: Run, folder: Path) -> set[int]:
    """The frames `vidmatte guided` took as keyframes for this run (read the way it reads them)."""
    from vidmatte.guidance import load_keyframes

    def value(flag):
        return run.guidance[run.guidance.index(flag) + 1] if flag in run.guidance else None

    specs = [run.guidance[i + 1] for i, a in enumerate(run.guidance) if a == "--keyframe"]
    height, width = cv2.imread(str(next((folder / "alpha").glob("*.png")))).shape[:2]
    object_id = value("--object")
    keyframes, _ = load_keyframes(specs, value("--keyframes"), None, (width, height),
                                  object_id=int(object_id) if object_id else None)
    return set(keyframes.indices())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for the contact sheets (JPEG)")
    parser.add_argument("--only", help="comma-separated run names or prefixes (judo, bike, dog, kitten, interview)")
    parser.add_argument("--full", action="store_true", help="show non-commercial footage too (local looks only)")
    args = parser.parse_args()
    if not VIDEOS.is_dir():
        raise SystemExit(f"no real footage at {VIDEOS}: set VIDMATTE_SHARED_DATA")
    names = {r.name for r in runs()}
    wanted = args.only.split(",") if args.only else []
    chosen = [r for r in runs() if not wanted  # a run's exact name picks it alone, another word every run it begins
              or any(r.name == p or (p not in names and r.name.startswith(p)) for p in wanted)]
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"{'run':22} {'frames':>6} {'seconds':>8} {'fps':>6}  {'size':10} keyframes disagree at")
    for run in chosen:
        with tempfile.TemporaryDirectory(prefix="vidmatte-real-") as tmp:
            report = run_guided(run, Path(tmp))
            picture = sheet(run, Path(tmp), keyframe_indices(run, Path(tmp)), args.full)
        cv2.imwrite(str(args.out / f"guided_{run.name}.jpg"), picture[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 85])
        size = cv2.imread(str(args.out / f"guided_{run.name}.jpg")).shape
        lost = ", ".join(f"{a}-{b}" for a, b in report.get("contradicting_frames", [])) or "-"
        print(f"{run.name:22} {report['frames']:>6} {report['seconds']:>8.1f} {report['fps']:>6.2f}  "
              f"{size[1]}x{size[0]:<5} {lost}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
