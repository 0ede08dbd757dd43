"""Issue 3, construct 6 (second half): a model that already has state inputs/outputs keeps them.

`state` -> `stateN`, `h`/`c` -> `hn`/`cn`: declared with `--state IN=OUT` or detected by name and
shape. Such a model is a per-call model: its time-series input's frames are the chunk, the
streaming-cut leaves it as it is, and each state input is fed the previous call's output (zeros
at first). The compile verifies the C against the integer reference bit for bit; here the
streaming ONNX equals the user's model run call by call with its states carried, and the C,
through its float API, follows it on a held-out stream.
"""
from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from compiler.errors import RillError
from compiler.ort import session
from compiler.state_pairs import names_pair, resolve_state_pairs
from compiler.streams import chunks, run_float_stream, snr_db, stitch
from conftest import run_cli
from graphs import (ctx_for, explicit_state_model, gru_state_model, init, model, node, nodes_of,
                    op_types, run_pass, runnable, weights)
from passes.streaming_cut import StreamingCut, is_per_call_model, streaming_metadata
from compiler.measure import run_c_float

C, CHUNK = 3, 4
MIN_SNR_DB = 25.0


def run_with_state(m: onnx.ModelProto, x: np.ndarray, pairs: list[tuple[str, str]],
                   axis: int = 2, chunk: int = CHUNK) -> list[np.ndarray]:
    """The user's model run call by call, each state input fed the previous call's output."""
    sess = session(m)
    states = {i: np.zeros([d.dim_value for d in vi.type.tensor_type.shape.dim], np.float32)
              for vi in m.graph.input for i, _ in pairs if vi.name == i}
    x_name = next(vi.name for vi in m.graph.input if vi.name not in states)
    y_name = next(o.name for o in m.graph.output if o.name not in {o for _, o in pairs})
    outs = []
    for c in chunks(x, axis, chunk):
        got = dict(zip([o.name for o in sess.get_outputs()],
                       sess.run(None, {x_name: c, **states})))
        outs.append(got[y_name])
        states = {i: got[o] for i, o in pairs}
    return outs


def summary_state_model() -> onnx.ModelProto:
    """A per-call model with a summary output: y = Gemm(mean over the window of Concat(state, x))."""
    nodes = [node("Concat", ["state", "x"], ["window"], name="window", axis=2),
             node("ReduceMean", ["window", "axes"], ["mean"], name="mean", keepdims=0),
             node("Gemm", ["mean", "fc.w", "fc.b"], ["y"], name="fc", transB=1),
             node("Slice", ["window", "starts", "ends", "axes"], ["stateN"], name="keep")]
    inits = [init("axes", [2], np.int64), init("fc.w", weights([5, C], 1)),
             init("fc.b", weights([5], 2)), init("starts", [-3], np.int64),
             init("ends", [np.iinfo(np.int64).max], np.int64)]
    return model(nodes, [("x", [1, C, CHUNK]), ("state", [1, C, 3])],
                 [("y", None), ("stateN", None)], inits)


def old_and_new_state_model() -> onnx.ModelProto:
    """y reads the old state next to the new one: y = Concat(state, stateN) along channels, with
    stateN = the last 2 frames of Concat(state, Conv1x1(x)). An in-place state update would
    show stateN twice."""
    nodes = [node("Conv", ["x", "w"], ["p"], name="proj", kernel_shape=[1]),
             node("Concat", ["state", "p"], ["window"], name="window", axis=2),
             node("Slice", ["window", "starts", "ends", "axes"], ["stateN"], name="keep"),
             node("Concat", ["state", "stateN"], ["y"], name="old_and_new", axis=1)]
    inits = [init("w", weights([C, C, 1], 3)), init("starts", [-2], np.int64),
             init("ends", [np.iinfo(np.int64).max], np.int64), init("axes", [2], np.int64)]
    return model(nodes, [("x", [1, C, CHUNK]), ("state", [1, C, 2])],
                 [("y", None), ("stateN", None)], inits)


# --------------------------------------------------------------------------- pairing

@pytest.mark.parametrize("name_in, name_out", [
    ("state", "stateN"), ("h", "hn"), ("c", "cn"), ("state_in", "state_out"), ("h", "h_next"),
    ("cache", "cache_new"), ("h0", "h1"), ("h_prev", "h_next"), ("State", "state_out")])
def test_names_that_pair(name_in, name_out):
    assert names_pair(name_in, name_out)


@pytest.mark.parametrize("name_in, name_out", [
    ("state", "state"), ("h", "y"), ("state_in", "h_out"), ("x", "stat"), ("hn", "h")])
def test_names_that_do_not_pair(name_in, name_out):
    assert not names_pair(name_in, name_out)


@pytest.mark.parametrize("m, pairs", [
    (explicit_state_model(), [("state", "stateN")]),
    (explicit_state_model(state="state_in", state_out="state_out", outputs_first=True),
     [("state_in", "state_out")]),
    (gru_state_model(), [("h", "hn")]),
    (gru_state_model(op="LSTM"), [("h", "hn"), ("c", "cn")]),
])
def test_pairs_are_detected_by_name_and_shape(m, pairs):
    assert resolve_state_pairs(ctx_for(m).graph) == pairs


def test_one_input_models_have_no_pairs():
    m = model([node("Relu", ["x"], ["y"])], [("x", [1, C, 8])], [("y", [1, C, 8])])
    assert resolve_state_pairs(ctx_for(m).graph) == []


def test_declared_pairs_are_used_as_given():
    m = explicit_state_model(state="memory", state_out="updated")  # names that do not pair
    graph = ctx_for(m).graph
    with pytest.raises(RillError, match="'memory'.*--state memory=updated"):
        resolve_state_pairs(graph)
    assert resolve_state_pairs(graph, [("memory", "updated")]) == [("memory", "updated")]


