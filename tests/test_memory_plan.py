"""Tests for the static arena planner (codegen/memory_plan.py).

Hand-made cases pin exact optimal answers; property tests guard validity on
arbitrary interval sets; a statistic test guards packing quality on the
chain-like schedules real models produce.
"""

from __future__ import annotations

import random
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from codegen.memory_plan import ArenaPlan, BufferLife, check_plan, lower_bound, plan_arena


def _plan_ok(buffers, align=16):
    plan = plan_arena(buffers, align)
    check_plan(buffers, plan, align)
    assert plan.arena_bytes >= plan.lower_bound_bytes == lower_bound(buffers, align)
    return plan


# ---------------------------------------------------------------- hand-made


def test_empty():
    plan = plan_arena([])
    assert plan.arena_bytes == 0 and plan.offsets == {} and plan.lower_bound_bytes == 0
    check_plan([], plan)


def test_chain_reuses_dead_buffer():
    # a -> b -> c: a is dead once b is written, so c can take a's bytes.
    bufs = [
        BufferLife("a", 100, -1, 0),
        BufferLife("b", 100, 0, 1),
        BufferLife("c", 100, 1, 2),
    ]
    plan = _plan_ok(bufs)
    assert plan.arena_bytes == 2 * 112 == plan.lower_bound_bytes
    assert plan.offsets["a"] == plan.offsets["c"]
    assert plan.offsets["a"] != plan.offsets["b"]


def test_two_live_together_are_stacked():
    bufs = [BufferLife("x", 64, 0, 3), BufferLife("y", 32, 2, 5)]
    plan = _plan_ok(bufs)
    assert plan.arena_bytes == 96
    assert sorted(plan.offsets.values()) in ([0, 32], [0, 64])


@pytest.mark.parametrize(
    "align, together, expected", [(16, True, 48), (16, False, 32), (4, True, 24), (1, True, 18)]
)
def test_alignment_rounding(align, together, expected):
    # Sizes 1 and 17 round to 16 and 32 at align 16.
    last_a = 1 if together else 0
    bufs = [BufferLife("one", 1, 0, last_a), BufferLife("seventeen", 17, 1, 2)]
    plan = _plan_ok(bufs, align)
    assert plan.arena_bytes == expected
    assert all(off % align == 0 for off in plan.offsets.values())


def test_greedy_by_size_is_not_enough():
    # Largest-first puts a at 0 and c above it; d then drops to 0 and b no
    # longer fits in the 16-byte hole -> 160. Optimal puts c at 0 and
    # a, d, b above it = lower bound (step 5: b + c + d) = 144.
    bufs = [
        BufferLife("a", 64, 1, 4),
        BufferLife("b", 32, 5, 6),
        BufferLife("c", 64, 4, 6),
        BufferLife("d", 48, 5, 6),
    ]
    plan = _plan_ok(bufs)
    assert plan.lower_bound_bytes == 144
    assert plan.arena_bytes == 144
    assert plan.strategy != "greedy_size_bestfit"


def test_deterministic_and_order_independent():
    rng = random.Random(3)
    bufs = _chain_schedule(rng, 40)
    p1, p2 = plan_arena(bufs), plan_arena(list(bufs))
    assert p1 == p2
    shuffled = bufs[:]
    random.Random(9).shuffle(shuffled)
    assert plan_arena(shuffled) == p1


@pytest.mark.parametrize(
    "bad",
    [
        [BufferLife("a", 0, 0, 1)],
        [BufferLife("a", 8, 2, 1)],
        [BufferLife("a", 8, -2, 1)],
        [BufferLife("a", 8, 0, 1), BufferLife("a", 8, 2, 3)],
    ],
)
def test_rejects_malformed_input(bad):
    with pytest.raises(ValueError):
        plan_arena(bad)


# ---------------------------------------------------------------- check_plan


def test_check_plan_catches_overlap_and_names_both():
    bufs = [BufferLife("alpha", 32, 0, 2), BufferLife("beta", 32, 1, 3)]
    broken = ArenaPlan({"alpha": 0, "beta": 16}, 64, 64, "broken")
    with pytest.raises(AssertionError, match=r"alpha.*beta|beta.*alpha"):
        check_plan(bufs, broken)


