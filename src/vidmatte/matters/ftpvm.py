"""``vidmatte guided --method ftpvm``: FTP-VM's network mattes the subject marked on the keyframes.

Passes: one short pass per keyframe encodes it (frame + trimap) into the network's memory, then the writing pass runs
the network over every frame in order with its recurrent state carried from frame to frame. As in the official
inference (``InferenceCoreRecurrentMemory``), the memory holds one given keyframe, replaced by each new keyframe as
the pass reaches it (frames before the first keyframe use the first), plus, with ``memory_every`` N > 0, the
network's own trimap of every N-th frame, the last ``bank_size`` of them kept (the official ``memory_save_iter``
and ``MemoryBank(top_k=5)``). Keyframes themselves take their given trimap for the full matte.

Frames are processed at ``target_size`` on the longer side (the official footage script's 1024 by default): the
matter resizes and zero-pads to multiples of 16 itself, runs the network at ratio 1 and brings alpha back to the
frame with the network's grey fast guided filter, so the padding never shifts the result.

Checkpoints: an official ``ftpvm.pth`` state dict, or a training checkpoint of ours ({"model", "model_args"}); or
``rvm-init``: a network whose encoder is RVM's and whose every other layer is untrained (for trying the plumbing and
as a training start, not for results).
"""

from __future__ import annotations

import logging

import numpy as np

from ..errors import UsageError
from ..guidance.propagate import BG, FG, UNKNOWN
from ..matte import SolvedMatte
from ..models.loaders import load_ftpvm
from ..solvers.trimap_solver import foreground_colours
from .base import Pass
from .keyframe_network import KeyframeNetworkMatter, checked_trimap, keyframes_in_span, on_device

TARGET_SIZE = 1024  # the official footage script's default longer side
BANK_SIZE = 5  # the official MemoryBank's top_k


def processing_size(height: int, width: int, target: int) -> tuple[int, int]:
    """The frame's size scaled so its longer side is at most ``target`` (never up)."""
    ratio = min(target / max(height, width), 1.0)
    return max(1, int(height * ratio)), max(1, int(width * ratio))


