"""The lowering's shared state: buffers with their precision and exponent, emitted steps, and
the layout questions every op family asks (where time is stored, which axes are contiguous)."""
from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs

from compiler.context import CompileContext
from compiler.errors import RillError
from compiler.graph import node_label, static_shape
from passes.streaming_cut import state_specs
from passes.time_analysis import TimeInfo, physical_perm, physical_shape
from runtime.ir import Buffer, Step
from runtime.reference.kernels import round_to_int

class LoweringBase:
    """Buffers, their precision and exponents, and the steps emitted so far."""

    def __init__(self, ctx: CompileContext, info: dict[str, TimeInfo]):
        self.ctx = ctx
        self.graph = ctx.graph
        self.info = info
        self.exps: dict[str, int] = ctx.facts["exponents"]
        self.wexps: dict[str, np.ndarray] = ctx.facts["weight_exponents"]
        self.mode = ctx.options.target.rounding
        self.buffers: dict[str, Buffer] = {}
        self.steps: list[Step] = []
        self.requantizations: list[dict] = []  # Concat inputs aligned by a requant step
        self.alias: dict[str, str] = {}  # state_next tensor -> state buffer
        self.model_states = {s.input for s in state_specs(ctx.facts) if s.kind == "model"}
        self.bits: dict[str, int] = ctx.facts.get("tensor_bits", {})
        self.default_bits = ctx.options.bits
        plans = ctx.facts.get("recurrent_plans", {})
        self.dtypes: dict[str, str] = {  # LSTM cells: int16 for int8 h, int32 for int16 h
            n.inputs[i].name: plans[n.name].c_dtype if n.name in plans else "int16"
            for n in self.graph.nodes if n.op == "LSTM"
            for i in (6,) if len(n.inputs) > i and n.inputs[i].name}

    # -- buffers -----------------------------------------------------------------------------
    def buffer(self, t: gs.Tensor, role: str = "scratch") -> str:
        name = self.alias.get(t.name, t.name)
        if name not in self.buffers:
            shape = static_shape(t)
            if t.name not in self.exps:
                raise RillError(f"tensor '{t.name}' has no quantization exponent")
            self.buffers[name] = Buffer(name, physical_shape(shape, self.info.get(t.name)),
                                        self.dtype(t), self.exps[t.name], role)
        return name

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

    def perm(self, t: gs.Tensor) -> list[int]:
        return physical_perm(len(static_shape(t)), self.info.get(t.name))

    def emit(self, node: gs.Node, op: str, inputs, outputs, params=None, arrays=None, macs=0):
        moved = [self.buffers[b] for b in list(inputs) + list(outputs)]
        if op in ("copy", "transpose") and len({(b.exp, b.dtype) for b in moved}) > 1:
            raise AssertionError(f"{node_label(node)}: data movement between different exponents "
                                 "or precisions; the qparam propagation missed this op")
        self.steps.append(Step(op, list(inputs), list(outputs), dict(params or {}),
                               dict(arrays or {}), node.name, int(macs)))

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

    def quantize_scalar(self, value: float, t: gs.Tensor) -> int:
        """`value` in the units of tensor `t` (its exponent and type), rounded and saturated."""
        lo, hi = self.qrange(t)
        q = round_to_int(np.array([np.clip(value / 2.0**self.exp(t), lo - 1.0, hi + 1.0)]),
                         self.mode)[0]
        return int(np.clip(q, lo, hi))

