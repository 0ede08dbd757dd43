"""Views or copies, windows in `<name>_t` or in the arena: the layout that needs the least RAM.

The lowering makes a view wherever one is possible (passes/lowering/movement.py): no copy. But a
view ties two buffers into one block of bytes, live as long as either is: a Concat slot written
by a producer long before the Concat reserves the whole Concat buffer from then on; a slice
keeps the whole sliced buffer alive for as long as the slice is read (e.g. a conv output kept
for a residual Add many layers later, inside the window of the next conv). A copy at the right
moment frees bytes instead.

Streaming windows are laid out in `<name>_t` (`Lowering.window`): the kept frames, then the
call's new frames, which their producer writes in place; the state update is one memmove after
the last reader, and no other copy. But the new frames' bytes then sit in `<name>_t` for good,
where the arena would share them with other layers; with large chunks and many layers that can
cost more than it saves. A window may instead live in the arena: the kept frames are copied in
front of the new ones (which their producer still writes in place) and the new state copied
back out right after the window is complete.

`choose_layouts` searches these choices (each view: kept or a copy; each window: instance or
arena) for the least RAM of one stream (`<name>_t` plus the arena's lower bound after in-place
sharing, which the arena plan meets on every model measured), then the fewest bytes copied:
greedy flips, largest buffers first, from all views in the instance and from all windows in the
arena, each flip kept only when it lowers that cost.
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


def _copy(program: Program) -> Program:
    return replace(program, buffers={n: replace(b) for n, b in program.buffers.items()},
                   steps=list(program.steps))


def _updates_start(program: Program) -> int:
    """Where the state updates at the end of the schedule begin."""
    states = {s.buffer for s in program.states}
    i = len(program.steps)
    while i and program.steps[i - 1].op == "copy" and program.steps[i - 1].outputs[0] in states:
        i -= 1
    return i


def as_copy(program: Program, choice: ViewChoice, before: Step | None) -> Program:
    """A copy of the program where `choice.view` is a buffer of its own and the copy it
    replaced runs right before `before` (None: before the state updates that end the call)."""
    p = _copy(program)
    v = p.buffers[choice.view]
    v.role, v.view_of, v.offset = "scratch", None, 0
    if choice.into:
        copy = Step("copy", [choice.view], [choice.base],
                    dict(src_offset=0, dst_offset=choice.offset, count=v.size))
    else:
        copy = Step("copy", [choice.base], [choice.view],
                    dict(src_offset=choice.offset, dst_offset=0, count=v.size))
    index = next((i for i, s in enumerate(p.steps) if s is before), None)
    p.steps.insert(_updates_start(p) if index is None else index,
                   replace(copy, name=f"{choice.view}/copy"))
    return p


def windows(program: Program) -> dict[str, tuple[str, Step]]:
    """Each window in `<name>_t`: its state pair's buffer and the copy that updates it."""
    states = {s.buffer for s in program.states}
    out = {}
    for step in program.steps:
        if step.op == "copy" and step.outputs[0] in states:
            src, dst = step.inputs[0], step.outputs[0]
            if program.buffers[dst].view_of == src and program.buffers[src].role == "state":
                out[src] = (dst, step)
    return out


def to_arena(program: Program, window: str) -> Program:
    """A copy of the program with `window` in the arena and its state a root of its own: the
    kept frames copied in before the window's first step, the update right after its last
    write (the new state is only read by the next call)."""
    p = _copy(program)
    state, update = windows(p)[window]
    w, s = p.buffers[window], p.buffers[state]
    w.role = "scratch"
    s.role, s.view_of, s.offset = "state", None, 0
    steps = [st for st in p.steps if st is not update]
    touches = [i for i, st in enumerate(steps)
               if any(p.root(n)[0] == window for n in st.inputs + st.outputs)]
    writes = [i for i, st in enumerate(steps) if any(p.root(n)[0] == window for n in st.outputs)]
    steps.insert(max(writes) + 1 if writes else touches[0], update)
    steps.insert(touches[0], Step("copy", [state], [window],
                                  dict(src_offset=0, dst_offset=0, count=s.size),
                                  name=f"{update.name}/kept_frames"))
    p.steps = steps
    return p


def choose_layouts(program: Program, views: list[ViewChoice], end: int | None = None
                   ) -> Program:
    """The layout of least `cost` (see the module doc). View copies anchored at or after `end`
    (the end of the lowered nodes) go before the state updates that end the call."""
    end = len(program.steps) if end is None else end
    before = {v.view: program.steps[v.position] if v.position < end else None for v in views}
    by_view = {v.view: v for v in views}
    found = windows(program)
    tails = {w: program.buffers[w].nbytes - program.buffers[s].nbytes
             for w, (s, _) in found.items()}
    flips = sorted(tails, key=lambda w: (-tails[w], w)) + \
        sorted(by_view, key=lambda v: (-program.buffers[v].nbytes, v))
    memo: dict[frozenset, tuple[tuple[int, int], Program]] = {}

    def evaluate(flipped: frozenset) -> tuple[tuple[int, int], Program]:
        if flipped not in memo:
            p = program
            for name in flips:
                if name in flipped and name in found:
                    p = to_arena(p, name)
            for name in flips:
                if name in flipped and name in by_view:
                    p = as_copy(p, by_view[name], before[name])
            memo[flipped] = (cost(p), p)
        return memo[flipped]

    def search(current: frozenset) -> frozenset:
        for _ in range(PASSES):
            moved = False
            for name in flips:
                candidate = current ^ {name}
                if evaluate(candidate)[0] < evaluate(current)[0]:
                    current, moved = candidate, True
            if not moved:
                break
        return current

    starts = [frozenset()] + ([frozenset(found)] if found else [])
    return min((evaluate(search(s)) for s in starts), key=lambda r: r[0])[1]
