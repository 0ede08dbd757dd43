"""The memory plan on hand-built schedules: in-place sharing only where it is safe, views inside
their roots, 16-byte aligned arena blocks, and the replay checker (codegen/memory_check.py)
catching every kind of clobbered or uninitialized read."""
from __future__ import annotations

import numpy as np
import pytest

from codegen.memory import ALIGN, MemoryPlan, plan_memory
from codegen.memory_check import UnsafePlan, check_memory
from codegen.memory_plan import ArenaPlan
from runtime.ir import Buffer, Program, StatePair, Step


def buf(name: str, n: int, role: str = "scratch", dtype: str = "int8", **view) -> Buffer:
    return Buffer(name, (n,), dtype, 0, role, **view)


def program(buffers: list[Buffer], steps: list[Step], states=()) -> Program:
    outputs = [b.name for b in buffers if b.role == "output"]
    inputs = [b.name for b in buffers if b.role == "input"]
    return Program({b.name: b for b in buffers}, steps, inputs, outputs, list(states),
                   "half_even")


def conv(x: str, y: str) -> Step:
    return Step("conv1d", [x], [y], name=f"conv_{y}")


def lut(x: str, y: str) -> Step:
    return Step("lut", [x], [y], name=f"lut_{y}")


def add(a: str, b: str, y: str) -> Step:
    return Step("add", [a, b], [y], name=f"add_{y}")


def gemm(x: str, y: str) -> Step:
    return Step("gemm", [x], [y], name=f"gemm_{y}")


def arena_offset(plan: MemoryPlan, name: str) -> int:
    space, _, offset = plan.places[name]
    assert space == "arena"
    return offset


# --------------------------------------------------------------------------- in place

def test_table_runs_in_place_over_its_dead_input():
    p = program([buf("x", 32, "input"), buf("a", 40), buf("b", 40), buf("y", 8, "output")],
                [conv("x", "a"), lut("a", "b"), gemm("b", "y")])
    plan = plan_memory(p)
    assert plan.inplace == [(1, "a", "b")]
    assert arena_offset(plan, "a") == arena_offset(plan, "b")
    assert plan.lower_bound_bytes == plan.arena_bytes == 48  # one 40-byte buffer, aligned


def test_no_in_place_over_an_input_read_later():
    # a is read again by the Add: the table must not overwrite it; the Add then goes in place
    # over one of its two dead operands
    p = program([buf("x", 32, "input"), buf("a", 32), buf("b", 32), buf("c", 32),
                 buf("y", 8, "output")],
                [conv("x", "a"), lut("a", "b"), add("b", "a", "c"), gemm("c", "y")])
    plan = plan_memory(p)
    assert (1, "a", "b") not in plan.inplace
    assert arena_offset(plan, "a") != arena_offset(plan, "b")
    assert plan.inplace == [(2, "b", "c")]
    assert plan.arena_bytes == plan.lower_bound_bytes == 64


def test_add_goes_in_place_over_its_dead_second_operand():
    p = program([buf("x", 32, "input"), buf("a", 32), buf("b", 32), buf("c", 32), buf("d", 32),
                 buf("y", 8, "output")],
                [conv("x", "a"), conv("x", "b"), add("a", "b", "c"), add("c", "a", "d"),
                 gemm("d", "y")])
    plan = plan_memory(p)
    assert plan.inplace == [(2, "b", "c"), (3, "c", "d")]  # a is read again by the second Add


@pytest.mark.parametrize("dtypes", [("int8", "int16"), ("int16", "int8")])
def test_no_in_place_between_element_sizes(dtypes):
    p = program([buf("x", 32, "input"), buf("a", 32, dtype=dtypes[0]),
                 buf("b", 32, dtype=dtypes[1]), buf("y", 8, "output")],
                [conv("x", "a"), lut("a", "b"), gemm("b", "y")])
    assert plan_memory(p).inplace == []


def test_weighted_kernels_never_run_in_place():
    p = program([buf("x", 32, "input"), buf("a", 32), buf("b", 32), buf("y", 8, "output")],
                [conv("x", "a"), conv("a", "b"), gemm("b", "y")])
    plan = plan_memory(p)
    assert plan.inplace == [] and arena_offset(plan, "a") != arena_offset(plan, "b")


