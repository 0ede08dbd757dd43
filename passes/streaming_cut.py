"""Cut the offline model into a chunk-by-chunk model with explicit state pairs (contract §2).

Every streamed tensor whose past frames some op needs gets one state holding the most frames any
of its readers needs: `Concat(state, x)` along time is the *window*, each reader takes its slice
of it (convs and pools with their time padding removed, delay lines, window heads), and
`Slice(window, -L:)` is the next state. The initial state is the readers' pad value, so the
first call sees what the offline model sees before its first frame.

Look-ahead ops emit their outputs late (a delay); the first frames of a delayed stream are
pre-roll, and before another window op reads them they are blanked to the pad value with
`MaskFrames` and a one-bit-per-frame "valid" delay line. Recurrent layers carry `h` (and `c`)
as state pairs.

A model that already has state pairs (`state` -> `stateN`, `h` -> `hn`; see
`compiler.state_pairs`) is a per-call model: it is kept as it is, its time-series input's frames
are the chunk, and its pairs become the streaming states (kind "model", zeros at first).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import onnx_graphsurgeon as gs

from compiler.context import CompileContext
from compiler.errors import RillError
from compiler.graph import const_value, node_label, static_shape, unique_name
from compiler.op_attrs import pad_spec, set_explicit_pads, slice_spec, window_attrs
from compiler.pass_manager import Pass
from compiler.rill_ops import RILL_DOMAIN
from compiler.shapes import infer_shapes
from compiler.state_pairs import resolve_state_pairs
from passes.lowering.geometry import ceil_padding
from passes.time_analysis import TimeAnalysis, TimeInfo, WindowUse, analyze_time

INT64_MAX = np.iinfo(np.int64).max


@dataclass
class StateSpec:
    input: str
    output: str
    shape: list[int]
    init: float
    tensor: str | None  # the data tensor whose past frames the state holds (None: own values)
    # "frames" | "mask" (valid-frame flags) | "recurrent" (h / c) | "model" (the model's own pair)
    kind: str = "frames"
    time_axis: int | None = None  # None for recurrent and model states

    def as_json(self) -> dict:
        return {"input": self.input, "output": self.output, "shape": self.shape, "init": self.init}


def state_specs(ctx_facts: dict) -> list[StateSpec]:
    return list(ctx_facts.get("streaming", {}).get("states", []))


def state_input_names(ctx_facts: dict) -> set[str]:
    return {s.input for s in state_specs(ctx_facts)}


def is_per_call_model(stream: dict | None) -> bool:
    """Whether the streaming facts describe a model that brought its own state pairs."""
    return bool(stream) and any(s.kind == "model" for s in stream["states"])


def time_series_input(graph: gs.Graph, states: set[str] = frozenset()) -> gs.Variable:
    """The one input that is not a constant or a state input."""
    inputs = [t for t in graph.inputs if not isinstance(t, gs.Constant) and t.name not in states]
    if len(inputs) != 1:
        names = ", ".join(t.name for t in inputs)
        raise RillError(f"the model has {len(inputs)} runtime inputs ({names}); Rill supports one "
                        "time-series input (make the others constants, or declare state inputs "
                        "with --state IN=OUT)")
    return inputs[0]


def default_time_axis(rank: int) -> int:
    """The time axis when the user names none: the last one of a conv net's [N, C, T] or
    [N, C, F, T]; axis 0 of a rank-2 input ([T, F]: a sequence of feature frames, as PyTorch
    RNNs and Linear layers take it unbatched, stored as it is, time-major) and of a rank-1
    input ([T]: one value per frame; a model over one feature vector [F] compiles with
    --offline, where the whole vector is one call)."""
    return rank - 1 if rank >= 3 else 0


def resolve_time_axis(graph: gs.Graph, requested: int | None,
                      states: set[str] = frozenset(), streamed: bool = True) -> int:
    """The time axis of the time-series input (`--time-axis`, else `default_time_axis`).
    A stream is one sequence: a rank >= 3 input whose time is not axis 0 has its batch on
    axis 0, which must be 1 unless the whole window is compiled (--offline)."""
    x = time_series_input(graph, states)
    shape = static_shape(x)
    rank = len(shape)
    if rank == 0:
        raise RillError(f"input '{x.name}' is a scalar; a time-series input needs a time axis")
    if requested is not None and not -rank <= requested < rank:
        raise RillError(f"--time-axis {requested} is not an axis of input '{x.name}' with shape "
                        f"{list(shape)} (use 0..{rank - 1}, or -{rank}..-1)")
    axis = default_time_axis(rank) if requested is None else requested % rank
    if streamed and rank >= 3 and axis > 0 and shape[0] != 1:
        raise RillError(f"input '{x.name}' has shape {list(shape)}: batch {shape[0]} on axis 0, "
                        f"time on axis {axis}; Rill streams one sequence at a time: export or "
                        "pin it with batch 1 (--input-shape), or compile the whole batch with "
                        "--offline")
    return axis


def analyze(ctx: CompileContext, streamed: bool) -> TimeAnalysis:
    """Time analysis of the current graph (state inputs hold frames of their tensors)."""
    graph = ctx.graph
    specs = state_specs(ctx.facts)
    states = {s.input for s in specs}
    axis = resolve_time_axis(graph, ctx.options.time_axis, states, not ctx.options.offline)
    seeds: dict[str, TimeInfo | None] = {time_series_input(graph, states).name:
                                         TimeInfo(axis, streamed)}
    for s in specs:
        seeds[s.input] = None if s.time_axis is None else TimeInfo(s.time_axis, streamed)
    model = [s for s in specs if s.kind == "model"]
    for _ in range(len(model) + 1):
        analysis = analyze_time(graph, seeds)
        # a model state is stored like its next value (e.g. time-major when it holds frames)
        found = {s.input: analysis.info.get(s.output) for s in model}
        found = {n: None if i is None else TimeInfo(i.axis, streamed) for n, i in found.items()}
        if all(seeds[n] == i for n, i in found.items()):
            break
        seeds.update(found)
    return analysis


def downsampling_factor(info: dict[str, TimeInfo]) -> int:
    """The lcm of the denominators of every streamed tensor's frame rate (contract §2)."""
    return math.lcm(1, *(i.rate.denominator for i in info.values() if i.streamed))


