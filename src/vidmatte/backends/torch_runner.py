"""PyTorch runner: the same contract as the ONNX Runtime runner (numpy in, numpy out, state threaded by the caller)."""

from __future__ import annotations

import os
import pickle
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

from ..errors import ModelError


def pick_device(device="auto") -> "torch.device":
    """auto -> cuda if usable, else mps, else cpu. An explicit GPU that cannot be used is a one-line UsageError
    saying why (``backends.device.resolve_torch``)."""
    from .device import resolve_torch

    return resolve_torch(device).torch()


class TorchRunner:
    """Runs a ``MattingNetwork`` in inference mode. The state lives on the device between calls (no copies)."""

    name = "torch"

    def __init__(self, model, device: str = "auto", threads: int | None = None):
        import torch

        if threads:
            torch.set_num_threads(int(threads))
        self.device = pick_device(device)  # str(): "cpu", "cuda:0" (the run's reported device)
        self.model = fuse_batchnorm(model.eval()).to(self.device)
        self._torch = torch

    @classmethod
    def from_model(cls, model: str = "rvm-mobilenetv3", device: str = "auto", threads: int | None = None,
                   cache: str | None = None) -> "TorchRunner":
        """A registered model name (weights converted once from its ONNX file) or a path to a
        vidmatte checkpoint/safetensors file."""
        from ..models.convert_onnx import load_pretrained

        if isinstance(model, (str, os.PathLike)) and str(model).endswith((".safetensors", ".pt", ".pth", ".ckpt")):
            return cls(load_model_file(model), device, threads)
        # refine_always: reproduce the official ONNX graph, which runs the refiner even at ratio 1.
        return cls(load_pretrained(str(model), cache, refine_always=True), device, threads)

    def initial_state(self) -> list:
        return [self._torch.zeros(1, 1, 1, 1, device=self.device) for _ in range(4)]

    def __call__(self, src: np.ndarray, state, downsample_ratio: float):
        """src float32 [B,3,H,W] 0..1 -> (fgr float32 [B,3,H,W], pha float32 [B,1,H,W], state on the device)."""
        torch = self._torch
        if src.ndim != 4 or src.shape[1] != 3:
            raise ValueError(f"expected src of shape [B,3,H,W], got {src.shape}")
        x = torch.from_numpy(np.ascontiguousarray(src, dtype=np.float32)).to(self.device)
        state = [s if isinstance(s, torch.Tensor) else torch.from_numpy(np.asarray(s)).to(self.device) for s in state]
        with torch.inference_mode():
            fgr, pha, *new_state = self.model(x, *state, downsample_ratio=float(downsample_ratio))
        return fgr.cpu().numpy(), pha.cpu().numpy(), new_state

    def run_clip(self, frames: np.ndarray, state, downsample_ratio: float):
        """Several consecutive frames of one video in one network call (the GRUs step through them inside).

        frames float32 [T,3,H,W] 0..1 -> (fgr [T,3,H,W], pha [T,1,H,W], state after the last frame); the same
        result as T calls of ``__call__`` with the state threaded through.
        """
        torch = self._torch
        if frames.ndim != 4 or frames.shape[1] != 3:
            raise ValueError(f"expected frames of shape [T,3,H,W], got {frames.shape}")
        x = torch.from_numpy(np.ascontiguousarray(frames, dtype=np.float32)).to(self.device)[None]
        state = [s if isinstance(s, torch.Tensor) else torch.from_numpy(np.asarray(s)).to(self.device) for s in state]
        with torch.inference_mode():
            fgr, pha, *new_state = self.model(x, *state, downsample_ratio=float(downsample_ratio))
        return fgr[0].cpu().numpy(), pha[0].cpu().numpy(), new_state


def fuse_batchnorm(model):
    """Fold every inference-mode BatchNorm into the convolution before it (inference only; the model is changed
    in place and returned). Saves a full pass over each feature map: ~4% of CPU time at 720p."""
    import torch
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    from ..models.convert_onnx import conv_layout

    modules = dict(model.named_modules())
    for conv_name, conv, bn_name in conv_layout(model):
        if bn_name is None:
            continue
        parent_name, _, conv_leaf = conv_name.rpartition(".")
        bn_parent, _, bn_leaf = bn_name.rpartition(".")
        conv_parent = modules[parent_name] if parent_name else model
        setattr(conv_parent, conv_leaf, fuse_conv_bn_eval(conv, modules[bn_name]))
        setattr(modules[bn_parent] if bn_parent else model, bn_leaf, torch.nn.Identity())
    return model


def read_torch_file(path: str | os.PathLike) -> object:
    """What a torch file of tensors and plain data holds (weights_only: no pickled code runs); ModelError when it is
    missing or unreadable."""
    import torch

    if not os.path.isfile(path):
        raise ModelError(f"checkpoint not found: {path}")
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        # torch's own message is a paragraph about its weights_only default; what the user needs is this:
        raise ModelError(f"cannot read {path} as a PyTorch weights file (not a torch file, or one that needs "
                         "pickled code run to load, which vidmatte does not do)") from None
    except Exception as exc:  # torch's own first line can be a bare number (a bad magic): say what was expected
        raise ModelError(f"cannot read {path} as a PyTorch weights file ({type(exc).__name__}: "
                         f"{str(exc).splitlines()[0] if str(exc) else 'no detail'})") from None


def read_weights_file(path: str | os.PathLike) -> tuple[dict, dict | None]:
    """A torch weights file -> (state dict, the constructor arguments a training checkpoint of ours records, or None
    for a bare state dict). ModelError when unreadable."""
    blob = read_torch_file(path)
    if not isinstance(blob, dict):
        raise ModelError(f"{path} holds no state dict")
    if "model" in blob and "model_args" in blob:
        return blob["model"], dict(blob["model_args"])
    return blob, None


def load_model_file(path: str | os.PathLike):
    """A MattingNetwork from a training checkpoint (.pt/.ckpt, self-describing), a converted .safetensors file,
    or an official RVM .pth state dict (mobilenetv3 or resnet50, told apart by their keys)."""
    import torch

    from ..models.rvm import MattingNetwork

    if not os.path.exists(path):
        raise ModelError(f"model file not found: {path}")
    if str(path).endswith(".safetensors"):
        import json

        from ..models.convert_onnx import load_weights

        state, meta = load_weights(path)
        args = json.loads(meta.get("model_args", "{}"))
    else:
        state, args = read_weights_file(path)
        if args is None:
            args = {"variant": "resnet50" if "backbone.layer1.0.conv1.weight" in state else "mobilenetv3"}
    model = MattingNetwork(**args)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ModelError(f"{path} does not match MattingNetwork({args}): {str(exc).splitlines()[0]}") from None
    return model
