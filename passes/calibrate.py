"""Run the float model on calibration data and keep every activation's values.

Calibration runs the offline (whole-window) float model, whose tensors have the same names as
the streaming model's data tensors; state windows inherit their exponents by propagation.

A model with its own state pairs is a per-call model: each calibration sample is one call, and
the samples run in order as one continuous stream, every state input fed the previous call's
output (zeros at first).
"""
from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs

from compiler.context import CompileContext
from compiler.graph import to_runnable
from compiler.ort import session, with_all_outputs
from compiler.pass_manager import Pass
from passes.streaming_cut import state_specs

MAX_SAMPLES_PER_TENSOR = 1 << 20


def synthetic_calibration(shape: tuple[int, ...], n: int = 64, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n,) + tuple(shape)).astype(np.float32)


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
        carried = {s.input: np.full(s.shape, s.init, np.float32) for s in states}
        for sample in data:
            values = dict(zip(out_names, sess.run(out_names, {in_name: sample.astype(np.float32),
                                                              **carried})))
            collected[in_name].append(sample.reshape(-1))
            for n, v in list(values.items()) + list(carried.items()):
                collected[n].append(np.asarray(v, np.float32).reshape(-1))
            carried = {s.input: values[s.output] for s in states}
        recurrent_inputs = {n.inputs[0].name for n in graph.nodes if n.op in ("GRU", "LSTM")}
        # recurrent layers need whole sequences, in order (one continuous one across calls)
        sequence = (lambda parts: np.concatenate(parts)[None]) if states else np.stack
        ctx.facts["calibration_sequences"] = {
            n: sequence([p.reshape(-1) for p in collected[n]]) for n in recurrent_inputs
            if n in collected}
        rng = np.random.default_rng(0)
        samples = {}
        for n, parts in collected.items():
            flat = np.concatenate(parts) if parts else np.zeros(0, np.float32)
            if flat.size > MAX_SAMPLES_PER_TENSOR:
                flat = rng.choice(flat, MAX_SAMPLES_PER_TENSOR, replace=False)
            samples[n] = flat
        ctx.facts["calibration"] = samples
        return False
