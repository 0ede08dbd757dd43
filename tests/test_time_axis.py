"""Time-series inputs of any rank with time on any axis (contract §2), and offline batches.

Unit tests on the time-axis rules (defaults, --time-axis, the one-sequence rule of a stream,
the stored layouts), then compiles that build and run the generated C: a PyTorch-style
batch_first GRU/LSTM tagger [1, T, F] with --time-axis 1 and a rank-2 [T, F] model streaming
at int8 (C bit-exact with the integer reference, checked by every compile) and float32, a
rank-1 [T] signal, and offline batches of N > 1 sequences (one kernel call per sequence)
compared with onnxruntime.
"""
from __future__ import annotations

import re

import numpy as np
import onnx
import pytest

from compiler.context import Options
from compiler.errors import RillError
from compiler.measure import run_c_float
from compiler.ort import session
from compiler.pipeline import compile_model
from compiler.streams import aligned, from_physical, snr_db, to_physical
from compiler.targets import get_target
from graphs import ctx_for, init, ints, model, node, weights
from passes.streaming_cut import default_time_axis, resolve_time_axis
from passes.time_analysis import TimeInfo, physical_perm, physical_shape

T, F, H, K = 8, 3, 4, 2


# --------------------------------------------------------------------------- unit: the rules

@pytest.mark.parametrize("rank, axis", [(1, 0), (2, 0), (3, 2), (4, 3)])
def test_default_time_axis(rank, axis):
    assert default_time_axis(rank) == axis


def graph_with_input(shape):
    return ctx_for(model([node("Relu", ["x"], ["y"])], [("x", list(shape))], [("y", None)])).graph


@pytest.mark.parametrize("shape, requested, streamed, axis", [
    ([T], None, True, 0), ([T, F], None, True, 0), ([F, T], 1, True, 1), ([F, T], -1, True, 1),
    ([1, T, F], 1, True, 1), ([1, F, T], None, True, 2), ([T, 5, F], 0, True, 0),
    ([3, F, T], None, False, 2), ([3, T, F], 1, False, 1)])
def test_resolve_time_axis_accepts_any_axis(shape, requested, streamed, axis):
    assert resolve_time_axis(graph_with_input(shape), requested, streamed=streamed) == axis


@pytest.mark.parametrize("shape, requested, streamed, words", [
    ([3, F, T], None, True, ["batch 3", "--offline", "'x'"]),
    ([2, T, F], 1, True, ["batch 2", "one sequence"]),
    ([T, F], 2, True, ["--time-axis 2", "'x'"]),
    ([1, F, T], -4, False, ["--time-axis -4"])])
def test_resolve_time_axis_refuses_clearly(shape, requested, streamed, words):
    with pytest.raises(RillError) as err:
        resolve_time_axis(graph_with_input(shape), requested, streamed=streamed)
    assert all(w in str(err.value) for w in words), str(err.value)


@pytest.mark.parametrize("rank, axis, perm", [
    (1, 0, [0]), (2, 0, [0, 1]), (2, 1, [1, 0]), (3, 0, [0, 1, 2]), (3, 1, [0, 1, 2]),
    (3, 2, [0, 2, 1]), (4, 3, [0, 3, 1, 2]), (4, 2, [0, 2, 1, 3])])
def test_time_is_stored_first_after_a_batch_axis(rank, axis, perm):
    assert physical_perm(rank, TimeInfo(axis, True)) == perm
    assert physical_perm(rank, None) == list(range(rank))


def test_stored_layout_round_trips():
    x = np.arange(2 * 3 * 5, dtype=np.float32).reshape(2, 3, 5)
    info = TimeInfo(2, False)
    flat = to_physical(x, info)
    assert physical_shape(x.shape, info) == (2, 5, 3)
    # sequence 0's frames first (each frame's 3 channels together), then sequence 1's
    np.testing.assert_array_equal(flat[:6], np.concatenate([x[0, :, 0], x[0, :, 1]]))
    np.testing.assert_array_equal(flat[15:18], x[1, :, 0])
    np.testing.assert_array_equal(from_physical(flat, x.shape, info), x)


# --------------------------------------------------------------------------- models

