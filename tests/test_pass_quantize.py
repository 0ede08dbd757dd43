"""Calibrate + Quantize + PropagateQParams + LowerToInteger on tiny models, run by the integer
reference interpreter (contract §3)."""
from __future__ import annotations

import numpy as np
import onnx
import pytest

from compiler.context import Options
from compiler.errors import RillError
from compiler.graph import static_shape
from compiler.ort import run_model
from compiler.pass_manager import PassManager
from compiler.pipeline import compile_model, float_passes
from compiler.streams import chunks, from_physical, snr_db, stitch, to_physical
from compiler.targets import get_target
from graphs import ctx_for, init, ints, model, node, rng, weights
from passes import calibrate
from passes.bias_correction import correct_layer
from passes.calibrate import Calibrate
from passes.lower_integer import LowerToInteger
from passes.observers import DEFAULT_RECIPE, channel_exponents, observer
from passes.propagate_qparams import PropagateQParams
from passes.quant_rules import out_channel_weights
from passes.quantize import Quantize
from runtime.reference.interpreter import run_stream
from runtime.reference.kernels import dequantize, quantize

C, T = 4, 16
INT64_MAX = np.iinfo(np.int64).max


def conv_relu_add_model(w=None):
    """x -> Conv(k=3, causal) -> Relu -> Add(x) -> y."""
    w = weights([C, C, 3], 1, scale=0.4) if w is None else w
    return model([node("Conv", ["x", "w", "b"], ["c"], name="conv", kernel_shape=[3], pads=[2, 0]),
                  node("Relu", ["c"], ["r"], name="relu"),
                  node("Add", ["r", "x"], ["y"], name="add")],
                 [("x", [1, C, T])], [("y", None)], [init("w", w), init("b", weights([C], 2, 0.1))])


def window_head_model(frames=3, n_out=6):
    """x -> Conv(k=3, causal) -> Relu -> x[:, :, -frames:] -> Flatten -> Gemm -> y (summary)."""
    return model([node("Conv", ["x", "w"], ["c"], name="conv", kernel_shape=[3], pads=[2, 0]),
                  node("Relu", ["c"], ["r"], name="relu"),
                  node("Slice", ["r", "starts", "ends", "axes"], ["head"], name="head"),
                  node("Flatten", ["head"], ["flat"], name="flatten", axis=1),
                  node("Gemm", ["flat", "W", "b"], ["y"], name="fc", transB=1)],
                 [("x", [1, C, T])], [("y", None)],
                 [init("w", weights([C, C, 3], 1, 0.4)), ints("starts", [-frames]),
                  ints("ends", [INT64_MAX]), ints("axes", [2]),
                  init("W", weights([n_out, C * frames], 2, 0.3)), init("b", weights([n_out], 3, 0.1))])


def calibration(n=24, seed=100):
    return rng(seed).standard_normal((n, 1, C, T)).astype(np.float32)


def compile_ctx(m, *, chunk=1, offline=False, target="esp32p4", upto=None, calib=None, **opts):
    """Run the float pipeline, then the quantization passes (all, or up to the class `upto`)."""
    ctx = ctx_for(m, properties=set(), shapes=False, chunk=chunk, offline=offline,
                  target=target, calib=calibration() if calib is None else calib, **opts)
    PassManager(float_passes(offline)).run(ctx)
    for p in (Calibrate(), Quantize(), PropagateQParams(), LowerToInteger()):
        if upto is not None and isinstance(p, upto):
            break
        PassManager([p]).run(ctx)
    return ctx


def run_integer(ctx, x):
    """Quantize x, feed it chunk by chunk to the reference interpreter, dequantize and stitch."""
    program, info = ctx.facts["program"], ctx.facts["time_info"]
    stream = ctx.facts.get("streaming")
    chunk = stream["chunk"] if stream else x.shape[2]
    per_frame = bool(stream and stream["per_frame_output"]) or (not stream and info.get(program.outputs[0]) is not None)
    x_info, y_info = info.get(program.inputs[0]), info.get(program.outputs[0])
    e_in = program.buffers[program.inputs[0]].exp
    e_out = program.buffers[program.outputs[0]].exp
    q_in = [quantize(to_physical(c, x_info), exp=e_in, mode=program.rounding,
                     out_bits=np.dtype(program.buffers[program.inputs[0]].dtype).itemsize * 8)
            for c in chunks(x, 2, chunk)]
    q_out = run_stream(program, q_in)
    out_shape = static_shape(ctx.graph.tensors()[program.outputs[0]])
    per_call = [from_physical(dequantize(q, exp=e_out), out_shape, y_info) for q in q_out]
    return stitch(per_call, per_frame, 2), q_out


