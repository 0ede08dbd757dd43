"""Compile-time quantization of ONNX GRU / LSTM (one direction) for the recurrent kernels.

`plan_gru` / `plan_lstm` quantize the weights per row and derive the integer biases, shifts and
interpolated sigmoid/tanh tables of runtime/RECURRENT.md for one kernel variant: x int8 or
int16 (at the input exponent), weights int8 or int16, h and the output y int8 at exponent -7 or
int16 at -15 (|h| < 1 always). The float recurrence over the calibration inputs gives the LSTM
cell exponent (c is int16 for int8 h, int32 for int16 h) and, for the report, each gate's
calibrated pre-activation peak. `layer_bits` reads a layer's widths from assign-precision.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from passes.observers import mse_exponent
from runtime.reference.kernels import round_to_int
from runtime.reference.recurrent import (MAX_ALIGN, MAX_DOT, MAX_SHIFT, Format, S8,
                                         check_terms)

E_H = -7                 # exponent of an int8 h, y and of every int8 gate value
#: Table input exponents, int8 h: the 256 entries span the whole non-saturated range (sigmoid
#: +-8, tanh +-4; beyond it the rounded output no longer changes) and the kernel interpolates
#: with FRAC more bits, so a finer range gains nothing measurable and only risks clipping.
TABLE_EXP = {"sigmoid": -4, "tanh": -5}
#: int16 h: 2048 entries span sigmoid +-16 and tanh +-8 (where they reach 1 within 2^-16);
#: interpolation between the int16 entries adds at most ~0.6 LSB to the rounding.
TABLE_EXP16 = {"sigmoid": -6, "tanh": -7}
#: int16-style rows sum at most GUARD bits below the pre-activation step: the rounding of each
#: dot product there is below 1/16 of that step, and the sums stay small.
GUARD = 4
CELL_EXPS = (-15, -7)    # int16 LSTM c: range from +-1 to +-256
CELL_EXPS32 = (-31, -15)  # int32 LSTM c (int16 h): shift_ig = -15 - e_c in [0, 16]
#: Cell range over the calibration peak: int16 cells trade range for resolution (2x); int32
#: cells afford 64x and still resolve 2^5 times finer than h for peaks up to 10.
CELL_HEADROOM = {16: 2.0, 32: 64.0}
I32_MAX = 2**31 - 1


def hidden_exp(bits: int) -> int:
    """The exponent of h, y and the gates: 1.0 is 2^(bits-1)."""
    return -(bits - 1)


@dataclass
class RecurrentPlan:
    """Everything the code generator needs for one rill_gru_* / rill_lstm_* step."""

    kind: str                          # "gru" | "lstm"
    params: dict[str, int]             # C params struct fields, in order
    arrays: dict[str, np.ndarray]      # wx, wh, bias (the accumulator type), shift, table
    e_x: int                           # exponent of the input
    e_h: int = E_H                     # exponent of h and of the output y
    gate_exps: dict[str, int] = field(default_factory=dict)  # table input exponent per gate
    calib_peak: dict[str, float] = field(default_factory=dict)  # max |pre-activation| per gate
    state: dict[str, tuple[str, int, int]] = field(default_factory=dict)  # name: dtype, n, exp
    scratch_bytes: int = 0             # scratch the kernel needs per call (gates, h's type)
    e_c: int | None = None             # LSTM cell exponent
    c_dtype: str | None = None         # "int16" (int8 h) | "int32" (int16 h)
    fmt: Format = S8                   # the variant: x, w, h and accumulator bits

    @property
    def h_dtype(self) -> str:
        return f"int{self.fmt.h}"

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


def layer_bits(node, tensor_bits: dict[str, int], weight_bits: dict[str, int],
               default: int) -> dict[str, int]:
    """x_bits, w_bits, h_bits of a GRU/LSTM node from assign-precision's facts: x from its
    input, h from Y / Y_h (one precision with the initial state), weights from the layer's
    entry (else h's)."""
    x = node.inputs[0].name
    hidden = [t.name for t in node.outputs[:2] if t.name]
    if len(node.inputs) > 5 and node.inputs[5].name:
        hidden.append(node.inputs[5].name)
    h = tensor_bits.get(hidden[0], default) if hidden else default
    return {"x_bits": tensor_bits.get(x, default), "w_bits": weight_bits.get(node.name, h),
            "h_bits": h}


# ------------------------------------------------------------------------------ float models

def _sigmoid(v: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * v))  # no overflow warnings for large |v|


