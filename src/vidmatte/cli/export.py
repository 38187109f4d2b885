"""``vidmatte export MODEL --format onnx|torchscript --output PATH``: checked exports of the PyTorch model."""

from __future__ import annotations

import argparse

DESCRIPTION = (
    "Export a model to ONNX or TorchScript, both with the official RVM graph's inputs/outputs (src, r1i..r4i, "
    "downsample_ratio -> fgr, pha, r1o..r4o) and dynamic batch/height/width/ratio. The export is run through ONNX Runtime / TorchScript and compared with PyTorch first; a file "
    "that disagrees is not written. MODEL is a registered name (e.g. rvm-mobilenetv3) or a checkpoint/.safetensors "
    "file from `vidmatte train`."
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="registered model name or a .pt/.ckpt/.safetensors/.pth file")
    p.add_argument("--format", required=True, choices=["onnx", "torchscript"])
    p.add_argument("--output", "-o", required=True, help="file to write (written under a temp name, then renamed)")
    p.add_argument("--opset", type=int, default=12, help="ONNX opset (default 12, like the official graph)")
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
    if args.format == "onnx" and not args.opset >= 11:
        raise UsageError(f"--opset {args.opset} is too old: Resize with scales needs opset 11 or newer")
    try:
        import torch  # noqa: F401
    except ImportError:
        raise UsageError("export needs PyTorch: pip install 'vidmatte[torch]'") from None
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
        report = export_onnx(model, args.output, opset=args.opset, precision=args.precision, check_clip=clip)
    else:
        report = export_torchscript(model, args.output, precision=args.precision, check_clip=clip)
    print(report.summary(), file=sys.stderr)
    print(args.output)
    return 0
