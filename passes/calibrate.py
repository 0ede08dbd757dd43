"""Run the float model on calibration data and keep every activation's values.

Calibration runs the offline (whole-window) float model, whose tensors have the same names as
the streaming model's data tensors; state windows inherit their exponents by propagation.

A model with its own state pairs is a per-call model: each calibration sample is one call, and
the samples run in order as one continuous stream, every state input fed the previous call's
output (zeros at first).

Facts written:
- `calibration`: tensor name -> flat float32 values (at most MAX_SAMPLES_PER_TENSOR, always
  including the extremes, so a no-clip range is exact);
- `calibration_maxima`: tensor name -> max|value| of each calibration sample (each call of a
  per-call model): the spread of the maxima says how far new inputs may go beyond the data;
- `calibration_sequences`: recurrent layer input -> whole sequences, in order;
- `layer_input_means`: weighted node name -> per-input-channel mean of its input (axis 1 of
  the ONNX tensor: C of [N, C, ...], K of a Gemm's [M, K]), for bias correction;
- `layer_inputs`: weighted node name -> its input on the first LAYER_INPUT_SAMPLES samples,
  stacked along axis 0, to measure a layer's error cheaply.
"""
from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import onnx_graphsurgeon as gs

from compiler.context import CompileContext
from compiler.graph import to_runnable
from compiler.ort import session, with_all_outputs
from compiler.pass_manager import Pass
from passes.quant_rules import WEIGHTED_OPS
from passes.streaming_cut import state_specs

MAX_SAMPLES_PER_TENSOR = 1 << 20
LAYER_INPUT_SAMPLES = 16  # enough to rank a layer's error with and without bias correction
PROGRESS_SECONDS = 2.0


def synthetic_calibration(shape: tuple[int, ...], n: int = 64, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n,) + tuple(shape)).astype(np.float32)


def throttled(progress: Callable[[str], None],
              seconds: float | None = None) -> Callable[[str], None]:
    """`progress`, passing a message on only when `seconds` (default PROGRESS_SECONDS) passed
    since the last one: long loops report as they go, short ones stay silent."""
    seconds = PROGRESS_SECONDS if seconds is None else seconds
    last = [time.monotonic()]

    def report(message: str) -> None:
        now = time.monotonic()
        if now - last[0] >= seconds:
            last[0] = now
            progress(message)
    return report


def bounded_sample(flat: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """At most n values of `flat`: a uniform sample that always holds the minimum and the
    maximum (a no-clip range must not depend on the luck of the draw)."""
    if flat.size <= n:
        return flat
    extremes = np.array([np.argmin(flat), np.argmax(flat)])
    others = np.delete(np.arange(flat.size), extremes)
    return np.concatenate([flat[extremes], flat[rng.choice(others, n - 2, replace=False)]])


class ChannelMean:
    """Running per-channel (axis 1) mean of a tensor over calibration samples."""

    def __init__(self) -> None:
        self.total: np.ndarray | None = None
        self.count = 0

    def add(self, v: np.ndarray) -> None:
        v = np.asarray(v, np.float64)
        v = v.reshape(v.shape[0], v.shape[1], -1) if v.ndim >= 2 else v.reshape(1, -1, 1)
        s = v.sum(axis=(0, 2))
        self.total = s if self.total is None else self.total + s
        self.count += v.shape[0] * v.shape[2]

    def mean(self) -> np.ndarray:
        return self.total / max(self.count, 1)


class Calibrate(Pass):
    name = "calibrate"
    requires = frozenset({"activations-fused"})
    ensures = frozenset({"calibrated"})

    def run(self, ctx: CompileContext) -> bool:
        graph = ctx.facts.get("offline_graph", ctx.graph)
        model = to_runnable(graph)
        names = [t.name for t in graph.tensors().values()
                 if not isinstance(t, gs.Constant) and t.name and t not in graph.inputs]
        sess = session(with_all_outputs(model, names))
        states = [s for s in state_specs(ctx.facts) if s.kind == "model"]
        in_name = next(i.name for i in sess.get_inputs() if i.name not in {s.input for s in states})
        out_names = [o.name for o in sess.get_outputs()]
        data = ctx.options.calib
        collected: dict[str, list[np.ndarray]] = {
            n: [] for n in out_names + [in_name] + [s.input for s in states]}
        layers = {n.name: n.inputs[0].name for n in graph.nodes if n.op in WEIGHTED_OPS}
        means = {name: ChannelMean() for name in layers}
        firsts: dict[str, list[np.ndarray]] = {name: [] for name in layers}
        carried = {s.input: np.full(s.shape, s.init, np.float32) for s in states}
        report = throttled(ctx.progress)
        for i, sample in enumerate(data):
            x = sample.astype(np.float32)
            values = dict(zip(out_names, sess.run(out_names, {in_name: x, **carried})))
            full = {**values, **carried, in_name: x}
            for n, v in full.items():
                if n in collected:
                    collected[n].append(np.asarray(v, np.float32).reshape(-1))
            for layer, t in layers.items():
                means[layer].add(full[t])
                if i < LAYER_INPUT_SAMPLES:
                    firsts[layer].append(np.asarray(full[t], np.float32))
            carried = {s.input: values[s.output] for s in states}
            report(f"calibration: {i + 1}/{len(data)} samples through the float model")
        recurrent_inputs = {n.inputs[0].name for n in graph.nodes if n.op in ("GRU", "LSTM")}
        # recurrent layers need whole sequences, in order (one continuous one across calls)
        sequence = (lambda parts: np.concatenate(parts)[None]) if states else np.stack
        ctx.facts["calibration_sequences"] = {
            n: sequence([p.reshape(-1) for p in collected[n]]) for n in recurrent_inputs
            if n in collected}
        rng = np.random.default_rng(0)
        ctx.facts["calibration"] = {
            n: bounded_sample(np.concatenate(parts) if parts else np.zeros(0, np.float32),
                              MAX_SAMPLES_PER_TENSOR, rng)
            for n, parts in collected.items()}
        ctx.facts["calibration_maxima"] = {
            n: np.array([float(np.max(np.abs(p))) if p.size else 0.0 for p in parts])
            for n, parts in collected.items()}
        ctx.facts["layer_input_means"] = {n: m.mean() for n, m in means.items() if m.count}
        ctx.facts["layer_inputs"] = {n: np.concatenate(v) for n, v in firsts.items() if v}
        return False
