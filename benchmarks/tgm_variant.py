"""``--method tgm`` without a checkpoint (TCVOM's parts and memory rules over RVM encoder features) beside the flow
and memory propagators of ``--method classical``, side by side in one run: propagation only, keyframe 0 only (so
only the forward run), on a built guided benchmark, e.g. the occlusion-and-jump set of
``benchmarks/memory_propagator.py derive``.

    python benchmarks/tgm_variant.py --root ROOT [--clips 2] [--finetune-steps 50]

For each: the share of the subject's pixels with a wrong definite label (``memory_propagator.label_errors``, mean
over frames), the unknown area as a share of the subject's (a wide unknown band has few wrong definite labels but
leaves more to the solver) and the propagation time as a ratio to the flow's (frames decoded outside the timing;
the machine is shared, absolute numbers move, ratios much less).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from memory_propagator import _read, label_errors  # noqa: E402
from vidmatte.guidance.propagate import Propagated  # noqa: E402


class TgmVariantRun:
    """The no-checkpoint TGM generator in one forward run, with a propagator's start/step (trimaps at the frame's
    size, the argmax of its probabilities)."""

    def __init__(self, encoder, finetune_steps: int, mem_every: int = 5, max_memory: int = 6, side: int = 512):
        self.encoder, self.steps, self.side = encoder, finetune_steps, side
        self.mem_every, self.max_memory = mem_every, max_memory

    def _small(self, frame):
        from vidmatte.matters.tgm import processing_size

        return cv2.resize(frame, processing_size(*frame.shape[:2], self.side), interpolation=cv2.INTER_AREA)

    def start(self, frame, trimap):
        from vidmatte.matters.tgm import RvmMemoryTrimaps
        from vidmatte.models.tgm import TrimapRun

        small = self._small(frame)
        small_trimap = cv2.resize(trimap, (small.shape[1], small.shape[0]), interpolation=cv2.INTER_NEAREST)
        self.generator = RvmMemoryTrimaps(self.encoder)
        if self.steps:
            self.generator.finetune([small], [small_trimap], self.steps)
        key = self.generator.trimap_input(small_trimap)
        self.run = TrimapRun(self.generator, [self.generator.encode(small, key)], self.mem_every, self.max_memory)
        self.run.start(small, key)
        self.distance = 0
        return Propagated(trimap, np.ones(trimap.shape, np.float32), 0)

    def step(self, frame):
        from vidmatte.matters.tgm import LEVELS

        probabilities = self.run.step(self._small(frame))
        self.distance += 1
        full = cv2.resize(probabilities, (frame.shape[1], frame.shape[0]), interpolation=cv2.INTER_LINEAR)
        return Propagated(LEVELS[np.argmax(full, axis=2)], np.ones(frame.shape[:2], np.float32), self.distance)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", required=True, help="a built guided benchmark (ROOT/clips)")
    parser.add_argument("--clips", type=int, default=2)
    parser.add_argument("--finetune-steps", type=int, default=50)
    args = parser.parse_args()
    from vidmatte.guidance.memory import FeatureEncoder, propagator_factory

    encoder = FeatureEncoder()
    kinds = {"flow": propagator_factory("flow"), "tgm, no checkpoint": lambda: TgmVariantRun(encoder, 0),
             "memory": propagator_factory("memory"),
             f"tgm, no checkpoint, {args.finetune_steps} fine-tuning steps":
                 lambda: TgmVariantRun(encoder, args.finetune_steps)}
    clips_dir = Path(args.root) / "clips"
    names = sorted(p.name for p in clips_dir.iterdir() if p.is_dir())[:args.clips]
    seconds = {}
    for kind, make in kinds.items():
        spent, errors, unknown = 0.0, [], []
        for name in names:
            com = sorted((clips_dir / name / "com").iterdir())
            truth = sorted((clips_dir / name / "pha").iterdir())
            frames = [_read(p) for p in com]
            propagator = make()
            started = time.perf_counter()
            propagator.start(frames[0], _read(clips_dir / name / "trimap" / "00000.png"))
            results = [propagator.step(frame) for frame in frames[1:]]
            spent += time.perf_counter() - started
            for result, true_path in zip(results, truth[1:]):
                alpha = _read(true_path)
                errors.append(label_errors(result.trimap, alpha))
                if (alpha > 127).any():  # frames with the subject
                    unknown.append((result.trimap == 128).sum() / (alpha > 127).sum())
        seconds[kind] = spent
        print(f"{kind}: wrong definite labels {100 * np.mean(errors):.1f}% of the subject (mean over "
              f"{len(errors)} frames); unknown area {100 * np.mean(unknown):.0f}% of the subject's; time "
              f"{spent:.1f} s, {spent / seconds['flow']:.2f}x the flow's", flush=True)


if __name__ == "__main__":
    main()
