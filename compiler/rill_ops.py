"""Rill's own fused ops (domain `ai.rill`) and their expansion back to standard ONNX.

Fusion passes replace op chains with one of these nodes so later passes see one op per kernel.
`expand_rill_ops` turns them back into standard ONNX so every intermediate graph still runs in
onnxruntime (equivalence checks, `--dump-passes`, the streaming model).
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

RILL_DOMAIN = "ai.rill"

# op -> the standard op it wraps (its attributes are passed through minus the activation ones)
FUSED_WITH_ACTIVATION = {"FusedConv": "Conv", "FusedGemm": "Gemm"}
ACTIVATION_ATTRS = ("activation", "activation_params")


def _attr_dict(node: onnx.NodeProto) -> dict[str, onnx.AttributeProto]:
    return {a.name: a for a in node.attribute}


def _expand_activation(node: onnx.NodeProto, x: str, y: str, kind: str, params: list[float],
                       inits: list[onnx.TensorProto]) -> list[onnx.NodeProto]:
    if kind == "Relu":
        return [helper.make_node("Relu", [x], [y], name=f"{node.name}/Relu")]
    if kind == "Clip":
        lo, hi = f"{node.name}/clip_min", f"{node.name}/clip_max"
        inits += [numpy_helper.from_array(np.array(params[0], np.float32), lo),
                  numpy_helper.from_array(np.array(params[1], np.float32), hi)]
        return [helper.make_node("Clip", [x, lo, hi], [y], name=f"{node.name}/Clip")]
    raise ValueError(f"unknown fused activation {kind!r} on node {node.name}")


def _expand_node(node: onnx.NodeProto, inits: list[onnx.TensorProto]) -> list[onnx.NodeProto]:
    if node.op_type in FUSED_WITH_ACTIVATION:
        attrs = _attr_dict(node)
        kind = helper.get_attribute_value(attrs["activation"]).decode() if "activation" in attrs else ""
        params = list(helper.get_attribute_value(attrs["activation_params"])) \
            if "activation_params" in attrs else []
        base = helper.make_node(FUSED_WITH_ACTIVATION[node.op_type], list(node.input),
                                [node.output[0] if not kind else f"{node.output[0]}__preact"],
                                name=node.name)
        base.attribute.extend(a for n, a in attrs.items() if n not in ACTIVATION_ATTRS)
        if not kind:
            return [base]
        return [base] + _expand_activation(node, base.output[0], node.output[0], kind, params, inits)
    if node.op_type == "Silu":
        s = f"{node.output[0]}__sigmoid"
        return [helper.make_node("Sigmoid", [node.input[0]], [s], name=f"{node.name}/Sigmoid"),
                helper.make_node("Mul", [node.input[0], s], [node.output[0]], name=f"{node.name}/Mul")]
    raise ValueError(f"no expansion for {RILL_DOMAIN}.{node.op_type} (node {node.name})")


def has_rill_ops(model: onnx.ModelProto) -> bool:
    return any(n.domain == RILL_DOMAIN for n in model.graph.node)


def expand_rill_ops(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of `model` with every `ai.rill` node replaced by standard ONNX nodes."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    if not has_rill_ops(out):
        return out
    nodes, inits = [], []
    for node in out.graph.node:
        nodes.extend(_expand_node(node, inits) if node.domain == RILL_DOMAIN else [node])
    del out.graph.node[:]
    out.graph.node.extend(nodes)
    out.graph.initializer.extend(inits)
    keep = [o for o in out.opset_import if o.domain != RILL_DOMAIN]
    del out.opset_import[:]
    out.opset_import.extend(keep)
    return out
