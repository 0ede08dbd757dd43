"""FoldConstants: exporter shape/pad chains become plain constants; nothing input-dependent folds."""
from __future__ import annotations

import numpy as np

from compiler.graph import const_value
from graphs import (assert_ort_equal, const_of, constant, ctx_for, init, model, node, nodes_of,
                    only, op_types, run_pass, torchscript_pad_chain, weights)
from passes.fold_constants import FoldConstants
from passes.fuse_pad import FusePad

def pad_conv_model(left=2, right=0):
    nodes = torchscript_pad_chain(left, right) + [
        node("Pad", ["x", "pads", ""], ["xp"], name="pad"),
        node("Conv", ["xp", "w"], ["y"], name="conv", kernel_shape=[3]),
    ]
    return model(nodes, [("x", [1, 2, 8])], [("y", None)], [init("w", weights([2, 2, 3]))])


def test_torchscript_pad_chain_becomes_a_constant_pads_initializer():
    m = pad_conv_model(2, 0)
    ctx = ctx_for(m, shapes=False)
    assert run_pass(FoldConstants(), ctx)
    assert op_types(ctx) == ["Pad", "Conv"]
    pad = only(ctx, "Pad")
    pads = const_of(pad.inputs[1])
    assert pads.dtype == np.int64
    assert pads.tolist() == [0, 0, 2, 0, 0, 0]  # left pad on time only, ONNX [begins..., ends...]
    assert_ort_equal(m, ctx)


def test_folded_pad_chain_then_fuses_into_the_conv():
    m = pad_conv_model(1, 1)
    ctx = ctx_for(m, shapes=False)
    run_pass(FoldConstants(), ctx)
    assert const_of(only(ctx, "Pad").inputs[1]).tolist() == [0, 0, 1, 0, 0, 1]
    assert run_pass(FusePad(), ctx)
    assert op_types(ctx) == ["Conv"]
    assert list(only(ctx, "Conv").attrs["pads"]) == [1, 1]
    assert_ort_equal(m, ctx)


def test_shape_gather_unsqueeze_concat_reshape_becomes_a_constant_shape():
    nodes = [
        node("Relu", ["x"], ["r"]),
        node("Shape", ["r"], ["shape"]),
        constant("zero", 0, np.int64),
        node("Gather", ["shape", "zero"], ["batch"], axis=0),
        constant("ax0", [0], np.int64),
        node("Unsqueeze", ["batch", "ax0"], ["batch1"]),
        constant("minus1", [-1], np.int64),
        node("Concat", ["batch1", "minus1"], ["target"], axis=0),
        node("Reshape", ["r", "target"], ["y"]),
    ]
    m = model(nodes, [("x", [1, 4, 6])], [("y", None)])
    ctx = ctx_for(m, shapes=False)
    assert run_pass(FoldConstants(), ctx)
    assert op_types(ctx) == ["Relu", "Reshape"]
    assert const_of(only(ctx, "Reshape").inputs[1]).tolist() == [1, -1]
    assert list(ctx.graph.outputs[0].shape) == [1, 24]
    assert_ort_equal(m, ctx)


def test_constant_nodes_become_initializers():
    m = model([constant("k", 2.0), node("Mul", ["x", "k"], ["y"])],
              [("x", [1, 2, 3])], [("y", None)])
    ctx = ctx_for(m, shapes=False)
    assert run_pass(FoldConstants(), ctx)
    assert op_types(ctx) == ["Mul"]
    assert float(const_value(only(ctx, "Mul").inputs[1])) == 2.0
    assert_ort_equal(m, ctx)


def test_constant_arithmetic_folds_but_input_dependent_nodes_stay():
    m = model([node("Mul", ["a", "b"], ["ab"]), node("Add", ["x", "ab"], ["s"]),
               node("Relu", ["s"], ["y"])],
              [("x", [1, 3, 4])], [("y", None)],
              [init("a", [[1.0], [2.0], [3.0]]), init("b", [4.0])])
    ctx = ctx_for(m, shapes=False)
    assert run_pass(FoldConstants(), ctx)
    assert op_types(ctx) == ["Add", "Relu"]
    assert const_of(only(ctx, "Add").inputs[1]).tolist() == [[4.0], [8.0], [12.0]]
    assert_ort_equal(m, ctx)


def test_every_tensor_gets_a_shape_and_nothing_to_fold_is_unchanged():
    m = model([node("Conv", ["x", "w"], ["c"], kernel_shape=[3], pads=[2, 0]),
               node("Relu", ["c"], ["y"])],
              [("x", [1, 2, 8])], [("y", None)], [init("w", weights([3, 2, 3]))])
    ctx = ctx_for(m, shapes=False)
    assert not run_pass(FoldConstants(), ctx)
    assert "shapes" in ctx.properties
    assert [list(n.outputs[0].shape) for n in ctx.graph.nodes] == [[1, 3, 8], [1, 3, 8]]
    assert len(nodes_of(ctx, "Conv")) == 1