def legal_chunk(ctx: CompileContext, factor: int, frames: int, summary_output: bool) -> int:
    """The requested chunk (or the smallest legal one), checked against the time strides.

    A summary output (a window head or a reduction over the window) summarizes the offline
    window of `frames` frames, so its calls must tile that window exactly.
    """
    chunk = ctx.options.chunk or factor
    if chunk <= 0 or chunk % factor:
        legal = ", ".join(str(factor * i) for i in range(1, 5))
        raise RillError(f"CHUNK={chunk} does not fit the model's time strides (cumulative "
                        f"downsampling {factor}); legal values are multiples of {factor}: "
                        f"{legal}, ...")
    if summary_output and frames % chunk:
        legal = ", ".join(str(c) for c in range(factor, frames + 1, factor) if frames % c == 0)
        raise RillError(f"CHUNK={chunk} does not divide the model's window of {frames} frames, "
                        f"which its output summarizes; legal values: {legal or 'none'}")
    return chunk


class StreamingCut(Pass):
    name = "streaming-cut"
    requires = frozenset({"pads-folded", "chomp-folded", "activations-fused"})
    ensures = frozenset({"streaming"})

    def run(self, ctx: CompileContext) -> bool:
        pairs = resolve_state_pairs(ctx.graph, ctx.options.state_pairs)
        if pairs:
            keep_model_states(ctx, pairs)
            return False
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
        factor = downsampling_factor(analysis.info)
        chunk = legal_chunk(ctx, factor, frames_offline, summary_output=not per_frame)
        ctx.facts["offline_graph"] = graph.copy()
        ctx.facts["stream_time_info"] = analysis.info  # offline tensor names, streamed semantics
        cutter = Cutter(graph, analysis.info, chunk)
        states = cutter.cut(analysis)
        x.shape = [chunk if i == axis else d for i, d in enumerate(x.shape)]
        infer_shapes(graph)
        ctx.facts["fixed_exponents"] = cutter.fixed_exponents
        ctx.facts["streaming"] = {
            "time_axis": axis, "chunk": chunk,
            "latency_frames": out_info.delay if per_frame else 0,
            "output_time_axis": out_info.axis if per_frame else None,
            "frames_offline": frames_offline, "per_frame_output": per_frame,
            "downsampling": factor, "states": states}
        return True


