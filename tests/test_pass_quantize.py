"""Calibrate + Quantize + PropagateQParams + LowerToInteger on tiny models, run by the integer
reference interpreter (contract §3)."""
from __future__ import annotations

import numpy as np
import pytest

from compiler.errors import RillError
from compiler.graph import static_shape
from compiler.ort import run_model
from compiler.pass_manager import PassManager
from compiler.pipeline import float_passes
from compiler.streams import chunks, from_physical, snr_db, stitch, to_physical
from graphs import ctx_for, init, ints, model, node, rng, weights
from passes.calibrate import Calibrate
from passes.lower_integer import LowerToInteger
from passes.propagate_qparams import PropagateQParams
from passes.quantize import Quantize
from runtime.reference.interpreter import run_stream
from runtime.reference.kernels import dequantize_s8_f32, quantize_f32_s8

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


def compile_ctx(m, *, chunk=1, offline=False, target="esp32p4", upto=None):
    """Run the float pipeline, then the quantization passes (all, or up to the class `upto`)."""
    ctx = ctx_for(m, properties=set(), shapes=False, chunk=chunk, offline=offline,
                  target=target, calib=calibration())
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
    q_in = [quantize_f32_s8(to_physical(c, x_info), exp=e_in, mode=program.rounding)
            for c in chunks(x, 2, chunk)]
    q_out = run_stream(program, q_in)
    out_shape = static_shape(ctx.graph.tensors()[program.outputs[0]])
    per_call = [from_physical(dequantize_s8_f32(q, exp=e_out), out_shape, y_info) for q in q_out]
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
    assert ops.count("conv1d_s8") == 1 and ops.count("add_s8") == 1
    conv = next(s for s in program.steps if s.op == "conv1d_s8")
    assert (conv.params["act_min"], conv.params["act_max"]) == (0, 127)  # the fused Relu
    assert conv.params["pad_l"] == 0 and conv.params["t_in"] == 2 + 2  # state frames + chunk
    assert conv.arrays["w"].dtype == np.int8 and conv.arrays["bias"].dtype == np.int32
    (state,) = program.states
    buf = program.buffers[state.buffer]
    assert buf.role == "state" and buf.size == C * 2 and state.init == 0
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
