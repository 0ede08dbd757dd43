"""assign-precision: which tensors are int16 and which layers keep int8 weights."""
from __future__ import annotations

import pytest

from compiler.errors import RillError
from graphs import ctx_for, gru_state_model, init, model, node, run_pass, weights
from passes.assign_precision import AssignPrecision

C, T = 4, 8
CALIBRATED = {"calibrated"}


def two_branch_model():
    """x -> conv_a -> a ; x -> conv_b -> b ; Concat(a, b) -> cat -> Relu -> y."""
    return model([node("Conv", ["x", "wa"], ["a"], name="conv_a", kernel_shape=[1]),
                  node("Conv", ["x", "wb"], ["b"], name="conv_b", kernel_shape=[1]),
                  node("Concat", ["a", "b"], ["cat"], name="cat", axis=1),
                  node("Tanh", ["cat"], ["y"], name="tanh")],
                 [("x", [1, C, T])], [("y", None)],
                 [init("wa", weights([C, C, 1], 1)), init("wb", weights([C, C, 1], 2))])


def assign(m, **opts):
    ctx = ctx_for(m, properties=CALIBRATED, **opts)
    run_pass(AssignPrecision(), ctx)
    return ctx


@pytest.mark.parametrize("bits", [8, 16])
def test_uniform_precision(bits):
    ctx = assign(two_branch_model(), bits=bits)
    assert set(ctx.facts["tensor_bits"].values()) == {bits}
    assert ctx.facts["weight_bits"] == {"conv_a": bits, "conv_b": bits}


def test_promotion_spreads_over_the_tie_group():
    """Concat inputs share exponent and precision: promoting conv_a widens b and cat too."""
    ctx = assign(two_branch_model(), int16_layers=["conv_a"])
    bits = ctx.facts["tensor_bits"]
    assert (bits["a"], bits["b"], bits["cat"]) == (16, 16, 16)
    assert (bits["x"], bits["y"]) == (8, 8)
    assert ctx.facts["weight_bits"] == {"conv_a": 16, "conv_b": 16}


def test_layers_by_tensor_name_and_the_input():
    ctx = assign(two_branch_model(), int16_layers=["y", "x"])
    bits = ctx.facts["tensor_bits"]
    assert (bits["x"], bits["y"], bits["a"]) == (16, 16, 8)


def test_int8_weights_with_int16_activations():
    ctx = ctx_for(two_branch_model(), properties=CALIBRATED, int16_layers=["conv_a"])
    ctx.facts["int8_weight_layers"] = ["conv_a"]
    run_pass(AssignPrecision(), ctx)
    assert ctx.facts["tensor_bits"]["a"] == 16
    assert ctx.facts["weight_bits"] == {"conv_a": 8, "conv_b": 16}


def test_unknown_layer_is_named():
    with pytest.raises(RillError, match=r"no layer named 'conv_z'.*conv_a"):
        assign(two_branch_model(), int16_layers=["conv_z"])


def test_recurrent_layers_take_int16():
    """--bits 16 makes a GRU/LSTM int16 like any layer (no warning), weights included."""
    for op in ("GRU", "LSTM"):
        ctx = assign(gru_state_model(op=op), bits=16)
        assert set(ctx.facts["tensor_bits"].values()) == {16}
        assert ctx.facts["weight_bits"] == {"proj": 16, "rnn": 16}
        assert not ctx.warnings


@pytest.mark.parametrize("op", ["GRU", "LSTM"])
def test_promoting_a_recurrent_layer_widens_its_state_only(op):
    """--int16 rnn: Y, its initial and final h (and c) share one precision, so all of them
    become int16; the layer's input, produced by the int8 conv, stays int8."""
    ctx = assign(gru_state_model(op=op), int16_layers=["rnn"])
    bits = ctx.facts["tensor_bits"]
    state = ["Y", "h", "hn"] + (["c", "cn"] if op == "LSTM" else [])
    assert {bits[t] for t in state} == {16}
    assert bits["xt"] == bits["p"] == bits["x"] == 8
    assert ctx.facts["weight_bits"] == {"proj": 8, "rnn": 16}


def test_recurrent_input_and_state_precisions_are_independent():
    """Promoting the conv before the GRU widens the GRU's input only (an int16-input, int8-h
    kernel variant); int8 weights can be kept for a promoted recurrent layer."""
    ctx = assign(gru_state_model(), int16_layers=["proj"])
    bits = ctx.facts["tensor_bits"]
    assert bits["p"] == bits["xt"] == 16 and bits["Y"] == bits["h"] == bits["hn"] == 8
    ctx = ctx_for(gru_state_model(), properties=CALIBRATED, int16_layers=["rnn"])
    ctx.facts["int8_weight_layers"] = ["rnn"]
    run_pass(AssignPrecision(), ctx)
    assert ctx.facts["tensor_bits"]["Y"] == 16 and ctx.facts["weight_bits"]["rnn"] == 8