def test_in_place_into_the_caller_output():
    # the conv's result lives in `out` already: the table then runs in place there
    p = program([buf("x", 32, "input"), buf("a", 32), buf("y", 32, "output")],
                [conv("x", "a"), lut("a", "y")])
    plan = plan_memory(p)
    assert plan.places["a"] == ("output", "y", 0) and plan.arena_bytes == 0


def test_in_place_never_writes_the_callers_input():
    p = program([buf("x", 32, "input"), buf("y", 32, "output")], [lut("x", "y")])
    plan = plan_memory(p)
    assert plan.inplace == [] and plan.places["x"] == ("input", "x", 0)


def test_in_place_inside_a_concat_slot():
    # c = Concat(a, b) with a and b views: the tables writing them go in place over their
    # dead inputs, which then live inside c's block
    c = buf("c", 64)
    p = program([buf("x", 32, "input"), buf("p", 32), buf("q", 32),
                 buf("a", 32, "view", view_of="c", offset=0),
                 buf("b", 32, "view", view_of="c", offset=32), c, buf("y", 8, "output")],
                [conv("x", "p"), lut("p", "a"), conv("x", "q"), lut("q", "b"), gemm("c", "y")])
    plan = plan_memory(p)
    assert {(x, y) for _, x, y in plan.inplace} == {("p", "a"), ("q", "b")}
    assert arena_offset(plan, "p") == arena_offset(plan, "c")
    assert arena_offset(plan, "q") == arena_offset(plan, "c") + 32
    assert plan.arena_bytes == plan.lower_bound_bytes == 64


# --------------------------------------------------------------------------- alignment

def test_every_arena_block_starts_on_16_bytes_and_every_buffer_on_its_element():
    sizes = [7, 33, 18, 5, 64, 3]
    bufs = [buf("x", 16, "input")] + [buf(f"t{i}", n, dtype="int16") for i, n in enumerate(sizes)]
    steps = [conv("x", "t0")] + [conv(f"t{i}", f"t{i + 1}") for i in range(len(sizes) - 1)]
    p = program(bufs + [buf("y", 4, "output", dtype="int16")], steps + [gemm("t5", "y")])
    plan = plan_memory(p)
    assert plan.arena_bytes % ALIGN == 0
    assert all(offset % ALIGN == 0 for offset in plan.arena.offsets.values())
    assert all(offset % 2 == 0 for _, _, offset in plan.places.values())


# --------------------------------------------------------------------------- the checker

def place_all(p: Program, offsets: dict[str, int], arena: int) -> MemoryPlan:
    """A hand-made plan: scratch buffers at these arena offsets, the rest where they belong."""
    places = {}
    for name, b in p.buffers.items():
        root, elems = p.root(name)
        role = p.buffers[root].role
        byte = elems * np.dtype(b.dtype).itemsize
        places[name] = ("arena", "", offsets[root] + byte) if role == "scratch" \
            else (role, root, byte)
    return MemoryPlan(ArenaPlan(dict(offsets), arena, 0, "hand"), places, [], [])


def chain() -> Program:
    return program([buf("x", 32, "input"), buf("a", 32), buf("b", 32), buf("c", 32),
                    buf("y", 8, "output")],
                   [conv("x", "a"), conv("x", "b"), add("a", "b", "c"), gemm("c", "y")])


def test_checker_accepts_a_safe_hand_plan():
    check_memory(chain(), place_all(chain(), {"a": 0, "b": 32, "c": 0}, 64))


def test_checker_names_the_clobbering_step():
    with pytest.raises(UnsafePlan, match=r"step 2 .*reads 'a'.*overwritten by step 1"):
        check_memory(chain(), place_all(chain(), {"a": 0, "b": 16, "c": 48}, 80))


def test_checker_refuses_a_kernel_writing_over_its_own_input():
    p = program([buf("x", 32, "input"), buf("a", 32), buf("b", 32), buf("y", 8, "output")],
                [conv("x", "a"), conv("a", "b"), gemm("b", "y")])
    with pytest.raises(UnsafePlan, match="writes 'b' over its input 'a'"):
        check_memory(p, place_all(p, {"a": 0, "b": 0}, 32))


