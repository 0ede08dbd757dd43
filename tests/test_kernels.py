"""The C int8 kernels (runtime/c) against the Python integer reference (runtime/reference), bit
for bit, in both rounding modes; the reference against exact Fraction arithmetic; and the C
sources' hygiene (warnings, -m32, amalgamation with renamed prefix).

The C side runs through tests/c/kernel_driver.c, built once per session and rounding mode (with
AddressSanitizer + UBSan when available); every test batches its calls into one driver run.
"""
from __future__ import annotations

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

from c_drivers import MODES, STRICT, build_drivers, compile_c, record, run_records  # noqa: E402
from runtime.reference import kernels as ref  # noqa: E402

C_DIR = ROOT / "runtime" / "c"
DRIVER_SRC = ROOT / "tests" / "c" / "kernel_driver.c"
KERNEL_SOURCES = sorted(C_DIR.glob("*.c"))
CC = os.environ.get("CC", "gcc")

OP = {
    "conv1d_s8": 1, "gemm_s8": 2, "add_s8": 3, "avgpool1d_s8": 4, "lut_s8": 5,
    "requant_s8": 6, "transpose_s8": 7, "quantize_f32_s8": 8, "dequantize_s8_f32": 9,
    "round_shift": 10, "round_div": 11, "round_f32_sat8": 12, "floor_shift": 13,
    "maxpool1d_s8": 14, "conv2d_s8": 15, "reduce_s8": 16, "softmax_s8": 17, "mask_frames_s8": 18,
    "mask_frames_inplace": 19, "conv_transpose1d_s8": 20,
}

I64_MIN, I64_MAX = -(2**63), 2**63 - 1

pytestmark = pytest.mark.skipif(shutil.which(CC) is None, reason=f"no C compiler ({CC})")


# --------------------------------------------------------------------------------- C driver

class Driver:
    """One compiled kernel_driver; `run` sends a batch of calls through one process."""

    def __init__(self, exe: Path, mode: str):
        self.exe = exe
        self.mode = mode

    def run(self, calls: list[tuple]) -> list[np.ndarray]:
        """calls: (op_name, params [int], arrays [ndarray], out_dtype, out_count)."""
        sizes = [int(n) * np.dtype(dt).itemsize for *_, dt, n in calls]
        records = [record(OP[op], params, arrays, size)
                   for (op, params, arrays, _, _), size in zip(calls, sizes)]
        raw = run_records(self.exe, records, sizes, f"kernel_driver ({self.mode})")
        return [np.frombuffer(b, dtype=dt).copy() for b, (*_, dt, _) in zip(raw, calls)]


