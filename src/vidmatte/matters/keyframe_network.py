"""What the guided networks' matters (``--method ftpvm``, ``--method dvm``) share: one short pass per keyframe that
keeps it as the network's memory or reference, then the writing pass in order; the keyframes inside the job's
frames. (Reading a ``--checkpoint`` file: ``models.loaders``.)"""

from __future__ import annotations

import numpy as np

from ..errors import UsageError
from .base import Pass, Span, as_rgb_u8, writing_pass


def keyframes_in_span(span: Span, keyframes) -> dict:
    """{index: trimap} of the keyframes inside the job's frame range; none there is a UsageError."""
    inside = [i for i in keyframes.indices() if span.first <= i and (span.stop is None or i < span.stop)]
    if not inside:
        last = "the end" if span.stop is None else span.stop - 1  # stop is exclusive; the message names the last
        raise UsageError(f"no keyframe inside the frames to process ({span.first}..{last}); "
                         f"keyframes at {', '.join(map(str, keyframes.indices()))}")
    return {i: keyframes.at(i) for i in inside}


def checked_trimap(keyframes: dict[int, np.ndarray], index: int, frame: np.ndarray) -> np.ndarray:
    trimap = keyframes[index]
    if trimap.shape != frame.shape[:2]:
        raise ValueError(f"keyframe {index} is {trimap.shape[1]}x{trimap.shape[0]} but the frames are "
                         f"{frame.shape[1]}x{frame.shape[0]}")
    return trimap


def on_device(matter, device):
    """``matter`` with its network on ``device`` (a ``backends.device.Device``; None: left where it is). On the CPU
    the moves are no-ops (``.to`` returns the tensor itself), so the CPU runs the GPU's code path."""
    if device is not None:
        matter.device = device.torch()
        matter.model = matter.model.to(matter.device)
    return matter


class KeyframeNetworkMatter:
    """The pass structure: ``passes`` gives one pass per keyframe (``_keep(index, frame, tensors)`` stores it),
    then the writing pass (``_matte_frame(index, frame, tensors)``), both under ``torch.inference_mode``;
    ``prepare`` turns the frame into ``_tensor(frame)`` on the decoder's thread. Subclasses set ``network`` and
    ``keyframes`` and implement those three and ``begin_pass``."""

    seq_chunk = 1
    network = "the network"
    keyframe_pass = "memory"
    device = None  # the torch device the network runs on (None: where the tensors are made, the CPU)

    def passes(self, span: Span) -> list[Pass]:
        if not span.seekable:
            raise ValueError(f"{self.network} reads its keyframes before the frames; a live source cannot be "
                             "re-read")
        return [Pass(f"{self.keyframe_pass} {i}", i, i + 1) for i in self.keyframes] + [writing_pass(span)]

    def prepare(self, frame: np.ndarray, index: int | None = None) -> tuple:
        frame = as_rgb_u8(frame)
        return index, frame, self._on_device(self._tensor(frame))

    def _on_device(self, tensors):
        """A tensor (or a tuple of them) moved to the network's device: uploaded once, on the decoder's thread."""
        if self.device is None:
            return tensors
        if isinstance(tensors, tuple):
            return tuple(t.to(self.device) for t in tensors)
        return tensors.to(self.device)

    def matte(self, prepared: list) -> list:
        import torch

        with torch.inference_mode():
            if not self._pass.writes:
                for index, frame, tensors in prepared:
                    self._keep(index, frame, tensors)
                return [None] * len(prepared)
            return [self._matte_frame(*item) for item in prepared]
