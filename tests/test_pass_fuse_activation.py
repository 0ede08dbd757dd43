"""FuseActivation: Relu / Clip after a Conv or Gemm become ai.rill FusedConv / FusedGemm."""
from __future__ import annotations

import math

import pytest

from compiler.rill_ops import RILL_DOMAIN
from graphs import (assert_ort_equal, attr_str, conv1d_model, ctx_for, init, model, node, only,
                    op_types, run_pass, runnable, weights)
from passes.fuse_activation import FuseActivation


def clip_model(lo, hi):
    inits, ins = [], ["c", "lo" if lo is not None else "", "hi" if hi is not None else ""]
    if lo is not None:
        inits.append(init("lo", lo))
    if hi is not None:
        inits.append(init("hi", hi))
    while ins[-1] == "":
        ins.pop()
    return conv1d_model(tail=[node("Clip", ins, ["y"], name="clip")], extra_inits=inits)


def test_conv_relu_becomes_fused_conv():
    m = conv1d_model(tail=[node("Relu", ["c"], ["y"], name="relu")])
    ctx = ctx_for(m)
    assert run_pass(FuseActivation(), ctx)
    assert op_types(ctx) == ["FusedConv"]
    f = only(ctx, "FusedConv")
    assert f.domain == RILL_DOMAIN
    assert attr_str(f.attrs["activation"]) == "Relu"
    assert list(f.attrs["pads"]) == [2, 0] and list(f.attrs["kernel_shape"]) == [3]  # conv attrs kept
    assert f.outputs[0].name == "y" and f.outputs[0] is ctx.graph.outputs[0]
    assert_ort_equal(m, ctx)


@pytest.mark.parametrize("lo, hi, params", [
    (0.0, 6.0, [0.0, 6.0]),
    (-1.0, 1.0, [-1.0, 1.0]),
    (0.0, None, [0.0, math.inf]),
    (2.0, 1.0, [1.0, 1.0]),  # min > max: min(max(x, 2), 1) is 1 everywhere
])
def test_conv_clip_becomes_fused_conv_with_clip_params(lo, hi, params):
    m = clip_model(lo, hi)
    ctx = ctx_for(m)
    assert run_pass(FuseActivation(), ctx)
    f = only(ctx, "FusedConv")
    assert attr_str(f.attrs["activation"]) == "Clip"
    assert list(f.attrs["activation_params"]) == params
    assert_ort_equal(m, ctx)


def test_gemm_relu_becomes_fused_gemm():
    m = model([node("Gemm", ["x", "W", "b"], ["g"], name="fc", transB=1), node("Relu", ["g"], ["y"])],
              [("x", [1, 6])], [("y", None)], [init("W", weights([4, 6], 1)), init("b", weights([4], 2))])
    ctx = ctx_for(m)
    assert run_pass(FuseActivation(), ctx)
    assert op_types(ctx) == ["FusedGemm"]
    f = only(ctx, "FusedGemm")
    assert f.domain == RILL_DOMAIN and attr_str(f.attrs["activation"]) == "Relu"
    assert int(f.attrs["transB"]) == 1
    assert_ort_equal(m, ctx)


def test_only_the_first_of_two_activations_is_fused():
    m = conv1d_model(tail=[node("Clip", ["c", "lo", "hi"], ["a"], name="clip"),
                           node("Relu", ["a"], ["y"], name="relu")],
                     extra_inits=[init("lo", -1.0), init("hi", 1.0)])
    ctx = ctx_for(m)
    assert run_pass(FuseActivation(), ctx)
    assert op_types(ctx) == ["FusedConv", "Relu"]
    assert attr_str(only(ctx, "FusedConv").attrs["activation"]) == "Clip"
    assert_ort_equal(m, ctx)


def test_not_fused_when_the_conv_output_is_also_a_graph_output():
    m = model([node("Conv", ["x", "w"], ["c"], name="conv", kernel_shape=[1]),
               node("Relu", ["c"], ["y"], name="relu")],
              [("x", [1, 2, 5])], [("y", None), ("c", None)], [init("w", weights([3, 2, 1]))])
    ctx = ctx_for(m)
    assert not run_pass(FuseActivation(), ctx)
    assert op_types(ctx) == ["Conv", "Relu"]


def test_not_fused_when_the_conv_output_has_two_consumers():
    m = conv1d_model(tail=[node("Relu", ["c"], ["r"], name="relu"), node("Add", ["r", "c"], ["y"])])
    ctx = ctx_for(m)
    assert not run_pass(FuseActivation(), ctx)
    assert op_types(ctx) == ["Conv", "Relu", "Add"]


def test_clip_with_input_dependent_bounds_is_not_fused():
    m = conv1d_model(tail=[node("ReduceMax", ["x"], ["hi"], keepdims=0),
                           node("Clip", ["c", "", "hi"], ["y"], name="clip")])
    ctx = ctx_for(m)
    assert not run_pass(FuseActivation(), ctx)
    assert "FusedConv" not in op_types(ctx)


def test_relu_after_a_non_conv_is_left_alone():
    m = model([node("Add", ["x", "x"], ["a"]), node("Relu", ["a"], ["y"])],
              [("x", [1, 2, 3])], [("y", None)])
    ctx = ctx_for(m)
    assert not run_pass(FuseActivation(), ctx)
    assert op_types(ctx) == ["Add", "Relu"]


def test_fused_graph_expands_back_to_standard_onnx():
    m = clip_model(0.0, 6.0)
    ctx = ctx_for(m)
    run_pass(FuseActivation(), ctx)
    r = runnable(ctx)
    assert {n.domain for n in r.graph.node} <= {"", "ai.onnx"}
    assert [n.op_type for n in r.graph.node] == ["Conv", "Clip"]
    assert [o.name for o in r.graph.output] == ["y"]