def _compile(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return compile_c(CC, args, cwd)


@pytest.fixture(scope="session")
def drivers(tmp_path_factory) -> dict[str, Driver]:
    build = tmp_path_factory.mktemp("kernel_driver")
    exes = build_drivers(CC, build, DRIVER_SRC, KERNEL_SOURCES, C_DIR, "kernel_driver")
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
    for (desc, _, want), got in zip(cases, outs):
        assert_same(got, want, f"[{driver.mode}] {desc}")


# --------------------------------------------------------------------------- case builders

def _params(op: str, p: dict) -> list[int]:
    out = []
    for f in ref.PARAMS_FIELDS[op]:
        v = p[f]
        out.extend(list(v) + [0] * (4 - len(v)) if isinstance(v, (list, tuple)) else [v])
    return out


def conv_case(x, w, bias, shift, p, mode, desc=""):
    want = ref.conv1d_s8(x, w, bias, shift, **p, mode=mode)
    call = ("conv1d_s8", _params("conv1d_s8", p),
            [x.astype(np.int8), w.astype(np.int8), bias.astype(np.int32), shift.astype(np.int8)],
            np.int8, want.size)
    return (f"conv1d {desc} {p}", call, want)


def gemm_case(x, w, bias, shift, p, mode, desc=""):
    want = ref.gemm_s8(x, w, bias, shift, **p, mode=mode)
    call = ("gemm_s8", _params("gemm_s8", p),
            [x.astype(np.int8), w.astype(np.int8), bias.astype(np.int32), shift.astype(np.int8)],
            np.int8, want.size)
    return (f"gemm {desc} {p}", call, want)


def rand_i8(rng, shape, extreme=False):
    if extreme:
        return rng.choice(np.array([-128, 127, -127, 0, 1, -1], dtype=np.int8), size=shape)
    return rng.integers(-128, 128, size=shape, dtype=np.int64).astype(np.int8)


def rand_act(rng):
    return [(-128, 127), (0, 127), (-128, 127), (-20, 30)][int(rng.integers(4))]


def conv_shapes(rng):
    kind = rng.choice(["dense", "g2", "depthwise"])
    if kind == "dense":
        groups, c_in, c_out = 1, int(rng.integers(1, 9)), int(rng.integers(1, 9))
    elif kind == "g2":
        groups = 2
        c_in, c_out = 2 * int(rng.integers(1, 5)), 2 * int(rng.integers(1, 5))
    else:
        c_in = int(rng.integers(1, 9))
        groups, c_out = c_in, c_in * int(rng.integers(1, 3))
    kernel = int(rng.integers(1, 6))
    dilation = int(rng.integers(1, 5))
    stride = int(rng.integers(1, 4))
    pad_l = int(rng.integers(0, dilation * (kernel - 1) + 2))
    pad_r = int(rng.integers(0, dilation * (kernel - 1) + 2))
    field = dilation * (kernel - 1) + 1
    t_in = int(rng.integers(max(1, field - pad_l - pad_r), field + 12))
    return dict(t_in=t_in, c_in=c_in, c_out=c_out, kernel=kernel, stride=stride,
                dilation=dilation, groups=groups, pad_l=pad_l, pad_r=pad_r)


# ------------------------------------------------------------------------------- conv1d

@pytest.mark.parametrize("mode", MODES)
def test_conv1d_random(drivers, mode):
    cases = []
    for seed in range(400):
        rng = np.random.default_rng(1000 + seed)
        p = conv_shapes(rng)
        lo, hi = rand_act(rng)
        p.update(act_min=lo, act_max=hi)
        cg = p["c_in"] // p["groups"]
        extreme = seed % 5 == 0
        x = rand_i8(rng, (p["t_in"], p["c_in"]), extreme)
        w = rand_i8(rng, (p["c_out"], p["kernel"], cg), extreme)
        # shifts of both signs; larger ones keep the outputs mostly unsaturated
        shift = rng.integers(-3, 17, size=p["c_out"])
        bias = rng.integers(-(2**17), 2**17, size=p["c_out"])
        if seed % 7 == 0:  # biases that push saturation
            bias = rng.choice([-(2**24), 2**24, -(2**20), 2**20], size=p["c_out"])
        cases.append(conv_case(x, w, bias, shift, p, mode, f"seed={seed}"))
    check_batch(drivers[mode], cases)


@pytest.mark.parametrize("mode", MODES)
def test_conv1d_ties(drivers, mode):
    """t_out = 1 and bias = tie - dot: every accumulator is an exact odd multiple of 2^(s-1)."""
    cases, diff = [], 0
    for seed in range(100):
        rng = np.random.default_rng(5000 + seed)
        p = conv_shapes(rng)
        p.update(pad_l=0, pad_r=0, stride=1, act_min=-128, act_max=127)
        p["t_in"] = p["dilation"] * (p["kernel"] - 1) + 1
        cg = p["c_in"] // p["groups"]
        x = rand_i8(rng, (p["t_in"], p["c_in"]))
        w = rand_i8(rng, (p["c_out"], p["kernel"], cg))
        shift = rng.integers(1, 10, size=p["c_out"])
        zero_bias = np.zeros(p["c_out"], dtype=np.int64)
        dot = _conv_acc(x, w, zero_bias, p)[0]
        odd = 2 * rng.integers(-150, 150, size=p["c_out"]) + 1  # negative ties included
        bias = odd * (1 << (shift - 1)) - dot
        cases.append(conv_case(x, w, bias, shift, p, mode, f"ties seed={seed}"))
        other = ref.conv1d_s8(x, w, bias, shift, **p, mode=MODES[1 - MODES.index(mode)])
        diff += int(np.sum(other != cases[-1][2]))
    assert diff > 0, "the tie cases do not distinguish the rounding modes"
    check_batch(drivers[mode], cases)


@pytest.mark.parametrize("mode", MODES)
def test_conv1d_edges(drivers, mode):
    cases = []
    base = dict(t_in=6, c_in=4, c_out=4, kernel=3, stride=1, dilation=1, groups=1, pad_l=1,
                pad_r=1, act_min=-128, act_max=127)
    for xv in (-128, 127):
        for wv in (-128, 127):
            x = np.full((6, 4), xv)
            w = np.full((4, 3, 4), wv)
            shift = np.array([8, 9, 0, -1])
            for bias in (np.zeros(4), np.array([2**20, -(2**20), 5, -5])):
                cases.append(conv_case(x, w, bias.astype(np.int64), shift, base, mode,
                                       f"x={xv} w={wv}"))
    # too short for one output frame: no output at all (C must not compute a stray frame)
    # (span = t_in + pads - field = -1: C's truncating division must not make that one frame)
    for t_in, stride in ((1, 2), (2, 2), (2, 3), (1, 1)):
        short = dict(base, t_in=t_in, kernel=5, pad_l=1, pad_r=1, stride=stride)
        cases.append(conv_case(np.ones((t_in, 4)), np.ones((4, 5, 4)), np.zeros(4, np.int64),
                               np.zeros(4), short, mode, "short"))
        assert cases[-1][2].size == 0
    # pads wider than the field of view (windows entirely in the padding read zeros: y = bias)
    wide = dict(base, t_in=2, kernel=2, dilation=3, pad_l=7, pad_r=6, stride=3,
                act_min=0, act_max=127)
    rng = np.random.default_rng(7)
    cases.append(conv_case(rand_i8(rng, (2, 4)), rand_i8(rng, (4, 2, 4)),
                           rng.integers(-300, 300, 4), np.array([1, 2, 0, -1]), wide, mode,
                           "wide pads, relu"))
    check_batch(drivers[mode], cases)


def _conv_acc(x, w, bias, p):
    """Literal transcription of the spec's accumulator (python ints)."""
    t_in, c_in, c_out, kernel = p["t_in"], p["c_in"], p["c_out"], p["kernel"]
    cg, og = c_in // p["groups"], c_out // p["groups"]
    span = t_in + p["pad_l"] + p["pad_r"] - p["dilation"] * (kernel - 1) - 1
    t_out = span // p["stride"] + 1 if span >= 0 else 0
    x = np.asarray(x).reshape(t_in, c_in)
    w = np.asarray(w).reshape(c_out, kernel, cg)
    acc = np.zeros((t_out, c_out), dtype=object)
    for t in range(t_out):
        for co in range(c_out):
            g = co // og
            a = int(bias[co])
            for k in range(kernel):
                f = t * p["stride"] + k * p["dilation"] - p["pad_l"]
                if 0 <= f < t_in:
                    for i in range(cg):
                        a += int(w[co, k, i]) * int(x[f, g * cg + i])
            acc[t, co] = a
    return acc


def exact_round(fr: Fraction, mode: str) -> int:
    f = math.floor(fr)
    r = fr - f
    if r > Fraction(1, 2) or (r == Fraction(1, 2) and (mode == "half_up" or f % 2 == 1)):
        f += 1
    return f


@pytest.mark.parametrize("mode", MODES)
def test_conv1d_reference_matches_spec_literally(mode):
    """The vectorized reference against a loop-by-loop reading of the spec with Fractions."""
    for seed in range(25):
        rng = np.random.default_rng(9000 + seed)
        p = conv_shapes(rng)
        p.update(act_min=-128 if seed % 2 else 0, act_max=127)
        cg = p["c_in"] // p["groups"]
        x = rand_i8(rng, (p["t_in"], p["c_in"]))
        w = rand_i8(rng, (p["c_out"], p["kernel"], cg))
        shift = rng.integers(-2, 14, size=p["c_out"])
        bias = rng.integers(-5000, 5000, size=p["c_out"])
        acc = _conv_acc(x, w, bias, p)
        want = np.zeros(acc.shape, dtype=np.int64)
        for (t, co), a in np.ndenumerate(acc):
            v = exact_round(Fraction(a) / Fraction(2) ** int(shift[co]), mode)
            want[t, co] = min(max(min(max(v, -128), 127), p["act_min"]), p["act_max"])
        got = ref.conv1d_s8(x.reshape(-1), w.reshape(-1), bias, shift, **p, mode=mode)
        assert got.dtype == np.int8 and got.shape == want.shape
        assert_same(got, want, f"conv1d reference seed={seed} {p}")


# --------------------------------------------------------------------------------- gemm

@pytest.mark.parametrize("mode", MODES)
def test_gemm(drivers, mode):
    cases, diff = [], 0
    for seed in range(200):
        rng = np.random.default_rng(2000 + seed)
        m, k, n = (int(v) for v in rng.integers(1, 24, size=3))
        lo, hi = rand_act(rng)
        p = dict(m=m, k=k, n=n, act_min=lo, act_max=hi)
        extreme = seed % 4 == 0
        x = rand_i8(rng, (m, k), extreme)
        w = rand_i8(rng, (n, k), extreme)
        shift = rng.integers(-3, 17, size=n)
        bias = rng.integers(-(2**18), 2**18, size=n)
        if seed % 6 == 0:
            bias = rng.choice([-(2**25), 2**25], size=n)
        cases.append(gemm_case(x, w, bias, shift, p, mode, f"seed={seed}"))
        # the same shapes with m = 1 and every accumulator on a tie (both signs)
        p1 = dict(p, m=1, act_min=-128, act_max=127)
        s1 = rng.integers(1, 12, size=n)
        dot = x[:1].astype(np.int64) @ w.astype(np.int64).T
        odd = 2 * rng.integers(-140, 140, size=n) + 1
        b1 = odd * (1 << (s1 - 1)) - dot[0]
        cases.append(gemm_case(x[:1], w, b1, s1, p1, mode, f"ties seed={seed}"))
        other = ref.gemm_s8(x[:1], w, b1, s1, **p1, mode=MODES[1 - MODES.index(mode)])
        diff += int(np.sum(other != cases[-1][2]))
    assert diff > 0
    check_batch(drivers[mode], cases)


@pytest.mark.parametrize("mode", MODES)
def test_gemm_reference_matches_spec_literally(mode):
    rng = np.random.default_rng(3)
    for _ in range(20):
        m, k, n = (int(v) for v in rng.integers(1, 7, size=3))
        x, w = rand_i8(rng, (m, k)), rand_i8(rng, (n, k))
        bias, shift = rng.integers(-3000, 3000, n), rng.integers(-2, 12, n)
        want = np.zeros((m, n), dtype=np.int64)
        for i in range(m):
            for j in range(n):
                a = int(bias[j]) + sum(int(x[i, l]) * int(w[j, l]) for l in range(k))
                v = exact_round(Fraction(a) / Fraction(2) ** int(shift[j]), mode)
                want[i, j] = max(0, min(127, v))
        got = ref.gemm_s8(x, w, bias, shift, m=m, k=k, n=n, act_min=0, act_max=127, mode=mode)
        assert_same(got, want, "gemm reference")


# ---------------------------------------------------------------------------------- add

@pytest.mark.parametrize("mode", MODES)
def test_add(drivers, mode):
    cases = []
    every = np.arange(-128, 128)
    a_all, b_all = np.meshgrid(every, every)  # all 65536 input pairs
    a_all, b_all = a_all.reshape(-1), b_all.reshape(-1)
    for shift_a, shift_b, shift_out in [(0, 0, 1), (0, 0, 0), (0, 3, 2), (2, 0, 3), (0, 5, 6),
                                        (1, 0, -1), (0, 0, -2), (0, 7, 9), (4, 0, 1)]:
        lo, hi = (0, 127) if shift_out == 2 else (-128, 127)
        p = dict(n=a_all.size, shift_a=shift_a, shift_b=shift_b, shift_out=shift_out,
                 act_min=lo, act_max=hi)
        want = ref.add_s8(a_all, b_all, **p, mode=mode)
        cases.append((f"add {p}", ("add_s8", _params("add_s8", p),
                                   [a_all.astype(np.int8), b_all.astype(np.int8)], np.int8,
                                   a_all.size), want))
    for seed in range(30):
        rng = np.random.default_rng(3000 + seed)
        n = int(rng.integers(0, 50))
        lo, hi = rand_act(rng)
        p = dict(n=n, shift_a=int(rng.integers(0, 8)), shift_b=int(rng.integers(0, 8)),
                 shift_out=int(rng.integers(-3, 12)), act_min=lo, act_max=hi)
        a, b = rand_i8(rng, n, seed % 3 == 0), rand_i8(rng, n, seed % 3 == 0)
        want = ref.add_s8(a, b, **p, mode=mode)
        cases.append((f"add {p}", ("add_s8", _params("add_s8", p), [a, b], np.int8, n), want))
    check_batch(drivers[mode], cases)


def test_add_reference_exact():
    rng = np.random.default_rng(11)
    for mode in MODES:
        for _ in range(30):
            sa, sb, so = int(rng.integers(0, 6)), int(rng.integers(0, 6)), int(rng.integers(-2, 9))
            a, b = rand_i8(rng, 40), rand_i8(rng, 40)
            got = ref.add_s8(a, b, n=40, shift_a=sa, shift_b=sb, shift_out=so, act_min=-128,
                             act_max=127, mode=mode)
            want = [max(-128, min(127, exact_round(
                Fraction(int(x) * 2**sa + int(y) * 2**sb) / Fraction(2) ** so, mode)))
                for x, y in zip(a, b)]
            assert_same(got, np.array(want), f"add reference {mode} {sa} {sb} {so}")


# ------------------------------------------------------------------------------ avgpool

def avgpool_literal(x, p, mode):
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
            v = exact_round(Fraction(s, count) / Fraction(2) ** p["shift"], mode)
            y[t, c] = max(-128, min(127, v))
    return y


def avgpool_params(rng):
    kernel = int(rng.integers(1, 6))
    return dict(t_in=int(rng.integers(1, 16)), channels=int(rng.integers(1, 7)), kernel=kernel,
                stride=int(rng.integers(1, 4)), pad_l=int(rng.integers(0, kernel + 1)),
                pad_r=int(rng.integers(0, kernel + 1)),
                count_include_pad=int(rng.integers(0, 2)), shift=int(rng.integers(-3, 4)))


@pytest.mark.parametrize("mode", MODES)
def test_avgpool1d(drivers, mode):
    cases = []
    for seed in range(400):
        rng = np.random.default_rng(4000 + seed)
        p = avgpool_params(rng)
        if seed % 10 == 0:
            p.update(pad_l=p["kernel"] + 1, count_include_pad=0)  # windows with no frame
        x = rand_i8(rng, (p["t_in"], p["channels"]), seed % 4 == 0)
        want = ref.avgpool1d_s8(x, **p, mode=mode)
        cases.append((f"avgpool {p}", ("avgpool1d_s8", _params("avgpool1d_s8", p), [x], np.int8,
                                       want.size), want))
    # input shorter than the window: no output frame
    for t_in, stride, channels in ((1, 2, 1), (2, 2, 3), (2, 3, 2), (1, 1, 1)):
        p = dict(t_in=t_in, channels=channels, kernel=4, stride=stride, pad_l=1, pad_r=0,
                 count_include_pad=1, shift=0)
        x = np.ones((t_in, channels), dtype=np.int8)
        want = ref.avgpool1d_s8(x, **p, mode=mode)
        assert want.size == 0
        cases.append((f"avgpool short {p}",
                      ("avgpool1d_s8", _params("avgpool1d_s8", p), [x], np.int8, 0), want))
    # all-equal windows of +-odd values over 2 or 4 frames give exact ties after shifts
    for cip in (0, 1):
        for v in (-128, 127, 1, -1, 3, -3):
            p = dict(t_in=8, channels=3, kernel=4, stride=2, pad_l=1, pad_r=2,
                     count_include_pad=cip, shift=1)
            x = np.full((8, 3), v, dtype=np.int8)
            want = ref.avgpool1d_s8(x, **p, mode=mode)
            cases.append((f"avgpool ties {p} v={v}",
                          ("avgpool1d_s8", _params("avgpool1d_s8", p), [x], np.int8, want.size),
                          want))
    check_batch(drivers[mode], cases)


@pytest.mark.parametrize("mode", MODES)
def test_avgpool1d_reference_matches_spec_literally(mode):
    for seed in range(120):
        rng = np.random.default_rng(4000 + seed)
        p = avgpool_params(rng)
        x = rand_i8(rng, (p["t_in"], p["channels"]))
        assert_same(ref.avgpool1d_s8(x, **p, mode=mode), avgpool_literal(x, p, mode),
                    f"avgpool reference {p}")


# ------------------------------------------------------------------ lut, requant, transpose

@pytest.mark.parametrize("mode", MODES)
def test_lut_requant_transpose(drivers, mode):
    cases = []
    rng = np.random.default_rng(6000)
    every = np.arange(-128, 128).astype(np.int8)
    for _ in range(5):
        table = rand_i8(rng, 256)
        x = np.concatenate([every, rand_i8(rng, 100)])
        want = ref.lut_s8(x, table)
        assert_same(want, table[x.astype(np.int64) + 128], "lut reference")
        cases.append(("lut", ("lut_s8", [x.size], [table, x], np.int8, x.size), want))
    cases.append(("lut n=0", ("lut_s8", [0], [rand_i8(rng, 256), every[:0]], np.int8, 0),
                  np.zeros(0, np.int8)))
    for shift in [*range(-10, 12), 20, 40, -40, 62, 63, 64, 100]:
        x = np.concatenate([every, rand_i8(rng, 30)])
        want = ref.requant_s8(x, shift=shift, mode=mode)
        if 1 <= shift <= 30:  # against exact arithmetic
            exact = [max(-128, min(127, exact_round(Fraction(int(v), 2**shift), mode))) for v in x]
            assert_same(want, np.array(exact), f"requant reference shift={shift}")
        cases.append((f"requant shift={shift}", ("requant_s8", [x.size, shift], [x], np.int8,
                                                 x.size), want))
    for seed in range(60):
        rng = np.random.default_rng(6100 + seed)
        rank = int(rng.integers(1, 5))
        shape = [int(v) for v in rng.integers(1, 6, size=rank)]
        if seed % 9 == 0:
            shape[int(rng.integers(rank))] = 0 if seed % 18 == 0 else 1
        perm = [int(v) for v in rng.permutation(rank)]
        x = rand_i8(rng, int(np.prod(shape)))
        p = dict(rank=rank, in_shape=shape, perm=perm)
        want = ref.transpose_s8(x, **p)
        assert_same(want, x.reshape(shape).transpose(perm), "transpose reference")
        padded = ref.transpose_s8(x, rank=rank, in_shape=shape + [7] * (4 - rank),
                                  perm=perm + [3] * (4 - rank))
        assert_same(padded, want, "transpose reference (padded params)")
        cases.append((f"transpose {p}", ("transpose_s8", _params("transpose_s8", p), [x],
                                         np.int8, x.size), want))
    check_batch(drivers[mode], cases)


# ------------------------------------------------------------------- quantize / dequantize

def _tie_floats(rng) -> np.ndarray:
    ties = np.arange(-131, 131) + 0.5
    base = np.concatenate([ties, np.arange(-131, 132), [0.5, 1.5, -0.5, -2.5, 2.5, -1.5]])
    base = base.astype(np.float32)
    near = np.concatenate([np.nextafter(base, np.float32(np.inf)),
                           np.nextafter(base, np.float32(-np.inf))])
    special = np.array([np.nan, -np.nan, np.inf, -np.inf, 0.0, -0.0, 1e30, -1e30, 3.4e38,
                        -3.4e38, 1e-45, -1e-45, 1e-38, 127.49999, 127.5, 127.50001, 128.0,
                        128.5, -128.49999, -128.5, -128.50002, -129.0, -129.5, 0.49999997,
                        -0.49999997, 2**23 + 1.0, -(2**23) - 1.0, 2**24, 2**31, -(2**31),
                        2**63, -(2**63)], dtype=np.float32)
    rand = (rng.standard_normal(400) * 80).astype(np.float32)
    return np.concatenate([base, near, special, rand]).astype(np.float32)


@pytest.mark.parametrize("mode", MODES)
def test_quantize_dequantize(drivers, mode):
    cases = []
    rng = np.random.default_rng(7000)
    v = _tie_floats(rng)
    for exp in [0, 1, -1, 3, -3, 7, -7, 10, -10, 20, -20, 100, -100, 126, -126, 127, -127, 149,
                -149, 150, -150, 200, -200]:
        # scaled copies keep the ties: x = v * 2^exp makes x * 2^-exp == v exactly
        with np.errstate(over="ignore", under="ignore"):
            x = np.ldexp(v, exp).astype(np.float32) if abs(exp) <= 20 else v
        want = ref.quantize_f32_s8(x, exp=exp, mode=mode)
        if abs(exp) <= 20:
            finite = np.isfinite(v)
            exact = np.array([max(-128, min(127, exact_round(Fraction(float(f)), mode)))
                              for f in v[finite]])
            assert_same(want[finite], exact, f"quantize reference exp={exp}")
            assert np.all(want[np.isnan(v)] == 0)
            assert np.all(want[v == np.inf] == 127) and np.all(want[v == -np.inf] == -128)
        cases.append((f"quantize exp={exp}", ("quantize_f32_s8", [x.size, exp], [x], np.int8,
                                              x.size), want))
        q = np.arange(-128, 128).astype(np.int8)
        want_d = ref.dequantize_s8_f32(q, exp=exp)
        if abs(exp) <= 100:
            assert_same(want_d, np.array([float(Fraction(int(i)) * Fraction(2) ** exp)
                                          for i in q], dtype=np.float32), "dequantize reference")
        cases.append((f"dequantize exp={exp}", ("dequantize_s8_f32", [q.size, exp], [q],
                                                np.float32, q.size), want_d))
    check_batch(drivers[mode], cases)


@pytest.mark.parametrize("mode", MODES)
def test_round_f32_sat8_helper(drivers, mode):
    v = _tie_floats(np.random.default_rng(7100))
    want = ref._round_f32_sat8(v, mode)
    check_batch(drivers[mode], [("rill_round_f32_sat8", ("round_f32_sat8", [v.size], [v],
                                                          np.int8, v.size), want)])


def test_quantize_examples():
    x = np.array([0.5, 1.5, -0.5, -2.5, 2.5, -1.5, np.nan, np.inf, -np.inf, 1e30,
                  0.49999997, -0.50000006], dtype=np.float32)
    assert ref.quantize_f32_s8(x, exp=0, mode="half_even").tolist() == \
        [0, 2, 0, -2, 2, -2, 0, 127, -128, 127, 0, -1]
    assert ref.quantize_f32_s8(x, exp=0, mode="half_up").tolist() == \
        [1, 2, 0, -2, 3, -1, 0, 127, -128, 127, 0, -1]
    # exp = -2: q = x * 4
    assert ref.quantize_f32_s8(np.float32([0.125, 0.375]), exp=-2, mode="half_even").tolist() \
        == [0, 2]


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
    with pytest.raises(OverflowError):  # the C int32 accumulator would overflow
        ref.gemm_s8(np.full((1, 1), -128), np.full((1, 1), -128), [2**31 - 100], [0], m=1,
                    k=1, n=1, act_min=-128, act_max=127, mode="half_up")


# ------------------------------------------------------------------------ shared for new ops

def _case(op: str, p: dict, arrays: list, want: np.ndarray, desc: str = "") -> tuple:
    """One driver call whose params follow PARAMS_FIELDS[op] (the C struct order)."""
    return (f"{op} {desc} {p}", (op, _params(op, p), arrays, np.int8, want.size), want)


def _other(mode: str) -> str:
    return MODES[1 - MODES.index(mode)]


def _sat(v: int, lo: int = -128, hi: int = 127) -> int:
    return min(max(min(max(v, -128), 127), lo), hi)


def _ties_x(rng, shape, s: int) -> np.ndarray:
    """Multiples of 2^s: every dot product is a multiple of 2^s, so a bias of an odd multiple
    of 2^(s-1) puts every accumulator on an exact tie (both signs)."""
    return (rng.integers(-1, 2, size=shape) * (1 << s)).clip(-128, 127).astype(np.int8)


def _ties_bias(rng, n: int, s: int) -> np.ndarray:
    return (2 * rng.integers(-20, 20, size=n) + 1) * (1 << (s - 1))


def _group_kind(rng) -> tuple[int, int, int]:
    """(groups, c_in, c_out): dense, two groups or depthwise (with a channel multiplier)."""
    kind = rng.choice(["dense", "g2", "depthwise"])
    if kind == "dense":
        return 1, int(rng.integers(1, 7)), int(rng.integers(1, 7))
    if kind == "g2":
        return 2, 2 * int(rng.integers(1, 4)), 2 * int(rng.integers(1, 4))
    c_in = int(rng.integers(1, 7))
    return c_in, c_in, c_in * int(rng.integers(1, 3))


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


# ----------------------------------------------------------------------------- maxpool1d

def maxpool_params(rng) -> dict:
    kernel, dilation = int(rng.integers(1, 6)), int(rng.integers(1, 4))
    field = dilation * (kernel - 1) + 1
    pad_l, pad_r = int(rng.integers(0, field + 1)), int(rng.integers(0, field + 1))
    return dict(t_in=int(rng.integers(max(1, field - pad_l - pad_r - 1), field + 12)),
                channels=int(rng.integers(1, 7)), kernel=kernel, stride=int(rng.integers(1, 4)),
                dilation=dilation, pad_l=pad_l, pad_r=pad_r,
                pad_value=int(rng.choice([-128, -128, 0, 5, 127, -3])),
                shift=int(rng.choice([0, 0, 1, 2, 3, -1, -2, 7])))


def maxpool_literal(x, p: dict, mode: str) -> np.ndarray:
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
            y[t, c] = _sat(exact_round(Fraction(max(vals)) / Fraction(2) ** p["shift"], mode))
    return y


@pytest.mark.parametrize("mode", MODES)
def test_maxpool1d(drivers, mode):
    cases, diff = [], 0
    for seed in range(400):
        rng = np.random.default_rng(10000 + seed)
        p = maxpool_params(rng)
        if seed % 10 == 0:  # windows entirely in the padding
            p.update(pad_l=p["dilation"] * (p["kernel"] - 1) + 2, pad_value=-7)
        x = rand_i8(rng, (p["t_in"], p["channels"]), seed % 4 == 0)
        want = ref.maxpool1d_s8(x, **p, mode=mode)
        cases.append(_case("maxpool1d_s8", p, [x], want, f"seed={seed}"))
        diff += int(np.sum(ref.maxpool1d_s8(x, **p, mode=_other(mode)) != want))
    for v in (-128, 127):  # edge values everywhere, padding of both extremes
        for pad_value in (-128, 127):
            for shift in (0, 1, -1, 8):
                p = dict(t_in=7, channels=3, kernel=3, stride=2, dilation=2, pad_l=2, pad_r=3,
                         pad_value=pad_value, shift=shift)
                x = np.full((7, 3), v, dtype=np.int8)
                cases.append(_case("maxpool1d_s8", p, [x], ref.maxpool1d_s8(x, **p, mode=mode),
                                   "edges"))
    for t_in, stride in ((1, 2), (2, 2), (2, 3), (1, 1)):  # too short: no output frame
        p = dict(t_in=t_in, channels=2, kernel=4, stride=stride, dilation=1, pad_l=1, pad_r=0,
                 pad_value=-128, shift=0)
        want = ref.maxpool1d_s8(np.ones((t_in, 2)), **p, mode=mode)
        assert want.size == 0
        cases.append(_case("maxpool1d_s8", p, [np.ones((t_in, 2), np.int8)], want, "short"))
    assert diff > 0, "no maxpool case distinguishes the rounding modes"
    check_batch(drivers[mode], cases)


@pytest.mark.parametrize("mode", MODES)
def test_maxpool1d_reference_matches_spec_literally(mode):
    for seed in range(150):
        rng = np.random.default_rng(10000 + seed)
        p = maxpool_params(rng)
        x = rand_i8(rng, (p["t_in"], p["channels"]), seed % 3 == 0)
        assert_same(ref.maxpool1d_s8(x.reshape(-1), **p, mode=mode), maxpool_literal(x, p, mode),
                    f"maxpool reference {p}")


def test_maxpool1d_matches_onnxruntime():
    """-128 padding is ONNX's -inf padding on int8 data (shift 0: an exact float max)."""
    from onnx import helper
    rng = np.random.default_rng(10500)
    for _ in range(20):
        p = maxpool_params(rng)
        p.update(pad_value=-128, shift=0, pad_l=min(p["pad_l"], p["kernel"] - 1),
                 pad_r=min(p["pad_r"], p["kernel"] - 1))  # ONNX: pads < kernel
        x = rand_i8(rng, (p["t_in"], p["channels"]))
        node = helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[p["kernel"]],
                                strides=[p["stride"]], dilations=[p["dilation"]],
                                pads=[p["pad_l"], p["pad_r"]])
        want = _onnx_session(node, {"x": x.T[None].astype(np.float32)}, "y", 3)[0].T
        got = ref.maxpool1d_s8(x, **p, mode="half_even")
        assert_same(got, want.astype(np.int64), f"maxpool vs onnxruntime {p}")


