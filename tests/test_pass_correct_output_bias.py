"""CorrectOutputBias: the output layer's integer bias absorbs the program's mean output error."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from compiler.context import Options
from compiler.measure import run_c_float
from compiler.ort import session
from compiler.pipeline import compile_model
from compiler.targets import get_target
from graphs import causal_tcn_model, init, model, node, weights
from passes.correct_output_bias import bias_delta, fits_accumulator, output_writer
from runtime.ir import Buffer, Program, Step

C, T = 4, 16


def head_model() -> onnx.ModelProto:
    """A causal conv stack whose per-frame output is written by a 1x1 Conv (no activation)."""
    m = causal_tcn_model(channels=C, t=T)
    nodes = list(m.graph.node) + [node("Conv", ["r2", "wo", "bo"], ["y"], name="conv_out",
                                       kernel_shape=[1])]
    inits = list(m.graph.initializer) + [init("wo", weights([3, C, 1], 9)),
                                         init("bo", weights([3], 10))]
    return model(nodes, [("x", [1, C, T])], [("y", None)], inits)


def one_step_program(bias: np.ndarray, shift: np.ndarray, e_out: int, w: np.ndarray,
                     acc_dtype=np.int32, x_dtype: str = "int16") -> tuple[Program, Step]:
    step = Step("gemm", ["x"], ["y"], dict(m=1, k=w.shape[1], n=w.shape[0]),
                dict(w=w, bias=bias.astype(acc_dtype), shift=shift.astype(np.int8)), name="fc")
    buffers = {"x": Buffer("x", (1, w.shape[1]), x_dtype, -10, "input"),
               "y": Buffer("y", (1, w.shape[0]), "int16", e_out, "output")}
    return Program(buffers, [step], ["x"], ["y"], [], "half_up"), step


def test_delta_is_the_mean_error_in_bias_units_per_channel():
    prog, step = one_step_program(np.zeros(2), np.array([3, 5]), -8, np.ones((2, 4), np.int16))
    # bias units 2^(e_out - shift): 2^-11 and 2^-13; an error of +2^-10 is -2 and -8 units
    delta = bias_delta(step, prog, np.array([2.0**-10, 2.0**-10]))
    assert delta.tolist() == [-2, -8]
    assert output_writer(prog) is step


def test_accumulator_bound_is_rechecked():
    w = np.full((1, 4), 1000, np.int16)
    prog, step = one_step_program(np.zeros(1), np.array([0]), -8, w)
    room = 2**31 - 1 - 4 * 1000 * 32768
    assert fits_accumulator(step, prog, np.array([room]))
    assert not fits_accumulator(step, prog, np.array([room + 1]))
    prog64, step64 = one_step_program(np.zeros(1), np.array([0]), -8, w, acc_dtype=np.int64)
    assert fits_accumulator(step64, prog64, np.array([2**40]))


@pytest.fixture(scope="module")
def head_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("bias") / "head.onnx"
    onnx.save(head_model(), str(path))
    return path


def compile_head(path: Path, out: Path, setting: str, target: str = "esp32s3"):
    calib = np.random.default_rng(3).standard_normal((24, 1, C, T)).astype(np.float32)
    opts = Options(target=get_target(target), bits=16, calib=calib, name="head",
                   bias_correction=setting)
    return compile_model(path, opts, out, force=True)


@pytest.mark.parametrize("setting", ["on", "auto", "off"])
def test_settings_on_half_up_target(head_path, tmp_path, setting):
    result = compile_head(head_path, tmp_path / setting, setting)
    report = result.report
    assert report["verification"]["selftest"] == "passed"  # the corrected program is the C's
    b = report.get("output_bias_correction")
    if setting == "off":
        assert b is None
        return
    assert b["step"] == "conv_out"
    assert b["applied"] == (setting == "on" or b["held_out_mse_after"] < b["held_out_mse_before"])
    assert "output bias correction of `conv_out`" in (result.out_dir / "report.md").read_text()


def test_correction_removes_the_mean_output_error(head_path, tmp_path):
    """Measured through the generated C's float API on the calibration data: the largest mean
    error of an output channel is smaller with the correction than without."""
    calib = np.random.default_rng(3).standard_normal((24, 1, C, T)).astype(np.float32)
    sess = session(onnx.load(str(head_path)))
    worst = {}
    for setting in ("off", "on"):
        r = compile_head(head_path, tmp_path / setting, setting)
        got = run_c_float(r.out_dir, "head", r.report, calib, tmp_path / f"run_{setting}")
        err = np.stack([g - sess.run(None, {"x": x})[0] for g, x in zip(got, calib)])
        worst[setting] = float(np.abs(err.mean(axis=(0, 1, 3))).max())
    assert worst["on"] < 0.5 * worst["off"]
