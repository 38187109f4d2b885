"""The GPU check (issue 24): one short script that says what a GPU gives, run on the machine that has it.

    python benchmarks/gpu_check.py [--device cuda] [--frames 48] [--json] [--out FILE]
    python benchmarks/gpu_check.py --device cpu --smoke        # tiny sizes: proves the script runs, anywhere

It installs nothing: run it in an environment with vidmatte and its 'gpu' extra (onnxruntime-gpu; a CUDA build of
PyTorch for the training rows), the RVM weights in the cache (--cache-dir, or $VIDMATTE_CACHE: a GPU machine may
have no network). It prints, one section each (and, with --json, one JSON object at the end):
  environment    onnxruntime and its providers, PyTorch and its CUDA, the card (nvidia-smi), the device chosen
  provider       the provider ONNX Runtime really placed the network on (session.get_providers()[0])
  parity         alpha on the device against the CPU path on a real 1080p clip at downsample 0.25, and the same
                 frames upscaled to 4K at 0.125 (max |difference|; the bar is 1/255), split graph and whole graph
  throughput     at 1080p and 4K, frames in memory: the bare network loop (bound I/O, the cut graph alone), the
                 fast path (that plus the fused tail and composition on the CPU), the whole official graph; file to
                 file: `vidmatte convert`'s pipeline to an H.264 .mp4 (x264 superfast), the same with no encoding
                 (a sink that drops the pictures: what decode + network + tail reach) and with the whole graph;
                 beside them decode alone, x264 encode alone and NVENC encode alone (when FFmpeg offers it)
  modes          guided (classical, its RVM prior on the device) and background (classical) fps at 1080p
  training       one training step per network family (configs/train/*smoke.yaml at the device, AMP as
                 train.amp=auto allows: float16 on CUDA), ms per step after a first step
Without a usable GPU (and --device other than cpu) it says so on one line and stops after the environment.
Real footage comes from ../shared/data when present (--clip to choose), else a clip generated from the demo photo.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from fractions import Fraction
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared/data"
REAL_CLIP = SHARED / "video_people/matanyone_test-sample0/test-sample0.mp4"
REAL_MASK = SHARED / "video_people/matanyone_test-sample0/masks/test-sample0_1.png"
PLATE_FOLDER = SHARED / "bgplate_real/background_matting_v1_sample"
FAMILIES = {"rvm": "smoke.yaml", "ftpvm": "ftpvm_smoke.yaml", "dvm": "dvm_smoke.yaml", "tgm": "tgm_smoke.yaml",
            "bgmv2": "bgmv2_smoke.yaml"}
REPORT: dict = {}


def say(section: str, text: str) -> None:
    print(f"[{section}] {text}", flush=True)


def record(section: str, key: str, value) -> None:
    REPORT.setdefault(section, {})[key] = value


def guarded(section: str):
    """Run one section; a failure is reported as one line and the next section runs."""
    def wrap(fn):
        def run(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except Exception as exc:  # a check that breaks says why, and the others still run
                say(section, f"FAILED: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
                record(section, "error", f"{type(exc).__name__}: {exc}")
                if os.environ.get("GPU_CHECK_TRACEBACK"):
                    traceback.print_exc()
        return run
    return wrap


def sync(device) -> None:
    """Wait for PyTorch's queued GPU work (timings of torch rows)."""
    if getattr(device, "kind", "cpu") == "cuda":
        import torch

        torch.cuda.synchronize()


# --- footage ----------------------------------------------------------------------------------------------------
def frames_of(path: Path, count: int) -> list[np.ndarray]:
    import av

    with av.open(str(path)) as container:
        container.streams.video[0].thread_type = "AUTO"
        return [f.to_ndarray(format="rgb24") for _, f in zip(range(count), container.decode(video=0))]


def write_clip(path: Path, frames: list[np.ndarray], fps: int = 24, codec: str = "libx264") -> Path:
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=Fraction(fps))
        stream.width, stream.height = frames[0].shape[1], frames[0].shape[0]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "12", "preset": "ultrafast"} if codec == "libx264" else {}
        for image in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode(None))
    return path


