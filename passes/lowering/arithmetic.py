"""Lowering of element-wise arithmetic with numpy broadcasting: Add, Sub, Mul, Div, Max, Min and
PRelu as one `binary` step each (a plain `add` for two same-shape activations in one layout).

Either operand may be a constant, quantized once at its exponent (passes/quant_rules.py, which
also states the exponent rules); operands are read through strides in their stored layout, so a
per-channel constant broadcast over time-major frames needs no copy.
"""
from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs

from compiler.errors import RillError
from compiler.graph import const_value, node_label, static_shape
from passes.lowering.strides import broadcast_strides, collapse, element_count, stored_order
from runtime.reference.binary import BINARY_OPS, MAX_ALIGN_SHIFT
from runtime.reference.kernels import round_to_int

BINARY_OP = {"Add": "add", "Sub": "sub", "Mul": "mul", "Div": "div", "Max": "max",
             "Min": "min", "PRelu": "prelu"}
#: mul's product (< 2^30) may be shifted left at most this far in int64
MAX_LEFT_SHIFT = 32


class BroadcastOperands:
    """The broadcasting element-wise ops' shared part (both precisions): where the operands
    are, and the `binary` step; the format's `arithmetic` adds its own fields."""

    def add(self, node: gs.Node) -> None:
        """Two same-shape activations stored alike: the `add` kernel; else `binary`."""
        if self.plain_add(node.inputs[0], node.inputs[1]):
            return super().add(node)
        return self.arithmetic(node)

    def plain_add(self, a: gs.Tensor, b: gs.Tensor) -> bool:
        """Two activations of one shape stored alike: the `add` kernel's case."""
        return (const_value(a) is None and const_value(b) is None
                and static_shape(a) == static_shape(b) and self.perm(a) == self.perm(b))

    def operand_layout(self, node: gs.Node, operands: list[gs.Tensor], y: gs.Tensor
                       ) -> tuple[list[int], list[list[int]]]:
        """y's dims (at most 4, in its storage order) and each operand's strides along them;
        constants are stored in numpy order."""
        y_shape = static_shape(y)
        strides = []
        for t in operands:
            shape = static_shape(t) if const_value(t) is None else const_value(t).shape
            perm = self.perm(t) if const_value(t) is None else list(range(len(shape)))
            strides.append(broadcast_strides(shape, perm, len(y_shape)))
        plan = collapse(*stored_order(y_shape, self.perm(y), strides))
        if plan is None:
            raise RillError(f"{node_label(node)}: this broadcast needs more than 4 dimensions "
                            "in memory; reshape the operands to fewer axes")
        return plan


    def emit_binary(self, node: gs.Node, arrays: dict[str, np.ndarray], **params) -> None:
        """One `binary` step of a two-operand node: the activations as input buffers, the
        constants as `arrays` ("a"/"b", numpy order), `params` the format's own fields."""
        check_operand_count(node)
        a, b, y = node.inputs[0], node.inputs[1], node.outputs[0]
        shape, strides = self.operand_layout(node, [a, b], y)
        op = BINARY_OP[node.op]
        self.emit(node, "binary", [self.buffer(t) for t in (a, b) if const_value(t) is None],
                  [self.buffer(y)],
                  dict(op=BINARY_OPS[op], shape=shape, a_stride=strides[0], b_stride=strides[1],
                       **params), arrays,
                  macs=element_count(static_shape(y)) if op in ("mul", "div", "prelu") else 0)


def check_operand_count(node: gs.Node) -> None:
    if len(node.inputs) != 2:
        raise RillError(f"{node_label(node)}: {node.op} of {len(node.inputs)} inputs has no "
                        "kernel (two operands are supported)")


class ArithmeticOps(BroadcastOperands):
    """Add/Sub/Mul/Div/Max/Min/PRelu of activations and constants."""

    def arithmetic(self, node: gs.Node) -> None:
        check_operand_count(node)
        op = BINARY_OP[node.op]
        ea, eb = self.operand_exp(node, 0), self.operand_exp(node, 1)
        sa, sb, so = binary_shifts(op, ea, eb, self.exp(node.outputs[0]))
        check_shifts(node, op, sa, sb, so)
        lo, hi = self.qrange(node.outputs[0])
        arrays = {k: self.operand_values(node, i) for i, k in enumerate("ab")
                  if const_value(node.inputs[i]) is not None}
        self.emit_binary(node, arrays, shift_a=sa, shift_b=sb, shift_out=so, act_min=lo,
                         act_max=hi)

    def operand_exp(self, node: gs.Node, i: int) -> int:
        t = node.inputs[i]
        if const_value(t) is None:
            return self.exp(t)
        return int(self.ctx.facts["operand_exponents"][node.name][i][0])

    def operand_values(self, node: gs.Node, i: int) -> np.ndarray:
        """A constant operand quantized at its exponent and the layer's weight bits, in numpy
        (ONNX) order."""
        value = np.asarray(const_value(node.inputs[i]), np.float64)
        bits = self.ctx.facts.get("weight_bits", {}).get(node.name, self.default_bits)
        top = (1 << (bits - 1)) - 1
        q = round_to_int(value * np.ldexp(1.0, -self.operand_exp(node, i)), self.mode)
        return np.clip(q, -top - 1, top).astype(np.int8 if bits == 8 else np.int16).reshape(-1)


def binary_shifts(op: str, ea: int, eb: int, ey: int) -> tuple[int, int, int]:
    """shift_a, shift_b, shift_out of the binary kernel (quant_rules.py exponent rules)."""
    if op == "mul":
        return 0, 0, ey - ea - eb
    if op == "div":
        return 0, 0, ey - ea + eb
    if op == "prelu":  # positive side at ea, negative side at ea + eb
        ec = min(ea, ea + eb)
        return ea - ec, ea + eb - ec, ey - ec
    ec = min(ea, eb)
    return ea - ec, eb - ec, ey - ec


def check_shifts(node: gs.Node, op: str, sa: int, sb: int, so: int) -> None:
    """The kernel's int64 bounds (KERNELS.md, binary; int16 operands at worst) as a clear
    error."""
    if op == "mul":
        bad = so < -MAX_LEFT_SHIFT
    elif op == "div":
        bad = abs(so) > MAX_ALIGN_SHIFT
    else:
        terms = ((1 << 15) << sa) + ((1 << 15) << sb) if op != "prelu" else \
            max((1 << 15) << sa, (1 << 30) << sb)
        bad = max(sa, sb) > MAX_ALIGN_SHIFT or terms << max(0, -so) > 1 << 63
    if bad:
        raise RillError(f"{node_label(node)}: its operands' exponents are too far apart for the "
                        f"integer kernel (shifts {sa}, {sb}, {so}); one operand is degenerate "
                        "(all zero, or far smaller than the other)")
