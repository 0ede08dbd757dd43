"""The kernels of the broadcasting, layout, normalization and product ops (binary, pad, layernorm,
matmul; runtime/c templates instantiated per
type variant) against the Python integer reference bit for bit in both rounding modes, for int8,
int16 and mixed operands, at edge values (type extremes, rounding ties, division by zero,
saturation, every broadcast pattern), and the reference against the spec (runtime/KERNELS.md)
read literally with exact fractions.

The C side runs through tests/c/kernel_driver.c with a generated dispatch over the variants
under test, built once per session and rounding mode (AddressSanitizer + UBSan when available;
the driver also catches output bytes left unwritten).
"""
from __future__ import annotations

import itertools
import math
import os
import shutil
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from c_drivers import MODES, build_drivers, dispatch_source, exact_round, record, run_records
from codegen.kernel_library import KernelTypes, variant_suffix
from runtime.reference import kernels as ref
from runtime.reference.binary import BINARY_OPS, binary
from runtime.reference.layernorm import layernorm
from runtime.reference.matmul import matmul
from runtime.reference.pad import PAD_MODES, pad

ROOT = Path(__file__).resolve().parents[1]
DRIVER_SRC = ROOT / "tests" / "c" / "kernel_driver.c"
CC = os.environ.get("CC", "gcc")
T = KernelTypes
DTYPE = {8: np.int8, 16: np.int16, 32: np.int32, 64: np.int64}
BINARY_TYPES = [T(x, y, x2=b) for x, b, y in itertools.product((8, 16), repeat=3)]
PAD_TYPES = [T(8, 8), T(16, 16)]
NORM_TYPES = [T(x, y, w=w, acc=a) for x, w, a, y in itertools.product((8, 16), (8, 16), (32, 64),
                                                                       (8, 16))]
MATMUL_TYPES = [T(x, y, x2=b, acc=a) for x, b, a, y in itertools.product((8, 16), (8, 16),
                                                                          (32, 64), (8, 16))]
TESTED = ([("binary", t) for t in BINARY_TYPES] + [("pad", t) for t in PAD_TYPES]
          + [("layernorm", t) for t in NORM_TYPES] + [("matmul", t) for t in MATMUL_TYPES])
DISPATCH, VARIANT_OP = dispatch_source(TESTED)

pytestmark = pytest.mark.skipif(shutil.which(CC) is None, reason=f"no C compiler ({CC})")


def types_param(types):
    return pytest.mark.parametrize("types", types, ids=variant_suffix)


class Driver:
    """One compiled kernel_driver; `run` sends a batch of calls through one process."""

    def __init__(self, exe: Path, mode: str):
        self.exe, self.mode = exe, mode

    def check(self, cases: list[tuple]) -> None:
        """cases: (description, (family, types), params [int], arrays, expected array)."""
        sizes = [want.size * want.dtype.itemsize for *_, want in cases]
        records = [record(VARIANT_OP[v], params, arrays, size)
                   for (_, v, params, arrays, _), size in zip(cases, sizes)]
        raw = run_records(self.exe, records, sizes, f"kernel_driver ({self.mode})")
        for (desc, v, _, _, want), got in zip(cases, raw):
            assert want.dtype == DTYPE[v[1].y], f"{desc}: reference dtype {want.dtype}"
            got = np.frombuffer(got, want.dtype)
            want = want.reshape(-1)
            if not np.array_equal(got, want):
                i = int(np.flatnonzero(got != want)[0])
                raise AssertionError(f"[{self.mode}] {desc}: {int(np.sum(got != want))} "
                                     f"mismatches; first at {i}: C {got[i]} != ref {want[i]}")


@pytest.fixture(scope="session")
def drivers(tmp_path_factory) -> dict[str, Driver]:
    build = tmp_path_factory.mktemp("kernel_driver_ops")
    exes = build_drivers(CC, build, DRIVER_SRC, TESTED, "kernel_driver", DISPATCH)
    return {mode: Driver(exe, mode) for mode, exe in exes.items()}


