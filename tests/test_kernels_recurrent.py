"""The int8 GRU / LSTM kernels: C (runtime/c/gru.c, lstm.c, instantiated as rill_gru_s8 /
rill_lstm_s8) against the Python reference
(runtime/reference/recurrent.py) bit for bit in both rounding modes, the reference against a
literal reading of runtime/RECURRENT.md, streaming state carry, the planner
(passes/quantize_recurrent.py) and the end-to-end accuracy against onnxruntime's float GRU/LSTM.

The C side runs through tests/c/recurrent_driver.c, built once per session and rounding mode
(with AddressSanitizer + UBSan when available); each test batches its calls into one run.
"""
from __future__ import annotations

import math
import os
import re
import shutil
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from passes import quantize_recurrent as qr  # noqa: E402
from runtime.reference import recurrent as ref  # noqa: E402
from c_drivers import (MODES, STRICT, build_drivers, compile_c, exact_round,  # noqa: E402
                       record, run_records)
from codegen.kernel_library import (KernelTypes, instantiate, kernel_header,  # noqa: E402
                                    kernel_sources)
from runtime.reference.kernels import quantize  # noqa: E402

C_DIR = ROOT / "runtime" / "c"
DRIVER_SRC = ROOT / "tests" / "c" / "recurrent_driver.c"
SOURCES = [C_DIR / "gru.c", C_DIR / "lstm.c"]
S8 = KernelTypes(x=8, y=8, w=8, acc=32)
VARIANTS = [("gru", S8), ("lstm", S8)]
CC = os.environ.get("CC", "gcc")
OP = {"gru": 1, "lstm": 2}
I32 = (-(2**31), 2**31 - 1)

pytestmark = pytest.mark.skipif(shutil.which(CC) is None, reason=f"no C compiler ({CC})")


# --------------------------------------------------------------------------------- C driver

class Driver:
    """One compiled recurrent_driver; `run` sends a batch of calls through one process."""

    def __init__(self, exe: Path, mode: str):
        self.exe, self.mode = exe, mode

    def run(self, calls: list[tuple]) -> list[bytes]:
        """calls: (kind, params [int], arrays [ndarray], out_nbytes)."""
        records = [record(OP[kind], params, arrays) for kind, params, arrays, _ in calls]
        return run_records(self.exe, records, [n for *_, n in calls],
                           f"recurrent_driver ({self.mode})")


@pytest.fixture(scope="session")
def drivers(tmp_path_factory) -> dict[str, Driver]:
    build = tmp_path_factory.mktemp("recurrent_driver")
    exes = build_drivers(CC, build, DRIVER_SRC, VARIANTS, "recurrent_driver")
    return {mode: Driver(exe, mode) for mode, exe in exes.items()}


# ------------------------------------------------------------------------------- cases

def gru_case(p: dict, arrays: dict, x, h, mode: str, split: int | None = None,
             use_y: bool = True) -> tuple:
    """(C call, expected bytes) for one GRU call; the C side runs split + (t - split) frames."""
    t = x.shape[0]
    y, hn = ref.gru_s8(x, h, **p, **arrays, mode=mode)
    split = t // 2 if split is None else split
    params = [t, split, int(use_y), p["input"], p["hidden"], p["linear_before_reset"]]
    arrs = [x.astype(np.int8), arrays["wx"].astype(np.int8), arrays["wh"].astype(np.int8),
            arrays["bias"].astype(np.int32), arrays["shift"].astype(np.int8),
            arrays["table"].astype(np.int8), np.asarray(h, np.int8)]
    want = (y.tobytes() if use_y else b"") + hn.tobytes()
    return ("gru", params, arrs, len(want)), want


def lstm_case(p: dict, arrays: dict, x, h, c, mode: str, split: int | None = None,
              use_y: bool = True) -> tuple:
    t = x.shape[0]
    y, hn, cn = ref.lstm_s8(x, h, c, **p, **arrays, mode=mode)
    split = t // 2 if split is None else split
    params = [t, split, int(use_y), p["input"], p["hidden"], p["shift_ig"], p["shift_tc"]]
    arrs = [x.astype(np.int8), arrays["wx"].astype(np.int8), arrays["wh"].astype(np.int8),
            arrays["bias"].astype(np.int32), arrays["shift"].astype(np.int8),
            arrays["table"].astype(np.int8), np.asarray(h, np.int8), np.asarray(c, np.int16)]
    want = (y.tobytes() if use_y else b"") + hn.tobytes() + cn.astype("=i2").tobytes()
    return ("lstm", params, arrs, len(want)), want


