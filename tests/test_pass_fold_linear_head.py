"""FoldLinearHead: a linear chain before a last-frames Gemm becomes one Gemm over more frames."""
from __future__ import annotations

import numpy as np
import pytest

from graphs import (assert_ort_equal, const_of, ctx_for, init, ints, model, node, nodes_of, only,
                    op_types, run_pass, weights)
from passes.fold_linear_head import FoldLinearHead
from passes.fuse_activation import FuseActivation

C, T, O, KEEP = 4, 12, 3, 3


def slice_nodes(src: str, keep: int = KEEP, start_negative: bool = True) -> list:
    start = -keep if start_negative else T - keep
    return [node("Slice", [src, "s0", "s1", "s2"], ["sl"], name="slice"),
            node("Flatten", ["sl"], ["flat"], name="flatten", axis=1)]


def slice_inits(keep: int = KEEP, start_negative: bool = True) -> list:
    return [ints("s0", [-keep if start_negative else T - keep]), ints("s1", [T]), ints("s2", [2])]


def head_model(chain: list, src: str, *, keep: int = KEEP, extra_inits=(),
               start_negative: bool = True, outputs=None, o: int = O, tail=()):
    nodes = chain + slice_nodes(src, keep, start_negative) + [
        node("Gemm", ["flat", "fw", "fb"], ["y"], name="fc", transB=1),
        *tail]
    inits = [*extra_inits, *slice_inits(keep, start_negative),
             init("fw", weights([o, C * keep], 7)), init("fb", weights([o], 8))]
    return model(nodes, [("x", [1, C, T])], outputs or [("y", None)], inits)


POINTWISE = [node("Conv", ["x", "cw", "cb"], ["z"], name="conv_out", kernel_shape=[1])]
POINTWISE_INITS = [init("cw", weights([C, C, 1], 1)), init("cb", weights([C], 2))]
POOL = node("AveragePool", ["z"], ["p"], name="pool", kernel_shape=[3], pads=[2, 0],
            count_include_pad=1)
DILATED_DW = node("Conv", ["p", "dw", "db"], ["q"], name="dw", kernel_shape=[3], dilations=[2],
                  pads=[4, 0], group=C)
DW_INITS = [init("dw", weights([C, 1, 3], 3)), init("db", weights([C], 4))]


def fold(m, **opts):
    ctx = ctx_for(m, fold_linear=opts.pop("fold_linear", "on"), **opts)
    changed = run_pass(FoldLinearHead(), ctx)
    return ctx, changed


def test_pointwise_conv_and_pool_fold_into_one_gemm_over_five_frames():
    m = head_model(POINTWISE + [POOL], "p", extra_inits=POINTWISE_INITS)
    ctx, changed = fold(m)
    assert changed
    assert op_types(ctx) == ["Slice", "Flatten", "Gemm"]
    sl = only(ctx, "Slice")
    assert sl.inputs[0] is ctx.graph.inputs[0]
    assert list(const_of(sl.inputs[1])) == [T - 5] and list(const_of(sl.inputs[3])) == [2]
    assert const_of(only(ctx, "Gemm").inputs[1]).shape == (O, C * 5)
    [f] = ctx.facts["folded_heads"]
    assert f["window_frames"] == 5 and set(f["folded"]) == {"conv_out", "pool", "slice", "flatten"}
    assert_ort_equal(m, ctx)


def test_dilated_depthwise_chain_and_absolute_slice_start():
    m = head_model(POINTWISE + [POOL, DILATED_DW], "q", extra_inits=POINTWISE_INITS + DW_INITS,
                   start_negative=False)
    ctx, changed = fold(m)
    assert changed
    assert not nodes_of(ctx, "Conv") and not nodes_of(ctx, "AveragePool")
    assert ctx.facts["folded_heads"][0]["window_frames"] == KEEP + 2 + 4
    assert_ort_equal(m, ctx)


def test_last_frame_gather_without_flatten():
    nodes = POINTWISE + [node("Gather", ["z", "last"], ["g"], name="last_frame", axis=2),
                         node("Gemm", ["g", "fw", "fb"], ["y"], name="fc", transB=1)]
    m = model(nodes, [("x", [1, C, T])], [("y", None)],
              POINTWISE_INITS + [init("last", np.array(-1, np.int64), np.int64),
                                 init("fw", weights([O, C], 7)), init("fb", weights([O], 8))])
    ctx, changed = fold(m)
    assert changed and op_types(ctx) == ["Slice", "Flatten", "Gemm"]
    assert ctx.facts["folded_heads"][0]["window_frames"] == 1
    assert_ort_equal(m, ctx)


