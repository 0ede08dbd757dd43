"""The passes together: declared requires/ensures line up, and the whole float pipeline on an
exporter-style graph keeps the float semantics at every step and streams like the offline model."""
from __future__ import annotations

import json

import numpy as np
import pytest

from compiler.context import Options
from compiler.graph import static_shape
from compiler.ort import run_model
from compiler.pass_manager import PassManager
from compiler.pipeline import float_passes, pipeline_for
from compiler.streams import aligned, run_float_stream, stitch
from compiler.targets import get_target
from graphs import (ctx_for, init, ints, model, node, random_input, runnable,
                    torchscript_pad_chain, weights)
from passes.streaming_cut import streaming_metadata

C, T = 4, 12
INT64_MAX = np.iinfo(np.int64).max


@pytest.mark.parametrize("offline", [False, True])
def test_every_requirement_is_ensured_by_an_earlier_pass(offline):
    passes = pipeline_for(Options(get_target("esp32p4"), offline=offline))
    names = [p.name for p in passes]
    assert all(names) and len(set(names)) == len(names)
    ensured: set[str] = set()
    for p in passes:
        assert p.requires <= ensured, f"{p.name} requires {sorted(p.requires - ensured)}"
        ensured |= p.ensures


def exporter_style_model():
    """Identity, a TorchScript pad chain, Conv+BN+Relu, a Chomp1d conv, x*sigmoid(x), a window
    head x[..., -3:], Flatten, MatMul + Add: one of each thing the float passes normalize."""
    p = {"gamma": np.linspace(0.5, 1.5, C), "beta": np.linspace(-0.2, 0.2, C),
         "mean": np.linspace(-0.1, 0.1, C), "var": np.linspace(0.5, 2.0, C)}
    nodes = [node("Identity", ["x"], ["xi"], name="id")]
    nodes += torchscript_pad_chain(2, 0, p="a_")
    nodes += [
        node("Pad", ["xi", "a_pads", ""], ["xp"], name="pad"),
        node("Conv", ["xp", "w1", "b1"], ["c1"], name="conv1", kernel_shape=[3]),
        node("BatchNormalization", ["c1", "gamma", "beta", "mean", "var"], ["bn"], name="bn"),
        node("Relu", ["bn"], ["r1"], name="relu"),
        node("Conv", ["r1", "w2"], ["c2"], name="conv2", kernel_shape=[3], dilations=[2], pads=[4, 4]),
        node("Slice", ["c2", "z", "chomp_end", "ax2"], ["chomped"], name="chomp"),
        node("Sigmoid", ["chomped"], ["sig"], name="act/Sigmoid"),
        node("Mul", ["chomped", "sig"], ["silu"], name="act/Mul"),
        node("Slice", ["silu", "head_start", "head_end", "ax2"], ["head"], name="head"),
        node("Flatten", ["head"], ["flat"], name="flatten", axis=1),
        node("MatMul", ["flat", "W"], ["mm"], name="fc"),
        node("Add", ["mm", "bias"], ["y"], name="fc_bias"),
    ]
    inits = [init("w1", weights([C, C, 3], 1)), init("b1", weights([C], 2)),
             init("w2", weights([C, C, 3], 3)), ints("z", [0]), ints("chomp_end", [-4]),
             ints("ax2", [2]), ints("head_start", [-3]), ints("head_end", [INT64_MAX]),
             init("W", weights([C * 3, 5], 4)), init("bias", weights([5], 5))]
    inits += [init(k, v) for k, v in p.items()]
    return model(nodes, [("x", [1, C, T])], [("y", None)], inits)


def test_float_pipeline_normalizes_an_exporter_graph_and_keeps_its_semantics():
    m = exporter_style_model()
    ctx = ctx_for(m, properties=set(), shapes=False, chunk=1)
    manager = PassManager(float_passes(offline=True), check_equivalence=True, rel_tol=1e-5)
    manager.run(ctx)
    assert [n.op for n in ctx.graph.nodes] == ["FusedConv", "Conv", "Silu", "Slice", "Flatten", "Gemm"]
    fused, conv2 = ctx.graph.nodes[0], ctx.graph.nodes[1]
    assert list(fused.attrs["pads"]) == [2, 0] and fused.attrs["activation"] == "Relu"
    assert list(conv2.attrs["pads"]) == [4, 0]
    changed = {r.name for r in manager.records if r.changed}
    assert {"remove-identity", "fold-constants", "fuse-gemm", "fuse-pad", "fold-chomp",
            "fuse-batchnorm", "fuse-activation", "fuse-silu"} <= changed
    checked = [r for r in manager.records if r.max_rel_error is not None]
    assert checked and all(r.max_rel_error <= 1e-5 for r in checked)
    r = run_model(m, {"x": random_input([1, C, T], 3)})["y"]
    got = run_model(runnable(ctx), {"x": random_input([1, C, T], 3)})["y"]
    np.testing.assert_allclose(got, r, rtol=0, atol=1e-5 * float(np.max(np.abs(r))))


@pytest.mark.parametrize("chunk", [1, 2, 3])
def test_exporter_graph_streams_like_offline(chunk):
    m = exporter_style_model()
    ctx = ctx_for(m, properties=set(), shapes=False, chunk=chunk)
    PassManager(float_passes(offline=False), check_equivalence=True).run(ctx)
    facts = ctx.facts["streaming"]
    meta = json.loads(json.dumps(streaming_metadata(facts)))
    assert [s["shape"] for s in meta["states"]] == \
        [[1, C, 2], [1, C, 4]] + ([[1, C, 3 - chunk]] if chunk < 3 else [])
    assert static_shape(ctx.graph.inputs[0]) == (1, C, chunk)
    streaming = runnable(ctx)
    for seed in (0, 1):
        x = random_input([1, C, T], seed)
        offline = run_model(m, {"x": x})["y"]
        stream = stitch(run_float_stream(streaming, meta, x), facts["per_frame_output"], 2)
        a, b = aligned(stream, offline, meta["latency_frames"], 2, facts["per_frame_output"])
        assert np.max(np.abs(a - b)) <= 1e-5 * np.max(np.abs(offline))
