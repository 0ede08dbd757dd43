"""Element-wise arithmetic through the pipeline: Add/Sub/Mul/Div/Max/Min/PRelu with numpy
broadcasting, activation x activation and activation x constant (passes/lowering/arithmetic.py,
the `binary` kernel), Div by a constant as a Mul (passes/div_by_constant.py), constant operands
in the quantization facts, the QDQ export and the sensitivity table, and whole compiles whose C
is checked bit for bit against the integer reference at int8 and int16 on both targets."""
from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from codegen.qdq_export import export_qdq
from compiler.ort import run_model
from compiler.pass_manager import PassManager
from compiler.pipeline import Compilation, float_passes, quantization_passes
from compiler.simulate import run_integer
from compiler.streams import snr_db
from conftest import run_cli
from graphs import (assert_ort_equal, ctx_for, init, integer_snr, ints, model, node, nodes_of,
                    run_pass, weights)
from passes.div_by_constant import DivByConstant
from passes.lowering.strides import broadcast_strides, collapse, onnx_strides, stored_order
from runtime.reference.binary import BINARY_OPS

C, T = 4, 16


def arith_model() -> onnx.ModelProto:
    """x [1, 2, T] -> causal conv -> every arithmetic op: per-channel and scalar constants,
    gating, a constant first operand, division by an activation, a broadcast mean."""
    nodes = [
        node("Conv", ["x", "w", "b"], ["c"], name="conv", kernel_shape=[3], pads=[2, 0]),
        node("Mul", ["c", "scale"], ["m"], name="mul_const"),
        node("Sigmoid", ["m"], ["g"], name="sig"),
        node("Mul", ["c", "g"], ["gated"], name="gate"),
        node("Sub", ["gated", "off"], ["s"], name="sub_const"),
        node("Div", ["s", "three"], ["d"], name="div_const"),
        node("PRelu", ["d", "slope"], ["p"], name="prelu"),
        node("Abs", ["c"], ["ac"], name="abs"),
        node("Add", ["ac", "one"], ["den"], name="den"),
        node("Div", ["p", "den"], ["q"], name="div_act"),
        node("ReduceMean", ["q", "ax"], ["mean"], name="mean", keepdims=1),
        node("Sub", ["q", "mean"], ["cent"], name="sub_bcast"),
        node("Sub", ["two", "cent"], ["r"], name="rsub"),
        node("Max", ["r", "p"], ["mx"], name="max"),
        node("Min", ["mx", "cap"], ["y"], name="min"),
    ]
    inits = [init("w", weights([C, 2, 3], 1)), init("b", weights([C], 2)),
             init("scale", np.array([[0.5], [2.0], [-1.5], [0.25]], np.float32)),
             init("off", np.array([0.1], np.float32)), init("three", np.array(3.0, np.float32)),
             init("slope", np.array([[0.1], [0.2], [0.05], [0.3]], np.float32)),
             init("one", np.array(1.0, np.float32)), ints("ax", [1]),
             init("two", np.array(2.0, np.float32)),
             init("cap", np.array([[1.5], [2.0], [2.5], [3.0]], np.float32))]
    return model(nodes, [("x", [1, 2, T])], [("y", None)], inits)


def calib(n: int = 32, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 1, 2, T)).astype(np.float32)


def offline_ctx(m: onnx.ModelProto, bits: int = 8, data: np.ndarray | None = None):
    data = calib() if data is None else data
    ctx = ctx_for(m, properties=set(), shapes=False, offline=True, bits=bits, calib=data)
    PassManager(float_passes(True) + quantization_passes()).run(ctx)
    return ctx


# ------------------------------------------------------------------------------- layout


