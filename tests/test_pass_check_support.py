"""CheckSupport: a model with nodes Rill cannot compile fails before calibration with ONE error
naming every such node, its op and why; a supported model passes untouched."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from compiler.errors import RillError
from graphs import ctx_for, init, ints, model, node, op_types, run_pass, weights
from passes.check_support import CHECKS, CheckSupport, claimed_ops, lowering_for, unsupported

C, T, H = 3, 8, 4
X = ("x", [1, C, T])
ROOT = Path(__file__).resolve().parents[1]


def check(m, bits: int = 8, mutate=None):
    """Run CheckSupport on `m` (after `mutate(ctx)` edits the imported graph)."""
    ctx = ctx_for(m, bits=bits)
    if mutate is not None:
        mutate(ctx)
    return ctx, run_pass(CheckSupport(), ctx)


def refusal(m, bits: int = 8, mutate=None) -> RillError:
    with pytest.raises(RillError) as info:
        check(m, bits, mutate)
    return info.value


def gs_node(ctx, name: str):
    return next(n for n in ctx.graph.nodes if n.name == name)


# ----------------------------------------------------------------------------- whole models

def three_unsupported():
    """x -> Cos (no kernel) -> Gather of two channels -> Slice step 2 -> y."""
    return model([node("Cos", ["x"], ["c"], name="cos"),
                  node("Gather", ["c", "two"], ["p"], name="pool", axis=1),
                  node("Slice", ["p", "st", "en", "ax", "sp"], ["y"], name="every_other")],
                 [X], [("y", None)],
                 [ints("two", [0, 1]), ints("st", [0]), ints("en", [4]), ints("ax", [2]),
                  ints("sp", [2])])


@pytest.mark.parametrize("bits", [8, 16, 32])
def test_three_unsupported_nodes_in_one_error(bits):
    err = refusal(three_unsupported(), bits)
    assert "3 node(s)" in err.message
    assert len(err.details) == 3, str(err)
    cos, pool, sl = err.details
    assert "'cos'" in cos and "Cos" in cos and "no kernel" in cos
    assert "'pool'" in pool and "Gather" in pool and "not one constant index" in pool
    assert "'every_other'" in sl and "Slice" in sl and "steps other than 1" in sl
    assert ("float32" if bits == 32 else "int8/int16") in err.message


def supported_model():
    """Conv + Relu + residual Add + Clip + Gemm head: every node has a kernel."""
    return model([node("Conv", ["x", "w", "b"], ["h"], name="conv", kernel_shape=[3],
                       pads=[2, 0]),
                  node("Relu", ["h"], ["r"], name="relu"),
                  node("Add", ["r", "x"], ["s"], name="res"),
                  node("Clip", ["s", "lo", "hi"], ["y"], name="clip")],
                 [X], [("y", None)],
                 [init("w", weights([C, C, 3])), init("b", weights([C], 1)), init("lo", 0.0),
                  init("hi", 6.0)])


@pytest.mark.parametrize("bits", [8, 32])
def test_supported_model_passes_unchanged(bits):
    ctx, changed = check(supported_model(), bits)
    assert changed is False
    assert op_types(ctx) == ["Conv", "Relu", "Add", "Clip"]


class NoMatMul:
    """A lowering without a `matmul` method: MatMul is 'no kernel in <precision>'."""

    precision = "test"
    unary_ops = frozenset()


def test_op_without_a_method_in_one_precision():
    m = model([node("MatMul", ["x", "w"], ["y"], name="mm")], [X], [("y", None)],
              [init("w", weights([T, 2]))])
    ctx = ctx_for(m)
    n = gs_node(ctx, "mm")
    assert unsupported(n, ctx.graph, NoMatMul) == "no kernel for this op in test"
    assert unsupported(n, ctx.graph, lowering_for(8)) is None


# ----------------------------------------------------------------------------- each CHECKS entry

def _one(op, inputs, inits=(), x=X, extra_inputs=(), outputs=(("y", None),), **attrs):
    return model([node(op, inputs, [o[0] for o in outputs], name="n", **attrs)],
                 [x, *extra_inputs], list(outputs), list(inits), check=False)


def _set(**changes):
    def mutate(ctx):
        n = gs_node(ctx, "n")
        for key, value in changes.items():
            if key == "op":
                n.op = value
            elif key == "extra_input":
                n.inputs.append(ctx.graph.inputs[0])
            else:
                n.attrs[key] = value
    return mutate


def _conv(op="Conv"):
    return (_one("Conv", ["x", "w"], [init("w", weights([2, 2, 1, 1, 1]))],
                 x=("x", [1, 2, 3, 3, T]), kernel_shape=[1, 1, 1]),
            _set(op=op), "a 3-D convolution")


def _recurrent(op, **attrs):
    gates = 3 if op == "GRU" else 4
    return (_one(op, ["x", "W", "R"], [init("W", weights([1, gates * H, C])),
                                       init("R", weights([1, gates * H, H], 1))],
                 x=("x", [T, 1, C]), hidden_size=H, **attrs), None, "")


def _gru():
    m, _, _ = _recurrent("GRU", direction="reverse")
    return m, None, "direction 'reverse'"


def _lstm():
    m, _, _ = _recurrent("LSTM", input_forget=1)
    return m, None, "input_forget"


def _pool(op, **attrs):
    return _one(op, ["x"], kernel_shape=[2], **attrs)


def _reduce(op):
    return (_one(op, ["x", "axes"], extra_inputs=[("axes", [1], 7)]), None,
            "axes that are not constant")


def _binary(op):
    m = _one(op, ["x", "k"], [init("k", weights([C, 1]))])
    if op in ("Max", "Min"):  # variadic in ONNX
        return _one(op, ["x", "k", "k"], [init("k", weights([C, 1]))]), None, "3 inputs"
    return m, _set(extra_input=True), "3 inputs"


REFUSALS = {
    "Conv": _conv,
    "FusedConv": lambda: _conv("FusedConv"),
    "ConvTranspose": lambda: (_one("ConvTranspose", ["x", "w"],
                                   [init("w", weights([2, 2, 1, 1, 1]))],
                                   x=("x", [1, 2, 3, 3, T]), kernel_shape=[1, 1, 1]), None,
                              "a 3-D ConvTranspose"),
    "AveragePool": lambda: (_pool("AveragePool"), _set(dilations=[2]), "dilations"),
    "MaxPool": lambda: (_pool("MaxPool", outputs=(("y", None), ("idx", None, 7))), None,
                        "Indices output"),
    "Pad": lambda: (_one("Pad", ["x", "pads"], [ints("pads", [0, 0, 1, 0, 0, 1])]),
                    _set(mode="mirror"), "mode 'mirror'"),
    "Slice": lambda: (_one("Slice", ["x", "st", "en"], extra_inputs=[("st", [1], 7)],
                           inits=[ints("en", [4])]), None, "not constant"),
    "Gather": lambda: (_one("Gather", ["x", "i"], [ints("i", [0, 1])], axis=2), None,
                       "not one constant index"),
    "ReduceMean": lambda: _reduce("ReduceMean"),
    "ReduceMax": lambda: _reduce("ReduceMax"),
    "ReduceSum": lambda: _reduce("ReduceSum"),
    "Add": lambda: _binary("Add"), "Sub": lambda: _binary("Sub"),
    "Mul": lambda: _binary("Mul"), "Div": lambda: _binary("Div"),
    "Max": lambda: _binary("Max"), "Min": lambda: _binary("Min"),
    "LayerNormalization": lambda: (_one("LayerNormalization", ["x", "g"],
                                        extra_inputs=[("g", [T])]), None,
                                   "scale that is not constant"),
    "GRU": _gru,
    "LSTM": _lstm,
    "Clip": lambda: (_one("Clip", ["x", "lo"], extra_inputs=[("lo", [])]), None,
                     "bounds that are not constant"),
    "Pow": lambda: (_one("Pow", ["x", "e"], [init("e", [[2.0], [3.0], [2.0]])]), None,
                    "constant scalar exponent"),
}


def test_every_check_has_a_refusal_case():
    assert set(REFUSALS) == set(CHECKS)


@pytest.mark.parametrize("op", sorted(REFUSALS))
def test_each_check_refuses_naming_the_node(op):
    m, mutate, why = REFUSALS[op]()
    err = refusal(m, 8, mutate)
    assert len(err.details) == 1, str(err)
    assert "node 'n'" in err.details[0] and f"({op})" in err.details[0], str(err)
    assert why in err.details[0], str(err)


def test_layernorm_statistics_outputs_refused():
    m = _one("LayerNormalization", ["x", "g"], [init("g", np.ones(T, np.float32))],
             outputs=(("y", None), ("mean", None)))
    assert "Mean and InvStdDev" in refusal(m).details[0]


def test_layernorm_offset_must_be_constant():
    m = _one("LayerNormalization", ["x", "g", "b"], [init("g", np.ones(T, np.float32))],
             extra_inputs=[("b", [T])])
    assert "offset (B) that is not constant" in refusal(m).details[0]


def test_non_constant_weights_refused():
    m = _one("Conv", ["x", "w"], extra_inputs=[("w", [2, C, 1])], kernel_shape=[1])
    assert "weights that are not constant" in refusal(m).details[0]


# ----------------------------------------------------------------------------- claims and docs

INTERNAL_OPS = {"FusedConv", "FusedGemm", "MaskFrames"}  # made by Rill's own passes


def test_node_test_harness_attempts_what_the_pass_accepts():
    from onnx_node_cases import supported_ops
    assert supported_ops() == claimed_ops(32)


def test_readme_lists_every_claimed_op():
    text = (ROOT / "README.md").read_text()
    section = text.split("## Supported today", 1)[1].split("\n## ", 1)[0].lower()
    words = set(re.findall(r"[a-z]+", section))
    missing = sorted(op for op in (claimed_ops(8) | claimed_ops(32)) - INTERNAL_OPS
                     if op.lower() not in words)
    assert not missing, f"README 'Supported today' does not name {missing}"
