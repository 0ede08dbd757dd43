"""Lowering of MatMul that no Gemm took (fuse-gemm turns a constant 2-D operand into a Gemm with
per-channel weights): two activations (attention scores, per-frame products) or a batched
constant, as one `matmul` step that reads both operands and writes the output through strides
in their stored layouts, with numpy batch broadcasting and 1-D operands.

Exponents: the exact sum of products has exponent e_a + e_b and is rounded once to the calibrated
e_y (shift = e_y - e_a - e_b). A constant operand gets one exponent (passes/quant_rules.py). The
accumulator is int32 when k * max|a| * max|b| provably fits it, else int64.
"""
from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs

from compiler.errors import RillError
from compiler.graph import const_value, node_label, static_shape
from passes.lowering.strides import collapse, onnx_strides

INT32_MAX = (1 << 31) - 1


class ProductLayout:
    """Where a MatMul's operands and output are (both precisions)."""

    def matmul_geometry(self, node: gs.Node) -> dict:
        """batch0, batch1, m, k, n and the strides of a, b and y (the matmul kernels' fields)."""
        a, b, y = node.inputs[0], node.inputs[1], node.outputs[0]
        ops = [self.product_operand(t) for t in (a, b)]
        (sa, st_a), (sb, st_b) = ops
        if len(sa) == 1:  # numpy: a 1-D a is a row, a 1-D b a column, dropped from the output
            sa, st_a = [1] + sa, [0] + st_a
        if len(sb) == 1:
            sb, st_b = sb + [1], st_b + [0]
        m, k, n = sa[-2], sa[-1], sb[-1]
        y_shape = static_shape(y)
        y_st = onnx_strides(y_shape, self.perm(y))
        nb = len(y_shape) - (len(ops[0][0]) >= 2) - (len(ops[1][0]) >= 2)
        ym = y_st[nb] if len(ops[0][0]) >= 2 else 0
        yn = y_st[-1] if len(ops[1][0]) >= 2 else 0
        batch = [y_shape[d] for d in range(nb)]
        strides = [batch_strides(sa, st_a, nb), batch_strides(sb, st_b, nb), y_st[:nb]]
        plan = collapse(batch, strides)
        if plan is None or plan[0][:2] != [1, 1]:
            raise RillError(f"{node_label(node)}: its batch dims cannot be laid out in two "
                            "strided dims; reshape the operands to fewer axes")
        (b0, b1), (ab, bb, yb) = plan[0][2:], [s[2:] for s in plan[1]]
        return dict(batch0=b0, batch1=b1, m=m, k=k, n=n,
                    a_stride=ab + [st_a[-2], st_a[-1]], b_stride=bb + [st_b[-2], st_b[-1]],
                    y_stride=yb + [ym, yn])

    def product_operand(self, t: gs.Tensor) -> tuple[list[int], list[int]]:
        """(ONNX shape, stride of each ONNX axis): an activation in its stored layout, a
        constant in numpy order."""
        value = const_value(t)
        if value is not None:
            return list(value.shape), onnx_strides(value.shape, list(range(value.ndim)))
        shape = list(static_shape(t))
        return shape, onnx_strides(shape, self.perm(t))


class ProductOps(ProductLayout):
    """MatMul of activations (or a batched constant)."""

    def matmul(self, node: gs.Node) -> None:
        a, b, y = node.inputs[0], node.inputs[1], node.outputs[0]
        geometry = self.matmul_geometry(node)
        k = geometry["k"]
        bits = [self.operand_bits(node, i) for i in (0, 1)]
        bound = k * bound_of(self, node, 0, bits[0]) * bound_of(self, node, 1, bits[1])
        shift = self.exp(y) - self.operand_exp(node, 0) - self.operand_exp(node, 1)
        if bound << max(0, -shift) >= 1 << 62 or shift > 63:
            raise RillError(f"{node_label(node)}: its operands' exponents are too far from its "
                            f"output's for the integer kernel (shift {shift})")
        lo, hi = self.qrange(y)
        arrays = {key: self.operand_values(node, i) for i, key in enumerate("ab")
                  if const_value(node.inputs[i]) is not None}
        self.emit(node, "matmul", [self.buffer(t) for t in (a, b) if const_value(t) is None],
                  [self.buffer(y)],
                  dict(geometry, shift=shift, act_min=lo, act_max=hi,
                       acc_bits=32 if bound <= INT32_MAX else 64),
                  arrays, macs=macs_of(geometry))

    def operand_bits(self, node: gs.Node, i: int) -> int:
        t = node.inputs[i]
        if const_value(t) is None:
            return self.tensor_bits(t)
        return self.ctx.facts.get("weight_bits", {}).get(node.name, self.default_bits)


def macs_of(geometry: dict) -> int:
    g = geometry
    return g["batch0"] * g["batch1"] * g["m"] * g["k"] * g["n"]


def bound_of(low, node: gs.Node, i: int, bits: int) -> int:
    """The largest magnitude operand i can have: its type's, or a constant's own."""
    if const_value(node.inputs[i]) is None:
        return 1 << (bits - 1)
    return int(np.abs(low.operand_values(node, i).astype(np.int64)).max(initial=0))


def batch_strides(shape: list[int], strides: list[int], nb: int) -> list[int]:
    """An operand's strides along the output's `nb` batch dims (right-aligned; broadcast dims
    and missing ones 0)."""
    own = len(shape) - 2
    out = [0] * nb
    for d in range(own):
        if shape[d] != 1:
            out[nb - own + d] = strides[d]
    return out
