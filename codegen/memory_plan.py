"""Offset-based static memory planner for the scratch arena of a straight-line schedule.

Every intermediate tensor gets a fixed byte offset inside one arena, so the
generated C needs no allocator: two buffers may share bytes only when their live
intervals ``[first, last]`` (schedule step indices, inclusive) are disjoint.

Finding the smallest arena is NP-hard (dynamic storage allocation), so we run
several cheap greedy placements plus a bounded local search and keep the
smallest result.  Everything is deterministic: the same input list always
yields the same plan, so generated code is reproducible.
"""

from __future__ import annotations

import bisect
import heapq
import random
from dataclasses import dataclass
from typing import Callable, Sequence

__all__ = ["BufferLife", "ArenaPlan", "plan_arena", "lower_bound", "check_plan"]

# Local-search budget, in "neighbour visits" (the unit of work of one greedy
# placement).  Counted rather than timed so the result never depends on machine
# speed; sized so that 500 buffers plan in well under a second.
_SEARCH_WORK_BUDGET = 400_000
_SEARCH_MAX_ITERS = 2_000
_SEED = 0x5EED


@dataclass(frozen=True)
class BufferLife:
    """One arena buffer and the schedule steps during which its bytes must survive."""

    name: str
    size: int  # bytes (>0)
    first: int  # step that first writes it, or -1 when live on entry
    last: int  # step that last reads it (inclusive); last >= first


@dataclass
class ArenaPlan:
    """Result of planning: an offset per buffer plus how good the packing is."""

    offsets: dict[str, int]  # byte offset of each buffer, multiple of `align`
    arena_bytes: int  # total size, multiple of `align`
    lower_bound_bytes: int  # max over steps of the live align-rounded bytes
    strategy: str  # name of the strategy that produced the kept plan


