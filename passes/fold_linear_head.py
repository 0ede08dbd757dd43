"""Fold a linear head into its Gemm: `Gemm(flatten(chain(h)[..., -N:]))` -> `Gemm'(flatten(h[..., -M:]))`.

Streaming classifiers often end in layers that are linear in time: a 1x1 Conv, an AveragePool,
a depthwise smoothing Conv, then "keep the last N frames" and a Linear. Quantized, every one of
them rounds its output; at int16 those roundings are a large share of the output noise (on the
tutorial TCN the head's Conv and pool cost about 2 dB of output SNR). Their composition is one
linear map of the last M = N + sum((k - 1) * d) frames of the chain's input, so the whole head can
be a single Gemm with one rounding: fewer rounding points, and fewer MACs per call once the chain
would compute more frames per call than the folded Gemm reads (CHUNK large enough).

The chain is walked up from the Slice while every node is a single-reader, stride-1 1-D Conv
(no fused activation, no right pad) or AveragePool (count_include_pad, or no pads): a
time-invariant, causal, linear map, so the last N output frames are a function of the last M
input frames only, exactly, for any stream long enough (static length >= M). The folded weights
are measured, not derived op by op: the chain, run unpadded on a window of M frames, and the
Gemm are probed with every unit vector in onnxruntime (so grouping, dilation and layouts are
whatever the ONNX semantics say).

Policy (Options.fold_linear): "auto" folds when the folded Gemm costs no more MACs per call at
the compile's CHUNK than the chain and Gemm it replaces (report.json's count: weighted layers); "on" folds whenever legal (accuracy
first: fewer rounding points); "off" never. Each fold is listed in facts["folded_heads"].
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
import onnx_graphsurgeon as gs
from onnx import TensorProto, helper

from compiler.context import CompileContext
from compiler.errors import RillError
from compiler.graph import const_value, only_consumer, static_shape, unique_name
from compiler.op_attrs import normalized_slice, slice_spec, window_attrs
from compiler.ort import session
from compiler.pass_manager import Pass
from compiler.rill_ops import ACTIVATION_ATTRS

MODES = ("auto", "on", "off")
PROBE_OPSET = 17
TIME_AXIS = 2  # NCW: the chain is 1-D, time last


@dataclass
class Head:
    """A matched head: `gemm(flatten(pick(chain(h))))`."""

    source: gs.Tensor  # h, the chain's input
    chain: list[gs.Node]  # from h towards the Gemm
    pick: gs.Node  # the Slice / Gather that keeps the last frames
    flatten: gs.Node | None  # Flatten / Reshape between the pick and the Gemm
    gemm: gs.Node
    frames: int  # N: frames the pick keeps
    window: int  # M: frames of h they depend on

    @property
    def removed(self) -> list[gs.Node]:
        return self.chain + [self.pick] + ([self.flatten] if self.flatten is not None else [])


def frames_kept(node: gs.Node) -> int | None:
    """N when the Slice/Gather keeps the last N frames along time (axis 2 of a 3-D tensor)."""
    shape = static_shape(node.inputs[0])
    if shape is None or len(shape) != 3:
        return None
    length = shape[TIME_AXIS]
    if node.op == "Gather":
        index = const_value(node.inputs[1])
        axis = int(node.attrs.get("axis", 0)) % 3
        if index is None or index.size != 1 or axis != TIME_AXIS:
            return None
        return 1 if int(index.reshape(-1)[0]) % length == length - 1 else None
    spec = slice_spec(node)
    if spec is None:
        return None
    starts, ends, axes, steps = spec
    axes = [a % 3 for a in axes]
    if axes != [TIME_AXIS]:
        return None
    s, e, step = normalized_slice(starts[0], ends[0], steps[0], length)
    return e - s if step == 1 and e == length and s > 0 else None


def time_extent(node: gs.Node) -> int | None:
    """(k - 1) * d of a chain node that is a causal, stride-1, linear 1-D window op, else None."""
    if node.op not in ("Conv", "AveragePool") or any(k in node.attrs for k in ACTIVATION_ATTRS):
        return None
    if node.op == "Conv" and (len(node.inputs) < 2 or const_value(node.inputs[1]) is None
                              or (len(node.inputs) > 2 and const_value(node.inputs[2]) is None)):
        return None
    shape = static_shape(node.inputs[0])
    if shape is None or len(shape) != 3:
        return None
    w = window_attrs(node)
    (k,), (stride,), (dilation,), (left, right) = w["kernel"], w["strides"], w["dilations"], w["pads"]
    if stride != 1 or right != 0:
        return None
    if node.op == "AveragePool" and left and not int(node.attrs.get("count_include_pad", 0)):
        return None
    return (k - 1) * dilation


def match_head(graph: gs.Graph, gemm: gs.Node) -> Head | None:
    if gemm.op not in ("Gemm", "FusedGemm") or int(gemm.attrs.get("transB", 0)) != 1 \
            or len(gemm.inputs) < 3 or any(const_value(t) is None for t in gemm.inputs[1:3]):
        return None
    x = gemm.inputs[0]
    flatten = x.inputs[0] if len(x.inputs) == 1 and x.inputs[0].op in ("Flatten", "Reshape") else None
    picked = flatten.inputs[0] if flatten is not None else x
    if len(picked.inputs) != 1 or picked.inputs[0].op not in ("Slice", "Gather"):
        return None
    pick = picked.inputs[0]
    frames = frames_kept(pick)
    out_shape = static_shape(x)
    if frames is None or out_shape is None or len(out_shape) != 2 or out_shape[0] != 1:
        return None
    if only_consumer(x) is not gemm or only_consumer(picked) is not (flatten or gemm):
        return None
    chain, window, t = [], frames, pick.inputs[0]
    while len(t.inputs) == 1 and only_consumer(t) is not None and t not in graph.outputs:
        extent, src = time_extent(t.inputs[0]), t.inputs[0].inputs[0]
        # the window must lie inside the stream's frames, never in a pad (static length)
        if extent is None or static_shape(src)[TIME_AXIS] < window + extent:
            break
        chain.insert(0, t.inputs[0])
        window += extent
        t = src
    if not chain or static_shape(t)[0] != 1:
        return None
    return Head(t, chain, pick, flatten, gemm, frames, window)


def probe_model(head: Head) -> onnx.ModelProto:
    """The chain (unpadded) on a [P, C, M] window, flattened, through the Gemm without activation."""
    inits, nodes, src = [], [], "h"
    for i, node in enumerate(head.chain):
        ins = [src]
        for j, t in enumerate(node.inputs[1:]):
            inits.append(onnx.numpy_helper.from_array(
                np.asarray(const_value(t), np.float32), f"c{i}_{j}"))
            ins.append(f"c{i}_{j}")
        attrs = {k: v for k, v in node.attrs.items() if k not in ("pads", "auto_pad")}
        nodes.append(helper.make_node(node.op, ins, [f"t{i}"], **attrs))
        src = f"t{i}"
    w, b = (np.asarray(const_value(t), np.float32) for t in head.gemm.inputs[1:3])
    inits += [onnx.numpy_helper.from_array(w, "w"), onnx.numpy_helper.from_array(b, "b")]
    nodes += [helper.make_node("Flatten", [src], ["flat"], axis=1),
              helper.make_node("Gemm", ["flat", "w", "b"], ["y"], transB=1)]
    graph = helper.make_graph(
        nodes, "head", [helper.make_tensor_value_info("h", TensorProto.FLOAT, None)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], initializer=inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", PROBE_OPSET)])


def folded_weights(head: Head) -> tuple[np.ndarray, np.ndarray]:
    """(W' [O, C*M], b' [O]) with y = W' @ flatten(h[..., -M:]) + b', measured by probing."""
    channels = static_shape(head.source)[1]
    n = channels * head.window
    probes = np.concatenate([np.zeros((1, n)), np.eye(n)]).reshape(n + 1, channels, head.window)
    y = session(probe_model(head)).run(["y"], {"h": probes.astype(np.float32)})[0]
    y = y.astype(np.float64)
    bias = y[0]
    return (y[1:] - bias).T.astype(np.float32), bias.astype(np.float32)


def per_frame_macs(node: gs.Node) -> int:
    """Multiply-accumulates per output frame, counted as report.json counts them: a Conv's
    weights; an AveragePool's additions are no MACs."""
    if node.op == "AveragePool":
        return 0
    w = const_value(node.inputs[1])
    return int(w.shape[0] * w.shape[1] * window_attrs(node)["kernel"][0])


