"""What the frame loop needs of a matting mode: the ``Matter`` protocol, its passes, and frame checks.

A matter is one video's worth of state (RVM's recurrent state, a guided matter's keyframes and propagated trimaps,
the plate matter's aligned plate); what guides it (keyframes, a plate, the oracle's trimaps) it is given when it is
made. The pipeline owns everything else: reading, threads, outputs, progress, cancel and safety. A mode therefore plugs
in as a matter plus, where it needs them, analysis passes over the source before the one pass that writes the
outputs::

    matter.reset()
    for each p in matter.passes(span):           # e.g. [warm-up (no outputs), write]
        matter.begin_pass(p)
        for frames of p (forward or backward):   # read by the pipeline's decoder thread
            prepared = matter.prepare(frame, index)   # decoder thread: cheap per-frame work
            mattes = matter.matte([prepared, ...])    # caller's thread: the model
            if p.writes: outputs <- mattes            # writer thread: pictures, encoding
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from ..matte import Matte


@dataclass(frozen=True)
class Span:
    """The frames a job covers: ``first <= index < stop`` (stop None: until the input ends, e.g. a camera)."""

    first: int
    stop: int | None
    seekable: bool  # the source can be read again, backward or from any frame (files, folders; not cameras)

    @property
    def length(self) -> int | None:
        return None if self.stop is None else self.stop - self.first


@dataclass(frozen=True)
class Pass:
    """One sweep over frames ``start <= index < stop`` of the source, in increasing order or ``reverse``d.

    Only the last pass of a job ``writes``; earlier ones are analysis passes (warm-up, propagation) whose results
    stay in the matter.
    """

    name: str
    start: int
    stop: int | None
    reverse: bool = False
    writes: bool = False

    @property
    def length(self) -> int | None:
        return None if self.stop is None else max(self.stop - self.start, 0)


def writing_pass(span: Span) -> Pass:
    return Pass("matting", span.first, span.stop, writes=True)


@runtime_checkable
class Matter(Protocol):
    """A matting mode for one video at a time. ``prepare`` may run in another thread than ``matte``."""

    seq_chunk: int  # frames per ``matte`` call (consecutive in the pass's order)

    def reset(self) -> None:
        """Forget everything about the previous video."""

    def passes(self, span: Span) -> list[Pass]:
        """The passes this job needs, the writing pass last (``[writing_pass(span)]`` for a one-pass mode)."""

    def begin_pass(self, p: Pass) -> None:
        """Called before the first frame of each pass (e.g. to restart recurrent state, or keep it)."""

    def prepare(self, frame: np.ndarray, index: int | None = None) -> object:
        """uint8 [H,W,3] RGB (upright, at the job's size) and its index in the source -> what ``matte`` takes."""

    def matte(self, prepared: list) -> list[Matte | None]:
        """Prepared consecutive frames -> one ``Matte`` each, in order (analysis passes may give None each)."""

    # Optional: ``summary() -> dict``, what the job's result (and the CLI's --json line) reports of this run beside
    # its frames, e.g. the guided matter's {"reused_frames": N}.


def as_rgb_u8(frame: np.ndarray) -> np.ndarray:
    """Check a frame at a public boundary and bring it to uint8 [H,W,3] RGB; a one-line ``ValueError`` otherwise.

    Accepted: uint8 [H,W,3] (as is); grey uint8 [H,W] or [H,W,1] (replicated to RGB); float [H,W,3] RGB in 0..1
    (the rule RVM's tensors follow; values outside are clipped, then rounded to uint8). Refused: RGBA (whose colour
    under transparent pixels is arbitrary: composite or drop the alpha first), other channel counts and dtypes.
    """
    if not isinstance(frame, np.ndarray):
        raise ValueError(f"a frame must be a numpy array (uint8 [H,W,3] RGB), not {type(frame).__name__}")
    if frame.ndim == 3 and frame.shape[2] == 1:
        frame = frame[..., 0]
    if frame.ndim == 2:
        if frame.dtype != np.uint8:
            raise ValueError(f"a grey frame must be uint8 [H,W], got {frame.dtype}")
        return np.repeat(frame[..., None], 3, axis=2)
    if frame.ndim != 3 or frame.shape[2] != 3:
        hint = " (RGBA: composite it or pass frame[..., :3])" if frame.ndim == 3 and frame.shape[2] == 4 else ""
        raise ValueError(f"a frame must be RGB [H,W,3], got shape {tuple(frame.shape)}{hint}")
    if frame.shape[0] == 0 or frame.shape[1] == 0:
        raise ValueError(f"a frame must not be empty, got shape {tuple(frame.shape)}")
    if frame.dtype == np.uint8:
        return frame
    if np.issubdtype(frame.dtype, np.floating):
        return np.rint(np.clip(frame, 0.0, 1.0) * 255.0).astype(np.uint8)
    raise ValueError(f"a frame must be uint8 (0..255) or float (0..1), got {frame.dtype}")
