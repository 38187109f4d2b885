"""Auxiliary-free matting (RVM): the matter carries the recurrent state from frame to frame. Other modes take its
alpha as a prior (``open_prior``): guided matting's ``--prior``, the plate matter's person prior."""

from __future__ import annotations

import logging
from typing import Iterable, Iterator

import numpy as np

from ..backends.base import Runner, open_runner
from ..errors import ModelError
from ..io.probe import LARGE_FRAME_PIXELS
from ..matte import CoefficientMatte, DenseMatte, Matte
from .base import Pass, Span, as_rgb_u8, writing_pass

# Frames the recurrent state is warmed on before a file's first frame is matted (``--warmup``); see ``passes``.
DEFAULT_WARMUP = 8


def auto_downsample_ratio(height: int, width: int) -> float:
    """RVM's rule: bring the longer side to about 512 px, never upsample."""
    return min(512.0 / max(height, width), 1.0)


def frame_to_tensor(frame: np.ndarray) -> np.ndarray:
    """uint8 [H,W,3] RGB -> float32 [1,3,H,W] in 0..1 (one pass: transpose view then scaled copy)."""
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"expected an RGB frame of shape [H,W,3], got {frame.shape}")
    if frame.dtype == np.uint8:
        return np.multiply(frame.transpose(2, 0, 1)[None], np.float32(1 / 255), dtype=np.float32)
    return np.ascontiguousarray(frame.transpose(2, 0, 1)[None], dtype=np.float32)


