"""Property-based fuzzing of the streaming-cut (contract §2) on random small 1-D conv stacks.

A hypothesis strategy draws an input [1, C, T] (C in 1..6) and 1-4 Conv layers (kernel 1..5,
dilation 1..4, stride 1 or 2 with at most two stride-2 layers/pools in all, groups 1 or C_in,
causal / symmetric look-ahead / right-heavy padding, optional bias, Relu, and a residual Add
around a stride-1 layer whose channels match: the skip bypasses the layer, so with look-ahead
the cut must delay it), then optionally a causal AveragePool (count_include_pad=1) or MaxPool;
T is a multiple of the cumulative downsampling, CHUNK a multiple of it (the smallest legal one,
others, some that do not divide T: the stream is then zero padded at the end).

- `test_float_stream_matches_offline` (fast): the float pipeline with the streaming-cut, then the
  streaming ONNX chunk by chunk in onnxruntime vs the offline model: `stream[L:] ==
  offline[:T_out - L]` within 1e-5 * max|offline|; `latency_frames` and a state-size bound
  derived here from the pads alone.
- `test_compiled_component_is_verified` (slower): the full compile (gcc build, bit-exact C vs
  integer reference inside `compile_model`), and report.json agrees with the streaming metadata.

CI runs a small derandomized sample (25 + 3 examples, a few seconds); `RILL_FUZZ=1` (`make fuzz`)
runs 2000 + 200 fresh random examples (about a minute with -n 2); RILL_FUZZ_FLOAT /
RILL_FUZZ_COMPILE override the counts.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from compiler.ort import run_model
from compiler.pass_manager import PassManager
from compiler.pipeline import compile_model, float_passes
from compiler.streams import aligned, run_float_stream, stitch
from graphs import ctx_for, init, model, node, options, random_input, runnable, weights
from passes.streaming_cut import streaming_metadata

FUZZ = os.environ.get("RILL_FUZZ") == "1"
FLOAT_EXAMPLES = int(os.environ.get("RILL_FUZZ_FLOAT", 2000 if FUZZ else 25))
COMPILE_EXAMPLES = int(os.environ.get("RILL_FUZZ_COMPILE", 200 if FUZZ else 3))
REL = 1e-5
MAX_STRIDE2 = 2
PAD_MODES = ("causal", "lookahead", "right")


# CI: a fixed (derandomized) sample; fuzz mode: fresh random examples every run. Profiles are
# applied per test (not loaded globally, which would change other files' hypothesis tests).
settings.register_profile("rill-streaming-ci", deadline=None, derandomize=True, database=None,
                          print_blob=True, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.data_too_large])
settings.register_profile("rill-streaming-fuzz", settings.get_profile("rill-streaming-ci"),
                          derandomize=False)
PROFILE = settings.get_profile("rill-streaming-fuzz" if FUZZ else "rill-streaming-ci")


# --------------------------------------------------------------------------- the graph spec

@dataclass(frozen=True)
class Layer:
    c_out: int
    k: int = 3
    d: int = 1
    stride: int = 1
    depthwise: bool = False  # group = C_in (then c_out == C_in)
    pad: str = "causal"      # "causal" [S, 0] | "lookahead" [S//2, S - S//2] | "right" [0, S]
    relu: bool = False
    residual: bool = False   # y = layer(x) + x (stride 1, c_out == C_in)
    bias: bool = True

    @property
    def span(self) -> int:
        return self.d * (self.k - 1)

    @property
    def pads(self) -> tuple[int, int]:
        s = self.span
        return {"causal": (s, 0), "lookahead": (s // 2, s - s // 2), "right": (0, s)}[self.pad]


@dataclass(frozen=True)
class Pool:
    op: str  # "AveragePool" (count_include_pad=1) | "MaxPool"; causal pads
    k: int = 2
    stride: int = 1


@dataclass(frozen=True)
class Stack:
    c: int
    t: int
    layers: tuple[Layer, ...]
    pool: Pool | None = None
    chunk: int = 1
    seed: int = 0

    @property
    def strides(self) -> list[int]:
        return [l.stride for l in self.layers] + ([self.pool.stride] if self.pool else [])

    @property
    def factor(self) -> int:
        return math.prod(self.strides)

    @property
    def stride1(self) -> bool:
        return self.factor == 1

    @property
    def causal(self) -> bool:
        return all(l.pad == "causal" or l.span == 0 for l in self.layers)

    def channels_in(self) -> list[int]:
        cs = [self.c]
        for l in self.layers:
            cs.append(l.c_out)
        return cs


def build(spec: Stack) -> onnx.ModelProto:
    nodes, inits, prev, c_in = [], [], "x", spec.c
    for i, l in enumerate(spec.layers):
        group = c_in if l.depthwise else 1
        inits.append(init(f"w{i}", weights([l.c_out, c_in // group, l.k], spec.seed * 31 + i)))
        ins = [prev, f"w{i}"]
        if l.bias:
            inits.append(init(f"b{i}", weights([l.c_out], spec.seed * 31 + 17 + i)))
            ins.append(f"b{i}")
        nodes.append(node("Conv", ins, [f"c{i}"], name=f"conv{i}", kernel_shape=[l.k],
                          dilations=[l.d], strides=[l.stride], pads=list(l.pads), group=group))
        out = f"c{i}"
        if l.relu:
            nodes.append(node("Relu", [out], [f"r{i}"], name=f"relu{i}"))
            out = f"r{i}"
        if l.residual:
            nodes.append(node("Add", [out, prev], [f"res{i}"], name=f"add{i}"))
            out = f"res{i}"
        prev, c_in = out, l.c_out
    if spec.pool is not None:
        p = spec.pool
        attrs = {"count_include_pad": 1} if p.op == "AveragePool" else {}
        nodes.append(node(p.op, [prev], ["pool"], name="pool", kernel_shape=[p.k],
                          strides=[p.stride], pads=[p.k - 1, 0], **attrs))
        prev = "pool"
    return model(nodes, [("x", [1, spec.c, spec.t])], [(prev, None)], inits)


# --------------------------------------------------------------------------- expectations

def window_delay(span: int, pad_l: int, stride: int, delay_in: int) -> int:
    """Output delay of a streamed window op, from first principles: stream output m of a call is
    computed from stream inputs up to (m+1)*stride - 1 (offline inputs up to that - delay_in),
    and offline output m - D reads offline inputs up to (m-D)*stride - pad_l + span; the
    smallest D that makes this causal."""
    return max(0, -(-(span - pad_l + delay_in - stride + 1) // stride))


def expected_latency(spec: Stack) -> int:
    delay = 0
    for l in spec.layers:
        delay = window_delay(l.span, l.pads[0], l.stride, delay)  # the skip's delay is <= this
    if spec.pool:
        delay = window_delay(spec.pool.k - 1, spec.pool.k - 1, spec.pool.stride, delay)
    return delay


def delays_per_rate(spec: Stack) -> dict[int, int]:
    """The largest delay of any tensor at each frame rate (1/stride product): mask lines."""
    out, delay, rate = {1: 0}, 0, 1
    windows = [(l.span, l.pads[0], l.stride) for l in spec.layers]
    if spec.pool:
        windows.append((spec.pool.k - 1, spec.pool.k - 1, spec.pool.stride))
    for span, pad_l, s in windows:
        delay = window_delay(span, pad_l, s, delay)
        rate *= s
        out[rate] = max(out.get(rate, 0), delay)
    return out


def state_bound(spec: Stack) -> int:
    """Elements kept between calls: every window op keeps at most C_in * span past frames of its
    input (a residual's delay line shares the state of the conv that reads the same tensor), plus
    one "valid frames" flag per frame of delay for each frame rate (pre-roll masks)."""
    cs = spec.channels_in()
    total = sum(c * l.span for c, l in zip(cs, spec.layers))
    if spec.pool:
        total += cs[-1] * (spec.pool.k - 1)
    return total + sum(delays_per_rate(spec).values())


def causal_stride1_bound(spec: Stack) -> int:
    """What a stride-1 causal stack needs: sum over window ops of C_in * d * (k - 1)."""
    cs = spec.channels_in()
    total = sum(c * l.d * (l.k - 1) for c, l in zip(cs, spec.layers))
    return total + (cs[-1] * (spec.pool.k - 1) if spec.pool else 0)


def state_elems(meta: dict) -> int:
    return sum(math.prod(s["shape"]) for s in meta["states"])


# --------------------------------------------------------------------------- the strategy

@st.composite
def stacks(draw, max_layers: int = 4) -> Stack:
    """A random conv stack, T and a legal CHUNK (up to one step past the window)."""
    c = draw(st.integers(1, 6))
    n = draw(st.integers(1, max_layers))
    stride2 = 0
    layers, c_in = [], c
    for _ in range(n):
        stride = draw(st.sampled_from([1, 2])) if stride2 < MAX_STRIDE2 else 1
        stride2 += stride == 2
        depthwise = draw(st.booleans())
        c_out = c_in if depthwise else draw(st.one_of(st.just(c_in), st.integers(1, 6)))
        residual = stride == 1 and c_out == c_in and draw(st.booleans())
        layers.append(Layer(c_out=c_out, k=draw(st.integers(1, 5)), d=draw(st.integers(1, 4)),
                            stride=stride, depthwise=depthwise,
                            pad=draw(st.sampled_from(PAD_MODES)), relu=draw(st.booleans()),
                            residual=residual, bias=draw(st.booleans())))
        c_in = c_out
    pool = None
    kind = draw(st.sampled_from([None, "AveragePool", "MaxPool"]))
    if kind:
        stride = draw(st.sampled_from([1, 2])) if stride2 < MAX_STRIDE2 else 1
        pool = Pool(kind, k=draw(st.integers(2, 4)), stride=stride)
    spec = Stack(c, 4, tuple(layers), pool)
    factor = spec.factor
    # T in 4..24 frames; longer when the latency would leave fewer than 2 frames to compare
    lo = max(-(-4 // factor), expected_latency(spec) + 2)
    hi = max(24 // factor, lo + 4)
    t = factor * draw(st.integers(lo, hi))
    multiples = [factor * m for m in range(1, t // factor + 2)]
    chunk = draw(st.sampled_from(multiples))  # hypothesis favours the first: the smallest
    seed = draw(st.integers(0, 2 ** 16))
    return Stack(c, t, tuple(layers), pool, chunk, seed)


def spec_for(c, layers, pool=None, chunk=None, t=None, seed=0) -> Stack:
    """A hand-written example: T defaults to the smallest that leaves 4 compared frames."""
    s = Stack(c, 4, tuple(layers), pool)
    t = t or s.factor * max(-(-12 // s.factor), expected_latency(s) + 4)
    return Stack(c, t, tuple(layers), pool, chunk or s.factor, seed)


CAUSAL_DILATED = spec_for(3, [Layer(3, k=3, d=1, relu=True), Layer(3, k=3, d=2, relu=True),
                              Layer(3, k=2, d=4, relu=True, residual=True)],
                          Pool("AveragePool", k=3), chunk=2)
LOOKAHEAD_RESIDUAL = spec_for(4, [Layer(4, k=3, d=1, relu=True),
                                  Layer(4, k=5, d=2, pad="lookahead", depthwise=True, relu=True,
                                        residual=True),
                                  Layer(2, k=3, d=1, pad="right")], chunk=3)
STRIDE2_THEN_LOOKAHEAD = spec_for(2, [Layer(3, k=4, d=1, stride=2, pad="causal", relu=True),
                                      Layer(3, k=3, d=2, pad="lookahead", residual=True),
                                      Layer(3, k=2, d=1, stride=2, pad="right")],
                                  Pool("MaxPool", k=3), chunk=4)
STRIDED_LOOKAHEAD_CHUNK_NOT_DIVIDING = spec_for(
    3, [Layer(3, k=5, d=1, stride=2, pad="lookahead", relu=True),
        Layer(3, k=3, d=3, pad="right", depthwise=True, residual=True, bias=False)],
    Pool("MaxPool", k=2, stride=2), chunk=12, t=20)


# --------------------------------------------------------------------------- check 1: float

def float_cut(m: onnx.ModelProto, chunk: int):
    ctx = ctx_for(m, properties=set(), shapes=False, chunk=chunk)
    PassManager(float_passes(offline=False), check_equivalence=True).run(ctx)
    return ctx


def check_float(spec: Stack) -> dict:
    m = build(spec)
    ctx = float_cut(m, spec.chunk)
    facts = ctx.facts["streaming"]
    meta = json.loads(json.dumps(streaming_metadata(facts)))  # what the .onnx metadata holds
    where = f"{spec!r}\n{onnx.printer.to_text(m.graph)}"
    assert facts["per_frame_output"], where
    assert meta["chunk"] == spec.chunk and meta["time_axis"] == 2, where

    latency = expected_latency(spec)
    assert meta["latency_frames"] == latency, where
    if spec.stride1:  # the simple view: every layer looks ahead by its right pad
        assert latency == sum(l.pads[1] for l in spec.layers), where
    elems = state_elems(meta)
    assert elems <= state_bound(spec), (elems, state_bound(spec), meta["states"], where)
    if spec.stride1 and spec.causal:
        assert elems <= causal_stride1_bound(spec), (elems, meta["states"], where)
    assert all(s["init"] == 0.0 for s in meta["states"]
               if not (spec.pool and spec.pool.op == "MaxPool")), where

    streaming = runnable(ctx)
    axis = 2
    for seed in (spec.seed, spec.seed + 1):
        x = random_input([1, spec.c, spec.t], seed)
        offline = run_model(m, {"x": x})[m.graph.output[0].name]
        t_out = offline.shape[axis]
        assert t_out == spec.t // spec.factor, where
        outs = run_float_stream(streaming, meta, x)
        assert len(outs) == -(-spec.t // spec.chunk), where
        assert all(o.shape[axis] == spec.chunk // spec.factor for o in outs), where
        stream = stitch(outs, True, axis)
        a, b = aligned(stream, offline, latency, axis, True)
        assert b.shape[axis] == t_out - latency > 0, where
        scale = max(float(np.max(np.abs(offline))), 1e-30)
        err = float(np.max(np.abs(a - b)))
        # float32 itself: two summation orders differ by up to ~eps x the sum of the terms'
        # magnitudes, which dwarfs 1e-5 x max|output| when the output is tiny by chance
        floor = ROUNDING_ULPS * float(np.finfo(np.float32).eps) * magnitude(m, x)
        assert err <= max(REL * scale, floor), \
            f"max abs error {err:.3g} > {REL:g} * {scale:.3g} (float32 floor {floor:.3g})\n{where}"

    return meta


ROUNDING_ULPS = 16


def magnitude(m: onnx.ModelProto, x: np.ndarray) -> float:
    """max over the output of the model run on |x| with |weights| and |biases|: a bound on the
    sum of the magnitudes of the terms every output value adds up (the float32 rounding scale;
    Relu and the pools are monotone, the residual Add adds magnitudes)."""
    absolute = onnx.ModelProto()
    absolute.CopyFrom(m)
    for t in absolute.graph.initializer:
        value = onnx.numpy_helper.to_array(t)
        if value.dtype.kind == "f":  # weights and biases, not shapes or indices
            t.CopyFrom(onnx.numpy_helper.from_array(np.abs(value), t.name))
    out = run_model(absolute, {"x": np.abs(x)})[absolute.graph.output[0].name]
    return float(np.max(np.abs(out)))


@settings(PROFILE, max_examples=FLOAT_EXAMPLES)
@given(spec=stacks())
@example(spec=CAUSAL_DILATED)
@example(spec=LOOKAHEAD_RESIDUAL)
@example(spec=STRIDE2_THEN_LOOKAHEAD)
@example(spec=STRIDED_LOOKAHEAD_CHUNK_NOT_DIVIDING)
def test_float_stream_matches_offline(spec):
    check_float(spec)


def test_explicit_examples_have_the_expected_latency_and_state():
    """The hand-written cases, spelled out (guards the test's own expectations)."""
    assert expected_latency(CAUSAL_DILATED) == 0
    assert causal_stride1_bound(CAUSAL_DILATED) == 3 * 2 + 3 * 4 + 3 * 4 + 3 * 2
    assert expected_latency(LOOKAHEAD_RESIDUAL) == 4 + 2  # (5-1)*2 - 4, then right pad 2
    # stride 2 causal: 0; look-ahead span 4 -> 2 half-rate frames; stride-2 right-heavy k=2:
    # ceil((1 + 2 - 2 + 1) / 2) = 1 quarter-rate frame; causal MaxPool: ceil((1 - 1 + 1)/1) = 1
    assert expected_latency(STRIDE2_THEN_LOOKAHEAD) == 1
    meta = check_float(CAUSAL_DILATED)
    assert state_elems(meta) == causal_stride1_bound(CAUSAL_DILATED)


# --------------------------------------------------------------------------- check 2: compile

def compile_spec(spec: Stack, target: str = "esp32p4") -> tuple[dict, dict]:
    """The full compile (BITS=8; gcc build and bit-exact check inside): report.json and the
    streaming .onnx's `rill.streaming` metadata."""
    m = build(spec)
    calib = np.stack([random_input([1, spec.c, spec.t], 1000 + spec.seed + i) for i in range(6)])
    with tempfile.TemporaryDirectory(prefix="rill-fuzz-") as work:
        path = Path(work) / "fuzz.onnx"
        onnx.save(m, str(path))
        opts = options(target=target, bits=8, chunk=spec.chunk, calib=calib, name="fuzz")
        result = compile_model(path, opts, Path(work) / "out", force=True)  # raises on mismatch
        report = json.loads((result.out_dir / "report.json").read_text())
        props = {p.key: p.value for p in
                 onnx.load(str(result.out_dir / "fuzz.streaming.onnx")).metadata_props}
    return report, json.loads(props["rill.streaming"])


@settings(PROFILE, max_examples=COMPILE_EXAMPLES)
@given(spec=stacks(max_layers=3), target=st.sampled_from(["esp32p4", "esp32s3"]))
@example(spec=LOOKAHEAD_RESIDUAL, target="esp32s3")
def test_compiled_component_is_verified(spec, target):
    meta = check_float(spec)
    report, onnx_meta = compile_spec(spec, target)
    where = repr(spec)
    assert onnx_meta == meta, where
    keys = ("input", "output", "shape", "init")
    assert [{k: s[k] for k in keys} for s in report["states"]] == meta["states"], where
    assert report["latency_frames"] == meta["latency_frames"] == expected_latency(spec), where
    assert report["chunk_frames"] == spec.chunk and report["bits"] == 8, where
    assert report["state_bytes"] == state_elems(meta), where  # int8: one byte per element
    output_rows = [r for r in report["layers"] if r["output"] == report["output"]["name"]]
    assert output_rows and all(r["snr_db"] == report["snr_db"] for r in output_rows), \
        (report["snr_db"], output_rows, where)
    verification = report["verification"]
    assert verification["c_bit_exact_calls"] > 0 and verification["selftest"] == "passed", where
    assert verification["float_stream_max_rel_error"] <= REL, where


# Regressions found by this fuzzer: a stream of a single call (CHUNK >= T) once skipped the
# stitch/align of per-frame tensors in compiler/layer_snr.py (a crash for CHUNK > T, a misaligned
# per-layer SNR for CHUNK == T with look-ahead).

def test_chunk_longer_than_the_window_compiles():
    report, _ = compile_spec(Stack(1, 4, (Layer(1, k=1, bias=False),), chunk=5))
    assert report["chunk_frames"] == 5


def test_single_call_per_layer_snr_is_aligned():
    report, _ = compile_spec(Stack(1, 8, (Layer(1, k=3, pad="lookahead", bias=False),), chunk=8))
    rows = [r for r in report["layers"] if r["output"] == report["output"]["name"]]
    assert rows and all(r["snr_db"] == report["snr_db"] for r in rows), (report["snr_db"], rows)
