"""The float32 kernels (`--bits 32`, runtime/KERNELS.md "Float32 kernels"): the C variants
(runtime/c/*_f32.c, instantiated by codegen/kernel_library.py) against the Python float
reference (runtime/reference/f32.py) on edge shapes (groups, dilation, stride, asymmetric pads,
empty outputs, windows entirely in the padding, in-place masks, zero frames), within the
contract's tolerance |C - reference| <= 1e-5 x max|reference| (sums run in the same order; C may
still contract multiply-adds, use x87 precision or another libm); the reference against
onnxruntime's ONNX ops; and the hygiene of the float sources (strict C99 with gcc and clang,
-Wconversion, -m32).

The C side runs through tests/c/kernel_driver.c (AddressSanitizer + UBSan when available), built
once with every float variant and a generated dispatch (tests/c_drivers.py): float params
travel as their int32 bit patterns.
"""
from __future__ import annotations

import math
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from c_drivers import (STRICT, build_drivers, compile_c, dispatch_source, f32_params,  # noqa: E402
                       float_bits, record, run_records)
from codegen.kernel_library import (F32, FAMILIES, KernelTypes, check_types,  # noqa: E402
                                    function_name, kernel_header, kernel_sources, kernel_types,
                                    program_variants)
from compiler.ort import run_model  # noqa: E402
from runtime.ir import Buffer, Program, Step  # noqa: E402
from runtime.reference import f32 as F  # noqa: E402
from runtime.reference.binary import BINARY_OPS  # noqa: E402

CC = os.environ.get("CC", "gcc")
DRIVER_SRC = ROOT / "tests" / "c" / "kernel_driver.c"
T = KernelTypes(F32, F32)
VARIANTS = [(f, T) for f, spec in FAMILIES.items() if spec.f32_file and f != "unary"] + \
    [("unary", KernelTypes(F32, F32, fn=fn)) for fn in F.UNARY_FUNCTIONS]
DISPATCH, OPS = dispatch_source(VARIANTS)
LOWEST = float(np.finfo(np.float32).min)

pytestmark = pytest.mark.skipif(shutil.which(CC) is None, reason=f"no C compiler ({CC})")


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    """The kernel driver with every float variant (both rounding builds: floats ignore it)."""
    build = tmp_path_factory.mktemp("f32_driver")
    return build_drivers(CC, build, DRIVER_SRC, VARIANTS, "f32_driver", DISPATCH)


def rand(rng, *shape, scale: float = 1.0) -> np.ndarray:
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def run(driver, calls: list[tuple]) -> list[np.ndarray]:
    """calls: (variant, params [int32 slots], arrays, output elements) -> float32 outputs,
    run through both builds of the driver, which must agree bit for bit."""
    sizes = [4 * n for *_, n in calls]
    records = [record(OPS[v], params, arrays, size)
               for (v, params, arrays, _), size in zip(calls, sizes)]
    outs = {mode: run_records(exe, records, sizes, f"f32 driver ({mode})")
            for mode, exe in driver.items()}
    a, b = outs.values()
    assert a == b, "the float kernels depend on RILL_ROUNDING"
    return [np.frombuffer(x, np.float32).copy() for x in a]


def assert_close(got: np.ndarray, want: np.ndarray, what: str) -> None:
    """|got - want| <= TOLERANCE * max|want| everywhere, NaN only where want is NaN."""
    got, want = np.asarray(got, np.float64).reshape(-1), np.asarray(want, np.float64).reshape(-1)
    assert got.size == want.size, f"{what}: {got.size} values, expected {want.size}"
    if not want.size:
        return
    assert np.array_equal(np.isnan(got), np.isnan(want)), f"{what}: NaN mismatch"
    ok = ~np.isnan(want)
    scale = max(float(np.max(np.abs(want[ok]))) if ok.any() else 0.0, 1e-30)
    err = np.abs(got[ok] - want[ok])
    worst = float(err.max()) if err.size else 0.0
    assert worst <= F.TOLERANCE * scale, (f"{what}: max abs error {worst:.3g} > "
                                          f"{F.TOLERANCE:g} x {scale:.3g}")


