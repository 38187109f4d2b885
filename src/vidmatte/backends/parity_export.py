"""What every ONNX exporter does the same way: trace each graph to a temporary name beside its output, check the
traced files against eager PyTorch, and rename them into place only when the check agrees.

An exporter keeps only what is its own: its graphs (``graph_module``) with their example inputs, names and dynamic
axes, and its check, which runs the files' ONNX Runtime sessions against the network and returns a report with
``agrees()`` (its tolerances) and ``refusal()`` (the one-line reason nothing was written). RVM's exporters
(``backends.export``, ONNX and TorchScript) use the staging and the verdict only: they trace and check their own way.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol

import numpy as np

from ..errors import ModelError, OutputError, UsageError
from ..io.atomic import temporary_sibling


class ParityReport(Protocol):
    def agrees(self) -> bool: ...

    def refusal(self) -> str: ...


@dataclass(frozen=True)
class Graph:
    module: Any  # a torch.nn.Module in eval mode: its forward is what the file computes
    example: tuple  # the tensors the trace runs on (the size the file is fixed at)
    input_names: list[str]
    output_names: list[str]
    dynamic_axes: dict


def nothing_written(subject: str, detail: str) -> str:
    """The one-line reason an export wrote nothing, e.g. ``nothing_written("graphs disagree", "max |diff| ...")``."""
    return f"the ONNX {subject} with PyTorch ({detail}); nothing written"


def max_abs_diff(onnx_outputs, eager_outputs) -> float:
    """Largest |difference| between ONNX Runtime's arrays and PyTorch's tensors, output by output."""
    return max(float(np.abs(o - e.numpy()).max()) for o, e in zip(onnx_outputs, eager_outputs))


def carried_max_diff(step: Callable, net, session, frames, eager_fixed: list, onnx_fixed: list, states: int) -> float:
    """Largest |difference| between PyTorch and ONNX Runtime over ``frames`` run in order, each side carrying its own
    recurrent state. ``step(net, frame, *fixed, *state)`` is the traced graph's forward: its last ``states`` outputs
    are the next frame's state. PyTorch starts from None (the network's own start), the graph from zeros [1,1,1,1]
    (RVM's convention), so the check also covers that the two starts agree."""
    import torch

    names = [i.name for i in session.get_inputs()]
    eager_state, onnx_state = [None] * states, [np.zeros((1, 1, 1, 1), np.float32)] * states
    worst = 0.0
    for frame in frames:
        with torch.inference_mode():
            eager = step(net, torch.from_numpy(frame), *eager_fixed, *eager_state)
        onnx = session.run(None, dict(zip(names, [frame, *onnx_fixed, *onnx_state])))
        eager_state, onnx_state = list(eager[len(eager) - states:]), onnx[len(onnx) - states:]
        worst = max(worst, max_abs_diff(onnx, eager))
    return worst


def traceable_copy(model):
    """A float32 eval-mode copy of ``model`` to trace (the trace must not change the caller's model)."""
    return copy.deepcopy(model).eval().float()


def fixed_size_copy(model, height: int, width: int, multiple: int, what: str):
    """``traceable_copy`` after checking that the size the graphs are fixed at is on the network's grid; ``what``
    names the export in the error."""
    if height % multiple or width % multiple:
        raise UsageError(f"{what} needs a size in multiples of {multiple}, got {width}x{height}")
    return traceable_copy(model)


def graph_module(net, forward: Callable):
    """``net`` as a module whose forward is ``forward(net, *inputs)``: torch.onnx.export traces a module's forward,
    and a graph file's interface is rarely the network's own. The network stays the ``net`` attribute, so the
    file's node names are the network's."""
    import torch

    class GraphModule(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = net

        def forward(self, *inputs):
            return forward(self.net, *inputs)

    # In eval mode: the exporter restores the wrapper's mode afterwards, recursively, onto the network too.
    return GraphModule().eval()


def temp_path(output: Path) -> Path:
    """The name a file is written under until it is complete and checked (beside it: the rename stays atomic)."""
    if output.exists() and output.is_dir():
        raise OutputError(f"{output} is a directory")
    if not output.parent.exists():
        raise OutputError(f"output folder {output.parent} does not exist")
    return temporary_sibling(output)


class StagedFiles:
    """Temporary names for ``outputs``: ``commit()`` renames them all into place; leaving the ``with`` block removes
    whatever was not committed, so a failed or refused export leaves no file behind."""

    def __init__(self, outputs: list[Path]):
        self.outputs = [Path(p) for p in outputs]
        self.temps = [temp_path(p) for p in self.outputs]

    def __enter__(self) -> StagedFiles:
        return self

    def commit(self, report: ParityReport) -> None:
        if not report.agrees():
            raise ModelError(report.refusal())
        for temp, final in zip(self.temps, self.outputs):
            os.replace(temp, final)

    def __exit__(self, *exc) -> None:
        for temp in self.temps:
            temp.unlink(missing_ok=True)


def export_checked(graphs: Callable[[], list[Graph]], outputs: list[Path], opset: int,
                   check: Callable[[list], ParityReport]) -> ParityReport:
    """Trace ``graphs()`` (one per output, in order) to temporary files, run ``check`` on their ONNX Runtime
    sessions (same order) and write ``outputs`` only when its report agrees."""
    import onnxruntime as ort
    import torch

    with StagedFiles(outputs) as staged:
        # Outside a caller's inference mode: the trace cannot use tensors made in it (and needs no autograd).
        with torch.inference_mode(False), torch.no_grad():
            for graph, temp in zip(graphs(), staged.temps):
                torch.onnx.export(graph.module, graph.example, str(temp), dynamo=False, opset_version=opset,
                                  input_names=graph.input_names, output_names=graph.output_names,
                                  dynamic_axes=graph.dynamic_axes)
        # the CPU provider on purpose: the check is the graph against PyTorch's eager run on the CPU
        report = check([ort.InferenceSession(str(t), providers=["CPUExecutionProvider"]) for t in staged.temps])
        staged.commit(report)
        return report
