"""LayerNormalization (the `layernorm` kernel: integer mean and variance, exact integer square
root, per-element gamma exponents) and the Sqrt / Pow-by-a-constant / Reciprocal tables through
the pipeline: lowering on tiny graphs, what cannot be lowered or streamed, the QDQ export, and
whole compiles whose C is bit-exact with the integer reference at int8 and int16."""
from __future__ import annotations

import json
import math

import numpy as np
import onnx
import onnx_graphsurgeon as gs
import pytest

from codegen.qdq_export import export_qdq
from compiler.errors import RillError
from compiler.ort import run_model
from compiler.pass_manager import PassManager
from compiler.pipeline import Compilation, float_passes, quantization_passes
from compiler.simulate import run_integer
from compiler.streams import snr_db
from conftest import run_cli
from graphs import ctx_for, init, integer_snr, model, node, run_pass, weights
from passes.lowering.normalization import axis_blocks, eps_params, z_frac_limit
from passes.streaming_cut import StreamingCut
from passes.tables import lut_plan
from runtime.reference.kernels import round_to_int

C, T = 6, 16


def norm_model(tail: bool = True) -> onnx.ModelProto:
    """conv -> [1, T, C] -> LayerNorm over channels -> back -> Pow 2 -> +1 -> Sqrt -> 1/x."""
    nodes = [
        node("Conv", ["x", "w", "b"], ["c"], name="conv", kernel_shape=[3], pads=[2, 0]),
        node("Transpose", ["c"], ["ct"], name="to_tc", perm=[0, 2, 1]),
        node("LayerNormalization", ["ct", "g", "be"], ["ln"], name="ln", axis=-1, epsilon=1e-5),
        node("Transpose", ["ln"], ["y0"], name="to_ct", perm=[0, 2, 1])]
    if tail:
        nodes += [node("Pow", ["y0", "two"], ["sq"], name="pow"),
                  node("Add", ["sq", "one"], ["sq1"], name="add1"),
                  node("Sqrt", ["sq1"], ["r"], name="sqrt"),
                  node("Reciprocal", ["r"], ["y"], name="recip")]
    inits = [init("w", weights([C, 2, 3], 1)), init("b", weights([C], 2)),
             init("g", np.array([0.5, 1.0, 1.5, -0.75, 0.0, 2.0], np.float32)),
             init("be", np.linspace(-0.2, 0.3, C).astype(np.float32)),
             init("two", np.array(2.0, np.float32)), init("one", np.array(1.0, np.float32))]
    return model(nodes, [("x", [1, 2, T])], [("y" if tail else "y0", None)], inits)


def calib(n: int = 32, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 1, 2, T)).astype(np.float32)


def offline_ctx(m: onnx.ModelProto, bits: int = 8, data: np.ndarray | None = None):
    data = calib() if data is None else data
    ctx = ctx_for(m, properties=set(), shapes=False, offline=True, bits=bits, calib=data)
    PassManager(float_passes(True) + quantization_passes()).run(ctx)
    return ctx


def test_blocks_limits_and_epsilon():
    assert axis_blocks([1, 6, 16], [0, 2, 1], [1]) == (16, 6, 1, [1])  # channels of [T][C]
    assert axis_blocks([1, 4, 5, 16], [0, 3, 1, 2], [1, 2]) == (16, 20, 1, [1, 2])
    assert axis_blocks([1, 4, 5, 16], [0, 3, 1, 2], [2, 3]) is None  # F and T: not adjacent
    assert axis_blocks([2, 3, 4], [0, 1, 2], [1]) == (2, 3, 4, [1])
    assert [z_frac_limit(n) for n in (1, 2, 4, 5, 64, 65536)] == [31, 30, 30, 29, 28, 23]
    assert eps_params(1e-5, 48, -5) == (24, 0)  # 1e-5 * 48^2 * 2^10 = 23.6 units of x^2
    mant, shift = eps_params(1e-3, 1024, -14)  # large: 31 significant bits
    assert mant < 2**31 and math.isclose(mant * 2.0**shift, 1e-3 * 1024**2 * 2**28,
                                         rel_tol=2**-30)
    assert eps_params(0.0, 10, 0) == (0, 0)


