"""Lower the quantized float graph to the integer `Program` the reference and C both execute.

Each ONNX node becomes zero or more kernel steps over physical buffers (time-major for tensors
that carry time). Weights are quantized per output channel here, biases at e_in + e_w, and every
requantization shift is fixed at compile time.
"""
from __future__ import annotations

import math

import numpy as np
import onnx_graphsurgeon as gs

from compiler.context import CompileContext
from compiler.errors import RillError
from compiler.graph import const_value, node_label, static_shape
from compiler.op_attrs import clip_bounds, normalized_slice, slice_spec, window_attrs
from compiler.pass_manager import Pass
from passes.streaming_cut import analyze, resolve_time_axis, state_input_names, time_series_input
from passes.tables import TABLE_OPS, int8_table
from passes.time_analysis import TimeInfo, physical_perm, physical_shape
from runtime.ir import Buffer, Program, StatePair, Step
from runtime.reference.kernels import round_to_int

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

    # -- buffers -----------------------------------------------------------------------------
    def buffer(self, t: gs.Tensor, role: str = "scratch") -> str:
        name = self.alias.get(t.name, t.name)
        if name not in self.buffers:
            shape = static_shape(t)
            if t.name not in self.exps:
                raise RillError(f"tensor '{t.name}' has no quantization exponent")
            self.buffers[name] = Buffer(name, physical_shape(shape, self.info.get(t.name)), "int8",
                                        self.exps[t.name], role)
        return name

    def exp(self, t: gs.Tensor) -> int:
        return self.exps[t.name]

    def perm(self, t: gs.Tensor) -> list[int]:
        return physical_perm(len(static_shape(t)), self.info.get(t.name))

    def emit(self, node: gs.Node, op: str, inputs, outputs, params=None, arrays=None, macs=0):
        if op in ("copy", "transpose_s8") and \
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
        if op in ("Conv", "FusedConv"):
            return self.conv(node)
        if op in ("Gemm", "FusedGemm"):
            return self.gemm(node)
        if op in TABLE_OPS:
            return self.table(node)
        if op == "Add":
            return self.add(node)
        if op == "AveragePool":
            return self.avgpool(node)
        if op == "Concat":
            return self.concat(node)
        if op == "Slice":
            return self.slice(node)
        if op == "Gather":
            return self.gather(node)
        if op in ("Flatten", "Reshape", "Squeeze", "Unsqueeze"):
            return self.reshape(node)
        raise RillError(f"{node_label(node)}: no int8 kernel for {op} yet")

    def conv(self, node: gs.Node) -> None:
        x, y = node.inputs[0], node.outputs[0]
        if len(static_shape(x)) != 3:
            raise RillError(f"{node_label(node)}: only 1-D convolutions have an int8 kernel yet")
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

    def concat(self, node: gs.Node) -> None:
        y = node.outputs[0]
        axis = int(node.attrs.get("axis", 0)) % len(static_shape(y))
        if not self.outer_axis(y, axis) or any(self.perm(t) != self.perm(y) for t in node.inputs):
            raise RillError(f"{node_label(node)}: Concat along an inner axis is not supported yet")
        out, offset = self.buffer(y), 0
        for t in node.inputs:
            n = int(np.prod(static_shape(t)))
            self.emit(node, "copy", [self.buffer(t)], [out], dict(src_offset=0, dst_offset=offset, count=n))
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
        x, y = node.inputs[0], node.outputs[0]
        perm = self.perm(x)
        if self.stored_in_onnx_order(x):
            self.emit(node, "copy", [self.buffer(x)], [self.buffer(y)],
                      dict(src_offset=0, dst_offset=0, count=int(np.prod(static_shape(y)))))
            return
        stored = [static_shape(x)[a] for a in perm]
        inverse = [perm.index(a) for a in range(len(perm))]
        self.emit(node, "transpose_s8", [self.buffer(x)], [self.buffer(y)],
                  dict(rank=len(stored), in_shape=stored, perm=inverse))


class LowerToInteger(Pass):
    name = "lower-integer"
    requires = frozenset({"qparams-propagated"})
    ensures = frozenset({"lowered"})

    def run(self, ctx: CompileContext) -> bool:
        streaming = ctx.facts.get("streaming")
        analysis = analyze(ctx, streamed=False)
        info = dict(analysis.info)
        low = Lowering(ctx, info)
        graph = ctx.graph
        states = []
        for s in (streaming or {}).get("states", []):
            info[s.output] = info[s.input]
            low.alias[s.output] = s.input
            t = graph.tensors()[s.input]
            low.buffer(t, "state")
            states.append(StatePair(s.input, s.input, s.output, 0))
        x = time_series_input(graph, state_input_names(ctx.facts))
        low.buffer(x, "input")
        for node in graph.nodes:
            low.lower(node)
        outputs = [o for o in graph.outputs if all(o.name != s.onnx_output for s in states)]
        for o in outputs:
            low.buffers[low.buffer(o)].role = "output"
        ctx.facts["program"] = Program(low.buffers, low.steps, [x.name], [o.name for o in outputs],
                                       states, ctx.options.target.rounding)
        ctx.facts["time_info"] = info
        ctx.facts["time_axis"] = resolve_time_axis(graph, ctx.options.time_axis,
                                                   state_input_names(ctx.facts))
        return True
