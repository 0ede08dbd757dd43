"""Lower the quantized float graph to the integer `Program` the reference and C both execute.

Each ONNX node becomes zero or more kernel steps over physical buffers (time-major for tensors
that carry time). Weights are quantized per output channel here, biases at e_in + e_w, and every
requantization shift is fixed at compile time.
"""
from __future__ import annotations

import onnx_graphsurgeon as gs

from compiler.context import CompileContext
from compiler.errors import RillError
from compiler.graph import node_label
from compiler.pass_manager import Pass
from passes.lowering.base import LoweringBase
from passes.lowering.elementwise import ElementwiseOps
from passes.lowering.movement import MovementOps
from passes.lowering.recurrent import RecurrentOps
from passes.lowering.weighted import WeightedOps
from passes.streaming_cut import analyze, resolve_time_axis, state_input_names, state_specs, \
    time_series_input
from passes.tables import TABLE_OPS
from passes.time_analysis import TimeInfo
from runtime.ir import Program, StatePair


class Lowering(WeightedOps, ElementwiseOps, MovementOps, RecurrentOps, LoweringBase):
    """Builds the program node by node; one method per ONNX op family (passes/lowering/)."""

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
            raise RillError(f"{node_label(node)}: no kernel for {op} yet")
        method(node)


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
                if s.input in low.dtypes:
                    low.dtypes[s.output] = low.dtypes[s.input]
            else:
                low.info[s.output] = low.info.get(s.input)
                low.alias[s.output] = s.input
            state_in = graph.tensors()[s.input]
            low.buffer(state_in, "state")
            states.append(StatePair(s.input, s.input, s.output,
                                    low.quantize_scalar(s.init, state_in)))
        x = time_series_input(graph, state_input_names(ctx.facts))
        low.buffer(x, "input")
        for node in graph.nodes:
            low.lower(node)
        ctx.facts["requantizations"] = low.requantizations
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
