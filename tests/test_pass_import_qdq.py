"""ImportQDQ: QDQ models (onnxruntime quantize_static, hand-made int16, fake-quantized weights)
import to the float structure with their exponents; non-power-of-two scales warn with the error
they introduce; asymmetric or unsigned quantization is refused."""
from __future__ import annotations

import math

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from compiler.errors import RillError
from compiler.pass_manager import PassManager
from compiler.pipeline import float_passes, quantization_passes
from graphs import (const_of, ctx_for, init, model, node, op_types, rng, run_pass, weights)
from passes.import_qdq import ImportQDQ, honored_weight_exponents, nearest_exponent

C, T = 4, 16


def conv_relu_conv(c_mid: int = 6) -> onnx.ModelProto:
    """x[1, 4, 16] -> Conv(k=3, causal) -> Relu -> Conv(k=3, causal) -> y."""
    return model([node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", kernel_shape=[3], pads=[2, 0]),
                  node("Relu", ["c1"], ["r1"], name="relu1"),
                  node("Conv", ["r1", "w2", "b2"], ["y"], name="conv2", kernel_shape=[3], pads=[2, 0])],
                 [("x", [1, C, T])], [("y", None)],
                 [init("w1", weights([c_mid, C, 3], 1)), init("b1", weights([c_mid], 2, 0.1)),
                  init("w2", weights([C, c_mid, 3], 3)), init("b2", weights([C], 4, 0.1))])


def ort_quantized(m: onnx.ModelProto, tmp_path, activation: str = "QInt8") -> onnx.ModelProto:
    """`m` quantized by onnxruntime's quantize_static: QDQ, symmetric, per-channel weights."""
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,
                                          quantize_static)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.feeds = iter([{"x": rng(i).standard_normal((1, C, T)).astype(np.float32)}
                               for i in range(8)])

        def get_next(self):
            return next(self.feeds, None)

    src, dst = tmp_path / "float.onnx", tmp_path / "qdq.onnx"
    onnx.save(m, str(src))
    quantize_static(str(src), str(dst), Reader(), quant_format=QuantFormat.QDQ,
                    activation_type=getattr(QuantType, activation), weight_type=QuantType.QInt8,
                    per_channel=True,
                    extra_options={"ActivationSymmetric": True, "WeightSymmetric": True})
    return onnx.load(str(dst))


