"""Exponent rules that do not come from calibration ranges.

Some tensors have an exponent fixed by what they mean rather than by their range: softmax
probabilities (in [0, 1], exponent -7), the 0/1 "valid frame" flags of the streaming cut
(exponent 0), and a recurrent layer's hidden state and outputs (chosen by its quantization plan).
Propagation gives a tie group its fixed member's exponent instead of the coarsest one.
"""
from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs

from compiler.graph import const_value, node_label
from compiler.errors import RillError

SOFTMAX_EXP = -7  # q = round(p * 128), saturated at 127


def out_channel_weights(node: gs.Node) -> np.ndarray:
    """The weights of a Conv/Gemm/ConvTranspose with output channels first.

    ConvTranspose stores [c_in, c_out/groups, k...]; the kernels and per-channel exponents want
    [c_out, k, c_in/groups] (1-D) so that row `co` holds everything that feeds output `co`.
    """
    w = const_value(node.inputs[1])
    if w is None:
        raise RillError(f"{node_label(node)}: weights must be constant")
    if node.op != "ConvTranspose":
        return w
    groups = int(node.attrs.get("group", 1))
    c_in, og = w.shape[:2]
    cg = c_in // groups
    k = int(np.prod(w.shape[2:]))
    return np.ascontiguousarray(
        w.reshape(groups, cg, og, k).transpose(0, 2, 3, 1).reshape(groups * og, k, cg))


def fixed_exponents(graph: gs.Graph, facts: dict) -> dict[str, int]:
    """Tensor name -> exponent for every tensor whose exponent is fixed by meaning."""
    fixed = dict(facts.get("fixed_exponents", {}))
    for node in graph.nodes:
        if node.op == "Softmax":
            fixed[node.outputs[0].name] = SOFTMAX_EXP
    for name, plan in facts.get("recurrent_plans", {}).items():
        fixed.update(plan_exponents(graph, name, plan))
    return fixed


def plan_exponents(graph: gs.Graph, node_name: str, plan) -> dict[str, int]:
    """A recurrent node's outputs (Y, Y_h) and hidden-state input share the plan's exponent."""
    node = next(n for n in graph.nodes if n.name == node_name)
    names = [t.name for t in node.outputs[:2] if t.name]
    if len(node.inputs) > 5 and node.inputs[5].name:
        names.append(node.inputs[5].name)
    return {n: plan.e_h for n in names}