def held_out(n=6, seed=7):
    return rng(seed).standard_normal((n, 1, C, T)).astype(np.float32)


def integer_snr(m, ctx) -> float:
    refs, got = [], []
    for x in held_out():
        refs.append(run_model(m, {"x": x})["y"].reshape(-1))
        got.append(run_integer(ctx, x)[0].reshape(-1))
    return snr_db(np.concatenate(refs), np.concatenate(got))


# --------------------------------------------------------------------------- exponents

@pytest.mark.parametrize("make", [conv_relu_add_model, window_head_model])
def test_every_tensor_has_an_exponent(make):
    ctx = compile_ctx(make(), chunk=1)
    exps = ctx.facts["exponents"]
    names = [t.name for t in ctx.graph.tensors().values() if not hasattr(t, "values") and t.name]
    missing = [n for n in names if n not in exps]
    assert not missing
    assert all(isinstance(exps[n], (int, np.integer)) for n in names)
    for b in ctx.facts["program"].buffers.values():  # buffers carry their tensor's exponent
        assert b.exp == exps[b.name]


def test_state_slice_concat_group_shares_one_exponent():
    ctx = compile_ctx(window_head_model(frames=3), chunk=1, upto=LowerToInteger)
    exps, groups = ctx.facts["exponents"], ctx.facts["exponent_groups"]
    states = ctx.facts["streaming"]["states"]
    assert len(states) == 2  # conv input frames, and the 2 frames the head keeps
    for s in states:
        concat = next(n for n in ctx.graph.nodes if n.op == "Concat" and n.inputs[0].name == s.input)
        members = {s.input, s.output, s.tensor, concat.outputs[0].name}
        assert len({exps[n] for n in members}) == 1, {n: exps[n] for n in members}
        group = next(g for g in groups if s.input in g)
        assert members <= set(group)
    for n in ctx.graph.nodes:  # passive data movement keeps the exponent
        if n.op in ("Slice", "Concat", "Flatten"):
            data = n.inputs if n.op == "Concat" else n.inputs[:1]
            assert {exps[t.name] for t in data} == {exps[n.outputs[0].name]}, n.name


def test_a_group_takes_the_coarsest_exponent_of_its_members():
    # Concat (along channels) of a conv output and a tiny copy of x: the two ranges differ ~2^6
    m = model([node("Conv", ["x", "w"], ["c"], name="conv", kernel_shape=[3], pads=[2, 0]),
               node("Mul", ["x", "tiny"], ["small"], name="scale"),
               node("Concat", ["c", "small"], ["y"], name="cat", axis=1)],
              [("x", [1, C, T])], [("y", None)],
              [init("w", weights([C, C, 3], 1, 0.4)), init("tiny", 0.01)])
    ctx = compile_ctx(m, chunk=1, upto=PropagateQParams)
    before = dict(ctx.facts["exponents"])
    assert before["c"] - before["small"] >= 4
    PassManager([PropagateQParams()]).run(ctx)
    after = ctx.facts["exponents"]
    assert after["c"] == after["small"] == after["y"] == before["c"]
    for group in ctx.facts["exponent_groups"]:
        known = [before[n] for n in group if n in before]
        assert {after[n] for n in group} == {max(known)}


def concat_with_a_shared_input_model():
    """Concat(conv(x), small, 3*small) along channels, where `small` = 0.01*x (a 1x1 conv)
    also feeds the second 1x1 conv: tying it to the Concat's coarse exponent would coarsen
    what that conv reads."""
    eye = np.eye(C, dtype=np.float32)[:, :, None]
    return model([node("Conv", ["x", "w"], ["c"], name="conv", kernel_shape=[3], pads=[2, 0]),
                  node("Conv", ["x", "tiny"], ["small"], name="scale", kernel_shape=[1]),
                  node("Conv", ["small", "three"], ["small3"], name="scale3", kernel_shape=[1]),
                  node("Concat", ["c", "small", "small3"], ["y"], name="cat", axis=1)],
                 [("x", [1, C, T])], [("y", None)],
                 [init("w", weights([C, C, 3], 1, 0.4)), init("tiny", 0.01 * eye),
                  init("three", 3.0 * eye)])


