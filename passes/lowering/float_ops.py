"""Lowering of the arithmetic ops to the float32 kernels (`--bits 32`): weights stay float32,
activations are float32 buffers, nonlinear functions run as C99 <math.h> float functions.
Data movement (Concat, Slice, Reshape, ...) is the integer lowering's MovementOps as it is:
it moves values whatever they are. The window geometry is shared with the integer lowering
(passes/lowering/geometry.py); the formulas are runtime/KERNELS.md's float32 kernels."""
from __future__ import annotations

import math

import numpy as np
import onnx_graphsurgeon as gs

from compiler.errors import RillError
from compiler.graph import const_value, node_label, static_shape
from compiler.op_attrs import clip_bounds, recurrent_weights
from passes.lowering.arithmetic import BroadcastOperands
from passes.lowering.geometry import (avgpool1d_geometry, conv1d_geometry, conv2d_geometry,
                                      conv_transpose1d_geometry, elements,
                                      fold_conv_transpose2d, maxpool1d_geometry)
from passes.lowering.normalization import NormLayout, norm_offset, stored_elements
from passes.lowering.product import ProductLayout, macs_of
from passes.quant_rules import out_channel_weights
from passes.tables import pow_exponent
from passes.time_analysis import pad_value, physical_shape
from runtime.ir import FLOAT32, Buffer
from runtime.reference.f32 import UNARY_FUNCTIONS


def _attr(node: gs.Node, name: str, default):
    v = node.attrs.get(name, default)
    return v.decode() if isinstance(v, bytes) else v


#: The unary ops whose float32 function takes no parameter, and its name.
SIMPLE_FUNCTIONS = {"Relu": "relu", "Sigmoid": "sigmoid", "Silu": "silu", "Tanh": "tanh",
                    "Exp": "exp", "Softplus": "softplus", "Neg": "neg", "Abs": "abs", "Erf": "erf",
                    "Sqrt": "sqrt", "Reciprocal": "reciprocal"}
#: Every unary op (passes/tables.py TABLE_OPS) the float32 `unary` kernel computes.
FLOAT_UNARY_OPS = frozenset(SIMPLE_FUNCTIONS) | {"Clip", "LeakyRelu", "HardSigmoid", "HardSwish",
                                                 "Elu", "Gelu", "Pow"}


def unary_function(node: gs.Node) -> tuple[str, float, float]:
    """(fn, alpha, beta) of the unary kernel computing a nonlinear unary op (TABLE_OPS)."""
    op = node.op
    if op == "Clip":
        bounds = clip_bounds(node)
        if bounds is None:
            raise RillError(f"{node_label(node)}: Clip bounds must be constant")
        return ("clip", *bounds)
    if op == "LeakyRelu":
        return "leaky_relu", float(node.attrs.get("alpha", 0.01)), 0.0
    if op == "HardSigmoid":
        return ("hard_sigmoid", float(node.attrs.get("alpha", 0.2)),
                float(node.attrs.get("beta", 0.5)))
    if op == "HardSwish":
        return "hard_swish", 1.0 / 6.0, 0.5
    if op == "Elu":
        return "elu", float(node.attrs.get("alpha", 1.0)), 0.0
    if op == "Pow":
        exponent = pow_exponent(node)
        if exponent is None:
            raise RillError(f"{node_label(node)}: the exponent of Pow must be one constant")
        return "pow", exponent, 0.0
    if op == "Gelu":
        return ("gelu_tanh" if _attr(node, "approximate", "none") == "tanh" else "gelu"), 0.0, 0.0
    if op not in SIMPLE_FUNCTIONS:
        raise RillError(f"{node_label(node)}: no float32 kernel for {op} yet")
    return SIMPLE_FUNCTIONS[op], 0.0, 0.0


def finite(node: gs.Node, *arrays: np.ndarray) -> list[np.ndarray]:
    """The arrays as float32, refusing NaN/Inf (a broken export, not a model to run)."""
    out = [np.ascontiguousarray(a, dtype=np.float32) for a in arrays]
    if not all(np.all(np.isfinite(a)) for a in out):
        raise RillError(f"{node_label(node)}: weights or biases contain NaN or Inf")
    return out


