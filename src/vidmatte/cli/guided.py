"""``vidmatte guided INPUT (--keyframe INDEX:PATH ... | --keyframes DIR) [outputs] [options]``: matte any object.

The subject is marked on a few keyframes (trimaps or masks); the marks are propagated to every frame in both
directions and alpha is solved from them. No trained weights are needed.
"""

from __future__ import annotations

import argparse
import sys

from . import convert as convert_cli
from ..matters.networks import GUIDED_NETWORKS

DESCRIPTION = ("Matte any object marked on keyframes: trimaps (0/128/255, palette, RGBA, anti-aliased, any mid "
               "grey as unknown) or masks (binary, or Cutie/DAVIS palette masks with --object). Every keyframe is "
               "propagated forward and backward; where two reach a frame they are fused; alpha is solved from the "
               "result (closed-form matting). INPUT may also be a TCVOM workspace (NNNNN_rgb.png frames with "
               "NNNNN_trimap.png at the keyframes). Outputs as in `vidmatte convert`, plus --trimaps.")
KINDS = convert_cli.OUTPUT_KINDS + ("trimap",)
GUIDED_METHODS = ("classical", *GUIDED_NETWORKS)  # --method here, and of `vidmatte batch --mode guided`
METHOD_HELP = "classical: propagate the keyframes and solve alpha (no weights); " + "; ".join(
    f"{name}: {network.summary}" for name, network in GUIDED_NETWORKS.items())
CHECKPOINT_HELP = ("--method ftpvm: the official ftpvm.pth or a training checkpoint (no weights are bundled); "
                   "rvm-init: RVM's encoder with every other layer untrained; --method dvm: a training checkpoint "
                   "holding both DVM networks; --method tgm: the official trimap module's weights or a training "
                   "checkpoint (optional)")


def add_arguments(p: argparse.ArgumentParser) -> None:
    convert_cli.add_input_arguments(p)
    guide = p.add_argument_group("guidance (at least one keyframe)")
    guide.add_argument("--keyframe", metavar="INDEX:PATH", action="append", default=[],
                       help="a trimap or mask for frame INDEX (0-based), repeatable")
    guide.add_argument("--keyframes", metavar="DIR",
                       help="a folder of guidance images named by frame index (00012.png or 12.png), or a TCVOM "
                            "workspace")
    add_guidance_options(guide)
    guide.add_argument("--method", choices=GUIDED_METHODS, default="classical", help=METHOD_HELP)
    guide.add_argument("--checkpoint", metavar="PATH", help=CHECKPOINT_HELP)
    guide.add_argument("--model", default="rvm-mobilenetv3", help="the RVM weights of the prior (name or .onnx)")
    guide.add_argument("--cache-dir", help="weights folder (default: $VIDMATTE_CACHE or ~/.cache/vidmatte)")
    guide.add_argument("--work", metavar="DIR",
                       help="keep the propagated trimaps and solved frames here: a second run with an added, changed "
                            "or removed keyframe recomputes only the frames between its neighbouring keyframes and "
                            "reuses the rest (default: a temporary folder)")
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
    guide.add_argument("--propagator", choices=["auto", "flow", "memory"], default="auto",
                       help="how keyframes reach other frames: flow (keyframe-anchored optical flow, no weights), "
                            "memory (the same, re-anchored by a space-time memory of RVM encoder features where "
                            "the flow loses the subject: occlusion, jumps); auto = flow, memory with "
                            "--finetune-steps")
    guide.add_argument("--mem-every", type=int, default=None, metavar="N",
                       help="a frame joins the memory every N frames: memory propagator and --method tgm (default "
                            "5); --method ftpvm: the network's own trimap of every N-th frame (official "
                            "memory_save_iter; default: never, the memory is the keyframe alone)")
    guide.add_argument("--max-memory", type=int, default=None, metavar="N",
                       help="frames kept in memory, keyframes never forgotten: memory propagator and --method tgm "
                            "(default 6); --method ftpvm: the --mem-every frames kept beside the keyframe (official "
                            "memory_bank_size, default 5)")
    guide.add_argument("--finetune-steps", type=int, default=0, metavar="N",
                       help="memory propagator: train its key/readout heads N steps on augmented keyframes "
                            "first (TCVOM's online fine-tuning; needs PyTorch); --method tgm: train the network "
                            "on them (without --checkpoint: those heads)")
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
    from ..guidance.memory import memory_settings, propagator_factory
    from ..io.probe import live_source
    from ..matters.guided import guided_matter
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
    if args.method != "classical":
        return job, _network_matter(args, job, keyframes)
    mem_every, max_memory = memory_settings(args.mem_every, args.max_memory)
    propagators = propagator_factory(args.propagator, mem_every, max_memory, args.finetune_steps, args.model,
                                     args.cache_dir)
    matter = guided_matter(job, keyframes, work=args.work, prior_mode=args.prior, model=args.model,
                           cache=args.cache_dir, warn=warn, notify=None if args.quiet else _say,
                           guidance={"kind": args.guidance, "object": args.object, "band": args.band},
                           propagator={"name": args.propagator, "mem_every": mem_every, "max_memory": max_memory,
                                       "finetune_steps": args.finetune_steps},
                           propagator_factory=propagators, runners=runners)
    return job, matter


def _network_matter(args: argparse.Namespace, job, keyframes):
    from ..errors import UsageError
    from ..pipeline import warn

    if args.work:
        raise UsageError("--work (kept work folder, corrections) is for --method classical only")
    options = {"mem_every": args.mem_every, "max_memory": args.max_memory, "finetune_steps": args.finetune_steps,
               "prior": args.prior, "model": args.model}
    return GUIDED_NETWORKS[args.method].matter(job, keyframes, args.checkpoint, cache=args.cache_dir, warn=warn,
                                               options=options)


def _say(message: str) -> None:
    print(f"vidmatte: {message}", file=sys.stderr)
