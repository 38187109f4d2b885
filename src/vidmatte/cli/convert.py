"""``vidmatte convert INPUT [outputs] [options]``: matte a video, image folder or image with a pretrained model."""

from __future__ import annotations

import argparse
import json
import math
import sys

# Kept in step with vidmatte.matters.recurrent.DEFAULT_WARMUP (not imported: `--help` must not load numpy).
DEFAULT_WARMUP = 8

DESCRIPTION = ("Matte a video (anything FFmpeg decodes), a live source (webcam, webcam:N, /dev/videoN, or any "
               "FFmpeg device with --input-format; Ctrl-C stops it and finishes the outputs), a folder of images or "
               "one image. Outputs: a path ending "
               "in '/' (or an existing folder) is a PNG sequence; otherwise the extension picks the container: "
               ".mp4 (H.264), .mov (ProRes 4444 with alpha), .webm (VP9, alpha for --rgba), .mkv.")


class _Once(argparse.Action):
    """A path option given twice is refused: argparse would silently keep the last one."""

    def __call__(self, parser, namespace, values, option_string=None):
        if getattr(namespace, self.dest) is not None:
            parser.error(f"{option_string} given twice")
        setattr(namespace, self.dest, values)


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_input_arguments(p)
    add_output_arguments(p)
    add_model_arguments(p)
    add_range_arguments(p)
    add_report_arguments(p)


def add_input_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("input",
                   help="video file, folder or glob pattern of images ('shots/*.png'), image, or a live source "
                        "(webcam, webcam:N, /dev/videoN)")
    p.add_argument("--input-format", metavar="FMT",
                   help="FFmpeg input format for a live source, as ffmpeg's -f: v4l2, avfoundation, dshow, lavfi...")
    p.add_argument("--input-option", metavar="KEY=VALUE", action="append", default=[],
                   help="an option of the live source, repeatable: video_size=1280x720, framerate=30, "
                        "input_format=mjpeg (v4l2)")


def add_output_arguments(p: argparse.ArgumentParser):
    """The outputs every mode writes, as ``convert`` reads them (other modes add their own kinds beside)."""
    out = p.add_argument_group("outputs (at least one)")
    out.add_argument("--composition", metavar="PATH", action=_Once, help="foreground composited over --background")
    out.add_argument("--alpha", metavar="PATH", action=_Once,
                     help="alpha matte (8-bit gray; 16-bit PNG with --bit-depth 16)")
    out.add_argument("--foreground", metavar="PATH", action=_Once, help="predicted foreground colour")
    out.add_argument("--rgba", metavar="PATH", action=_Once,
                     help="foreground with alpha (.mov, .webm, .mkv or folder/)")
    add_picture_arguments(out)
    return out


def add_picture_arguments(group) -> None:
    """How the outputs look, whatever their paths (``vidmatte batch`` names the paths itself)."""
    group.add_argument("--bit-depth", type=int, choices=[8, 16], default=8, help="PNG alpha bit depth")
    group.add_argument("--background", default="green",
                       help="composition background: green|black|white|#RRGGBB|IMAGE|VIDEO (scaled to cover)")


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    model = p.add_argument_group("model")
    model.add_argument("--model", default="rvm-mobilenetv3", help="registered model name or path to an .onnx file")
    model.add_argument("--backend", default="onnxruntime", choices=["onnxruntime", "onnxruntime-whole", "torch"],
                       help="onnxruntime: the RVM graph up to its guided filter, whose full-resolution step runs "
                            "fused with compositing (fastest); onnxruntime-whole: the official graph end to end "
                            "(same results within float rounding); torch: PyTorch")
    model.add_argument("--device", default="auto", help="torch backend: auto|cpu|cuda|mps")
    model.add_argument("--downsample-ratio", default="auto",
                       help="auto (min(512 / max(h, w), 1), RVM's rule) or a number in (0, 1]")
    model.add_argument("--seq-chunk", type=int, default=1,
                       help="frames per network call (torch backend; ONNX goes frame by frame)")
    model.add_argument("--warmup", type=int, default=DEFAULT_WARMUP, metavar="N",
                       help=f"warm the recurrent state on N frames before writing frame 0 (default {DEFAULT_WARMUP}; "
                            "files and folders only, a live source starts cold; 0: off)")
    model.add_argument("--threads", type=int, default=None, help="inference threads (default: all cores)")
    model.add_argument("--cache-dir", help="weights folder (default: $VIDMATTE_CACHE or ~/.cache/vidmatte)")


def add_range_arguments(p: argparse.ArgumentParser) -> None:
    rng = p.add_argument_group("range and encoding")
    rng.add_argument("--start-frame", type=int, default=0, help="first frame to process (0-based)")
    rng.add_argument("--end-frame", type=int, default=None, help="stop before this frame (exclusive)")
    rng.add_argument("--fps", type=float, default=None,
                     help="frame rate of an image-folder input (default 30); a video keeps its own timestamps")
    rng.add_argument("--input-resize", metavar="WxH", help="resize frames before matting, e.g. 1280x720")
    rng.add_argument("--crf", type=int, default=None, help="quality for H.264 (default 18) and VP9 (default 30)")
    rng.add_argument("--bitrate", default=None, help="target bitrate instead of CRF, e.g. 8M")
    rng.add_argument("--preset", default="superfast",
                     help="x264 preset (ultrafast..veryslow, placebo); fast presets keep encoding off the "
                          "critical path")
    rng.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    rng.add_argument("--allow-partial", action="store_true",
                     help="a truncated/corrupt input is not an error: keep what decodes and exit 0")


def add_report_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print one JSON line with the result on stdout")