def float_constants(node: gs.Node) -> dict[str, np.ndarray]:
    """The constant operands of a two-operand node as float32 arrays "a"/"b" in numpy order."""
    return {k: finite(node, const_value(t))[0].reshape(-1)
            for k, t in zip("ab", node.inputs[:2]) if const_value(t) is not None}


class FloatWeightedOps:
    """Conv1d/Conv2d/ConvTranspose/Gemm with float32 weights and a fused activation's bounds."""

    def float_layer(self, node: gs.Node, w: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict]:
        """float32 weights and bias (zeros when absent), and act_min/act_max of the fused
        Relu/Clip (+-inf without one)."""
        b = const_value(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2].name \
            else np.zeros(w.shape[0], np.float32)
        if w is None or b is None:
            raise RillError(f"{node_label(node)}: weights and bias must be constant")
        kind = _attr(node, "activation", "")
        lo, hi = -math.inf, math.inf
        if kind == "Relu":
            lo = 0.0
        elif kind == "Clip":
            lo, hi = (float(v) for v in node.attrs["activation_params"])
        w32, b32 = finite(node, w, np.reshape(b, -1))
        return w32, b32, dict(act_min=lo, act_max=hi)

    def conv(self, node: gs.Node) -> None:
        x, y = node.inputs[0], node.outputs[0]
        if len(static_shape(x)) == 4:
            return self.conv2d(node)
        if len(static_shape(x)) != 3:
            raise RillError(f"{node_label(node)}: only 1-D and 2-D convolutions have kernels")
        w, b, act = self.float_layer(node, const_value(node.inputs[1]))
        params = dict(conv1d_geometry(node, w.shape), **act)
        self.require_time_major(node, x, y)
        self.emit_sequences(node, "conv1d", x, y, params,
                            dict(w=np.ascontiguousarray(w.transpose(0, 2, 1)), bias=b),
                            macs=static_shape(y)[2] * int(np.prod(w.shape)))

    def conv2d(self, node: gs.Node) -> None:
        """[1, C, F, T] with time last, stored [T][C][F]; weights to [co][kt][kf][cg]."""
        x, y = node.inputs[0], node.outputs[0]
        if self.perm(x) != [0, 3, 1, 2] or self.perm(y) != [0, 3, 1, 2]:
            raise RillError(f"{node_label(node)}: a 2-D convolution needs time on the last axis")
        w, b, act = self.float_layer(node, const_value(node.inputs[1]))
        _, _, f_out, t_out = static_shape(y)
        self.emit_sequences(node, "conv2d", x, y,
                            dict(conv2d_geometry(node, w.shape), **act),
                            dict(w=np.ascontiguousarray(w.transpose(0, 3, 2, 1)), bias=b),
                            macs=t_out * f_out * int(np.prod(w.shape)))

    def gemm(self, node: gs.Node) -> None:
        x, y = node.inputs[0], node.outputs[0]
        w, b, act = self.float_layer(node, const_value(node.inputs[1]))
        m, k = static_shape(x)
        if not self.stored_in_onnx_order(y):
            raise RillError(f"{node_label(node)}: the output rows are stored time-major")
        self.emit(node, "gemm", [self.in_onnx_order(node, x)], [self.buffer(y)],
                  dict(m=m, k=k, n=w.shape[0], **act), dict(w=w, bias=b),
                  macs=m * int(np.prod(w.shape)))

    def conv_transpose(self, node: gs.Node) -> None:
        x, y = node.inputs[0], node.outputs[0]
        if len(static_shape(x)) == 4:
            return self.conv_transpose2d(node)
        w, b, act = self.float_layer(node, out_channel_weights(node))  # [c_out, k, cg]
        params = conv_transpose1d_geometry(node, w.shape)
        self.require_time_major(node, x, y)
        self.emit_sequences(node, "conv_transpose1d", x, y,
                            dict(params, **act), dict(w=w, bias=b),
                            macs=params["t_in"] * int(np.prod(w.shape)))


    def conv_transpose2d(self, node: gs.Node) -> None:
        """Folded into a 1-D ConvTranspose over (channel, frequency) pairs
        (geometry.fold_conv_transpose2d)."""
        x, y = node.inputs[0], node.outputs[0]
        self.require_time_last_2d(node, x, y)
        w, params = fold_conv_transpose2d(node, const_value(node.inputs[1]))
        w, b, act = self.float_layer(node, w)  # bias: zeros for every folded channel if absent
        f_out = static_shape(y)[2]
        if len(node.inputs) > 2 and node.inputs[2].name:
            b = np.repeat(b, f_out)
        self.emit_sequences(node, "conv_transpose1d", x, y, dict(params, **act),
                            dict(w=w, bias=b), macs=params["t_in"] * int(np.prod(w.shape)))


