"""Which tensors carry the time axis, at what frame rate, how far behind the input they run, and
which ops need frames from earlier calls.

The streaming-cut uses this to decide where state is needed; lowering uses it to store
time-carrying tensors time-major. A tensor is *streamed* when its frames arrive call by call,
*windowed* when it holds a fixed set of frames (e.g. after `x[..., -N:]`, or every tensor of an
offline compile), and has no `TimeInfo` when the time axis is gone (after Flatten, Gemm, ...).

Every streamed tensor has a frame `rate` (its frames per input frame: 1/2 after a stride-2 conv,
2 after a stride-2 ConvTranspose) and a `delay`: stream frame j holds offline frame j - delay
(look-ahead convs emit their outputs late). Ops that read past frames are recorded as
`WindowUse`s; the cut gives each streamed tensor one state holding the most frames any of its
readers needs.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from fractions import Fraction

import numpy as np
import onnx_graphsurgeon as gs

from compiler.graph import const_value, node_label, static_shape
from compiler.op_attrs import normalized_slice, pad_spec, slice_spec, window_attrs

FRAME_LOCAL_UNARY = frozenset({
    "Relu", "LeakyRelu", "PRelu", "Sigmoid", "HardSigmoid", "Tanh", "Silu", "HardSwish", "Gelu",
    "Clip", "Exp", "Sqrt", "Reciprocal", "Neg", "Abs", "Softplus", "Elu", "Erf", "Identity",
    "Cast", "BatchNormalization", "Dropout",
})
ELEMENTWISE = frozenset({"Add", "Sub", "Mul", "Div", "Max", "Min", "Pow", "Where"})
WINDOW_OPS = frozenset({"Conv", "FusedConv", "AveragePool", "MaxPool"})
REDUCE_OPS = frozenset({"ReduceMean", "ReduceMax", "ReduceSum", "ReduceMin",
                        "GlobalAveragePool", "GlobalMaxPool"})
RECURRENT_OPS = frozenset({"GRU", "LSTM", "RNN"})
RESHAPE_OPS = frozenset({"Reshape", "Flatten", "Squeeze", "Unsqueeze"})
LOWEST_FLOAT32 = float(np.finfo(np.float32).min)


@dataclass(frozen=True)
class TimeInfo:
    axis: int
    streamed: bool
    delay: int = 0  # stream frame j holds offline frame j - delay (streamed tensors)
    rate: Fraction = Fraction(1)  # frames of this tensor per frame of the model input
    # offline frames after the newest streamed one: a Pad at the start of time makes the
    # offline tensor longer than the stream, so a summary of its window would miss some
    tail: int = 0


@dataclass
class WindowUse:
    """An input of `node` that needs frames of a streamed tensor from earlier calls.

    kinds: "window-op" (conv/pool along time: reads `frames` past frames, skipping the first
    `skip` of them), "upsample" (ConvTranspose: reads `frames` past frames, then keeps the
    `stride`*CHUNK newest complete outputs), "window-head" (keeps the most recent `window`
    frames: x[..., -N:], x[..., -1], a reduction over time), "delay" (a delay line of `frames`
    frames that aligns a branch with a later one), "pad" (a constant Pad of `frames` frames at
    the start of time: a delay line whose initial state is the pad value), "trim" (a Slice
    that drops only the offline frames a Pad added at the end: every streamed frame passes).
    """

    node: gs.Node
    index: int
    kind: str
    frames: int = 0
    skip: int = 0
    window: int = 0
    init: float = 0.0  # what the offline model sees before the first frame (the pad value)
    stride: int = 1
    reads_padding: bool = False  # valid outputs read frames before the first: mask pre-roll


@dataclass
class TimeAnalysis:
    info: dict[str, TimeInfo]
    uses: list[WindowUse]
    recurrent: list[gs.Node]
    problems: list[str]


def time_window(node: gs.Node, axis: int) -> tuple[int, int, int, int, int]:
    """(span S = dilation*(k-1), pad_l, pad_r, stride, dilation) along the time axis."""
    a = window_attrs(node)
    rank = len(a["kernel"])
    i = axis - 2
    k, d = a["kernel"][i], a["dilations"][i]
    return d * (k - 1), a["pads"][i], a["pads"][rank + i], a["strides"][i], d


def ceil_adds_frames(node: gs.Node, axis: int) -> bool:
    """Whether a ceil_mode window op's offline output has more frames along `axis` than the
    floor formula gives (a last window overhanging the input's end)."""
    span, pad_l, pad_r, stride, _ = time_window(node, axis)
    x, y = static_shape(node.inputs[0]), static_shape(node.outputs[0])
    if x is None or y is None or stride <= 0:
        return True
    return y[axis] > (x[axis] + pad_l + pad_r - span - 1) // stride + 1


def pad_value(node: gs.Node) -> float:
    """The value the offline op reads before the first frame."""
    if node.op == "MaxPool":
        v = float(node.attrs.get("pad_value", -math.inf))
        return max(v, LOWEST_FLOAT32)
    return 0.0


def strided_window(span: int, pad_l: int, stride: int, delay: int) -> tuple[int, int, int]:
    """(past frames L, frames to skip p0, output delay D) of a streamed window op.

    Output j of a call reads window positions p0 + j*s .. p0 + j*s + S of [L past frames, the
    call's frames]. Matching the offline output j - D needs L - p0 = D*s + pad_l - delay, and
    emitting exactly CHUNK/s outputs needs S - s + 1 <= L - p0 <= S: one value A in that range
    has the right residue mod s.
    """
    lo = span - stride + 1
    a = lo + (pad_l - delay - lo) % stride
    d = (a - pad_l + delay) // stride
    frames = max(a, 0)
    return frames, frames - a, d


class Rules:
    """One method per op family: the output's TimeInfo from the inputs'."""

    def __init__(self, info: dict[str, TimeInfo], uses: list[WindowUse],
                 recurrent: list[gs.Node], problems: list[str]):
        self.info, self.uses, self.recurrent, self.problems = info, uses, recurrent, problems

    def fail(self, node: gs.Node, why: str) -> None:
        self.problems.append(f"{node_label(node)}: {why}")

    def apply(self, node: gs.Node, ins: list[TimeInfo | None]):
        op = node.op
        if op in FRAME_LOCAL_UNARY:
            return ins[0]
        if op in ELEMENTWISE or op == "Concat":
            return self.aligned(node, ins)
        if op == "MaskFrames":
            return ins[0]
        if op in WINDOW_OPS:
            return self.window_op(node, ins)
        if op == "ConvTranspose":
            return self.conv_transpose(node, ins)
        if op == "Slice":
            return self.slice(node, ins)
        if op == "Pad":
            return self.pad(node, ins)
        if op == "Gather":
            return self.gather(node, ins)
        if op in REDUCE_OPS:
            return self.reduce(node, ins)
        if op in RECURRENT_OPS:
            return self.recurrent_op(node, ins)
        if op == "Transpose":
            return self.transpose(node, ins)
        if op in RESHAPE_OPS:
            return self.reshape(node, ins)
        if op == "MatMul":
            return self.matmul_op(node, ins)
        if op in ("Gemm", "FusedGemm"):
            return self.matmul(node, ins)
        if op in ("Softmax", "LogSoftmax", "LayerNormalization", "Split"):
            return self.along_axis(node, ins)
        if any(i is not None and i.streamed for i in ins):
            self.fail(node, f"the streaming-cut does not know how {op} uses time")
        return None

    # -- frame-local ops -------------------------------------------------------------------
    def aligned(self, node: gs.Node, ins: list[TimeInfo | None]) -> TimeInfo | None:
        """Elementwise ops and Concat: inputs with different delays get delay lines."""
        timed = [(k, i) for k, i in enumerate(ins) if i is not None]
        first = timed[0][1]
        out_rank = len(static_shape(node.outputs[0]) or [])
        if node.op == "Concat":
            axis = int(node.attrs.get("axis", 0)) % out_rank
            if len(timed) != len(ins):
                self.fail(node, "concatenates streamed and constant tensors")
                return None
            if axis == first.axis and first.streamed:
                self.fail(node, "Concat along the streamed time axis cannot be cut into chunks")
                return None
        if any(i.axis != first.axis or i.streamed != first.streamed or i.rate != first.rate
               for _, i in timed):
            self.fail(node, "combines tensors with different time axes or frame rates")
            return None
        for t, i in zip(node.inputs, ins):
            if i is None and not _constant_along_time(t, out_rank, first.axis):
                self.fail(node, f"operand '{t.name}' varies along time but is not part of the "
                                "streamed signal")
                return None
        latest = max(i.delay for _, i in timed)
        for k, i in timed:
            if i.delay < latest:
                self.uses.append(WindowUse(node, k, "delay", frames=latest - i.delay))
        return replace(first, delay=latest)

    def along_axis(self, node: gs.Node, ins):
        """Softmax/LayerNorm/Split: frame-local unless they work along time."""
        info = ins[0]
        rank = len(static_shape(node.inputs[0]) or [])
        default = -1 if node.op != "Split" else 0
        axis = int(node.attrs.get("axis", default)) % rank
        touches = axis <= info.axis if node.op == "LayerNormalization" else axis == info.axis
        if touches and info.streamed:
            self.fail(node, f"{node.op} along the time axis mixes frames")
            return None
        return info

    # -- ops with a window along time ------------------------------------------------------
    def window_op(self, node: gs.Node, ins):
        info = ins[0]
        if any(i is not None for i in ins[1:]):
            self.fail(node, "weights that depend on the input are not supported")
            return None
        rank = len(static_shape(node.inputs[0]) or [])
        if info.axis != rank - 1:
            self.fail(node, f"time must be the last axis of a {node.op} input (it is axis "
                            f"{info.axis})")
            return None
        if not info.streamed:
            return info
        span, pad_l, _, stride, _ = time_window(node, info.axis)
        if node.op == "AveragePool" and pad_l and not int(node.attrs.get("count_include_pad", 0)):
            self.fail(node, "AveragePool with count_include_pad=0 and left padding along time "
                            "cannot be streamed yet (pad explicitly with zeros, or use "
                            "count_include_pad=1)")
            return None
        if pad_l > span:
            self.fail(node, f"left padding {pad_l} exceeds the window span {span}")
            return None
        if int(node.attrs.get("ceil_mode", 0)) and ceil_adds_frames(node, info.axis):
            self.fail(node, "ceil_mode=1 adds an output frame whose window overhangs the last "
                            "input frame, which a stream never has (use ceil_mode=0, an input "
                            "length the strides divide, or --offline)")
            return None
        frames, skip, delay = strided_window(span, pad_l, stride, info.delay)
        self.uses.append(WindowUse(node, 0, "window-op", frames=frames, skip=skip,
                                   init=pad_value(node), stride=stride, reads_padding=pad_l > 0))
        return replace(info, delay=delay, rate=info.rate / stride)

    def conv_transpose(self, node: gs.Node, ins):
        info = ins[0]
        if any(i is not None for i in ins[1:]):
            self.fail(node, "weights that depend on the input are not supported")
            return None
        rank = len(static_shape(node.inputs[0]) or [])
        if info.axis != rank - 1 or rank not in (3, 4):
            self.fail(node, "ConvTranspose streams only as a 1-D or 2-D op with time on the "
                            "last axis")
            return None
        if not info.streamed:
            return info
        span, pad_l, _, stride, _ = time_window(node, info.axis)
        if span + 1 < stride:
            self.fail(node, f"ConvTranspose kernel span {span + 1} is shorter than its stride "
                            f"{stride}")
            return None
        frames = -(-(span + 1) // stride) - 1
        self.uses.append(WindowUse(node, 0, "upsample", frames=frames, stride=stride,
                                   reads_padding=span > 0))
        return replace(info, delay=info.delay * stride + pad_l, rate=info.rate * stride)

    def window_head(self, node: gs.Node, info: TimeInfo, frames: int) -> bool:
        """Record a summary of the most recent `frames` frames; False if it cannot stream."""
        if info.delay or info.tail:
            self.fail(node, "summarizes the most recent frames of a delayed (look-ahead or "
                            "padded) stream: its last call would miss "
                            f"{info.delay + info.tail} frame(s)")
            return False
        self.uses.append(WindowUse(node, 0, "window-head", window=frames))
        return True

    def slice(self, node: gs.Node, ins):
        info = ins[0]
        spec = slice_spec(node)
        if spec is None:
            self.fail(node, "Slice parameters are not constant")
            return None
        starts, ends, axes, steps = spec
        if info.axis not in axes or not info.streamed:
            return info
        i = axes.index(info.axis)
        length = static_shape(node.inputs[0])[info.axis]
        s, e, step = normalized_slice(starts[i], ends[i], steps[i], length)
        if (s, e, step) == (0, length, 1):
            return info
        if (s, step) == (0, 1) and 0 < length - e <= info.tail:  # drops padded frames only
            self.uses.append(WindowUse(node, 0, "trim"))
            return replace(info, tail=info.tail - (length - e))
        if step != 1 or e != length:
            self.fail(node, "this Slice along time keeps frames other than the most recent ones "
                            "(only x[..., -N:] can be streamed)")
            return None
        if not self.window_head(node, info, e - s):
            return None
        return TimeInfo(info.axis, streamed=False)

    def pad(self, node: gs.Node, ins):
        """A constant Pad at the start of a streamed time axis is a delay line that starts at
        the pad value; padding after the last frame (a stream has none), cropping frames, or
        reflect/edge/wrap padding along time (they need frames before they arrive) cannot
        stream. Padding of the other axes is frame-local."""
        info = ins[0]
        spec = pad_spec(node)
        if spec is None:
            self.fail(node, "Pad parameters are not constant")
            return None
        pads, value, mode = spec
        rank = len(pads) // 2
        lo, hi = pads[info.axis], pads[info.axis + rank]
        if not info.streamed or lo == hi == 0:
            return info
        if mode != "constant":
            self.fail(node, f"{mode} padding along the streamed time axis needs frames that have "
                            "not arrived yet (pad only the other axes, or compile with --offline)")
        elif hi or lo < 0:
            self.fail(node, "pads after the last frame of the streamed time axis, or crops "
                            "frames: a stream has no last frame (fold the padding into the conv "
                            "after it, or compile with --offline)")
        else:
            self.uses.append(WindowUse(node, 0, "pad", frames=lo, init=value,
                                       reads_padding=True))
            return replace(info, tail=info.tail + lo)
        return None

    def gather(self, node: gs.Node, ins):
        """`x[..., -1]` (Gather of the last frame) is a one-frame window head."""
        info = ins[0]
        if ins[1] is not None:
            self.fail(node, "Gather indices that depend on the input")
            return None
        rank = len(static_shape(node.inputs[0]) or [])
        axis = int(node.attrs.get("axis", 0)) % rank
        index = np.asarray(const_value(node.inputs[1]))
        if axis != info.axis:
            return info if axis > info.axis or index.ndim == 1 \
                else replace(info, axis=info.axis - 1 + index.ndim)
        length = static_shape(node.inputs[0])[axis]
        if index.size != 1 or int(index.reshape(-1)[0]) % length != length - 1:
            if info.streamed:
                self.fail(node, "this Gather along time picks frames other than the most recent")
            return None
        if info.streamed and not self.window_head(node, info, 1):
            return None
        return TimeInfo(info.axis, streamed=False) if index.ndim == 1 else None

    def reduce(self, node: gs.Node, ins):
        info = ins[0]
        shape = static_shape(node.inputs[0]) or ()
        axes = reduce_axes(node, len(shape))
        if axes is None:
            self.fail(node, "reduction axes are not constant")
            return None
        keep = bool(int(node.attrs.get("keepdims", 1))) or node.op.startswith("Global")
        if info.axis not in axes:
            shift = 0 if keep else sum(1 for a in axes if a < info.axis)
            return replace(info, axis=info.axis - shift)
        if info.streamed and not self.window_head(node, info, shape[info.axis]):
            return None
        return TimeInfo(info.axis, streamed=False) if keep else None

    def recurrent_op(self, node: gs.Node, ins):
        info = ins[0]
        if any(i is not None for i in ins[1:]):
            self.fail(node, "weights, lengths or initial state that depend on the input are not "
                            "supported")
            return None
        if int(node.attrs.get("layout", 0)) != 0 or info.axis != 0:
            self.fail(node, f"time must be axis 0 of the {node.op} input (it is axis {info.axis})")
            return None
        direction = node.attrs.get("direction", "forward")
        direction = direction.decode() if isinstance(direction, bytes) else direction
        if info.streamed:
            if direction != "forward":
                self.fail(node, f"a {direction} {node.op} reads future frames and cannot stream")
                return None
            if len(node.inputs) > 4 and node.inputs[4].name:
                self.fail(node, "sequence_lens is not supported when streaming")
                return None
            if info.delay:
                self.fail(node, f"a {node.op} after a look-ahead would run over {info.delay} "
                                "pre-roll frame(s) and change its state")
                return None
            self.recurrent.append(node)
        return info

    # -- ops that move axes ----------------------------------------------------------------
    def transpose(self, node: gs.Node, ins):
        info = ins[0]
        rank = len(static_shape(node.inputs[0]) or [])
        perm = [int(p) for p in node.attrs.get("perm", list(range(rank))[::-1])]
        return replace(info, axis=perm.index(info.axis))

    def reshape(self, node: gs.Node, ins):
        info = ins[0]
        src, dst = static_shape(node.inputs[0]), static_shape(node.outputs[0])
        axis = None if src is None or dst is None else reshaped_axis(src, dst, info.axis)
        if axis is None:
            if info.streamed:
                self.fail(node, f"{node.op} merges the time axis with other axes (time moved "
                                "into channels), which cannot be cut into chunks")
            return None
        return replace(info, axis=axis)

    def matmul_op(self, node: gs.Node, ins):
        """MatMul of any operands (numpy rules: batch dims broadcast, 1-D operands promoted):
        frame-local when time is a batch axis of the operands that carry it (both at the same
        output axis and delay when both do) or the row axis of `a` / the column axis of `b`;
        contracting over time mixes frames."""
        shapes = [static_shape(t) or () for t in node.inputs[:2]]
        ra, rb = len(shapes[0]), len(shapes[1])
        nb = len(static_shape(node.outputs[0]) or ()) - (ra >= 2) - (rb >= 2)  # batch dims
        outs = []
        for which, (info, rank) in enumerate(zip(ins, (ra, rb))):
            if info is None:
                continue
            own = rank - 2 if which == 0 else rank - 1  # a's rows, b's columns
            if rank == 1 or info.axis == (rank - 1 if which == 0 else rank - 2):
                if info.streamed:
                    self.fail(node, "MatMul contracts over the streamed time axis, which mixes "
                                    "frames; cut the window with x[..., -N:] first")
                return None
            axis = nb + which * (ra >= 2) if info.axis == own else info.axis + nb - (rank - 2)
            outs.append(replace(info, axis=axis))
        if len(outs) == 2 and outs[0] != outs[1]:
            self.fail(node, "MatMul of streamed tensors with different time axes or delays")
            return None
        for t, shape, info in zip(node.inputs[:2], shapes, ins):
            pos = outs[0].axis - (nb - (len(shape) - 2))  # a batch dim of the other operand
            if info is None and outs[0].axis < nb and 0 <= pos and shape[pos] != 1:
                self.fail(node, f"operand '{t.name}' varies along time but is not part of the "
                                "streamed signal")
                return None
        return outs[0]

    def matmul(self, node: gs.Node, ins):
        """A product with constant weights is frame-local unless it contracts over time."""
        info = ins[0]
        if any(i is not None for i in ins[1:]):
            if info.streamed:
                self.fail(node, f"{node.op} of two streamed tensors is not supported")
            return None
        rank = len(static_shape(node.inputs[0]) or [])
        contracted = rank - 1
        if node.op != "MatMul" and int(node.attrs.get("transA", 0)):
            contracted = 0
        if info.axis == contracted:
            if info.streamed:
                self.fail(node, f"{node.op} on a streamed tensor mixes frames (it contracts over "
                                "the time axis); cut the window with x[..., -N:] first")
            return None
        return info


def reduce_axes(node: gs.Node, rank: int) -> list[int] | None:
    """The axes a Reduce*/Global*Pool node reduces (all of them when none are given)."""
    if node.op.startswith("Global"):
        return list(range(2, rank))
    axes = node.attrs.get("axes")
    if axes is None and len(node.inputs) > 1 and node.inputs[1].name:
        value = const_value(node.inputs[1])
        if value is None:
            return None
        axes = [int(a) for a in np.asarray(value).reshape(-1)]
    if not axes:
        return [] if int(node.attrs.get("noop_with_empty_axes", 0)) else list(range(rank))
    return sorted(int(a) % rank for a in axes)


def reshaped_axis(src: tuple[int, ...], dst: tuple[int, ...], axis: int) -> int | None:
    """Where time lands after a reshape that keeps it a whole axis, else None."""
    before = int(np.prod(src[:axis], dtype=np.int64))
    for j, d in enumerate(dst):
        if d == src[axis] and int(np.prod(dst[:j], dtype=np.int64)) == before:
            return j
    return None


def _constant_along_time(t: gs.Tensor, out_rank: int, axis: int) -> bool:
    """A non-streamed operand of an elementwise op must not vary along time."""
    shape = static_shape(t)
    if shape is None:
        return False
    pos = axis - (out_rank - len(shape))
    return pos < 0 or shape[pos] == 1


def analyze_time(graph: gs.Graph, seeds: dict[str, TimeInfo | None]) -> TimeAnalysis:
    """Propagate time from the seeded inputs (the signal and any state inputs) through `graph`."""
    info: dict[str, TimeInfo] = {n: i for n, i in seeds.items() if i is not None}
    result = TimeAnalysis(info, [], [], [])
    rules = Rules(info, result.uses, result.recurrent, result.problems)
    for node in graph.nodes:
        ins = [info.get(t.name) if t.name and const_value(t) is None else None for t in node.inputs]
        if ins and ins[0] is None and any(i is not None for i in ins[1:]) \
                and node.op not in ELEMENTWISE and node.op not in ("Concat", "MatMul"):
            if any(i.streamed for i in ins if i is not None):
                rules.fail(node, f"the streamed signal enters {node.op} as a parameter")
            continue
        if all(i is None for i in ins):
            continue
        reported = len(result.problems)
        out = rules.apply(node, ins)
        if out is None and len(result.problems) > reported:
            # keep following the signal so every offending node downstream is reported too
            out = next(i for i in ins if i is not None)
        if out is None:
            continue
        targets = node.outputs if node.op == "Split" else node.outputs[:1]
        for t in targets:
            info[t.name] = out
    return result


def physical_perm(rank: int, info: TimeInfo | None) -> list[int]:
    """ONNX axes in the order they are stored: time first, then the others in ONNX order
    (contract §4: time-major), except that a tensor of rank >= 3 keeps its axis 0 (the batch)
    in front of time: a batch of N > 1 sequences (offline only) is stored one sequence after
    the other, each time-major, so one-sequence kernels run once per sequence at an offset.
    With batch 1 both orders are the same bytes."""
    axes = list(range(rank))
    if info is not None and info.axis > 0:
        axes.remove(info.axis)
        axes.insert(batch_axes(rank, info), info.axis)
    return axes


def batch_axes(rank: int, info: TimeInfo | None) -> int:
    """How many axes are stored in front of time: 1 (the batch) for rank >= 3 tensors whose
    time is not axis 0, else 0."""
    return 1 if info is not None and info.axis > 0 and rank >= 3 else 0


def physical_shape(shape: tuple[int, ...], info: TimeInfo | None) -> tuple[int, ...]:
    return tuple(int(shape[a]) for a in physical_perm(len(shape), info)) if shape else ()
