"""Run the integer program on float inputs, the way the chip will (quantize, stream, dequantize)."""
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
    inputs: np.ndarray  # [calls, input_elems] int8, what `<name>_run` receives
    outputs: np.ndarray  # [calls, output_elems] int8
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
    x_buf = program.buffers[program.inputs[0]]
    e_in, in_bits = x_buf.exp, np.dtype(x_buf.dtype).itemsize * 8
    e_out = program.buffers[program.outputs[0]].exp
    q_chunks = [quantize(to_physical(c, layout.input_info), exp=e_in, mode=program.rounding,
                         out_bits=in_bits)
                for c in chunks(x.astype(np.float32), layout.time_axis, layout.chunk)]
    q_out = run_stream(program, q_chunks, trace)
    per_call = [from_physical(dequantize(q, exp=e_out), layout.output_shape, layout.output_info)
                for q in q_out]
    return IntegerRun(np.stack(q_chunks), np.stack(q_out),
                      stitch(per_call, layout.per_frame,
                             layout.output_info.axis if layout.per_frame else 0), per_call)
