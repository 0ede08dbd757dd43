"""The lowering's shared state: buffers, emitted steps, the ONNX op -> lowering method table,
and the layout questions every op family asks (where time is stored, which axes are
contiguous). The numbers are a format mixin's business: `IntegerFormat` (a quantized program:
int8/int16 buffers with exponents) or `FloatFormat` (a float32 program: no scheme at all)."""
from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs

from compiler.context import CompileContext
from compiler.errors import RillError
from compiler.graph import const_value, node_label, static_shape
from passes.streaming_cut import state_specs
from passes.tables import TABLE_OPS
from passes.time_analysis import TimeInfo, batch_axes, physical_perm, physical_shape, reduce_axes
from passes.lowering.layouts import ViewChoice
from runtime.ir import FLOAT32, Buffer, Step
from runtime.reference.kernels import round_to_int

#: ONNX op -> the lowering method of its kernel family (the nonlinear unary ops of TABLE_OPS:
#: `unary`). An integer and a float32 lowering implement the same methods; an op whose method
#: one of them lacks is a clear error in that precision.
OP_METHODS: dict[str, str] = {
    "Conv": "conv", "FusedConv": "conv", "Gemm": "gemm", "FusedGemm": "gemm",
    "Add": "add", "Sub": "arithmetic", "Mul": "arithmetic", "Div": "arithmetic",
    "Max": "arithmetic", "Min": "arithmetic", "PRelu": "arithmetic",
    "AveragePool": "avgpool", "MaxPool": "maxpool",
    "Concat": "concat", "Slice": "slice", "Gather": "gather", "Split": "split", "Pad": "pad",
    "Flatten": "reshape", "Reshape": "reshape", "Squeeze": "reshape",
    "Unsqueeze": "reshape", "Transpose": "transpose", "Identity": "identity",
    "ReduceMean": "reduce", "ReduceMax": "reduce", "ReduceSum": "reduce",
    "GlobalAveragePool": "reduce", "GlobalMaxPool": "reduce",
    "Softmax": "softmax", "MaskFrames": "mask_frames", "LayerNormalization": "layernorm",
    "MatMul": "matmul",
    "ConvTranspose": "conv_transpose", "GRU": "recurrent", "LSTM": "recurrent",
}


#: The `op` code of the reduce kernels (RILL_REDUCE_MEAN / _MAX / _SUM) of each reduction.
REDUCE_OPS = {"ReduceMean": 0, "GlobalAveragePool": 0, "ReduceMax": 1, "GlobalMaxPool": 1,
              "ReduceSum": 2}


def lowering_method(op: str) -> str | None:
    return OP_METHODS.get(op) or ("unary" if op in TABLE_OPS else None)


