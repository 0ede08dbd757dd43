"""FoldChomp: `conv(x, padding=p)[..., :-p]` (Chomp1d) becomes a causal conv with pads [p, 0]."""
from __future__ import annotations

import numpy as np

from graphs import assert_ort_equal, conv1d_model, ctx_for, ints, node, op_types, only, run_pass
from passes.fold_chomp import FoldChomp

INT64_MAX = np.iinfo(np.int64).max


def chomp_model(pad, crop, start=0, k=3, dilation=1, stride=1, t=12):
    return conv1d_model(k=k, dilation=dilation, t=t, stride=stride, pads=[pad, pad],
                        tail=[node("Slice", ["c", "s0", "e0", "ax"], ["y"], name="chomp")],
                        extra_inits=[ints("s0", [start]), ints("e0", [-crop]), ints("ax", [2])])


def test_chomp_becomes_a_causal_conv():
    m = chomp_model(pad=4, crop=4, dilation=2)
    ctx = ctx_for(m)
    assert run_pass(FoldChomp(), ctx)
    assert op_types(ctx) == ["Conv"]
    conv = only(ctx, "Conv")
    assert list(conv.attrs["pads"]) == [4, 0]
    assert [t.name for t in ctx.graph.outputs] == ["y"]
    assert tuple(ctx.graph.outputs[0].shape) == (1, 4, 12)
    assert_ort_equal(m, ctx)


def test_partial_crop_leaves_the_rest_of_the_right_pad():
    m = chomp_model(pad=2, crop=1)
    ctx = ctx_for(m)
    assert run_pass(FoldChomp(), ctx)
    assert list(only(ctx, "Conv").attrs["pads"]) == [2, 1]
    assert_ort_equal(m, ctx)


def test_crop_beyond_the_right_pad_or_from_the_front_is_kept():
    for kw in (dict(pad=1, crop=2), dict(pad=2, crop=2, start=1), dict(pad=2, crop=2, stride=2)):
        m = chomp_model(**kw)
        ctx = ctx_for(m)
        assert not run_pass(FoldChomp(), ctx), kw
        assert op_types(ctx) == ["Conv", "Slice"], kw
