"""Execute a lowered `Program` with the Python integer kernels: the bit-exact reference."""
from __future__ import annotations

from typing import Callable

import numpy as np

from runtime.ir import Program, Step
from runtime.reference import kernels as K
from runtime.reference import recurrent as R


def initial_state(program: Program) -> dict[str, np.ndarray]:
    return {s.buffer: np.full(program.buffers[s.buffer].size, s.init, program.buffers[s.buffer].dtype)
            for s in program.states}


def _run_recurrent(step: Step, mem: dict[str, np.ndarray], mode: str) -> None:
    """gru_s8 / lstm_s8: inputs [x, h(, c)], outputs [(y,) h(, c), scratch]; state in place."""
    fields = {k: v for k, v in step.params.items() if k not in ("has_y",)}
    arrays = {k: step.arrays[k] for k in ("wx", "wh", "bias", "shift", "table")}
    x, h = mem[step.inputs[0]], mem[step.inputs[1]]
    if step.op == "gru_s8":
        y, h_next = R.gru_s8(x, h, **fields, **arrays, mode=mode)
        new = [h_next]
    else:
        y, h_next, c_next = R.lstm_s8(x, h, mem[step.inputs[2]], **fields, **arrays, mode=mode)
        new = [h_next, c_next]
    for name, value in zip(step.inputs[1:], new):
        mem[name][:] = np.asarray(value).reshape(-1)
    if step.params["has_y"]:
        mem[step.outputs[0]][:] = np.asarray(y, np.int8).reshape(-1)


def _run_step(step: Step, mem: dict[str, np.ndarray], mode: str) -> None:
    p, a = step.params, step.arrays
    ins = [mem[n] for n in step.inputs]
    out = step.outputs[0]
    if step.op == "fill":
        n, dst = p["count"], p["dst_offset"]
        mem[out][dst:dst + n] = np.asarray(a["values"]).reshape(-1)
        return
    if step.op in ("gru_s8", "lstm_s8"):
        _run_recurrent(step, mem, mode)
        return
    if step.op == "copy":  # `blocks` rows of `count` bytes, strided on both sides
        n, src, dst = p["count"], p["src_offset"], p["dst_offset"]
        for b in range(p.get("blocks", 1)):
            s, d = src + b * p.get("src_stride", 0), dst + b * p.get("dst_stride", 0)
            mem[out][d:d + n] = ins[0][s:s + n]
        return
    if step.op == "conv1d_s8":
        y = K.conv1d_s8(ins[0], a["w"], a["bias"], a["shift"], mode=mode, **p)
    elif step.op == "gemm_s8":
        y = K.gemm_s8(ins[0], a["w"], a["bias"], a["shift"], mode=mode, **p)
    elif step.op == "add_s8":
        y = K.add_s8(ins[0], ins[1], mode=mode, **p)
    elif step.op == "avgpool1d_s8":
        y = K.avgpool1d_s8(ins[0], mode=mode, **p)
    elif step.op == "lut_s8":
        y = K.lut_s8(ins[0], a["table"], **p)
    elif step.op == "requant_s8":
        y = K.requant_s8(ins[0], mode=mode, **p)
    elif step.op == "transpose_s8":
        y = K.transpose_s8(ins[0], in_shape=p["in_shape"], perm=p["perm"])
    elif step.op == "maxpool1d_s8":
        y = K.maxpool1d_s8(ins[0], mode=mode, **p)
    elif step.op == "conv2d_s8":
        y = K.conv2d_s8(ins[0], a["w"], a["bias"], a["shift"], mode=mode, **p)
    elif step.op == "reduce_s8":
        y = K.reduce_s8(ins[0], mode=mode, **p)
    elif step.op == "softmax_s8":
        y = K.softmax_s8(ins[0], a["table"], mode=mode, **p)
    elif step.op == "mask_frames_s8":
        # the mask is a constant array or a buffer (e.g. state that fills with 1s as frames arrive)
        mask = a["mask"] if "mask" in a else ins[1]
        y = K.mask_frames_s8(ins[0], mask, **p)
    elif step.op == "conv_transpose1d_s8":
        y = K.conv_transpose1d_s8(ins[0], a["w"], a["bias"], a["shift"], mode=mode, **p)
    else:
        raise ValueError(f"no reference kernel for step op {step.op!r}")
    mem[out][:] = np.asarray(y, np.int8).reshape(-1)


def run_program(program: Program, inputs: dict[str, np.ndarray], state: dict[str, np.ndarray],
                trace: Callable[[dict[str, np.ndarray]], None] | None = None
                ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """One call: flat int8 inputs (physical order) and state in, outputs and next state out.

    `trace`, if given, sees every buffer after the call (for per-layer error reports).
    """
    mem = {name: np.zeros(b.size, b.dtype) for name, b in program.buffers.items()}
    for name, value in list(inputs.items()) + list(state.items()):
        mem[name][:] = np.asarray(value, mem[name].dtype).reshape(-1)
    for step in program.steps:
        _run_step(step, mem, program.rounding)
    if trace is not None:
        trace(mem)
    outputs = {name: mem[name].copy() for name in program.outputs}
    new_state = {s.buffer: mem[s.buffer].copy() for s in program.states}
    return outputs, new_state


def run_stream(program: Program, chunks: list[np.ndarray],
               trace: Callable[[dict[str, np.ndarray]], None] | None = None) -> list[np.ndarray]:
    """Feed quantized input chunks call by call from the initial state; one output per call."""
    state = initial_state(program)
    results = []
    for chunk in chunks:
        outs, state = run_program(program, {program.inputs[0]: chunk}, state, trace)
        results.append(outs[program.outputs[0]])
    return results
