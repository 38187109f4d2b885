"""SolvedMatte: the foreground is estimated only when a picture needs it, and then once, matching DenseMatte."""

from __future__ import annotations

import numpy as np
import pytest

from vidmatte.matte import DenseMatte, SolvedMatte


def case(seed: int = 0):
    rng = np.random.default_rng(seed)
    frame = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
    alpha = rng.random((24, 32), dtype=np.float32)
    fgr = rng.random((24, 32, 3), dtype=np.float32)
    return frame, alpha, fgr


def test_foreground_estimated_once_and_only_when_needed():
    frame, alpha, fgr = case()
    calls = []

    def estimate(f, a):
        calls.append((f is frame, a is alpha))
        return fgr

    matte = SolvedMatte(frame, alpha, estimate)
    alpha_only = matte.pictures(alpha=True)
    assert calls == [] and alpha_only.composition is None and (alpha_only.alpha == alpha).all()
    background = np.full((24, 32, 3), 40, np.uint8)
    solved = matte.pictures(background, foreground=True, alpha=True)
    matte.pictures(background)
    assert calls == [(True, True)]
    dense = DenseMatte(np.ascontiguousarray(fgr.transpose(2, 0, 1)), alpha).pictures(background, foreground=True)
    assert (solved.composition == dense.composition).all() and (solved.foreground == dense.foreground).all()
    assert solved.composition.std() > 10  # a real picture, not a constant


def test_trimmed_matte_keeps_alpha_and_refuses_colours():
    frame, alpha, fgr = case(1)
    matte = SolvedMatte(frame, alpha, lambda f, a: fgr).trim(foreground=False)
    assert matte.frame is None and (matte.pictures(alpha=True).alpha_u8 == np.rint(alpha * 255)).all()
    with pytest.raises(ValueError, match="trimmed to alpha only"):
        matte.pictures(np.zeros((1, 1, 3), np.uint8))
