"""Recognize exact GELU, `x * 0.5 * (1 + erf(x / sqrt(2)))`, as `ai.rill.Gelu` (one table).

Exporters below opset 20 write GELU as Div/Erf/Add/Mul/Mul, with the two products in any order:
`(x * 0.5) * (1 + e)`, `(x * (1 + e)) * 0.5` or `x * ((1 + e) * 0.5)`.
"""
from __future__ import annotations

import math
from typing import Any

import onnx_graphsurgeon as gs

from compiler.graph import const_value, only_consumer
from compiler.rewriter import RewritePass, RewriteRule
from compiler.rill_ops import RILL_DOMAIN


def _is_const(t: gs.Tensor | None, value: float) -> bool:
    v = None if t is None else const_value(t)
    return v is not None and v.size == 1 and math.isclose(float(v.reshape(-1)[0]), value,
                                                          rel_tol=1e-5)


def _other(node: gs.Node, t: gs.Tensor) -> gs.Tensor | None:
    """The other operand of a two-input node that reads `t`."""
    if len(node.inputs) != 2:
        return None
    return node.inputs[1] if node.inputs[0] is t else node.inputs[0] if node.inputs[1] is t else None


def _single_mul(t: gs.Tensor, graph: gs.Graph) -> gs.Node | None:
    node = only_consumer(t)
    return node if node is not None and node.op == "Mul" and t not in graph.outputs else None


class ErfGelu(RewriteRule):
    name = "gelu"
    anchor_ops = frozenset({"Erf"})

    def match(self, graph: gs.Graph, node: gs.Node) -> dict[str, Any] | None:
        scaled = node.inputs[0]
        if len(scaled.inputs) != 1 or len(scaled.outputs) != 1:
            return None
        div = scaled.inputs[0]
        x = next((t for t in div.inputs if const_value(t) is None), None)
        if x is None or not (div.op == "Div" and div.inputs[0] is x
                             and _is_const(div.inputs[1], math.sqrt(2.0))
                             or div.op == "Mul" and _is_const(_other(div, x), 1 / math.sqrt(2.0))):
            return None
        add = only_consumer(node.outputs[0])
        if add is None or add.op != "Add" or not _is_const(_other(add, node.outputs[0]), 1.0):
            return None
        out = self._product(graph, x, add.outputs[0])
        if out is None:
            return None
        return {"x": x, "out": out, "erf": node}

    @staticmethod
    def _product(graph: gs.Graph, x: gs.Tensor, one_plus: gs.Tensor) -> gs.Tensor | None:
        """The tensor holding x * 0.5 * one_plus, whichever way the products are grouped."""
        m1 = _single_mul(one_plus, graph)
        if m1 is None:
            return None
        a = _other(m1, one_plus)
        if a is x:  # (x * (1 + e)) * 0.5
            m2 = _single_mul(m1.outputs[0], graph)
            return m2.outputs[0] if m2 is not None and _is_const(_other(m2, m1.outputs[0]), 0.5) else None
        if a is not None and _is_const(a, 0.5):  # x * ((1 + e) * 0.5)
            m2 = _single_mul(m1.outputs[0], graph)
            return m2.outputs[0] if m2 is not None and _other(m2, m1.outputs[0]) is x else None
        half = a.inputs[0] if a is not None and len(a.inputs) == 1 else None
        if half is not None and half.op == "Mul" and _other(half, x) is not None \
                and _is_const(_other(half, x), 0.5) and len(a.outputs) == 1:  # (x * 0.5) * (1 + e)
            return m1.outputs[0]
        return None

    def rewrite(self, graph: gs.Graph, m: dict[str, Any]) -> None:
        out = m["out"]
        producer = out.inputs[0]
        producer.outputs.clear()
        name = m["erf"].name.replace("Erf", "Gelu") or "Gelu"
        graph.nodes.append(gs.Node("Gelu", name=name, domain=RILL_DOMAIN, inputs=[m["x"]],
                                   outputs=[out]))


class FuseGelu(RewritePass):
    name = "fuse-gelu"
    requires = frozenset({"constants-folded"})
    ensures = frozenset({"gelu-recognized"})
    rules = (ErfGelu(),)