def trange(bits: int) -> tuple[int, int]:
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def rand_int(rng, shape, bits: int, extreme: bool = False) -> np.ndarray:
    lo, hi = trange(bits)
    if extreme:
        return rng.choice(np.array([lo, hi, lo + 1, hi - 1, 0, 1, -1]), size=shape).astype(DTYPE[bits])
    return rng.integers(lo, hi + 1, size=shape, dtype=np.int64).astype(DTYPE[bits])


def flat_params(family: str, p: dict) -> list[int]:
    out = []
    for f in ref.PARAMS_FIELDS[family]:
        v = p[f]
        out.extend(list(v) if isinstance(v, (list, tuple)) else [v])
    return out


# ------------------------------------------------------------------------------- binary

OPS = list(BINARY_OPS.items())


def binary_case(t: KernelTypes, a, b, p: dict, mode: str, desc: str = "") -> tuple:
    want = binary(a, b, **p, mode=mode, out_bits=t.y)
    return (f"binary_{variant_suffix(t)} {desc} {p}", ("binary", t), flat_params("binary", p),
            [a, b], want)


def contiguous(shape) -> list[int]:
    strides, s = [], 1
    for n in reversed(shape):
        strides.insert(0, s)
        s *= n
    return strides


def broadcast_layout(rng, shape: list[int]) -> tuple[list[int], int]:
    """Strides of an operand broadcast along a random subset of the axes, stored either in
    output order or with two axes swapped (a transposed operand); its element count."""
    kept = [n if rng.random() < 0.6 else 1 for n in shape]
    order = list(range(4))
    if rng.random() < 0.4:
        i, j = rng.choice(4, 2, replace=False)
        order[i], order[j] = order[j], order[i]
    stored = [kept[k] for k in order]
    strides_stored = contiguous(stored)
    strides = [0] * 4
    for pos, k in enumerate(order):
        strides[k] = strides_stored[pos] if kept[k] > 1 else 0
    return strides, int(np.prod(stored))


def shifts_for(op: int, rng, t: KernelTypes) -> tuple[int, int, int]:
    """shift_a, shift_b, shift_out in the ranges the compiler uses (and at the edges)."""
    wide = max(t.x, t.x2) - t.y
    if op == BINARY_OPS["mul"]:
        return 0, 0, int(rng.integers(-2, 16 + wide))
    if op == BINARY_OPS["div"]:
        return 0, 0, int(rng.integers(-20, 20))
    if op == BINARY_OPS["prelu"]:
        return int(rng.integers(0, 12)), int(rng.integers(0, 4)), int(rng.integers(0, 14 + wide))
    sa, sb = (int(rng.integers(0, 9)), 0) if rng.random() < 0.5 else (0, int(rng.integers(0, 9)))
    return sa, sb, int(rng.integers(-2, 12 + wide))


