"""Tie exponents of tensors that must share one: passive ops and state pairs.

Passive ops (Reshape, Flatten, Slice, Gather, Transpose, Squeeze, Unsqueeze, the streaming Concat of a
state and its new frames) move values without arithmetic, so input and output share an exponent
and lower to plain copies. A state pair shares the exponent of the tensor whose frames it holds
(contract §3). Each group takes the coarsest exponent of its members, so nothing clips.
"""
from __future__ import annotations

import networkx as nx
import onnx_graphsurgeon as gs

from compiler.context import CompileContext
from compiler.errors import RillError
from compiler.pass_manager import Pass
from passes.quant_rules import fixed_exponents

PASSIVE_OPS = {"Reshape", "Flatten", "Slice", "Gather", "Transpose", "Squeeze", "Unsqueeze",
               "Concat", "Identity", "MaskFrames", "MaxPool"}


class PropagateQParams(Pass):
    name = "propagate-qparams"
    requires = frozenset({"quantized"})
    ensures = frozenset({"qparams-propagated"})

    def run(self, ctx: CompileContext) -> bool:
        graph = ctx.graph
        exps: dict[str, int] = dict(ctx.facts["exponents"])
        ties = nx.Graph()
        for node in graph.nodes:
            if node.op not in PASSIVE_OPS:
                continue
            data = node.inputs if node.op == "Concat" else node.inputs[:1]  # the rest: parameters
            for t in (t for t in data if not isinstance(t, gs.Constant)):
                for o in node.outputs[:1]:
                    ties.add_edge(t.name, o.name)
        for state in ctx.facts.get("streaming", {}).get("states", []):
            ties.add_edge(state.input, state.output)
            if state.tensor is not None:
                ties.add_edge(state.input, state.tensor)
        fixed = fixed_exponents(graph, ctx.facts)
        changed = False
        groups = []
        for members in nx.connected_components(ties):
            known = [exps[m] for m in members if m in exps]
            pinned = {fixed[m] for m in members if m in fixed}
            if len(pinned) > 1:
                raise RillError(f"tensors {sorted(members)} must share one exponent but have fixed "
                                f"exponents {sorted(pinned)}")
            if not known and not pinned:
                raise RillError(f"no calibration range for tensors {sorted(members)}")
            e = pinned.pop() if pinned else max(known)
            changed |= any(exps.get(m) != e for m in members)
            for m in members:
                exps[m] = e
            groups.append(sorted(members))
        ctx.facts["exponents"] = exps
        ctx.facts["exponent_groups"] = groups
        ctx.facts["requantizations"] = []  # none needed: every group shares one exponent
        return changed
