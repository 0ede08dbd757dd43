"""Split, standalone Pad and Slices of any contiguous ranges through the pipeline: time
analysis and the streaming cut (a constant Pad at the start of time is a delay line that starts
at the pad value; what cannot stream is refused with the node named), lowering to copies and the
`pad` kernel over stored layouts, and whole compiles whose C is bit-exact with the integer
reference at int8 and int16."""
from __future__ import annotations

import json
import zlib

import numpy as np
import onnx
import pytest

from compiler.errors import RillError
from compiler.ort import run_model
from compiler.pass_manager import PassManager
from compiler.pipeline import float_passes, quantization_passes
from conftest import run_cli
from compiler.graph import to_runnable
from compiler.streams import run_float_stream
from graphs import ctx_for, init, integer_snr, ints, model, node, run_pass, weights
from passes.lowering.padding import collapse_pads
from passes.streaming_cut import StreamingCut, streaming_metadata

C, T = 4, 12


def conv(name: str, src: str, dst: str, c_in: int, c_out: int, k: int = 3) -> tuple:
    seed = zlib.crc32(name.encode())  # the same weights in every run (str hash is randomized)
    return (node("Conv", [src, f"{name}.w", f"{name}.b"], [dst], name=name, kernel_shape=[k],
                 pads=[k - 1, 0]),
            [init(f"{name}.w", weights([c_out, c_in, k], seed % 97)),
             init(f"{name}.b", weights([c_out], seed % 89))])


def layout_model(time_pad: int = 2, value: float = 0.5, split_opset: int = 18) -> onnx.ModelProto:
    """conv -> Split channels (2 + 2) -> one half padded with a constant on channels, a Slice
    of inner channels, a Pad at the start of time (value), a conv over it -> Concat."""
    c0, i0 = conv("c0", "x", "a", 2, C)
    c1, i1 = conv("c1", "tp", "b", 3, 3)
    if split_opset >= 18:
        split = node("Split", ["a"], ["s0", "s1"], name="split", axis=1, num_outputs=2)
    elif split_opset >= 13:
        split = node("Split", ["a", "sizes"], ["s0", "s1"], name="split", axis=1)
    else:
        split = node("Split", ["a"], ["s0", "s1"], name="split", axis=1, split=[2, 2])
    nodes = [c0, split,
             node("Pad", ["s0", "cpads", "cval"], ["cp"], name="pad_channels", mode="constant"),
             node("Slice", ["cp", "st", "en", "ax"], ["cs"], name="slice_inner"),
             node("Pad", ["cs", "tpads", "tval"], ["tp"], name="pad_time", mode="constant"),
             c1,
             node("Slice", ["b", "bst", "ben", "bax"], ["bb"], name="crop_time_tail"),
             node("Concat", ["bb", "s1"], ["y"], name="cat", axis=1)]
    inits = i0 + i1 + [ints("sizes", [2, 2]), ints("cpads", [0, 1, 0, 0, 2, 0]),
                       init("cval", np.array(-0.25, np.float32)),
                       ints("st", [1]), ints("en", [4]), ints("ax", [1]),
                       ints("tpads", [0, 0, time_pad, 0, 0, 0]),
                       init("tval", np.array(value, np.float32)),
                       ints("bst", [0]), ints("ben", [T]), ints("bax", [2])]
    m = model(nodes, [("x", [1, 2, T])], [("y", None)], inits, check=split_opset >= 18)
    if split_opset < 18:
        m.opset_import[0].version = split_opset
        m = onnx.shape_inference.infer_shapes(m, strict_mode=True)
        onnx.checker.check_model(m)
    return m


def calib(n: int = 24, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 1, 2, T)).astype(np.float32)


def test_collapse_pads_merges_unpadded_neighbours():
    assert collapse_pads([1, 6, 4, 3], [0, 0, 1, 0], [0, 0, 2, 0]) == (
        [1, 6, 4, 3], [0, 0, 1, 0], [0, 0, 2, 0])
    assert collapse_pads([2, 3, 5], [0, 0, 0], [0, 0, 0]) == ([1, 1, 1, 30], [0] * 4, [0] * 4)
    assert collapse_pads([2, 3, 5, 7, 11], [1, 0, 1, 0, 1], [0] * 5) is None


# ------------------------------------------------------------------------- streaming cut

def cut(m: onnx.ModelProto, chunk: int = 2):
    ctx = ctx_for(m, chunk=chunk)
    run_pass(StreamingCut(), ctx, check_equivalence=False)
    return ctx


def test_time_pad_becomes_a_delay_line_starting_at_the_pad_value():
    ctx = cut(layout_model(time_pad=2, value=0.5))
    states = {s.tensor: s for s in ctx.facts["streaming"]["states"]}
    assert states["cs"].shape == [1, 3, 2] and states["cs"].init == 0.5
    pad = next(n for n in ctx.graph.nodes if n.name == "pad_time")
    assert list(pad.inputs[1].values) == [0] * 6  # its time padding moved into the state
    assert pad.inputs[0].inputs[0].op == "Slice"  # the delayed frames of the window


