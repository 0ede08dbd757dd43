"""A Div by a constant becomes a Mul by its reciprocal.

The integer kernels then multiply by a quantized constant (one exact product, one rounding)
instead of dividing at run time; the reciprocal is computed in float64 and stored as float32
(x * (1/c) differs from x / c by at most about one float32 ulp). A divisor with a zero (or a
non-finite value) stays a Div: the `binary` kernel's division saturates there like the float
model's infinities.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import onnx_graphsurgeon as gs

from compiler.graph import const_value, unique_name
from compiler.rewriter import RewritePass, RewriteRule


class DivToMul(RewriteRule):
    name = "div-to-mul"
    anchor_ops = frozenset({"Div"})

    def match(self, graph: gs.Graph, node: gs.Node) -> dict[str, Any] | None:
        if len(node.inputs) != 2 or const_value(node.inputs[0]) is not None:
            return None
        c = const_value(node.inputs[1])
        if c is None or not np.issubdtype(c.dtype, np.floating):
            return None
        c = c.astype(np.float64)
        if not np.all(np.isfinite(c)) or np.any(c == 0):
            return None
        return {"div": node, "c": c}

    def rewrite(self, graph: gs.Graph, m: dict[str, Any]) -> None:
        node = m["div"]
        node.op = "Mul"
        node.inputs[1] = gs.Constant(unique_name(graph, f"{node.name}/reciprocal"),
                                     np.asarray(1.0 / m["c"], np.float32))


class DivByConstant(RewritePass):
    name = "div-by-constant"
    requires = frozenset({"constants-folded"})
    ensures = frozenset({"div-by-constant-folded"})
    rules = (DivToMul(),)
