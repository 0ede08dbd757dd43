"""The C kernels (runtime/c templates, instantiated per type variant by codegen/kernel_library.py)
against the Python integer reference (runtime/reference), bit for bit, in both rounding modes,
for int8, int16 and the mixed variants the compiler uses; the reference against exact Fraction
arithmetic; the compile-time tables (passes/tables.py lut_plan, softmax_plan); the variant
naming and instantiation; and the C sources' hygiene (warnings, -m32, renamed amalgamation).

The C side runs through tests/c/kernel_driver.c, built once per session and rounding mode (with
AddressSanitizer + UBSan when available) together with every variant under test and a generated
dispatch (tests/c_drivers.py); every test batches its calls into one driver run.
"""
from __future__ import annotations

import itertools
import math
import os
import re
import shutil
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # so that plain `pytest` finds the runtime package too
    sys.path.insert(0, str(ROOT))

from c_drivers import (MODES, STRICT, build_drivers, compile_c, dispatch_source,  # noqa: E402
                       exact_round, record, run_records)
from codegen.kernel_library import (F32, FAMILIES, KernelTypes, check_types,  # noqa: E402
                                    function_name, instantiate, kernel_header, kernel_sources,
                                    kernel_types, program_variants, prototypes, variant_suffix)
from runtime import weight_layout  # noqa: E402
from runtime.reference import kernels as ref  # noqa: E402

C_DIR = ROOT / "runtime" / "c"
DRIVER_SRC = ROOT / "tests" / "c" / "kernel_driver.c"
TEMPLATES = sorted(C_DIR.glob("*.c"))
CC = os.environ.get("CC", "gcc")

T = KernelTypes
S8, S16 = T(8, 8), T(16, 16)
#: conv1d / conv2d / conv_transpose1d / gemm: int8, int16 and the mixed layers of the compiler
#: first (tested hardest), then every other combination (the lowering may pick any: int16
#: weights on int8 activations, int64 accumulators wherever int32 is not proven enough).
MAIN_CONV_TYPES = [T(8, 8, w=8, acc=32), T(16, 16, w=16, acc=64), T(16, 16, w=8, acc=32),
                   T(16, 16, w=8, acc=64), T(16, 16, w=16, acc=32), T(8, 16, w=8, acc=32),
                   T(16, 8, w=8, acc=32)]
CONV_TYPES = MAIN_CONV_TYPES + [
    T(x, y, w=w, acc=acc) for x, w, acc, y in itertools.product((8, 16), (8, 16), (32, 64), (8, 16))
    if T(x, y, w=w, acc=acc) not in MAIN_CONV_TYPES]
ADD_TYPES = [T(8, 8, x2=8), T(16, 16, x2=16), T(8, 16, x2=16), T(16, 8, x2=8)] + [
    T(x, y, x2=b) for x, b, y in [(8, 8, 16), (8, 16, 8), (16, 8, 16), (16, 16, 8)]]
XY_TYPES = [S8, S16, T(8, 16), T(16, 8)]
SAME_TYPES = [S8, S16]
WEIGHTED = ("conv1d", "conv2d", "conv_transpose1d", "gemm")
FAMILY_TYPES = {**{f: CONV_TYPES for f in WEIGHTED}, "add": ADD_TYPES,
                **{f: XY_TYPES for f in ("avgpool1d", "maxpool1d", "reduce", "softmax", "lut",
                                         "requant")},
                **{f: SAME_TYPES for f in ("transpose", "mask_frames", "quantize")}}
TESTED = [(f, t) for f, ts in FAMILY_TYPES.items() for t in ts]
DISPATCH, VARIANT_OP = dispatch_source(TESTED)
HELPER_OP = {"round_shift": 10, "round_div": 11, "round_f32_sat": 12, "floor_shift": 13,
             "requant32": 14}

I64_MIN, I64_MAX = -(2**63), 2**63 - 1
DTYPE = {8: np.int8, 16: np.int16, 32: np.int32, 64: np.int64}

pytestmark = pytest.mark.skipif(shutil.which(CC) is None, reason=f"no C compiler ({CC})")


def types_param(types: list[KernelTypes]):
    return pytest.mark.parametrize("types", types, ids=variant_suffix)


# --------------------------------------------------------------------------------- C driver

class Driver:
    """One compiled kernel_driver; `run` sends a batch of calls through one process."""

    def __init__(self, exe: Path, mode: str):
        self.exe = exe
        self.mode = mode

    def run(self, calls: list[tuple]) -> list[np.ndarray]:
        """calls: (op, params [int], arrays [ndarray], out_dtype, out_count), op a helper name
        or a (family, KernelTypes) variant."""
        sizes = [int(n) * np.dtype(dt).itemsize for *_, dt, n in calls]
        records = [record(VARIANT_OP[op] if isinstance(op, tuple) else HELPER_OP[op], params,
                          arrays, size)
                   for (op, params, arrays, _, _), size in zip(calls, sizes)]
        raw = run_records(self.exe, records, sizes, f"kernel_driver ({self.mode})")
        return [np.frombuffer(b, dtype=dt).copy() for b, (*_, dt, _) in zip(raw, calls)]


@pytest.fixture(scope="session")
def drivers(tmp_path_factory) -> dict[str, Driver]:
    build = tmp_path_factory.mktemp("kernel_driver")
    exes = build_drivers(CC, build, DRIVER_SRC, TESTED, "kernel_driver", DISPATCH)
    return {mode: Driver(exe, mode) for mode, exe in exes.items()}


def assert_same(got: np.ndarray, want: np.ndarray, what: str) -> None:
    got = np.asarray(got).reshape(-1)
    want = np.asarray(want).reshape(-1)
    if got.dtype.kind == "f":  # compare float bits (catches -0.0 and NaN payloads too)
        got = got.view(np.uint32 if got.itemsize == 4 else np.uint64)
        want = np.asarray(want, dtype=got.dtype.name.replace("uint", "float")).view(got.dtype)
    assert got.size == want.size, f"{what}: size {got.size} != {want.size}"
    if not np.array_equal(got, want.astype(got.dtype)):
        bad = np.flatnonzero(got != want.astype(got.dtype))
        i = int(bad[0])
        raise AssertionError(f"{what}: {bad.size} mismatches; first at flat index {i}: "
                             f"C {got[i]} != reference {want[i]}")


def check_batch(driver: Driver, cases: list[tuple]) -> None:
    """cases: (description, C call tuple, expected array)."""
    outs = driver.run([c[1] for c in cases])
    for (desc, call, want), got in zip(cases, outs):
        if isinstance(call[0], tuple):  # a kernel: the reference's dtype is the C output type
            assert np.asarray(want).dtype == np.dtype(call[3]), f"{desc}: dtype {want.dtype}"
        assert_same(got, want, f"[{driver.mode}] {desc}")


# ------------------------------------------------------------------------- value helpers

def trange(bits: int) -> tuple[int, int]:
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def rand_int(rng, shape, bits: int, extreme: bool = False) -> np.ndarray:
    lo, hi = trange(bits)
    if extreme:
        return rng.choice(np.array([lo, hi, lo + 1, 0, 1, -1]), size=shape).astype(DTYPE[bits])
    return rng.integers(lo, hi + 1, size=shape, dtype=np.int64).astype(DTYPE[bits])


def rand_act(rng, bits: int) -> tuple[int, int]:
    lo, hi = trange(bits)
    scale = 1 << (bits - 8)
    return [(lo, hi), (0, hi), (lo, hi), (-20 * scale, 30 * scale)][int(rng.integers(4))]


def sat(v: int, bits: int, lo: int | None = None, hi: int | None = None) -> int:
    tlo, thi = trange(bits)
    v = min(max(v, tlo), thi)
    return min(max(v, tlo if lo is None else lo), thi if hi is None else hi)


def other(mode: str) -> str:
    return MODES[1 - MODES.index(mode)]


def _params(family: str, p: dict) -> list[int]:
    """The C struct's values: the spec's fields, then conv1d's/gemm's layout fields (the
    logical layout unless `p` has them)."""
    out = []
    layout = weight_layout.LAYOUT_FIELDS if family in weight_layout.LAYOUT_FAMILIES else ()
    for f in ref.PARAMS_FIELDS[family] + layout:
        v = p.get(f, {"wblock": 1, "rq_bias": 0}.get(f)) if f in layout else p[f]
        out.extend(list(v) + [0] * (4 - len(v)) if isinstance(v, (list, tuple)) else [v])
    return out


def case(family: str, types: KernelTypes, p: dict, arrays: list, want: np.ndarray,
         desc: str = "") -> tuple:
    """One driver call of a params-struct kernel (params in PARAMS_FIELDS order)."""
    return (f"{family}_{variant_suffix(types)} {desc} {p}",
            ((family, types), _params(family, p), arrays, DTYPE[types.y], want.size), want)


# --------------------------------------------------------------------- weighted layers

def _group_kind(rng, c_max: int = 7) -> tuple[int, int, int]:
    """(groups, c_in, c_out): dense, two groups or depthwise (with a channel multiplier)."""
    kind = rng.choice(["dense", "g2", "depthwise"])
    if kind == "dense":
        return 1, int(rng.integers(1, c_max)), int(rng.integers(1, c_max))
    if kind == "g2":
        return 2, 2 * int(rng.integers(1, 4)), 2 * int(rng.integers(1, 4))
    c_in = int(rng.integers(1, c_max))
    return c_in, c_in, c_in * int(rng.integers(1, 3))


def conv1d_shapes(rng) -> dict:
    groups, c_in, c_out = _group_kind(rng, 9)
    kernel, dilation = int(rng.integers(1, 6)), int(rng.integers(1, 5))
    stride = int(rng.integers(1, 4))
    pad_l = int(rng.integers(0, dilation * (kernel - 1) + 2))
    pad_r = int(rng.integers(0, dilation * (kernel - 1) + 2))
    field = dilation * (kernel - 1) + 1
    t_in = int(rng.integers(max(1, field - pad_l - pad_r), field + 12))
    return dict(t_in=t_in, c_in=c_in, c_out=c_out, kernel=kernel, stride=stride,
                dilation=dilation, groups=groups, pad_l=pad_l, pad_r=pad_r)


def conv2d_shapes(rng) -> dict:
    groups, c_in, c_out = _group_kind(rng)
    p = dict(c_in=c_in, c_out=c_out, groups=groups)
    for ax, n_max in (("t", 9), ("f", 8)):
        kernel, dilation = int(rng.integers(1, 4)), int(rng.integers(1, 3))
        field = dilation * (kernel - 1) + 1
        pad_lo, pad_hi = int(rng.integers(0, field + 1)), int(rng.integers(0, field + 1))
        p.update({f"kernel_{ax}": kernel, f"dilation_{ax}": dilation,
                  f"stride_{ax}": int(rng.integers(1, 3)), f"pad_{ax}_l": pad_lo,
                  f"pad_{ax}_r": pad_hi,
                  f"{ax}_in": int(rng.integers(max(1, field - pad_lo - pad_hi), field + n_max))})
    return p


def convt_shapes(rng) -> dict:
    groups, c_in, c_out = _group_kind(rng)
    kernel, stride, dilation = (int(rng.integers(1, 6)), int(rng.integers(1, 5)),
                                int(rng.integers(1, 4)))
    reach = dilation * (kernel - 1) + stride
    return dict(t_in=int(rng.integers(1, 10)), c_in=c_in, c_out=c_out, kernel=kernel,
                stride=stride, dilation=dilation, groups=groups,
                pad_l=int(rng.integers(0, reach)), pad_r=int(rng.integers(0, reach)),
                output_padding=int(rng.integers(0, stride)))


def gemm_shapes(rng) -> dict:
    m, k, n = (int(v) for v in rng.integers(1, 24, size=3))
    return dict(m=m, k=k, n=n)


SHAPES = {"conv1d": conv1d_shapes, "conv2d": conv2d_shapes, "conv_transpose1d": convt_shapes,
          "gemm": gemm_shapes}


def array_shapes(family: str, p: dict) -> tuple[tuple, tuple, int]:
    """(x shape, w shape, c_out) of a weighted layer's params."""
    if family == "gemm":
        return (p["m"], p["k"]), (p["n"], p["k"]), p["n"]
    cg = p["c_in"] // p["groups"]
    if family == "conv2d":
        return ((p["t_in"], p["c_in"], p["f_in"]),
                (p["c_out"], p["kernel_t"], p["kernel_f"], cg), p["c_out"])
    return (p["t_in"], p["c_in"]), (p["c_out"], p["kernel"], cg), p["c_out"]


def acc_bound(x: np.ndarray, w: np.ndarray, c_out: int) -> np.ndarray:
    """max|x| * sum|w| per output channel (int64: the products' worst case)."""
    x_max = int(np.abs(x.astype(np.int64)).max(initial=0))
    return np.abs(w.astype(np.int64)).reshape(c_out, -1).sum(axis=1) * x_max