class FtpvmMatter(KeyframeNetworkMatter):
    """Mattes the subject of ``keyframes`` ({index: trimap uint8 [H,W] in {0,128,255}}) with an FTP-VM network."""

    network, keyframe_pass = "FTP-VM", "memory"

    def __init__(self, model, keyframes: dict[int, np.ndarray], target_size: int = TARGET_SIZE,
                 memory_every: int = 0, bank_size: int = BANK_SIZE):
        if not keyframes:
            raise ValueError("FTP-VM needs at least one keyframe")
        self.model, self.keyframes = model, dict(sorted(keyframes.items()))
        self.target_size, self.memory_every, self.bank_size = target_size, memory_every, bank_size
        self.reset()

    # --- matters.base.Matter ------------------------------------------------------------------------------------
    def reset(self) -> None:
        self._encoded: dict[int, tuple] = {}  # keyframe index -> (feat16, value)
        self._pass: Pass | None = None
        self._state = None
        self._given: tuple | None = None
        self._own: list[tuple] = []

    def begin_pass(self, p: Pass) -> None:
        self._pass = p
        if p.writes:
            self._state, self._own = None, []
            self._given = self._encoded[next(iter(self.keyframes))]

    def _keep(self, index: int, frame: np.ndarray, tensors: tuple) -> None:
        self._encoded[index] = self._encode(tensors, self._trimap_tensor(index, frame))

    # --- tensors ------------------------------------------------------------------------------------------------
    def _tensor(self, frame: np.ndarray) -> tuple:
        """Decoder thread: the frame as [1,1,3,h,w] at the processing size padded to 16, and at full size."""
        import torch

        from ..models.ftpvm import pad_to_multiple

        full = torch.from_numpy(frame).permute(2, 0, 1).float().div_(255)[None]
        small = self._resize(full)
        return full, small, pad_to_multiple(small)[None]

    def _resize(self, x):
        import torch.nn.functional as F

        size = processing_size(*x.shape[-2:], self.target_size)
        return x if size == tuple(x.shape[-2:]) else F.interpolate(x, size, mode="bilinear", align_corners=False)

    def _trimap_tensor(self, index: int, frame: np.ndarray):
        import torch

        from ..models.ftpvm import pad_to_multiple

        trimap = checked_trimap(self.keyframes, index, frame)
        levels = np.where(trimap == FG, 1.0, np.where(trimap == BG, 0.0, 0.5)).astype(np.float32)
        return self._on_device(pad_to_multiple(self._resize(torch.from_numpy(levels)[None, None]))[None])

    def _encode(self, tensors: tuple, trimap) -> tuple:
        return self.model.encode_imgs_to_value(tensors[2], trimap)

    # --- the writing pass ---------------------------------------------------------------------------------------
    def _memory(self) -> tuple:
        import torch

        entries = [self._given] + self._own
        return torch.cat([e[0] for e in entries], dim=1), torch.cat([e[1] for e in entries], dim=2)

    def _matte_frame(self, index: int, frame: np.ndarray, tensors: tuple) -> SolvedMatte:
        full, small, padded = tensors
        if index in self._encoded:
            self._given = self._encoded[index]
        from ..models.ftpvm import no_state

        logits, boundary, alpha, self._state = self.model.forward_with_memory(padded, *self._memory(),
                                                                             *(self._state or no_state()))
        if index in self.keyframes:
            alpha = self._given_trimap_matte(index, frame, boundary)
        if self.memory_every > 0 and index % self.memory_every == 0 and index not in self.keyframes:
            self._remember(padded, logits)
        alpha = self._to_frame(self._unpadded(alpha, small), full, small)
        given = self.keyframes.get(index)
        trimap = given if given is not None else self._labels(self._unpadded(logits, small), frame)
        return SolvedMatte(frame, alpha, foreground_colours, trimap)

    def _given_trimap_matte(self, index: int, frame: np.ndarray, boundary):
        from ..models.ftpvm import fuse_with_given_trimap

        return fuse_with_given_trimap(self._trimap_tensor(index, frame), boundary)

    def _remember(self, padded, logits) -> None:
        """The network's own trimap of this frame joins the memory (the oldest beyond ``bank_size`` leaves)."""
        import torch

        label = torch.sigmoid(logits).argmax(dim=2, keepdim=True)
        trimap = (label == 1) * 0.5 + (label == 2) * 1.0
        self._own = (self._own + [self.model.encode_imgs_to_value(padded, trimap.float())])[-self.bank_size:]

    @staticmethod
    def _unpadded(x, small):
        """[1,1,C,H16,W16] -> [1,C,h,w]: the zero padding added by ``pad_to_multiple`` removed."""
        h, w = small.shape[-2:]
        top, left = (x.shape[-2] - h) // 2, (x.shape[-1] - w) // 2
        return x[0, :, :, top:top + h, left:left + w]

    @staticmethod
    def _to_frame(alpha, full, small) -> np.ndarray:
        """Alpha at the processing size -> float32 [H,W] at the frame's, through the grey fast guided filter."""
        from ..models.ftpvm import grey_guided_upsample

        if alpha.shape[-2:] != full.shape[-2:]:
            alpha = grey_guided_upsample(full, small, alpha)
        return alpha[0, 0].clamp(0, 1).cpu().numpy().astype(np.float32)

    @staticmethod
    def _labels(logits, frame: np.ndarray) -> np.ndarray:
        """Predicted trimap at the frame's size, uint8 {0,128,255}."""
        import cv2

        label = logits[0].argmax(0).cpu().numpy().astype(np.uint8)
        trimap = np.choose(label, [BG, UNKNOWN, FG]).astype(np.uint8)
        return cv2.resize(trimap, (frame.shape[1], frame.shape[0]), interpolation=cv2.INTER_NEAREST)


def ftpvm_matter(job, keyframes, checkpoint: str | None, cache: str | None = None, warn=None,
                 target_size: int = TARGET_SIZE, memory_every: int = 0, bank_size: int = BANK_SIZE) -> FtpvmMatter:
    """The FTP-VM matter for a checked ``pipeline.Job`` and its ``guidance.Keyframes`` (as ``guided_matter``)."""
    given = keyframes_in_span(job.span, keyframes)
    model = load_ftpvm(checkpoint, cache, warn)
    return FtpvmMatter(model, given, target_size, memory_every, bank_size)


def bank_settings(options: dict, warn=None) -> tuple[int, int]:
    """``--mem-every`` / ``--max-memory`` -> (memory_every, bank_size); unset (None) keeps the official inference's
    defaults: no frame of the network's own joins the memory, and 5 would be kept if they did."""
    every, size = options.get("mem_every"), options.get("max_memory")
    if (every is not None and every < 1) or (size is not None and size < 1):
        raise UsageError("--mem-every and --max-memory must be at least 1")
    if options.get("finetune_steps"):
        raise UsageError("--finetune-steps is not for --method ftpvm (FTP-VM has no online fine-tuning)")
    if size is not None and every is None:
        (warn or logging.getLogger("vidmatte").warning)(
            "--max-memory has no effect on --method ftpvm without --mem-every (the memory is the keyframe alone)")
    return (0 if every is None else every), (BANK_SIZE if size is None else size)


def ftpvm_method(job, keyframes, checkpoint: str | None, *, cache=None, warn=None, options: dict) -> FtpvmMatter:
    """``--method ftpvm`` (``networks.GUIDED_NETWORKS``), the memory bank set by ``--mem-every`` / ``--max-memory``."""
    memory_every, bank_size = bank_settings(options, warn)
    return on_device(ftpvm_matter(job, keyframes, checkpoint, cache=cache, warn=warn, memory_every=memory_every,
                                  bank_size=bank_size), options.get("device"))
