"""Run a lowered program on float inputs, the way the chip will: quantize, stream, dequantize
(a quantized program) or stream the floats as they are (a float32 program)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from compiler.graph import static_shape
from compiler.streams import chunks, from_physical, stitch, to_physical
from passes.time_analysis import TimeInfo
from runtime.ir import Program
from runtime.reference.interpreter import run_stream
from runtime.reference.kernels import dequantize, quantize


@dataclass
class IntegerRun:
    inputs: np.ndarray  # [calls, input_elems] int8/int16/float32, what `<name>_run` receives
    outputs: np.ndarray  # [calls, output_elems] of the output buffer's type
    result: np.ndarray  # float, ONNX layout, stitched like the offline output
    calls: list[np.ndarray]  # float, ONNX layout: the output of every call


@dataclass
class StreamLayout:
    """How the model's input and output map to call buffers."""

    time_axis: int
    chunk: int
    per_frame: bool
    input_info: TimeInfo | None
    output_info: TimeInfo | None
    output_shape: tuple[int, ...]  # ONNX shape of one call's output


def stream_layout(ctx) -> StreamLayout:
    """The lowered program's stream layout, from the compile context's facts."""
    facts, graph = ctx.facts, ctx.graph
    info = facts["time_info"]
    x = graph.tensors()[facts["program"].inputs[0]]
    out = facts["program"].outputs[0]
    stream = facts.get("streaming")
    axis = facts["time_axis"]
    return StreamLayout(axis, static_shape(x)[axis], bool(stream and stream["per_frame_output"]),
                        info.get(x.name), info.get(out), static_shape(graph.tensors()[out]))


def run_integer(program: Program, layout: StreamLayout, x: np.ndarray,
                trace: Callable[[dict[str, np.ndarray]], None] | None = None) -> IntegerRun:
    """Stream `x` through the program with the reference kernels (integer kernels bit-exact
    with C; float32 kernels within the float tolerance) from the initial state."""
    x_buf = program.buffers[program.inputs[0]]
    out_buf = program.buffers[program.outputs[0]]
    physical = [to_physical(c, layout.input_info)
                for c in chunks(x.astype(np.float32), layout.time_axis, layout.chunk)]
    if x_buf.is_float:
        q_chunks = [c.astype(np.float32) for c in physical]
    else:
        q_chunks = [quantize(c, exp=x_buf.exp, mode=program.rounding,
                             out_bits=np.dtype(x_buf.dtype).itemsize * 8) for c in physical]
    q_out = run_stream(program, q_chunks, trace)
    per_call = [from_physical(q if out_buf.is_float else dequantize(q, exp=out_buf.exp),
                              layout.output_shape, layout.output_info)
                for q in q_out]
    return IntegerRun(np.stack(q_chunks), np.stack(q_out),
                      stitch(per_call, layout.per_frame,
                             layout.output_info.axis if layout.per_frame else 0), per_call)
