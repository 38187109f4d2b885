"""End-to-end throughput vs. a bare ONNX Runtime loop, measured side by side in one run (ratios, not seconds).

    python benchmarks/speed_pipeline.py [--frames 72] [--ratio 0.25] [--input CLIP]

Input: 1080p H.264 (the real 1920x1080 clip from ../shared/data when present, else one synthesised from the demo
photo). Rows, all on the same decoded frames:
  bare           decoded RGB frames already in memory -> tensor -> session.run of the official graph, on an ONNX
                 Runtime session with default options (what a plain script gets; the issue's reference)
  bare-vm        the same loop on vidmatte's tuned session (no thread spinning, no memory pattern)
  bare-fast      decoded frames in memory through vidmatte's fast path, no file I/O: small input, the graph cut
                 before its full-resolution tail, the tail fused with compositing (vidmatte.models.rvm_tail)
  pipeline       vidmatte's pipeline (default backend, the fast path): file -> composition .mp4 (H.264, default
                 preset) with decode/encode overlapped; the recurrent state starts cold (--warmup 0), as RVM's
  pipeline-warm  the same with the default warm-up (8 frames run through the network before the writing pass;
                 its cost shrinks with the clip's length)
  pipeline-whole the same pipeline running the official graph whole (--backend onnxruntime-whole)
  naive          decode all, then infer all, then composite in float numpy and encode, one after another
The rows are interleaved (each repeat runs every row once) so machine noise hits them alike; the ratios use the
median of each.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CLIP = REPO.parent / "shared/data/video_people/matanyone_test-sample0/test-sample0.mp4"


def synthesise_1080p(path: Path, frames: int) -> Path:
    import cv2

    from vidmatte import demo

    photo = cv2.cvtColor(cv2.imread(str(demo.find_sample_photo())), cv2.COLOR_BGR2RGB)
    squares = demo.synthesise_frames(photo, frames=frames, size=1080)
    wide = [np.hstack([cv2.flip(s, 1)[:, :420], s, s[:, :420]]) for s in squares]
    demo.write_clip(path, wide)
    return path


def decode(path: Path, frames: int) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        c.streams.video[0].thread_type = "AUTO"
        return [f.to_ndarray(format="rgb24") for _, f in zip(range(frames), c.decode(video=0))]


def default_session_runner(path: Path, threads: int | None):
    """An OnnxRunner whose session has ONNX Runtime's default options: the reference a plain script gets."""
    import onnxruntime as ort

    from vidmatte.backends.onnx import OnnxRunner

    runner = OnnxRunner(path, threads)
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    runner.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return runner


def bare_loop(runner, frames, ratio) -> float:
    from vidmatte.matters.recurrent import frame_to_tensor

    state = runner.initial_state()
    start = time.perf_counter()
    for image in frames:
        _, _, state = runner(frame_to_tensor(image), state, ratio)
    return len(frames) / (time.perf_counter() - start)


def fast_loop(runner, frames, ratio) -> float:
    """The fast path's work on frames already in memory: what the pipeline adds to it is file I/O."""
    from vidmatte.models import rvm_tail

    green = np.array([120, 255, 155], np.uint8).reshape(1, 1, 3)
    state = runner.initial_state()
    start = time.perf_counter()
    for image in frames:
        coefficients, state = runner.coarse(runner.shrink(image, ratio), state)
        rvm_tail.apply(image, coefficients, background=green, composition=True)
    return len(frames) / (time.perf_counter() - start)


def pipeline_run(runner, clip, frames, ratio, out: Path, preset: str = "superfast", warmup: int = 0) -> float:
    from vidmatte.io.writers import parse_output
    from vidmatte.matters import RecurrentMatter
    from vidmatte.pipeline import ConvertOptions, convert

    options = ConvertOptions([parse_output("composition", str(out))], end_frame=frames, overwrite=True, preset=preset)
    start = time.perf_counter()
    result = convert(clip, RecurrentMatter(runner, ratio, warmup=warmup), options)
    return result.frames / (time.perf_counter() - start)


