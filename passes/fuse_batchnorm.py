"""Fold an inference-mode BatchNormalization into the Conv that produces its input; a
BatchNormalization with no Conv to fold into (after an Add or a Concat) becomes a depthwise 1x1
Conv, which is exactly the same per-channel affine map and reuses the conv kernels."""
from __future__ import annotations

from typing import Any

import numpy as np
import onnx_graphsurgeon as gs

from compiler.graph import absorb, const_value, fusable_producer, static_shape, unique_name
from compiler.rewriter import RewritePass, RewriteRule


class FoldBatchNormIntoConv(RewriteRule):
    name = "fold-batchnorm"
    anchor_ops = frozenset({"BatchNormalization"})

    def match(self, graph: gs.Graph, node: gs.Node) -> dict[str, Any] | None:
        conv = fusable_producer(graph, node.inputs[0], node)
        if conv is None or conv.op != "Conv":
            return None
        params = [const_value(t) for t in node.inputs[1:5]]
        w = const_value(conv.inputs[1])
        b = const_value(conv.inputs[2]) if len(conv.inputs) > 2 else None
        if any(p is None for p in params) or w is None:
            return None
        if len(conv.inputs) > 2 and b is None:
            return None
        return {"bn": node, "conv": conv, "params": params, "w": w, "b": b}

    def check(self, graph: gs.Graph, m: dict[str, Any]) -> bool:
        return not int(m["bn"].attrs.get("training_mode", 0)) and \
            sum(1 for o in m["bn"].outputs if o.outputs or o in graph.outputs) <= 1

    def rewrite(self, graph: gs.Graph, m: dict[str, Any]) -> None:
        bn, conv, w = m["bn"], m["conv"], m["w"].astype(np.float64)
        gamma, beta, mean, var = (p.astype(np.float64) for p in m["params"])
        eps = float(bn.attrs.get("epsilon", 1e-5))
        scale = gamma / np.sqrt(var + eps)
        bias = m["b"].astype(np.float64) if m["b"] is not None else np.zeros(w.shape[0])
        new_w = (w * scale.reshape((-1,) + (1,) * (w.ndim - 1))).astype(np.float32)
        new_b = ((bias - mean) * scale + beta).astype(np.float32)
        conv.inputs[1] = gs.Constant(unique_name(graph, f"{conv.name}/weight_bn"), new_w)
        bias_const = gs.Constant(unique_name(graph, f"{conv.name}/bias_bn"), new_b)
        if len(conv.inputs) > 2:
            conv.inputs[2] = bias_const
        else:
            conv.inputs.append(bias_const)
        absorb(conv, bn)


def _affine(bn: gs.Node) -> tuple[np.ndarray, np.ndarray] | None:
    """(scale, shift) per channel of an inference BatchNormalization with constant parameters."""
    params = [const_value(t) for t in bn.inputs[1:5]]
    if any(p is None for p in params) or int(bn.attrs.get("training_mode", 0)):
        return None
    gamma, beta, mean, var = (p.astype(np.float64) for p in params)
    scale = gamma / np.sqrt(var + float(bn.attrs.get("epsilon", 1e-5)))
    return scale, beta - mean * scale


class BatchNormAsDepthwiseConv(RewriteRule):
    name = "batchnorm-as-conv"
    anchor_ops = frozenset({"BatchNormalization"})

    def match(self, graph: gs.Graph, node: gs.Node) -> dict[str, Any] | None:
        shape = static_shape(node.inputs[0])
        producer = fusable_producer(graph, node.inputs[0], node)
        if shape is None or len(shape) < 3 or (producer is not None and producer.op == "Conv"):
            return None
        if any(o.outputs or o in graph.outputs for o in node.outputs[1:]):
            return None
        affine = _affine(node)
        return None if affine is None else {"bn": node, "affine": affine, "rank": len(shape)}

    def rewrite(self, graph: gs.Graph, m: dict[str, Any]) -> None:
        bn, (scale, shift) = m["bn"], m["affine"]
        spatial = m["rank"] - 2
        w = scale.astype(np.float32).reshape((-1, 1) + (1,) * spatial)
        conv = gs.Node("Conv", name=bn.name, attrs={"group": int(w.shape[0]),
                                                    "kernel_shape": [1] * spatial},
                       inputs=[bn.inputs[0],
                               gs.Constant(unique_name(graph, f"{bn.name}/scale"), w),
                               gs.Constant(unique_name(graph, f"{bn.name}/shift"),
                                           shift.astype(np.float32))],
                       outputs=[bn.outputs[0]])
        bn.outputs.clear()
        graph.nodes.append(conv)


class FuseBatchNorm(RewritePass):
    name = "fuse-batchnorm"
    requires = frozenset({"constants-folded"})
    ensures = frozenset({"batchnorm-folded"})
    rules = (FoldBatchNormIntoConv(), BatchNormAsDepthwiseConv())
