"""Tie exponents of tensors that must share one: passive ops and state pairs.

Passive ops (Reshape, Flatten, Slice, Gather, Transpose, Squeeze, Unsqueeze, the streaming Concat of a
state and its new frames) move values without arithmetic, so input and output share an exponent
and lower to plain copies. A state pair shares the exponent of the tensor whose frames it holds
(contract §3). Each group takes the coarsest exponent of its members, so nothing clips.
"""
from __future__ import annotations

import networkx as nx

from compiler.context import CompileContext
from compiler.errors import RillError
from compiler.pass_manager import Pass
from passes.quant_rules import fixed_exponents, tie_graph


class PropagateQParams(Pass):
    name = "propagate-qparams"
    requires = frozenset({"quantized"})
    ensures = frozenset({"qparams-propagated"})

    def run(self, ctx: CompileContext) -> bool:
        graph = ctx.graph
        exps: dict[str, int] = dict(ctx.facts["exponents"])
        ties = tie_graph(graph, ctx.facts)
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