def resized(frames: list[np.ndarray], size: tuple[int, int]) -> list[np.ndarray]:
    import cv2

    if frames[0].shape[1::-1] == size:
        return frames
    return [cv2.resize(f, size, interpolation=cv2.INTER_CUBIC) for f in frames]


def footage(args, tmp: Path) -> tuple[list[np.ndarray], str]:
    """Decoded frames of the real 1080p clip (or a generated one), at the run's "1080p" size."""
    clip = Path(args.clip) if args.clip else REAL_CLIP
    if clip.exists():
        source = f"{clip} (real)"
        frames = frames_of(clip, args.frames)
    else:
        sys.path.insert(0, str(REPO / "benchmarks"))
        from speed_pipeline import synthesise_1080p

        source = "generated from the demo photo (no real clip found)"
        frames = frames_of(synthesise_1080p(tmp / "generated.mp4", args.frames), args.frames)
    return resized(frames, args.hd), source


# --- sections -----------------------------------------------------------------------------------------------------
def environment(args):
    import onnxruntime as ort

    from vidmatte.backends.device import cuda_devices

    record("environment", "onnxruntime", ort.__version__)
    record("environment", "providers", ort.get_available_providers())
    say("environment", f"onnxruntime {ort.__version__}, providers {', '.join(ort.get_available_providers())}")
    count, why = cuda_devices()
    record("environment", "cuda_devices", count)
    say("environment", f"CUDA devices the driver sees: {count}" + (f" ({why})" if why else ""))
    try:
        card = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=20).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        card = ""
    record("environment", "card", card or None)
    say("environment", f"card: {card or 'none (no nvidia-smi)'}")
    try:
        import torch

        record("environment", "torch", torch.__version__)
        say("environment", f"PyTorch {torch.__version__}, CUDA {torch.version.cuda}, "
                           f"available {torch.cuda.is_available()}")
    except ImportError:
        say("environment", "PyTorch: not installed (training and network rows skipped)")
    say("environment", f"cores {os.cpu_count()}")


def choose_device(args):
    from vidmatte.backends.device import resolve_ort
    from vidmatte.errors import UsageError

    try:
        device = resolve_ort(args.device)
    except UsageError as exc:
        say("device", f"NO GPU: {exc}")
        record("device", "error", str(exc))
        return None
    if device.kind == "cpu" and args.device != "cpu":
        from vidmatte.backends.device import ort_cuda_problem

        say("device", f"NO GPU: --device {args.device} picked the CPU ({ort_cuda_problem(0)}); nothing to measure "
                      "(run with --device cpu --smoke to check the script itself)")
        record("device", "error", "no GPU")
        return None
    say("device", f"running on {device.name}")
    record("device", "name", device.name)
    return device


@guarded("provider")
def provider(args, device):
    from vidmatte.backends import open_runner

    runner = open_runner(args.model, device=device, cache=args.cache_dir)
    used = runner.coarse_session.get_providers()
    record("provider", "providers", used)
    record("provider", "io_binding", runner.io_binding)
    say("provider", f"ONNX Runtime placed the network on {used[0]} (I/O binding {'on' if runner.io_binding else 'off'})")


def alphas(runner, frames, ratio) -> list[np.ndarray]:
    from vidmatte.matters.recurrent import RecurrentMatter

    matter = RecurrentMatter(runner, ratio, warmup=0)
    return [matter.step(f)[1] for f in frames]


@guarded("parity")
def parity(args, device, frames):
    from vidmatte.backends import open_runner

    count = min(len(frames), args.parity_frames)
    for label, size, ratio in (("1080p", args.hd, 0.25), ("4K", args.uhd, 0.125)):
        shots = resized(frames[:count], size)
        for backend in ("onnxruntime", "onnxruntime-whole"):
            cpu = alphas(open_runner(args.model, backend, device="cpu", cache=args.cache_dir), shots, ratio)
            dev = alphas(open_runner(args.model, backend, device=device, cache=args.cache_dir), shots, ratio)
            worst = max(float(np.abs(a - b).max()) for a, b in zip(cpu, dev))
            mean = statistics.fmean(float(np.abs(a - b).mean()) for a, b in zip(cpu, dev))
            ok = worst <= 1 / 255 + 1e-7
            record("parity", f"{label} {backend}", {"max": worst, "mean": mean, "ok": ok, "frames": count,
                                                    "ratio": ratio})
            say("parity", f"{label} ({size[0]}x{size[1]}, ratio {ratio}) {backend}: max |alpha - CPU| "
                          f"{worst * 255:.3f}/255, mean {mean * 255:.4f}/255 over {count} frames: "
                          f"{'OK' if ok else 'ABOVE 1/255'}")