def assert_close_each(got: np.ndarray, want: np.ndarray, x: np.ndarray, what: str) -> None:
    """Elementwise functions: every value within TOLERANCE x max(|want|, 1) of its own (libm
    and numpy differ by an ulp, which 1 + tanh(v) near -1 turns into a large relative error
    of a tiny value; next to values of magnitude 1, as in a tensor, it stays negligible)."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert np.array_equal(np.isnan(got), np.isnan(want)), f"{what}: NaN mismatch"
    with np.errstate(invalid="ignore"):
        bad = np.abs(got - want) > F.TOLERANCE * np.maximum(np.abs(want), 1.0)
    bad &= ~np.isnan(want) & ~(np.isinf(want) & (got == want))
    assert not bad.any(), (f"{what}: at x = {x[bad][:4]}: {got[bad][:4]} vs {want[bad][:4]}")


def check(driver, cases: list[tuple]) -> None:
    """cases: (description, call tuple, expected array)."""
    for (desc, _, want), got in zip(cases, run(driver, [c[1] for c in cases])):
        assert_close(got, want, desc)


def struct_case(family: str, p: dict, arrays: list, want: np.ndarray) -> tuple:
    return f"{family} {p}", ((family, T), f32_params(family, p), arrays, want.size), want


def act_bounds(rng) -> dict:
    return [dict(act_min=-math.inf, act_max=math.inf), dict(act_min=0.0, act_max=math.inf),
            dict(act_min=-0.5, act_max=0.75)][int(rng.integers(3))]


def groups_of(rng) -> tuple[int, int, int]:
    """(groups, c_in, c_out): dense, two groups, or depthwise with a channel multiplier."""
    kind = int(rng.integers(3))
    if kind == 0:
        return 1, int(rng.integers(1, 7)), int(rng.integers(1, 7))
    if kind == 1:
        return 2, 2 * int(rng.integers(1, 4)), 2 * int(rng.integers(1, 4))
    c = int(rng.integers(1, 6))
    return c, c, c * int(rng.integers(1, 3))


# --------------------------------------------------------------------------- weighted layers

def conv1d_case(rng, **fixed) -> tuple:
    g, c_in, c_out = groups_of(rng)
    k, d, s = int(rng.integers(1, 6)), int(rng.integers(1, 4)), int(rng.integers(1, 4))
    field = d * (k - 1) + 1
    p = dict(t_in=int(rng.integers(1, field + 10)), c_in=c_in, c_out=c_out, kernel=k, stride=s,
             dilation=d, groups=g, pad_l=int(rng.integers(0, field + 1)),
             pad_r=int(rng.integers(0, field + 1)), **act_bounds(rng))
    p.update(fixed)
    x = rand(rng, p["t_in"], p["c_in"])
    w = rand(rng, p["c_out"], p["kernel"], p["c_in"] // p["groups"])
    b = rand(rng, p["c_out"])
    return struct_case("conv1d", p, [x, w, b], F.conv1d(x, w, b, **p))


def test_conv1d(driver):
    rng = np.random.default_rng(1)
    cases = [conv1d_case(rng) for _ in range(80)]
    cases += [conv1d_case(rng, t_in=2, kernel=5, dilation=2, pad_l=0, pad_r=0),  # no frame out
              conv1d_case(rng, pad_l=7, pad_r=0), conv1d_case(rng, pad_l=0, pad_r=9)]
    check(driver, cases)


def conv2d_case(rng) -> tuple:
    g, c_in, c_out = groups_of(rng)
    p = dict(c_in=c_in, c_out=c_out, groups=g, **act_bounds(rng))
    for ax in ("t", "f"):
        k, d = int(rng.integers(1, 4)), int(rng.integers(1, 3))
        field = d * (k - 1) + 1
        p.update({f"kernel_{ax}": k, f"dilation_{ax}": d, f"stride_{ax}": int(rng.integers(1, 3)),
                  f"pad_{ax}_l": int(rng.integers(0, field + 1)),
                  f"pad_{ax}_r": int(rng.integers(0, field + 1)),
                  f"{ax}_in": int(rng.integers(1, field + 6))})
    x = rand(rng, p["t_in"], c_in, p["f_in"])
    w = rand(rng, c_out, p["kernel_t"], p["kernel_f"], c_in // g)
    b = rand(rng, c_out)
    return struct_case("conv2d", p, [x, w, b], F.conv2d(x, w, b, **p))


def test_conv2d(driver):
    rng = np.random.default_rng(2)
    check(driver, [conv2d_case(rng) for _ in range(60)])


def conv_transpose_case(rng) -> tuple:
    g, c_in, c_out = groups_of(rng)
    k, s, d = int(rng.integers(1, 5)), int(rng.integers(1, 4)), int(rng.integers(1, 3))
    reach = d * (k - 1) + s
    p = dict(t_in=int(rng.integers(1, 8)), c_in=c_in, c_out=c_out, kernel=k, stride=s,
             dilation=d, groups=g, pad_l=int(rng.integers(0, reach)),
             pad_r=int(rng.integers(0, reach)), output_padding=int(rng.integers(0, s)),
             **act_bounds(rng))
    x = rand(rng, p["t_in"], c_in)
    w = rand(rng, c_out, k, c_in // g)
    b = rand(rng, c_out)
    return struct_case("conv_transpose1d", p, [x, w, b], F.conv_transpose1d(x, w, b, **p))


def test_conv_transpose1d(driver):
    rng = np.random.default_rng(3)
    check(driver, [conv_transpose_case(rng) for _ in range(60)])


def test_gemm(driver):
    rng = np.random.default_rng(4)
    cases = []
    for m, k, n in [(1, 1, 1), (1, 37, 5), (3, 8, 16), (2, 129, 3)]:
        p = dict(m=m, k=k, n=n, **act_bounds(rng))
        x, w, b = rand(rng, m, k), rand(rng, n, k), rand(rng, n)
        cases.append(struct_case("gemm", p, [x, w, b], F.gemm(x, w, b, **p)))
    check(driver, cases)


# ------------------------------------------------------------------------------ elementwise

UNARY_ARGS = {"clip": (-0.5, 1.5), "leaky_relu": (0.1, 0.0), "hard_sigmoid": (0.2, 0.5),
              "hard_swish": (1 / 6, 0.5), "elu": (0.7, 0.0), "pow": (3.0, 0.0)}


def unary_inputs() -> np.ndarray:
    """A grid over the interesting range plus large, tiny and special values."""
    grid = np.linspace(-12, 12, 481)
    specials = [0.0, -0.0, 1e-30, -1e-30, 1e-40, 50.0, -50.0, 88.0, -88.0, 100.0, -100.0, 1e4,
                -1e4, 3.0e38, -3.0e38]
    return np.concatenate([grid, specials]).astype(np.float32)


def test_unary(driver):
    x = unary_inputs()
    cases = []
    for fn in F.UNARY_FUNCTIONS:
        alpha, beta = UNARY_ARGS.get(fn, (0.0, 0.0))
        want = F.unary(x, fn=fn, alpha=alpha, beta=beta)
        cases.append((fn, (("unary", KernelTypes(F32, F32, fn=fn)),
                           [x.size, float_bits(alpha), float_bits(beta)], [x], x.size), want))
    outs = run(driver, [c[1] for c in cases])
    for (fn, _, want), got in zip(cases, outs):
        assert_close_each(got, want, x, fn)


def test_add(driver):
    rng = np.random.default_rng(5)
    cases = []
    for n in (0, 1, 7, 1000):
        a, b = rand(rng, n), rand(rng, n)
        cases.append((f"add {n}", (("add", T), [n], [a, b], n), F.add(a, b, n=n)))
    check(driver, cases)


def test_mask_frames(driver):
    rng = np.random.default_rng(6)
    cases = []
    for frames, inner, in_place in [(5, 3, 0), (5, 3, 1), (1, 8, 1), (0, 4, 0), (6, 1, 0)]:
        x = rand(rng, frames, inner)
        mask = (rng.random(frames) > 0.4).astype(np.float32)
        pad = float(rng.choice([0.0, LOWEST, -1.5]))
        cases.append((f"mask {frames}x{inner} in_place={in_place}",
                      (("mask_frames", T), [frames, inner, float_bits(pad), in_place],
                       [mask, x], frames * inner),
                      F.mask_frames(x, mask, frames=frames, inner=inner, pad=pad)))
    check(driver, cases)


def test_transpose(driver):
    rng = np.random.default_rng(7)
    cases = []
    for shape in [(5,), (3, 4), (2, 3, 4), (2, 1, 3, 5)]:
        for perm in {tuple(rng.permutation(len(shape))) for _ in range(4)}:
            x = rand(rng, *shape)
            p = dict(rank=len(shape), in_shape=list(shape), perm=list(perm))
            cases.append(struct_case("transpose", p, [x], F.transpose(x, **p)))
    check(driver, cases)


# ----------------------------------------------------------------------- pools, reductions

def test_avgpool1d(driver):
    rng = np.random.default_rng(8)
    cases = []
    for _ in range(40):
        k = int(rng.integers(1, 6))
        p = dict(t_in=int(rng.integers(1, 10)), channels=int(rng.integers(1, 5)), kernel=k,
                 stride=int(rng.integers(1, 4)), pad_l=int(rng.integers(0, k + 2)),
                 pad_r=int(rng.integers(0, k + 2)), count_include_pad=int(rng.integers(2)))
        x = rand(rng, p["t_in"], p["channels"])
        cases.append(struct_case("avgpool1d", p, [x], F.avgpool1d(x, **p)))
    # windows entirely in the padding (count 0 without count_include_pad)
    p = dict(t_in=2, channels=3, kernel=2, stride=1, pad_l=3, pad_r=0, count_include_pad=0)
    x = rand(rng, 2, 3)
    cases.append(struct_case("avgpool1d", p, [x], F.avgpool1d(x, **p)))
    check(driver, cases)


def test_maxpool1d(driver):
    rng = np.random.default_rng(9)
    cases = []
    for _ in range(40):
        k, d = int(rng.integers(1, 5)), int(rng.integers(1, 3))
        p = dict(t_in=int(rng.integers(1, 10)), channels=int(rng.integers(1, 5)), kernel=k,
                 stride=int(rng.integers(1, 4)), dilation=d,
                 pad_l=int(rng.integers(0, d * (k - 1) + 2)),
                 pad_r=int(rng.integers(0, d * (k - 1) + 2)),
                 pad_value=float(rng.choice([LOWEST, 0.0, -2.0])))
        x = rand(rng, p["t_in"], p["channels"])
        cases.append(struct_case("maxpool1d", p, [x], F.maxpool1d(x, **p)))
    check(driver, cases)


def test_reduce(driver):
    rng = np.random.default_rng(10)
    cases = []
    for outer, length, inner in [(1, 1, 1), (2, 5, 3), (1, 64, 1), (3, 0, 2), (4, 7, 1)]:
        for op in (F.REDUCE_MEAN, F.REDUCE_MAX, F.REDUCE_SUM):
            x = rand(rng, outer, length, inner)
            p = dict(outer=outer, length=length, inner=inner, op=op)
            cases.append(struct_case("reduce", p, [x], F.reduce(x, **p)))
    check(driver, cases)


def test_softmax(driver):
    rng = np.random.default_rng(11)
    cases = []
    for rows, cols, scale in [(1, 1, 1.0), (3, 10, 1.0), (2, 40, 30.0), (1, 5, 1e30), (0, 4, 1)]:
        x = rand(rng, rows, cols, scale=scale)
        cases.append((f"softmax {rows}x{cols} scale {scale}",
                      (("softmax", T), [rows, cols], [x], rows * cols),
                      F.softmax(x, rows=rows, cols=cols)))
    check(driver, cases)


# ------------------------------------------------------- binary, matmul, pad, layernorm

#: (description, output shape, a's shape and strides, b's shape and strides): contiguous,
#: per-row and scalar broadcasts, a read transposed, batch dims, an empty output.
BINARY_LAYOUTS = [
    ("same", [1, 1, 3, 5], (15, [0, 0, 5, 1]), (15, [0, 0, 5, 1])),
    ("per-row b", [1, 1, 3, 5], (15, [0, 0, 5, 1]), (3, [0, 0, 1, 0])),
    ("scalar b", [1, 2, 3, 5], (30, [0, 15, 5, 1]), (1, [0, 0, 0, 0])),
    ("a transposed", [1, 1, 3, 5], (15, [0, 0, 1, 3]), (5, [0, 0, 0, 1])),
    ("batch", [2, 3, 4, 5], (120, [60, 20, 5, 1]), (15, [0, 5, 0, 1])),
    ("constant a", [1, 1, 4, 6], (4, [0, 0, 1, 0]), (24, [0, 0, 6, 1])),
    ("empty", [1, 1, 0, 4], (0, [0, 0, 4, 1]), (4, [0, 0, 0, 1])),
]


def binary_calls(rng) -> list[tuple]:
    calls = []
    for op_name, op in BINARY_OPS.items():
        for desc, shape, (na, sa), (nb, sb) in BINARY_LAYOUTS:
            a, b = rand(rng, na), rand(rng, nb)
            p = dict(op=op, shape=shape, a_stride=sa, b_stride=sb)
            calls.append(struct_case("binary", p, [a, b], F.binary(a, b, **p)))
            calls[-1] = (f"binary {op_name} {desc}",) + calls[-1][1:]
    return calls


def test_binary(driver):
    """One IEEE operation per element: C and the reference agree bit for bit."""
    cases = binary_calls(np.random.default_rng(20))
    for (desc, _, want), got in zip(cases, run(driver, [c[1] for c in cases])):
        np.testing.assert_array_equal(got, want.reshape(-1), err_msg=desc)


def test_binary_special_values(driver):
    """Division by +-0, NaN and infinities, PRelu's sign test at -0, max/min of equal values."""
    a = np.array([1.0, -1.0, 0.0, -0.0, np.inf, np.nan, 3.0, -2.0], np.float32)
    b = np.array([0.0, 0.0, 0.0, 2.0, np.inf, 1.0, 3.0, -0.0], np.float32)
    cases = []
    for op in BINARY_OPS.values():
        p = dict(op=op, shape=[1, 1, 1, 8], a_stride=[0, 0, 0, 1], b_stride=[0, 0, 0, 1])
        cases.append(struct_case("binary", p, [a, b], F.binary(a, b, **p)))
    for (desc, _, want), got in zip(cases, run(driver, [c[1] for c in cases])):
        np.testing.assert_array_equal(got.view(np.int32), want.reshape(-1).view(np.int32),
                                      err_msg=desc)


