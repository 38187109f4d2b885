"""Guided matting of any object: keyframe trimaps propagated both ways, alpha solved from each frame's trimap.

TCVOM's scheme on the pipeline's passes, with memory flat in the clip's length:
  1. "propagate forward":  every keyframe carries its trimap forward until the next keyframe;
  2. "propagate backward": every keyframe carries its trimap backward until the previous keyframe;
     both passes leave one trimap and one confidence map per frame in the work folder, never frames in memory;
  3. "matting" (writes):   the two directions are fused per pixel (by confidence, which decays with the distance
     to the keyframe), alpha is solved from the fused trimap (warm-started from the previous frame's alpha) and the
     foreground colours are estimated. Keyframes use their own trimap as given.
Solved alphas are never fed back as guidance: that is what made frame-to-frame propagation collapse (issue 9).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import cv2
import numpy as np

from ..guidance.propagate import BG, FG, UNKNOWN, FlowPropagator, Propagated, fuse, grown
from ..matte import SolvedMatte
from .base import Pass, Span, as_rgb_u8, writing_pass


# How strongly RVM's alpha pulls the unknown band where the subject is a person (see _solve_frame); measured on the
# guided benchmarks' person clip (docs/EVALUATION.md).
PRIOR_WEIGHT = 0.1


class GuidedMatter:
    """Mattes the subject marked by ``keyframes`` ({frame index: trimap uint8 [H,W] in {0,128,255}})."""

    seq_chunk = 1

    def __init__(self, keyframes: dict[int, np.ndarray], work: str | Path | None = None, solver=None,
                 propagator_factory=FlowPropagator, prior=None, prior_mode: str = "auto",
                 prior_weight: float = PRIOR_WEIGHT):
        """prior: a ``RecurrentMatter`` (RVM) whose alpha is a weak data term where the subject is a person;
        prior_mode: "auto" (used when RVM sees the first keyframe's subject), "rvm" (always) or "none"."""
        if not keyframes:
            raise ValueError("guided matting needs at least one keyframe")
        if prior_mode not in ("auto", "rvm", "none"):
            raise ValueError(f"prior must be auto, rvm or none, not {prior_mode!r}")
        self.keyframes = dict(sorted(keyframes.items()))
        self.prior, self.prior_mode, self.prior_weight = prior, prior_mode, prior_weight
        self._work_arg = work
        self._solve = solver or _band_solve
        self._new_propagator = propagator_factory
        self._temporary = None
        self.reset()

    # --- matters.base.Matter ----------------------------------------------------------------------------
    def reset(self) -> None:
        if self._temporary is not None:
            self._temporary.cleanup()
        if self._work_arg is None:
            self._temporary = tempfile.TemporaryDirectory(prefix="vidmatte-guided-")
            self.work = Path(self._temporary.name)
        else:
            self._temporary, self.work = None, Path(self._work_arg)
            self.work.mkdir(parents=True, exist_ok=True)
        self._pass: Pass | None = None
        self._propagator = None
        self._previous_alpha: np.ndarray | None = None
        self.uses_prior = self.prior is not None and self.prior_mode == "rvm"

    def passes(self, span: Span) -> list[Pass]:
        if not span.seekable:
            raise ValueError("guided matting reads the clip three times; a live source cannot be re-read")
        return [Pass("propagate forward", span.first, span.stop), Pass("propagate backward", span.first, span.stop,
                                                                        reverse=True), writing_pass(span)]

    def begin_pass(self, p: Pass) -> None:
        self._pass, self._propagator, self._previous_alpha = p, None, None
        if not p.writes:
            (self.work / self._direction(p)).mkdir(exist_ok=True)
        elif self.uses_prior:
            self.prior.reset()  # RVM's recurrent state follows the writing pass, frame by frame

    def prepare(self, frame: np.ndarray, guidance: object | None = None, index: int | None = None) -> tuple:
        frame = as_rgb_u8(frame)
        if self._pass is None or self._pass.writes:
            return index, frame, self._fused_trimap(index, frame.shape[:2])
        return index, frame, None

    def matte(self, prepared: list) -> list[SolvedMatte | None]:
        if self._pass is not None and not self._pass.writes:
            for index, frame, _ in prepared:
                self._propagate(index, frame)
            return [None] * len(prepared)
        return [self._solve_frame(frame, trimap) for _, frame, trimap in prepared]

    # --- analysis passes -------------------------------------------------------------------------------------
    def _propagate(self, index: int, frame: np.ndarray) -> None:
        if index in self.keyframes:
            self._propagator = self._new_propagator()
            result = self._propagator.start(frame, self._check_keyframe(index, frame))
            if index == min(self.keyframes) and not self._pass.reverse:
                self._decide_prior(frame, result.trimap)
        elif self._propagator is not None:
            result = self._propagator.step(frame)
        else:
            return  # before the first keyframe in this direction: the other direction covers it
        folder = self.work / self._direction(self._pass)
        _write_png(folder / f"{index:05d}.png", result.trimap)
        _write_png(folder / f"{index:05d}_confidence.png", np.rint(result.confidence * 255).astype(np.uint8))

    def _check_keyframe(self, index: int, frame: np.ndarray) -> np.ndarray:
        trimap = self.keyframes[index]
        if trimap.shape != frame.shape[:2]:
            raise ValueError(f"keyframe {index} is {trimap.shape[1]}x{trimap.shape[0]} but the frames are "
                             f"{frame.shape[1]}x{frame.shape[0]}")
        return trimap

    @staticmethod
    def _direction(p: Pass) -> str:
        return "backward" if p.reverse else "forward"

    # --- the writing pass ----------------------------------------------------------------------------------
    def _fused_trimap(self, index: int, shape: tuple[int, int]) -> np.ndarray:
        if index in self.keyframes:
            return self.keyframes[index]
        found = [self._read(direction, index) for direction in ("forward", "backward")]
        if found[0] is None and found[1] is None:
            raise ValueError(f"frame {index} was reached by no keyframe")
        return fuse(*found)

    def _read(self, direction: str, index: int) -> Propagated | None:
        folder = self.work / direction
        if not (folder / f"{index:05d}.png").exists():  # no keyframe before it in this direction
            return None
        trimap = cv2.imread(str(folder / f"{index:05d}.png"), cv2.IMREAD_GRAYSCALE)
        confidence = cv2.imread(str(folder / f"{index:05d}_confidence.png"), cv2.IMREAD_GRAYSCALE)
        return Propagated(trimap, confidence.astype(np.float32) / 255, 0)

    def _decide_prior(self, frame: np.ndarray, trimap: np.ndarray) -> None:
        """auto: RVM's alpha is a prior only if RVM itself sees the keyframe's subject (a person): it covers most of
        the marked foreground and little of the background around it. The prior that helps people hurts objects."""
        if self.prior is None or self.prior_mode != "auto":
            return
        self.prior.reset()
        for _ in range(3):  # a still frame, repeated: RVM settles within a few steps
            rvm = self.prior.step(frame)[1]
        covered = float((rvm[trimap == FG] > 0.5).mean()) if (trimap == FG).any() else 0.0
        ring = _near(trimap != BG, 0.05) & (trimap == BG)
        spill = float((rvm[ring] > 0.5).mean()) if ring.any() else 1.0
        self.uses_prior = covered > 0.8 and spill < 0.2

    def _solve_frame(self, frame: np.ndarray, trimap: np.ndarray) -> SolvedMatte:
        prior = None
        if self.uses_prior:
            prior = self.prior.step(frame)[1]
            trimap = _open_where_rvm_disagrees(trimap, prior)
        alpha = self._solve(frame, trimap, self._previous_alpha, prior, self.prior_weight)
        self._previous_alpha = alpha
        return SolvedMatte(frame, alpha, _estimate_foreground, trimap)


def _near(mask: np.ndarray, fraction: float) -> np.ndarray:
    """``mask`` grown by ``fraction`` of the frame's longer side."""
    return grown(mask, max(1, round(fraction * max(mask.shape))))


def _open_where_rvm_disagrees(trimap: np.ndarray, rvm: np.ndarray) -> np.ndarray:
    """Definite labels that RVM contradicts near the subject become unknown, for the solver (with RVM's alpha as
    its prior) to decide: parts the keyframe never saw, or a limb the propagation lost. Far from the subject RVM's
    other people are left out: that is what the keyframe chose."""
    near = _near(trimap != BG, 0.03)
    contradicted = ((trimap == BG) & (rvm > 0.5) & near) | ((trimap == FG) & (rvm < 0.5))
    if not contradicted.any():
        return trimap
    opened = trimap.copy()
    opened[contradicted] = UNKNOWN
    return opened


def _band_solve(frame: np.ndarray, trimap: np.ndarray, previous: np.ndarray | None, prior=None,
                prior_weight: float = 0.0) -> np.ndarray:
    """Closed-form alpha over the unknown band only (``solvers.trimap_alpha``): float32 [H,W] 0..1.

    Cold start on purpose: the previous frame's alpha helps only where nothing moved (measured: no faster with a
    1-2 px shift), and it would need carrying along the motion first.
    """
    from ..solvers.trimap_alpha import solve_alpha

    return solve_alpha(frame, trimap, prior=prior, prior_weight=prior_weight if prior is not None else 0.0)


def _estimate_foreground(frame: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Multi-level foreground colours (float32 [H,W,3]), on the subject's box; above 1440p at half size (+10%
    error, 3x faster; benchmarks/solver.py)."""
    from ..solvers.trimap_alpha import foreground

    return foreground(frame, alpha, scale=2 if frame.shape[0] * frame.shape[1] > 2560 * 1440 else 1)


def _write_png(path: Path, image: np.ndarray) -> None:
    if not cv2.imwrite(str(path), image):
        raise OSError(f"cannot write {path}")