@pytest.mark.parametrize("mode", MODES)
@types_param(BINARY_TYPES)
def test_binary_grid(drivers, types, mode):
    """Every op on all int8 pairs (or the extremes of both types and random pairs), at shifts
    that make ties, saturate, shift left and hit the alignment limit; activation bounds."""
    (alo, ahi), (blo, bhi) = trange(types.x), trange(types.x2)
    if types.x == types.x2 == 8:
        ga, gb = (v.reshape(-1) for v in np.meshgrid(np.arange(-128, 128), np.arange(-128, 128)))
    else:
        rng = np.random.default_rng(7100)
        ea = np.array([alo, alo + 1, -3, -2, -1, 0, 1, 2, 3, ahi - 1, ahi])
        eb = np.array([blo, blo + 1, -3, -2, -1, 0, 1, 2, 3, bhi - 1, bhi])
        ga, gb = (v.reshape(-1) for v in np.meshgrid(ea, eb))
        ga = np.concatenate([ga, rand_int(rng, 3000, types.x)])
        gb = np.concatenate([gb, rand_int(rng, 3000, types.x2)])
    a, b = ga.astype(DTYPE[types.x]), gb.astype(DTYPE[types.x2])
    lo, hi = trange(types.y)
    n = a.size
    flat = dict(shape=[1, 1, 1, n], a_stride=[0, 0, 0, 1], b_stride=[0, 0, 0, 1])
    wide = max(types.x, types.x2) - types.y
    cases = []
    for name, op in OPS:
        if name == "mul":
            shifts = [(0, 0, s) for s in (-3, 0, 1, 2, 7, 8 + wide, 15 + wide, 31, 47)]
        elif name == "div":
            shifts = [(0, 0, s) for s in (-47, -12, -7, -1, 0, 1, 3, 8, 47)]
        elif name == "prelu":
            shifts = [(sa, sb, so) for sa, sb, so in ((0, 0, 0), (7, 0, 7), (9, 2, 10), (15, 0, 3),
                                                       (0, 32, 40), (47, 0, 47), (3, 1, -2))]
        else:
            shifts = [(0, 0, 0), (0, 0, 1), (3, 0, 2), (0, 5, 6), (1, 0, -1), (8, 0, 9 + wide),
                      (47, 0, 47), (0, 47, 50), (47, 47, 63), (0, 0, 64)]
        for sa, sb, so in shifts:
            for act in ((lo, hi), (0, hi), (-20, 30)):
                p = dict(op=op, **flat, shift_a=sa, shift_b=sb, shift_out=so, act_min=act[0],
                         act_max=act[1])
                cases.append(binary_case(types, a, b, p, mode, name))
    drivers[mode].check(cases)


@pytest.mark.parametrize("mode", MODES)
@types_param(BINARY_TYPES)
def test_binary_broadcast(drivers, types, mode):
    """Random 4-D shapes with every broadcast pattern (a dimension of 1, a scalar, a
    transposed operand, empty outputs), random and extreme values."""
    cases = []
    for seed in range(60):
        rng = np.random.default_rng(7200 + seed)
        shape = [int(rng.integers(0 if seed == 5 else 1, 5)) for _ in range(4)]
        a_stride, a_n = broadcast_layout(rng, shape)
        b_stride, b_n = broadcast_layout(rng, shape)
        if seed % 7 == 0:  # a scalar constant
            b_stride, b_n = [0, 0, 0, 0], 1
        name, op = OPS[seed % len(OPS)]
        a = rand_int(rng, a_n, types.x, seed % 3 == 0)
        b = rand_int(rng, b_n, types.x2, seed % 3 == 0)
        if name == "div" and seed % 2:
            b[rng.random(b.size) < 0.3] = 0  # division by zero
        sa, sb, so = shifts_for(op, rng, types)
        lo, hi = trange(types.y)
        act = (0, hi) if seed % 5 == 1 else (lo, hi)
        p = dict(op=op, shape=shape, a_stride=a_stride, b_stride=b_stride, shift_a=sa,
                 shift_b=sb, shift_out=so, act_min=act[0], act_max=act[1])
        cases.append(binary_case(types, a, b, p, mode, f"{name} seed={seed}"))
    drivers[mode].check(cases)


def binary_literal(a, b, p: dict, mode: str, out_bits: int) -> np.ndarray:
    """The spec read literally: every output index, exact fractions."""
    lo, hi = trange(out_bits)
    out = []
    name = {v: k for k, v in BINARY_OPS.items()}[p["op"]]
    sa, sb, so = Fraction(2) ** p["shift_a"], Fraction(2) ** p["shift_b"], Fraction(2) ** p["shift_out"]
    for idx in itertools.product(*[range(n) for n in p["shape"]]):
        va = int(a[sum(i * s for i, s in zip(idx, p["a_stride"]))])
        vb = int(b[sum(i * s for i, s in zip(idx, p["b_stride"]))])
        if name == "div" and vb == 0:
            r = hi if va > 0 else lo if va < 0 else 0
        else:
            v = {"add": va * sa + vb * sb, "sub": va * sa - vb * sb, "mul": Fraction(va * vb),
                 "div": Fraction(va, vb) if vb else 0, "max": max(va * sa, vb * sb),
                 "min": min(va * sa, vb * sb),
                 "prelu": va * sa if va >= 0 else va * vb * sb}[name]
            r = exact_round(v / so, mode)
        out.append(min(max(r, p["act_min"], lo), p["act_max"], hi))
    return np.array(out, DTYPE[out_bits])


