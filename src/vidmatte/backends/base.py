"""The one contract every backend implements.

A runner is stateless: the recurrent state travels in and out of every call, exactly like the ONNX graph
(``src, r1i..r4i, downsample_ratio -> fgr, pha, r1o..r4o``). The per-video object that owns the state is a
matter (``vidmatte.matters``).
"""

from __future__ import annotations

from typing import Protocol, Sequence

import numpy as np

State = Sequence[np.ndarray]


class Runner(Protocol):
    name: str

    def initial_state(self) -> list[np.ndarray]:
        """State to feed at the first frame (RVM: four zeros of shape [1,1,1,1])."""

    def __call__(self, src: np.ndarray, state: State, downsample_ratio: float) -> tuple[np.ndarray, np.ndarray, list]:
        """src float32 [B,3,H,W] RGB 0..1 -> (fgr float32 [B,3,H,W] 0..1, pha float32 [B,1,H,W] 0..1, new state)."""


def open_runner(model: str = "rvm-mobilenetv3", backend: str = "onnxruntime", threads: int | None = None,
                device="auto", cache: str | None = None) -> Runner:
    """Build a runner for a registered model (fetching its weights once) or for a path to an .onnx file, on
    ``device`` (``--device auto|cpu|cuda[:N]``, or a resolved ``backends.device.Device``); the runner's
    ``device`` attribute says where it runs."""
    from ..errors import UsageError

    if backend in ("onnxruntime", "onnx", "ort"):
        from .onnx import SplitOnnxRunner

        return SplitOnnxRunner.from_model(model, threads=threads, cache=cache, device=device)
    if backend == "onnxruntime-whole":  # the official graph end to end: the reference, and for comparisons
        from .onnx import OnnxRunner

        return OnnxRunner.from_model(model, threads=threads, cache=cache, device=device)
    if backend == "torch":
        from ..extras import require

        require("torch", "--backend torch")
        from .torch_runner import TorchRunner

        return TorchRunner.from_model(model, device=device, threads=threads, cache=cache)
    raise UsageError(f"unknown backend {backend!r}; choose onnxruntime, onnxruntime-whole or torch")


def runners_on(runners, device):
    """``runners`` (``open_runner`` when None, or a batch worker's) opening every set of weights on ``device``: how
    a mode hands its device to the matters that open RVM as a prior."""
    import functools

    return functools.partial(runners or open_runner, device=device)


def resolve_device(backend: str, device):
    """The device ``open_runner(backend=..., device=...)`` would run on (``backends.device.Device``), probed
    without loading weights: a mode resolves it once, before its model loads, and reports it."""
    from .device import resolve_ort, resolve_torch

    return resolve_torch(device) if backend == "torch" else resolve_ort(device)
