"""What warming RVM's recurrent state up before frame 0 buys: metrics on a clip's first frames, cold vs warmed.

RVM's state starts empty, so the first frames of a clip are visibly worse (a ghost of a passing car, weak arms).
For files the pipeline first runs the state over frames n..1 backward, then writes from frame 0
(``RecurrentMatter.passes``). This compares, on built benchmarks (``vidmatte bench build``), per variant:
metrics over frames 0..4 and over the rest, mean over clips, plus the extra network frames the warm-up costs.

    python benchmarks/warmup.py --root /tmp/bench/people --root /tmp/bench/default

Real footage has no ground truth here; ``--real CLIP`` measures instead how far each variant's first frames are from
RVM's settled answer (the same frames matted after a 32-frame backward warm-up): mean absolute difference in grey
levels, and the share of pixels more than 32 levels off. That is consistency, not accuracy: say it so.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from vidmatte.errors import VidmatteError
from vidmatte.io.writers import parse_output
from vidmatte.job import JobControl
from vidmatte.matters.base import Pass, Span, writing_pass
from vidmatte.matters.recurrent import RecurrentMatter
from vidmatte.metrics.evaluate import evaluate_pairs
from vidmatte.metrics.layout import list_clips, match_clips
from vidmatte.pipeline import ConvertOptions, convert

METRICS = ("MAD", "MSE", "Grad", "dtSSD")
FIRST = 5


class ForwardWarmup(RecurrentMatter):
    """The alternative kept out of the product: warm on frames 0..n-1 forward, then restart at 0."""

    def passes(self, span: Span) -> list[Pass]:
        n = min(self.warmup, span.length or self.warmup)
        return [Pass("warm-up", span.first, span.first + n), writing_pass(span)]


def variants(runner) -> dict[str, RecurrentMatter]:
    return {"cold (RVM as published)": RecurrentMatter(runner, warmup=0),
            "backward 4": RecurrentMatter(runner, warmup=4),
            "backward 8 (default)": RecurrentMatter(runner, warmup=8),
            "backward 16": RecurrentMatter(runner, warmup=16),
            "forward 8": ForwardWarmup(runner, warmup=8)}


def run_variant(matter: RecurrentMatter, clips: dict[str, Path], out: Path) -> None:
    for name, clip_dir in clips.items():
        target = out / name
        target.mkdir(parents=True)
        options = ConvertOptions(outputs=[parse_output("alpha", f"{target / 'pha'}/")], sequence_fps=25)
        convert(clip_dir / "com", matter, options, JobControl())


def score(pred: Path, clips_root: Path) -> dict[str, dict[str, float]]:
    """Mean over clips of the per-clip means over frames 0..FIRST-1 ("first") and FIRST.. ("rest")."""
    results = evaluate_pairs(match_clips(pred, clips_root, clips_root), METRICS, "full")
    table = {}
    for part, sl in (("first", slice(0, FIRST)), ("rest", slice(FIRST, None))):
        # already in the tables' units
        table[part] = {m: float(np.mean([np.nanmean(r.per_frame[m][sl]) for r in results]))
                       for m in METRICS}
    return table


def first_alphas(matter: RecurrentMatter, clip: str) -> np.ndarray:
    """uint8 [FIRST,H,W]: the first frames' alpha as the pipeline writes it."""
    from vidmatte.outputs import CallbackSink

    got = {}
    sink = CallbackSink(lambda i, p: got.__setitem__(i, p.alpha_u8.copy()), kinds=("alpha",))
    convert(clip, matter, ConvertOptions(outputs=[], sinks=[sink], end_frame=40), JobControl())
    return np.stack([got[i] for i in range(FIRST)]).astype(np.float32)


def settle(runner, clips: list[str]) -> dict:
    print(f"\nreal clips: first {FIRST} frames vs the settled answer (32-frame backward warm-up); "
          "mean |difference| in grey levels / % pixels > 32 levels off")
    print("| clip | " + " | ".join(variants(runner)) + " |")
    print("|---" * (1 + len(variants(runner))) + "|")
    found = {}
    for clip in clips:
        settled = first_alphas(RecurrentMatter(runner, warmup=32), clip)
        cells = []
        for name, matter in variants(runner).items():
            diff = np.abs(first_alphas(matter, clip) - settled)
            found.setdefault(Path(clip).stem, {})[name] = [float(diff.mean()), float((diff > 32).mean() * 100)]
            cells.append(f"{diff.mean():.2f} / {(diff > 32).mean() * 100:.2f}%")
        print(f"| {Path(clip).stem} | {' | '.join(cells)} |", flush=True)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", action="append", default=[], help="a built benchmark (ROOT/clips)")
    parser.add_argument("--real", action="append", default=[], help="a real clip (no ground truth needed)")
    parser.add_argument("--json", help="also write the numbers here")
    args = parser.parse_args()
    from vidmatte.backends import open_runner

    runner = open_runner("rvm-mobilenetv3")
    found = {}
    for root in args.root:
        clips_root = Path(root) / "clips"
        clips = list_clips(clips_root, "benchmark")
        print(f"\n{root}: {len(clips)} clips; metrics over frames 0..{FIRST - 1} | frames {FIRST}.. "
              f"(MAD, MSE x1e3, Grad /1e3, dtSSD x1e2; full frame)")
        print(f"| variant | {' | '.join(f'{m} 0-{FIRST - 1}' for m in METRICS)} | "
              f"{' | '.join(f'{m} rest' for m in METRICS)} |")
        print("|---" * (1 + 2 * len(METRICS)) + "|")
        for name, matter in variants(runner).items():
            with tempfile.TemporaryDirectory() as tmp:
                run_variant(matter, clips, Path(tmp))
                table = score(Path(tmp), clips_root)
            found.setdefault(root, {})[name] = table
            cells = [f"{table['first'][m]:.2f}" for m in METRICS] + [f"{table['rest'][m]:.2f}" for m in METRICS]
            print(f"| {name} | {' | '.join(cells)} |", flush=True)
    if args.real:
        found["real"] = settle(runner, args.real)
    if args.json:
        Path(args.json).write_text(json.dumps(found, indent=1))


if __name__ == "__main__":
    try:
        main()
    except VidmatteError as exc:
        raise SystemExit(f"warmup: {exc}")
