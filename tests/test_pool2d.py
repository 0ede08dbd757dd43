"""2-D AveragePool / MaxPool over [N, C, F, T] (time on the last axis) as two passes of the 1-D
pool kernels (passes/lowering/pooling.py): offline at float32 and int8 against onnxruntime,
and streamed after a Conv2d, the C bit-exact with the integer reference (every compile checks
it) and close to the float model."""
from __future__ import annotations

import numpy as np
import onnx
import pytest

from compiler.errors import RillError
from compiler.streams import snr_db
from graphs import init, model, node, weights
from test_time_axis import c_vs_onnx, compile_case

F, T = 6, 8


def pool_model(op: str, shape=(1, 2, F, T), **attrs) -> onnx.ModelProto:
    return model([node(op, ["x"], ["y"], name="pool", **attrs)], [("x", list(shape))],
                 [("y", None)])


POOLS = {
    "max_k23_s21": ("MaxPool", dict(kernel_shape=[2, 3], strides=[2, 1])),
    "max_pads_dil": ("MaxPool", dict(kernel_shape=[3, 2], pads=[1, 1, 1, 0], dilations=[1, 2])),
    "max_time_only": ("MaxPool", dict(kernel_shape=[1, 2], strides=[1, 2])),
    "max_freq_only": ("MaxPool", dict(kernel_shape=[3, 1], strides=[2, 1], pads=[1, 0, 1, 0])),
    "avg_pads_excl": ("AveragePool", dict(kernel_shape=[3, 3], pads=[1, 2, 1, 0])),
    "avg_pads_incl": ("AveragePool", dict(kernel_shape=[2, 3], strides=[2, 2], pads=[0, 1, 1, 1],
                                          count_include_pad=1)),
    "avg_same_upper": ("AveragePool", dict(kernel_shape=[3, 2], auto_pad="SAME_UPPER")),
}


@pytest.mark.parametrize("key", list(POOLS))
@pytest.mark.parametrize("bits", [32, 8])
def test_offline_2d_pools_match_onnxruntime(key, bits, tmp_path):
    op, attrs = POOLS[key]
    shape = (2, 2, F, T) if key.startswith("max_k23") else (1, 2, F, T)  # and a batch
    m = pool_model(op, shape, **attrs)
    opts = dict(bits=bits, offline=True)
    if bits != 32:
        opts["calib_shape"] = (16, *shape)
    result = compile_case(tmp_path, m, key, **opts)
    kind = "maxpool1d" if op == "MaxPool" else "avgpool1d"
    steps = [s.op for s in result.program.steps]
    kernel = attrs["kernel_shape"]
    strides = attrs.get("strides", [1, 1])
    along_f, along_t = kernel[0] > 1 or strides[0] > 1, kernel[1] > 1 or strides[1] > 1
    # frequency: one call over the whole batch ([F][N*T*C]); time: one call per sequence
    assert steps.count(kind) == along_f + along_t * shape[0], steps
    assert steps.count("transpose") == 2 * along_f, steps
    x = np.random.default_rng(3).standard_normal(shape).astype(np.float32)
    got, want = c_vs_onnx(result, m, x, tmp_path)
    assert got.shape == want.shape
    if bits == 32:
        assert float(np.max(np.abs(got - want))) <= 1e-5 * float(np.max(np.abs(want)))
    else:  # int8 input and output roundings (one per pass would add a third: +8 bits keep
        assert snr_db(want, got) > 28.0  # the intermediate out of it)


def spectrogram_pool_model(op: str, t: int = T, **attrs) -> onnx.ModelProto:
    """x [1, 1, F, T] -> Conv2d 3x3 (causal in time) + Relu -> 2-D pool."""
    nodes = [node("Conv", ["x", "w", "b"], ["c"], name="conv", kernel_shape=[3, 3],
                  pads=[1, 2, 1, 0]),
             node("Relu", ["c"], ["r"]),
             node(op, ["r"], ["y"], name="pool", **attrs)]
    inits = [init("w", weights([3, 1, 3, 3], 1)), init("b", weights([3], 2))]
    return model(nodes, [("x", [1, 1, F, t])], [("y", None)], inits)