def _sequences(x_calib: np.ndarray, n_in: int, e_x: int, mode: str, bits: int = 8) -> np.ndarray:
    """[N, T, I] float64 as the kernel sees them (quantized at e_x, `bits` wide)."""
    x = np.asarray(x_calib, np.float64)
    x = x[None] if x.ndim == 2 else x
    if x.ndim != 3 or x.shape[2] != n_in or x.shape[1] == 0 or not np.all(np.isfinite(x)):
        raise ValueError(f"x_calib must be finite [N, T, {n_in}], got shape {x.shape}")
    top = 1 << (bits - 1)
    return np.clip(round_to_int(np.ldexp(x, -e_x), mode), -top, top - 1) * 2.0**e_x


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

def gate_table(kind: str, e_in: int, mode: str, bits: int = 8) -> np.ndarray:
    """Gate table of h's type (`bits`) at output exponent -Q (1.0 = 2^Q): 2^TABLE_BITS entries
    at inputs q * 2^e_in for q from -2^(TABLE_BITS-1). Sigmoid as round(2^Q*s) - 2^(Q-1) (so
    that s = 1 is exact and z = 1 holds the state without leaking), tanh clamped to
    +-(2^Q - 1) (odd)."""
    fmt = Format(h=bits)
    half, one = 1 << (fmt.table_bits - 1), 1 << fmt.q
    v = np.ldexp(np.arange(-half, half, dtype=np.float64), e_in)
    dtype = np.int8 if bits == 8 else np.int16
    if kind == "sigmoid":
        return (round_to_int(one * _sigmoid(v), mode) - one // 2).astype(dtype)
    return np.clip(round_to_int(one * np.tanh(v), mode), 1 - one, one - 1).astype(dtype)


def _gates(kinds: tuple[str, ...], H: int, mode: str, bits: int
           ) -> tuple[list[int], np.ndarray, np.ndarray]:
    """Per gate table exponents, the per-row exponent vector and the table array: int8 h one
    table per gate (`kinds` in order), int16 h [sigmoid | tanh] shared by all gates."""
    exps = [(TABLE_EXP if bits == 8 else TABLE_EXP16)[k] for k in kinds]
    if bits == 8:
        tables = np.concatenate([gate_table(k, e, mode) for k, e in zip(kinds, exps)])
    else:
        tables = np.concatenate([gate_table(k, TABLE_EXP16[k], mode, 16)
                                 for k in ("sigmoid", "tanh")])
    return exps, np.repeat(np.array(exps, np.int64), H), tables


# ------------------------------------------------------------------ weights, biases, shifts

def _row_exps(w: np.ndarray, bits: int = 8) -> np.ndarray:
    """Per-row exponent at `bits` (MSE-optimal power of two); all-zero rows get a sentinel."""
    return np.array([mse_exponent(row, bits) if np.any(row) else 10**6 for row in w], np.int64)


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
    """Quantized gate rows: weights, biases at the common exponent (the accumulator's type),
    shifts [sx, sh, so] and the variant."""

    wx: np.ndarray
    wh: np.ndarray
    biases: list[np.ndarray]
    shift: np.ndarray
    fmt: Format = S8


def quantize_rows(W, R, biases: list[np.ndarray], e_pre: np.ndarray, e_x: int,
                  mode: str) -> _Rows:
    """The all-int8 variant. Per row j: products x.W at p_x = e_w + e_x and h.R at
    p_h = e_r - 7 are summed at E = min(p_x, p_h, e_pre - FRAC) with left shifts sx, sh <= 23,
    then shifted by so = e_pre - E in [FRAC, 40]. A row whose products are far finer than that
    (or than a large bias allows) is requantized coarser: what it loses is below 2^-23 of the
    other term's step or 2^-40 of the table step."""
    frac = S8.frac
    p_x, p_h = _row_exps(W) + e_x, _row_exps(R) + E_H
    lo = np.maximum(e_pre - MAX_SHIFT, np.max([_bias_floor(b) for b in biases], axis=0))
    p_x = np.where(p_x > 10**5, np.minimum(p_h, e_pre - frac), p_x)  # zero rows: follow
    p_h = np.where(p_h > 10**5, np.minimum(p_x, e_pre - frac), p_h)
    p_x, p_h = np.maximum(p_x, lo), np.maximum(p_h, lo)
    p_h = np.maximum(p_h, p_x - MAX_ALIGN)
    p_x = np.maximum(p_x, p_h - MAX_ALIGN)
    E = np.minimum(np.minimum(p_x, p_h), e_pre - frac)
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


def quantize_rows_wide(W, R, biases: list[np.ndarray], e_pre: np.ndarray, e_x: int, mode: str,
                       fmt: Format) -> _Rows:
    """Every variant with an int16 input, weight or h. Per row j the weights get their
    MSE-optimal exponent at fmt.w bits; the products x.W (at p_x = e_w + e_x) and h.R (at
    p_h = e_r - Q) are summed at E = min(p_x, p_h) clamped to [step - GUARD, step], step =
    e_pre - FRAC the pre-activation's resolution: a product finer than E is rounded to it (a
    negative shift; error below 2^-GUARD steps), a coarser one shifted left (at most 23). A row
    more than 40 bits finer than E is requantized coarser (each product then errs by at most
    2^(x_bits - 42) steps: negligible). The accumulator is int32 when the actual weights prove
    that neither dot product nor any bias can leave int32 (RECURRENT.md), else int64."""
    step = e_pre - fmt.frac
    p_x = _row_exps(W, fmt.w) + e_x
    p_h = _row_exps(R, fmt.w) - fmt.q
    finest = np.minimum(p_x, p_h)
    E = np.where(finest > 10**5, step, np.clip(finest, step - GUARD, step))
    p_x = np.where(p_x > 10**5, E, np.maximum(p_x, E - MAX_SHIFT))  # zero rows: shift 0
    p_h = np.where(p_h > 10**5, E, np.maximum(p_h, E - MAX_SHIFT))
    if np.any(np.maximum(p_x, p_h) - E > MAX_ALIGN):
        raise ValueError("gate weights times inputs are too large for the gate's table range")
    w_top = (1 << (fmt.w - 1)) - 1
    w_type = np.int8 if fmt.w == 8 else np.int16
    wx = _quant(W, (p_x - e_x)[:, None], -w_top - 1, w_top, mode).astype(w_type)
    wh = _quant(R, (p_h + fmt.q)[:, None], -w_top - 1, w_top, mode).astype(w_type)
    # (a bias beyond 2^62 fails the term bounds of _check_rows anyway)
    qb = [_quant(b, E, -2**62, 2**62, mode).astype(np.int64) for b in biases]
    dots = [np.abs(w.astype(np.int64)).sum(axis=1) << (bits - 1)
            for w, bits in ((wx, fmt.x), (wh, fmt.h))]
    narrow = max(int(np.max(d)) for d in dots) <= I32_MAX and \
        max(int(np.max(np.abs(b))) for b in qb) <= I32_MAX
    fmt = Format(x=fmt.x, w=fmt.w, h=fmt.h, acc=32 if narrow else 64)
    return _Rows(wx=wx, wh=wh, biases=[b.astype(np.int32 if narrow else np.int64) for b in qb],
                 shift=np.stack([p_x - E, p_h - E, e_pre - E]).astype(np.int8), fmt=fmt)


def _check_rows(rows: _Rows, b_x: np.ndarray, b_h: np.ndarray) -> None:
    """The kernel's overflow guarantees on the planned rows (a ValueError for the user)."""
    sx, sh, _ = rows.shift.astype(np.int64)
    try:
        check_terms(rows.wx.astype(np.int64), rows.fmt.x, sx, b_x.astype(np.int64), rows.fmt,
                    "x terms")
        check_terms(rows.wh.astype(np.int64), rows.fmt.h, sh, b_h.astype(np.int64), rows.fmt,
                    "h terms")
    except OverflowError:
        raise ValueError("gate weights times inputs (or a gate bias) are too large for the "
                         "gate's table range") from None


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


def _format(x_bits: int, w_bits: int, h_bits: int) -> Format:
    for name, b in (("x_bits", x_bits), ("w_bits", w_bits), ("h_bits", h_bits)):
        if b not in (8, 16):
            raise ValueError(f"{name} must be 8 or 16, got {b}")
    return Format(x=x_bits, w=w_bits, h=h_bits, acc=32 if x_bits == w_bits == h_bits == 8
                  else 64)


def _rows(W, R, biases, e_pre, e_x, mode, fmt: Format) -> _Rows:
    if fmt == S8:
        return quantize_rows(W, R, biases, e_pre, e_x, mode)
    return quantize_rows_wide(W, R, biases, e_pre, e_x, mode, fmt)


# ------------------------------------------------------------------------------------ plans

def plan_gru(W, R, B, linear_before_reset: int, x_calib: np.ndarray, e_x: int, mode: str, *,
             x_bits: int = 8, w_bits: int = 8, h_bits: int = 8) -> RecurrentPlan:
    """Quantize one direction of an ONNX GRU: W [3H, I], R [3H, H], B [6H] (or None), gate
    rows z, r, h. Bias layout [4H]: z and r get Wb + Rb, n keeps Wb_n and Rb_n apart because
    linear_before_reset = 1 multiplies only the latter by r."""
    fmt = _format(x_bits, w_bits, h_bits)
    W, R, B = _check_weights(W, R, B, 3)
    H, I = R.shape[1], W.shape[1]
    lbr = int(bool(linear_before_reset))
    peaks = _gru_float(_sequences(x_calib, I, e_x, mode, x_bits), W, R, B, lbr)
    exps, e_pre, table = _gates(("sigmoid", "sigmoid", "tanh"), H, mode, h_bits)
    b_gate = B[:3 * H] + np.concatenate([B[3 * H:5 * H], np.zeros(H)])
    b_nh = np.concatenate([np.zeros(2 * H), B[5 * H:]])
    rows = _rows(W, R, [b_gate, b_nh], e_pre, e_x, mode, fmt)
    _check_rows(rows, rows.biases[0], rows.biases[1])
    bias = np.concatenate([rows.biases[0], rows.biases[1][2 * H:]])
    e_h = hidden_exp(h_bits)
    return RecurrentPlan(
        kind="gru", params={"input": I, "hidden": H, "linear_before_reset": lbr},
        arrays={"wx": rows.wx, "wh": rows.wh, "bias": bias, "shift": rows.shift, "table": table},
        e_x=e_x, e_h=e_h, gate_exps=dict(zip("zrn", exps)),
        calib_peak=dict(zip("zrn", peaks.tolist())), state={"h": (f"int{h_bits}", H, e_h)},
        scratch_bytes=3 * H * h_bits // 8, fmt=rows.fmt)


def plan_lstm(W, R, B, x_calib: np.ndarray, e_x: int, mode: str, P=None, *, x_bits: int = 8,
              w_bits: int = 8, h_bits: int = 8) -> RecurrentPlan:
    """Quantize one direction of an ONNX LSTM: W [4H, I], R [4H, H], B [8H] (or None), gate
    rows i, o, f, c; peepholes P are not supported (must be absent or zero)."""
    if P is not None and np.any(np.asarray(P) != 0):
        raise ValueError("LSTM peepholes (input P) are not supported")
    fmt = _format(x_bits, w_bits, h_bits)
    W, R, B = _check_weights(W, R, B, 4)
    H, I = R.shape[1], W.shape[1]
    peaks = _lstm_float(_sequences(x_calib, I, e_x, mode, x_bits), W, R, B)
    kinds = ("sigmoid", "sigmoid", "sigmoid", "tanh", "tanh")  # the last one: tanh(c)
    exps, e_pre, table = _gates(kinds, H, mode, h_bits)
    c_bits = fmt.c_bits
    e_c = cell_exp(float(peaks[4]), c_bits)
    rows = _rows(W, R, [B[:4 * H] + B[4 * H:]], e_pre[:4 * H], e_x, mode, fmt)
    _check_rows(rows, rows.biases[0], np.zeros(4 * H, np.int64))
    names = ("i", "o", "f", "c", "cell")  # gate_exps["cell"]: input exponent of tanh(c)
    e_h = hidden_exp(h_bits)
    return RecurrentPlan(
        kind="lstm",
        params={"input": I, "hidden": H, "shift_ig": -fmt.q - e_c,
                "shift_tc": exps[4] - fmt.frac - e_c},
        arrays={"wx": rows.wx, "wh": rows.wh, "bias": rows.biases[0], "shift": rows.shift,
                "table": table},
        e_x=e_x, e_h=e_h, gate_exps=dict(zip(names, exps)),
        calib_peak=dict(zip(names, peaks.tolist())),
        state={"h": (f"int{h_bits}", H, e_h), "c": (f"int{c_bits}", H, e_c)},
        scratch_bytes=4 * H * h_bits // 8, e_c=e_c, c_dtype=f"int{c_bits}", fmt=rows.fmt)


def cell_exp(peak: float, bits: int = 16) -> int:
    """Exponent of the LSTM cell (`bits` 16 or 32) with CELL_HEADROOM over the calibration peak
    (the cell integrates over time, so held-out data can exceed it), within CELL_EXPS (int16)
    or CELL_EXPS32 (int32)."""
    lo, hi = CELL_EXPS if bits == 16 else CELL_EXPS32
    top = (1 << (bits - 1)) - 1
    e = math.ceil(math.log2(CELL_HEADROOM[bits] * peak / top)) if peak > 0 else lo
    return int(min(max(e, lo), hi))