def batch_first_rnn(op: str = "GRU", t: int = T) -> onnx.ModelProto:
    """What PyTorch exports for nn.GRU/LSTM(batch_first=True) + Linear on x [1, T, F]:
    Transpose to [T, 1, F], the RNN, Squeeze of the direction axis, Transpose back to
    [1, T, H], MatMul + Add."""
    gates = {"GRU": 3, "LSTM": 4}[op]
    outs = ["Y", "Y_h"] + (["Y_c"] if op == "LSTM" else [])
    attrs = {"hidden_size": H, **({"linear_before_reset": 1} if op == "GRU" else {})}
    nodes = [node("Transpose", ["x"], ["xt"], perm=[1, 0, 2]),
             node(op, ["xt", "W", "R", "B"], outs, name="rnn", **attrs),
             node("Squeeze", ["Y", "one"], ["ys"]),
             node("Transpose", ["ys"], ["yb"], perm=[1, 0, 2]),
             node("MatMul", ["yb", "Wo"], ["mm"], name="head"),
             node("Add", ["mm", "bo"], ["y"], name="head_bias")]
    inits = [init("W", weights([1, gates * H, F], 1)), init("R", weights([1, gates * H, H], 2)),
             init("B", weights([1, 2 * gates * H], 3)), ints("one", [1]),
             init("Wo", weights([H, K], 4)), init("bo", weights([K], 5))]
    return model(nodes, [("x", [1, t, F])], [("y", None)], inits)


def frames_model(t: int = T) -> onnx.ModelProto:
    """x [T, F] (feature frames, time on axis 0) -> Unsqueeze -> Transpose to [1, F, T] ->
    causal Conv k=3 + Relu -> back to [T, C] -> Linear: a look-back window on a rank-2 input."""
    nodes = [node("Unsqueeze", ["x", "zero"], ["xu"]),
             node("Transpose", ["xu"], ["xc"], perm=[0, 2, 1]),
             node("Conv", ["xc", "w", "b"], ["c"], name="conv", kernel_shape=[3], pads=[2, 0]),
             node("Relu", ["c"], ["r"]),
             node("Transpose", ["r"], ["rt"], perm=[0, 2, 1]),
             node("Squeeze", ["rt", "zero"], ["rs"]),
             node("MatMul", ["rs", "Wo"], ["mm"], name="head"),
             node("Add", ["mm", "bo"], ["y"], name="head_bias")]
    inits = [ints("zero", [0]), init("w", weights([H, F, 3], 1)), init("b", weights([H], 2)),
             init("Wo", weights([H, K], 3)), init("bo", weights([K], 4))]
    return model(nodes, [("x", [t, F])], [("y", None)], inits)


def signal_model(t: int = T) -> onnx.ModelProto:
    """x [T] (one value per frame) -> [1, 1, T] -> causal Conv (1 -> H, k=3) + Relu."""
    nodes = [node("Unsqueeze", ["x", "axes"], ["xu"]),
             node("Conv", ["xu", "w", "b"], ["c"], name="conv", kernel_shape=[3], pads=[2, 0]),
             node("Relu", ["c"], ["y"])]
    inits = [ints("axes", [0, 1]), init("w", weights([H, 1, 3], 1)), init("b", weights([H], 2))]
    return model(nodes, [("x", [t])], [("y", None)], inits)


def batch_conv_model(n: int = 3) -> onnx.ModelProto:
    """x [N, F, T] -> Conv k=3 pad 1 + Relu -> MaxPool k=2 -> ConvTranspose s=2 -> Softmax over
    channels: one-sequence kernels on a batch."""
    nodes = [node("Conv", ["x", "w", "b"], ["c"], name="conv", kernel_shape=[3], pads=[1, 1]),
             node("Relu", ["c"], ["r"]),
             node("MaxPool", ["r"], ["p"], name="pool", kernel_shape=[2], strides=[2]),
             node("ConvTranspose", ["p", "wt"], ["u"], name="up", kernel_shape=[2], strides=[2]),
             node("Softmax", ["u"], ["y"], axis=1)]
    inits = [init("w", weights([H, F, 3], 1)), init("b", weights([H], 2)),
             init("wt", weights([H, K, 2], 3))]
    return model(nodes, [("x", [n, F, T])], [("y", None)], inits)


# --------------------------------------------------------------------------- compiles

def compile_case(tmp_path, m: onnx.ModelProto, name: str, **opts):
    path = tmp_path / f"{name}.onnx"
    onnx.save(m, str(path))
    calib = opts.pop("calib_shape", None)
    if calib is not None:
        opts["calib"] = np.random.default_rng(11).standard_normal(calib).astype(np.float32)
    options = Options(target=get_target(opts.pop("target", "esp32p4")), name=name, **opts)
    return compile_model(path, options, tmp_path / "out", force=True)