def test_check_plan_allows_sharing_when_not_live_together():
    bufs = [BufferLife("alpha", 32, 0, 1), BufferLife("beta", 32, 2, 3)]
    check_plan(bufs, ArenaPlan({"alpha": 0, "beta": 0}, 32, 32, "shared"))


@pytest.mark.parametrize(
    "offsets, arena, what",
    [
        ({"a": 8, "b": 48}, 96, "misaligned"),
        ({"a": 0, "b": 32}, 48, "past arena"),
        ({"a": 0, "b": 32}, 72, "multiple"),
        ({"a": 0}, 64, "no offset"),
    ],
)
def test_check_plan_catches_other_breakage(offsets, arena, what):
    bufs = [BufferLife("a", 32, 0, 1), BufferLife("b", 32, 1, 2)]
    with pytest.raises(AssertionError, match=what):
        check_plan(bufs, ArenaPlan(offsets, arena, 64, "broken"))


# ---------------------------------------------------------------- properties


@st.composite
def _interval_sets(draw):
    n = draw(st.integers(0, 60))
    horizon = draw(st.integers(1, 40))
    out = []
    for i in range(n):
        first = draw(st.integers(-1, horizon))
        last = draw(st.integers(first, horizon + 1))
        size = draw(st.one_of(st.integers(1, 64), st.integers(1, 5000)))
        out.append(BufferLife(f"b{i}", size, first, last))
    return out


@settings(max_examples=150, deadline=None, database=None)
@given(_interval_sets(), st.sampled_from([1, 4, 16, 64]))
def test_property_plans_are_valid(buffers, align):
    plan = _plan_ok(buffers, align)
    assert plan.arena_bytes % align == 0
    assert set(plan.offsets) == {b.name for b in buffers}


# ---------------------------------------------------------------- quality / speed


def _chain_schedule(rng: random.Random, n_steps: int) -> list[BufferLife]:
    """One output per step; each step reads 1-3 of the 4 most recent tensors (like a CNN/RNN body)."""
    sizes: dict[str, int] = {}
    first: dict[str, int] = {}
    last: dict[str, int] = {}
    recent: list[str] = []
    for k in range(rng.randint(1, 2)):
        name = f"in{k}"
        sizes[name], first[name], last[name] = rng.randint(1, 4096), -1, -1
        recent.append(name)
    common = [16, 64, 100, 256, 512, 777, 1000, 1024, 2048, 3000, 4096]
    for step in range(n_steps):
        window = recent[-4:]
        for name in rng.sample(window, min(len(window), rng.randint(1, 3))):
            last[name] = max(last[name], step)
        name = f"t{step}"
        sizes[name] = rng.choice(common) if rng.random() < 0.5 else rng.randint(1, 4096)
        first[name] = last[name] = step
        recent.append(name)
    return [
        BufferLife(n, sizes[n], first[n], max(first[n], last[n])) for n in sizes
    ]


def test_statistic_chain_schedules_near_lower_bound():
    rng = random.Random(1)
    ratios = []
    for _ in range(300):
        bufs = _chain_schedule(rng, rng.randint(5, 60))
        plan = _plan_ok(bufs)
        ratios.append(plan.arena_bytes / plan.lower_bound_bytes)
    good = sum(r <= 1.05 for r in ratios) / len(ratios)
    exact = sum(r == 1.0 for r in ratios) / len(ratios)
    print(
        f"\nchain schedules: worst ratio {max(ratios):.4f}, "
        f"<=1.05 in {good:.1%}, ==LB in {exact:.1%}, mean {sum(ratios) / len(ratios):.4f}"
    )
    assert good >= 0.90


def test_500_buffers_plan_under_a_second():
    rng = random.Random(11)
    bufs = _chain_schedule(rng, 498)
    assert len(bufs) >= 499
    t0 = time.perf_counter()
    plan = plan_arena(bufs)
    elapsed = time.perf_counter() - t0
    check_plan(bufs, plan)
    print(f"\n{len(bufs)} buffers planned in {elapsed:.3f}s, ratio "
          f"{plan.arena_bytes / plan.lower_bound_bytes:.4f} ({plan.strategy})")
    assert elapsed < 1.0