def matmul_calls(rng) -> list[tuple]:
    """Random stored orders (a read transposed, y written transposed), broadcast batch dims,
    1-row and k = 0 products."""
    cases = []
    for b0, b1, m, k, n, bcast, trans in [(1, 1, 3, 4, 5, False, False), (2, 3, 4, 6, 2, True, True),
                                          (1, 4, 1, 7, 3, False, True), (1, 1, 2, 0, 3, False, False),
                                          (3, 1, 5, 16, 4, True, False)]:
        a, b = rand(rng, b0 * b1 * m * k), rand(rng, (1 if bcast else b0) * b1 * k * n)
        a_stride = [b1 * m * k, m * k] + ([1, m] if trans else [k, 1])
        b_stride = [0 if bcast else b1 * k * n, k * n, n, 1]
        y_stride = [b1 * m * n, m * n] + ([1, m] if trans else [n, 1])
        p = dict(batch0=b0, batch1=b1, m=m, k=k, n=n, a_stride=a_stride, b_stride=b_stride,
                 y_stride=y_stride)
        cases.append(struct_case("matmul", p, [a, b], F.matmul(a, b, **p)))
    return cases


def test_matmul(driver):
    check(driver, matmul_calls(np.random.default_rng(21)))


def test_pad(driver):
    """Every mode, crops (negative pads), a pad on every axis; a pure data movement: exact."""
    rng = np.random.default_rng(22)
    cases = []
    for mode in range(4):
        for shape, lo, hi in [([1, 1, 3, 5], [0, 0, 1, 2], [0, 0, 2, 3]),
                              ([2, 3, 4, 5], [1, 0, 2, 0], [0, 1, 0, 4]),
                              ([1, 1, 6, 4], [0, 0, -2, 1], [0, 0, -1, 0]),
                              ([1, 1, 1, 1], [0, 0, 0, 3], [0, 0, 0, 2])]:
            x = rand(rng, *shape)
            p = dict(mode=mode, value=-1.25, in_shape=shape, pad_lo=lo, pad_hi=hi)
            cases.append(struct_case("pad", p, [x], F.pad(x, **p)))
    for (desc, _, want), got in zip(cases, run(driver, [c[1] for c in cases])):
        np.testing.assert_array_equal(got, want.reshape(-1), err_msg=desc)


