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
from compiler.graph import const_value, node_label, static_shape
from compiler.op_attrs import clip_bounds, window_attrs
from passes.quant_rules import SOFTMAX_EXP, SOFTMAX_FINEST_EXP
from passes.tables import lut_plan
from passes.time_analysis import pad_value, physical_shape, reduce_axes
from runtime.reference.kernels import softmax_plan


class ElementwiseOps:
    """Tables, Add, pooling, reductions, Softmax and the streaming cut's frame masks."""

    def table(self, node: gs.Node) -> None:
        x, y = node.inputs[0], node.outputs[0]
        if node.op == "Clip" and clip_bounds(node) is None:
            raise RillError(f"{node_label(node)}: Clip bounds must be constant")
        params, arrays = lut_plan(node, self.exp(x), self.exp(y), self.tensor_bits(x),
                                  self.tensor_bits(y), self.mode)
        self.emit(node, "lut", [self.buffer(x)], [self.buffer(y)],
                  dict(params, n=int(np.prod(static_shape(y)))), arrays)

    def add(self, node: gs.Node) -> None:
        a, b, y = node.inputs[0], node.inputs[1], node.outputs[0]
        if static_shape(a) != static_shape(b) or any(const_value(t) is not None for t in (a, b)):
            raise RillError(f"{node_label(node)}: only Add of two same-shape activations has a "
                            "kernel yet")
        if self.perm(a) != self.perm(b):
            raise RillError(f"{node_label(node)}: operands are stored in different layouts")
        ea, eb, ey = self.exp(a), self.exp(b), self.exp(y)
        ec = min(ea, eb)
        lo, hi = self.qrange(y)
        self.emit(node, "add", [self.buffer(a), self.buffer(b)], [self.buffer(y)],
                  dict(n=int(np.prod(static_shape(y))), shift_a=ea - ec, shift_b=eb - ec,
                       shift_out=ey - ec, act_min=lo, act_max=hi))

    def avgpool(self, node: gs.Node) -> None:
        x, y = node.inputs[0], node.outputs[0]
        if len(static_shape(x)) != 3:
            raise RillError(f"{node_label(node)}: only 1-D AveragePool has a kernel yet")
        a = window_attrs(node)
        if a["dilations"] != [1]:
            raise RillError(f"{node_label(node)}: dilated AveragePool is not supported")
        _, c, t_in = static_shape(x)
        self.require_time_major(node, x, y)
        self.emit(node, "avgpool1d", [self.buffer(x)], [self.buffer(y)],
                  dict(t_in=t_in, channels=c, kernel=a["kernel"][0], stride=a["strides"][0],
                       pad_l=a["pads"][0], pad_r=a["pads"][1],
                       count_include_pad=int(node.attrs.get("count_include_pad", 0)),
                       shift=self.exp(y) - self.exp(x)))

    def maxpool(self, node: gs.Node) -> None:
        x, y = node.inputs[0], node.outputs[0]
        if len(static_shape(x)) != 3 or len(node.outputs) > 1 and node.outputs[1].name:
            raise RillError(f"{node_label(node)}: only 1-D MaxPool without indices has a "
                            "kernel")
        self.require_time_major(node, x, y)
        a = window_attrs(node)
        _, c, t_in = static_shape(x)
        self.emit(node, "maxpool1d", [self.buffer(x)], [self.buffer(y)],
                  dict(t_in=t_in, channels=c, kernel=a["kernel"][0], stride=a["strides"][0],
                       dilation=a["dilations"][0], pad_l=a["pads"][0], pad_r=a["pads"][1],
                       pad_value=self.quantize_scalar(pad_value(node), x),
                       shift=self.exp(y) - self.exp(x)))

    def reduce(self, node: gs.Node) -> None:
        x, y = node.inputs[0], node.outputs[0]
        shape = static_shape(x)
        axes = reduce_axes(node, len(shape))
        outer, length, inner = self.reduction_blocks(node, x, y, axes)
        op = {"ReduceMean": 0, "GlobalAveragePool": 0, "ReduceMax": 1, "GlobalMaxPool": 1,
              "ReduceSum": 2}[node.op]
        self.emit(node, "reduce", [self.buffer(x)], [self.buffer(y)],
                  dict(outer=outer, length=length, inner=inner, op=op,
                       shift=self.exp(y) - self.exp(x)))

    def reduction_blocks(self, node, x, y, axes) -> tuple[int, int, int]:
        """[outer][length][inner] of a reduction whose axes are contiguous in storage."""
        shape = static_shape(x)
        stored = [a for a in self.perm(x) if shape[a] != 1]
        reduced = [i for i, a in enumerate(stored) if a in axes]
        kept = [a for a in stored if a not in axes]
        y_shape = static_shape(y)
        y_stored = [a for a in self.perm(y) if y_shape[a] != 1]
        contiguous = not reduced or reduced == list(range(reduced[0], reduced[-1] + 1))
        if not contiguous or [shape[a] for a in kept] != [y_shape[a] for a in y_stored]:
            raise RillError(f"{node_label(node)}: reduces axes that are not contiguous in memory")
        first = reduced[0] if reduced else len(stored)
        dims = [shape[a] for a in stored]
        outer = int(np.prod(dims[:first], dtype=np.int64))
        length = int(np.prod([shape[a] for a in stored if a in axes], dtype=np.int64))
        return outer, length, int(np.prod(dims, dtype=np.int64)) // max(outer * length, 1)

    def softmax(self, node: gs.Node) -> None:
        x, y = node.inputs[0], node.outputs[0]
        shape = static_shape(x)
        axis = int(node.attrs.get("axis", -1)) % len(shape)
        stored = [a for a in self.perm(x) if shape[a] != 1]
        if not stored or stored[-1] != axis:
            raise RillError(f"{node_label(node)}: Softmax must work along the innermost stored axis")
        if not SOFTMAX_FINEST_EXP <= self.exp(y) <= SOFTMAX_EXP[self.tensor_bits(y)]:
            raise AssertionError("softmax output exponent must be fixed by quantization")
        cols = shape[axis]
        params, arrays = softmax_plan(self.exp(x), self.tensor_bits(x), self.tensor_bits(y),
                                      self.mode)
        self.emit(node, "softmax", [self.buffer(x)], [self.buffer(y)],
                  dict(params, rows=int(np.prod(shape)) // cols, cols=cols,
                       out_frac=-self.exp(y)), arrays)

    def mask_frames(self, node: gs.Node) -> None:
        x, flags, y = node.inputs[0], node.inputs[1], node.outputs[0]
        stored = physical_shape(static_shape(x), self.info.get(x.name))
        frames = stored[1] if len(stored) > 1 else 1
        self.emit(node, "mask_frames", [self.buffer(x), self.buffer(flags)], [self.buffer(y)],
                  dict(frames=frames, inner=int(np.prod(stored)) // frames,
                       pad=self.quantize_scalar(float(node.attrs["value"]), x)))