def test_streamed_time_pad_matches_the_offline_model():
    """The float streaming model equals the offline one frame for frame (the padded frames
    come out first), at two chunks."""
    m = layout_model(time_pad=3, value=-1.0)
    x = calib(1, seed=3)[0]
    want = run_model(m, {"x": x})["y"]
    for chunk in (1, 3):
        ctx = cut(m, chunk)
        outs = run_float_stream(to_runnable(ctx.graph),
                                streaming_metadata(ctx.facts["streaming"]), x)
        got = np.concatenate(outs, axis=2)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("pads,mode,why", [
    ([0, 0, 0, 0, 0, 2], "constant", "after the last frame"),
    ([0, 0, 1, 0, 0, 0], "reflect", "reflect padding along the streamed time axis"),
    ([0, 0, 1, 0, 0, 0], "edge", "edge padding"),
])
def test_unstreamable_time_pads_are_refused(pads, mode, why):
    m = model([node("Pad", ["x", "p"], ["y"], name="the_pad", mode=mode)], [("x", [1, 2, T])],
              [("y", None)], [ints("p", pads)])
    with pytest.raises(RillError) as err:
        cut(m)
    assert "the_pad" in str(err.value) and why in str(err.value)


def test_summary_of_a_time_padded_stream_is_refused():
    m = model([node("Pad", ["x", "p"], ["xp"], name="the_pad"),
               node("ReduceMean", ["xp", "ax"], ["y"], name="mean", keepdims=0)],
              [("x", [1, 2, T])], [("y", None)], [ints("p", [0, 0, 2, 0, 0, 0]), ints("ax", [2])])
    with pytest.raises(RillError) as err:
        cut(m)
    assert "mean" in str(err.value) and "padded" in str(err.value)


# ------------------------------------------------------------------------------ lowering

def offline_ctx(m: onnx.ModelProto, bits: int = 8):
    ctx = ctx_for(m, properties=set(), shapes=False, offline=True, bits=bits, calib=calib())
    PassManager(float_passes(True) + quantization_passes()).run(ctx)
    return ctx


@pytest.mark.parametrize("split_opset", [11, 13, 18])
def test_split_of_every_opset_is_strided_copies(split_opset):
    ctx = offline_ctx(layout_model(split_opset=split_opset))
    steps = [s for s in ctx.facts["program"].steps if s.name == "split"]
    assert len(steps) == 2  # one per output; [T][C] storage: one row per frame
    assert [s.params["src_offset"] for s in steps] == [0, 2]
    assert all(s.params["blocks"] == T and s.params["count"] == 2 for s in steps)
    exps = ctx.facts["exponents"]
    assert exps["a"] == exps["s0"] == exps["s1"]


def test_pads_and_inner_slices_are_pad_steps():
    ctx = offline_ctx(layout_model())
    steps = {s.name: s for s in ctx.facts["program"].steps}
    p = steps["pad_channels"]
    assert p.op == "pad" and p.params["in_shape"] == [1, 1, T, 2]
    assert p.params["pad_lo"] == [0, 0, 0, 1] and p.params["pad_hi"] == [0, 0, 0, 2]
    e = ctx.facts["exponents"]["cp"]
    assert p.params["value"] == round(-0.25 / 2.0 ** e)
    s = steps["slice_inner"]
    assert s.op == "pad" and s.params["pad_lo"][3] == -1 and s.params["pad_hi"][3] == -1
    t = steps["pad_time"]  # offline: the time axis is padded in storage
    assert t.params["pad_lo"][2] == 2 and t.params["value"] == round(0.5 / 2.0 ** ctx.facts[
        "exponents"]["tp"])


@pytest.mark.parametrize("bits,floor_db", [(8, 25.0), (16, 70.0)])
def test_integer_program_tracks_the_float_model(bits, floor_db):
    m = layout_model()
    ctx = offline_ctx(m, bits)
    assert integer_snr(m, ctx, calib(6, seed=4)) > floor_db


@pytest.mark.parametrize("mode", ["reflect", "edge", "wrap"])
def test_other_pad_modes_on_a_frame_axis(mode, tmp_path):
    """reflect/edge/wrap padding of the channel axis of a streamed tensor, compiled to C."""
    c0, i0 = conv("c0", "x", "a", 2, C)
    m = model([c0, node("Pad", ["a", "p"], ["y"], name="pad", mode=mode)], [("x", [1, 2, T])],
              [("y", None)], i0 + [ints("p", [0, 2, 0, 0, 3, 0])])
    if mode == "wrap":
        m.opset_import[0].version = 19
    onnx.save(m, str(tmp_path / "m.onnx"))
    np.save(tmp_path / "c.npy", calib())
    rc, _, err = run_cli(["compile", tmp_path / "m.onnx", "--calib", tmp_path / "c.npy",
                          "--out", tmp_path / "out", "--chunk", "3"])
    assert rc == 0, err
    report = json.loads((tmp_path / "out" / "m" / "report.json").read_text())
    assert report["snr_db"] > 30 and report["verification"]["c_bit_exact_calls"] > 0


@pytest.mark.parametrize("bits,target", [(8, "esp32p4"), (16, "esp32s3")])
def test_streamed_compile_is_bit_exact(tmp_path, bits, target):
    onnx.save(layout_model(), str(tmp_path / "lay.onnx"))
    np.save(tmp_path / "c.npy", calib())
    rc, _, err = run_cli(["compile", tmp_path / "lay.onnx", "--calib", tmp_path / "c.npy",
                          "--bits", bits, "--target", target, "--chunk", "2",
                          "--out", tmp_path / "out"])
    assert rc == 0, err
    report = json.loads((tmp_path / "out" / "lay" / "report.json").read_text())
    assert report["verification"]["c_bit_exact_calls"] > 0
    assert report["snr_db"] > (25 if bits == 8 else 70)
    assert {"pad"} <= {r["op"] for r in report["layers"]}
