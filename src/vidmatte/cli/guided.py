"""``vidmatte guided INPUT (--keyframe INDEX:PATH ... | --keyframes DIR) [outputs] [options]``: matte any object.

The subject is marked on a few keyframes (trimaps or masks); the marks are propagated to every frame in both
directions and alpha is solved from them. No trained weights are needed.
"""

from __future__ import annotations

import argparse

from . import convert as convert_cli

DESCRIPTION = ("Matte any object marked on keyframes: trimaps (0/128/255, palette, RGBA, anti-aliased, any mid "
               "grey as unknown) or masks (binary, or Cutie/DAVIS palette masks with --object). Every keyframe is "
               "propagated forward and backward; where two reach a frame they are fused; alpha is solved from the "
               "result (closed-form matting). INPUT may also be a TCVOM workspace (NNNNN_rgb.png frames with "
               "NNNNN_trimap.png at the keyframes). Outputs as in `vidmatte convert`, plus --trimaps.")
KINDS = convert_cli.OUTPUT_KINDS + ("trimap",)


def add_arguments(p: argparse.ArgumentParser) -> None:
    convert_cli.add_input_arguments(p)
    guide = p.add_argument_group("guidance (at least one keyframe)")
    guide.add_argument("--keyframe", metavar="INDEX:PATH", action="append", default=[],
                       help="a trimap or mask for frame INDEX (0-based), repeatable")
    guide.add_argument("--keyframes", metavar="DIR",
                       help="a folder of guidance images named by frame index (00012.png or 12.png), or a TCVOM "
                            "workspace")
    add_guidance_options(guide)
    guide.add_argument("--model", default="rvm-mobilenetv3", help="the RVM weights of the prior (name or .onnx)")
    guide.add_argument("--cache-dir", help="weights folder (default: $VIDMATTE_CACHE or ~/.cache/vidmatte)")
    guide.add_argument("--work", metavar="DIR",
                       help="keep the propagated trimaps of both directions here (default: a temporary folder)")
    convert_cli.add_output_arguments(p).add_argument(
        "--trimaps", dest="trimap", metavar="DIR", action=convert_cli._Once,
        help="the propagated trimap of every frame (folder/ of PNGs, or a video), to inspect and correct")
    convert_cli.add_range_arguments(p)
    convert_cli.add_report_arguments(p)


def add_guidance_options(guide) -> None:
    """How keyframes are read and propagated (here and in ``vidmatte batch --mode guided``)."""
    guide.add_argument("--guidance", choices=["auto", "trimap", "mask"], default="auto",
                       help="what the keyframe images are (auto: palette or two-level images are masks)")
    guide.add_argument("--object", type=int, default=None, metavar="ID",
                       help="the object to matte in multi-object palette masks")
    guide.add_argument("--band", type=int, default=None, metavar="PIXELS",
                       help="width of the unknown strip a mask's edge becomes (default: 10 at 1080p, scaled)")
    guide.add_argument("--propagator", choices=["auto", "flow"], default="auto",
                       help="how keyframes reach other frames: flow (keyframe-anchored optical flow; auto = flow)")
    guide.add_argument("--prior", choices=["auto", "rvm", "none"], default="auto",
                       help="RVM's alpha as a weak data term and a check on the propagated labels: auto uses it when "
                            "RVM sees the first keyframe's subject (people; it hurts other objects), rvm always, none "
                            "never (no weights needed)")


def _source_and_keyframe_folder(args: argparse.Namespace) -> tuple[str, str | None]:
    """A TCVOM workspace given as INPUT is both the frames and their keyframes."""
    from ..guidance import detect_tcvom

    workspace = detect_tcvom(args.input)
    if workspace is None:
        return args.input, args.keyframes
    return workspace.frames, args.keyframes or args.input


def run(args: argparse.Namespace) -> int:
    from ..job import JobControl
    from ..progress import ProgressBar

    bar = ProgressBar(enabled=not args.quiet)
    control = JobControl(on_progress=bar.update)
    job, matter = build_job(args, control)
    return convert_cli.run_job(job, matter, control, bar, args)


def build_job(args: argparse.Namespace, control, runners=None):
    """The checked job and its matter (this command, and each item of ``vidmatte batch --mode guided``);
    ``runners`` opens the prior's weights as ``backends.open_runner`` does."""
    from ..errors import UsageError
    from ..guidance import load_keyframes
    from ..io.probe import live_source
    from ..matters.guided import GuidedMatter
    from ..pipeline import Job, warn

    if live_source(args.input, args.input_format) is not None:
        raise UsageError("guided matting reads the clip three times (forward, backward, then writing); "
                         "record the camera to a file first")
    source, folder = _source_and_keyframe_folder(args)
    if not args.keyframe and folder is None:
        raise UsageError("no keyframe: give --keyframe INDEX:PATH (repeatable) or --keyframes DIR")
    options = convert_cli.build_options(args, KINDS)
    job = Job(source, options, control)
    keyframes, warnings = load_keyframes(args.keyframe, folder, job.source.expected_frames(),
                                         (job.width, job.height), args.guidance, args.object, args.band)
    for message in warnings:
        warn(message)
    inside = [i for i in keyframes.indices() if job.span.first <= i and (job.span.stop is None or i < job.span.stop)]
    if not inside:
        raise UsageError(f"no keyframe inside the frames to process ({job.span.first}..{job.span.stop}); "
                         f"keyframes at {', '.join(map(str, keyframes.indices()))}")
    matter = GuidedMatter({i: keyframes.at(i) for i in inside}, work=args.work, prior=_prior(args, runners),
                          prior_mode=args.prior)
    return job, matter


def _prior(args: argparse.Namespace, runners=None):
    """RVM for the prior, or None. With --prior auto and no weights to be had (offline), guided matting goes on
    without it and says so; --prior rvm insists."""
    if args.prior == "none":
        return None
    from ..backends import open_runner
    from ..errors import ModelError
    from ..matters.recurrent import RecurrentMatter
    from ..pipeline import warn

    try:
        return RecurrentMatter((runners or open_runner)(args.model, cache=args.cache_dir), warmup=0)
    except ModelError as exc:
        if args.prior == "rvm":
            raise
        warn(f"no RVM prior ({exc}); matting from the keyframes alone")
        return None
