"""FusePad: a constant-zero Pad folds into the Conv / AveragePool that reads it."""
from __future__ import annotations

import pytest

from graphs import (assert_ort_equal, attr_str, ctx_for, init, ints, model, node, only,
                    op_types, run_pass, weights)
from passes.fuse_pad import FusePad

C, T = 3, 10


def pad_then(op_node, pads, *, value=None, mode=None, axes=None, extra_nodes=(), outputs=None,
             inits=(), shape=(1, C, T)):
    pad_inputs = ["x", "pads", "pad_value" if value is not None else ""]
    all_inits = [ints("pads", pads), *inits]
    if value is not None:
        all_inits.append(init("pad_value", value))
    if axes is not None:
        pad_inputs.append("pad_axes")
        all_inits.append(ints("pad_axes", axes))
    attrs = {"mode": mode} if mode else {}
    nodes = [node("Pad", pad_inputs, ["xp"], name="pad", **attrs), op_node, *extra_nodes]
    return model(nodes, [("x", list(shape))], outputs or [(op_node.output[0], None)], all_inits)


def conv(pads=None, k=3, **attrs):
    if pads is not None:
        attrs["pads"] = pads
    return node("Conv", ["xp", "w", "b"], ["y"], name="conv", kernel_shape=[k], **attrs)


CONV_INITS = [init("w", weights([4, C, 3], 1)), init("b", weights([4], 2))]


@pytest.mark.parametrize("pads, conv_pads, expected", [
    ([0, 0, 2, 0, 0, 0], None, [2, 0]),            # causal F.pad(x, (2, 0))
    ([0, 0, 1, 0, 0, 2], [1, 1], [2, 3]),          # summed with the conv's own pads
    ([0, 0, 0, 0, 0, 0], [0, 1], [0, 1]),          # zero pad
])
def test_pad_conv_becomes_conv_with_summed_pads(pads, conv_pads, expected):
    m = pad_then(conv(conv_pads), pads, inits=CONV_INITS)
    ctx = ctx_for(m)
    assert run_pass(FusePad(), ctx)
    assert op_types(ctx) == ["Conv"]
    c = only(ctx, "Conv")
    assert list(c.attrs["pads"]) == expected
    assert c.inputs[0] is ctx.graph.inputs[0]
    assert_ort_equal(m, ctx)


def test_pad_with_axes_input_and_explicit_zero_value():
    m = pad_then(conv(), [2, 1], axes=[-1], value=0.0, inits=CONV_INITS)
    ctx = ctx_for(m)
    assert run_pass(FusePad(), ctx)
    assert list(only(ctx, "Conv").attrs["pads"]) == [2, 1]
    assert_ort_equal(m, ctx)


def test_pad_into_auto_pad_same_conv_makes_pads_explicit():
    m = pad_then(conv(auto_pad="SAME_UPPER"), [0, 0, 2, 0, 0, 0], inits=CONV_INITS)
    ctx = ctx_for(m)
    assert run_pass(FusePad(), ctx)
    c = only(ctx, "Conv")
    assert attr_str(c.attrs["auto_pad"]) == "NOTSET"
    assert list(c.attrs["pads"]) == [3, 1]
    assert_ort_equal(m, ctx)


def test_pad_into_conv2d_on_both_spatial_axes():
    w = weights([2, C, 3, 3], 1)
    m = pad_then(node("Conv", ["xp", "w"], ["y"], name="conv", kernel_shape=[3, 3], pads=[0, 1, 0, 1]),
                 [0, 0, 1, 2, 0, 0, 1, 0], inits=[init("w", w)], shape=(1, C, 5, T))
    ctx = ctx_for(m)
    assert run_pass(FusePad(), ctx)
    assert list(only(ctx, "Conv").attrs["pads"]) == [1, 3, 1, 1]
    assert_ort_equal(m, ctx)


