"""Lower the quantized float graph to the integer `Program` the reference and C both execute.

Each ONNX node becomes zero or more kernel steps over physical buffers (time-major for tensors
that carry time). Weights are quantized per output channel here, biases at e_in + e_w, and every
requantization shift is fixed at compile time.
"""
from __future__ import annotations

import itertools
import math

import numpy as np
import onnx_graphsurgeon as gs

from compiler.context import CompileContext
from compiler.errors import RillError
from compiler.graph import const_value, node_label, static_shape
from compiler.op_attrs import clip_bounds, normalized_slice, slice_spec, window_attrs
from compiler.pass_manager import Pass
from passes.quant_rules import SOFTMAX_EXP, out_channel_weights, plan_recurrent
from passes.streaming_cut import (analyze, resolve_time_axis, state_input_names, state_specs,
                                  time_series_input)
from passes.tables import TABLE_OPS, int8_table
from passes.time_analysis import (TimeInfo, pad_value, physical_perm, physical_shape,
                                  reduce_axes)
from runtime.ir import Buffer, Program, StatePair, Step
from runtime.reference.kernels import round_to_int, softmax_table

INT32_MAX = 2**31 - 1
MAX_SHIFT = 40


class Lowering:
    """Builds the program node by node; one method per ONNX op family."""

    def __init__(self, ctx: CompileContext, info: dict[str, TimeInfo]):
        self.ctx = ctx
        self.graph = ctx.graph
        self.info = info
        self.exps: dict[str, int] = ctx.facts["exponents"]
        self.wexps: dict[str, np.ndarray] = ctx.facts["weight_exponents"]
        self.mode = ctx.options.target.rounding
        self.buffers: dict[str, Buffer] = {}
        self.steps: list[Step] = []
        self.alias: dict[str, str] = {}  # state_next tensor -> state buffer
        self.model_states = {s.input for s in state_specs(ctx.facts) if s.kind == "model"}
        self.dtypes: dict[str, str] = {  # LSTM cells are int16; everything else int8
            n.inputs[i].name: "int16" for n in self.graph.nodes if n.op == "LSTM"
            for i in (6,) if len(n.inputs) > i and n.inputs[i].name}

    # -- buffers -----------------------------------------------------------------------------
    def buffer(self, t: gs.Tensor, role: str = "scratch") -> str:
        name = self.alias.get(t.name, t.name)
        if name not in self.buffers:
            shape = static_shape(t)
            if t.name not in self.exps:
                raise RillError(f"tensor '{t.name}' has no quantization exponent")
            self.buffers[name] = Buffer(name, physical_shape(shape, self.info.get(t.name)),
                                        self.dtypes.get(t.name, "int8"), self.exps[t.name], role)
        return name

    def exp(self, t: gs.Tensor) -> int:
        return self.exps[t.name]

    def perm(self, t: gs.Tensor) -> list[int]:
        return physical_perm(len(static_shape(t)), self.info.get(t.name))

    def emit(self, node: gs.Node, op: str, inputs, outputs, params=None, arrays=None, macs=0):
        if op in ("copy", "transpose_s8") and inputs and \
                {self.buffers[b].exp for b in list(inputs) + list(outputs)} != {self.buffers[inputs[0]].exp}:
            raise AssertionError(f"{node_label(node)}: data movement between different exponents; "
                                 "the qparam propagation missed this op")
        self.steps.append(Step(op, list(inputs), list(outputs), dict(params or {}),
                               dict(arrays or {}), node.name, int(macs)))

    # -- shared pieces -----------------------------------------------------------------------
    def activation_bounds(self, node: gs.Node, e_out: int) -> tuple[int, int]:
        kind = node.attrs.get("activation", "")
        kind = kind.decode() if isinstance(kind, bytes) else kind
        if kind == "Relu":
            return 0, 127
        if kind == "Clip":
            lo, hi = node.attrs["activation_params"]
            qlo = -128 if lo == -math.inf else int(np.clip(round_to_int(np.array([lo / 2.0**e_out]), self.mode)[0], -128, 127))
            qhi = 127 if hi == math.inf else int(np.clip(round_to_int(np.array([hi / 2.0**e_out]), self.mode)[0], -128, 127))
            return qlo, qhi
        return -128, 127

    def weights(self, node: gs.Node, w: np.ndarray, bias: np.ndarray, e_in: int, e_out: int):
        """int8 weights, int32 bias and per-channel shifts for one conv/gemm."""
        e_w = self.wexps[node.name].astype(np.int64)
        correction = self.ctx.facts.get("bias_corrections", {}).get(node.name)
        if correction is not None:  # mean error of the quantized weights (passes/quantize.py)
            bias = bias.astype(np.float64) + np.asarray(correction, np.float64).reshape(-1)
        scale = np.ldexp(1.0, -e_w).reshape((-1,) + (1,) * (w.ndim - 1))
        qw = np.clip(round_to_int(w.astype(np.float64) * scale, self.mode), -128, 127).astype(np.int8)
        qb = round_to_int(bias.astype(np.float64) * np.ldexp(1.0, -(e_in + e_w)), self.mode)
        if np.any(np.abs(qb) > INT32_MAX):
            raise RillError(f"{node_label(node)}: a bias does not fit int32 at exponent e_in + e_w; "
                            "the layer's bias is far larger than its weights")
        bound = np.abs(qb) + np.abs(qw.astype(np.int64)).reshape(qw.shape[0], -1).sum(axis=1) * 128
        if np.any(bound > INT32_MAX):
            raise RillError(f"{node_label(node)}: the int32 accumulator could overflow "
                            f"(bound {int(bound.max())}); split the layer")
        shift = e_out - e_in - e_w
        if np.any(np.abs(shift) > MAX_SHIFT):
            raise RillError(f"{node_label(node)}: requantization shift {int(shift.max())} is out of "
                            "range; the layer's weights or activations are degenerate (all zero?)")
        return qw, qb.astype(np.int32), shift.astype(np.int8)

    # -- ops ---------------------------------------------------------------------------------
    def lower(self, node: gs.Node) -> None:
        op = node.op
        method = {
            "Conv": self.conv, "FusedConv": self.conv, "Gemm": self.gemm, "FusedGemm": self.gemm,
            "Add": self.add, "AveragePool": self.avgpool, "MaxPool": self.maxpool,
            "Concat": self.concat, "Slice": self.slice, "Gather": self.gather,
            "Flatten": self.reshape, "Reshape": self.reshape, "Squeeze": self.reshape,
            "Unsqueeze": self.reshape, "Transpose": self.transpose, "Identity": self.identity,
            "ReduceMean": self.reduce, "ReduceMax": self.reduce, "ReduceSum": self.reduce,
            "GlobalAveragePool": self.reduce, "GlobalMaxPool": self.reduce,
            "Softmax": self.softmax, "MaskFrames": self.mask_frames,
            "ConvTranspose": self.conv_transpose, "GRU": self.recurrent, "LSTM": self.recurrent,
        }.get(op)
        if method is None and op in TABLE_OPS:
            method = self.table
        if method is None:
            raise RillError(f"{node_label(node)}: no int8 kernel for {op} yet")
        method(node)

    def conv(self, node: gs.Node) -> None:
        x, y = node.inputs[0], node.outputs[0]
        if len(static_shape(x)) == 4:
            return self.conv2d(node)
        if len(static_shape(x)) != 3:
            raise RillError(f"{node_label(node)}: only 1-D and 2-D convolutions have int8 kernels")
        a = window_attrs(node)
        w = const_value(node.inputs[1])
        b = const_value(node.inputs[2]) if len(node.inputs) > 2 else np.zeros(w.shape[0], np.float32)
        e_in, e_out = self.exp(x), self.exp(y)
        qw, qb, shift = self.weights(node, w, b, e_in, e_out)
        lo, hi = self.activation_bounds(node, e_out)
        _, c_in, t_in = static_shape(x)
        c_out, _, k = w.shape
        t_out = static_shape(y)[2]
        params = dict(t_in=t_in, c_in=c_in, c_out=c_out, kernel=k, stride=a["strides"][0],
                      dilation=a["dilations"][0], groups=int(node.attrs.get("group", 1)),
                      pad_l=a["pads"][0], pad_r=a["pads"][1], act_min=lo, act_max=hi)
        self.require_time_major(node, x, y)
        arrays = dict(w=np.ascontiguousarray(qw.transpose(0, 2, 1)), bias=qb, shift=shift)
        self.emit(node, "conv1d_s8", [self.buffer(x)], [self.buffer(y)], params, arrays,
                  macs=t_out * c_out * k * w.shape[1])

    def require_time_major(self, node: gs.Node, *tensors: gs.Tensor) -> None:
        """1-D window kernels read [T][C]: the last axis must be stored first (or be 1 frame)."""
        for t in tensors:
            shape = static_shape(t)
            last_is_time = physical_perm(len(shape), TimeInfo(len(shape) - 1, streamed=False))
            if self.perm(t) != last_is_time and shape[-1] != 1:
                raise RillError(f"{node_label(node)}: expects time on the last axis of '{t.name}'")

    def stored_in_onnx_order(self, t: gs.Tensor) -> bool:
        """True when only size-1 axes moved, so the bytes are already in ONNX order."""
        perm, shape = self.perm(t), static_shape(t)
        return all(shape[a] == 1 for i, a in enumerate(perm) if a != i)

    def gemm(self, node: gs.Node) -> None:
        x, y = node.inputs[0], node.outputs[0]
        w = const_value(node.inputs[1])
        b = const_value(node.inputs[2])
        e_in, e_out = self.exp(x), self.exp(y)
        qw, qb, shift = self.weights(node, w, b, e_in, e_out)
        lo, hi = self.activation_bounds(node, e_out)
        m, k = static_shape(x)
        n = w.shape[0]
        self.emit(node, "gemm_s8", [self.buffer(x)], [self.buffer(y)],
                  dict(m=m, k=k, n=n, act_min=lo, act_max=hi),
                  dict(w=qw, bias=qb, shift=shift), macs=m * k * n)

    def table(self, node: gs.Node) -> None:
        x, y = node.inputs[0], node.outputs[0]
        if node.op == "Clip" and clip_bounds(node) is None:
            raise RillError(f"{node_label(node)}: Clip bounds must be constant")
        table = int8_table(node, self.exp(x), self.exp(y), self.mode)
        self.emit(node, "lut_s8", [self.buffer(x)], [self.buffer(y)],
                  dict(n=int(np.prod(static_shape(y)))), dict(table=table))

    def add(self, node: gs.Node) -> None:
        a, b, y = node.inputs[0], node.inputs[1], node.outputs[0]
        if static_shape(a) != static_shape(b) or any(const_value(t) is not None for t in (a, b)):
            raise RillError(f"{node_label(node)}: only Add of two same-shape activations has an int8 "
                            "kernel yet")
        if self.perm(a) != self.perm(b):
            raise RillError(f"{node_label(node)}: operands are stored in different layouts")
        ea, eb, ey = self.exp(a), self.exp(b), self.exp(y)
        ec = min(ea, eb)
        self.emit(node, "add_s8", [self.buffer(a), self.buffer(b)], [self.buffer(y)],
                  dict(n=int(np.prod(static_shape(y))), shift_a=ea - ec, shift_b=eb - ec,
                       shift_out=ey - ec, act_min=-128, act_max=127))

    def avgpool(self, node: gs.Node) -> None:
        x, y = node.inputs[0], node.outputs[0]
        if len(static_shape(x)) != 3:
            raise RillError(f"{node_label(node)}: only 1-D AveragePool has an int8 kernel yet")
        a = window_attrs(node)
        if a["dilations"] != [1]:
            raise RillError(f"{node_label(node)}: dilated AveragePool is not supported")
        _, c, t_in = static_shape(x)
        self.require_time_major(node, x, y)
        self.emit(node, "avgpool1d_s8", [self.buffer(x)], [self.buffer(y)],
                  dict(t_in=t_in, channels=c, kernel=a["kernel"][0], stride=a["strides"][0],
                       pad_l=a["pads"][0], pad_r=a["pads"][1],
                       count_include_pad=int(node.attrs.get("count_include_pad", 0)),
                       shift=self.exp(y) - self.exp(x)))

    def outer_axis(self, t: gs.Tensor, axis: int) -> bool:
        """Whether `axis` is the outermost non-unit axis in storage (so slices are contiguous)."""
        perm, shape = self.perm(t), static_shape(t)
        pos = perm.index(axis)
        return all(shape[a] == 1 for a in perm[:pos])

    def same_order(self, t: gs.Tensor, y: gs.Tensor) -> bool:
        """Whether `t`'s non-unit axes are stored in the order `y` stores them."""
        order = [a for a in self.perm(t) if static_shape(t)[a] != 1]
        return [a for a in self.perm(y) if a in order] == order

    def concat(self, node: gs.Node) -> None:
        y = node.outputs[0]
        shape = static_shape(y)
        axis = int(node.attrs.get("axis", 0)) % len(shape)
        if any(not self.same_order(t, y) for t in node.inputs):
            raise RillError(f"{node_label(node)}: Concat inputs are stored in different layouts")
        perm = self.perm(y)
        blocks = int(np.prod([shape[a] for a in perm[:perm.index(axis)]], dtype=np.int64))
        out, offset, row = self.buffer(y), 0, int(np.prod(shape)) // blocks
        for t in node.inputs:
            n = int(np.prod(static_shape(t))) // blocks
            value = const_value(t)
            if value is not None and blocks > 1:
                raise RillError(f"{node_label(node)}: Concat of a constant along an inner axis")
            if blocks > 1:  # e.g. channels of per-frame tensors stored [T][C]: one row per frame
                self.emit(node, "copy", [self.buffer(t)], [out],
                          dict(src_offset=0, dst_offset=offset, count=n, blocks=blocks,
                               src_stride=n, dst_stride=row))
            elif value is not None:  # e.g. the "valid" flags of new frames
                q = np.array([self.quantize_scalar(v, self.exp(y)) for v in np.ravel(value)], np.int8)
                self.emit(node, "fill", [], [out], dict(dst_offset=offset, count=n),
                          dict(values=q))
            else:
                self.emit(node, "copy", [self.buffer(t)], [out],
                          dict(src_offset=0, dst_offset=offset, count=n))
            offset += n

    def slice(self, node: gs.Node) -> None:
        x, y = node.inputs[0], node.outputs[0]
        starts, ends, axes, steps = slice_spec(node)
        shape = static_shape(x)
        ranges = {a: normalized_slice(s, e, st, shape[a]) for s, e, a, st in zip(starts, ends, axes, steps)}
        cut = [a for a, (s, e, st) in ranges.items() if (s, e, st) != (0, shape[a], 1)]
        if len(cut) > 1 or (cut and (ranges[cut[0]][2] != 1 or not self.outer_axis(x, cut[0]))):
            raise RillError(f"{node_label(node)}: only contiguous slices along the outermost stored "
                            "axis are supported yet")
        inner = int(np.prod(static_shape(y))) // (static_shape(y)[cut[0]] if cut else 1)
        start = ranges[cut[0]][0] * inner if cut else 0
        self.emit(node, "copy", [self.buffer(x)], [self.buffer(y)],
                  dict(src_offset=start, dst_offset=0, count=int(np.prod(static_shape(y)))))

    def gather(self, node: gs.Node) -> None:
        """One index along the outermost stored axis: a contiguous copy."""
        x, y = node.inputs[0], node.outputs[0]
        index = const_value(node.inputs[1])
        shape = static_shape(x)
        axis = int(node.attrs.get("axis", 0)) % len(shape)
        if index is None or index.size != 1 or not self.outer_axis(x, axis):
            raise RillError(f"{node_label(node)}: only a Gather of one index along the outermost "
                            "stored axis is supported yet")
        inner = int(np.prod(shape)) // shape[axis]
        start = (int(index.reshape(-1)[0]) % shape[axis]) * inner
        self.emit(node, "copy", [self.buffer(x)], [self.buffer(y)],
                  dict(src_offset=start, dst_offset=0, count=inner))

    def reshape(self, node: gs.Node) -> None:
        self.relayout(node, lambda a: a.reshape(static_shape(node.outputs[0])))

    def transpose(self, node: gs.Node) -> None:
        rank = len(static_shape(node.inputs[0]))
        perm = [int(p) for p in node.attrs.get("perm", list(range(rank))[::-1])]
        self.relayout(node, lambda a: a.transpose(perm))

    def relayout(self, node: gs.Node, onnx_op) -> None:
        """Data movement between stored layouts: a copy when the bytes stay in order, else one
        transpose of the stored input (found by trying the permutations of its non-unit axes)."""
        x, y = node.inputs[0], node.outputs[0]
        x_shape = static_shape(x)
        x_stored = physical_shape(x_shape, self.info.get(x.name))
        x_perm = self.perm(x)
        index = np.arange(int(np.prod(x_shape))).reshape(x_stored)
        onnx_index = onnx_op(index.transpose(np.argsort(x_perm)))
        gather = np.ascontiguousarray(onnx_index.transpose(self.perm(y))).reshape(-1)
        src, dst = self.buffer(x), self.buffer(y)
        if np.array_equal(gather, np.arange(gather.size)):
            self.emit(node, "copy", [src], [dst], dict(src_offset=0, dst_offset=0, count=gather.size))
            return
        dims = [d for d in x_stored if d != 1]
        compact = index.reshape(dims)
        for perm in itertools.permutations(range(len(dims))):
            if np.array_equal(compact.transpose(perm).reshape(-1), gather):
                if len(dims) > 4:
                    break
                self.emit(node, "transpose_s8", [src], [dst],
                          dict(rank=len(dims), in_shape=dims, perm=list(perm)))
                return
        raise RillError(f"{node_label(node)}: this {node.op} reorders data in a way no kernel "
                        "supports")

    # -- ops added for streaming constructs ---------------------------------------------------
    def conv2d(self, node: gs.Node) -> None:
        """[1, C, F, T] with time last, stored [T][C][F]; weights to [co][kt][kf][cg]."""
        x, y = node.inputs[0], node.outputs[0]
        if self.perm(x) != [0, 3, 1, 2] or self.perm(y) != [0, 3, 1, 2]:
            raise RillError(f"{node_label(node)}: a 2-D convolution needs time on the last axis")
        a = window_attrs(node)
        w = const_value(node.inputs[1])
        b = const_value(node.inputs[2]) if len(node.inputs) > 2 else np.zeros(w.shape[0], np.float32)
        qw, qb, shift = self.weights(node, w, b, self.exp(x), self.exp(y))
        lo, hi = self.activation_bounds(node, self.exp(y))
        _, c_in, f_in, t_in = static_shape(x)
        c_out, cg, kf, kt = w.shape
        _, _, f_out, t_out = static_shape(y)
        (pf_l, pt_l, pf_r, pt_r), (sf, st), (df, dt) = a["pads"], a["strides"], a["dilations"]
        params = dict(t_in=t_in, f_in=f_in, c_in=c_in, c_out=c_out, kernel_t=kt, kernel_f=kf,
                      stride_t=st, stride_f=sf, dilation_t=dt, dilation_f=df,
                      groups=int(node.attrs.get("group", 1)), pad_t_l=pt_l, pad_t_r=pt_r,
                      pad_f_l=pf_l, pad_f_r=pf_r, act_min=lo, act_max=hi)
        arrays = dict(w=np.ascontiguousarray(qw.transpose(0, 3, 2, 1)), bias=qb, shift=shift)
        self.emit(node, "conv2d_s8", [self.buffer(x)], [self.buffer(y)], params, arrays,
                  macs=t_out * f_out * c_out * kt * kf * cg)

    def conv_transpose(self, node: gs.Node) -> None:
        x, y = node.inputs[0], node.outputs[0]
        if len(static_shape(x)) != 3:
            raise RillError(f"{node_label(node)}: only 1-D ConvTranspose has an int8 kernel")
        self.require_time_major(node, x, y)
        a = window_attrs(node)
        groups = int(node.attrs.get("group", 1))
        w = out_channel_weights(node)  # [c_out, k, c_in/groups]
        b = const_value(node.inputs[2]) if len(node.inputs) > 2 else np.zeros(w.shape[0], np.float32)
        qw, qb, shift = self.weights(node, w, b, self.exp(x), self.exp(y))
        lo, hi = self.activation_bounds(node, self.exp(y))
        _, c_in, t_in = static_shape(x)
        c_out, k, cg = w.shape
        out_pad = [int(v) for v in node.attrs.get("output_padding", [0])]
        params = dict(t_in=t_in, c_in=c_in, c_out=c_out, kernel=k, stride=a["strides"][0],
                      dilation=a["dilations"][0], groups=groups, pad_l=a["pads"][0],
                      pad_r=a["pads"][1], output_padding=out_pad[0], act_min=lo, act_max=hi)
        self.emit(node, "conv_transpose1d_s8", [self.buffer(x)], [self.buffer(y)], params,
                  dict(w=qw, bias=qb, shift=shift), macs=t_in * c_out * k * cg)

    def maxpool(self, node: gs.Node) -> None:
        x, y = node.inputs[0], node.outputs[0]
        if len(static_shape(x)) != 3 or len(node.outputs) > 1 and node.outputs[1].name:
            raise RillError(f"{node_label(node)}: only 1-D MaxPool without indices has an int8 "
                            "kernel")
        self.require_time_major(node, x, y)
        a = window_attrs(node)
        _, c, t_in = static_shape(x)
        self.emit(node, "maxpool1d_s8", [self.buffer(x)], [self.buffer(y)],
                  dict(t_in=t_in, channels=c, kernel=a["kernel"][0], stride=a["strides"][0],
                       dilation=a["dilations"][0], pad_l=a["pads"][0], pad_r=a["pads"][1],
                       pad_value=self.quantize_scalar(pad_value(node), self.exp(x)),
                       shift=self.exp(y) - self.exp(x)))

    def quantize_scalar(self, value: float, exp: int) -> int:
        q = round_to_int(np.array([np.clip(value / 2.0**exp, -129.0, 128.0)]), self.mode)[0]
        return int(np.clip(q, -128, 127))

    def reduce(self, node: gs.Node) -> None:
        x, y = node.inputs[0], node.outputs[0]
        shape = static_shape(x)
        axes = reduce_axes(node, len(shape))
        outer, length, inner = self.reduction_blocks(node, x, y, axes)
        op = {"ReduceMean": 0, "GlobalAveragePool": 0, "ReduceMax": 1, "GlobalMaxPool": 1,
              "ReduceSum": 2}[node.op]
        self.emit(node, "reduce_s8", [self.buffer(x)], [self.buffer(y)],
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
        if self.exp(y) != SOFTMAX_EXP:
            raise AssertionError("softmax output exponent must be fixed by quantization")
        cols = shape[axis]
        self.emit(node, "softmax_s8", [self.buffer(x)], [self.buffer(y)],
                  dict(rows=int(np.prod(shape)) // cols, cols=cols, out_bits=-SOFTMAX_EXP),
                  dict(table=softmax_table(self.exp(x), self.mode)))

    def mask_frames(self, node: gs.Node) -> None:
        x, flags, y = node.inputs[0], node.inputs[1], node.outputs[0]
        stored = physical_shape(static_shape(x), self.info.get(x.name))
        frames = stored[1] if len(stored) > 1 else 1
        self.emit(node, "mask_frames_s8", [self.buffer(x), self.buffer(flags)], [self.buffer(y)],
                  dict(frames=frames, inner=int(np.prod(stored)) // frames,
                       pad=self.quantize_scalar(float(node.attrs["value"]), self.exp(x))))

    def identity(self, node: gs.Node) -> None:
        src, dst = self.buffer(node.inputs[0]), self.buffer(node.outputs[0])
        if src != dst:
            self.emit(node, "copy", [src], [dst],
                      dict(src_offset=0, dst_offset=0, count=self.buffers[src].size))

    def recurrent(self, node: gs.Node) -> None:
        """One gru_s8/lstm_s8 step over the call's frames; h (and c) updated in place."""
        x = node.inputs[0]
        plan = plan_recurrent(node, self.ctx, self.exp(x))
        frames = static_shape(x)[0]
        names = ["h"] + (["c"] if node.op == "LSTM" else [])
        cells = [self.recurrent_state(node, 5 + i, name, plan) for i, name in enumerate(names)]
        for i, cell in enumerate(cells):  # Y_h / Y_c are the updated state itself
            if len(node.outputs) > 1 + i and node.outputs[1 + i].name:
                self.alias[node.outputs[1 + i].name] = cell
        scratch = f"{node.name}.scratch"
        self.buffers[scratch] = Buffer(scratch, (plan.scratch_bytes,), "int8", 0, "scratch")
        y = [self.buffer(node.outputs[0])] if node.outputs[0].name else []
        rows = plan.arrays["wx"].size // plan.params["input"]  # gates x hidden
        self.emit(node, f"{plan.kind}_s8", [self.buffer(x)] + cells, y + cells + [scratch],
                  dict(plan.params, t=frames, has_y=int(bool(y))), plan.arrays,
                  macs=frames * rows * (plan.params["input"] + plan.params["hidden"]))

    def recurrent_state(self, node: gs.Node, slot: int, name: str, plan) -> str:
        """The buffer of initial_h/initial_c: the state pair when streaming, else a scratch
        buffer filled with the constant initial value at the start of every call."""
        t = node.inputs[slot] if len(node.inputs) > slot else None
        if t is not None and t.name and const_value(t) is None and t.name not in self.model_states:
            return self.buffer(t)
        dtype, n, exp = plan.state[name]
        buf = f"{node.name}.{name}"
        self.buffers[buf] = Buffer(buf, (n,), dtype, exp, "scratch")
        if t is not None and t.name in self.model_states:
            # the model's own state: updated in a copy, which the state takes at the end of
            # the call (the graph may still read the old state after this node)
            self.emit(node, "copy", [self.buffer(t)], [buf], dict(src_offset=0, dst_offset=0,
                                                                  count=n))
            return buf
        init = None if t is None or not t.name else const_value(t)
        values = plan.quantize_state(**{f"{name}0": init}, mode=self.mode)[name]
        self.emit(node, "fill", [], [buf], dict(dst_offset=0, count=n), dict(values=values))
        return buf

    def update_model_state(self, state_in: gs.Tensor, state_out: gs.Tensor) -> None:
        """The last steps of a call: each of the model's own states takes its next value."""
        src, dst = self.buffer(state_out), self.buffer(state_in)
        if src == dst:
            return
        a, b = self.buffers[src], self.buffers[dst]
        if self.perm(state_out) != self.perm(state_in) and not (
                self.stored_in_onnx_order(state_out) and self.stored_in_onnx_order(state_in)):
            raise RillError(f"state pair {state_in.name}={state_out.name}: the input and the "
                            "output are stored in different layouts (their time axes differ)")
        if (a.exp, a.dtype, a.size) != (b.exp, b.dtype, b.size):
            raise AssertionError(f"state pair {state_in.name}={state_out.name}: buffers differ "
                                 f"({a} vs {b})")
        self.steps.append(Step("copy", [src], [dst], dict(src_offset=0, dst_offset=0,
                                                          count=b.size),
                               name=f"{state_out.name}->{state_in.name}"))


class LowerToInteger(Pass):
    name = "lower-integer"
    requires = frozenset({"qparams-propagated"})
    ensures = frozenset({"lowered"})

    def run(self, ctx: CompileContext) -> bool:
        graph = ctx.graph
        low = Lowering(ctx, stored_time_info(ctx))
        states = []
        for s in state_specs(ctx.facts):
            if s.kind == "model":  # the model's own pair: its output gets its own buffer
                low.dtypes[s.output] = low.dtypes.get(s.input, "int8")
                buf = low.buffers[low.buffer(graph.tensors()[s.input], "state")]
                states.append(StatePair(s.input, s.input, s.output,
                                        low.quantize_scalar(s.init, buf.exp)))
                continue
            low.info[s.output] = low.info.get(s.input)
            low.alias[s.output] = s.input
            buf = low.buffers[low.buffer(graph.tensors()[s.input], "state")]
            states.append(StatePair(s.input, s.input, s.output, low.quantize_scalar(s.init, buf.exp)))
        x = time_series_input(graph, state_input_names(ctx.facts))
        low.buffer(x, "input")
        for node in graph.nodes:
            low.lower(node)
        for s in state_specs(ctx.facts):
            if s.kind == "model":
                low.update_model_state(graph.tensors()[s.input], graph.tensors()[s.output])
        outputs = [o for o in graph.outputs if all(o.name != s.onnx_output for s in states)]
        for o in outputs:
            low.buffers[low.buffer(o)].role = "output"
        ctx.facts["program"] = Program(low.buffers, low.steps, [x.name], [o.name for o in outputs],
                                       states, ctx.options.target.rounding)
        ctx.facts["time_info"] = low.info
        ctx.facts["time_axis"] = resolve_time_axis(graph, ctx.options.time_axis,
                                                   state_input_names(ctx.facts))
        return True


def stored_time_info(ctx: CompileContext) -> dict[str, TimeInfo]:
    """Where time is in every tensor, for storage: the cut graph's own analysis, overridden by
    the offline analysis for the tensors both graphs share (a 1-frame chunk makes the time axis
    of a reshape ambiguous; the offline shapes are not)."""
    info = dict(analyze(ctx, streamed=False).info)
    info.update({n: TimeInfo(i.axis, streamed=False)
                 for n, i in ctx.facts.get("stream_time_info", {}).items()})
    return info
