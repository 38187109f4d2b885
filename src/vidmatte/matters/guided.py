"""Guided matting of any object: keyframe trimaps propagated both ways, alpha solved from each frame's trimap.

TCVOM's scheme on the pipeline's passes, with memory flat in the clip's length:
  1. "propagate forward":  every keyframe carries its trimap forward until the next keyframe;
  2. "propagate backward": every keyframe carries its trimap backward until the previous keyframe;
     both passes leave one trimap and one confidence map per frame in the work folder, never frames in memory;
  3. "matting" (writes):   the two directions are fused per pixel (by confidence, which decays with the distance
     to the keyframe), alpha is solved from the fused trimap and the foreground colours are estimated. Keyframes
     use their own trimap as given.
Solved alphas are never fed back as guidance: that is what made frame-to-frame propagation collapse (issue 9).

Corrections (``work=DIR``, ``matters.guided_work``): every propagated trimap and solved alpha is kept with the
keyframes it came from, so a second run that adds, changes or removes a keyframe gets shorter propagation passes
covering only the frames between that keyframe's neighbours, and its writing pass reads every other frame's alpha
back instead of solving it (``summary()["reused_frames"]``). Foreground colours are not stored: they are remade
from the frame and the alpha (deterministic), on the writer's thread and only if an output needs them. The
streaming form for apps (``matters.guided_stream``) shares the propagator and ``TrimapSolver``.
"""

from __future__ import annotations

import bisect
import logging
import tempfile
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from ..guidance.propagate import BG, FG, LOST_TRACK_SHARE, UNKNOWN, FlowPropagator, Propagated, fuse, grown
from ..matte import SolvedMatte
from .base import Pass, Span, as_rgb_u8, writing_pass
from .guided_work import WorkFolder, keyframe_token
from .keyframe_network import keyframes_in_span


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

# Runs of frames whose directions contradicted each other that are at most this many frames apart are reported as
# one (sam2's dog with keyframes 0 and 119: frames 10, 13 and 24-118 -> 10-118).
REPORT_GAP = 12

# A frame whose matted subject (alpha >= 0.5) jumps against its neighbours is reported (``jumping_frames``): where the
# keyframes agree but propagation lost the subject, this is the only sign of it. A frame jumps if its area is more than
# `spike` times, or less than 1 / `spike` times, the median of the `window` frames on either side (one odd frame); if
# the median area of the `step_window` frames from it on is `step` times that of the `step_window` frames before it,
# or 1 / `step` times (the subject collapsing or spreading within a few frames, which a median across the change does
# not see); or if its centroid is more than `shift` times the subject's size (the square root of its area) from the
# median centroid of the `window` frames on either side. Chosen on the true masks of the 18 DAVIS-2016 development
# clips, where it must stay quiet: 4 of 1271 frames fire, all where the soccer ball passes behind a leg (its true area
# drops 4x in 2 frames); a `shift` of 0.5 fired on the mallard's flapping wings, a `step` of 2.5 on more of the ball.
# On clips guided loses it fires where they are lost (docs/EVALUATION.md, "Jumping frames").
JUMP = {"window": 2, "spike": 2.0, "step_window": 3, "step": 3.0, "shift": 0.75}
JUMP_FLOOR = 1e-4  # share of the frame: an area below it is no subject (an empty frame beside empty ones is no jump)

# --prior auto uses RVM's alpha when RVM's mean alpha over the keyframe's marked subject is at least this share of
# what the trimap implies (TrimapSolver.decide).
SEEN_BY_RVM = 0.8


