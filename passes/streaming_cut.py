"""Cut the offline model into a chunk-by-chunk model with explicit state pairs (contract §2).

Every op that reads past frames gets a graph input holding the frames it needs from earlier calls
and a graph output with the updated frames: `Concat(state, x)` along time feeds the op with its
time padding removed, and `Slice(concat, -S:)` is the next state. The initial state is the op's
pad value, so the first call sees what the offline model sees before its first frame.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx_graphsurgeon as gs

from compiler.context import CompileContext
from compiler.errors import RillError
from compiler.graph import static_shape, unique_name
from compiler.op_attrs import set_explicit_pads, slice_spec, window_attrs
from compiler.pass_manager import Pass
from compiler.shapes import infer_shapes
from passes.time_analysis import Temporal, TimeAnalysis, analyze_time

INT64_MAX = np.iinfo(np.int64).max


@dataclass
class StateSpec:
    input: str
    output: str
    shape: list[int]
    init: float
    tensor: str  # the data tensor whose past frames the state holds

    def as_json(self) -> dict:
        return {"input": self.input, "output": self.output, "shape": self.shape, "init": self.init}


def state_input_names(ctx_facts: dict) -> set[str]:
    return {s.input for s in ctx_facts.get("streaming", {}).get("states", [])}


def time_series_input(graph: gs.Graph, states: set[str] = frozenset()) -> gs.Variable:
    """The one input that is not a constant or a state input."""
    inputs = [t for t in graph.inputs if not isinstance(t, gs.Constant) and t.name not in states]
    if len(inputs) != 1:
        names = ", ".join(t.name for t in inputs)
        raise RillError(f"the model has {len(inputs)} runtime inputs ({names}); Rill supports one "
                        "time-series input (make the others constants)")
    return inputs[0]


def resolve_time_axis(graph: gs.Graph, requested: int | None,
                      states: set[str] = frozenset()) -> int:
    x = time_series_input(graph, states)
    rank = len(static_shape(x))
    axis = rank - 1 if requested is None else requested % rank
    if rank < 3 or axis < 2:
        raise RillError(f"input '{x.name}' has shape {list(x.shape)}: expected [N, C, T] or "
                        "[N, C, F, T] with time on a spatial axis")
    if static_shape(x)[0] != 1:
        raise RillError(f"input '{x.name}' has batch {x.shape[0]}; Rill streams one sequence at a "
                        "time: export or pin it with batch 1 (--input-shape)")
    return axis


def analyze(ctx: CompileContext, streamed: bool) -> TimeAnalysis:
    """Time analysis of the current graph (state inputs, if any, hold frames of the signal)."""
    graph = ctx.graph
    states = state_input_names(ctx.facts)
    axis = resolve_time_axis(graph, ctx.options.time_axis, states)
    return analyze_time(graph, [time_series_input(graph, states).name] + sorted(states), axis,
                        streamed)


def legal_chunk(ctx: CompileContext, frames: int, summary_output: bool) -> int:
    """The requested chunk, checked against the time downsampling (stride 1 everywhere for now).

    A summary output (a window head or a reduction over the window) summarizes the offline
    window of `frames` frames, so its calls must tile that window exactly.
    """
    factor = 1  # lcm of cumulative downsampling factors; strided time ops are rejected earlier
    chunk = ctx.options.chunk or factor
    if chunk <= 0 or chunk % factor:
        legal = ", ".join(str(factor * i) for i in range(1, 5))
        raise RillError(f"CHUNK={chunk} does not fit the model's time strides; legal values are "
                        f"multiples of {factor}: {legal}, ...")
    if summary_output and frames % chunk:
        legal = ", ".join(str(c) for c in range(factor, frames + 1, factor) if frames % c == 0)
        raise RillError(f"CHUNK={chunk} does not divide the model's window of {frames} frames, "
                        f"which its output summarizes; legal values: {legal}")
    return chunk


class StreamingCut(Pass):
    name = "streaming-cut"
    requires = frozenset({"pads-folded", "chomp-folded", "activations-fused"})
    ensures = frozenset({"streaming"})

    def run(self, ctx: CompileContext) -> bool:
        analysis = analyze(ctx, streamed=True)
        if analysis.problems:
            raise RillError("the model cannot be streamed chunk by chunk (use --offline to compile "
                            "the whole-window model):", analysis.problems)
        graph = ctx.graph
        x = time_series_input(graph)
        axis = resolve_time_axis(graph, ctx.options.time_axis)
        frames_offline = static_shape(x)[axis]
        out_info = analysis.info.get(graph.outputs[0].name)
        per_frame = bool(out_info and out_info.streamed)
        chunk = legal_chunk(ctx, frames_offline, summary_output=not per_frame)
        ctx.facts["offline_graph"] = graph.copy()
        ctx.facts["stream_time_info"] = analysis.info  # offline tensor names, streamed semantics
        # every streamed tensor carries `chunk` frames per call (no time strides yet)
        states = [self._cut(graph, t, axis, chunk) for t in analysis.temporal]
        states = [s for s in states if s is not None]
        x.shape = [chunk if i == axis else d for i, d in enumerate(x.shape)]
        infer_shapes(graph)
        latency = out_info.delay if per_frame else 0
        ctx.facts["streaming"] = {"time_axis": axis, "chunk": chunk, "latency_frames": latency,
                                  "frames_offline": frames_offline,
                                  "per_frame_output": per_frame,
                                  "states": states}
        return True

    def _cut(self, graph: gs.Graph, temporal: Temporal, axis: int, chunk: int) -> StateSpec | None:
        node = temporal.node
        x = node.inputs[0]
        if temporal.kind == "window-head":
            self._index_from_end(graph, node, axis, temporal.frames)
        frames_in = chunk
        keep = temporal.frames if temporal.kind == "window-op" else max(temporal.frames - frames_in, 0)
        if keep == 0:
            return None
        base = x.name
        shape = [keep if i == axis else int(d) for i, d in enumerate(x.shape)]
        state_in = gs.Variable(unique_name(graph, f"{base}.state"), dtype=np.float32, shape=shape)
        state_out = gs.Variable(unique_name(graph, f"{base}.state_next"), dtype=np.float32, shape=shape)
        window = gs.Variable(unique_name(graph, f"{base}.window"), dtype=np.float32)
        graph.nodes.append(gs.Node("Concat", name=unique_name(graph, f"{node.name}/state_concat"),
                                   attrs={"axis": axis}, inputs=[state_in, x], outputs=[window]))
        tail = [gs.Constant(unique_name(graph, f"{base}.state_{k}"), np.array([v], np.int64))
                for k, v in (("start", -keep), ("end", INT64_MAX), ("axis", axis))]
        graph.nodes.append(gs.Node("Slice", name=unique_name(graph, f"{node.name}/state_update"),
                                   inputs=[window] + tail, outputs=[state_out]))
        if temporal.kind == "window-op":
            pads = window_attrs(node)["pads"]
            rank = len(pads) // 2
            pads[axis - 2] = pads[axis - 2 + rank] = 0
            set_explicit_pads(node, pads)
        node.inputs[0] = window
        graph.inputs.append(state_in)
        graph.outputs.append(state_out)
        return StateSpec(state_in.name, state_out.name, shape, 0.0, x.name)


    @staticmethod
    def _index_from_end(graph: gs.Graph, node: gs.Node, axis: int, frames: int) -> None:
        """Make a window head count from the end, so it reads the newest frames of any length."""
        if node.op == "Gather":
            index = np.asarray(node.inputs[1].values if isinstance(node.inputs[1], gs.Constant)
                               else -1)
            node.inputs[1] = gs.Constant(unique_name(graph, f"{node.name}/last"),
                                         np.full(index.shape, -1, np.int64))
            return
        starts, ends, axes, steps = slice_spec(node)
        i = axes.index(axis)
        starts[i], ends[i] = -frames, INT64_MAX
        params = [starts, ends, axes, steps]
        while len(node.inputs) > 1:
            del node.inputs[-1]
        for k, values in zip(("starts", "ends", "axes", "steps"), params):
            node.inputs.append(gs.Constant(unique_name(graph, f"{node.name}/{k}"),
                                           np.array(values, np.int64)))
        node.attrs.clear()


def streaming_metadata(facts: dict) -> dict:
    """The `rill.streaming` metadata JSON of contract §2."""
    return {"time_axis": facts["time_axis"], "chunk": facts["chunk"],
            "latency_frames": facts["latency_frames"],
            "states": [s.as_json() for s in facts["states"]]}
