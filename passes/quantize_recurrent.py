"""Compile-time quantization of ONNX GRU / LSTM (one direction) for the int8 recurrent kernels.

`plan_gru` / `plan_lstm` quantize the weights per row and derive the integer biases, shifts and
interpolated sigmoid/tanh tables of runtime/RECURRENT.md. h and the output y are int8 at
exponent -7 (|h| < 1 always). The float recurrence over the calibration inputs gives the LSTM
cell exponent (c is int16) and, for the report, each gate's calibrated pre-activation peak.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from passes.quant_scheme import PowerOfTwoScheme
from runtime.reference.kernels import round_to_int
from runtime.reference.recurrent import FRAC, MAX_ALIGN, MAX_DOT, MAX_SHIFT, SIGMOID_OFFSET

E_H = -7                 # exponent of h, y and of every table output
#: Table input exponents: the 256 entries span the whole non-saturated range (sigmoid +-8,
#: tanh +-4; beyond it the rounded output no longer changes) and the kernel interpolates with
#: FRAC more bits, so a finer range gains nothing measurable and only risks clipping.
TABLE_EXP = {"sigmoid": -4, "tanh": -5}
CELL_EXPS = (-15, -7)    # LSTM c: int16 range from +-1 to +-256
I32_MAX = 2**31 - 1


@dataclass
class RecurrentPlan:
    """Everything the code generator needs for one rill_gru_s8 / rill_lstm_s8 step."""

    kind: str                          # "gru" | "lstm"
    params: dict[str, int]             # C params struct fields, in order
    arrays: dict[str, np.ndarray]      # wx, wh (int8), bias (int32), shift, table (int8)
    e_x: int                           # exponent of the int8 input
    e_h: int = E_H                     # exponent of h and of the output y
    gate_exps: dict[str, int] = field(default_factory=dict)  # table input exponent per gate
    calib_peak: dict[str, float] = field(default_factory=dict)  # max |pre-activation| per gate
    state: dict[str, tuple[str, int, int]] = field(default_factory=dict)  # name: dtype, n, exp
    scratch_bytes: int = 0             # int8 scratch the kernel needs per call
    e_c: int | None = None             # LSTM cell exponent (int16)
    c_dtype: str | None = None

    def quantize_state(self, h0: np.ndarray | None = None, c0: np.ndarray | None = None,
                       mode: str = "half_even") -> dict[str, np.ndarray]:
        """Initial state buffers (ONNX initial_h / initial_c, zeros when absent)."""
        out = {}
        for name, init in (("h", h0), ("c", c0)):
            if name not in self.state:
                continue
            dtype, n, e = self.state[name]
            v = np.zeros(n) if init is None else np.asarray(init, np.float64).reshape(n)
            info = np.iinfo(dtype)
            out[name] = np.clip(round_to_int(np.ldexp(v, -e), mode), info.min,
                                info.max).astype(dtype)
        return out


# ------------------------------------------------------------------------------ float models

def _sigmoid(v: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * v))  # no overflow warnings for large |v|


def _sequences(x_calib: np.ndarray, n_in: int, e_x: int, mode: str) -> np.ndarray:
    """[N, T, I] float64 as the kernel sees them (quantized at e_x)."""
    x = np.asarray(x_calib, np.float64)
    x = x[None] if x.ndim == 2 else x
    if x.ndim != 3 or x.shape[2] != n_in or x.shape[1] == 0 or not np.all(np.isfinite(x)):
        raise ValueError(f"x_calib must be finite [N, T, {n_in}], got shape {x.shape}")
    return np.clip(round_to_int(np.ldexp(x, -e_x), mode), -128, 127) * 2.0**e_x


def _peak(peaks: np.ndarray, *values: np.ndarray) -> np.ndarray:
    return np.maximum(peaks, [float(np.max(np.abs(v))) for v in values])


def _gru_float(x: np.ndarray, W, R, B, lbr: int) -> np.ndarray:
    """max |pre-activation| of gates z, r, n over all calibration frames (batched over N)."""
    H = R.shape[1]
    h = np.zeros((x.shape[0], H))
    peaks = np.zeros(3)
    for xt in x.transpose(1, 0, 2):
        gx = xt @ W.T + B[:3 * H]
        gh = h @ R.T + B[3 * H:]
        pz, pr = gx[:, :H] + gh[:, :H], gx[:, H:2 * H] + gh[:, H:2 * H]
        z, r = _sigmoid(pz), _sigmoid(pr)
        if lbr:
            pn = gx[:, 2 * H:] + r * gh[:, 2 * H:]
        else:
            pn = gx[:, 2 * H:] + (r * h) @ R[2 * H:].T + B[5 * H:]
        h = (1 - z) * np.tanh(pn) + z * h
        peaks = _peak(peaks, pz, pr, pn)
    return peaks


def _lstm_float(x: np.ndarray, W, R, B) -> np.ndarray:
    """max |pre-activation| of gates i, o, f, c and max |cell| over the calibration frames."""
    H = R.shape[1]
    h = np.zeros((x.shape[0], H))
    c = np.zeros_like(h)
    peaks = np.zeros(5)
    for xt in x.transpose(1, 0, 2):
        g = xt @ W.T + h @ R.T + B[:4 * H] + B[4 * H:]
        pi, po, pf, pc = (g[:, k * H:(k + 1) * H] for k in range(4))
        c = _sigmoid(pf) * c + _sigmoid(pi) * np.tanh(pc)
        h = _sigmoid(po) * np.tanh(c)
        peaks = _peak(peaks, pi, po, pf, pc, c)
    return peaks


# ------------------------------------------------------------------------------------ tables

def gate_table(kind: str, e_in: int, mode: str) -> np.ndarray:
    """256-entry int8 table at output exponent -7: sigmoid as round(128*s) - 64 (so that s = 1
    is exact and z = 1 holds the state without leaking), tanh clamped to +-127 (odd)."""
    v = np.ldexp(np.arange(-128, 128, dtype=np.float64), e_in)
    if kind == "sigmoid":
        return (round_to_int(128.0 * _sigmoid(v), mode) - SIGMOID_OFFSET).astype(np.int8)
    return np.clip(round_to_int(128.0 * np.tanh(v), mode), -127, 127).astype(np.int8)


# ------------------------------------------------------------------ weights, biases, shifts

def _row_exps(w: np.ndarray) -> np.ndarray:
    """Per-row int8 exponent (MSE-optimal power of two); all-zero rows get a sentinel."""
    scheme = PowerOfTwoScheme(8)
    return np.array([scheme.choose(row).exp if np.any(row) else 10**6 for row in w], np.int64)


def _bias_floor(b: np.ndarray) -> np.ndarray:
    """Per row, the smallest exponent at which |b| rounds into int32."""
    mag = np.abs(b)
    e = np.where(mag > 0, np.ceil(np.log2(np.maximum(mag, 1e-300) / I32_MAX)), -10**6)
    e = e.astype(np.int64)
    too_big = (mag > 0) & (np.rint(np.ldexp(mag, -np.clip(e, -1000, 1000))) > I32_MAX)
    return e + too_big  # float rounding of log2 at the boundary


def _quant(v: np.ndarray, e: np.ndarray, lo: int, hi: int, mode: str) -> np.ndarray:
    return np.clip(round_to_int(np.ldexp(v, -e), mode), lo, hi)


@dataclass
class _Rows:
    """Quantized gate rows: int8 weights, biases at the common exponent, shifts [sx, sh, so]."""

    wx: np.ndarray
    wh: np.ndarray
    biases: list[np.ndarray]
    shift: np.ndarray


def quantize_rows(W, R, biases: list[np.ndarray], e_pre: np.ndarray, e_x: int,
                  mode: str) -> _Rows:
    """Per row j: products x.W at p_x = e_w + e_x and h.R at p_h = e_r - 7 are summed at
    E = min(p_x, p_h, e_pre - FRAC) with left shifts sx, sh <= 23, then shifted by
    so = e_pre - E in [FRAC, 40]. A row whose products are far finer than that (or than a
    large bias allows) is requantized coarser: what it loses is below 2^-23 of the other
    term's step or 2^-40 of the table step."""
    p_x, p_h = _row_exps(W) + e_x, _row_exps(R) + E_H
    lo = np.maximum(e_pre - MAX_SHIFT, np.max([_bias_floor(b) for b in biases], axis=0))
    p_x = np.where(p_x > 10**5, np.minimum(p_h, e_pre - FRAC), p_x)  # zero rows: follow
    p_h = np.where(p_h > 10**5, np.minimum(p_x, e_pre - FRAC), p_h)
    p_x, p_h = np.maximum(p_x, lo), np.maximum(p_h, lo)
    p_h = np.maximum(p_h, p_x - MAX_ALIGN)
    p_x = np.maximum(p_x, p_h - MAX_ALIGN)
    E = np.minimum(np.minimum(p_x, p_h), e_pre - FRAC)
    if np.any(E < lo):
        raise ValueError("a gate bias is far larger than the gate's table range "
                         "(it does not fit int32 at the gate's accumulator exponent)")
    if np.any(np.maximum(p_x, p_h) - E > MAX_ALIGN):
        raise ValueError("gate weights times inputs are too large for the gate's table range")
    return _Rows(
        wx=_quant(W, (p_x - e_x)[:, None], -128, 127, mode).astype(np.int8),
        wh=_quant(R, (p_h - E_H)[:, None], -128, 127, mode).astype(np.int8),
        biases=[_quant(b, E, -I32_MAX - 1, I32_MAX, mode).astype(np.int32)
                for b in biases],
        shift=np.stack([p_x - E, p_h - E, e_pre - E]).astype(np.int8))


