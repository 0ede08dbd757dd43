"""FuseSilu: x * Sigmoid(x) becomes one ai.rill Silu (one table lookup)."""
from __future__ import annotations

import pytest

from compiler.rill_ops import RILL_DOMAIN
from graphs import assert_ort_equal, conv1d_model, ctx_for, model, node, only, op_types, run_pass
from passes.fuse_silu import FuseSilu

SHAPE = [1, 3, 6]


@pytest.mark.parametrize("sigmoid_first", [False, True])
def test_x_times_sigmoid_x_becomes_silu(sigmoid_first):
    mul_in = ["s", "c"] if sigmoid_first else ["c", "s"]
    m = conv1d_model(tail=[node("Sigmoid", ["c"], ["s"], name="act/Sigmoid"),
                           node("Mul", mul_in, ["y"], name="act/Mul")])
    ctx = ctx_for(m)
    assert run_pass(FuseSilu(), ctx)
    assert op_types(ctx) == ["Conv", "Silu"]
    silu = only(ctx, "Silu")
    assert silu.domain == RILL_DOMAIN
    assert silu.inputs[0] is only(ctx, "Conv").outputs[0]
    assert silu.outputs[0].name == "y" and silu.outputs[0] is ctx.graph.outputs[0]
    assert_ort_equal(m, ctx)


def test_silu_on_the_graph_input_and_in_the_middle():
    m = model([node("Sigmoid", ["x"], ["s"]), node("Mul", ["x", "s"], ["h"]),
               node("Neg", ["h"], ["n"]), node("Sigmoid", ["n"], ["s2"]), node("Mul", ["s2", "n"], ["y"])],
              [("x", SHAPE)], [("y", None)])
    ctx = ctx_for(m)
    assert run_pass(FuseSilu(), ctx)
    assert op_types(ctx) == ["Silu", "Neg", "Silu"]
    assert_ort_equal(m, ctx)


def test_sigmoid_times_another_tensor_is_not_silu():
    m = model([node("Sigmoid", ["x"], ["s"]), node("Neg", ["x"], ["other"]),
               node("Mul", ["s", "other"], ["y"])],
              [("x", SHAPE)], [("y", None)])
    ctx = ctx_for(m)
    assert not run_pass(FuseSilu(), ctx)
    assert sorted(op_types(ctx)) == ["Mul", "Neg", "Sigmoid"]


def test_sigmoid_with_a_second_consumer_is_not_fused():
    m = model([node("Sigmoid", ["x"], ["s"]), node("Mul", ["x", "s"], ["h"]),
               node("Add", ["h", "s"], ["y"])],
              [("x", SHAPE)], [("y", None)])
    ctx = ctx_for(m)
    assert not run_pass(FuseSilu(), ctx)
    assert "Silu" not in op_types(ctx)


def test_sigmoid_that_is_a_graph_output_is_not_fused():
    m = model([node("Sigmoid", ["x"], ["s"]), node("Mul", ["x", "s"], ["y"])],
              [("x", SHAPE)], [("y", None), ("s", None)])
    ctx = ctx_for(m)
    assert not run_pass(FuseSilu(), ctx)
    assert op_types(ctx) == ["Sigmoid", "Mul"]