def keep_model_states(ctx: CompileContext, pairs: list[tuple[str, str]]) -> None:
    """A model with its own state pairs runs as given, one call per time-series input."""
    graph = ctx.graph
    tensors = graph.tensors()
    states = [StateSpec(i, o, list(static_shape(tensors[i])), 0.0, None, "model", None)
              for i, o in pairs]
    names = {i for i, _ in pairs}
    x = time_series_input(graph, names)
    axis = resolve_time_axis(graph, ctx.options.time_axis, names)
    frames = static_shape(x)[axis]
    if ctx.options.chunk is not None and ctx.options.chunk != frames:
        raise RillError(
            f"--chunk {ctx.options.chunk}: the model has its own state pairs "
            f"({', '.join(f'{i}={o}' for i, o in pairs)}), so it is a per-call model and its "
            f"chunk is the {frames} frame(s) of input '{x.name}' along axis {axis}; leave "
            f"--chunk out (or pass --chunk {frames}), or re-export the model for another chunk")
    ctx.facts["streaming"] = {"states": states}  # analyze() seeds the state inputs from these
    info = analyze(ctx, streamed=False).info
    out = next(t for t in graph.outputs if t.name not in {o for _, o in pairs})
    out_info = info.get(out.name)
    ctx.facts["offline_graph"] = graph.copy()  # the float reference: the model itself, per call
    ctx.facts["streaming"] = {
        "time_axis": axis, "chunk": frames, "latency_frames": 0,
        "output_time_axis": out_info.axis if out_info else None,
        "frames_offline": frames, "per_frame_output": out_info is not None,
        "downsampling": 1, "states": states}


