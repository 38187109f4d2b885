"""PyTorch backend vs ONNX Runtime on the same frames, measured side by side in one run (a ratio, not seconds).

    python benchmarks/torch_backend.py [--frames 10] [--ratio 0.375] [--threads 1] [--input CLIP]

Both runners come from ``open_runner`` (the torch one folds BatchNorm into the convolutions), get the same decoded
frames already in memory, carry their state, and are timed in alternation (onnxruntime, torch, repeated) so
machine noise hits both alike; the ratio uses the best run of each. Input: the 1280x720 juggling clip from
../shared/data when present, else generated frames of that size.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

DEFAULT_CLIP = Path(__file__).resolve().parents[1].parent / "shared/data/video_people/sam2/05_default_juggle.mp4"


def load_frames(path: Path, count: int) -> list[np.ndarray]:
    """[1,3,H,W] float32 frames: the first ``count`` of the clip, or generated 1280x720 ones if it is absent."""
    if path.exists():
        import av

        frames = []
        with av.open(str(path)) as container:
            for frame in container.decode(video=0):
                frames.append(np.ascontiguousarray(frame.to_ndarray(format="rgb24").transpose(2, 0, 1)[None],
                                                   dtype=np.float32) / 255)
                if len(frames) == count:
                    break
        return frames
    from vidmatte.backends.export import check_frames

    return list(check_frames(seed=0, batch=1, frames=count, height=720, width=1280))


def time_runner(runner, frames: list[np.ndarray], ratio: float) -> float:
    """Seconds per frame over the clip, state carried, after one warm-up call."""
    runner(frames[0], runner.initial_state(), ratio)
    state, start = runner.initial_state(), time.perf_counter()
    for src in frames:
        _, _, state = runner(src, state, ratio)
    return (time.perf_counter() - start) / len(frames)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=10)
    parser.add_argument("--ratio", type=float, default=0.375)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--input", type=Path, default=DEFAULT_CLIP)
    args = parser.parse_args()

    from vidmatte.backends import open_runner

    frames = load_frames(args.input, args.frames)
    runners = {name: open_runner("rvm-mobilenetv3", name, threads=args.threads, device="cpu")
               for name in ("onnxruntime", "torch")}
    times: dict[str, list[float]] = {name: [] for name in runners}
    for repeat in range(args.repeats):
        for name, runner in runners.items():
            times[name].append(time_runner(runner, frames, args.ratio))
            print(f"repeat {repeat + 1}/{args.repeats} {name}: {times[name][-1] * 1000:.0f} ms/frame",
                  file=sys.stderr)
    best = {name: min(values) for name, values in times.items()}
    print(json.dumps({
        "frames": len(frames), "size": list(frames[0].shape[2:]), "ratio": args.ratio, "threads": args.threads,
        "ms_per_frame": {k: round(v * 1000, 1) for k, v in best.items()},
        "torch_over_onnxruntime_time": round(best["torch"] / best["onnxruntime"], 2),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