def fit_weights(x: np.ndarray, w: np.ndarray, c_out: int, acc: int) -> np.ndarray:
    """Halve the weights (toward 0) until the products use at most half of the accumulator
    (an int32 accumulator with int16 data only holds a few full-range products)."""
    while acc_bound(x, w, c_out).max(initial=0) > (1 << (acc - 2)):
        w = (w.astype(np.int64) // 2 + (w < 0)).astype(w.dtype)
    return w


def pick_shifts(rng, mag: int, out_bits: int, n: int, spread: int = 4) -> np.ndarray:
    """Shifts that map accumulators of magnitude ~mag onto the output range, +-spread (both
    saturated and small outputs), never a left shift out of int64, within [-40, 40]."""
    base = max(int(mag).bit_length() - out_bits + 1, 0)
    s = base + rng.integers(-spread, spread + 1, size=n)
    return np.clip(s, max(-40, int(mag).bit_length() - 62), 40).astype(np.int8)


def weighted_data(rng, family: str, t: KernelTypes, p: dict, extreme: bool = False,
                  big_bias: bool = False):
    """x, w, bias (of the accumulator type, within its budget) and shifts for a layer."""
    xs, ws, c_out = array_shapes(family, p)
    x = rand_int(rng, xs, t.x, extreme)
    w = fit_weights(x, rand_int(rng, ws, t.w, extreme), c_out, t.acc)
    bound = int(acc_bound(x, w, c_out).max(initial=0))
    room = (1 << (t.acc - 1)) - 1 - bound
    if big_bias:  # saturating outputs, up to the accumulator's limit
        mag = room
        bias = rng.choice([-1, 1], size=c_out) * rng.integers(mag // 2, mag, size=c_out,
                                                              endpoint=True)
    else:
        mag = min(room, max(bound, 1 << (t.x + t.w - 4)))
        bias = rng.integers(-mag, mag, size=c_out, endpoint=True)
    bias = bias.astype(DTYPE[t.acc])
    shift = pick_shifts(rng, bound + mag, t.y, c_out)
    return x, w, bias, shift


def weighted_case(family: str, t: KernelTypes, x, w, bias, shift, p: dict, mode: str,
                  desc: str = "", layout: bool = True) -> tuple:
    """One call against the reference; conv1d/gemm with their arrays in the layout the code
    generator picks (`layout`; runtime/weight_layout.py) or else the logical one."""
    want = getattr(ref, family)(x, w, bias, shift, **p, mode=mode, out_bits=t.y)
    arrays = [x, w, bias, np.asarray(shift).astype(np.int8)]
    if layout and family in weight_layout.LAYOUT_FAMILIES:
        named = dict(w=w, bias=bias, shift=arrays[3])
        p, named = weight_layout.c_step(family, p, named, t.x, mode)
        arrays = [x, named["w"], named["bias"], named["shift"]]
        desc += f" wblock={p['wblock']} rq_bias={p['rq_bias']}"
    return case(family, t, p, arrays, want, desc)


def _ties_x(rng, shape, s: int, bits: int) -> np.ndarray:
    """Multiples of 2^s: every dot product is a multiple of 2^s, so a bias of an odd multiple
    of 2^(s-1) puts every accumulator on an exact tie (both signs)."""
    lo, hi = trange(bits)
    return (rng.integers(-1, 2, size=shape) * (1 << s)).clip(lo, hi).astype(DTYPE[bits])


def _ties_bias(rng, n: int, s: int, acc: int) -> np.ndarray:
    return ((2 * rng.integers(-20, 20, size=n) + 1) * (1 << (s - 1))).astype(DTYPE[acc])


@pytest.mark.parametrize("mode", MODES)
@types_param(CONV_TYPES)
@pytest.mark.parametrize("family", WEIGHTED)
def test_weighted_random(drivers, family, types, mode):
    cases = []
    seeds = 250 if variant_suffix(types) == "s8" else 100 if types in MAIN_CONV_TYPES else 40
    for seed in range(seeds):
        rng = np.random.default_rng(1000 + seed)
        p = SHAPES[family](rng)
        lo, hi = rand_act(rng, types.y)
        p.update(act_min=lo, act_max=hi)
        x, w, bias, shift = weighted_data(rng, family, types, p, extreme=seed % 5 == 0,
                                          big_bias=seed % 7 == 0)
        cases.append(weighted_case(family, types, x, w, bias, shift, p, mode, f"seed={seed}"))
        if family in weight_layout.LAYOUT_FAMILIES:
            cases.append(weighted_case(family, types, x, w, bias, shift, p, mode,
                                       f"seed={seed}", layout=False))
    check_batch(drivers[mode], cases)


@pytest.mark.parametrize("mode", MODES)
@types_param(CONV_TYPES)
@pytest.mark.parametrize("family", WEIGHTED)
def test_weighted_ties(drivers, family, types, mode):
    """Every accumulator an exact tie (both signs): the rounding modes must differ."""
    cases, diff = [], 0
    for seed in range(60 if types in MAIN_CONV_TYPES else 25):
        rng = np.random.default_rng(5000 + seed)
        p = dict(SHAPES[family](rng), act_min=trange(types.y)[0], act_max=trange(types.y)[1])
        s = int(rng.integers(1, 7))
        xs, ws, c_out = array_shapes(family, p)
        x = _ties_x(rng, xs, s, types.x)
        w = rng.integers(-3, 4, size=ws).astype(DTYPE[types.w])
        bias, shift = _ties_bias(rng, c_out, s, types.acc), np.full(c_out, s)
        cases.append(weighted_case(family, types, x, w, bias, shift, p, mode, f"ties {seed}"))
        alt = getattr(ref, family)(x, w, bias, shift, **p, mode=other(mode), out_bits=types.y)
        diff += int(np.sum(alt != cases[-1][2]))
        if family in weight_layout.LAYOUT_FAMILIES:
            cases.append(weighted_case(family, types, x, w, bias, shift, p, mode,
                                       f"ties {seed}", layout=False))
    assert diff > 0, "the tie cases do not distinguish the rounding modes"
    check_batch(drivers[mode], cases)


EDGE_SHAPES = {
    "conv1d": [dict(t_in=6, c_in=4, c_out=4, kernel=3, stride=1, dilation=1, groups=1, pad_l=1,
                    pad_r=1),
               dict(t_in=3, c_in=1, c_out=4, kernel=1, stride=1, dilation=1, groups=1, pad_l=1,
                    pad_r=0)],
    "conv2d": [dict(t_in=5, f_in=6, c_in=3, c_out=4, kernel_t=3, kernel_f=2, stride_t=1,
                    stride_f=2, dilation_t=1, dilation_f=2, groups=1, pad_t_l=1, pad_t_r=1,
                    pad_f_l=2, pad_f_r=1),
               dict(t_in=2, f_in=3, c_in=1, c_out=4, kernel_t=1, kernel_f=1, stride_t=1,
                    stride_f=1, dilation_t=1, dilation_f=1, groups=1, pad_t_l=0, pad_t_r=1,
                    pad_f_l=1, pad_f_r=0)],
    "conv_transpose1d": [dict(t_in=4, c_in=3, c_out=4, kernel=3, stride=2, dilation=1, groups=1,
                              pad_l=1, pad_r=0, output_padding=1),
                         dict(t_in=3, c_in=1, c_out=4, kernel=1, stride=1, dilation=1, groups=1,
                              pad_l=0, pad_r=0, output_padding=0)],
    "gemm": [dict(m=3, k=12, n=4), dict(m=3, k=1, n=4)],
}


@pytest.mark.parametrize("mode", MODES)
@types_param(CONV_TYPES)
@pytest.mark.parametrize("family", WEIGHTED)
def test_weighted_edges(drivers, family, types, mode):
    """Extreme inputs and weights of both signs, biases at the accumulator's limits, shifts of
    both signs (outputs saturating at both ends of the output type), empty outputs."""
    cases = []
    acc_max = (1 << (types.acc - 1)) - 1
    prod = 1 << (types.x + types.w - 2)  # the largest |w * x|: (-2^(bx-1)) * (-2^(bw-1))
    for p in EDGE_SHAPES[family]:
        xs, ws, c_out = array_shapes(family, p)
        terms = int(np.prod(ws[1:]))
        if terms * prod > acc_max:
            continue  # this accumulator holds fewer full-range products (the next shape)
        room = acc_max - terms * prod
        lo, hi = trange(types.y)
        p = dict(p, act_min=lo, act_max=hi)
        for xv, wv in itertools.product(trange(types.x), trange(types.w)):
            x = np.full(xs, xv, DTYPE[types.x])
            w = np.full(ws, wv, DTYPE[types.w])
            mag = terms * prod
            shift = np.array([mag.bit_length() - types.y + 1, mag.bit_length() - types.y + 2,
                              0, -1])
            for bias in ([0, 0, 0, 0], [room, -room, 5, -5], [-room, room, room, -room]):
                # no left shift out of int64 (an int64 accumulator near its limit)
                safe = [max(int(sh), (abs(bv) + mag).bit_length() - 62)
                        for sh, bv in zip(shift, bias)]
                cases.append(weighted_case(family, types, x, w, np.array(bias, DTYPE[types.acc]),
                                           np.array(safe), p, mode, f"x={xv} w={wv}"))
        for act in ((0, hi), (lo // 3, hi // 5)):  # activation clamps inside the output range
            rng = np.random.default_rng(77)
            x = rand_int(rng, xs, types.x)
            w = fit_weights(x, rand_int(rng, ws, types.w), c_out, types.acc)
            bias = rng.integers(-1000, 1000, size=c_out).astype(DTYPE[types.acc])
            shift = pick_shifts(rng, int(acc_bound(x, w, c_out).max()), types.y, c_out, 1)
            pa = dict(p, act_min=act[0], act_max=act[1])
            cases.append(weighted_case(family, types, x, w, bias, shift, pa, mode, "act"))
    assert cases, "no edge shape fits this accumulator"
    # too short for one output frame: no output at all (C's truncating division must not make
    # a stray frame)
    if family in ("conv1d", "conv2d"):
        for t_in, stride in ((1, 2), (2, 2), (2, 3), (1, 1)):
            if family == "conv1d":
                p = dict(t_in=t_in, c_in=1, c_out=2, kernel=5, stride=stride, dilation=1,
                         groups=1, pad_l=1, pad_r=1, act_min=-5, act_max=5)
            else:
                p = dict(EDGE_SHAPES["conv2d"][1], t_in=t_in, kernel_t=5, stride_t=stride,
                         pad_t_l=1, pad_t_r=1, act_min=-5, act_max=5)
            xs, ws, c_out = array_shapes(family, p)
            c = weighted_case(family, types, np.ones(xs, DTYPE[types.x]),
                              np.ones(ws, DTYPE[types.w]), np.zeros(c_out, DTYPE[types.acc]),
                              np.zeros(c_out), p, mode, "short")
            assert c[2].size == 0
            cases.append(c)
    if family == "conv_transpose1d":  # pads eat the output; frames only the bias reaches
        base = dict(EDGE_SHAPES[family][1], c_out=2, act_min=-5, act_max=5)
        for upd in (dict(kernel=1, pad_l=1, pad_r=2), dict(kernel=2, pad_l=2, pad_r=2),
                    dict(stride=3, kernel=1, output_padding=2)):
            p = dict(base, **upd)
            xs, ws, c_out = array_shapes(family, p)
            cases.append(weighted_case(family, types, np.ones(xs, DTYPE[types.x]),
                                       np.ones(ws, DTYPE[types.w]),
                                       np.array([3, -3], DTYPE[types.acc]), np.array([1, 0]),
                                       p, mode, "short"))
    check_batch(drivers[mode], cases)


def literal_acc(family: str, x, w, bias, p: dict) -> np.ndarray:
    """The spec's accumulator read loop by loop, as written (python ints)."""
    x, w = np.asarray(x), np.asarray(w)
    if family == "gemm":
        acc = np.zeros((p["m"], p["n"]), dtype=object)
        for i in range(p["m"]):
            for j in range(p["n"]):
                acc[i, j] = int(bias[j]) + sum(int(x[i, l]) * int(w[j, l]) for l in range(p["k"]))
        return acc
    cg, og = p["c_in"] // p["groups"], p["c_out"] // p["groups"]
    if family == "conv1d":
        span = p["t_in"] + p["pad_l"] + p["pad_r"] - p["dilation"] * (p["kernel"] - 1) - 1
        t_out = span // p["stride"] + 1 if span >= 0 else 0
        acc = np.zeros((t_out, p["c_out"]), dtype=object)
        for t in range(t_out):
            for co in range(p["c_out"]):
                a = int(bias[co])
                for k in range(p["kernel"]):
                    f = t * p["stride"] + k * p["dilation"] - p["pad_l"]
                    if 0 <= f < p["t_in"]:
                        for i in range(cg):
                            a += int(w[co, k, i]) * int(x[f, (co // og) * cg + i])
                acc[t, co] = a
        return acc
    if family == "conv_transpose1d":  # every (ti, k) pair lands on ti*stride + k*dilation - pad_l
        t_out = max(0, (p["t_in"] - 1) * p["stride"] - p["pad_l"] - p["pad_r"]
                    + p["dilation"] * (p["kernel"] - 1) + p["output_padding"] + 1)
        acc = np.zeros((t_out, p["c_out"]), dtype=object)
        for t in range(t_out):
            for co in range(p["c_out"]):
                acc[t, co] = int(bias[co])
        for ti in range(p["t_in"]):
            for k in range(p["kernel"]):
                t = ti * p["stride"] + k * p["dilation"] - p["pad_l"]
                if 0 <= t < t_out:
                    for co in range(p["c_out"]):
                        for i in range(cg):
                            acc[t, co] += int(w[co, k, i]) * int(x[ti, (co // og) * cg + i])
        return acc

    def out_len(n, k, d, s, lo, hi):
        span = n + lo + hi - d * (k - 1) - 1
        return span // s + 1 if span >= 0 else 0
    t_out = out_len(p["t_in"], p["kernel_t"], p["dilation_t"], p["stride_t"], p["pad_t_l"],
                    p["pad_t_r"])
    f_out = out_len(p["f_in"], p["kernel_f"], p["dilation_f"], p["stride_f"], p["pad_f_l"],
                    p["pad_f_r"])
    acc = np.zeros((t_out, p["c_out"], f_out), dtype=object)
    for t, co, f in itertools.product(range(t_out), range(p["c_out"]), range(f_out)):
        a = int(bias[co])
        for kt in range(p["kernel_t"]):
            ti = t * p["stride_t"] + kt * p["dilation_t"] - p["pad_t_l"]
            for kf in range(p["kernel_f"]):
                fi = f * p["stride_f"] + kf * p["dilation_f"] - p["pad_f_l"]
                if 0 <= ti < p["t_in"] and 0 <= fi < p["f_in"]:
                    for i in range(cg):
                        a += int(w[co, kt, kf, i]) * int(x[ti, (co // og) * cg + i, fi])
        acc[t, co, f] = a
    return acc


@pytest.mark.parametrize("mode", MODES)
@types_param(CONV_TYPES)
@pytest.mark.parametrize("family", WEIGHTED)
def test_weighted_reference_matches_spec_literally(family, types, mode):
    """The vectorized reference against a loop-by-loop reading of the spec with Fractions:
    y = clamp(sat_Y(round(acc / 2^shift)), act_min, act_max)."""
    for seed in range(25 if variant_suffix(types) == "s8" else 12 if types in MAIN_CONV_TYPES
                      else 5):
        rng = np.random.default_rng(9000 + seed)
        p = SHAPES[family](rng)
        if family == "gemm":
            p.update(m=min(p["m"], 6), k=min(p["k"], 6), n=min(p["n"], 6))
        lo, hi = trange(types.y)
        p.update(act_min=lo if seed % 2 else 0, act_max=hi)
        x, w, bias, shift = weighted_data(rng, family, types, p, extreme=seed % 4 == 0,
                                          big_bias=seed % 5 == 0)
        acc = literal_acc(family, x, w, bias, p)
        want = np.zeros(acc.shape, dtype=np.int64)
        channel_axis = 1
        for idx, a in np.ndenumerate(acc):
            s = int(shift[idx[channel_axis]])
            want[idx] = sat(exact_round(Fraction(a) / Fraction(2) ** s, mode), types.y,
                            p["act_min"], p["act_max"])
        got = getattr(ref, family)(x.reshape(-1), w.reshape(-1), bias, shift, **p, mode=mode,
                                   out_bits=types.y)
        assert got.dtype == DTYPE[types.y] and got.shape == want.shape
        assert_same(got, want, f"{family}_{variant_suffix(types)} reference seed={seed} {p}")


def test_accumulator_is_the_bias_type():
    """The bias dtype selects the accumulator: a sum that overflows int32 raises with an int32
    bias and is exact with an int64 one; |bias| + sum |w*x| is what must fit (partial sums of
    any order), and the limits themselves are fine."""
    x, w = np.array([-32768], np.int16), np.array([-32768], np.int16)  # w*x = 2^30
    p = dict(m=1, k=1, n=1, act_min=-32768, act_max=32767, mode="half_up")
    ok = ref.gemm(x, w, np.array([2**30 - 1], np.int32), [16], **p)  # 2^31 - 1: the limit
    assert ok.tolist() == [[32768 - 1]] and ok.dtype == np.int16
    with pytest.raises(OverflowError):
        ref.gemm(x, w, np.array([2**30], np.int32), [16], **p)
    wide = ref.gemm(x, w, np.array([2**30], np.int64), [16], **p)
    assert wide.tolist() == [[32767]]
    # the final sum fits int32, a partial sum does not: rejected (C's order is not promised)
    x2, w2 = np.array([127, -128], np.int8), np.array([127, 127], np.int8)
    with pytest.raises(OverflowError):
        ref.gemm(x2, w2, np.array([2**31 - 100], np.int32), [0], m=1, k=2, n=1, act_min=-128,
                 act_max=127, mode="half_up")
    with pytest.raises(OverflowError):  # int64: |bias| + products past 2^63 - 1
        ref.gemm(x, w, np.array([2**63 - 2**29], np.int64), [40], **p)
    for family, args in (("conv2d", dict(t_in=1, f_in=1, c_in=1, c_out=1, kernel_t=1,
                                         kernel_f=1, stride_t=1, stride_f=1, dilation_t=1,
                                         dilation_f=1, groups=1, pad_t_l=0, pad_t_r=0,
                                         pad_f_l=0, pad_f_r=0)),
                         ("conv_transpose1d", dict(t_in=1, c_in=1, c_out=1, kernel=1, stride=1,
                                                   dilation=1, groups=1, pad_l=0, pad_r=0,
                                                   output_padding=0)),
                         ("conv1d", dict(t_in=1, c_in=1, c_out=1, kernel=1, stride=1,
                                         dilation=1, groups=1, pad_l=0, pad_r=0))):
        with pytest.raises(OverflowError):
            getattr(ref, family)(np.full(1, -128, np.int8), np.full(1, -128, np.int8),
                                 np.array([2**31 - 100], np.int32), [0], act_min=-128,
                                 act_max=127, mode="half_up", **args)
    with pytest.raises(TypeError):  # a list has no accumulator type
        ref.gemm(x, w, [0], [0], **p)
    with pytest.raises(TypeError):  # int32 data is not an activation type
        ref.gemm(x.astype(np.int32), w, np.array([0], np.int32), [0], **p)
    with pytest.raises(ValueError):  # activation bounds outside the output type
        ref.gemm(x, w, np.array([0], np.int32), [0], m=1, k=1, n=1, act_min=-129, act_max=0,
                 mode="half_up", out_bits=8)


def test_conv2d_layout_matches_onnxruntime():
    """Pins the layout: ONNX Conv on [1, C, F, T] (time on W) with W [co][cg][kf][kt] is the
    reference's float sum on x[t][c][f] with w[co][kt][kf][i], y[t][co][f]."""
    from onnx import helper
    rng = np.random.default_rng(11900)
    for _ in range(20):
        p = conv2d_shapes(rng)
        cg = p["c_in"] // p["groups"]
        x = rng.standard_normal((p["t_in"], p["c_in"], p["f_in"]))
        w_onnx = rng.standard_normal((p["c_out"], cg, p["kernel_f"], p["kernel_t"]))
        node = helper.make_node(
            "Conv", ["x", "w"], ["y"], kernel_shape=[p["kernel_f"], p["kernel_t"]],
            strides=[p["stride_f"], p["stride_t"]], dilations=[p["dilation_f"], p["dilation_t"]],
            pads=[p["pad_f_l"], p["pad_t_l"], p["pad_f_r"], p["pad_t_r"]], group=p["groups"])
        feeds = {"x": x.transpose(1, 2, 0)[None].astype(np.float32),
                 "w": w_onnx.astype(np.float32)}
        want = _onnx_session(node, feeds, "y", 4)[0].transpose(2, 0, 1)  # -> [t][co][f]
        got = ref._conv2d_acc(
            feeds["x"][0].transpose(2, 0, 1).astype(np.float64),
            feeds["w"].transpose(0, 3, 2, 1).astype(np.float64),
            **{k: p[k] for k in ("groups", "stride_t", "stride_f", "dilation_t", "dilation_f",
                                 "pad_t_l", "pad_t_r", "pad_f_l", "pad_f_r")})
        assert got.shape == want.shape, (got.shape, want.shape, p)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4, err_msg=str(p))


def _convt_t_out(p: dict) -> int:
    return max(0, (p["t_in"] - 1) * p["stride"] - p["pad_l"] - p["pad_r"]
               + p["dilation"] * (p["kernel"] - 1) + p["output_padding"] + 1)


def test_conv_transpose1d_matches_onnxruntime():
    """Pins the index convention: the reference's float sum (weights rearranged from ONNX's
    [c_in][c_out/g][k] to [c_out][k][c_in/g]) equals onnxruntime ConvTranspose."""
    from onnx import helper
    rng = np.random.default_rng(15900)
    for _ in range(40):
        p = convt_shapes(rng)
        groups, cg, og = p["groups"], p["c_in"] // p["groups"], p["c_out"] // p["groups"]
        x = rng.standard_normal((p["t_in"], p["c_in"])).astype(np.float32)
        w_onnx = rng.standard_normal((p["c_in"], og, p["kernel"])).astype(np.float32)
        bias = rng.standard_normal(p["c_out"]).astype(np.float32)
        node = helper.make_node(
            "ConvTranspose", ["x", "w", "b"], ["y"], kernel_shape=[p["kernel"]],
            strides=[p["stride"]], dilations=[p["dilation"]], pads=[p["pad_l"], p["pad_r"]],
            output_padding=[p["output_padding"]], group=groups)
        if _convt_t_out(p) == 0:
            continue  # onnxruntime rejects an empty output
        want = _onnx_session(node, {"x": x.T[None], "w": w_onnx, "b": bias}, "y", 3)[0].T
        w = (w_onnx.reshape(groups, cg, og, p["kernel"]).transpose(0, 2, 3, 1)
             .reshape(p["c_out"], p["kernel"], cg))
        got = ref._conv_transpose1d_acc(x.astype(np.float64), w.astype(np.float64),
                                        t_out=_convt_t_out(p), stride=p["stride"],
                                        dilation=p["dilation"], groups=groups,
                                        pad_l=p["pad_l"]) + bias[None, :]
        assert got.shape == want.shape, (got.shape, want.shape, p)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4, err_msg=str(p))


def _onnx_session(node, inputs: dict, output: str, out_rank: int):
    """A one-node float onnxruntime session (opset 17); inputs: name -> float32 array."""
    import onnx
    from onnx import TensorProto, helper
    ort = pytest.importorskip("onnxruntime")
    graph = helper.make_graph(
        [node], "g",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, list(a.shape))
         for n, a in inputs.items()],
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, [None] * out_rank)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])
    return sess.run(None, inputs)[0]


# ---------------------------------------------------------------------------------- add

def add_case(t: KernelTypes, a, b, p: dict, mode: str, desc: str = "") -> tuple:
    want = ref.add(a, b, **p, mode=mode, out_bits=t.y)
    return case("add", t, p, [a, b], want, desc)


ADD_SHIFTS = [(0, 0, 1), (0, 0, 0), (0, 3, 2), (2, 0, 3), (0, 5, 6), (1, 0, -1), (0, 0, -2),
              (0, 7, 9), (4, 0, 1), (8, 0, 0), (0, 8, 16)]
#: the int32 paths' limits for int8 and int16 inputs (exact sums: scale 2^(shift - shift_out)
#: up to 2^22 / 2^14; rounded: shift_out up to 31, an alignment up to 2^22 / 2^14) and the
#: power of two both alignments share, which cancels against shift_out
ADD_PATH_SHIFTS = [(0, 0, -14), (0, 0, -15), (0, 0, -22), (0, 0, -23), (14, 0, 0), (0, 15, 0),
                   (0, 0, 31), (0, 0, 32), (0, 14, 31), (15, 0, 31), (0, 22, 31), (23, 0, 31),
                   (3, 5, 4), (2, 2, 1), (5, 3, 2), (1, 1, 1), (6, 6, 9), (40, 41, 45),
                   (20, 20, 60), (7, 9, 3)]


@pytest.mark.parametrize("mode", MODES)
@types_param(ADD_TYPES)
def test_add(drivers, types, mode):
    cases = []
    (alo, ahi), (blo, bhi) = trange(types.x), trange(types.x2)
    if variant_suffix(types) == "s8":  # all 65536 input pairs
        a_all, b_all = (v.reshape(-1) for v in np.meshgrid(np.arange(-128, 128),
                                                           np.arange(-128, 128)))
    else:  # the extremes of both types against each other, plus random pairs
        rng = np.random.default_rng(3100)
        ea = np.array([alo, alo + 1, -2, -1, 0, 1, 2, ahi - 1, ahi])
        eb = np.array([blo, blo + 1, -2, -1, 0, 1, 2, bhi - 1, bhi])
        ga, gb = (v.reshape(-1) for v in np.meshgrid(ea, eb))
        a_all = np.concatenate([ga, rand_int(rng, 3000, types.x)])
        b_all = np.concatenate([gb, rand_int(rng, 3000, types.x2)])
    a_all, b_all = a_all.astype(DTYPE[types.x]), b_all.astype(DTYPE[types.x2])
    lo, hi = trange(types.y)
    extra = max(0, max(types.x, types.x2) - types.y)  # shifts that land int16 sums on int8
    limits = [(0, 0, extra), (0, 0, extra + 1), (47, 0, 47), (0, 47, 50), (47, 47, 62)]
    for shift_a, shift_b, shift_out in ADD_SHIFTS + ADD_PATH_SHIFTS + limits:
        act = (0, hi) if shift_out == 2 else (lo, hi)
        p = dict(n=a_all.size, shift_a=shift_a, shift_b=shift_b, shift_out=shift_out,
                 act_min=act[0], act_max=act[1])
        cases.append(add_case(types, a_all, b_all, p, mode, "grid"))
    for seed in range(30):
        rng = np.random.default_rng(3000 + seed)
        n = int(rng.integers(0, 50))
        lo_a, hi_a = rand_act(rng, types.y)
        p = dict(n=n, shift_a=int(rng.integers(0, 8)), shift_b=int(rng.integers(0, 8)),
                 shift_out=int(rng.integers(-3, 12 + extra)), act_min=lo_a, act_max=hi_a)
        a = rand_int(rng, n, types.x, seed % 3 == 0)
        b = rand_int(rng, n, types.x2, seed % 3 == 0)
        cases.append(add_case(types, a, b, p, mode, f"seed={seed}"))
    check_batch(drivers[mode], cases)


@pytest.mark.parametrize("mode", MODES)
@types_param(ADD_TYPES)
def test_add_reference_exact(types, mode):
    rng = np.random.default_rng(11)
    for _ in range(30):
        sa, sb = int(rng.integers(0, 6)), int(rng.integers(0, 6))
        so = int(rng.integers(-2, 9 + abs(types.x - types.y)))
        a, b = rand_int(rng, 40, types.x), rand_int(rng, 40, types.x2)
        got = ref.add(a, b, n=40, shift_a=sa, shift_b=sb, shift_out=so,
                      act_min=trange(types.y)[0], act_max=trange(types.y)[1], mode=mode,
                      out_bits=types.y)
        want = [sat(exact_round(Fraction(int(x) * 2**sa + int(y) * 2**sb) / Fraction(2) ** so,
                                mode), types.y) for x, y in zip(a, b)]
        assert got.dtype == DTYPE[types.y]
        assert_same(got, np.array(want), f"add reference {mode} {sa} {sb} {so}")
    with pytest.raises(ValueError):  # the alignment shifts are bounded (int64 sums)
        ref.add(a, b, n=40, shift_a=48, shift_b=0, shift_out=0, act_min=0, act_max=0, mode=mode)


# ------------------------------------------------------------------------------ avgpool

def avgpool_literal(x, p: dict, mode: str, out_bits: int) -> np.ndarray:
    t_in, ch, kernel, stride = p["t_in"], p["channels"], p["kernel"], p["stride"]
    span = t_in + p["pad_l"] + p["pad_r"] - kernel
    t_out = span // stride + 1 if span >= 0 else 0
    x = np.asarray(x).reshape(t_in, ch)
    y = np.zeros((t_out, ch), dtype=np.int64)
    for t in range(t_out):
        frames = [t * stride + k - p["pad_l"] for k in range(kernel)]
        frames = [f for f in frames if 0 <= f < t_in]
        count = kernel if p["count_include_pad"] else len(frames)
        for c in range(ch):
            s = sum(int(x[f, c]) for f in frames)
            if count == 0:
                y[t, c] = 0
                continue
            # real average * 2^(e_in - e_out) = s / count * 2^-shift
            y[t, c] = sat(exact_round(Fraction(s, count) / Fraction(2) ** p["shift"], mode),
                          out_bits)
    return y


def avgpool_params(rng, t: KernelTypes) -> dict:
    kernel = int(rng.integers(1, 6))
    lo = -3 + min(0, t.y - t.x)  # int16 -> int8 needs coarser exponents: larger shifts
    return dict(t_in=int(rng.integers(1, 16)), channels=int(rng.integers(1, 7)), kernel=kernel,
                stride=int(rng.integers(1, 4)), pad_l=int(rng.integers(0, kernel + 1)),
                pad_r=int(rng.integers(0, kernel + 1)),
                count_include_pad=int(rng.integers(0, 2)),
                shift=int(rng.integers(lo, 4 + max(0, t.x - t.y))))


@pytest.mark.parametrize("mode", MODES)
@types_param(XY_TYPES)
def test_avgpool1d(drivers, types, mode):
    cases = []
    for seed in range(300):
        rng = np.random.default_rng(4000 + seed)
        p = avgpool_params(rng, types)
        if seed % 10 == 0:
            p.update(pad_l=p["kernel"] + 1, count_include_pad=0)  # windows with no frame
        x = rand_int(rng, (p["t_in"], p["channels"]), types.x, seed % 4 == 0)
        want = ref.avgpool1d(x, **p, mode=mode, out_bits=types.y)
        cases.append(case("avgpool1d", types, p, [x], want, f"seed={seed}"))
    for t_in, stride, channels in ((1, 2, 1), (2, 2, 3), (2, 3, 2), (1, 1, 1)):  # too short
        p = dict(t_in=t_in, channels=channels, kernel=4, stride=stride, pad_l=1, pad_r=0,
                 count_include_pad=1, shift=0)
        x = np.ones((t_in, channels), dtype=DTYPE[types.x])
        want = ref.avgpool1d(x, **p, mode=mode, out_bits=types.y)
        assert want.size == 0
        cases.append(case("avgpool1d", types, p, [x], want, "short"))
    lo, hi = trange(types.x)
    for cip in (0, 1):  # all-equal windows of +-odd values over 2 or 4 frames: exact ties
        for v in (lo, hi, 1, -1, 3, -3, lo + 1):
            for shift in (1, -2, 9, 40, -40):
                p = dict(t_in=8, channels=3, kernel=4, stride=2, pad_l=1, pad_r=2,
                         count_include_pad=cip, shift=shift)
                x = np.full((8, 3), v, dtype=DTYPE[types.x])
                want = ref.avgpool1d(x, **p, mode=mode, out_bits=types.y)
                cases.append(case("avgpool1d", types, p, [x], want, f"ties v={v}"))
    check_batch(drivers[mode], cases)


#: shifts that reach each avgpool path for int8 and int16 inputs: the reciprocal (small |shift|),
#: the int32 division (sums * 2^-shift or divisors too large for an exact reciprocal) and int64
AVGPOOL_PATH_SHIFTS = [-24, -22, -21, -19, -17, -15, -14, -13, -11, -10, -9, -8, -4, -1, 0, 1, 2,
                       3, 7, 12, 13, 14, 15, 16, 20, 29, 30, 31, 33]


@pytest.mark.parametrize("mode", MODES)
@types_param(XY_TYPES)
def test_avgpool1d_paths(drivers, types, mode):
    """Every rounding path and window edge: kernels 3 and 4 (odd and even divisors: ties only
    with even ones) padded by 2 on both sides (edge windows of 1, 2 and 3 frames, count with and
    without the padding), 9 channels (two blocks of 4 and a tail), extreme and random rows."""
    lo, hi = trange(types.x)
    rng = np.random.default_rng(4400)
    rows = [np.full(9, lo), np.full(9, hi), np.full(9, -1), np.full(9, 1),
            rand_int(rng, 9, types.x, True), rand_int(rng, 9, types.x), np.full(9, lo + 1)]
    cases = []
    for shift, kernel, cip in itertools.product(AVGPOOL_PATH_SHIFTS, (3, 4), (0, 1)):
        p = dict(t_in=7, channels=9, kernel=kernel, stride=1, pad_l=2, pad_r=2,
                 count_include_pad=cip, shift=shift)
        for order in (rows, rows[::-1]):
            x = np.stack(order).astype(DTYPE[types.x])
            want = ref.avgpool1d(x, **p, mode=mode, out_bits=types.y)
            cases.append(case("avgpool1d", types, p, [x], want, f"paths shift={shift}"))
    if types.x == 8:  # every int8 window sum (one per channel) at every shift up to int64
        for shift, kernel in itertools.product(range(-23, 32), (3, 4)):
            x = every_sum(kernel, lo, hi).astype(np.int8)
            p = dict(t_in=kernel, channels=x.shape[1], kernel=kernel, stride=1, pad_l=0,
                     pad_r=0, count_include_pad=1, shift=shift)
            want = ref.avgpool1d(x, **p, mode=mode, out_bits=types.y)
            cases.append(case("avgpool1d", types, p, [x], want, f"every sum shift={shift}"))
    check_batch(drivers[mode], cases)


def every_sum(frames: int, lo: int, hi: int) -> np.ndarray:
    """[frames][channels] values in [lo, hi] whose column sums are every value of
    [frames * lo, frames * hi], one per channel."""
    rest = np.arange(frames * lo, frames * hi + 1)
    rows = []
    for f in range(frames):
        left = frames - f - 1  # the other rows can still add [left * lo, left * hi]
        v = np.clip(rest - left * lo, lo, hi) if left else rest
        v = np.maximum(v, rest - left * hi)
        rows.append(v)
        rest = rest - v
    x = np.stack(rows)
    assert x.min() >= lo and x.max() <= hi
    assert np.array_equal(x.sum(axis=0), np.arange(frames * lo, frames * hi + 1))
    return x


@pytest.mark.parametrize("mode", MODES)
@types_param(XY_TYPES)
def test_avgpool1d_reference_matches_spec_literally(types, mode):
    for seed in range(80):
        rng = np.random.default_rng(4000 + seed)
        p = avgpool_params(rng, types)
        x = rand_int(rng, (p["t_in"], p["channels"]), types.x, seed % 3 == 0)
        assert_same(ref.avgpool1d(x, **p, mode=mode, out_bits=types.y),
                    avgpool_literal(x, p, mode, types.y), f"avgpool reference {p}")


# ----------------------------------------------------------------------------- maxpool1d

def maxpool_params(rng, t: KernelTypes) -> dict:
    kernel, dilation = int(rng.integers(1, 6)), int(rng.integers(1, 4))
    field = dilation * (kernel - 1) + 1
    pad_l, pad_r = int(rng.integers(0, field + 1)), int(rng.integers(0, field + 1))
    lo, hi = trange(t.x)
    return dict(t_in=int(rng.integers(max(1, field - pad_l - pad_r - 1), field + 12)),
                channels=int(rng.integers(1, 7)), kernel=kernel, stride=int(rng.integers(1, 4)),
                dilation=dilation, pad_l=pad_l, pad_r=pad_r,
                pad_value=int(rng.choice([lo, lo, 0, 5, hi, -3])),
                shift=int(rng.choice([0, 0, 1, 2, 3, -1, -2, 7, t.x - t.y, t.x - t.y + 1])))


def maxpool_literal(x, p: dict, mode: str, out_bits: int) -> np.ndarray:
    """The spec read loop by loop: window max with pad_value outside [0, t_in), exact rounding."""
    span = p["t_in"] + p["pad_l"] + p["pad_r"] - p["dilation"] * (p["kernel"] - 1) - 1
    t_out = span // p["stride"] + 1 if span >= 0 else 0
    x = np.asarray(x).reshape(p["t_in"], p["channels"])
    y = np.zeros((t_out, p["channels"]), dtype=np.int64)
    for t in range(t_out):
        for c in range(p["channels"]):
            vals = []
            for k in range(p["kernel"]):
                f = t * p["stride"] + k * p["dilation"] - p["pad_l"]
                vals.append(int(x[f, c]) if 0 <= f < p["t_in"] else p["pad_value"])
            y[t, c] = sat(exact_round(Fraction(max(vals)) / Fraction(2) ** p["shift"], mode),
                          out_bits)
    return y


@pytest.mark.parametrize("mode", MODES)
@types_param(XY_TYPES)
def test_maxpool1d(drivers, types, mode):
    cases, diff = [], 0
    for seed in range(300):
        rng = np.random.default_rng(10000 + seed)
        p = maxpool_params(rng, types)
        if seed % 10 == 0:  # windows entirely in the padding
            p.update(pad_l=p["dilation"] * (p["kernel"] - 1) + 2, pad_value=-7)
        x = rand_int(rng, (p["t_in"], p["channels"]), types.x, seed % 4 == 0)
        want = ref.maxpool1d(x, **p, mode=mode, out_bits=types.y)
        cases.append(case("maxpool1d", types, p, [x], want, f"seed={seed}"))
        diff += int(np.sum(ref.maxpool1d(x, **p, mode=other(mode), out_bits=types.y) != want))
    lo, hi = trange(types.x)
    for v in (lo, hi):  # edge values everywhere, padding of both extremes
        for pad_value in (lo, hi):
            for shift in (0, 1, -1, 8, types.x - types.y):
                p = dict(t_in=7, channels=3, kernel=3, stride=2, dilation=2, pad_l=2, pad_r=3,
                         pad_value=pad_value, shift=shift)
                x = np.full((7, 3), v, dtype=DTYPE[types.x])
                cases.append(case("maxpool1d", types, p, [x],
                                  ref.maxpool1d(x, **p, mode=mode, out_bits=types.y), "edges"))
    for t_in, stride in ((1, 2), (2, 2), (2, 3), (1, 1)):  # too short: no output frame
        p = dict(t_in=t_in, channels=2, kernel=4, stride=stride, dilation=1, pad_l=1, pad_r=0,
                 pad_value=lo, shift=0)
        x = np.ones((t_in, 2), DTYPE[types.x])
        want = ref.maxpool1d(x, **p, mode=mode, out_bits=types.y)
        assert want.size == 0
        cases.append(case("maxpool1d", types, p, [x], want, "short"))
    assert diff > 0, "no maxpool case distinguishes the rounding modes"
    check_batch(drivers[mode], cases)


@pytest.mark.parametrize("mode", MODES)
@types_param(XY_TYPES)
def test_maxpool1d_reference_matches_spec_literally(types, mode):
    for seed in range(100):
        rng = np.random.default_rng(10000 + seed)
        p = maxpool_params(rng, types)
        x = rand_int(rng, (p["t_in"], p["channels"]), types.x, seed % 3 == 0)
        assert_same(ref.maxpool1d(x.reshape(-1), **p, mode=mode, out_bits=types.y),
                    maxpool_literal(x, p, mode, types.y), f"maxpool reference {p}")


def test_maxpool1d_matches_onnxruntime():
    """The type's minimum as padding is ONNX's -inf padding (shift 0: an exact float max)."""
    from onnx import helper
    rng = np.random.default_rng(10500)
    for t in SAME_TYPES:
        for _ in range(12):
            p = maxpool_params(rng, t)
            p.update(pad_value=trange(t.x)[0], shift=0, pad_l=min(p["pad_l"], p["kernel"] - 1),
                     pad_r=min(p["pad_r"], p["kernel"] - 1))  # ONNX: pads < kernel
            x = rand_int(rng, (p["t_in"], p["channels"]), t.x)
            node = helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[p["kernel"]],
                                    strides=[p["stride"]], dilations=[p["dilation"]],
                                    pads=[p["pad_l"], p["pad_r"]])
            want = _onnx_session(node, {"x": x.T[None].astype(np.float32)}, "y", 3)[0].T
            got = ref.maxpool1d(x, **p, mode="half_even")
            assert_same(got, want.astype(np.int64), f"maxpool vs onnxruntime {p}")


# -------------------------------------------------------------------------------- reduce

def reduce_literal(x, p: dict, mode: str, out_bits: int) -> np.ndarray:
    x = np.asarray(x).reshape(p["outer"], p["length"], p["inner"])
    y = np.zeros((p["outer"], p["inner"]), dtype=np.int64)
    for o in range(p["outer"]):
        for i in range(p["inner"]):
            vals = [int(x[o, j, i]) for j in range(p["length"])]
            if not vals:
                continue
            if p["op"] == 0:  # real mean * 2^(e_in - e_out) = sum / length * 2^-shift
                v = Fraction(sum(vals), p["length"]) / Fraction(2) ** p["shift"]
            else:
                v = Fraction(max(vals) if p["op"] == 1 else sum(vals)) / Fraction(2) ** p["shift"]
            y[o, i] = sat(exact_round(v, mode), out_bits)
    return y


def reduce_params(rng, t: KernelTypes) -> dict:
    return dict(outer=int(rng.integers(0, 5)), length=int(rng.integers(0, 24)),
                inner=int(rng.integers(0, 6)), op=int(rng.integers(0, 3)),
                shift=int(rng.integers(-3, 8 + max(0, t.x - t.y))))


@pytest.mark.parametrize("mode", MODES)
@types_param(XY_TYPES)
def test_reduce(drivers, types, mode):
    cases, diff = [], 0
    for seed in range(250):
        rng = np.random.default_rng(12000 + seed)
        p = reduce_params(rng, types)
        if seed % 9 == 0:
            p["length"] = 0
        x = rand_int(rng, (p["outer"], p["length"], p["inner"]), types.x, seed % 4 == 0)
        want = ref.reduce(x, **p, mode=mode, out_bits=types.y)
        cases.append(case("reduce", types, p, [x], want, f"seed={seed}"))
        diff += int(np.sum(ref.reduce(x, **p, mode=other(mode), out_bits=types.y) != want))
    lo, hi = trange(types.x)
    for op in (0, 1, 2):  # all-equal odd values over 2 or 4 frames: mean ties after shift 1
        for v in (lo, hi, 1, -1, 3, -3):
            for length in (2, 4):
                p = dict(outer=2, length=length, inner=3, op=op, shift=1)
                x = np.full((2, length, 3), v, dtype=DTYPE[types.x])
                cases.append(case("reduce", types, p, [x],
                                  ref.reduce(x, **p, mode=mode, out_bits=types.y), "ties"))
    deepest = -40 if types.x == 8 else -32  # sum * 2^-shift of 65535 extreme values fits int64
    for v in (lo, hi):  # the longest reductions at the extreme shifts (int64 sums and means)
        for op in (0, 1, 2):
            for shift in (deepest, -1, 0, 1, 8, 23, 24, 40):
                p = dict(outer=1, length=65535, inner=1, op=op, shift=shift)
                x = np.full(65535, v, dtype=DTYPE[types.x])
                cases.append(case("reduce", types, p, [x],
                                  ref.reduce(x, **p, mode=mode, out_bits=types.y), "long"))
    assert diff > 0
    check_batch(drivers[mode], cases)


@pytest.mark.parametrize("mode", MODES)
@types_param(XY_TYPES)
def test_reduce_reference_matches_spec_literally(types, mode):
    for seed in range(150):
        rng = np.random.default_rng(12000 + seed)
        p = reduce_params(rng, types)
        x = rand_int(rng, (p["outer"], p["length"], p["inner"]), types.x, seed % 3 == 0)
        assert_same(ref.reduce(x.reshape(-1), **p, mode=mode, out_bits=types.y),
                    reduce_literal(x, p, mode, types.y), f"reduce reference {p}")
    x = np.full(65535, trange(types.x)[0], dtype=DTYPE[types.x])  # sum * 2^-shift still fits
    p = dict(outer=1, length=65535, inner=1, op=0, shift=-40 if types.x == 8 else -32)
    assert_same(ref.reduce(x, **p, mode=mode, out_bits=types.y),
                reduce_literal(x, p, mode, types.y), "long mean")


def test_reduce_rejects_overflow():
    x = np.ones(2, np.int8)
    with pytest.raises(OverflowError):  # length * 2^62 does not fit int64
        ref.reduce(x, outer=1, length=2, inner=1, op=0, shift=62, mode="half_up")
    with pytest.raises(OverflowError):  # 2^63
        ref.reduce(x, outer=1, length=2, inner=1, op=0, shift=-63, mode="half_up")
    with pytest.raises(OverflowError):  # sum * 2^48 with an int16 sum of 2^16 * 2^15
        ref.reduce(np.full(65536, -32768, np.int16), outer=1, length=65536, inner=1, op=0,
                   shift=-48, mode="half_up")
    with pytest.raises(ValueError):
        ref.reduce(x, outer=1, length=2, inner=1, op=3, shift=0, mode="half_up")
    with pytest.raises(OverflowError):  # avgpool's 2^shift
        ref.avgpool1d(x, t_in=2, channels=1, kernel=1, stride=1, pad_l=0, pad_r=0,
                      count_include_pad=0, shift=63, mode="half_up")


# ------------------------------------------------------------------------------- softmax

def softmax_literal(x, table, p: dict, mode: str, out_bits: int) -> np.ndarray:
    x = np.asarray(x).reshape(p["rows"], p["cols"])
    t = [int(v) for v in np.asarray(table).reshape(-1)]
    lo_size = 1 << p["lo_bits"]
    lo, hi = t[:lo_size], t[lo_size:]
    y = np.zeros((p["rows"], p["cols"]), dtype=np.int64)
    for r in range(p["rows"]):
        row = [int(v) for v in x[r]]
        if not row:
            continue
        e = []
        for v in row:
            d = max(row) - v
            k = d >> p["lo_bits"]
            e.append(exact_round(Fraction(lo[d % lo_size] * hi[k], 2 ** p["scale_bits"]), mode)
                     if k < p["hi_len"] else 0)
        s = sum(e)
        for j in range(p["cols"]):
            y[r, j] = 0 if s == 0 else sat(exact_round(Fraction(e[j] * 2 ** p["out_frac"], s),
                                                       mode), out_bits)
    return y


def softmax_setups(rng, t: KernelTypes, mode: str) -> list[tuple[dict, np.ndarray]]:
    """(params without rows/cols, table): softmax_plan's for several input exponents, and
    arbitrary valid tables (whole entry range, tiny values with ties and zero rows, zeros)."""
    setups = []
    for e in (-12, -8, -6, -3, 0, 1):
        params, arrays = ref.softmax_plan(e, t.x, t.y, mode)
        setups.append((params, arrays["table"]))
    for kind in range(6):
        lo_bits = int(rng.integers(0, 9)) if kind < 4 else 8
        hi_len = int(rng.integers(1, min(1 << (16 - lo_bits), 300) + 1))
        scale = int(rng.integers(0, 31))
        lo = rng.integers(0, 2**30 + 1, size=1 << lo_bits)
        hi = rng.integers(0, 2**scale + 1, size=hi_len)
        if kind == 1:
            lo, hi = np.full(lo.size, 2**30), np.full(hi_len, 2**scale)
        if kind == 2:  # tiny values: many exact ties, some zero rows
            lo, hi = rng.integers(0, 4, size=lo.size), rng.integers(0, 3, size=hi_len)
            scale = 1  # e = round(lo * hi / 2): ties there too
        if kind == 3:
            lo, hi = np.zeros(lo.size), np.zeros(hi_len)
        params = dict(out_frac=int(rng.integers(0, 17)), lo_bits=lo_bits, hi_len=hi_len,
                      scale_bits=scale)
        setups.append((params, np.concatenate([lo, hi]).astype(np.int32)))
    return setups


def softmax_case(t: KernelTypes, x, table, p: dict, mode: str, desc: str = "") -> tuple:
    want = ref.softmax(x, table, **p, mode=mode, out_bits=t.y)
    return case("softmax", t, p, [table, x], want, desc)


@pytest.mark.parametrize("mode", MODES)
@types_param(XY_TYPES)
def test_softmax(drivers, types, mode):
    cases, diff = [], 0
    setups = softmax_setups(np.random.default_rng(13000), types, mode)
    lo, hi = trange(types.x)
    for seed in range(250):
        rng = np.random.default_rng(13000 + seed)
        params, table = setups[seed % len(setups)]
        p = dict(params, rows=int(rng.integers(0, 6)), cols=int(rng.integers(0, 20)))
        x = rand_int(rng, (p["rows"], p["cols"]), types.x, seed % 4 == 0)
        if seed % 5 == 0:  # narrow rows: several entries share the max
            x = rng.integers(-2, 2, size=(p["rows"], p["cols"])).astype(DTYPE[types.x])
        if seed % 5 == 1:  # a spread that the plan's exp covers
            x = (rng.integers(-300, 300, size=(p["rows"], p["cols"]))
                 .clip(lo, hi).astype(DTYPE[types.x]))
        cases.append(softmax_case(types, x, table, p, mode, f"seed={seed}"))
        diff += int(np.sum(ref.softmax(x, table, **p, mode=other(mode), out_bits=types.y)
                           != cases[-1][2]))
    # exact ties: 4 equal entries with out_frac 1 (2/4), 2 equal entries with an odd e
    for t0, cols, out_frac in ((1, 4, 1), (3, 2, 0), (5, 2, 0), (1, 4, 3)):
        table = np.zeros(257, np.int32)
        table[0], table[256] = t0, 1
        p = dict(rows=2, cols=cols, out_frac=out_frac, lo_bits=8, hi_len=1, scale_bits=0)
        x = np.array([[lo] * cols, [hi] * cols], dtype=DTYPE[types.x])
        cases.append(softmax_case(types, x, table, p, mode, "ties"))
        diff += int(np.sum(ref.softmax(x, table, **p, mode=other(mode), out_bits=types.y)
                           != cases[-1][2]))
    # edge rows: both extremes together (the largest distance), one column, all equal
    for x in ([[lo, hi, lo]], [[hi]], [[lo]], [[hi] * 16], [[lo] * 5 + [hi]]):
        x = np.array(x, dtype=DTYPE[types.x])
        for params, table in setups[:2] + setups[6:8]:
            for out_frac in (0, 7, 15, 16):
                p = dict(params, rows=x.shape[0], cols=x.shape[1], out_frac=out_frac)
                cases.append(softmax_case(types, x, table, p, mode, "edges"))
    assert diff > 0
    check_batch(drivers[mode], cases)


@pytest.mark.parametrize("mode", MODES)
@types_param(XY_TYPES)
def test_softmax_reference_matches_spec_literally(types, mode):
    setups = softmax_setups(np.random.default_rng(13500), types, mode)
    for seed in range(100):
        rng = np.random.default_rng(13500 + seed)
        params, table = setups[seed % len(setups)]
        p = dict(params, rows=int(rng.integers(0, 5)), cols=int(rng.integers(0, 12)))
        x = rand_int(rng, (p["rows"], p["cols"]), types.x, seed % 3 == 0)
        assert_same(ref.softmax(x.reshape(-1), table, **p, mode=mode, out_bits=types.y),
                    softmax_literal(x, table, p, mode, types.y), f"softmax reference {p}")


@pytest.mark.parametrize("mode", MODES)
@types_param(XY_TYPES)
def test_softmax_plan_meaning(types, mode):
    """softmax_plan's tables: lo[j] = round(exp(-j 2^e) 2^S) and hi[k] = round(exp(-256 k 2^e)
    2^S) exactly rounded, trailing zeros of hi dropped; softmax with them is the float softmax
    of x * 2^e times 2^(bits-1) within one step (saturated at the top)."""
    for exp_in in (-14, -11, -8, -5, -3, -1, 0, 2):
        params, arrays = ref.softmax_plan(exp_in, types.x, types.y, mode)
        table, S = arrays["table"], params["scale_bits"]
        assert params["out_frac"] == types.y - 1 and params["lo_bits"] == 8
        assert S == ref.SOFTMAX_SCALE[types.y]
        assert table.dtype == np.int32 and table.size == 256 + params["hi_len"]
        lo, hi = table[:256].astype(np.int64), table[256:].astype(np.int64)
        assert lo[0] == 2**S and hi[0] == 2**S and hi[-1] > 0
        assert np.all(np.diff(lo) <= 0) and np.all(np.diff(hi) <= 0) and lo.min() >= 0
        if types.x == 8:
            assert params["hi_len"] == 1
        for j in range(0, 256, 5):
            v = Fraction(math.exp(-j * 2.0**exp_in)) * 2**S
            if abs(v - math.floor(v) - Fraction(1, 2)) > Fraction(1, 10**6):  # off host-ulp ties
                assert lo[j] == exact_round(v, mode), (exp_in, j)
        if types.x == 16 and params["hi_len"] < 256:  # the first dropped entry rounds to 0
            assert math.exp(-256 * params["hi_len"] * 2.0**exp_in) * 2**S < 0.5 + 1e-9
        rng = np.random.default_rng(13900 - exp_in)
        lo_x, hi_x = trange(types.x)
        for spread in (8, 200, 4000, 70000):
            x = rng.integers(-spread, spread, size=(30, 10)).clip(lo_x, hi_x).astype(DTYPE[types.x])
            got = ref.softmax(x, table, rows=30, cols=10, **params, mode=mode, out_bits=types.y)
            xi = x.astype(np.float64)
            z = np.exp((xi - xi.max(axis=1, keepdims=True)) * 2.0**exp_in)
            real = np.minimum(z / z.sum(axis=1, keepdims=True) * 2.0 ** (types.y - 1),
                              trange(types.y)[1])
            assert np.max(np.abs(got - real)) <= 1.0, (exp_in, spread)


# ------------------------------------------------------------------------------ lut

def lut_case(t: KernelTypes, x, table, frac_bits: int, mode: str, desc: str = "") -> tuple:
    want = ref.lut(x, table, frac_bits=frac_bits, mode=mode, out_bits=t.y)
    return (f"lut_{variant_suffix(t)} {desc} frac_bits={frac_bits}",
            (("lut", t), [x.size, frac_bits], [table, x], DTYPE[t.y], want.size), want)


def rand_interp_table(rng, frac_bits: int, kind: int) -> np.ndarray:
    size = (1 << (16 - frac_bits)) + 1
    if kind == 0:  # the whole int32 range: the int64 interpolation must hold it
        return rng.integers(-(2**31), 2**31, size=size).astype(np.int32)
    if kind == 1:  # a smooth-ish curve within +-2^24
        return (np.cumsum(rng.integers(-4000, 4000, size=size)).clip(-2**24, 2**24)
                .astype(np.int32))
    if kind == 2:
        return rng.integers(-40000, 40000, size=size).astype(np.int32)  # around the output range
    # knots at the edges of the kernel's int32 path: differences of about L = 2^(30 - frac_bits),
    # knots of about 2^31 - L, and the int32 extremes: the first two knots differ by 2^32 - 1
    # (kind 3: down, kind 4: up), which wraps around to a small difference mod 2^32
    big, lim = 2**31 - 1, 2 ** (30 - frac_bits)
    edges = [0, 1, -1, lim - 1, lim, lim + 1, -lim + 1, -lim, -lim - 1, big - lim, big - lim + 1,
             big - lim - 1, -big + lim - 1, -big + lim, -big + lim + 1, big - 2 * lim, big,
             -big - 1, -big]
    table = np.array(edges, np.int64)[rng.integers(0, len(edges), size=size)]
    table[:2] = (big, -big - 1) if kind == 3 else (-big - 1, big)
    return table.astype(np.int32)


@pytest.mark.parametrize("mode", MODES)
@types_param(XY_TYPES)
def test_lut(drivers, types, mode):
    """Every input of the type through random tables (and planned ones, see below)."""
    cases = []
    rng = np.random.default_rng(6000)
    lo, hi = trange(types.x)
    every = np.arange(lo, hi + 1).astype(DTYPE[types.x])
    if types.x == 8:
        for i in range(5):
            table = rand_int(rng, 256, types.y, extreme=i == 0)
            x = np.concatenate([every, rand_int(rng, 100, 8)])
            want = ref.lut(x, table, mode=mode, out_bits=types.y)
            assert_same(want, table[x.astype(np.int64) + 128], "lut reference")
            cases.append(lut_case(types, x, table, 0, mode))
            cases.append(lut_case(types, x[: 3 + 2 * i], table, 0, mode, "tail"))
            cases.append(lut_case(types, x[: 8 + 3 * i], table, 0, mode, "steps and tail"))
    else:
        for frac_bits in (16, 15, 12, 8, 7, 5, 4, 1, 0):
            for kind in range(5):
                table = rand_interp_table(rng, frac_bits, kind)
                cases.append(lut_case(types, every, table, frac_bits, mode, f"kind={kind}"))
    cases.append(lut_case(types, every[:0],
                          rand_int(rng, 256, types.y) if types.x == 8 else
                          rand_interp_table(rng, 8, 2), 0 if types.x == 8 else 8, mode, "n=0"))
    check_batch(drivers[mode], cases)


@pytest.mark.parametrize("mode", MODES)
def test_lut_interpolation_matches_spec_literally(mode):
    """y = sat_Y(t[k] + round((t[k+1] - t[k]) * f / 2^frac_bits)) with exact Fractions."""
    rng = np.random.default_rng(6200)
    for frac_bits in (16, 13, 9, 4, 1, 0):
        for kind in range(3):
            table = rand_interp_table(rng, frac_bits, kind)
            x = np.concatenate([rand_int(rng, 300, 16), [-32768, 32767, 0, -1]]).astype(np.int16)
            for out_bits in (8, 16):
                got = ref.lut(x, table, frac_bits=frac_bits, mode=mode, out_bits=out_bits)
                want = []
                for v in x.tolist():
                    u = v + 32768
                    k, f = u >> frac_bits, u % (1 << frac_bits)
                    step = Fraction((int(table[k + 1]) - int(table[k])) * f, 2**frac_bits)
                    want.append(sat(int(table[k]) + exact_round(step, mode), out_bits))
                assert got.dtype == DTYPE[out_bits]
                assert_same(got, np.array(want), f"lut interpolation {frac_bits} {kind}")


def test_lut_rejects_bad_tables():
    with pytest.raises(ValueError):  # int8 input, table of the wrong output type
        ref.lut(np.zeros(3, np.int8), np.zeros(256, np.int8), mode="half_up", out_bits=16)
    with pytest.raises(ValueError):  # int16 input: 2^(16 - frac_bits) + 1 int32 knots
        ref.lut(np.zeros(3, np.int16), np.zeros(256, np.int32), frac_bits=8, mode="half_up")
    with pytest.raises(ValueError):
        ref.lut(np.zeros(3, np.int8), np.zeros(256, np.int8), frac_bits=1, mode="half_up")
    with pytest.raises(TypeError):
        ref.lut(np.zeros(3, np.int32), np.zeros(256, np.int8), mode="half_up")


def _node(op: str, **attrs):
    import onnx_graphsurgeon as gs
    return gs.Node(op=op, attrs=attrs)


PLAN_NODES = [("Tanh", {}), ("Sigmoid", {}), ("Silu", {}), ("Gelu", {}), ("Exp", {}),
              ("Relu", {}), ("HardSwish", {}), ("LeakyRelu", {"alpha": 0.1}), ("Neg", {}),
              ("HardSigmoid", {"alpha": 0.2, "beta": 0.5}), ("Elu", {"alpha": 1.0})]
PLAN_EXPONENTS = [(-12, -12), (-11, -15), (-8, -13), (-13, -9), (-4, -5)]


def _exact_lut(node, x: np.ndarray, exp_in: int, exp_out: int, out_bits: int) -> np.ndarray:
    """f(x 2^exp_in) / 2^exp_out in float64, saturated to the output range (not rounded)."""
    from passes.tables import _float_function
    with np.errstate(all="ignore"):
        v = _float_function(node)(np.ldexp(x.astype(np.float64), exp_in)) / 2.0**exp_out
    lo, hi = trange(out_bits)
    return np.clip(np.nan_to_num(v, nan=0.0, posinf=1e30, neginf=-1e30), lo, hi)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("out_bits", (16, 8))
def test_lut_plan_int16_inputs(mode, out_bits):
    """The interpolated table lut_plan picks: its worst error over all 65536 inputs is within
    0.5 LSB of the exactly rounded table's (or it is the finest, frac_bits 4), and the next
    coarser table is not (the smallest that qualifies)."""
    from passes.tables import MIN_FRAC_BITS, interpolated_table, lut_plan
    x = np.arange(-32768, 32768).astype(np.int16)
    for (op, attrs), (e_in, e_out) in itertools.product(PLAN_NODES, PLAN_EXPONENTS[:3]):
        e_out += out_bits - 16  # int8 outputs: the same range, 8 bits coarser
        node = _node(op, **attrs)
        params, arrays = lut_plan(node, e_in, e_out, 16, out_bits, mode)
        fb, table = params["frac_bits"], arrays["table"]
        assert MIN_FRAC_BITS <= fb <= 16 and table.dtype == np.int32
        assert table.size == (1 << (16 - fb)) + 1 and np.abs(table).max() <= 2**24
        exact = _exact_lut(node, x, e_in, e_out, out_bits)
        budget = np.abs(np.clip(ref.round_to_int(exact, mode), *trange(out_bits)) - exact).max()
        err = np.abs(ref.lut(x, table, frac_bits=fb, mode=mode, out_bits=out_bits) - exact).max()
        assert err <= budget + 0.5 or fb == MIN_FRAC_BITS, (op, e_in, e_out, fb, err)
        if fb < 16:
            coarse = interpolated_table(node, e_in, e_out, fb + 1, mode)
            err_c = np.abs(ref.lut(x, coarse, frac_bits=fb + 1, mode=mode,
                                   out_bits=out_bits) - exact).max()
            assert err_c > budget + 0.5, (op, fb)
    # Relu is exact with knots at -32768, 0, 32768; Neg (linear) with two
    relu = lut_plan(_node("Relu"), -10, -10, 16, 16, mode)
    assert relu[0]["frac_bits"] == 15 and relu[1]["table"].tolist() == [0, 0, 32768]
    assert lut_plan(_node("Neg"), -10, -10, 16, 16, mode)[0]["frac_bits"] == 16


@pytest.mark.parametrize("mode", MODES)
def test_lut_plan_int8_inputs(mode):
    """int8 inputs: 256 exactly rounded entries of the output type (int8_table unchanged)."""
    from passes.tables import int8_table, lut_plan
    q = np.arange(-128, 128).astype(np.int8)
    for (op, attrs), (e_in, e_out) in itertools.product(PLAN_NODES, [(-5, -6), (-4, -12)]):
        node = _node(op, **attrs)
        for out_bits in (8, 16):
            eo = e_out if out_bits == 16 else e_out + 8
            params, arrays = lut_plan(node, e_in, eo, 8, out_bits, mode)
            table = arrays["table"]
            assert params == {"frac_bits": 0} and table.dtype == DTYPE[out_bits]
            exact = _exact_lut(node, q, e_in, eo, out_bits)
            assert_same(table, np.clip(ref.round_to_int(exact, mode), *trange(out_bits)),
                        f"{op} table")
        assert_same(int8_table(node, e_in, e_out + 8, mode),
                    lut_plan(node, e_in, e_out + 8, 8, 8, mode)[1]["table"], "int8_table")


@pytest.mark.parametrize("mode", MODES)
def test_lut_plan_tables_in_c(drivers, mode):
    """Planned tables through the C kernels: x8y16, x16y8, x16y16 and s8."""
    from passes.tables import lut_plan
    cases = []
    for t in XY_TYPES:
        every = np.arange(trange(t.x)[0], trange(t.x)[1] + 1).astype(DTYPE[t.x])
        for op, attrs in PLAN_NODES[:6]:
            e_in = -5 if t.x == 8 else -12
            e_out = e_in - 1 - (t.y - t.x)
            params, arrays = lut_plan(_node(op, **attrs), e_in, e_out, t.x, t.y, mode)
            cases.append(lut_case(t, every, arrays["table"], params["frac_bits"], mode, op))
    check_batch(drivers[mode], cases)


# -------------------------------------------------------------------- requant, transpose

@pytest.mark.parametrize("mode", MODES)
@types_param(XY_TYPES)
def test_requant(drivers, types, mode):
    cases = []
    rng = np.random.default_rng(6050)
    lo, hi = trange(types.x)
    every = np.arange(lo, hi + 1).astype(DTYPE[types.x])
    for shift in [*range(-10, 12), 15, 16, 20, 40, -40, 62, 63, 64, 100, -47]:
        x = np.concatenate([every, rand_int(rng, 30, types.x)])
        want = ref.requant(x, shift=shift, mode=mode, out_bits=types.y)
        if 1 <= shift <= 30:  # against exact arithmetic
            sample = x[::97] if types.x == 16 else x
            exact = [sat(exact_round(Fraction(int(v), 2**shift), mode), types.y) for v in sample]
            assert_same(want[::97] if types.x == 16 else want, np.array(exact),
                        f"requant reference shift={shift}")
        cases.append((f"requant_{variant_suffix(types)} shift={shift}",
                      (("requant", types), [x.size, shift], [x], DTYPE[types.y], x.size), want))
    cases.append(("requant n=0", (("requant", types), [0, 3], [every[:0]], DTYPE[types.y], 0),
                  np.zeros(0, DTYPE[types.y])))
    check_batch(drivers[mode], cases)


@types_param(SAME_TYPES)
def test_transpose(drivers, types):
    cases = []
    for seed in range(60):
        rng = np.random.default_rng(6100 + seed)
        rank = int(rng.integers(1, 5))
        shape = [int(v) for v in rng.integers(1, 6, size=rank)]
        if seed % 9 == 0:
            shape[int(rng.integers(rank))] = 0 if seed % 18 == 0 else 1
        perm = [int(v) for v in rng.permutation(rank)]
        x = rand_int(rng, int(np.prod(shape)), types.x)
        p = dict(rank=rank, in_shape=shape, perm=perm)
        want = ref.transpose(x, **p)
        assert want.dtype == x.dtype
        assert_same(want, x.reshape(shape).transpose(perm), "transpose reference")
        padded = ref.transpose(x, rank=rank, in_shape=shape + [7] * (4 - rank),
                               perm=perm + [3] * (4 - rank))
        assert_same(padded, want, "transpose reference (padded params)")
        cases.append(case("transpose", types, p, [x], want, f"seed={seed}"))
    rng = np.random.default_rng(6200)  # the row paths: copies, four rows at a time and a tail
    for shape, perm in [*[((r, c), (1, 0)) for r in (1, 3, 4, 5, 8, 9, 16) for c in (1, 3, 4, 7)],
                        ((2, 9, 3), (0, 2, 1)), ((3, 2, 8), (1, 2, 0)), ((5, 4, 3), (2, 0, 1)),
                        ((2, 3, 4, 5), (0, 1, 3, 2)), ((2, 3, 9, 2), (3, 1, 2, 0)),
                        ((4, 2, 3), (0, 1, 2)), ((6, 5), (0, 1))]:
        x = rand_int(rng, int(np.prod(shape)), types.x)
        p = dict(rank=len(shape), in_shape=list(shape), perm=list(perm))
        cases.append(case("transpose", types, p, [x], x.reshape(shape).transpose(perm), "rows"))
    for mode in MODES:
        check_batch(drivers[mode], cases)


# --------------------------------------------------------------------------- mask_frames

@types_param(SAME_TYPES)
def test_mask_frames(drivers, types):
    cases = []
    lo, hi = trange(types.x)
    for seed in range(120):
        rng = np.random.default_rng(14000 + seed)
        frames, inner = int(rng.integers(0, 12)), int(rng.integers(0, 7))
        pad = int(rng.choice([lo, hi, 0, int(rng.integers(lo, hi + 1))]))
        x = rand_int(rng, (frames, inner), types.x, seed % 3 == 0)
        mask = rng.choice(np.array([0, 0, 1, -1, -128, 127], np.int8), size=frames)
        if seed % 4 == 0:  # the delayed-stream use: the first frames blanked
            mask = (np.arange(frames) >= int(rng.integers(0, frames + 1))).astype(np.int8)
        want = ref.mask_frames(x.reshape(-1), mask, frames=frames, inner=inner, pad=pad)
        literal = np.array([[x[t, i] if mask[t] != 0 else pad for i in range(inner)]
                            for t in range(frames)], dtype=np.int64).reshape(frames, inner)
        assert_same(want, literal, "mask_frames reference")
        assert want.shape == (frames, inner) and want.dtype == DTYPE[types.x]
        for in_place in (0, 1):
            cases.append((f"mask_frames_{variant_suffix(types)} seed={seed} in_place={in_place}",
                          (("mask_frames", types), [frames, inner, pad, in_place], [mask, x],
                           DTYPE[types.y], want.size), want))
    for mode in MODES:
        check_batch(drivers[mode], cases)
    with pytest.raises(ValueError):  # pad outside the type
        ref.mask_frames(np.zeros(2, np.int8), np.ones(1, np.int8), frames=1, inner=2, pad=200)


# ------------------------------------------------------------------- quantize / dequantize

def _tie_floats(rng, bits: int) -> np.ndarray:
    lo, hi = trange(bits)
    ints = np.concatenate([np.arange(lo - 3, lo + 200), np.arange(-200, 200),
                           np.arange(hi - 200, hi + 4)]).astype(np.float64)
    base = np.concatenate([ints + 0.5, ints, [0.5, 1.5, -0.5, -2.5, 2.5, -1.5]])
    base = base.astype(np.float32)
    near = np.concatenate([np.nextafter(base, np.float32(np.inf)),
                           np.nextafter(base, np.float32(-np.inf))])
    special = np.array([np.nan, -np.nan, np.inf, -np.inf, 0.0, -0.0, 1e30, -1e30, 3.4e38,
                        -3.4e38, 1e-45, -1e-45, 1e-38, hi + 0.49999, hi + 0.5, hi + 0.50001,
                        hi + 1.0, hi + 1.5, lo - 0.49999, lo - 0.5, lo - 0.50002, lo - 1.0,
                        lo - 1.5, 0.49999997, -0.49999997, 2**23 + 1.0, -(2**23) - 1.0, 2**24,
                        2**31, -(2**31), 2**63, -(2**63)], dtype=np.float32)
    rand = (rng.standard_normal(400) * hi * 0.6).astype(np.float32)
    return np.concatenate([base, near, special, rand]).astype(np.float32)


@pytest.mark.parametrize("mode", MODES)
@types_param(SAME_TYPES)
def test_quantize_dequantize(drivers, types, mode):
    cases = []
    bits = types.y
    lo, hi = trange(bits)
    rng = np.random.default_rng(7000)
    v = _tie_floats(rng, bits)
    finite = np.isfinite(v)
    exact = np.array([sat(exact_round(Fraction(float(f)), mode), bits) for f in v[finite]])
    for exp in [0, 1, -1, 3, -3, 7, -7, 10, -10, 20, -20, 100, -100, 126, -126, 127, -127, 149,
                -149, 150, -150, 200, -200]:
        # scaled copies keep the ties: x = v * 2^exp makes x * 2^-exp == v exactly
        with np.errstate(over="ignore", under="ignore"):
            x = np.ldexp(v, exp).astype(np.float32) if abs(exp) <= 20 else v
        want = ref.quantize(x, exp=exp, mode=mode, out_bits=bits)
        assert want.dtype == DTYPE[bits]
        if abs(exp) <= 20:
            assert_same(want[finite], exact, f"quantize reference exp={exp}")
            assert np.all(want[np.isnan(v)] == 0)
            assert np.all(want[v == np.inf] == hi) and np.all(want[v == -np.inf] == lo)
        cases.append((f"quantize_f32_{variant_suffix(types)} exp={exp}",
                      (("quantize", types), [x.size, exp, 0], [x], DTYPE[bits], x.size), want))
        q = np.concatenate([np.arange(lo, lo + 300), np.arange(-300, 300),
                            np.arange(hi - 300, hi + 1)])
        q = np.unique(q.clip(lo, hi)).astype(DTYPE[bits])
        want_d = ref.dequantize(q, exp=exp)
        if abs(exp) <= 100:
            assert_same(want_d, np.array([float(Fraction(int(i)) * Fraction(2) ** exp)
                                          for i in q], dtype=np.float32), "dequantize reference")
        cases.append((f"dequantize_{variant_suffix(types)}_f32 exp={exp}",
                      (("quantize", types), [q.size, exp, 1], [q], np.float32, q.size), want_d))
    check_batch(drivers[mode], cases)


@pytest.mark.parametrize("mode", MODES)
def test_round_f32_sat_helper(drivers, mode):
    cases = []
    for bits in (8, 16):
        v = _tie_floats(np.random.default_rng(7100), bits)
        want = ref._round_f32_sat(v, bits, mode).astype(np.int32)
        lo, hi = trange(bits)
        cases.append((f"rill_round_f32_sat int{bits}",
                      ("round_f32_sat", [v.size, lo, hi], [v], np.int32, v.size), want))
    check_batch(drivers[mode], cases)


def test_quantize_examples():
    x = np.array([0.5, 1.5, -0.5, -2.5, 2.5, -1.5, np.nan, np.inf, -np.inf, 1e30,
                  0.49999997, -0.50000006], dtype=np.float32)
    assert ref.quantize(x, exp=0, mode="half_even", out_bits=8).tolist() == \
        [0, 2, 0, -2, 2, -2, 0, 127, -128, 127, 0, -1]
    assert ref.quantize(x, exp=0, mode="half_up", out_bits=8).tolist() == \
        [1, 2, 0, -2, 3, -1, 0, 127, -128, 127, 0, -1]
    assert ref.quantize(x, exp=0, mode="half_up", out_bits=16).tolist() == \
        [1, 2, 0, -2, 3, -1, 0, 32767, -32768, 32767, 0, -1]
    # exp = -2: q = x * 4
    assert ref.quantize(np.float32([0.125, 0.375, 8191.875]), exp=-2, mode="half_even",
                        out_bits=16).tolist() == [0, 2, 32767]
    assert ref.dequantize(np.array([3, -4], np.int8), exp=-1).tolist() == [1.5, -2.0]


# --------------------------------------------------------- round_shift / round_div / round_to_int

def _shift_samples(rng):
    xs, ss = [], []
    specials = [0, 1, -1, 2, -2, 3, -3, I64_MIN, I64_MAX, I64_MIN + 1, -(2**62), 2**62]
    for s in [*range(1, 64), 64, 65, 100]:
        half = 1 << (s - 1) if s <= 63 else 0
        vals = list(specials)
        if s <= 62:
            for j in (-3, -2, -1, 0, 1, 2):  # exact ties, both signs, and their neighbours
                t = (2 * j + 1) * half
                vals += [t, t - 1, t + 1]
        vals += [int(v) for v in rng.integers(I64_MIN, I64_MAX, size=20, dtype=np.int64)]
        vals += [int(v) for v in rng.integers(-(2**20), 2**20, size=10)]
        vals = [v for v in vals if I64_MIN <= v <= I64_MAX]
        xs += vals
        ss += [s] * len(vals)
    for s in range(-40, 1):  # left shifts that fit
        lim = 2 ** (62 + s)
        vals = [0, 1, -1, lim - 1, -lim] + [int(v) for v in rng.integers(-lim, lim, size=8)]
        xs += vals
        ss += [s] * len(vals)
    return np.array(xs, dtype=np.int64), np.array(ss, dtype=np.int32)


def _exact_shift(x: int, s: int, mode: str) -> int:
    return exact_round(Fraction(x, 2**s), mode) if s > 0 else x * 2**-s


@pytest.mark.parametrize("mode", MODES)
def test_round_shift(drivers, mode):
    xs, ss = _shift_samples(np.random.default_rng(8000))
    exact = np.array([_exact_shift(int(x), int(s), mode) for x, s in zip(xs, ss)], dtype=np.int64)
    assert_same(ref.round_shift(xs, ss, mode), exact, "round_shift reference vs Fraction")
    floor = np.array([int(x) >> int(s) for x, s in zip(xs, ss) if 0 <= s <= 63], dtype=np.int64)
    keep = (ss >= 0) & (ss <= 63)
    check_batch(drivers[mode], [
        ("rill_round_shift", ("round_shift", [xs.size], [xs, ss], np.int64, xs.size), exact),
        ("rill_floor_shift", ("floor_shift", [int(keep.sum())], [xs[keep], ss[keep]], np.int64,
                              int(keep.sum())), floor),
    ])


@pytest.mark.parametrize("mode", MODES)
def test_requant32_helper(drivers, mode):
    """rill_rq_apply, the kernels' 32-bit requantization: clamp(round(x / 2^s), lo, hi) exactly
    for every int32 x and shift, at the int32 limits, on ties of both signs and parities, and
    through the int64 helper for shifts outside 1..31."""
    rng = np.random.default_rng(8050)
    i32 = [-(2**31), -(2**31) + 1, 2**31 - 1, 2**31 - 2, 0, 1, -1]
    xs, ss = [], []
    for s in range(-3, 41):
        half = [(2 * q + 1) * 2 ** (s - 1) for q in (-3, -2, -1, 0, 1, 2)] if 0 < s < 32 else []
        vals = i32 + [v for v in half if -(2**31) <= v < 2**31] + \
            [int(v) for v in rng.integers(-(2**31), 2**31, size=20)]
        xs += vals
        ss += [s] * len(vals)
    xs, ss = np.array(xs, np.int32), np.array(ss, np.int32)
    for lo, hi in ((-128, 127), (0, 127), (-(2**31), 2**31 - 1), (-5, 3)):
        want = np.array([min(max(_exact_shift(int(x), int(s), mode), lo), hi)
                         for x, s in zip(xs, ss)], np.int32)
        check_batch(drivers[mode], [(f"requant32 [{lo}, {hi}]",
                                     ("requant32", [xs.size, lo, hi], [xs, ss], np.int32,
                                      xs.size), want)])


#: Shapes that take the kernels' register-blocked paths (four interior frames x two channels,
#: one frame x four channels, depthwise frame blocks) with their tails: odd and prime channel
#: counts, strides, dilations, pads on both sides, frames left over after the blocks.
BLOCK_SHAPES = {
    "conv1d": [dict(t_in=9, c_in=32, c_out=32, kernel=1, stride=1, dilation=1, groups=1,
                    pad_l=0, pad_r=0),
               dict(t_in=14, c_in=33, c_out=7, kernel=3, stride=1, dilation=2, groups=1,
                    pad_l=2, pad_r=1),
               dict(t_in=21, c_in=6, c_out=5, kernel=3, stride=2, dilation=1, groups=1,
                    pad_l=1, pad_r=2),
               dict(t_in=5, c_in=13, c_out=9, kernel=2, stride=1, dilation=3, groups=1,
                    pad_l=0, pad_r=0),
               dict(t_in=12, c_in=32, c_out=32, kernel=3, stride=1, dilation=2, groups=32,
                    pad_l=0, pad_r=0),
               dict(t_in=17, c_in=5, c_out=5, kernel=5, stride=2, dilation=4, groups=5,
                    pad_l=3, pad_r=4),
               dict(t_in=11, c_in=1, c_out=1, kernel=3, stride=1, dilation=1, groups=1,
                    pad_l=2, pad_r=0),
               # 16-channel weight blocks with narrower last blocks (3, 8, 13 channels), odd
               # frame counts, padding on both sides, stride 2 and a single frame
               dict(t_in=10, c_in=7, c_out=19, kernel=3, stride=1, dilation=2, groups=1,
                    pad_l=3, pad_r=2),
               dict(t_in=9, c_in=11, c_out=16, kernel=2, stride=2, dilation=1, groups=1,
                    pad_l=1, pad_r=1),
               dict(t_in=1, c_in=17, c_out=8, kernel=1, stride=1, dilation=1, groups=1,
                    pad_l=0, pad_r=0),
               dict(t_in=3, c_in=5, c_out=24, kernel=3, stride=1, dilation=1, groups=1,
                    pad_l=2, pad_r=2),
               dict(t_in=6, c_in=9, c_out=29, kernel=1, stride=1, dilation=1, groups=1,
                    pad_l=0, pad_r=1),
               dict(t_in=5, c_in=3, c_out=40, kernel=2, stride=1, dilation=2, groups=1,
                    pad_l=1, pad_r=0),
               # depthwise: k = 3, 5 and 4, few and many interior frames, pads, one frame
               dict(t_in=6, c_in=13, c_out=13, kernel=5, stride=1, dilation=1, groups=13,
                    pad_l=4, pad_r=0),
               dict(t_in=13, c_in=7, c_out=7, kernel=4, stride=3, dilation=2, groups=7,
                    pad_l=1, pad_r=5),
               dict(t_in=4, c_in=3, c_out=3, kernel=3, stride=1, dilation=1, groups=3,
                    pad_l=0, pad_r=0),
               dict(t_in=7, c_in=11, c_out=11, kernel=3, stride=1, dilation=3, groups=11,
                    pad_l=6, pad_r=0)],
    "gemm": [dict(m=9, k=48, n=16), dict(m=4, k=7, n=5), dict(m=1, k=33, n=9),
             dict(m=6, k=1, n=2), dict(m=5, k=2, n=1), dict(m=3, k=5, n=19),
             dict(m=2, k=13, n=8), dict(m=7, k=3, n=24), dict(m=3, k=6, n=29),
             dict(m=1, k=4, n=40)],
}


@pytest.mark.parametrize("mode", MODES)
@types_param(MAIN_CONV_TYPES)
@pytest.mark.parametrize("family", ["conv1d", "gemm"])
def test_weighted_blocked_paths(drivers, family, types, mode):
    cases = []
    for n, shape in enumerate(BLOCK_SHAPES[family]):
        for seed in range(6):
            rng = np.random.default_rng(9000 + 10 * n + seed)
            lo, hi = rand_act(rng, types.y)
            p = dict(shape, act_min=lo, act_max=hi)
            x, w, bias, shift = weighted_data(rng, family, types, p, extreme=seed % 3 == 0,
                                              big_bias=seed % 3 == 1)
            cases.append(weighted_case(family, types, x, w, bias, shift, p, mode,
                                       f"{shape} seed={seed}"))
        # every accumulator on a tie: the folded rounding constant of the blocked paths
        rng = np.random.default_rng(9500 + n)
        s_tie = int(rng.integers(1, 7))
        xs, ws, c_out = array_shapes(family, shape)
        p = dict(shape, act_min=trange(types.y)[0], act_max=trange(types.y)[1])
        cases.append(weighted_case(family, types, _ties_x(rng, xs, s_tie, types.x),
                                   rng.integers(-3, 4, size=ws).astype(DTYPE[types.w]),
                                   _ties_bias(rng, c_out, s_tie, types.acc),
                                   np.full(c_out, s_tie), p, mode, f"{shape} ties"))
    folded = sum("rq_bias=1" in c[0] for c in cases)
    assert folded > 0 or types.acc == 64, "no case reaches the folded output stage"
    check_batch(drivers[mode], cases)


def test_round_shift_examples():
    assert ref.round_shift([5, -5, 7, -7, 6, -6, 3], 1, "half_even").tolist() == \
        [2, -2, 4, -4, 3, -3, 2]
    assert ref.round_shift([5, -5, 7, -7, 6, -6, 3], 1, "half_up").tolist() == \
        [3, -2, 4, -3, 3, -3, 2]
    assert ref.round_shift([3, -3], [-2, -3], "half_up").tolist() == [12, -24]


@pytest.mark.parametrize("mode", MODES)
def test_round_div(drivers, mode):
    rng = np.random.default_rng(8100)
    ns, ds = [], []
    for d in [1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 2**31, 3 * 2**20, 2**62, 2**62 + 1, I64_MAX]:
        vals = [0, 1, -1, I64_MIN, I64_MAX, d, -d, d // 2, -(d // 2), d // 2 + 1]
        if d % 2 == 0 and d < 2**40:  # exact ties (odd multiples of d/2), both signs
            vals += [(2 * j + 1) * (d // 2) for j in range(-4, 4)]
        vals += [int(v) for v in rng.integers(I64_MIN, I64_MAX, size=10, dtype=np.int64)]
        vals += [int(v) for v in rng.integers(-1000, 1000, size=10)]
        ns += vals
        ds += [d] * len(vals)
    for _ in range(300):
        ns.append(int(rng.integers(I64_MIN, I64_MAX, dtype=np.int64)))
        ds.append(int(rng.integers(1, 2**int(rng.integers(1, 63)))))
    n, d = np.array(ns, dtype=np.int64), np.array(ds, dtype=np.int64)
    exact = np.array([exact_round(Fraction(int(a), int(b)), mode) for a, b in zip(n, d)],
                     dtype=np.int64)
    assert_same(ref.round_div(n, d, mode), exact, "round_div reference vs Fraction")
    check_batch(drivers[mode], [("rill_round_div", ("round_div", [n.size], [n, d], np.int64,
                                                    n.size), exact)])


@pytest.mark.parametrize("mode", MODES)
def test_round_to_int(mode):
    rng = np.random.default_rng(8200)
    ties = np.arange(-300, 300) + 0.5
    v = np.concatenate([ties, np.nextafter(ties, np.inf), np.nextafter(ties, -np.inf),
                        [0.0, -0.0, 0.49999999999999994, -0.49999999999999994, 2.0**52 + 1,
                         -(2.0**52) - 1, 2.0**53, 1e300, -1e300, 4.5e15 + 0.5, -4.5e15 - 0.5],
                        rng.standard_normal(500) * 1000, rng.standard_normal(50) * 1e17])
    got = ref.round_to_int(v, mode)
    exact = np.array([float(exact_round(Fraction(float(f)), mode)) for f in v])
    assert_same(got, exact, f"round_to_int {mode}")
    special = ref.round_to_int(np.array([np.nan, np.inf, -np.inf]), mode)
    assert np.isnan(special[0]) and special[1] == np.inf and special[2] == -np.inf


def test_bad_mode_rejected():
    with pytest.raises(ValueError):
        ref.round_shift([1], 1, "half_down")
    with pytest.raises(OverflowError):  # x * 2^-s does not fit int64
        ref.round_shift([2**40], [-30], "half_even")
    with pytest.raises(OverflowError):
        ref.round_shift([-1], [-63], "half_even")
    assert ref.round_shift([-(2**62), 2**62 - 1], [-1, -1], "half_up").tolist() == \
        [I64_MIN, 2**63 - 2]


# --------------------------------------------------------------- interpreter and legacy ops

def _mem(**arrays):
    return {k: np.asarray(v).copy() for k, v in arrays.items()}


def test_interpreter_dispatches_families_with_output_types():
    """_run_step feeds each family its params, arrays and inputs, with out_bits from the output
    buffer's dtype (int8 and int16 buffers, mixed), mask_frames in place too."""
    from runtime.ir import Step
    from runtime.reference.interpreter import _run_step
    rng = np.random.default_rng(16000)
    x8, x16 = rand_int(rng, 24, 8), rand_int(rng, 24, 16)
    mask = np.array([0, 1, 1, 0, 1, 1], np.int8)
    sp, sa = ref.softmax_plan(-9, 16, 16, "half_up")
    cw, cb, cs = rand_int(rng, 16, 8), np.array([5, -5], np.int64), np.array([4, 3])
    conv2d_p = dict(t_in=3, f_in=2, c_in=4, c_out=2, kernel_t=2, kernel_f=2, stride_t=1,
                    stride_f=1, dilation_t=1, dilation_f=1, groups=2, pad_t_l=1, pad_t_r=0,
                    pad_f_l=0, pad_f_r=0, act_min=-32768, act_max=32767)
    convt_p = dict(t_in=6, c_in=4, c_out=2, kernel=2, stride=2, dilation=1, groups=2, pad_l=1,
                   pad_r=0, output_padding=1, act_min=0, act_max=127)
    table16 = rand_interp_table(rng, 12, 1)
    steps = [
        (Step("maxpool1d", ["x16"], ["y16"], dict(t_in=6, channels=4, kernel=3, stride=1,
                                                  dilation=1, pad_l=1, pad_r=1, pad_value=-32768,
                                                  shift=1)),
         lambda: ref.maxpool1d(x16, t_in=6, channels=4, kernel=3, stride=1, dilation=1,
                               pad_l=1, pad_r=1, pad_value=-32768, shift=1, mode="half_up")),
        (Step("conv2d", ["x16"], ["y16"], conv2d_p, dict(w=cw, bias=cb, shift=cs)),
         lambda: ref.conv2d(x16, cw, cb, cs, **conv2d_p, mode="half_up")),
        (Step("reduce", ["x16"], ["y8"], dict(outer=2, length=3, inner=4, op=0, shift=9)),
         lambda: ref.reduce(x16, outer=2, length=3, inner=4, op=0, shift=9, mode="half_up",
                            out_bits=8)),
        (Step("softmax", ["x16"], ["y16"], dict(sp, rows=4, cols=6), dict(sa)),
         lambda: ref.softmax(x16, sa["table"], **sp, rows=4, cols=6, mode="half_up")),
        (Step("mask_frames", ["x8"], ["y8"], dict(frames=6, inner=4, pad=-128), dict(mask=mask)),
         lambda: ref.mask_frames(x8, mask, frames=6, inner=4, pad=-128)),
        (Step("mask_frames", ["x16", "m"], ["x16"], dict(frames=6, inner=4, pad=3)),
         lambda: ref.mask_frames(x16, mask, frames=6, inner=4, pad=3)),
        (Step("conv_transpose1d", ["x8"], ["y16"], convt_p,
              dict(w=cw[:8], bias=cb.astype(np.int32), shift=cs)),
         lambda: ref.conv_transpose1d(x8, cw[:8], cb.astype(np.int32), cs, **convt_p,
                                      mode="half_up", out_bits=16)),
        (Step("lut", ["x16"], ["y8"], dict(n=24, frac_bits=12), dict(table=table16)),
         lambda: ref.lut(x16, table16, frac_bits=12, mode="half_up", out_bits=8)),
        (Step("requant", ["x8"], ["y16"], dict(n=24, shift=-7)),
         lambda: ref.requant(x8, shift=-7, mode="half_up", out_bits=16)),
        (Step("add", ["x8", "x16"], ["y16"], dict(n=24, shift_a=8, shift_b=0, shift_out=1,
                                                  act_min=-32768, act_max=32767)),
         lambda: ref.add(x8, x16, n=24, shift_a=8, shift_b=0, shift_out=1, act_min=-32768,
                         act_max=32767, mode="half_up", out_bits=16)),
        (Step("transpose", ["x16"], ["y16"], dict(rank=2, in_shape=[6, 4], perm=[1, 0])),
         lambda: x16.reshape(6, 4).T),
    ]
    for step, expect in steps:
        want = np.asarray(expect()).reshape(-1)
        out = step.outputs[0]
        mem = _mem(x8=x8, x16=x16, m=mask, y8=np.zeros(want.size, np.int8),
                   y16=np.zeros(want.size, np.int16))
        _run_step(step, mem, "half_up")
        assert mem[out].dtype == want.dtype, step.op
        assert_same(mem[out], want, f"interpreter {step.op}")


def test_int8_softmax_step_is_the_int8_spec():
    """An int8 softmax step as the lowering emits it (softmax_plan, out_frac from the output's
    exponent: 7, or finer when calibration allows) gives e = lo[max - x] exactly."""
    from runtime.ir import Step
    from runtime.reference.interpreter import _run_step
    rng = np.random.default_rng(16100)
    x = rand_int(rng, (5, 12), 8)
    for exp_in in (-6, -3, 0):
        for mode in MODES:
            for out_frac in (7, 9):
                params, arrays = ref.softmax_plan(exp_in, 8, 8, mode)
                step = Step("softmax", ["x"], ["y"],
                            dict(params, rows=5, cols=12, out_frac=out_frac), arrays)
                mem = _mem(x=x.reshape(-1), y=np.zeros(60, np.int8))
                _run_step(step, mem, mode)
                table = arrays["table"]
                want = np.zeros((5, 12), np.int64)  # the int8 spec, literally
                for r in range(5):
                    e = [int(table[int(x[r].max()) - int(v)]) for v in x[r]]
                    for j in range(12):
                        want[r, j] = sat(exact_round(Fraction(e[j] << out_frac, sum(e)), mode), 8)
                assert_same(mem["y"], want, f"int8 softmax {exp_in} {mode} {out_frac}")


# ------------------------------------------------------------------- variants and codegen

def test_variant_suffix():
    assert variant_suffix(T(8, 8, w=8, acc=32)) == "s8"
    assert variant_suffix(T(16, 16, w=16, acc=64)) == "s16"
    assert variant_suffix(T(16, 16, w=8, acc=32)) == "x16w8a32y16"
    assert variant_suffix(T(16, 16, w=8, acc=64)) == "x16w8a64y16"
    assert variant_suffix(T(16, 16, w=16, acc=32)) == "x16w16a32y16"
    assert variant_suffix(T(8, 16, w=8, acc=32)) == "x8w8a32y16"
    assert variant_suffix(T(16, 8, w=8, acc=32)) == "x16w8a32y8"
    assert variant_suffix(T(8, 8, w=8, acc=64)) == "x8w8a64y8"
    assert variant_suffix(T(8, 16)) == "x8y16" and variant_suffix(T(16, 8)) == "x16y8"
    assert variant_suffix(T(8, 8)) == "s8" and variant_suffix(T(16, 16)) == "s16"
    assert variant_suffix(T(8, 16, x2=16)) == "x8b16y16"
    assert variant_suffix(T(16, 8, x2=8)) == "x16b8y8"
    assert function_name("conv1d", T(16, 16, w=8, acc=32), "m") == "m_conv1d_x16w8a32y16"


def test_kernel_types_from_steps():
    from runtime.ir import Buffer, Step
    buf = {n: Buffer(n, (4,), dt, 0, "scratch") for n, dt in
           (("a8", "int8"), ("a16", "int16"), ("f8", "int8"), ("b16", "int16"))}
    conv = Step("conv1d", ["a16"], ["b16"], {}, dict(w=np.zeros(2, np.int8),
                                                     bias=np.zeros(1, np.int64)))
    assert kernel_types(conv, buf) == T(16, 16, w=8, acc=64)
    gemm = Step("gemm", ["a8"], ["f8"], {}, dict(w=np.zeros(2, np.int8),
                                                 bias=np.zeros(1, np.int32)))
    assert variant_suffix(kernel_types(gemm, buf)) == "s8"
    assert kernel_types(Step("add", ["a8", "b16"], ["b16"]), buf) == T(8, 16, x2=16)
    assert kernel_types(Step("mask_frames", ["a16", "f8"], ["a16"]), buf) == T(16, 16)
    assert kernel_types(Step("requant", ["a16"], ["a8"]), buf) == T(16, 8)
    gru = Step("gru", ["a8", "f8"], ["f8"], {}, dict(wx=np.zeros(2, np.int8),
                                                    bias=np.zeros(2, np.int32)))
    assert variant_suffix(kernel_types(gru, buf)) == "s8"
    gru16 = Step("gru", ["a16", "f8"], ["f8"], {}, gru.arrays)  # int16 input, int8 h
    assert variant_suffix(kernel_types(gru16, buf)) == "x16w8a32y8"
    with pytest.raises(ValueError):  # a data movement keeps its type
        kernel_types(Step("transpose", ["a16"], ["a8"]), buf)
    with pytest.raises(ValueError):
        kernel_types(Step("copy", ["a8"], ["f8"]), buf)
    with pytest.raises(ValueError):  # weights of int32 are no variant
        check_types("conv1d", T(8, 8, w=32, acc=32))
    with pytest.raises(ValueError):  # a conv needs weights and an accumulator
        instantiate("conv1d", T(8, 8))


def test_instantiation_and_prototypes():
    src = instantiate("conv1d", T(16, 8, w=8, acc=64))
    assert "VARIANT" not in src and not re.search(r"\brill_(x|w|acc|y)_t\b|RILL_[XY]_", src)
    assert "void rill_conv1d_x16w8a64y8(" in src and "const int64_t *bias" in src
    (proto,) = prototypes(src)
    lines = proto.split("\n")
    assert lines[0].startswith("void rill_conv1d_x16w8a64y8(const rill_conv1d_params_t *p, ")
    assert proto.endswith(" int8_t *y);") and all(len(ln) <= 100 for ln in lines)
    assert all(ln.startswith(" " * len("void rill_conv1d_x16w8a64y8(")) for ln in lines[1:])
    assert re.sub(r"\s+", " ", proto) == (
        "void rill_conv1d_x16w8a64y8(const rill_conv1d_params_t *p, const int16_t *x, "
        "const int8_t *w, const int64_t *bias, const int8_t *shift, int8_t *y);")
    lut16 = instantiate("lut", T(16, 8))
    assert "const int32_t *table" in lut16 and "if (16 == 8)" in lut16
    assert "const int16_t *table" in instantiate("lut", T(8, 16))
    q = prototypes(instantiate("quantize", S16))
    assert [p.split("(")[0] for p in q] == ["void rill_quantize_f32_s16",
                                            "void rill_dequantize_s16_f32"]
    variants = [("conv1d", T(8, 8, w=8, acc=32)), ("requant", T(8, 16)),
                ("conv1d", T(8, 8, w=8, acc=32))]  # a repeated variant is emitted once
    header, source = kernel_header("kws", variants), kernel_sources(variants, "kws")
    assert re.findall(r"^void (kws_\w+)\(", source, re.M) == ["kws_conv1d_s8",
                                                              "kws_requant_x8y16"]
    assert "void kws_conv1d_s8(" in header and "kws_conv1d_params_t" in header
    assert not re.search(r"\brill_|\bRILL_(?!ROUNDING)", header + source)


def test_emitted_mixed_program_matches_reference(tmp_path):
    """codegen/emit_c.py on a hand-made program with int16 buffers inside (requant x8y16 ->
    conv1d x16w8a64y16 -> lut x16y16 -> add x16b16y16 -> softmax s16 -> requant x16y8): the
    component compiles strictly and its selftest matches the reference interpreter bit for
    bit."""
    from codegen.emit_c import ModelInterface, SourceWriter, selftest_source
    from codegen.memory import plan_memory
    from passes.tables import lut_plan
    from runtime.ir import Buffer, Program, Step
    from runtime.reference.interpreter import run_stream
    cc = shutil.which("gcc")
    if cc is None:
        pytest.skip("no gcc")
    rng = np.random.default_rng(17000)
    T_, C = 4, 6
    mode = "half_even"
    bufs = {"in": Buffer("in", (T_, C), "int8", -5, "input"),
            "a": Buffer("a", (T_, C), "int16", -13, "scratch"),
            "b": Buffer("b", (T_, C), "int16", -12, "scratch"),
            "c": Buffer("c", (T_, C), "int16", -12, "scratch"),
            "d": Buffer("d", (T_, C), "int16", -11, "scratch"),
            "e": Buffer("e", (T_, C), "int16", -15, "scratch"),
            "out": Buffer("out", (T_, C), "int8", -7, "output")}
    w = rand_int(rng, (C, 3, C), 8)
    bias = rng.integers(-2**20, 2**20, size=C).astype(np.int64)
    lp, la = lut_plan(_node("Tanh"), -12, -12, 16, 16, mode)
    sp, sa = ref.softmax_plan(-11, 16, 16, mode)
    steps = [
        Step("requant", ["in"], ["a"], dict(n=T_ * C, shift=-8), name="to16"),
        Step("conv1d", ["a"], ["b"], dict(t_in=T_, c_in=C, c_out=C, kernel=3, stride=1,
                                          dilation=1, groups=1, pad_l=2, pad_r=0,
                                          act_min=-32768, act_max=32767),
             dict(w=w, bias=bias, shift=np.full(C, 7, np.int8)), name="conv"),
        Step("lut", ["b"], ["c"], dict(lp, n=T_ * C), la, name="tanh"),
        Step("add", ["c", "b"], ["d"], dict(n=T_ * C, shift_a=0, shift_b=0, shift_out=1,
                                           act_min=-32768, act_max=32767), name="res"),
        Step("softmax", ["d"], ["e"], dict(sp, rows=T_, cols=C), sa, name="sm"),
        Step("requant", ["e"], ["out"], dict(n=T_ * C, shift=8), name="to8"),
    ]
    program = Program(bufs, steps, ["in"], ["out"], [], mode)
    assert {f"{f}_{variant_suffix(t)}" for f, t in program_variants(program)} == {
        "requant_x8y16", "conv1d_x16w8a64y16", "lut_s16", "add_s16", "softmax_s16",
        "requant_x16y8", "quantize_s8"}
    plan = plan_memory(program)
    iface = ModelInterface(name="mixed", chunk_frames=T_, input_channels=C, input_elems=T_ * C,
                           output_elems=T_ * C, input_exp=-5, output_exp=-7, latency_frames=0,
                           per_frame_output=True, state_bytes=0, arena_bytes=plan.arena_bytes)
    writer = SourceWriter(program, plan, iface)
    inputs = rand_int(rng, (3, T_ * C), 8)
    outputs = np.stack(run_stream(program, list(inputs)))
    assert outputs.dtype == np.int8 and np.unique(outputs).size > 3
    for name, text in (("mixed.h", writer.header()), ("mixed_kernels.h", writer.kernels_header()),
                       ("mixed_kernels.c", writer.kernels_source()),
                       ("mixed.c", writer.model_source()),
                       ("selftest.c", selftest_source("mixed", inputs, outputs))):
        (tmp_path / name).write_text(text.rstrip("\n") + "\n")
    model = (tmp_path / "mixed.c").read_text()
    for fn in ("mixed_requant_x8y16(", "mixed_conv1d_x16w8a64y16(&", "mixed_lut_s16(",
               "mixed_add_s16(&", "mixed_softmax_s16(&", "mixed_requant_x16y8(",
               "mixed_quantize_f32_s8(", "mixed_dequantize_s8_f32(",
               "static const mixed_conv1d_params_t", "static const int64_t"):
        assert fn in model, fn
    (tmp_path / "main.c").write_text('#include <stdio.h>\n#include "mixed.h"\n'
                                     'int main(void) { printf("%d\\n", mixed_selftest()); '
                                     "return 0; }\n")
    exe = tmp_path / "mixed"
    proc = compile_c(cc, [*STRICT, "-Wshadow", "-O1", f"-I{tmp_path}",
                          *[str(tmp_path / f) for f in ("mixed.c", "mixed_kernels.c",
                                                        "selftest.c", "main.c")],
                          "-lm", "-o", str(exe)], tmp_path)
    assert proc.returncode == 0, proc.stderr
    run = subprocess.run([str(exe)], capture_output=True, text=True)
    assert run.returncode == 0 and run.stdout.strip() == "0", run.stdout + run.stderr


# -------------------------------------------------------------------------- source hygiene

def all_variants() -> list[tuple[str, KernelTypes]]:
    """Every type signature every family has (180 with the 16 GRU, 16 LSTM, 16 layernorm, 16
    matmul, 8 binary and 4 conv1d_fx ones: int8 or float32 weights)."""
    out = []
    for family, spec in FAMILIES.items():
        for x, y, x2, w, acc in itertools.product((8, 16), (8, 16), (8, 16), (8, 16, F32),
                                                  (32, 64)):
            t = T(x, y, x2 if "x2" in spec.fields else None, w if "w" in spec.fields else None,
                  acc if "acc" in spec.fields else None)
            try:
                check_types(family, t)
            except ValueError:
                continue
            out.append((family, t))
    return sorted(set(out), key=lambda v: (v[0], variant_suffix(v[1])))


def _compilers() -> list[str]:
    return [cc for cc in dict.fromkeys([CC, "gcc", "clang"]) if shutil.which(cc)]


def test_every_variant_compiles_strict(tmp_path):
    """All variants of all templates, renamed (prefix kws) and amalgamated into one file:
    -std=c99 -Wall -Wextra -Werror -pedantic -Wshadow -Wconversion, gcc and clang, both
    rounding modes."""
    variants = all_variants()
    assert len(variants) == 180
    assert {p.name for p in TEMPLATES} == {f for spec in FAMILIES.values()
                                            for f in (spec.file, spec.f32_file, spec.loop) if f}
    for src in TEMPLATES:  # float32 templates (tests/test_kernels_f32.py) include their header
        header = "rill_kernels_f32.h" if src.name.endswith("_f32.c") else "rill_kernels.h"
        assert src.read_text().startswith(f'#include "{header}"\n'), src.name
    c = tmp_path / "kws_kernels.c"
    sources = kernel_sources(variants, "kws")
    assert "VARIANT" not in sources
    c.write_text(kernel_header("kws", variants) + sources)
    assert not re.search(r"rill_|RILL_(?!ROUNDING)", c.read_text())
    for cc in _compilers():
        for mode in (0, 1):
            proc = compile_c(cc, [*STRICT, "-Wshadow", "-Wconversion", "-O2",
                                  f"-DRILL_ROUNDING={mode}", "-c", str(c), "-o",
                                  str(tmp_path / "k.o")], tmp_path)
            assert proc.returncode == 0, f"{cc} ({mode}): {proc.stderr[-3000:]}"


def test_rounding_macro_required(tmp_path):
    c = tmp_path / "k.c"
    variants = [("requant", S8)]
    c.write_text(kernel_header("rill", variants) + kernel_sources(variants, "rill"))
    proc = compile_c(CC, [*STRICT, "-c", str(c), "-o", str(tmp_path / "x.o")], tmp_path)
    assert proc.returncode != 0 and "RILL_ROUNDING" in proc.stderr


def test_prefix_hygiene():
    """Every Rill identifier is rill_* / RILL_*, never inside a longer name (the code generator
    renames by plain text substitution); a template's file-scope functions carry VARIANT (one
    template, several instances in one file)."""
    for path in [*C_DIR.glob("*.h"), *TEMPLATES]:
        text = path.read_text()
        bad = re.findall(r"[A-Za-z0-9_]+(?:rill_|RILL_)\w*", text)
        assert not bad, f"{path.name}: prefix inside a longer identifier: {bad}"
        assert not re.search(r"\bRill_|\brILL_", text)
        for name in re.findall(r"^(?:static inline |static |)\w[\w ]*?\b(\w+)\s*\(", text,
                               flags=re.M):
            assert name.startswith("rill_"), f"{path.name}: {name} lacks the rill_ prefix"
            if path.suffix == ".c":
                assert "VARIANT" in name, f"{path.name}: {name} lacks VARIANT"


def test_amalgamation_m32(tmp_path):
    """32-bit int/long model (like the ESP32): freestanding with a tiny libc shim, since 32-bit
    glibc headers are often not installed."""
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "math.h").write_text("float floorf(float);\nfloat ldexpf(float, int);\n"
                                 "long lrintf(float);\n")
    (shim / "string.h").write_text("#include <stddef.h>\nvoid *memset(void *, int, size_t);\n"
                                   "void *memcpy(void *, const void *, size_t);\n")
    src = tmp_path / "m32.c"
    variants = all_variants()
    src.write_text(kernel_header("rill", variants) + kernel_sources(variants, "rill"))
    probe = compile_c(CC, ["-m32", "-ffreestanding", "-c", "-x", "c", "/dev/null", "-o",
                           str(tmp_path / "p.o")], tmp_path)
    if probe.returncode != 0:
        pytest.skip("gcc -m32 unavailable")
    for mode in (0, 1):
        proc = compile_c(CC, ["-m32", "-ffreestanding", "-isystem", str(shim), *STRICT,
                              "-Wconversion", f"-DRILL_ROUNDING={mode}", "-c", str(src), "-o",
                              str(tmp_path / "m.o")], tmp_path)
        assert proc.returncode == 0, proc.stderr[-3000:]
