"""Lowering of element-wise and window ops without weights: tables for nonlinear functions,
Add, Average/MaxPool, reductions, Softmax and the streaming cut's frame masks.

Exponent rules (the output exponent comes from calibration unless fixed):
- tables: any e_in -> e_out, computed from the exact float function at compile time;
- Add: both inputs are aligned to the finer exponent exactly (left shifts in the kernel), the
  sum is requantized once to e_out;
- AveragePool / ReduceMean: the window sum divided by the count and by 2^(e_out - e_in) in one
  exactly rounded division; MaxPool/ReduceMax: the max requantized by e_out - e_in;
- Softmax: e_out at most -(bits - 1) (probabilities in [0, 1]), finer when calibration allows.
"""
from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs

from compiler.errors import RillError
from compiler.graph import node_label, static_shape
from compiler.op_attrs import clip_bounds
from passes.lowering.arithmetic import check_shifts
from passes.lowering.geometry import avgpool1d_geometry, maxpool1d_geometry
from passes.quant_rules import SOFTMAX_EXP, SOFTMAX_FINEST_EXP
from passes.tables import lut_plan, pow_exponent
from passes.time_analysis import pad_value, physical_shape
from runtime.reference.kernels import softmax_plan


class ElementwiseOps:
    """Tables, Add, pooling, reductions, Softmax and the streaming cut's frame masks."""

    def unary(self, node: gs.Node) -> None:
        """A nonlinear unary op as a table lookup (passes/tables.py)."""
        x, y = node.inputs[0], node.outputs[0]
        if node.op == "Clip" and clip_bounds(node) is None:
            raise RillError(f"{node_label(node)}: Clip bounds must be constant")
        if node.op == "Pow" and pow_exponent(node) is None:
            raise RillError(f"{node_label(node)}: Pow needs a constant scalar exponent")
        params, arrays = lut_plan(node, self.exp(x), self.exp(y), self.tensor_bits(x),
                                  self.tensor_bits(y), self.mode)
        self.emit(node, "lut", [self.buffer(x)], [self.buffer(y)],
                  dict(params, n=int(np.prod(static_shape(y)))), arrays)

    def add(self, node: gs.Node) -> None:
        a, b, y = self.add_operands(node)
        ea, eb, ey = self.exp(a), self.exp(b), self.exp(y)
        ec = min(ea, eb)
        check_shifts(node, "add", ea - ec, eb - ec, ey - ec)
        lo, hi = self.qrange(y)
        self.emit(node, "add", [self.buffer(a), self.buffer(b)], [self.buffer(y)],
                  dict(n=int(np.prod(static_shape(y))), shift_a=ea - ec, shift_b=eb - ec,
                       shift_out=ey - ec, act_min=lo, act_max=hi))

    def avgpool(self, node: gs.Node) -> None:
        x, y = node.inputs[0], node.outputs[0]
        if len(static_shape(x)) == 4:
            return self.pool2d(node, "avgpool1d")
        params = avgpool1d_geometry(node)
        self.require_time_major(node, x, y)
        self.emit_sequences(node, "avgpool1d", x, y,
                            dict(params, shift=self.exp(y) - self.exp(x)))

    def maxpool(self, node: gs.Node) -> None:
        x, y = node.inputs[0], node.outputs[0]
        if len(static_shape(x)) == 4:
            return self.pool2d(node, "maxpool1d")
        params = maxpool1d_geometry(node)
        self.require_time_major(node, x, y)
        self.emit_sequences(node, "maxpool1d", x, y,
                            dict(params, pad_value=self.quantize_scalar(pad_value(node), x),
                                 shift=self.exp(y) - self.exp(x)))

    def reduce(self, node: gs.Node) -> None:
        x, y = node.inputs[0], node.outputs[0]
        src, dst, params = self.reduce_operands(node)
        self.emit(node, "reduce", [src], [dst], dict(params, shift=self.exp(y) - self.exp(x)))

    def softmax(self, node: gs.Node) -> None:
        x, y = node.inputs[0], node.outputs[0]
        src, dst, rows, cols, finish = self.softmax_operands(node)
        if not SOFTMAX_FINEST_EXP <= self.exp(y) <= SOFTMAX_EXP[self.tensor_bits(y)]:
            raise AssertionError("softmax output exponent must be fixed by quantization")
        params, arrays = softmax_plan(self.exp(x), self.tensor_bits(x), self.tensor_bits(y),
                                      self.mode)
        self.emit(node, "softmax", [src], [dst],
                  dict(params, rows=rows, cols=cols, out_frac=-self.exp(y)), arrays)
        finish()

    def mask_frames(self, node: gs.Node) -> None:
        x, flags, y = node.inputs[0], node.inputs[1], node.outputs[0]
        stored = physical_shape(static_shape(x), self.info.get(x.name))
        frames = stored[self.time_position(x)]
        self.emit(node, "mask_frames", [self.buffer(x), self.buffer(flags)], [self.buffer(y)],
                  dict(frames=frames, inner=int(np.prod(stored)) // frames,
                       pad=self.quantize_scalar(float(node.attrs["value"]), x)))