# -------------------------------------------------------------------------------- conv2d

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


def _conv2d_arrays(rng, p: dict, extreme: bool = False):
    cg = p["c_in"] // p["groups"]
    x = rand_i8(rng, (p["t_in"], p["c_in"], p["f_in"]), extreme)
    w = rand_i8(rng, (p["c_out"], p["kernel_t"], p["kernel_f"], cg), extreme)
    return x, w


def _conv2d_case(x, w, bias, shift, p, mode, desc=""):
    want = ref.conv2d_s8(x, w, bias, shift, **p, mode=mode)
    arrays = [x.astype(np.int8), w.astype(np.int8), np.asarray(bias).astype(np.int32),
              np.asarray(shift).astype(np.int8)]
    return _case("conv2d_s8", p, arrays, want, desc)


def conv2d_literal(x, w, bias, shift, p: dict, mode: str) -> np.ndarray:
    """The spec read loop by loop (python ints, Fraction rounding)."""
    def out_len(n, k, d, s, lo, hi):
        span = n + lo + hi - d * (k - 1) - 1
        return span // s + 1 if span >= 0 else 0
    t_out = out_len(p["t_in"], p["kernel_t"], p["dilation_t"], p["stride_t"], p["pad_t_l"],
                    p["pad_t_r"])
    f_out = out_len(p["f_in"], p["kernel_f"], p["dilation_f"], p["stride_f"], p["pad_f_l"],
                    p["pad_f_r"])
    cg, og = p["c_in"] // p["groups"], p["c_out"] // p["groups"]
    y = np.zeros((t_out, p["c_out"], f_out), dtype=np.int64)
    for t in range(t_out):
        for co in range(p["c_out"]):
            g = co // og
            for f in range(f_out):
                acc = int(bias[co])
                for kt in range(p["kernel_t"]):
                    ti = t * p["stride_t"] + kt * p["dilation_t"] - p["pad_t_l"]
                    for kf in range(p["kernel_f"]):
                        fi = f * p["stride_f"] + kf * p["dilation_f"] - p["pad_f_l"]
                        if 0 <= ti < p["t_in"] and 0 <= fi < p["f_in"]:
                            for i in range(cg):
                                acc += int(w[co, kt, kf, i]) * int(x[ti, g * cg + i, fi])
                v = exact_round(Fraction(acc) / Fraction(2) ** int(shift[co]), mode)
                y[t, co, f] = _sat(v, p["act_min"], p["act_max"])
    return y