@pytest.mark.parametrize("pool_attrs, pad, expected", [
    ({}, 2, [2, 0]),
    ({"count_include_pad": 0}, 2, [2, 0]),
    ({"count_include_pad": 1, "pads": [1, 1]}, 1, [2, 1]),
])
def test_pad_average_pool_counts_the_padding(pool_attrs, pad, expected):
    pool = node("AveragePool", ["xp"], ["y"], name="pool", kernel_shape=[3], **pool_attrs)
    m = pad_then(pool, [0, 0, pad, 0, 0, 0])
    ctx = ctx_for(m)
    assert run_pass(FusePad(), ctx)
    assert op_types(ctx) == ["AveragePool"]
    p = only(ctx, "AveragePool")
    assert list(p.attrs["pads"]) == expected
    assert int(p.attrs["count_include_pad"]) == 1
    assert_ort_equal(m, ctx)


def test_pad_not_fused_into_average_pool_that_excludes_its_own_padding():
    pool = node("AveragePool", ["xp"], ["y"], name="pool", kernel_shape=[3], pads=[1, 1],
                count_include_pad=0)
    m = pad_then(pool, [0, 0, 2, 0, 0, 0])
    ctx = ctx_for(m)
    assert not run_pass(FusePad(), ctx)
    assert op_types(ctx) == ["Pad", "AveragePool"]


@pytest.mark.parametrize("case", ["nonzero_value", "reflect", "edge", "channel_pad", "batch_pad",
                                  "negative_pad"])
def test_pad_not_fused_when_it_is_not_a_plain_zero_time_pad(case):
    kw = {"inits": CONV_INITS}
    pads = [0, 0, 2, 0, 0, 0]
    if case == "nonzero_value":
        kw["value"] = 1.0
    elif case in ("reflect", "edge"):
        kw["mode"] = case
    elif case == "channel_pad":
        pads = [0, 1, 2, 0, 0, 0]
        kw["inits"] = [init("w", weights([4, C + 1, 3], 1)), init("b", weights([4], 2))]
    elif case == "batch_pad":
        pads = [1, 0, 2, 0, 0, 0]
    elif case == "negative_pad":
        pads = [0, 0, 2, 0, 0, -1]
    m = pad_then(conv(), pads, **kw)
    ctx = ctx_for(m)
    assert not run_pass(FusePad(), ctx)
    assert op_types(ctx) == ["Pad", "Conv"]
    assert_ort_equal(m, ctx)


def test_pad_with_two_consumers_is_not_fused():
    m = pad_then(conv(), [0, 0, 2, 0, 0, 0], inits=CONV_INITS + [ints("ax", [1, 2])],
                 extra_nodes=[node("ReduceMean", ["xp", "ax"], ["mean"], keepdims=1),
                              node("Add", ["y", "mean"], ["out"])],
                 outputs=[("out", None)])
    ctx = ctx_for(m)
    assert not run_pass(FusePad(), ctx)
    assert "Pad" in op_types(ctx)
    assert_ort_equal(m, ctx)


def test_pad_output_that_is_a_graph_output_is_not_fused():
    m = pad_then(conv(), [0, 0, 2, 0, 0, 0], inits=CONV_INITS, outputs=[("y", None), ("xp", None)])
    ctx = ctx_for(m)
    assert not run_pass(FusePad(), ctx)
    assert op_types(ctx) == ["Pad", "Conv"]


@pytest.mark.parametrize("value", [-1e4, 0.0])
def test_pad_into_max_pool_keeps_its_pad_value(value):
    """F.pad(x, (2, 0), value=v) + MaxPool: one ai.rill MaxPool that pads with v, not -inf."""
    m = pad_then(node("MaxPool", ["xp"], ["y"], name="pool", kernel_shape=[3]), [0, 0, 2, 0, 0, 0],
                 value=value)
    ctx = ctx_for(m)
    assert run_pass(FusePad(), ctx)
    assert op_types(ctx) == ["MaxPool"]
    pool = ctx.graph.nodes[0]
    assert pool.domain == "ai.rill" and pool.attrs["pad_value"] == value
    assert list(pool.attrs["pads"]) == [2, 0]
    assert_ort_equal(m, ctx)


def test_pad_as_wide_as_the_pool_kernel_keeps_a_runnable_model():
    pool = node("AveragePool", ["xp"], ["y"], name="pool", kernel_shape=[3], count_include_pad=1)
    m = pad_then(pool, [0, 0, 3, 0, 0, 0])
    ctx = ctx_for(m)
    run_pass(FusePad(), ctx)  # onnxruntime equivalence check
    assert_ort_equal(m, ctx)
