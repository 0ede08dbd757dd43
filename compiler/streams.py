"""Cut inputs into chunks and stitch outputs back: float (onnxruntime) and integer streams."""
from __future__ import annotations

import numpy as np
import onnx

from compiler.ort import session
from passes.time_analysis import TimeInfo, physical_perm


def chunks(x: np.ndarray, axis: int, chunk: int) -> list[np.ndarray]:
    """Split an ONNX-layout input along time; the last partial chunk is zero padded."""
    frames = x.shape[axis]
    calls = -(-frames // chunk)
    pad = [(0, 0)] * x.ndim
    pad[axis] = (0, calls * chunk - frames)
    x = np.pad(x, pad)
    return [np.take(x, range(i * chunk, (i + 1) * chunk), axis=axis) for i in range(calls)]


CALLS_PER_STREAM = 4  # a model with its own state pairs is checked on streams of this many calls


def call_streams(data: np.ndarray, axis: int, calls: int = CALLS_PER_STREAM) -> list[np.ndarray]:
    """Consecutive per-call inputs joined along time into streams of `calls` calls each."""
    return [np.concatenate(list(data[i:i + calls]), axis=axis) for i in range(0, len(data), calls)]


def run_float_calls(model: onnx.ModelProto, meta: dict, x: np.ndarray,
                    names: list[str] | None = None) -> list[dict[str, np.ndarray]]:
    """Feed `x` chunk by chunk through the streaming ONNX model from the initial state (each
    state input gets the previous call's output); the named tensors of every call (default: the
    model's output)."""
    sess = session(model)
    state_ins = {s["input"] for s in meta["states"]}
    state_outs = [s["output"] for s in meta["states"]]
    in_name = next(i.name for i in sess.get_inputs() if i.name not in state_ins)
    if names is None:
        names = [next(o.name for o in sess.get_outputs() if o.name not in state_outs)]
    state = {s["input"]: np.full(s["shape"], s["init"], np.float32) for s in meta["states"]}
    calls = []
    for c in chunks(x, meta["time_axis"], meta["chunk"]):
        wanted = names + [o for o in state_outs if o not in names]
        values = dict(zip(wanted, sess.run(wanted, {in_name: c.astype(np.float32), **state})))
        calls.append({n: values[n] for n in names})
        state = {s["input"]: values[s["output"]] for s in meta["states"]}
    return calls


def run_float_stream(model: onnx.ModelProto, meta: dict, x: np.ndarray) -> list[np.ndarray]:
    """Feed `x` chunk by chunk through the streaming ONNX model from the initial state; the
    output of every call."""
    return [next(iter(c.values())) for c in run_float_calls(model, meta, x)]


def stitch(outputs: list[np.ndarray], per_frame: bool, axis: int) -> np.ndarray:
    """Per-frame outputs concatenated along time; summary outputs: the last call's."""
    return np.concatenate(outputs, axis=axis) if per_frame else outputs[-1]


def aligned(stream: np.ndarray, offline: np.ndarray, latency: int, axis: int, per_frame: bool):
    """The parts of a stream and the offline output that contract §2 says are equal."""
    if not per_frame:
        return stream, offline
    # the stream can be shorter than the offline output: a ConvTranspose's tail frames (and the
    # last `latency` frames) come out only when zero frames are fed to flush the stream
    n = min(offline.shape[axis], stream.shape[axis]) - latency
    return (np.take(stream, range(latency, latency + n), axis=axis),
            np.take(offline, range(0, n), axis=axis))


def to_physical(x: np.ndarray, info: TimeInfo | None) -> np.ndarray:
    return np.ascontiguousarray(np.transpose(x, physical_perm(x.ndim, info))).reshape(-1)


def from_physical(flat: np.ndarray, shape: tuple[int, ...], info: TimeInfo | None) -> np.ndarray:
    perm = physical_perm(len(shape), info)
    stored = np.asarray(flat).reshape([shape[a] for a in perm])
    return np.transpose(stored, np.argsort(perm))


def snr_db(ref: np.ndarray, test: np.ndarray) -> float:
    """Pooled 10*log10(sum ref^2 / sum (ref - test)^2) (contract §4)."""
    ref, test = np.asarray(ref, np.float64), np.asarray(test, np.float64)
    noise = float(np.sum((ref - test) ** 2))
    signal = float(np.sum(ref ** 2))
    if noise == 0.0:
        return float("inf")
    return 10.0 * np.log10(max(signal, 1e-300) / noise)