def test_checker_refuses_a_shifted_in_place_table():
    p = program([buf("x", 32, "input"), buf("a", 32), buf("b", 32), buf("y", 8, "output")],
                [conv("x", "a"), lut("a", "b"), gemm("b", "y")])
    check_memory(p, place_all(p, {"a": 0, "b": 0}, 32))  # exactly in place: fine
    with pytest.raises(UnsafePlan, match="over its input"):
        check_memory(p, place_all(p, {"a": 0, "b": 16}, 48))


def test_checker_finds_reads_of_bytes_nobody_wrote():
    p = program([buf("x", 32, "input"), buf("a", 32), buf("b", 32), buf("y", 8, "output")],
                [conv("x", "a"), add("a", "b", "y")])
    with pytest.raises(UnsafePlan, match="reads 'b' bytes that no step wrote"):
        check_memory(p, place_all(p, {"a": 0, "b": 32}, 64))


def test_checker_refuses_reading_a_state_after_its_update():
    # window w = [state s | new frames n]; the update (memmove) must come after the reader
    w = buf("w", 12, "state")
    bufs = [buf("x", 4, "input"), w, buf("s", 8, "view", view_of="w", offset=0),
            buf("n", 4, "view", view_of="w", offset=8), buf("y", 4, "output")]
    update = Step("copy", ["w"], ["s"], dict(src_offset=4, dst_offset=0, count=8), name="update")
    states = [StatePair("s", "s", "s_next", 0)]
    good = program(bufs, [conv("x", "n"), conv("w", "y"), update], states)
    check_memory(good, plan_memory(good))
    bad = program(bufs, [conv("x", "n"), update, conv("w", "y")], states)
    with pytest.raises(UnsafePlan, match="after the state update"):
        check_memory(bad, place_all(bad, {}, 0))


def test_window_in_the_instance_updates_with_one_memmove():
    from codegen.emit_c import ModelInterface, SourceWriter
    w = buf("w", 12, "state")
    bufs = [buf("x", 4, "input"), w, buf("s", 8, "view", view_of="w", offset=0),
            buf("n", 4, "view", view_of="w", offset=8), buf("y", 4, "output")]
    update = Step("copy", ["w"], ["s"], dict(src_offset=4, dst_offset=0, count=8), name="update")
    p = program(bufs, [Step("copy", ["x"], ["n"], dict(src_offset=0, dst_offset=0, count=4)),
                       conv("w", "y"), update], [StatePair("s", "s", "s_next", 0)])
    plan = plan_memory(p)
    assert plan.arena_bytes == 0 and plan.places["n"] == ("state", "w", 8)
    writer = SourceWriter(p, plan, ModelInterface("m", 1, 4, 4, 4, 0, 0, 0, True, 8, 0))
    assert writer.call(update, {}) == "memmove(m->state_s, m->state_s + 4, 8);"
    assert writer.call(p.steps[0], {}) == "memcpy(m->state_s + 8, in, 4);"


# --------------------------------------------------------------------------- views or copies

def slice_program(read_late: bool) -> tuple[Program, list]:
    """a (256 B) -> s = a[240:256] (a view), a -> b -> c, then Add(s, d) with d from c: when the
    Add is late, the view keeps all of `a` alive across b and c."""
    from passes.lowering.layouts import ViewChoice
    bufs = [buf("x", 32, "input"), buf("a", 256), buf("s", 16, "view", view_of="a", offset=240),
            buf("b", 256), buf("c", 256), buf("d", 16), buf("e", 16), buf("y", 4, "output")]
    late = [conv("a", "b"), conv("b", "c"), gemm("c", "d"), add("s", "d", "e"), gemm("e", "y")]
    early = [conv("x", "d"), add("s", "d", "e"), conv("a", "b"), conv("b", "c"),
             add("c", "c", "c2"), gemm("e", "y")]
    steps = [conv("x", "a")] + (late if read_late else early)
    if not read_late:
        bufs.append(buf("c2", 256))
    return program(bufs, steps), [ViewChoice("s", "a", 240, False, 1)]