@pytest.mark.parametrize("mode", MODES)
@types_param(BINARY_TYPES)
def test_binary_reference_matches_spec_literally(types, mode):
    for seed in range(14):
        rng = np.random.default_rng(7300 + seed)
        shape = [int(rng.integers(1, 4)) for _ in range(4)]
        a_stride, a_n = broadcast_layout(rng, shape)
        b_stride, b_n = broadcast_layout(rng, shape)
        name, op = OPS[seed % len(OPS)]
        a, b = rand_int(rng, a_n, types.x, seed % 2 == 0), rand_int(rng, b_n, types.x2)
        if name == "div":
            b[0] = 0
        sa, sb, so = shifts_for(op, rng, types)
        lo, hi = trange(types.y)
        p = dict(op=op, shape=shape, a_stride=a_stride, b_stride=b_stride, shift_a=sa,
                 shift_b=sb, shift_out=so, act_min=lo, act_max=hi)
        got = binary(a, b, **p, mode=mode, out_bits=types.y)
        want = binary_literal(a, b, p, mode, types.y)
        assert got.dtype == want.dtype and got.shape == tuple(shape)
        assert np.array_equal(got.reshape(-1), want), f"{name} seed={seed}"


def test_binary_reference_refuses_what_c_cannot_compute():
    a = np.array([-32768, 32767], np.int16)
    flat = dict(shape=[1, 1, 1, 2], a_stride=[0, 0, 0, 1], b_stride=[0, 0, 0, 1], act_min=-32768,
                act_max=32767, mode="half_even")
    with pytest.raises(OverflowError):  # prelu's a*b*2^shift_b beyond int64
        binary(a, a, op=BINARY_OPS["prelu"], shift_a=0, shift_b=33, shift_out=0, **flat)
    with pytest.raises(ValueError):  # alignment shifts are bounded
        binary(a, a, op=BINARY_OPS["add"], shift_a=48, shift_b=0, shift_out=0, **flat)
    with pytest.raises(OverflowError):
        binary(a, a, op=BINARY_OPS["div"], shift_a=0, shift_b=0, shift_out=48, **flat)
    with pytest.raises(ValueError):  # a stride beyond the operand
        binary(a, a, op=0, shape=[1, 1, 1, 3], a_stride=[0, 0, 0, 1], b_stride=[0, 0, 0, 0],
               shift_a=0, shift_b=0, shift_out=0, act_min=-32768, act_max=32767, mode="half_up")


def test_binary_division_examples():
    """Div rounds the exact quotient once: 7/2 -> 4 (half up) or 4 (half even: 3.5 -> 4),
    5/2 -> 3 / 2, -5/2 -> -2 / -2, by zero saturates by the numerator's sign."""
    a = np.array([7, 5, -5, 3, -3, 0, 1], np.int8)
    b = np.array([2, 2, 2, 0, 0, 0, -2], np.int8)
    p = dict(op=BINARY_OPS["div"], shape=[1, 1, 1, 7], a_stride=[0, 0, 0, 1],
             b_stride=[0, 0, 0, 1], shift_a=0, shift_b=0, shift_out=0, act_min=-128, act_max=127)
    assert binary(a, b, **p, mode="half_up").reshape(-1).tolist() == [4, 3, -2, 127, -128, 0, 0]
    assert binary(a, b, **p, mode="half_even").reshape(-1).tolist() == [4, 2, -2, 127, -128, 0, 0]