def _round_up(n: int, align: int) -> int:
    return -(-n // align) * align


def _validate(buffers: Sequence[BufferLife], align: int) -> None:
    """Reject malformed input early: a bad interval would silently yield an unsafe plan."""
    if not isinstance(align, int) or align <= 0:
        raise ValueError(f"align must be a positive int, got {align!r}")
    seen: set[str] = set()
    for b in buffers:
        if b.name in seen:
            raise ValueError(f"duplicate buffer name {b.name!r}")
        seen.add(b.name)
        if b.size <= 0:
            raise ValueError(f"buffer {b.name!r} has non-positive size {b.size}")
        if b.first < -1 or b.last < b.first:
            raise ValueError(f"buffer {b.name!r} has bad interval [{b.first}, {b.last}]")


def lower_bound(buffers: Sequence[BufferLife], align: int = 16) -> int:
    """Max over steps of the live align-rounded bytes.

    All buffers live at one step must be disjoint, so no plan can beat this;
    it is the yardstick for judging the heuristics.
    """
    delta: dict[int, int] = {}
    for b in buffers:
        s = _round_up(b.size, align)
        delta[b.first] = delta.get(b.first, 0) + s
        delta[b.last + 1] = delta.get(b.last + 1, 0) - s
    best = live = 0
    for step in sorted(delta):
        live += delta[step]
        best = max(best, live)
    return best


def _conflicts(buffers: Sequence[BufferLife]) -> list[list[int]]:
    """Adjacency lists of the interval-overlap graph, by sweep (O(n log n + E))."""
    order = sorted(range(len(buffers)), key=lambda i: (buffers[i].first, i))
    adj: list[list[int]] = [[] for _ in buffers]
    active: list[tuple[int, int]] = []  # heap of (last, idx)
    alive: set[int] = set()
    for i in order:
        start = buffers[i].first
        while active and active[0][0] < start:
            alive.discard(heapq.heappop(active)[1])
        for j in alive:
            adj[i].append(j)
            adj[j].append(i)
        alive.add(i)
        heapq.heappush(active, (buffers[i].last, i))
    for nbrs in adj:
        nbrs.sort()
    return adj


def _breadth(buffers: Sequence[BufferLife], sizes: list[int]) -> list[int]:
    """Peak live bytes over each buffer's lifetime: buffers at the peak are the hard ones."""
    points = sorted({b.first for b in buffers} | {b.last + 1 for b in buffers})
    delta = [0] * len(points)
    for b, s in zip(buffers, sizes):
        delta[bisect.bisect_left(points, b.first)] += s
        delta[bisect.bisect_left(points, b.last + 1)] -= s
    live, acc = [], 0
    for d in delta:
        acc += d
        live.append(acc)
    out = []
    for b in buffers:
        lo = bisect.bisect_left(points, b.first)
        hi = bisect.bisect_left(points, b.last + 1)  # exclusive
        out.append(max(live[lo:hi]))
    return out


class _Placer:
    """Greedy placement of buffers in a given order, optionally resuming from a prefix.

    Resuming matters for the local search: a perturbation that leaves the first
    k buffers of the order untouched leaves their offsets untouched too.
    """

    def __init__(self, sizes: list[int], adj: list[list[int]]):
        self.sizes = sizes
        self.adj = adj
        self.work = 0

    def place(
        self,
        order: list[int],
        fit: str,
        start: int = 0,
        base: list[int] | None = None,
    ) -> tuple[list[int], int]:
        n = len(order)
        sizes, adj = self.sizes, self.adj
        pos = [0] * n
        for k, i in enumerate(order):
            pos[i] = k
        offs = list(base) if base is not None else [-1] * n
        best_fit = fit == "best"
        work = 0
        for k in range(start, n):
            i = order[k]
            s = sizes[i]
            nbrs = adj[i]
            work += 1 + len(nbrs)
            taken = sorted((offs[j], offs[j] + sizes[j]) for j in nbrs if pos[j] < k)
            cur = 0
            chosen = -1
            chosen_gap = -1
            for lo, hi in taken:
                gap = lo - cur
                if gap >= s:
                    if not best_fit:
                        chosen = cur
                        break
                    if chosen < 0 or gap < chosen_gap:
                        chosen, chosen_gap = cur, gap
                if hi > cur:
                    cur = hi
            offs[i] = chosen if chosen >= 0 else cur
        self.work += work
        arena = max((o + s for o, s in zip(offs, sizes)), default=0)
        return offs, arena


def _orderings(
    buffers: Sequence[BufferLife], sizes: list[int], adj: list[list[int]]
) -> dict[str, list[int]]:
    """Candidate placement orders; each captures a different notion of 'hard to place'."""
    idx = range(len(buffers))
    name = [b.name for b in buffers]
    length = [b.last - b.first + 1 for b in buffers]
    breadth = _breadth(buffers, sizes)
    keys: dict[str, Callable[[int], tuple]] = {
        "size": lambda i: (-sizes[i], -length[i], buffers[i].first, name[i]),
        "breadth": lambda i: (-breadth[i], -sizes[i], -length[i], name[i]),
        "area": lambda i: (-sizes[i] * length[i], -sizes[i], name[i]),
        "first_use": lambda i: (buffers[i].first, -sizes[i], name[i]),
        "lifetime": lambda i: (-length[i], -sizes[i], name[i]),
        "conflict_degree": lambda i: (-len(adj[i]), -sizes[i], name[i]),
        "breadth_area": lambda i: (-breadth[i], -sizes[i] * length[i], name[i]),
    }
    return {k: sorted(idx, key=f) for k, f in keys.items()}


def plan_arena(buffers: list[BufferLife], align: int = 16) -> ArenaPlan:
    """Assign every buffer an aligned offset so that simultaneously-live buffers are disjoint.

    Tries several greedy orders with best- and first-fit gap search, then a
    bounded, seeded local search over orders; keeps the smallest arena (first
    found wins ties, so the result is deterministic).
    """
    _validate(buffers, align)
    lb = lower_bound(buffers, align)
    if not buffers:
        return ArenaPlan({}, 0, lb, "empty")

    sizes = [_round_up(b.size, align) for b in buffers]
    adj = _conflicts(buffers)
    placer = _Placer(sizes, adj)

    best: tuple[int, str, list[int], list[int], str] | None = None  # arena, name, offs, order, fit
    for oname, order in _orderings(buffers, sizes, adj).items():
        for fit in ("best", "first"):
            offs, arena = placer.place(order, fit)
            if best is None or arena < best[0]:
                best = (arena, f"greedy_{oname}_{fit}fit", offs, order, fit)
            if arena == lb:
                break
        if best[0] == lb:
            break

    assert best is not None
    arena, strategy, offs, order, fit = best
    if arena > lb and len(buffers) > 1:
        arena, offs, improved = _local_search(placer, order, offs, arena, fit, lb)
        if improved:
            strategy = f"local_search_{fit}fit"

    plan = ArenaPlan(
        offsets={b.name: offs[i] for i, b in enumerate(buffers)},
        arena_bytes=arena,
        lower_bound_bytes=lb,
        strategy=strategy,
    )
    return plan


def _local_search(
    placer: _Placer, order: list[int], offs: list[int], arena: int, fit: str, lb: int
) -> tuple[int, list[int], bool]:
    """Perturb the best order (move a peak-defining buffer earlier, or swap two) and re-place.

    Equal-cost moves are accepted so the search can drift across plateaus;
    the work budget bounds runtime and the fixed seed keeps it reproducible.
    """
    n = len(order)
    rng = random.Random(_SEED + n)
    sizes = placer.sizes
    start_arena = arena
    budget_end = placer.work + _SEARCH_WORK_BUDGET
    for _ in range(_SEARCH_MAX_ITERS):
        if placer.work >= budget_end or arena <= lb:
            break
        cand = order[:]
        if rng.random() < 0.7:
            # Buffers touching the top of the arena define its size: pull one earlier.
            tops = [i for i in order if offs[i] + sizes[i] == arena]
            victim = tops[rng.randrange(len(tops))]
            k = cand.index(victim)
            if k == 0:
                continue
            dest = rng.randrange(k)
            cand.pop(k)
            cand.insert(dest, victim)
            start = dest
        else:
            a, b = rng.randrange(n), rng.randrange(n)
            if a == b:
                continue
            cand[a], cand[b] = cand[b], cand[a]
            start = min(a, b)
        # Offsets of cand[:start] are unchanged; keep them, clear the rest.
        base = offs[:]
        for i in cand[start:]:
            base[i] = -1
        new_offs, new_arena = placer.place(cand, fit, start, base)
        if new_arena <= arena:
            order, offs, arena = cand, new_offs, new_arena
    return arena, offs, arena < start_arena


def check_plan(buffers: Sequence[BufferLife], plan: ArenaPlan, align: int = 16) -> None:
    """Independently verify a plan; raise AssertionError naming the offending buffer(s).

    Uses explicit raises (not ``assert``) so it still guards under ``python -O``.
    """
    if plan.arena_bytes % align:
        raise AssertionError(f"arena_bytes {plan.arena_bytes} not a multiple of {align}")
    names = {b.name for b in buffers}
    extra = set(plan.offsets) - names
    if extra:
        raise AssertionError(f"plan has offsets for unknown buffers {sorted(extra)}")
    for b in buffers:
        if b.name not in plan.offsets:
            raise AssertionError(f"buffer {b.name!r} has no offset")
        off = plan.offsets[b.name]
        if off < 0 or off % align:
            raise AssertionError(f"buffer {b.name!r} offset {off} misaligned (align {align})")
        if off + b.size > plan.arena_bytes:
            raise AssertionError(
                f"buffer {b.name!r} [{off}, {off + b.size}) ends past arena {plan.arena_bytes}"
            )
    adj = _conflicts(buffers)
    for i, nbrs in enumerate(adj):
        a = buffers[i]
        ao = plan.offsets[a.name]
        for j in nbrs:
            if j <= i:
                continue
            b = buffers[j]
            bo = plan.offsets[b.name]
            if ao < bo + b.size and bo < ao + a.size:
                raise AssertionError(
                    f"buffers {a.name!r} [{ao}, {ao + a.size}) and {b.name!r} "
                    f"[{bo}, {bo + b.size}) are live together "
                    f"(steps [{a.first},{a.last}] / [{b.first},{b.last}]) but overlap"
                )