def test_layernorm(driver):
    rng = np.random.default_rng(23)
    cases = []
    for outer, length, inner, offset in [(1, 1, 1, 0.0), (3, 8, 1, 0.0), (2, 5, 3, 0.0),
                                         (4, 64, 1, 100.0), (2, 6, 1, 0.0), (3, 0, 2, 0.0)]:
        x = rand(rng, outer, length, inner) + np.float32(offset)
        if length == 6:
            x[:] = 0.5  # a constant row: variance 0, y = beta
        g, b = rand(rng, length), rand(rng, length, scale=0.3)
        p = dict(outer=outer, length=length, inner=inner, epsilon=1e-5)
        cases.append(struct_case("layernorm", p, [x, g, b], F.layernorm(x, g, b, **p)))
    check(driver, cases)


def test_reference_binary_matmul_pad_layernorm_match_onnxruntime():
    rng = np.random.default_rng(24)
    x, c = rand(rng, 2, 3, 5), rand(rng, 3, 1)
    flat = dict(shape=[1, 2, 3, 5], a_stride=[0, 15, 5, 1], b_stride=[0, 0, 1, 0])
    for name, op in [("Add", "add"), ("Sub", "sub"), ("Mul", "mul"), ("Div", "div"),
                     ("Max", "max"), ("Min", "min"), ("PRelu", "prelu")]:
        close_to_ort(F.binary(x, c, op=BINARY_OPS[op], **flat), ort(name, [x, c])[0], name)
    a, b = rand(rng, 2, 3, 4, 6), rand(rng, 3, 6, 2)
    got = F.matmul(a, b, batch0=2, batch1=3, m=4, k=6, n=2, a_stride=[72, 24, 6, 1],
                   b_stride=[0, 12, 2, 1], y_stride=[24, 8, 2, 1])
    close_to_ort(got, ort("MatMul", [a, b])[0], "MatMul")
    x = rand(rng, 2, 3, 5)
    for mode, code in (("constant", 0), ("reflect", 1), ("edge", 2), ("wrap", 3)):
        pads = np.array([0, 1, 2, 0, 1, 3], np.int64)
        feeds = [x, pads] + ([np.array(0.5, np.float32)] if mode == "constant" else [])
        want = _ort_pad(feeds, mode)
        got = F.pad(x, mode=code, value=0.5, in_shape=[1, 2, 3, 5], pad_lo=[0, 0, 1, 2],
                    pad_hi=[0, 0, 1, 3])
        np.testing.assert_array_equal(got.reshape(-1), want.reshape(-1), err_msg=mode)
    x, g, b = rand(rng, 4, 10, scale=3.0), rand(rng, 10), rand(rng, 10)
    close_to_ort(F.layernorm(x, g, b, outer=4, length=10, inner=1, epsilon=1e-5),
                 ort("LayerNormalization", [x, g, b], axis=-1, epsilon=1e-5)[0], "LayerNorm")


