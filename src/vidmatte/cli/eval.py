"""``vidmatte eval --pred DIR --gt DIR``: the field's matting metrics over clips in RVM's evaluation layout."""

from __future__ import annotations

import argparse

DESCRIPTION = ("Compare predicted alpha mattes with ground truth, clip by clip (layout <root>/<clip>/pha/<frame>.png, "
               "optional fgr/, or <root>/<clip>/pha.mp4). Prints a per-clip and mean table (region and scale in the "
               "header); the mean is over the frames of a clip, then over clips, as in published tables.")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--pred", required=True, help="predicted clips folder")
    p.add_argument("--gt", required=True, help="ground-truth clips folder")
    p.add_argument("--metrics", help="comma list of MAD,MSE,Grad,Conn,dtSSD,MESSDdt,SSDA,FG_MAD,FG_MSE or 'all' "
                                     "(default MAD,MSE,Grad,Conn,dtSSD)")
    p.add_argument("--region", choices=["full", "unknown"], default="full",
                   help="full frame (RVM, default) or the trimap's unknown band (TCVOM/DVM; needs --trimaps)")
    p.add_argument("--trimaps", help="trimaps folder: <DIR>/<clip>/trimap/<frame>.png (as `bench build` writes) "
                                     "or <DIR>/<clip>/<frame>.png")
    p.add_argument("--grad-normalize", action="store_true",
                   help="min-max normalise both mattes before Grad (RVM's low-res script; default: not normalised)")
    p.add_argument("--json", action="store_true", help="print one JSON line at the end: {'mean': {...}, 'clips': ...}")
    p.add_argument("--csv", help="also write per-clip and mean rows to this CSV file")
    p.add_argument("--report", help="write a self-contained HTML report (curves, tables, worst frames) here")


def require_extra(module: str, purpose: str) -> None:
    """An install hint instead of an ImportError when the optional 'eval' extra is missing."""
    from ..extras import require

    require("eval", purpose, module=module)


def run(args: argparse.Namespace) -> int:
    import json
    import sys
    from pathlib import Path

    from ..errors import UsageError
    from ..metrics.evaluate import aggregate, evaluate_pairs, format_table, parse_metrics, table_header
    from ..metrics.layout import match_clips
    from ..progress import Progress

    if args.region == "unknown" and not args.trimaps:
        raise UsageError("--region unknown needs --trimaps DIR")
    try:
        metrics = parse_metrics(args.metrics)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    for option in ("report", "csv"):
        target = getattr(args, option)
        if target and not Path(target).resolve().parent.is_dir():
            raise UsageError(f"--{option}: folder {Path(target).parent} does not exist")
    if args.report:
        require_extra("matplotlib", "--report")
    pairs = match_clips(Path(args.pred), Path(args.gt), Path(args.trimaps) if args.trimaps else None)
    no_fgr = [p.name for p in pairs if p.pred_fgr is None]
    if no_fgr and any(m.startswith("FG_") for m in metrics):
        print(f"vidmatte eval: warning: FG metrics skipped for clips without fgr/ on both sides: {', '.join(no_fgr)}",
              file=sys.stderr)
    progress = Progress(sum(len(p.true) for p in pairs), label="evaluating")
    results = evaluate_pairs(pairs, metrics, args.region, args.grad_normalize, progress)
    progress.close()
    mean = aggregate(results)
    header = table_header(args.region, args.grad_normalize)
    rows = [(r.name, r.mean()) for r in results] + [("mean", mean)]
    print(header)
    print(format_table(rows, metrics))
    if args.csv:
        write_csv(Path(args.csv), rows, [m for m in metrics if m in mean], header)
    if args.report:
        from ..metrics.report import write_report

        write_report(Path(args.report), results, pairs, header,
                     title=f"vidmatte eval: {args.pred} vs {args.gt}")
        print(f"report: {args.report}", file=sys.stderr)
    if args.json:
        print(json.dumps({"region": args.region, "grad_normalized": args.grad_normalize, "mean": mean,
                          "clips": {r.name: r.mean() for r in results},
                          "frames": {r.name: len(r.frames) for r in results}}))
    return 0


def write_csv(path, rows, metrics, header: str) -> None:
    import csv
    import io

    from ..io.atomic import write_atomic

    text = io.StringIO(newline="")
    text.write(f"# {header}\n")
    w = csv.writer(text)
    w.writerow(["clip", *metrics])
    for label, values in rows:
        w.writerow([label, *(f"{values[m]:.6f}" if m in values else "" for m in metrics)])
    write_atomic(path, text.getvalue())
