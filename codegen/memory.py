"""Where every buffer lives: the roots' lifetimes over the schedule, in-place sharing, the arena.

A root buffer and its views (runtime/ir.py) occupy one block of bytes: an *item*. Items are the
unit of placement. The scratch ones go to the arena (codegen/memory_plan.py packs them by their
lifetime); the others are fixed: the input and output the caller passes, the state buffers in
`<name>_t`.

In place: an element-wise step (a table, a requantization, a frame mask, an Add, an arithmetic
op over an operand it does not broadcast) may write its
output over an input whose bytes nobody reads afterwards. The input's item then moves inside the
output's item (into the arena block of the output, or into a fixed buffer: a conv writing into
the output or a window's new frames, its activation in place there), which removes one of the
two buffers from the arena at that step. A merge is kept only when no two byte ranges of the
merged items are needed at overlapping times (`_compatible`) and, between arena items, when it
does not raise the lower bound. `codegen/memory_check.py` then replays the schedule on the plan
and proves that no byte a step reads was overwritten.

The plan also answers, for the C emitter, where each buffer starts (`MemoryPlan.places`).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from codegen.memory_plan import ArenaPlan, BufferLife, lower_bound, plan_arena
from runtime.ir import Program, Step

ALIGN = 16
END = 1 << 30  # "after the call": outputs and states must survive it
# element-wise kernels that may write their output over these operands (same element size:
# element i is read before element i is written, and nothing else is read there)
INPLACE_OPERANDS: dict[str, tuple[int, ...]] = {
    "lut": (0,), "unary": (0,), "requant": (0,), "mask_frames": (0,), "add": (0, 1)}


def inplace_operands(step: Step) -> tuple[int, ...]:
    """The inputs (indices into `step.inputs`) its kernel may overwrite with its output. A
    `binary` step (broadcasting, runtime/c/binary.c) only over an operand it reads element for
    element in output order: not broadcast, strides those of the contiguous output."""
    if step.op != "binary":
        return INPLACE_OPERANDS.get(step.op, ())
    shape = list(step.params["shape"])
    dense = [int(np.prod(shape[k + 1:], dtype=np.int64)) for k in range(len(shape))]
    runtime = [k for k in "ab" if k not in step.arrays]  # constants are not step inputs
    return tuple(i for i, k in enumerate(runtime)
                 if all(n == 1 or st == d for n, st, d in
                        zip(shape, step.params[f"{k}_stride"], dense)))


@dataclass(frozen=True)
class Block:
    """Bytes [lo, hi) of an item needed from step `first` to step `last` (inclusive)."""

    lo: int
    hi: int
    first: int
    last: int

    def shifted(self, by: int) -> "Block":
        return Block(self.lo + by, self.hi + by, self.first, self.last)


@dataclass
class Item:
    """Root buffers sharing one block of bytes, each at a byte offset inside it."""

    anchor: str  # the root the item is named after (for fixed items: the C object)
    space: str  # "arena" | "input" | "output" | "state"
    size: int  # bytes
    roots: dict[str, int] = field(default_factory=dict)
    blocks: list[Block] = field(default_factory=list)

    @property
    def first(self) -> int:
        return min(b.first for b in self.blocks)

    @property
    def last(self) -> int:
        return max(b.last for b in self.blocks)


@dataclass
class MemoryPlan:
    """The arena plan over the scratch items, and where every used buffer lives."""

    arena: ArenaPlan
    places: dict[str, tuple[str, str, int]]  # buffer -> (space, anchor, byte offset)
    inplace: list[tuple[int, str, str]]  # (step, input, output) sharing bytes
    items: list[BufferLife]  # what the arena plan packed: the scratch items' bytes and lives

    @property
    def arena_bytes(self) -> int:
        return self.arena.arena_bytes

    @property
    def lower_bound_bytes(self) -> int:
        return self.arena.lower_bound_bytes

    @property
    def strategy(self) -> str:
        return self.arena.strategy


def _round_up(n: int, align: int = ALIGN) -> int:
    return -(-n // align) * align


def _itemsize(program: Program, name: str) -> int:
    return np.dtype(program.buffers[name].dtype).itemsize


def _intervals(program: Program) -> dict[str, tuple[int, int]]:
    """First and last step using each buffer; the input is live on entry, outputs and states
    (the pairs' buffers) live across the whole call and after it."""
    used: dict[str, list[int]] = {}
    for i, step in enumerate(program.steps):
        for name in step.inputs + step.outputs:
            used.setdefault(name, []).append(i)
    out = {n: (min(s), max(s)) for n, s in used.items()}
    for name in program.inputs:
        out[name] = (-1, out.get(name, (-1, -1))[1])
    for name in program.outputs:
        out[name] = (out.get(name, (END, END))[0], END)
    for s in program.states:
        out[s.buffer] = (-1, END)
    return out


def _touches(program: Program) -> dict[str, list[tuple[int, int, int]]]:
    """Per root: the byte runs (lo, hi, step) each step reads or writes, plus the input's
    bytes at step -1 and the outputs' and states' bytes before and after the call."""
    from codegen.memory_check import accesses
    out: dict[str, list[tuple[int, int, int]]] = {}

    def touch(name: str, lo: int, hi: int, step: int) -> None:
        root, offset = program.root(name)
        size = _itemsize(program, name)
        out.setdefault(root, []).append(((offset + lo) * size, (offset + hi) * size, step))

    for i, step in enumerate(program.steps):
        reads, writes = accesses(step, program)
        for name, lo, hi in reads + writes:
            touch(name, lo, hi, i)
    for name in program.inputs:
        touch(name, 0, program.buffers[name].size, -1)
    for name in list(program.outputs) + [s.buffer for s in program.states]:
        touch(name, 0, program.buffers[name].size, END)
    for s in program.states:
        touch(s.buffer, 0, program.buffers[s.buffer].size, -1)
    return out


def _blocks(touches: list[tuple[int, int, int]]) -> list[Block]:
    """Byte segments of a root, each needed over the hull of the steps touching it (a slot
    written by its producer and read through the whole Concat is needed in between)."""
    cuts = sorted({t[0] for t in touches} | {t[1] for t in touches})
    out = []
    for lo, hi in zip(cuts, cuts[1:]):
        steps = [s for a, b, s in touches if a < hi and lo < b]
        if steps:
            out.append(Block(lo, hi, min(steps), max(steps)))
    return out


def items_of(program: Program) -> dict[str, Item]:
    """One item per used root: its bytes, and blocks from the steps touching them."""
    items = {}
    for root, touches in _touches(program).items():
        role = program.buffers[root].role
        space = role if role in ("input", "output", "state") else "arena"
        items[root] = Item(root, space, program.buffers[root].nbytes, {root: 0}, _blocks(touches))
    return items


def _compatible(a: list[Block], b: list[Block], step: int, lo: int, hi: int) -> bool:
    """Whether blocks `a` and `b` (one byte coordinate system) never need a byte at the same
    step; they may touch at `step` inside [lo, hi), where the in-place step reads `a` and
    writes `b` element by element."""
    for x in a:
        for y in b:
            if x.lo >= y.hi or y.lo >= x.hi:
                continue
            if x.last < y.first or y.last < x.first:
                continue
            inside = lo <= max(x.lo, y.lo) and min(x.hi, y.hi) <= hi
            if not (inside and x.last == step == y.first):
                return False
    return True


class InPlace:
    """Merges the items of dead inputs into their step's output item, where safe."""

    def __init__(self, program: Program):
        self.p = program
        self.items = items_of(program)
        self.item_of = {root: root for root in self.items}
        self.merges: list[tuple[int, str, str]] = []

    def where(self, name: str) -> tuple[Item, int]:
        """The item holding buffer `name` and the byte where it starts inside it."""
        root, offset = self.p.root(name)
        item = self.items[self.item_of[root]]
        return item, item.roots[root] + offset * _itemsize(self.p, name)

    def run(self) -> None:
        for i, step in enumerate(self.p.steps):
            for k in inplace_operands(step):
                if k < len(step.inputs) and self.try_merge(i, step.inputs[k], step.outputs[0]):
                    break

    def try_merge(self, i: int, x: str, y: str) -> bool:
        p, step = self.p, self.p.steps[i]
        bx, by = p.buffers[x], p.buffers[y]
        if x == y or (bx.nbytes, _itemsize(p, x)) != (by.nbytes, _itemsize(p, y)):
            return False
        (src, px), (dst, py) = self.where(x), self.where(y)
        if src is dst or src.space != "arena" or dst.space == "input":
            return False
        used = step.inputs + step.outputs
        if any(self.where(n)[0] is src and n != x for n in used) or \
                any(self.where(n)[0] is dst and n != y for n in used) or src.last > i:
            return False
        shift = py - px
        moved = [b.shifted(shift) for b in src.blocks]
        if not _compatible(moved, dst.blocks, i, py, py + by.nbytes):
            return False
        lo = min(0, shift)
        if dst.space != "arena" and (lo < 0 or shift + src.size > dst.size):
            return False
        if dst.space == "arena" and not self.keeps_bound(src, dst, shift):
            return False
        self.absorb(src, dst, shift)
        self.merges.append((i, x, y))
        return True

    def keeps_bound(self, src: Item, dst: Item, shift: int) -> bool:
        """Whether merging two arena items keeps the lower bound (a wider merged block could
        cost more at steps where only one of them was live)."""
        before = lower_bound(self.lives(), ALIGN)
        size = max(dst.size, shift + src.size) - min(0, shift)
        merged = BufferLife(dst.anchor, size, min(src.first, dst.first), max(src.last, dst.last))
        rest = [b for b in self.lives() if b.name not in (src.anchor, dst.anchor)]
        return lower_bound(rest + [merged], ALIGN) <= before

    def absorb(self, src: Item, dst: Item, shift: int) -> None:
        lo = min(0, shift)  # an arena item may grow to the left: re-base it at 0
        for root in dst.roots:
            dst.roots[root] -= lo
        dst.blocks = [b.shifted(-lo) for b in dst.blocks]
        for root, off in src.roots.items():
            dst.roots[root] = off + shift - lo
            self.item_of[root] = dst.anchor
        dst.blocks += [b.shifted(shift - lo) for b in src.blocks]
        dst.size = max(dst.size - lo, shift - lo + src.size)
        del self.items[src.anchor]

    def lives(self) -> list[BufferLife]:
        return [BufferLife(it.anchor, it.size, it.first, it.last)
                for it in self.items.values() if it.space == "arena"]


def arena_lower_bound(program: Program) -> int:
    """The arena's lower bound after in-place sharing (what a plan would reach at best)."""
    merged = InPlace(program)
    merged.run()
    return lower_bound(merged.lives(), ALIGN)


def plan_memory(program: Program) -> MemoryPlan:
    """In-place merges, then the arena over the scratch items, then every buffer's place;
    checked by replaying the schedule (codegen/memory_check.py)."""
    from codegen.memory_check import check_memory
    merged = InPlace(program)
    merged.run()
    items = merged.lives()
    arena = plan_arena(items, align=ALIGN)
    places = {}
    for name in _intervals(program):
        item, byte = merged.where(name)
        if item.space == "arena":
            places[name] = ("arena", "", arena.offsets[item.anchor] + byte)
        else:
            places[name] = (item.space, item.anchor, byte)
    plan = MemoryPlan(arena, places, merged.merges, items)
    check_memory(program, plan)
    return plan


def scratch_lifetimes(program: Program) -> list[BufferLife]:
    """The arena items before in-place sharing (one per scratch root and its views)."""
    return [BufferLife(it.anchor, it.size, it.first, it.last)
            for it in items_of(program).values() if it.space == "arena"]


def copy_stats(program: Program) -> tuple[int, int]:
    """Copy and fill steps of one call and the bytes they move (the cost views avoid)."""
    count = moved = 0
    for step in program.steps:
        if step.op in ("copy", "fill"):
            count += 1
            moved += step.params["count"] * step.params.get("blocks", 1) * \
                _itemsize(program, step.outputs[0])
    return count, moved