def check(driver: Driver, cases: list[tuple[str, tuple, bytes]]) -> None:
    """cases: (description, call, expected bytes)."""
    outs = driver.run([c[1] for c in cases])
    for (desc, _, want), got in zip(cases, outs):
        if got != want:
            g, w = np.frombuffer(got, np.int8), np.frombuffer(want, np.int8)
            bad = np.flatnonzero(g != w)
            raise AssertionError(f"[{driver.mode}] {desc}: {bad.size} bytes differ, first at "
                                 f"{bad[0]}: C {g[bad[0]]} != reference {w[bad[0]]}")


def rand_i8(rng, shape, extreme=False) -> np.ndarray:
    if extreme:
        return rng.choice(np.array([-128, 127, -127, 0, 1, -1], np.int8), size=shape)
    return rng.integers(-128, 128, size=shape).astype(np.int8)


def random_arrays(rng, kind: str, I: int, H: int, extreme: bool) -> dict:
    """Arbitrary constants within the kernel's contract: any table contents, any int32 bias,
    sx, sh in [0, 23], so in [8, 40]. The shifts are random (mostly saturated gates: the
    edges), or set so that the pre-activations spread over the whole int16 table input, or
    minimal (so = 8: many rounding ties) with zigzag tables that turn every 1-LSB difference
    of a pre-activation into a different output."""
    rows, n_tab = (3 * H, 3) if kind == "gru" else (4 * H, 5)
    mag = int(rng.choice([2**8, 2**20, 2**31]))
    bias = rng.integers(max(-mag, I32[0]), min(mag, I32[1]), size=4 * H)
    sxh = rng.integers(0, 24, size=(2, rows)) if rng.integers(2) else rng.integers(0, 3, (2, rows))
    so = rng.integers(8, 41, size=rows)
    table = rand_i8(rng, n_tab * 256, extreme)
    style = int(rng.integers(3))
    if extreme:
        bias = rng.choice(np.array([I32[0], I32[1], 0, -1]), size=4 * H)
        sxh, so = rng.choice([0, 23], size=(2, rows)), rng.choice([8, 40], size=rows)
    elif style == 1:  # typical |a| = |acc| * 2^s with |acc| ~ 74^2 sqrt(n)
        typ = np.maximum(5476.0 * np.sqrt([[I], [H]]) * 2.0 ** sxh, np.abs(bias[:rows]))
        so = np.clip(np.log2(typ.max(axis=0)).round() - 6 + rng.integers(-2, 3, rows), 8, 40)
    elif style == 2:
        bias, sxh, so = rng.integers(-2**15, 2**15, 4 * H), np.zeros((2, rows)), np.full(rows, 8)
        table = np.tile(np.array([-128, 127], np.int8), n_tab * 128)
    return {"wx": rand_i8(rng, (rows, I), extreme), "wh": rand_i8(rng, (rows, H), extreme),
            "bias": bias.astype(np.int32),
            "shift": np.concatenate([sxh.reshape(-1), so]).astype(np.int8),
            "table": table}


def float_weights(rng, kind: str, I: int, H: int, scale: float = 1.0):
    """PyTorch-like init U(-1/sqrt(H), 1/sqrt(H)) for ONNX W, R, B of one direction."""
    g = 3 if kind == "gru" else 4
    k = scale / math.sqrt(H)
    return (rng.uniform(-k, k, (g * H, I)), rng.uniform(-k, k, (g * H, H)),
            rng.uniform(-k, k, 2 * g * H))


def planned(rng, kind: str, I: int, H: int, mode: str, lbr: int = 1, scale: float = 1.0,
            e_x: int = -5) -> qr.RecurrentPlan:
    W, R, B = float_weights(rng, kind, I, H, scale)
    calib = rng.standard_normal((4, 30, I)).astype(np.float32)
    if kind == "gru":
        return qr.plan_gru(W, R, B, lbr, calib, e_x, mode)
    return qr.plan_lstm(W, R, B, calib, e_x, mode)