def test_a_slice_read_late_becomes_a_copy_when_that_frees_ram():
    from passes.lowering.layouts import choose_layouts, cost
    p, views = slice_program(read_late=True)
    chosen = choose_layouts(p, views)
    assert chosen.buffers["s"].view_of is None
    copy = chosen.steps[1]  # right where the Slice was lowered: after `a` is written
    assert (copy.op, copy.inputs, copy.outputs, copy.params["src_offset"]) == \
        ("copy", ["a"], ["s"], 240)
    assert cost(chosen)[0] < cost(p)[0]
    assert plan_memory(chosen).arena_bytes < plan_memory(p).arena_bytes


def test_a_slice_read_at_once_stays_a_view():
    from passes.lowering.layouts import choose_layouts
    p, views = slice_program(read_late=False)
    chosen = choose_layouts(p, views)
    assert chosen.buffers["s"].view_of == "a" and not any(s.op == "copy" for s in chosen.steps)


def binary(a: str, b: str, y: str, a_stride, b_stride, constant_a: bool = False) -> Step:
    """A broadcasting arithmetic step over a [4][8] output (runtime/c/binary.c)."""
    arrays = {"a": np.zeros(32, np.int8)} if constant_a else {}
    ins = [b] if constant_a else [a, b]
    return Step("binary", ins, [y], dict(op=2, shape=[1, 1, 4, 8], a_stride=a_stride,
                                         b_stride=b_stride), arrays, name=f"binary_{y}")


def test_arithmetic_goes_in_place_only_over_an_operand_it_does_not_broadcast():
    from codegen.memory import inplace_operands
    dense, rows = [0, 0, 8, 1], [0, 0, 0, 1]  # b: one row of 8 broadcast over the 4 rows
    assert inplace_operands(binary("a", "b", "y", dense, rows)) == (0,)
    assert inplace_operands(binary("a", "b", "y", rows, dense)) == (1,)
    assert inplace_operands(binary("a", "b", "y", [0, 0, 1, 4], dense)) == (1,)  # transposed a
    assert inplace_operands(binary("k", "b", "y", rows, dense, constant_a=True)) == (0,)
    p = program([buf("x", 32, "input"), buf("a", 32), buf("b", 8), buf("c", 32),
                 buf("y", 8, "output")],
                [conv("x", "a"), conv("x", "b"), binary("a", "b", "c", dense, rows),
                 gemm("c", "y")])
    plan = plan_memory(p)
    assert plan.inplace == [(2, "a", "c")]
    with pytest.raises(UnsafePlan, match="writes 'c' over its input 'b'"):
        check_memory(p, place_all(p, {"a": 0, "b": 32, "c": 32}, 64))


# --------------------------------------------------------------------------- lowering

def test_lowered_split_and_concat_slots_are_views_not_copies():
    """Offline [1, 4, 8] (stored time-major): Split along time, a 1x1 conv on each part writing
    its slot of the Concat: no copy (the Flatten reorders [T][C] to [C][T]: a transpose)."""
    import onnx  # noqa: F401
    from compiler.pass_manager import PassManager
    from compiler.pipeline import float_passes, quantization_passes
    from graphs import ctx_for, init, ints, model, node, weights
    eye = np.eye(4, dtype=np.float32)[:, :, None]
    m = model([node("Conv", ["x", "w0"], ["a"], name="c0", kernel_shape=[1]),
               node("Split", ["a", "sizes"], ["s0", "s1"], name="split", axis=2),
               node("Conv", ["s0", "w1"], ["p"], name="c1", kernel_shape=[1]),
               node("Conv", ["s1", "w2"], ["q"], name="c2", kernel_shape=[1]),
               node("Concat", ["p", "q"], ["cat"], name="cat", axis=2),
               node("Flatten", ["cat"], ["y"], name="flat", axis=1)],
              [("x", [1, 4, 8])], [("y", None)],
              [init("w0", weights([4, 4, 1], 1)), init("w1", eye), init("w2", 0.5 * eye),
               ints("sizes", [3, 5])])
    calib = np.random.default_rng(0).standard_normal((8, 1, 4, 8)).astype(np.float32)
    ctx = ctx_for(m, properties=set(), shapes=False, offline=True, calib=calib)
    PassManager(float_passes(True) + quantization_passes()).run(ctx)
    p = ctx.facts["program"]
    assert [s.op for s in p.steps] == ["conv1d"] * 3 + ["transpose"]
    assert p.root("s0") == ("a", 0) and p.root("s1") == ("a", 12)
    assert p.root("p") == ("cat", 0) and p.root("q") == ("cat", 12)
    plan = plan_memory(p)
    assert plan.places["q"][2] == plan.places["p"][2] + 12


