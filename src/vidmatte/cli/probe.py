"""``vidmatte probe INPUT``: what the reader sees."""

from __future__ import annotations

import argparse
import json

DESCRIPTION = "Print what the reader sees in an input: size, fps, frames, rotation, audio, pixel format, alpha."


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", help="video file, folder of images, image, or a live source (webcam, /dev/videoN)")
    p.add_argument("--input-format", metavar="FMT", help="FFmpeg input format of a live source (v4l2, lavfi...)")
    p.add_argument("--input-option", metavar="KEY=VALUE", action="append", default=[],
                   help="an option of the live source, repeatable (video_size=1280x720, framerate=30...)")
    p.add_argument("--json", action="store_true", help="one JSON line")


def run(args: argparse.Namespace) -> int:
    from ..io.probe import probe
    from ..modes.base import parse_input_options

    info = probe(args.input, input_format=args.input_format,
                 input_options=parse_input_options(args.input_option)).to_dict()
    if args.json:
        print(json.dumps(info))
    else:
        width = max(len(k) for k in info)
        for key, value in info.items():
            print(f"{key:{width}s}  {value if value is not None else '-'}")
    return 0