def test_layernorm_lowers_to_one_step_with_per_element_scale_exponents():
    ctx = offline_ctx(norm_model())
    step = next(s for s in ctx.facts["program"].steps if s.name == "ln")
    assert step.op == "layernorm"
    assert {k: step.params[k] for k in ("outer", "length", "inner")} == {
        "outer": T, "length": C, "inner": 1}
    assert step.params["z_frac"] == z_frac_limit(C)
    e_g = ctx.facts["operand_exponents"]["ln"][1]
    assert e_g.shape == (C,) and e_g[4] == e_g.max()  # the zero gets the largest exponent
    np.testing.assert_array_equal(step.arrays["w"] * np.ldexp(1.0, e_g.astype(int)),
                                  [0.5, 1.0, 1.5, -0.75, 0.0, 2.0])
    e_y = ctx.facts["exponents"]["ln"]
    np.testing.assert_array_equal(step.arrays["shift"], e_y - e_g + step.params["z_frac"])
    assert step.arrays["bias"].dtype == np.int64


def test_layernorm_over_two_axes_reads_the_scale_in_storage_order():
    """[1, F, C, T] normalized over (F, C) per frame: stored [T][F][C], one row of F*C; a
    gamma [F, C] is read in that order (offline and streamed the same)."""
    F = 3
    g = np.arange(1, F * 4 + 1, dtype=np.float32).reshape(F, 4) / 8
    m = model([node("Conv", ["x", "w", "b"], ["c"], name="conv", kernel_shape=[1, 1]),
               node("Transpose", ["c"], ["ct"], name="t", perm=[0, 3, 2, 1]),
               node("LayerNormalization", ["ct", "g"], ["y"], name="ln", axis=2)],
              [("x", [1, 2, F, 8])], [("y", None)],
              [init("w", weights([4, 2, 1, 1], 3)), init("b", weights([4], 4)), init("g", g)])
    data = np.random.default_rng(1).standard_normal((16, 1, 2, F, 8)).astype(np.float32)
    for bits, floor in ((8, 25.0), (16, 65.0)):
        ctx = offline_ctx(m, bits, data)
        step = next(s for s in ctx.facts["program"].steps if s.name == "ln")
        assert step.params["length"] == F * 4
        layout = Compilation(ctx).layout()
        ref = np.concatenate([run_model(m, {"x": x})["y"].ravel() for x in data[:4]])
        got = np.concatenate([run_integer(ctx.facts["program"], layout, x).result.ravel()
                              for x in data[:4]])
        assert snr_db(ref, got) > floor


@pytest.mark.parametrize("bits,floor_db", [(8, 25.0), (16, 65.0)])
def test_integer_program_tracks_the_float_model(bits, floor_db):
    m = norm_model()
    ctx = offline_ctx(m, bits)
    assert integer_snr(m, ctx, calib(8, seed=5)) > floor_db


def test_layernorm_along_time_cannot_stream():
    m = model([node("LayerNormalization", ["x", "g"], ["y"], name="ln_time", axis=-1)],
              [("x", [1, 2, T])], [("y", None)], [init("g", np.ones(T, np.float32))])
    with pytest.raises(RillError) as err:
        run_pass(StreamingCut(), ctx_for(m, chunk=2), check_equivalence=False)
    assert "ln_time" in str(err.value) and "time axis" in str(err.value)


def test_layernorm_statistics_outputs_are_refused():
    m = model([node("LayerNormalization", ["x", "g"], ["y", "mean"], name="ln", axis=1),
               node("Add", ["y", "mean"], ["z"], name="use_mean")],
              [("x", [1, 4, T])], [("z", None)], [init("g", np.ones((4, T), np.float32))])
    with pytest.raises(RillError, match="Mean and InvStdDev"):
        offline_ctx(m, 8, np.random.default_rng(0).standard_normal((8, 1, 4, T)).astype(
            np.float32))