@pytest.mark.parametrize("mode", MODES)
def test_conv2d_random(drivers, mode):
    cases = []
    for seed in range(250):
        rng = np.random.default_rng(11000 + seed)
        p = conv2d_shapes(rng)
        lo, hi = rand_act(rng)
        p.update(act_min=lo, act_max=hi)
        x, w = _conv2d_arrays(rng, p, seed % 5 == 0)
        shift = rng.integers(-3, 17, size=p["c_out"])
        bias = rng.integers(-(2**17), 2**17, size=p["c_out"])
        if seed % 7 == 0:
            bias = rng.choice([-(2**24), 2**24, -(2**20), 2**20], size=p["c_out"])
        cases.append(_conv2d_case(x, w, bias, shift, p, mode, f"seed={seed}"))
    check_batch(drivers[mode], cases)


@pytest.mark.parametrize("mode", MODES)
def test_conv2d_ties_and_edges(drivers, mode):
    cases, diff = [], 0
    for seed in range(80):  # every accumulator an exact tie
        rng = np.random.default_rng(11500 + seed)
        p = conv2d_shapes(rng)
        p.update(act_min=-128, act_max=127)
        s = int(rng.integers(1, 7))
        cg = p["c_in"] // p["groups"]
        x = _ties_x(rng, (p["t_in"], p["c_in"], p["f_in"]), s)
        w = rng.integers(-3, 4, size=(p["c_out"], p["kernel_t"], p["kernel_f"], cg))
        bias, shift = _ties_bias(rng, p["c_out"], s), np.full(p["c_out"], s)
        cases.append(_conv2d_case(x, w, bias, shift, p, mode, f"ties seed={seed}"))
        diff += int(np.sum(ref.conv2d_s8(x, w, bias, shift, **p, mode=_other(mode))
                           != cases[-1][2]))
    assert diff > 0, "the tie cases do not distinguish the rounding modes"
    base = dict(t_in=5, f_in=6, c_in=3, c_out=2, kernel_t=3, kernel_f=2, stride_t=1, stride_f=2,
                dilation_t=1, dilation_f=2, groups=1, pad_t_l=1, pad_t_r=1, pad_f_l=2, pad_f_r=1,
                act_min=-128, act_max=127)
    for xv in (-128, 127):
        for wv in (-128, 127):
            x, w = np.full((5, 3, 6), xv), np.full((2, 3, 2, 3), wv)
            for bias in (np.zeros(2, np.int64), np.array([2**20, -(2**20)])):
                cases.append(_conv2d_case(x, w, bias, np.array([9, -1]), base, mode, "edges"))
    # too short along time or along frequency: empty output
    for upd in (dict(t_in=1, pad_t_l=0, pad_t_r=0), dict(f_in=1, pad_f_l=0, pad_f_r=0, stride_f=3)):
        p = dict(base, **upd)
        x = np.ones((p["t_in"], 3, p["f_in"]), np.int8)
        c = _conv2d_case(x, np.ones((2, 3, 2, 3)), np.zeros(2, np.int64), np.zeros(2), p, mode,
                         "short")
        assert c[2].size == 0
        cases.append(c)
    check_batch(drivers[mode], cases)


