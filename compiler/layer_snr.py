"""Per-layer error of the quantized program against the float model (contract §3).

Each quantized tensor is dequantized call by call, stitched back into the offline tensor's
layout (streamed tensors along time, shifted by their delay; windowed and static tensors from
the last call), and compared with the float offline model's tensor of the same name.
"""
from __future__ import annotations

import numpy as np
import onnx

from compiler.ort import session, with_all_outputs
from compiler.simulate import StreamLayout, run_integer
from compiler.streams import aligned, from_physical, run_float_calls, snr_db
from passes.time_analysis import TimeInfo
from runtime.ir import Program


def _trace_calls(program: Program, layout: StreamLayout, x: np.ndarray,
                 names: list[str]) -> list[dict[str, np.ndarray]]:
    """The named buffers after every call of one stream."""
    calls: list[dict[str, np.ndarray]] = []
    run_integer(program, layout, x, trace=lambda mem: calls.append({n: mem[n].copy() for n in names}))
    return calls


def layer_snr(program: Program, layout: StreamLayout, offline_model: onnx.ModelProto,
              shapes: dict[str, tuple[int, ...]], stored: dict[str, TimeInfo | None],
              streamed: dict[str, TimeInfo], data: np.ndarray) -> dict[str, float]:
    """SNR in dB of every scratch/output tensor that also exists in the offline model."""
    produced = {o for node in offline_model.graph.node for o in node.output}
    names = [n for n, b in program.buffers.items()
             if b.role in ("scratch", "output") and n in shapes and n in produced]
    sess = session(with_all_outputs(offline_model, names))
    refs: dict[str, list[np.ndarray]] = {n: [] for n in names}
    quants: dict[str, list[np.ndarray]] = {n: [] for n in names}
    in_name = sess.get_inputs()[0].name
    for x in data:
        floats = dict(zip(names, sess.run(names, {in_name: x.astype(np.float32)})))
        calls = _trace_calls(program, layout, x, names)
        for n in names:
            exp = program.buffers[n].exp
            per_call = [from_physical(c[n].astype(np.float64) * 2.0 ** exp, shapes[n], stored.get(n))
                        for c in calls]
            info = streamed.get(n)
            if info is not None and info.streamed:
                stream = np.concatenate(per_call, axis=info.axis)
                q, r = aligned(stream, floats[n], info.delay, info.axis, True)
            else:
                q, r = per_call[-1], floats[n]
            quants[n].append(q.reshape(-1))
            refs[n].append(r.reshape(-1))
    return {n: snr_db(np.concatenate(refs[n]), np.concatenate(quants[n])) for n in names}


def layer_snr_per_call(program: Program, model: onnx.ModelProto, meta: dict,
                       shapes: dict[str, tuple[int, ...]], stored: dict[str, TimeInfo | None],
                       layout: StreamLayout, streams: list[np.ndarray]) -> dict[str, float]:
    """The per-layer SNR of a model with its own state pairs: every tensor of every call against
    the float model run call by call with its states carried."""
    produced = {o for node in model.graph.node for o in node.output}
    names = [n for n, b in program.buffers.items()
             if b.role in ("scratch", "output") and n in shapes and n in produced]
    full = with_all_outputs(model, names)
    refs: dict[str, list[np.ndarray]] = {n: [] for n in names}
    quants: dict[str, list[np.ndarray]] = {n: [] for n in names}
    for x in streams:
        floats = run_float_calls(full, meta, x, names)
        calls = _trace_calls(program, layout, x, names)
        for f, q in zip(floats, calls):
            for n in names:
                value = q[n].astype(np.float64) * 2.0 ** program.buffers[n].exp
                quants[n].append(from_physical(value, shapes[n], stored.get(n)).reshape(-1))
                refs[n].append(np.asarray(f[n]).reshape(-1))
    return {n: snr_db(np.concatenate(refs[n]), np.concatenate(quants[n])) for n in names}
