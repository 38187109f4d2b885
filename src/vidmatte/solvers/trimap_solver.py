"""One frame's alpha from its trimap, with RVM's alpha as a weak data term where it sees the subject, and the
frame's foreground colours: what the trimap-guided matters share (``matters.guided`` and its streaming form,
``matters.tgm``; ``matters.dvm`` and ``matters.ftpvm`` take the colours).

Alpha is closed form over the unknown band (``solvers.trimap_alpha``). The prior is duck-typed: anything with
RVM's ``reset()`` and ``step(frame) -> (foreground, alpha)`` (``matters.recurrent.RecurrentMatter``, opened by
``matters.recurrent.open_prior``).
"""

from __future__ import annotations

import cv2
import numpy as np

from ..guidance.propagate import BG, FG, UNKNOWN, grown


# How strongly RVM's alpha pulls the unknown pixels where the subject is a person (see TrimapSolver), as (on the
# keyframe's band, carried; on doubts: labels RVM contradicts, colours that no longer match, parts the keyframe never
# saw, directions that disagree). Closed form with the true trimap beats RVM's alpha inside the band (6.4 vs 9.0 MAD
# on the non-rigid boy), so there the prior only steadies it; on doubts the propagated trimap is what fails, and RVM
# decides. Chosen on guided_nonrigid's boy_bear (one weight 0.1 everywhere: 8.12; (0.01, 1): 7.82; (0.001, 0.1):
# 8.20), checked on two held-out clips of the `people` set (boy_apple 9.71 -> 8.93, boy_cat 9.79 -> 9.63).
PRIOR_WEIGHT = (0.01, 1.0)

# Near a keyframe its band is still where the subject's edge is, and closed form alone does best there; the farther
# propagation carries the band, the likelier it is misplaced and the more RVM must place the edge. So the band's
# prior weight starts at NEAR_KEYFRAME_SHARE of PRIOR_WEIGHT[0] on a keyframe and reaches all of it BAND_PRIOR_RAMP
# frames away. Measured on the `people` set (keyframes 0 and 12): MAD 7.30 -> 7.20 in the harness; a ramp of 4 or
# 16 frames does about as well, a flat 0.001 does not (7.47: it costs where the band has drifted).
NEAR_KEYFRAME_SHARE = 0.1
BAND_PRIOR_RAMP = 8

# Where RVM is sure of a pixel (alpha within RVM_SURE of 0 or 1) and closed form leans the same way (within
# 2 * AGREE_MARGIN), the two agree: closed form's remaining haze there is its Laplacian smoothing across the band, not
# the subject. Such values are stretched away from the middle, twice as far, so those within AGREE_MARGIN of 0 or 1
# reach it and the mapping stays continuous (no flicker at a threshold). Only with the prior (people, and objects
# RVM sees). `people` set: MAD 7.15 -> 6.90, all six clips better, dtSSD 4.53 -> 4.58 (our harness's mean);
# margins of 0.05 and 0.1 do about as well, 0.15 makes two clips worse. See docs/EVALUATION.md, sixth round.
RVM_SURE = 0.02
AGREE_MARGIN = 0.05

# RVM's pull on the band steadies a band that propagation misplaced, and costs where the band is right (the
# non-rigid boy: closed form with the true trimap 6.54 MAD alone, 7.14 with the prior). So each frame is solved
# twice, with and without the band's prior (the doubts keep theirs in both), and the band is trusted, the free
# solve used, except near where the free solve shows it failing: alpha over `leak` on band pixels touching
# background or under 1 - `leak` on those touching foreground (the edge lies beyond the band), or the two solves
# more than `lost` apart (closed form lost what RVM sees: a subject that is nearly all band, the dandelion). "Near"
# is within `radius` of the frame's longer side, blurred (sigma radius / 3) so that the two meet without a seam.
# One keyframe: non-rigid boy 7.75 -> 7.13 (chosen there), `people` 7.11 -> 6.74 (all six clips better), fur 4.68
# -> 3.97, plush toy 6.01 -> 6.11, dandelion unchanged (every third frame; docs/EVALUATION.md, sixth round).
BAND_CHECK = {"leak": 0.05, "lost": 0.5, "radius": 0.047}
BAND_CHECK_SIZE = 512

# --prior auto uses RVM's alpha when RVM's mean alpha over the keyframe's marked subject is at least this share of
# what the trimap implies (TrimapSolver.decide).
SEEN_BY_RVM = 0.8


