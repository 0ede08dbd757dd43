"""RAM on real schedules: every example and test model (bench/memory/bench_memory.py's list, the
passes alone, no C build) at int8 and int16:

- the arena plan is within 5 % of its lower bound (issue 5);
- the plan is safe: `plan_memory` replays it (codegen/memory_check.py), and, as a numerical
  witness, the integer reference run on the plan's byte layout (arena reused across calls and
  starting as garbage, in-place sharing, windows kept in the instance) gives the same outputs
  and states, call after call, as the reference with every root in its own memory.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from codegen.memory import plan_memory
from codegen.memory_plan import check_plan
from runtime.reference.interpreter import allocate_in, initial_state, run_program

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench" / "memory"))
import bench_memory  # noqa: E402

CASES = bench_memory.cases()
MAX_RATIO = 1.05
CALLS = 6


@pytest.fixture(scope="module")
def lowered(tmp_path_factory):
    cache = {}
    work = tmp_path_factory.mktemp("memory_models")

    def get(case, bits):
        if (case.name, bits) not in cache:
            cache[(case.name, bits)] = bench_memory.lower(case, bits, work)
        return cache[(case.name, bits)]
    return get


def random_input(program, rng) -> np.ndarray:
    b = program.buffers[program.inputs[0]]
    info = np.iinfo(b.dtype)
    return rng.integers(info.min, info.max + 1, b.size).astype(b.dtype)


def planned_memory(program, plan, rng) -> dict[str, np.ndarray]:
    """The plan's byte spaces (the arena full of garbage) and every buffer as a view of one."""
    spaces = {"arena": rng.integers(0, 256, plan.arena_bytes).astype(np.uint8)}
    places = {}
    for name, (space, anchor, offset) in plan.places.items():
        key = "arena" if space == "arena" else anchor
        if key not in spaces:
            spaces[key] = np.zeros(program.buffers[anchor].nbytes, np.uint8)
        places[name] = (key, offset)
    return allocate_in(program, spaces, places)


@pytest.mark.parametrize("bits", [8, 16])
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_arena_within_five_percent_of_lower_bound(case, bits, lowered):
    program = lowered(case, bits)
    plan = plan_memory(program)
    check_plan(plan.items, plan.arena)
    assert plan.arena_bytes <= MAX_RATIO * plan.lower_bound_bytes, \
        f"{case.name} int{bits}: arena {plan.arena_bytes} B, lower bound {plan.lower_bound_bytes} B"


@pytest.mark.parametrize("bits", [8, 16])
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_reference_on_the_planned_layout_is_bit_exact(case, bits, lowered):
    program = lowered(case, bits)
    plan = plan_memory(program)
    rng = np.random.default_rng(5)
    mem = planned_memory(program, plan, rng)
    state = initial_state(program)
    for name, value in state.items():  # the instance after init
        mem[name][:] = value
    for call in range(CALLS):
        x = {program.inputs[0]: random_input(program, rng)}
        want, state = run_program(program, x, state)
        got, got_state = run_program(program, x, {}, mem=mem)  # the state stays in place
        for name in program.outputs:
            assert np.array_equal(got[name], want[name]), f"call {call}: output {name}"
        for name in state:
            assert np.array_equal(got_state[name], state[name]), f"call {call}: state {name}"