class TrimapSolver:
    """One frame's alpha from its trimap, with RVM's alpha as a weak data term where the subject is
    a person: the part of guided matting the file matter and the streaming form share.

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


class GuidedMatter:
    """Mattes the subject marked by ``keyframes`` ({frame index: trimap uint8 [H,W] in {0,128,255}}).

    work: a folder kept between runs for corrections (None: a temporary one); settings: what else decides every
    frame's result (the input's fingerprint, frame size, how guidance was read, the propagator's options...), JSON
    values; a change there makes a kept work folder start afresh. notify: where to say what was reused; warn: where
    to say which frames' keyframes disagree (both default to the "vidmatte" logger).
    """

    seq_chunk = 1

    def __init__(self, keyframes: dict[int, np.ndarray], work: str | Path | None = None, solver=None,
                 propagator_factory=FlowPropagator, prior=None, prior_mode: str = "auto",
                 prior_weight: tuple[float, float] = PRIOR_WEIGHT, settings: dict | None = None,
                 notify: Callable[[str], None] | None = None, warn: Callable[[str], None] | None = None):
        if not keyframes:
            raise ValueError("guided matting needs at least one keyframe")
        self.keyframes = dict(sorted(keyframes.items()))
        self._indices = list(self.keyframes)
        self._tokens = {i: keyframe_token(i, trimap) for i, trimap in self.keyframes.items()}
        self.alpha = TrimapSolver(solver, prior, prior_mode, prior_weight)
        self.settings = dict(settings or {})
        self._notify = notify or logging.getLogger("vidmatte").info
        self._warn = warn or logging.getLogger("vidmatte").warning
        self._work_arg = work
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
        self._pass: Pass | None = None
        self._propagator = None
        self._stale: dict[str, set[int]] = {}  # per pass kind: the frames this run computes (the rest is reused)
        self.reused_frames = 0
        self._lost_track: set[int] = set()  # frames whose two directions contradicted each other (propagate.fuse)
        self._subject: dict[int, tuple[float, float, float]] = {}  # frame -> its matte's (area, x, y): JUMP
        self.alpha.restart()

    def passes(self, span: Span) -> list[Pass]:
        if not span.seekable:
            raise ValueError("guided matting reads the clip three times; a live source cannot be re-read")
        self.span = span
        self.store = WorkFolder(self.work, {**self.settings, **self._own_settings(span)})
        why = self.store.open()
        if why is not None:
            self._notify(f"work folder {self.work}: {why}; recomputing every frame")
        if self._prior_decided():
            self.alpha.uses_prior = self.store.prior_decision["uses"]
        return self._propagation_passes("forward") + self._propagation_passes("backward") + [writing_pass(span)]

    def begin_pass(self, p: Pass) -> None:
        self._pass, self._propagator = p, None
        if p.writes:
            self._plan_writing()
            self.alpha.begin_sequence()

    def prepare(self, frame: np.ndarray, index: int | None = None) -> tuple:
        frame = as_rgb_u8(frame)
        if self._pass is None or not self._pass.writes:
            return index, frame, None, None
        if index not in self._stale["solved"]:
            return index, frame, None, self.store.read_solved(index)
        return index, frame, self._fused_trimap(index), None

    def matte(self, prepared: list) -> list[SolvedMatte | None]:
        if self._pass is not None and not self._pass.writes:
            for index, frame, _, _ in prepared:
                self._propagate(index, frame)
            return [None] * len(prepared)
        return [self._matte_frame(*item) for item in prepared]

    def summary(self) -> dict:
        """What the job's result reports beside its frames (called once, at its end): how many of them came from the
        work folder, whether RVM's alpha was a prior (--prior auto decides at the first keyframe), the runs of frames
        where the two directions' guidance contradicted each other (``contradicting_frames``: [first, last] pairs)
        and those where the matted subject jumps in size or place against its neighbours (``jumping_frames``, see
        JUMP: lost, or a real jump). Both cover every frame of the run, those read back from the work folder too, and
        are also logged as warnings: a keyframe there settles them."""
        runs = _bridged(_runs(sorted(self._lost_track)), REPORT_GAP)
        decided = ("RVM's alpha decided between them" if self.alpha.uses_prior
                   else "the nearer keyframe's guidance was used")
        for first, last in runs:
            self._warn(f"{_where(first, last)}: the keyframes on either side are followed to different places (lost "
                       f"in one direction or both); {decided}. A keyframe near frame {(first + last) // 2} would "
                       "settle it")
        jumps = _bridged(_runs(jumping_frames(self._subject)), REPORT_GAP)
        for first, last in jumps:
            self._warn(f"{_where(first, last)}: the matted subject jumps in size or place against the frames around "
                       f"it (the subject lost, or a real jump): look there; a keyframe near frame "
                       f"{(first + last) // 2} would hold it")
        return {"reused_frames": self.reused_frames, "rvm_prior": self.alpha.uses_prior,
                "contradicting_frames": runs, "jumping_frames": jumps}

    # --- what this run recomputes --------------------------------------------------------------------------
    def _own_settings(self, span: Span) -> dict:
        return {"range": [span.first, span.stop], "prior_mode": self.alpha.prior_mode,
                "prior_weight": list(self.alpha.prior_weight), "prior_available": self.alpha.prior is not None,
                # the rules that shape a solved alpha besides the weights: a folder solved under others is stale
                "band_prior_ramp": [NEAR_KEYFRAME_SHARE, BAND_PRIOR_RAMP], "rvm_agreement": [RVM_SURE, AGREE_MARGIN],
                "band_check": {**BAND_CHECK, "size": BAND_CHECK_SIZE},
                "solver": _qualified_name(self.alpha.solve_frame),
                "propagator_factory": _qualified_name(self._new_propagator)}

    def _keyframe_for(self, index: int, direction: str) -> int | None:
        """The keyframe whose trimap reaches frame ``index`` in ``direction``: the last one at or before it going
        forward, the first one at or after it going backward (None: none in that direction)."""
        if direction == "forward":
            at = bisect.bisect_right(self._indices, index) - 1
            return self._indices[at] if at >= 0 else None
        at = bisect.bisect_left(self._indices, index)
        return self._indices[at] if at < len(self._indices) else None

    def _token(self, kind: str, index: int) -> str | None:
        """What frame ``index``'s files of ``kind`` must have been made from to be reused."""
        if kind == "solved":
            forward, backward = self._token("forward", index), self._token("backward", index)
            return f"{forward}|{backward}|prior={self.alpha.uses_prior}"
        key = self._keyframe_for(index, kind)
        return None if key is None else self._tokens[key]

    def _frames(self) -> range:
        """Every frame of the job, where its length is known (else only up to the last keyframe)."""
        return range(self.span.first, self.span.stop if self.span.stop is not None else self._indices[-1] + 1)

    def _stale_frames(self, kind: str) -> list[int]:
        """Frames whose files of ``kind`` this run must (re)make: all of them when the clip's length is unknown."""
        frames = [i for i in self._frames() if self._token(kind, i) is not None]
        if self.span.stop is None:
            return frames
        return [i for i in frames if not self.store.holds(kind, i, self._token(kind, i))]

    def _propagation_passes(self, direction: str) -> list[Pass]:
        """The shortest passes that remake this direction's stale trimaps: each stale run of frames is reached from
        its keyframe (going backward, from the run's end), whose trimap is carried over valid frames unwritten."""
        stale = self._stale_frames(direction)
        if direction == "forward" and self.alpha.decides and not self._prior_decided():
            stale = sorted(set(stale) | {self._indices[0]})  # the prior's decision is made at the first keyframe
        self._stale[direction] = set(stale) if self.span.stop is not None else _Everything()
        self.store.forget(direction, stale)
        spans = []
        for start, stop in _runs(stale):
            if direction == "forward":
                spans.append((self._keyframe_for(start, "forward"), stop))
            else:
                spans.append((start, self._keyframe_for(stop - 1, "backward") + 1))
        if direction == "forward" and self.span.stop is None and spans:
            spans[-1] = (spans[-1][0], None)  # on to the end, wherever it is
        return [Pass(f"propagate {direction}", start, stop, reverse=direction == "backward")
                for start, stop in _merged(spans)]

    def _prior_decided(self) -> bool:
        decision = self.store.prior_decision
        return bool(decision) and decision.get("keyframe") == self._tokens[self._indices[0]]

    def _plan_writing(self) -> None:
        """Which frames the writing pass solves; the others are read back from the work folder."""
        keeps = self._work_arg is not None  # a temporary folder goes with the job: solved frames are not kept
        stale = self._stale_frames("solved") if keeps else list(self._frames())
        self._stale["solved"] = set(stale) if self.span.stop is not None else _Everything()
        self._last_stale = max(stale, default=self.span.first - 1)
        self.store.forget("solved", stale)
        self.reused_frames = len(self._frames()) - len(stale) if self.span.stop is not None else 0
        if keeps:
            total = len(self._frames())
            solved = f"; solving {_describe(stale)}" if stale else ""
            self._notify(f"work folder {self.work}: reusing {self.reused_frames} of {total} frames{solved}")

    # --- analysis passes -------------------------------------------------------------------------------------
    def _propagate(self, index: int, frame: np.ndarray) -> None:
        direction = "backward" if self._pass.reverse else "forward"
        if index in self.keyframes:
            self._propagator = self._new_propagator()
            result = self._propagator.start(frame, self._check_keyframe(index, frame))
            if index == self._indices[0] and direction == "forward" and self.alpha.decides:
                uses = self.alpha.decide(frame, result.trimap)
                self.store.decide_prior(self._tokens[index], uses)
                self._notify("--prior auto: RVM sees the keyframe's subject; its alpha is a prior" if uses else
                             "--prior auto: RVM does not see the keyframe's subject; matting from the keyframes alone")
        elif self._propagator is not None:
            result = self._propagator.step(frame)
        else:
            return  # before the first keyframe in this direction: the other direction covers it
        if index in self._stale[direction]:
            self.store.write_trimap(direction, index, result.trimap, result.confidence, result.band_mask())
            self.store.record(direction, index, self._token(direction, index))

    def _check_keyframe(self, index: int, frame: np.ndarray) -> np.ndarray:
        trimap = self.keyframes[index]
        if trimap.shape != frame.shape[:2]:
            raise ValueError(f"keyframe {index} is {trimap.shape[1]}x{trimap.shape[0]} but the frames are "
                             f"{frame.shape[1]}x{frame.shape[0]}")
        return trimap

    # --- the writing pass ----------------------------------------------------------------------------------
    def _fused_trimap(self, index: int) -> tuple[np.ndarray, np.ndarray | None, bool, int]:
        """(trimap, band, given, distance to the nearest keyframe) of frame ``index``: a keyframe's own (given), or
        the two directions' fused."""
        if index in self.keyframes:
            return self.keyframes[index], None, True, 0
        found = [self._read(direction, index) for direction in ("forward", "backward")]
        if found[0] is None and found[1] is None:
            raise ValueError(f"frame {index} was reached by no keyframe")
        fused = fuse(*found, doubts="contradictions" if self.alpha.uses_prior else "any")
        if fused.contradicted > LOST_TRACK_SHARE:
            self._lost_track.add(index)
        return fused.trimap, fused.band, False, fused.distance

    def _read(self, direction: str, index: int) -> Propagated | None:
        if self._token(direction, index) is None:  # no keyframe before it in this direction
            return None
        trimap, confidence, band = self.store.read_trimap(direction, index)
        return Propagated(trimap, confidence, abs(index - self._keyframe_for(index, direction)), band)

    def _matte_frame(self, index: int, frame: np.ndarray, guidance: tuple | None, cached) -> SolvedMatte:
        if cached is not None:
            alpha, trimap = cached
            if index < self._last_stale:  # RVM's state must reach the frames still to solve as a full run's does
                self.alpha.follow(frame)
            if index in self.store.contradicted:  # found when it was solved: the report covers the whole clip
                self._lost_track.add(index)
            self._subject[index] = subject_measure(alpha)
            return SolvedMatte(frame, alpha, foreground_colours, trimap)
        alpha, trimap = self.alpha.solve(frame, *guidance)
        self._subject[index] = subject_measure(alpha)
        if self._work_arg is not None:
            self.store.write_solved(index, alpha, trimap)
            self.store.record("solved", index, self._token("solved", index), contradicted=index in self._lost_track)
        # Colours are estimated on the writer's thread, if an output needs them, while this thread solves on.
        return SolvedMatte(frame, alpha, foreground_colours, trimap)