def timed(fn, frames_count: int) -> float:
    started = time.perf_counter()
    fn()
    return frames_count / (time.perf_counter() - started)


@guarded("throughput")
def throughput(args, device, frames, tmp: Path):
    from vidmatte.backends import open_runner
    from vidmatte.matters.recurrent import frame_to_tensor
    from vidmatte.models import rvm_tail

    green = np.array([120, 255, 155], np.uint8).reshape(1, 1, 3)
    for label, size, ratio in (("1080p", args.hd, 0.25), ("4K", args.uhd, 0.125)):
        shots = resized(frames, size)
        n = len(shots)
        fast = open_runner(args.model, device=device, cache=args.cache_dir)
        whole = open_runner(args.model, "onnxruntime-whole", device=device, cache=args.cache_dir)
        smalls = [fast.shrink(f, ratio) for f in shots]

        def coarse_loop():
            state = fast.initial_state()
            for small in smalls:
                _, state = fast.coarse(small, state)

        def fast_loop():
            state = fast.initial_state()
            for image in shots:
                coefficients, state = fast.coarse(fast.shrink(image, ratio), state)
                rvm_tail.apply(image, coefficients, background=green, composition=True)

        def whole_loop():
            state = whole.initial_state()
            for image in shots:
                _, _, state = whole(frame_to_tensor(image), state, ratio)

        for loop in (coarse_loop, fast_loop, whole_loop):  # first runs allocate, pick kernels, compile numba
            loop()
        rows = {"bare-network": timed(coarse_loop, n), "bare-fast": timed(fast_loop, n),
                "bare-whole": timed(whole_loop, n)}
        clip = write_clip(tmp / f"in-{label}.mp4", shots)
        rows["decode"] = timed(lambda: frames_of(clip, n), n)
        rows["x264-encode"] = timed(lambda: write_clip(tmp / "x264.mp4", shots), n)
        nvenc = nvenc_fps(shots, tmp)
        if nvenc is not None:
            rows["nvenc-encode"] = nvenc
        rows["pipeline"] = convert_fps(args, device, clip, tmp / "p.mp4", "onnxruntime", ratio)
        rows["pipeline-no-encode"] = convert_fps(args, device, clip, None, "onnxruntime", ratio)
        rows["pipeline-whole"] = convert_fps(args, device, clip, tmp / "w.mp4", "onnxruntime-whole", ratio)
        stages = {"decode": rows["decode"], "x264 encode": rows["x264-encode"], "network": rows["bare-network"],
                  "network + CPU tail and composition": rows["bare-fast"]}
        slowest = min(stages, key=stages.get)
        record("throughput", f"{label} slowest stage", slowest)
        say("throughput", f"{label}: the slowest stage alone is {slowest} ({stages[slowest]:.1f} fps)")
        record("throughput", label, {k: round(v, 2) for k, v in rows.items()})
        for name, fps in rows.items():
            say("throughput", f"{label} {name:19s} {fps:8.1f} fps" + (
                f"  ({fps / rows['bare-network']:.2f}x the bare network loop)" if name.startswith("pipeline") else ""))


def nvenc_fps(frames, tmp: Path) -> float | None:
    import av

    if "h264_nvenc" not in av.codecs_available:
        record("throughput", "nvenc", "not offered by this FFmpeg")
        say("throughput", "NVENC: h264_nvenc is not offered by this FFmpeg (PyAV's build)")
        return None
    try:
        return timed(lambda: write_clip(tmp / "nvenc.mp4", frames, codec="h264_nvenc"), len(frames))
    except Exception as exc:  # offered but unusable (no driver support, no session left)
        record("throughput", "nvenc", f"unusable: {exc}")
        say("throughput", f"NVENC: offered but unusable ({str(exc).splitlines()[0]})")
        return None