# --------------------------------------------------------------------------- the cut

def test_streaming_cut_keeps_a_per_call_model_as_it_is():
    """A conv with causal time padding inside the user's per-call model is not cut: the model
    runs as given; its own pair is the only state."""
    m = explicit_state_model(pads=(2, 0))
    ctx = ctx_for(m)
    before = op_types(ctx)
    assert not run_pass(StreamingCut(), ctx)
    assert op_types(ctx) == before
    assert list(nodes_of(ctx, "Conv")[0].attrs["pads"]) == [2, 0]
    facts = ctx.facts["streaming"]
    assert is_per_call_model(facts)
    assert [(s.input, s.output, s.kind, s.time_axis) for s in facts["states"]] == \
        [("state", "stateN", "model", None)]
    assert streaming_metadata(facts) == {
        "time_axis": 2, "chunk": CHUNK, "latency_frames": 0,
        "states": [{"input": "state", "output": "stateN", "shape": [1, C, 2], "init": 0.0}]}
    assert facts["per_frame_output"] and facts["output_time_axis"] == 2
    assert [t.name for t in ctx.graph.inputs] == ["x", "state"]
    assert [t.name for t in ctx.graph.outputs] == ["y", "stateN"]
    x = np.random.default_rng(0).standard_normal((1, C, 5 * CHUNK)).astype(np.float32)
    got = run_float_stream(runnable(ctx), streaming_metadata(facts), x)
    want = run_with_state(m, x, [("state", "stateN")])
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


def test_a_summary_output_is_not_per_frame():
    ctx = ctx_for(summary_state_model())
    run_pass(StreamingCut(), ctx)
    assert not ctx.facts["streaming"]["per_frame_output"]


def test_chunk_must_be_the_models_frames():
    with pytest.raises(RillError, match=r"--chunk 2.*4 frame\(s\) of input 'x'"):
        run_pass(StreamingCut(), ctx_for(explicit_state_model(), chunk=2))
    run_pass(StreamingCut(), ctx_for(explicit_state_model(), chunk=CHUNK))


# --------------------------------------------------------------------------- end to end

MODELS = {
    "conv_state": (explicit_state_model, {}, [("state", "stateN")]),
    "in_out_names": (explicit_state_model,
                     dict(state="state_in", state_out="state_out", outputs_first=True),
                     [("state_in", "state_out")]),
    "gru_h": (gru_state_model, {}, [("h", "hn")]),
    "lstm_hc": (gru_state_model, dict(op="LSTM"), [("h", "hn"), ("c", "cn")]),
    "summary": (summary_state_model, {}, [("state", "stateN")]),
    "old_and_new": (old_and_new_state_model, {}, [("state", "stateN")]),
}
E2E = [pytest.param(k, [], id=f"{k}-detected") for k in MODELS] + \
      [pytest.param("conv_state", ["--state", "state=stateN"], id="conv_state-declared"),
       pytest.param("lstm_hc", ["--state", "h=hn", "--state", "c=cn"], id="lstm_hc-declared")]


@pytest.mark.parametrize("key, flags", E2E)
def test_model_with_its_own_state_compiles_and_streams(key, flags, tmp_path):
    build, kwargs, pairs = MODELS[key]
    m = build(**kwargs)
    path = tmp_path / f"{key}.onnx"
    onnx.save(m, str(path))
    calib = np.random.default_rng(1).standard_normal((24, 1, C, CHUNK)).astype(np.float32)
    np.save(tmp_path / "calib.npy", calib)
    out = tmp_path / "out"
    rc, _, err = run_cli(["compile", path, "--calib", tmp_path / "calib.npy", "--out", out,
                          "-q", *flags])
    assert rc == 0, err
    component = out / key
    report = json.loads((component / "report.json").read_text())
    assert report["mode"] == "streaming" and report["chunk_frames"] == CHUNK
    assert report["latency_frames"] == 0
    assert [(s["input"], s["output"], s["kind"], s["init"]) for s in report["states"]] == \
        [(i, o, "model", 0.0) for i, o in pairs]
    assert report["state_bytes"] == sum(s["bytes"] for s in report["states"])
    assert report["verification"]["selftest"] == "passed"
    assert report["verification"]["c_bit_exact_calls"] >= 16  # streams of several calls
    assert report["output"]["per_frame"] == (key != "summary")

    streaming = onnx.load(str(component / f"{key}.streaming.onnx"))
    meta = json.loads({p.key: p.value for p in streaming.metadata_props}["rill.streaming"])
    assert meta == {"time_axis": 2, "chunk": CHUNK, "latency_frames": 0,
                    "states": [{"input": i, "output": o, "shape": s["shape"], "init": 0.0}
                               for (i, o), s in zip(pairs, report["states"])]}

    x = np.random.default_rng(7).standard_normal((1, C, 6 * CHUNK)).astype(np.float32)
    want = run_with_state(m, x, pairs)
    got = run_float_stream(streaming, meta, x)
    scale = max(float(np.max(np.abs(w))) for w in want)
    assert max(float(np.max(np.abs(a - b))) for a, b in zip(got, want)) <= 1e-5 * scale

    per_frame = report["output"]["per_frame"]
    c_out = run_c_float(component, key, report, [x], tmp_path)[0]
    if per_frame:  # the whole stream, call after call
        snr = snr_db(stitch(want, True, report["output"]["time_axis"]), c_out)
    else:  # a summary: the last call's
        snr = snr_db(want[-1], c_out)
    assert snr >= MIN_SNR_DB, f"{key}: C int8 SNR {snr:.1f} dB against the float model with state"
