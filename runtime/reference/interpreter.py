"""Execute a lowered `Program` with the Python reference kernels: the integer kernels (bit-exact
with C) for a quantized program, the float32 kernels (runtime/reference/f32.py) for a float one."""
from __future__ import annotations

from typing import Callable

import numpy as np

from runtime.ir import Program, Step
from runtime.reference import f32 as F
from runtime.reference.binary import binary
from runtime.reference.layernorm import layernorm
from runtime.reference.matmul import matmul
from runtime.reference.pad import pad
from runtime.reference import kernels as K
from runtime.reference import recurrent as R


def initial_state(program: Program) -> dict[str, np.ndarray]:
    return {s.buffer: np.full(program.buffers[s.buffer].size, s.init, program.buffers[s.buffer].dtype)
            for s in program.states}


def _run_recurrent(step: Step, mem: dict[str, np.ndarray], mode: str) -> None:
    """gru / lstm: inputs [x, h(, c)], outputs [(y,) h(, c), scratch]; state in place."""
    fields = {k: v for k, v in step.params.items() if k not in ("has_y",)}
    arrays = {k: step.arrays[k] for k in ("wx", "wh", "bias", "shift", "table")}
    x, h = mem[step.inputs[0]], mem[step.inputs[1]]
    if step.op == "gru":  # the variant from the buffers' and arrays' dtypes
        y, h_next = R.gru(x, h, **fields, **arrays, mode=mode)
        new = [h_next]
    else:
        y, h_next, c_next = R.lstm(x, h, mem[step.inputs[2]], **fields, **arrays, mode=mode)
        new = [h_next, c_next]
    for name, value in zip(step.inputs[1:], new):
        mem[name][:] = np.asarray(value).reshape(-1)
    if step.params["has_y"]:
        mem[step.outputs[0]][:] = np.asarray(y).reshape(-1)


