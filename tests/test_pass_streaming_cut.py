"""StreamingCut (contract §2): state pairs per temporal op, and chunk-by-chunk == offline."""
from __future__ import annotations

import json

import numpy as np
import pytest

from compiler.errors import RillError
from compiler.graph import static_shape
from compiler.ort import run_model
from compiler.streams import aligned, run_float_stream, stitch
from graphs import (causal_tcn_model, ctx_for, init, ints, model, node, nodes_of, random_input,
                    run_pass, runnable, weights)
from passes.streaming_cut import StreamingCut, streaming_metadata

INT64_MAX = np.iinfo(np.int64).max
C, T = 3, 12


def cut(m, chunk=None, **opts):
    ctx = ctx_for(m, chunk=chunk, **opts)
    assert run_pass(StreamingCut(), ctx)
    assert "streaming" in ctx.properties
    return ctx


def state_shapes(ctx) -> list[list[int]]:
    return [s["shape"] for s in streaming_metadata(ctx.facts["streaming"])["states"]]


def assert_stream_matches_offline(m, ctx, seeds=(0, 1), rel=1e-5):
    """Contract §2: run the streaming model chunk by chunk from the initial state in onnxruntime;
    the aligned parts equal the offline model within rel * max|offline|."""
    facts = ctx.facts["streaming"]
    meta = json.loads(json.dumps(streaming_metadata(facts)))  # what the .onnx metadata holds
    streaming = runnable(ctx)
    per_frame = facts["per_frame_output"]
    axis = meta["time_axis"]
    out_axis = facts["output_time_axis"] if per_frame else 0
    x_name = m.graph.input[0].name
    shape = [d.dim_value for d in m.graph.input[0].type.tensor_type.shape.dim]
    for seed in seeds:
        x = random_input(shape, seed)
        offline = run_model(m, {x_name: x})[m.graph.output[0].name]
        outs = run_float_stream(streaming, meta, x)
        assert len(outs) == -(-shape[axis] // meta["chunk"])
        stream = stitch(outs, per_frame, out_axis)
        a, b = aligned(stream, offline, meta["latency_frames"], out_axis, per_frame)
        assert a.shape == b.shape and b.size > 0
        scale = float(np.max(np.abs(offline)))
        err = float(np.max(np.abs(a - b)))
        assert err <= rel * scale, f"chunk {meta['chunk']}: max abs error {err:.3g} vs max {scale:.3g}"


# --------------------------------------------------------------------------- structure

def test_causal_dilated_stack_gets_one_zero_state_per_temporal_op():
    m = causal_tcn_model(channels=C, t=T, layers=((3, 1), (3, 2), (2, 4)))
    ctx = cut(m, chunk=1)
    facts = ctx.facts["streaming"]
    assert state_shapes(ctx) == [[1, C, 2], [1, C, 4], [1, C, 4]]  # [1, C, (k-1)*d]
    assert all(s["init"] == 0.0 for s in streaming_metadata(facts)["states"])
    assert facts["latency_frames"] == 0 and facts["per_frame_output"]
    g = ctx.graph
    convs = nodes_of(ctx, "Conv")
    assert len(convs) == 3
    for conv, state in zip(convs, facts["states"]):
        assert list(conv.attrs["pads"]) == [0, 0]  # the state replaces the causal padding
        concat = conv.inputs[0].inputs[0]
        assert concat.op == "Concat" and concat.inputs[0].name == state.input
        assert int(concat.attrs["axis"]) == 2
    assert static_shape(g.inputs[0]) == (1, C, 1)
    assert [t.name for t in g.inputs] == ["x"] + [s.input for s in facts["states"]]
    assert [t.name for t in g.outputs] == [m.graph.output[0].name] + [s.output for s in facts["states"]]
    for s in facts["states"]:  # state pairs are graph inputs / outputs of the declared shape
        assert static_shape(g.tensors()[s.input]) == tuple(s.shape)
        assert static_shape(g.tensors()[s.output]) == tuple(s.shape)


def test_metadata_keys_and_types():
    ctx = cut(causal_tcn_model(channels=C, t=T), chunk=2)
    meta = streaming_metadata(ctx.facts["streaming"])
    assert set(meta) == {"time_axis", "chunk", "latency_frames", "states"}
    assert (meta["time_axis"], meta["chunk"], meta["latency_frames"]) == (2, 2, 0)
    for s in meta["states"]:
        assert set(s) == {"input", "output", "shape", "init"}
        assert isinstance(s["shape"], list) and all(isinstance(d, int) for d in s["shape"])
        assert isinstance(s["init"], float)
    json.dumps(meta)
    ins = {t.name for t in ctx.graph.inputs}
    outs = {t.name for t in ctx.graph.outputs}
    assert all(s["input"] in ins and s["output"] in outs for s in meta["states"])
    assert len({s["input"] for s in meta["states"]}) == len(meta["states"])


def test_default_chunk_is_the_smallest_legal_one_and_offline_graph_is_kept():
    m = causal_tcn_model(channels=C, t=T)
    ctx = cut(m)  # chunk=None
    assert ctx.facts["streaming"]["chunk"] == 1
    offline = ctx.facts["offline_graph"]
    assert static_shape(offline.inputs[0]) == (1, C, T)
    assert len(offline.inputs) == 1 and not nodes_of(ctx, "Pad")


def test_average_pool_with_left_pad_gets_a_two_frame_state():
    m = model([node("AveragePool", ["x"], ["y"], name="pool", kernel_shape=[3], pads=[2, 0],
                    count_include_pad=1)],
              [("x", [1, C, T])], [("y", None)])
    ctx = cut(m, chunk=1)
    assert state_shapes(ctx) == [[1, C, 2]]
    assert list(nodes_of(ctx, "AveragePool")[0].attrs["pads"]) == [0, 0]
    assert_stream_matches_offline(m, ctx)


def window_head_model(frames=3, t=T, conv_k=1, n_out=5):
    """x -> Conv(k, causal) -> x[:, :, -frames:] -> Flatten -> Gemm: a summary output."""
    nodes = [node("Conv", ["x", "w"], ["c"], name="conv", kernel_shape=[conv_k], pads=[conv_k - 1, 0]),
             node("Slice", ["c", "starts", "ends", "axes"], ["head"], name="head"),
             node("Flatten", ["head"], ["flat"], name="flatten", axis=1),
             node("Gemm", ["flat", "W", "b"], ["y"], name="fc", transB=1)]
    inits = [init("w", weights([C, C, conv_k], 1)), ints("starts", [-frames]), ints("ends", [INT64_MAX]),
             ints("axes", [2]), init("W", weights([n_out, C * frames], 2)), init("b", weights([n_out], 3))]
    return model(nodes, [("x", [1, C, t])], [("y", None)], inits)


@pytest.mark.parametrize("chunk, kept", [(1, 2), (2, 1), (3, 0), (4, 0)])
def test_window_head_keeps_the_frames_the_chunk_does_not_bring(chunk, kept):
    m = window_head_model(frames=3)
    ctx = cut(m, chunk=chunk)
    assert not ctx.facts["streaming"]["per_frame_output"]
    assert state_shapes(ctx) == ([[1, C, kept]] if kept else [])
    assert_stream_matches_offline(m, ctx)


def test_window_head_after_a_causal_conv_has_two_states():
    m = window_head_model(frames=3, conv_k=3)
    ctx = cut(m, chunk=1)
    assert state_shapes(ctx) == [[1, C, 2], [1, C, 2]]
    assert_stream_matches_offline(m, ctx)


# --------------------------------------------------------------------------- equivalence

@pytest.mark.parametrize("chunk", [1, 2, 3])
def test_causal_stack_streams_like_offline(chunk):
    m = causal_tcn_model(channels=C, t=T, layers=((3, 1), (3, 2), (2, 4)))
    assert_stream_matches_offline(m, cut(m, chunk=chunk))


@pytest.mark.parametrize("chunk", [1, 2, 3])
def test_residual_block_with_pool_streams_like_offline(chunk):
    nodes = [node("Conv", ["x", "w1", "b1"], ["c1"], name="dw", kernel_shape=[3], dilations=[2],
                  pads=[4, 0], group=C),
             node("Relu", ["c1"], ["r1"]),
             node("Conv", ["r1", "w2"], ["c2"], name="pw", kernel_shape=[1]),
             node("Add", ["c2", "x"], ["res"]),
             node("AveragePool", ["res"], ["y"], name="pool", kernel_shape=[3], pads=[2, 0],
                  count_include_pad=1)]
    m = model(nodes, [("x", [1, C, T])], [("y", None)],
              [init("w1", weights([C, 1, 3], 1)), init("b1", weights([C], 2)),
               init("w2", weights([C, C, 1], 3))])
    ctx = cut(m, chunk=chunk)
    assert state_shapes(ctx) == [[1, C, 4], [1, C, 2]]  # the k=1 conv needs no state
    assert_stream_matches_offline(m, ctx)


@pytest.mark.parametrize("chunk", [1, 3])
@pytest.mark.parametrize("k, pads, latency", [(3, [1, 1], 1), (5, [2, 2], 2), (3, [0, 0], 2)])
def test_look_ahead_conv_streams_with_latency(chunk, k, pads, latency):
    m = model([node("Conv", ["x", "w"], ["c"], name="conv", kernel_shape=[k], pads=pads),
               node("Relu", ["c"], ["r"]),
               node("Conv", ["r", "w2"], ["y"], name="pointwise", kernel_shape=[1])],
              [("x", [1, C, T])], [("y", None)],
              [init("w", weights([C, C, k], 1)), init("w2", weights([C, C, 1], 2))])
    ctx = cut(m, chunk=chunk)
    assert ctx.facts["streaming"]["latency_frames"] == latency
    assert state_shapes(ctx) == [[1, C, k - 1]]
    assert_stream_matches_offline(m, ctx)


@pytest.mark.parametrize("chunk", [1, 2])
def test_conv2d_with_time_on_w_streams_like_offline(chunk):
    m = model([node("Conv", ["x", "w"], ["y"], name="conv2d", kernel_shape=[3, 3], pads=[1, 2, 1, 0])],
              [("x", [1, 2, 4, 6])], [("y", None)], [init("w", weights([3, 2, 3, 3], 1))])
    ctx = cut(m, chunk=chunk)
    assert state_shapes(ctx) == [[1, 2, 4, 2]]
    assert ctx.facts["streaming"]["time_axis"] == 3
    assert_stream_matches_offline(m, ctx)


# --------------------------------------------------------------------------- errors

def test_chunk_not_a_multiple_of_the_downsampling_lists_legal_values():
    m = model([node("Conv", ["x", "w"], ["y"], name="strided_conv", kernel_shape=[3], strides=[2],
                    pads=[2, 0])],
              [("x", [1, C, T])], [("y", None)], [init("w", weights([C, C, 3]))])
    with pytest.raises(RillError) as err:
        cut(m, chunk=3)
    assert "CHUNK=3" in str(err.value) and "2, 4, 6" in str(err.value)


def test_slice_keeping_the_first_frames_is_an_error_naming_the_node():
    m = model([node("Slice", ["x", "s", "e", "a"], ["h"], name="first_frames"),
               node("Flatten", ["h"], ["y"], name="flat")],
              [("x", [1, C, T])], [("y", None)], [ints("s", [0]), ints("e", [3]), ints("a", [2])])
    with pytest.raises(RillError) as err:
        cut(m, chunk=1)
    assert "first_frames" in str(err.value)


def test_flatten_of_a_streamed_tensor_is_an_error_naming_the_node():
    m = model([node("Relu", ["x"], ["r"]), node("Flatten", ["r"], ["y"], name="the_flatten")],
              [("x", [1, C, T])], [("y", None)])
    with pytest.raises(RillError) as err:
        cut(m, chunk=1)
    assert "the_flatten" in str(err.value)


def test_every_offending_node_is_listed():
    m = model([node("CumSum", ["x", "axis"], ["y1"], name="running_sum"),
               node("Slice", ["x", "s", "e", "a"], ["y2"], name="first_frames"),
               node("Flatten", ["x"], ["y3"], name="the_flatten")],
              [("x", [1, C, T])], [("y1", None), ("y2", None), ("y3", None)],
              [ints("axis", 2), ints("s", [0]), ints("e", [3]), ints("a", [2])])
    with pytest.raises(RillError) as err:
        cut(m, chunk=1)
    text = str(err.value)
    assert all(name in text for name in ("running_sum", "first_frames", "the_flatten")), text


def test_chunk_that_does_not_divide_the_summary_window_lists_legal_values():
    m = window_head_model(frames=3, t=T)
    with pytest.raises(RillError) as err:
        cut(m, chunk=5)
    text = str(err.value)
    assert "5" in text and "1, 2, 3, 4, 6, 12" in text


def test_requires_pads_folded_and_activations_fused():
    m = causal_tcn_model(channels=C, t=T)
    ctx = ctx_for(m, chunk=1, properties=set())
    with pytest.raises(RuntimeError, match="requires"):
        run_pass(StreamingCut(), ctx)
