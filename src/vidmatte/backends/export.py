"""Export ``MattingNetwork`` to ONNX (the official graph's interface) or TorchScript, checked before writing.

Every export is run once through its runtime (ONNX Runtime / the TorchScript interpreter) on generated frames, at a
resolution and batch size different from the traced ones and with the state carried over several frames, and
compared with eager PyTorch. A file that disagrees is never written; the output appears only after a rename.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ModelError, OutputError, UsageError
from .parity_export import StagedFiles, graph_module

INPUT_NAMES = ["src", "r1i", "r2i", "r3i", "r4i", "downsample_ratio"]
OUTPUT_NAMES = ["fgr", "pha", "r1o", "r2o", "r3o", "r4o"]
# Max abs difference allowed between the export and eager fp32 PyTorch: fgr and pha (0..1) / recurrent states.
# fp16 has a 1e-3 step near 1.0 and the states accumulate it over frames, hence the looser state bound.
TOLERANCE = {"fp32": 1e-3, "fp16": 2e-2}
STATE_TOLERANCE = {"fp32": 1e-3, "fp16": 5e-2}


@dataclass
class ExportReport:
    path: Path
    format: str
    precision: str
    fgr_max_diff: float
    pha_max_diff: float
    state_max_diff: float
    tolerance: float
    frames_checked: int

    def agrees(self) -> bool:
        return (max(self.fgr_max_diff, self.pha_max_diff) <= self.tolerance
                and self.state_max_diff <= STATE_TOLERANCE[self.precision])

    def diffs(self) -> str:
        return (f"max |fgr diff| {self.fgr_max_diff:.2e}, |pha diff| {self.pha_max_diff:.2e}, "
                f"|state diff| {self.state_max_diff:.2e}; tolerance {self.tolerance:g} "
                f"(states {STATE_TOLERANCE[self.precision]:g})")

    def refusal(self) -> str:
        what = "export disagrees with PyTorch" if self.format == "onnx" else \
            "TorchScript export disagrees with eager PyTorch"
        return f"{what} ({self.diffs()}); nothing written"

    def summary(self) -> str:
        return f"{self.path}: {self.format} {self.precision}, checked on {self.frames_checked} frames: {self.diffs()}"


def check_frames(seed: int = 0, batch: int = 2, frames: int = 3, height: int = 144, width: int = 176) -> np.ndarray:
    """Smooth generated frames with a moving bright blob: [T,B,3,H,W] float32 0..1 (deterministic)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    out = np.empty((frames, batch, 3, height, width), np.float32)
    for t in range(frames):
        for b in range(batch):
            cy, cx = height * (0.4 + 0.05 * t), width * (0.3 + 0.1 * b + 0.04 * t)
            blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * (0.18 * height) ** 2))
            base = rng.uniform(0.1, 0.5, size=3).astype(np.float32)[:, None, None]
            out[t, b] = np.clip(base * (xx / width) + 0.6 * blob + 0.02 * rng.standard_normal((3, height, width)),
                                0, 1)
    return out


