"""Lowering of the weighted layers: Conv1d, Conv2d, ConvTranspose1d and Gemm."""
from __future__ import annotations

import math

import numpy as np
import onnx_graphsurgeon as gs

from compiler.errors import RillError
from compiler.graph import const_value, node_label, static_shape
from passes.lowering.geometry import (conv1d_geometry, conv2d_geometry,
                                      conv_transpose1d_geometry, fold_conv_transpose2d)
from passes.quant_rules import out_channel_weights
from runtime.reference.kernels import round_to_int

INT32_MAX = 2**31 - 1
INT64_SAFE = 2**62  # bias magnitude the int64 accumulator takes with room for the products
MAX_SHIFT = 40


class WeightedOps:
    """Conv1d/Conv2d/ConvTranspose/Gemm: quantized weights, biases and per-channel shifts."""

    def activation_bounds(self, node: gs.Node, y: gs.Tensor) -> tuple[int, int]:
        """The fused activation's clamp in output units (the type's range without one)."""
        lo, hi = self.qrange(y)
        kind = node.attrs.get("activation", "")
        kind = kind.decode() if isinstance(kind, bytes) else kind
        if kind == "Relu":
            return 0, hi
        if kind == "Clip":
            a, b = node.attrs["activation_params"]
            return (lo if a == -math.inf else self.quantize_scalar(a, y),
                    hi if b == math.inf else self.quantize_scalar(b, y))
        return lo, hi

    def weights(self, node: gs.Node, w: np.ndarray, bias: np.ndarray, x: gs.Tensor,
                y: gs.Tensor, repeat: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Weights (int8/int16 by the layer's weight bits, per output channel), the bias at
        e_in + e_w in the accumulator's type, and the per-channel output shifts.

        The accumulator is int32 for int8 layers (contract §3). With int16 activations or
        weights it is int32 only when |bias| + sum|w| * max|x| < 2^31 holds for every output
        channel with the actual weights, else int64; `facts["accumulator_bits"]` records it."""
        e_in, e_out = self.exp(x), self.exp(y)
        # `repeat`: each output channel of the node is `repeat` rows of `w` (a folded 2-D
        # ConvTranspose), with the channel's exponent and bias correction
        e_w = np.repeat(self.wexps[node.name].astype(np.int64), repeat)
        w_bits = self.ctx.facts.get("weight_bits", {}).get(node.name, self.default_bits)
        correction = self.ctx.facts.get("bias_corrections", {}).get(node.name)
        if correction is not None:  # mean error of the quantized weights (passes/quantize.py)
            bias = bias.astype(np.float64) + np.repeat(np.asarray(correction, np.float64)
                                                       .reshape(-1), repeat)
        scale = np.ldexp(1.0, -e_w).reshape((-1,) + (1,) * (w.ndim - 1))
        w_max = (1 << (w_bits - 1)) - 1
        qw = np.clip(round_to_int(w.astype(np.float64) * scale, self.mode), -w_max - 1, w_max)
        qw = qw.astype(np.int8 if w_bits == 8 else np.int16)
        qb = round_to_int(bias.astype(np.float64) * np.ldexp(1.0, -(e_in + e_w)), self.mode)
        x_max = -self.qrange(x)[0]
        bound = np.abs(qb) + np.abs(qw.astype(np.int64)).reshape(qw.shape[0], -1).sum(axis=1) * x_max
        wide = bool(np.any(bound > INT32_MAX))
        if wide and w_bits == 8 and self.tensor_bits(x) == 8:
            raise RillError(f"{node_label(node)}: the int32 accumulator could overflow "
                            f"(bound {int(bound.max())}); split the layer")
        if wide and np.any(np.abs(qb) > INT64_SAFE):
            raise RillError(f"{node_label(node)}: a bias does not fit the accumulator at exponent "
                            "e_in + e_w; the layer's bias is far larger than its weights")
        shift = e_out - e_in - e_w
        if np.any(np.abs(shift) > MAX_SHIFT):
            raise RillError(f"{node_label(node)}: requantization shift {int(shift.max())} is out of "
                            "range; the layer's weights or activations are degenerate (all zero?)")
        self.ctx.facts.setdefault("accumulator_bits", {})[node.name] = 64 if wide else 32
        return qw, qb.astype(np.int64 if wide else np.int32), shift.astype(np.int8)

    def quantized_layer(self, node: gs.Node, w: np.ndarray, x: gs.Tensor, y: gs.Tensor):
        """`weights` of the node (bias input 2, zeros when absent) and its activation bounds."""
        b = const_value(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2].name \
            else np.zeros(w.shape[0], np.float32)
        return (*self.weights(node, w, b, x, y), *self.activation_bounds(node, y))

    def conv(self, node: gs.Node) -> None:
        x, y = node.inputs[0], node.outputs[0]
        if len(static_shape(x)) == 4:
            return self.conv2d(node)
        if len(static_shape(x)) != 3:
            raise RillError(f"{node_label(node)}: only 1-D and 2-D convolutions have kernels")
        w = const_value(node.inputs[1])
        qw, qb, shift, lo, hi = self.quantized_layer(node, w, x, y)
        params = dict(conv1d_geometry(node, w.shape), act_min=lo, act_max=hi)
        self.require_time_major(node, x, y)
        arrays = dict(w=np.ascontiguousarray(qw.transpose(0, 2, 1)), bias=qb, shift=shift)
        self.emit_sequences(node, "conv1d", x, y, params, arrays,
                            macs=static_shape(y)[2] * w.shape[0] * w.shape[2] * w.shape[1])

    def gemm(self, node: gs.Node) -> None:
        x, y = node.inputs[0], node.outputs[0]
        w = const_value(node.inputs[1])
        if w is None:
            raise RillError(f"{node_label(node)}: a product of two activations has no kernel yet "
                            "(the second operand must be a constant)")
        qw, qb, shift, lo, hi = self.quantized_layer(node, w, x, y)
        m, k = static_shape(x)
        n = w.shape[0]
        if not self.stored_in_onnx_order(y):
            raise RillError(f"{node_label(node)}: the output rows are stored time-major")
        self.emit(node, "gemm", [self.in_onnx_order(node, x)], [self.buffer(y)],
                  dict(m=m, k=k, n=n, act_min=lo, act_max=hi),
                  dict(w=qw, bias=qb, shift=shift), macs=m * k * n)

    def conv2d(self, node: gs.Node) -> None:
        """[1, C, F, T] with time last, stored [T][C][F]; weights to [co][kt][kf][cg]."""
        x, y = node.inputs[0], node.outputs[0]
        if self.perm(x) != [0, 3, 1, 2] or self.perm(y) != [0, 3, 1, 2]:
            raise RillError(f"{node_label(node)}: a 2-D convolution needs time on the last axis")
        w = const_value(node.inputs[1])
        qw, qb, shift, lo, hi = self.quantized_layer(node, w, x, y)
        params = dict(conv2d_geometry(node, w.shape), act_min=lo, act_max=hi)
        arrays = dict(w=np.ascontiguousarray(qw.transpose(0, 3, 2, 1)), bias=qb, shift=shift)
        _, _, f_out, t_out = static_shape(y)
        self.emit_sequences(node, "conv2d", x, y, params, arrays,
                            macs=t_out * f_out * int(np.prod(w.shape)))

    def conv_transpose(self, node: gs.Node) -> None:
        x, y = node.inputs[0], node.outputs[0]
        if len(static_shape(x)) == 4:
            return self.conv_transpose2d(node)
        w = out_channel_weights(node)  # [c_out, k, c_in/groups]
        params = conv_transpose1d_geometry(node, w.shape)
        self.require_time_major(node, x, y)
        qw, qb, shift, lo, hi = self.quantized_layer(node, w, x, y)
        self.emit_sequences(node, "conv_transpose1d", x, y,
                            dict(params, act_min=lo, act_max=hi), dict(w=qw, bias=qb, shift=shift),
                            macs=params["t_in"] * int(np.prod(w.shape)))

    def conv_transpose2d(self, node: gs.Node) -> None:
        """Folded into a 1-D ConvTranspose over (channel, frequency) pairs
        (geometry.fold_conv_transpose2d); output channel (co, fo) keeps co's weight exponent."""
        x, y = node.inputs[0], node.outputs[0]
        self.require_time_last_2d(node, x, y)
        w, params = fold_conv_transpose2d(node, const_value(node.inputs[1]))
        f_out = static_shape(y)[2]
        b = const_value(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2].name \
            else np.zeros(w.shape[0] // f_out, np.float32)
        qw, qb, shift = self.weights(node, w, np.repeat(np.reshape(b, -1), f_out), x, y,
                                     repeat=f_out)
        lo, hi = self.activation_bounds(node, y)
        self.emit_sequences(node, "conv_transpose1d", x, y,
                            dict(params, act_min=lo, act_max=hi), dict(w=qw, bias=qb, shift=shift),
                            macs=params["t_in"] * int(np.prod(w.shape)))