class FloatElementwiseOps:
    """Unary functions, Add, pooling, reductions, Softmax and the streaming cut's masks."""

    unary_ops = FLOAT_UNARY_OPS

    def unary(self, node: gs.Node) -> None:
        x, y = node.inputs[0], node.outputs[0]
        fn, alpha, beta = unary_function(node)
        self.emit(node, "unary", [self.buffer(x)], [self.buffer(y)],
                  dict(n=elements(y), fn=UNARY_FUNCTIONS.index(fn), alpha=alpha, beta=beta))

    def add(self, node: gs.Node) -> None:
        a, b, y = self.add_operands(node)
        self.emit(node, "add", [self.buffer(a), self.buffer(b)], [self.buffer(y)],
                  dict(n=elements(y)))

    def avgpool(self, node: gs.Node) -> None:
        x, y = node.inputs[0], node.outputs[0]
        if len(static_shape(x)) == 4:
            return self.pool2d(node, "avgpool1d")
        params = avgpool1d_geometry(node)
        self.require_time_major(node, x, y)
        self.emit_sequences(node, "avgpool1d", x, y, params)

    def maxpool(self, node: gs.Node) -> None:
        x, y = node.inputs[0], node.outputs[0]
        if len(static_shape(x)) == 4:
            return self.pool2d(node, "maxpool1d")
        params = maxpool1d_geometry(node)
        self.require_time_major(node, x, y)
        self.emit_sequences(node, "maxpool1d", x, y,
                            dict(params, pad_value=pad_value(node)))

    def reduce(self, node: gs.Node) -> None:
        src, dst, params = self.reduce_operands(node)
        self.emit(node, "reduce", [src], [dst], params)

    def softmax(self, node: gs.Node) -> None:
        src, dst, rows, cols, finish = self.softmax_operands(node)
        self.emit(node, "softmax", [src], [dst], dict(rows=rows, cols=cols))
        finish()

    def mask_frames(self, node: gs.Node) -> None:
        x, flags, y = node.inputs[0], node.inputs[1], node.outputs[0]
        stored = physical_shape(static_shape(x), self.info.get(x.name))
        frames = stored[self.time_position(x)]
        self.emit(node, "mask_frames", [self.buffer(x), self.buffer(flags)], [self.buffer(y)],
                  dict(frames=frames, inner=int(np.prod(stored)) // frames,
                       pad=float(node.attrs["value"])))


class FloatArithmeticOps(BroadcastOperands):
    """Add/Sub/Mul/Div/Max/Min/PRelu with numpy broadcasting, activations or float32
    constants on either side: the `binary` kernel (a plain `add` for two same-shape
    activations stored alike)."""

    def arithmetic(self, node: gs.Node) -> None:
        self.emit_binary(node, float_constants(node))


class FloatProductOps(ProductLayout):
    """MatMul of activations (or a batched constant) in float32."""

    def matmul(self, node: gs.Node) -> None:
        a, b, y = node.inputs[0], node.inputs[1], node.outputs[0]
        geometry = self.matmul_geometry(node)
        self.emit(node, "matmul", [self.buffer(t) for t in (a, b) if const_value(t) is None],
                  [self.buffer(y)], geometry, float_constants(node), macs=macs_of(geometry))


