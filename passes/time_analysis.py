"""Which tensors carry the time axis, where it is, and how far behind the input they run.

The streaming-cut uses this to decide where state is needed; lowering uses it to store
time-carrying tensors time-major. A tensor is *streamed* when its frames arrive call by call,
*windowed* when it holds a fixed set of frames (e.g. after `x[..., -N:]`, or every tensor of an
offline compile), and has no `TimeInfo` when the time axis is gone (after Flatten, Gemm, ...).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import onnx_graphsurgeon as gs

from compiler.graph import const_value, node_label, static_shape
from compiler.op_attrs import normalized_slice, slice_spec, window_attrs

FRAME_LOCAL_UNARY = frozenset({
    "Relu", "LeakyRelu", "PRelu", "Sigmoid", "HardSigmoid", "Tanh", "Silu", "HardSwish", "Gelu",
    "Clip", "Exp", "Sqrt", "Neg", "Abs", "Softplus", "Elu", "Erf", "Identity", "Cast",
})
ELEMENTWISE_BINARY = frozenset({"Add", "Sub", "Mul", "Div", "Max", "Min", "Pow"})
WINDOW_OPS = frozenset({"Conv", "FusedConv", "AveragePool"})


@dataclass(frozen=True)
class TimeInfo:
    axis: int
    streamed: bool
    delay: int = 0  # stream frame j holds offline frame j - delay (streamed tensors)


@dataclass
class Temporal:
    """A node that needs frames from earlier calls, and how many."""

    node: gs.Node
    kind: str  # "window-op" (conv/pool along time) | "window-head" (keep the last N frames)
    frames: int  # frames of the input it needs beyond the current call (S for ops, N for heads)


@dataclass
class TimeAnalysis:
    info: dict[str, TimeInfo]
    temporal: list[Temporal]
    problems: list[str]


def _time_window(node: gs.Node, axis: int) -> tuple[int, int, int, int, int]:
    """(span S = dilation*(k-1), pad_l, pad_r, stride, dilation) along the time axis."""
    a = window_attrs(node)
    rank = len(a["kernel"])
    i = axis - 2
    k, d = a["kernel"][i], a["dilations"][i]
    return d * (k - 1), a["pads"][i], a["pads"][rank + i], a["strides"][i], d


def _broadcast_ok(t: gs.Tensor, out_rank: int, axis: int) -> bool:
    """A non-time operand of an elementwise op must not vary along time."""
    shape = static_shape(t)
    if shape is None:
        return False
    pos = axis - (out_rank - len(shape))
    return pos < 0 or shape[pos] == 1


def _unary(node, ins, problems):
    return ins[0]


def _binary(node: gs.Node, ins: list[TimeInfo | None], problems: list[str]):
    timed = [i for i in ins if i is not None]
    first = timed[0]
    if any(i != first for i in timed):
        delays = sorted({i.delay for i in timed})
        problems.append(f"{node_label(node)}: inputs arrive with different delays {delays} "
                        "(look-ahead on one branch only); delay alignment is not supported yet")
        return None
    out_rank = len(static_shape(node.outputs[0]) or [])
    for t, i in zip(node.inputs, ins):
        if i is None and not _broadcast_ok(t, out_rank, first.axis):
            problems.append(f"{node_label(node)}: operand '{t.name}' varies along time but is not "
                            "part of the streamed signal")
            return None
    return first


def _window_op(node: gs.Node, ins, problems, temporal: list[Temporal]):
    info = ins[0]
    if any(i is not None for i in ins[1:]):
        problems.append(f"{node_label(node)}: weights that depend on the input are not supported")
        return None
    rank = len(static_shape(node.inputs[0]) or [])
    if info.axis != rank - 1:
        problems.append(f"{node_label(node)}: time must be the last axis of a "
                        f"{node.op} input (it is axis {info.axis})")
        return None
    if not info.streamed:
        return info
    span, pad_l, pad_r, stride, _ = _time_window(node, info.axis)
    if stride != 1:
        problems.append(f"{node_label(node)}: stride {stride} along time (downsampling) is not "
                        "supported by the streaming-cut yet; compile with --offline")
        return None
    if node.op == "AveragePool" and (pad_l or pad_r) and not int(node.attrs.get("count_include_pad", 0)):
        problems.append(f"{node_label(node)}: AveragePool with count_include_pad=0 over padded "
                        "time cannot be streamed yet")
        return None
    if pad_l > span:
        problems.append(f"{node_label(node)}: left padding {pad_l} exceeds the window span {span}")
        return None
    if span and info.delay:
        problems.append(f"{node_label(node)}: a temporal op after a look-ahead (delayed) input is "
                        "not supported yet")
        return None
    if span:
        temporal.append(Temporal(node, "window-op", span))
    return replace(info, delay=info.delay + span - pad_l)


def _slice(node: gs.Node, ins, problems, temporal: list[Temporal]):
    info = ins[0]
    spec = slice_spec(node)
    if spec is None:
        problems.append(f"{node_label(node)}: Slice parameters are not constant")
        return None
    starts, ends, axes, steps = spec
    if info.axis not in axes:
        return info
    if not info.streamed:
        return info
    i = axes.index(info.axis)
    length = static_shape(node.inputs[0])[info.axis]
    s, e, step = normalized_slice(starts[i], ends[i], steps[i], length)
    if step != 1 or e != length:
        problems.append(f"{node_label(node)}: this Slice along time keeps frames other than the "
                        "most recent ones (only x[..., -N:] can be streamed)")
        return None
    if info.delay:
        problems.append(f"{node_label(node)}: a window head after a look-ahead is not supported yet")
        return None
    temporal.append(Temporal(node, "window-head", e - s))
    return TimeInfo(info.axis, streamed=False)


def _gather(node: gs.Node, ins, problems, temporal: list[Temporal]):
    """`x[..., -1]` (Gather of the last frame) is a one-frame window head."""
    info = ins[0]
    if ins[1] is not None:
        problems.append(f"{node_label(node)}: Gather indices that depend on the input")
        return None
    rank = len(static_shape(node.inputs[0]) or [])
    axis = int(node.attrs.get("axis", 0)) % rank
    if axis != info.axis:
        return info if axis > info.axis or np.asarray(const_value(node.inputs[1])).ndim == 1 \
            else replace(info, axis=info.axis - 1)
    index = np.asarray(const_value(node.inputs[1]))
    length = static_shape(node.inputs[0])[axis]
    if index.size != 1 or int(index.reshape(-1)[0]) % length != length - 1:
        if info.streamed:
            problems.append(f"{node_label(node)}: this Gather along time picks frames other than "
                            "the most recent one")
        return None
    if info.streamed:
        temporal.append(Temporal(node, "window-head", 1))
    return TimeInfo(info.axis, streamed=False) if index.ndim == 1 else None


def _drops_time(node, ins, problems):
    if any(i is not None and i.streamed for i in ins):
        problems.append(f"{node_label(node)}: {node.op} on a streamed tensor mixes or moves the time "
                        "axis, which cannot be cut into chunks")
    return None


def _concat(node: gs.Node, ins, problems):
    timed = [i for i in ins if i is not None]
    axis = int(node.attrs.get("axis", 0)) % len(static_shape(node.outputs[0]) or [1])
    if any(i != timed[0] for i in timed) or len(timed) != len(ins):
        problems.append(f"{node_label(node)}: concatenates tensors with different time behaviour")
        return None
    if axis == timed[0].axis and timed[0].streamed:
        problems.append(f"{node_label(node)}: Concat along the streamed time axis is not supported")
        return None
    return timed[0]


def analyze_time(graph: gs.Graph, input_names: list[str], time_axis: int,
                 streamed: bool) -> TimeAnalysis:
    """Propagate time from the named inputs (the signal and any state inputs) through `graph`."""
    info: dict[str, TimeInfo] = {n: TimeInfo(time_axis, streamed) for n in input_names}
    temporal: list[Temporal] = []
    problems: list[str] = []
    for node in graph.nodes:
        ins = [info.get(t.name) if t.name and const_value(t) is None else None for t in node.inputs]
        if all(i is None for i in ins):
            continue
        reported = len(problems)
        out = _rule(node, ins, problems, temporal)
        if out is None and len(problems) > reported:
            # keep following the signal so every offending node downstream is reported too
            out = next(i for i in ins if i is not None)
        for t in node.outputs[:1]:
            if out is not None:
                info[t.name] = out
    return TimeAnalysis(info, temporal, problems)


def _rule(node, ins, problems, temporal):
    op = node.op
    if op in FRAME_LOCAL_UNARY:
        return _unary(node, ins, problems)
    if op in ELEMENTWISE_BINARY:
        return _binary(node, ins, problems)
    if op in WINDOW_OPS:
        return _window_op(node, ins, problems, temporal)
    if op == "Slice":
        return _slice(node, ins, problems, temporal)
    if op == "Concat":
        return _concat(node, ins, problems)
    if op == "Gather":
        return _gather(node, ins, problems, temporal)
    if op in ("Flatten", "Reshape", "Transpose", "Squeeze", "Unsqueeze", "Gemm", "FusedGemm", "MatMul"):
        return _drops_time(node, ins, problems)
    if any(i is not None and i.streamed for i in ins):
        problems.append(f"{node_label(node)}: the streaming-cut does not know how {op} uses time")
    return None


def physical_perm(rank: int, info: TimeInfo | None) -> list[int]:
    """ONNX axes in the order they are stored: time moved right after the (size-1) batch axis."""
    axes = list(range(rank))
    if info is not None and info.axis > 1:
        axes.remove(info.axis)
        axes.insert(1, info.axis)
    return axes


def physical_shape(shape: tuple[int, ...], info: TimeInfo | None) -> tuple[int, ...]:
    return tuple(int(shape[a]) for a in physical_perm(len(shape), info)) if shape else ()
