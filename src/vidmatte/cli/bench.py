"""``vidmatte bench build | run | speed``: the project's own benchmark, built from real ground-truth mattes."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

DESCRIPTION = ("build: compose benchmark clips from a definition (benchmarks/definitions/*.json) and a data root; "
               "run: run methods on the built clips and print the comparison tables (full and unknown regions); "
               "speed: model-only vs end-to-end fps and peak RSS at several sizes; "
               "davis DIR: guided matting as video object segmentation on real clips with a mask on every frame "
               "(J, F, lost, fps per row and clip).")

REPO = Path(__file__).resolve().parents[3]


def default_data_root() -> Path:
    """$VIDMATTE_SHARED_DATA, else ../shared/data beside the repository (as benchmark definitions assume)."""
    return Path(os.environ.get("VIDMATTE_SHARED_DATA", REPO.parent / "shared" / "data"))


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["build", "run", "speed", "davis"])
    p.add_argument("folder", nargs="?", help="davis: a folder of <clip>/video.mp4 + <clip>/masks/*.png (e.g. "
                   "../shared/data/video_objects_davis2016)")
    p.add_argument("--definition", default="default", help="definition file or name in benchmarks/definitions/")
    p.add_argument("--data-root", help="where the definition's source paths are (default ../shared/data)")
    p.add_argument("--root", default="benchmarks/results/default",
                   help="benchmark folder: clips in ROOT/clips, predictions in ROOT/pred/<method>, tables in ROOT")
    p.add_argument("--seed", type=int, help="override the definition's seed")
    p.add_argument("--size", help="override the definition's WxH (build)")
    p.add_argument("--band", type=int, help="build: override the definition's trimap band (pixels)")
    p.add_argument("--keyframes", help="build: override the definition's trimap keyframes: first, first_and_last, "
                   "or a comma list of frame indices (last = the final frame); davis: first (default) or "
                   "first_and_middle (the true masks given)")
    p.add_argument("--rows", default="track,flow,rvm,still",
                   help="davis: comma list of track (vidmatte guided), flow (--propagator flow), rvm (RVM alone), "
                        "still (the keyframe's mask held still)")
    p.add_argument("--clips", help="davis: comma list of clips (default: every clip in the folder)")
    p.add_argument("--frames", type=int, help="override the definition's frames per clip (build, speed)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing build")
    p.add_argument("--mp4", action="store_true", help="build: also write each clip's composite as <clip>/com.mp4")
    p.add_argument("--methods", default="rvm,oracle",
                   help="comma list for run: rvm, rvm-cold, guided, guided-first, oracle")
    p.add_argument("--checkpoint", metavar="PATH",
                   help="run: the weights of a network method (ftpvm: an FTP-VM checkpoint, ours or official)")
    p.add_argument("--report", action="store_true", help="run: also write ROOT/report_<method>.html")
    p.add_argument("--sizes", default="512x288,1920x1080,3840x2160", help="speed: comma list of WxH")
    p.add_argument("--source", help="speed: a video to resize to each size (default: a real clip from the data root)")
    p.add_argument("--json", action="store_true", help="print one JSON line with the results at the end")


def parse_size(text: str) -> tuple[int, int]:
    from ..errors import UsageError

    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise UsageError(f"size {text!r} is not WxH (e.g. 512x288)") from None
    if w < 16 or h < 16 or w % 2 or h % 2:
        raise UsageError(f"size {text!r}: width and height must be even and at least 16")
    return w, h


def run(args: argparse.Namespace) -> int:
    from .eval import require_extra

    if args.action in ("build", "run"):
        require_extra("scipy", f"bench {args.action}")
    if args.action == "run" and args.report:
        require_extra("matplotlib", "bench run --report")
    return {"build": _build, "run": _run, "speed": _speed, "davis": _davis}[args.action](args)


def _build(args) -> int:
    import json

    from ..data.benchmark import build, load_definition, resolve_keyframes
    from ..errors import InputError, UsageError

    definition = load_definition(args.definition)
    if args.band is not None:
        if args.band < 0:
            raise UsageError("--band must be >= 0")
        definition.setdefault("trimap", {})["band"] = args.band
    if args.keyframes:
        spec = args.keyframes.strip()
        if "," in spec or spec.isdigit() or spec == "last":
            try:
                spec = [k if k in ("first", "last") else int(k) for k in (v.strip() for v in spec.split(",")) if k]
            except ValueError:
                raise UsageError(f"--keyframes {args.keyframes!r}: first, first_and_last or a comma list of "
                                 f"frame indices") from None
        try:
            resolve_keyframes(spec, 2 ** 31)
        except InputError as exc:
            raise UsageError(f"--keyframes: {exc}") from None
        definition.setdefault("trimap", {})["keyframes"] = spec
    data_root = Path(args.data_root) if args.data_root else default_data_root()
    size = parse_size(args.size) if args.size else None
    root = Path(args.root)
    root.mkdir(parents=True, exist_ok=True)
    record = build(definition, data_root, root / "clips", seed=args.seed, size=size, frames=args.frames,
                   overwrite=args.overwrite, mp4=args.mp4)
    print(f"built {len(record['clips'])} clips x {record['frames']} frames at {record['size'][0]}x{record['size'][1]} "
          f"(seed {record['seed']}) in {root / 'clips'}")
    if args.json:
        print(json.dumps(record))
    return 0


def _run(args) -> int:
    import json
    import shutil
    import sys
    import time

    from ..data.methods import METHODS, NEEDS_CHECKPOINT, run_method
    from ..errors import InputError, UsageError
    from ..metrics.evaluate import aggregate, evaluate_pairs, format_table, table_header
    from ..metrics.layout import list_clips, match_clips
    from ..progress import Progress

    root = Path(args.root)
    clips_root = root / "clips"
    if not (clips_root / "benchmark.json").exists():
        raise InputError(f"no built benchmark in {clips_root}; run `vidmatte bench build --root {root}` first")
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise UsageError(f"unknown method {unknown[0] if unknown else ''!r} (known: {', '.join(METHODS)})")
    weighted = [m for m in methods if m in NEEDS_CHECKPOINT]
    if weighted and not args.checkpoint:
        raise UsageError(f"method {weighted[0]} needs --checkpoint PATH (its network's weights)")
    if args.checkpoint and not Path(args.checkpoint).is_file():
        raise InputError(f"checkpoint not found: {args.checkpoint}")
    record = json.loads((clips_root / "benchmark.json").read_text())
    clips = list_clips(clips_root, "benchmark")
    total = sum(len(list((d / "com").iterdir())) for d in clips.values())
    metrics = ("MAD", "MSE", "Grad", "Conn", "dtSSD", "MESSDdt", "FG_MAD", "FG_MSE")
    results: dict = {}
    state: dict = {}
    for method in methods:
        pred_root = root / "pred" / method
        tmp = pred_root.with_name(f".{method}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        progress = Progress(total, label=f"{method}")
        method_started = time.monotonic()
        print(f"bench run: {method}: {METHODS[method]}", file=sys.stderr, flush=True)
        for done, (name, clip_dir) in enumerate(clips.items(), 1):
            started = time.monotonic()
            run_method(method, clip_dir, tmp / name, progress, state, args.checkpoint)
            if not progress.enabled:  # no live bar (stderr is not a terminal): one line per clip instead
                n = len(list((clip_dir / "com").iterdir()))
                print(f"bench run: {method} {done}/{len(clips)} {name}: {n} frames, "
                      f"{n / (time.monotonic() - started):.1f} fps", file=sys.stderr, flush=True)
        progress.close()
        seconds = time.monotonic() - method_started
        shutil.rmtree(pred_root, ignore_errors=True)
        tmp.rename(pred_root)
        results[method] = {"seconds": round(seconds, 1), "fps": round(total / seconds, 2),
                           **({"checkpoint": str(args.checkpoint)} if method in NEEDS_CHECKPOINT else {})}
        for region in ("full", "unknown"):
            pairs = match_clips(pred_root, clips_root, clips_root)
            clip_results = evaluate_pairs(pairs, metrics, region)
            results[method][region] = {"mean": aggregate(clip_results),
                                       "clips": {r.name: r.mean() for r in clip_results}}
            if args.report and region == "full":
                from ..metrics.report import write_report

                write_report(root / f"report_{method}.html", clip_results, pairs, table_header(region, False),
                             title=f"vidmatte bench: {method}", extra=f"<p>{METHODS[method]}</p>")
    lines = [f"benchmark {record['definition']}: {len(clips)} clips x {record['frames']} frames at "
             f"{record['size'][0]}x{record['size'][1]}, seed {record['seed']}, trimap band {record['trimap_band']} px, "
             f"data root {record['data_root']}"]
    for region in ("full", "unknown"):
        lines += ["", table_header(region, False),
                  format_table([(m, results[m][region]["mean"]) for m in methods], metrics)]
    lines += ["", "wall time (methods only, this machine): " +
              ", ".join(f"{m} {results[m]['seconds']} s ({results[m]['fps']} fps)" for m in methods)]
    for method in methods:
        lines += ["", f"{method} per clip; " + table_header("full", False),
                  format_table(list(results[method]["full"]["clips"].items()), metrics)]
    text = "\n".join(lines)
    print(text)
    (root / "results.md").write_text(text + "\n")
    (root / "results.json").write_text(json.dumps({"benchmark": record, "methods": METHODS, "results": results},
                                                  indent=2) + "\n")
    if args.json:
        print(json.dumps({"results": results}))
    return 0


def _speed(args) -> int:
    import json

    from ..data.speed import format_speed, run_speed
    from ..errors import InputError

    sizes = [parse_size(s) for s in args.sizes.split(",")]
    source = (Path(args.source) if args.source
              else default_data_root() / "video_people" / "sam2" / "05_default_juggle.mp4")
    if not source.exists():
        raise InputError(f"speed source video not found: {source} (give --source)")
    rows = run_speed(source, sizes, args.frames or 24)
    print(f"source: {source} (resized and re-encoded per size; {rows[0]['frames']} frames each, all timed, "
          f"model loaded before timing); ratios measured in this one run")
    print(format_speed(rows))
    if args.json:
        print(json.dumps(rows))
    return 0


def _davis(args) -> int:
    import json
    import sys

    from ..data.davis import KEYFRAMES, ROWS, bench, table
    from ..errors import UsageError

    if not args.folder:
        raise UsageError("bench davis needs the folder of clips: vidmatte bench davis DIR")
    rows = [r.strip() for r in args.rows.split(",") if r.strip()]
    unknown = [r for r in rows if r not in ROWS]
    if unknown or not rows:
        raise UsageError(f"unknown row {unknown[0] if unknown else ''!r} (known: {', '.join(ROWS)})")
    keyframes = args.keyframes or "first"
    if keyframes not in KEYFRAMES:
        raise UsageError(f"bench davis --keyframes is {' or '.join(KEYFRAMES)}, not {keyframes!r}")
    clips = [c.strip() for c in args.clips.split(",") if c.strip()] if args.clips else None
    results = bench(Path(args.folder), rows, keyframes, clips,
                    say=lambda line: print(line, file=sys.stderr, flush=True))
    text = table(results)
    print(text)
    if args.root != "benchmarks/results/default":  # --root given: keep the tables and every frame's figures
        root = Path(args.root)
        root.mkdir(parents=True, exist_ok=True)
        (root / "davis.md").write_text(text + "\n")
        (root / "davis.json").write_text(json.dumps(results, indent=1) + "\n")
    if args.json:
        print(json.dumps({row: {"mean": r["mean"], "doubt": r["doubt"]} for row, r in results["rows"].items()}))
    return 0