@pytest.mark.parametrize("why, chain, src, inits", [
    ("activation between", [POINTWISE[0], node("Relu", ["z"], ["r"], name="relu")], "r",
     POINTWISE_INITS),
    ("look-ahead pad", [node("Conv", ["x", "dw", "db"], ["z"], name="dw", kernel_shape=[3],
                             pads=[1, 1], group=C)], "z", DW_INITS),
    ("strided", [node("Conv", ["x", "cw", "cb"], ["z"], name="conv", kernel_shape=[1],
                      strides=[2])], "z", POINTWISE_INITS),
    ("pool without the pad in its count", [POINTWISE[0], node(
        "AveragePool", ["z"], ["p"], name="pool", kernel_shape=[3], pads=[2, 0])], "p",
     POINTWISE_INITS),
])
def test_nonlinear_or_time_variant_chains_stay(why, chain, src, inits):
    keep = 2 if why == "strided" else KEEP
    m = head_model(chain, src, keep=keep, extra_inits=inits)
    if why == "strided":  # the strided conv halves T
        m = model(chain + [node("Slice", [src, "s0", "s1", "s2"], ["sl"], name="slice"),
                           node("Flatten", ["sl"], ["flat"], name="flatten", axis=1),
                           node("Gemm", ["flat", "fw", "fb"], ["y"], name="fc", transB=1)],
                  [("x", [1, C, T])], [("y", None)],
                  inits + [ints("s0", [-keep]), ints("s1", [T // 2]), ints("s2", [2]),
                           init("fw", weights([O, C * keep], 7)), init("fb", weights([O], 8))])
    ctx, changed = fold(m)
    assert not changed, why
    assert "folded_heads" not in ctx.facts


def test_a_chain_tensor_read_elsewhere_is_not_folded():
    m = head_model(POINTWISE + [POOL], "p", extra_inits=POINTWISE_INITS,
                   outputs=[("y", None), ("z", None)])
    ctx, changed = fold(m)
    # the pool is still folded (its input z is the window source); conv_out stays for z
    assert changed
    assert [n.name for n in nodes_of(ctx, "Conv")] == ["conv_out"]
    assert ctx.facts["folded_heads"][0]["folded"][0] == "pool"
    assert_ort_equal(m, ctx)


def test_window_longer_than_the_model_input_is_not_folded():
    m = head_model(POINTWISE + [POOL, DILATED_DW], "q", keep=T - 4,
                   extra_inits=POINTWISE_INITS + DW_INITS)
    ctx, changed = fold(m)
    assert changed  # the dilated conv fits (8 + 4 frames), the pool no longer (+ 2 > T)
    [f] = ctx.facts["folded_heads"]
    assert f["window_frames"] == T and f["folded"][0] == "dw"
    assert [n.name for n in nodes_of(ctx, "AveragePool")] == ["pool"]
    assert_ort_equal(m, ctx)


@pytest.mark.parametrize("mode, chunk, folds", [
    ("auto", 1, False),   # 1 frame per call: the chain costs fewer MACs than the wider Gemm
    ("auto", 8, True),    # 8 frames per call: the folded Gemm is cheaper
    ("on", 1, True),
    ("off", 8, False),
])
def test_policy(mode, chunk, folds):
    o = 8  # a wide Gemm: folding 2 more frames into it costs more than the chain at 1 frame
    m = head_model(POINTWISE + [POOL], "p", extra_inits=POINTWISE_INITS, o=o)
    ctx, changed = fold(m, fold_linear=mode, chunk=chunk)
    assert changed == folds
    if folds:
        f = ctx.facts["folded_heads"][0]
        assert mode == "on" or f["macs_per_call_after"] <= f["macs_per_call_before"]
        assert f["macs_per_call_before"] == C * C * chunk + o * C * KEEP  # pools add, no MACs
        assert f["macs_per_call_after"] == o * C * 5


def test_fused_gemm_keeps_its_activation():
    m = head_model(POINTWISE + [POOL], "p", extra_inits=POINTWISE_INITS, outputs=[("r", None)],
                   tail=[node("Relu", ["y"], ["r"], name="relu")])
    ctx = ctx_for(m, fold_linear="on")
    assert run_pass(FuseActivation(), ctx)
    assert run_pass(FoldLinearHead(), ctx)
    gemm = only(ctx, "FusedGemm")
    assert gemm.attrs["activation"] in ("Relu", b"Relu")
    assert_ort_equal(m, ctx)