def _ort_pad(feeds: list[np.ndarray], mode: str) -> np.ndarray:
    names = ["x", "pads", "value"][:len(feeds)]
    types = [onnx.TensorProto.FLOAT, onnx.TensorProto.INT64, onnx.TensorProto.FLOAT]
    model = helper.make_model(helper.make_graph(
        [helper.make_node("Pad", names, ["y"], mode=mode)], "pad",
        [helper.make_tensor_value_info(n, t, a.shape) for n, t, a in zip(names, types, feeds)],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)]),
        opset_imports=[helper.make_opsetid("", 19)])
    return run_model(model, dict(zip(names, feeds)))["y"]


# ------------------------------------------------------------------------------- recurrent

def recurrent_case(rng, family: str, t: int, i: int, h: int, lbr: int = 0) -> tuple:
    gates = 3 if family == "gru" else 4
    x, wx, wh = rand(rng, t, i), rand(rng, gates * h, i, scale=0.5), rand(rng, gates * h, h,
                                                                          scale=0.5)
    bias, h0 = rand(rng, 2 * gates * h, scale=0.3), rand(rng, h, scale=0.5)
    p = dict(input=i, hidden=h, **({"linear_before_reset": lbr} if family == "gru" else {}))
    arrays = [x, wx, wh, bias, h0]
    if family == "gru":
        y, hn = F.gru(x, h0, wx, wh, bias, t=t, **p)
        want = np.concatenate([y.reshape(-1), hn])
    else:
        c0 = rand(rng, h)
        arrays.append(c0)
        y, hn, cn = F.lstm(x, h0, c0, wx, wh, bias, t=t, **p)
        want = np.concatenate([y.reshape(-1), hn, cn])
    return (f"{family} t={t} I={i} H={h} lbr={lbr}",
            ((family, T), f32_params(family, p) + [t], arrays, want.size), want)