def random_state(rng, H: int, extreme: bool) -> tuple[np.ndarray, np.ndarray]:
    c = rng.integers(-32768, 32768, size=H) if extreme else rng.integers(-3000, 3000, size=H)
    return rand_i8(rng, H, extreme), c.astype(np.int16)


# ------------------------------------------------------------------- C vs reference, GRU

@pytest.mark.parametrize("mode", MODES)
def test_gru_random(drivers, mode):
    cases = []
    for seed in range(200):
        rng = np.random.default_rng(100 + seed)
        I, H, t = int(rng.integers(1, 13)), int(rng.integers(1, 13)), int(rng.integers(0, 17))
        lbr = int(rng.integers(2))
        extreme = seed % 4 == 0
        if seed % 2:
            plan = planned(rng, "gru", I, H, mode, lbr, scale=float(rng.choice([0.3, 1, 4])))
            params, arrays = plan.params, plan.arrays
        else:
            params = {"input": I, "hidden": H, "linear_before_reset": lbr}
            arrays = random_arrays(rng, "gru", I, H, extreme)
        x = rand_i8(rng, (t, I), extreme)
        h = random_state(rng, H, extreme)[0]
        split = int(rng.integers(0, t + 1))
        call, want = gru_case(params, arrays, x, h, mode, split, use_y=seed % 7 != 3)
        cases.append((f"gru seed {seed} I={I} H={H} t={t} lbr={lbr}", call, want))
    check(drivers[mode], cases)


@pytest.mark.parametrize("mode", MODES)
def test_gru_edges(drivers, mode):
    """Largest int64 intermediates (all -128, sx = sh = 23, so = 8, int32 bias limits), tables
    at +-127/-128 (gates beyond [0, 1]), and a larger layer."""
    cases = []
    for lbr in (0, 1):
        for fill, b in ((-128, I32[1]), (-128, I32[0]), (127, I32[0]), (-128, 0)):
            I, H, t = 5, 4, 3
            rows = 3 * H
            arrays = {"wx": np.full((rows, I), fill, np.int8),
                      "wh": np.full((rows, H), -128, np.int8),
                      "bias": np.full(4 * H, b, np.int32),
                      "shift": np.concatenate([np.full(2 * rows, 23), np.full(rows, 8)]),
                      "table": np.tile(np.array([127, -128], np.int8), 384)}
            params = {"input": I, "hidden": H, "linear_before_reset": lbr}
            x, h = np.full((t, I), -128, np.int8), np.full(H, -128, np.int8)
            call, want = gru_case(params, arrays, x, h, mode)
            cases.append((f"gru edge lbr={lbr} fill={fill} b={b}", call, want))
    rng = np.random.default_rng(7)
    plan = planned(rng, "gru", 64, 48, mode)
    x = rand_i8(rng, (20, 64))
    call, want = gru_case(plan.params, plan.arrays, x, np.zeros(48, np.int8), mode, 7)
    cases.append(("gru I=64 H=48", call, want))
    check(drivers[mode], cases)


# ------------------------------------------------------------------ C vs reference, LSTM

@pytest.mark.parametrize("mode", MODES)
def test_lstm_random(drivers, mode):
    cases = []
    for seed in range(200):
        rng = np.random.default_rng(500 + seed)
        I, H, t = int(rng.integers(1, 13)), int(rng.integers(1, 13)), int(rng.integers(0, 17))
        extreme = seed % 4 == 0
        if seed % 2:
            plan = planned(rng, "lstm", I, H, mode, scale=float(rng.choice([0.3, 1, 4])))
            params, arrays = plan.params, plan.arrays
        else:
            params = {"input": I, "hidden": H, "shift_ig": int(rng.integers(0, 17)),
                      "shift_tc": int(rng.integers(-40, 41))}
            arrays = random_arrays(rng, "lstm", I, H, extreme)
        x = rand_i8(rng, (t, I), extreme)
        h, c = random_state(rng, H, extreme)
        split = int(rng.integers(0, t + 1))
        call, want = lstm_case(params, arrays, x, h, c, mode, split, use_y=seed % 7 != 3)
        cases.append((f"lstm seed {seed} I={I} H={H} t={t}", call, want))
    check(drivers[mode], cases)


