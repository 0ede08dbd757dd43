"""Per-layer error of the lowered program against the float model (contract §3): the SNR of a
quantized program, the max abs error of a float32 program.

Each tensor's buffer (dequantized, or the floats themselves) is read call by call, stitched back
into the offline tensor's layout (streamed tensors along time, shifted by their delay; windowed
and static tensors from the last call), and compared with the float offline model's tensor of
the same name.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import onnx

from compiler.ort import session, with_all_outputs
from compiler.simulate import StreamLayout, run_integer
from compiler.streams import aligned, from_physical, run_float_calls, snr_db
from passes.time_analysis import TimeInfo
from runtime.ir import Program

Metric = Callable[[np.ndarray, np.ndarray], float]  # (reference, program) -> a number


def max_abs_error(ref: np.ndarray, test: np.ndarray) -> float:
    return float(np.max(np.abs(np.asarray(ref, np.float64) - test))) if np.size(ref) else 0.0


def _trace_calls(program: Program, layout: StreamLayout, x: np.ndarray,
                 names: list[str]) -> list[dict[str, np.ndarray]]:
    """The named buffers after every call of one stream."""
    calls: list[dict[str, np.ndarray]] = []
    run_integer(program, layout, x, trace=lambda mem: calls.append({n: mem[n].copy() for n in names}))
    return calls


def _compared(program: Program, model: onnx.ModelProto, shapes: dict) -> list[str]:
    """The scratch/output tensors (and views of them) of the program that the model also
    produces."""
    produced = {o for node in model.graph.node for o in node.output}
    return [n for n, b in program.buffers.items()
            if b.role in ("scratch", "output", "view") and n in shapes and n in produced]


def layer_snr(program: Program, layout: StreamLayout, offline_model: onnx.ModelProto,
              shapes: dict[str, tuple[int, ...]], stored: dict[str, TimeInfo | None],
              streamed: dict[str, TimeInfo], data: np.ndarray,
              metric: Metric = snr_db) -> dict[str, float]:
    """`metric` (default: SNR in dB) of every scratch/output tensor that also exists in the
    offline model."""
    names = _compared(program, offline_model, shapes)
    sess = session(with_all_outputs(offline_model, names))
    refs: dict[str, list[np.ndarray]] = {n: [] for n in names}
    values: dict[str, list[np.ndarray]] = {n: [] for n in names}
    in_name = sess.get_inputs()[0].name
    for x in data:
        floats = dict(zip(names, sess.run(names, {in_name: x.astype(np.float32)})))
        calls = _trace_calls(program, layout, x, names)
        for n in names:
            real = program.buffers[n].real
            per_call = [from_physical(real(c[n]), shapes[n], stored.get(n)) for c in calls]
            info = streamed.get(n)
            if info is not None and info.streamed:
                stream = np.concatenate(per_call, axis=info.axis)
                q, r = aligned(stream, floats[n], info.delay, info.axis, True)
            else:
                q, r = per_call[-1], floats[n]
            values[n].append(q.reshape(-1))
            refs[n].append(r.reshape(-1))
    return {n: metric(np.concatenate(refs[n]), np.concatenate(values[n])) for n in names}


def layer_snr_per_call(program: Program, model: onnx.ModelProto, meta: dict,
                       shapes: dict[str, tuple[int, ...]], stored: dict[str, TimeInfo | None],
                       layout: StreamLayout, streams: list[np.ndarray],
                       metric: Metric = snr_db) -> dict[str, float]:
    """The per-layer `metric` of a model with its own state pairs: every tensor of every call
    against the float model run call by call with its states carried."""
    names = _compared(program, model, shapes)
    full = with_all_outputs(model, names)
    refs: dict[str, list[np.ndarray]] = {n: [] for n in names}
    values: dict[str, list[np.ndarray]] = {n: [] for n in names}
    for x in streams:
        floats = run_float_calls(full, meta, x, names)
        calls = _trace_calls(program, layout, x, names)
        for f, q in zip(floats, calls):
            for n in names:
                value = program.buffers[n].real(q[n])
                values[n].append(from_physical(value, shapes[n], stored.get(n)).reshape(-1))
                refs[n].append(np.asarray(f[n]).reshape(-1))
    return {n: metric(np.concatenate(refs[n]), np.concatenate(values[n])) for n in names}
