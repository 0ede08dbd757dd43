"""2-D ConvTranspose over [N, C, F, T] folded into the 1-D kernel over (channel, frequency) pairs
(passes/lowering/geometry.fold_conv_transpose2d): offline at float32 and int8 against
onnxruntime; ConvTranspose SAME padding (1-D and 2-D); a frequency axis too large to fold is
one clear error."""
from __future__ import annotations

import numpy as np
import onnx
import pytest

from compiler.errors import RillError
from compiler.streams import snr_db
from graphs import init, model, node, weights
from test_time_axis import c_vs_onnx, compile_case

F, T = 4, 6


def up_model(shape, c_out: int, kernel, bias: bool = True, **attrs) -> onnx.ModelProto:
    groups = attrs.get("group", 1)
    c_in = shape[1]
    inits = [init("w", weights([c_in, c_out // groups, *kernel], 1))]
    ins = ["x", "w"]
    if bias:
        inits.append(init("b", weights([c_out], 2)))
        ins.append("b")
    return model([node("ConvTranspose", ins, ["y"], name="up", kernel_shape=list(kernel),
                       **attrs)], [("x", list(shape))], [("y", None)], inits)


CASES = {
    "stride2_pads": ((1, 2, F, T), 3, (3, 3), dict(strides=[2, 2], pads=[1, 0, 1, 1])),
    "groups_batch": ((2, 4, F, T), 2, (2, 3), dict(group=2, strides=[1, 2], bias=False)),
    "dilation_outpad": ((1, 1, F, T), 2, (2, 2), dict(dilations=[2, 1], strides=[2, 2],
                                                      output_padding=[1, 1])),
    "same_upper_2d": ((1, 2, F, T), 2, (3, 3), dict(strides=[2, 2], auto_pad="SAME_UPPER")),
    "same_lower_1d": ((1, 2, T), 3, (4,), dict(strides=[2], auto_pad="SAME_LOWER")),
}


@pytest.mark.parametrize("key", list(CASES))
@pytest.mark.parametrize("bits", [32, 8])
def test_conv_transpose_matches_onnxruntime(key, bits, tmp_path):
    shape, c_out, kernel, attrs = CASES[key]
    attrs = dict(attrs)
    m = up_model(shape, c_out, kernel, bias=attrs.pop("bias", True), **attrs)
    opts = dict(bits=bits, offline=True)
    if bits != 32:
        opts["calib_shape"] = (16, *shape)
    result = compile_case(tmp_path, m, key, **opts)
    steps = [s.op for s in result.program.steps]
    assert steps == ["conv_transpose1d"] * shape[0], steps  # one call per sequence
    x = np.random.default_rng(3).standard_normal(shape).astype(np.float32)
    got, want = c_vs_onnx(result, m, x, tmp_path)
    assert got.shape == want.shape
    if bits == 32:
        assert float(np.max(np.abs(got - want))) <= 1e-5 * float(np.max(np.abs(want)))
    else:
        # int8 input, weights and output; the C is bit-exact with the integer reference (the
        # compile checks it), and mse calibration on 16 samples may clip a held-out peak
        assert snr_db(want, got) > 15.0


def test_a_frequency_axis_too_large_to_fold_is_refused(tmp_path):
    m = up_model((1, 8, 64, 4), 8, (3, 3), strides=[2, 1], pads=[1, 1, 1, 1])
    with pytest.raises(RillError, match="up.*2-D ConvTranspose.*weights"):
        compile_case(tmp_path, m, "big", bits=32, offline=True)


def decoder(t: int = T) -> onnx.ModelProto:
    """x [1, 2, F, T] -> causal Conv2d 3x3 + Relu -> ConvTranspose 2-D (x2 in F and T, output
    padding 1 in frequency): an upsampling decoder stage over a spectrogram."""
    nodes = [node("Conv", ["x", "w", "b"], ["c"], name="conv", kernel_shape=[3, 3],
                  pads=[1, 2, 1, 0]),
             node("Relu", ["c"], ["r"]),
             node("ConvTranspose", ["r", "wt", "bt"], ["y"], name="up", kernel_shape=[3, 2],
                  strides=[2, 2], pads=[1, 0, 0, 0], output_padding=[1, 0])]
    inits = [init("w", weights([3, 2, 3, 3], 1)), init("b", weights([3], 2)),
             init("wt", weights([3, 2, 3, 2], 3)), init("bt", weights([2], 4))]
    return model(nodes, [("x", [1, 2, F, t])], [("y", None)], inits)


@pytest.mark.parametrize("bits", [8, 32])
def test_streamed_2d_conv_transpose(bits, tmp_path):
    m = decoder()
    opts = dict(bits=bits, chunk=2)
    if bits != 32:
        opts["calib_shape"] = (32, 1, 2, F, T)
    result = compile_case(tmp_path, m, f"decoder{bits}", **opts)
    report = result.report
    assert report["mode"] == "streaming" and report["output"]["per_frame"]
    assert report["verification"]["selftest"] == "passed"
    x = np.random.default_rng(5).standard_normal((1, 2, F, 4 * T)).astype(np.float32)
    got, want = c_vs_onnx(result, decoder(4 * T), x, tmp_path)
    if bits == 32:
        assert float(np.max(np.abs(got - want))) <= 1e-5 * float(np.max(np.abs(want)))
    else:
        assert snr_db(want, got) > 20.0
