"""Guided matting online, for apps and live sources: frames in, one at a time, with a keyframe now and then.

``GuidedStream.step(frame, keyframe=None) -> (fgr, pha)``: the latest keyframe given is the anchor, and its trimap
is carried forward to each new frame by the same keyframe-anchored propagator the file matter uses; alpha and
foreground come from the same ``TrimapSolver``. A new keyframe replaces the anchor (an app's user corrects the
subject as the video plays). Going forward only is what online use allows: a file gets the better two-way
ensemble (``convert_guided``/``vidmatte guided``: every keyframe carried both ways and fused), with measurably lower
error between keyframes (README, guided matting).
"""

from __future__ import annotations

from typing import Callable, Iterable, Iterator

import numpy as np

from ..errors import GuidanceError
from ..guidance.propagate import FlowPropagator, Propagated
from ..solvers.trimap_solver import TrimapSolver, foreground_colours
from .base import as_rgb_u8

# A keyframe as an app gives it: an image path, or the image as an array (trimap, mask, label map).
ReadKeyframe = Callable[[object, tuple[int, int]], np.ndarray]


class GuidedStream:
    """Frame-by-frame guided matting (made by ``vidmatte.load_guided``).

    solver: the ``TrimapSolver`` (with RVM's prior, or not); read_keyframe(guidance, (width, height)) -> trimap
    uint8 [H,W] {0,128,255}; keyframe: the anchor for the first ``step`` (or give it to that step).
    """

    def __init__(self, solver: TrimapSolver, read_keyframe: ReadKeyframe, keyframe=None,
                 propagator_factory=FlowPropagator):
        self.solver, self._read, self._new_propagator = solver, read_keyframe, propagator_factory
        self._first_keyframe = keyframe
        self.reset()

    def reset(self) -> None:
        """Before an unrelated video: forget the anchor (the keyframe given at construction applies again)."""
        self._propagator = None
        self._pending = self._first_keyframe
        self.trimap: np.ndarray | None = None  # the last frame's propagated trimap, for an app to show
        self.solver.restart()

    def step(self, frame: np.ndarray, keyframe=None) -> tuple[np.ndarray, np.ndarray]:
        """frame uint8 [H,W,3] RGB (float 0..1 and grey are accepted too); keyframe: this frame's trimap or mask
        (path or array), which becomes the anchor. -> (fgr float32 [H,W,3] 0..1, pha float32 [H,W] 0..1)."""
        frame = as_rgb_u8(frame)
        if keyframe is None and self._pending is not None:
            keyframe = self._pending
        self._pending = None
        result = self._anchor(frame, keyframe) if keyframe is not None else self._carry(frame)
        self.trimap = result.trimap
        alpha, _ = self.solver.solve(frame, result.trimap, result.band, given=keyframe is not None,
                                     distance=result.distance)
        return foreground_colours(frame, alpha), alpha

    def stream(self, frames: Iterable[np.ndarray], keyframes: dict | None = None
               ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """``step`` over ``frames``; ``keyframes`` maps a position in ``frames`` to its trimap or mask."""
        keyframes = keyframes or {}
        for i, frame in enumerate(frames):
            yield self.step(frame, keyframes.get(i))

    def _anchor(self, frame: np.ndarray, keyframe) -> Propagated:
        trimap = self._read(keyframe, (frame.shape[1], frame.shape[0]))
        first = self._propagator is None
        self._size = frame.shape[:2]
        self._propagator = self._new_propagator()
        result = self._propagator.start(frame, trimap)
        if first:  # as a file's first keyframe decides --prior auto, so does the stream's
            if self.solver.decides:
                self.solver.decide(frame, result.trimap)
            self.solver.begin_sequence()
        return result

    def _carry(self, frame: np.ndarray) -> Propagated:
        if self._propagator is None:
            raise GuidanceError("no keyframe yet: give the first frame's trimap or mask (step(frame, keyframe=...) "
                                "or load_guided(keyframe=...))")
        if frame.shape[:2] != self._size:
            raise GuidanceError(f"frame is {frame.shape[1]}x{frame.shape[0]} but the keyframe's frame was "
                                f"{self._size[1]}x{self._size[0]}: give a new keyframe")
        return self._propagator.step(frame)
