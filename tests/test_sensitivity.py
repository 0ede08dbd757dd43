"""Per-layer sensitivity: one layer fake-quantized at a time, output SNR at int8 and int16, and
the bytes int16 costs."""
from __future__ import annotations

import time

import numpy as np
import onnx

from compiler.graph import to_runnable
from compiler.sensitivity import layer_sensitivity
from graphs import causal_tcn_model, init, model, node, rng, weights
from test_pass_quantize import C, T, conv_relu_add_model
from test_qdq_export import compiled

HUGE = 300.0


def wide_range_model() -> onnx.ModelProto:
    """x -> convA -> a -> convB -> b -> convC -> y, where b's channel 0 is HUGE times larger than
    its other channels and convC ignores it: quantizing b per tensor wipes out the small
    channels the output depends on; a and y are harmless."""
    wb = weights([C, C, 1], 2)
    wb[0] *= HUGE
    wc = weights([C, C, 1], 3)
    wc[:, 0] = 0.0
    return model([node("Conv", ["x", "wa", "ba"], ["a"], name="convA", kernel_shape=[3], pads=[2, 0]),
                  node("Conv", ["a", "wb"], ["b"], name="convB", kernel_shape=[1]),
                  node("Conv", ["b", "wc"], ["y"], name="convC", kernel_shape=[1])],
                 [("x", [1, C, T])], [("y", None)],
                 [init("wa", weights([C, C, 3], 1)), init("ba", weights([C], 4, 0.1)),
                  init("wb", wb), init("wc", wc)])


def calib(n: int = 16, shape=(1, C, T)) -> np.ndarray:
    return rng(5).standard_normal((n,) + tuple(shape)).astype(np.float32)


def test_the_wide_range_layer_is_the_most_sensitive():
    rows = layer_sensitivity(wide_range_model(), calib())
    assert [r["layer"] for r in rows][0] == "b"
    by = {r["layer"]: r for r in rows}
    assert by["b"]["snr_int8_db"] < 10.0
    assert min(by["a"]["snr_int8_db"], by["y"]["snr_int8_db"]) > by["b"]["snr_int8_db"] + 20.0
    assert by["b"]["snr_int16_db"] > by["b"]["snr_int8_db"] + 30.0  # int16 rescues it
    assert [r["snr_int8_db"] for r in rows] == sorted(r["snr_int8_db"] for r in rows)
    for r in rows:
        assert r["snr_int16_db"] > r["snr_int8_db"]


def test_bytes_count_weights_biases_and_the_output_tensor():
    rows = {r["layer"]: r for r in layer_sensitivity(wide_range_model(), calib(4))}
    assert rows["a"]["weights"] == ["convA"]
    assert rows["a"]["int16_weight_bytes"] == C * C * 3 + 4 * C  # one byte per weight, 4 per bias
    assert rows["b"]["int16_weight_bytes"] == C * C
    assert rows["a"]["int16_activation_bytes"] == C * T
    for r in rows.values():
        assert r["int16_extra_bytes"] == r["int16_weight_bytes"] + r["int16_activation_bytes"]


def test_compiled_model_layers_own_their_fused_weights_and_use_the_given_exponents():
    """After fusion the Conv+Relu is one layer ('r', written by the expanded Relu) that owns the
    conv's weights; the compilation's exponents are used at int8."""
    m = conv_relu_add_model()
    ctx = compiled(m)
    offline = to_runnable(ctx.graph)
    facts = ctx.facts
    data = calib(8)
    rows = {r["layer"]: r for r in layer_sensitivity(offline, data, facts["exponents"],
                                                     facts["weight_exponents"])}
    assert set(rows) == {"r", "y"}  # 'x' is an input; the pre-activation is not quantized
    assert rows["r"]["weights"] == ["conv"] and rows["y"]["weights"] == []
    coarse = dict(facts["exponents"], r=facts["exponents"]["r"] + 4)  # 16x too coarse
    worse = {r["layer"]: r for r in layer_sensitivity(offline, data, coarse, facts["weight_exponents"])}
    assert worse["r"]["snr_int8_db"] < rows["r"]["snr_int8_db"] - 10.0
    assert worse["r"]["snr_int16_db"] == rows["r"]["snr_int16_db"]  # int16 chooses its own


def test_thirty_layers_sixteen_inputs_take_seconds():
    """15 Conv+Relu pairs (30 op outputs), 8 channels x 64 frames, 16 calibration inputs."""
    m = causal_tcn_model(channels=8, t=64, layers=[(3, 2 ** (i % 4)) for i in range(15)])
    start = time.perf_counter()
    rows = layer_sensitivity(m, calib(16, (1, 8, 64)))
    elapsed = time.perf_counter() - start
    print(f"sensitivity of {len(rows)} layers x 2 widths on 16 inputs: {elapsed:.2f} s")
    assert len(rows) == 30
    assert elapsed < 20.0