# ---------------------------------------------------------------------------------- pad

PAD_NAMES = {v: k for k, v in PAD_MODES.items()}


def pad_case(t: KernelTypes, x, p: dict, desc: str = "") -> tuple:
    want = pad(x, **p)
    return (f"pad_{variant_suffix(t)} {desc} {p}", ("pad", t), flat_params("pad", p), [x], want)


def pad_params(rng, bits: int, mode: int, crop: bool = False) -> dict:
    shape = [int(rng.integers(1, 5)) for _ in range(4)]
    lo, hi = [], []
    for n in shape:
        top = 3 * n + 1  # beyond the axis length: repeated reflections and wraps
        a, b = (int(rng.integers(0, top + 1)) for _ in range(2))
        if crop and rng.random() < 0.5:  # negative pads crop (what a Slice lowers to)
            a, b = -int(rng.integers(0, n)), 0
            b = -int(rng.integers(0, n + a)) if n + a > 0 else 0
        lo.append(a)
        hi.append(b)
    value = int(rand_int(rng, 1, bits, rng.random() < 0.3)[0])
    return dict(mode=mode, value=value if mode == PAD_MODES["constant"] else 0,
                in_shape=shape, pad_lo=lo, pad_hi=hi)


@types_param(PAD_TYPES)
def test_pad(drivers, types):
    """Every mode at random shapes and pads (reflect up to the longest pad numpy allows, wrap
    and edge beyond the axis length), negative pads that crop, empty results, extreme values
    (the kernel does no arithmetic: both rounding modes run the same code)."""
    cases = []
    for seed in range(80):
        rng = np.random.default_rng(7400 + seed)
        mode = seed % 4
        p = pad_params(rng, types.x, mode, crop=mode == PAD_MODES["constant"] and seed % 8 == 0)
        x = rand_int(rng, int(np.prod(p["in_shape"])), types.x, seed % 3 == 0)
        cases.append(pad_case(types, x, p, f"{PAD_NAMES[mode]} seed={seed}"))
    for mode in MODES:
        drivers[mode].check(cases)


@pytest.mark.parametrize("mode", list(PAD_MODES))
def test_pad_reference_is_numpy_pad(mode):
    """The reference equals numpy's pad in ONNX's four modes (numpy 'symmetric' is not one:
    ONNX reflect does not repeat the edge) for non-negative pads."""
    np_mode = {"constant": "constant", "reflect": "reflect", "edge": "edge", "wrap": "wrap"}[mode]
    for seed in range(40):
        rng = np.random.default_rng(7500 + seed)
        p = pad_params(rng, 16, PAD_MODES[mode])
        x = rand_int(rng, p["in_shape"], 16)
        widths = list(zip(p["pad_lo"], p["pad_hi"]))
        kw = {"constant_values": p["value"]} if mode == "constant" else {}
        want = np.pad(x, widths, mode=np_mode, **kw)
        np.testing.assert_array_equal(pad(x, **p), want)


def test_pad_crop_is_a_slice():
    x = np.arange(2 * 3 * 4 * 5, dtype=np.int16).reshape(2, 3, 4, 5)
    y = pad(x, mode=0, value=0, in_shape=[2, 3, 4, 5], pad_lo=[0, -1, 0, -2], pad_hi=[0, 0, -1, -1])
    np.testing.assert_array_equal(y, x[:, 1:, :3, 2:4])
    with pytest.raises(ValueError):  # the value must fit the type
        pad(x, mode=0, value=40000, in_shape=[2, 3, 4, 5], pad_lo=[0] * 4, pad_hi=[0] * 4)


# ---------------------------------------------------------------------------- layernorm

def z_frac_max(length: int) -> int:
    return 31 - math.ceil(math.log2(length) / 2) if length > 1 else 31