def head_macs(head: Head, frames_per_call: int) -> tuple[int, int]:
    """MACs per call (before, after) the fold, as report.json's `macs_per_call` counts them."""
    w = const_value(head.gemm.inputs[1])
    before = sum(per_frame_macs(n) for n in head.chain) * frames_per_call + int(w.size)
    after = static_shape(head.source)[1] * head.window * w.shape[0]
    return before, after


def rewrite(graph: gs.Graph, head: Head, w: np.ndarray, b: np.ndarray) -> None:
    gemm, base = head.gemm, head.gemm.name
    length = static_shape(head.source)[TIME_AXIS]
    consts = [gs.Constant(unique_name(graph, f"{base}/folded_{k}"), np.array(v, np.int64))
              for k, v in (("starts", [length - head.window]), ("ends", [length]),
                           ("axes", [TIME_AXIS]), ("steps", [1]))]
    window = gs.Variable(unique_name(graph, f"{base}/folded_window"), np.float32,
                         (1, static_shape(head.source)[1], head.window))
    flat = gs.Variable(unique_name(graph, f"{base}/folded_flat"), np.float32, (1, w.shape[1]))
    graph.nodes += [gs.Node("Slice", unique_name(graph, f"{base}/folded_slice"),
                            inputs=[head.source] + consts, outputs=[window]),
                    gs.Node("Flatten", unique_name(graph, f"{base}/folded_flatten"),
                            attrs={"axis": 1}, inputs=[window], outputs=[flat])]
    for i, t in enumerate([flat, gs.Constant(unique_name(graph, f"{base}/folded_weight"), w),
                           gs.Constant(unique_name(graph, f"{base}/folded_bias"), b)]):
        gemm.inputs[i] = t
    for node in head.removed:
        node.outputs.clear()


