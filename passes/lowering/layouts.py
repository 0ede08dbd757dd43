"""Views or copies: the layout of one stream's bytes that needs the least RAM.

The lowering makes a view wherever one is possible (passes/lowering/movement.py): no copy. But a
view ties two buffers into one block of bytes, live as long as either is: a Concat slot written
by a producer long before the Concat reserves the whole Concat buffer from then on; a slice
keeps the whole sliced buffer alive for as long as the slice is read (e.g. a conv output kept
for a residual Add many layers later, inside the window of the next conv). A copy at the right
moment would free bytes instead. `choose_layouts` turns such views back into the copy they
replaced whenever that lowers the RAM of one stream (`<name>_t` plus the arena's lower bound after
in-place sharing; the arena plan meets that bound on every model measured), then the bytes
copied per call; it decides view by view, largest first, twice over.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from runtime.ir import Program, Step

PASSES = 2


@dataclass(frozen=True)
class ViewChoice:
    """A view the lowering made, and where the copy it replaced would run."""

    view: str
    base: str
    offset: int  # elements into `base`
    into: bool  # the view's producer writes into `base` (else the view reads `base`)
    position: int  # index in the schedule of the step the copy would precede


def cost(program: Program) -> tuple[int, int]:
    """Bytes one stream needs (`<name>_t` plus the arena's lower bound), then bytes copied."""
    from codegen.memory import arena_lower_bound, copy_stats
    return program.instance_bytes + arena_lower_bound(program), copy_stats(program)[1]


def as_copy(program: Program, choice: ViewChoice, before: Step | None) -> Program:
    """A copy of the program where `choice.view` is a buffer of its own and the copy it
    replaced runs right before `before` (at the end when None)."""
    p = replace(program, buffers={n: replace(b) for n, b in program.buffers.items()},
                steps=list(program.steps))
    v = p.buffers[choice.view]
    v.role, v.view_of, v.offset = "scratch", None, 0
    if choice.into:
        copy = Step("copy", [choice.view], [choice.base],
                    dict(src_offset=0, dst_offset=choice.offset, count=v.size))
    else:
        copy = Step("copy", [choice.base], [choice.view],
                    dict(src_offset=choice.offset, dst_offset=0, count=v.size))
    index = next((i for i, s in enumerate(p.steps) if s is before), len(p.steps))
    p.steps.insert(index, replace(copy, name=f"{choice.view}/copy"))
    return p


def choose_layouts(program: Program, views: list[ViewChoice]) -> Program:
    """Keep every view but those whose copy needs less RAM (see the module doc)."""
    steps = program.steps
    anchored = [(v, steps[v.position] if v.position < len(steps) else None) for v in views]
    anchored.sort(key=lambda a: (-program.buffers[a[0].view].nbytes, a[0].view))
    best, best_cost = program, cost(program)
    copied: set[str] = set()
    for _ in range(PASSES):
        for choice, before in anchored:
            if choice.view in copied:
                continue
            candidate = as_copy(best, choice, before)
            c = cost(candidate)
            if c < best_cost:
                best, best_cost = candidate, c
                copied.add(choice.view)
    return best
