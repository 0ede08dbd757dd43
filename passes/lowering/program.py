"""The lowering driver both precisions share: state buffers first, then the time-series input,
every node in order, the model's own state updates, and the outputs, into a `Program`."""
from __future__ import annotations

from compiler.context import CompileContext
from passes.lowering.base import LoweringBase
from passes.lowering.layouts import choose_layouts
from passes.streaming_cut import analyze, resolve_time_axis, state_input_names, state_specs, \
    time_series_input
from passes.time_analysis import TimeInfo
from runtime.ir import Buffer, Program, StatePair, Step


def lower_graph(ctx: CompileContext, low: LoweringBase) -> Program:
    """Lower `ctx.graph` with `low` (an integer or float32 lowering); sets facts `program`,
    `time_info` and `time_axis`."""
    graph = ctx.graph
    states = []
    for s in state_specs(ctx.facts):
        if s.kind == "model":  # the model's own pair: its output gets its own buffer
            low.tie_type(s.output, s.input)
        else:
            low.info[s.output] = low.info.get(s.input)
            low.alias[s.output] = s.input
        state_in = graph.tensors()[s.input]
        low.buffer(state_in, "state")
        states.append(StatePair(s.input, s.input, s.output, low.constant(s.init, state_in)))
    x = time_series_input(graph, state_input_names(ctx.facts))
    low.buffer(x, "input")
    outputs = [o for o in graph.outputs if all(o.name != s.onnx_output for s in states)]
    low.protected = {o.name for o in outputs}
    for node in graph.nodes:
        low.lower(node)
    for s in state_specs(ctx.facts):
        if s.kind == "model":
            low.update_model_state(graph.tensors()[s.input], graph.tensors()[s.output])
    for o in outputs:
        output_buffer(low, o)
    end = len(low.steps)
    program = Program(low.buffers, low.steps + low.final_steps, [x.name],
                      [o.name for o in outputs], states, ctx.options.target.rounding)
    # views or copies, windows in <name>_t or the arena: whichever needs the least RAM
    program = choose_layouts(program, low.views, end)
    ctx.facts["program"] = program
    ctx.facts["time_info"] = low.info
    ctx.facts["time_axis"] = resolve_time_axis(graph, ctx.options.time_axis,
                                               state_input_names(ctx.facts),
                                               streamed=not ctx.options.offline)
    return program


def output_buffer(low: LoweringBase, o) -> None:
    """Mark the buffer of graph output `o` as the output. A tensor that is another buffer
    (a GRU/LSTM's Y_h or Y_c is the h/c state or cell it updates) is copied into a buffer of
    its own at the end of the call: the state stays in `<name>_t`, the output in `out`."""
    name = low.buffer(o)
    if name == o.name:
        low.buffers[name].role = "output"
        return
    src = low.buffers[name]
    low.buffers[o.name] = Buffer(o.name, src.shape, src.dtype, src.exp, "output")
    low.steps.append(Step("copy", [name], [o.name], dict(src_offset=0, dst_offset=0,
                                                         count=src.size), name=o.name))


def stored_time_info(ctx: CompileContext) -> dict[str, TimeInfo]:
    """Where time is in every tensor, for storage: the cut graph's own analysis, overridden by
    the offline analysis for the tensors both graphs share (a 1-frame chunk makes the time axis
    of a reshape ambiguous; the offline shapes are not)."""
    info = dict(analyze(ctx, streamed=False).info)
    info.update({n: TimeInfo(i.axis, streamed=False)
                 for n, i in ctx.facts.get("stream_time_info", {}).items()})
    return info
