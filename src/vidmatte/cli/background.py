"""``vidmatte background INPUT --plate PLATE [outputs] [options]``: matte whatever differs from a clean plate."""

from __future__ import annotations

import argparse
import sys

from . import convert as convert_cli

PLATE_METHODS = ("classical", "neural")  # --method here, and of `vidmatte batch --mode background`

DESCRIPTION = ("Matte anything that differs from a clean plate of the scene (a person, the chair they carry, a "
               "dog): film the empty scene for a second, then the shot. PLATE is an image or a short video of the "
               "empty scene (its temporal median), at the video's size. Hand-held footage: the plate is aligned "
               "to every frame (features, homography, a gain/bias correction when it pays); --no-align for a "
               "locked-off camera. RVM's foreground and alpha help where the subject is a person. Outputs as in "
               "`vidmatte convert`.")


def add_arguments(p: argparse.ArgumentParser) -> None:
    convert_cli.add_input_arguments(p)
    plate = p.add_argument_group("plate")
    plate.add_argument("--plate", required=True, metavar="PLATE",
                       help="the empty scene: an image, a short video of it on a still camera (temporal median), or "
                            "auto: estimated from the footage (a static camera and a subject that moves on; refused "
                            "when too much of the frame is never seen empty)")
    plate.add_argument("--plate-out", metavar="FILE", help="write the plate used (e.g. the auto estimate) as an image")
    add_plate_options(plate)
    plate.add_argument("--method", choices=PLATE_METHODS, default="classical", help=METHOD_HELP)
    plate.add_argument("--checkpoint", metavar="PATH", help=CHECKPOINT_HELP)
    plate.add_argument("--model", default="rvm-mobilenetv3",
                       help="the RVM weights of the person prior (name or .onnx); without them every region is "
                            "solved as an object")
    plate.add_argument("--cache-dir", help="weights folder (default: $VIDMATTE_CACHE or ~/.cache/vidmatte)")
    convert_cli.add_output_arguments(p)
    convert_cli.add_range_arguments(p)
    convert_cli.add_report_arguments(p)


METHOD_HELP = ("classical: the compositing equation with the plate, solved with the matting Laplacian (no trained "
               "weights beyond RVM's person prior); neural: BackgroundMattingV2 (with ConvLSTMs when the checkpoint "
               "has them) on frame and aligned plate, needs --checkpoint")
CHECKPOINT_HELP = ("weights of the neural method: an official BackgroundMattingV2 .pth state dict or a `vidmatte "
                   "train` checkpoint (model.kind bgmv2); none are bundled")


def add_plate_options(plate) -> None:
    """How the plate is used (here and in ``vidmatte batch --mode background``, whose items name their plate)."""
    plate.add_argument("--no-align", dest="align", action="store_false",
                       help="use the plate as it is (a locked-off camera): no feature alignment or colour correction")


def run(args: argparse.Namespace) -> int:
    from ..io.probe import live_source
    from ..job import JobControl
    from ..progress import ProgressBar

    bar = ProgressBar(enabled=not args.quiet)
    control = JobControl(on_progress=bar.update)
    job, matter = build_job(args, control)
    live = live_source(args.input, args.input_format) is not None
    return convert_cli.run_job(job, matter, control, bar, args, live)


def build_job(args: argparse.Namespace, control, runners=None):
    """The checked job and its matter (this command, and each item of ``vidmatte batch --mode background``);
    ``runners`` opens RVM's weights as ``backends.open_runner`` does."""
    from ..errors import UsageError
    from ..matters.plate import plate_matter
    from ..pipeline import Job, warn

    method, checkpoint = args.method, args.checkpoint  # a batch item's: its own or the batch's --method
    if checkpoint and method != "neural":
        raise UsageError("--checkpoint is for --method neural")
    if not args.plate:
        raise UsageError("background mode needs a plate: --plate, or a plate column in the batch manifest")
    job = Job(args.input, convert_cli.build_options(args), control)
    matter = plate_matter(job, args.plate, method=method, checkpoint=checkpoint, align=args.align, model=args.model,
                          cache=args.cache_dir, plate_out=getattr(args, "plate_out", None), overwrite=args.overwrite,
                          warn=warn, notify=None if args.quiet else _say, runners=runners)
    return job, matter


def _say(message: str) -> None:
    print(f"vidmatte: {message}", file=sys.stderr)
