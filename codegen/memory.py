"""Where every scratch tensor lives: lifetimes over the schedule, then the arena plan."""
from __future__ import annotations

from codegen.memory_plan import ArenaPlan, BufferLife, plan_arena
from runtime.ir import Program

ALIGN = 16


def scratch_lifetimes(program: Program) -> list[BufferLife]:
    first: dict[str, int] = {}
    last: dict[str, int] = {}
    for i, step in enumerate(program.steps):
        for name in step.outputs + step.inputs:
            if program.buffers[name].role != "scratch":
                continue
            first.setdefault(name, i)
            last[name] = i
    return [BufferLife(n, program.buffers[n].nbytes, first[n], last[n]) for n in first]


def copy_stats(program: Program) -> tuple[int, int]:
    """Copy and fill steps of one call and the bytes they move (the cost views avoid)."""
    count = moved = 0
    for step in program.steps:
        if step.op in ("copy", "fill"):
            count += 1
            size = program.buffers[step.outputs[0]].nbytes // program.buffers[step.outputs[0]].size
            moved += step.params["count"] * step.params.get("blocks", 1) * size
    return count, moved


def plan_memory(program: Program) -> ArenaPlan:
    return plan_arena(scratch_lifetimes(program), align=ALIGN)