def read_check_clip(path: str | os.PathLike, frames: int = 3, max_side: int = 640) -> np.ndarray:
    """The first ``frames`` frames of a video as [T,1,3,H,W] float32 0..1, scaled so the long side is at most
    ``max_side`` (the check then stays quick)."""
    import av

    from ..errors import InputError

    out = []
    try:
        with av.open(str(path)) as container:
            for frame in container.decode(video=0):
                scale = min(1.0, max_side / max(frame.width, frame.height))
                if scale < 1:
                    frame = frame.reformat(width=int(frame.width * scale) // 2 * 2,
                                           height=int(frame.height * scale) // 2 * 2)
                out.append(frame.to_ndarray(format="rgb24").transpose(2, 0, 1)[None].astype(np.float32) / 255)
                if len(out) == frames:
                    break
    except (OSError, av.error.FFmpegError) as exc:
        raise InputError(f"cannot read check video {path}: {exc}") from None
    if not out:
        raise InputError(f"no video frames in {path}")
    return np.stack(out)


def _eager_reference(model, clip: np.ndarray, ratio: float) -> list[tuple[np.ndarray, np.ndarray]]:
    import torch

    results, state = [], [torch.zeros(1, 1, 1, 1)] * 4
    with torch.inference_mode():
        for frame in clip:
            fgr, pha, *state = model(torch.from_numpy(frame), *state, downsample_ratio=ratio)
            results.append((fgr.numpy(), pha.numpy(), [s.numpy() for s in state]))
    return results


def _max_diffs(results, reference) -> tuple[float, float, float]:
    """Max abs differences of fgr, pha and the recurrent states (the states are compared too because a
    pretrained model sees no person in generated frames, so its alpha is mostly 0 there)."""
    def diff(a, b) -> float:
        return float(np.abs(np.asarray(a, np.float32) - b).max())

    fgr = max(diff(r[0], e[0]) for r, e in zip(results, reference))
    pha = max(diff(r[1], e[1]) for r, e in zip(results, reference))
    state = max(diff(rs, es) for r, e in zip(results, reference) for rs, es in zip(r[2], e[2]))
    return fgr, pha, state


def _official_interface(net, src, r1i, r2i, r3i, r4i, downsample_ratio):
    """The official graph's positional interface: a tensor ratio in, a tuple out."""
    return tuple(net(src, r1i, r2i, r3i, r4i, downsample_ratio=downsample_ratio))


def export_onnx(model, output: str | os.PathLike, opset: int = 12, precision: str = "fp32",
                check_ratio: float = 0.375, quiet: bool = False, check_clip: np.ndarray | None = None) -> ExportReport:
    """Write ``model`` as ONNX: inputs src [B,3,H,W], r1i..r4i, downsample_ratio float32 [1]; outputs fgr, pha,
    r1o..r4o; batch, height and width dynamic. fp16 makes src/states/outputs float16 (ratio stays float32).

    ``check_clip`` [T,B,3,H,W] float32 0..1 replaces the generated check frames (e.g. real footage, where the
    pretrained model produces non-zero alpha)."""
    import copy

    import onnxruntime as ort
    import torch

    if precision not in TOLERANCE:
        raise UsageError(f"unknown precision {precision!r}; choose fp32 or fp16")
    if opset < 11:
        raise UsageError(f"--opset {opset} is too old: Resize with scales needs opset 11 or newer")
    output = Path(output)
    reference_model = copy.deepcopy(model).float().eval()
    net = copy.deepcopy(model).eval()
    dtype = torch.float16 if precision == "fp16" else torch.float32
    net = net.to(dtype)
    example = (torch.rand(1, 3, 96, 128, dtype=dtype), *[torch.zeros(1, 1, 1, 1, dtype=dtype)] * 4,
               torch.tensor([0.5], dtype=torch.float32))
    dyn = {"src": {0: "batch_size", 2: "height", 3: "width"}, "fgr": {0: "batch_size", 2: "height", 3: "width"},
           "pha": {0: "batch_size", 2: "height", 3: "width"}}
    for i in range(1, 5):
        dyn[f"r{i}i"] = {0: "batch_size", 1: "channels", 2: "height", 3: "width"}
        dyn[f"r{i}o"] = {0: "batch_size", 2: "height", 3: "width"}
    with StagedFiles([output]) as staged:
        if not quiet:
            print(f"vidmatte: exporting ONNX (opset {opset}, {precision})...", file=sys.stderr)
        try:
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(graph_module(net, _official_interface), example, str(staged.temps[0]), dynamo=False,
                                  opset_version=opset, input_names=INPUT_NAMES, output_names=OUTPUT_NAMES,
                                  dynamic_axes=dyn, do_constant_folding=True)
            if not quiet:
                print("vidmatte: checking the export with ONNX Runtime...", file=sys.stderr)
            # The check compares the graph with PyTorch's eager run on the CPU: the CPU provider on purpose, whatever
            # --device a later run uses (its own parity with the CPU is benchmarks/gpu_check.py's)
            session = ort.InferenceSession(str(staged.temps[0]), providers=["CPUExecutionProvider"])
            clip = check_frames() if check_clip is None else check_clip
            reference = _eager_reference(reference_model, clip, check_ratio)
            results, state = [], [np.zeros((1, 1, 1, 1), np.float16 if precision == "fp16" else np.float32)] * 4
            for frame in clip:
                feed = {"src": frame.astype(state[0].dtype), "downsample_ratio": np.array([check_ratio], np.float32)}
                feed.update({f"r{i + 1}i": s for i, s in enumerate(state)})
                fgr, pha, *state = session.run(OUTPUT_NAMES, feed)
                results.append((fgr, pha, state))
            report = ExportReport(output, "onnx", precision, *_max_diffs(results, reference), TOLERANCE[precision],
                                  len(clip))
            staged.commit(report)
            return report
        except (ModelError, UsageError, OutputError):
            raise
        except Exception as exc:
            raise ModelError(f"ONNX export failed: {type(exc).__name__}: "
                             f"{str(exc).splitlines()[0] if str(exc) else ''}") from None


def export_torchscript(model, output: str | os.PathLike, precision: str = "fp32", quiet: bool = False,
                       check_ratio: float = 0.375, check_clip: np.ndarray | None = None) -> ExportReport:
    """Write a traced TorchScript module with the ONNX graph's interface:
    ``(src, r1i, r2i, r3i, r4i, downsample_ratio float32 [1]) -> (fgr, pha, r1o, r2o, r3o, r4o)``.

    Batch, height, width and the downsample ratio stay dynamic (checked at a size and a ratio other than the
    traced ones). The input downsample uses ``F.interpolate`` here, which differs from the ONNX Runtime
    arithmetic of the eager model by ~1e-4 in alpha at 720p.
    """
    import copy

    import torch

    if precision not in TOLERANCE:
        raise UsageError(f"unknown precision {precision!r}; choose fp32 or fp16")
    output = Path(output)
    reference_model = copy.deepcopy(model).float().eval()
    dtype = torch.float16 if precision == "fp16" else torch.float32
    net = copy.deepcopy(model).eval().to(dtype)

    with StagedFiles([output]) as staged:
        if not quiet:
            print(f"vidmatte: tracing TorchScript ({precision})...", file=sys.stderr)
        try:
            import warnings

            example = (torch.rand(1, 3, 96, 128, dtype=dtype), *[torch.zeros(1, 1, 1, 1, dtype=dtype)] * 4,
                       torch.tensor([0.5], dtype=torch.float32))
            with warnings.catch_warnings(), torch.no_grad():
                warnings.simplefilter("ignore")
                traced = torch.jit.trace(graph_module(net, _official_interface), example, check_trace=False)
                traced.save(str(staged.temps[0]))
                loaded = torch.jit.load(str(staged.temps[0]))
            clip = check_frames() if check_clip is None else check_clip
            reference = _eager_reference(reference_model, clip, check_ratio)
            results, state = [], [torch.zeros(1, 1, 1, 1, dtype=dtype)] * 4
            ratio = torch.tensor([check_ratio], dtype=torch.float32)
            with torch.no_grad():
                for frame in clip:
                    fgr, pha, *state = loaded(torch.from_numpy(frame).to(dtype), *state, ratio)
                    results.append((fgr.float().numpy(), pha.float().numpy(), [s.float().numpy() for s in state]))
            report = ExportReport(output, "torchscript", precision, *_max_diffs(results, reference),
                                  TOLERANCE[precision], len(clip))
            staged.commit(report)
            return report
        except (ModelError, UsageError, OutputError):
            raise
        except Exception as exc:
            raise ModelError(f"TorchScript export failed: {type(exc).__name__}: {str(exc).splitlines()[0]}") \
                from None