class TrimapSolver:
    """One frame's alpha from its trimap, with RVM's alpha as a weak data term where the subject is
    a person: the part of guided matting the file matter, the streaming form and TGM's matter share.

    prior: a ``RecurrentMatter`` (RVM) or None; prior_mode: "auto" (used when RVM sees the first keyframe's
    subject: ``decide``), "rvm" (always) or "none". RVM's recurrent state follows the frames in order: call
    ``begin_sequence`` before the first, and ``follow`` on frames whose alpha comes from elsewhere (a cache).
    """

    def __init__(self, solver=None, prior=None, prior_mode: str = "auto",
                 prior_weight: tuple[float, float] = PRIOR_WEIGHT):
        if prior_mode not in ("auto", "rvm", "none"):
            raise ValueError(f"prior must be auto, rvm or none, not {prior_mode!r}")
        self.solve_frame = solver or _band_solve
        self.prior, self.prior_mode, self.prior_weight = prior, prior_mode, prior_weight
        self.restart()

    def restart(self) -> None:
        """A new video: the decision of --prior auto is made again."""
        self.uses_prior = self.prior is not None and self.prior_mode == "rvm"

    @property
    def decides(self) -> bool:
        """Whether ``decide`` has a decision to make (--prior auto with RVM at hand)."""
        return self.prior is not None and self.prior_mode == "auto"

    def decide(self, frame: np.ndarray, trimap: np.ndarray) -> bool:
        """auto: RVM's alpha is a prior only if RVM itself sees the keyframe's subject: it covers most of the marked
        subject and little of the background around it. The prior that helps people hurts objects RVM does not see.

        "Covers" compares RVM's mean alpha over the marked subject with what the trimap says of it (1 on definite
        foreground, 0.5 on the band). It used to be RVM's share of the definite foreground alone, which a subject
        that is nearly all band fails: a dandelion's 26 solid stem pixels, which RVM misses, while it sees the seed
        head (mean alpha 0.49 where the trimap implies 0.50). Closed form collapses towards 0 on such a subject
        (guided_nonrigid: MAD 126, RVM alone 66); with the prior it is 47.9, dtSSD 10.3 (RVM 12.2). The decisions
        on the other benchmark clips do not change (people 0.92-0.95 of what the trimap implies; the fur and plush
        toy 0.99-1.0; the flowers and the glass bulb, which RVM does not see, 0)."""
        self.prior.reset()
        for _ in range(3):  # a still frame, repeated: RVM settles within a few steps
            rvm = self.prior.step(frame)[1]
        subject = trimap != BG
        implied = float(np.where(trimap[subject] == FG, 1.0, 0.5).mean()) if subject.any() else 0.0
        seen = float(rvm[subject].mean()) / implied if implied > 0 else 0.0
        ring = _near(subject, 0.05) & (trimap == BG)
        spill = float((rvm[ring] > 0.5).mean()) if ring.any() else 1.0
        self.uses_prior = seen > SEEN_BY_RVM and spill < 0.2
        return self.uses_prior

    def begin_sequence(self) -> None:
        if self.uses_prior:
            self.prior.reset()

    def follow(self, frame: np.ndarray) -> None:
        """A frame solved elsewhere (read from a cache): keep RVM's state in step."""
        if self.uses_prior:
            self.prior.step(frame)

    def solve(self, frame: np.ndarray, trimap: np.ndarray, band: np.ndarray | None = None, given: bool = False,
              distance: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """-> (alpha float32 [H,W], the trimap solved from). band: bool [H,W], the unknown pixels that carry the
        keyframe's own band (``Propagated.band``; None: all of them); given: the trimap is a keyframe's own, so its
        definite labels are the user's and RVM does not reopen them (on guided_nonrigid's fur, RVM's first frame
        reopened the keyframe's fur: frame 0 MAD 8.9, 5.9 when kept); distance: frames to the nearest keyframe
        (0 when given; None: unknown, the band gets the full prior weight). Foreground colours are the caller's to
        ask for (``foreground_colours``): only outputs that composite need them."""
        if not self.uses_prior:
            return self.solve_frame(frame, trimap, None, None, 0.0), trimap
        prior = self.prior.step(frame)[1]
        opened = trimap if given else _open_where_rvm_disagrees(trimap, prior)
        on_band, on_doubts = self.prior_weight
        weight = _prior_weights(opened, trimap == UNKNOWN if band is None else band & (trimap == UNKNOWN),
                                (on_band * _band_trust_share(0 if given else distance), on_doubts))
        # the default solver builds the frame's systems once for both solves; a solver passed in is called as is
        solve = _SharedBandSolve() if self.solve_frame is _band_solve else self.solve_frame
        anchored = solve(frame, opened, None, prior, weight)
        # the same frame with the band left to closed form (the doubts keep RVM), warm-started from the first
        free = solve(frame, opened, anchored, prior, np.where(weight >= on_doubts, weight, 0))
        failing = _where_the_band_fails(free, anchored, opened)
        alpha = failing * anchored + (1 - failing) * free
        return _settled_where_rvm_agrees(alpha, prior, opened == UNKNOWN), opened



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


def _where_the_band_fails(free: np.ndarray, anchored: np.ndarray, trimap: np.ndarray) -> np.ndarray:
    """float32 [H,W] 0..1: 1 where the band is not to be trusted (RVM's pull on it stays), 0 where it is (closed form
    alone decides), smooth between (see BAND_CHECK). free/anchored: the frame solved without and with the band's
    prior."""
    unknown = trimap == UNKNOWN
    touching = np.ones((3, 3), np.uint8)
    next_to_bg = unknown & cv2.dilate((trimap == BG).astype(np.uint8), touching).astype(bool)
    next_to_fg = unknown & cv2.dilate((trimap == FG).astype(np.uint8), touching).astype(bool)
    leak, lost = BAND_CHECK["leak"], BAND_CHECK["lost"]
    beyond = (next_to_bg & (free > leak)) | (next_to_fg & (free < 1 - leak))
    failing = beyond | (unknown & (np.abs(free - anchored) > lost))
    if not failing.any():
        return np.zeros(trimap.shape, np.float32)
    # Grown and blurred at about 512 px on the longer side, where it was measured: the same at any frame size, and
    # at 1080p 10 ms instead of 140.
    h, w = trimap.shape
    scale = min(1.0, BAND_CHECK_SIZE / max(h, w))
    small = (max(1, round(w * scale)), max(1, round(h * scale)))
    near = cv2.resize(failing.astype(np.float32), small, interpolation=cv2.INTER_AREA) > 0
    radius = max(1, round(BAND_CHECK["radius"] * max(small)))
    near = cv2.dilate(near.astype(np.uint8), np.ones((2 * radius + 1, 2 * radius + 1), np.uint8))
    near = cv2.GaussianBlur(near.astype(np.float32), (0, 0), radius / 3)
    return np.clip(cv2.resize(near, (w, h), interpolation=cv2.INTER_LINEAR), 0, 1)


def _settled_where_rvm_agrees(alpha: np.ndarray, rvm: np.ndarray, unknown: np.ndarray) -> np.ndarray:
    """Unknown pixels where RVM is sure and closed form leans the same way, stretched to 0 or 1 (see AGREE_MARGIN).
    Every other pixel keeps its value. float32 [H,W] 0..1."""
    edge = 2 * AGREE_MARGIN
    opaque = unknown & (rvm >= 1 - RVM_SURE) & (alpha > 1 - edge)
    clear = unknown & (rvm <= RVM_SURE) & (alpha < edge)
    if not (opaque.any() or clear.any()):
        return alpha
    settled = alpha.copy()
    settled[opaque] = np.minimum(1.0, 1 - edge + 2 * (alpha[opaque] - (1 - edge)))
    settled[clear] = np.maximum(0.0, edge - 2 * (edge - alpha[clear]))
    return settled


def _band_trust_share(distance: int | None) -> float:
    """The share of the band's prior weight at ``distance`` frames from the nearest keyframe (see BAND_PRIOR_RAMP)."""
    if distance is None:
        return 1.0
    return NEAR_KEYFRAME_SHARE + (1 - NEAR_KEYFRAME_SHARE) * min(1.0, distance / BAND_PRIOR_RAMP)


def _prior_weights(trimap: np.ndarray, band: np.ndarray, weights: tuple[float, float]) -> np.ndarray:
    """Per-pixel weight of RVM's prior (float32 [H,W]): weights[0] on the band, weights[1] on the other unknown
    pixels of ``trimap`` (the doubts, and the labels RVM contradicted, now unknown)."""
    on_band, on_doubts = weights
    return np.where(band | (trimap != UNKNOWN), on_band, on_doubts).astype(np.float32)


def _band_solve(frame: np.ndarray, trimap: np.ndarray, start: np.ndarray | None, prior=None,
                prior_weight: float | np.ndarray = 0.0) -> np.ndarray:
    """Closed-form alpha over the unknown band only (``solvers.trimap_alpha``): float32 [H,W] 0..1.

    start: another solve of the same frame to start from (None: coarse to fine from nothing). Never the previous
    frame's alpha: it helps only where nothing moved (measured: no faster with a 1-2 px shift), and it would need
    carrying along the motion first.
    """
    from .trimap_alpha import solve_alpha

    return solve_alpha(frame, trimap, init=start, prior=prior,
                       prior_weight=prior_weight if prior is not None else 0.0)


class _SharedBandSolve:
    """``_band_solve`` for the solves of one frame: the frame's systems are built on the first and reused."""

    def __init__(self):
        self.problem = None

    def __call__(self, frame: np.ndarray, trimap: np.ndarray, start: np.ndarray | None, prior=None,
                 prior_weight: float | np.ndarray = 0.0) -> np.ndarray:
        from .trimap_alpha import BandProblem

        if self.problem is None:
            self.problem = BandProblem(frame, trimap)
        elif self.problem.image is not frame or self.problem.trimap is not trimap:
            raise ValueError("a shared band solve is for one frame and one trimap")
        return self.problem.solve(start, prior, prior_weight if prior is not None else 0.0)[0]


def foreground_colours(frame: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Multi-level foreground colours (float32 [H,W,3] 0..1), on the subject's box; above 1440p at half size (+10%
    error, 3x faster; benchmarks/solver.py). Deterministic in (frame, alpha): a frame whose alpha is read back from
    the work folder gets the same colours, so they are not stored."""
    from .trimap_alpha import foreground

    return foreground(frame, alpha, scale=2 if frame.shape[0] * frame.shape[1] > 2560 * 1440 else 1)