class LoweringBase:
    """Buffers and the steps emitted so far; the format mixin gives dtypes and exponents."""

    precision = ""  # named in errors: "integer" or "float32"
    unary_ops: frozenset[str] = TABLE_OPS  # the ops its `unary` method computes

    def __init__(self, ctx: CompileContext, info: dict[str, TimeInfo]):
        self.ctx = ctx
        self.graph = ctx.graph
        self.info = info
        self.buffers: dict[str, Buffer] = {}
        self.steps: list[Step] = []
        self.requantizations: list[dict] = []  # Concat inputs aligned by a requant step
        self.alias: dict[str, str] = {}  # state_next tensor -> state buffer
        self.protected: set[str] = set()  # the program's outputs: always roots of their own
        # views the layout search may turn back into copies (passes/lowering/layouts.py)
        self.views: list[ViewChoice] = []
        self.windows: set[str] = set()  # state roots holding a window (state + new frames)
        self.final_steps: list[Step] = []  # window state updates: after every reader
        # the streaming cut's frame states: read only by their window's Concat
        self.frame_states = {s.input for s in state_specs(ctx.facts)
                             if s.kind in ("frames", "mask")}
        self.model_states = {s.input for s in state_specs(ctx.facts) if s.kind == "model"}

    def lower(self, node: gs.Node) -> None:
        name = lowering_method(node.op)
        method = getattr(self, name, None) if name else None
        if method is None:
            what = f"{self.precision} kernel" if name else "kernel"
            raise RillError(f"{node_label(node)}: no {what} for {node.op} yet")
        method(node)

    # -- buffers -----------------------------------------------------------------------------
    def buffer(self, t: gs.Tensor, role: str = "scratch") -> str:
        name = self.alias.get(t.name, t.name)
        if name not in self.buffers:
            shape = static_shape(t)
            self.buffers[name] = Buffer(name, physical_shape(shape, self.info.get(t.name)),
                                        self.dtype(t), self.buffer_exp(t), role)
        return name

    # -- views: buffers that are elements of another (no copy) ------------------------------
    def root(self, name: str) -> tuple[str, int]:
        offset = 0
        while self.buffers[name].view_of is not None:
            offset += self.buffers[name].offset
            name = self.buffers[name].view_of
        return name, offset

    def movable(self, name: str) -> bool:
        """Whether `name` may become a view of another buffer: a scratch root (its producer then
        writes straight into the other buffer), never an output of the program."""
        return self.buffers[name].role == "scratch" and name not in self.protected

    def viewable(self, name: str) -> bool:
        """Whether a view into `name` keeps its value for as long as a reader needs it: its
        root is only written once per call (not a recurrent or model state updated in place
        or at the end; a window writes its state back after every reader)."""
        root = self.root(name)[0]
        return self.buffers[root].role in ("scratch", "input", "output") or root in self.windows

    def make_view(self, name: str, base: str, offset: int, into: bool) -> None:
        """`name`'s elements become elements `offset`.. of `base` (same dtype and exponent):
        `into` when `name`'s producer now writes into `base` (a Concat slot, a reshaped
        buffer), else `name` reads `base` (a slice). Recorded with the place of the copy it
        saves, in case the copy costs less RAM."""
        b, whole = self.buffers[name], self.buffers[base]
        if not self.movable(name) or self.root(base)[0] == name:
            raise AssertionError(f"'{name}' cannot become a view of '{base}'")
        if (b.dtype, b.exp) != (whole.dtype, whole.exp) or offset < 0 or \
                offset + b.size > whole.size:
            raise AssertionError(f"view '{name}' does not fit '{base}' at {offset}")
        b.role, b.view_of, b.offset = "view", base, offset
        self.views.append(ViewChoice(name, base, offset, into, len(self.steps)))

    def perm(self, t: gs.Tensor) -> list[int]:
        return physical_perm(len(static_shape(t)), self.info.get(t.name))

    def emit(self, node: gs.Node, op: str, inputs, outputs, params=None, arrays=None, macs=0,
             final: bool = False):
        """Append a step (`final`: after every other step of the call, e.g. a window's state
        update)."""
        moved = [self.buffers[b] for b in list(inputs) + list(outputs)]
        if op in ("copy", "transpose") and len({(b.exp, b.dtype) for b in moved}) > 1:
            raise AssertionError(f"{node_label(node)}: data movement between different exponents "
                                 "or precisions; the qparam propagation missed this op")
        (self.final_steps if final else self.steps).append(
            Step(op, list(inputs), list(outputs), dict(params or {}), dict(arrays or {}),
                 node.name, int(macs)))

    def emit_sequences(self, node: gs.Node, op: str, x: gs.Tensor, y: gs.Tensor, params,
                       arrays=None, macs: int = 0) -> None:
        """A kernel that runs one sequence ([T][C], [T][C][F]), called once per sequence of a
        batch: a rank >= 3 tensor stores its batch axis 0 in front of time (physical_perm), so
        sequence i is elements i*size/N.. of the buffer. The calls share their constants."""
        n = static_shape(x)[0]
        if static_shape(y)[0] != n:
            raise RillError(f"{node_label(node)}: input and output batches differ")
        xb, yb = self.buffer(x), self.buffer(y)
        if n == 1:
            return self.emit(node, op, [xb], [yb], params, arrays, macs)
        for i in range(n):
            self.emit(node, op, [self.sequence_view(xb, i, n)], [self.sequence_view(yb, i, n)],
                      params, arrays, macs)

    def sequence_view(self, name: str, i: int, n: int) -> str:
        """Sequence `i` of the `n` stored one after another in buffer `name` (a view)."""
        whole = self.buffers[name]
        view = f"{name}.seq{i}"
        self.buffers[view] = Buffer(view, whole.shape[1:], whole.dtype, whole.exp, "view",
                                    view_of=name, offset=i * (whole.size // n))
        return view

    def in_onnx_order(self, node: gs.Node, t: gs.Tensor) -> str:
        """`t`'s buffer, or (for a kernel that reads its operand in ONNX axis order, e.g. the
        rows of a Gemm, when time is stored first) a transposed copy of it in ONNX order."""
        return self.reorder(node, t, list(range(len(static_shape(t)))))

    def reorder(self, node: gs.Node, t: gs.Tensor, order: list[int]) -> str:
        """`t`'s values stored in axis order `order`: its own buffer when its non-unit axes
        already are, else a transposed copy (for kernels that need an axis innermost or
        axes contiguous: reductions, Softmax, Gemm rows, Concat slots)."""
        return self.reorder_buffer(node, self.buffer(t), static_shape(t), self.perm(t), order)

    def reorder_buffer(self, node: gs.Node, src: str, shape, src_order: list[int],
                       order: list[int], dst: str | None = None) -> str:
        """Buffer `src` (ONNX shape `shape`, stored in axis order `src_order`) in axis order
        `order`: into `dst` if given (a copy or a transpose), else `src` itself when only unit
        axes move, else a new scratch buffer holding the transposed values."""
        stored = [a for a in src_order if shape[a] != 1]
        wanted = [a for a in order if shape[a] != 1]
        if dst is None:
            if stored == wanted:
                return src
            dst = f"{src}/as_{'_'.join(map(str, order))}"
            if dst in self.buffers:
                return dst
            b = self.buffers[src]
            self.buffers[dst] = Buffer(dst, tuple(int(shape[a]) for a in order), b.dtype, b.exp,
                                       "scratch")
        if stored == wanted:
            self.emit(node, "copy", [src], [dst],
                      dict(src_offset=0, dst_offset=0, count=self.buffers[src].size))
            return dst
        if len(stored) > 4:
            raise RillError(f"{node_label(node)}: would need a transpose of {len(stored)} "
                            "axes; the kernel supports 4")
        self.emit(node, "transpose", [src], [dst],
                  dict(rank=len(stored), in_shape=[int(shape[a]) for a in stored],
                       perm=[stored.index(a) for a in wanted]))
        return dst

    def time_position(self, t: gs.Tensor) -> int:
        """Where time is in `t`'s stored shape (0 when it has no time axis)."""
        info = self.info.get(t.name)
        return batch_axes(len(static_shape(t)), info) if info is not None else 0

    def require_time_last_2d(self, node: gs.Node, x: gs.Tensor, y: gs.Tensor) -> None:
        """2-D window kernels read [N][T][C][F]: time must be the last axis of [N, C, F, T]."""
        if self.perm(x) != [0, 3, 1, 2] or self.perm(y) != [0, 3, 1, 2]:
            raise RillError(f"{node_label(node)}: a 2-D {node.op} needs time on the last axis "
                            "([N, C, F, T])")

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

    def outer_axis(self, t: gs.Tensor, axis: int) -> bool:
        """Whether `axis` is the outermost non-unit axis in storage (so slices are contiguous)."""
        perm, shape = self.perm(t), static_shape(t)
        pos = perm.index(axis)
        return all(shape[a] == 1 for a in perm[:pos])

    def same_order(self, t: gs.Tensor, y: gs.Tensor) -> bool:
        """Whether `t`'s non-unit axes are stored in the order `y` stores them."""
        order = [a for a in self.perm(t) if static_shape(t)[a] != 1]
        return [a for a in self.perm(y) if a in order] == order

    def add_operands(self, node: gs.Node) -> tuple[gs.Tensor, gs.Tensor, gs.Tensor]:
        """(a, b, y) of an Add of two same-shape activations stored alike (the add kernels)."""
        a, b, y = node.inputs[0], node.inputs[1], node.outputs[0]
        if static_shape(a) != static_shape(b) or any(const_value(t) is not None for t in (a, b)):
            raise RillError(f"{node_label(node)}: only Add of two same-shape activations has a "
                            "kernel yet")
        if self.perm(a) != self.perm(b):
            raise RillError(f"{node_label(node)}: operands are stored in different layouts")
        return a, b, y

    def reduce_operands(self, node: gs.Node) -> tuple[str, str, dict[str, int]]:
        """(input buffer, output buffer, outer/length/inner/op) of a reduction (ReduceMean/
        Max/Sum, global pools) as [outer][length][inner]; when the reduced axes are not
        contiguous in storage (e.g. [F, T] of a [1, C, F, T] stored [T][C][F]) the input is
        first transposed to the kept axes in the output's stored order, then the reduced ones."""
        x, y = node.inputs[0], node.outputs[0]
        shape = static_shape(x)
        axes = reduce_axes(node, len(shape))
        src, order = self.buffer(x), self.perm(x)
        blocks = self.reduction_blocks(shape, order, y, axes)
        if blocks is None:
            keep = [a for a in range(len(shape)) if a not in axes]
            keepdims = bool(int(node.attrs.get("keepdims", 1))) or node.op.startswith("Global")
            to_x = (lambda j: j) if keepdims else (lambda j: keep[j])
            order = [to_x(a) for a in self.perm(y) if to_x(a) in keep] + list(axes)
            src = self.reorder(node, x, order)
            blocks = self.reduction_blocks(shape, order, y, axes)
        if blocks is None:
            raise RillError(f"{node_label(node)}: the output keeps its axes in another order "
                            "than the reduction can write them")
        outer, length, inner = blocks
        return src, self.buffer(y), dict(outer=outer, length=length, inner=inner,
                                         op=REDUCE_OPS[node.op])

    def reduction_blocks(self, shape, x_order: list[int], y: gs.Tensor, axes
                         ) -> tuple[int, int, int] | None:
        """[outer][length][inner] of a reduction of an input stored in axis order `x_order`,
        or None when the reduced axes are not contiguous there (or the kept ones are not in
        the output's stored order)."""
        stored = [a for a in x_order if shape[a] != 1]
        reduced = [i for i, a in enumerate(stored) if a in axes]
        kept = [a for a in stored if a not in axes]
        y_shape = static_shape(y)
        y_stored = [a for a in self.perm(y) if y_shape[a] != 1]
        contiguous = not reduced or reduced == list(range(reduced[0], reduced[-1] + 1))
        if not contiguous or [shape[a] for a in kept] != [y_shape[a] for a in y_stored]:
            return None
        first = reduced[0] if reduced else len(stored)
        dims = [shape[a] for a in stored]
        outer = int(np.prod(dims[:first], dtype=np.int64))
        length = int(np.prod([shape[a] for a in stored if a in axes], dtype=np.int64))
        return outer, length, int(np.prod(dims, dtype=np.int64)) // max(outer * length, 1)

    def softmax_operands(self, node: gs.Node):
        """(input buffer, output buffer, rows, cols, finish) of a Softmax, which the kernel
        computes along the innermost stored axis: for another axis, over a transposed copy
        into a scratch buffer that `finish()` transposes back into the output."""
        x, y = node.inputs[0], node.outputs[0]
        shape = static_shape(x)
        axis = int(node.attrs.get("axis", 1 if self.graph.opset < 13 else -1)) % len(shape)
        if self.graph.opset < 13 and any(d != 1 for d in shape[axis + 1:]):
            raise RillError(f"{node_label(node)}: a Softmax of opset {self.graph.opset} works on "
                            f"the axes from {axis} on flattened; only one axis (the last non-unit "
                            "one) is supported")
        rows, cols = int(np.prod(shape)) // shape[axis], shape[axis]
        stored = [a for a in self.perm(x) if shape[a] != 1]
        if not stored or stored[-1] == axis or shape[axis] == 1:
            if self.perm(y) != self.perm(x):
                raise AssertionError(f"{node_label(node)}: Softmax input and output layouts differ")
            return self.buffer(x), self.buffer(y), rows, cols, lambda: None
        order = [a for a in self.perm(x) if a != axis] + [axis]
        src = self.reorder(node, x, order)
        out = self.buffer(y)
        tmp = f"{out}/along_{axis}"
        b = self.buffers[out]
        self.buffers[tmp] = Buffer(tmp, tuple(int(shape[a]) for a in order), b.dtype, b.exp,
                                   "scratch")
        return src, tmp, rows, cols, lambda: self.reorder_buffer(node, tmp, shape, order,
                                                                  self.perm(y), out)


class IntegerFormat:
    """The numbers of a quantized program: int8/int16 buffers (int16/int32 LSTM cells) at the
    exponents quantization chose, constants rounded with the target's mode."""

    precision = "integer"

    def __init__(self, ctx: CompileContext, info: dict[str, TimeInfo]):
        super().__init__(ctx, info)
        self.exps: dict[str, int] = ctx.facts["exponents"]
        self.wexps: dict[str, np.ndarray] = ctx.facts["weight_exponents"]
        self.mode = ctx.options.target.rounding
        self.bits: dict[str, int] = ctx.facts.get("tensor_bits", {})
        self.default_bits = ctx.options.bits
        plans = ctx.facts.get("recurrent_plans", {})
        self.dtypes: dict[str, str] = {  # LSTM cells: int16 for int8 h, int32 for int16 h
            n.inputs[i].name: plans[n.name].c_dtype if n.name in plans else "int16"
            for n in self.graph.nodes if n.op == "LSTM"
            for i in (6,) if len(n.inputs) > i and n.inputs[i].name}

    def buffer_exp(self, t: gs.Tensor) -> int:
        if t.name not in self.exps:
            raise RillError(f"tensor '{t.name}' has no quantization exponent")
        return self.exps[t.name]

    def exp(self, t: gs.Tensor) -> int:
        return self.exps[t.name]

    def dtype(self, t: gs.Tensor) -> str:
        return self.dtypes.get(t.name) or f"int{self.bits.get(t.name, self.default_bits)}"

    def tensor_bits(self, t: gs.Tensor) -> int:
        """8 or 16: the precision the tensor is stored in."""
        return np.dtype(self.dtype(t)).itemsize * 8

    def qrange(self, t: gs.Tensor) -> tuple[int, int]:
        """The integer range of the tensor's type, e.g. (-128, 127)."""
        half = 1 << (self.tensor_bits(t) - 1)
        return -half, half - 1

    def quantize_scalar(self, value: float, t: gs.Tensor) -> int:
        """`value` in the units of tensor `t` (its exponent and type), rounded and saturated."""
        lo, hi = self.qrange(t)
        q = round_to_int(np.array([np.clip(value / 2.0**self.exp(t), lo - 1.0, hi + 1.0)]),
                         self.mode)[0]
        return int(np.clip(q, lo, hi))

    def constant(self, value: float, t: gs.Tensor) -> int:
        """A constant stored in tensor `t`'s buffer (a fill, a state's initial value)."""
        return self.quantize_scalar(value, t)

    def tie_type(self, name: str, like: str) -> None:
        """Store tensor `name` in the type of `like` (a model's own state output and input)."""
        if like in self.dtypes:
            self.dtypes[name] = self.dtypes[like]


class FloatFormat:
    """The numbers of a float32 program (`--bits 32`): every buffer float32, no exponents, no
    rounding; constants are float32 values."""

    precision = "float32"

    def buffer_exp(self, t: gs.Tensor) -> None:
        return None

    def exp(self, t: gs.Tensor) -> None:
        return None

    def dtype(self, t: gs.Tensor) -> str:
        return FLOAT32

    def constant(self, value: float, t: gs.Tensor) -> float:
        return float(np.float32(value))

    def tie_type(self, name: str, like: str) -> None:
        """Every buffer is float32 already."""