@pytest.mark.parametrize("mode", MODES)
def test_conv2d_reference_matches_spec_literally(mode):
    for seed in range(30):
        rng = np.random.default_rng(11000 + seed)
        p = conv2d_shapes(rng)
        p.update(act_min=-128 if seed % 2 else 0, act_max=127)
        x, w = _conv2d_arrays(rng, p)
        shift = rng.integers(-2, 14, size=p["c_out"])
        bias = rng.integers(-5000, 5000, size=p["c_out"])
        got = ref.conv2d_s8(x.reshape(-1), w.reshape(-1), bias, shift, **p, mode=mode)
        want = conv2d_literal(x, w, bias, shift, p, mode)
        assert got.dtype == np.int8 and got.shape == want.shape
        assert_same(got, want, f"conv2d reference seed={seed} {p}")


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


# -------------------------------------------------------------------------------- reduce

def reduce_literal(x, p: dict, mode: str) -> np.ndarray:
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
            y[o, i] = _sat(exact_round(v, mode))
    return y


def reduce_params(rng) -> dict:
    return dict(outer=int(rng.integers(0, 5)), length=int(rng.integers(0, 24)),
                inner=int(rng.integers(0, 6)), op=int(rng.integers(0, 3)),
                shift=int(rng.integers(-3, 8)))


