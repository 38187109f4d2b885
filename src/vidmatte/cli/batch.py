"""``vidmatte batch (INPUTS... | --manifest FILE) --output-dir DIR [--outputs NAMES] [--mode M] [options]``: many
videos, or one long one, over a local process pool or a Ray cluster (docs/BATCH.md)."""

from __future__ import annotations

import argparse
import json
import sys

from ..modes import MODES
from ..modes import background as background_mode
from ..modes import guided as guided_mode
from . import background as background_cli
from . import convert as convert_cli
from . import guided as guided_cli

DEFAULT_OUTPUTS = "composition.mp4,alpha/"
METHOD_CHOICES = tuple(dict.fromkeys(method for mode in MODES.values() for method in mode.methods))
DESCRIPTION = ("Matte many videos: each input (files, folders of videos, glob patterns, or the lines of a CSV or "
               "JSON Lines --manifest) gets a folder DIR/<item>/ holding --outputs. Finished items are recorded and "
               "skipped by a re-run (--force redoes them), an interrupted batch resumes, a failing item fails alone. "
               "Runs on a local process pool, or on Ray (--ray starts a local Ray, --ray ADDRESS joins a cluster); "
               "--chunk-frames spreads one long video over the workers.")
# The batch's own options; everything else on its command line is an option of the mode, handed to each item.
BATCH_DESTS = {"inputs", "manifest", "output_dir", "outputs", "mode", "workers", "ray", "chunk_frames", "lead_in",
               "force", "json", "quiet", "debug", "command", "_module"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="*", metavar="INPUTS",
                   help="videos, folders of videos, or glob patterns ('shots/*.mov'); or give --manifest")
    p.add_argument("--manifest", metavar="FILE",
                   help="a CSV (header row) or JSON Lines file: one item a line, columns input, and optionally item "
                        "(its folder name), mode, keyframes, keyframe (INDEX:PATH;...), plate, and any option of "
                        "the mode as an override (method, checkpoint, start_frame, downsample_ratio, background...)")
    p.add_argument("--output-dir", required=True, metavar="DIR", help="each item's outputs go to DIR/<item>/")
    p.add_argument("--outputs", default=DEFAULT_OUTPUTS, metavar="NAMES",
                   help="what each item gets, comma-separated names in DIR/<item>/: the stem is the kind "
                        "(composition, alpha, foreground, rgba; guided: trimap), the extension or a trailing '/' "
                        f"the format, as the mode's command reads a path (default {DEFAULT_OUTPUTS})")
    p.add_argument("--mode", choices=list(MODES), default="convert",
                   help="convert (RVM), guided (keyframes from the manifest), background (a plate from the manifest)")
    scale = p.add_argument_group("scale-out")
    scale.add_argument("--workers", type=int, default=None, metavar="N",
                       help="workers (default: what the machine can feed, one per 2 CPUs; with --ray, the "
                            "cluster's CPUs / 2)")
    scale.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                       help="run on Ray: alone, start a local Ray; with ADDRESS (ray://host:10001 or auto), join "
                            "an existing cluster. Needs the 'ray' extra on every node")
    scale.add_argument("--chunk-frames", type=int, default=None, metavar="N",
                       help="split videos longer than N frames into chunks of N run by different workers, each "
                            "warmed on the frames before it, then stitched (convert mode)")
    scale.add_argument("--lead-in", type=int, default=None, metavar="W",
                       help="frames each chunk warms RVM's state on before it starts (default: measured, "
                            "docs/BATCH.md)")
    scale.add_argument("--force", action="store_true", help="redo items a previous run finished")
    options = p.add_argument_group("options of the mode, for every item (a manifest column overrides one)")
    convert_cli.add_picture_arguments(options)
    convert_cli.add_model_arguments(p)
    add_method_arguments(p.add_argument_group("method (the mode's own: a manifest's method and checkpoint columns "
                                              "set an item's)"))
    guided_cli.add_guidance_options(p.add_argument_group("guided mode"))
    background_cli.add_plate_options(p.add_argument_group("background mode (each item's plate: the manifest's "
                                                          "plate column)"))
    convert_cli.add_range_arguments(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar and no summary table")
    p.add_argument("--json", action="store_true",
                   help='print one JSON line at the end: {"items", "done", "skipped", "failed", "seconds", '
                        '"failures"}')


def add_method_arguments(group) -> None:
    """--method names the mode's method (each mode's methods in vidmatte.modes.MODES); unset, each mode runs its
    default. A method the mode does not have is refused before anything runs."""
    group.add_argument("--method", choices=METHOD_CHOICES, default=None,
                       help="guided: " + guided_mode.METHOD_HELP + ". background: " + background_mode.METHOD_HELP
                            + ". convert has none. No trained weights for these networks ship with vidmatte")
    group.add_argument("--checkpoint", metavar="PATH",
                       help="the weights of a network method: guided " + guided_mode.CHECKPOINT_HELP
                            + "; background " + background_mode.CHECKPOINT_HELP)


def run(args: argparse.Namespace) -> int:
    from ..batch import BatchRequest, run_batch

    request = BatchRequest(args.output_dir, args.inputs, args.manifest, args.outputs, args.mode, args.workers,
                           args.ray, args.chunk_frames, args.lead_in, args.force, args.quiet,
                           options={k: v for k, v in vars(args).items() if k not in BATCH_DESTS})
    summary = run_batch(request, _coercer())
    if not args.quiet:
        print_table(summary)
    if args.json:
        print(json.dumps(summary.to_json()), flush=True)
    if summary.interrupted:
        print("vidmatte batch: interrupted; finished items are kept and a re-run resumes", file=sys.stderr)
        return 130
    return 1 if summary.failed else 0


def _coercer():
    """(manifest column, text) -> (option dest, value), typed and checked as the command line would do it."""
    from ..errors import UsageError
    from ..modes.base import check_device, parse_ratio, parse_size

    checks = {"downsample_ratio": parse_ratio, "input_resize": parse_size, "device": check_device}
    parser = argparse.ArgumentParser(add_help=False)
    add_arguments(parser)
    actions = {a.dest: a for a in parser._actions if a.dest not in BATCH_DESTS and a.option_strings}

    def coerce(column: str, text: str):
        dest = column.strip().lstrip("-").replace("-", "_")
        action = actions.get(dest)
        if action is None:
            raise ValueError(f"unknown column {column!r} (not an option of the mode)")
        if action.nargs == 0:  # a flag: --overwrite
            if text.lower() not in ("1", "true", "yes", "0", "false", "no"):
                raise ValueError(f"{column} must be true or false, not {text!r}")
            return dest, text.lower() in ("1", "true", "yes")
        try:
            value = action.type(text) if action.type else text
        except (TypeError, ValueError):
            raise ValueError(f"bad {column} {text!r}") from None
        if action.choices and value not in action.choices:
            raise ValueError(f"{column} must be one of {', '.join(map(str, action.choices))}, not {text!r}")
        try:
            checks.get(dest, lambda v: v)(value)
        except UsageError as exc:
            raise ValueError(str(exc)) from None
        return dest, value

    return coerce


def print_table(summary) -> None:
    if summary.rows:
        width = max(len("item"), *(len(row[0]) for row in summary.rows))
        print(f"{'item':<{width}}  status   frames  seconds  reason", file=sys.stderr)
        for item, status, frames, seconds, reason in summary.rows:
            shown_frames = "" if frames is None else str(frames)
            shown_seconds = "" if seconds is None else f"{seconds:.1f}"
            print(f"{item:<{width}}  {status:<7}  {shown_frames:>6}  {shown_seconds:>7}  {reason}", file=sys.stderr)
    print(f"vidmatte batch: {summary.done} done, {summary.skipped} skipped, {summary.failed} failed "
          f"of {summary.items} items in {summary.seconds:.1f} s", file=sys.stderr)