def test_gru_and_lstm(driver):
    rng = np.random.default_rng(12)
    cases = [recurrent_case(rng, "gru", t, i, h, lbr)
             for t, i, h in [(0, 3, 4), (1, 1, 1), (7, 5, 3), (30, 8, 16)] for lbr in (0, 1)]
    cases += [recurrent_case(rng, "lstm", t, i, h)
              for t, i, h in [(0, 3, 4), (1, 1, 1), (7, 5, 3), (30, 8, 16)]]
    check(driver, cases)


# ------------------------------------------------------------- reference vs onnxruntime

def ort(op: str, inputs: list[np.ndarray], outputs: int = 1, opset: int = 20,
        **attrs) -> list[np.ndarray]:
    """Run one ONNX op in onnxruntime on float32 inputs."""
    names = [f"i{k}" for k in range(len(inputs))]
    node = helper.make_node(op, names, [f"o{k}" for k in range(outputs)], **attrs)
    graph = helper.make_graph(
        [node], "op", [helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, a.shape)
                       for n, a in zip(names, inputs)],
        [helper.make_tensor_value_info(f"o{k}", onnx.TensorProto.FLOAT, None)
         for k in range(outputs)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    out = run_model(model, dict(zip(names, inputs)))
    return [out[f"o{k}"] for k in range(outputs)]


def close_to_ort(ref: np.ndarray, want: np.ndarray, what: str) -> None:
    assert_close(ref, want.astype(np.float32), f"reference vs onnxruntime: {what}")


def test_reference_convs_match_onnxruntime():
    rng = np.random.default_rng(13)
    for _ in range(15):
        g, c_in, c_out = groups_of(rng)
        k, d, s = int(rng.integers(1, 5)), int(rng.integers(1, 3)), int(rng.integers(1, 3))
        pads = [int(rng.integers(0, k)), int(rng.integers(0, k))]
        t_in = d * (k - 1) + 1 + int(rng.integers(0, 6))
        x, w, b = rand(rng, 1, c_in, t_in), rand(rng, c_out, c_in // g, k), rand(rng, c_out)
        want = ort("Conv", [x, w, b], group=g, dilations=[d], strides=[s], pads=pads)[0]
        got = F.conv1d(x[0].T.copy(), w.transpose(0, 2, 1).copy(), b, t_in=t_in, c_in=c_in,
                       c_out=c_out, kernel=k, stride=s, dilation=d, groups=g, pad_l=pads[0],
                       pad_r=pads[1], act_min=-math.inf, act_max=math.inf)
        close_to_ort(got, want[0].T, "Conv 1-D")
        # 2-D: [1, C, F, T] stored [T][C][F], weights [co][kt][kf][cg]
        f_in, kf = int(rng.integers(2, 6)), int(rng.integers(1, 3))
        x2, w2 = rand(rng, 1, c_in, f_in + kf, t_in), rand(rng, c_out, c_in // g, kf, k)
        want = ort("Conv", [x2, w2, b], group=g, dilations=[1, d], strides=[1, s],
                   pads=[0, pads[0], 1, pads[1]])[0]
        got = F.conv2d(x2[0].transpose(2, 0, 1).copy(), w2.transpose(0, 3, 2, 1).copy(), b,
                       t_in=t_in, f_in=f_in + kf, c_in=c_in, c_out=c_out, kernel_t=k,
                       kernel_f=kf, stride_t=s, stride_f=1, dilation_t=d, dilation_f=1,
                       groups=g, pad_t_l=pads[0], pad_t_r=pads[1], pad_f_l=0, pad_f_r=1,
                       act_min=-math.inf, act_max=math.inf)
        close_to_ort(got, want[0].transpose(2, 0, 1), "Conv 2-D")
        # ConvTranspose: ONNX W [c_in, c_out/g, k] -> [c_out, k, c_in/g]
        wt = rand(rng, c_in, c_out // g, k)
        out_pad = int(rng.integers(0, s))
        want = ort("ConvTranspose", [x, wt, b], group=g, dilations=[d], strides=[s],
                   pads=pads, output_padding=[out_pad])[0]
        cg, og = c_in // g, c_out // g
        wk = wt.reshape(g, cg, og, k).transpose(0, 2, 3, 1).reshape(c_out, k, cg).copy()
        got = F.conv_transpose1d(x[0].T.copy(), wk, b, t_in=t_in, c_in=c_in, c_out=c_out,
                                 kernel=k, stride=s, dilation=d, groups=g, pad_l=pads[0],
                                 pad_r=pads[1], output_padding=out_pad, act_min=-math.inf,
                                 act_max=math.inf)
        close_to_ort(got, want[0].T, "ConvTranspose")


def test_reference_pools_reductions_softmax_match_onnxruntime():
    rng = np.random.default_rng(14)
    for _ in range(10):
        c, k, s = int(rng.integers(1, 4)), int(rng.integers(1, 5)), int(rng.integers(1, 3))
        pads = [int(rng.integers(0, k)), int(rng.integers(0, k))]
        t_in, cip = k + int(rng.integers(0, 6)), int(rng.integers(2))
        x = rand(rng, 1, c, t_in)
        want = ort("AveragePool", [x], kernel_shape=[k], strides=[s], pads=pads,
                   count_include_pad=cip)[0]
        got = F.avgpool1d(x[0].T.copy(), t_in=t_in, channels=c, kernel=k, stride=s,
                          pad_l=pads[0], pad_r=pads[1], count_include_pad=cip)
        close_to_ort(got, want[0].T, "AveragePool")
        d = int(rng.integers(1, 3))
        want = ort("MaxPool", [x], kernel_shape=[k], strides=[s], pads=pads, dilations=[d])[0]
        got = F.maxpool1d(x[0].T.copy(), t_in=t_in, channels=c, kernel=k, stride=s,
                          dilation=d, pad_l=pads[0], pad_r=pads[1], pad_value=LOWEST)
        close_to_ort(got, want[0].T, "MaxPool")
    x = rand(rng, 3, 6, 4)
    for op, code in (("ReduceMean", F.REDUCE_MEAN), ("ReduceMax", F.REDUCE_MAX),
                     ("ReduceSum", F.REDUCE_SUM)):
        axes = helper.make_tensor("axes", onnx.TensorProto.INT64, [1], [1])
        node_in = [x, np.array([1], np.int64)]
        model = helper.make_model(helper.make_graph(
            [helper.make_node(op, ["x", "axes"], ["y"], keepdims=0)], "r",
            [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, x.shape)],
            [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)], [axes]),
            opset_imports=[helper.make_opsetid("", 18)])
        want = run_model(model, {"x": node_in[0]})["y"]
        close_to_ort(F.reduce(x, outer=3, length=6, inner=4, op=code), want, op)
    x = rand(rng, 4, 9, scale=5.0)
    close_to_ort(F.softmax(x, rows=4, cols=9), ort("Softmax", [x], axis=-1)[0], "Softmax")


def test_reference_unary_functions_match_onnxruntime():
    x = np.linspace(-10, 10, 401).astype(np.float32)
    onnx_ops = {"relu": ("Relu", {}), "sigmoid": ("Sigmoid", {}), "tanh": ("Tanh", {}),
                "leaky_relu": ("LeakyRelu", {"alpha": 0.1}),
                "hard_sigmoid": ("HardSigmoid", {"alpha": 0.2, "beta": 0.5}),
                "hard_swish": ("HardSwish", {}), "gelu": ("Gelu", {}),
                "gelu_tanh": ("Gelu", {"approximate": "tanh"}), "exp": ("Exp", {}),
                "softplus": ("Softplus", {}), "elu": ("Elu", {"alpha": 0.7}),
                "neg": ("Neg", {}), "abs": ("Abs", {}), "erf": ("Erf", {}),
                "sqrt": ("Sqrt", {}), "reciprocal": ("Reciprocal", {})}
    for fn in F.UNARY_FUNCTIONS:
        alpha, beta = UNARY_ARGS.get(fn, (0.0, 0.0))
        got = F.unary(x, fn=fn, alpha=alpha, beta=beta)
        if fn == "silu":
            want = x / (1 + np.exp(-x.astype(np.float64)))
        elif fn == "clip":
            want = ort("Clip", [x, np.array(alpha, np.float32), np.array(beta, np.float32)])[0]
        elif fn == "pow":
            for e in (alpha, 2.0, 0.5, -1.0):  # the kernel's exponent is any constant
                want = ort("Pow", [x, np.array(e, np.float32)])[0]
                assert_close_each(F.unary(x, fn=fn, alpha=e), want, x, f"pow {e} vs onnxruntime")
            continue
        else:
            op, attrs = onnx_ops[fn]
            want = ort(op, [x], **attrs)[0]
        assert_close_each(got, np.asarray(want).reshape(-1), x, f"reference vs onnxruntime {fn}")


def _ort_rnn(op: str, x, w, r, b, h0, c0, attrs: dict) -> tuple[np.ndarray, np.ndarray]:
    """Y and Y_h of one ONNX GRU/LSTM (optional inputs left empty except B, initial_h/c)."""
    feeds = {"x": x, "w": w, "r": r, "b": b, "h0": h0, **({"c0": c0} if c0 is not None else {})}
    ins = ["x", "w", "r", "b", "", "h0"] + (["c0"] if c0 is not None else [])
    model = helper.make_model(helper.make_graph(
        [helper.make_node(op, ins, ["y", "yh"], **attrs)], "rnn",
        [helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, a.shape)
         for n, a in feeds.items()],
        [helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None) for n in ("y", "yh")]),
        opset_imports=[helper.make_opsetid("", 17)])
    out = run_model(model, feeds)
    return out["y"], out["yh"]


