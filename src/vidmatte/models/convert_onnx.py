"""Turn the shipped RVM ONNX graph into PyTorch weights for ``MattingNetwork``.

The official export folded every BatchNorm into the convolution before it, so the graph holds one (weight, bias)
pair per Conv and no BatchNorm statistics. We walk the graph's Conv nodes in order (each weight initializer once;
the refiner's box filter is used four times) next to our model's Conv2d modules in definition order, check that
every kernel shape, stride, dilation, padding and group count agrees, and copy the weights. Where our module has a
BatchNorm after the conv, the folded bias goes into the BatchNorm and its statistics are set to identity, so the
result keeps the official key layout (it loads strictly into ``MattingNetwork``) and computes the folded function.

The ONNX graph has no segmentation head (``project_seg``); the converted weights carry a zero-initialised one.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ModelError
from ..io.atomic import atomic_path

CONVERTER_VERSION = "1"
FORMAT_TAG = "vidmatte-rvm-torch"


@dataclass
class OnnxConv:
    """One convolution of the ONNX graph: weight [O,I/g,kh,kw], optional bias [O], and its attributes."""

    node: str
    weight_name: str
    weight: np.ndarray
    bias: np.ndarray | None
    stride: tuple[int, int]
    dilation: tuple[int, int]
    padding: tuple[int, int]
    groups: int


def read_onnx_convs(path: str | os.PathLike) -> list[OnnxConv]:
    """Conv nodes in graph order, one entry per distinct weight initializer."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    inits = {t.name: t for t in graph.initializer}
    convs, seen = [], set()
    for node in graph.node:
        if node.op_type != "Conv":
            continue
        weight_name = node.input[1]
        if weight_name in seen:
            continue
        seen.add(weight_name)
        if weight_name not in inits:
            raise ModelError(f"{path}: Conv {node.name} has a computed weight; not a plain exported RVM graph")
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        pads = list(attrs.get("pads", [0, 0, 0, 0]))
        if pads[:2] != pads[2:]:
            raise ModelError(f"{path}: Conv {node.name} has asymmetric padding {pads}")
        bias = numpy_helper.to_array(inits[node.input[2]]) if len(node.input) > 2 and node.input[2] else None
        convs.append(OnnxConv(
            node=node.name,
            weight_name=weight_name,
            weight=numpy_helper.to_array(inits[weight_name]),
            bias=bias,
            stride=tuple(attrs.get("strides", [1, 1])),
            dilation=tuple(attrs.get("dilations", [1, 1])),
            padding=tuple(pads[:2]),
            groups=int(attrs.get("group", 1)),
        ))
    return convs


def conv_layout(model) -> list[tuple[str, "object", str | None]]:
    """Our Conv2d modules in definition order as (name, module, name of the BatchNorm that follows or None).

    ``project_seg`` is left out: the ONNX graph (matting only) does not contain it.
    """
    from torch import nn

    modules = dict(model.named_modules())
    layout = []
    for name, module in modules.items():
        if not isinstance(module, nn.Conv2d) or name.startswith("project_seg"):
            continue
        layout.append((name, module, _following_batchnorm(name, modules)))
    return layout


def _following_batchnorm(conv_name: str, modules: dict) -> str | None:
    """The BatchNorm applied right after a conv: next child of a Sequential, or the sibling ``bnK`` of ``convK``."""
    from torch import nn

    parent, _, leaf = conv_name.rpartition(".")
    candidates = []
    if leaf.isdigit():
        candidates.append(f"{parent}.{int(leaf) + 1}" if parent else str(int(leaf) + 1))
    if leaf.startswith("conv") and leaf[4:].isdigit():
        candidates.append(f"{parent}.bn{leaf[4:]}" if parent else f"bn{leaf[4:]}")
    for cand in candidates:
        if isinstance(modules.get(cand), nn.BatchNorm2d):
            return cand
    return None


