"""Fold a constant `Pad` into the Conv / AveragePool (zeros) or MaxPool (any value) after it.

Exporters write `F.pad(x, (k-1, 0))` + Conv as a Pad node (often with its pads computed by a
chain of shape ops, which constant folding has already reduced). Folding it makes the padding an
attribute the streaming-cut can turn into state. A MaxPool padded with a value (e.g.
`F.pad(x, (2, 0), value=-1e4)`) becomes `ai.rill.MaxPool` with that `pad_value`, so its state
starts at the pad value.
"""
from __future__ import annotations

from typing import Any

import onnx_graphsurgeon as gs

from compiler.graph import only_consumer, static_shape
from compiler.op_attrs import pad_spec, set_explicit_pads, window_attrs
from compiler.rewriter import RewritePass, RewriteRule
from compiler.rill_ops import RILL_DOMAIN

POOLS_WITH_ZERO_PAD = {"AveragePool"}


class FoldPadIntoWindowOp(RewriteRule):
    name = "fold-pad"
    anchor_ops = frozenset({"Pad"})

    def match(self, graph: gs.Graph, node: gs.Node) -> dict[str, Any] | None:
        spec = pad_spec(node)
        consumer = only_consumer(node.outputs[0])
        shape = static_shape(node.inputs[0])
        if spec is None or consumer is None or shape is None or node.outputs[0] in graph.outputs:
            return None
        if consumer.op not in ({"Conv", "MaxPool"} | POOLS_WITH_ZERO_PAD) \
                or consumer.inputs[0] is not node.outputs[0]:
            return None
        return {"pad": node, "op": consumer, "spec": spec, "rank": len(shape)}

    def check(self, graph: gs.Graph, m: dict[str, Any]) -> bool:
        pads, value, mode = m["spec"]
        rank = m["rank"]
        op = m["op"]
        if mode != "constant" or any(p < 0 for p in pads):
            return False
        if pads[0] or pads[1] or pads[rank] or pads[rank + 1]:  # batch/channel padding
            return False
        if op.op == "MaxPool":
            return len(op.outputs) == 1 and not any(window_attrs(op)["pads"]) \
                and not op.attrs.get("ceil_mode", 0)
        if value != 0.0:
            return False
        if op.op == "AveragePool":
            a = window_attrs(op)
            if any(a["pads"]) and not int(op.attrs.get("count_include_pad", 0)):
                return False
            spatial = rank - 2
            for i in range(spatial):  # ONNX pooling needs every pad smaller than the kernel
                if max(a["pads"][i] + pads[2 + i], a["pads"][spatial + i] + pads[rank + 2 + i]) \
                        >= a["kernel"][i]:
                    return False
        return True

    def rewrite(self, graph: gs.Graph, m: dict[str, Any]) -> None:
        pad, op, rank = m["pad"], m["op"], m["rank"]
        pads = m["spec"][0]
        spatial = rank - 2
        old = window_attrs(op)["pads"]
        new = [old[i] + pads[2 + i] for i in range(spatial)] + \
              [old[spatial + i] + pads[rank + 2 + i] for i in range(spatial)]
        set_explicit_pads(op, new)
        if op.op == "AveragePool":
            op.attrs["count_include_pad"] = 1  # the padded zeros were real inputs to the pool
        if op.op == "MaxPool":
            op.domain = RILL_DOMAIN
            op.attrs["pad_value"] = float(m["spec"][1])
            op.attrs.pop("storage_order", None)
        op.inputs[0] = pad.inputs[0]


class FusePad(RewritePass):
    name = "fuse-pad"
    requires = frozenset({"constants-folded"})
    ensures = frozenset({"pads-folded"})
    rules = (FoldPadIntoWindowOp(),)