class RecurrentMatter:
    """Streaming matting for one video (RVM): ``step(frame) -> (fgr, pha)`` with the recurrent state kept here.

    frame: uint8 [H,W,3] RGB (grey and float 0..1 frames are converted, see ``matters.base.as_rgb_u8``). Returns fgr
    float32 [H,W,3] 0..1 and pha float32 [H,W] 0..1. ``downsample_ratio=None`` picks RVM's auto rule from the first
    frame's size. ``warmup``: frames to warm the state on before a file's first frame (pipeline jobs only).
    """

    lead_in = 0  # frames before a chunk's first that warm the state (see ``passes``)

    def __init__(self, runner: Runner, downsample_ratio: float | None = None, seq_chunk: int = 1,
                 warmup: int = DEFAULT_WARMUP, lead_in: int = 0):
        self.runner = runner
        self.downsample_ratio = downsample_ratio
        # Frames per network call. Runners with a time axis (PyTorch: ``run_clip``) take them in one call; the
        # official ONNX graph has none, so ONNX runs go frame by frame whatever seq_chunk says.
        self.seq_chunk = max(1, int(seq_chunk))
        self.warmup = max(0, int(warmup))
        # A piece of a longer run (``vidmatte batch --chunk-frames``): the state is warmed forward on the
        # ``lead_in`` frames before the piece, as the whole run would have reached it (batch/chunks.py).
        self.lead_in = max(0, int(lead_in))
        self.reset()

    def reset(self) -> None:
        """Forget the past (call between unrelated videos)."""
        self._state = self.runner.initial_state()
        self._ratio = self.downsample_ratio
        self._size: tuple[int, int] | None = None  # (height, width) of this video's frames

    # --- the pipeline's protocol (matters.base.Matter) -----------------------------------------------------
    def passes(self, span: Span) -> list[Pass]:
        """Warm-up, then the writing pass.

        The recurrent state starts empty, so a clip's first frames come out visibly worse (RVM has not yet seen
        the background move past the subject). For sources that can be read again, the state is first run over the
        ``warmup`` frames after the first one, backward (frame first+n down to first+1), so the pass that writes
        starts at ``first`` with a state that has just seen its neighbour. Cameras cannot be re-read: no warm-up.
        A chunk of a longer run with a ``lead_in`` starts ``lead_in`` frames earlier, as a run starts there, and runs
        forward up to its first frame: with a lead-in back to the run's start it writes what the whole run writes.
        The gain is measured on the benchmark's first frames (docs/EVALUATION.md, "Warm-up").
        """
        write = writing_pass(span)
        if self.lead_in and span.first > 0 and span.seekable:
            # Start where the whole run would have been ``lead_in`` frames ago, as it started, and run up to here.
            begin = max(0, span.first - self.lead_in)
            return self._warm_up(Span(begin, span.stop, True)) + [Pass("lead-in", begin, span.first), write]
        return self._warm_up(span) + [write]

    def _warm_up(self, span: Span) -> list[Pass]:
        if not self.warmup or not span.seekable:
            return []
        last = span.first + self.warmup if span.stop is None else min(span.first + self.warmup, span.stop - 1)
        if last <= span.first:  # a one-frame input: warm up on that frame itself
            return [Pass("warm-up", span.first, span.first + 1)]
        return [Pass("warm-up", span.first + 1, last + 1, reverse=True)]

    def begin_pass(self, p: Pass) -> None:
        """The state carries over from the warm-up into the writing pass: that is the point of warming up."""

    def prepare(self, frame: np.ndarray, index: int | None = None) -> object:
        """uint8 [H,W,3] -> what ``matte`` takes; may run in another thread than ``matte`` (a decoder's).

        Fast-path runners get (frame, small float input), a few hundred KB made without a full-size float copy.
        Others get the float tensor of the whole frame, except above 1440p, where the uint8 frame (25 MB at 4K)
        waits in the hand-over and becomes float (100 MB) only when the network is ready for it.
        """
        frame = as_rgb_u8(frame)
        self._check_size(frame.shape[:2])
        if self._ratio is None:
            self._ratio = auto_downsample_ratio(*frame.shape[:2])
        if self.fused_tail:
            return frame, self.runner.shrink(frame, self._ratio)
        if frame.shape[0] * frame.shape[1] > LARGE_FRAME_PIXELS:
            return frame
        return frame_to_tensor(frame)

    def matte(self, prepared: list) -> list[Matte]:
        """Consecutive prepared frames -> one Matte each, in order; the state is carried."""
        if self.fused_tail:
            mattes = []
            for frame, small in prepared:
                coefficients, self._state = self.runner.coarse(small, self._state)
                mattes.append(CoefficientMatte(frame, coefficients))
            return mattes
        tensors = [p if p.dtype == np.float32 else frame_to_tensor(p) for p in prepared]
        fgr, pha = self.step_chunk(tensors[0] if len(tensors) == 1 else np.concatenate(tensors))
        return [DenseMatte(fgr[i], pha[i, 0]) for i in range(len(fgr))]

    @property
    def fused_tail(self) -> bool:
        """The runner stops at the guided filter's coefficients and the tail runs fused with compositing."""
        return hasattr(self.runner, "coarse")

    def _check_size(self, size: tuple[int, int]) -> None:
        if self._size is None:
            self._size = size
        elif size != self._size:
            (h0, w0), (h1, w1) = self._size, size
            raise ValueError(f"frame size changed from {w0}x{h0} to {w1}x{h1}; call reset() before a new video")

    # --- tensors in, tensors out ------------------------------------------------------------------------------
    def step_tensor(self, src: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """src float32 [1,3,H,W] 0..1 -> (fgr [1,3,H,W], pha [1,1,H,W]); the state is carried to the next call."""
        if self._ratio is None:
            self._ratio = auto_downsample_ratio(*src.shape[2:])
        fgr, pha, self._state = self.runner(src, self._state, self._ratio)
        return fgr, pha

    def step_chunk(self, src: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """src float32 [T,3,H,W] 0..1, consecutive frames -> (fgr [T,3,H,W], pha [T,1,H,W]); state carried."""
        run_clip = getattr(self.runner, "run_clip", None)
        if run_clip is None or len(src) == 1:
            outputs = [self.step_tensor(src[i:i + 1]) for i in range(len(src))]
            return np.concatenate([f for f, _ in outputs]), np.concatenate([p for _, p in outputs])
        if self._ratio is None:
            self._ratio = auto_downsample_ratio(*src.shape[2:])
        fgr, pha, self._state = run_clip(src, self._state, self._ratio)
        return fgr, pha

    # --- frames in, results out: for apps ---------------------------------------------------------------------
    def step_matte(self, frame: np.ndarray) -> Matte:
        """uint8 [H,W,3] RGB -> a Matte: ask it for exactly the pictures you need, e.g.
        ``m.step_matte(frame).pictures(background).composition`` (uint8, the fastest way to a composite)."""
        return self.matte([self.prepare(frame)])[0]

    def step(self, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """uint8 [H,W,3] RGB -> (fgr float32 [H,W,3], pha float32 [H,W]), both 0..1."""
        return self.step_matte(frame).foreground_and_alpha()

    def stream(self, frames: Iterable[np.ndarray]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for frame in frames:
            yield self.step(frame)


def open_prior(mode: str, model: str = "rvm-mobilenetv3", cache: str | None = None, warn=None, runners=None):
    """RVM as a prior (``mode``: auto, rvm or none, as guided matting's --prior), or None. With "auto" and no weights
    to be had (offline), the mode goes on without it and says so (``warn``); "rvm" insists (ModelError). runners:
    opens the weights as ``backends.open_runner`` does (a batch worker passes one that loads them once)."""
    if mode == "none":
        return None
    try:
        return RecurrentMatter((runners or open_runner)(model, cache=cache), warmup=0)
    except ModelError as exc:
        if mode == "rvm":
            raise
        (warn or logging.getLogger("vidmatte").warning)(f"no RVM prior ({exc}); matting from the keyframes alone")
        return None
