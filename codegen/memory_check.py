"""Prove a memory plan safe by replaying the schedule on it, byte by byte.

Two replays run side by side over *tags* (which step wrote a byte, and which byte of that
write), not values:

- the program's own semantics: every root buffer in its own memory, views inside their roots
  (what the Python reference executes);
- the plan: scratch roots at their arena offsets, in-place sharing, state and caller buffers.

Every byte a step reads, and every byte of the outputs and states after the call, must carry
the same tag in both: then the planned program computes exactly what the program says, for any
input. On the way, the program itself is checked: no step reads bytes nobody wrote (the input
and the states count as written), and no byte is written twice in a call except by a step that
updates its own operand (a recurrent state) or by a state update (`copy` into a state pair's
buffer), and no step reads a state's bytes after such an update (the new state is for the next
call). Within one step, an output may overlap an input in the plan only where the kernel
allows it: element-wise kernels over exactly the same bytes (`inplace_operands`), copies (the
emitter uses memmove for them), a buffer that is both operand and result.
"""
from __future__ import annotations

import numpy as np

from runtime.ir import Program, Step

GARBAGE = -1  # bytes nobody wrote in this call
_STEP_BITS, _WRITE_BITS = 40, 32


class UnsafePlan(AssertionError):
    """A plan (or program) that would let a step read clobbered or uninitialized bytes."""


def accesses(step: Step, program: Program) -> tuple[list[tuple[str, int, int]],
                                                     list[tuple[str, int, int]]]:
    """(buffer, first element, end element) runs a step reads and writes."""
    size = {n: program.buffers[n].size for n in step.inputs + step.outputs}
    if step.op == "copy":
        q = step.params
        n, blocks = q["count"], q.get("blocks", 1)
        reads = [(step.inputs[0], q["src_offset"] + b * q.get("src_stride", 0),
                  q["src_offset"] + b * q.get("src_stride", 0) + n) for b in range(blocks)]
        writes = [(step.outputs[0], q["dst_offset"] + b * q.get("dst_stride", 0),
                   q["dst_offset"] + b * q.get("dst_stride", 0) + n) for b in range(blocks)]
        return reads, writes
    if step.op == "fill":
        d = step.params["dst_offset"]
        return [], [(step.outputs[0], d, d + step.params["count"])]
    return ([(n, 0, size[n]) for n in step.inputs], [(n, 0, size[n]) for n in step.outputs])


class _Memory:
    """Tag arrays for a set of spaces and a map from buffers to (space, byte offset)."""

    def __init__(self, spaces: dict[str, int], locate):
        self.tags = {k: np.full(n, GARBAGE, np.int64) for k, n in spaces.items()}
        self.written = {k: np.zeros(n, bool) for k, n in spaces.items()}
        self.updated = {k: np.zeros(n, bool) for k, n in spaces.items()}  # new state bytes
        self.locate = locate

    def span(self, program: Program, name: str, lo: int, hi: int) -> tuple[str, int, int]:
        space, byte = self.locate(name)
        item = np.dtype(program.buffers[name].dtype).itemsize
        return space, byte + lo * item, byte + hi * item


def _writer(program: Program, tag: int) -> str:
    if tag == GARBAGE:
        return "nobody (uninitialized)"
    if tag < GARBAGE:
        return "the call's input or state"
    step = program.steps[tag >> _STEP_BITS]
    return f"step {tag >> _STEP_BITS} ({step.op} {step.name or ''} -> {step.outputs[0]})"


