"""Fuse Relu / Clip into the Conv or Gemm that produces their input (`ai.rill.FusedConv/FusedGemm`).

The fused op requantizes and clamps in one pass over the accumulator, so the activation costs
nothing at run time and its output exponent is the only one that matters.
"""
from __future__ import annotations

from typing import Any

import onnx_graphsurgeon as gs

from compiler.graph import absorb, fusable_producer
from compiler.op_attrs import clip_bounds
from compiler.rewriter import RewritePass, RewriteRule
from compiler.rill_ops import RILL_DOMAIN

FUSED_NAME = {"Conv": "FusedConv", "Gemm": "FusedGemm"}


class FuseActivationIntoProducer(RewriteRule):
    name = "fuse-activation"
    anchor_ops = frozenset({"Relu", "Clip"})

    def match(self, graph: gs.Graph, node: gs.Node) -> dict[str, Any] | None:
        prod = fusable_producer(graph, node.inputs[0], node)
        if prod is None:
            return None
        is_plain = prod.op in FUSED_NAME and prod.domain in (None, "", "ai.onnx")
        is_fused_bare = prod.op in FUSED_NAME.values() and not prod.attrs.get("activation")
        if not (is_plain or is_fused_bare):
            return None
        if node.op == "Relu":
            return {"act": node, "prod": prod, "kind": "Relu", "params": []}
        bounds = clip_bounds(node)
        if bounds is None:
            return None
        return {"act": node, "prod": prod, "kind": "Clip", "params": list(bounds)}

    def rewrite(self, graph: gs.Graph, m: dict[str, Any]) -> None:
        act, prod = m["act"], m["prod"]
        if prod.op in FUSED_NAME:
            prod.op = FUSED_NAME[prod.op]
            prod.domain = RILL_DOMAIN
        prod.attrs["activation"] = m["kind"]
        if m["params"]:
            prod.attrs["activation_params"] = [float(v) for v in m["params"]]
        absorb(prod, act)


class FuseActivation(RewritePass):
    name = "fuse-activation"
    requires = frozenset({"batchnorm-folded"})
    ensures = frozenset({"activations-fused"})
    rules = (FuseActivationIntoProducer(),)
