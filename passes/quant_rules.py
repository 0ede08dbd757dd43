"""Exponent rules that do not come from calibration ranges.

Some tensors have an exponent fixed by what they mean rather than by their range alone: softmax
probabilities (in [0, 1]: exponent -7 at most, finer when calibration shows smaller values), the 0/1 "valid frame" flags of the streaming cut
(exponent 0), and a recurrent layer's hidden state and outputs (chosen by its quantization plan).
Propagation gives a tie group its fixed member's exponent instead of the coarsest one.

Element-wise arithmetic (Add, Sub, Mul, Div, Max, Min, PRelu; the `binary` kernel, lowered in
passes/lowering/arithmetic.py) keeps the calibrated output exponent e_y and computes exactly up
to one final rounding:
- Add, Sub, Max, Min: both operands are aligned to their finer exponent min(e_a, e_b) by exact
  left shifts, combined, and requantized once to e_y;
- Mul: the exact product has exponent e_a + e_b and is requantized once to e_y;
- Div: the exact quotient a/b has exponent e_a - e_b and is rounded once to e_y (round_div, the
  target's rounding mode); a zero divisor saturates to the type's extreme of the numerator's
  sign (0/0 gives 0, as NaN does). A Div by a constant is a Mul by its reciprocal
  (passes/div_by_constant.py), computed in float64 before the constant is quantized;
- PRelu: the positive side has exponent e_a, the negative side a * slope e_a + e_s; both are
  aligned to the finer one and requantized once to e_y.
A constant operand (a scale, an offset, a PRelu slope, a batched MatMul operand that no Gemm
took) is quantized once at compile time at the
layer's weight bits, with one exponent for the whole tensor, the smallest that does not clip it
(`operand_exponent`; a LayerNormalization scale gets one per element, its offset sits in the
int64 accumulator: passes/lowering/normalization.py): a per-tensor exponent that clipped the largest value would be a
systematic error on that element. Add-like ops do not use a constant exponent finer than
e_y - OPERAND_FINEST_BELOW_OUTPUT (the extra bits would only lengthen the shifts).
"""
from __future__ import annotations

from typing import Sequence

import networkx as nx
import numpy as np
import onnx_graphsurgeon as gs

from compiler.graph import const_value, node_label
from compiler.errors import RillError
from compiler.op_attrs import recurrent_weights
from passes.observers import minmax_exponent
from passes.quantize_recurrent import E_H, layer_bits, plan_gru, plan_lstm

SOFTMAX_EXP = {8: -7, 16: -15}  # by output bits: q = round(p * 2^(bits-1)), saturated
SOFTMAX_FINEST_EXP = -16  # the softmax kernel's out_frac is at most 16


def softmax_exponent(calibrated: int | None, bits: int) -> int:
    """Probabilities are in [0, 1]: at most -(bits - 1), finer when the calibration data shows
    they stay smaller (a 10-class output rarely exceeds 0.25: two more bits of resolution)."""
    top = SOFTMAX_EXP[bits]
    return top if calibrated is None else max(min(calibrated, top), SOFTMAX_FINEST_EXP)

# Element-wise ops of two operands (the `binary` kernel); either operand may be a constant.
ARITHMETIC_OPS = frozenset({"Add", "Sub", "Mul", "Div", "Max", "Min", "PRelu"})
OPERAND_FINEST_BELOW_OUTPUT = 24


def operand_indices(op: str, constant: Sequence[bool]) -> list[int]:
    """The inputs of a node of type `op` that Rill quantizes as constant operands (at the
    layer's weight bits), given which inputs are constants."""
    if (op in ARITHMETIC_OPS or op == "MatMul") and len(constant) == 2 and not all(constant):
        return [i for i in (0, 1) if constant[i]]
    if op == "LayerNormalization" and len(constant) > 1 and constant[1]:
        return [1]  # the scale; the offset joins the int64 accumulator
    return []


def node_operands(node: gs.Node) -> list[int]:
    """`operand_indices` of a graph node."""
    return operand_indices(node.op, [const_value(t) is not None for t in node.inputs])


def operand_exponent(value: np.ndarray, bits: int) -> int:
    """The exponent of a constant operand: the smallest that represents max|value| without
    clipping (0 for an all-zero constant)."""
    return minmax_exponent(np.asarray(value, np.float64), bits)


