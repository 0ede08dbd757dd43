"""RemoveIdentity: Identity / Dropout disappear, the model's interface and outputs do not change."""
from __future__ import annotations

import pytest

from compiler.errors import RillError
from graphs import assert_ort_equal, ctx_for, init, model, node, op_types, run_pass
from passes.remove_identity import RemoveIdentity

SHAPE = [1, 3, 5]


def test_identity_and_dropout_in_the_middle_are_removed():
    m = model([node("Relu", ["x"], ["a"]),
               node("Identity", ["a"], ["b"]),
               node("Dropout", ["b", "ratio"], ["c"], name="drop"),
               node("Neg", ["c"], ["y"])],
              [("x", SHAPE)], [("y", SHAPE)], [init("ratio", 0.5)])
    ctx = ctx_for(m)
    assert run_pass(RemoveIdentity(), ctx)
    assert op_types(ctx) == ["Relu", "Neg"]
    neg = ctx.graph.nodes[1]
    assert neg.inputs[0] is ctx.graph.nodes[0].outputs[0]
    assert_ort_equal(m, ctx)


def test_dropout_with_unused_mask_is_removed():
    m = model([node("Relu", ["x"], ["a"]),
               node("Dropout", ["a"], ["b", "mask"], name="drop"),
               node("Neg", ["b"], ["y"])],
              [("x", SHAPE)], [("y", SHAPE)])
    ctx = ctx_for(m)
    assert run_pass(RemoveIdentity(), ctx)
    assert op_types(ctx) == ["Relu", "Neg"]
    assert_ort_equal(m, ctx)


def test_graph_output_fed_by_identity_keeps_its_name():
    m = model([node("Relu", ["x"], ["a"]), node("Identity", ["a"], ["y"])],
              [("x", SHAPE)], [("y", SHAPE)])
    ctx = ctx_for(m)
    assert run_pass(RemoveIdentity(), ctx)
    assert op_types(ctx) == ["Relu"]
    assert [t.name for t in ctx.graph.outputs] == ["y"]
    assert ctx.graph.nodes[0].outputs[0] is ctx.graph.outputs[0]
    assert [t.name for t in ctx.graph.inputs] == ["x"]
    assert_ort_equal(m, ctx)


def test_chain_of_identities_to_output():
    m = model([node("Relu", ["x"], ["a"]), node("Identity", ["a"], ["b"]),
               node("Identity", ["b"], ["y"])],
              [("x", SHAPE)], [("y", SHAPE)])
    ctx = ctx_for(m)
    assert run_pass(RemoveIdentity(), ctx)
    assert op_types(ctx) == ["Relu"]
    assert [t.name for t in ctx.graph.outputs] == ["y"]
    assert_ort_equal(m, ctx)


def test_dead_nodes_are_removed():
    m = model([node("Relu", ["x"], ["y"]), node("Neg", ["x"], ["unused"])],
              [("x", SHAPE)], [("y", SHAPE)])
    ctx = ctx_for(m, shapes=False)  # shape inference would clean the dead node up already
    assert len(ctx.graph.nodes) == 2
    assert run_pass(RemoveIdentity(), ctx)
    assert op_types(ctx) == ["Relu"]


def test_nothing_to_remove_reports_unchanged():
    m = model([node("Relu", ["x"], ["a"]), node("Neg", ["a"], ["y"])],
              [("x", SHAPE)], [("y", SHAPE)])
    ctx = ctx_for(m)
    assert not run_pass(RemoveIdentity(), ctx)
    assert op_types(ctx) == ["Relu", "Neg"]


def test_used_dropout_mask_is_an_error_naming_the_node():
    m = model([node("Dropout", ["x"], ["a", "mask"], name="the_dropout"),
               node("Cast", ["mask"], ["m"], to=1),
               node("Add", ["a", "m"], ["y"])],
              [("x", SHAPE)], [("y", SHAPE)])
    ctx = ctx_for(m)
    with pytest.raises(RillError, match="the_dropout"):
        run_pass(RemoveIdentity(), ctx)


def test_identity_from_input_to_output_keeps_the_interface():
    m = model([node("Identity", ["x"], ["y"])], [("x", SHAPE)], [("y", SHAPE)])
    ctx = ctx_for(m)
    run_pass(RemoveIdentity(), ctx, check_equivalence=False)
    assert [t.name for t in ctx.graph.inputs] == ["x"]
    assert [t.name for t in ctx.graph.outputs] == ["y"]
    assert_ort_equal(m, ctx)


def test_identity_of_another_graph_output_keeps_both_outputs():
    m = model([node("Relu", ["x"], ["r"]), node("Identity", ["r"], ["y"])],
              [("x", SHAPE)], [("r", SHAPE), ("y", SHAPE)])
    ctx = ctx_for(m)
    run_pass(RemoveIdentity(), ctx, check_equivalence=False)
    assert sorted(t.name for t in ctx.graph.outputs) == ["r", "y"]
    assert_ort_equal(m, ctx)


@pytest.mark.parametrize("extra", [[], ["ratio"]])
def test_dropout_from_input_to_output_becomes_the_identity_copy(extra):
    inits = [init("ratio", 0.5)] if extra else []
    m = model([node("Dropout", ["x", *extra], ["y", "mask"])], [("x", SHAPE)], [("y", SHAPE)],
              inits)
    ctx = ctx_for(m)
    assert run_pass(RemoveIdentity(), ctx, check_equivalence=False)
    assert op_types(ctx) == ["Identity"]
    ident = ctx.graph.nodes[0]
    assert [t.name for t in ident.inputs] == ["x"] and [t.name for t in ident.outputs] == ["y"]
    assert_ort_equal(m, ctx)
