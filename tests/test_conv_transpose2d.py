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
