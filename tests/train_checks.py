"""Checks every network family's training run must pass, shared by their test files."""

from __future__ import annotations

import pytest


def assert_resumes_exactly(make_config, tmp_path, steps: int = 4, stop: int = 2) -> None:
    """A run stopped after ``stop`` steps, saved and resumed, logs the losses an uninterrupted run logs.
    make_config(folder, steps, **train_overrides) -> config."""
    from vidmatte.train.loop import Trainer

    uninterrupted = Trainer(make_config(tmp_path / "a", steps=steps)).run()
    first = Trainer(make_config(tmp_path / "b", steps=steps))
    first.run(steps=stop)
    path = first.save_checkpoint(tmp_path / "b" / f"step{stop}.pt")
    resumed = Trainer(make_config(tmp_path / "c", steps=steps, resume=str(path)))
    after = resumed.run()
    assert resumed.step == steps and len(after) == steps - stop
    for got, want in zip(after, uninterrupted[stop:]):
        assert got["loss"] == pytest.approx(want["loss"], rel=1e-6, abs=1e-7)


def trained_and_saved(config, tmp_path, terms: set[str], label: str, steps: int = 16):
    """Train ``steps`` steps (the config's count): every loss finite, the named ``terms`` logged, the mean loss of
    the last 4 steps below 0.9x that of the first 4. Returns (trainer, the saved checkpoint's path)."""
    import numpy as np

    from vidmatte.train.loop import Trainer

    trainer = Trainer(config)
    history = trainer.run()
    losses = [h["loss"] for h in history]
    assert len(losses) == steps and all(np.isfinite(losses)) and {f"lr/{t}" for t in terms} <= set(history[0])
    first, last = np.mean(losses[:4]), np.mean(losses[-4:])
    print(f"\n{label}, {steps} CPU steps: mean loss of steps 1-4 {first:.3f}, of steps {steps - 3}-{steps} {last:.3f}")
    assert last < 0.9 * first
    return trainer, trainer.save_checkpoint(tmp_path / "last.pt")
