"""Guided matting at 1080p, end to end: speed beside `vidmatte convert` (RVM) in one run, and memory flat in length.

    python benchmarks/guided_1080p.py speed [--frames 72]     # test-sample0, its first-frame mask of person 1
    python benchmarks/guided_1080p.py memory [--long 600]     # the same clip played back and forth to 600 frames

speed: each command runs as a user runs it (composition + alpha MP4s), one after the other, twice in alternation,
and the table gives fps and the ratio to `vidmatte convert` on the same frames (this machine is shared: ratios
measured side by side are what to compare; fps are as measured). memory: `vidmatte guided` on the first 60 frames
and on all N frames of a ping-pong copy of the clip (back and forth, so the subject never leaves), peak RSS of each.
Needs ../shared/data (MatAnyone's test-sample0, non-commercial: used here, never copied).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DATA = Path(os.environ.get("VIDMATTE_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
CLIP = DATA / "video_people" / "matanyone_test-sample0"
VIDEO, MASK = CLIP / "test-sample0.mp4", CLIP / "masks" / "test-sample0_1.png"


def run(command: list[str]) -> dict:
    """One CLI run in a child process: its --json line, wall seconds and the child's peak RSS (MiB)."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "vidmatte", *command, "--overwrite", "--quiet", "--json"],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"vidmatte {command[0]} failed: {done.stderr.strip()}")
    # RUSAGE_CHILDREN is the largest of the children so far: run the small job first when comparing.
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "wall": time.perf_counter() - started,
            "peak_mib": peak}


def speed(frames: int, out: Path) -> None:
    outputs = lambda name: ["--composition", str(out / f"{name}.mp4"),  # noqa: E731
                            "--alpha", str(out / f"{name}_alpha.mp4")]
    commands = {
        "convert (RVM)": ["convert", str(VIDEO), "--end-frame", str(frames), *outputs("rvm")],
        "guided --prior auto": ["guided", str(VIDEO), "--keyframe", f"0:{MASK}", "--end-frame", str(frames),
                                *outputs("guided")],
        "guided --prior none": ["guided", str(VIDEO), "--keyframe", f"0:{MASK}", "--prior", "none",
                                "--end-frame", str(frames), *outputs("guided_none")],
    }
    fps = {name: [] for name in commands}
    for _ in range(2):  # alternate, so that a burst of load elsewhere hits every command alike
        for name, command in commands.items():
            fps[name].append(run(command)["fps"])
            print(f"  {name}: {fps[name][-1]:.3f} fps", flush=True)
    best = {name: max(values) for name, values in fps.items()}
    print(f"\n{frames} frames of test-sample0 at 1920x1080, composition + alpha MP4s, best of 2")
    print("| command | fps | / convert |\n|---|---|---|")
    for name, value in best.items():
        print(f"| {name} | {value:.2f} | {value / best['convert (RVM)']:.2f}x |")


def pingpong(path: Path, length: int) -> None:
    import av

    with av.open(str(VIDEO)) as source:
        frames = [f.to_ndarray(format="rgb24") for f in source.decode(video=0)]
    order = []
    while len(order) < length:
        order += range(len(frames)) if (len(order) // len(frames)) % 2 == 0 else range(len(frames) - 1, -1, -1)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = 1920, 1080, "yuv420p"
        stream.options = {"crf": "16", "preset": "veryfast"}
        for i in order[:length]:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frames[i], format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def memory(length: int, out: Path) -> None:
    clip = out / f"pingpong{length}.mp4"
    pingpong(clip, length)
    print(f"| frames | fps | peak RSS (MiB) |\n|---|---|---|")
    for frames in (60, length):  # the short one first: the children's peak only grows
        result = run(["guided", str(clip), "--keyframe", f"0:{MASK}", "--end-frame", str(frames),
                      "--composition", str(out / f"comp{frames}.mp4"), "--alpha", str(out / f"alpha{frames}.mp4")])
        print(f"| {frames} | {result['fps']:.2f} | {result['peak_mib']:.0f} |", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("what", choices=["speed", "memory"])
    parser.add_argument("--frames", type=int, default=72, help="speed: frames of test-sample0 (it has 72)")
    parser.add_argument("--long", type=int, default=600, help="memory: length of the long clip")
    args = parser.parse_args()
    if not VIDEO.exists():
        raise SystemExit(f"no {VIDEO}: set VIDMATTE_SHARED_DATA")
    with tempfile.TemporaryDirectory(prefix="vidmatte-1080p-") as tmp:
        (speed(args.frames, Path(tmp)) if args.what == "speed" else memory(args.long, Path(tmp)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
