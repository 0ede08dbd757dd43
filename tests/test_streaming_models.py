"""Issue 3's acceptance: PyTorch exports of every streaming construct compile at the smallest
legal CHUNK and at a larger one, and meet contract §2 in float (checked during the compile:
streaming ONNX vs offline within 1e-5) and quantized form (the compile verifies the C against
the integer reference bit for bit; here the C, driven through its float API, reaches >= 20 dB
against the float model on held-out inputs).

Fixtures: tests/fixtures/streaming/*.onnx from examples/streaming/export.py (both exporters).
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from compiler.measure import c_float_snr
from conftest import FIXTURES, run_cli

ZOO = FIXTURES / "streaming"
MIN_SNR_DB = 20.0

# model -> (smallest legal chunk, a larger legal chunk dividing the offline length)
CHUNKS = {
    "tcn_residual": (1, 8), "strided_encoder": (4, 8), "spectrogram_cnn": (1, 6),
    "window_classifier": (1, 4), "gru_tagger": (1, 5), "lookahead_tcn": (1, 6),
    "multi_window": (1, 4), "upsampler": (1, 4), "lstm_tagger": (1, 4),
}
CASES = [pytest.param(m, c, exporter, id=f"{m}-{exporter}-chunk{c}")
         for m, (small, large) in CHUNKS.items()
         for c, exporter in ((small, "dynamo"), (large, "script"))]


def compile_zoo(model: str, chunk: int, exporter: str, out: Path, target: str = "esp32p4") -> dict:
    path = ZOO / f"{model}.{exporter}.onnx"
    rc, _, err = run_cli(["compile", path, "--calib", ZOO / f"{model}.calib.npy", "--chunk", chunk,
                          "--target", target, "--out", out, "--name", model, "-q"])
    assert rc == 0, f"{path.name} at CHUNK={chunk} failed:\n{err}"
    return json.loads((out / model / "report.json").read_text())


@pytest.mark.parametrize("model, chunk, exporter", CASES)
def test_zoo_model_streams_in_float_and_int8(model, chunk, exporter, tmp_path):
    report = compile_zoo(model, chunk, exporter, tmp_path / "out")
    assert report["chunk_frames"] == chunk and report["mode"] == "streaming"
    assert report["verification"]["float_stream_max_rel_error"] <= 1e-5
    assert report["verification"]["selftest"] == "passed"
    assert report["state_bytes"] == sum(s["bytes"] for s in report["states"])
    # int8 frames and flags, int8 h, int16 LSTM cells
    assert all(s["bytes"] in (int(np.prod(s["shape"])), 2 * int(np.prod(s["shape"])))
               for s in report["states"])
    xs = np.load(ZOO / f"{model}.heldout.npy")
    snr = c_float_snr(tmp_path / "out" / model, report, ZOO / f"{model}.{exporter}.onnx", xs,
                      tmp_path)
    print(f"\n{model} ({exporter}, CHUNK={chunk}): C int8 SNR {snr:.2f} dB on 20 held-out inputs, "
          f"state {report['state_bytes']} B, latency {report['latency_frames']}")
    assert snr >= MIN_SNR_DB


def test_report_states_name_what_they_hold(tmp_path):
    report = compile_zoo("lookahead_tcn", 1, "dynamo", tmp_path / "out")
    kinds = {s["kind"] for s in report["states"]}
    assert kinds == {"frames", "mask"}
    assert report["latency_frames"] > 0
    for s in report["states"]:
        assert (s["holds"] is None) == (s["kind"] != "frames")


def test_int16_max_pool_state_starts_at_the_lowest_value(tmp_path):
    """An int16 state whose initial value is not one repeated byte (a max-pool's -32768) is set
    element by element in `<name>_init` (a memset would give 0x0000); the compile's bit-exact
    C check and self-test see the first calls, which read it."""
    out = tmp_path / "out"
    rc, _, err = run_cli(["compile", ZOO / "tcn_residual.dynamo.onnx", "--bits", "16", "--calib",
                          ZOO / "tcn_residual.calib.npy", "--out", out, "--name", "res16", "-q"])
    assert rc == 0, err
    report = json.loads((out / "res16" / "report.json").read_text())
    assert any(s["init"] < 0 for s in report["states"])  # the padded max-pool's state
    assert report["verification"]["selftest"] == "passed"
    source = (out / "res16" / "src" / "res16.c").read_text()
    assert re.search(r"m->\w+\[i\] = -32768;", source)