class FloatNormalizationOps(NormLayout):
    """LayerNormalization in float32: gamma and beta in the stored order of the normalized
    axes."""

    def layernorm(self, node: gs.Node) -> None:
        x, y = node.inputs[0], node.outputs[0]
        axis, outer, length, inner, order = self.norm_layout(node)
        norm_shape = static_shape(x)[axis:]
        gamma = const_value(node.inputs[1])
        if gamma is None:
            raise RillError(f"{node_label(node)}: the scale (gamma) must be a constant")
        g, b = finite(node, stored_elements(np.asarray(gamma), norm_shape, order),
                      stored_elements(np.asarray(norm_offset(node)), norm_shape, order))
        self.emit(node, "layernorm", [self.buffer(x)], [self.buffer(y)],
                  dict(outer=outer, length=length, inner=inner,
                       epsilon=float(node.attrs.get("epsilon", 1e-5))),
                  dict(w=g, bias=b), macs=outer * length * inner * 4)


class FloatRecurrentOps:
    """GRU and LSTM in float32: h (and c) live in state buffers updated in place."""

    def recurrent(self, node: gs.Node) -> None:
        x = node.inputs[0]
        w, r, b, peep = recurrent_weights(node)
        if peep is not None and np.any(peep != 0):
            raise RillError(f"{node_label(node)}: LSTM peepholes (input P) are not supported")
        gates, hidden = (3 if node.op == "GRU" else 4), r.shape[1]
        b = np.zeros(2 * gates * hidden, np.float32) if b is None else b
        wx, wh, bias = finite(node, w, r, np.reshape(b, -1))
        frames = static_shape(x)[0]
        names = ["h"] + (["c"] if node.op == "LSTM" else [])
        cells = [self.float_state(node, 5 + i, name, hidden) for i, name in enumerate(names)]
        for i, cell in enumerate(cells):  # Y_h / Y_c are the updated state itself
            if len(node.outputs) > 1 + i and node.outputs[1 + i].name:
                self.alias[node.outputs[1 + i].name] = cell
        scratch = f"{node.name}.scratch"
        self.buffers[scratch] = Buffer(scratch, (4 * hidden,), FLOAT32, None, "scratch")
        y = [self.buffer(node.outputs[0])] if node.outputs[0].name else []
        params = dict(input=wx.shape[1], hidden=hidden, t=frames, has_y=int(bool(y)))
        if node.op == "GRU":
            params["linear_before_reset"] = int(node.attrs.get("linear_before_reset", 0))
        self.emit(node, node.op.lower(), [self.buffer(x)] + cells, y + cells + [scratch], params,
                  dict(wx=wx, wh=wh, bias=bias),
                  macs=frames * gates * hidden * (wx.shape[1] + hidden))

    def float_state(self, node: gs.Node, slot: int, name: str, hidden: int) -> str:
        """The buffer of initial_h/initial_c: the state pair when streaming, else a scratch
        buffer set to the constant initial value (zeros when absent) at every call."""
        t = node.inputs[slot] if len(node.inputs) > slot else None
        if t is not None and t.name and const_value(t) is None and t.name not in self.model_states:
            return self.buffer(t)
        buf = f"{node.name}.{name}"
        self.buffers[buf] = Buffer(buf, (hidden,), FLOAT32, None, "scratch")
        if t is not None and t.name in self.model_states:
            # the model's own state: updated in a copy, which the state takes at the end of
            # the call (the graph may still read the old state after this node)
            self.emit(node, "copy", [self.buffer(t)], [buf],
                      dict(src_offset=0, dst_offset=0, count=hidden))
            return buf
        init = None if t is None or not t.name else const_value(t)
        values = np.zeros(hidden, np.float32) if init is None else \
            finite(node, np.reshape(init, -1))[0]
        if values.size != hidden:
            raise RillError(f"{node_label(node)}: the initial state needs batch 1 ({hidden} "
                            f"values), got {values.size}")
        self.emit(node, "fill", [], [buf], dict(dst_offset=0, count=hidden), dict(values=values))
        return buf
