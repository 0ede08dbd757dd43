"""FuseGemm: canonical Gemm y = x @ W^T + b (W stored [N, K], alpha = beta = 1, transB = 1)."""
from __future__ import annotations

import numpy as np

from compiler.graph import static_shape
import pytest

from graphs import (assert_ort_equal, const_of, ctx_for, init, model, node, nodes_of, only,
                    op_types, random_input, run_pass, weights)
from passes.fuse_gemm import FuseGemm

M, K, N = 2, 5, 3


def canonical(gemm) -> tuple[np.ndarray, np.ndarray]:
    """(W [N, K], bias [N]) of a canonical Gemm, checking its attributes."""
    assert dict(gemm.attrs) == {"transB": 1}, gemm.attrs
    assert len(gemm.inputs) == 3
    return const_of(gemm.inputs[1]), const_of(gemm.inputs[2])


@pytest.mark.parametrize("bias_first", [False, True])
def test_matmul_plus_bias_becomes_one_gemm(bias_first):
    w, b = weights([K, N], 1), weights([N], 2)
    add_in = ["bias", "mm"] if bias_first else ["mm", "bias"]
    m = model([node("MatMul", ["x", "W"], ["mm"], name="fc"), node("Add", add_in, ["y"])],
              [("x", [M, K])], [("y", None)], [init("W", w), init("bias", b)])
    ctx = ctx_for(m)
    assert run_pass(FuseGemm(), ctx)
    assert op_types(ctx) == ["Gemm"]
    gemm = only(ctx, "Gemm")
    wt, bias = canonical(gemm)
    np.testing.assert_array_equal(wt, w.T)
    np.testing.assert_array_equal(bias, b)
    assert gemm.outputs[0].name == "y" and gemm.outputs[0] is ctx.graph.outputs[0]
    assert_ort_equal(m, ctx)


def test_matmul_without_bias_gets_a_zero_bias():
    w = weights([K, N], 1)
    m = model([node("MatMul", ["x", "W"], ["y"])], [("x", [M, K])], [("y", None)], [init("W", w)])
    ctx = ctx_for(m)
    assert run_pass(FuseGemm(), ctx)
    wt, bias = canonical(only(ctx, "Gemm"))
    np.testing.assert_array_equal(wt, w.T)
    np.testing.assert_array_equal(bias, np.zeros(N, np.float32))
    assert_ort_equal(m, ctx)


@pytest.mark.parametrize("trans_b", [0, 1])
def test_gemm_alpha_beta_trans_b_are_folded_into_the_constants(trans_b):
    w = weights([N, K] if trans_b else [K, N], 1)
    c = weights([N], 2)
    m = model([node("Gemm", ["x", "W", "C"], ["y"], alpha=0.5, beta=2.0, transB=trans_b)],
              [("x", [M, K])], [("y", None)], [init("W", w), init("C", c)])
    ctx = ctx_for(m)
    assert run_pass(FuseGemm(), ctx)
    wt, bias = canonical(only(ctx, "Gemm"))
    np.testing.assert_allclose(wt, 0.5 * (w if trans_b else w.T), rtol=1e-7)
    np.testing.assert_allclose(bias, 2.0 * c, rtol=1e-7)
    assert_ort_equal(m, ctx)


def test_gemm_scalar_c_is_broadcast_to_a_bias_vector():
    m = model([node("Gemm", ["x", "W", "C"], ["y"], transB=1)], [("x", [M, K])], [("y", None)],
              [init("W", weights([N, K], 1)), init("C", [0.25])])
    ctx = ctx_for(m)
    run_pass(FuseGemm(), ctx)
    _, bias = canonical(only(ctx, "Gemm"))
    np.testing.assert_array_equal(bias, np.full(N, 0.25, np.float32))
    assert_ort_equal(m, ctx)


def test_bias_add_after_gemm_is_folded():
    c, extra = weights([N], 2), weights([1, N], 3)
    m = model([node("Gemm", ["x", "W", "C"], ["g"], transB=1), node("Add", ["g", "e"], ["y"])],
              [("x", [M, K])], [("y", None)],
              [init("W", weights([N, K], 1)), init("C", c), init("e", extra)])
    ctx = ctx_for(m)
    assert run_pass(FuseGemm(), ctx)
    assert op_types(ctx) == ["Gemm"]
    _, bias = canonical(only(ctx, "Gemm"))
    np.testing.assert_allclose(bias, c + extra[0], rtol=1e-6)
    assert_ort_equal(m, ctx)


def test_second_run_is_a_fixed_point():
    m = model([node("MatMul", ["x", "W"], ["mm"]), node("Add", ["mm", "bias"], ["y"])],
              [("x", [M, K])], [("y", None)], [init("W", weights([K, N])), init("bias", weights([N]))])
    ctx = ctx_for(m)
    assert run_pass(FuseGemm(), ctx)
    assert not run_pass(FuseGemm(), ctx)
    assert_ort_equal(m, ctx)


def test_trans_a_becomes_a_transpose_in_front_of_a_canonical_gemm():
    m = model([node("Gemm", ["x", "W", "C"], ["y"], transA=1, alpha=0.5, beta=2.0)],
              [("x", [K, M])], [("y", None)], [init("W", weights([K, N])), init("C", weights([N]))])
    ctx = ctx_for(m)
    assert run_pass(FuseGemm(), ctx)
    assert op_types(ctx) == ["Transpose", "Gemm"]
    assert list(only(ctx, "Transpose").attrs["perm"]) == [1, 0]
    canonical(only(ctx, "Gemm"))
    assert_ort_equal(m, ctx)


