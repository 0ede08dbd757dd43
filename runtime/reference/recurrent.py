"""Bit-exact Python integer reference of the Rill int8 recurrent kernels (spec:
runtime/RECURRENT.md; C: runtime/c/gru.c, lstm.c, instantiated as rill_gru_s8 / rill_lstm_s8).

Same conventions as `kernels.py`: scalars are keyword-only and named like the C params struct
fields (`PARAMS_FIELDS`), arrays may be flat or shaped, `mode` is "half_even" | "half_up".
The input projection of all frames is one matrix product (it does not depend on the state);
the recurrence itself loops over frames and is vectorized over the hidden units.
"""
from __future__ import annotations

import numpy as np

from runtime.reference.kernels import round_shift

PARAMS_FIELDS: dict[str, tuple[str, ...]] = {
    "gru": ("input", "hidden", "linear_before_reset"),
    "lstm": ("input", "hidden", "shift_ig", "shift_tc"),
}

#: Largest input / hidden size: a dot product of n int8 pairs stays inside int32 for n <= this.
MAX_DOT = 131071
#: Alignment left shifts sx, sh are in [0, MAX_ALIGN] so that the int64 gate sums cannot overflow.
MAX_ALIGN = 23
MAX_SHIFT = 40
#: Fraction bits of a gate pre-activation below its table step (RILL_RNN_FRAC): the 256-entry
#: tables are linearly interpolated, so the output shifts so are in [FRAC, MAX_SHIFT].
FRAC = 8
SIGMOID_OFFSET = 64  # sigmoid tables store round(128*s) - 64, so that s = 1 (128) fits int8


def _int_array(a, size: int, lo: int, hi: int, what: str) -> np.ndarray:
    """Flat int64 copy of `a`, checked for size and value range (the C element type)."""
    arr = np.asarray(a)
    if arr.size != size:
        raise ValueError(f"{what}: expected {size} elements, got {arr.size}")
    v = arr.reshape(-1).astype(np.int64)
    if v.size and (v.min() < lo or v.max() > hi):
        raise ValueError(f"{what}: values outside [{lo}, {hi}]")
    return v


def _i8(a, size: int, what: str) -> np.ndarray:
    return _int_array(a, size, -128, 127, what)


def _check_dims(input: int, hidden: int, x, t: int | None, what: str) -> int:
    """Sizes the C kernels handle: dot products within int32 (MAX_DOT) and every array index,
    up to 4H*max(I, H) and t*max(I, H), below 2^31."""
    if not (1 <= input <= MAX_DOT and 1 <= hidden <= MAX_DOT):
        raise ValueError(f"{what}: input and hidden must be in [1, {MAX_DOT}]")
    size = np.asarray(x).size
    if t is None:
        if size % input:
            raise ValueError(f"{what}: x has {size} elements, not a multiple of input={input}")
        t = size // input
    if max(4 * hidden, int(t)) * max(input, hidden) >= 2**31:
        raise ValueError(f"{what}: arrays with 2^31 or more elements")
    return int(t)