@pytest.mark.parametrize("mode", MODES)
def test_lstm_edges(drivers, mode):
    cases = []
    I, H, t = 5, 4, 3
    rows = 4 * H
    for tab, c0, ig, tc in ((127, 32767, 16, -40), (-128, -32768, 16, 40), (127, -32768, 0, 0)):
        arrays = {"wx": np.full((rows, I), -128, np.int8), "wh": np.full((rows, H), -128, np.int8),
                  "bias": np.full(4 * H, I32[1], np.int32),
                  "shift": np.concatenate([np.full(2 * rows, 23), np.full(rows, 8)]),
                  "table": np.full(5 * 256, tab, np.int8)}
        params = {"input": I, "hidden": H, "shift_ig": ig, "shift_tc": tc}
        x, h = np.full((t, I), -128, np.int8), np.full(H, -128, np.int8)
        call, want = lstm_case(params, arrays, x, h, np.full(H, c0, np.int16), mode)
        cases.append((f"lstm edge table={tab} c={c0}", call, want))
    rng = np.random.default_rng(8)
    plan = planned(rng, "lstm", 64, 48, mode)
    call, want = lstm_case(plan.params, plan.arrays, rand_i8(rng, (20, 64)),
                           np.zeros(48, np.int8), np.zeros(48, np.int16), mode, 13)
    cases.append(("lstm I=64 H=48", call, want))
    check(drivers[mode], cases)


# ------------------------------------------------------------------------ streaming state

@pytest.mark.parametrize("mode", MODES)
def test_state_carried_across_calls(mode):
    """Two reference calls chained through the returned state equal one call over all frames
    (the C side runs every case split in two; the tests above compare it with one call)."""
    rng = np.random.default_rng(11)
    plan = planned(rng, "gru", 6, 5, mode, lbr=0)
    x = rand_i8(rng, (17, 6))
    h0 = plan.quantize_state()["h"]
    y, h = ref.gru_s8(x, h0, **plan.params, **plan.arrays, mode=mode)
    y1, h1 = ref.gru_s8(x[:9], h0, **plan.params, **plan.arrays, mode=mode)
    y2, h2 = ref.gru_s8(x[9:], h1, **plan.params, **plan.arrays, mode=mode)
    assert np.array_equal(np.concatenate([y1, y2]), y) and np.array_equal(h2, h)
    lp = planned(rng, "lstm", 6, 5, mode)
    s = lp.quantize_state()
    y, h, c = ref.lstm_s8(x, s["h"], s["c"], **lp.params, **lp.arrays, mode=mode)
    y1, h1, c1 = ref.lstm_s8(x[:4], s["h"], s["c"], **lp.params, **lp.arrays, mode=mode)
    y2, h2, c2 = ref.lstm_s8(x[4:], h1, c1, **lp.params, **lp.arrays, mode=mode)
    assert np.array_equal(np.concatenate([y1, y2]), y)
    assert np.array_equal(h2, h) and np.array_equal(c2, c)


# ---------------------------------------------------- reference vs the spec, read literally

def rs(x: int, s: int, mode: str) -> int:
    return exact_round(Fraction(x, 2**s), mode) if s > 0 else x * 2**-s


def sat(v: int, bits: int) -> int:
    return max(-(1 << (bits - 1)), min((1 << (bits - 1)) - 1, v))


def spec_lookup(table, v: int, mode: str) -> int:
    k = v // 256
    r = v - 256 * k
    k1 = min(k + 1, 127)
    return rs(int(table[k + 128]) * (256 - r) + int(table[k1 + 128]) * r, 8, mode)


def spec_pre(a: int, so: int, mode: str) -> int:
    return sat(rs(a, so - 8, mode), 16)


