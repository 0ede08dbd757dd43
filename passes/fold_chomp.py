"""Fold a trailing-frame crop after a padded Conv into the Conv's right padding.

TCN code pads a conv on both sides and crops the extra frames off the end (`Chomp1d`:
`conv(x, padding=p)[..., :-p]`), which is a causal conv in disguise. With stride 1 along the
cropped axis, dropping the last r output frames is exactly the same conv with r less right pad,
so the crop disappears and the streaming-cut sees an ordinary causal conv.
"""
from __future__ import annotations

from typing import Any

import onnx_graphsurgeon as gs

from compiler.graph import bypass_node, fusable_producer, static_shape
from compiler.op_attrs import normalized_slice, set_explicit_pads, slice_spec, window_attrs
from compiler.rewriter import RewritePass, RewriteRule


class CropIntoRightPad(RewriteRule):
    name = "fold-chomp"
    anchor_ops = frozenset({"Slice"})

    def match(self, graph: gs.Graph, node: gs.Node) -> dict[str, Any] | None:
        src = node.inputs[0]
        conv = fusable_producer(graph, src, node)
        if conv is None or conv.op != "Conv":
            return None
        spec, shape = slice_spec(node), static_shape(src)
        if spec is None or shape is None:
            return None
        starts, ends, axes, steps = spec
        if len(axes) != 1 or axes[0] < 2:
            return None
        start, end, step = normalized_slice(starts[0], ends[0], steps[0], shape[axes[0]])
        crop = shape[axes[0]] - end
        if start != 0 or step != 1 or crop <= 0:
            return None
        return {"slice": node, "conv": conv, "axis": axes[0], "crop": crop}

    def check(self, graph: gs.Graph, m: dict[str, Any]) -> bool:
        a = window_attrs(m["conv"])
        i = m["axis"] - 2
        return a["strides"][i] == 1 and a["pads"][len(a["kernel"]) + i] >= m["crop"]

    def rewrite(self, graph: gs.Graph, m: dict[str, Any]) -> None:
        conv = m["conv"]
        pads = window_attrs(conv)["pads"]
        pads[len(pads) // 2 + m["axis"] - 2] -= m["crop"]
        set_explicit_pads(conv, pads)
        bypass_node(graph, m["slice"])


class FoldChomp(RewritePass):
    name = "fold-chomp"
    requires = frozenset({"constants-folded"})
    ensures = frozenset({"chomp-folded"})
    rules = (CropIntoRightPad(),)
    reinfer_shapes = True