def naive_run(runner, clip, frames, ratio, out: Path) -> float:
    """What a first script does: everything in sequence, float numpy compositing."""
    from vidmatte.matters.recurrent import frame_to_tensor

    start = time.perf_counter()
    images = decode(clip, frames)
    state = runner.initial_state()
    results = []
    for image in images:
        fgr, pha, state = runner(frame_to_tensor(image), state, ratio)
        results.append((fgr, pha))
    green = np.array([120, 255, 155], np.float32) / 255
    with av.open(str(out), "w") as container:
        stream = container.add_stream("libx264", rate=24)
        stream.width, stream.height = images[0].shape[1], images[0].shape[0]
        stream.pix_fmt = "yuv420p"
        for fgr, pha in results:
            fg, a = fgr[0].transpose(1, 2, 0), pha[0, 0][..., None]
            comp = ((fg * a + green * (1 - a)) * 255).astype(np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(comp, format="rgb24")))
        container.mux(stream.encode(None))
    return len(images) / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", type=Path, default=None)
    parser.add_argument("--frames", type=int, default=72)
    parser.add_argument("--ratio", type=float, default=0.25)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--preset", default="superfast", help="x264 preset of the pipeline row (its default)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    from vidmatte.backends import open_runner
    from vidmatte.matters.recurrent import DEFAULT_WARMUP

    with tempfile.TemporaryDirectory() as tmp:
        clip = args.input or (DEFAULT_CLIP if DEFAULT_CLIP.exists() else synthesise_1080p(Path(tmp) / "in.mp4",
                                                                                           args.frames))
        frames = decode(clip, args.frames)
        fast = open_runner("rvm-mobilenetv3", threads=args.threads)
        whole = open_runner("rvm-mobilenetv3", "onnxruntime-whole", threads=args.threads)
        plain = default_session_runner(whole.path, args.threads)
        for runner in (plain, whole):  # warm-up: first runs allocate (and the fast path's kernels compile)
            bare_loop(runner, frames[:3], args.ratio)
        fast_loop(fast, frames[:3], args.ratio)
        rows = {"bare": [], "bare-vm": [], "bare-fast": [], "pipeline": [], "pipeline-warm": [], "pipeline-whole": [],
                "naive": []}
        for rep in range(args.repeats):
            rows["bare"].append(bare_loop(plain, frames, args.ratio))
            rows["bare-vm"].append(bare_loop(whole, frames, args.ratio))
            rows["bare-fast"].append(fast_loop(fast, frames, args.ratio))
            rows["pipeline"].append(pipeline_run(fast, clip, len(frames), args.ratio, Path(tmp) / "p.mp4",
                                                 args.preset))
            rows["pipeline-warm"].append(pipeline_run(fast, clip, len(frames), args.ratio, Path(tmp) / "p.mp4",
                                                      args.preset, warmup=DEFAULT_WARMUP))
            rows["pipeline-whole"].append(pipeline_run(whole, clip, len(frames), args.ratio,
                                                       Path(tmp) / "w.mp4", args.preset))
            rows["naive"].append(naive_run(plain, clip, len(frames), args.ratio, Path(tmp) / "n.mp4"))
            print(f"repeat {rep + 1}/{args.repeats}: " + ", ".join(f"{k} {v[-1]:.2f} fps" for k, v in rows.items()),
                  file=sys.stderr)
    median = {k: statistics.median(v) for k, v in rows.items()}
    report = {"input": str(clip), "frames": len(frames), "size": f"{frames[0].shape[1]}x{frames[0].shape[0]}",
              "downsample_ratio": args.ratio, "fps_median": {k: round(v, 3) for k, v in median.items()},
              "pipeline_over_bare": round(median["pipeline"] / median["bare"], 3),
              "pipeline_over_bare_fast": round(median["pipeline"] / median["bare-fast"], 3),
              "pipeline_warm_over_bare": round(median["pipeline-warm"] / median["bare"], 3),
              "pipeline_whole_over_bare": round(median["pipeline-whole"] / median["bare"], 3),
              "naive_over_bare": round(median["naive"] / median["bare"], 3)}
    if args.json:
        print(json.dumps(report))
    else:
        print(f"{report['size']} H.264 in -> H.264 composition out, downsample {args.ratio}, "
              f"{len(frames)} frames x {args.repeats} interleaved repeats")
        for k, v in median.items():
            print(f"  {k:14s} {v:6.2f} fps  ({v / median['bare']:.2f}x bare)")
        print(f"  pipeline / bare-fast: {report['pipeline_over_bare_fast']:.2f}x (what file I/O costs the fast path)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