def test_pow_needs_a_constant_exponent():
    m = model([node("Pow", ["x", "x"], ["y"], name="pow_xx")], [("x", [1, 2, T])], [("y", None)])
    with pytest.raises(RillError, match="pow_xx.*constant scalar exponent"):
        offline_ctx(m, 8, np.abs(calib(8)) + 0.1)


FUNCTIONS = {"Sqrt": lambda v, p: np.sqrt(v), "Reciprocal": lambda v, p: 1.0 / v,
             "Pow": lambda v, p: np.power(v, p)}


@pytest.mark.parametrize("op,p,exp_in,exp_out", [("Sqrt", None, -4, -5),
                                                 ("Reciprocal", None, -3, -4),
                                                 ("Pow", 3.0, -5, -3), ("Pow", 0.5, -4, -5)])
@pytest.mark.parametrize("mode", ["half_even", "half_up"])
def test_new_tables_are_the_exact_function(op, p, exp_in, exp_out, mode):
    """int8 tables: exactly rounded f(q * 2^e_in) / 2^e_out, saturated; NaN (a square root of a
    negative value) and infinities (1/0) give 0 and the saturated extreme."""
    inputs = [gs.Variable("x")] + ([gs.Constant("p", np.array(p, np.float32))] if p else [])
    n = gs.Node(op, inputs=inputs, outputs=[gs.Variable("y")])
    _, arrays = lut_plan(n, exp_in, exp_out, 8, 8, mode)
    q = np.arange(-128, 128, dtype=np.float64)
    with np.errstate(all="ignore"):
        v = FUNCTIONS[op](q * 2.0 ** exp_in, p) / 2.0 ** exp_out
    v = np.nan_to_num(v, nan=0.0, posinf=1e30, neginf=-1e30)
    np.testing.assert_array_equal(arrays["table"], np.clip(round_to_int(v, mode), -128, 127))


def test_qdq_export_bakes_the_per_element_scale():
    ctx = offline_ctx(norm_model(tail=False))
    q = export_qdq(ctx.graph, ctx.facts, 8)
    onnx.checker.check_model(q, full_check=True)
    ln = next(n for n in q.graph.node if n.op_type == "LayerNormalization")
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in q.graph.initializer}
    g = inits[ln.input[1]]
    e_g = ctx.facts["operand_exponents"]["ln"][1]
    step = next(s for s in ctx.facts["program"].steps if s.name == "ln")
    np.testing.assert_array_equal(g, step.arrays["w"] * np.ldexp(1.0, e_g.astype(int)))


@pytest.fixture(scope="module")
def norm_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("norm")
    onnx.save(norm_model(), str(d / "norm.onnx"))
    np.save(d / "calib.npy", calib())
    return d


@pytest.mark.parametrize("bits,target,floor_db", [(8, "esp32p4", 25.0), (8, "esp32s3", 25.0),
                                                  (16, "esp32p4", 65.0), (16, "esp32s3", 65.0)])
def test_compiled_c_is_bit_exact(norm_files, tmp_path, bits, target, floor_db):
    out = tmp_path / "out"
    rc, _, err = run_cli(["compile", norm_files / "norm.onnx", "--calib", norm_files / "calib.npy",
                          "--bits", bits, "--target", target, "--chunk", "2", "--out", out])
    assert rc == 0, err
    report = json.loads((out / "norm" / "report.json").read_text())
    assert report["verification"]["c_bit_exact_calls"] > 0
    assert report["snr_db"] > floor_db
    row = next(r for r in report["layers"] if r["op"] == "layernorm")
    assert row["accumulator"] == "int64" and len(row["exponents"]["weights"]) >= 2
