"""Lowering of data movement: Concat, Slice, Gather, Reshape-likes, Transpose, Identity, and
the copy that hands a model's own state its next value."""
from __future__ import annotations

import itertools

import numpy as np
import onnx_graphsurgeon as gs

from compiler.errors import RillError
from compiler.graph import const_value, node_label, static_shape
from compiler.op_attrs import normalized_slice, slice_spec
from passes.time_analysis import physical_shape
from runtime.ir import Buffer, Step


class MovementOps:
    """Ops that move bytes without arithmetic: plain or strided copies, fills, transposes.
    Input and output share exponent and precision (passes/quant_rules.py tie groups)."""

    def concat(self, node: gs.Node) -> None:
        """Producers write straight into their slot of the output (a view) where they can: a
        scratch root used once here; else a copy (a strided one for inner-axis slots) or, for a
        constant, a fill. A streaming window is laid out in its state (`window`)."""
        y = node.outputs[0]
        shape = static_shape(y)
        axis = int(node.attrs.get("axis", 0)) % len(shape)
        perm = self.perm(y)
        blocks = int(np.prod([shape[a] for a in perm[:perm.index(axis)]], dtype=np.int64))
        if blocks == 1 and self.is_window(node):
            return self.window(node)
        out, offset, row = self.buffer(y), 0, int(np.prod(shape)) // blocks
        placed: set[str] = set()
        for t in node.inputs:
            n = int(np.prod(static_shape(t))) // blocks
            self.place(node, t, y, out, offset, n, blocks, row, placed)
            offset += n

    def place(self, node: gs.Node, t: gs.Tensor, y: gs.Tensor, out: str, offset: int, n: int,
              blocks: int = 1, row: int = 0, placed: set[str] | None = None) -> None:
        """Concat input `t` into elements `offset`.. of `out` (`blocks` rows `row` apart)."""
        value = const_value(t)
        if value is not None:  # e.g. the "valid" flags of new frames; stored in y's axis order
            value = np.transpose(np.reshape(value, static_shape(t)), self.perm(y))
            q = np.array([self.constant(v, y) for v in np.ravel(value)], self.dtype(y))
            if blocks == 1:
                self.emit(node, "fill", [], [out], dict(dst_offset=offset, count=n),
                          dict(values=q))
                return
            src = f"{out}/constant{offset}"  # a constant slot of an inner axis: filled, then
            self.buffers[src] = Buffer(src, (q.size,), self.dtype(y), self.exp(y), "scratch")
            self.emit(node, "fill", [], [src], dict(dst_offset=0, count=q.size), dict(values=q))
        else:  # an input stored in another axis order (e.g. without time) is transposed first
            src = self.aligned_input(node, t, y)
            if not self.same_order(t, y):
                src = self.reorder_buffer(node, src, static_shape(t), self.perm(t),
                                          self.perm(y))
        if blocks > 1:  # e.g. channels of per-frame tensors stored [T][C]: one row per frame
            self.emit(node, "copy", [src], [out],
                      dict(src_offset=0, dst_offset=offset, count=n, blocks=blocks,
                           src_stride=n, dst_stride=row))
        elif self.movable(src) and src not in (placed or set()):
            self.make_view(src, out, offset, into=True)  # the producer writes into the slot
        else:
            self.emit(node, "copy", [src], [out], dict(src_offset=0, dst_offset=offset, count=n))
        if placed is not None:
            placed.add(src)

    def is_window(self, node: gs.Node) -> bool:
        """Concat(state, new frames) of the streaming cut, along the outermost stored axis."""
        if len(node.inputs) != 2 or node.inputs[0].name not in self.frame_states:
            return False
        state = self.buffers[self.buffer(node.inputs[0])]
        return state.role == "state" and state.view_of is None

    def window(self, node: gs.Node) -> None:
        """One buffer in `<name>_t` holds the kept frames and, right behind them, the call's new
        frames, which their producer writes there directly: no Concat copy. The state update
        (`Slice(window, -L:)`) is then one memmove, after every reader of the window
        (passes/lowering/layouts.py may move the window to the arena instead)."""
        state_t, new_t, y = node.inputs[0], node.inputs[1], node.outputs[0]
        window = self.buffer(y)
        state = self.buffers[self.buffer(state_t)]
        if (state.dtype, state.exp) != (self.buffers[window].dtype, self.buffers[window].exp):
            raise AssertionError(f"{node_label(node)}: the state and its window differ in type")
        self.buffers[window].role = "state"
        self.windows.add(window)
        state.role, state.view_of, state.offset = "view", window, 0
        self.place(node, new_t, y, window, state.size, self.buffers[window].size - state.size)

    def aligned_input(self, node: gs.Node, t: gs.Tensor, y: gs.Tensor) -> str:
        """The buffer a Concat copies input `t` from: `t`'s own, or, where the propagation left
        `t` at another exponent or precision than the Concat (passes/propagate_qparams.py), a
        copy requantized to the Concat's, which this records in `requantizations`."""
        x = self.buffer(t)
        if (self.exp(t), self.dtype(t)) == (self.exp(y), self.dtype(y)):
            return x
        name = f"{t.name}/requant_to_{node.name}"
        src = self.buffers[x]
        self.buffers[name] = Buffer(name, src.shape, self.dtype(y), self.exp(y), "scratch")
        self.emit(node, "requant", [x], [name],
                  dict(n=int(np.prod(src.shape)), shift=self.exp(y) - self.exp(t)))
        reason = next((r["reason"] for r in self.ctx.facts.get("requantized_inputs", [])
                       if (r["tensor"], r["node"]) == (t.name, node.name)),
                      "exponents refined apart")
        self.requantizations.append({
            "node": node.name, "tensor": t.name, "from_exp": self.exp(t), "to_exp": self.exp(y),
            "from_bits": self.tensor_bits(t), "to_bits": self.tensor_bits(y), "reason": reason})
        return name

    def slice(self, node: gs.Node) -> None:
        x, y = node.inputs[0], node.outputs[0]
        starts, ends, axes, steps = slice_spec(node)
        shape = static_shape(x)
        ranges = {a: normalized_slice(s, e, st, shape[a]) for s, e, a, st in zip(starts, ends, axes, steps)}
        cut = [a for a, (s, e, st) in ranges.items() if (s, e, st) != (0, shape[a], 1)]
        if any(ranges[a][2] != 1 for a in cut):
            raise RillError(f"{node_label(node)}: only Slices with step 1 are supported")
        if len(cut) > 1 or (cut and not self.outer_axis(x, cut[0])):
            return self.crop(node, {a: ranges[a] for a in cut})
        inner = int(np.prod(static_shape(y))) // (static_shape(y)[cut[0]] if cut else 1)
        start = ranges[cut[0]][0] * inner if cut else 0
        self.move(node, self.buffer(x), self.buffer(y), start, int(np.prod(static_shape(y))))

    def split(self, node: gs.Node) -> None:
        """Each output is a block of the input along the split axis: a view (or a copy) of a
        contiguous block, else one strided copy.
        The sizes are the outputs' shapes, so every opset's form (the `split` attribute or
        input, `num_outputs`, equal parts) is read the same way."""
        x = node.inputs[0]
        shape = static_shape(x)
        axis = int(node.attrs.get("axis", 0)) % len(shape)
        perm = self.perm(x)
        stored = [shape[a] for a in perm]
        pos = perm.index(axis)
        blocks = int(np.prod(stored[:pos], dtype=np.int64))
        inner = int(np.prod(stored[pos + 1:], dtype=np.int64))
        start = 0
        for out in node.outputs:
            n = static_shape(out)[axis]
            if out.name and (out.outputs or out in self.graph.outputs):
                if self.perm(out) != perm:
                    raise RillError(f"{node_label(node)}: output '{out.name}' is stored in "
                                    "another layout than the input")
                if blocks == 1:  # a contiguous block: a view where possible
                    self.move(node, self.buffer(x), self.buffer(out), start * inner, n * inner)
                else:  # e.g. channels of a time-major [T][C] tensor: one row per frame
                    self.emit(node, "copy", [self.buffer(x)], [self.buffer(out)],
                              dict(src_offset=start * inner, dst_offset=0, count=n * inner,
                                   blocks=blocks, src_stride=shape[axis] * inner,
                                   dst_stride=n * inner))
            start += n

    def gather(self, node: gs.Node) -> None:
        """One index along the outermost stored axis: a contiguous run."""
        x, y = node.inputs[0], node.outputs[0]
        index = const_value(node.inputs[1])
        shape = static_shape(x)
        axis = int(node.attrs.get("axis", 0)) % len(shape)
        if index is None or index.size != 1 or not self.outer_axis(x, axis):
            raise RillError(f"{node_label(node)}: only a Gather of one index along the outermost "
                            "stored axis is supported yet")
        inner = int(np.prod(shape)) // shape[axis]
        start = (int(index.reshape(-1)[0]) % shape[axis]) * inner
        self.move(node, self.buffer(x), self.buffer(y), start, inner)

    def move(self, node: gs.Node, src: str, dst: str, start: int, count: int) -> None:
        """`dst` = elements `start`.. of `src`: a view (no copy) when `dst` is a fresh scratch
        buffer and `src` keeps its value while `dst` is read; else a copy. A copy into a
        window's state is its update: after every reader of the window."""
        if src == dst:
            return
        if self.movable(dst) and self.viewable(src):
            self.make_view(dst, src, start, into=False)
            return
        self.emit(node, "copy", [src], [dst], dict(src_offset=start, dst_offset=0, count=count),
                  final=self.root(dst)[0] in self.windows)

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
        if np.array_equal(gather, np.arange(gather.size)):  # same bytes: one buffer
            if self.movable(src) and self.buffers[dst].role == "scratch" and \
                    self.buffers[dst].view_of is None:
                self.make_view(src, dst, 0, into=True)  # the producer writes the reshaped buffer
            else:
                self.move(node, src, dst, 0, gather.size)
            return
        dims = [d for d in x_stored if d != 1]
        compact = index.reshape(dims)
        for perm in itertools.permutations(range(len(dims))):
            if np.array_equal(compact.transpose(perm).reshape(-1), gather):
                if len(dims) > 4:
                    break
                self.emit(node, "transpose", [src], [dst],
                          dict(rank=len(dims), in_shape=dims, perm=list(perm)))
                return
        raise RillError(f"{node_label(node)}: this {node.op} reorders data in a way no kernel "
                        "supports")

    def identity(self, node: gs.Node) -> None:
        src, dst = self.buffer(node.inputs[0]), self.buffer(node.outputs[0])
        self.move(node, src, dst, 0, self.buffers[src].size)

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


