"""RAM on real schedules: every example and test model (bench/memory/bench_memory.py's list, the
passes alone, no C build) plans its arena within 5 % of the lower bound at int8 and int16
(issue 5), and the plan survives an independent check."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from codegen.memory import plan_memory
from codegen.memory_plan import check_plan
from codegen.memory import scratch_lifetimes

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench" / "memory"))
import bench_memory  # noqa: E402

CASES = bench_memory.cases()
MAX_RATIO = 1.05


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("memory_models")


@pytest.mark.parametrize("bits", [8, 16])
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_arena_within_five_percent_of_lower_bound(case, bits, work):
    program = bench_memory.lower(case, bits, work)
    plan = plan_memory(program)
    check_plan(scratch_lifetimes(program), plan)
    assert plan.lower_bound_bytes > 0
    assert plan.arena_bytes <= MAX_RATIO * plan.lower_bound_bytes, \
        f"{case.name} int{bits}: arena {plan.arena_bytes} B, lower bound {plan.lower_bound_bytes} B"
