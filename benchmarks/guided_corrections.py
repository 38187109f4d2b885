"""What a correction with ``--work`` costs against re-running the clip: side by side in one process.

    python benchmarks/guided_corrections.py [--frames 60] [--size 512x288] [--keys 0,20,40,59] [--change 40]

A generated clip (a textured subject that turns and bends over a panning textured background, cv2 only; frames
written as PNGs) is matted three ways with ``vidmatte.convert_guided`` (--prior none, alpha and composition PNGs):
  first       every keyframe, with a work folder (fills it; also measures what keeping the cache costs)
  correction  one keyframe changed (a wider unknown band), the same work folder: only the frames between its
              neighbouring keyframes are recomputed
  fresh       the corrected keyframes without a work folder (what a correction costs without corrections)
and a plain run of the first keyframes without a work folder, to price the cache. Prints seconds, the frames
reused, the ratios, and whether the correction's outputs equal the fresh run's byte for byte.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

import vidmatte
from vidmatte.data.synthesis import trimap_from_alpha


def texture(h: int, w: int, seed: int) -> np.ndarray:
    noise = np.random.default_rng(seed).integers(0, 255, (h // 6, w // 6, 3), dtype=np.uint8)
    return cv2.GaussianBlur(cv2.resize(noise, (w, h), interpolation=cv2.INTER_CUBIC), (0, 0), 1.0)


def make_clip(folder: Path, frames: int, w: int, h: int) -> list[np.ndarray]:
    """Writes the frames to ``folder``; returns the true alphas (uint8)."""
    folder.mkdir()
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    radius = 0.24 * h
    layer_alpha = np.clip(0.5 - (np.hypot((xx - w / 2) / 1.4, yy - h / 2) - radius) / 2, 0, 1).astype(np.float32)
    layer, background = texture(h, w, 2), texture(h + 40, w + frames + 40, 1)
    alphas = []
    for t in range(frames):
        move = cv2.getRotationMatrix2D((w / 2, h / 2), 0.6 * t, 1.0)
        move[:, 2] += [w * 0.3 * (t / frames - 0.5), 0.07 * h * np.sin(t / 6)]
        inverse = cv2.invertAffineTransform(move)
        sx = (inverse[0, 0] * xx + inverse[0, 1] * yy + inverse[0, 2] + 4 * np.sin(yy / 18 + t / 5)).astype(np.float32)
        sy = (inverse[1, 0] * xx + inverse[1, 1] * yy + inverse[1, 2] + 3 * np.sin(xx / 25 - t / 7)).astype(np.float32)
        alpha = cv2.remap(layer_alpha, sx, sy, cv2.INTER_LINEAR, borderValue=0)
        rgb = cv2.remap(layer, sx, sy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        frame = rgb * alpha[..., None] + background[20:20 + h, t:t + w] * (1 - alpha[..., None])
        cv2.imwrite(str(folder / f"{t:05d}.png"), cv2.cvtColor(np.rint(frame).astype(np.uint8), cv2.COLOR_RGB2BGR))
        alphas.append(np.rint(alpha * 255).astype(np.uint8))
    return alphas


def timed(frames: Path, keyframes: dict, out: Path, work: Path | None) -> tuple[float, int]:
    out.mkdir()
    started = time.perf_counter()
    result = vidmatte.convert_guided(str(frames), keyframes, output_type="png_sequence", output_alpha=str(out / "pha"),
                                     output_composition=str(out / "comp"), prior="none", progress=False,
                                     work=str(work) if work else None)
    return time.perf_counter() - started, result.details["reused_frames"]


def same_files(a: Path, b: Path) -> bool:
    names = sorted(p.name for p in a.iterdir())
    return names == sorted(p.name for p in b.iterdir()) and all((a / n).read_bytes() == (b / n).read_bytes()
                                                                for n in names)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--size", default="512x288")
    parser.add_argument("--keys", default="0,20,40,59")
    parser.add_argument("--change", type=int, default=40)
    args = parser.parse_args()
    w, h = map(int, args.size.split("x"))
    keys = [int(k) for k in args.keys.split(",")]
    with tempfile.TemporaryDirectory(prefix="vidmatte-bench-") as tmp:
        tmp = Path(tmp)
        alphas = make_clip(tmp / "in", args.frames, w, h)
        first = {k: trimap_from_alpha(alphas[k], 3) for k in keys}
        corrected = {**first, args.change: trimap_from_alpha(alphas[args.change], 9)}
        runs = {}
        runs["plain"] = timed(tmp / "in", first, tmp / "plain", None)
        runs["first"] = timed(tmp / "in", first, tmp / "first", tmp / "work")
        runs["correction"] = timed(tmp / "in", corrected, tmp / "correction", tmp / "work")
        runs["fresh"] = timed(tmp / "in", corrected, tmp / "fresh", None)
        identical = all(same_files(tmp / "correction" / k, tmp / "fresh" / k) for k in ("pha", "comp"))
        cache_mb = sum(p.stat().st_size for p in (tmp / "work").rglob("*") if p.is_file()) / 2 ** 20
    print(f"{args.frames} frames at {w}x{h}, keyframes {keys}, keyframe {args.change} changed")
    print("| run | seconds | reused frames |")
    print("|---|---|---|")
    for name, (seconds, reused) in runs.items():
        print(f"| {name} | {seconds:.1f} | {reused} |")
    print(f"correction / fresh: {runs['correction'][0] / runs['fresh'][0]:.2f}x the time; "
          f"first (keeping the cache) / plain: {runs['first'][0] / runs['plain'][0]:.2f}x; "
          f"work folder {cache_mb:.0f} MiB; correction's outputs equal the fresh run's: {identical}")


if __name__ == "__main__":
    main()