def parse_ratio(text: str) -> float | None:
    from ..errors import UsageError

    if text == "auto":
        return None
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"--downsample-ratio must be 'auto' or a number, not {text!r}") from None
    if not 0 < value <= 1:
        raise UsageError(f"--downsample-ratio must be in (0, 1], not {value}")
    return value


def parse_size(text: str | None, flag: str = "--input-resize") -> tuple[int, int] | None:
    from ..errors import UsageError

    if not text:
        return None
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise UsageError(f"{flag} must look like 1280x720, not {text!r}") from None
    if w <= 0 or h <= 0:
        raise UsageError(f"{flag} must be positive, not {text!r}")
    return w, h


def parse_input_options(pairs: list[str]) -> dict | None:
    from ..errors import UsageError

    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--input-option must look like KEY=VALUE, not {pair!r}")
        options[key] = value
    return options or None


OUTPUT_KINDS = ("composition", "alpha", "foreground", "rgba")


def build_options(args: argparse.Namespace, kinds: tuple[str, ...] = OUTPUT_KINDS):
    from ..errors import UsageError
    from ..io.backgrounds import check_background
    from ..io.writers import check_bit_depth, check_encoding, parse_output
    from ..pipeline import ConvertOptions

    outputs = [parse_output(kind, getattr(args, kind), args.bit_depth) for kind in kinds if getattr(args, kind)]
    if not outputs:
        named = ", ".join(f"--{kind}" for kind in kinds)
        raise UsageError(f"no output requested; give at least one of {named}")
    check_range(args.start_frame, args.end_frame)
    check_bit_depth(outputs)
    crf_warning = check_encoding(outputs, args.crf, args.preset)
    if args.composition:
        check_background(args.background)
    fps_warning = check_fps(args.fps, args.input, args.input_format)
    _warn(crf_warning, fps_warning)
    return ConvertOptions(outputs=outputs, background=args.background, start_frame=args.start_frame,
                          end_frame=args.end_frame, input_resize=parse_size(args.input_resize),
                          sequence_fps=args.fps, input_format=args.input_format,
                          input_options=parse_input_options(args.input_option), crf=args.crf,
                          bitrate=args.bitrate, preset=args.preset,
                          overwrite=args.overwrite, allow_partial=args.allow_partial, progress=not args.quiet)


def check_model_options(args: argparse.Namespace) -> None:
    from ..errors import UsageError

    if args.seq_chunk < 1 or (args.threads is not None and args.threads < 1):
        raise UsageError("--seq-chunk and --threads must be at least 1")
    if args.warmup < 0:
        raise UsageError(f"--warmup must be 0 (off) or a number of frames, not {args.warmup}")


def check_range(start: int, end: int | None) -> None:
    from ..errors import UsageError

    if start < 0:
        raise UsageError(f"--start-frame must be 0 or more, not {start}")
    if end is not None and end <= start:
        raise UsageError(f"--end-frame ({end}) must be greater than --start-frame ({start})")


def check_fps(fps: float | None, source: str, input_format: str | None) -> str | None:
    """Refuse a frame rate that is not positive; a warning when the input is a video, which has its own."""
    from pathlib import Path

    from ..errors import UsageError
    from ..io.probe import IMAGE_EXTENSIONS, live_source

    if fps is None:
        return None
    if not math.isfinite(fps) or fps <= 0:
        raise UsageError(f"--fps must be a positive number, not {fps:g}")
    path = Path(source)
    is_video = live_source(source, input_format) is not None or (path.is_file()
                                                                  and path.suffix.lower() not in IMAGE_EXTENSIONS)
    return "--fps is ignored: it sets the frame rate of image inputs; a video keeps its own" if is_video else None


def _warn(*messages: str | None) -> None:
    from ..pipeline import warn

    for message in messages:
        if message:
            warn(message)


def run(args: argparse.Namespace) -> int:
    from ..io.probe import live_source
    from ..job import JobControl
    from ..progress import ProgressBar

    bar = ProgressBar(enabled=not args.quiet)
    control = JobControl(on_progress=bar.update)
    job, matter = build_job(args, control)
    live = live_source(args.input, args.input_format) is not None
    return run_job(job, matter, control, bar, args, live)


def build_job(args: argparse.Namespace, control, runners=None):
    """The checked job and its matter for ``args.input`` (this command, and each item of ``vidmatte batch``).

    ``runners`` opens weights as ``backends.open_runner`` does; a batch worker passes one that keeps them loaded.
    """
    from ..matters import RecurrentMatter
    from ..pipeline import Job

    if runners is None:
        from ..backends import open_runner as runners
    options = build_options(args)
    check_model_options(args)
    ratio = parse_ratio(args.downsample_ratio)
    job = Job(args.input, options, control)  # the input and every output checked before the model loads
    runner = runners(args.model, args.backend, threads=args.threads, device=args.device, cache=args.cache_dir)
    return job, RecurrentMatter(runner, ratio, seq_chunk=args.seq_chunk, warmup=args.warmup)


def run_job(job, matter, control, bar, args: argparse.Namespace, live: bool = False) -> int:
    """Run a checked job under Ctrl-C/SIGTERM handling and report it as every mode's command does."""
    from ..pipeline import warn
    from .signals import signals_control

    try:
        with signals_control(control, live):
            result = job.run(matter)
    finally:
        bar.close()
    if result.warning:
        warn(result.warning)
    if args.json:
        print(json.dumps(result.to_json()))
    elif not args.quiet:
        print(f"vidmatte: {result.frames} frames in {result.seconds:.1f} s ({result.fps:.1f} fps) -> "
              + ", ".join(result.outputs.values()), file=sys.stderr)
    return 0
