"""Background-plate matting on real captures (issue 11), looked at: contact sheets of our alpha only.

1. The Background Matting sample (../shared/data/bgplate_real/background_matting_v1_sample: 4 frames of a hand-held
   video at 1920x1080 and the captured plate, CC BY-NC-SA: the sheet shows our alpha, not their pictures). Each
   frame is matted on its own (they are far apart in the video) with ``vidmatte.convert_background``; the
   alignment's report (gain/bias used, background residual) is printed beside it.
2. ``--plate auto`` on a static-camera clip (MaGGIe's studio dance clip, 1280x720): the estimated plate's share never
   seen empty, and the alpha of a few frames.

    PYTHONPATH=src python benchmarks/plate_real.py --data ../shared/data --out docs/images
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import cv2
import numpy as np

import vidmatte
from vidmatte.errors import UsageError

SAMPLE = "bgplate_real/background_matting_v1_sample"
STATIC = "video_people/maggie_demo/video_test2.mp4"
TILE = (480, 270)


def hand_held(data: Path, tmp: Path) -> tuple[list[np.ndarray], list[dict]]:
    folder = data / SAMPLE
    alphas, reports = [], []
    for image in sorted(folder.glob("*_img.png")):
        out = tmp / image.stem
        result = vidmatte.convert_background(str(image), plate=str(folder / "0001_back.png"),
                                             output_type="png_sequence", output_alpha=str(out), progress=False)
        alphas.append(cv2.imread(str(next(out.glob("*.png"))), cv2.IMREAD_GRAYSCALE))
        reports.append({"frame": image.stem, **result.details, "seconds": round(result.seconds, 2)})
    return alphas, reports


def static_auto(data: Path, tmp: Path, frames: list[int]) -> tuple[list[np.ndarray], dict]:
    clip = data / STATIC
    out = tmp / "auto"
    try:
        result = vidmatte.convert_background(str(clip), plate="auto", plate_out=str(tmp / "plate.png"),
                                             align=False, output_type="png_sequence", output_alpha=str(out),
                                             end_frame=max(frames) + 1, progress=False)
    except UsageError as exc:
        return [], {"refused": str(exc)}
    files = sorted(out.glob("*.png"))
    return [cv2.imread(str(files[i]), cv2.IMREAD_GRAYSCALE) for i in frames], dict(result.details)


def sheet(alphas: list[np.ndarray], columns: int) -> np.ndarray:
    tiles = [cv2.resize(a, TILE, interpolation=cv2.INTER_AREA) for a in alphas]
    while len(tiles) % columns:
        tiles.append(np.zeros_like(tiles[0]))
    rows = [np.hstack(tiles[i:i + columns]) for i in range(0, len(tiles), columns)]
    return np.vstack(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/data")
    parser.add_argument("--out", default="docs/images")
    parser.add_argument("--skip-auto", action="store_true")
    options = parser.parse_args()
    data, out = Path(options.data), Path(options.out)
    with tempfile.TemporaryDirectory() as tmp:
        alphas, reports = hand_held(data, Path(tmp))
        cv2.imwrite(str(out / "plate_real_alpha.png"), sheet(alphas, 2))
        for report in reports:
            print(json.dumps(report))
        if not options.skip_auto:
            auto, details = static_auto(data, Path(tmp), [10, 40, 70, 95])
            print(json.dumps({"auto": details}))
            if auto:
                cv2.imwrite(str(out / "plate_auto_alpha.png"), sheet(auto, 2))


if __name__ == "__main__":
    main()