class Cutter:
    """Rewrites the graph in place: one state per (tensor, pad value), masks, recurrent states."""

    def __init__(self, graph: gs.Graph, info: dict[str, TimeInfo], chunk: int):
        self.graph, self.info, self.chunk = graph, info, chunk
        self.states: list[StateSpec] = []
        self.fixed_exponents: dict[str, int] = {}  # mask tensors hold 0/1 flags
        self.mask_lines: dict[tuple[int, int, int], tuple[gs.Variable, int]] = {}
        self.masks: dict[tuple, gs.Variable] = {}

    def per_call(self, info: TimeInfo) -> int:
        frames = Fraction(self.chunk) * info.rate
        assert frames.denominator == 1, "legal_chunk guarantees whole frames per call"
        return int(frames)

    def cut(self, analysis: TimeAnalysis) -> list[StateSpec]:
        groups: dict[tuple[str, float], list[WindowUse]] = {}
        tensors: dict[str, gs.Tensor] = {}
        for use in analysis.uses:
            t = use.node.inputs[use.index]
            tensors[t.name] = t
            groups.setdefault((t.name, use.init), []).append(use)
        self.plan_mask_lines(groups, tensors)
        for (name, init), uses in groups.items():
            self.cut_group(tensors[name], uses, init)
        for node in analysis.recurrent:
            self.cut_recurrent(node)
        for node in [n for n in self.graph.nodes if n.op == "Reshape"]:
            self.resize_reshape(node)
        return self.states

    def resize_reshape(self, node: gs.Node) -> None:
        """A Reshape's constant target shape names the offline frame count: use the call's."""
        info = self.info.get(node.outputs[0].name)
        target = const_value(node.inputs[1])
        if info is None or not info.streamed or target is None:
            return
        target = np.array(target, np.int64).reshape(-1)
        target[info.axis] = self.per_call(info)
        node.inputs[1] = self.const(f"{node.name}.call_shape", target)

    # -- helpers that add nodes ------------------------------------------------------------
    def const(self, base: str, values) -> gs.Constant:
        return gs.Constant(unique_name(self.graph, base), np.asarray(values))

    def add_node(self, op: str, name: str, inputs: list, attrs: dict | None = None,
                 out_name: str | None = None, domain: str | None = None) -> gs.Variable:
        out = gs.Variable(unique_name(self.graph, out_name or f"{name}.out"), dtype=np.float32)
        node = gs.Node(op, name=unique_name(self.graph, name), attrs=attrs or {}, inputs=inputs,
                       outputs=[out])
        if domain:
            node.domain = domain
        self.graph.nodes.append(node)
        return out

    def frames(self, t: gs.Tensor, axis: int, start: int, end: int, base: str,
               out: gs.Variable | None = None, name: str = "slice") -> gs.Variable:
        """Slice(t, start:end) along time, into `out` or a new tensor."""
        params = [self.const(f"{base}.{k}", np.array([v], np.int64))
                  for k, v in (("start", start), ("end", end), ("axis", axis))]
        if out is None:
            return self.add_node("Slice", f"{base}/{name}", [t] + params, out_name=f"{base}.frames")
        self.graph.nodes.append(gs.Node("Slice", name=unique_name(self.graph, f"{base}/{name}"),
                                        inputs=[t] + params, outputs=[out]))
        return out

    def state_pair(self, base: str, like: gs.Tensor, axis: int, frames: int, init: float,
                   kind: str, tensor: str | None) -> tuple[gs.Variable, gs.Variable]:
        """A new graph input/output pair holding `frames` frames shaped like `like`."""
        shape = [frames if i == axis else int(d) for i, d in enumerate(like.shape)]
        state_in = gs.Variable(unique_name(self.graph, f"{base}.state"), dtype=np.float32,
                               shape=shape)
        state_out = gs.Variable(unique_name(self.graph, f"{base}.state_next"), dtype=np.float32,
                                shape=shape)
        self.graph.inputs.append(state_in)
        self.graph.outputs.append(state_out)
        self.states.append(StateSpec(state_in.name, state_out.name, shape, init, tensor, kind,
                                     axis))
        return state_in, state_out

    def window(self, src: gs.Tensor, like: gs.Tensor, axis: int, frames: int, init: float,
               kind: str, tensor: str | None, base: str) -> gs.Tensor:
        """Concat(state, src) along time, with Slice(window, -frames:) as the next state."""
        state_in, state_out = self.state_pair(base, like, axis, frames, init, kind, tensor)
        window = self.add_node("Concat", f"{base}/state_concat", [state_in, src], {"axis": axis},
                               out_name=f"{base}.window")
        self.frames(window, axis, -frames, INT64_MAX, f"{base}.state", state_out, "state_update")
        return window

    # -- masks -----------------------------------------------------------------------------
    def plan_mask_lines(self, groups, tensors) -> None:
        """One "valid frames" delay line per (frames per call, rank, axis), as long as the
        longest delay it serves."""
        for (name, _), uses in groups.items():
            info = self.info[name]
            if info.delay and any(u.reads_padding for u in uses):
                key = (self.per_call(info), len(tensors[name].shape), info.axis)
                line = self.mask_lines.get(key)
                self.mask_lines[key] = (None, max(info.delay, line[1] if line else 0))

    def mask_line(self, key: tuple[int, int, int]) -> tuple[gs.Variable, int]:
        window, length = self.mask_lines[key]
        if window is None:
            c, rank, axis = key
            like = gs.Variable("mask", shape=[c if i == axis else 1 for i in range(rank)])
            ones = self.const("valid.new", np.ones(like.shape, np.float32))
            window = self.window(ones, like, axis, length, 0.0, "mask", None, "valid")
            self.fixed_exponents.update({n: 0 for n in (window.name, self.states[-1].input,
                                                        self.states[-1].output)})
            self.mask_lines[key] = (window, length)
        return window, length

    def masked(self, t: gs.Tensor, info: TimeInfo, init: float) -> gs.Tensor:
        """`t` with its first `delay` frames after the initial state replaced by `init`."""
        c = self.per_call(info)
        key = (c, len(t.shape), info.axis)
        if (t.name, init) not in self.masks:
            line, length = self.mask_line(key)
            flags = self.frames(line, info.axis, length - info.delay, length - info.delay + c,
                                f"valid.d{info.delay}")
            self.fixed_exponents[flags.name] = 0
            self.masks[(t.name, init)] = self.add_node(
                "MaskFrames", f"{t.name}/mask", [t, flags], {"value": float(init)},
                out_name=f"{t.name}.masked", domain=RILL_DOMAIN)
        return self.masks[(t.name, init)]

    # -- one state per streamed tensor -----------------------------------------------------
    def past_frames(self, use: WindowUse, per_call: int) -> int:
        if use.kind == "window-head":
            return max(use.window - per_call, 0)
        return use.frames

    def cut_group(self, t: gs.Tensor, uses: list[WindowUse], init: float) -> None:
        info = self.info[t.name]
        axis, c = info.axis, self.per_call(info)
        longest = max(self.past_frames(u, c) for u in uses)
        src = self.masked(t, info, init) if info.delay and any(u.reads_padding for u in uses) \
            else t
        window = src if longest == 0 else \
            self.window(src, t, axis, longest, init, "frames", t.name, t.name)
        total = longest + c
        for use in uses:
            node = use.node
            if use.kind == "window-op":
                start = longest - use.frames + use.skip
                strip_time_pads(node, axis)
                node.inputs[0] = self.reader(window, axis, start, total, node)
            elif use.kind == "upsample":
                self.crop_upsampled(node, axis, use.frames * use.stride, c * use.stride)
                node.inputs[0] = self.reader(window, axis, longest - use.frames, total, node)
            elif use.kind == "delay":
                start = longest - use.frames
                node.inputs[use.index] = self.frames(window, axis, start, start + c,
                                                     f"{node.name}/delay{use.index}")
            elif use.kind == "trim":  # the frames it drops never reach the stream
                open_slice_end(self.graph, node, axis)
            elif use.kind == "pad":  # the padded frames come out of the state first
                start = longest - use.frames
                node.inputs[0] = self.frames(window, axis, start, start + c, f"{node.name}/pad")
                strip_pad_along(self.graph, node, axis)
            elif node.op in ("Slice", "Gather"):
                index_from_end(self.graph, node, axis, use.window)
                node.inputs[0] = window
            else:  # a reduction over the most recent `window` frames
                node.inputs[0] = self.reader(window, axis, total - use.window, total, node)

    def reader(self, window: gs.Tensor, axis: int, start: int, total: int,
               node: gs.Node) -> gs.Tensor:
        return window if start == 0 else self.frames(window, axis, start, total,
                                                     f"{node.name}/window")

    def crop_upsampled(self, node: gs.Node, axis: int, start: int, count: int) -> None:
        """ConvTranspose over the window emits every output it touches; keep this call's."""
        strip_time_pads(node, axis)
        out_pad = node.attrs.pop("output_padding", None)
        if out_pad is not None and len(out_pad) > 1:  # 2-D: frequency keeps its padding
            node.attrs["output_padding"] = [0 if i == axis - 2 else int(v)
                                            for i, v in enumerate(out_pad)]
        node.attrs.pop("output_shape", None)
        out = node.outputs[0]
        full = gs.Variable(unique_name(self.graph, f"{out.name}.full"), dtype=np.float32)
        node.outputs[0] = full
        self.frames(full, axis, start, start + count, f"{node.name}.crop", out, "crop")

    # -- recurrent layers ------------------------------------------------------------------
    def cut_recurrent(self, node: gs.Node) -> None:
        """initial_h (and initial_c) become state inputs, Y_h (and Y_c) the next state."""
        slots = [(5, 1)] + ([(6, 2)] if node.op == "LSTM" else [])
        hidden = int(node.attrs["hidden_size"])
        while len(node.inputs) < max(i for i, _ in slots) + 1:
            node.inputs.append(gs.Variable.empty())
        while len(node.outputs) < max(o for _, o in slots) + 1:
            node.outputs.append(gs.Variable.empty())
        for slot, out_slot in slots:
            init = self.recurrent_init(node, slot)
            like = gs.Variable("h", shape=[1, 1, hidden])
            state_in, state_out = self.state_pair(f"{node.name}.{'hc'[slot - 5]}", like, 0, 1,
                                                  init, "recurrent", None)
            self.states[-1].time_axis = None
            node.inputs[slot] = state_in
            produced = node.outputs[out_slot]
            if produced.name:
                self.graph.nodes.append(gs.Node("Identity", name=unique_name(
                    self.graph, f"{node.name}/state_out"), inputs=[produced], outputs=[state_out]))
            else:
                node.outputs[out_slot] = state_out

    @staticmethod
    def recurrent_init(node: gs.Node, slot: int) -> float:
        t = node.inputs[slot]
        if not t.name:
            return 0.0
        value = const_value(t)
        if value is None or np.unique(value).size > 1:
            raise RillError(f"{node_label(node)}: the initial state must be a constant with one "
                            "value everywhere (e.g. zeros) to stream")
        return float(np.asarray(value).reshape(-1)[0])


