"""--bits 32 end to end (contract §3: float32 weights and activations, no calibration, within
max abs error <= 1e-5 x max|reference| of onnxruntime): the example TCN, the GRU and LSTM
taggers and models with their own state pairs compile to float32 components whose C, streamed
chunk by chunk through `<name>_run` (float in, float out) and `<name>_run_f32` (the same),
matches onnxruntime on held-out inputs; the report and the header say float32; the CLI refuses
quantization options and says that calibration data is not used."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import onnx
import pytest

from compiler.host_build import build_host, run_host
from compiler.measure import run_c_float
from compiler.ort import session
from compiler.streams import aligned, chunks, stitch, to_physical
from conftest import FIXTURES, run_cli
from passes.time_analysis import TimeInfo
from test_model_states import CHUNK, MODELS, run_with_state

ZOO = FIXTURES / "streaming"
TOL = 1e-5  # contract §3


def max_rel_error(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.max(np.abs(got - want))) / max(float(np.max(np.abs(want))), 1e-30)


def c_vs_onnxruntime(component: Path, report: dict, model: Path, xs: np.ndarray,
                     work: Path) -> float:
    """Max error / max|reference| of the C float API, chunk by chunk, against onnxruntime."""
    got = run_c_float(component, report["name"], report, xs, work)
    sess = session(onnx.load(str(model)))
    out = report["output"]
    worst = 0.0
    for x, y in zip(xs, got):
        want = sess.run(None, {sess.get_inputs()[0].name: x.astype(np.float32)})[0]
        a, b = aligned(y, want, report["latency_frames"], out["time_axis"] or 0, out["per_frame"])
        worst = max(worst, max_rel_error(a, b))
    return worst


@pytest.fixture(scope="module")
def tcn32(compiled, example_model, example_calib):
    """The example TCN at --bits 32, chunk 2 on esp32s3 (with --calib: it is not used)."""
    c = compiled("f32_tcn", example_model, "--bits", "32", "--chunk", "2", "--target",
                 "esp32s3", "--calib", str(example_calib), name="tcn32")
    assert c.rc == 0, c.stderr
    return c


def test_example_tcn_float32_matches_onnxruntime(tcn32, example_model, held_out_inputs,
                                                 tmp_path):
    report = json.loads((tcn32.component / "report.json").read_text())
    err = c_vs_onnxruntime(tcn32.component, report, example_model, held_out_inputs, tmp_path)
    print(f"\nexample TCN float32 (chunk 2): C vs onnxruntime max error {err:.3g} x max|output| "
          f"on {len(held_out_inputs)} held-out inputs; compile-time check "
          f"{report['max_rel_error']:.3g} ({report['error_measured_on']})")
    assert err <= TOL
    assert report["max_rel_error"] <= TOL and report["error_measured_on"] == "C"
    v = report["verification"]
    assert v["selftest"] == "passed" and v["c_float_calls"] >= 4 * 12
    assert v["float_stream_max_rel_error"] <= TOL
    assert v["c_max_rel_error_vs_reference"] <= TOL


def test_run_takes_and_returns_floats(tcn32, example_model, held_out_inputs, tmp_path):
    """`<name>_run` is the float API itself; `<name>_run_f32` gives the same bytes."""
    header = (tcn32.component / "include" / "tcn32.h").read_text()
    assert "int tcn32_run(tcn32_t *m, const float *in, float *out);" in header
    assert "int tcn32_run_f32(tcn32_t *m, const float *in, float *out);" in header
    assert re.search(r"#define TCN32_INPUT_BITS 32\b", header)
    assert re.search(r"#define TCN32_OUTPUT_BITS 32\b", header)
    assert "#define TCN32_INPUT_EXPONENT (0)" in header
    report = json.loads((tcn32.component / "report.json").read_text())
    exe = build_host(tcn32.component, "tcn32", tmp_path)
    x = held_out_inputs[0]
    calls = np.stack([to_physical(c, TimeInfo(2, True)) for c in chunks(x, 2, 2)])
    direct = run_host(exe, calls, out_elems=report["output"]["elems_per_call"],
                      out_dtype=np.float32)
    via_f32 = run_host(exe, calls, f32=True, out_elems=report["output"]["elems_per_call"])
    assert direct.dtype == np.float32 and np.array_equal(direct, via_f32)


def test_float32_report_and_sources(tcn32):
    c = tcn32.component
    report = json.loads((c / "report.json").read_text())
    assert report["bits"] == 32 and report["snr_db"] is None
    assert report["error_tolerance_rel"] == TOL
    for key in ("precision", "sensitivity", "requantizations"):  # quantization only
        assert key not in report
    assert "lower-float" in [p["name"] for p in report["passes"]]
    assert not {"calibrate", "quantize", "lower-integer"} & {p["name"] for p in report["passes"]}
    assert any("calib" in w and "not used" in w for w in report["warnings"])
    convs = [layer for layer in report["layers"] if layer["op"] == "conv1d"]
    assert convs and all(layer["precision"] == "float32" and "exponents" not in layer
                         and "snr_db" not in layer and layer["max_abs_error"] < 1e-4
                         for layer in convs)
    assert report["weight_bytes"] > 4 * sum(1 for _ in convs)  # float32 weights: 4 B each
    md = (c / "report.md").read_text()
    assert "float32" in md and "SNR" not in md and "max abs error vs onnxruntime" in md
    kernels = (c / "src" / "tcn32_kernels.c").read_text()
    assert "tcn32_conv1d_f32(" in kernels and "tcn32_unary_silu_f32(" in kernels
    assert "quantize" not in kernels and "_s8(" not in kernels  # only the kernels it uses
    selftest = (c / "test" / "tcn32_selftest.c").read_text()
    assert "within 1e-05 x the largest expected magnitude" in selftest
    assert "idf_component_register" in (c / "CMakeLists.txt").read_text()
    assert "32-bit" in (c / "idf_component.yml").read_text()


@pytest.mark.parametrize("model", ["gru_tagger", "lstm_tagger"])
def test_recurrent_taggers_float32_stream_like_onnxruntime(model, tmp_path):
    path = ZOO / f"{model}.script.onnx"
    out = tmp_path / "out"
    rc, _, err = run_cli(["compile", path, "--bits", "32", "--chunk", "5" if model == "gru_tagger"
                          else "4", "--out", out, "--name", model, "-q"])
    assert rc == 0, err
    report = json.loads((out / model / "report.json").read_text())
    assert report["verification"]["selftest"] == "passed"
    assert [s["kind"] for s in report["states"]].count("recurrent") == \
        (1 if model == "gru_tagger" else 2)
    assert all(s["bytes"] == 4 * int(np.prod(s["shape"])) for s in report["states"])
    xs = np.load(ZOO / f"{model}.heldout.npy")[:6]
    err = c_vs_onnxruntime(out / model, report, path, xs, tmp_path)
    print(f"\n{model} float32: C vs onnxruntime max error {err:.3g} x max|output|")
    assert err <= TOL


@pytest.mark.parametrize("key", ["conv_state", "lstm_hc", "summary"])
def test_model_with_its_own_state_float32(key, tmp_path):
    build, kwargs, pairs = MODELS[key]
    m = build(**kwargs)
    path = tmp_path / f"{key}.onnx"
    onnx.save(m, str(path))
    out = tmp_path / "out"
    rc, _, err = run_cli(["compile", path, "--bits", "32", "--out", out, "-q"])
    assert rc == 0, err
    report = json.loads((out / key / "report.json").read_text())
    assert report["verification"]["selftest"] == "passed"
    assert report["max_rel_error"] <= TOL
    x = np.random.default_rng(7).standard_normal((1, 3, 6 * CHUNK)).astype(np.float32)
    want = run_with_state(m, x, pairs)
    got = run_c_float(out / key, key, report, [x], tmp_path)[0]
    if report["output"]["per_frame"]:
        want = stitch(want, True, report["output"]["time_axis"])
    else:
        want = want[-1]
    assert max_rel_error(got, want) <= TOL


def test_offline_float32(compiled, example_model, held_out_inputs, tmp_path):
    c = compiled("f32_offline", example_model, "--bits", "32", "--offline", name="tcn32off")
    assert c.rc == 0, c.stderr
    report = json.loads((c.component / "report.json").read_text())
    assert report["mode"] == "offline" and report["chunk_frames"] == 24
    assert c_vs_onnxruntime(c.component, report, example_model, held_out_inputs[:4],
                            tmp_path) <= TOL


def test_float32_compiles_are_deterministic(compiled, example_model):
    runs = [compiled(f"f32_same_{i}", example_model, "--bits", "32", "--no-verify", name="same32")
            for i in range(2)]
    assert all(r.rc == 0 for r in runs)
    a, b = (r.component for r in runs)
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files)


def test_cli_summary_line_says_float32(example_model, tmp_path):
    rc, out, err = run_cli(["compile", example_model, "--bits", "32", "--out", tmp_path,
                            "--no-verify"])
    assert rc == 0, err
    assert "float32" in out and "vs onnxruntime" in out and "SNR" not in out
    assert "calibration" not in err.lower()  # no --calib, nothing to warn about
