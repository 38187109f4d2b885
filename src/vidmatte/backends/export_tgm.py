"""Export TCVOM's trimap generation module to ONNX as two graphs, checked against eager PyTorch before anything is
written (as ``export_ftpvm``):

- ``NAME.memorize.onnx``: frame [B,3,H,W] (RGB 0..1), trimap [B,3,H,W] (background, unknown, foreground
  probabilities) -> keys [B,2,128,1,h,w], values [B,2,512,1,h,w] (one memory frame);
- ``NAME.onnx``: frame [B,3,H,W], keys [B,2,128,T,h,w], values [B,2,512,T,h,w] (memory frames concatenated on
  dim 3) -> logits [B,3,H,W] (softmax over dim 1 gives the trimap probabilities, sigmoid each class's share).

H and W are fixed at export (the network pads them to multiples of 16 itself); batch and the number of memory
frames T stay dynamic. Both files appear only after ONNX Runtime agrees with PyTorch on inputs other than the
export's (another batch size, two memory frames).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .parity_export import Graph, export_checked, graph_module, nothing_written, traceable_copy

SEGMENT_INPUTS, SEGMENT_OUTPUTS = ["frame", "keys", "values"], ["logits"]
MEMORIZE_INPUTS, MEMORIZE_OUTPUTS = ["frame", "trimap"], ["keys", "values"]
# The logits are logit(p) of class shares clamped to 1e-7..1-1e-7 (STM's soft aggregation). Near 1 a float32 share
# has too few digits: the logit moves by up to ~0.2 under rounding, and so does a softmax between two saturated
# classes. So the check is on the shares themselves, sigmoid(logits), which are well conditioned:
FEATURE_TOLERANCE = 1e-4  # max |difference| of memory keys and values, relative to their largest magnitude
SHARE_TOLERANCE = 1e-4  # max |difference| of the class shares, sigmoid(logits)


@dataclass
class TgmExportReport:
    segment_path: Path
    memorize_path: Path
    feature_diff: float
    share_diff: float

    def agrees(self) -> bool:
        return self.feature_diff <= FEATURE_TOLERANCE and self.share_diff <= SHARE_TOLERANCE

    @property
    def paths(self) -> list[Path]:
        return [self.segment_path, self.memorize_path]

    def refusal(self) -> str:
        return nothing_written("graphs disagree", f"memory features {self.feature_diff:.1e} relative, class "
                                                  f"shares {self.share_diff:.1e}")

    def summary(self) -> str:
        return (f"TGM: 2 ONNX graphs checked against PyTorch on other inputs: memory keys/values max relative "
                f"|diff| {self.feature_diff:.1e}, class shares {self.share_diff:.1e} (tolerance {SHARE_TOLERANCE:g})")


def memorize_path_for(segment_path: Path) -> Path:
    return segment_path.with_name(segment_path.stem + ".memorize.onnx")


def _inputs(height: int, width: int, batch: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Smooth random frames and a disc trimap (one-hot), float32."""
    import torch

    from ..models.tgm import one_hot_trimap

    gen = torch.Generator().manual_seed(seed)
    coarse = torch.rand(batch, 3, height // 8 + 1, width // 8 + 1, generator=gen)
    frames = torch.nn.functional.interpolate(coarse, (height, width), mode="bilinear", align_corners=False)
    yy, xx = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    r = torch.hypot(yy - height / 2, xx - width / 2)
    classes = torch.where(r < height / 5, 2, torch.where(r < height / 3, 1, 0)).expand(batch, height, width)
    return frames.numpy(), one_hot_trimap(classes).numpy()


def _differences(model, memorize, segment, height: int, width: int) -> tuple[float, float]:
    """(relative memory feature difference, class share difference) of ONNX against PyTorch: batch 2, two memory
    frames."""
    import torch

    frames, trimaps = _inputs(height, width, batch=2, seed=1)
    others, _ = _inputs(height, width, batch=2, seed=2)
    with torch.inference_mode():
        memory = [model.memorize(torch.from_numpy(f), torch.from_numpy(trimaps)) for f in (frames, others)]
        keys, values = (torch.cat([m[i] for m in memory], dim=3) for i in (0, 1))
        logits = model.segment(torch.from_numpy(others), keys, values)
    onnx_memory = [memorize.run(None, {"frame": f, "trimap": trimaps}) for f in (frames, others)]
    onnx_keys, onnx_values = (np.concatenate([m[i] for m in onnx_memory], axis=3) for i in (0, 1))
    onnx_logits = segment.run(None, {"frame": others, "keys": onnx_keys, "values": onnx_values})[0]
    features = max(float(np.abs(o - e.numpy()).max() / np.abs(e.numpy()).max())
                   for o, e in ((onnx_keys, keys), (onnx_values, values)))
    shares = torch.sigmoid(torch.from_numpy(onnx_logits)) - torch.sigmoid(logits)
    return features, float(shares.abs().max())


def export_tgm_onnx(model, output: str | os.PathLike, height: int = 288, width: int = 512,
                    opset: int = 17) -> TgmExportReport:
    """Write the two graphs (``output`` and its ``.memorize.onnx`` sibling) for frames of ``height`` x ``width``."""
    net = traceable_copy(model)
    output = Path(output)
    memorize_output = memorize_path_for(output)

    def graphs() -> list[Graph]:
        import torch

        frames, trimaps = _inputs(height, width, batch=1, seed=0)
        frame, trimap = torch.from_numpy(frames), torch.from_numpy(trimaps)
        keys, values = net.memorize(frame, trimap)
        memory_axes = {0: "batch", 3: "memory"}
        return [Graph(net, (frame, keys, values), SEGMENT_INPUTS, SEGMENT_OUTPUTS,  # the network's forward: segment
                      {"frame": {0: "batch"}, "keys": memory_axes, "values": memory_axes, "logits": {0: "batch"}}),
                Graph(graph_module(net, lambda net, frame, trimap: net.memorize(frame, trimap)), (frame, trimap),
                      MEMORIZE_INPUTS, MEMORIZE_OUTPUTS,
                      {"frame": {0: "batch"}, "trimap": {0: "batch"}, "keys": {0: "batch"}, "values": {0: "batch"}})]

    def check(sessions) -> TgmExportReport:
        return TgmExportReport(output, memorize_output, *_differences(net, sessions[1], sessions[0], height, width))

    return export_checked(graphs, [output, memorize_output], opset, check)