def norm_params(rng, t: KernelTypes, length: int, outer: int = 2, inner: int = 1,
                eps: int | None = None) -> tuple[dict, np.ndarray, np.ndarray, np.ndarray]:
    z_frac = int(rng.integers(max(0, z_frac_max(length) - 8), z_frac_max(length) + 1))
    gamma = rand_int(rng, length, t.w, rng.random() < 0.2)
    top = z_frac + 8 + t.w  # |Z * gamma| is below about 2^top
    beta = rng.integers(-(1 << min(top, 29 if t.acc == 32 else 40)),
                        1 << min(top, 29 if t.acc == 32 else 40), length).astype(DTYPE[t.acc])
    shift = rng.integers(z_frac - 2, z_frac + 16 + (t.w - t.y), length).astype(np.int8)
    if eps is None:
        eps = int(rng.choice([0, 1, 1000, 1 << 20, 12345678]))
    mant, sh = eps, 0
    while mant >= 1 << 31:
        mant, sh = mant >> 1, sh + 1
    p = dict(outer=outer, length=length, inner=inner, z_frac=z_frac, eps_mant=mant, eps_shift=sh)
    return p, gamma, beta, shift


def norm_case(t: KernelTypes, x, gamma, beta, shift, p: dict, mode: str, desc: str = "") -> tuple:
    want = layernorm(x, gamma, beta, shift, **p, mode=mode, out_bits=t.y)
    return (f"layernorm_{variant_suffix(t)} {desc} {p}", ("layernorm", t),
            flat_params("layernorm", p), [x, gamma, beta, shift], want)


@pytest.mark.parametrize("mode", MODES)
@types_param(NORM_TYPES)
def test_layernorm(drivers, types, mode):
    """Random rows of many lengths (1 to 4096, strided by `inner`), constant rows (variance 0,
    with and without epsilon), rows at the type's extremes, the largest z_frac the length
    allows."""
    cases = []
    for seed in range(40):
        rng = np.random.default_rng(7600 + seed)
        length = int(rng.choice([1, 2, 3, 7, 16, 64, 300, 4096 if seed % 10 == 0 else 33]))
        inner = int(rng.integers(1, 4)) if length < 300 else 1
        outer = int(rng.integers(1, 4))
        p, gamma, beta, shift = norm_params(rng, types, length, outer, inner,
                                            eps=0 if seed % 9 == 4 else None)
        n = outer * length * inner
        x = rand_int(rng, n, types.x, seed % 4 == 0)
        if seed % 6 == 3:  # constant rows
            x[:] = x[0]
        cases.append(norm_case(types, x, gamma, beta, shift, p, mode, f"seed={seed}"))
    drivers[mode].check(cases)


def layernorm_literal(x, gamma, beta, shift, p: dict, mode: str, out_bits: int) -> np.ndarray:
    """The spec with Python integers, math.isqrt and exact fractions, element by element."""
    L, inner = p["length"], p["inner"]
    xs = [int(v) for v in x]
    y = [0] * len(xs)
    for o in range(p["outer"]):
        for i in range(inner):
            idx = [(o * L + l) * inner + i for l in range(L)]
            v = [xs[j] for j in idx]
            total = sum(v)
            w = L * sum(a * a for a in v) - total * total + (p["eps_mant"] << p["eps_shift"])
            k = 62 - w.bit_length()
            k -= k % 2
            s = math.isqrt(w << k if k >= 0 else w >> -k) if w else 0
            e = p["z_frac"] + k // 2
            for l, j in enumerate(idx):
                d = L * v[l] - total
                z = exact_round(Fraction(d * 2 ** max(e, 0), s * 2 ** max(-e, 0)), mode) if s else 0
                acc = int(beta[l]) + z * int(gamma[l])
                r = exact_round(Fraction(acc) / Fraction(2) ** int(shift[l]), mode)
                lo, hi = trange(out_bits)
                y[j] = min(max(r, lo), hi)
    return np.array(y, DTYPE[out_bits])


