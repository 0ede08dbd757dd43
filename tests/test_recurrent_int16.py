"""int16 GRU and LSTM end to end: small streaming taggers built with onnx.helper (1x1 conv ->
GRU/LSTM -> 1x1 conv head) compiled with --bits 16 on both targets. The compile builds the
generated C and checks it against the integer reference bit for bit (self-test, calibration and
saturating streams); here the C is also run on held-out inputs through its float API, which
must equal the integer simulator's dequantized output exactly, and its SNR against the float
model must be far above the int8 compile's.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import onnx
import pytest

from compiler.context import CompileContext, Options
from compiler.errors import RillError
from compiler.measure import c_float_snr, run_c_float
from compiler.pipeline import Compilation, compile_model, load_graph, prepare_calibration
from compiler.simulate import run_integer
from compiler.targets import get_target
from conftest import FIXTURES, run_cli
from graphs import init, ints, model, node

CHANNELS, HIDDEN, CLASSES, FRAMES, CHUNK = 6, 12, 3, 48, 4
#: Held-out output SNR through the C float API, measured (esp32p4 / esp32s3): GRU int8
#: 35.5 / 35.6 dB, int16 80.7 / 80.7 dB; LSTM int8 32.6 / 32.6 dB, int16 80.4 / 80.4 dB.
MIN_SNR_DB = {8: 28.0, 16: 74.0}
MIN_GAIN_DB = 40.0  # int16 over int8 on the same model and data


def tagger(op: str, seed: int = 0) -> onnx.ModelProto:
    """x [1, C, T] -> 1x1 conv -> [T, 1, C] -> GRU/LSTM (PyTorch-style init) -> [1, H, T] ->
    1x1 conv -> y [1, CLASSES, T]."""
    rng = np.random.default_rng(seed)
    gates = {"GRU": 3, "LSTM": 4}[op]
    k = 1 / math.sqrt(HIDDEN)
    attrs = {"hidden_size": HIDDEN}
    if op == "GRU":
        attrs["linear_before_reset"] = 1
    nodes = [node("Conv", ["x", "w_in", "b_in"], ["p"], name="proj", kernel_shape=[1]),
             node("Transpose", ["p"], ["xt"], perm=[2, 0, 1]),
             node(op, ["xt", "W", "R", "B"], ["Y"], name="rnn", **attrs),
             node("Squeeze", ["Y", "one"], ["ys"], name="squeeze"),
             node("Transpose", ["ys"], ["yt"], perm=[1, 2, 0]),
             node("Conv", ["yt", "w_out", "b_out"], ["y"], name="head", kernel_shape=[1])]
    inits = [init("w_in", rng.uniform(-0.5, 0.5, (CHANNELS, CHANNELS, 1))),
             init("b_in", rng.uniform(-0.1, 0.1, CHANNELS)),
             init("W", rng.uniform(-k, k, (1, gates * HIDDEN, CHANNELS))),
             init("R", rng.uniform(-k, k, (1, gates * HIDDEN, HIDDEN))),
             init("B", rng.uniform(-k, k, (1, 2 * gates * HIDDEN))),
             init("w_out", rng.uniform(-k, k, (CLASSES, HIDDEN, 1))),
             init("b_out", rng.uniform(-0.1, 0.1, CLASSES)), ints("one", [1])]
    return model(nodes, [("x", [1, CHANNELS, FRAMES])], [("y", None)], inits)


def options(bits: int, target: str, calib: np.ndarray, name: str) -> Options:
    return Options(target=get_target(target), bits=bits, chunk=CHUNK, calib=calib, name=name)


def lowered(path: Path, opts: Options):
    """The integer program and stream layout of a compile with these options (the passes
    alone, as compile_model runs them)."""
    _, graph = load_graph(path, opts, [], lambda s: None)
    ctx = CompileContext(graph, opts, source=path)
    opts.calib = prepare_calibration(opts.calib, (1, CHANNELS, FRAMES), "calib", ctx.warn)
    comp = Compilation(ctx)
    comp.run_passes()
    return ctx.facts["program"], comp.layout()


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(77)
    calib = rng.standard_normal((48, 1, CHANNELS, FRAMES)).astype(np.float32)
    held_out = rng.standard_normal((16, 1, CHANNELS, FRAMES)).astype(np.float32)
    return calib, held_out


@pytest.mark.parametrize("target", ["esp32p4", "esp32s3"])
@pytest.mark.parametrize("op", ["GRU", "LSTM"])
def test_int16_recurrent_tagger_end_to_end(op, target, data, tmp_path):
    calib, held_out = data
    path = tmp_path / f"{op.lower()}.onnx"
    onnx.save(tagger(op), str(path))
    snr = {}
    for bits in (8, 16):
        name = f"{op.lower()}{bits}"
        result = compile_model(path, options(bits, target, calib, name), tmp_path / "out")
        report = result.report
        rnn = next(layer for layer in report["layers"] if layer["op"] == op.lower())
        assert rnn["precision"] == f"int{bits}"
        assert report["verification"]["selftest"] == "passed"
        assert report["verification"]["c_bit_exact_calls"] > 0
        assert not [w for w in result.warnings if "int8" in w]
        if bits == 16:  # h int16; the LSTM's cell int32
            cell = 4 if op == "LSTM" else 0
            assert report["state_bytes"] == HIDDEN * (2 + cell)
            # held-out inputs through the C float API equal the integer simulator exactly
            program, layout = lowered(path, options(bits, target, calib, name))
            got = run_c_float(result.out_dir, name, report, held_out, tmp_path)
            for x, y in zip(held_out, got):
                assert np.array_equal(y, run_integer(program, layout, x).result)
        snr[bits] = c_float_snr(result.out_dir, report, path, held_out, tmp_path)
    print(f"\n{op} tagger {target}: held-out SNR through the C API int8 {snr[8]:.2f} dB, "
          f"int16 {snr[16]:.2f} dB")
    assert snr[8] >= MIN_SNR_DB[8] and snr[16] >= MIN_SNR_DB[16]
    assert snr[16] - snr[8] >= MIN_GAIN_DB


ZOO = FIXTURES / "streaming"
#: The PyTorch streaming zoo's taggers (tests/test_streaming_models.py) at --bits 16, held-out
#: SNR through the C API, measured: GRU 83.7 dB, LSTM 85.3 dB with either exporter (int8:
#: about 36-39 dB, docs/quantization.md).
ZOO_MIN_SNR_DB = 78.0


@pytest.mark.parametrize("exporter", ["dynamo", "script"])
@pytest.mark.parametrize("name", ["gru_tagger", "lstm_tagger"])
def test_zoo_taggers_at_int16(name, exporter, tmp_path):
    """Exporters differ in how they wire the recurrent state (the script export's LSTM shares
    one zero tensor for initial_h and initial_c and reaches Y_h / Y_c through Identity nodes
    after the streaming cut): both compile at --bits 16 and verify bit for bit."""
    path = ZOO / f"{name}.{exporter}.onnx"
    rc, _, err = run_cli(["compile", path, "--calib", ZOO / f"{name}.calib.npy", "--bits", 16,
                          "--chunk", 4 if name == "lstm_tagger" else 5, "--out", tmp_path / "out",
                          "--name", name, "-q"])
    assert rc == 0, err
    report = json.loads((tmp_path / "out" / name / "report.json").read_text())
    assert report["verification"]["selftest"] == "passed"
    assert {layer["precision"] for layer in report["layers"]} == {"int16"}
    snr = c_float_snr(tmp_path / "out" / name, report, path, np.load(ZOO / f"{name}.heldout.npy"),
                      tmp_path)
    print(f"\n{name} ({exporter}) int16: {snr:.2f} dB held-out through the C API")
    assert snr >= ZOO_MIN_SNR_DB


@pytest.mark.parametrize("bits, cell", [(8, "int16"), (16, "int32")])
def test_lstm_cell_read_by_another_layer_is_refused(tmp_path, bits, cell):
    """An LSTM's Y_c is its internal cell (int16 in an int8 layer, int32 in an int16 one), which
    no other kernel reads: one clear error naming the reader, not an assertion in lowering."""
    rng = np.random.default_rng(3)
    nodes = [node("Transpose", ["x"], ["xt"], perm=[2, 0, 1]),
             node("LSTM", ["xt", "W", "R", "B"], ["", "", "Yc"], name="rnn", hidden_size=4),
             node("Flatten", ["Yc"], ["f"], axis=1),
             node("Gemm", ["f", "wg", "bg"], ["y"], name="head", transB=1)]
    inits = [init("W", rng.uniform(-0.5, 0.5, (1, 16, 3))),
             init("R", rng.uniform(-0.5, 0.5, (1, 16, 4))), init("B", np.zeros((1, 32))),
             init("wg", rng.uniform(-0.5, 0.5, (2, 4))), init("bg", np.zeros(2))]
    path = tmp_path / "cell.onnx"
    onnx.save(model(nodes, [("x", [1, 3, 8])], [("y", None)], inits), str(path))
    opts = Options(target=get_target("esp32p4"), bits=bits, offline=True, name="cell",
                   calib=rng.standard_normal((4, 1, 3, 8)).astype(np.float32))
    with pytest.raises(RillError, match=rf"\(Flatten\) reads the cell state Y_c.*\({cell} at"):
        compile_model(path, opts, tmp_path / "out")
