"""Several subjects in one guided run: one ``GuidedMatter`` per object over one decode of the clip.

Each object is matted as a run of its own would matte it (its keyframes, its propagators, its solve), but the
pipeline reads each frame once for all of them, and what does not depend on the subject is computed once per frame
(``guidance.frame_memo``: the grey copies and frame-to-frame optical flow both propagators use, the tracker's
encoder features). The passes are the union of every object's: a pass over a frame range runs every object's
propagators over it; an object simply waits for its first keyframe.

Where objects overlap, their alphas are made to sum to at most 1 (``exclusive``): each pixel's objects are ranked
front to back by what the propagation decided there (an object whose propagated trimap holds the pixel as definite
foreground is in front of one that holds it as unknown, which is in front of one that calls it background; then the
higher alpha; then the lower id), and each object keeps what the ones in front leave of the pixel. Away from the
overlaps every object's alpha is exactly what a one-object run gives.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from typing import Callable

import numpy as np

from ..matte import LayeredMatte, SolvedMatte
from ..solvers.trimap_solver import foreground_colours
from .base import Pass, Span, as_rgb_u8
from .guided import GuidedMatter, _merged

FG, UNKNOWN = 255, 128


class ObjectsMatter:
    """Mattes ``matters`` ({object id: the object's ``GuidedMatter``}) in one run; each written frame is a
    ``LayeredMatte`` with a layer per object. ``memo``: the ``FrameMemo`` the objects' propagators share (cleared
    at every pass)."""

    seq_chunk = 1

    def __init__(self, matters: dict[int, GuidedMatter], memo=None):
        if not matters:
            raise ValueError("several-object matting needs at least one object")
        self.matters = dict(sorted(matters.items()))
        self.memo = memo
        self._pass: Pass | None = None

    # --- matters.base.Matter ----------------------------------------------------------------------------
    def reset(self) -> None:
        for matter in self.matters.values():
            matter.reset()
        if self.memo is not None:
            self.memo.clear()

    def passes(self, span: Span) -> list[Pass]:
        """Every object's propagation passes, merged per direction (a frame range is read once for all of them),
        then one writing pass."""
        each = [matter.passes(span) for matter in self.matters.values()]
        found: list[Pass] = []
        for name, reverse in (("propagate forward", False), ("propagate backward", True)):
            spans = [(p.start, p.stop) for passes in each for p in passes if not p.writes and p.reverse == reverse]
            found += [Pass(name, start, stop, reverse=reverse) for start, stop in _merged(spans)]
        return found + [next(p for p in each[0] if p.writes)]

    def begin_pass(self, p: Pass) -> None:
        self._pass = p
        if self.memo is not None:
            self.memo.clear()
        for matter in self.matters.values():
            matter.begin_pass(p)

    def prepare(self, frame: np.ndarray, index: int | None = None) -> tuple:
        frame = as_rgb_u8(frame)  # one array for every object: the memo knows a frame by its identity
        return index, frame, [matter.prepare(frame, index) for matter in self.matters.values()]

    def matte(self, prepared: list) -> list[LayeredMatte | None]:
        results = []
        for index, frame, payloads in prepared:
            mattes = [matter.matte([payload])[0] for matter, payload in zip(self.matters.values(), payloads)]
            results.append(None if self._pass is not None and not self._pass.writes else self._layered(frame, mattes))
        return results

    def summary(self) -> dict:
        """Each object's summary (``GuidedMatter.summary``) under ``objects``, by id."""
        shared = {"frame_results_reused": self.memo.hits} if self.memo is not None else {}
        steps = next((m.alpha.prior.steps for m in self.matters.values() if isinstance(m.alpha.prior, SharedPrior)),
                     None)
        if steps is not None:
            shared["prior_steps"] = {"run": steps.runs, "reused": steps.reused}
        return {"objects": {str(i): matter.summary() for i, matter in self.matters.items()}, "shared": shared}

    # --- the writing pass ----------------------------------------------------------------------------------
    def _layered(self, frame: np.ndarray, mattes: list[SolvedMatte]) -> LayeredMatte:
        alphas = exclusive([m.pha for m in mattes], [m.trimap for m in mattes])
        layers = {i: SolvedMatte(frame, alpha, foreground_colours, m.trimap)
                  for i, alpha, m in zip(self.matters, alphas, mattes)}
        return LayeredMatte(frame, layers)


class PriorSteps:
    """The RVM steps several objects' priors have made (``SharedPrior``): (state before, frame) -> the state after
    and the result, for the last ``keep`` steps. RVM's output depends only on its state and the frame, so an object
    whose prior is in the same state as another's when the same frame comes gets that step's result without running
    the network again (in the writing pass every object that uses the prior steps through the same frames)."""

    def __init__(self, keep: int = 8):
        self.keep = keep
        self.table: OrderedDict = OrderedDict()
        self.tokens = itertools.count(1)  # 0: a freshly reset state (the same for every object)
        self.runs = self.reused = 0


class SharedPrior:
    """One object's RVM prior (a ``RecurrentMatter``: ``reset``, ``step``) whose steps are shared through
    ``PriorSteps``. Results are read-only: one array serves every object."""

    def __init__(self, matter, steps: PriorSteps):
        self.matter, self.steps = matter, steps
        self.token = 0

    def reset(self) -> None:
        self.matter.reset()
        self.token = 0

    def step(self, frame: np.ndarray):
        key = (self.token, id(frame))
        entry = self.steps.table.get(key)
        if entry is not None and entry[0] is frame:  # the table holds the frame: its id cannot have been reused
            _, self.token, result, state = entry
            self.matter._state, self.matter._ratio, self.matter._size = state
            self.steps.reused += 1
            return result
        result = self.matter.step(frame)
        for array in result:
            array.setflags(write=False)
        self.token = next(self.steps.tokens)
        self.steps.table[key] = (frame, self.token, result,
                                 (self.matter._state, self.matter._ratio, self.matter._size))
        while len(self.steps.table) > self.steps.keep:
            self.steps.table.popitem(last=False)
        self.steps.runs += 1
        return result


def share_prior(matter: GuidedMatter, steps: PriorSteps) -> GuidedMatter:
    """``matter``'s RVM prior (if it has one) sharing its steps with the other objects' through ``steps``."""
    if matter.alpha.prior is not None:
        matter.alpha.prior = SharedPrior(matter.alpha.prior, steps)
    return matter


def exclusive(alphas: list[np.ndarray], trimaps: list[np.ndarray | None]) -> list[np.ndarray]:
    """The objects' alphas (float32 [H,W] each) made to sum to at most 1 per pixel, front to back as the module doc
    says; unchanged (the same arrays) wherever they already do."""
    if len(alphas) < 2:
        return list(alphas)
    stacked = np.stack(alphas)
    over = np.nonzero(stacked.sum(0) > 1.0)
    if len(over[0]) == 0:
        return list(alphas)
    values = stacked[:, over[0], over[1]]  # [K, N]: the overlapping pixels only
    rank = np.zeros_like(values)
    for k, trimap in enumerate(trimaps):
        if trimap is not None:
            labels = trimap[over]
            rank[k] = np.where(labels == FG, 2.0, np.where(labels == UNKNOWN, 1.0, 0.0))
    order = np.argsort(-(rank * 2 + values), axis=0, kind="stable")  # front first; ties: the lower id
    ordered = np.take_along_axis(values, order, axis=0)
    in_front = np.cumsum(ordered, axis=0) - ordered
    visible = np.clip(np.minimum(ordered, 1.0 - in_front), 0.0, None)
    kept = np.empty_like(values)
    np.put_along_axis(kept, order, visible, axis=0)
    result = []
    for k, alpha in enumerate(alphas):
        alpha = alpha.astype(np.float32, copy=True)
        alpha[over] = kept[k]
        result.append(alpha)
    return result


def prefixed(say: Callable[[str], None] | None, object_id: int) -> Callable[[str], None] | None:
    """``say`` with every message naming the object it is about."""
    if say is None:
        return None
    return lambda message: say(f"object {object_id}: {message}")


def mixed_foreground(layers: dict, frame: np.ndarray | None) -> np.ndarray:
    """One foreground for all objects (a preview's, a composition of them all): each pixel's colours weighted by the
    objects' alphas; the frame's own colours where no object is."""
    total = np.zeros(next(iter(layers.values())).shape, np.float32)
    mixed = np.zeros((*total.shape, 3), np.float32)
    for matte in layers.values():
        alpha = matte.alpha()
        if not alpha.any():
            continue
        mixed += matte.foreground() * alpha[..., None]
        total += alpha
    base = (frame.astype(np.float32) / 255) if frame is not None else np.zeros_like(mixed)
    covered = total > 1e-6
    out = base.copy()
    out[covered] = mixed[covered] / total[covered][:, None]
    # np.clip, not cv2.min/max: OpenCV reads a bare number as the scalar (v, 0, 0, 0), which zeroed green and blue
    return np.clip(out, 0.0, 1.0)