def convert_fps(args, device, clip: Path, out: Path | None, backend: str, ratio: float) -> float:
    """`vidmatte convert` through its mode, file to file (or to a sink that drops the pictures: no encoding)."""
    from vidmatte.job import JobControl
    from vidmatte.modes import MODES
    from vidmatte.outputs import CallbackSink

    mode = MODES["convert"]
    outputs = {"composition": str(out)} if out is not None else {}
    settings = mode.settings(input=str(clip), outputs=outputs, overwrite=True, backend=backend, device=device.name,
                             downsample_ratio=ratio, warmup=0, cache_dir=args.cache_dir, model=args.model)
    sinks = () if out is not None else (CallbackSink(lambda index, pictures: pictures.composition,
                                                     kinds=("composition",)),)
    job, matter = mode.build(settings, JobControl(), sinks=sinks)
    result = job.run(matter)
    assert result.details["device"] == device.name, result.details
    return result.fps


@guarded("modes")
def modes(args, device, frames, tmp: Path):
    from vidmatte.job import JobControl
    from vidmatte.modes import MODES

    clip = write_clip(tmp / "modes.mp4", frames)
    import cv2

    mark = str(tmp / "mark.png")
    size = frames[0].shape[1::-1]
    if REAL_MASK.exists() and not args.clip and "real" in REPORT["footage"]["source"]:
        given = cv2.imread(str(REAL_MASK), cv2.IMREAD_GRAYSCALE)  # the clip's own first-frame mask (one person)
        mask = cv2.resize(given, size, interpolation=cv2.INTER_NEAREST) > 127
    else:  # another clip: RVM's own alpha of frame 0 on the CPU, or a box in the middle when it sees nobody
        from vidmatte.backends import open_runner

        mask = alphas(open_runner(args.model, device="cpu", cache=args.cache_dir), frames[:1], 0.25)[0] > 0.5
    if mask.mean() < 0.01:
        mask = np.zeros(size[::-1], bool)
        mask[size[1] // 4:3 * size[1] // 4, size[0] // 3:2 * size[0] // 3] = True
    cv2.imwrite(mark, np.where(mask, 255, 0).astype(np.uint8))
    guided = MODES["guided"]
    settings = guided.settings(input=str(clip), outputs={"alpha": str(tmp / "g.mp4")}, keyframe=[f"0:{mark}"],
                               overwrite=True, device=device.name, cache_dir=args.cache_dir, model=args.model)
    job, matter = guided.build(settings, JobControl())
    result = job.run(matter)
    record("modes", "guided", {"fps": round(result.fps, 3), "frames": result.frames, **result.details})
    say("modes", f"guided (classical) {frames[0].shape[1]}x{frames[0].shape[0]}: {result.fps:.2f} fps over "
                 f"{result.frames} frames (device {result.details.get('device')})")
    if not PLATE_FOLDER.exists():
        say("modes", "background: skipped (no plate footage under ../shared/data)")
        return
    import cv2

    shots = [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in sorted(PLATE_FOLDER.glob("*_img.png"))]
    plate = cv2.cvtColor(cv2.imread(str(PLATE_FOLDER / "0001_back.png")), cv2.COLOR_BGR2RGB)
    shots = resized((shots * (len(frames) // len(shots) + 1))[:len(frames)], frames[0].shape[1::-1])
    plate_path = tmp / "plate.png"
    cv2.imwrite(str(plate_path), cv2.cvtColor(resized([plate], frames[0].shape[1::-1])[0], cv2.COLOR_RGB2BGR))
    background = MODES["background"]
    settings = background.settings(input=str(write_clip(tmp / "plate-shots.mp4", shots)), plate=str(plate_path),
                                   outputs={"alpha": str(tmp / "b.mp4")}, overwrite=True, device=device.name,
                                   cache_dir=args.cache_dir, model=args.model)
    job, matter = background.build(settings, JobControl())
    result = job.run(matter)
    record("modes", "background", {"fps": round(result.fps, 3), "frames": result.frames,
                                   "device": result.details.get("device")})
    say("modes", f"background (classical) {shots[0].shape[1]}x{shots[0].shape[0]}: {result.fps:.2f} fps over "
                 f"{result.frames} frames (device {result.details.get('device')})")


@guarded("training")
def training(args, tmp: Path):
    try:
        import torch  # noqa: F401
    except ImportError:
        say("training", "skipped: PyTorch is not installed")
        return
    from vidmatte.backends.device import resolve_torch
    from vidmatte.train.config import load_config
    from vidmatte.train.loop import Trainer

    device = resolve_torch(args.device)
    steps = args.train_steps
    for family, name in FAMILIES.items():
        try:
            overrides = [f"train.device={device.name}", f"train.steps={steps + 1}", f"output_dir={tmp / family}",
                         "train.tensorboard=false", "train.log_every=1000", *args.train_override]
            trainer = Trainer(load_config(str(REPO / "configs/train" / name), overrides), log=open(os.devnull, "w"),
                              cache=args.cache_dir)
            trainer.run(1)  # the first step allocates and picks kernels
            sync(device)
            started = time.perf_counter()
            trainer.run(steps + 1)
            sync(device)
            ms = (time.perf_counter() - started) / steps * 1000
            amp = str(trainer.amp_dtype).replace("torch.", "") if trainer.amp_dtype is not None else "off"
            tcfg = trainer.config["train"]
            record("training", family, {"ms_per_step": round(ms, 1), "amp": amp, "device": device.name,
                                        "batch": tcfg["batch_size"], "seq": tcfg["seq_length"], "size": tcfg["size"]})
            say("training", f"{family:6s} {ms:8.1f} ms/step on {device.name} (amp {amp}; batch {tcfg['batch_size']} "
                            f"x {tcfg['seq_length']} frames at {tcfg['size'][1]}x{tcfg['size'][0]})")
        except Exception as exc:  # one family failing does not hide the others
            record("training", family, {"error": f"{type(exc).__name__}: {exc}"})
            say("training", f"{family}: FAILED: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", help="cuda, cuda:N, auto, or cpu (with --smoke: a dry run)")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes and counts: checks the script runs")
    parser.add_argument("--frames", type=int, default=48, help="frames per throughput row (default 48)")
    parser.add_argument("--clip", help="a 1080p clip (default: ../shared/data's, else a generated one)")
    parser.add_argument("--model", default="rvm-mobilenetv3")
    parser.add_argument("--cache-dir", default=None, help="the weights' folder (a GPU machine may be offline)")
    parser.add_argument("--train-steps", type=int, default=5, help="timed training steps per family")
    parser.add_argument("--train-override", action="append", default=[], metavar="KEY=VALUE",
                        help="a config override for every family's training row (e.g. train.size=[256,256])")
    parser.add_argument("--skip", action="append", default=[],
                        choices=["parity", "throughput", "modes", "training"], help="leave a section out")
    parser.add_argument("--json", action="store_true", help="print the report as one JSON line at the end")
    parser.add_argument("--out", help="also write the report (JSON) to this file")
    args = parser.parse_args()
    args.hd, args.uhd, args.parity_frames = (1920, 1080), (3840, 2160), 8
    if args.smoke:  # the same code, small enough for a CPU in a minute
        args.hd, args.uhd, args.parity_frames = (192, 108), (384, 216), 2
        args.frames, args.train_steps = min(args.frames, 3), 1
    if args.cache_dir:
        os.environ["VIDMATTE_CACHE"] = args.cache_dir
    REPORT["args"] = {"device": args.device, "smoke": args.smoke, "frames": args.frames}
    started = time.perf_counter()
    environment(args)
    device = choose_device(args)
    if device is not None:
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            frames, source = footage(args, tmp)
            record("footage", "source", source)
            say("footage", f"{source}: {len(frames)} frames at {frames[0].shape[1]}x{frames[0].shape[0]}")
            provider(args, device)
            if "parity" not in args.skip:
                parity(args, device, frames)
            if "throughput" not in args.skip:
                throughput(args, device, frames, tmp)
            if "modes" not in args.skip:
                modes(args, device, frames, tmp)
            if "training" not in args.skip:
                training(args, tmp)
    REPORT["seconds"] = round(time.perf_counter() - started, 1)
    say("done", f"{REPORT['seconds']} s")
    if args.out:
        Path(args.out).write_text(json.dumps(REPORT, indent=1))
    if args.json:
        print(json.dumps(REPORT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