def test_strides_of_stored_layouts_and_broadcasts():
    assert onnx_strides([1, 4, 6], [0, 2, 1]) == [24, 1, 4]  # time-major [1][T][C]
    assert broadcast_strides([4, 1], [0, 1], 3) == [0, 1, 0]  # a per-channel [C, 1] constant
    assert broadcast_strides([1, 4, 6], [0, 2, 1], 3) == [0, 1, 4]
    sizes, strides = stored_order([1, 4, 6], [0, 2, 1], [[0, 1, 4], [0, 1, 0]])
    assert sizes == [1, 6, 4] and strides == [[0, 4, 1], [0, 0, 1]]
    assert collapse(sizes, strides) == ([1, 1, 6, 4], [[0, 0, 4, 1], [0, 0, 0, 1]])
    # two contiguous dims merge, a broadcast pair merges, an empty output stays empty
    assert collapse([2, 3, 5], [[15, 5, 1], [0, 0, 0]]) == ([1, 1, 1, 30], [[0, 0, 0, 1],
                                                                            [0, 0, 0, 0]])
    assert collapse([2, 0, 3], [[3, 3, 1]])[0] == [1, 1, 1, 0]
    assert collapse([2] * 5, [[16, 1, 8, 2, 4]]) is None  # 5 dims that cannot merge


# ----------------------------------------------------------------------- div by constant


def test_div_by_constant_becomes_mul_by_reciprocal():
    m = model([node("Div", ["x", "c"], ["d"], name="div"),
               node("Div", ["c2", "x"], ["f"], name="const_over_x"),
               node("Add", ["d", "f"], ["y"])],
              [("x", [1, 3, 5])], [("y", None)],
              [init("c", np.array([[4.0], [-0.5], [3.0]], np.float32)),
               init("c2", np.array(2.0, np.float32))])
    ctx = ctx_for(m)
    assert run_pass(DivByConstant(), ctx)
    by_name = {n.name: n for n in ctx.graph.nodes}
    assert by_name["div"].op == "Mul"
    np.testing.assert_array_equal(by_name["div"].inputs[1].values.reshape(-1),
                                  np.array([0.25, -2.0, 1 / 3], np.float32))
    assert by_name["const_over_x"].op == "Div"
    assert_ort_equal(m, ctx, rel=1e-6)


def test_div_by_a_constant_with_zeros_stays_a_division():
    m = model([node("Div", ["x", "z"], ["y"], name="div_zero")], [("x", [1, 3, 5])],
              [("y", None)], [init("z", np.array([[2.0], [0.0], [1.0]], np.float32))])
    ctx = ctx_for(m)
    assert not run_pass(DivByConstant(), ctx, check_equivalence=False)
    assert nodes_of(ctx, "Div")


# --------------------------------------------------------------------------- lowering


def binary_steps(ctx) -> dict[str, object]:
    return {s.name: s for s in ctx.facts["program"].steps if s.op == "binary"}


def test_lowering_emits_one_binary_step_per_op_with_quantized_constants():
    ctx = offline_ctx(arith_model())
    steps = binary_steps(ctx)
    ops = {name: s.params["op"] for name, s in steps.items()}
    assert ops == {"mul_const": BINARY_OPS["mul"], "gate": BINARY_OPS["mul"],
                   "sub_const": BINARY_OPS["sub"], "div_const": BINARY_OPS["mul"],
                   "prelu": BINARY_OPS["prelu"], "den": BINARY_OPS["add"],
                   "div_act": BINARY_OPS["div"], "sub_bcast": BINARY_OPS["sub"],
                   "rsub": BINARY_OPS["sub"], "max": BINARY_OPS["max"], "min": BINARY_OPS["min"]}
    scale = steps["mul_const"]
    assert list(scale.arrays) == ["b"] and scale.arrays["b"].dtype == np.int8
    e = int(ctx.facts["operand_exponents"]["mul_const"][1][0])
    np.testing.assert_array_equal(scale.arrays["b"] * 2.0 ** e, [0.5, 2.0, -1.5, 0.25])
    # the per-channel constant walks the channels of the time-major [T][C] output
    assert scale.params["shape"] == [1, 1, T, C] and scale.params["b_stride"] == [0, 0, 0, 1]
    assert list(steps["rsub"].arrays) == ["a"]  # 2 - x: the constant is the first operand
    assert steps["sub_bcast"].params["b_stride"] == [0, 0, 1, 0]  # the mean over channels
    assert ctx.facts["weight_bits"]["mul_const"] == 8


