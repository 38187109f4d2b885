"""Cutting the official RVM ONNX graph before its full-resolution tail.

The graph ends with the deep guided filter applied at full resolution (see ``vidmatte.models.rvm_tail``). This
module finds that tail by its structure, not by node names (exports from other tools name nodes differently), and
builds the "coarse" graph: small frame in, guided-filter coefficients A and b (and the recurrent state) out.

    src --Resize(ratio)--> small --[encoder, decoder, refiner convs]--> A, b, r1o..r4o      (the coarse graph)
    A, b --Resize(H,W)--> * concat(src, mean(src)) + --> split --> fgr (+ src), pha --> clip  (the tail)

A graph that does not have this shape (a different model, a future export) is simply run whole.
"""

from __future__ import annotations

from dataclasses import dataclass

STATE_INPUTS = ("r1i", "r2i", "r3i", "r4i")
STATE_OUTPUTS = ("r1o", "r2o", "r3o", "r4o")
SMALL_INPUT = "src_small"
COEFFICIENTS = ("coef_a", "coef_b")


@dataclass(frozen=True)
class Cut:
    small: str  # tensor name of the downsampled frame (output of the first Resize of src)
    coef_a: str  # A [1,4,h,w] before its upsampling Resize
    coef_b: str  # b [1,4,h,w]


def find_cut(graph) -> Cut | None:
    """The tensors where the guided filter's full-resolution tail starts, or None if the graph differs."""
    producer = {out: node for node in graph.node for out in node.output}

    def made_by(tensors, op: str):
        """The first node of type ``op`` that produces one of ``tensors``."""
        return next((producer[t] for t in tensors if t in producer and producer[t].op_type == op), None)

    clip = made_by(["pha"], "Clip")
    split = made_by(clip.input[:1], "Split") if clip else None
    add = made_by(split.input[:1], "Add") if split else None
    if add is None:
        return None
    mul, resize_b = made_by(add.input, "Mul"), made_by(add.input, "Resize")
    resize_a = made_by(mul.input, "Resize") if mul else None
    shrink = next((n for n in graph.node if n.op_type == "Resize" and n.input and n.input[0] == "src"), None)
    if not (resize_a and resize_b and shrink):
        return None
    return Cut(shrink.output[0], resize_a.input[0], resize_b.input[0])


def coarse_model(model, cut: Cut):
    """An ONNX model of everything the coefficients and the next state depend on, fed the small frame directly.

    Returns None when that part still reads the full frame or the ratio (then the cut is not where we think).
    """
    from onnx import TensorProto, helper

    graph = model.graph
    producer = {out: node for node in graph.node for out in node.output}
    wanted = [cut.coef_a, cut.coef_b, *STATE_OUTPUTS]
    needed, stack = set(), list(wanted)
    while stack:
        tensor = stack.pop()
        node = producer.get(tensor)
        if tensor == cut.small or node is None or id(node) in needed:
            continue
        needed.add(id(node))
        stack.extend(node.input)
    nodes = [node for node in graph.node if id(node) in needed]
    used = {tensor for node in nodes for tensor in node.input}
    if used & {"src", "downsample_ratio"}:
        return None
    renamed = {cut.small: SMALL_INPUT, cut.coef_a: COEFFICIENTS[0], cut.coef_b: COEFFICIENTS[1]}
    for node in nodes:
        node.input[:] = [renamed.get(t, t) for t in node.input]
        node.output[:] = [renamed.get(t, t) for t in node.output]
    inputs = [helper.make_tensor_value_info(SMALL_INPUT, TensorProto.FLOAT, [1, 3, "height", "width"])]
    inputs += [i for i in graph.input if i.name in STATE_INPUTS]
    outputs = [helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, "channels", "height", "width"])
               for name in (*COEFFICIENTS, *STATE_OUTPUTS)]
    initializers = [t for t in graph.initializer if t.name in used]
    coarse = helper.make_graph(nodes, "rvm_coarse", inputs, outputs, initializers)
    result = helper.make_model(coarse, opset_imports=model.opset_import)
    result.ir_version = model.ir_version
    return result


def split_model(path) -> bytes | None:
    """The serialized coarse model for an RVM graph on disk, or None when the graph cannot be cut."""
    import onnx

    model = onnx.load(str(path))
    cut = find_cut(model.graph)
    coarse = coarse_model(model, cut) if cut else None
    return coarse.SerializeToString() if coarse is not None else None


# --- the encoder's features, for the memory propagator's keys (vidmatte.guidance.memory) ----------------------------
FEATURE_OUTPUTS = ("stride8", "stride16")


def find_features(graph) -> tuple[str, str] | None:
    """The encoder's 1/8-scale feature map and the LR-ASPP's 1/16-scale output, found by structure:
    the decoder concatenates [upsampled x, f_k, s_k] where s_k is the k-th average pooling of the input (the 1/8 one
    is three poolings deep), and LR-ASPP multiplies a ReLU branch by a sigmoid gate."""
    producer = {out: node for node in graph.node for out in node.output}

    def pool_depth(tensor: str) -> int:
        depth = 0
        while tensor in producer and producer[tensor].op_type == "AveragePool":
            depth, tensor = depth + 1, producer[tensor].input[0]
        return depth

    stride8 = next((n.input[1] for n in graph.node if n.op_type == "Concat" and len(n.input) == 3
                    and pool_depth(n.input[2]) == 3), None)
    kinds = lambda node: sorted(producer[t].op_type for t in node.input if t in producer)  # noqa: E731
    aspp = next((n.output[0] for n in graph.node if n.op_type == "Mul" and kinds(n) == ["Relu", "Sigmoid"]), None)
    return (stride8, aspp) if stride8 and aspp else None


def encoder_model(path) -> bytes | None:
    """A serialized ONNX model of the RVM encoder alone: ``src`` [1,3,H,W] 0..1 and ``downsample_ratio`` in,
    ``stride8`` [1,40,H/8,W/8] and ``stride16`` [1,128,H/16,W/16] out. None when the graph has another shape."""
    import onnx
    from onnx.utils import Extractor

    model = onnx.shape_inference.infer_shapes(onnx.load(str(path)))  # the extractor needs the tensors' types
    found = find_features(model.graph)
    if found is None:
        return None
    encoder = Extractor(model).extract_model(["src", "downsample_ratio"], list(found))
    renamed = dict(zip(found, FEATURE_OUTPUTS))
    for node in encoder.graph.node:
        node.output[:] = [renamed.get(t, t) for t in node.output]
        node.input[:] = [renamed.get(t, t) for t in node.input]
    for output in encoder.graph.output:
        output.name = renamed.get(output.name, output.name)
    return encoder.SerializeToString()