def test_a_concat_input_with_other_readers_keeps_its_exponent_and_is_requantized():
    m = concat_with_a_shared_input_model()
    ctx = compile_ctx(m, chunk=1)
    exps = ctx.facts["exponents"]
    assert exps["small"] < exps["y"] == exps["c"] == exps["small3"]
    assert exps["y"] - exps["small"] >= 4
    assert ctx.facts["requantized_inputs"] == [
        {"tensor": "small", "node": "cat", "reason": "has other readers and a finer exponent"}]
    [req] = ctx.facts["requantizations"]
    assert req == {"node": "cat", "tensor": "small", "from_exp": exps["small"],
                   "to_exp": exps["y"], "from_bits": 8, "to_bits": 8,
                   "reason": "has other readers and a finer exponent"}
    program = ctx.facts["program"]
    steps = [s for s in program.steps if s.name == "cat"]
    # no copies: the producers write straight into their slots of y, `small` through the requant
    assert [s.op for s in steps] == ["requant"]
    assert steps[0].params["shift"] == exps["y"] - exps["small"] > 0
    slots = {n: program.root(n) for n in ("c", steps[0].outputs[0], "small3")}
    assert slots == {"c": ("y", 0), steps[0].outputs[0]: ("y", C), "small3": ("y", 2 * C)}
    assert program.root("small") == ("small", 0)  # read by scale3 at its own exponent
    assert integer_snr(m, ctx) > 30.0


def test_concat_inputs_fixed_to_different_exponents_are_requantized_not_refused():
    """Two Concat inputs whose exponents are fixed apart (as an imported QDQ model fixes them):
    the Concat's group keeps the first, the other input is requantized into it."""
    m = concat_with_a_shared_input_model()
    ctx = compile_ctx(m, chunk=1, upto=PropagateQParams)
    calibrated = ctx.facts["exponents"]
    pins = {"c": calibrated["c"], "small3": calibrated["small3"] + 1}  # both without clipping
    assert pins["c"] > pins["small3"]
    ctx.facts["fixed_exponents"] = pins
    PassManager([PropagateQParams(), LowerToInteger()]).run(ctx)
    exps = ctx.facts["exponents"]
    assert exps["c"] == exps["y"] == pins["c"] and exps["small3"] == pins["small3"]
    reasons = {r["tensor"]: r["reason"] for r in ctx.facts["requantizations"]}
    assert reasons == {"small": "has other readers and a finer exponent",
                       "small3": "fixed to different exponents"}
    assert integer_snr(m, ctx) > 30.0


def test_weights_get_one_exponent_per_output_channel():
    w = weights([C, C, 3], 1, scale=0.4)
    w[1] *= 0.01  # a channel with ~2^-7 smaller weights
    ctx = compile_ctx(conv_relu_add_model(w), chunk=1, upto=PropagateQParams)
    wexp = ctx.facts["weight_exponents"]["conv"]
    assert wexp.shape == (C,)
    assert wexp[0] - wexp[1] >= 5
    for c in range(C):  # the exponent represents the channel's weights without large clipping
        assert np.max(np.abs(w[c])) <= 127 * 2.0 ** wexp[c] * 1.5


# --------------------------------------------------------------------------- lowered program

def test_lowered_program_structure():
    ctx = compile_ctx(conv_relu_add_model(), chunk=2)
    program = ctx.facts["program"]
    assert program.inputs == ["x"] and program.outputs == ["y"]
    assert program.rounding == "half_even"
    ops = [s.op for s in program.steps]
    assert ops.count("conv1d") == 1 and ops.count("add") == 1
    conv = next(s for s in program.steps if s.op == "conv1d")
    assert (conv.params["act_min"], conv.params["act_max"]) == (0, 127)  # the fused Relu
    assert conv.params["pad_l"] == 0 and conv.params["t_in"] == 2 + 2  # state frames + chunk
    assert conv.arrays["w"].dtype == np.int8 and conv.arrays["bias"].dtype == np.int32
    (state,) = program.states
    buf = program.buffers[state.buffer]  # in <name>_t, maybe in front of its window's new frames
    assert program.buffers[program.root(state.buffer)[0]].role == "state"
    assert buf.size == C * 2 and state.init == 0
    assert buf.exp == program.buffers["x"].exp  # state keeps the exponent of what it holds