@pytest.mark.parametrize("mode", MODES)
@types_param(NORM_TYPES[::3])
def test_layernorm_reference_matches_spec_literally(types, mode):
    for seed in range(8):
        rng = np.random.default_rng(7700 + seed)
        length = int(rng.choice([1, 2, 5, 16, 40]))
        p, gamma, beta, shift = norm_params(rng, types, length, 2, int(rng.integers(1, 3)))
        x = rand_int(rng, 2 * length * p["inner"], types.x, seed % 3 == 0)
        got = layernorm(x, gamma, beta, shift, **p, mode=mode, out_bits=types.y)
        want = layernorm_literal(x, gamma, beta, shift, p, mode, types.y)
        np.testing.assert_array_equal(got.reshape(-1), want, err_msg=f"seed={seed}")


@pytest.mark.parametrize("bits", [8, 16])
def test_layernorm_is_the_float_layernorm(bits):
    """gamma = 1 (2^(w-2) at exponent 2-w), beta = 0: y ~ (x - mean) / sqrt(var + eps) to about
    half an output LSB (the only rounding that matters is the output's)."""
    rng = np.random.default_rng(77)
    length, e_y = 48, -(bits - 4)
    z_frac = z_frac_max(length)
    x = rand_int(rng, 5 * length, bits)
    e_x = -(bits - 3)
    eps = 1e-5
    eps_q = int(round(eps * length ** 2 * 2.0 ** (-2 * e_x)))
    mant, sh = eps_q, 0
    while mant >= 1 << 31:
        mant, sh = mant >> 1, sh + 1
    g = np.full(length, 1 << (bits - 2), DTYPE[bits])
    shift = np.full(length, e_y - (2 - bits) + z_frac, np.int8)
    p = dict(outer=5, length=length, inner=1, z_frac=z_frac, eps_mant=mant, eps_shift=sh)
    y = layernorm(x, g, np.zeros(length, np.int64), shift, **p, mode="half_even", out_bits=bits)
    xf = x.reshape(5, length).astype(np.float64) * 2.0 ** e_x
    ref = (xf - xf.mean(1, keepdims=True)) / np.sqrt(xf.var(1, keepdims=True) + eps)
    assert np.max(np.abs(y.reshape(5, length) * 2.0 ** e_y - ref)) <= 0.51 * 2.0 ** e_y


def test_layernorm_reference_refuses_overflow():
    x = np.array([32767] + [0] * 15, np.int16)  # one outlier: |Z| = sqrt(15) * 2^z_frac
    g = np.full(16, 32767, np.int16)
    args = (x, g, np.zeros(16, np.int64), np.zeros(16, np.int8))
    with pytest.raises(OverflowError):  # z_frac beyond what length 16 allows
        layernorm(*args, outer=1, length=16, inner=1, z_frac=31, eps_mant=0, eps_shift=0,
                  mode="half_up")
    with pytest.raises(OverflowError):  # epsilon too large for int64
        layernorm(*args, outer=1, length=16, inner=1, z_frac=20, eps_mant=(1 << 31) - 1,
                  eps_shift=62, mode="half_up")


# ------------------------------------------------------------------------------- matmul

def matmul_layout(rng, dims: tuple[int, ...], broadcast: bool) -> tuple[list[int], int]:
    """Strides of an operand of logical dims (batch0, batch1, r, c) stored in a random axis
    order, optionally broadcast along a batch dim; its element count."""
    kept = list(dims)
    if broadcast:
        kept[int(rng.integers(0, 2))] = 1
    order = [int(v) for v in rng.permutation(4)]
    stored = [kept[d] for d in order]
    dense = [int(np.prod(stored[i + 1:])) for i in range(4)]
    strides = [0] * 4
    for pos, d in enumerate(order):
        strides[d] = dense[pos] if kept[d] > 1 else 0
    return strides, int(np.prod(stored))