def c_vs_onnx(result, m: onnx.ModelProto, x: np.ndarray, tmp_path) -> tuple[np.ndarray, np.ndarray]:
    """The C component's output for `x` (streamed call by call) and onnxruntime's on `m` (the
    model exported for `x`'s length), aligned."""
    report = result.report
    got = run_c_float(result.out_dir, report["name"], report, [x], tmp_path / "run")[0]
    want = session(m).run(None, {"x": x})[0]
    out = report["output"]
    return aligned(got, want, report["latency_frames"], out["time_axis"] or 0, out["per_frame"])


STREAMED = {  # name: (model of t frames, time axis, chunk, calibration shape, held-out input)
    "gru_batch_first": (lambda t=T: batch_first_rnn("GRU", t), 1, 2, (32, 1, T, F), (1, 4 * T, F)),
    "lstm_batch_first": (lambda t=T: batch_first_rnn("LSTM", t), 1, 4, (32, 1, T, F),
                         (1, 4 * T, F)),
    "frames_rank2": (frames_model, None, 2, (32, T, F), (4 * T, F)),
    "signal_rank1": (signal_model, None, 2, (32, T), (4 * T,)),
}


@pytest.mark.parametrize("key", list(STREAMED))
@pytest.mark.parametrize("bits", [8, 32])
def test_streaming_inputs_of_any_rank_and_time_axis(key, bits, tmp_path):
    build, axis, chunk, calib_shape, x_shape = STREAMED[key]
    m = build()
    opts = dict(bits=bits, chunk=chunk, time_axis=axis)
    if bits != 32:
        opts["calib_shape"] = calib_shape
    result = compile_case(tmp_path, m, key, **opts)
    report = result.report
    assert report["mode"] == "streaming" and report["chunk_frames"] == chunk
    assert report["time_axis"] == (axis if axis is not None else 0)
    assert report["verification"]["selftest"] == "passed"
    if bits == 8:  # every compile checks the C bit for bit against the integer reference
        assert report["verification"]["c_bit_exact_calls"] > 0
    frame = int(np.prod(calib_shape[1:])) // T
    assert f"_INPUT_CHANNELS {frame}" in (result.out_dir / "include" / f"{key}.h").read_text()
    if key.endswith("batch_first"):
        assert {s["kind"] for s in report["states"]} == {"recurrent"}
    x = np.random.default_rng(5).standard_normal(x_shape).astype(np.float32)
    got, want = c_vs_onnx(result, build(4 * T), x, tmp_path)
    if bits == 32:
        assert float(np.max(np.abs(got - want))) <= 1e-5 * float(np.max(np.abs(want)))
    else:
        assert snr_db(want, got) > 25.0


def test_batch_first_stream_equals_the_model_frame_by_frame(tmp_path):
    """Time on axis 1 of [1, T, F]: each call's input is CHUNK consecutive frames of F values,
    and its outputs are the model's rows for those frames."""
    m = batch_first_rnn("GRU")
    result = compile_case(tmp_path, m, "gru_rows", bits=32, chunk=1, time_axis=1)
    meta = result.report
    assert meta["output"]["time_axis"] == 1 and meta["output"]["per_frame"]
    x = np.random.default_rng(2).standard_normal((1, T, F)).astype(np.float32)
    got, want = c_vs_onnx(result, m, x, tmp_path)
    assert got.shape == want.shape == (1, T, K)
    np.testing.assert_allclose(got, want, atol=1e-5 * float(np.max(np.abs(want))))


