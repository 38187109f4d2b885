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
streaming form for apps (``matters.guided_stream``) shares the propagator and ``TrimapSolver``
(``solvers.trimap_solver``).
"""

from __future__ import annotations

import bisect
import logging
import tempfile
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from ..guidance.propagate import LOST_TRACK_SHARE, FlowPropagator, Propagated, fuse
from ..matte import SolvedMatte
from ..solvers.trimap_solver import (AGREE_MARGIN, BAND_CHECK, BAND_CHECK_SIZE, BAND_PRIOR_RAMP, NEAR_KEYFRAME_SHARE,
                                     PRIOR_WEIGHT, RVM_SURE, TrimapSolver, foreground_colours)
from .base import Pass, Span, as_rgb_u8, writing_pass
from .guided_work import WorkFolder, keyframe_token
from .keyframe_network import keyframes_in_span
from .recurrent import open_prior


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
# A tracked frame whose confidence (track.SubjectTracker) is below DOUBT is doubtful (probably lost or leaking);
# doubtful runs at most DOUBT_GAP frames apart are reported as one. Chosen on the DAVIS-2016 development clips
# (docs/EVALUATION.md, "Doubtful frames": how well it predicts J < 0.5).
DOUBT = 0.5
DOUBT_GAP = 5


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
        # frame -> the subject tracker's confidence, per direction (track.TrackPropagator; a kept work folder's
        # frames read back in ``passes``): doubtful_frames
        self._confidence: dict[str, dict[int, float]] = {"forward": {}, "backward": {}}
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
        passes = self._propagation_passes("forward") + self._propagation_passes("backward") + [writing_pass(span)]
        # what the tracker said of the frames kept from an earlier run (those propagated again get it anew)
        self._confidence = self.store.read_confidence()
        return passes

    def begin_pass(self, p: Pass) -> None:
        self._pass, self._propagator = p, None
        if p.writes:
            if self._work_arg is not None:
                self.store.keep_confidence(self._confidence)
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
        confidence = self.frame_confidence()
        doubtful = _bridged(_runs(sorted(i for i, c in confidence.items() if c < DOUBT)), DOUBT_GAP)
        suggested = suggest_keyframe(confidence, doubtful)
        if doubtful:
            spans = ", ".join(_where(first, last) for first, last in doubtful[:6])
            more = f" and {len(doubtful) - 6} more" if len(doubtful) > 6 else ""
            self._warn(f"the subject is probably lost or leaking on {spans}{more} (the tracker's confidence is "
                       f"low there): one more keyframe at frame {suggested} would help most")
        return {"reused_frames": self.reused_frames, "rvm_prior": self.alpha.uses_prior,
                "contradicting_frames": runs, "jumping_frames": jumps, "doubtful_frames": doubtful,
                "suggested_keyframe": suggested,
                "confidence": {str(i): round(float(c), 3) for i, c in sorted(confidence.items())}}

    def frame_confidence(self) -> dict[int, float]:
        """Each tracked frame's confidence (0..1): the better of its two directions' (fusion takes each pixel
        from the more confident one). Keyframes are left out, and frames never tracked (the flow propagator; a
        kept work folder's frames from before confidences were kept)."""
        forward, backward = self._confidence["forward"], self._confidence["backward"]
        return {i: max(forward.get(i, 0.0), backward.get(i, 0.0)) for i in sorted(set(forward) | set(backward))
                if i not in self.keyframes}

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
            log = getattr(self._propagator, "log", None)
            if log and "confidence" in log[-1]:
                self._confidence[direction][index] = float(log[-1]["confidence"])
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


def suggest_keyframe(confidence: dict[int, float], doubtful: list[list[int]]) -> int | None:
    """The frame where one more keyframe would help most: in the doubtful span that loses the most (the sum of
    1 - confidence over its frames), its least confident frame (of equals, the one nearest the span's middle: it
    reaches the most of the span both ways). None without doubtful frames."""
    if not doubtful:
        return None

    def loss(span: list[int]) -> float:
        return sum(1.0 - confidence.get(i, 1.0) for i in range(span[0], span[1] + 1))

    first, last = max(doubtful, key=loss)
    middle = (first + last) / 2
    return min(range(first, last + 1), key=lambda i: (confidence.get(i, 1.0), abs(i - middle), i))


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
