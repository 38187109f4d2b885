"""J and the tracker's confidence over time, per clip, from a `vidmatte bench davis --root DIR` run: the picture in
docs/EVALUATION.md ("Doubtful frames") showing how well the confidence foretells a lost frame.

    vidmatte bench davis ../shared/data/video_objects_davis2016 --rows track --root /tmp/davis
    python benchmarks/davis_confidence.py /tmp/davis/davis.json docs/images/davis_confidence.png \
        --clips soccerball,mallard-fly,bus,kite-walk
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("results", type=Path, help="davis.json written by `vidmatte bench davis --root`")
    parser.add_argument("picture", type=Path, help="the PNG to write")
    parser.add_argument("--clips", help="comma list (default: the four with the lowest J)")
    parser.add_argument("--row", default="track")
    args = parser.parse_args()

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from vidmatte.matters.guided import DOUBT
    from vidmatte.metrics.segmentation import LOST_BELOW

    clips = json.loads(args.results.read_text())["rows"][args.row]["clips"]
    names = args.clips.split(",") if args.clips else sorted(clips, key=lambda c: clips[c]["J"])[:4]
    figure, axes = plt.subplots(len(names), 1, figsize=(8, 1.9 * len(names)), sharex=False, squeeze=False)
    for ax, name in zip(axes[:, 0], names):
        clip = clips[name]
        frames = clip["frames"]
        ax.plot(frames, clip["J_frames"], color="#1f6fb2", label="J (true mask)")
        if clip["confidence"]:
            ax.plot(frames, [c if c is not None else float("nan") for c in clip["confidence"]], color="#c0392b",
                    label="tracker confidence")
        for first, last in clip.get("doubtful_frames") or []:
            ax.axvspan(first - 0.5, last + 0.5, color="#c0392b", alpha=0.12, lw=0)
        ax.axhline(LOST_BELOW, color="grey", lw=0.6, ls=":")
        ax.axhline(DOUBT, color="#c0392b", lw=0.6, ls="--")
        ax.set_ylim(-0.02, 1.02)
        ax.set_ylabel(name, fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0, 0].legend(fontsize=7, loc="lower left")
    axes[-1, 0].set_xlabel("frame (keyframe 0)", fontsize=8)
    figure.suptitle("DAVIS-2016 development clips: J per frame and the tracker's confidence "
                    "(shaded: reported doubtful)", fontsize=9)
    figure.tight_layout()
    args.picture.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.picture, dpi=110)
    return 0


if __name__ == "__main__":
    sys.exit(main())