@pytest.mark.parametrize("chunk", [1, 4])
def test_integer_stream_is_close_to_the_float_model(chunk):
    m = conv_relu_add_model()
    assert integer_snr(m, compile_ctx(m, chunk=chunk)) > 25.0


def test_integer_window_head_is_close_to_the_float_model():
    m = window_head_model()
    assert integer_snr(m, compile_ctx(m, chunk=1)) > 25.0


def test_integer_offline_program_is_close_to_the_float_model():
    m = conv_relu_add_model()
    ctx = compile_ctx(m, offline=True)
    assert not ctx.facts["program"].states
    assert integer_snr(m, ctx) > 25.0


def test_integer_stream_is_bit_exact_across_chunks_and_offline():
    m = conv_relu_add_model()
    x = held_out(1)[0]
    runs = [run_integer(compile_ctx(m, chunk=c), x)[0] for c in (1, 4)]
    runs.append(run_integer(compile_ctx(m, offline=True), x)[0])
    for r in runs[1:]:
        np.testing.assert_array_equal(r, runs[0])


def test_target_rounding_reaches_the_program():
    ctx = compile_ctx(conv_relu_add_model(), chunk=1, target="esp32s3")
    assert ctx.facts["program"].rounding == "half_up"


# --------------------------------------------------------------------------- errors

def test_nan_weights_are_an_error():
    w = weights([C, C, 3], 1)
    w[0, 0, 0] = np.nan
    with pytest.raises(RillError):
        compile_ctx(conv_relu_add_model(w), chunk=1)


def test_nan_weights_error_names_the_node_in_quantize():
    m = conv_relu_add_model()
    ctx = compile_ctx(m, chunk=1, upto=Quantize)
    conv = next(n for n in ctx.graph.nodes if n.name == "conv")
    w = np.array(conv.inputs[1].values)
    w[1, 1, 1] = np.nan
    conv.inputs[1].values = w
    with pytest.raises(RillError) as err:
        PassManager([Quantize()]).run(ctx)
    assert "conv" in str(err.value) and "NaN" in str(err.value)


def test_non_finite_calibration_values_name_the_tensor():
    ctx = compile_ctx(conv_relu_add_model(), chunk=1, upto=Quantize)
    ctx.facts["calibration"]["r"] = np.array([0.0, np.inf], np.float32)
    with pytest.raises(RillError, match="'r'"):
        PassManager([Quantize()]).run(ctx)


# --------------------------------------------------------------------------- calibration recipes

@pytest.mark.parametrize("recipe", ["minmax", "percentile", "kl", "mse"])
def test_calibration_recipe_chooses_every_tensor_exponent(recipe):
    ctx = compile_ctx(conv_relu_add_model(), upto=PropagateQParams, calibration=recipe,
                      percentile=99.9)
    choose = observer(recipe, 99.9)
    samples, exps = ctx.facts["calibration"], ctx.facts["exponents"]
    for name, values in samples.items():
        assert exps[name] == choose(values, 8), name
    assert ctx.facts["scheme"].recipe == recipe


def test_minmax_never_clips_a_calibration_value():
    ctx = compile_ctx(conv_relu_add_model(), upto=PropagateQParams, calibration="minmax")
    for name, values in ctx.facts["calibration"].items():
        assert np.max(np.abs(values)) <= 127 * 2.0 ** ctx.facts["exponents"][name], name


def test_default_recipe_is_the_documented_one():
    ctx = compile_ctx(conv_relu_add_model(), upto=PropagateQParams)
    assert ctx.facts["scheme"].recipe == DEFAULT_RECIPE