def check_memory(program: Program, plan) -> None:
    """Raise UnsafePlan naming the step and buffers if the plan is unsafe (see module doc)."""
    roots = {n: b for n, b in program.buffers.items() if b.view_of is None}
    ideal = _Memory({n: b.nbytes for n, b in roots.items()},
                    lambda n: (lambda r: (r[0], r[1] * np.dtype(program.buffers[n].dtype).itemsize))(
                        program.root(n)))
    spaces = {"arena": plan.arena_bytes}
    for name, (space, anchor, _) in plan.places.items():
        if space != "arena":
            spaces[anchor] = roots[anchor].nbytes
    planned = _Memory(spaces, lambda n: ("arena" if plan.places[n][0] == "arena"
                                         else plan.places[n][1], plan.places[n][2]))
    state_buffers = {s.buffer for s in program.states}
    for k, name in enumerate(sorted(set(program.inputs) | state_buffers)):
        if name not in plan.places:
            continue
        # the same "written before the call" tags in both replays
        size = program.buffers[name].size
        sp, a, b = ideal.span(program, name, 0, size)
        tags = -(2 + (k << _WRITE_BITS) + np.arange(b - a, dtype=np.int64))
        ideal.tags[sp][a:b] = tags
        ideal.written[sp][a:b] = True
        sp2, a2, b2 = planned.span(program, name, 0, size)
        planned.tags[sp2][a2:b2] = tags
    for i, step in enumerate(program.steps):
        reads, writes = accesses(step, program)
        for name, lo, hi in reads:
            want = ideal.span(program, name, lo, hi)
            if ideal.updated[want[0]][want[1]:want[2]].any():
                raise UnsafePlan(f"step {i} ({step.op} {step.name}) reads '{name}' after the "
                                 "state update that overwrote it in this call")
            _check_read(program, i, name, want, planned.span(program, name, lo, hi), ideal,
                        planned)
        _check_overlaps(program, i, step, reads, writes, planned)
        for k, (name, lo, hi) in enumerate(writes):
            sp, a, b = ideal.span(program, name, lo, hi)
            again = ideal.written[sp][a:b].any()
            if again and name not in step.inputs and name not in state_buffers:
                raise UnsafePlan(f"step {i} ({step.op} {step.name}) writes '{name}' bytes "
                                   "already written in this call")
            tags = (i << _STEP_BITS) + (k << _WRITE_BITS) + np.arange(b - a, dtype=np.int64)
            ideal.tags[sp][a:b] = tags
            ideal.written[sp][a:b] = True
            if step.op == "copy" and name in state_buffers:
                ideal.updated[sp][a:b] = True
            sp2, a2, b2 = planned.span(program, name, lo, hi)
            planned.tags[sp2][a2:b2] = tags
    for name in list(program.outputs) + sorted(state_buffers):
        if name not in plan.places:
            continue
        size = program.buffers[name].size
        _check_read(program, len(program.steps), name, ideal.span(program, name, 0, size),
                    planned.span(program, name, 0, size), ideal, planned)


def _check_read(program, i, name, want, got, ideal: _Memory, planned: _Memory) -> None:
    where = f"step {i} ({program.steps[i].op} {program.steps[i].name})" \
        if i < len(program.steps) else "the end of the call"
    expected = ideal.tags[want[0]][want[1]:want[2]]
    if (expected == GARBAGE).any():
        raise UnsafePlan(f"{where} reads '{name}' bytes that no step wrote before")
    found = planned.tags[got[0]][got[1]:got[2]]
    bad = np.flatnonzero(found != expected)
    if bad.size:
        raise UnsafePlan(
            f"{where} reads '{name}', but byte {int(bad[0])} of it was overwritten by "
            f"{_writer(program, int(found[bad[0]]))} (plan: {got[0]} +{got[1]})")


def _check_overlaps(program: Program, i: int, step: Step, reads, writes, planned: _Memory) -> None:
    """An output overlapping an input of the same step must be a pattern the kernel allows."""
    from codegen.memory import inplace_operands
    if step.op == "copy":
        return  # memmove
    allowed = {step.inputs[k] for k in inplace_operands(step) if k < len(step.inputs)}
    for w in writes:
        ws = planned.span(program, *w)
        for r in reads:
            rs = planned.span(program, *r)
            if rs[0] != ws[0] or rs[1] >= ws[2] or ws[1] >= rs[2] or w[0] == r[0]:
                continue
            same_elements = np.dtype(program.buffers[r[0]].dtype).itemsize == \
                np.dtype(program.buffers[w[0]].dtype).itemsize
            if r[0] in allowed and rs == ws and same_elements:
                continue
            raise UnsafePlan(f"step {i} ({step.op} {step.name}) writes '{w[0]}' over its "
                               f"input '{r[0]}', which its kernel does not allow")