def _operands(step: Step, ins: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Operands a and b of a two-operand step: a constant array of that name, else the next
    input buffer (codegen/kernel_library.py operand_dtypes)."""
    buffers = iter(ins)
    return tuple(step.arrays[k] if k in step.arrays else next(buffers) for k in ("a", "b"))


_WEIGHTED = ("conv1d", "gemm", "conv2d", "conv_transpose1d")
_ONE_INPUT = ("avgpool1d", "maxpool1d", "reduce", "requant")


def _run_f32_step(step: Step, mem: dict[str, np.ndarray]) -> None:
    """One step of a float32 program with the float reference kernel of its family."""
    p, a, family = dict(step.params), step.arrays, step.op
    ins = [mem[n] for n in step.inputs]
    if family in ("gru", "lstm"):  # inputs [x, h(, c)], outputs [(y,) h(, c), scratch]
        has_y = p.pop("has_y")
        arrays = (a["wx"], a["wh"], a["bias"])
        if family == "gru":
            y, *new = F.gru(ins[0], ins[1], *arrays, **p)
        else:
            y, *new = F.lstm(ins[0], ins[1], ins[2], *arrays, **p)
        for name, value in zip(step.inputs[1:], new):
            mem[name][:] = value.reshape(-1)
        if has_y:
            mem[step.outputs[0]][:] = y.reshape(-1)
        return
    if family in _WEIGHTED:
        y = getattr(F, family)(ins[0], a["w"], a["bias"], **p)
    elif family == "add":
        y = F.add(ins[0], ins[1], **p)
    elif family == "unary":
        y = F.unary(ins[0], **dict(p, fn=F.UNARY_FUNCTIONS[p["fn"]]))
    elif family == "mask_frames":
        y = F.mask_frames(ins[0], ins[1], **p)
    elif family in ("binary", "matmul"):
        y = getattr(F, family)(*_operands(step, ins), **p)
    elif family == "layernorm":
        y = F.layernorm(ins[0], a["w"], a["bias"], **p)
    elif family in ("avgpool1d", "maxpool1d", "reduce", "softmax", "transpose", "pad"):
        y = getattr(F, family)(ins[0], **p)
    else:
        raise ValueError(f"no float32 reference kernel for step op {step.op!r}")
    mem[step.outputs[0]][:] = np.asarray(y, np.float32).reshape(-1)


def _run_step(step: Step, mem: dict[str, np.ndarray], mode: str) -> None:
    """One step on `mem` (flat arrays of the buffers' dtypes): the reference kernel of the
    step's family, with out_bits from the output buffer's dtype."""
    p, a, family = step.params, step.arrays, step.op
    ins = [mem[n] for n in step.inputs]
    out = step.outputs[0]
    if family == "fill":
        n, dst = p["count"], p["dst_offset"]
        mem[out][dst:dst + n] = np.asarray(a["values"]).reshape(-1)
        return
    if family != "copy" and mem[out].dtype == np.float32:
        _run_f32_step(step, mem)
        return
    if family in ("gru", "lstm"):
        _run_recurrent(step, mem, mode)
        return
    if family == "copy":  # `blocks` rows of `count` elements, strided; overlaps as memmove
        n, src, dst = p["count"], p["src_offset"], p["dst_offset"]
        for b in range(p.get("blocks", 1)):
            s, d = src + b * p.get("src_stride", 0), dst + b * p.get("dst_stride", 0)
            mem[out][d:d + n] = ins[0][s:s + n]
        return
    kw = dict(p, out_bits=mem[out].dtype.itemsize * 8)
    if family in _WEIGHTED:
        y = getattr(K, family)(ins[0], a["w"], a["bias"], a["shift"], mode=mode, **kw)
    elif family in _ONE_INPUT:
        y = getattr(K, family)(ins[0], mode=mode, **kw)
    elif family == "add":
        y = K.add(ins[0], ins[1], mode=mode, **kw)
    elif family == "pad":
        y = pad(ins[0], **kw)
    elif family == "layernorm":
        y = layernorm(ins[0], a["w"], a["bias"], a["shift"], mode=mode, **kw)
    elif family == "matmul":
        y = matmul(*_operands(step, ins), mode=mode, **kw)
    elif family == "binary":
        y = binary(*_operands(step, ins), mode=mode, **kw)
    elif family == "lut":
        y = K.lut(ins[0], a["table"], mode=mode, **kw)
    elif family == "transpose":
        y = K.transpose(ins[0], **kw)
    elif family == "softmax":
        y = K.softmax(ins[0], a["table"], mode=mode, **kw)
    elif family == "mask_frames":
        # the mask is a constant array or a buffer (e.g. state that fills with 1s as frames arrive)
        mask = a["mask"] if "mask" in a else ins[1]
        y = K.mask_frames(ins[0], mask, **kw)
    else:
        raise ValueError(f"no reference kernel for step op {step.op!r}")
    y = np.asarray(y).reshape(-1)
    if y.dtype != mem[out].dtype:
        raise TypeError(f"step {step.name or family}: {y.dtype} result for a {mem[out].dtype} "
                        "buffer")
    mem[out][:] = y


def allocate(program: Program) -> dict[str, np.ndarray]:
    """Zeroed arrays for the root buffers; every view is a numpy view into its root, so a step
    that writes a view writes its root, as in C."""
    mem = {name: np.zeros(b.size, b.dtype) for name, b in program.buffers.items()
           if b.view_of is None}
    for name, b in program.buffers.items():
        if b.view_of is not None:
            root, offset = program.root(name)
            if program.buffers[root].dtype != b.dtype:
                raise TypeError(f"view {name!r} is {b.dtype}, its root {root!r} "
                                f"{program.buffers[root].dtype}")
            mem[name] = mem[root][offset:offset + b.size]
            if mem[name].size != b.size:
                raise ValueError(f"view {name!r} ends past its root {root!r}")
    return mem


def allocate_in(program: Program, spaces: dict[str, np.ndarray],
                places: dict[str, tuple[str, int]]) -> dict[str, np.ndarray]:
    """Every placed buffer as a typed view of a byte array: `places[name]` = (space, byte
    offset). Runs a program on a memory plan's layout (shared and in-place bytes included)."""
    mem = {}
    for name, (space, offset) in places.items():
        b = program.buffers[name]
        mem[name] = spaces[space][offset:offset + b.nbytes].view(b.dtype)
    return mem


def run_program(program: Program, inputs: dict[str, np.ndarray], state: dict[str, np.ndarray],
                trace: Callable[[dict[str, np.ndarray]], None] | None = None,
                mem: dict[str, np.ndarray] | None = None
                ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """One call: flat inputs (physical order) and state in, outputs and next state out.

    `trace`, if given, sees every buffer after the call (for per-layer error reports). `mem`
    (default: `allocate(program)`) is where the buffers live, e.g. `allocate_in` a plan's layout.
    """
    mem = allocate(program) if mem is None else mem
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
    """Feed quantized input chunks call by call from the initial state; one output per call.

    The buffers are allocated once and live across calls, as the C arena does."""
    state = initial_state(program)
    mem = allocate(program)
    results = []
    for chunk in chunks:
        outs, state = run_program(program, {program.inputs[0]: chunk}, state, trace, mem)
        results.append(outs[program.outputs[0]])
    return results