def test_unknown_recipe_is_an_error():
    with pytest.raises(RillError, match="calibration='entropy'"):
        compile_ctx(conv_relu_add_model(), upto=PropagateQParams, calibration="entropy")


@pytest.mark.parametrize("recipe", ["minmax", "percentile", "kl", "mse"])
def test_every_recipe_refuses_nan_naming_the_tensor(recipe):
    ctx = compile_ctx(conv_relu_add_model(), upto=Quantize, calibration=recipe)
    ctx.facts["calibration"]["r"] = np.array([0.5, np.nan], np.float32)
    with pytest.raises(RillError, match="'r'.*NaN"):
        PassManager([Quantize()]).run(ctx)


def test_tensor_and_weight_bits_facts_choose_int16_exponents():
    ctx = compile_ctx(conv_relu_add_model(), upto=Quantize)
    PassManager([Quantize()]).run(ctx)
    e8, w8 = dict(ctx.facts["exponents"]), ctx.facts["weight_exponents"]["conv"].copy()
    ctx.facts["tensor_bits"] = {"r": 16}
    ctx.facts["weight_bits"] = {"conv": 16}
    PassManager([Quantize()]).run(ctx)
    e16, w16 = ctx.facts["exponents"], ctx.facts["weight_exponents"]["conv"]
    assert e8["r"] - 9 <= e16["r"] <= e8["r"] - 7  # int16: ~8 more fraction bits
    assert all(e16[n] == e8[n] for n in e8 if n != "r")  # missing keys: options.bits
    assert np.all((w8 - w16 >= 7) & (w8 - w16 <= 9))


def test_calibration_keeps_the_extremes_when_it_subsamples(monkeypatch):
    monkeypatch.setattr(calibrate, "MAX_SAMPLES_PER_TENSOR", 100)
    data = calibration()
    data[3, 0, 1, 5] = 40.0  # one large input value
    ctx = compile_ctx(conv_relu_add_model(), upto=Quantize, calib=data)
    x = ctx.facts["calibration"]["x"]
    assert x.size == 100 and x.max() == 40.0 and x.min() == data.min()


def test_calibration_collects_layer_input_means_and_samples():
    data = calibration(n=20)
    ctx = compile_ctx(window_head_model(), upto=Quantize, calib=data)
    means, inputs = ctx.facts["layer_input_means"], ctx.facts["layer_inputs"]
    assert set(means) == set(inputs) == {"conv", "fc"}
    np.testing.assert_allclose(means["conv"], data.mean(axis=(0, 1, 3)), rtol=1e-5, atol=1e-6)
    assert means["fc"].shape == (C * 3,)  # Gemm input [1, K]: one mean per K column
    assert inputs["conv"].shape == (calibrate.LAYER_INPUT_SAMPLES, C, T)
    assert inputs["fc"].shape == (calibrate.LAYER_INPUT_SAMPLES, C * 3)


def test_calibration_keeps_each_samples_maximum_for_the_int16_headroom():
    data = calibration(n=12)
    ctx = compile_ctx(conv_relu_add_model(), upto=Quantize, calib=data)
    maxima = ctx.facts["calibration_maxima"]
    np.testing.assert_allclose(maxima["x"], np.abs(data).reshape(12, -1).max(axis=1))
    assert set(maxima) == set(ctx.facts["calibration"])
    for name, values in ctx.facts["calibration"].items():
        assert maxima[name].shape == (12,) and maxima[name].max() == np.abs(values).max()


def test_long_calibration_reports_progress(monkeypatch):
    monkeypatch.setattr(calibrate, "PROGRESS_SECONDS", 0.0)
    ctx = ctx_for(conv_relu_add_model(), properties=set(), shapes=False, chunk=1,
                  target="esp32p4", calib=calibration(n=5))
    messages = []
    ctx.progress = messages.append
    PassManager(float_passes(False) + [Calibrate(), Quantize()]).run(ctx)
    assert any("5/5 samples" in m for m in messages)
    assert any("tensors" in m for m in messages)


# --------------------------------------------------------------------------- bias correction

def conv_model(w=None, b=None):
    """x -> Conv(k=3, causal, bias) -> y: the layer alone."""
    w = weights([C, C, 3], 11, scale=0.3) if w is None else w
    b = np.zeros(C, np.float32) if b is None else b
    return model([node("Conv", ["x", "w", "b"], ["y"], name="conv", kernel_shape=[3], pads=[2, 0])],
                 [("x", [1, C, T])], [("y", None)], [init("w", w), init("b", b)])


