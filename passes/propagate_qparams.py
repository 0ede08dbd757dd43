"""Tie exponents of tensors that must share one, and decide where a Concat input is requantized.

Passive ops (Reshape, Flatten, Slice, Gather, Transpose, Squeeze, Unsqueeze, MaxPool, the
streaming Concat of a state and its new frames) move values without arithmetic, so input and
output share an exponent and lower to plain copies. A state pair shares the exponent of the
tensor whose frames it holds (contract §3). Each group takes its fixed member's exponent
(quant_rules.fixed_exponents: softmax, recurrent state, an imported QDQ scale) or else the
coarsest one of its members, so nothing clips.

A model Concat's inputs join its output's group too (the producers then write at the Concat's
exponent and the Concat is a copy), except where that is impossible or costs precision; such an
input keeps its own exponent and the Concat requantizes it (lowering emits a `requant` step):
- its group and the Concat's are fixed to different exponents, or stored in different
  precisions (an imported QDQ model with other scales on the Concat inputs);
- it has other readers and a finer exponent than the Concat's group: tying would coarsen what
  those readers see.
Every such input is listed in `facts["requantized_inputs"]`; lowering reports the requantizations
it emitted (`facts["requantizations"]`, in report.json).

Exponent rules of the arithmetic ops are in passes/lowering/: the output exponent of Mul, Gemm,
AveragePool and tables comes from calibration like every other tensor, and the kernel's shift
(or table) maps the exact product, sum or function onto it.
"""
from __future__ import annotations

from dataclasses import dataclass

import networkx as nx
import onnx_graphsurgeon as gs

from compiler.context import CompileContext
from compiler.errors import RillError
from compiler.pass_manager import Pass
from passes.quant_rules import fixed_exponents, tie_graph


@dataclass
class Group:
    """Tensors that share one exponent: the fixed one if any, else the coarsest calibrated."""

    members: set[str]
    pinned: int | None
    known: int | None  # the coarsest calibrated exponent
    bits: int | None

    @property
    def exp(self) -> int | None:
        return self.pinned if self.pinned is not None else self.known

    def conflict(self, other: "Group") -> str | None:
        """Why the two groups cannot share one exponent, or None when they can."""
        if None not in (self.bits, other.bits) and self.bits != other.bits:
            return f"int{self.bits} into an int{other.bits} Concat"
        if None not in (self.pinned, other.pinned) and self.pinned != other.pinned:
            return "fixed to different exponents"
        return None

    def join(self, other: "Group") -> None:
        self.members |= other.members
        self.pinned = self.pinned if self.pinned is not None else other.pinned
        known = [e for e in (self.known, other.known) if e is not None]
        self.known = max(known) if known else None
        self.bits = self.bits if self.bits is not None else other.bits


class PropagateQParams(Pass):
    name = "propagate-qparams"
    requires = frozenset({"quantized"})
    ensures = frozenset({"qparams-propagated"})

    def run(self, ctx: CompileContext) -> bool:
        graph = ctx.graph
        exps: dict[str, int] = dict(ctx.facts["exponents"])
        ties = tie_graph(graph, ctx.facts)
        groups = hard_groups(ties, exps, fixed_exponents(graph, ctx.facts),
                             ctx.facts.get("tensor_bits", {}))
        split = join_concat_inputs(graph, ties, groups)
        changed = False
        for group in unique(groups):
            if group.exp is None:
                raise RillError(f"no calibration range for tensors {sorted(group.members)}")
            changed |= any(exps.get(m) != group.exp for m in group.members)
            for m in group.members:
                exps[m] = group.exp
        ctx.facts["exponents"] = exps
        ctx.facts["exponent_groups"] = [sorted(g.members) for g in unique(groups)]
        ctx.facts["requantized_inputs"] = split
        return changed


def hard_groups(ties: nx.Graph, exps: dict[str, int], fixed: dict[str, int],
                bits: dict[str, int]) -> dict[str, Group]:
    """Tensor -> its group over the edges that cannot be cut (all but model Concat inputs)."""
    hard = nx.Graph()
    hard.add_nodes_from(ties.nodes)
    hard.add_edges_from((a, b) for a, b, c in ties.edges(data="concat") if c is None)
    groups: dict[str, Group] = {}
    for members in nx.connected_components(hard):
        pinned = {fixed[m] for m in members if m in fixed}
        if len(pinned) > 1:
            raise RillError(f"tensors {sorted(members)} must share one exponent but have fixed "
                            f"exponents {sorted(pinned)}")
        known = [exps[m] for m in members if m in exps]
        widths = {bits[m] for m in members if m in bits}
        group = Group(set(members), pinned.pop() if pinned else None,
                      max(known) if known else None, widths.pop() if len(widths) == 1 else None)
        for m in members:
            groups[m] = group
    return groups


def join_concat_inputs(graph: gs.Graph, ties: nx.Graph, groups: dict[str, Group]
                       ) -> list[dict]:
    """Joins each model Concat input's group to the Concat's unless the input must keep its
    own exponent (see the module docstring); returns those inputs with the reason."""
    readers = {name: len(t.outputs) + (t in graph.outputs) for name, t in graph.tensors().items()}
    split = []
    for node in graph.nodes:
        if node.op != "Concat":
            continue
        y = node.outputs[0].name
        for t in node.inputs:
            if not ties.has_edge(t.name, y) or ties.edges[t.name, y]["concat"] is None:
                continue
            src, dst = groups[t.name], groups[y]
            if src is dst:
                continue
            finer = readers[t.name] > 1 and None not in (src.exp, dst.exp) and src.exp < dst.exp
            reason = src.conflict(dst) or ("has other readers and a finer exponent" if finer else None)
            if reason:
                split.append({"tensor": t.name, "node": node.name, "reason": reason})
                continue
            src.join(dst)
            for m in dst.members:
                groups[m] = src
    return split


def unique(groups: dict[str, Group]) -> list[Group]:
    seen: dict[int, Group] = {}
    for g in groups.values():
        seen.setdefault(id(g), g)
    return sorted(seen.values(), key=lambda g: min(g.members))