class FoldLinearHead(Pass):
    name = "fold-linear-head"
    requires = frozenset({"gemm-canonical", "pads-folded", "chomp-folded", "batchnorm-folded",
                          "activations-fused"})
    ensures = frozenset({"linear-heads-folded"})
    preserves_float_semantics = True

    def run(self, ctx: CompileContext) -> bool:
        mode = ctx.options.fold_linear
        if mode not in MODES:
            raise RillError(f"fold_linear={mode!r}: choose one of {', '.join(MODES)}")
        if mode == "off":
            return False
        graph, folds = ctx.graph, []
        for gemm in [n for n in graph.nodes if n.op in ("Gemm", "FusedGemm")]:
            head = match_head(graph, gemm)
            if head is None:
                continue
            frames = static_shape(head.source)[TIME_AXIS] if ctx.options.offline \
                else (ctx.options.chunk or 1)
            before, after = head_macs(head, frames)
            if mode == "auto" and after > before:
                continue
            w, b = folded_weights(head)
            folds.append({"gemm": gemm.name, "folded": [n.name for n in head.removed],
                          "window_frames": head.window, "macs_per_call_before": before,
                          "macs_per_call_after": after})
            rewrite(graph, head, w, b)
        if folds:
            graph.cleanup(remove_unused_graph_inputs=False).toposort()
            ctx.facts.setdefault("folded_heads", []).extend(folds)
        return bool(folds)