def matmul_setup(t: KernelTypes, rng, seed: int, extreme: bool) -> tuple[dict, np.ndarray,
                                                                          np.ndarray]:
    b0, b1, m, k, n = (int(rng.integers(1, 4)), int(rng.integers(1, 3)), int(rng.integers(1, 5)),
                       int(rng.integers(0 if seed == 3 else 1, 9)), int(rng.integers(1, 5)))
    a_stride, a_n = matmul_layout(rng, (b0, b1, m, k), seed % 3 == 1)
    b_stride, b_n = matmul_layout(rng, (b0, b1, k, n), seed % 3 == 2)
    y_stride, _ = matmul_layout(rng, (b0, b1, m, n), False)
    a, b = rand_int(rng, a_n, t.x, extreme), rand_int(rng, b_n, t.x2, extreme)
    if t.acc == 32 and t.x == t.x2 == 16:  # keep sum |a*b| within int32
        a, b = (v // 64 for v in (a, b))
    lo, hi = trange(t.y)
    wide = t.x + t.x2 - 16
    p = dict(batch0=b0, batch1=b1, m=m, k=k, n=n, a_stride=a_stride, b_stride=b_stride,
             y_stride=y_stride, shift=int(rng.integers(-2, 12 + wide)),
             act_min=0 if seed % 4 == 1 else lo, act_max=hi)
    return p, a, b


@pytest.mark.parametrize("mode", MODES)
@types_param(MATMUL_TYPES)
def test_matmul(drivers, types, mode):
    """Random batched products with every operand (and the output) in a random stored axis
    order, batch broadcasting, k = 0, extreme values (ties, saturation, left shifts)."""
    cases = []
    for seed in range(40):
        p, a, b = matmul_setup(types, np.random.default_rng(7800 + seed), seed, seed % 5 == 0)
        want = matmul(a, b, **p, acc_bits=types.acc, mode=mode, out_bits=types.y)
        cases.append((f"matmul_{variant_suffix(types)} seed={seed} {p}", ("matmul", types),
                      flat_params("matmul", p), [a, b], want))
    drivers[mode].check(cases)


@pytest.mark.parametrize("mode", MODES)
@types_param(MATMUL_TYPES[::5])
def test_matmul_reference_matches_spec_literally(types, mode):
    for seed in range(10):
        p, a, b = matmul_setup(types, np.random.default_rng(7900 + seed), seed, seed % 2 == 0)
        got = matmul(a, b, **p, acc_bits=types.acc, mode=mode, out_bits=types.y)
        y = np.zeros(got.size, np.int64)
        lo, hi = trange(types.y)
        sa, sb, sy = p["a_stride"], p["b_stride"], p["y_stride"]
        for i0, i1, i, j in itertools.product(*(range(p[f]) for f in ("batch0", "batch1", "m",
                                                                          "n"))):
            acc = sum(int(a[i0 * sa[0] + i1 * sa[1] + i * sa[2] + l * sa[3]])
                      * int(b[i0 * sb[0] + i1 * sb[1] + l * sb[2] + j * sb[3]])
                      for l in range(p["k"]))
            r = exact_round(Fraction(acc) / Fraction(2) ** p["shift"], mode)
            y[i0 * sy[0] + i1 * sy[1] + i * sy[2] + j * sy[3]] = min(max(r, p["act_min"], lo),
                                                                     p["act_max"], hi)
        np.testing.assert_array_equal(got, y, err_msg=f"seed={seed}")


def test_matmul_reference_refuses_an_overflowing_int32_accumulator():
    a = np.full(4, 32767, np.int16)
    with pytest.raises(OverflowError):
        matmul(a, a, batch0=1, batch1=1, m=1, k=4, n=1, a_stride=[0, 0, 0, 1],
               b_stride=[0, 0, 1, 0], y_stride=[0, 0, 0, 0], shift=0, act_min=-32768,
               act_max=32767, acc_bits=32, mode="half_up")