STREAMED = {
    "max_2x2": ("MaxPool", dict(kernel_shape=[2, 2], strides=[2, 2]), 2),
    "avg_causal": ("AveragePool", dict(kernel_shape=[3, 3], pads=[1, 2, 1, 0],
                                       count_include_pad=1), 1),
}


@pytest.mark.parametrize("key", list(STREAMED))
@pytest.mark.parametrize("bits", [8, 32])
def test_streamed_2d_pools_after_a_conv2d(key, bits, tmp_path):
    op, attrs, chunk = STREAMED[key]
    m = spectrogram_pool_model(op, **attrs)
    opts = dict(bits=bits, chunk=chunk)
    if bits != 32:
        opts["calib_shape"] = (32, 1, 1, F, T)
    result = compile_case(tmp_path, m, key, **opts)
    report = result.report
    assert report["mode"] == "streaming" and report["output"]["per_frame"]
    assert report["verification"]["selftest"] == "passed"
    x = np.random.default_rng(5).standard_normal((1, 1, F, 4 * T)).astype(np.float32)
    got, want = c_vs_onnx(result, spectrogram_pool_model(op, 4 * T, **attrs), x, tmp_path)
    if bits == 32:
        assert float(np.max(np.abs(got - want))) <= 1e-5 * float(np.max(np.abs(want)))
    else:
        assert snr_db(want, got) > 25.0


CEIL = {  # op, attrs, [N, C, (F,)], streamed T: ceil_mode pools (offline T = 7 overhangs)
    "max_1d": ("MaxPool", dict(kernel_shape=[3], strides=[2], ceil_mode=1), (1, 2), 9),
    "avg_1d_excl": ("AveragePool", dict(kernel_shape=[2], strides=[2], ceil_mode=1), (1, 2), 8),
    "max_2d": ("MaxPool", dict(kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1), (1, 2, 5), 8),
    "avg_2d_excl": ("AveragePool", dict(kernel_shape=[3, 2], strides=[2, 2], ceil_mode=1),
                    (1, 2, 6), 8),
}


@pytest.mark.parametrize("key", list(CEIL))
@pytest.mark.parametrize("offline", [True, False])
def test_ceil_mode_pools(key, offline, tmp_path):
    """Offline over 7 frames: the extra output is a window overhanging the end (pad values,
    not counted). Streamed over a length without overhang along time: the stream has no last
    window; the frequency axis keeps its ceil length."""
    op, attrs, lead, streamed_t = CEIL[key]
    shape = (*lead, 7 if offline else streamed_t)
    m = pool_model(op, shape, **attrs)
    result = compile_case(tmp_path, m, key, bits=32, offline=offline,
                          chunk=None if offline else 2)
    t = shape[-1] if offline else 4 * shape[-1]
    x = np.random.default_rng(3).standard_normal((*lead, t)).astype(np.float32)
    got, want = c_vs_onnx(result, pool_model(op, (*lead, t), **attrs), x, tmp_path)
    assert got.shape == want.shape
    assert float(np.max(np.abs(got - want))) <= 1e-5 * float(np.max(np.abs(want)))


def test_streamed_ceil_mode_window_past_the_end_is_refused(tmp_path):
    m = pool_model("AveragePool", (1, 2, 7), kernel_shape=[2], strides=[2], ceil_mode=1)
    with pytest.raises(RillError, match="pool.*ceil_mode=1 adds an output frame"):
        compile_case(tmp_path, m, "avg_ceil_stream", bits=32, chunk=2)


def test_ceil_mode_average_counting_padding_is_refused(tmp_path):
    m = pool_model("AveragePool", (1, 2, 7), kernel_shape=[2], strides=[2], ceil_mode=1,
                   count_include_pad=1)
    with pytest.raises(RillError, match="ceil_mode=1 with count_include_pad=1"):
        compile_case(tmp_path, m, "avg_ceil_incl", bits=32, offline=True)
