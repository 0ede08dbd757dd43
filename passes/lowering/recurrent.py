"""Lowering of recurrent layers (GRU, LSTM) and their h/c state."""
from __future__ import annotations

import onnx_graphsurgeon as gs

from compiler.errors import RillError
from compiler.graph import const_value, node_label, static_shape
from passes.quant_rules import plan_recurrent
from runtime.ir import Buffer


class RecurrentOps:
    """GRU and LSTM: one kernel variant per layer (x, weights, h int8 or int16, by
    assign-precision); h (and c) live in state buffers updated in place."""

    def recurrent(self, node: gs.Node) -> None:
        """One gru/lstm step over the call's frames; h (and c) updated in place."""
        x = node.inputs[0]
        plan = plan_recurrent(node, self.ctx, self.exp(x))
        if self.tensor_bits(x) != plan.fmt.x:
            raise AssertionError(f"{node_label(node)}: planned for int{plan.fmt.x} input, "
                                 f"lowered with {self.dtype(x)}")
        frames = static_shape(x)[0]
        names = ["h"] + (["c"] if node.op == "LSTM" else [])
        cells = [self.recurrent_state(node, 5 + i, name, plan) for i, name in enumerate(names)]
        for i, cell in enumerate(cells):  # Y_h / Y_c are the updated state itself
            if len(node.outputs) > 1 + i and node.outputs[1 + i].name:
                self.alias[node.outputs[1 + i].name] = cell
        readers = self.cell_readers(node.outputs[2], cells[1]) if len(node.outputs) > 2 else []
        if readers:
            raise RillError(
                f"{node_label(node)}: {', '.join(map(node_label, readers))} reads the cell state "
                f"Y_c, which Rill's LSTM keeps at its own precision ({plan.c_dtype} at "
                f"2^{plan.state['c'][2]}) for its next frame only; read Y_h (or Y) instead")
        scratch = f"{node.name}.scratch"
        n = plan.scratch_bytes // (plan.fmt.h // 8)
        self.buffers[scratch] = Buffer(scratch, (n,), plan.h_dtype, 0, "scratch")
        y = [self.buffer(node.outputs[0])] if node.outputs[0].name else []
        for b in y + cells[:1]:
            if self.buffers[b].dtype != plan.h_dtype:
                raise AssertionError(f"{node_label(node)}: '{b}' is {self.buffers[b].dtype}, "
                                     f"the plan's h {plan.h_dtype}")
        rows = plan.arrays["wx"].size // plan.params["input"]  # gates x hidden
        self.emit(node, plan.kind, [self.buffer(x)] + cells, y + cells + [scratch],
                  dict(plan.params, t=frames, has_y=int(bool(y))), plan.arrays,
                  macs=frames * rows * (plan.params["input"] + plan.params["hidden"]))

    def cell_readers(self, y_c: gs.Tensor, cell: str) -> list[gs.Node]:
        """The nodes that read an LSTM's Y_c, except an Identity into its state (the streaming
        cut's state output, aliased to the cell buffer, or a model state of the cell's type)."""
        def to_state(n: gs.Node) -> bool:
            out = n.outputs[0].name
            return n.op == "Identity" and (self.alias.get(out) == cell or
                                           self.dtypes.get(out) == self.buffers[cell].dtype)
        return [n for n in self.graph.nodes if y_c.name and not to_state(n)
                and any(i.name == y_c.name for i in n.inputs)]

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