@pytest.mark.parametrize("mode", MODES)
def test_reduce(drivers, mode):
    cases, diff = [], 0
    for seed in range(300):
        rng = np.random.default_rng(12000 + seed)
        p = reduce_params(rng)
        if seed % 9 == 0:
            p["length"] = 0
        x = rand_i8(rng, (p["outer"], p["length"], p["inner"]), seed % 4 == 0)
        want = ref.reduce_s8(x, **p, mode=mode)
        cases.append(_case("reduce_s8", p, [x], want, f"seed={seed}"))
        diff += int(np.sum(ref.reduce_s8(x, **p, mode=_other(mode)) != want))
    for op in (0, 1, 2):  # all-equal odd values over 2 or 4 frames: mean ties after shift 1
        for v in (-128, 127, 1, -1, 3, -3):
            for length in (2, 4):
                p = dict(outer=2, length=length, inner=3, op=op, shift=1)
                x = np.full((2, length, 3), v, dtype=np.int8)
                cases.append(_case("reduce_s8", p, [x], ref.reduce_s8(x, **p, mode=mode),
                                   "ties"))
    for v in (-128, 127):  # the longest reduction at the extreme shifts (int32 sum, int64 mean)
        for op in (0, 1, 2):
            for shift in (-40, -1, 0, 1, 8, 23, 24, 40):
                p = dict(outer=1, length=65535, inner=1, op=op, shift=shift)
                x = np.full(65535, v, dtype=np.int8)
                cases.append(_case("reduce_s8", p, [x], ref.reduce_s8(x, **p, mode=mode),
                                   "long"))
    assert diff > 0
    check_batch(drivers[mode], cases)


@pytest.mark.parametrize("mode", MODES)
def test_reduce_reference_matches_spec_literally(mode):
    for seed in range(200):
        rng = np.random.default_rng(12000 + seed)
        p = reduce_params(rng)
        x = rand_i8(rng, (p["outer"], p["length"], p["inner"]), seed % 3 == 0)
        assert_same(ref.reduce_s8(x.reshape(-1), **p, mode=mode), reduce_literal(x, p, mode),
                    f"reduce reference {p}")
    x = np.full(65535, -128, dtype=np.int8)  # sum * 2^40 = -128 * 65535 * 2^40 still fits
    p = dict(outer=1, length=65535, inner=1, op=0, shift=-40)
    assert_same(ref.reduce_s8(x, **p, mode=mode), reduce_literal(x, p, mode), "long mean")


def test_reduce_rejects_overflow():
    x = np.ones(2, np.int8)
    with pytest.raises(OverflowError):  # length * 2^62 does not fit int64
        ref.reduce_s8(x, outer=1, length=2, inner=1, op=0, shift=62, mode="half_up")
    with pytest.raises(OverflowError):  # sum * 2^63
        ref.reduce_s8(x, outer=1, length=2, inner=1, op=0, shift=-63, mode="half_up")
    with pytest.raises(OverflowError):  # the int32 sum could overflow
        ref.reduce_s8(x, outer=0, length=2**24, inner=0, op=2, shift=0, mode="half_up")
    with pytest.raises(ValueError):
        ref.reduce_s8(x, outer=1, length=2, inner=1, op=3, shift=0, mode="half_up")


# ------------------------------------------------------------------------------- softmax

def softmax_literal(x, table, p: dict, mode: str) -> np.ndarray:
    x = np.asarray(x).reshape(p["rows"], p["cols"])
    y = np.zeros((p["rows"], p["cols"]), dtype=np.int64)
    for r in range(p["rows"]):
        row = [int(v) for v in x[r]]
        if not row:
            continue
        e = [int(table[max(row) - v]) for v in row]
        s = sum(e)
        for j in range(p["cols"]):
            y[r, j] = 0 if s == 0 else _sat(exact_round(Fraction(e[j] * 2 ** p["out_bits"], s),
                                                        mode))
    return y


def _softmax_tables(rng, mode: str) -> list[np.ndarray]:
    tables = [ref.softmax_table(e, mode) for e in (-6, -4, -3, -2, 0, 1)]
    tables.append(rng.integers(0, 2**30 + 1, size=256))  # the whole allowed range
    tables.append(np.full(256, 2**30))
    tables.append(rng.integers(0, 4, size=256))  # tiny values: many exact ties, some zero rows
    tables.append(np.zeros(256, np.int64))  # every sum 0
    return [t.astype(np.int32) for t in tables]


def _softmax_case(x, table, p, mode, desc=""):
    want = ref.softmax_s8(x, table, **p, mode=mode)
    return _case("softmax_s8", p, [table.astype(np.int32), x.astype(np.int8)], want, desc)


@pytest.mark.parametrize("mode", MODES)
def test_softmax(drivers, mode):
    cases, diff = [], 0
    rng = np.random.default_rng(13000)
    tables = _softmax_tables(rng, mode)
    for seed in range(300):
        rng = np.random.default_rng(13000 + seed)
        table = tables[seed % len(tables)]
        p = dict(rows=int(rng.integers(0, 6)), cols=int(rng.integers(0, 20)),
                 out_bits=int(rng.integers(0, 9)))
        x = rand_i8(rng, (p["rows"], p["cols"]), seed % 4 == 0)
        if seed % 5 == 0:  # narrow rows: several entries share the max
            x = rng.integers(-2, 2, size=(p["rows"], p["cols"])).astype(np.int8)
        cases.append(_softmax_case(x, table, p, mode, f"seed={seed}"))
        diff += int(np.sum(ref.softmax_s8(x, table, **p, mode=_other(mode)) != cases[-1][2]))
    # exact ties: 4 equal entries with out_bits 1 (2/4), 2 equal entries with an odd table[0]
    for t0, cols, out_bits in ((1, 4, 1), (3, 2, 0), (5, 2, 0), (1, 4, 3)):
        table = np.zeros(256, np.int32)
        table[0] = t0
        p = dict(rows=2, cols=cols, out_bits=out_bits)
        x = np.array([[-128] * cols, [127] * cols], dtype=np.int8)
        cases.append(_softmax_case(x, table, p, mode, "ties"))
    # edge rows: -128 and 127 together (index 255), one column, all equal
    for x in ([[-128, 127, -128]], [[127]], [[-128]], [[127] * 16], [[-128] * 5 + [127]]):
        x = np.array(x, dtype=np.int8)
        for out_bits in (0, 7, 8):
            p = dict(rows=x.shape[0], cols=x.shape[1], out_bits=out_bits)
            cases.append(_softmax_case(x, tables[1], p, mode, "edges"))
    assert diff > 0
    check_batch(drivers[mode], cases)


@pytest.mark.parametrize("mode", MODES)
def test_softmax_reference_matches_spec_literally(mode):
    tables = _softmax_tables(np.random.default_rng(13500), mode)
    for seed in range(120):
        rng = np.random.default_rng(13500 + seed)
        table = tables[seed % len(tables)]
        p = dict(rows=int(rng.integers(0, 5)), cols=int(rng.integers(0, 12)),
                 out_bits=int(rng.integers(0, 9)))
        x = rand_i8(rng, (p["rows"], p["cols"]), seed % 3 == 0)
        assert_same(ref.softmax_s8(x.reshape(-1), table, **p, mode=mode),
                    softmax_literal(x, table, p, mode), f"softmax reference {p}")


@pytest.mark.parametrize("mode", MODES)
def test_softmax_table_and_meaning(mode):
    """The table is round(exp(-k 2^e) 2^20); softmax_s8 with it and out_bits 7 is the float
    softmax of x * 2^e times 128 within one step."""
    for exp_in in (-8, -5, -3, -1, 0, 2):
        table = ref.softmax_table(exp_in, mode)
        assert table.dtype == np.int32 and table.shape == (256,) and table[0] == 2**20
        assert np.all(np.diff(table) <= 0) and table.min() >= 0
        for k in range(256):
            v = Fraction(math.exp(-k * 2.0**exp_in)) * 2**20
            if abs(v - math.floor(v) - Fraction(1, 2)) > Fraction(1, 10**6):  # off host-ulp ties
                assert table[k] == exact_round(v, mode), (exp_in, k)
        rng = np.random.default_rng(13900 + exp_in)
        x = rand_i8(rng, (30, 10))
        got = ref.softmax_s8(x, table, rows=30, cols=10, out_bits=7, mode=mode)
        xi = x.astype(np.int64)
        z = np.exp((xi - xi.max(axis=1, keepdims=True)) * 2.0**exp_in)
        real = np.minimum(z / z.sum(axis=1, keepdims=True) * 128, 127)
        assert np.max(np.abs(got - real)) <= 1.0, exp_in
    assert ref.softmax_table(60, mode).tolist() == [2**20] + [0] * 255
    assert ref.softmax_table(-80, mode).tolist() == [2**20] * 256


