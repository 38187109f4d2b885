"""``vidmatte guided INPUT (--keyframe INDEX:PATH ... | --keyframes DIR) [outputs] [options]``: matte any object.

The subject is marked on a few keyframes (trimaps or masks); the marks are propagated to every frame in both
directions and alpha is solved from them. No trained weights are needed.
"""

from __future__ import annotations

import argparse

from ..modes.guided import CHECKPOINT_HELP, GUIDANCE_KINDS, METHOD_HELP, METHODS, PRIORS, PROPAGATORS
from . import convert as convert_cli

DESCRIPTION = ("Matte any object marked on keyframes: trimaps (0/128/255, palette, RGBA, anti-aliased, any mid "
               "grey as unknown) or masks (binary, or Cutie/DAVIS palette masks with --object). Every keyframe is "
               "propagated forward and backward; where two reach a frame they are fused; alpha is solved from the "
               "result (closed-form matting). INPUT may also be a TCVOM workspace (NNNNN_rgb.png frames with "
               "NNNNN_trimap.png at the keyframes). Outputs as in `vidmatte convert`, plus --trimaps; with several "
               "objects (--object 1,2 or all) one of each per object, and --layers.")

def add_arguments(p: argparse.ArgumentParser) -> None:
    convert_cli.add_input_arguments(p)
    guide = p.add_argument_group("guidance (at least one keyframe)")
    guide.add_argument("--keyframe", metavar="INDEX:PATH", action="append", default=[],
                       help="a trimap or mask for frame INDEX (0-based), repeatable")
    guide.add_argument("--keyframes", metavar="DIR",
                       help="a folder of guidance images named by frame index (00012.png or 12.png), or a TCVOM "
                            "workspace")
    add_guidance_options(guide)
    guide.add_argument("--method", choices=METHODS, default="classical", help=METHOD_HELP)
    guide.add_argument("--checkpoint", metavar="PATH", help=CHECKPOINT_HELP)
    guide.add_argument("--model", default="rvm-mobilenetv3", help="the RVM weights of the prior (name or .onnx)")
    guide.add_argument("--cache-dir", help="weights folder (default: $VIDMATTE_CACHE or ~/.cache/vidmatte)")
    convert_cli.add_device_argument(guide)
    guide.add_argument("--work", metavar="DIR",
                       help="keep the propagated trimaps and solved frames here: a second run with an added, changed "
                            "or removed keyframe recomputes only the frames between its neighbouring keyframes and "
                            "reuses the rest (default: a temporary folder)")
    convert_cli.add_output_arguments(p).add_argument(
        "--trimaps", dest="trimap", metavar="DIR", action=convert_cli._Once,
        help="the propagated trimap of every frame (folder/ of PNGs, or a video), to inspect and correct")
    p.add_argument("--layers", metavar="DIR/", action=convert_cli._Once,
                   help="several objects: one multi-layer OpenEXR per frame, a channel group per object (<id>.A, "
                        "<id>.R, <id>.G, <id>.B: alpha and linear foreground), half floats (--bit-depth 32: float; "
                        "needs the exr extra)")
    convert_cli.add_range_arguments(p)
    convert_cli.add_report_arguments(p)


def add_guidance_options(guide) -> None:
    """How keyframes are read and propagated (here and in ``vidmatte batch --mode guided``)."""
    guide.add_argument("--guidance", choices=GUIDANCE_KINDS, default="auto",
                       help="what the keyframe images are (auto: palette or two-level images are masks)")
    guide.add_argument("--object", default=None, metavar="ID[,ID...]|all",
                       help="the object to matte in multi-object palette masks; several (1,2,3 or all) are matted "
                            "in one run, each output becoming one per object (pha/ -> pha/<id>/, comp.mp4 -> "
                            "comp.<id>.mp4); a --keyframes folder may then hold per-object masks <frame>_<id>.png")
    guide.add_argument("--band", type=int, default=None, metavar="PIXELS",
                       help="width of the unknown strip a mask's edge becomes (default: 10 at 1080p, scaled)")
    guide.add_argument("--propagator", choices=PROPAGATORS, default="auto",
                       help="how keyframes reach other frames: track (the subject followed frame to frame by "
                            "classifiers fitted on the keyframe over RVM encoder features and the flow-carried "
                            "previous subject; the flow's band at its edge), flow (keyframe-anchored optical flow "
                            "alone, no weights), memory (flow re-anchored by a space-time memory of RVM encoder "
                            "features); auto = track, memory with --finetune-steps")
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
    guide.add_argument("--prior", choices=PRIORS, default="auto",
                       help="RVM's alpha as a weak data term and a check on the propagated labels: auto uses it when "
                            "RVM sees the first keyframe's subject (people; it hurts other objects), rvm always, none "
                            "never (no weights needed)")


def run(args: argparse.Namespace) -> int:
    return convert_cli.run_mode("guided", args)
