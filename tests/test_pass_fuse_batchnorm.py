"""FuseBatchNorm: an inference BatchNormalization folds into the Conv that feeds it."""
from __future__ import annotations

import numpy as np
import pytest

from graphs import (assert_ort_equal, const_of, ctx_for, init, model, node, only, op_types,
                    rng, run_pass, weights)
from passes.fuse_batchnorm import FuseBatchNorm

C_IN, C_OUT, T = 3, 4, 9
EPS = 1e-3


def bn_params(c=C_OUT, seed=7):
    r = rng(seed)
    return {"gamma": r.uniform(0.5, 2.0, c), "beta": r.standard_normal(c),
            "mean": r.standard_normal(c), "var": r.uniform(0.1, 3.0, c)}


def conv_bn_model(bias=True, group=1, c_in=C_IN, extra_nodes=(), outputs=None, k=3):
    p = bn_params()
    inits = [init("w", weights([C_OUT, c_in // group, k], 1))] + \
        [init(n, v) for n, v in p.items()]
    conv_in = ["x", "w"]
    if bias:
        inits.append(init("b", weights([C_OUT], 2)))
        conv_in.append("b")
    nodes = [node("Conv", conv_in, ["c"], name="conv", kernel_shape=[k], pads=[k - 1, 0], group=group),
             node("BatchNormalization", ["c", "gamma", "beta", "mean", "var"], ["y"], name="bn",
                  epsilon=EPS),
             *extra_nodes]
    return model(nodes, [("x", [1, c_in, T])], outputs or [("y", None)], inits), p


@pytest.mark.parametrize("bias", [True, False])
def test_conv_bn_folds_into_the_conv(bias):
    m, p = conv_bn_model(bias=bias)
    ctx = ctx_for(m)
    assert run_pass(FuseBatchNorm(), ctx, rel_tol=1e-5)
    assert op_types(ctx) == ["Conv"]
    c = only(ctx, "Conv")
    assert len(c.inputs) == 3
    assert c.outputs[0].name == "y" and c.outputs[0] is ctx.graph.outputs[0]
    # golden values: w' = w * g / sqrt(v + eps), b' = (b - mean) * g / sqrt(v + eps) + beta
    w = weights([C_OUT, C_IN, 3], 1).astype(np.float64)
    b = weights([C_OUT], 2).astype(np.float64) if bias else np.zeros(C_OUT)
    g, beta, mean, var = (np.asarray(p[k], np.float32).astype(np.float64)
                          for k in ("gamma", "beta", "mean", "var"))
    scale = g / np.sqrt(var + EPS)
    np.testing.assert_allclose(const_of(c.inputs[1]), w * scale[:, None, None], rtol=1e-6)
    np.testing.assert_allclose(const_of(c.inputs[2]), (b - mean) * scale + beta, rtol=1e-6, atol=1e-6)
    assert_ort_equal(m, ctx, rel=1e-5)


def test_depthwise_conv_bn_folds():
    m, _ = conv_bn_model(group=C_OUT, c_in=C_OUT)
    ctx = ctx_for(m)
    assert run_pass(FuseBatchNorm(), ctx)
    assert op_types(ctx) == ["Conv"]
    assert_ort_equal(m, ctx, rel=1e-5)


def test_not_folded_when_the_conv_output_has_another_consumer():
    m, _ = conv_bn_model(extra_nodes=[node("Add", ["y", "c"], ["out"])], outputs=[("out", None)])
    ctx = ctx_for(m)
    assert run_pass(FuseBatchNorm(), ctx)
    assert op_types(ctx) == ["Conv", "Conv", "Add"]  # the BN as a depthwise conv
    assert_ort_equal(m, ctx)


def test_not_folded_when_the_conv_output_is_a_graph_output():
    """The conv's output must stay: the BN becomes its own depthwise conv instead."""
    m, _ = conv_bn_model(outputs=[("y", None), ("c", None)])
    ctx = ctx_for(m)
    assert run_pass(FuseBatchNorm(), ctx)
    assert op_types(ctx) == ["Conv", "Conv"]
    assert ctx.graph.nodes[1].attrs["group"] == C_OUT
    assert_ort_equal(m, ctx)


def test_bn_after_a_non_conv_becomes_a_depthwise_conv():
    p = bn_params(C_IN)
    m = model([node("Relu", ["x"], ["r"]),
               node("BatchNormalization", ["r", "gamma", "beta", "mean", "var"], ["y"])],
              [("x", [1, C_IN, T])], [("y", None)], [init(n, v) for n, v in p.items()])
    ctx = ctx_for(m)
    assert run_pass(FuseBatchNorm(), ctx)
    assert op_types(ctx) == ["Relu", "Conv"]
    assert_ort_equal(m, ctx)


def test_two_conv_bn_pairs_both_fold():
    p = bn_params()
    nodes = [node("Conv", ["x", "w1"], ["c1"], name="conv1", kernel_shape=[1]),
             node("BatchNormalization", ["c1", "gamma", "beta", "mean", "var"], ["b1"], name="bn1"),
             node("Relu", ["b1"], ["r"]),
             node("Conv", ["r", "w2"], ["c2"], name="conv2", kernel_shape=[1]),
             node("BatchNormalization", ["c2", "gamma", "beta", "mean", "var"], ["y"], name="bn2")]
    m = model(nodes, [("x", [1, C_IN, T])], [("y", None)],
              [init("w1", weights([C_OUT, C_IN, 1], 1)), init("w2", weights([C_OUT, C_OUT, 1], 2))] +
              [init(n, v) for n, v in p.items()])
    ctx = ctx_for(m)
    assert run_pass(FuseBatchNorm(), ctx)
    assert op_types(ctx) == ["Conv", "Relu", "Conv"]
    assert not run_pass(FuseBatchNorm(), ctx)  # fixed point
    assert_ort_equal(m, ctx, rel=1e-5)


def test_batchnorm_after_an_add_becomes_a_depthwise_conv():
    """No conv to fold into: the same per-channel affine map as a group=C 1x1 Conv."""
    rng = np.random.default_rng(4)
    c = 4
    params = [init(n, v) for n, v in (("g", rng.uniform(0.5, 2, c)), ("be", rng.normal(size=c)),
                                      ("mu", rng.normal(size=c)), ("var", rng.uniform(0.5, 2, c)))]
    m = model([node("Add", ["x", "x"], ["s"]),
               node("BatchNormalization", ["s", "g", "be", "mu", "var"], ["y"], name="bn")],
              [("x", [1, c, 6])], [("y", None)], params)
    ctx = ctx_for(m)
    assert run_pass(FuseBatchNorm(), ctx)
    assert op_types(ctx) == ["Add", "Conv"]
    conv = ctx.graph.nodes[1]
    assert conv.attrs["group"] == c and conv.name == "bn"
    assert_ort_equal(m, ctx)