def strip_time_pads(node: gs.Node, axis: int) -> None:
    """Remove a window op's padding along time (the state holds those frames). A ceil_mode
    pool becomes a floor one: a stream has no last window along time, and the other axes get
    the right padding that keeps their ceil_mode output length."""
    a = window_attrs(node)
    pads = a["pads"]
    rank = len(pads) // 2
    if int(node.attrs.get("ceil_mode", 0)):
        x, y = static_shape(node.inputs[0]), static_shape(node.outputs[0])
        for i in range(rank):
            if i != axis - 2:
                pads[i + rank] += ceil_padding(node, x[i + 2], y[i + 2], a["kernel"][i],
                                               a["strides"][i], a["dilations"][i], pads[i],
                                               pads[i + rank])
        node.attrs["ceil_mode"] = 0
    pads[axis - 2] = pads[axis - 2 + rank] = 0
    set_explicit_pads(node, pads)


def open_slice_end(graph: gs.Graph, node: gs.Node, axis: int) -> None:
    """A Slice that keeps every frame of a call along `axis` (its end was an offline count)."""
    starts, ends, axes, steps = slice_spec(node)
    ends[axes.index(axis)] = INT64_MAX
    set_slice_params(graph, node, [starts, ends, axes, steps])


def strip_pad_along(graph: gs.Graph, node: gs.Node, axis: int) -> None:
    """Remove a Pad's padding along `axis` (every opset's form; pads for all axes after)."""
    pads, _, _ = pad_spec(node)
    rank = len(pads) // 2
    pads[axis] = pads[axis + rank] = 0
    if len(node.inputs) == 1:  # opset < 11: attributes
        node.attrs["pads"] = pads
        return
    node.inputs[1] = gs.Constant(unique_name(graph, f"{node.name}/pads"), np.array(pads, np.int64))
    while len(node.inputs) > 3:  # the `axes` input: the pads now cover every axis
        del node.inputs[-1]


def index_from_end(graph: gs.Graph, node: gs.Node, axis: int, frames: int) -> None:
    """Make a window head count from the end, so it reads the newest frames of any length."""
    if node.op == "Gather":
        index = np.asarray(node.inputs[1].values if isinstance(node.inputs[1], gs.Constant) else -1)
        node.inputs[1] = gs.Constant(unique_name(graph, f"{node.name}/last"),
                                     np.full(index.shape, -1, np.int64))
        return
    starts, ends, axes, steps = slice_spec(node)
    i = axes.index(axis)
    starts[i], ends[i] = -frames, INT64_MAX
    set_slice_params(graph, node, [starts, ends, axes, steps])


def set_slice_params(graph: gs.Graph, node: gs.Node, params: list[list[int]]) -> None:
    """Give a Slice of any opset constant starts, ends, axes and steps inputs."""
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
