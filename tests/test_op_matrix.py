"""Every op of issue 5's list in the three precisions: a one- to three-node model per op, compiled
at --bits 8, 16 and 32 (offline, esp32p4), whose generated C the compile itself verifies: bit for
bit against the integer reference (int8, int16) or within 1e-5 x max|output| of onnxruntime
(float32), self-test included. `ISSUE_OPS` is the issue's list; each case must keep its op
through the front end and pass check-support in every precision (always run, cheap). The 3 x 42
compiles take minutes, so they run with RILL_OP_MATRIX=1 (`make op-matrix`); without it a fixed
sample of 6 ops runs in each precision."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable

import numpy as np
import onnx
import pytest

from compiler.pass_manager import PassManager
from compiler.pipeline import float_passes
from conftest import run_cli
from graphs import ctx_for, init, ints, model, node, weights

C, T = 4, 8
X = ("x", [1, C, T])
FULL = os.environ.get("RILL_OP_MATRIX") == "1"
#: The ops of issue 5's "Ops" paragraph (Conv1d and Conv2d are both Conv; SiLU and GELU are
#: matched by the front end as exported: x * sigmoid(x), the erf form).
ISSUE_OPS = ("Conv1d", "Conv2d", "ConvTranspose", "Gemm", "MatMul", "MatMul2", "Add", "Sub",
             "Mul", "Div", "Concat", "Split", "Slice", "Pad", "Transpose", "Reshape", "Flatten",
             "Squeeze", "Unsqueeze", "AveragePool", "MaxPool", "GlobalAveragePool", "ReduceMean",
             "ReduceMax", "ReduceSum", "Softmax", "LayerNormalization", "Relu", "LeakyRelu",
             "PRelu", "Clip", "Sigmoid", "HardSigmoid", "Tanh", "HardSwish", "SiLU", "GELU",
             "Exp", "Sqrt", "Pow", "GRU", "LSTM")
SAMPLE = ("Conv2d", "MatMul2", "Div", "LayerNormalization", "GELU", "LSTM")


def one(op: str, inputs=("x",), inits=(), x=X, **attrs) -> onnx.ModelProto:
    return model([node(op, list(inputs), ["y"], name=op.lower(), **attrs)], [x], [("y", None)],
                 list(inits))


def chain(nodes: list, inits=(), x=X) -> onnx.ModelProto:
    """nodes: (op, inputs, attrs); each writes t<i>, the last one y."""
    made = [node(op, list(ins), ["y" if i == len(nodes) - 1 else f"t{i}"], name=f"n{i}", **attrs)
            for i, (op, ins, attrs) in enumerate(nodes)]
    return model(made, [x], [("y", None)], list(inits))


def col(name: str, values) -> onnx.TensorProto:
    return init(name, np.asarray(values, np.float32).reshape(-1, 1))


def rnn(op: str) -> onnx.ModelProto:
    gates, h = (3 if op == "GRU" else 4), 5
    return model([node(op, ["x", "W", "R", "B"], ["y4", "hn"], name=op.lower(), hidden_size=h),
                  node("Squeeze", ["y4", "ax"], ["y"], name="squeeze")],
                 [("x", [T, 1, C])], [("y", None)],
                 [init("W", weights([1, gates * h, C], 1)), init("R", weights([1, gates * h, h], 2)),
                  init("B", weights([1, 2 * gates * h], 3, 0.1)), ints("ax", [1, 2])])


CASES: dict[str, Callable[[], onnx.ModelProto]] = {
    "Conv1d": lambda: one("Conv", ["x", "w", "b"], [init("w", weights([5, C, 3])),
                                                    init("b", weights([5], 1))],
                          kernel_shape=[3], pads=[2, 0], dilations=[2], group=1),
    "Conv2d": lambda: one("Conv", ["x", "w"], [init("w", weights([4, 1, 2, 3]))],
                          x=("x", [1, 2, 3, T]), kernel_shape=[2, 3], pads=[0, 1, 1, 1],
                          group=2),
    "ConvTranspose": lambda: one("ConvTranspose", ["x", "w", "b"],
                                 [init("w", weights([C, 3, 2])), init("b", weights([3], 1))],
                                 strides=[2], kernel_shape=[2]),
    "Gemm": lambda: chain([("Flatten", ["x"], {"axis": 1}),
                           ("Gemm", ["t0", "w", "b"], {"transB": 1})],
                          [init("w", weights([5, C * T])), init("b", weights([5], 1))]),
    "MatMul": lambda: chain([("Transpose", ["x"], {"perm": [0, 2, 1]}),
                             ("MatMul", ["t0", "w"], {})], [init("w", weights([C, 3]))]),
    "MatMul2": lambda: chain([("Transpose", ["x"], {"perm": [0, 2, 1]}),
                              ("MatMul", ["t0", "x"], {})]),
    "Add": lambda: one("Add", ["x", "k"], [col("k", [0.5, -1.0, 0.25, 2.0])]),
    "Sub": lambda: one("Sub", ["k", "x"], [col("k", [0.5, -1.0, 0.25, 2.0])]),
    "Mul": lambda: chain([("Tanh", ["x"], {}), ("Mul", ["x", "t0"], {})]),
    "Div": lambda: chain([("Abs", ["x"], {}), ("Add", ["t0", "one"], {}),
                          ("Div", ["x", "t1"], {})], [init("one", np.float32(1.0))]),
    "Concat": lambda: chain([("Relu", ["x"], {}), ("Concat", ["x", "t0"], {"axis": 1})]),
    "Split": lambda: model([node("Split", ["x"], ["s0", "s1"], name="split", axis=1,
                                 num_outputs=2), node("Add", ["s0", "s1"], ["y"], name="add")],
                           [X], [("y", None)]),
    "Slice": lambda: one("Slice", ["x", "s", "e", "a"], [ints("s", [1]), ints("e", [3]),
                                                       ints("a", [1])]),
    "Pad": lambda: one("Pad", ["x", "p"], [ints("p", [0, 1, 0, 0, 2, 0])], mode="reflect"),
    "Transpose": lambda: one("Transpose", perm=[0, 2, 1]),
    "Reshape": lambda: one("Reshape", ["x", "s"], [ints("s", [1, 2, 2 * T])]),
    "Flatten": lambda: one("Flatten", axis=1),
    "Squeeze": lambda: one("Squeeze", ["x", "a"], [ints("a", [2])], x=("x", [1, C, 1, T])),
    "Unsqueeze": lambda: one("Unsqueeze", ["x", "a"], [ints("a", [1])]),
    "AveragePool": lambda: one("AveragePool", kernel_shape=[3], pads=[1, 1],
                               count_include_pad=0),
    "MaxPool": lambda: one("MaxPool", kernel_shape=[2], strides=[2]),
    "GlobalAveragePool": lambda: one("GlobalAveragePool"),
    "ReduceMean": lambda: one("ReduceMean", ["x", "a"], [ints("a", [1])], keepdims=1),
    "ReduceMax": lambda: one("ReduceMax", ["x", "a"], [ints("a", [1])], keepdims=1),
    "ReduceSum": lambda: one("ReduceSum", ["x", "a"], [ints("a", [1])], keepdims=1),
    "Softmax": lambda: one("Softmax", axis=1),
    "LayerNormalization": lambda: one("LayerNormalization", ["x", "g", "b"],
                                      [init("g", weights([T], 1) + 1), init("b", weights([T], 2))],
                                      axis=-1),
    "Relu": lambda: one("Relu"),
    "LeakyRelu": lambda: one("LeakyRelu", alpha=0.1),
    "PRelu": lambda: one("PRelu", ["x", "s"], [col("s", [0.1, 0.2, 0.05, 0.3])]),
    "Clip": lambda: one("Clip", ["x", "lo", "hi"], [init("lo", np.float32(-0.5)),
                                                    init("hi", np.float32(1.0))]),
    "Sigmoid": lambda: one("Sigmoid"),
    "HardSigmoid": lambda: one("HardSigmoid"),
    "Tanh": lambda: one("Tanh"),
    "HardSwish": lambda: one("HardSwish"),
    "SiLU": lambda: chain([("Sigmoid", ["x"], {}), ("Mul", ["x", "t0"], {})]),
    "GELU": lambda: chain([("Div", ["x", "r2"], {}), ("Erf", ["t0"], {}),
                           ("Add", ["t1", "one"], {}), ("Mul", ["x", "t2"], {}),
                           ("Mul", ["t3", "half"], {})],
                          [init("r2", np.float32(np.sqrt(2.0))), init("one", np.float32(1.0)),
                           init("half", np.float32(0.5))]),
    "Exp": lambda: one("Exp"),
    "Sqrt": lambda: chain([("Abs", ["x"], {}), ("Sqrt", ["t0"], {})]),
    "Pow": lambda: one("Pow", ["x", "e"], [init("e", np.float32(2.0))]),
    "GRU": lambda: rnn("GRU"),
    "LSTM": lambda: rnn("LSTM"),
}
#: The op each case is about after the front end (SiLU and GELU become Rill's own, a MatMul
#: with a constant a Gemm).
CASE_OP = {"Conv1d": "Conv", "Conv2d": "Conv", "MatMul": "Gemm", "MatMul2": "MatMul",
           "SiLU": "Silu", "GELU": "Gelu"}


def build(op: str) -> onnx.ModelProto:
    return CASES[op]()


def test_every_issue_op_has_a_case():
    assert set(CASES) == set(ISSUE_OPS) and set(SAMPLE) <= set(ISSUE_OPS)


@pytest.mark.parametrize("op", ISSUE_OPS)
def test_case_keeps_its_op_and_is_supported(op):
    """After the front end (fusions, folding, check-support at 8 and 32 bits) the op is there."""
    for bits in (8, 32):
        ctx = ctx_for(build(op), properties=set(), shapes=False, offline=True, bits=bits)
        PassManager(float_passes(True)).run(ctx)
        ops = {n.op for n in ctx.graph.nodes}
        want = CASE_OP.get(op, op)
        assert want in ops or f"Fused{want}" in ops, (op, sorted(ops))


def _input_shape(m: onnx.ModelProto) -> list[int]:
    return [d.dim_value for d in m.graph.input[0].type.tensor_type.shape.dim]


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("op_matrix")
    rng = np.random.default_rng(0)
    for op in ISSUE_OPS:
        m = build(op)
        onnx.save(m, str(d / f"{op.lower()}.onnx"))
        np.save(d / f"{op.lower()}.npy",
                rng.standard_normal((16, *_input_shape(m))).astype(np.float32))
    return d


@pytest.mark.parametrize("bits", [8, 16, 32])
@pytest.mark.parametrize("op", ISSUE_OPS if FULL else SAMPLE)
def test_op_compiles_and_verifies(models, op, bits, tmp_path):
    name = op.lower()
    args = ["compile", models / f"{name}.onnx", "--bits", bits, "--offline", "--out",
            tmp_path / "out", "--name", f"m_{name}"]
    if bits != 32:
        args += ["--calib", models / f"{name}.npy"]
    rc, _, err = run_cli(args)
    assert rc == 0, err
    report = json.loads((tmp_path / "out" / f"m_{name}" / "report.json").read_text())
    v = report["verification"]
    assert v["selftest"] == "passed", v
    if bits == 32:
        assert report["max_rel_error"] <= 1e-5 and report["error_measured_on"] == "C"
    else:
        assert v["c_bit_exact_calls"] > 0, v
