"""QDQ export: the quantized model as a QDQ ONNX model onnxruntime runs; it computes what Rill's
integer program computes, and stores weights the way each op lays them out."""
from __future__ import annotations

import numpy as np
import onnx
import pytest

from codegen.qdq_export import ActivationQ, QDQPlan, WeightQ, apply_qdq, export_qdq
from compiler.ort import run_model
from compiler.pass_manager import PassManager
from compiler.pipeline import Compilation, float_passes, quantization_passes
from compiler.simulate import run_integer
from compiler.streams import snr_db
from graphs import ctx_for, init, model, node, rng, weights
from test_pass_quantize import C, T, conv_relu_add_model, window_head_model


def compiled(m: onnx.ModelProto):
    """The offline int8 compilation of `m` (float passes + quantization passes)."""
    ctx = ctx_for(m, properties=set(), shapes=False, offline=True,
                  calib=rng(100).standard_normal((24, 1, C, T)).astype(np.float32))
    PassManager(float_passes(True) + quantization_passes()).run(ctx)
    return ctx


def held_out(n: int = 6) -> np.ndarray:
    return rng(7).standard_normal((n, 1, C, T)).astype(np.float32)


def outputs(m: onnx.ModelProto, xs: np.ndarray) -> np.ndarray:
    return np.concatenate([run_model(m, {"x": x})["y"].ravel() for x in xs])


def ops(m: onnx.ModelProto) -> list[str]:
    return [n.op_type for n in m.graph.node]


def test_export_structure_wraps_every_quantized_tensor():
    ctx = compiled(conv_relu_add_model())
    q = export_qdq(ctx.graph, ctx.facts, 8)
    onnx.checker.check_model(q, full_check=True)
    dq_outputs = {n.output[0] for n in q.graph.node if n.op_type == "DequantizeLinear"}
    assert {"x/dequantized", "r", "y"} <= dq_outputs  # input, fused conv+relu output, add output
    assert ops(q).count("QuantizeLinear") == 3
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in q.graph.initializer}
    assert inits["conv/qdq_weight/int8"].dtype == np.int8
    assert inits["conv/qdq_bias/int32"].dtype == np.int32
    np.testing.assert_array_equal(np.log2(inits["conv/qdq_weight/scale"]),
                                  ctx.facts["weight_exponents"]["conv"])
    assert [o.name for o in q.graph.output] == ["y"] and [i.name for i in q.graph.input] == ["x"]


@pytest.mark.parametrize("make", [conv_relu_add_model, window_head_model])
def test_qdq_model_tracks_the_integer_program(make):
    """onnxruntime on the QDQ model and Rill's integer reference give the same SNR against the
    float model; they may differ only in rounding details inside kernels."""
    m = make()
    ctx = compiled(m)
    q = export_qdq(ctx.graph, ctx.facts, 8)
    xs = held_out()
    ref, got = outputs(m, xs), outputs(q, xs)
    layout = Compilation(ctx).layout()
    rill = np.concatenate([run_integer(ctx.facts["program"], layout, x).result.ravel() for x in xs])
    assert abs(snr_db(ref, got) - snr_db(ref, rill)) < 0.1
    assert np.mean(got == rill) >= 0.99


def test_int16_tensors_raise_the_opset_and_the_snr():
    m = conv_relu_add_model()
    ctx = compiled(m)
    facts = dict(ctx.facts)
    facts["exponents"] = {n: e - 8 for n, e in ctx.facts["exponents"].items()}  # same range
    facts["weight_exponents"] = {n: e - 8 for n, e in ctx.facts["weight_exponents"].items()}
    facts["tensor_bits"] = {n: 16 for n in facts["exponents"]}
    facts["weight_bits"] = {n: 16 for n in facts["weight_exponents"]}
    q16 = export_qdq(ctx.graph, facts, 8)
    onnx.checker.check_model(q16, full_check=True)
    assert next(o.version for o in q16.opset_import if o.domain == "") >= 21
    assert q16.ir_version >= 10
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in q16.graph.initializer}
    assert inits["conv/qdq_weight/int16"].dtype == np.int16
    xs = held_out()
    ref = outputs(m, xs)
    snr8 = snr_db(ref, outputs(export_qdq(ctx.graph, ctx.facts, 8), xs))
    snr16 = snr_db(ref, outputs(q16, xs))
    assert snr16 > snr8 + 30.0