def subject_measure(alpha: np.ndarray) -> tuple[float, float, float]:
    """(area, centroid x, y) of the matte's subject (alpha >= 0.5), in units of the square root of the frame's pixel
    count (the area as a share of the frame), so that frame size does not matter; all 0 without a subject."""
    moments = cv2.moments((alpha >= 0.5).astype(np.uint8), binaryImage=True)
    area = moments["m00"]
    if area == 0:
        return 0.0, 0.0, 0.0
    unit = float(np.sqrt(alpha.size))
    return area / alpha.size, moments["m10"] / area / unit, moments["m01"] / area / unit


def jumping_frames(subject: dict[int, tuple[float, float, float]], window: int = JUMP["window"],
                   spike: float = JUMP["spike"], step_window: int = JUMP["step_window"], step: float = JUMP["step"],
                   shift: float = JUMP["shift"]) -> list[int]:
    """The frames whose subject (``subject_measure`` of consecutive frames, by index) jumps in size or place against
    the frames around it (JUMP)."""
    indices = sorted(subject)
    measured = np.array([subject[i] for i in indices], np.float64).reshape(-1, 3)
    areas, centroids = measured[:, 0], measured[:, 1:]

    def changed(now: float, before: float, factor: float) -> bool:
        ratio = (now + JUMP_FLOOR) / (before + JUMP_FLOOR)
        return ratio > factor or ratio < 1 / factor

    jumping = []
    for k, index in enumerate(indices):
        around = [j for j in range(max(0, k - window), min(len(indices), k + window + 1)) if j != k]
        if not around:
            continue
        typical = float(np.median(areas[around]))
        if changed(areas[k], typical, spike) or (k > 0 and changed(float(np.median(areas[k:k + step_window])),
                                                                    float(np.median(areas[max(0, k - step_window):k])),
                                                                    step)):
            jumping.append(index)
            continue
        present = [j for j in around if areas[j] >= JUMP_FLOOR]
        if areas[k] < JUMP_FLOOR or not present:
            continue  # no subject here or around, and the areas agree: no place to compare
        moved = float(np.hypot(*(centroids[k] - np.median(centroids[present], axis=0))))
        if moved > shift * np.sqrt(max(areas[k], typical)):
            jumping.append(index)
    return jumping


