"""MatMul beyond a constant right operand: a constant on the left (turned around into a Gemm by
fuse-gemm), two activations (per-frame products in a streamed model, attention in an offline
one) and batched constants (the `matmul` kernel, strided over stored layouts), through time
analysis, lowering and whole compiles whose C is bit-exact with the integer reference."""
from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from compiler.errors import RillError
from compiler.pass_manager import PassManager
from compiler.pipeline import float_passes, quantization_passes
from conftest import run_cli
from graphs import (assert_ort_equal, ctx_for, init, integer_snr, ints, model, node, nodes_of,
                    run_pass, weights)
from passes.fuse_gemm import FuseGemm
from passes.streaming_cut import StreamingCut

T = 12


def frame_product_model() -> onnx.ModelProto:
    """Streamed: a mel-like constant-left MatMul, a per-frame product of two activations
    ([1, T, 2, 4] @ [1, T, 4, 3]) and a product with a batched constant ([1, 1, 3, 2])."""
    nodes = [
        node("MatMul", ["mel", "x"], ["spec"], name="mel"),  # [5, 8] @ [1, 8, T]
        node("Conv", ["spec", "w1", "b1"], ["p"], name="conv_a", kernel_shape=[3], pads=[2, 0]),
        node("Conv", ["spec", "w2", "b2"], ["q"], name="conv_b", kernel_shape=[1]),
        node("Transpose", ["p"], ["pt"], name="pt", perm=[0, 2, 1]),
        node("Transpose", ["q"], ["qt"], name="qt", perm=[0, 2, 1]),
        node("Reshape", ["pt", "sa"], ["a"], name="ra"),
        node("Reshape", ["qt", "sb"], ["b"], name="rb"),
        node("MatMul", ["a", "b"], ["ab"], name="frame_product"),  # [1, T, 2, 3]
        node("MatMul", ["ab", "wc"], ["abc"], name="batched_const"),  # [1, T, 2, 2]
        node("Reshape", ["abc", "so"], ["o"], name="ro"),
        node("Transpose", ["o"], ["y"], name="yt", perm=[0, 2, 1])]
    inits = [init("mel", np.abs(weights([5, 8], 9))), init("w1", weights([8, 5, 3], 1)),
             init("b1", weights([8], 2)), init("w2", weights([12, 5, 1], 3)),
             init("b2", weights([12], 4)), ints("sa", [1, T, 2, 4]), ints("sb", [1, T, 4, 3]),
             init("wc", weights([1, 1, 3, 2], 5)), ints("so", [1, T, 4])]
    return model(nodes, [("x", [1, 8, T])], [("y", None)], inits)


def attention_model() -> onnx.ModelProto:
    """Offline self-attention over T frames: softmax(Q K^T) V with two activation products."""
    nodes = [node("Transpose", ["x"], ["xt"], name="xt", perm=[0, 2, 1]),
             node("MatMul", ["xt", "wq"], ["q"], name="q"),
             node("MatMul", ["xt", "wk"], ["k"], name="k"),
             node("MatMul", ["xt", "wv"], ["v"], name="v"),
             node("Transpose", ["k"], ["kt"], name="kt", perm=[0, 2, 1]),
             node("MatMul", ["q", "kt"], ["s"], name="scores"),
             node("Softmax", ["s"], ["pr"], name="softmax", axis=-1),
             node("MatMul", ["pr", "v"], ["y"], name="mix")]
    inits = [init(n, weights([8, 6], i)) for i, n in enumerate(("wq", "wk", "wv"))]
    return model(nodes, [("x", [1, 8, T])], [("y", None)], inits)


def calib(n: int = 24, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 1, 8, T)).astype(np.float32)


def compiled_ctx(m: onnx.ModelProto, bits: int = 8, offline: bool = True):
    ctx = ctx_for(m, properties=set(), shapes=False, offline=offline, bits=bits, calib=calib())
    PassManager(float_passes(offline) + quantization_passes()).run(ctx)
    return ctx


