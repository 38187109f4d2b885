"""``vidmatte batch`` measured side by side on this machine (docs/BATCH.md has the tables).

    python benchmarks/batch.py lead-in      # the chunk lead-in W: chunked vs single run on real clips
    python benchmarks/batch.py throughput   # 8 short clips, 1 vs 2 workers; per-item overhead vs matting time
    python benchmarks/batch.py chunked      # one long clip: chunked over 2 workers vs one single run

Real footage from ../shared/data/video_people (never copied into the repo). Every figure is a ratio or a difference
of runs made in the same invocation; nothing here is a pass/fail test.
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

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("VIDMATTE_SHARED_DATA", REPO.parent / "shared" / "data")) / "video_people"
LEAD_IN_CLIPS = {"bedroom": ("sam2/bedroom.mp4", 150), "juggle": ("sam2/05_default_juggle.mp4", 180),
                 "dog": ("sam2/01_dog.mp4", 200)}  # clip, chunk boundary (a frame well inside the clip)
LEAD_INS = (0, 8, 16, 32, 64, 128)
AFTER = 24  # frames compared after each boundary


# --- lead-in ----------------------------------------------------------------------------------------------------
def run_passes(matter, frames: list[np.ndarray], span) -> list[np.ndarray]:
    """The pipeline's passes over decoded frames, in the matter's order: alpha (0..255 levels) of the writing pass."""
    alphas = []
    matter.reset()
    for p in matter.passes(span):
        order = range(p.start, p.stop)
        for i in (reversed(order) if p.reverse else order):
            alpha = matter.step(frames[i])[1]
            if p.writes:
                alphas.append(np.round(alpha * 255))
    return alphas


def lead_in(args) -> dict:
    from vidmatte.backends import open_runner
    from vidmatte.io.source import open_source
    from vidmatte.matters.base import Span
    from vidmatte.matters.recurrent import RecurrentMatter

    runner = open_runner(threads=args.threads)
    rows = []
    for name, (path, a) in LEAD_IN_CLIPS.items():
        frames = [f.image for f in open_source(DATA / path).frames(0, a + AFTER)]
        single = run_passes(RecurrentMatter(runner), frames, Span(0, a + AFTER, True))[a:]
        for w in LEAD_INS:
            chunk = run_passes(RecurrentMatter(runner, lead_in=w), frames, Span(a, a + AFTER, True))
            d = np.stack([np.abs(c - s) for c, s in zip(chunk, single)])
            rows.append({"clip": name, "boundary": a, "lead_in": w, "max": float(d.max()),
                         "p99.9": float(np.percentile(d, 99.9)), "p99": float(np.percentile(d, 99)),
                         "mean": round(float(d.mean()), 4), "share_over_2": round(float((d > 2).mean()), 5)})
            print(json.dumps(rows[-1]), flush=True)
    return {"rows": rows}


# --- throughput -------------------------------------------------------------------------------------------------
def cut_clips(folder: Path, count: int, frames: int, size: tuple[int, int]) -> list[Path]:
    """``count`` short clips cut from real footage (re-encoded at ``size``), each from a different place."""
    import av
    import cv2

    from vidmatte.io.source import open_source

    sources = [DATA / "sam2/bedroom.mp4", DATA / "sam2/05_default_juggle.mp4", DATA / "sam2/01_dog.mp4",
               DATA / "maggie_demo/video_test2.mp4"]
    clips = []
    for k in range(count):
        source = open_source(sources[k % len(sources)])
        start = (k // len(sources)) * frames
        path = folder / f"clip{k}.mp4"
        with av.open(str(path), "w") as out:
            stream = out.add_stream("libx264", rate=24)
            stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
            stream.options = {"crf": "16", "preset": "veryfast"}
            for frame in source.frames(start, start + frames):
                image = cv2.resize(frame.image, size, interpolation=cv2.INTER_AREA)
                out.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
            out.mux(stream.encode(None))
        clips.append(path)
    return clips


def run_batch(inputs: list[Path], out: Path, *extra: str) -> tuple[float, dict]:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "vidmatte", "batch", *map(str, inputs), "--output-dir", str(out),
                           "--json", "--quiet", *extra], env=env, capture_output=True, text=True, timeout=3600)
    seconds = time.monotonic() - started
    if proc.returncode != 0:
        raise SystemExit(f"batch failed: {proc.stderr.strip()}")
    return seconds, json.loads(proc.stdout.strip().splitlines()[-1])


def item_seconds(out: Path) -> float:
    return sum(json.loads(p.read_text())["seconds"] for p in out.glob("*/.vidmatte-batch.json"))


def throughput(args) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        clips = cut_clips(Path(tmp), 8, args.frames, (640, 360))
        frames = 8 * args.frames
        times: dict[int, list[float]] = {1: [], 2: []}
        matting: dict[int, list[float]] = {1: [], 2: []}
        for repeat in range(args.repeats):
            for workers in ((1, 2) if repeat % 2 == 0 else (2, 1)):  # interleaved: load drifts hit both
                out = Path(tmp) / f"out-{workers}-{repeat}"
                seconds, _ = run_batch(clips, out, "--workers", str(workers), "--outputs", "composition.mp4,alpha/")
                times[workers].append(seconds)
                matting[workers].append(item_seconds(out))
        load = weight_load_seconds()
        start_up = process_start_seconds()
    best = {w: min(t) for w, t in times.items()}
    result = {"clips": 8, "frames_each": args.frames, "size": "640x360", "wall_seconds": times,
              "fps_1_worker": frames / best[1], "fps_2_workers": frames / best[2],
              "speed_ratio_2_vs_1": best[1] / best[2], "item_seconds_1_worker": matting[1],
              "per_item_matting_seconds": min(matting[1]) / 8, "weight_load_seconds": load,
              "worker_start_seconds": start_up,
              "batch_overhead_seconds_1_worker": best[1] - min(matting[1])}
    print(json.dumps(result, indent=1))
    return result


def weight_load_seconds() -> float:
    from vidmatte.backends import open_runner

    started = time.monotonic()
    open_runner(threads=2)
    return time.monotonic() - started


def process_start_seconds() -> float:
    """A fresh interpreter importing what a worker imports (spawned pool workers pay this once)."""
    started = time.monotonic()
    subprocess.run([sys.executable, "-c", "import vidmatte.batch.tasks, vidmatte.pipeline, onnxruntime, av, cv2"],
                   env={**os.environ, "PYTHONPATH": str(REPO / "src")}, check=True)
    return time.monotonic() - started


# --- chunked ------------------------------------------------------------------------------------------------------
def chunked(args) -> dict:
    import av
    import cv2

    clip = DATA / "sam2/01_dog.mp4"
    with tempfile.TemporaryDirectory() as tmp:
        resize = ["--input-resize", "640x360", "--outputs", "composition.mp4,alpha/"]
        single_s, _ = run_batch([clip], Path(tmp) / "single", "--workers", "1", *resize)
        chunk_s, _ = run_batch([clip], Path(tmp) / "chunked", "--workers", "2", "--chunk-frames",
                               str(args.chunk_frames), *resize)
        alphas = {}
        pts = {}
        for run in ("single", "chunked"):
            folder = Path(tmp) / run / "01_dog"
            alphas[run] = [cv2.imread(str(p), 0).astype(np.int16) for p in sorted((folder / "alpha").glob("*.png"))]
            with av.open(str(folder / "composition.mp4")) as c:
                pts[run] = [f.pts for f in c.decode(video=0)]
    d = np.stack([np.abs(a - b) for a, b in zip(alphas["single"], alphas["chunked"])])
    result = {"clip": "sam2/01_dog.mp4 at 640x360", "frames": len(alphas["single"]),
              "chunk_frames": args.chunk_frames, "single_seconds": single_s, "chunked_seconds_2_workers": chunk_s,
              "speed_ratio": single_s / chunk_s, "same_frame_count": len(alphas["single"]) == len(alphas["chunked"]),
              "same_timestamps": pts["single"] == pts["chunked"], "alpha_max_diff": float(d.max()),
              "alpha_mean_diff": round(float(d.mean()), 4), "alpha_p99_diff": float(np.percentile(d, 99))}
    print(json.dumps(result, indent=1))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("part", choices=["lead-in", "throughput", "chunked"])
    parser.add_argument("--threads", type=int, default=2, help="lead-in: ONNX threads")
    parser.add_argument("--frames", type=int, default=48, help="throughput: frames per clip")
    parser.add_argument("--repeats", type=int, default=2, help="throughput: runs of each worker count")
    parser.add_argument("--chunk-frames", type=int, default=96, help="chunked: frames per chunk")
    parser.add_argument("--json", metavar="FILE", help="also write the result here")
    args = parser.parse_args()
    if not DATA.is_dir():
        raise SystemExit(f"real footage not found at {DATA}")
    result = {"lead-in": lead_in, "throughput": throughput, "chunked": chunked}[args.part](args)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
