"""``vidmatte train --config FILE [key=value ...]``: the RVM training recipe, one stage per config file."""

from __future__ import annotations

import argparse

DESCRIPTION = (
    "Train or fine-tune RVM. A config file (YAML/JSON, see configs/train/) describes the data, model start point "
    "(converted pretrained weights, scratch, or a checkpoint) and schedule; `key.sub=value` arguments override it, "
    "e.g. `train.steps=100 train.device=cpu`. Set train.resume=PATH to continue from a checkpoint exactly."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, help="training config (.yaml or .json)")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides, e.g. train.steps=100")
    p.add_argument("--device", default=None, metavar="DEVICE",
                   help="auto (default: the GPU when PyTorch can use one, with float16 autocast as train.amp=auto "
                        "allows), cpu, cuda, cuda:N, mps; the same as train.device=DEVICE")
    p.add_argument("--print-config", action="store_true", help="print the merged config and exit")


def run(args: argparse.Namespace) -> int:
    import json
    import os

    from ..errors import InputError, UsageError

    if not os.path.exists(args.config):
        raise UsageError(f"config file not found: {args.config}")
    from ..extras import require

    require("train", "training")
    from ..train.config import ConfigError, load_config

    if args.device is not None:
        from ..modes.base import check_device

        check_device(args.device)
        args.overrides = [*args.overrides, f"train.device={args.device}"]
    try:
        config = load_config(args.config, args.overrides)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    if args.print_config:
        print(json.dumps(config, indent=2))
        return 0
    from ..train.loop import train_from_config

    try:
        train_from_config(args.config, args.overrides)
    except (ValueError, FileNotFoundError) as exc:  # bad data layout, missing checkpoint, variant mismatch...
        raise InputError(str(exc).splitlines()[0]) from None
    return 0
