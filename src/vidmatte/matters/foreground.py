"""The foreground colours of any matter, remade by ``--foreground-method`` (convert and guided modes; the background
mode's plate matter does it itself, with the plate as its evidence).

A wrapper around the mode's matter: every call passes through, the frame is kept beside what the matter prepared,
and each ``Matte`` comes back as a ``SolvedMatte`` whose colours are made (on the writer's thread, only when an
output needs them) from the frame and the matter's alpha:

- none: the frame's own colours (alpha alone separates: the old background stays in every fringe);
- estimate: multi-level foreground estimation from the frame and alpha (``solvers.foreground``, Germer et al.):
  colours smooth where alpha is, the old background taken out of the mixed pixels;
- despill: the matter's own colours, then the classical despill against the clear background's colour when it is
  one saturated colour (a screen shot matted without a plate); nothing changes over an ordinary background.
"""

from __future__ import annotations

import numpy as np

from ..matte import LayeredMatte, SolvedMatte


class ForegroundMatter:
    def __init__(self, matter, method: str):
        self.matter, self.method = matter, method
        self.seq_chunk = matter.seq_chunk

    def __getattr__(self, name):  # anything else a caller reads of the matter (summary, warmup, ...)
        return getattr(self.matter, name)

    def reset(self) -> None:
        self.matter.reset()

    def passes(self, span):
        return self.matter.passes(span)

    def begin_pass(self, p) -> None:
        self.matter.begin_pass(p)

    def prepare(self, frame: np.ndarray, index: int | None = None):
        return frame, self.matter.prepare(frame, index)

    def matte(self, prepared: list) -> list:
        mattes = self.matter.matte([p for _, p in prepared])
        return [self._remade(np.asarray(frame)[..., :3], m) for (frame, _), m in zip(prepared, mattes)]

    def _remade(self, frame: np.ndarray, matte):
        if matte is None:
            return None
        if isinstance(matte, LayeredMatte):  # several objects: each one's colours from its own alpha
            return LayeredMatte(frame, {i: self._remade(frame, m) for i, m in matte.layers.items()})
        return SolvedMatte(frame, matte.alpha(), self._colours(matte), getattr(matte, "trimap", None))

    def _colours(self, matte):
        method = self.method

        def make(frame: np.ndarray, alpha: np.ndarray) -> np.ndarray:
            return foreground_colours(method, frame, alpha, matte.foreground)

        return make


def foreground_colours(method: str, frame: np.ndarray, alpha: np.ndarray, own) -> np.ndarray:
    """float32 [H,W,3] 0..1 by ``method``; own(): the matter's colours (float32 [H,W,3])."""
    from ..solvers.foreground import despill, estimate_foreground
    from ..solvers.plate_screen import background_key

    if method == "none":
        return frame.astype(np.float32) / 255
    if method == "estimate":
        return estimate_foreground(frame, alpha)[0]
    colours = own()
    key = background_key(frame, alpha) if method == "despill" else None
    return colours if key is None else despill(colours, alpha, key)