# --------------------------------------------------------------------------- windows

def dense(x: str, y: str, k: int, n: int, seed: int) -> Step:
    """An executable int8 gemm step (x [k] -> y [n])."""
    rng = np.random.default_rng(seed)
    return Step("gemm", [x], [y], dict(m=1, k=k, n=n, act_min=-128, act_max=127),
                dict(w=rng.integers(-128, 128, (n, k)).astype(np.int8),
                     bias=rng.integers(-999, 999, n).astype(np.int32),
                     shift=np.full(n, 8, np.int8)), name=f"dense_{y}")


def two_windows(tail: int) -> Program:
    """Two layers, each reading a window in <name>_t: 16 kept bytes, then `tail` new bytes
    that the producer writes in place; the state updates (memmoves) end the call."""
    bufs, steps, states = [buf("x", 8, "input"), buf("y", 8, "output"), buf("a", 16)], [], []
    for k in (1, 2):
        bufs += [buf(f"w{k}", 16 + tail, "state"),
                 buf(f"s{k}", 16, "view", view_of=f"w{k}", offset=0),
                 buf(f"n{k}", tail, "view", view_of=f"w{k}", offset=16)]
        states.append(StatePair(f"s{k}", f"s{k}", f"s{k}_next", 0))
    steps = [dense("x", "n1", 8, tail, 1), dense("w1", "a", 16 + tail, 16, 2),
             dense("a", "n2", 16, tail, 3), dense("w2", "y", 16 + tail, 8, 4)]
    updates = [Step("copy", [f"w{k}"], [f"s{k}"], dict(src_offset=tail, dst_offset=0, count=16),
                    name=f"update{k}") for k in (1, 2)]
    return program(bufs, steps + updates, states)


def test_a_window_moved_to_the_arena_copies_its_kept_frames_in_and_out():
    from passes.lowering.layouts import to_arena
    from runtime.reference.interpreter import initial_state, run_program
    p = two_windows(tail=64)
    q = to_arena(p, "w1")
    assert [(s.op, s.inputs, s.outputs) for s in q.steps[:4]] == [
        ("copy", ["s1"], ["w1"]), ("gemm", ["x"], ["n1"]), ("copy", ["w1"], ["s1"]),
        ("gemm", ["w1"], ["a"])]  # kept frames in; the new state out once the window is whole
    assert q.buffers["w1"].role == "scratch" and q.buffers["s1"].role == "state"
    assert p.buffers["w1"].role == "state"  # the original is left as it was
    plan = plan_memory(q)  # checked on the way
    assert plan.places["n1"][0] == "arena" and plan.places["s1"][0] == "state"
    rng = np.random.default_rng(1)
    sp, sq = initial_state(p), initial_state(q)
    for _ in range(4):
        x = {"x": rng.integers(-128, 128, 8).astype(np.int8)}
        (op, sp), (oq, sq) = run_program(p, x, sp), run_program(q, x, sq)
        assert np.array_equal(op["y"], oq["y"])
        assert all(np.array_equal(sp[k], sq[k]) for k in sp) and sp["s1"].any()


@pytest.mark.parametrize("tail, in_arena", [(16, 0), (256, 2)])
def test_windows_go_to_the_arena_only_where_that_needs_less_ram(tail, in_arena):
    from passes.lowering.layouts import choose_layouts, cost
    p = two_windows(tail)
    chosen = choose_layouts(p, [])
    assert sum(chosen.buffers[w].role == "scratch" for w in ("w1", "w2")) == in_arena
    assert cost(chosen) <= cost(p)
    if in_arena:  # the two tails share the arena instead of both sitting in <name>_t
        assert cost(chosen)[0] < cost(p)[0]