def test_bias_corrections_reach_the_exported_bias():
    ctx = compiled(conv_relu_add_model())
    facts = dict(ctx.facts, bias_corrections={"conv": np.full(C, 0.5)})
    plain = {i.name: onnx.numpy_helper.to_array(i) for i in export_qdq(ctx.graph, ctx.facts).graph.initializer}
    moved = {i.name: onnx.numpy_helper.to_array(i) for i in export_qdq(ctx.graph, facts).graph.initializer}
    scale = moved["conv/qdq_bias/scale"].astype(np.float64)
    np.testing.assert_array_equal((moved["conv/qdq_bias/int32"] - plain["conv/qdq_bias/int32"]) * scale,
                                  np.full(C, 0.5))


# --------------------------------------------------------------------------- weight layouts

def fake_quantized(w: np.ndarray, exps: np.ndarray, channel_of) -> np.ndarray:
    """Every weight quantized (int8, half even) at the exponent of the output channel it feeds;
    `channel_of(index)` maps a weight index to that channel (written out element by element, so
    it does not share the exporter's layout code)."""
    out = np.empty_like(w, dtype=np.float64)
    for idx in np.ndindex(w.shape):
        step = 2.0 ** exps[channel_of(idx)]
        out[idx] = np.clip(np.round(w[idx] / step), -128, 127) * step
    return out.astype(np.float32)


def layout_case(kind: str):
    """A float model, the same model with hand fake-quantized weights, an input, and the
    per-output-channel exponents."""
    if kind == "gemm_transB0":
        w = weights([6, 5], 1)  # [K, N]
        e = np.array([-6, -7, -5, -8, -6])
        make = lambda v: model([node("Gemm", ["x", "w", "b"], ["y"], name="layer")],
                               [("x", [2, 6])], [("y", None)], [init("w", v), init("b", np.zeros(5))])
        x = rng(3).standard_normal((2, 6)).astype(np.float32)
        return make(w), make(fake_quantized(w, e, lambda i: i[1])), x, e
    g, cg, og = (2, 2, 3) if kind == "convT_grouped" else (1, 3, 4)
    w = weights([g * cg, og, 2], 1)  # [c_in, c_out / g, k]
    e = np.arange(g * og) % 3 - 7
    make = lambda v: model([node("ConvTranspose", ["x", "w"], ["y"], name="layer", kernel_shape=[2],
                                 strides=[2], group=g)],
                           [("x", [1, g * cg, 4])], [("y", None)], [init("w", v)])
    fq = fake_quantized(w, e, lambda i: (i[0] // cg) * og + i[1])
    return make(w), make(fq), rng(3).standard_normal((1, g * cg, 4)).astype(np.float32), e


@pytest.mark.parametrize("kind", ["gemm_transB0", "convT_grouped", "convT"])
def test_weights_are_quantized_per_output_channel_in_the_ops_own_layout(kind):
    m, expected, x, e = layout_case(kind)
    q = apply_qdq(m, QDQPlan(weights={"layer": WeightQ(e, 8)}))
    onnx.checker.check_model(q, full_check=True)
    got, want = run_model(q, {"x": x})["y"], run_model(expected, {"x": x})["y"]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)


def test_only_the_planned_tensor_is_quantized():
    m = conv_relu_add_model()
    ctx = compiled(m)
    q = apply_qdq(onnx.load_from_string(m.SerializeToString()),
                  QDQPlan(activations={"r": ActivationQ(ctx.facts["exponents"]["r"], 8)}))
    assert ops(q).count("QuantizeLinear") == 1 and ops(q).count("DequantizeLinear") == 1
    xs = held_out(2)
    assert 20.0 < snr_db(outputs(m, xs), outputs(q, xs)) < 80.0
