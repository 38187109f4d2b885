"""``vidmatte convert INPUT [outputs] [options]``: matte a video, image folder or image with a pretrained model."""

from __future__ import annotations

import argparse
import json
import sys

from ..modes.base import FOREGROUND_HELP, FOREGROUND_METHODS, IMAGE_FORMATS
from ..modes.convert import BACKENDS, DEFAULT_WARMUP

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
                     help="alpha matte (8-bit gray; 16-bit PNG/TIFF with --bit-depth 16; half or float EXR)")
    out.add_argument("--foreground", metavar="PATH", action=_Once, help="predicted foreground colour")
    out.add_argument("--rgba", metavar="PATH", action=_Once,
                     help="foreground with alpha (.mov, .webm, .mkv or folder/; straight unless --premultiplied)")
    add_picture_arguments(out)
    return out


def add_picture_arguments(group) -> None:
    """How the outputs look, whatever their paths (``vidmatte batch`` names the paths itself)."""
    group.add_argument("--image-format", choices=IMAGE_FORMATS, default="png",
                       help="format of folder/ outputs' frames: png (default), tiff, or exr (OpenEXR, linear "
                            "colour; needs the 'exr' extra)")
    group.add_argument("--bit-depth", type=int, choices=[8, 16, 32], default=None,
                       help="PNG/TIFF alpha, foreground and RGBA: 8 (default) or 16; EXR: 16 (half, default) or 32 "
                            "(float)")
    group.add_argument("--premultiplied", action="store_true",
                       help="RGBA outputs store colour times alpha (straight by default); every file says which")
    group.add_argument("--background", default="green",
                       help="composition background: green|black|white|#RRGGBB|IMAGE|VIDEO (scaled to cover)")
    group.add_argument("--foreground-method", choices=FOREGROUND_METHODS, default="auto", help=FOREGROUND_HELP)


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    model = p.add_argument_group("model")
    model.add_argument("--model", default="rvm-mobilenetv3", help="registered model name or path to an .onnx file")
    model.add_argument("--backend", default="onnxruntime", choices=BACKENDS,
                       help="onnxruntime: the RVM graph up to its guided filter, whose full-resolution step runs "
                            "fused with compositing (fastest); onnxruntime-whole: the official graph end to end "
                            "(same results within float rounding); torch: PyTorch")
    add_device_argument(model)
    model.add_argument("--downsample-ratio", default="auto",
                       help="auto (min(512 / max(h, w), 1), RVM's rule) or a number in (0, 1]")
    model.add_argument("--seq-chunk", type=int, default=1,
                       help="frames per network call (torch backend; ONNX goes frame by frame)")
    model.add_argument("--warmup", type=int, default=DEFAULT_WARMUP, metavar="N",
                       help=f"warm the recurrent state on N frames before writing frame 0 (default {DEFAULT_WARMUP}; "
                            "files and folders only, a live source starts cold; 0: off)")
    model.add_argument("--threads", type=int, default=None, help="inference threads (default: all cores)")
    model.add_argument("--cache-dir", help="weights folder (default: $VIDMATTE_CACHE or ~/.cache/vidmatte)")


def add_device_argument(group) -> None:
    """``--device``, the same on every mode's command (backends/device.py decides and reports it)."""
    group.add_argument("--device", default="auto", metavar="DEVICE",
                       help="where the networks run: auto (the GPU when ONNX Runtime's CUDA provider loads and a "
                            "device is present, else the CPU), cpu, cuda, cuda:N (an error naming what is missing "
                            "when it cannot be used; needs the 'gpu' extra), mps (--backend torch only)")


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


def run(args: argparse.Namespace) -> int:
    return run_mode("convert", args)


def run_mode(name: str, args: argparse.Namespace) -> int:
    """Run one mode's command: its arguments become the mode's settings, the job runs under Ctrl-C/SIGTERM
    handling with a progress bar, and its warnings, notes and result are printed as every mode's command does."""
    from ..io.probe import live_source
    from ..job import JobControl
    from ..modes import MODES
    from ..progress import ProgressBar
    from .signals import signals_control

    mode = MODES[name]
    bar = ProgressBar(enabled=not args.quiet)
    control = JobControl(on_progress=bar.update, on_warning=warn, on_note=(lambda _: None) if args.quiet else say)
    try:
        job, matter = mode.build(mode.settings_from(vars(args)), control)
        with signals_control(control, live_source(args.input, args.input_format) is not None):
            result = job.run(matter)
    finally:
        bar.close()
    if result.warning:
        warn(result.warning)
    if args.json:
        print(json.dumps(result.to_json()))
    elif not args.quiet:
        print(f"vidmatte: {result.frames} frames in {result.seconds:.1f} s ({result.fps:.1f} fps) -> "
              + ", ".join(path for value in result.outputs.values()
                          for path in (value.values() if isinstance(value, dict) else [value])), file=sys.stderr)
    return 0


def warn(message: str) -> None:
    print(f"vidmatte: warning: {message}", file=sys.stderr)


def say(message: str) -> None:
    print(f"vidmatte: {message}", file=sys.stderr)