def spec_gru(x, h, p, a, mode):
    """RECURRENT.md's GRU, one scalar at a time with exact rationals."""
    H, lbr = p["hidden"], p["linear_before_reset"]
    wx, wh = a["wx"].astype(int).tolist(), a["wh"].astype(int).tolist()
    b, s = a["bias"].astype(int).tolist(), a["shift"].astype(int).reshape(-1).tolist()
    tab = np.asarray(a["table"]).reshape(-1)
    sx, sh, so = s[:3 * H], s[3 * H:6 * H], s[6 * H:]
    h, ys = [int(v) for v in h], []
    for xt in x.astype(int).tolist():
        dx = [sum(w * v for w, v in zip(wx[j], xt)) for j in range(3 * H)]
        g = []
        for j in range(2 * H):
            dh = sum(w * v for w, v in zip(wh[j], h))
            pre = spec_pre(dx[j] * 2**sx[j] + dh * 2**sh[j] + b[j], so[j], mode)
            g.append(spec_lookup(tab[(j // H) * 256:], pre, mode) + 64)
        z, r = g[:H], g[H:]
        hv = h if lbr else [sat(rs(r[k] * h[k], 7, mode), 8) for k in range(H)]
        n = []
        for u in range(H):
            j = 2 * H + u
            ax = dx[j] * 2**sx[j] + b[j]
            ah = sum(w * v for w, v in zip(wh[j], hv)) * 2**sh[j] + b[3 * H + u]
            pre = sat(rs(128 * ax + (r[u] if lbr else 128) * ah, so[j] - 1, mode), 16)
            n.append(spec_lookup(tab[512:], pre, mode))
        h = [sat(rs(z[u] * h[u] + (128 - z[u]) * n[u], 7, mode), 8) for u in range(H)]
        ys.append(h)
    return np.array(ys, np.int8).reshape(-1, H), np.array(h, np.int8)


def spec_lstm(x, h, c, p, a, mode):
    H = p["hidden"]
    wx, wh = a["wx"].astype(int).tolist(), a["wh"].astype(int).tolist()
    b, s = a["bias"].astype(int).tolist(), a["shift"].astype(int).reshape(-1).tolist()
    tab = np.asarray(a["table"]).reshape(-1)
    h, c, ys = [int(v) for v in h], [int(v) for v in c], []
    for xt in x.astype(int).tolist():
        g = []
        for j in range(4 * H):
            dx = sum(w * v for w, v in zip(wx[j], xt))
            dh = sum(w * v for w, v in zip(wh[j], h))
            pre = spec_pre(dx * 2**s[j] + dh * 2**s[4 * H + j] + b[j], s[8 * H + j], mode)
            g.append(spec_lookup(tab[(j // H) * 256:], pre, mode))
        for u in range(H):
            i, o, f = (g[k * H + u] + 64 for k in range(3))
            c[u] = sat(rs(f * c[u] + i * g[3 * H + u] * 2**p["shift_ig"], 7, mode), 16)
            v = sat(rs(c[u], p["shift_tc"], mode), 16)
            h[u] = sat(rs(o * spec_lookup(tab[1024:], v, mode), 7, mode), 8)
        ys.append(list(h))
    return np.array(ys, np.int8).reshape(-1, H), np.array(h, np.int8), np.array(c, np.int16)


@pytest.mark.parametrize("mode", MODES)
def test_reference_matches_spec_literally(mode):
    for seed in range(30):
        rng = np.random.default_rng(3000 + seed)
        I, H, t = int(rng.integers(1, 6)), int(rng.integers(1, 6)), int(rng.integers(1, 5))
        x = rand_i8(rng, (t, I), seed % 3 == 0)
        h, c = random_state(rng, H, seed % 3 == 0)
        if seed % 2:
            gp = planned(rng, "gru", I, H, mode, lbr=seed % 4 // 2)
            lp = planned(rng, "lstm", I, H, mode)
            g_params, g_arrays, l_params, l_arrays = gp.params, gp.arrays, lp.params, lp.arrays
        else:
            g_params = {"input": I, "hidden": H, "linear_before_reset": seed % 4 // 2}
            g_arrays = random_arrays(rng, "gru", I, H, seed % 3 == 0)
            l_params = {"input": I, "hidden": H, "shift_ig": int(rng.integers(0, 17)),
                        "shift_tc": int(rng.integers(-12, 20))}
            l_arrays = random_arrays(rng, "lstm", I, H, seed % 3 == 0)
        got = ref.gru_s8(x, h, **g_params, **g_arrays, mode=mode)
        for g, w in zip(got, spec_gru(x, h, g_params, g_arrays, mode)):
            assert np.array_equal(g, w), f"gru seed {seed}"
        got = ref.lstm_s8(x, h, c, **l_params, **l_arrays, mode=mode)
        for g, w in zip(got, spec_lstm(x, h, c, l_params, l_arrays, mode)):
            assert np.array_equal(g, w), f"lstm seed {seed}"


@pytest.mark.parametrize("mode", MODES)
def test_lookup_interpolates_exactly(mode):
    rng = np.random.default_rng(5)
    table = rand_i8(rng, 256)
    v = np.concatenate([np.arange(-32768, -32000), np.arange(-600, 600),
                        np.arange(32000, 32768), rng.integers(-32768, 32768, 2000)])
    want = [spec_lookup(table, int(k), mode) for k in v]
    assert ref.lookup(table, v, mode).tolist() == want


def test_reference_rejects_contract_violations():
    p = {"input": 2, "hidden": 2, "linear_before_reset": 1}
    a = random_arrays(np.random.default_rng(0), "gru", 2, 2, False)
    x, h = np.zeros((1, 2), np.int8), np.zeros(2, np.int8)
    ref.gru_s8(x, h, **p, **a, mode="half_up")
    for bad in ({"shift": np.where(np.arange(18) == 15, 7, a["shift"])},   # so < 8
                {"shift": np.where(np.arange(18) == 0, 24, a["shift"])},   # sx > 23
                {"bias": a["bias"][:-1]}, {"table": a["table"][:512]}):
        with pytest.raises(ValueError):
            ref.gru_s8(x, h, **p, **{**a, **bad}, mode="half_up")
    with pytest.raises(ValueError):
        ref.gru_s8(x, h, **{**p, "linear_before_reset": 2}, **a, mode="half_up")
    with pytest.raises(ValueError):
        ref.gru_s8(x, h, **p, **a, mode="half_down")


# ----------------------------------------------------------------------------------- planner

@pytest.mark.parametrize("mode", MODES)
def test_plan_contract(mode):
    """Planned constants stay inside the ranges the kernels (and their overflow proofs) rely
    on, and the sigmoid tables reach exactly 0 and 1 (a saturated z or f keeps the state)."""
    rng = np.random.default_rng(21)
    for kind in ("gru", "lstm"):
        for scale in (0.01, 1.0, 30.0):
            plan = planned(rng, kind, 7, 6, mode, scale=scale)
            s = plan.arrays["shift"].reshape(3, -1).astype(int)
            assert s[:2].min() >= 0 and s[:2].max() <= ref.MAX_ALIGN
            assert s[2].min() >= ref.FRAC and s[2].max() <= ref.MAX_SHIFT
            assert list(plan.params) == list(ref.PARAMS_FIELDS[kind])
            tab = plan.arrays["table"].astype(int).reshape(-1, 256)
            n_sig = 2 if kind == "gru" else 3
            assert tab[:n_sig].min() == -64 and tab[:n_sig].max() == 64
            assert np.all(np.diff(tab, axis=1) >= 0)                  # monotone
            tanh = tab[n_sig:]
            assert np.array_equal(tanh[:, 1:], -tanh[:, 1:][:, ::-1])  # odd
            assert plan.arrays["wx"].dtype == np.int8 and plan.arrays["bias"].dtype == np.int32
    lp = planned(rng, "lstm", 4, 3, mode)
    assert lp.state["c"][0] == "int16" and qr.CELL_EXPS[0] <= lp.e_c <= qr.CELL_EXPS[1]
    assert 0 <= lp.params["shift_ig"] <= 16


def test_plan_degenerate_weights():
    """All-zero weights and biases plan fine (the state then decays to the bias-free fixed
    point); huge biases against the pre-activation range are rejected, not wrapped."""
    H, I = 3, 2
    calib = np.zeros((1, 4, I), np.float32)
    plan = qr.plan_gru(np.zeros((3 * H, I)), np.zeros((3 * H, H)), None, 1, calib, -5, "half_up")
    _, h = ref.gru_s8(np.ones((3, I), np.int8), np.full(H, 100, np.int8), **plan.params,
                      **plan.arrays, mode="half_up")
    assert np.all(np.abs(h.astype(int)) < 100)    # z = 0.5, n = 0: halves every frame
    with pytest.raises(ValueError):
        qr.plan_gru(np.zeros((3 * H, I)), np.zeros((3 * H, H)), np.full(6 * H, 1e12), 1,
                    calib, -5, "half_up")
    with pytest.raises(ValueError):
        qr.plan_lstm(np.zeros((4 * H, I)), np.zeros((4 * H, H)), None, calib, -5, "half_up",
                     P=np.ones(3 * H))


# -------------------------------------------------------------- accuracy vs onnxruntime

def onnx_float(kind: str, W, R, B, x: np.ndarray, lbr: int) -> np.ndarray:
    """The float ONNX GRU/LSTM on x [T, I] through onnxruntime: Y [T, H]."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    T, I = x.shape
    H = R.shape[1]
    attrs = {"hidden_size": H, **({"linear_before_reset": lbr} if kind == "gru" else {})}
    node = helper.make_node(kind.upper(), ["X", "W", "R", "B"], ["Y"], **attrs)
    inits = [numpy_helper.from_array(a[None].astype(np.float32), n)
             for a, n in ((W, "W"), (R, "R"), (B, "B"))]
    graph = helper.make_graph([node], "rnn", [helper.make_tensor_value_info(
        "X", TensorProto.FLOAT, [T, 1, I])], [helper.make_tensor_value_info(
            "Y", TensorProto.FLOAT, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])
    return sess.run(None, {"X": x[:, None, :].astype(np.float32)})[0].reshape(T, H)


def snr_db(ref_y: np.ndarray, y: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(ref_y**2) / np.sum((ref_y - y) ** 2)))


ACCURACY_CASES = [("gru", 16, 24, 1), ("gru", 8, 8, 1), ("gru", 16, 24, 0), ("gru", 8, 8, 0),
                  ("lstm", 16, 24, 0), ("lstm", 8, 8, 0)]


@pytest.mark.parametrize("kind,I,H,lbr", ACCURACY_CASES)
def test_accuracy_vs_onnxruntime(drivers, kind, I, H, lbr):
    """int8 kernel (C, checked equal to the reference) vs the float ONNX op on the same float
    inputs: standard normal frames quantized at e_x = -5 (range +-4), 3 held-out sequences of
    300 frames, each fed as two streaming calls. Requires SNR >= 25 dB."""
    pytest.importorskip("onnxruntime")
    mode, e_x = "half_even", -5
    rng = np.random.default_rng(2024 + I + H + lbr)
    W, R, B = float_weights(rng, kind, I, H)
    calib = rng.standard_normal((32, 100, I)).astype(np.float32)
    plan = (qr.plan_gru(W, R, B, lbr, calib, e_x, mode) if kind == "gru"
            else qr.plan_lstm(W, R, B, calib, e_x, mode))
    refs, outs, cases = [], [], []
    for _ in range(3):
        x = rng.standard_normal((300, I)).astype(np.float32)
        xq = quantize(x, exp=e_x, mode=mode, out_bits=8)
        s = plan.quantize_state(mode=mode)
        if kind == "gru":
            y = ref.gru_s8(xq, s["h"], **plan.params, **plan.arrays, mode=mode)[0]
            call, want = gru_case(plan.params, plan.arrays, xq, s["h"], mode, 123)
        else:
            y = ref.lstm_s8(xq, s["h"], s["c"], **plan.params, **plan.arrays, mode=mode)[0]
            call, want = lstm_case(plan.params, plan.arrays, xq, s["h"], s["c"], mode, 123)
        cases.append((f"{kind} accuracy", call, want))
        refs.append(onnx_float(kind, W, R, B, x, lbr))
        outs.append(y.astype(np.float64) * 2.0**plan.e_h)
    check(drivers[mode], cases)
    snr = snr_db(np.concatenate(refs), np.concatenate(outs))
    print(f"{kind} I={I} H={H} lbr={lbr}: SNR {snr:.2f} dB")
    assert snr >= 25.0, f"{kind} I={I} H={H}: SNR {snr:.2f} dB < 25 dB"


# ------------------------------------------------------------------------- source hygiene

def _compilers() -> list[str]:
    return [cc for cc in dict.fromkeys([CC, "gcc", "clang"]) if shutil.which(cc)]


def test_sources_compile_strict(tmp_path):
    """The instantiated s8 kernels: -std=c99 -Wall -Wextra -Werror -pedantic plus -Wshadow
    -Wconversion, gcc and clang."""
    (tmp_path / "rill_generated.h").write_text(
        "#ifndef RILL_GENERATED_H\n#define RILL_GENERATED_H\n" + kernel_header("rill", VARIANTS)
        + "#endif\n")
    for src in SOURCES:
        assert src.read_text().startswith('#include "rill_kernels.h"\n'), src.name
    for family, types in VARIANTS:
        c = tmp_path / f"{family}.c"
        c.write_text('#include "rill_generated.h"\n' + instantiate(family, types))
        for cc in _compilers():
            for mode in (0, 1):
                proc = compile_c(cc, [*STRICT, "-Wshadow", "-Wconversion", "-O2",
                                     f"-DRILL_ROUNDING={mode}", f"-I{tmp_path}", "-c", str(c),
                                     "-o", str(tmp_path / f"{family}.o")], tmp_path)
                assert proc.returncode == 0, f"{cc} {family} ({mode}): {proc.stderr}"


def _amalgamation(prefix: str) -> str:
    """rill_common.h, the headers, the prototypes and the recurrent kernels in one file, renamed,
    the way the code generator assembles a component."""
    return kernel_header(prefix, VARIANTS) + kernel_sources(VARIANTS, prefix)


def test_prefix_hygiene():
    for path in [C_DIR / "rill_recurrent.h", *SOURCES]:
        text = path.read_text()
        assert not re.findall(r"[A-Za-z0-9_]+(?:rill_|RILL_)\w*", text), path.name
        for name in re.findall(r"^(?:static inline |static |)\w[\w ]*?\b(\w+)\s*\(", text,
                               flags=re.M):
            assert name.startswith("rill_"), f"{path.name}: {name} lacks the rill_ prefix"
            if path.suffix == ".c":  # one template, several instances: names carry VARIANT
                assert name.endswith("_VARIANT"), f"{path.name}: {name} lacks _VARIANT"


def test_amalgamation_renamed_and_m32(tmp_path):
    """Renamed amalgamation with -Wconversion (gcc and clang; -Wno-unused-function because
    only part of rill_common.h's helpers is used here), and the 32-bit int model."""
    src = tmp_path / "kws.c"
    src.write_text(_amalgamation("kws"))
    assert not re.search(r"rill_|RILL_(?!ROUNDING)", src.read_text())  # the build's macro stays
    for cc in _compilers():
        for mode in (0, 1):
            proc = compile_c(cc, [*STRICT, "-Wshadow", "-Wconversion", "-Wno-unused-function",
                                 f"-DRILL_ROUNDING={mode}", "-O2", "-c", str(src), "-o",
                                 str(tmp_path / "kws.o")], tmp_path)
            assert proc.returncode == 0, f"{cc}: {proc.stderr}"
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "math.h").write_text("float floorf(float);\nfloat ldexpf(float, int);\n")
    (shim / "string.h").write_text("#include <stddef.h>\nvoid *memset(void *, int, size_t);\n"
                                   "void *memcpy(void *, const void *, size_t);\n")
    m32 = tmp_path / "m32.c"
    m32.write_text(_amalgamation("rill"))
    probe = compile_c(CC, ["-m32", "-ffreestanding", "-c", "-x", "c", "/dev/null", "-o",
                          str(tmp_path / "p.o")], tmp_path)
    if probe.returncode != 0:
        pytest.skip("-m32 unavailable")
    for mode in (0, 1):
        proc = compile_c(CC, ["-m32", "-ffreestanding", "-isystem", str(shim), *STRICT,
                             "-Wno-unused-function", f"-DRILL_ROUNDING={mode}", "-c", str(m32),
                             "-o", str(tmp_path / "m.o")], tmp_path)
        assert proc.returncode == 0, proc.stderr