def test_constant_left_matmul_becomes_a_gemm():
    m = model([node("MatMul", ["c", "x"], ["y"], name="mel")], [("x", [1, 8, T])], [("y", None)],
              [init("c", weights([5, 8], 1))])
    ctx = ctx_for(m)
    assert run_pass(FuseGemm(), ctx)
    gemm = nodes_of(ctx, "Gemm")
    assert len(gemm) == 1 and gemm[0].name == "mel"
    np.testing.assert_array_equal(gemm[0].inputs[1].values, weights([5, 8], 1))
    assert_ort_equal(m, ctx)


def test_products_of_activations_stream_frame_locally():
    ctx = ctx_for(frame_product_model(), chunk=3)
    run_pass(StreamingCut(), ctx, check_equivalence=False)
    info = ctx.facts["stream_time_info"]
    assert info["ab"].axis == 1 and info["abc"].axis == 1 and info["y"].axis == 2


@pytest.mark.parametrize("a_shape,b_shape,why", [
    ([1, 4, T], [1, T, 3], "contracts over the streamed time axis"),  # x @ y over time
    ([1, T, 4], [1, 4, T], "different time axes"),
])
def test_products_that_mix_frames_are_refused(a_shape, b_shape, why):
    nodes = [node("Conv", ["x", "w", "b"], ["c"], name="conv", kernel_shape=[1]),
             node("Reshape", ["c", "sa"], ["a"], name="ra"),
             node("Reshape", ["c", "sb"], ["bb"], name="rb"),
             node("MatMul", ["a", "bb"], ["y"], name="bad_product")]
    m = model(nodes, [("x", [1, 2, T])], [("y", None)],
              [init("w", weights([12 if a_shape[1] == T else 4, 2, 1], 0)),
               init("b", weights([12 if a_shape[1] == T else 4], 1)),
               ints("sa", a_shape), ints("sb", b_shape)], check=False)
    with pytest.raises(RillError) as err:
        run_pass(StreamingCut(), ctx_for(m, chunk=1), check_equivalence=False)
    assert "bad_product" in str(err.value)


def test_lowering_reads_operands_through_their_strides():
    ctx = compiled_ctx(frame_product_model())
    steps = {s.name: s for s in ctx.facts["program"].steps}
    fp = steps["frame_product"]
    assert fp.op == "matmul" and (fp.params["m"], fp.params["k"], fp.params["n"]) == (2, 4, 3)
    assert fp.params["batch0"] * fp.params["batch1"] == T and fp.params["acc_bits"] == 32
    bc = steps["batched_const"]
    assert list(bc.arrays) == ["b"] and bc.params["b_stride"][:2] == [0, 0]
    assert steps["mel"].op == "gemm"


@pytest.mark.parametrize("make,bits,floor_db", [(frame_product_model, 8, 20.0),
                                                (frame_product_model, 16, 60.0),
                                                (attention_model, 8, 18.0),
                                                (attention_model, 16, 55.0)])
def test_integer_program_tracks_the_float_model(make, bits, floor_db):
    m = make()
    ctx = compiled_ctx(m, bits)
    assert integer_snr(m, ctx, calib(6, seed=3)) > floor_db


@pytest.mark.parametrize("make,args", [
    (frame_product_model, ["--bits", "8", "--chunk", "3"]),
    (frame_product_model, ["--bits", "16", "--chunk", "2", "--target", "esp32s3"]),
    (attention_model, ["--bits", "8", "--offline", "--target", "esp32s3"]),
    (attention_model, ["--bits", "16", "--offline"])])
def test_compiled_c_is_bit_exact(tmp_path, make, args):
    onnx.save(make(), str(tmp_path / "mm.onnx"))
    np.save(tmp_path / "c.npy", calib())
    rc, _, err = run_cli(["compile", tmp_path / "mm.onnx", "--calib", tmp_path / "c.npy",
                          "--out", tmp_path / "out", *args])
    assert rc == 0, err
    report = json.loads((tmp_path / "out" / "mm" / "report.json").read_text())
    assert report["verification"]["c_bit_exact_calls"] > 0
    assert any(r["op"] == "matmul" for r in report["layers"])
