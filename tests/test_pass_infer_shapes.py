"""InferShapes: every tensor gets a static shape, through fused ops too; unknown shapes are errors."""
from __future__ import annotations

import numpy as np
import pytest

from compiler.errors import RillError
from compiler.graph import static_shape
from graphs import conv1d_model, ctx_for, model, node, run_pass
from passes.fuse_activation import FuseActivation
from passes.fuse_silu import FuseSilu
from passes.infer_shapes import InferShapes


def test_shapes_through_fused_ops():
    m = conv1d_model(c_in=2, c_out=5, t=7, tail=[node("Relu", ["c"], ["r"]),
                                                 node("Sigmoid", ["r"], ["s"]),
                                                 node("Mul", ["r", "s"], ["y"])])
    ctx = ctx_for(m)
    run_pass(FuseActivation(), ctx)
    run_pass(FuseSilu(), ctx)
    for n in ctx.graph.nodes:  # forget every shape, then re-infer
        for t in n.outputs:
            t.shape = None
    assert not run_pass(InferShapes(), ctx)  # analysis only: reports "unchanged"
    assert "shapes" in ctx.properties
    assert [n.op for n in ctx.graph.nodes] == ["FusedConv", "Silu"]
    assert [static_shape(n.outputs[0]) for n in ctx.graph.nodes] == [(1, 5, 7), (1, 5, 7)]
    assert ctx.graph.outputs[0].dtype == np.float32


def test_unknown_shape_is_an_error_naming_the_node():
    m = model([node("Relu", ["x"], ["r"]), node("Reshape", ["r", "shape"], ["y"], name="the_reshape")],
              [("x", [1, 2, 6]), ("shape", [2], 7)], [("y", None)], check=False)
    ctx = ctx_for(m, shapes=False)
    with pytest.raises(RillError) as err:
        run_pass(InferShapes(), ctx)
    assert "the_reshape" in str(err.value)
