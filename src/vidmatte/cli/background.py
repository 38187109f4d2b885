"""``vidmatte background INPUT --plate PLATE [outputs] [options]``: matte whatever differs from a clean plate."""

from __future__ import annotations

import argparse

from ..modes.background import CHECKPOINT_HELP, METHOD_HELP, METHODS
from . import convert as convert_cli

DESCRIPTION = ("Matte anything that differs from a clean plate of the scene (a person, the chair they carry, a "
               "dog): film the empty scene for a second, then the shot. PLATE is an image or a short video of the "
               "empty scene (its temporal median), at the video's size. Hand-held footage: the plate is aligned "
               "to every frame (features, homography, a gain/bias correction when it pays; its pixels where it has "
               "too little texture for features); --no-align for a "
               "locked-off camera. RVM's foreground and alpha help where the subject is a person. Outputs as in "
               "`vidmatte convert`.")


def add_arguments(p: argparse.ArgumentParser) -> None:
    convert_cli.add_input_arguments(p)
    plate = p.add_argument_group("plate")
    plate.add_argument("--plate", required=True, metavar="PLATE",
                       help="the empty scene: an image, a short video of it on a still camera (temporal median); "
                            "green, blue or #RRGGBB: a green or blue screen, each frame's plate made from the screen "
                            "itself (its uneven light, creases and shadows); or auto: a screen when the frame's "
                            "border is mostly one saturated colour, else estimated from the footage (a static camera "
                            "and a subject that moves on; refused when too much of the frame is never seen empty)")
    plate.add_argument("--plate-out", metavar="FILE", help="write the plate used (e.g. the auto estimate) as an image")
    add_plate_options(plate)
    plate.add_argument("--method", choices=METHODS, default="classical", help=METHOD_HELP)
    plate.add_argument("--checkpoint", metavar="PATH", help=CHECKPOINT_HELP)
    plate.add_argument("--model", default="rvm-mobilenetv3",
                       help="the RVM weights of the person prior (name or .onnx); without them every region is "
                            "solved as an object")
    plate.add_argument("--cache-dir", help="weights folder (default: $VIDMATTE_CACHE or ~/.cache/vidmatte)")
    convert_cli.add_device_argument(plate)
    convert_cli.add_output_arguments(p)
    convert_cli.add_range_arguments(p)
    convert_cli.add_report_arguments(p)


def add_plate_options(plate) -> None:
    """How the plate is used (here and in ``vidmatte batch --mode background``, whose items name their plate)."""
    plate.add_argument("--no-align", dest="align", action="store_false",
                       help="use the plate as it is (a locked-off camera): no feature alignment or colour correction")


def run(args: argparse.Namespace) -> int:
    return convert_cli.run_mode("background", args)
