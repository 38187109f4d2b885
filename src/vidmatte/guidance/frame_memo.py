"""Per-frame results that do not depend on the subject, computed once when several subjects are followed over the
same frames in one pass (``matters.guided_objects``): a frame's grey copies, the optical flow between two consecutive
frames, the RVM encoder's features.

Entries are keyed by what was computed and by the *identity* of the input arrays (the pass hands every subject's
propagator the same frame object), and hold those arrays, so an id cannot be reused while its entry lives. Results
are made read-only: a propagator that changed one in place would change every other subject's.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable

import numpy as np


class FrameMemo:
    """``memo(name, inputs, compute)``: ``compute()``'s result, made once per (name, the input arrays) among the
    last ``keep`` entries."""

    def __init__(self, keep: int = 16):
        self.keep = keep
        self._entries: OrderedDict = OrderedDict()
        self.hits = self.misses = 0

    def __call__(self, name, inputs: tuple[np.ndarray, ...], compute: Callable[[], np.ndarray]):
        key = (name, *(id(a) for a in inputs))
        entry = self._entries.get(key)
        if entry is not None and all(a is b for a, b in zip(entry[0], inputs)):
            self._entries.move_to_end(key)
            self.hits += 1
            return entry[1]
        value = compute()
        if isinstance(value, np.ndarray):
            value.setflags(write=False)
        self._entries[key] = (inputs, value)
        while len(self._entries) > self.keep:
            self._entries.popitem(last=False)
        self.misses += 1
        return value

    def clear(self) -> None:
        self._entries.clear()


class _NoMemo:
    """Computes every time: one subject has nothing to share."""

    def __call__(self, name, inputs, compute):
        return compute()

    def clear(self) -> None:
        pass


NO_MEMO = _NoMemo()


def share_frames(propagator, memo: FrameMemo):
    """``propagator`` reading its per-frame results through ``memo`` where it knows how (``share``); a propagator
    that does not (the memory propagator) computes its own, with the same results."""
    share = getattr(propagator, "share", None)
    if share is not None:
        share(memo)
    return propagator
