"""Trimap -> alpha solvers on real images with ground truth, at video frame sizes: seconds per frame and error.

    python benchmarks/solver.py [--sizes 640x360,960x540,1920x1080] [--images GT01,GT05,boy] [--foreground]

Images (read from ../shared/data, never copied): alphamatting.com GT01 and GT05 and comp1k's boy-1518482 (a child
with loose hair), each with its own trimap. Image, trimap and truth are resized to each size (aspect ignored, as a
video frame would be: area for image and truth, nearest for the trimap). Methods:
  repo        vidmatte.solvers.closed_form.closed_form_alpha (direct sparse solve, exact)
  pymatting   pymatting.estimate_alpha_cf (full-frame Laplacian, incomplete-Cholesky CG, its defaults)
  cold        vidmatte.solvers.trimap_alpha.solve_alpha, no start (coarse to fine), default tol
  warm        the same, warm-started from the truth shifted by (2, 1) px and blurred (sigma 1): a stand-in for the
              previous frame's alpha. It starts from the truth, so its error is flattered; its time is the point.
MAD is x1e3 over the whole frame, SAD is the sum of absolute differences / 1e3 (the comp1k convention), both vs the
resized truth. Every time is one run after a warm-up (numba compiles once); the machine is shared, so expect +-20%.

A second table (--foreground) times foreground estimation on GT05, the only image here with a true foreground
layer: the repo's estimate_foreground via trimap_alpha.foreground at scale 1 and 2, and pymatting's
estimate_foreground_ml, all from the true alpha; error is MAD x1e3 of alpha * F against alpha * true F.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import time
from pathlib import Path

import cv2
import numpy as np

from vidmatte.metrics.core import mad
from vidmatte.solvers.closed_form import closed_form_alpha
from vidmatte.solvers.trimap_alpha import foreground, solve_alpha, solve_alpha_info

REPO = Path(__file__).resolve().parents[1]
GT = REPO.parent / "shared/data/image_matting_gt"
IMAGES = {  # name -> (image, trimap, truth) relative to GT
    "GT01": ("alphamatting_GT01_mattekit/GT01.png", "alphamatting_GT01_mattekit/GT01_tri.png",
             "alphamatting_GT01_mattekit/GT01_truth.png"),
    "GT05": ("alphamatting_GT05_mmagic/merged/GT05.jpg", "alphamatting_GT05_mmagic/trimap/GT05.png",
             "alphamatting_GT05_mmagic/alpha/GT05.jpg"),
    "boy": tuple(f"comp1k_test_huochaitiantang/{d}/boy-1518482_1920_12.png" for d in ("image", "trimap", "alpha")),
}


def load(name: str, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image uint8 [H,W,3] RGB, trimap uint8 {0,128,255}, truth float32 0..1) resized to size = (W, H)."""
    image_path, trimap_path, truth_path = (str(GT / p) for p in IMAGES[name])
    image = cv2.cvtColor(cv2.imread(image_path, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    trimap = cv2.imread(trimap_path, cv2.IMREAD_GRAYSCALE)
    truth = cv2.imread(truth_path, cv2.IMREAD_GRAYSCALE)
    image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    trimap = cv2.resize(trimap, size, interpolation=cv2.INTER_NEAREST)
    trimap = np.where(trimap < 64, 0, np.where(trimap > 192, 255, 128)).astype(np.uint8)
    truth = cv2.resize(truth, size, interpolation=cv2.INTER_AREA).astype(np.float32) / 255
    return image, trimap, truth


def previous_frame(truth: np.ndarray) -> np.ndarray:
    """The truth moved by (2, 1) px and blurred: what a carried previous-frame alpha roughly looks like."""
    return cv2.GaussianBlur(np.roll(truth, (2, 1), (0, 1)), (0, 0), 1.0)


def run_pymatting(image: np.ndarray, trimap: np.ndarray) -> np.ndarray:
    from pymatting import estimate_alpha_cf

    with contextlib.redirect_stdout(io.StringIO()):  # its ichol prints a warning (then retries with a shift)
        return estimate_alpha_cf(image.astype(np.float64) / 255, trimap.astype(np.float64) / 255)


METHODS = {
    "repo": lambda image, trimap, truth: closed_form_alpha(image, trimap.astype(np.float64) / 255),
    "pymatting": lambda image, trimap, truth: run_pymatting(image, trimap),
    "cold": lambda image, trimap, truth: solve_alpha(image, trimap),
    "warm": lambda image, trimap, truth: solve_alpha(image, trimap, init=previous_frame(truth)),
}


def measure(method: str, image: np.ndarray, trimap: np.ndarray, truth: np.ndarray) -> tuple[float, float, float]:
    """(seconds, MAD x1e3, SAD / 1e3) of one method on one frame."""
    start = time.perf_counter()
    alpha = METHODS[method](image, trimap, truth)
    seconds = time.perf_counter() - start
    return seconds, mad(alpha, truth), float(np.abs(alpha.astype(np.float64) - truth).sum() / 1e3)


def foreground_table(sizes: list[tuple[int, int]]) -> None:
    """Seconds and alpha*F error of the foreground estimators on GT05 at each size."""
    from pymatting import estimate_foreground_ml

    base = GT / "alphamatting_GT05_mmagic"
    true_fg = cv2.cvtColor(cv2.imread(str(base / "fg/GT05.jpg"), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    estimators = {
        "foreground": lambda image, alpha: foreground(image, alpha),
        "foreground scale 2": lambda image, alpha: foreground(image, alpha, scale=2),
        "pymatting ml": lambda image, alpha: estimate_foreground_ml(image / 255.0, alpha.astype(np.float64)),
    }
    print("\n| size | " + " | ".join(f"{name} s / err" for name in estimators) + " |")
    print("|---|" + "---|" * len(estimators))
    for size in sizes:
        image, _, alpha = load("GT05", size)
        truth = cv2.resize(true_fg, size, interpolation=cv2.INTER_AREA).astype(np.float32) / 255
        cells = []
        for estimate in estimators.values():
            start = time.perf_counter()
            fg = estimate(image, alpha)
            seconds = time.perf_counter() - start
            error = np.abs(alpha[..., None] * (fg - truth)).mean() * 1e3
            cells.append(f"{seconds:.2f} / {error:.3f}")
        print(f"| {size[0]}x{size[1]} | " + " | ".join(cells) + " |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="640x360,960x540,1920x1080")
    parser.add_argument("--images", default=",".join(IMAGES))
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--skip", default="", help="method@size pairs to leave out, e.g. repo@1920x1080")
    parser.add_argument("--foreground", action="store_true", help="also time the foreground estimators")
    args = parser.parse_args()
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    skip = set(filter(None, args.skip.split(",")))
    methods = args.methods.split(",")
    image, trimap, truth = load("GT01", (160, 100))  # compile the numba kernels outside the timings
    solve_alpha_info(image, trimap, init=truth)
    print(f"| size | image | unknown % | " + " | ".join(f"{m} s / MAD / SAD" for m in methods) + " |")
    print("|---|---|---|" + "---|" * len(methods))
    for size in sizes:
        for name in args.images.split(","):
            image, trimap, truth = load(name, size)
            cells = []
            for method in methods:
                if f"{method}@{size[0]}x{size[1]}" in skip:
                    cells.append("skipped")
                    continue
                seconds, mad_value, sad_value = measure(method, image, trimap, truth)
                cells.append(f"{seconds:.2f} / {mad_value:.2f} / {sad_value:.1f}")
            unknown = 100 * np.mean(trimap == 128)
            print(f"| {size[0]}x{size[1]} | {name} | {unknown:.1f} | " + " | ".join(cells) + " |", flush=True)
    if args.foreground:
        foreground_table(sizes)


if __name__ == "__main__":
    main()