@pytest.mark.parametrize("bits,floor_db", [(8, 18.0), (16, 60.0)])
def test_integer_program_tracks_the_float_model(bits, floor_db):
    m = arith_model()
    ctx = offline_ctx(m, bits)
    assert integer_snr(m, ctx, calib(8, seed=5)) > floor_db


def test_division_by_zero_saturates_like_the_float_model():
    """y = x / Relu(x), calibrated on positive inputs (y = 1): a negative input divides by
    zero and saturates to the int8 minimum (float: -inf), a zero gives 0 (float: NaN)."""
    m = model([node("Relu", ["x"], ["r"], name="relu"), node("Div", ["x", "r"], ["y"], name="div")],
              [("x", [1, 2, 4])], [("y", None)])
    data = np.abs(calib(16)[:, :, :, :4]) + 0.5
    ctx = offline_ctx(m, 8, data)
    layout = Compilation(ctx).layout()
    x = np.array([[[1.0, -1.0, 0.0, 2.0], [-3.0, 0.5, 1.5, -0.25]]], np.float32)
    out = run_integer(ctx.facts["program"], layout, x).outputs.reshape(-1)
    one = out[0]
    assert one == 1 << -ctx.facts["exponents"]["y"]
    stored = np.array([[1.0, -3.0], [-1.0, 0.5], [0.0, 1.5], [2.0, -0.25]]).reshape(-1)  # [T][C]
    want = np.where(stored > 0, one, np.where(stored < 0, -128, 0))
    np.testing.assert_array_equal(out, want)


def test_qdq_export_quantizes_constant_operands():
    m = arith_model()
    ctx = offline_ctx(m)
    q = export_qdq(ctx.graph, ctx.facts, 8)
    onnx.checker.check_model(q, full_check=True)
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in q.graph.initializer}
    assert inits["mul_const/qdq_operand1/int8"].dtype == np.int8
    dq = {n.output[0]: n for n in q.graph.node if n.op_type == "DequantizeLinear"}
    assert "mul_const/qdq_operand1/dequantized" in dq and "rsub/qdq_operand0/dequantized" in dq
    xs = calib(6, seed=9)
    ref = np.concatenate([run_model(m, {"x": x})["y"].ravel() for x in xs])
    got = np.concatenate([run_model(q, {"x": x})["y"].ravel() for x in xs])
    layout = Compilation(ctx).layout()
    rill = np.concatenate([run_integer(ctx.facts["program"], layout, x).result.ravel()
                           for x in xs])
    assert abs(snr_db(ref, got) - snr_db(ref, rill)) < 1.0


# ------------------------------------------------------------------------- whole compile


@pytest.fixture(scope="module")
def arith_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("arith")
    onnx.save(arith_model(), str(d / "arith.onnx"))
    np.save(d / "calib.npy", calib())
    return d


@pytest.mark.parametrize("bits,target,floor_db", [(8, "esp32p4", 18.0), (8, "esp32s3", 18.0),
                                                  (16, "esp32p4", 60.0), (16, "esp32s3", 60.0)])
def test_compiled_c_is_bit_exact(arith_files, tmp_path, bits, target, floor_db):
    """Streaming compile (chunk 4): the generated C equals the integer reference bit for bit
    (the compiler's own verification), and the report lists every op and its SNR."""
    out = tmp_path / "out"
    rc, _, err = run_cli(["compile", arith_files / "arith.onnx", "--calib",
                          arith_files / "calib.npy", "--bits", bits, "--target", target,
                          "--chunk", "4", "--out", out])
    assert rc == 0, err
    report = json.loads((out / "arith" / "report.json").read_text())
    assert report["verification"]["c_bit_exact_calls"] > 0
    assert report["snr_db"] > floor_db
    assert sum(r["op"] == "binary" for r in report["layers"]) == 11
    sens = {r["node"]: r for r in report["sensitivity"]}
    assert sens["mul_const"]["int16_weight_bytes"] == 4  # the constant is part of the layer