def _check_weights(W, R, B, gates: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    W = np.asarray(W, np.float64)
    R = np.asarray(R, np.float64)
    H = R.shape[-1]
    W, R = W.reshape(gates * H, -1), R.reshape(gates * H, H)
    B = np.zeros(2 * gates * H) if B is None else np.asarray(B, np.float64).reshape(-1)
    if B.size != 2 * gates * H:
        raise ValueError(f"B must have {2 * gates * H} elements")
    if not (1 <= W.shape[1] <= MAX_DOT and 1 <= H <= MAX_DOT):
        raise ValueError(f"input and hidden sizes must be in [1, {MAX_DOT}]")
    if not all(np.all(np.isfinite(a)) for a in (W, R, B)):
        raise ValueError("GRU/LSTM weights contain NaN or Inf")
    return W, R, B


# ------------------------------------------------------------------------------------ plans

def _gates(kinds: tuple[str, ...], H: int, mode: str) -> tuple[list[int], np.ndarray, np.ndarray]:
    """Per gate table exponents, the per-row exponent vector and the concatenated tables."""
    exps = [TABLE_EXP[k] for k in kinds]
    tables = np.concatenate([gate_table(k, e, mode) for k, e in zip(kinds, exps)])
    return exps, np.repeat(np.array(exps, np.int64), H), tables


def plan_gru(W, R, B, linear_before_reset: int, x_calib: np.ndarray, e_x: int,
             mode: str) -> RecurrentPlan:
    """Quantize one direction of an ONNX GRU: W [3H, I], R [3H, H], B [6H] (or None), gate
    rows z, r, h. Bias layout [4H]: z and r get Wb + Rb, n keeps Wb_n and Rb_n apart because
    linear_before_reset = 1 multiplies only the latter by r."""
    W, R, B = _check_weights(W, R, B, 3)
    H, I = R.shape[1], W.shape[1]
    lbr = int(bool(linear_before_reset))
    peaks = _gru_float(_sequences(x_calib, I, e_x, mode), W, R, B, lbr)
    exps, e_pre, table = _gates(("sigmoid", "sigmoid", "tanh"), H, mode)
    b_gate = B[:3 * H] + np.concatenate([B[3 * H:5 * H], np.zeros(H)])
    b_nh = np.concatenate([np.zeros(2 * H), B[5 * H:]])
    rows = quantize_rows(W, R, [b_gate, b_nh], e_pre, e_x, mode)
    bias = np.concatenate([rows.biases[0], rows.biases[1][2 * H:]]).astype(np.int32)
    return RecurrentPlan(
        kind="gru", params={"input": I, "hidden": H, "linear_before_reset": lbr},
        arrays={"wx": rows.wx, "wh": rows.wh, "bias": bias, "shift": rows.shift, "table": table},
        e_x=e_x, gate_exps=dict(zip("zrn", exps)), calib_peak=dict(zip("zrn", peaks.tolist())),
        state={"h": ("int8", H, E_H)}, scratch_bytes=3 * H)


def plan_lstm(W, R, B, x_calib: np.ndarray, e_x: int, mode: str, P=None) -> RecurrentPlan:
    """Quantize one direction of an ONNX LSTM: W [4H, I], R [4H, H], B [8H] (or None), gate
    rows i, o, f, c; peepholes P are not supported (must be absent or zero)."""
    if P is not None and np.any(np.asarray(P) != 0):
        raise ValueError("LSTM peepholes (input P) are not supported")
    W, R, B = _check_weights(W, R, B, 4)
    H, I = R.shape[1], W.shape[1]
    peaks = _lstm_float(_sequences(x_calib, I, e_x, mode), W, R, B)
    kinds = ("sigmoid", "sigmoid", "sigmoid", "tanh", "tanh")  # the last one: tanh(c)
    exps, e_pre, table = _gates(kinds, H, mode)
    e_c = cell_exp(float(peaks[4]))
    rows = quantize_rows(W, R, [B[:4 * H] + B[4 * H:]], e_pre[:4 * H], e_x, mode)
    names = ("i", "o", "f", "c", "cell")  # gate_exps["cell"]: input exponent of tanh(c)
    return RecurrentPlan(
        kind="lstm",
        params={"input": I, "hidden": H, "shift_ig": -7 - e_c, "shift_tc": exps[4] - FRAC - e_c},
        arrays={"wx": rows.wx, "wh": rows.wh, "bias": rows.biases[0], "shift": rows.shift,
                "table": table},
        e_x=e_x, gate_exps=dict(zip(names, exps)), calib_peak=dict(zip(names, peaks.tolist())),
        state={"h": ("int8", H, E_H), "c": ("int16", H, e_c)}, scratch_bytes=4 * H, e_c=e_c,
        c_dtype="int16")


def cell_exp(peak: float) -> int:
    """int16 exponent of the LSTM cell with 2x headroom over the calibration peak (the cell
    integrates over time, so held-out data can exceed it), within CELL_EXPS."""
    e = math.ceil(math.log2(2.0 * peak / 32767)) if peak > 0 else CELL_EXPS[0]
    return int(min(max(e, CELL_EXPS[0]), CELL_EXPS[1]))
