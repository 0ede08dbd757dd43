"""runtime/c/conv1d_fx.c: int8 conv1d (and gemm) accumulated exactly in float32, against the
integer reference bit for bit, in both rounding modes, on the host (the portable lrintf path,
strict flags, sanitizers) and on RV32 (the fmax/fmin/fcvt instructions, in the emulator); and
runtime/weight_layout.py's rules for when it is exact and which arrays it reads.

The cases cover every path of the kernel: dense convs at 1..11 output frames (four-frame
blocks, one-frame blocks, the plain loop for a last block's odd channels and for padding
frames), gemm as a pointwise conv, depthwise convs with kernels 3 and 5 walked along their
dilation phases (ReLU and general output stages, phases of 1..6 outputs), other kernels and
strides channel by channel, and few frames frame by frame; the same depthwise cases through
the functions generated per layer shape (their geometry constants); inputs and weights at
their extremes, biases at the exactness bound, every accumulator an exact tie.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from c_drivers import MODES, build_drivers, record, run_records
from codegen.kernel_library import F32, KernelTypes, function_name, variant_suffix
from codegen.kernel_select import Selection, fixed_depthwise, select_for
from conftest import ROOT
from runtime import weight_layout as wl
from runtime.reference import kernels as ref

T = KernelTypes
FX_TYPES = [T(8, 8, w=8), T(8, 8, w=F32), T(8, 16, w=8), T(8, 16, w=F32)]
DRIVER_SRC = ROOT / "tests" / "c" / "kernel_driver.c"
CONV_FIELDS = ref.PARAMS_FIELDS["conv1d"] + wl.LAYOUT_FIELDS
I8 = (-128, 127)

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="no C compiler (gcc)")


# ------------------------------------------------------------------------------- cases

def fx_case(op: str, p: dict, x, w, bias, shift, mode: str, y_bits: int, weights: str,
            desc: str) -> dict:
    """One conv1d_fx call: its variant, params and arrays as the code generator emits them, and
    the integer reference's output."""
    named = dict(w=w, bias=np.asarray(bias, np.int32), shift=np.asarray(shift, np.int8))
    assert wl.fx_exact(named["bias"], named["shift"], w, named["bias"].size, 8), desc
    conv = wl.fx_conv_params(op, p)
    arrays = wl.fx_arrays(op, p, named, weights, mode)
    want = getattr(ref, op)(x, w, named["bias"], named["shift"], **p, mode=mode, out_bits=y_bits)
    types = T(8, y_bits, w=F32 if weights == "f32" else 8)
    return dict(types=types, params=[conv[f] for f in CONV_FIELDS],
                arrays=[np.asarray(x, np.int8), arrays["w"], arrays["bias"], arrays["scale"]],
                want=np.asarray(want).reshape(-1), desc=f"{variant_suffix(types)} {desc} {p}",
                fn=function_name("conv1d_fx", types), fixed=fixed_depthwise(conv, types))


def exact_bias(rng, w: np.ndarray, c_out: int, big: bool) -> np.ndarray:
    """Biases that keep every channel inside the exactness bound (|bias| + 1 + 128 sum|w| <
    2^23); `big`: right at it."""
    room = wl.FX_LIMIT - 2 - 128 * np.abs(w.astype(np.int64)).reshape(c_out, -1).sum(axis=1)
    if big:
        return (rng.choice([-1, 1], size=c_out) * room).astype(np.int32)
    return rng.integers(-np.minimum(room, 20000), np.minimum(room, 20000) + 1).astype(np.int32)


def shifts_for(w: np.ndarray, bias: np.ndarray, c_out: int, y_bits: int, rng) -> np.ndarray:
    """Per-channel shifts that bring the accumulator's range near the output's (some saturate)."""
    bound = np.abs(bias.astype(np.int64)) + 128 * np.abs(w.astype(np.int64)).reshape(
        c_out, -1).sum(axis=1)
    bits = np.array([int(b).bit_length() for b in bound])
    return np.clip(bits - y_bits + rng.integers(-1, 3, size=c_out), 0, 40)


