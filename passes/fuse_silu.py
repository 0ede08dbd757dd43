"""Recognize `x * Sigmoid(x)` as `ai.rill.Silu`, so it becomes one table lookup."""
from __future__ import annotations

from typing import Any

import onnx_graphsurgeon as gs

from compiler.graph import only_consumer
from compiler.rewriter import RewritePass, RewriteRule
from compiler.rill_ops import RILL_DOMAIN


class SigmoidTimesInput(RewriteRule):
    name = "silu"
    anchor_ops = frozenset({"Sigmoid"})

    def match(self, graph: gs.Graph, node: gs.Node) -> dict[str, Any] | None:
        x, s = node.inputs[0], node.outputs[0]
        mul = only_consumer(s)
        if mul is None or mul.op != "Mul" or s in graph.outputs or len(mul.inputs) != 2:
            return None
        other = mul.inputs[1] if mul.inputs[0] is s else mul.inputs[0]
        if other is not x:
            return None
        return {"sigmoid": node, "mul": mul, "x": x}

    def rewrite(self, graph: gs.Graph, m: dict[str, Any]) -> None:
        mul = m["mul"]
        out = mul.outputs[0]
        mul.outputs.clear()
        graph.nodes.append(gs.Node("Silu", name=m["sigmoid"].name.replace("Sigmoid", "Silu") or "Silu",
                                   domain=RILL_DOMAIN, inputs=[m["x"]], outputs=[out]))


class FuseSilu(RewritePass):
    name = "fuse-silu"
    requires = frozenset({"constants-folded"})
    ensures = frozenset({"silu-recognized"})
    rules = (SigmoidTimesInput(),)