def _split_shift(shift, rows: int, what: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """shift = [sx | sh | so] (each `rows` long), range-checked as the C code assumes."""
    s = _i8(shift, 3 * rows, f"{what} shift").reshape(3, rows)
    if s[:2].min() < 0 or s[:2].max() > MAX_ALIGN:
        raise ValueError(f"{what}: alignment shifts sx, sh must be in [0, {MAX_ALIGN}]")
    if s[2].min() < FRAC or s[2].max() > MAX_SHIFT:
        raise ValueError(f"{what}: output shifts so must be in [{FRAC}, {MAX_SHIFT}]")
    return s[0], s[1], s[2]


def _sat(v: np.ndarray, bits: int) -> np.ndarray:
    return np.clip(v, -(1 << (bits - 1)), (1 << (bits - 1)) - 1)


def _pre(acc_x, acc_h, bias, sx, sh, so, mode: str) -> np.ndarray:
    """Gate pre-activation with FRAC fraction bits below the table step (rill_rnn_pre)."""
    a = acc_x * (np.int64(1) << sx) + acc_h * (np.int64(1) << sh) + bias
    return _sat(round_shift(a, so - FRAC, mode), 16)


def lookup(table: np.ndarray, v: np.ndarray, mode: str) -> np.ndarray:
    """256-entry table at v / 2^FRAC, linearly interpolated (rill_rnn_lookup); v in int16."""
    table = np.asarray(table, np.int64)
    k = np.right_shift(v, FRAC)
    r = v - (k << FRAC)
    k1 = np.minimum(k + 1, 127)
    mix = table[k + 128] * ((1 << FRAC) - r) + table[k1 + 128] * r
    return round_shift(mix, FRAC, mode)


def _gates(table: np.ndarray, pre: np.ndarray, H: int, mode: str) -> np.ndarray:
    """Row j of the pre-activations through table j // H."""
    return np.concatenate([lookup(table[k * 256:(k + 1) * 256], pre[k * H:(k + 1) * H], mode)
                           for k in range(pre.size // H)])


def _gru_step(h, ax, p: dict, mode: str) -> np.ndarray:
    """One frame; ax = wx . x_t (int64 [3H]). Returns the new h."""
    H, wh, bias, table, lbr = (p[k] for k in ("H", "wh", "bias", "table", "lbr"))
    sx, sh, so = p["shift"]
    zr = slice(0, 2 * H)
    pre = _pre(ax[zr], wh[zr] @ h, bias[zr], sx[zr], sh[zr], so[zr], mode)
    g = _gates(table, pre, H, mode)
    z, r = g[:H] + SIGMOID_OFFSET, g[H:] + SIGMOID_OFFSET
    n_rows = slice(2 * H, 3 * H)
    hv = h if lbr else _sat(round_shift(r * h, 7, mode), 8)
    a_x = ax[n_rows] * (np.int64(1) << sx[n_rows]) + bias[n_rows]
    a_h = (wh[n_rows] @ hv) * (np.int64(1) << sh[n_rows]) + bias[3 * H:]
    m = r if lbr else np.int64(128)
    pre_n = _sat(round_shift(128 * a_x + m * a_h, so[n_rows] + 7 - FRAC, mode), 16)
    n = lookup(table[512:], pre_n, mode)
    return _sat(round_shift(z * h + (128 - z) * n, 7, mode), 8)


def gru_s8(x, h, *, input: int, hidden: int, linear_before_reset: int, wx, wh, bias, shift,
           table, mode: str, t: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """x [t][input], h [hidden] -> (y [t][hidden], h_next [hidden]), both int8.

    wx [3H][input], wh [3H][H] int8 (rows z, r, n), bias [4H] int32 (z, r, n_x, n_h),
    shift [3][3H] int8 (sx, sh, so), table [3][256] int8 (sigmoid z, sigmoid r, tanh n).
    """
    H, t = hidden, _check_dims(input, hidden, x, t, "gru_s8")
    if linear_before_reset not in (0, 1):
        raise ValueError("gru_s8: linear_before_reset must be 0 or 1")
    xf = _i8(x, t * input, "gru_s8 x").reshape(t, input)
    wxf = _i8(wx, 3 * H * input, "gru_s8 wx").reshape(3 * H, input)
    p = {"H": H, "lbr": linear_before_reset, "shift": _split_shift(shift, 3 * H, "gru_s8"),
         "wh": _i8(wh, 3 * H * H, "gru_s8 wh").reshape(3 * H, H),
         "bias": _int_array(bias, 4 * H, -(2**31), 2**31 - 1, "gru_s8 bias"),
         "table": _i8(table, 3 * 256, "gru_s8 table")}
    hs = _i8(h, H, "gru_s8 h")
    ax_all = xf @ wxf.T
    y = np.zeros((t, H), dtype=np.int8)
    for f in range(t):
        hs = _gru_step(hs, ax_all[f], p, mode)
        y[f] = hs
    return y, hs.astype(np.int8)


def _lstm_step(h, c, ax, p: dict, mode: str) -> tuple[np.ndarray, np.ndarray]:
    """One frame; ax = wx . x_t (int64 [4H]). Returns the new (h, c)."""
    H, wh, bias, (sx, sh, so), table = (p[k] for k in ("H", "wh", "bias", "shift", "table"))
    pre = _pre(ax, wh @ h, bias, sx, sh, so, mode)
    g = _gates(table, pre, H, mode)
    i, o, f = (g[k * H:(k + 1) * H] + SIGMOID_OFFSET for k in range(3))
    ig = i * g[3 * H:] * (np.int64(1) << np.int64(p["shift_ig"]))
    c = _sat(round_shift(f * c + ig, 7, mode), 16)
    tc = lookup(table[1024:], _sat(round_shift(c, p["shift_tc"], mode), 16), mode)
    h = _sat(round_shift(o * tc, 7, mode), 8)
    return h, c


def lstm_s8(x, h, c, *, input: int, hidden: int, shift_ig: int, shift_tc: int, wx, wh, bias,
            shift, table, mode: str, t: int | None = None
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x [t][input], h [H] int8, c [H] int16 -> (y [t][H] int8, h_next int8, c_next int16).

    wx [4H][input], wh [4H][H] int8 (ONNX rows i, o, f, c), bias [4H] int32, shift [3][4H] int8
    (sx, sh, so), table [5][256] int8 (sigmoid i, o, f; tanh g; tanh of the cell).
    """
    H, t = hidden, _check_dims(input, hidden, x, t, "lstm_s8")
    if not 0 <= shift_ig <= 16 or not -MAX_SHIFT <= shift_tc <= MAX_SHIFT:
        raise ValueError("lstm_s8: shift_ig must be in [0, 16] and shift_tc in [-40, 40]")
    xf = _i8(x, t * input, "lstm_s8 x").reshape(t, input)
    wxf = _i8(wx, 4 * H * input, "lstm_s8 wx").reshape(4 * H, input)
    p = {"H": H, "shift_ig": shift_ig, "shift_tc": shift_tc,
         "shift": _split_shift(shift, 4 * H, "lstm_s8"),
         "wh": _i8(wh, 4 * H * H, "lstm_s8 wh").reshape(4 * H, H),
         "bias": _int_array(bias, 4 * H, -(2**31), 2**31 - 1, "lstm_s8 bias"),
         "table": _i8(table, 5 * 256, "lstm_s8 table")}
    hs = _i8(h, H, "lstm_s8 h")
    cs = _int_array(c, H, -32768, 32767, "lstm_s8 c")
    ax_all = xf @ wxf.T
    y = np.zeros((t, H), dtype=np.int8)
    for f in range(t):
        hs, cs = _lstm_step(hs, cs, ax_all[f], p, mode)
        y[f] = hs
    return y, hs.astype(np.int8), cs.astype(np.int16)
