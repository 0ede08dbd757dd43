"""StreamingCut on every time-axis construct of contract §2 (issue 3), one tiny graph each:
the structure the cut produces (state shapes, latency, masks, delay lines) and float
equivalence of the chunk-by-chunk model with the offline model in onnxruntime."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

from compiler.errors import RillError
from graphs import init, ints, model, node, weights
from test_pass_streaming_cut import assert_stream_matches_offline, cut, state_shapes

C, T = 3, 12
LOWEST = float(np.finfo(np.float32).min)


def conv(x, y, name, k, pads, w, stride=1, dilation=1, group=1):
    return node("Conv", [x, w], [y], name=name, kernel_shape=[k], pads=pads, strides=[stride],
                dilations=[dilation], group=group)


# --------------------------------------------------------------------------- strides

@pytest.mark.parametrize("chunk", [2, 4, 6])
def test_stride_two_causal_conv_halves_the_frame_rate(chunk):
    m = model([conv("x", "c", "down", 4, [3, 0], "w", stride=2), node("Relu", ["c"], ["r"]),
               conv("r", "y", "after", 3, [2, 0], "w2")],
              [("x", [1, C, T])], [("y", None)],
              [init("w", weights([C, C, 4], 1)), init("w2", weights([C, C, 3], 2))])
    ctx = cut(m, chunk=chunk)
    facts = ctx.facts["streaming"]
    assert facts["downsampling"] == 2 and facts["latency_frames"] == 0
    assert state_shapes(ctx) == [[1, C, 3], [1, C, 2]]
    assert_stream_matches_offline(m, ctx)


@pytest.mark.parametrize("chunk", [4, 8])
def test_two_stride_two_layers_need_chunk_multiple_of_four_and_emit_chunk_over_four(chunk):
    m = model([conv("x", "a", "d1", 3, [2, 0], "w1", stride=2),
               conv("a", "y", "d2", 2, [1, 0], "w2", stride=2)],
              [("x", [1, C, 16])], [("y", None)],
              [init("w1", weights([C, C, 3], 1)), init("w2", weights([C, C, 2], 2))])
    ctx = cut(m, chunk=chunk)
    assert ctx.facts["streaming"]["downsampling"] == 4
    assert ctx.graph.outputs[0].shape[2] == chunk // 4
    assert_stream_matches_offline(m, ctx)
    with pytest.raises(RillError, match="multiples of 4"):
        cut(m, chunk=2)


@pytest.mark.parametrize("chunk", [2, 4])
def test_strided_look_ahead_conv_reports_latency_in_output_frames(chunk):
    m = model([conv("x", "y", "down", 5, [2, 2], "w", stride=2)],
              [("x", [1, C, T])], [("y", None)], [init("w", weights([C, C, 5], 1))])
    ctx = cut(m, chunk=chunk)
    assert ctx.facts["streaming"]["latency_frames"] == 1  # 2 input frames of look-ahead
    assert_stream_matches_offline(m, ctx)


# --------------------------------------------------------------------------- look-ahead

def residual_look_ahead_model(k=3, dilation=1):
    """x -> [symmetric conv -> Relu -> symmetric conv] + x: the skip must wait for the convs."""
    pad = dilation * (k - 1) // 2
    nodes = [conv("x", "a", "la1", k, [pad, pad], "w1", dilation=dilation),
             node("Relu", ["a"], ["r"]),
             conv("r", "b", "la2", k, [pad, pad], "w2", dilation=dilation),
             node("Add", ["b", "x"], ["y"], name="residual")]
    return model(nodes, [("x", [1, C, T])], [("y", None)],
                 [init("w1", weights([C, C, k], 1)), init("w2", weights([C, C, k], 2))])


@pytest.mark.parametrize("chunk", [1, 3])
@pytest.mark.parametrize("k, dilation", [(3, 1), (5, 1), (3, 2)])
def test_look_ahead_residual_delays_the_skip_and_masks_pre_roll(chunk, k, dilation):
    m = residual_look_ahead_model(k, dilation)
    ctx = cut(m, chunk=chunk)
    facts = ctx.facts["streaming"]
    look = dilation * (k - 1) // 2
    assert facts["latency_frames"] == 2 * look
    kinds = {s.kind for s in facts["states"]}
    assert kinds == {"frames", "mask"}
    mask = next(s for s in facts["states"] if s.kind == "mask")
    assert mask.shape == [1, 1, look]  # one flag per pre-roll frame of the first conv
    x_state = next(s for s in facts["states"] if s.tensor == "x")
    # one shared state on x serves both the first conv's window and the skip's delay line
    assert x_state.shape == [1, C, max(2 * look, dilation * (k - 1))]
    assert sum(1 for s in facts["states"] if s.tensor == "x") == 1
    assert_stream_matches_offline(m, ctx)


def test_right_padded_conv_after_a_causal_one_streams():
    m = model([conv("x", "a", "causal", 3, [2, 0], "w1"), conv("a", "y", "ahead", 3, [0, 2], "w2")],
              [("x", [1, C, T])], [("y", None)],
              [init("w1", weights([C, C, 3], 1)), init("w2", weights([C, C, 3], 2))])
    ctx = cut(m, chunk=2)
    assert ctx.facts["streaming"]["latency_frames"] == 2
    assert_stream_matches_offline(m, ctx)


def test_window_head_after_look_ahead_is_refused_naming_the_node():
    m = model([conv("x", "a", "ahead", 3, [1, 1], "w"),
               node("ReduceMean", ["a", "axes"], ["y"], name="time_mean", keepdims=0)],
              [("x", [1, C, T])], [("y", None)], [init("w", weights([C, C, 3], 1)), ints("axes", [2])])
    with pytest.raises(RillError, match="time_mean"):
        cut(m, chunk=1)


# --------------------------------------------------------------------------- pools

@pytest.mark.parametrize("chunk", [1, 4])
def test_max_pool_state_starts_at_the_lowest_value(chunk):
    m = model([node("MaxPool", ["x"], ["y"], name="pool", kernel_shape=[3], pads=[2, 0])],
              [("x", [1, C, T])], [("y", None)])
    ctx = cut(m, chunk=chunk)
    (state,) = ctx.facts["streaming"]["states"]
    assert state.shape == [1, C, 2] and state.init == LOWEST
    assert_stream_matches_offline(m, ctx)


def test_padded_max_pool_state_starts_at_the_pad_value():
    """F.pad(x, (2, 0), value=-1e4) + MaxPool, as fuse-pad leaves it."""
    m = model([node("MaxPool", ["x"], ["y"], name="pool", domain="ai.rill", kernel_shape=[3],
                    pads=[2, 0], pad_value=-1e4)],
              [("x", [1, C, T])], [("y", None)], check=False)
    m.opset_import.append(helper.make_opsetid("ai.rill", 1))
    ctx = cut(m, chunk=2)
    (state,) = ctx.facts["streaming"]["states"]
    assert state.init == -1e4


@pytest.mark.parametrize("chunk", [1, 2])
def test_average_pool_after_look_ahead_is_masked_with_zeros(chunk):
    m = model([conv("x", "a", "ahead", 3, [1, 1], "w"),
               node("AveragePool", ["a"], ["y"], name="pool", kernel_shape=[2], pads=[1, 0],
                    count_include_pad=1)],
              [("x", [1, C, T])], [("y", None)], [init("w", weights([C, C, 3], 1))])
    ctx = cut(m, chunk=chunk)
    assert any(s.kind == "mask" for s in ctx.facts["streaming"]["states"])
    assert_stream_matches_offline(m, ctx)


# --------------------------------------------------------------------------- summaries

@pytest.mark.parametrize("op, attrs", [("ReduceMean", {"keepdims": 0}), ("ReduceMax", {"keepdims": 1}),
                                       ("GlobalAveragePool", {})])
@pytest.mark.parametrize("chunk", [1, 4, 12])
def test_reduction_over_time_keeps_the_window_minus_one_chunk(op, attrs, chunk):
    inputs = ["a"] if op.startswith("Global") else ["a", "axes"]
    m = model([conv("x", "a", "conv", 2, [1, 0], "w"), node(op, inputs, ["y"], name="summary", **attrs)],
              [("x", [1, C, T])], [("y", None)], [init("w", weights([C, C, 2], 1)), ints("axes", [2])])
    ctx = cut(m, chunk=chunk)
    assert not ctx.facts["streaming"]["per_frame_output"]
    shapes = state_shapes(ctx)
    assert [1, C, T - chunk] in shapes or chunk == T
    assert_stream_matches_offline(m, ctx)


# --------------------------------------------------------------------------- shared windows

@pytest.mark.parametrize("chunk", [1, 2])
def test_one_tensor_read_by_two_windows_keeps_one_state_of_the_longer(chunk):
    m = model([conv("x", "a", "short", 3, [2, 0], "w1"),
               conv("x", "b", "long", 3, [4, 0], "w2", dilation=2),
               node("Concat", ["a", "b"], ["y"], axis=1)],
              [("x", [1, C, T])], [("y", None)],
              [init("w1", weights([C, C, 3], 1)), init("w2", weights([C, C, 3], 2))])
    ctx = cut(m, chunk=chunk)
    assert state_shapes(ctx) == [[1, C, 4]]
    assert_stream_matches_offline(m, ctx)


def test_branches_with_different_delays_meet_in_concat():
    m = model([conv("x", "a", "ahead", 3, [1, 1], "w1"), conv("x", "b", "causal", 3, [2, 0], "w2"),
               node("Concat", ["a", "b"], ["y"], axis=1)],
              [("x", [1, C, T])], [("y", None)],
              [init("w1", weights([C, C, 3], 1)), init("w2", weights([C, C, 3], 2))])
    ctx = cut(m, chunk=1)
    assert ctx.facts["streaming"]["latency_frames"] == 1
    assert_stream_matches_offline(m, ctx)


# --------------------------------------------------------------------------- upsampling

@pytest.mark.parametrize("chunk", [1, 3])
@pytest.mark.parametrize("k, s, pads, latency", [(2, 2, [0, 0], 0), (4, 2, [1, 1], 1),
                                                 (3, 3, [0, 0], 0), (5, 2, [0, 0], 0)])
def test_conv_transpose_emits_stride_frames_per_input_frame(chunk, k, s, pads, latency):
    m = model([node("ConvTranspose", ["x", "w", "b"], ["y"], name="up", kernel_shape=[k],
                    strides=[s], pads=pads)],
              [("x", [1, C, T])], [("y", None)],
              [init("w", weights([C, 2, k], 1)), init("b", weights([2], 2))])
    ctx = cut(m, chunk=chunk)
    assert ctx.graph.outputs[0].shape[2] == chunk * s
    assert ctx.facts["streaming"]["latency_frames"] == latency
    assert_stream_matches_offline(m, ctx)


# --------------------------------------------------------------------------- recurrent

def recurrent_model(op="GRU", hidden=4, direction="forward", t=T):
    """x [1, C, T] -> Transpose to [T, 1, C] -> GRU/LSTM -> Y [T, 1, 1, H] -> [1, T, H]."""
    gates = {"GRU": 3, "LSTM": 4}[op]
    attrs = {"hidden_size": hidden, "direction": direction}
    if op == "GRU":
        attrs["linear_before_reset"] = 1
    dirs = 2 if direction == "bidirectional" else 1
    nodes = [node("Transpose", ["x"], ["xt"], perm=[2, 0, 1]),
             node(op, ["xt", "W", "R", "B"], ["Y"], name="rnn", **attrs),
             node("Transpose", ["Y"], ["yt"], perm=[2, 0, 1, 3]),
             node("Reshape", ["yt", "shape"], ["y"])]
    inits = [init("W", weights([dirs, gates * hidden, C], 1)),
             init("R", weights([dirs, gates * hidden, hidden], 2)),
             init("B", weights([dirs, 2 * gates * hidden], 3)),
             ints("shape", [1, t, dirs * hidden])]
    return model(nodes, [("x", [1, C, t])], [("y", None)], inits)


@pytest.mark.parametrize("op, states", [("GRU", 1), ("LSTM", 2)])
@pytest.mark.parametrize("chunk", [1, 4])
def test_recurrent_layer_carries_its_state_between_calls(op, states, chunk):
    m = recurrent_model(op)
    ctx = cut(m, chunk=chunk)
    facts = ctx.facts["streaming"]
    assert [s.kind for s in facts["states"]] == ["recurrent"] * states
    assert state_shapes(ctx) == [[1, 1, 4]] * states
    assert facts["output_time_axis"] == 1
    assert_stream_matches_offline(m, ctx)


def test_bidirectional_recurrent_layer_is_refused():
    with pytest.raises(RillError, match="bidirectional"):
        cut(recurrent_model("GRU", direction="bidirectional"), chunk=1)


# --------------------------------------------------------------------------- 2-D

@pytest.mark.parametrize("chunk", [1, 3])
def test_spectrogram_conv2d_then_flatten_frequency_into_channels(chunk):
    f = 4
    m = model([node("Conv", ["x", "w"], ["c"], name="conv2d", kernel_shape=[3, 3],
                    pads=[1, 2, 1, 0], strides=[2, 1]),
               node("Reshape", ["c", "shape"], ["r"], name="merge_freq"),
               node("Conv", ["r", "w2"], ["y"], name="head", kernel_shape=[1])],
              [("x", [1, 2, f, 6])], [("y", None)],
              [init("w", weights([3, 2, 3, 3], 1)), ints("shape", [1, 3 * (f // 2), 6]),
               init("w2", weights([2, 3 * (f // 2), 1], 2))])
    ctx = cut(m, chunk=chunk)
    assert state_shapes(ctx) == [[1, 2, f, 2]]
    assert_stream_matches_offline(m, ctx)


def test_reshape_moving_time_into_channels_is_refused_naming_the_node():
    m = model([node("Reshape", ["x", "shape"], ["y"], name="fold_time")],
              [("x", [1, C, T])], [("y", None)], [ints("shape", [1, C * 2, T // 2])])
    with pytest.raises(RillError, match="fold_time"):
        cut(m, chunk=2)
