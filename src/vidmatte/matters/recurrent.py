"""Auxiliary-free matting (RVM): the matter carries the recurrent state from frame to frame."""

from __future__ import annotations

from typing import Iterable, Iterator

import numpy as np

from ..backends.base import Runner
from ..matte import DenseMatte, CoefficientMatte, Matte


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
    """Streaming matting for one video: ``step(frame) -> (fgr, pha)`` with the state kept here.

    frame: uint8 [H,W,3] RGB (or float 0..1). Returns fgr float32 [H,W,3] 0..1 and pha float32 [H,W] 0..1.
    ``downsample_ratio=None`` picks RVM's auto rule from the first frame's size.
    """

    def __init__(self, runner: Runner, downsample_ratio: float | None = None, seq_chunk: int = 1):
        self.runner = runner
        self.downsample_ratio = downsample_ratio
        # Frames per network call. Runners with a time axis (PyTorch: ``run_clip``) take them in one call; the
        # official ONNX graph has none, so ONNX runs go frame by frame whatever seq_chunk says.
        self.seq_chunk = max(1, int(seq_chunk))
        self.reset()

    def reset(self) -> None:
        """Forget the past (call between unrelated videos)."""
        self._state = self.runner.initial_state()
        self._ratio = self.downsample_ratio

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

    # --- frames in, Mattes out: what the pipeline uses ------------------------------------------------------
    @property
    def fused_tail(self) -> bool:
        """The runner stops at the guided filter's coefficients (the fast ONNX path)."""
        return hasattr(self.runner, "coarse")

    def prepare(self, frame: np.ndarray) -> object:
        """uint8 [H,W,3] -> what ``matte`` takes; may run in another thread than ``matte`` (a decoder's).

        Guided runners get (frame, small float input), a few hundred KB made without a full-size float copy;
        others (and float frames) the float tensor of the whole frame.
        """
        if self._ratio is None:
            self._ratio = auto_downsample_ratio(*frame.shape[:2])
        if self.fused_tail and frame.dtype == np.uint8:
            return frame, self.runner.shrink(frame, self._ratio)
        return frame_to_tensor(frame)

    def matte(self, prepared: list) -> list[Matte]:
        """Consecutive prepared frames -> one Matte each, in order; the state is carried."""
        if self.fused_tail and all(isinstance(p, tuple) for p in prepared):
            mattes = []
            for frame, small in prepared:
                coefficients, self._state = self.runner.coarse(small, self._state)
                mattes.append(CoefficientMatte(frame, coefficients))
            return mattes
        tensors = [p if p.dtype == np.float32 else frame_to_tensor(p) for p in prepared]
        fgr, pha = self.step_chunk(tensors[0] if len(tensors) == 1 else np.concatenate(tensors))
        return [DenseMatte(fgr[i], pha[i, 0]) for i in range(len(fgr))]

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
