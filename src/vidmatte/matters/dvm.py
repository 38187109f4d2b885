"""``vidmatte guided --method dvm``: DVM's two networks matte the subject marked on the keyframes.

Passes: one short pass per keyframe keeps it (frame + trimap) as a reference of the trimap propagation network;
then the writing pass, in order: each frame's trimap is its keyframe's own or the network's propagation from every
keyframe (corrections are more keyframes: the paper's interactive loop), and the matting network mattes the frame
from its features and those of the ``shift`` frames before it (aligned and aggregated by ST-FAM), kept from the
previous steps so every frame is encoded once. Frames before the window is full repeat the first one. As in the
official test script, the definite regions of the trimap are set to 0 and 1 afterwards.

Frames are processed at ``target_size`` on the longer side, with sides in multiples of 32 and a width of at least
224 (``models.dvm.MIN_WIDTH``), and alpha is resized back to the frame.

Checkpoints: a training checkpoint of ours holding both networks (``model.kind: dvm``). The official release
publishes the matting network's weights only; its file is refused with the reason, since the trimaps would have no
network to come from.
"""

from __future__ import annotations

from collections import deque
from typing import Callable

import numpy as np

from ..guidance.propagate import BG, FG, UNKNOWN
from ..matte import SolvedMatte
from ..models.loaders import load_dvm
from ..solvers.trimap_solver import foreground_colours
from .base import Pass
from .keyframe_network import KeyframeNetworkMatter, checked_trimap, keyframes_in_span, on_device

TARGET_SIZE = 1024  # longer side the networks see (CPU-friendly; the official test resizes to at most 1600)


def processing_size(height: int, width: int, target: int) -> tuple[int, int]:
    """(h, w) in multiples of 32 near the frame's shape, longer side about ``target`` at most (never enlarged,
    except up to the matting network's minimum width)."""
    from ..models.dvm import MIN_WIDTH, MULTIPLE

    scale = min(target / max(height, width), 1.0)
    scale = max(scale, MIN_WIDTH / width)
    return (max(MULTIPLE, round(height * scale / MULTIPLE) * MULTIPLE),
            max(MIN_WIDTH, round(width * scale / MULTIPLE) * MULTIPLE))


def trimap_levels(trimap: np.ndarray) -> np.ndarray:
    """uint8 {0,128,255} -> float32 0 / 0.5 / 1."""
    return np.where(trimap == FG, 1.0, np.where(trimap == BG, 0.0, 0.5)).astype(np.float32)


class DvmMatter(KeyframeNetworkMatter):
    """Mattes the subject of ``keyframes`` ({index: trimap uint8 [H,W] in {0,128,255}}) with DVM's networks."""

    network, keyframe_pass = "DVM", "reference"

    def __init__(self, model, keyframes: dict[int, np.ndarray], target_size: int = TARGET_SIZE):
        if not keyframes:
            raise ValueError("DVM needs at least one keyframe")
        self.model, self.keyframes, self.target_size = model, dict(sorted(keyframes.items())), target_size
        self.reset()

    # --- matters.base.Matter ------------------------------------------------------------------------------------
    def reset(self) -> None:
        self._references: dict[int, tuple] = {}  # keyframe index -> (frame [1,1,3,h,w], trimap [1,1,1,h,w])
        self._memory = None  # the references' keys and values
        self._window: deque = deque()
        self._pass: Pass | None = None

    def begin_pass(self, p: Pass) -> None:
        self._pass = p
        if p.writes:
            import torch

            refs = [self._references[i] for i in self.keyframes if i in self._references]
            with torch.inference_mode():
                self._memory = self.model.trimap.encode_references(torch.cat([r[0] for r in refs], dim=1),
                                                                   torch.cat([r[1] for r in refs], dim=1))
            self._window = deque(maxlen=self.model.matting.shift + 1)

    def _keep(self, index: int, frame: np.ndarray, small) -> None:
        self._references[index] = (small, self._small_trimap(index, frame, small))

    # --- tensors ------------------------------------------------------------------------------------------------
    def _tensor(self, frame: np.ndarray):
        """Decoder thread: the frame as [1,1,3,h,w] 0..1 at the processing size."""
        import torch
        import torch.nn.functional as F

        x = torch.from_numpy(frame).permute(2, 0, 1).float().div_(255)[None]
        size = processing_size(*frame.shape[:2], self.target_size)
        return F.interpolate(x, size, mode="bilinear", align_corners=False, antialias=True)[None]

    def _small_trimap(self, index: int, frame: np.ndarray, small):
        import cv2
        import torch

        trimap = checked_trimap(self.keyframes, index, frame)
        h, w = small.shape[-2:]
        levels = cv2.resize(trimap_levels(trimap), (w, h), interpolation=cv2.INTER_NEAREST)
        return self._on_device(torch.from_numpy(levels)[None, None, None])

    # --- the writing pass ---------------------------------------------------------------------------------------
    def _matte_frame(self, index: int, frame: np.ndarray, small) -> SolvedMatte:
        import torch

        if index in self.keyframes:
            trimap, small_trimap = self.keyframes[index], self._small_trimap(index, frame, small)
        else:
            logits = self.model.trimap.propagate(small, *self._memory)
            label = logits[0, 0].argmax(0)
            small_trimap = (label.float() / 2)[None, None, None]
            trimap = self._labels(label.cpu().numpy().astype(np.uint8), frame)
        matting = self.model.matting
        x = matting.network_input(small, small_trimap)
        self._window.append((x, matting.encode(x)))
        while len(self._window) < self._window.maxlen:  # the first frame stands in for the ones before it
            self._window.appendleft(self._window[0])
        features = [torch.cat([entry[1][level] for entry in self._window], dim=1) for level in range(5)]
        coarse, refined = matting.decode(x, matting.fuse(features))
        alpha = refined if matting.add_refine_stage else coarse
        return SolvedMatte(frame, self._to_frame(alpha, frame, trimap), foreground_colours, trimap)

    @staticmethod
    def _to_frame(alpha, frame: np.ndarray, trimap: np.ndarray) -> np.ndarray:
        """Alpha at the processing size -> float32 [H,W] at the frame's, the trimap's definite regions set."""
        import cv2

        alpha = cv2.resize(alpha[0, 0].clamp(0, 1).cpu().numpy().astype(np.float32), (frame.shape[1], frame.shape[0]),
                           interpolation=cv2.INTER_LINEAR)
        alpha[trimap == FG] = 1.0
        alpha[trimap == BG] = 0.0
        return alpha

    @staticmethod
    def _labels(label: np.ndarray, frame: np.ndarray) -> np.ndarray:
        """Class per pixel (0 bg, 1 unknown, 2 fg) -> trimap uint8 {0,128,255} at the frame's size."""
        import cv2

        trimap = np.choose(label, [BG, UNKNOWN, FG]).astype(np.uint8)
        return cv2.resize(trimap, (frame.shape[1], frame.shape[0]), interpolation=cv2.INTER_NEAREST)


def dvm_method(job, keyframes, checkpoint: str | None, *, cache=None, warn: Callable | None = None,
               options: dict) -> DvmMatter:
    """``--method dvm`` (``networks.GUIDED_NETWORKS``)."""
    given = keyframes_in_span(job.span, keyframes)
    return on_device(DvmMatter(load_dvm(checkpoint), given), options.get("device"))