def operand_exponents(op: str, value: np.ndarray, bits: int) -> np.ndarray:
    """The exponents of a constant operand: one for the tensor (`operand_exponent`), except a
    LayerNormalization scale, which gets one per element (it multiplies each normalized value
    on its own, like a per-channel weight); a zero element takes the largest exponent."""
    if op != "LayerNormalization":
        return np.array([operand_exponent(value, bits)], np.int32)
    flat = np.asarray(value, np.float64).reshape(-1)
    exps = np.array([operand_exponent(v, bits) for v in flat], np.int32)
    zero = flat == 0
    if zero.any() and not zero.all():
        exps[zero] = exps[~zero].max()
    return exps


# Ops with constant weights quantized per output channel (ai.rill Fused* included).
WEIGHTED_OPS = frozenset({"Conv", "FusedConv", "Gemm", "FusedGemm", "ConvTranspose"})

# Ops that move values without arithmetic: input and output share one exponent and one precision
# (the streaming Concat of a state and its new frames included).
PASSIVE_OPS = {"Reshape", "Flatten", "Slice", "Gather", "Transpose", "Squeeze", "Unsqueeze",
               "Concat", "Identity", "MaskFrames", "MaxPool", "Split", "Pad"}


def tie_graph(graph: gs.Graph, facts: dict) -> nx.Graph:
    """Tensors that must share an exponent and a precision: across passive ops (data inputs and
    output) and across state pairs (the state, its next value and the tensor it holds).

    The edges from a model Concat's inputs to its output carry `concat=<node name>`: the
    exponent propagation may cut them and align that input by an explicit requantization. A
    streaming window (the Concat of a state and its new frames) is always one group: the state
    buffer holds frames of the tensor."""
    states = {s.input for s in facts.get("streaming", {}).get("states", [])}
    ties = nx.Graph()
    for node in graph.nodes:
        if node.op not in PASSIVE_OPS:
            continue
        data = node.inputs if node.op == "Concat" else node.inputs[:1]  # the rest: parameters
        soft = node.op == "Concat" and not any(t.name in states for t in node.inputs)
        for t in (t for t in data if not isinstance(t, gs.Constant)):
            for o in node.outputs if node.op == "Split" else node.outputs[:1]:
                ties.add_edge(t.name, o.name, concat=node.name if soft else None)
    for state in facts.get("streaming", {}).get("states", []):
        ties.add_edge(state.input, state.output, concat=None)
        if state.tensor is not None:
            ties.add_edge(state.input, state.tensor, concat=None)
    return ties


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
            y = node.outputs[0].name
            fixed[y] = facts.get("softmax_exponents", {}).get(
                y, SOFTMAX_EXP[facts.get("tensor_bits", {}).get(y, 8)])
        if node.op in ("GRU", "LSTM"):
            fixed.update(recurrent_exponents(node, facts.get("recurrent_plans", {}).get(node.name)))
    return fixed


def recurrent_exponents(node: gs.Node, plan) -> dict[str, int]:
    """A recurrent node's Y, Y_h and h input share the hidden exponent; Y_c and c its cell's."""
    e_c = plan.e_c if plan is not None else None
    e_h = plan.e_h if plan is not None else E_H
    slots = [("out", 0, e_h), ("out", 1, e_h), ("in", 5, e_h), ("out", 2, e_c), ("in", 6, e_c)]
    fixed = {}
    for side, i, e in slots:
        tensors = node.outputs if side == "out" else node.inputs
        if i < len(tensors) and tensors[i].name and e is not None:
            fixed[tensors[i].name] = e
    return fixed


def plan_recurrent(node: gs.Node, ctx, e_x: int):
    """The plan of one GRU/LSTM (weights, tables, shifts) for input exponent `e_x`, at the
    layer's input, weight and hidden widths (assign-precision's facts)."""
    w, r, b, peep = recurrent_weights(node)
    seq = ctx.facts["calibration_sequences"][node.inputs[0].name]
    x_calib = seq.reshape(seq.shape[0], -1, w.shape[1])
    mode = ctx.options.target.rounding
    bits = layer_bits(node, ctx.facts.get("tensor_bits", {}), ctx.facts.get("weight_bits", {}),
                      ctx.options.bits)
    try:
        if node.op == "GRU":
            return plan_gru(w, r, b, int(node.attrs.get("linear_before_reset", 0)), x_calib,
                            e_x, mode, **bits)
        return plan_lstm(w, r, b, x_calib, e_x, mode, peep, **bits)
    except ValueError as exc:
        raise RillError(f"{node_label(node)}: {exc}") from None