def offset_inputs(n, seed):
    """Inputs with a large mean: a weight-rounding error then shifts every output frame."""
    return (2.0 + 0.5 * rng(seed).standard_normal((n, 1, C, T))).astype(np.float32)


def test_bias_correction_fact_structure():
    ctx = compile_ctx(window_head_model(), calib=offset_inputs(24, 1), bias_correction="on",
                      upto=PropagateQParams)
    corr = ctx.facts["bias_corrections"]
    assert set(corr) == {"conv", "fc"}
    assert corr["conv"].shape == (C,) and corr["fc"].shape == (6,)
    assert all(v.dtype == np.float64 and np.all(np.isfinite(v)) for v in corr.values())
    off = compile_ctx(window_head_model(), calib=offset_inputs(24, 1), bias_correction="off",
                      upto=PropagateQParams)
    assert off.facts["bias_corrections"] == {}


def test_bias_correction_is_minus_the_mean_weight_error():
    data = offset_inputs(24, 1)
    ctx = compile_ctx(conv_model(), calib=data, bias_correction="on", upto=PropagateQParams,
                      offline=True)
    w = conv_model().graph.initializer[0]
    w = np.frombuffer(w.raw_data, np.float32).reshape(C, C, 3).astype(np.float64)
    e = ctx.facts["weight_exponents"]["conv"].reshape(-1, 1, 1).astype(np.float64)
    dw = np.clip(np.round(w / 2 ** e), -128, 127) * 2 ** e - w
    mean = data.mean(axis=(0, 1, 3))
    # the causal pad feeds zeros to the first 2 frames of tap 0 and the first frame of tap 1
    taps = np.array([(T - 2) / T, (T - 1) / T, 1.0])
    want = -np.einsum("oik,i,k->o", dw, mean, taps)
    np.testing.assert_allclose(ctx.facts["bias_corrections"]["conv"], want, rtol=1e-4, atol=1e-9)


def mean_output_error(ctx, m, xs):
    """Per-channel mean (over inputs and frames) of the integer model's error against float."""
    errs = [run_integer(ctx, x)[0] - run_model(m, {"x": x})["y"] for x in xs]
    return np.mean(np.stack(errs), axis=(0, 1, 3))


def test_bias_correction_shrinks_the_mean_output_error():
    m = conv_model()
    xs = offset_inputs(16, 2)  # held out, same distribution as the calibration data
    errs = {mode: mean_output_error(compile_ctx(m, calib=offset_inputs(48, 1), offline=True,
                                                bias_correction=mode), m, xs)
            for mode in ("off", "on")}
    assert np.sum(np.abs(errs["on"])) < 0.5 * np.sum(np.abs(errs["off"]))


def test_auto_keeps_a_correction_only_where_it_lowers_the_layer_mse():
    ctx = compile_ctx(window_head_model(), calib=offset_inputs(24, 1), bias_correction="auto",
                      upto=PropagateQParams)
    measured = ctx.facts["bias_correction_mse"]
    assert set(measured) == {"conv", "fc"}
    for name, (without, with_) in measured.items():
        assert (name in ctx.facts["bias_corrections"]) == (with_ < without)


def test_auto_drops_a_correction_from_wrong_statistics():
    """A correction estimated from means the layer never sees makes its output worse."""
    m = conv_model()
    graph_node = compile_ctx(m, upto=Quantize, offline=True).graph.nodes[0]
    w = np.asarray(graph_node.inputs[1].values)
    exps = channel_exponents(w, 8, "mse")
    inputs = rng(3).standard_normal((8, C, T)).astype(np.float32)  # zero mean
    right, mse_right = correct_layer(graph_node, w, exps, 8, "half_even", inputs.mean(axis=(0, 2)),
                                     inputs, -5, 8, "auto")
    wrong, mse_wrong = correct_layer(graph_node, w, exps, 8, "half_even", np.full(C, 50.0),
                                     inputs, -5, 8, "auto")
    assert wrong is None and mse_wrong[1] > mse_wrong[0]
    on, _ = correct_layer(graph_node, w, exps, 8, "half_even", np.full(C, 50.0), inputs, -5, 8, "on")
    assert on is not None and np.all(np.isfinite(on))
    assert mse_right[1] <= mse_right[0] * 1.001 or right is None


