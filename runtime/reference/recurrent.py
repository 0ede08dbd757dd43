"""Bit-exact Python integer reference of the Rill recurrent kernels (spec: runtime/RECURRENT.md;
C: runtime/c/gru.c, lstm.c, one template each, instantiated per type variant).

Same conventions as `kernels.py`: scalars are keyword-only and named like the C params struct
fields (`PARAMS_FIELDS`), arrays may be flat or shaped, `mode` is "half_even" | "half_up".
`gru` / `lstm` take the variant from the dtypes (x int8/int16, h int8/int16, weights int8/int16,
bias int32/int64 = the accumulator; table of h's type, LSTM cell int16 for int8 h and int32 for
int16 h); `gru_s8` / `lstm_s8` are the all-int8 variant for values of any integer dtype. The
input projection of all frames is one matrix product (it does not depend on the state); the
recurrence itself loops over frames and is vectorized over the hidden units.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from runtime.reference.kernels import round_shift

PARAMS_FIELDS: dict[str, tuple[str, ...]] = {
    "gru": ("input", "hidden", "linear_before_reset"),
    "lstm": ("input", "hidden", "shift_ig", "shift_tc"),
}

#: Largest input / hidden size: a dot product of n int8 pairs stays inside int32 for n <= this.
MAX_DOT = 131071
#: Alignment shifts sx, sh are in [-MAX_SHIFT, MAX_ALIGN]: a left shift of at most 23 (the int8
#: overflow proof), or a rounding right shift.
MAX_ALIGN = 23
MAX_SHIFT = 40
#: Fraction bits of an int8-h gate pre-activation below its table step (RILL_RNN_FRAC(8)): the
#: 256-entry tables are linearly interpolated, so the output shifts so are in [FRAC, MAX_SHIFT].
FRAC = 8
SIGMOID_OFFSET = 64  # int8 sigmoid tables store round(128*s) - 64, so that s = 1 (128) fits int8


@dataclass(frozen=True)
class Format:
    """The number formats of one kernel variant, in bits: input x, weights w, hidden h (= y and
    every gate value), accumulator acc (= the bias type). Q, the table geometry and the cell
    follow from h (RILL_RNN_Q / TABLE_BITS / FRAC in rill_recurrent.h)."""

    x: int = 8
    w: int = 8
    h: int = 8
    acc: int = 32

    @property
    def q(self) -> int:
        """h and the gates are at exponent -q: 1.0 = 2^q."""
        return self.h - 1

    @property
    def table_bits(self) -> int:
        return 8 if self.h == 8 else 11

    @property
    def frac(self) -> int:
        return 8 if self.h == 8 else 12

    @property
    def pre_bits(self) -> int:
        """A pre-activation is saturated to this many bits (the table's input range)."""
        return self.table_bits + self.frac

    @property
    def c_bits(self) -> int:
        return 2 * self.h

    @property
    def max_tc_left(self) -> int:
        """Largest left shift of the cell (-shift_tc) that fits int64."""
        return min(MAX_SHIFT, 63 - self.c_bits)

    @property
    def max_term(self) -> int:
        """Bound on |dot * 2^max(s, 0)| + |bias| of each gate term (the GRU candidate's
        2^Q*ax + m*ah must fit int64 with m < 1.5 * 2^Q)."""
        return 1 << (61 - self.q)

    def n_tables(self, kind: str) -> int:
        """int8 h: one table per gate (GRU 3, LSTM 5 with the cell); int16 h: sigmoid, tanh."""
        if self.h == 16:
            return 2
        return 3 if kind == "gru" else 5

    def table_offset(self, g: int, n_sigmoid: int) -> int:
        """rill_rnn_table_offset: where gate g's table starts."""
        n = 1 << self.table_bits
        if self.h == 8:
            return g * n
        return 0 if g < n_sigmoid else n


S8 = Format()


def _int_array(a, size: int, lo: int, hi: int, what: str) -> np.ndarray:
    """Flat int64 copy of `a`, checked for size and value range (the C element type)."""
    arr = np.asarray(a)
    if arr.size != size:
        raise ValueError(f"{what}: expected {size} elements, got {arr.size}")
    v = arr.reshape(-1).astype(np.int64)
    if v.size and (v.min() < lo or v.max() > hi):
        raise ValueError(f"{what}: values outside [{lo}, {hi}]")
    return v


def _bits_array(a, size: int, bits: int, what: str) -> np.ndarray:
    return _int_array(a, size, -(1 << (bits - 1)), (1 << (bits - 1)) - 1, what)


def _check_dims(input: int, hidden: int, x, t: int | None, what: str) -> int:
    """Sizes the C kernels handle: dot products within int32 for int8 (MAX_DOT) and every array
    index, up to 4H*max(I, H) and t*max(I, H), below 2^31."""
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


def _split_shift(shift, rows: int, what: str, fmt: Format
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """shift = [sx | sh | so] (each `rows` long), range-checked as the C code assumes."""
    s = _bits_array(shift, 3 * rows, 8, f"{what} shift").reshape(3, rows)
    if s[:2].min() < -MAX_SHIFT or s[:2].max() > MAX_ALIGN:
        raise ValueError(f"{what}: alignment shifts sx, sh must be in [-{MAX_SHIFT}, {MAX_ALIGN}]")
    if s[2].min() < fmt.frac or s[2].max() > MAX_SHIFT:
        raise ValueError(f"{what}: output shifts so must be in [{fmt.frac}, {MAX_SHIFT}]")
    return s[0], s[1], s[2]


def _sat(v: np.ndarray, bits: int) -> np.ndarray:
    return np.clip(v, -(1 << (bits - 1)), (1 << (bits - 1)) - 1)


def check_terms(w: np.ndarray, v_bits: int, s: np.ndarray, bias: np.ndarray, fmt: Format,
                 what: str) -> None:
    """The compiler's guarantees for one side (x or h) of every gate row (OverflowError where C
    would overflow): sum_k |w[j][k]| * 2^(v_bits - 1) fits the accumulator, and that bound
    times 2^max(s, 0) plus |bias| is at most `fmt.max_term`. Always true for the int8 variant
    within the dimension and shift limits."""
    dot = np.abs(w).sum(axis=1) << (v_bits - 1)  # <= 2^17 * 2^15 * 2^15: exact in int64
    if np.any(dot > (1 << (fmt.acc - 1)) - 1):
        raise OverflowError(f"{what}: a dot product could overflow the int{fmt.acc} accumulator")
    limit = fmt.max_term
    room = limit - np.abs(np.clip(bias, -limit - 1, limit + 1))  # no |int64 min| overflow
    if np.any(room < 0) or np.any(dot > np.right_shift(np.maximum(room, 0), np.maximum(s, 0))):
        raise OverflowError(f"{what}: |dot * 2^shift| + |bias| exceeds 2^{61 - fmt.q}")


def _pre(sum_, s, fmt: Format, mode: str) -> np.ndarray:
    """rill_rnn_pre: rounded by s, saturated to the table's input range."""
    return _sat(round_shift(sum_, s, mode), fmt.pre_bits)


def lookup(table: np.ndarray, v: np.ndarray, mode: str, fmt: Format = S8) -> np.ndarray:
    """A gate table at pre-activation v, linearly interpolated (rill_rnn_locate / interp)."""
    table = np.asarray(table, np.int64)
    half = 1 << (fmt.table_bits - 1)
    q = np.right_shift(v, fmt.frac)
    r = v - (q << fmt.frac)
    k1 = np.minimum(q + 1, half - 1)
    mix = table[q + half] * ((1 << fmt.frac) - r) + table[k1 + half] * r
    return round_shift(mix, fmt.frac, mode)


def _gates(table: np.ndarray, pre: np.ndarray, H: int, n_sigmoid: int, fmt: Format,
           mode: str) -> np.ndarray:
    """Row j of the pre-activations through gate j // H's table."""
    n = 1 << fmt.table_bits
    parts = []
    for g in range(pre.size // H):
        off = fmt.table_offset(g, n_sigmoid)
        parts.append(lookup(table[off:off + n], pre[g * H:(g + 1) * H], mode, fmt))
    return np.concatenate(parts)


def _align(dot: np.ndarray, s: np.ndarray, mode: str) -> np.ndarray:
    """dot * 2^s, a negative s rounding (round_shift(dot, -s))."""
    return round_shift(dot, -s, mode)


def _gru_step(h, dx, p: dict, mode: str) -> np.ndarray:
    """One frame; dx = wx . x_t (int64 [3H]). Returns the new h."""
    H, wh, bias, table, lbr, fmt = (p[k] for k in ("H", "wh", "bias", "table", "lbr", "fmt"))
    sx, sh, so = p["shift"]
    q, one = fmt.q, 1 << fmt.q
    zr = slice(0, 2 * H)
    s = _align(dx[zr], sx[zr], mode) + bias[zr] + _align(wh[zr] @ h, sh[zr], mode)
    g = _gates(table, _pre(s, so[zr] - fmt.frac, fmt, mode), H, 2, fmt, mode)
    z, r = g[:H] + one // 2, g[H:] + one // 2
    n_rows = slice(2 * H, 3 * H)
    hv = h if lbr else _sat(round_shift(r * h, q, mode), fmt.h)
    a_x = _align(dx[n_rows], sx[n_rows], mode) + bias[n_rows]
    a_h = _align(wh[n_rows] @ hv, sh[n_rows], mode) + bias[3 * H:]
    m = r if lbr else np.int64(one)
    pre_n = _pre(one * a_x + m * a_h, so[n_rows] + q - fmt.frac, fmt, mode)
    off = fmt.table_offset(2, 2)
    n = lookup(table[off:off + (1 << fmt.table_bits)], pre_n, mode, fmt)
    return _sat(round_shift(z * h + (one - z) * n, q, mode), fmt.h)


def _dtype(bits: int) -> type:
    return {8: np.int8, 16: np.int16, 32: np.int32, 64: np.int64}[bits]


def _weights(kind: str, fmt: Format, *, input: int, hidden: int, wx, wh, bias, shift, table,
             what: str) -> dict:
    """The constant arrays, checked against the variant's ranges and bounds."""
    H, rows = hidden, (3 if kind == "gru" else 4) * hidden
    wxf = _bits_array(wx, rows * input, fmt.w, f"{what} wx").reshape(rows, input)
    whf = _bits_array(wh, rows * H, fmt.w, f"{what} wh").reshape(rows, H)
    b = _bits_array(bias, 4 * H, fmt.acc, f"{what} bias")
    sx, sh, so = _split_shift(shift, rows, what, fmt)
    b_h = np.concatenate([np.zeros(2 * H, np.int64), b[3 * H:]]) if kind == "gru" \
        else np.zeros(rows, np.int64)
    check_terms(wxf, fmt.x, sx, b[:rows], fmt, f"{what} x terms")
    check_terms(whf, fmt.h, sh, b_h, fmt, f"{what} h terms")
    tab = _bits_array(table, fmt.n_tables(kind) << fmt.table_bits, fmt.h, f"{what} table")
    return {"wx": wxf, "wh": whf, "bias": b, "shift": (sx, sh, so), "table": tab, "H": H,
            "fmt": fmt}


def _format(x, h, wx, bias, c=None, what: str = "") -> Format:
    """The variant of `gru` / `lstm` from the arrays' dtypes."""
    bits = {}
    for name, a, allowed in (("x", x, (8, 16)), ("h", h, (8, 16)), ("wx", wx, (8, 16)),
                             ("bias", bias, (32, 64))):
        dt = np.asarray(a).dtype
        if dt.kind != "i" or dt.itemsize * 8 not in allowed:
            raise ValueError(f"{what}: {name} must be one of int{allowed} arrays, got {dt}")
        bits[name] = dt.itemsize * 8
    fmt = Format(x=bits["x"], w=bits["wx"], h=bits["h"], acc=bits["bias"])
    if c is not None and np.asarray(c).dtype != _dtype(fmt.c_bits):
        raise ValueError(f"{what}: c must be int{fmt.c_bits} for int{fmt.h} h")
    return fmt


def _gru(x, h, fmt: Format, *, input: int, hidden: int, linear_before_reset: int, wx, wh, bias,
         shift, table, mode: str, t: int | None, what: str) -> tuple[np.ndarray, np.ndarray]:
    H, t = hidden, _check_dims(input, hidden, x, t, what)
    if linear_before_reset not in (0, 1):
        raise ValueError(f"{what}: linear_before_reset must be 0 or 1")
    xf = _bits_array(x, t * input, fmt.x, f"{what} x").reshape(t, input)
    p = _weights("gru", fmt, input=input, hidden=H, wx=wx, wh=wh, bias=bias, shift=shift,
                 table=table, what=what)
    p["lbr"] = linear_before_reset
    hs = _bits_array(h, H, fmt.h, f"{what} h")
    dx_all = xf @ p["wx"].T
    y = np.zeros((t, H), dtype=_dtype(fmt.h))
    for f in range(t):
        hs = _gru_step(hs, dx_all[f], p, mode)
        y[f] = hs
    return y, hs.astype(_dtype(fmt.h))


def gru(x, h, *, input: int, hidden: int, linear_before_reset: int, wx, wh, bias, shift, table,
        mode: str, t: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """x [t][input], h [hidden] -> (y [t][hidden], h_next [hidden]) of h's type.

    wx [3H][input], wh [3H][H] (rows z, r, n), bias [4H] (z, r, n_x, n_h), shift [3][3H] int8
    (sx, sh, so), table: int8 h [3][256] (sigmoid z, sigmoid r, tanh n), int16 h [2][2048]
    (sigmoid, tanh). The variant comes from the dtypes (module docstring).
    """
    fmt = _format(x, h, wx, bias, what="gru")
    return _gru(x, h, fmt, input=input, hidden=hidden, linear_before_reset=linear_before_reset,
                wx=wx, wh=wh, bias=bias, shift=shift, table=table, mode=mode, t=t, what="gru")


def gru_s8(x, h, *, input: int, hidden: int, linear_before_reset: int, wx, wh, bias, shift,
           table, mode: str, t: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """`gru` of the all-int8 variant (int32 bias) for values of any integer dtype."""
    return _gru(x, h, S8, input=input, hidden=hidden, linear_before_reset=linear_before_reset,
                wx=wx, wh=wh, bias=bias, shift=shift, table=table, mode=mode, t=t,
                what="gru_s8")


def _lstm_step(h, c, dx, p: dict, mode: str) -> tuple[np.ndarray, np.ndarray]:
    """One frame; dx = wx . x_t (int64 [4H]). Returns the new (h, c)."""
    H, wh, bias, (sx, sh, so), table, fmt = (p[k] for k in ("H", "wh", "bias", "shift", "table",
                                                             "fmt"))
    q, half = fmt.q, 1 << (fmt.q - 1)
    s = _align(dx, sx, mode) + bias + _align(wh @ h, sh, mode)
    g = _gates(table, _pre(s, so - fmt.frac, fmt, mode), H, 3, fmt, mode)
    i, o, f = (g[k * H:(k + 1) * H] + half for k in range(3))
    ig = i * g[3 * H:] * (np.int64(1) << np.int64(p["shift_ig"]))
    c = _sat(round_shift(f * c + ig, q, mode), fmt.c_bits)
    off = fmt.table_offset(4, 3)
    tc = lookup(table[off:off + (1 << fmt.table_bits)], _pre(c, p["shift_tc"], fmt, mode),
                mode, fmt)
    h = _sat(round_shift(o * tc, q, mode), fmt.h)
    return h, c


def _lstm(x, h, c, fmt: Format, *, input: int, hidden: int, shift_ig: int, shift_tc: int, wx,
          wh, bias, shift, table, mode: str, t: int | None, what: str
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    H, t = hidden, _check_dims(input, hidden, x, t, what)
    if not 0 <= shift_ig <= 16 or not -fmt.max_tc_left <= shift_tc <= MAX_SHIFT:
        raise ValueError(f"{what}: shift_ig must be in [0, 16] and shift_tc in "
                         f"[-{fmt.max_tc_left}, {MAX_SHIFT}]")
    xf = _bits_array(x, t * input, fmt.x, f"{what} x").reshape(t, input)
    p = _weights("lstm", fmt, input=input, hidden=H, wx=wx, wh=wh, bias=bias, shift=shift,
                 table=table, what=what)
    p.update(shift_ig=shift_ig, shift_tc=shift_tc)
    hs = _bits_array(h, H, fmt.h, f"{what} h")
    cs = _bits_array(c, H, fmt.c_bits, f"{what} c")
    dx_all = xf @ p["wx"].T
    y = np.zeros((t, H), dtype=_dtype(fmt.h))
    for f in range(t):
        hs, cs = _lstm_step(hs, cs, dx_all[f], p, mode)
        y[f] = hs
    return y, hs.astype(_dtype(fmt.h)), cs.astype(_dtype(fmt.c_bits))


def lstm(x, h, c, *, input: int, hidden: int, shift_ig: int, shift_tc: int, wx, wh, bias, shift,
         table, mode: str, t: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x [t][input], h [H], c [H] -> (y [t][H], h_next, c_next), y and h of h's type, c int16
    for int8 h and int32 for int16 h.

    wx [4H][input], wh [4H][H] (ONNX rows i, o, f, c), bias [4H], shift [3][4H] int8 (sx, sh,
    so), table: int8 h [5][256] (sigmoid i, o, f; tanh g; tanh of the cell), int16 h [2][2048]
    (sigmoid, tanh). The variant comes from the dtypes (module docstring).
    """
    fmt = _format(x, h, wx, bias, c, what="lstm")
    return _lstm(x, h, c, fmt, input=input, hidden=hidden, shift_ig=shift_ig, shift_tc=shift_tc,
                 wx=wx, wh=wh, bias=bias, shift=shift, table=table, mode=mode, t=t, what="lstm")


def lstm_s8(x, h, c, *, input: int, hidden: int, shift_ig: int, shift_tc: int, wx, wh, bias,
            shift, table, mode: str, t: int | None = None
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`lstm` of the all-int8 variant (int16 cell, int32 bias) for values of any integer
    dtype."""
    return _lstm(x, h, c, S8, input=input, hidden=hidden, shift_ig=shift_ig, shift_tc=shift_tc,
                 wx=wx, wh=wh, bias=bias, shift=shift, table=table, mode=mode, t=t,
                 what="lstm_s8")