@pytest.mark.parametrize("c_shape", [[M, N], [M, 1]])
def test_matrix_or_column_bias_is_added_after_the_gemm(c_shape):
    m = model([node("Gemm", ["x", "W", "C"], ["y"], beta=0.5)],
              [("x", [M, K])], [("y", None)],
              [init("W", weights([K, N], 1)), init("C", weights(c_shape, 2))])
    ctx = ctx_for(m)
    assert run_pass(FuseGemm(), ctx)
    assert op_types(ctx) == ["Gemm", "Add"]
    _, bias = canonical(only(ctx, "Gemm"))
    np.testing.assert_array_equal(bias, np.zeros(N, np.float32))
    assert only(ctx, "Add").outputs[0] is ctx.graph.outputs[0]
    assert_ort_equal(m, ctx)


def test_matmul_of_two_activations_is_not_a_gemm():
    m = model([node("Transpose", ["x"], ["xt"], perm=[1, 0]), node("MatMul", ["x", "xt"], ["y"])],
              [("x", [M, K])], [("y", None)])
    ctx = ctx_for(m)
    assert not run_pass(FuseGemm(), ctx)
    assert len(nodes_of(ctx, "MatMul")) == 1 and not nodes_of(ctx, "Gemm")


def test_matmul_over_3d_input_with_bias_becomes_reshape_gemm_reshape():
    """A per-frame Linear on [1, T, K] (after a recurrent layer): rows are frames."""
    m = model([node("MatMul", ["x", "W"], ["a"]), node("Add", ["a", "b"], ["y"])],
              [("x", [1, M, K])], [("y", None)],
              [init("W", weights([K, N], 1)), init("b", weights([N], 2))])
    ctx = ctx_for(m)
    assert run_pass(FuseGemm(), ctx)
    assert op_types(ctx) == ["Reshape", "Gemm", "Reshape"]
    gemm = only(ctx, "Gemm")
    assert static_shape(gemm.inputs[0]) == (M, K) and len(gemm.inputs) == 3
    assert_ort_equal(m, ctx)


def test_per_row_bias_add_is_not_folded():
    m = model([node("Gemm", ["x", "W", "C"], ["g"], transB=1), node("Add", ["g", "rows"], ["y"])],
              [("x", [M, K])], [("y", None)],
              [init("W", weights([N, K], 1)), init("C", weights([N], 2)),
               init("rows", weights([M, 1], 3))])
    ctx = ctx_for(m)
    run_pass(FuseGemm(), ctx)
    assert op_types(ctx) == ["Gemm", "Add"]
    assert_ort_equal(m, ctx)


def test_bias_add_not_folded_when_gemm_output_has_another_consumer():
    m = model([node("Gemm", ["x", "W"], ["g"], transB=1), node("Add", ["g", "b"], ["s"]),
               node("Mul", ["g", "s"], ["y"])],
              [("x", [M, K])], [("y", None)],
              [init("W", weights([N, K], 1)), init("b", weights([N], 2))])
    ctx = ctx_for(m)
    run_pass(FuseGemm(), ctx)
    assert op_types(ctx) == ["Gemm", "Add", "Mul"]
    assert_ort_equal(m, ctx)


def test_unnamed_matmuls_get_distinct_constants():
    w1, w2 = weights([K, 4], 1), weights([4, N], 2)
    m = model([node("MatMul", ["x", "w1"], ["h"], name=""), node("MatMul", ["h", "w2"], ["y"], name="")],
              [("x", [M, K])], [("y", None)], [init("w1", w1), init("w2", w2)])
    ctx = ctx_for(m)
    run_pass(FuseGemm(), ctx, check_equivalence=False)
    names = [t.name for g in nodes_of(ctx, "Gemm") for t in g.inputs[1:]]
    assert len(set(names)) == len(names), names
    assert_ort_equal(m, ctx)


@pytest.mark.parametrize("c_shape, m_rows", [((N, 1), N), ((2, N), 2)])
def test_gemm_with_non_vector_c_stays_equivalent(c_shape, m_rows):
    m = model([node("Gemm", ["x", "W", "C"], ["y"], transB=1)], [("x", [m_rows, K])], [("y", None)],
              [init("W", weights([N, K], 1)), init("C", weights(c_shape, 2))])
    ctx = ctx_for(m)
    run_pass(FuseGemm(), ctx)  # with the onnxruntime equivalence check
    assert_ort_equal(m, ctx, feeds={"x": random_input([m_rows, K], 5)})


def test_matmul_of_a_vector_is_a_one_row_gemm():
    """x [K] @ W [K, N] (a model over one feature vector) + bias: Reshape [1, K], Gemm, Reshape."""
    m = model([node("MatMul", ["x", "W"], ["a"]), node("Add", ["a", "b"], ["y"])],
              [("x", [K])], [("y", None)],
              [init("W", weights([K, N], 1)), init("b", weights([N], 2))])
    ctx = ctx_for(m)
    assert run_pass(FuseGemm(), ctx)
    assert op_types(ctx) == ["Reshape", "Gemm", "Reshape"]
    assert static_shape(only(ctx, "Gemm").inputs[0]) == (1, K)
    assert static_shape(ctx.graph.outputs[0]) == (N,)
    assert_ort_equal(m, ctx)