def test_unknown_bias_correction_is_an_error():
    with pytest.raises(RillError, match="bias_correction='sometimes'"):
        compile_ctx(conv_relu_add_model(), upto=PropagateQParams, bias_correction="sometimes")


def test_bias_correction_of_conv_transpose_and_groups():
    """ConvTranspose weights are [c_in, c_out/g, k]: the correction is still one per output."""
    w = weights([C, 1, 4], 12, scale=0.3)  # groups = C: depthwise upsampling by 2
    m = model([node("ConvTranspose", ["x", "w", "b"], ["y"], name="up", kernel_shape=[4],
                    strides=[2], pads=[1, 1], group=C)],
              [("x", [1, C, T])], [("y", None)], [init("w", w), init("b", np.zeros(C))])
    ctx = compile_ctx(m, calib=offset_inputs(24, 1), bias_correction="on", offline=True,
                      upto=PropagateQParams)
    corr = ctx.facts["bias_corrections"]["up"]
    e = ctx.facts["weight_exponents"]["up"].astype(np.float64)
    dw = np.clip(np.round(w[:, 0, :] / 2 ** e[:, None]), -128, 127) * 2 ** e[:, None] - w[:, 0, :]
    mean = ctx.facts["layer_input_means"]["up"]
    # interior outputs of a stride-2, k=4 transpose conv get 2 of the 4 taps each
    approx = -dw.sum(axis=1) * mean / 2
    np.testing.assert_allclose(corr, approx, rtol=0.1, atol=1e-6)


# --------------------------------------------------------------------------- QDQ models

def test_weight_exponents_given_by_a_qdq_model_are_kept():
    from test_pass_import_qdq import int16_qdq_model
    m, made = int16_qdq_model()
    ctx = ctx_for(m, properties=set(), shapes=False, offline=True, calib=calibration(8))
    PassManager(float_passes(True) + [Calibrate(), Quantize()]).run(ctx)
    np.testing.assert_array_equal(ctx.facts["weight_exponents"]["conv"], made["e_w"])
    assert not ctx.warnings
    # the weights are on their grid: nothing for bias correction to correct
    np.testing.assert_allclose(ctx.facts["bias_corrections"].get("conv", np.zeros(C)), 0.0)


def test_stale_given_weight_exponents_are_rechosen_with_a_warning():
    from test_pass_import_qdq import int16_qdq_model
    m, made = int16_qdq_model()
    ctx = ctx_for(m, properties=set(), shapes=False, offline=True, calib=calibration(8))
    PassManager(float_passes(True) + [Calibrate()]).run(ctx)
    conv = next(n for n in ctx.graph.nodes if n.name == "conv")
    conv.inputs[1].values = np.asarray(conv.inputs[1].values) * 3.0  # as a folded BatchNorm would
    PassManager([Quantize()]).run(ctx)
    w = out_channel_weights(conv)
    np.testing.assert_array_equal(ctx.facts["weight_exponents"]["conv"],
                                  channel_exponents(w, 16, "mse"))
    assert any("'conv'" in msg and "weight" in msg for msg in ctx.warnings)


@pytest.mark.parametrize("bits", [8, 16])
def test_a_requantized_concat_input_runs_bit_exact_in_the_generated_c(tmp_path, bits):
    """The requant step the propagation asks for builds, and the C matches the reference."""
    path = tmp_path / "cat.onnx"
    onnx.save(concat_with_a_shared_input_model(), str(path))
    result = compile_model(path, Options(target=get_target("esp32s3"), calib=calibration(),
                                         name="cat", bits=bits), tmp_path / "out")
    report = result.report
    assert [(r["tensor"], r["node"]) for r in report["requantizations"]] == [("small", "cat")]
    assert report["verification"]["selftest"] == "passed"
    assert report["verification"]["c_bit_exact_calls"] > 0
    assert "requantized Concat inputs: 1" in (result.out_dir / "report.md").read_text()
