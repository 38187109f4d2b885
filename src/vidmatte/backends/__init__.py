"""Runners that execute a matting network. All share one contract (see ``base.Runner``); switching is a flag."""

from .base import Runner, open_runner

__all__ = ["Runner", "open_runner"]