def convert_state_dict(onnx_path: str | os.PathLike, model=None) -> dict:
    """Map the ONNX graph's weights onto ``model`` (default: a fresh mobilenetv3 MattingNetwork).

    Returns a state dict in the official key layout. Raises ModelError on any count, shape or attribute mismatch.
    """
    import torch

    from .rvm import MattingNetwork

    model = model if model is not None else MattingNetwork("mobilenetv3")
    convs = read_onnx_convs(onnx_path)
    layout = conv_layout(model)
    if len(convs) != len(layout):
        raise ModelError(f"{onnx_path}: {len(convs)} distinct Conv weights in the graph, the model has "
                         f"{len(layout)} convolutions; not the RVM mobilenetv3 graph")
    state = {k: v.clone() for k, v in model.state_dict().items()}
    for onnx_conv, (name, module, bn_name) in zip(convs, layout):
        _check_conv(onnx_conv, name, module)
        state[f"{name}.weight"] = torch.from_numpy(onnx_conv.weight.copy())
        if bn_name is not None:
            if onnx_conv.bias is None:
                raise ModelError(f"{onnx_conv.node} -> {name}: expected a folded BatchNorm bias, found none")
            bn = dict(model.named_modules())[bn_name]
            # Identity statistics: (x - 0) / sqrt((1 - eps) + eps) * 1 + b  ==  x + b.
            state[f"{bn_name}.weight"] = torch.ones(bn.num_features)
            state[f"{bn_name}.bias"] = torch.from_numpy(onnx_conv.bias.copy())
            state[f"{bn_name}.running_mean"] = torch.zeros(bn.num_features)
            state[f"{bn_name}.running_var"] = torch.full((bn.num_features,), 1.0 - bn.eps)
        elif module.bias is not None:
            if onnx_conv.bias is None or onnx_conv.bias.shape != tuple(module.bias.shape):
                raise ModelError(f"{onnx_conv.node} -> {name}: bias missing or of the wrong shape")
            state[f"{name}.bias"] = torch.from_numpy(onnx_conv.bias.copy())
        elif onnx_conv.bias is not None:
            raise ModelError(f"{onnx_conv.node} -> {name}: the graph has a bias where the model has none")
    # Not in the graph: a zero segmentation head (trainable; only matters for segmentation steps).
    for key in ("project_seg.conv.weight", "project_seg.conv.bias"):
        state[key] = torch.zeros_like(state[key])
    return state


def _check_conv(onnx_conv: OnnxConv, name: str, module) -> None:
    expected = {
        "weight shape": (tuple(module.weight.shape), tuple(onnx_conv.weight.shape)),
        "stride": (tuple(module.stride), onnx_conv.stride),
        "dilation": (tuple(module.dilation), onnx_conv.dilation),
        "padding": (tuple(module.padding), onnx_conv.padding),
        "groups": (module.groups, onnx_conv.groups),
    }
    for what, (ours, theirs) in expected.items():
        if ours != theirs:
            raise ModelError(f"ONNX {onnx_conv.node} does not fit {name}: {what} {theirs} in the graph, {ours} here")


def torch_weights_path(name: str = "rvm-mobilenetv3", cache: str | os.PathLike | None = None) -> Path:
    from .registry import cache_dir, get_spec

    return cache_dir(cache) / (Path(get_spec(name).filename).stem + ".safetensors")


def save_weights(state: dict, path: Path, metadata: dict) -> None:
    """Write safetensors atomically (temp name, then rename)."""
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.contiguous() for k, v in state.items()}
    with atomic_path(path) as part:
        save_file(tensors, str(part), metadata={k: str(v) for k, v in metadata.items()})


def ensure_torch_weights(name: str = "rvm-mobilenetv3", cache: str | os.PathLike | None = None,
                         quiet: bool = False) -> Path:
    """Path of the converted PyTorch weights for a registered model, converting once from the verified ONNX."""
    from safetensors import safe_open

    from .registry import fetch_model, get_spec

    spec = get_spec(name)
    if "torch" not in spec.formats:
        raise ModelError(f"{name} has no PyTorch form")
    target = torch_weights_path(name, cache)
    if target.exists():
        try:
            with safe_open(str(target), "pt") as fh:
                meta = fh.metadata() or {}
        except Exception as exc:  # a truncated or foreign file: say so in one line
            raise ModelError(f"{target} is not a readable safetensors file ({exc}); delete it to reconvert") from None
        if meta.get("source_sha256") == spec.sha256 and meta.get("converter_version") == CONVERTER_VERSION:
            return target
    onnx_path = fetch_model(name, cache, quiet=quiet)
    if not quiet:
        print(f"vidmatte: converting {onnx_path.name} to PyTorch weights (once)...", file=sys.stderr)
    from .rvm import MattingNetwork

    model = MattingNetwork("mobilenetv3")
    state = convert_state_dict(onnx_path, model)
    save_weights(state, target, {
        "format": FORMAT_TAG,
        "model": name,
        "model_args": json.dumps(model.model_args()),
        "source": onnx_path.name,
        "source_sha256": spec.sha256,
        "converter_version": CONVERTER_VERSION,
        "note": "BatchNorm folded into convs by the ONNX export (identity statistics); project_seg zero-initialised",
    })
    return target


def load_weights(path: str | os.PathLike) -> tuple[dict, dict]:
    """(state dict, metadata) from a safetensors file written by ``save_weights``."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(path), "pt") as fh:
        meta = dict(fh.metadata() or {})
    return load_file(str(path)), meta


def load_pretrained(name: str = "rvm-mobilenetv3", cache: str | os.PathLike | None = None, refine_always: bool = False,
                    quiet: bool = False):
    """A ``MattingNetwork`` in eval mode carrying the converted official weights."""
    from .rvm import MattingNetwork

    state, meta = load_weights(ensure_torch_weights(name, cache, quiet=quiet))
    args = json.loads(meta.get("model_args", "{}"))
    args["refine_always"] = refine_always
    model = MattingNetwork(**args)
    model.load_state_dict(state, strict=True)
    return model.eval()
