"""Export DVM to ONNX, checked against eager PyTorch before anything is written.

- ``NAME.onnx``, the matting network over one window: frames [B, shift+1, 3, H, W] (RGB 0..1, the target last),
  trimaps [B, shift+1, 1, H, W] (0 / 0.5 / 1) -> coarse [B,1,H,W], pha [B,1,H,W] (the refined alpha; the coarse one
  again without a refinement stage). The ImageNet normalisation is inside the graph.
- with both networks (a ``DeepVideoMattingSystem``), the trimap network's two graphs:
  ``NAME.trimap_encode.onnx``: ref_frame [B,3,H,W], ref_trimap [B,1,H,W] -> keys [B,Ck,S], values [B,Cv,S] of one
  reference (S slots); several references are their keys and values concatenated on the last axis;
  ``NAME.trimap.onnx``: src [B,3,H,W], keys, values (any number of slots) -> logits [B,3,H,W].

H and W are fixed at export (multiples of 32, width at least 224); the batch and the number of slots stay dynamic.
The files appear only after ONNX Runtime agrees with PyTorch on inputs other than the export's (batch 2, two
references read at once).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import UsageError
from .parity_export import Graph, export_checked, graph_module, max_abs_diff, nothing_written, traceable_copy

TOLERANCE = 1e-4  # max |difference| of mattes (0..1), logits, keys and values, fp32


@dataclass
class DvmExportReport:
    paths: list[Path]
    max_diff: float
    checked: dict = field(default_factory=dict)

    def agrees(self) -> bool:
        return self.max_diff <= TOLERANCE

    def refusal(self) -> str:
        return nothing_written("graphs disagree", f"max |diff| {self.max_diff:.2e} > {TOLERANCE:g}")

    def summary(self) -> str:
        return (f"DVM: {len(self.paths)} ONNX graph(s) checked against PyTorch on other inputs "
                f"(batch {self.checked.get('batch')}, {self.checked.get('references')} references): "
                f"max |diff| {self.max_diff:.1e} (tolerance {TOLERANCE:g})")


def sibling(path: Path, part: str) -> Path:
    return path.with_name(f"{path.stem}.{part}.onnx")


def _window(net, frames, trimaps):
    coarse, refined = net(net.network_input(frames, trimaps))
    return coarse, (refined if net.add_refine_stage else coarse)


def _encode(net, ref_frame, ref_trimap):
    return tuple(net.encode_references(ref_frame[:, None], ref_trimap[:, None]))


def _propagate(net, src, keys, values):
    return net.propagate(src[:, None], keys, values)[:, 0]


def _wrappers(matting, trimap):
    graphs = [("matting", graph_module(matting, _window), ["frames", "trimaps"], ["coarse", "pha"])]
    if trimap is not None:
        graphs += [("trimap_encode", graph_module(trimap, _encode), ["ref_frame", "ref_trimap"], ["keys", "values"]),
                   ("trimap", graph_module(trimap, _propagate), ["src", "keys", "values"], ["logits"])]
    return graphs


def _inputs(height: int, width: int, batch: int, window: int, refs: int, seed: int) -> dict:
    """Smooth generated frames and disc trimaps for every graph's inputs."""
    import torch
    import torch.nn.functional as F

    gen = torch.Generator().manual_seed(seed)
    frames = F.interpolate(torch.rand(batch * (window + refs + 1), 3, height // 8, width // 8, generator=gen),
                           (height, width), mode="bilinear", align_corners=False)
    yy, xx = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    r = torch.hypot(yy - height / 2, xx - width / 2).float()
    disc = torch.where(r < height / 5, 1.0, torch.where(r < height / 3, 0.5, 0.0))
    clip, rest = frames[:batch * window], frames[batch * window:]
    return {"frames": clip.view(batch, window, 3, height, width),
            "trimaps": disc.expand(batch, window, 1, height, width).contiguous(),
            "ref_frames": rest[:batch * refs].view(batch, refs, 3, height, width),
            "ref_trimaps": disc.expand(batch, refs, 1, height, width).contiguous(),
            "src": rest[batch * refs:].view(batch, 3, height, width)}


def _dynamic_axes(names: list[str]) -> dict:
    axes = {name: {0: "batch"} for name in names}
    for name in {"keys", "values"} & set(names):
        axes[name] = {0: "batch", 2: "slots"}
    return axes


def _feeds(name: str, inputs: dict, keys_values: tuple | None) -> dict:
    if name == "matting":
        return {"frames": inputs["frames"], "trimaps": inputs["trimaps"]}
    if name == "trimap_encode":
        return {"ref_frame": inputs["ref_frames"][:, 0], "ref_trimap": inputs["ref_trimaps"][:, 0]}
    return {"src": inputs["src"], "keys": keys_values[0], "values": keys_values[1]}


def export_dvm_onnx(model, output: str | os.PathLike, height: int = 288, width: int = 512,
                    opset: int = 17) -> DvmExportReport:
    """Write ``output`` (the matting network) and, for a ``DeepVideoMattingSystem``, its two trimap graphs."""
    from ..models.dvm import MIN_WIDTH, MULTIPLE

    if height % MULTIPLE or width % MULTIPLE or width < MIN_WIDTH:
        raise UsageError(f"DVM's ONNX graphs need a size in multiples of {MULTIPLE} with a width of at least "
                         f"{MIN_WIDTH}, got {width}x{height}")
    model = traceable_copy(model)
    matting, trimap = (model.matting, model.trimap) if hasattr(model, "matting") else (model, None)
    output = Path(output)
    wrappers = _wrappers(matting, trimap)
    finals = [output] + [sibling(output, name) for name, *_ in wrappers[1:]]
    window = matting.shift + 1

    def graphs() -> list[Graph]:
        inputs, keys_values, graphs = _inputs(height, width, 1, window, 1, seed=0), None, []
        for name, module, ins, outs in wrappers:
            feeds = _feeds(name, inputs, keys_values)
            graphs.append(Graph(module, tuple(feeds.values()), ins, outs, _dynamic_axes(ins + outs)))
            if name == "trimap_encode":
                keys_values = module(*feeds.values())
        return graphs

    def check(sessions) -> DvmExportReport:
        worst = _check(wrappers, sessions, _inputs(height, width, 2, window, 2, seed=1))
        return DvmExportReport(finals, worst, {"batch": 2, "references": 2})

    return export_checked(graphs, finals, opset, check)


def _check(graphs, sessions, inputs: dict) -> float:
    """Largest difference between ONNX Runtime and eager PyTorch over every output of every graph; the trimap
    graphs are checked as a chain: ONNX's memory of every reference (one call each) read by ONNX's propagation
    against PyTorch encoding all references in one call."""
    import torch

    sessions = {name: session for (name, *_), session in zip(graphs, sessions)}
    nets = {name: graph for name, graph, *_ in graphs}
    with torch.inference_mode():
        eager = {"matting": nets["matting"](inputs["frames"], inputs["trimaps"])}
        if "trimap" in nets:
            memory = nets["trimap_encode"].net.encode_references(inputs["ref_frames"], inputs["ref_trimaps"])
            eager["trimap_encode"] = memory
            eager["trimap"] = (nets["trimap"](inputs["src"], *memory),)
    onnx = {"matting": sessions["matting"].run(None, {"frames": inputs["frames"].numpy(),
                                                      "trimaps": inputs["trimaps"].numpy()})}
    if "trimap" in nets:
        parts = [sessions["trimap_encode"].run(None, {"ref_frame": inputs["ref_frames"][:, m].numpy(),
                                                      "ref_trimap": inputs["ref_trimaps"][:, m].numpy()})
                 for m in range(inputs["ref_frames"].shape[1])]
        memory = [np.concatenate([p[i] for p in parts], axis=2) for i in range(2)]
        onnx["trimap_encode"] = memory
        onnx["trimap"] = sessions["trimap"].run(None, {"src": inputs["src"].numpy(), "keys": memory[0],
                                                       "values": memory[1]})
    return max(max_abs_diff(onnx[name], eager[name]) for name in eager)
