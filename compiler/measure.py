"""Measure a generated component the way a user would: its float C API against the float model.

Each held-out input is cut into chunks, streamed through `<name>_run_f32` of the host-built
component, stitched back into the offline output's layout, aligned for latency, and compared
with onnxruntime on the original model (pooled SNR, contract §4).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx

from compiler.host_build import build_host, run_host
from compiler.ort import session
from compiler.streams import aligned, chunks, from_physical, snr_db, stitch, to_physical
from passes.time_analysis import TimeInfo


def run_c_float(component: Path, name: str, report: dict, xs: np.ndarray, work: Path,
                exe: Path | None = None) -> list[np.ndarray]:
    """Stream each input through the component's float API (its host build `exe`, built into
    `work` when not given); ONNX-layout outputs."""
    exe = exe or build_host(component, name, work)
    axis, chunk = report["time_axis"], report["chunk_frames"]
    out = report["output"]
    stored = out.get("stored_time_axis", out["time_axis"] if out["per_frame"] else None)
    out_info = TimeInfo(stored, True) if stored is not None else None
    results = []
    for x in xs:
        calls = np.stack([to_physical(c, TimeInfo(axis, True)) for c in chunks(x, axis, chunk)])
        y = run_host(exe, calls.astype(np.float32), f32=True, out_elems=out["elems_per_call"])
        per_call = [from_physical(v, tuple(out["shape_per_call"]), out_info) for v in y]
        results.append(stitch(per_call, out["per_frame"], out["time_axis"] or 0))
    return results


def c_float_snr(component: Path, report: dict, model: onnx.ModelProto | Path, xs: np.ndarray,
                work: Path) -> float:
    """Pooled output SNR (dB) of the component's float C API against the float model."""
    got = run_c_float(component, report["name"], report, xs, work)
    sess = session(model if isinstance(model, onnx.ModelProto) else onnx.load(str(model)))
    name = sess.get_inputs()[0].name
    out = report["output"]
    refs, tests = [], []
    for x, y in zip(xs, got):
        want = sess.run(None, {name: x.astype(np.float32)})[0]
        a, b = aligned(y, want, report["latency_frames"], out["time_axis"] or 0, out["per_frame"])
        tests.append(a.reshape(-1))
        refs.append(b.reshape(-1))
    return snr_db(np.concatenate(refs), np.concatenate(tests))
