"""Choose the precision of every tensor and every layer's weights: int8 or int16.

Every layer starts at `--bits` (or at the width an imported QDQ model gives it); `--int16 LAYER,...` (node or output-tensor names, or the model's
input) promotes single layers, and the mixed-precision search (compiler/mixed_precision.py) does
the same through `Options.int16_layers`. Tensors that must share an exponent (passive ops, state
pairs) also share a precision, so a promotion spreads over its tie group; so do a recurrent
layer's hidden and cell tensors (its kernel writes y from h, and int16 h goes with an int32
cell). A layer's weights (Conv/Gemm, GRU/LSTM, the constant operands of element-wise ops) follow its output's precision unless it is listed
in `facts["int8_weight_layers"]` (int16 activations with int8 weights, half the flash).

Kernels take inputs and outputs of either precision, so an int8<->int16 boundary is requantized
inside the consuming kernel by its output shift; no separate conversion step is needed.
"""
from __future__ import annotations

import networkx as nx
import onnx_graphsurgeon as gs

from compiler.context import CompileContext
from compiler.errors import RillError
from compiler.pass_manager import Pass
from passes.quant_rules import PASSIVE_OPS, WEIGHTED_OPS, node_operands, tie_graph

RECURRENT_OPS = {"GRU", "LSTM"}


def layer_nodes(graph: gs.Graph) -> list[gs.Node]:
    """Nodes that compute a new tensor (not data movement): the units of precision choice."""
    return [n for n in graph.nodes if n.op not in PASSIVE_OPS and n.outputs
            and not isinstance(n.outputs[0], gs.Constant)]


def data_tensors(graph: gs.Graph) -> list[str]:
    return [t.name for t in graph.tensors().values()
            if t.name and not isinstance(t, gs.Constant)]


def resolve_layers(graph: gs.Graph, names: list[str]) -> dict[str, str]:
    """Layer name (node, output tensor or graph input) -> the tensor it produces."""
    by_node = {n.name: n.outputs[0].name for n in layer_nodes(graph)}
    by_tensor = {t: t for t in by_node.values()}
    by_tensor.update({t.name: t.name for t in graph.inputs})
    resolved, unknown = {}, []
    for name in names:
        tensor = by_node.get(name) or by_tensor.get(name)
        if tensor is None:
            unknown.append(name)
        else:
            resolved[name] = tensor
    if unknown:
        known = ", ".join(sorted(by_node)[:40])
        raise RillError(f"--int16: no layer named {', '.join(repr(u) for u in unknown)}; layers "
                        f"are node or output tensor names, e.g. {known}")
    return resolved


def recurrent_state_tensors(graph: gs.Graph) -> list[list[str]]:
    """Per GRU/LSTM: Y, Y_h, Y_c and initial_h, initial_c (those present and not constant)."""
    groups = []
    for n in graph.nodes:
        if n.op in RECURRENT_OPS:
            ts = list(n.outputs[:3]) + list(n.inputs[5:7])
            groups.append([t.name for t in ts if t.name and not isinstance(t, gs.Constant)])
    return groups


def frame_flags(graph: gs.Graph) -> set[str]:
    """The streaming cut's 0/1 valid-frame flags: int8 whatever the layers around them."""
    return {n.inputs[1].name for n in graph.nodes if n.op == "MaskFrames"}


class AssignPrecision(Pass):
    name = "assign-precision"
    requires = frozenset({"calibrated"})
    ensures = frozenset({"precision-assigned"})

    def run(self, ctx: CompileContext) -> bool:
        graph, base = ctx.graph, ctx.options.bits
        tensors = data_tensors(graph)
        promoted = set(resolve_layers(graph, ctx.options.int16_layers).values())
        # an imported QDQ model's own widths (passes/import_qdq.py) are taken as given
        given = ctx.facts.setdefault("given_tensor_bits", dict(ctx.facts.get("tensor_bits", {})))
        given_w = ctx.facts.setdefault("given_weight_bits", dict(ctx.facts.get("weight_bits", {})))
        bits = {t: 16 if t in promoted else given.get(t, base) for t in tensors}
        ties = tie_graph(graph, ctx.facts)
        ties.add_nodes_from(tensors)
        for group in recurrent_state_tensors(graph):
            nx.add_path(ties, group)
        flags = frame_flags(graph)
        for group in nx.connected_components(ties):
            wide = any(bits[t] == 16 for t in group) and not group & flags
            for t in group:
                bits[t] = 16 if wide else 8
        int8_weights = set(ctx.facts.get("int8_weight_layers", ()))
        weight_bits = {n.name: 8 if n.name in int8_weights else
                       given_w.get(n.name, bits[next(t.name for t in n.outputs if t.name)])
                       for n in graph.nodes
                       if n.op in WEIGHTED_OPS or n.op in RECURRENT_OPS or node_operands(n)}
        ctx.facts["tensor_bits"] = bits
        ctx.facts["weight_bits"] = weight_bits
        return False
