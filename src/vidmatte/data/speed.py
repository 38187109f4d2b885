"""`bench speed`: model-only vs end-to-end throughput and peak memory at several frame sizes, in one run.

model-only  = a bare ONNX Runtime loop (session.run with the recurrent state threaded through) over frames that were
              decoded and converted to tensors beforehand: the network's own cost.
end-to-end  = ``vidmatte.pipeline.convert`` on a video file of that size: decode, matte, compose on green, encode
              H.264, mux. The ratio end-to-end / model-only says how much the surrounding pipeline costs.
Each measurement runs in a fresh child process so that its peak RSS (ru_maxrss) is its own.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def make_source_video(source: Path, size: tuple[int, int], frames: int, out: Path) -> None:
    """Encode ``frames`` frames of ``source`` resized to ``size`` as H.264 (untimed preparation)."""
    import av
    import cv2

    from ..io.readers import open_reader

    width, height = size
    with av.open(str(out), "w") as container:
        stream = container.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": "18", "preset": "veryfast"}
        count = 0
        while count < frames:  # loop a short source
            for f in open_reader(source):
                image = cv2.resize(f.image, (width, height), interpolation=cv2.INTER_AREA)
                for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                    container.mux(packet)
                count += 1
                if count == frames:
                    break
        for packet in stream.encode():
            container.mux(packet)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def measure_model_only(video: Path) -> dict:
    """fps of session.run alone: frames are decoded and converted one at a time (untimed, and not kept, so the peak
    RSS is the model's), only the ONNX Runtime call is timed. Every frame counts, the first included, as in the
    end-to-end run."""
    from ..backends.onnx import OnnxRunner
    from ..io.readers import open_reader
    from ..matters.recurrent import auto_downsample_ratio, frame_to_tensor

    runner = OnnxRunner.from_model("rvm-mobilenetv3")
    state = runner.initial_state()
    seconds, count, ratio = 0.0, 0, None
    for frame in open_reader(video):
        tensor = frame_to_tensor(frame.image)
        ratio = ratio or auto_downsample_ratio(*tensor.shape[2:])
        count += 1
        start = time.perf_counter()
        _, _, state = runner(tensor, state, ratio)
        seconds += time.perf_counter() - start
    return {"frames": count, "seconds": seconds, "fps": count / seconds,
            "peak_rss_mb": peak_rss_mb(), "downsample_ratio": ratio}


def measure_end_to_end(video: Path, workdir: Path) -> dict:
    """fps of the whole pipeline (decode + matte + compose + encode) from file to file; model load not timed."""
    import vidmatte
    from ..io.writers import parse_output
    from ..pipeline import ConvertOptions, convert

    matter = vidmatte.load("rvm-mobilenetv3")
    out = workdir / f"e2e_{video.stem}.mp4"
    options = ConvertOptions(outputs=[parse_output("composition", str(out))], overwrite=True)
    start = time.perf_counter()
    result = convert(video, matter, options)
    seconds = time.perf_counter() - start
    return {"frames": result.frames, "seconds": seconds, "fps": result.frames / seconds,
            "peak_rss_mb": peak_rss_mb(), "pipeline": "vidmatte.pipeline.convert (composition on green, H.264)"}


def child_main(argv: list[str]) -> None:
    """Entry for one measurement in a child process: prints one JSON line."""
    mode, video, workdir = argv
    result = measure_model_only(Path(video)) if mode == "model" else measure_end_to_end(Path(video), Path(workdir))
    print(json.dumps(result))


def run_speed(source: Path, sizes: list[tuple[int, int]], frames: int, log=sys.stderr) -> list[dict]:
    """Measure every size both ways; returns one row per size with both results and their ratio."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="vidmatte-speed-") as tmp:
        workdir = Path(tmp)
        for width, height in sizes:
            video = workdir / f"src_{width}x{height}.mp4"
            make_source_video(source, (width, height), frames, video)
            row = {"size": f"{width}x{height}", "frames": frames}
            for mode in ("model", "e2e"):
                print(f"bench speed: {width}x{height} {mode} ...", file=log, flush=True)
                proc = subprocess.run([sys.executable, "-m", "vidmatte.data.speed", mode, str(video), str(workdir)],
                                      capture_output=True, text=True)
                if proc.returncode != 0:
                    raise RuntimeError(f"{mode} at {width}x{height} failed: {proc.stderr.strip().splitlines()[-1:]}")
                row[mode] = json.loads(proc.stdout.strip().splitlines()[-1])
            row["e2e_over_model_fps"] = row["e2e"]["fps"] / row["model"]["fps"]
            rows.append(row)
            print(f"bench speed: {width}x{height} model {row['model']['fps']:.2f} fps, end-to-end "
                  f"{row['e2e']['fps']:.2f} fps", file=log, flush=True)
    return rows


def format_speed(rows: list[dict]) -> str:
    lines = ["| size | model-only fps | end-to-end fps | e2e / model | model peak RSS MB | e2e peak RSS MB |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['size']} | {r['model']['fps']:.2f} | {r['e2e']['fps']:.2f} | "
                     f"{r['e2e_over_model_fps']:.2f} | {r['model']['peak_rss_mb']:.0f} | "
                     f"{r['e2e']['peak_rss_mb']:.0f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    child_main(sys.argv[1:])