def _where(first: int, last: int) -> str:
    return f"frame {first}" if first == last else f"frames {first}-{last}"


def _qualified_name(factory) -> str:
    """A function's or class's name, stable across runs (a partial's options belong in the caller's settings)."""
    factory = getattr(factory, "func", factory)
    return f"{getattr(factory, '__module__', '')}.{getattr(factory, '__qualname__', type(factory).__qualname__)}"


class _Everything:
    """Every frame (the clip's length unknown): nothing is reused."""

    def __contains__(self, index) -> bool:
        return True


def _runs(indices: list[int]) -> list[tuple[int, int]]:
    """Sorted frame indices -> [(start, stop), ...] of consecutive ones."""
    runs: list[list[int]] = []
    for i in indices:
        if runs and runs[-1][1] == i:
            runs[-1][1] = i + 1
        else:
            runs.append([i, i + 1])
    return [(a, b) for a, b in runs]


def _bridged(runs: list[tuple[int, int]], gap: int) -> list[list[int]]:
    """[(start, stop), ...] of frames -> [[first, last], ...], runs at most ``gap`` frames apart joined (one piece of
    advice for a stretch where the keyframes disagree on and off)."""
    joined: list[list[int]] = []
    for start, stop in runs:
        if joined and start - joined[-1][1] <= gap:
            joined[-1][1] = stop - 1
        else:
            joined.append([start, stop - 1])
    return joined