@pytest.mark.parametrize("bits", [32, 8])
def test_offline_batch_runs_one_kernel_call_per_sequence(bits, tmp_path):
    n = 3
    m = batch_conv_model(n)
    opts = dict(bits=bits, offline=True)
    if bits != 32:
        opts["calib_shape"] = (16, n, F, T)
    result = compile_case(tmp_path, m, f"batch{bits}", **opts)
    program = result.program
    calls = {op: [s for s in program.steps if s.op == op]
             for op in ("conv1d", "maxpool1d", "conv_transpose1d")}
    assert all(len(v) == n for v in calls.values()), {k: len(v) for k, v in calls.items()}
    for steps in calls.values():  # sequence i reads and writes elements i*size/N..
        for i, s in enumerate(steps):
            src, dst = program.buffers[s.inputs[0]], program.buffers[s.outputs[0]]
            whole_src, whole_dst = program.buffers[src.view_of], program.buffers[dst.view_of]
            assert (src.offset, dst.offset) == (i * whole_src.size // n, i * whole_dst.size // n)
    conv = calls["conv1d"]
    assert all(s.arrays["w"] is conv[0].arrays["w"] for s in conv)
    source = (result.out_dir / "src" / f"batch{bits}.c").read_text()
    assert len(re.findall(r"static const \w+ \w+_w\[", source)) == 2  # conv and up, once each
    first = {}  # the first step of each node: its constants as emitted, counted once
    for s, kc in zip(program.steps, result.writer.kernel_calls()):
        first.setdefault(s.name, kc)
    weights_once = sum(kc.weight_bytes for kc in first.values())
    assert result.report["weight_bytes"] == weights_once
    x = np.random.default_rng(4).standard_normal((n, F, T)).astype(np.float32)
    got, want = c_vs_onnx(result, m, x, tmp_path)
    if bits == 32:
        assert float(np.max(np.abs(got - want))) <= 1e-5 * float(np.max(np.abs(want)))
    else:
        assert snr_db(want, got) > 25.0
    # the C API takes the N sequences one after another, each time-major
    assert result.report["output"]["stored_time_axis"] == 2


def test_streaming_a_batch_is_refused_with_one_clear_error(tmp_path):
    with pytest.raises(RillError, match=r"batch 3 .*--offline"):
        compile_case(tmp_path, batch_conv_model(3), "batch_stream", bits=32)


def test_batched_recurrent_layer_is_refused_naming_it(tmp_path):
    """GRU/LSTM keep one sequence's h: a batch (X [T, N, I], N > 1) is a clear error."""
    gates = 3
    m = model([node("GRU", ["x", "W", "R"], ["y"], name="rnn", hidden_size=H)],
              [("x", [T, 2, F])], [("y", None)],
              [init("W", weights([1, gates * H, F], 1)), init("R", weights([1, gates * H, H], 2))])
    with pytest.raises(RillError, match="rnn"):
        compile_case(tmp_path, m, "gru_batch", bits=32, offline=True, time_axis=0)


# --------------------------------------------------------------------------- other axis orders

def layout_case(kind: str) -> tuple[onnx.ModelProto, tuple[int, ...]]:
    """Ops whose kernels need an axis innermost or axes contiguous, on tensors stored
    time-major: each is computed over a transposed copy (or written in the stored order)."""
    if kind == "softmax_axis0":  # [3, 4, 5] stored [3][5][4]: axis 0 is outermost
        return model([node("Softmax", ["x"], ["y"], axis=0)], [("x", [3, 4, 5])],
                     [("y", None)]), (3, 4, 5)
    if kind == "softmax_axis2":  # the time axis, stored second
        return model([node("Softmax", ["x"], ["y"], axis=2)], [("x", [3, 4, 5])],
                     [("y", None)]), (3, 4, 5)
    if kind == "reduce_mean_0_1":  # reduced axes apart in storage ([3][5][4]), keepdims=0
        return model([node("ReduceMean", ["x", "axes"], ["y"], keepdims=0)], [("x", [3, 4, 5])],
                     [("y", None)], [ints("axes", [0, 1])]), (3, 4, 5)
    if kind == "global_pool_2d":  # [1, C, F, T] stored [T][C][F]: F and T are not contiguous
        return model([node("GlobalAveragePool", ["x"], ["y"])], [("x", [1, 3, 5, T])],
                     [("y", None)]), (1, 3, 5, T)
    if kind.startswith("concat_const"):  # an activation and a constant stored apart
        axis = int(kind[-1])
        shape = [2, 3, 4]
        other = [d if i != axis else 2 for i, d in enumerate(shape)]
        return model([node("Concat", ["x", "c"], ["y"], axis=axis)], [("x", shape)],
                     [("y", None)], [init("c", weights(other, 7))]), tuple(shape)
    raise KeyError(kind)


LAYOUT_CASES = ["softmax_axis0", "softmax_axis2", "reduce_mean_0_1", "global_pool_2d",
                "concat_const0", "concat_const1", "concat_const2"]


@pytest.mark.parametrize("kind", LAYOUT_CASES)
@pytest.mark.parametrize("bits", [32, 8])
def test_ops_over_other_axis_orders_match_onnxruntime(kind, bits, tmp_path):
    m, shape = layout_case(kind)
    opts = dict(bits=bits, offline=True)
    if bits != 32:
        opts["calib_shape"] = (16, *shape)
    result = compile_case(tmp_path, m, kind, **opts)
    ops = [s.op for s in result.program.steps]
    if not kind.startswith("concat"):
        assert "transpose" in ops, ops  # the kernel runs on a transposed copy
    x = np.random.default_rng(3).standard_normal(shape).astype(np.float32)
    got, want = c_vs_onnx(result, m, x, tmp_path)
    assert got.shape == want.shape
    if bits == 32:
        assert float(np.max(np.abs(got - want))) <= 1e-5 * float(np.max(np.abs(want)))
    else:
        assert snr_db(want, got) > 30.0


def spectrogram_classifier(t: int = T) -> onnx.ModelProto:
    """x [1, 1, F, T] -> Conv2d 3x3 (same pads) + Relu -> GlobalAveragePool over (F, T) ->
    Flatten -> Gemm: a keyword-spotting head whose pool reads the whole window."""
    nodes = [node("Conv", ["x", "w", "b"], ["c"], name="conv", kernel_shape=[3, 3],
                  pads=[1, 2, 1, 0]),
             node("Relu", ["c"], ["r"]),
             node("GlobalAveragePool", ["r"], ["g"], name="pool"),
             node("Flatten", ["g"], ["f"]),
             node("Gemm", ["f", "wo", "bo"], ["y"], name="fc", transB=1)]
    inits = [init("w", weights([H, 1, 3, 3], 1)), init("b", weights([H], 2)),
             init("wo", weights([K, H], 3)), init("bo", weights([K], 4))]
    return model(nodes, [("x", [1, 1, 5, t])], [("y", None)], inits)


@pytest.mark.parametrize("bits", [8, 32])
def test_streaming_global_pool_over_frequency_and_time(bits, tmp_path):
    m = spectrogram_classifier()
    opts = dict(bits=bits, chunk=2)
    if bits != 32:
        opts["calib_shape"] = (32, 1, 1, 5, T)
    result = compile_case(tmp_path, m, f"kws{bits}", **opts)
    assert result.report["mode"] == "streaming" and not result.report["output"]["per_frame"]
    x = np.random.default_rng(6).standard_normal((1, 1, 5, T)).astype(np.float32)
    got, want = c_vs_onnx(result, m, x, tmp_path)  # the last call summarizes the window
    if bits == 32:
        assert float(np.max(np.abs(got - want))) <= 1e-5 * float(np.max(np.abs(want)))
    else:
        assert snr_db(want, got) > 25.0


def vector_mlp() -> onnx.ModelProto:
    """x [F] (one feature vector) -> Linear + Relu -> Linear -> Softmax: [K] class scores."""
    nodes = [node("MatMul", ["x", "W1"], ["a"]), node("Add", ["a", "b1"], ["h"]),
             node("Relu", ["h"], ["r"]), node("MatMul", ["r", "W2"], ["c"]),
             node("Add", ["c", "b2"], ["z"]), node("Softmax", ["z"], ["y"], axis=-1)]
    inits = [init("W1", weights([6, H], 1)), init("b1", weights([H], 2)),
             init("W2", weights([H, K], 3)), init("b2", weights([K], 4))]
    return model(nodes, [("x", [6])], [("y", None)], inits)


@pytest.mark.parametrize("bits", [32, 8])
def test_offline_model_over_one_feature_vector(bits, tmp_path):
    m = vector_mlp()
    opts = dict(bits=bits, offline=True)
    if bits != 32:
        opts["calib_shape"] = (32, 6)
    result = compile_case(tmp_path, m, f"vector{bits}", **opts)
    assert result.report["chunk_frames"] == 6  # the whole vector is one call
    assert [s.op for s in result.program.steps].count("gemm") == 2
    x = np.random.default_rng(8).standard_normal(6).astype(np.float32)
    got, want = c_vs_onnx(result, m, x, tmp_path)
    if bits == 32:
        assert float(np.max(np.abs(got - want))) <= 1e-5 * float(np.max(np.abs(want)))
    else:
        assert float(np.max(np.abs(got - want))) < 0.05  # probabilities at 2^-7
