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
    if node.op_type == "MaskFrames":
        return _expand_mask_frames(node, inits)
    if node.op_type == "MaxPool":
        return _expand_padded_max_pool(node, inits)
    if node.op_type == "Gelu":
        return _expand_gelu(node, inits)
    raise ValueError(f"no expansion for {RILL_DOMAIN}.{node.op_type} (node {node.name})")


def _scalar(inits: list[onnx.TensorProto], name: str, value: float) -> str:
    inits.append(numpy_helper.from_array(np.array(value, np.float32), name))
    return name


def _expand_mask_frames(node: onnx.NodeProto, inits) -> list[onnx.NodeProto]:
    """y = x * flags + value * (1 - flags): exact for flags in {0, 1} and finite x."""
    x, flags = node.input
    y, base = node.output[0], node.name
    value = helper.get_attribute_value(_attr_dict(node)["value"])
    if value == 0.0:
        return [helper.make_node("Mul", [x, flags], [y], name=f"{base}/Mul")]
    one = _scalar(inits, f"{base}/one", 1.0)
    fill = _scalar(inits, f"{base}/value", value)
    return [helper.make_node("Mul", [x, flags], [f"{y}__kept"], name=f"{base}/Mul"),
            helper.make_node("Sub", [one, flags], [f"{y}__blank"], name=f"{base}/Sub"),
            helper.make_node("Mul", [f"{y}__blank", fill], [f"{y}__filled"], name=f"{base}/Fill"),
            helper.make_node("Add", [f"{y}__kept", f"{y}__filled"], [y], name=f"{base}/Add")]


def _expand_padded_max_pool(node: onnx.NodeProto, inits) -> list[onnx.NodeProto]:
    """MaxPool whose padding reads `pad_value` (a folded constant Pad) instead of -inf."""
    attrs = _attr_dict(node)
    pads = list(helper.get_attribute_value(attrs["pads"]))
    value = helper.get_attribute_value(attrs["pad_value"])
    rank = len(pads) // 2
    full = [0, 0] + pads[:rank] + [0, 0] + pads[rank:]
    pads_name = f"{node.name}/pads"
    inits.append(numpy_helper.from_array(np.array(full, np.int64), pads_name))
    padded = f"{node.output[0]}__padded"
    pool = helper.make_node("MaxPool", [padded], list(node.output), name=node.name)
    pool.attribute.extend(a for n, a in attrs.items() if n not in ("pads", "pad_value", "auto_pad"))
    return [helper.make_node("Pad", [node.input[0], pads_name, _scalar(inits, f"{node.name}/value", value)],
                             [padded], name=f"{node.name}/Pad", mode="constant"), pool]


def _expand_gelu(node: onnx.NodeProto, inits) -> list[onnx.NodeProto]:
    """0.5 * x * (1 + erf(x / sqrt(2))), or the tanh approximation."""
    x, y, base = node.input[0], node.output[0], node.name
    approx = _attr_dict(node).get("approximate")
    if approx is not None and helper.get_attribute_value(approx) in (b"tanh", "tanh"):
        c = _scalar(inits, f"{base}/c", 0.044715)
        k = _scalar(inits, f"{base}/k", float(np.sqrt(2.0 / np.pi)))
        three = _scalar(inits, f"{base}/three", 3.0)
        nodes = [helper.make_node("Pow", [x, three], [f"{y}__x3"], name=f"{base}/Pow"),
                 helper.make_node("Mul", [f"{y}__x3", c], [f"{y}__cx3"], name=f"{base}/MulC"),
                 helper.make_node("Add", [x, f"{y}__cx3"], [f"{y}__inner"], name=f"{base}/AddX"),
                 helper.make_node("Mul", [f"{y}__inner", k], [f"{y}__arg"], name=f"{base}/MulK"),
                 helper.make_node("Tanh", [f"{y}__arg"], [f"{y}__f"], name=f"{base}/Tanh")]
    else:
        r = _scalar(inits, f"{base}/sqrt2", float(np.sqrt(2.0)))
        nodes = [helper.make_node("Div", [x, r], [f"{y}__arg"], name=f"{base}/Div"),
                 helper.make_node("Erf", [f"{y}__arg"], [f"{y}__f"], name=f"{base}/Erf")]
    one = _scalar(inits, f"{base}/one", 1.0)
    half = _scalar(inits, f"{base}/half", 0.5)
    return nodes + [helper.make_node("Add", [f"{y}__f", one], [f"{y}__1f"], name=f"{base}/Add1"),
                    helper.make_node("Mul", [x, half], [f"{y}__hx"], name=f"{base}/Half"),
                    helper.make_node("Mul", [f"{y}__hx", f"{y}__1f"], [y], name=f"{base}/Mul")]


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
