"""Peak memory of `vidmatte convert` on 4K clips of two lengths, measured side by side in one run.

    python benchmarks/memory_4k.py [--short 60] [--long 600]

Targets (issue 2): peak RSS <= 1.5 GB for a 4K clip, and within 10% between a 60-frame and a 600-frame clip
(flat memory: no whole-video buffers). Each run is a fresh `vidmatte convert` process writing a composition .mp4
(downsample auto); its peak RSS comes from wait4(), i.e. the kernel's own accounting. `--alpha` adds an alpha .mp4
(a second H.264 encoder, about 250 MB more at 4K); `--whole` adds a run of the short clip on the official graph
run whole, for comparison with the default fast path.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np


def synthesise_4k(path: Path, frames: int) -> Path:
    """A 3840x2160 clip: the demo photo drifting across a textured background (cheap to make, real H.264)."""
    import cv2

    from vidmatte import demo

    photo = cv2.cvtColor(cv2.imread(str(demo.find_sample_photo())), cv2.COLOR_BGR2RGB)
    person = cv2.resize(photo, (1600, 1875))
    background = cv2.resize(demo.gradient_background(256), (3840, 2160))
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 3840, 2160, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "20"}
        for i in range(frames):
            image = background.copy()
            x = 200 + int(1800 * (0.5 - 0.5 * np.cos(2 * np.pi * i / 120)))
            image[285:2160, x:x + 1600] = person
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode(None))
    return path


def peak_rss_of_convert(clip: Path, out_dir: Path, with_alpha: bool, backend: str = "onnxruntime"
                        ) -> tuple[float, float]:
    cmd = [sys.executable, "-m", "vidmatte", "convert", str(clip), "--composition", str(out_dir / "c.mp4"),
           "--overwrite", "--quiet", "--backend", backend] + (["--alpha", str(out_dir / "a.mp4")] if with_alpha else [])
    start = time.perf_counter()
    proc = subprocess.Popen(cmd)
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"convert failed on {clip}")
    return usage.ru_maxrss / 1024, time.perf_counter() - start  # KiB -> MiB


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--short", type=int, default=60)
    parser.add_argument("--long", type=int, default=600)
    parser.add_argument("--alpha", action="store_true", help="also write an alpha .mp4")
    parser.add_argument("--whole", action="store_true",
                        help="also run the short clip on the official graph run whole (--backend onnxruntime-whole)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        print(f"synthesising a {args.long}-frame 4K clip...", file=sys.stderr)
        long_clip = synthesise_4k(tmp / "long.mp4", args.long)
        short_clip = synthesise_4k(tmp / "short.mp4", args.short)
        rows = {}
        runs = [("short", short_clip, args.short, "onnxruntime"), ("long", long_clip, args.long, "onnxruntime")]
        if args.whole:
            runs.append(("short-whole", short_clip, args.short, "onnxruntime-whole"))
        for name, clip, n, backend in runs:
            rss, seconds = peak_rss_of_convert(clip, tmp, args.alpha, backend)
            rows[name] = {"frames": n, "peak_rss_mib": round(rss, 1), "fps": round(n / seconds, 3)}
            print(f"{name}: {n} frames, peak RSS {rss:.0f} MiB, {n / seconds:.2f} fps", file=sys.stderr)
    report = {"size": "3840x2160", **rows,
              "long_over_short_rss": round(rows["long"]["peak_rss_mib"] / rows["short"]["peak_rss_mib"], 3)}
    print(json.dumps(report) if args.json else
          f"4K peak RSS: {rows['short']['peak_rss_mib']:.0f} MiB ({args.short} frames) vs "
          f"{rows['long']['peak_rss_mib']:.0f} MiB ({args.long} frames): ratio {report['long_over_short_rss']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