def conv_shape(rng, depthwise: bool) -> dict:
    if depthwise:
        c = int(rng.integers(1, 11))
        kernel = int(rng.choice([3, 5, 3, 5, 1, 2, 4, 7]))
        groups, c_in, c_out = c, c, c
    else:
        groups, c_in, c_out = 1, int(rng.integers(1, 20)), int(rng.integers(1, 37))
        kernel = int(rng.integers(1, 4))
    dilation = int(rng.integers(1, 5))
    stride = 1 if rng.random() < 0.7 else int(rng.integers(2, 4))
    field = dilation * (kernel - 1) + 1
    pad_l = int(rng.integers(0, field + 1)) if rng.random() < 0.4 else 0
    pad_r = int(rng.integers(0, 3)) if rng.random() < 0.2 else 0
    frames = int(rng.integers(1, 12))
    t_in = max(1, (frames - 1) * stride + field - pad_l - pad_r)
    return dict(t_in=t_in, c_in=c_in, c_out=c_out, kernel=kernel, stride=stride,
                dilation=dilation, groups=groups, pad_l=pad_l, pad_r=pad_r)


def random_cases(mode: str, seeds: int) -> list[dict]:
    cases = []
    for seed in range(seeds):
        rng = np.random.default_rng(9000 + seed)
        depthwise = seed % 2 == 1
        y_bits = 16 if seed % 5 == 4 else 8
        if seed % 7 == 6:  # gemm
            p = dict(m=int(rng.integers(1, 9)), k=int(rng.integers(1, 50)),
                     n=int(rng.integers(1, 40)))
            op, xs, ws, c_out = "gemm", p["m"] * p["k"], (p["n"], p["k"]), p["n"]
            depthwise = False
        else:
            p = conv_shape(rng, depthwise)
            op, c_out = "conv1d", p["c_out"]
            xs = p["t_in"] * p["c_in"]
            ws = (c_out, p["kernel"], p["c_in"] // p["groups"])
        act = [(-(1 << (y_bits - 1)), (1 << (y_bits - 1)) - 1), (0, (1 << (y_bits - 1)) - 1),
               (-20, 30)][seed % 3]
        p.update(act_min=act[0], act_max=act[1])
        extreme = seed % 4 == 0
        pick = (lambda n: rng.choice(np.array([-128, 127, -127, 0, 1, -1]), size=n)) if extreme \
            else (lambda n: rng.integers(-128, 128, size=n))
        x = pick(xs).astype(np.int8)
        w = pick(int(np.prod(ws))).astype(np.int8).reshape(ws)
        bias = exact_bias(rng, w, c_out, big=seed % 9 == 0)
        shift = shifts_for(w, bias, c_out, y_bits, rng)
        weights = "f32" if depthwise or seed % 3 != 0 else "int8"
        cases.append(fx_case(op, p, x, w, bias, shift, mode, y_bits, weights, f"seed={seed}"))
    return cases


def tie_cases(mode: str) -> list[dict]:
    """Inputs that are multiples of 2^s and a bias that is an odd multiple of 2^(s-1): every
    accumulator is an exact tie of both signs (the rounding modes differ on every output)."""
    cases = []
    for seed in range(24):
        rng = np.random.default_rng(7000 + seed)
        depthwise = seed % 2 == 0
        p = conv_shape(rng, depthwise)
        p.update(act_min=-128, act_max=127)
        s = int(rng.integers(1, 7))
        c_out, cg = p["c_out"], p["c_in"] // p["groups"]
        x = (rng.integers(-1, 2, size=p["t_in"] * p["c_in"]) * (1 << s)).clip(*I8)
        w = rng.integers(-3, 4, size=(c_out, p["kernel"], cg)).astype(np.int8)
        bias = (2 * rng.integers(-20, 20, size=c_out) + 1) * (1 << (s - 1))
        shift = np.full(c_out, s)
        weights = "f32" if depthwise or seed % 4 == 1 else "int8"
        cases.append(fx_case("conv1d", p, x.astype(np.int8), w, bias, shift, mode, 8, weights,
                             f"ties s={s}"))
    return cases


def edge_cases(mode: str) -> list[dict]:
    """Every input and weight at an extreme (both signs), biases at the exactness bound: outputs
    saturate at both ends, and the ReLU and general output stages both run."""
    shapes = [dict(t_in=10, c_in=8, c_out=9, kernel=3, stride=1, dilation=1, groups=1, pad_l=2,
                   pad_r=0),
              dict(t_in=12, c_in=8, c_out=8, kernel=3, stride=1, dilation=2, groups=8, pad_l=0,
                   pad_r=0),
              dict(t_in=24, c_in=6, c_out=6, kernel=5, stride=1, dilation=4, groups=6, pad_l=0,
                   pad_r=0)]
    cases = []
    for p in shapes:
        c_out, cg = p["c_out"], p["c_in"] // p["groups"]
        depthwise = p["groups"] > 1
        for xv in I8:
            for wv in (-128, 127):
                x = np.full(p["t_in"] * p["c_in"], xv, np.int8)
                w = np.full((c_out, p["kernel"], cg), wv, np.int8)
                room = wl.FX_LIMIT - 2 - 128 * 128 * p["kernel"] * cg
                for bias in (np.zeros(c_out), np.resize([room, -room], c_out)):
                    mag = 128 * 128 * p["kernel"] * cg + int(np.abs(bias).max())
                    shift = np.resize([mag.bit_length() - 7, 0, mag.bit_length() - 9], c_out)
                    for act in ((-128, 127), (0, 127), (-5, 9)):
                        cases.append(fx_case(
                            "conv1d", dict(p, act_min=act[0], act_max=act[1]), x, w, bias,
                            shift, mode, 8, "f32" if depthwise else "int8",
                            f"x={xv} w={wv} act={act}"))
    return cases


def all_cases(mode: str) -> list[dict]:
    """Every case through conv1d_fx, and again through its fixed-shape function where the code
    generator would call one (depthwise kernels 3 and 5: codegen/kernel_select.py)."""
    cases = random_cases(mode, 160) + tie_cases(mode) + edge_cases(mode)
    fixed = [dict(c, fn=function_name(c["fixed"].family, c["types"]),
                  desc=f"{c['fixed'].family} {c['desc']}") for c in cases if c["fixed"]]
    return cases + fixed


FIXED = {c["fixed"] for c in all_cases("half_even") if c["fixed"]}
FUNCTIONS = sorted({function_name("conv1d_fx", t) for t in FX_TYPES}
                   | {function_name(f.family, f.types) for f in FIXED})
OPS = {fn: 100 + i for i, fn in enumerate(FUNCTIONS)}


def dispatch_source() -> str:
    """kernel_driver.c's dispatch: one op per function, each a conv1d_fx call."""
    cases = "".join(
        f"    case {OPS[fn]}: {{\n        rill_conv1d_params_t p;\n"
        "        rill_expect(np * 4 == (int32_t)sizeof p && na == 4, record);\n"
        f"        memcpy(&p, pr, sizeof p);\n        {fn}(&p, a[0], a[1], a[2], a[3], out);\n"
        "        break;\n    }\n" for fn in FUNCTIONS)
    return ("static int rill_call_variant(int32_t op, const int32_t *pr, int32_t np, void **a,\n"
            "                             int32_t na, void *out, long record)\n{\n"
            "    switch (op) {\n" + cases + "    default:\n        return 0;\n    }\n"
            "    return 1;\n}\n")


def test_fixed_shapes_are_covered():
    """The cases reach fixed-shape functions of both walkers, short and long phases."""
    assert {f.kernel for f in FIXED} == {3, 5}
    assert any(f.frames <= 2 * f.dilation for f in FIXED)
    assert any(f.frames >= 5 * f.dilation for f in FIXED)


# ------------------------------------------------------------------------------- host

@pytest.fixture(scope="module")
def host_drivers(tmp_path_factory) -> dict[str, Path]:
    build = tmp_path_factory.mktemp("fx_driver")
    return build_drivers("gcc", build, DRIVER_SRC, [("conv1d_fx", t) for t in FX_TYPES],
                         "fx_driver", dispatch_source(), fixed=FIXED)


def run_host(exe: Path, cases: list[dict]) -> list[np.ndarray]:
    dtypes = [np.int8 if c["types"].y == 8 else np.int16 for c in cases]
    sizes = [c["want"].size * np.dtype(dt).itemsize for c, dt in zip(cases, dtypes)]
    records = [record(OPS[c["fn"]], c["params"], c["arrays"], size)
               for c, size in zip(cases, sizes)]
    raw = run_records(exe, records, sizes, "fx_driver")
    return [np.frombuffer(b, dtype=dt) for b, dt in zip(raw, dtypes)]


def check(cases: list[dict], outs: list[np.ndarray], where: str) -> None:
    for c, got in zip(cases, outs):
        bad = np.flatnonzero(got != c["want"])
        assert bad.size == 0, (f"[{where}] {c['desc']}: {bad.size} mismatches, first at "
                               f"{bad[0]}: C {got[bad[0]]} != reference {c['want'][bad[0]]}")


@pytest.mark.parametrize("mode", MODES)
def test_fx_on_host_equals_the_integer_reference(host_drivers, mode):
    cases = all_cases(mode)
    check(cases, run_host(host_drivers[mode], cases), f"host {mode}")


def test_tie_cases_tell_the_rounding_modes_apart():
    even, up = tie_cases("half_even"), tie_cases("half_up")
    assert sum(int(np.sum(a["want"] != b["want"])) for a, b in zip(even, up)) > 100


# ------------------------------------------------------------------------------- RV32

@pytest.fixture(scope="module")
def rv32_machine(tmp_path_factory):
    from test_rv32 import rv32_unavailable
    from conftest import require_tools

    require_tools(rv32_unavailable())
    from codegen.kernel_library import kernel_header, kernel_sources
    from compiler.rv32.build import build_elf
    from compiler.rv32.emulator import Rv32Machine

    work = tmp_path_factory.mktemp("fx_rv32")
    variants = [("conv1d_fx", t) for t in FX_TYPES]
    (work / "k.h").write_text("#ifndef K_H\n#define K_H\n#define RILL_ROUNDING 0\n"
                              + kernel_header("rill", variants, FIXED) + "#endif\n")
    (work / "k.c").write_text('#include "k.h"\n' + kernel_sources(variants, "rill", FIXED))
    (work / "main.c").write_text("int main(void);\nint main(void)\n{\n    return 0;\n}\n")
    return Rv32Machine(build_elf([work / "k.c", work / "main.c"], [work], work / "fx.elf"))


@pytest.mark.parametrize("mode", MODES)
def test_fx_on_rv32_equals_the_integer_reference(rv32_machine, mode):
    """The same cases through the RV32 instructions (fmadd.s, fmax.s/fmin.s, fcvt.w[u].s rne):
    the rounding mode lives in the arrays (half up's 1/2 in the bias), not in the build."""
    m = rv32_machine
    cases = all_cases(mode)[::3]  # a third of them: emulation is slower
    outs = []
    for c in cases:
        m.free_all()
        ptrs = [m.alloc(np.ascontiguousarray(a)) for a in c["arrays"]]
        dtype = np.int8 if c["types"].y == 8 else np.int16
        out = m.alloc(c["want"].size * np.dtype(dtype).itemsize)
        m.call(c["fn"], m.alloc(np.asarray(c["params"], np.int32)), *ptrs, out)
        outs.append(m.read_array(out, dtype, c["want"].size))
    check(cases, outs, f"rv32 {mode}")


# ---------------------------------------------------------------- weight_layout's rules

def test_exact_up_to_the_bound_and_not_beyond():
    w = np.full((1, 4), -128, np.int8)
    room = wl.FX_LIMIT - 1 - 1 - 4 * 128 * 128  # the largest |bias|: bound = 2^23 - 1
    assert wl.fx_exact(np.array([room], np.int32), np.array([9]), w, 1, 8)
    assert wl.fx_exact(np.array([-room], np.int32), np.array([9]), w, 1, 8)
    assert not wl.fx_exact(np.array([room + 1], np.int32), np.array([9]), w, 1, 8)
    assert not wl.fx_exact(np.array([0], np.int64), np.array([9]), w, 1, 8)  # int64 bias
    assert not wl.fx_exact(np.array([0], np.int32), np.array([9]), w, 1, 16)  # int16 input
    assert not wl.fx_exact(np.array([0], np.int32), np.array([9]), w.astype(np.int16), 1, 8)
    assert not wl.fx_exact(np.array([0], np.int32), np.array([-1]), w, 1, 8)  # a left shift


def test_choice_float_weights_for_few_frames_int8_for_many():
    arrays = dict(w=np.ones((4, 1, 8), np.int8), bias=np.zeros(4, np.int32),
                  shift=np.full(4, 5, np.int8))
    dense = dict(t_in=3, c_in=8, c_out=4, kernel=1, stride=1, dilation=1, groups=1, pad_l=0,
                 pad_r=0)
    assert wl.fx_choice("conv1d", dense, arrays, 8) == "f32"
    assert wl.fx_choice("conv1d", dict(dense, t_in=4), arrays, 8) == "int8"
    assert wl.fx_choice("conv1d", dense, arrays, 8, float_weights=False) is None
    depthwise = dict(dense, c_in=4, groups=4, t_in=40)
    dw_arrays = dict(arrays, w=np.ones((4, 1, 1), np.int8))
    assert wl.fx_choice("conv1d", depthwise, dw_arrays, 8, float_weights=False) == "f32"
    grouped = dict(dense, groups=2, c_in=8)
    assert wl.fx_choice("conv1d", grouped, dict(arrays, w=np.ones((4, 1, 4), np.int8)), 8) is None
    assert wl.fx_choice("conv1d", dense, arrays, 16) is None
    gemm = dict(m=1, k=8, n=4, act_min=-128, act_max=127)
    assert wl.fx_choice("gemm", gemm, dict(arrays, w=np.ones((4, 8), np.int8)), 8) == "f32"


@pytest.mark.parametrize("mode", MODES)
def test_arrays_scale_and_half_up_constant(mode):
    w = np.arange(-6, 6, dtype=np.int8).reshape(2, 1, 6)
    named = dict(w=w, bias=np.array([10, -7], np.int32), shift=np.array([0, 3], np.int8))
    p = dict(t_in=2, c_in=6, c_out=2, kernel=1, stride=1, dilation=1, groups=1, pad_l=0, pad_r=0,
             act_min=-128, act_max=127)
    a = wl.fx_arrays("conv1d", p, named, "int8", mode)
    assert a["w"].dtype == np.int8 and a["bias"].dtype == a["scale"].dtype == np.float32
    assert a["scale"].tolist() == [1.0, 0.125]
    assert a["bias"].tolist() == ([10.0, -7.0] if mode == "half_even" else [10.0, -6.5])
    dw = dict(p, c_in=2, groups=2)
    d = wl.fx_arrays("conv1d", dw, dict(named, w=np.array([[[4]], [[-8]]], np.int8)), "f32", mode)
    assert d["w"].tolist() == [4.0, -1.0] and d["scale"].tolist() == [1.0, 1.0]
    assert d["bias"].tolist() == ([10.0, -0.875] if mode == "half_even" else [10.0, -0.8125])


def test_selection_follows_the_target():
    """select_for: conv1d_fx only with float_mac; the integer layouts otherwise."""
    named = dict(w=np.ones((4, 1, 8), np.int8), bias=np.zeros(4, np.int32),
                 shift=np.full(4, 5, np.int8))
    p = dict(t_in=1, c_in=8, c_out=4, kernel=1, stride=1, dilation=1, groups=1, pad_l=0,
             pad_r=0, act_min=-128, act_max=127)
    s8 = T(8, 8, w=8, acc=32)
    fx = select_for("conv1d", s8, p, named, "half_even", Selection(float_mac=True))
    assert (fx.family, fx.types) == ("conv1d_fx", T(8, 8, w=F32))
    assert set(fx.arrays) == {"w", "bias", "scale"} and fx.arrays["w"].dtype == np.float32
    plain = select_for("conv1d", s8, p, named, "half_even", Selection())
    assert plain.family == "conv1d" and plain.params["wblock"] == wl.DENSE_BLOCK
    logical = select_for("conv1d", s8, p, named, "half_even", Selection(layouts=False))
    assert logical.params["wblock"] == 1 and logical.arrays["w"] is named["w"]


# ------------------------------------------------------------------------- the CLI's choice

def test_compact_weights_keep_int8_weights(compiled, example_model, example_calib):
    """At one frame per call the esp32p4's dense layers hold float32 weights (4 bytes each) by
    default; --compact-weights keeps them int8 on the integer kernels (depthwise taps stay
    float32: a few bytes); report.json names each layer's kernel and counts what is emitted."""
    runs = {}
    for key, extra in (("fx_default_c1", ()), ("fx_compact_c1", ("--compact-weights",))):
        c = compiled(key, example_model, "--chunk", "1", "--calib", str(example_calib), *extra,
                     name="fxw")
        assert c.rc == 0, c.stderr
        runs[key] = json.loads((c.component / "report.json").read_text())
    default, compact = runs["fx_default_c1"], runs["fx_compact_c1"]
    kernels = {r: {layer.get("kernel") for layer in runs[r]["layers"]} for r in runs}
    assert "conv1d_fx_x8wf32y8" in kernels["fx_default_c1"]
    assert "conv1d_s8" in kernels["fx_compact_c1"]  # the Gemm too: run as a pointwise conv
    f32 = {r: sum(layer.get("kernel") == "conv1d_fx_x8wf32y8" for layer in runs[r]["layers"])
           for r in runs}
    assert f32["fx_compact_c1"] == 3 < f32["fx_default_c1"]  # the example's 3 depthwise convs
    assert compact["weight_bytes"] < default["weight_bytes"] <= 5 * compact["weight_bytes"]
    for r in (default, compact):
        assert r["weight_bytes"] == sum(layer["weight_bytes"] for layer in r["layers"])