@pytest.mark.parametrize("family, lbr", [("gru", 0), ("gru", 1), ("lstm", 0)])
def test_reference_recurrent_matches_onnxruntime(family, lbr):
    rng = np.random.default_rng(15 + lbr)
    t, i, h = 9, 5, 6
    gates = 3 if family == "gru" else 4
    x, w, r = rand(rng, t, 1, i), rand(rng, 1, gates * h, i), rand(rng, 1, gates * h, h)
    b, h0 = rand(rng, 1, 2 * gates * h), rand(rng, 1, 1, h, scale=0.5)
    if family == "gru":
        y, yh = _ort_rnn("GRU", x, w, r, b, h0, None,
                         dict(hidden_size=h, linear_before_reset=lbr))
        got_y, got_h = F.gru(x.reshape(t, i), h0.reshape(h), w[0], r[0], b[0], t=t, input=i,
                             hidden=h, linear_before_reset=lbr)
    else:
        c0 = rand(rng, 1, 1, h, scale=0.5)
        y, yh = _ort_rnn("LSTM", x, w, r, b, h0, c0, dict(hidden_size=h))
        got_y, got_h, _ = F.lstm(x.reshape(t, i), h0.reshape(h), c0.reshape(h), w[0], r[0],
                                 b[0], t=t, input=i, hidden=h)
    close_to_ort(got_y, y.reshape(t, h), f"{family} Y")
    close_to_ort(got_h, yh.reshape(h), f"{family} Y_h")