# --------------------------------------------------------------------------- mask_frames

@pytest.mark.parametrize("mode", MODES)
def test_mask_frames(drivers, mode):
    cases = []
    for seed in range(120):
        rng = np.random.default_rng(14000 + seed)
        frames, inner = int(rng.integers(0, 12)), int(rng.integers(0, 7))
        pad = int(rng.choice([-128, 127, 0, int(rng.integers(-128, 128))]))
        x = rand_i8(rng, (frames, inner), seed % 3 == 0)
        mask = rng.choice(np.array([0, 0, 1, -1, -128, 127], np.int8), size=frames)
        if seed % 4 == 0:  # the delayed-stream use: the first frames blanked
            mask = (np.arange(frames) >= int(rng.integers(0, frames + 1))).astype(np.int8)
        want = ref.mask_frames_s8(x.reshape(-1), mask, frames=frames, inner=inner, pad=pad)
        literal = np.array([[x[t, i] if mask[t] != 0 else pad for i in range(inner)]
                            for t in range(frames)], dtype=np.int64).reshape(frames, inner)
        assert_same(want, literal, "mask_frames reference")
        assert want.shape == (frames, inner) and want.dtype == np.int8
        for op in ("mask_frames_s8", "mask_frames_inplace"):
            cases.append((f"{op} seed={seed}", (op, [frames, inner, pad], [mask, x], np.int8,
                                                want.size), want))
    check_batch(drivers[mode], cases)


# ---------------------------------------------------------------------- conv_transpose1d

def convt_shapes(rng) -> dict:
    groups, c_in, c_out = _group_kind(rng)
    kernel, stride, dilation = (int(rng.integers(1, 6)), int(rng.integers(1, 5)),
                                int(rng.integers(1, 4)))
    reach = dilation * (kernel - 1) + stride
    return dict(t_in=int(rng.integers(1, 10)), c_in=c_in, c_out=c_out, kernel=kernel,
                stride=stride, dilation=dilation, groups=groups,
                pad_l=int(rng.integers(0, reach)), pad_r=int(rng.integers(0, reach)),
                output_padding=int(rng.integers(0, stride)))


def _convt_t_out(p: dict) -> int:
    return max(0, (p["t_in"] - 1) * p["stride"] - p["pad_l"] - p["pad_r"]
               + p["dilation"] * (p["kernel"] - 1) + p["output_padding"] + 1)


def convt_literal_acc(x, w, bias, p: dict) -> np.ndarray:
    """The spec read loop by loop, as written: every (ti, k) pair lands on
    t = ti*stride + k*dilation - pad_l (python ints)."""
    t_out = _convt_t_out(p)
    cg, og = p["c_in"] // p["groups"], p["c_out"] // p["groups"]
    acc = np.zeros((t_out, p["c_out"]), dtype=object)
    for t in range(t_out):
        for co in range(p["c_out"]):
            acc[t, co] = int(bias[co])
    for ti in range(p["t_in"]):
        for k in range(p["kernel"]):
            t = ti * p["stride"] + k * p["dilation"] - p["pad_l"]
            if not 0 <= t < t_out:
                continue
            for co in range(p["c_out"]):
                g = co // og
                for i in range(cg):
                    acc[t, co] += int(w[co, k, i]) * int(x[ti, g * cg + i])
    return acc


def _convt_case(x, w, bias, shift, p, mode, desc=""):
    want = ref.conv_transpose1d_s8(x, w, bias, shift, **p, mode=mode)
    assert want.shape == (_convt_t_out(p), p["c_out"])
    arrays = [x.astype(np.int8), w.astype(np.int8), np.asarray(bias).astype(np.int32),
              np.asarray(shift).astype(np.int8)]
    return _case("conv_transpose1d_s8", p, arrays, want, desc)


