"""Export BackgroundMattingV2 (with or without the ConvLSTMs) to ONNX, checked against eager PyTorch before anything
is written.

One frame per call: src [B,3,H,W], bgr [B,3,H,W] (the aligned plate), and for the ConvLSTM variant the six state
tensors h1i, c1i, h2i, c2i, h3i, c3i -> pha [B,1,H,W], fgr [B,3,H,W] (+ h1o ... c3o). Start the states from zeros
of shape [1,1,1,1] (broadcast, RVM's convention). H and W are fixed at export (multiples of 4, the refiner's patch
grid); the batch stays dynamic. The refiner's patch selection (top-k or threshold, then gather and scatter of the
chosen patches) is in the graph. The file appears only after ONNX Runtime agrees with PyTorch over several frames
with the state carried and a batch of two.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .parity_export import (Graph, carried_max_diff, export_checked, fixed_size_copy, graph_module,
                            nothing_written)

STATE_NAMES = ["h1", "c1", "h2", "c2", "h3", "c3"]
TOLERANCE = 1e-4  # max |difference| of alpha, foreground and states (0..1 or tanh-bounded), fp32


@dataclass
class Bgmv2ExportReport:
    path: Path
    max_diff: float
    frames_checked: int

    def agrees(self) -> bool:
        return self.max_diff <= TOLERANCE

    @property
    def paths(self) -> list[Path]:
        return [self.path]

    def refusal(self) -> str:
        return nothing_written("graph disagrees", f"max |diff| {self.max_diff:.2e} > {TOLERANCE:g}")

    def summary(self) -> str:
        return (f"BGMv2: one ONNX graph checked against PyTorch over {self.frames_checked} frames: max |diff| "
                f"{self.max_diff:.1e} (tolerance {TOLERANCE:g})")


def _names(convlstm: bool) -> tuple[list[str], list[str]]:
    states = STATE_NAMES if convlstm else []
    return ["src", "bgr"] + [f"{s}i" for s in states], ["pha", "fgr"] + [f"{s}o" for s in states]


def _step(net, src, bgr, *state):
    """One frame: the plain network's (pha, fgr), or with the ConvLSTMs (pha, fgr, h1o ... c3o)."""
    if not net.convlstm:
        out = net(src, bgr)
        return out[0], out[1]
    out = net(src, bgr, list(state))
    return (out[0], out[1], *out[-1])


def _check_frames(height: int, width: int, batch: int, frames: int, seed: int):
    """Smooth generated plates and frames with a moving square on them: (frames [T,B,3,H,W], plate [B,3,H,W])."""
    gen = np.random.default_rng(seed)
    coarse = gen.uniform(0, 1, (batch, 3, height // 8 + 2, width // 8 + 2)).astype(np.float32)
    yy, xx = np.mgrid[0:height, 0:width] / 8
    plate = coarse[..., np.floor(yy).astype(int), np.floor(xx).astype(int)].astype(np.float32)
    clip = np.repeat(plate[None], frames, axis=0)
    for t in range(frames):
        top, left = height // 4, width // 8 + t * width // 10
        clip[t, :, :, top:top + height // 3, left:left + width // 4] = gen.uniform(0, 1, (batch, 3, 1, 1))
    return clip, plate


def export_bgmv2_onnx(model, output: str | os.PathLike, height: int = 288, width: int = 512,
                      opset: int = 17) -> Bgmv2ExportReport:
    """Write ``output`` for frames of ``height`` x ``width`` after checking it against PyTorch."""
    net = fixed_size_copy(model, height, width, 4, "BackgroundMattingV2's ONNX export")
    output = Path(output)
    inputs, outputs = _names(net.convlstm)

    def graphs() -> list[Graph]:
        import torch

        clip, plate = _check_frames(height, width, batch=1, frames=1, seed=0)
        zeros = [torch.zeros(1, 1, 1, 1)] * (len(inputs) - 2)
        return [Graph(graph_module(net, _step), (torch.from_numpy(clip[0]), torch.from_numpy(plate), *zeros),
                      inputs, outputs, _axes(inputs, outputs))]

    def check(sessions) -> Bgmv2ExportReport:
        import torch

        clip, plate = _check_frames(height, width, batch=2, frames=3, seed=1)  # not what the trace saw
        worst = carried_max_diff(_step, net, sessions[0], clip, [torch.from_numpy(plate)], [plate], len(inputs) - 2)
        return Bgmv2ExportReport(output, worst, len(clip))

    return export_checked(graphs, [output], opset, check)


def _axes(inputs: list[str], outputs: list[str]) -> dict:
    axes = {name: {0: "batch"} for name in inputs + outputs}
    for name in inputs[2:]:  # zeros [1,1,1,1] on the first frame, full states after
        axes[name] = {0: "batch", 1: f"{name}_channels", 2: f"{name}_height", 3: f"{name}_width"}
    return axes
