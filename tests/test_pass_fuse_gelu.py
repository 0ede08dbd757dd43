"""FuseGelu: exported exact GELU (Div or Mul by 1/sqrt(2), Erf, +1, two Muls in any grouping)
becomes one ai.rill Gelu (one table lookup), numerically the same in onnxruntime."""
from __future__ import annotations

import math

import pytest

from compiler.rill_ops import RILL_DOMAIN
from graphs import assert_ort_equal, ctx_for, init, model, node, only, op_types, run_pass
from passes.fuse_gelu import FuseGelu

SHAPE = [1, 3, 6]
CONSTS = [init("sqrt2", math.sqrt(2.0)), init("inv_sqrt2", 1 / math.sqrt(2.0)),
          init("one", 1.0), init("half", 0.5)]


def scaled(kind: str) -> list:
    if kind == "div":
        return [node("Div", ["x", "sqrt2"], ["a"])]
    return [node("Mul", ["inv_sqrt2", "x"], ["a"])]


PRODUCTS = {  # the three groupings exporters write
    "half_x_first": [node("Mul", ["x", "half"], ["hx"]), node("Mul", ["hx", "p"], ["y"])],
    "x_times_sum_first": [node("Mul", ["x", "p"], ["xp"]), node("Mul", ["xp", "half"], ["y"])],
    "half_sum_first": [node("Mul", ["p", "half"], ["hp"]), node("Mul", ["x", "hp"], ["y"])],
}


@pytest.mark.parametrize("kind", ["div", "mul"])
@pytest.mark.parametrize("grouping", sorted(PRODUCTS))
def test_exported_gelu_becomes_one_node(kind, grouping):
    nodes = scaled(kind) + [node("Erf", ["a"], ["e"], name="act/Erf"),
                            node("Add", ["e", "one"], ["p"])] + PRODUCTS[grouping]
    m = model(nodes, [("x", SHAPE)], [("y", None)], CONSTS)
    ctx = ctx_for(m)
    assert run_pass(FuseGelu(), ctx)
    assert op_types(ctx) == ["Gelu"]
    gelu = only(ctx, "Gelu")
    assert gelu.domain == RILL_DOMAIN and gelu.name == "act/Gelu"
    assert gelu.inputs[0].name == "x" and gelu.outputs[0] is ctx.graph.outputs[0]
    assert_ort_equal(m, ctx)


def test_erf_with_the_wrong_scale_is_left_alone():
    nodes = [node("Div", ["x", "one"], ["a"]), node("Erf", ["a"], ["e"]),
             node("Add", ["e", "one"], ["p"])] + PRODUCTS["half_x_first"]
    m = model(nodes, [("x", SHAPE)], [("y", None)], CONSTS)
    ctx = ctx_for(m)
    assert not run_pass(FuseGelu(), ctx)
    assert "Erf" in op_types(ctx)


def test_intermediate_used_elsewhere_is_left_alone():
    nodes = scaled("div") + [node("Erf", ["a"], ["e"]), node("Add", ["e", "one"], ["p"])] + \
        PRODUCTS["half_x_first"] + [node("Add", ["y", "p"], ["z"])]
    m = model(nodes, [("x", SHAPE)], [("z", None)], CONSTS)
    ctx = ctx_for(m)
    assert not run_pass(FuseGelu(), ctx)