# ------------------------------------------------------------------ variants and hygiene

def test_float_variants_are_named_and_checked():
    assert function_name("conv1d", T) == "rill_conv1d_f32"
    assert function_name("unary", KernelTypes(F32, F32, fn="gelu"), "kws") == \
        "kws_unary_gelu_f32"
    for bad_family, bad in [("lut", T), ("requant", T), ("quantize", T),
                            ("unary", T), ("unary", KernelTypes(F32, F32, fn="cosh")),
                            ("conv1d", KernelTypes(F32, F32, w=8, acc=32)),
                            ("unary", KernelTypes(8, 8))]:
        with pytest.raises(ValueError):
            check_types(bad_family, bad)


def test_float_program_uses_only_its_float_kernels():
    """A float program gets the f32 variants its steps call and no quantize/dequantize."""
    buffers = {n: Buffer(n, (4,), "float32", None, role)
               for n, role in (("x", "input"), ("h", "scratch"), ("y", "output"))}
    steps = [Step("unary", ["x"], ["h"], dict(n=4, fn=F.UNARY_FUNCTIONS.index("tanh"), alpha=0.0,
                                              beta=0.0)),
             Step("add", ["h", "x"], ["y"], dict(n=4))]
    program = Program(buffers, steps, ["x"], ["y"], [], "half_even")
    assert kernel_types(steps[0], buffers) == KernelTypes(F32, F32, fn="tanh")
    assert program_variants(program) == {("unary", KernelTypes(F32, F32, fn="tanh")),
                                         ("add", T)}
    header = kernel_header("m", program_variants(program))
    assert "m_unary_tanh_f32" in header and "m_quantize" not in header
    assert "m_conv1d_f32_params_t" in header  # the float structs come with any float variant


def _compilers() -> list[str]:
    return [cc for cc in dict.fromkeys([CC, "gcc", "clang"]) if shutil.which(cc)]


def test_float_variants_compile_strict(tmp_path):
    """Every float variant, renamed (prefix kws), as a component has them (a private header
    and the sources): -std=c99 -Wall -Wextra -Werror -pedantic -Wshadow -Wconversion with
    gcc and clang, and gcc -m32 when it links."""
    (tmp_path / "kws_kernels.h").write_text(
        "#ifndef KWS_K_H\n#define KWS_K_H\n#define RILL_ROUNDING 0\n"
        + kernel_header("kws", VARIANTS) + "#endif\n")
    src = tmp_path / "kws_kernels.c"
    src.write_text('#include "kws_kernels.h"\n' + kernel_sources(VARIANTS, "kws"))
    assert "VARIANT" not in src.read_text() and "RILL_UNARY_FN" not in src.read_text()
    for cc in _compilers():
        proc = compile_c(cc, [*STRICT, "-Wshadow", "-Wconversion", "-O2", "-c", str(src), "-o",
                              str(tmp_path / "k.o")], tmp_path)
        assert proc.returncode == 0, f"{cc}: {proc.stderr[-3000:]}"
    probe = compile_c(CC, ["-m32", "-c", "-x", "c", "/dev/null", "-o", str(tmp_path / "p.o")],
                      tmp_path)
    if probe.returncode == 0:
        proc = compile_c(CC, ["-m32", *STRICT, "-c", str(src), "-o", str(tmp_path / "m.o")],
                         tmp_path)
        assert proc.returncode == 0, proc.stderr[-3000:]