@pytest.mark.parametrize("mode", MODES)
def test_conv_transpose1d(drivers, mode):
    cases, diff = [], 0
    for seed in range(300):
        rng = np.random.default_rng(15000 + seed)
        p = convt_shapes(rng)
        lo, hi = rand_act(rng)
        p.update(act_min=lo, act_max=hi)
        cg = p["c_in"] // p["groups"]
        extreme = seed % 5 == 0
        x = rand_i8(rng, (p["t_in"], p["c_in"]), extreme)
        w = rand_i8(rng, (p["c_out"], p["kernel"], cg), extreme)
        shift = rng.integers(-3, 17, size=p["c_out"])
        bias = rng.integers(-(2**17), 2**17, size=p["c_out"])
        if seed % 7 == 0:
            bias = rng.choice([-(2**24), 2**24, -(2**20), 2**20], size=p["c_out"])
        cases.append(_convt_case(x, w, bias, shift, p, mode, f"seed={seed}"))
    for seed in range(60):  # every accumulator an exact tie
        rng = np.random.default_rng(15500 + seed)
        p = dict(convt_shapes(rng), act_min=-128, act_max=127)
        s = int(rng.integers(1, 7))
        x = _ties_x(rng, (p["t_in"], p["c_in"]), s)
        w = rng.integers(-3, 4, size=(p["c_out"], p["kernel"], p["c_in"] // p["groups"]))
        bias, shift = _ties_bias(rng, p["c_out"], s), np.full(p["c_out"], s)
        cases.append(_convt_case(x, w, bias, shift, p, mode, f"ties seed={seed}"))
        diff += int(np.sum(ref.conv_transpose1d_s8(x, w, bias, shift, **p, mode=_other(mode))
                           != cases[-1][2]))
    assert diff > 0
    base = dict(t_in=4, c_in=3, c_out=2, kernel=3, stride=2, dilation=1, groups=1, pad_l=1,
                pad_r=0, output_padding=1, act_min=-128, act_max=127)
    for xv in (-128, 127):
        for wv in (-128, 127):
            cases.append(_convt_case(np.full((4, 3), xv), np.full((2, 3, 3), wv),
                                     np.array([0, 2**20]), np.array([8, -1]), base, mode,
                                     "edges"))
    # pads eat the whole output; one input frame; output_padding frames only see the bias
    for upd in (dict(t_in=1, kernel=1, pad_l=1, pad_r=0, output_padding=0),
                dict(t_in=1, kernel=2, pad_l=2, pad_r=2, output_padding=0),
                dict(t_in=1, stride=3, kernel=1, output_padding=2, pad_l=0)):
        p = dict(base, **upd)
        cases.append(_convt_case(np.ones((1, 3)), np.ones((2, p["kernel"], 3)),
                                 np.array([3, -3]), np.array([1, 0]), p, mode, "short"))
    check_batch(drivers[mode], cases)


@pytest.mark.parametrize("mode", MODES)
def test_conv_transpose1d_reference_matches_spec_literally(mode):
    for seed in range(40):
        rng = np.random.default_rng(15000 + seed)
        p = dict(convt_shapes(rng), act_min=-128 if seed % 2 else 0, act_max=127)
        x = rand_i8(rng, (p["t_in"], p["c_in"]))
        w = rand_i8(rng, (p["c_out"], p["kernel"], p["c_in"] // p["groups"]))
        shift = rng.integers(-2, 14, size=p["c_out"])
        bias = rng.integers(-5000, 5000, size=p["c_out"])
        acc = convt_literal_acc(x, w, bias, p)
        want = np.zeros(acc.shape, dtype=np.int64)
        for (t, co), a in np.ndenumerate(acc):
            v = exact_round(Fraction(a) / Fraction(2) ** int(shift[co]), mode)
            want[t, co] = _sat(v, p["act_min"], p["act_max"])
        got = ref.conv_transpose1d_s8(x.reshape(-1), w.reshape(-1), bias, shift, **p, mode=mode)
        assert got.dtype == np.int8 and got.shape == want.shape
        assert_same(got, want, f"conv_transpose1d reference seed={seed} {p}")


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


def test_wide_accumulators_rejected():
    """conv2d / conv_transpose1d raise where the C int32 accumulator would overflow."""
    with pytest.raises(OverflowError):
        ref.conv2d_s8(np.full(1, -128), np.full(1, -128), [2**31 - 100], [0], t_in=1, f_in=1,
                      c_in=1, c_out=1, kernel_t=1, kernel_f=1, stride_t=1, stride_f=1,
                      dilation_t=1, dilation_f=1, groups=1, pad_t_l=0, pad_t_r=0, pad_f_l=0,
                      pad_f_r=0, act_min=-128, act_max=127, mode="half_up")
    with pytest.raises(OverflowError):
        ref.conv_transpose1d_s8(np.full(1, -128), np.full(1, -128), [2**31 - 100], [0], t_in=1,
                                c_in=1, c_out=1, kernel=1, stride=1, dilation=1, groups=1,
                                pad_l=0, pad_r=0, output_padding=0, act_min=-128, act_max=127,
                                mode="half_up")


# ------------------------------------------------------------------- interpreter dispatch

def test_interpreter_runs_new_ops():
    """_run_step feeds each new op its params, arrays and inputs (mask_frames in place too)."""
    from runtime.ir import Step
    from runtime.reference.interpreter import _run_step
    rng = np.random.default_rng(16000)
    x = rand_i8(rng, 24)
    mask = np.array([0, 1, 1, 0, 1, 1], np.int8)
    table = ref.softmax_table(-3, "half_up")
    cw, cb, cs = rand_i8(rng, 2 * 2 * 2 * 2), np.array([5, -5]), np.array([4, 3])
    conv2d_p = dict(t_in=3, f_in=2, c_in=4, c_out=2, kernel_t=2, kernel_f=2, stride_t=1,
                    stride_f=1, dilation_t=1, dilation_f=1, groups=2, pad_t_l=1, pad_t_r=0,
                    pad_f_l=0, pad_f_r=0, act_min=-128, act_max=127)
    convt_p = dict(t_in=6, c_in=4, c_out=2, kernel=2, stride=2, dilation=1, groups=2, pad_l=1,
                   pad_r=0, output_padding=1, act_min=0, act_max=127)
    steps = [
        (Step("maxpool1d_s8", ["x"], ["y"], dict(t_in=6, channels=4, kernel=3, stride=1,
                                                 dilation=1, pad_l=1, pad_r=1, pad_value=-128,
                                                 shift=1)),
         lambda p, a: ref.maxpool1d_s8(x, **p, mode="half_up")),
        (Step("conv2d_s8", ["x"], ["y"], conv2d_p, dict(w=cw, bias=cb, shift=cs)),
         lambda p, a: ref.conv2d_s8(x, cw, cb, cs, **p, mode="half_up")),
        (Step("reduce_s8", ["x"], ["y"], dict(outer=2, length=3, inner=4, op=0, shift=-1)),
         lambda p, a: ref.reduce_s8(x, **p, mode="half_up")),
        (Step("softmax_s8", ["x"], ["y"], dict(rows=4, cols=6, out_bits=7), dict(table=table)),
         lambda p, a: ref.softmax_s8(x, table, **p, mode="half_up")),
        (Step("mask_frames_s8", ["x"], ["y"], dict(frames=6, inner=4, pad=-128),
              dict(mask=mask)),
         lambda p, a: ref.mask_frames_s8(x, mask, **p)),
        (Step("mask_frames_s8", ["x", "m"], ["x"], dict(frames=6, inner=4, pad=3)),
         lambda p, a: ref.mask_frames_s8(x, mask, **p)),
        (Step("conv_transpose1d_s8", ["x"], ["y"], convt_p, dict(w=cw[:8], bias=cb, shift=cs)),
         lambda p, a: ref.conv_transpose1d_s8(x, cw[:8], cb, cs, **p, mode="half_up")),
    ]
    for step, expect in steps:
        want = np.asarray(expect(step.params, step.arrays)).reshape(-1)
        mem = {"x": x.copy(), "m": mask.copy(), "y": np.zeros(want.size, np.int8)}
        _run_step(step, mem, "half_up")
        assert_same(mem[step.outputs[0]], want, f"interpreter {step.op}")


# -------------------------------------------------------------------------- source hygiene

def _strict_compile(src: Path, macro: str, value: int, tmp: Path, extra=()) -> None:
    proc = _compile([*STRICT, *extra, f"-D{macro}={value}", f"-I{C_DIR}", "-c", str(src), "-o",
                     str(tmp / (src.stem + ".o"))], tmp)
    assert proc.returncode == 0, f"{src.name} ({macro}={value}): {proc.stderr}"


def _amalgamation(prefix: str) -> str:
    parts = [(C_DIR / "rill_common.h").read_text(), (C_DIR / "rill_kernels.h").read_text(),
             (C_DIR / "rill_recurrent.h").read_text()]
    parts += [p.read_text() for p in KERNEL_SOURCES]
    text = "\n".join(parts)
    text = re.sub(r'^#include "rill_[a-z_]+\.h"\n', "", text, flags=re.M)
    return text.replace("rill_", f"{prefix.lower()}_").replace("RILL_", f"{prefix.upper()}_")


def test_sources_compile_strict(tmp_path):
    assert {p.name for p in KERNEL_SOURCES} >= {
        "conv1d_s8.c", "gemm_s8.c", "add_s8.c", "avgpool1d_s8.c", "lut_s8.c", "requant_s8.c",
        "transpose_s8.c", "quantize_f32_s8.c", "maxpool1d_s8.c", "conv2d_s8.c", "reduce_s8.c",
        "softmax_s8.c", "mask_frames_s8.c", "conv_transpose1d_s8.c"}
    for src in KERNEL_SOURCES:
        assert src.read_text().startswith('#include "rill_kernels.h"\n'), src.name
        for mode in (0, 1):
            _strict_compile(src, "RILL_ROUNDING", mode, tmp_path, extra=["-Wshadow", "-O2"])


def test_rounding_macro_required(tmp_path):
    src = KERNEL_SOURCES[0]
    proc = _compile([*STRICT, f"-I{C_DIR}", "-c", str(src), "-o", str(tmp_path / "x.o")],
                    tmp_path)
    assert proc.returncode != 0 and "RILL_ROUNDING" in proc.stderr


def test_prefix_hygiene():
    """Every Rill identifier is rill_* / RILL_*, never inside a longer name (the code generator
    renames by plain text substitution)."""
    for path in [*C_DIR.glob("*.h"), *KERNEL_SOURCES]:
        text = path.read_text()
        bad = re.findall(r"[A-Za-z0-9_]+(?:rill_|RILL_)\w*", text)
        assert not bad, f"{path.name}: prefix inside a longer identifier: {bad}"
        assert not re.search(r"\bRill_|\brILL_", text)
        # functions and types defined at file scope carry the prefix
        for name in re.findall(r"^(?:static inline |)\w[\w ]*?\b(\w+)\s*\(", text, flags=re.M):
            assert name.startswith("rill_"), f"{path.name}: {name} lacks the rill_ prefix"


def test_amalgamation_renamed(tmp_path):
    src = tmp_path / "kws_model.c"
    src.write_text(_amalgamation("kws"))
    assert not re.search(r"rill_|RILL_", src.read_text())
    for mode in (0, 1):
        proc = _compile([*STRICT, "-Wshadow", "-Wconversion", f"-DKWS_ROUNDING={mode}", "-O2",
                         "-c", str(src), "-o", str(tmp_path / "kws.o")], tmp_path)
        assert proc.returncode == 0, proc.stderr


def test_amalgamation_m32(tmp_path):
    """32-bit int/long model (like the ESP32): freestanding with a tiny libc shim, since 32-bit
    glibc headers are often not installed."""
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "math.h").write_text("float floorf(float);\nfloat ldexpf(float, int);\n")
    (shim / "string.h").write_text("#include <stddef.h>\nvoid *memset(void *, int, size_t);\n"
                                   "void *memcpy(void *, const void *, size_t);\n")
    src = tmp_path / "m32.c"
    src.write_text(_amalgamation("rill"))
    probe = _compile(["-m32", "-ffreestanding", "-c", "-x", "c", "/dev/null", "-o",
                      str(tmp_path / "p.o")], tmp_path)
    if probe.returncode != 0:
        pytest.skip("gcc -m32 unavailable")
    for mode in (0, 1):
        proc = _compile(["-m32", "-ffreestanding", "-isystem", str(shim), *STRICT,
                         f"-DRILL_ROUNDING={mode}", "-c", str(src), "-o", str(tmp_path / "m.o")],
                        tmp_path)
        assert proc.returncode == 0, proc.stderr