def qdq_params(m: onnx.ModelProto) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Tensor quantized by each Q node -> (scale, zero point), read from the model itself."""
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in m.graph.initializer}
    return {n.input[0]: (inits[n.input[1]], inits[n.input[2]]) for n in m.graph.node
            if n.op_type == "QuantizeLinear"}


def imported(m: onnx.ModelProto):
    ctx = ctx_for(m, properties=set(), shapes=False)
    assert run_pass(ImportQDQ(), ctx)
    return ctx


# --------------------------------------------------------------------------- onnxruntime QDQ

@pytest.mark.parametrize("activation,bits", [("QInt8", 8), ("QInt16", 16)])
def test_onnxruntime_qdq_model_imports_to_the_float_structure(tmp_path, activation, bits):
    q = ort_quantized(conv_relu_conv(), tmp_path, activation)
    scales = qdq_params(q)
    ctx = imported(q)
    assert op_types(ctx) == ["Conv", "Relu", "Conv"]
    assert [t.name for t in ctx.graph.inputs] == ["x"] and [t.name for t in ctx.graph.outputs] == ["y"]
    fixed = ctx.facts["fixed_exponents"]
    # the graph output takes over the name of the DQ that fed it ('y_QuantizeLinear_Input' -> 'y')
    expected = {("y" if name.startswith("y_") else name): nearest_exponent(float(s))
                for name, (s, _) in scales.items()}
    assert fixed == expected
    assert ctx.facts["tensor_bits"] == {name: bits for name in expected}
    assert ctx.facts["weight_bits"] == {"conv1": 8, "conv2": 8}
    assert set(ctx.facts["given_weight_exponents"]) == {"conv1", "conv2"}


def test_imported_weights_and_biases_are_the_dequantized_values(tmp_path):
    q = ort_quantized(conv_relu_conv(), tmp_path)
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in q.graph.initializer}
    ctx = imported(q)
    conv1 = next(n for n in ctx.graph.nodes if n.name == "conv1")
    w, b = const_of(conv1.inputs[1]), const_of(conv1.inputs[2])
    assert w.dtype == np.float32 and b.dtype == np.float32
    np.testing.assert_array_equal(
        w, (inits["w1_quantized"] * inits["w1_scale"].reshape(-1, 1, 1)).astype(np.float32))
    np.testing.assert_array_equal(b, (inits["b1_quantized"] * inits["b1_quantized_scale"]).astype(np.float32))
    kinds = sorted(e["kind"] for e in ctx.facts["qdq_import"])
    assert kinds == ["activation"] * 4 + ["bias"] * 2 + ["weight"] * 2


def test_imported_model_is_close_to_the_qdq_model(tmp_path):
    """Dropping the fake quantization leaves the float model the QDQ one approximates."""
    from compiler.ort import run_model
    from compiler.streams import snr_db
    from graphs import runnable
    q = ort_quantized(conv_relu_conv(), tmp_path)
    got = runnable(imported(q))
    xs = [rng(50 + i).standard_normal((1, C, T)).astype(np.float32) for i in range(4)]
    ref = np.concatenate([run_model(q, {"x": x})["y"].ravel() for x in xs])
    out = np.concatenate([run_model(got, {"x": x})["y"].ravel() for x in xs])
    assert snr_db(out, ref) > 25.0


def test_non_power_of_two_scales_warn_with_the_error(tmp_path):
    q = ort_quantized(conv_relu_conv(), tmp_path)
    scales = qdq_params(q)
    ctx = imported(q)
    s = float(scales["c1"][0])
    e = ctx.facts["fixed_exponents"]["c1"]
    (note,) = [w for w in ctx.warnings if w.startswith("tensor 'c1'")]
    assert f"{s:.6g}" in note and f"2^{e}" in note
    assert f"{100 * (2.0 ** e / s - 1):+.1f}%" in note  # the relative scale change
    assert f"{-20 * math.log10(2.0 ** e / s):+.2f} dB" in note  # the noise SNR change
    assert f"{2.0 ** e / 2:.4g} instead of {s / 2:.4g}" in note  # max rounding error
    weight_notes = [w for w in ctx.warnings if w.startswith("weights ")]
    assert len(weight_notes) == 2 and all("weight SNR" in w and "max abs error" in w for w in weight_notes)
    assert len(ctx.warnings) == 4 + 2  # one per activation tensor, one per weight tensor


def test_non_power_of_two_weight_scales_never_clip_much(tmp_path):
    """quantize_static's scales put max|w| at 127: the nearer power of two below would clip it
    by up to 29%, so the re-quantization picks the one with the smaller error."""
    q = ort_quantized(conv_relu_conv(), tmp_path)
    ctx = imported(q)
    for node in ctx.graph.nodes:
        if node.op != "Conv":
            continue
        w = const_of(node.inputs[1]).astype(np.float64)
        e = ctx.facts["given_weight_exponents"][node.name]
        top = np.abs(w).reshape(w.shape[0], -1).max(axis=1)
        assert np.all(top <= 127.5 * 2.0 ** e)


def test_imported_exponents_reach_the_integer_program(tmp_path):
    """Through fusion, calibration, quantization and propagation the imported exponents stay."""
    q = ort_quantized(conv_relu_conv(), tmp_path)
    ctx = ctx_for(q, properties=set(), shapes=False, offline=True,
                  calib=rng(9).standard_normal((8, 1, C, T)).astype(np.float32))
    PassManager([ImportQDQ()] + float_passes(True) + quantization_passes()).run(ctx)
    fixed = ctx.facts["fixed_exponents"]
    buffers = ctx.facts["program"].buffers
    for name in ("x", "r1", "y"):
        assert buffers[name].exp == fixed[name]


# --------------------------------------------------------------------------- hand-made QDQ

def scalar(name: str, value, dtype) -> onnx.TensorProto:
    return init(name, value, dtype)


def int16_qdq_model() -> tuple[onnx.ModelProto, dict]:
    """An int16 QDQ Conv model with power-of-two scales (opset 21): x -> QDQ -> Conv(w: int16,
    per-channel 2^e_w; bias int32) -> QDQ -> y."""
    e_w = np.array([-12, -11, -13, -12])
    wq = rng(3).integers(-30000, 30000, (C, C, 3)).astype(np.int16)
    bq = rng(4).integers(-5000, 5000, C).astype(np.int32)
    nodes = [node("QuantizeLinear", ["x", "sx", "z16"], ["xq"], name="qx"),
             node("DequantizeLinear", ["xq", "sx", "z16"], ["xd"], name="dqx"),
             node("DequantizeLinear", ["wq", "sw", "zw"], ["wd"], name="dqw", axis=0),
             node("DequantizeLinear", ["bq", "sb"], ["bd"], name="dqb", axis=0),
             node("Conv", ["xd", "wd", "bd"], ["c"], name="conv", kernel_shape=[3], pads=[2, 0]),
             node("QuantizeLinear", ["c", "sy", "z16"], ["cq"], name="qy"),
             node("DequantizeLinear", ["cq", "sy", "z16"], ["y"], name="dqy")]
    inits = [scalar("sx", 2.0 ** -10, np.float32), scalar("sy", 2.0 ** -9, np.float32),
             scalar("z16", 0, np.int16), init("wq", wq, np.int16),
             init("sw", 2.0 ** e_w, np.float32), init("zw", np.zeros(C), np.int16),
             init("bq", bq, np.int32), init("sb", 2.0 ** (e_w - 10), np.float32)]
    m = model(nodes, [("x", [1, C, T])], [("y", [1, C, T])], inits, check=False)
    m.opset_import[0].version = 21
    m.ir_version = 10
    onnx.checker.check_model(m)
    return m, {"e_w": e_w, "wq": wq, "bq": bq}


def test_int16_power_of_two_model_is_taken_as_given():
    m, made = int16_qdq_model()
    ctx = imported(m)
    assert op_types(ctx) == ["Conv"] and not ctx.warnings
    assert ctx.facts["fixed_exponents"] == {"x": -10, "y": -9}
    assert ctx.facts["tensor_bits"] == {"x": 16, "y": 16}
    assert ctx.facts["weight_bits"] == {"conv": 16}
    np.testing.assert_array_equal(ctx.facts["given_weight_exponents"]["conv"], made["e_w"])
    conv = ctx.graph.nodes[0]
    w, b = const_of(conv.inputs[1]), const_of(conv.inputs[2])
    # on the power-of-two grid: re-quantizing at the given exponents gives the integers back
    np.testing.assert_array_equal(w / 2.0 ** made["e_w"].reshape(-1, 1, 1), made["wq"])
    np.testing.assert_array_equal(b / 2.0 ** (made["e_w"] - 10), made["bq"])
    assert all(e["exact"] for e in ctx.facts["qdq_import"])


def test_fake_quantized_float_weights_fold_with_round_half_even():
    """float w -> QuantizeLinear -> DequantizeLinear -> Conv (an export without constant folding)."""
    w = np.array([[[0.5, 1.5, 2.5]], [[-0.5, -1.5, 3.0]]], np.float32)  # ties at scale 1
    nodes = [node("QuantizeLinear", ["w", "sw", "zw"], ["wq"], name="qw", axis=0),
             node("DequantizeLinear", ["wq", "sw", "zw"], ["wd"], name="dqw", axis=0),
             node("Conv", ["x", "wd"], ["y"], name="conv", kernel_shape=[3])]
    m = model(nodes, [("x", [1, 1, 8])], [("y", None)],
              [init("w", w), init("sw", [1.0, 0.5], np.float32), init("zw", [0, 0], np.int8)])
    ctx = imported(m)
    got = const_of(ctx.graph.nodes[0].inputs[1])
    np.testing.assert_array_equal(got, [[[0.0, 2.0, 2.0]], [[-0.5, -1.5, 3.0]]])
    np.testing.assert_array_equal(ctx.facts["given_weight_exponents"]["conv"], [0, -1])


def gemm_model(trans_b: int, scale_axis: int, n: int = 3, k: int = 5) -> onnx.ModelProto:
    shape = [n, k] if trans_b else [k, n]
    scales = 2.0 ** -np.arange(4, 4 + shape[scale_axis])
    nodes = [node("DequantizeLinear", ["wq", "sw", "zw"], ["wd"], name="dqw", axis=scale_axis),
             node("Gemm", ["x", "wd"], ["y"], name="fc", transB=trans_b)]
    return model(nodes, [("x", [1, k])], [("y", None)],
                 [init("wq", rng(1).integers(-100, 100, shape), np.int8),
                  init("sw", scales, np.float32), init("zw", np.zeros(shape[scale_axis]), np.int8)])


@pytest.mark.parametrize("trans_b,axis", [(1, 0), (0, 1)])
def test_gemm_weights_get_per_output_channel_exponents(trans_b, axis):
    ctx = imported(gemm_model(trans_b, axis))
    np.testing.assert_array_equal(ctx.facts["given_weight_exponents"]["fc"], [-4, -5, -6])


def test_matmul_weights_keep_their_exponents_through_the_gemm_rewrite():
    """MatMul weights [K, N] quantized along N; FuseGemm turns the MatMul into a Gemm of the
    same name with transposed weights, and the given exponents still apply."""
    k, n = 5, 3
    nodes = [node("DequantizeLinear", ["wq", "sw", "zw"], ["wd"], name="dqw", axis=1),
             node("MatMul", ["x", "wd"], ["y"], name="mm")]
    m = model(nodes, [("x", [2, k])], [("y", None)],
              [init("wq", rng(1).integers(-100, 100, (k, n)), np.int8),
               init("sw", 2.0 ** np.array([-3, -5, -4]), np.float32), init("zw", np.zeros(n), np.int8)])
    ctx = ctx_for(m, properties=set(), shapes=False, offline=True)
    PassManager([ImportQDQ()] + float_passes(True)).run(ctx)
    assert op_types(ctx) == ["Gemm"]
    honored, stale = honored_weight_exponents(ctx.graph, ctx.facts)
    assert not stale
    np.testing.assert_array_equal(honored["mm"], [-3, -5, -4])


def test_per_axis_scales_along_the_input_axis_are_refused():
    with pytest.raises(RillError, match="not per output channel"):
        imported(gemm_model(trans_b=1, scale_axis=1))


def test_grouped_conv_transpose_exponents_follow_the_output_channels():
    """ConvTranspose weights are [c_in, c_out/g, k], scales along axis 1 repeat per group."""
    g, og, cg = 2, 3, 2
    nodes = [node("DequantizeLinear", ["wq", "sw", "zw"], ["wd"], name="dqw", axis=1),
             node("ConvTranspose", ["x", "wd"], ["y"], name="up", kernel_shape=[2], strides=[2],
                  group=g)]
    m = model(nodes, [("x", [1, g * cg, 4])], [("y", None)],
              [init("wq", rng(2).integers(-100, 100, (g * cg, og, 2)), np.int8),
               init("sw", 2.0 ** np.array([-3, -4, -5]), np.float32),
               init("zw", np.zeros(og), np.int8)])
    ctx = imported(m)
    np.testing.assert_array_equal(ctx.facts["given_weight_exponents"]["up"], [-3, -4, -5] * g)


# --------------------------------------------------------------------------- refusals

def activation_qdq(zp_dtype=np.int8, zp=0, with_zp=True) -> onnx.ModelProto:
    ins = ["x", "s"] + (["z"] if with_zp else [])
    nodes = [node("QuantizeLinear", ins, ["xq"], name="q"),
             node("DequantizeLinear", ["xq"] + ins[1:], ["xd"], name="dq"),
             node("Relu", ["xd"], ["y"], name="relu")]
    inits = [init("s", 0.25)] + ([init("z", zp, zp_dtype)] if with_zp else [])
    return model(nodes, [("x", [1, C, T])], [("y", None)], inits)


@pytest.mark.parametrize("kw,message", [
    (dict(zp_dtype=np.uint8, zp=128), "uint8"),
    (dict(zp_dtype=np.int8, zp=3), "zero point 3"),
    (dict(with_zp=False), "uint8"),  # ONNX's default type without a zero point
])
def test_asymmetric_or_unsigned_activations_are_refused_naming_the_tensor(kw, message):
    with pytest.raises(RillError, match=message) as err:
        imported(activation_qdq(**kw))
    assert "'x'" in str(err.value) and "symmetric" in str(err.value)


def test_weights_with_a_nonzero_zero_point_are_refused_naming_the_tensor():
    m = gemm_model(1, 0)
    zp = next(i for i in m.graph.initializer if i.name == "zw")
    zp.CopyFrom(init("zw", [0, 5, 0], np.int8))
    with pytest.raises(RillError, match="weights 'wq' of node 'fc'.*zero point 5"):
        imported(m)


def test_qoperator_models_are_refused():
    nodes = [node("QuantizeLinear", ["x", "s", "z"], ["xq"], name="q"),
             node("Neg", ["xq"], ["y"], name="neg")]
    m = model(nodes, [("x", [1, C])], [("y", None, TensorProto.INT8)],
              [init("s", 0.5), init("z", 0, np.int8)])
    with pytest.raises(RillError, match="QOperator"):
        imported(m)


def test_integer_model_inputs_are_refused():
    nodes = [node("DequantizeLinear", ["xq", "s", "z"], ["x"], name="dq"),
             node("Relu", ["x"], ["y"], name="relu")]
    m = model(nodes, [("xq", [1, C], TensorProto.INT8)], [("y", None)],
              [init("s", 0.5), init("z", 0, np.int8)])
    with pytest.raises(RillError, match="input 'xq' is already quantized"):
        imported(m)


def test_a_float_model_is_left_alone():
    m = conv_relu_conv()
    ctx = ctx_for(m, properties=set(), shapes=False)
    assert not run_pass(ImportQDQ(), ctx)
    assert "qdq_import" not in ctx.facts and op_types(ctx) == ["Conv", "Relu", "Conv"]


# --------------------------------------------------------------------------- given weights

def test_given_weight_exponents_are_dropped_when_a_later_pass_changes_the_weights():
    """A BatchNorm folded into the conv changes its weights: their given exponents are stale."""
    m, _ = int16_qdq_model()
    bn = [node("BatchNormalization", ["y", "g", "beta", "mean", "var"], ["z"], name="bn")]
    g = helper.make_graph(list(m.graph.node) + bn, "g", list(m.graph.input),
                          [helper.make_tensor_value_info("z", TensorProto.FLOAT, None)],
                          list(m.graph.initializer) + [init("g", [2.0] * C), init("beta", [0.1] * C),
                                                       init("mean", [0.0] * C), init("var", [1.0] * C)])
    with_bn = helper.make_model(g, opset_imports=list(m.opset_import), ir_version=10)
    for source, stale in ((m, []), (with_bn, ["conv"])):
        ctx = ctx_for(source, properties=set(), shapes=False, offline=True)
        PassManager([ImportQDQ()] + float_passes(True)).run(ctx)
        honored, dropped = honored_weight_exponents(ctx.graph, ctx.facts)
        assert dropped == stale
        assert sorted(honored) == sorted({"conv"} - set(stale))


def test_concat_inputs_with_different_given_scales_are_requantized():
    """onnxruntime-style QDQ gives each Concat input its own scale: the inputs keep the given
    exponents and the Concat requantizes the finer one (reported), instead of refusing."""
    nodes = [node("Conv", ["x", "w1"], ["c1"], name="conv1", kernel_shape=[3], pads=[2, 0]),
             node("QuantizeLinear", ["c1", "s1", "z8"], ["c1q"], name="q1"),
             node("DequantizeLinear", ["c1q", "s1", "z8"], ["c1d"], name="dq1"),
             node("Conv", ["x", "w2"], ["c2"], name="conv2", kernel_shape=[1]),
             node("QuantizeLinear", ["c2", "s2", "z8"], ["c2q"], name="q2"),
             node("DequantizeLinear", ["c2q", "s2", "z8"], ["c2d"], name="dq2"),
             node("Concat", ["c1d", "c2d"], ["cat"], name="cat", axis=1),
             node("QuantizeLinear", ["cat", "s1", "z8"], ["catq"], name="qcat"),
             node("DequantizeLinear", ["catq", "s1", "z8"], ["y"], name="dqcat")]
    m = model(nodes, [("x", [1, C, T])], [("y", None)],
              [init("w1", weights([C, C, 3], 1, 0.4)), init("w2", weights([C, C, 1], 2, 0.02)),
               scalar("s1", 2.0 ** -4, np.float32), scalar("s2", 2.0 ** -8, np.float32),
               scalar("z8", 0, np.int8)])
    ctx = ctx_for(m, properties=set(), shapes=False, offline=True,
                  calib=rng(9).standard_normal((8, 1, C, T)).astype(np.float32))
    PassManager([ImportQDQ()] + float_passes(True) + quantization_passes()).run(ctx)
    exps = ctx.facts["exponents"]
    fixed = ctx.facts["fixed_exponents"]
    assert exps["y"] == -4 and fixed[next(t for t in fixed if exps[t] == -8)] == -8
    [req] = ctx.facts["requantizations"]
    assert (req["node"], req["from_exp"], req["to_exp"]) == ("cat", -8, -4)
    assert req["reason"] == "fixed to different exponents"
    assert [s.op for s in ctx.facts["program"].steps if s.name == "cat"] == ["copy", "requant", "copy"]
