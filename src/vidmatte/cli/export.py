"""``vidmatte export MODEL --format onnx|torchscript --output PATH``: checked exports of the PyTorch model."""

from __future__ import annotations

import argparse

from ..backends.exporters import EXPORTABLE

DESCRIPTION = (
    "Export a model to ONNX or TorchScript, both with the official RVM graph's inputs/outputs (src, r1i..r4i, "
    "downsample_ratio -> fgr, pha, r1o..r4o) and dynamic batch/height/width/ratio. The export is run through ONNX "
    "Runtime / TorchScript and compared with PyTorch first; a file "
    "that disagrees is not written. MODEL is a registered name (e.g. rvm-mobilenetv3) or a checkpoint/.safetensors "
    "file from `vidmatte train`. A checkpoint of another network family (ours from training, or the official "
    "state dict) is recognised and exported to that family's ONNX graphs, checked the same way: "
    + "; ".join(row.summary for row in EXPORTABLE.values()) + "."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="registered model name or a .pt/.ckpt/.safetensors/.pth file")
    p.add_argument("--format", required=True, choices=["onnx", "torchscript"])
    p.add_argument("--output", "-o", required=True, help="file to write (written under a temp name, then renamed)")
    p.add_argument("--opset", type=int, default=None,
                   help="ONNX opset (default: 12 for RVM, like the official graph; " + ", ".join(
                       f"{row.opset} for {name}" for name, row in EXPORTABLE.items()) + ")")
    p.add_argument("--size", metavar="WxH", help="frame size of fixed-size graphs (default: " + ", ".join(
        f"{row.size[0]}x{row.size[1]} for {name}" for name, row in EXPORTABLE.items()) + "; RVM's is dynamic)")
    p.add_argument("--precision", choices=["fp32", "fp16"], default="fp32")
    p.add_argument("--check-video", metavar="VIDEO",
                   help="check the export on the first frames of this video (default: generated frames)")
    p.add_argument("--force", action="store_true", help="replace an existing output file")
    p.add_argument("--cache-dir", help="weights folder (default: $VIDMATTE_CACHE or ~/.cache/vidmatte)")


def run(args: argparse.Namespace) -> int:
    import os
    import sys

    from ..errors import OutputError, UsageError

    if os.path.exists(args.output) and not args.force:
        raise OutputError(f"{args.output} exists; pass --force to replace it")
    if args.format == "onnx" and args.opset is not None and not args.opset >= 11:
        raise UsageError(f"--opset {args.opset} is too old: Resize with scales needs opset 11 or newer")
    from ..extras import require

    require("torch", "export")
    from ..backends.exporters import recognise

    found = recognise(args.model)
    if found is not None:
        return _export_family(args, *found)
    if args.size:
        raise UsageError("--size is for fixed-size graphs; RVM's graph takes any frame size")
    from ..backends.export import export_onnx, export_torchscript
    from ..backends.torch_runner import load_model_file
    from ..models.convert_onnx import load_pretrained

    if args.model.endswith((".pt", ".pth", ".ckpt", ".safetensors")):
        model = load_model_file(args.model)
    else:
        # refine_always: at ratio 1 the exported graph (which cannot branch) runs the refiner, as the official one.
        model = load_pretrained(args.model, args.cache_dir, refine_always=True)
    model.refine_always = True
    clip = None
    if args.check_video:
        from ..backends.export import read_check_clip

        clip = read_check_clip(args.check_video)
    if args.format == "onnx":
        report = export_onnx(model, args.output, opset=args.opset or 12, precision=args.precision, check_clip=clip)
    else:
        report = export_torchscript(model, args.output, precision=args.precision, check_clip=clip)
    print(report.summary(), file=sys.stderr)
    print(args.output)
    return 0


def _export_family(args: argparse.Namespace, name: str, row) -> int:
    """A checkpoint of a family in ``backends.exporters.EXPORTABLE``: its own graphs, fp32 ONNX."""
    import os
    import sys

    from ..errors import OutputError, UsageError
    from ..modes.base import parse_size

    if args.format != "onnx" or args.precision != "fp32" or args.check_video:
        raise UsageError(f"{args.model} is a {name} checkpoint: it exports to fp32 ONNX only, checked on generated "
                         "frames (no --format torchscript, --precision fp16 or --check-video)")
    width, height = parse_size(args.size, "--size") if args.size else row.size
    taken = [str(p) for p in row.outputs(args.output) if os.path.exists(p)]
    if taken and not args.force:
        raise OutputError(f"{taken[0]} exists; pass --force to replace it")
    model = row.call("load", args.model)
    report = row.call("export", model, args.output, height, width, args.opset or row.opset)
    print(report.summary(), file=sys.stderr)
    for path in report.paths:
        print(path)
    return 0