def _merged(spans: list[tuple[int, int | None]]) -> list[tuple[int, int | None]]:
    """Frame ranges that overlap or touch, as one (a pass reads them in one sweep)."""
    merged: list[list] = []
    for start, stop in sorted(spans, key=lambda s: s[0]):
        if merged and (merged[-1][1] is None or start <= merged[-1][1]):
            merged[-1][1] = None if stop is None or merged[-1][1] is None else max(merged[-1][1], stop)
        else:
            merged.append([start, stop])
    return [(a, b) for a, b in merged]


def _describe(frames: list[int]) -> str:
    """[3, 4, 5, 9] -> "frames 3..5, 9" (a few runs, then how many more)."""
    runs = [f"{a}..{b - 1}" if b - a > 1 else f"{a}" for a, b in _runs(frames)]
    shown = ", ".join(runs[:4]) + (f" and {len(runs) - 4} more runs" if len(runs) > 4 else "")
    return f"{len(frames)} ({'frame' if len(frames) == 1 else 'frames'} {shown})"


def guided_matter(job, keyframes, work: str | Path | None = None, prior_mode: str = "auto",
                  model: str = "rvm-mobilenetv3", cache: str | None = None, guidance: dict | None = None,
                  propagator: dict | None = None, warn=None, notify=None, runners=None,
                  **options) -> GuidedMatter:
    """The guided matter for a checked ``pipeline.Job``, as the CLI and the API build it.

    keyframes: a ``guidance.Keyframes``; those outside the job's frames are left out (none inside: UsageError).
    guidance / propagator: how the keyframes were read and what propagates them (JSON values): with the input's
    fingerprint, the frame size and the prior's model, what a kept work folder is checked against. ``options`` go
    to ``GuidedMatter`` (e.g. ``propagator_factory``); ``runners`` opens the prior's weights as
    ``backends.open_runner`` does (a batch worker passes one that loads them once).
    """
    span = job.span
    inside = keyframes_in_span(span, keyframes)
    settings = {"input": job.source.fingerprint() if work is not None else None, "size": [job.width, job.height],
                "guidance": guidance or {}, "propagator": propagator or {},
                "prior_model": model if prior_mode != "none" else None}
    prior = open_prior(prior_mode, model, cache, warn, runners)
    return GuidedMatter(inside, work=work, prior=prior, prior_mode=prior_mode,
                        settings=settings, notify=notify, warn=warn, **options)


