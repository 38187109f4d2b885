"""Export FTP-VM to ONNX as two graphs, checked against eager PyTorch before anything is written.

The memory is encoded once and read by every frame, so the export is the paper's split interface:

- ``NAME.encode.onnx``: memory_imgs [B,Tm,3,H,W], memory_trimaps [B,Tm,1,H,W] -> memory_feat16, memory_value;
- ``NAME.onnx`` (one frame per call): src [B,3,H,W], memory_feat16, memory_value, r8i, r16i, r1i, r2i ->
  trimap (logits [B,3,H,W]), boundary [B,1,H,W], pha [B,1,H,W], r8o, r16o, r1o, r2o.

Start the states from zeros of shape [1,1,1,1] (broadcast, as RVM's graph). H and W are fixed at export (multiples
of 16; the pyramid pooling's cells depend on them) and the ratio is 1: downsample and upsample outside, as
``matters.ftpvm`` does. Batch and the number of memory frames stay dynamic. Both files appear only after the check
(ONNX Runtime over several frames with the state carried, a different batch and memory count) agrees.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .parity_export import (Graph, carried_max_diff, export_checked, fixed_size_copy, graph_module,
                            max_abs_diff, nothing_written)

STEP_INPUTS = ["src", "memory_feat16", "memory_value", "r8i", "r16i", "r1i", "r2i"]
STEP_OUTPUTS = ["trimap", "boundary", "pha", "r8o", "r16o", "r1o", "r2o"]
ENCODE_INPUTS = ["memory_imgs", "memory_trimaps"]
ENCODE_OUTPUTS = ["memory_feat16", "memory_value"]
TOLERANCE = 1e-4  # max |difference| of mattes (0..1), logits and states, fp32


@dataclass
class FtpvmExportReport:
    step_path: Path
    encode_path: Path
    max_diff: float
    frames_checked: int

    def agrees(self) -> bool:
        return self.max_diff <= TOLERANCE

    @property
    def paths(self) -> list[Path]:
        return [self.step_path, self.encode_path]

    def refusal(self) -> str:
        return nothing_written("graphs disagree", f"max |diff| {self.max_diff:.2e} > {TOLERANCE:g}")

    def summary(self) -> str:
        return (f"{self.step_path} + {self.encode_path.name}: ONNX fp32, checked against PyTorch on "
                f"{self.frames_checked} frames (batch 2, 2 memory frames, state carried): max |diff| "
                f"{self.max_diff:.2e}, tolerance {TOLERANCE:g}")


def encode_path_for(step_path: Path) -> Path:
    return step_path.with_name(step_path.stem + ".encode.onnx")


def _encode(net, memory_imgs, memory_trimaps):
    return tuple(net.encode_imgs_to_value(memory_imgs, memory_trimaps))


def _step(net, src, memory_feat16, memory_value, r8i, r16i, r1i, r2i):
    logits, boundary, pha, (rec_seg, rec_mat) = net.forward_with_memory(
        src[:, None], memory_feat16, memory_value, [r8i, r16i], [r1i, r2i])
    return logits[:, 0], boundary[:, 0], pha[:, 0], *rec_seg, *rec_mat


def _check_inputs(height: int, width: int, batch: int, frames: int, memory: int, seed: int):
    """Generated smooth frames and a disc-shaped trimap: (query [T,B,3,H,W], memory [B,Tm,3,H,W], trimaps)."""
    gen = np.random.default_rng(seed)
    coarse = gen.uniform(0, 1, (frames + memory, batch, 3, height // 8 + 1, width // 8 + 1)).astype(np.float32)
    yy, xx = np.mgrid[0:height, 0:width] / 8
    y0, x0 = np.floor(yy).astype(int), np.floor(xx).astype(int)
    smooth = coarse[..., y0, x0] * (1 - (yy - y0)) + coarse[..., y0 + 1, x0] * (yy - y0)
    r = np.hypot(*(np.mgrid[0:height, 0:width] - np.array([height / 2, width / 2])[:, None, None]))
    trimap = np.where(r < height / 5, 1.0, np.where(r < height / 3, 0.5, 0.0)).astype(np.float32)
    trimaps = np.broadcast_to(trimap, (batch, memory, 1, height, width)).copy()
    return smooth[:frames].astype(np.float32), smooth[frames:].transpose(1, 0, 2, 3, 4).astype(np.float32), trimaps


def _run_both(model, encode_session, step_session, query, memory, trimaps) -> float:
    """Largest difference between ONNX Runtime and eager PyTorch over every output of every frame."""
    import torch

    with torch.inference_mode():
        eager_memory = model.encode_imgs_to_value(torch.from_numpy(memory), torch.from_numpy(trimaps))
    onnx_memory = encode_session.run(None, {"memory_imgs": memory, "memory_trimaps": trimaps})
    steps = carried_max_diff(_step, model, step_session, query, list(eager_memory), onnx_memory, states=4)
    return max(max_abs_diff(onnx_memory, eager_memory), steps)


def export_ftpvm_onnx(model, output: str | os.PathLike, height: int = 288, width: int = 512,
                      opset: int = 17) -> FtpvmExportReport:
    """Write the two graphs (``output`` and its ``.encode.onnx`` sibling) for frames of ``height`` x ``width``."""
    net = fixed_size_copy(model, height, width, 16, "FTP-VM's ONNX export")
    output = Path(output)
    encode_output = encode_path_for(output)

    def graphs() -> list[Graph]:
        import torch

        query, memory, trimaps = _check_inputs(height, width, batch=1, frames=1, memory=1, seed=0)
        memory, trimaps, zeros = torch.from_numpy(memory), torch.from_numpy(trimaps), torch.zeros(1, 1, 1, 1)
        feat16, value = net.encode_imgs_to_value(memory, trimaps)
        return [Graph(graph_module(net, _step), (torch.from_numpy(query[0]), feat16, value, zeros, zeros, zeros,
                                                 zeros), STEP_INPUTS, STEP_OUTPUTS, _step_axes()),
                Graph(graph_module(net, _encode), (memory, trimaps), ENCODE_INPUTS, ENCODE_OUTPUTS,
                      {"memory_imgs": {0: "batch", 1: "memory"}, "memory_trimaps": {0: "batch", 1: "memory"},
                       "memory_feat16": {0: "batch", 1: "memory"}, "memory_value": {0: "batch", 2: "memory"}})]

    def check(sessions) -> FtpvmExportReport:
        # The check differs from the export: two frames in a batch, two memory frames, state over three frames.
        query, memory, trimaps = _check_inputs(height, width, batch=2, frames=3, memory=2, seed=1)
        worst = _run_both(net, sessions[1], sessions[0], query, memory, trimaps)
        return FtpvmExportReport(output, encode_output, worst, len(query))

    return export_checked(graphs, [output, encode_output], opset, check)


def _step_axes() -> dict:
    axes = {name: {0: "batch"} for name in STEP_INPUTS + STEP_OUTPUTS}
    for name in ("r8i", "r16i", "r1i", "r2i"):  # zeros [1,1,1,1] on the first frame, full states after
        axes[name] = {0: "batch", 1: f"{name}_channels", 2: f"{name}_height", 3: f"{name}_width"}
    axes["memory_feat16"] = {0: "batch", 1: "memory"}
    axes["memory_value"] = {0: "batch", 2: "memory"}
    return axes