def open_prior(mode: str, model: str = "rvm-mobilenetv3", cache: str | None = None, warn=None, runners=None):
    """RVM for --prior, or None. With "auto" and no weights to be had (offline), guided matting goes on without it
    and says so (``warn``); "rvm" insists (ModelError)."""
    if mode == "none":
        return None
    from ..backends import open_runner
    from ..errors import ModelError
    from .recurrent import RecurrentMatter

    try:
        return RecurrentMatter((runners or open_runner)(model, cache=cache), warmup=0)
    except ModelError as exc:
        if mode == "rvm":
            raise
        (warn or logging.getLogger("vidmatte").warning)(f"no RVM prior ({exc}); matting from the keyframes alone")
        return None


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
    from ..solvers.trimap_alpha import solve_alpha

    return solve_alpha(frame, trimap, init=start, prior=prior,
                       prior_weight=prior_weight if prior is not None else 0.0)


class _SharedBandSolve:
    """``_band_solve`` for the solves of one frame: the frame's systems are built on the first and reused."""

    def __init__(self):
        self.problem = None

    def __call__(self, frame: np.ndarray, trimap: np.ndarray, start: np.ndarray | None, prior=None,
                 prior_weight: float | np.ndarray = 0.0) -> np.ndarray:
        from ..solvers.trimap_alpha import BandProblem

        if self.problem is None:
            self.problem = BandProblem(frame, trimap)
        elif self.problem.image is not frame or self.problem.trimap is not trimap:
            raise ValueError("a shared band solve is for one frame and one trimap")
        return self.problem.solve(start, prior, prior_weight if prior is not None else 0.0)[0]


def foreground_colours(frame: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Multi-level foreground colours (float32 [H,W,3] 0..1), on the subject's box; above 1440p at half size (+10%
    error, 3x faster; benchmarks/solver.py). Deterministic in (frame, alpha): a frame whose alpha is read back from
    the work folder gets the same colours, so they are not stored."""
    from ..solvers.trimap_alpha import foreground

    return foreground(frame, alpha, scale=2 if frame.shape[0] * frame.shape[1] > 2560 * 1440 else 1)
