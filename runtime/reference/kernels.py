"""Bit-exact Python integer reference of the Rill int8 kernels (spec: runtime/KERNELS.md).

Every function mirrors the C kernel of the same name with the `rill_` prefix dropped. Scalar
parameters are keyword-only and named exactly like the fields of the C params structs, so one
params dict can drive both (`PARAMS_FIELDS` lists the struct field order). Arrays use the
physical layouts of the spec (time-major); they may be passed flat or shaped. All arithmetic is
vectorized numpy int64; the results are int8 (float32 for `dequantize_s8_f32`) in the physical
output shape.

`mode` is the rounding mode, "half_even" or "half_up" (ties toward +inf), as in
`RILL_ROUNDING` 0 / 1.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

ROUNDING_MODES = ("half_even", "half_up")

#: The C params struct of each kernel, fields in declaration order (all int32; transpose packs
#: rank, in_shape[4], perm[4]).
PARAMS_FIELDS: dict[str, tuple[str, ...]] = {
    "conv1d_s8": ("t_in", "c_in", "c_out", "kernel", "stride", "dilation", "groups",
                  "pad_l", "pad_r", "act_min", "act_max"),
    "gemm_s8": ("m", "k", "n", "act_min", "act_max"),
    "add_s8": ("n", "shift_a", "shift_b", "shift_out", "act_min", "act_max"),
    "avgpool1d_s8": ("t_in", "channels", "kernel", "stride", "pad_l", "pad_r",
                     "count_include_pad", "shift"),
    "transpose_s8": ("rank", "in_shape", "perm"),
    "gru_s8": ("input", "hidden", "linear_before_reset"),  # + t and the arrays as arguments
    "lstm_s8": ("input", "hidden", "shift_ig", "shift_tc"),
    "maxpool1d_s8": ("t_in", "channels", "kernel", "stride", "dilation", "pad_l", "pad_r",
                     "pad_value", "shift"),
    "conv2d_s8": ("t_in", "f_in", "c_in", "c_out", "kernel_t", "kernel_f", "stride_t",
                  "stride_f", "dilation_t", "dilation_f", "groups", "pad_t_l", "pad_t_r",
                  "pad_f_l", "pad_f_r", "act_min", "act_max"),
    "reduce_s8": ("outer", "length", "inner", "op", "shift"),
    "softmax_s8": ("rows", "cols", "out_bits"),
    "conv_transpose1d_s8": ("t_in", "c_in", "c_out", "kernel", "stride", "dilation", "groups",
                            "pad_l", "pad_r", "output_padding", "act_min", "act_max"),
}

#: `op` codes of `reduce_s8` (RILL_REDUCE_MEAN / _MAX / _SUM in C).
REDUCE_MEAN, REDUCE_MAX, REDUCE_SUM = 0, 1, 2

_I32_MIN = -(2**31)
_I32_MAX = 2**31 - 1
_I64_MAX = 2**63 - 1


def _check_mode(mode: str) -> None:
    if mode not in ROUNDING_MODES:
        raise ValueError(f"rounding mode must be one of {ROUNDING_MODES}, got {mode!r}")


def _i64(a) -> np.ndarray:
    return np.asarray(a).astype(np.int64, copy=False)


def _flat_i8(a, size: int, what: str) -> np.ndarray:
    arr = np.asarray(a)
    if arr.size != size:
        raise ValueError(f"{what}: expected {size} elements, got {arr.size}")
    if arr.dtype != np.int8:
        v = arr.astype(np.int64)
        if v.size and (v.min() < -128 or v.max() > 127):
            raise ValueError(f"{what}: values outside the int8 range")
    return arr.reshape(-1).astype(np.int64)


def _check_n(n, size: int, what: str) -> None:
    if n is not None and int(n) != size:
        raise ValueError(f"{what}: n={n} but the input has {size} elements")


def _check_acc_i32(acc: np.ndarray, what: str) -> None:
    """The C kernels accumulate in int32; overflow there is UB, so make it loud here."""
    if acc.size and (acc.min() < _I32_MIN or acc.max() > _I32_MAX):
        raise OverflowError(f"{what}: int32 accumulator overflow (the compiler must prevent it)")


# ----------------------------------------------------------------------------- rounding helpers

def round_shift(x, s, mode: str) -> np.ndarray:
    """`x / 2^s` rounded with `mode`, exactly, for s > 0; `x * 2^-s` for s <= 0 (int64).

    `x` and `s` broadcast (e.g. a per-channel shift). s >= 64 gives 0, which is the exact rounded
    result for any int64 x (same as C). Left shifts must fit in int64 (OverflowError if not).
    """
    _check_mode(mode)
    x = _i64(x)
    s = _i64(s)
    x, s = np.broadcast_arrays(x, s)
    sr = np.clip(s, 1, 63)
    q = np.right_shift(x, sr)  # arithmetic shift: floor(x / 2^s)
    r = x.astype(np.uint64) & ((np.uint64(1) << sr.astype(np.uint64)) - np.uint64(1))
    half = np.uint64(1) << (sr - 1).astype(np.uint64)
    if mode == "half_up":
        up = r >= half
    else:
        up = (r > half) | ((r == half) & ((q & 1) == 1))
    right = q + up.astype(np.int64)
    lsh = np.clip(-s, 0, 62)
    neg = s <= 0
    if np.any(neg):  # in C this multiply must not overflow: make it loud here
        hi = np.right_shift(np.int64(_I64_MAX), lsh)
        lo = np.right_shift(np.int64(-_I64_MAX - 1), lsh)
        if np.any(neg & ((s < -62) | (x > hi) | (x < lo))):
            raise OverflowError("round_shift: x * 2^-s does not fit in int64")
    left = np.where(neg, x, 0) * np.left_shift(np.int64(1), lsh)
    out = np.where(s > 0, right, left)
    out = np.where(s > 63, np.int64(0), out)
    return out.astype(np.int64)


def round_div(n, d, mode: str) -> np.ndarray:
    """`n / d` rounded with `mode`, exactly, for int64 n and d > 0 (broadcasting)."""
    _check_mode(mode)
    n = _i64(n)
    d = _i64(d)
    if np.any(d <= 0):
        raise ValueError("round_div: d must be > 0")
    q, r = np.divmod(n, d)  # floor quotient, 0 <= r < d
    if mode == "half_up":
        up = r >= d - r
    else:
        up = (r > d - r) | ((r == d - r) & ((q & 1) == 1))
    return (q + up.astype(np.int64)).astype(np.int64)


def round_to_int(v, mode: str) -> np.ndarray:
    """Round float64 values to integers with `mode`, exactly (no double rounding).

    Returns float64 holding integral values; NaN and +-Inf pass through unchanged, so callers
    typically `np.clip(...)` and then `astype`. Used at compile time (e.g. for LUT tables).
    """
    _check_mode(mode)
    v = np.asarray(v, dtype=np.float64)
    return _round_float(v, mode)


def _round_float(v: np.ndarray, mode: str) -> np.ndarray:
    """Exact rounding in v's own float dtype: f = floor(v), r = v - f (exact where it matters)."""
    with np.errstate(invalid="ignore"):
        f = np.floor(v)
        r = v - f
        half = v.dtype.type(0.5)
        if mode == "half_up":
            up = r >= half
        else:
            odd = np.fmod(f, 2) != 0
            up = (r > half) | ((r == half) & odd)
        out = f + up.astype(v.dtype)
    return np.where(np.isfinite(v), out, v)


def _round_f32_sat8(v: np.ndarray, mode: str) -> np.ndarray:
    """float32 -> int8 as rill_round_f32_sat8: NaN -> 0, clamp to [-129, 128], round, sat8."""
    v = np.asarray(v, dtype=np.float32)
    v = np.where(np.isnan(v), np.float32(0), v)
    v = np.clip(v, np.float32(-129.0), np.float32(128.0)).astype(np.float32)
    q = _round_float(v, mode).astype(np.int64)
    return np.clip(q, -128, 127).astype(np.int8)


def _sat8_clamp(v: np.ndarray, act_min: int, act_max: int) -> np.ndarray:
    return np.clip(np.clip(v, -128, 127), act_min, act_max).astype(np.int8)


# ------------------------------------------------------------------------------------- kernels

def conv1d_s8(x, w, bias, shift, *, t_in: int, c_in: int, c_out: int, kernel: int, stride: int,
              dilation: int, groups: int, pad_l: int, pad_r: int, act_min: int, act_max: int,
              mode: str) -> np.ndarray:
    """x [t_in][c_in], w [c_out][kernel][c_in/groups], bias [c_out] int32, shift [c_out] int8
    -> y [t_out][c_out] int8."""
    _check_mode(mode)
    if groups <= 0 or c_in % groups or c_out % groups:
        raise ValueError("conv1d_s8: c_in and c_out must be multiples of groups")
    cg, og = c_in // groups, c_out // groups
    xf = _flat_i8(x, t_in * c_in, "conv1d_s8 x").reshape(t_in, c_in)
    wf = _flat_i8(w, c_out * kernel * cg, "conv1d_s8 w").reshape(groups, og, kernel, cg)
    b = _i64(bias).reshape(-1)
    sh = _i64(shift).reshape(-1)
    if b.size != c_out or sh.size != c_out:
        raise ValueError("conv1d_s8: bias and shift need c_out elements")
    t_out = (t_in + pad_l + pad_r - dilation * (kernel - 1) - 1) // stride + 1
    if t_out <= 0:
        return np.zeros((0, c_out), dtype=np.int8)
    xp = np.zeros((t_in + pad_l + pad_r, c_in), dtype=np.int64)
    xp[pad_l:pad_l + t_in] = xf
    base = np.arange(t_out) * stride
    acc = np.zeros((t_out, groups, og), dtype=np.int64)
    for k in range(kernel):
        xk = xp[base + k * dilation].reshape(t_out, groups, cg)
        acc += np.einsum("tgi,goi->tgo", xk, wf[:, :, k, :])
    acc = acc.reshape(t_out, c_out) + b[None, :]
    _check_acc_i32(acc, "conv1d_s8")
    y = round_shift(acc, sh[None, :], mode)
    return _sat8_clamp(y, act_min, act_max)


def gemm_s8(x, w, bias, shift, *, m: int, k: int, n: int, act_min: int, act_max: int,
            mode: str) -> np.ndarray:
    """x [m][k], w [n][k], bias [n] int32, shift [n] int8 -> y [m][n] int8."""
    _check_mode(mode)
    xf = _flat_i8(x, m * k, "gemm_s8 x").reshape(m, k)
    wf = _flat_i8(w, n * k, "gemm_s8 w").reshape(n, k)
    b = _i64(bias).reshape(-1)
    sh = _i64(shift).reshape(-1)
    if b.size != n or sh.size != n:
        raise ValueError("gemm_s8: bias and shift need n elements")
    acc = xf @ wf.T + b[None, :]
    _check_acc_i32(acc, "gemm_s8")
    y = round_shift(acc, sh[None, :], mode)
    return _sat8_clamp(y, act_min, act_max)


def add_s8(a, b, *, n: int, shift_a: int, shift_b: int, shift_out: int, act_min: int,
           act_max: int, mode: str) -> np.ndarray:
    """y[i] = clamp(sat8(round_shift(a[i]*2^shift_a + b[i]*2^shift_b, shift_out)))."""
    _check_mode(mode)
    if shift_a < 0 or shift_b < 0:
        raise ValueError("add_s8: shift_a and shift_b must be >= 0")
    af = _flat_i8(a, n, "add_s8 a")
    bf = _flat_i8(b, n, "add_s8 b")
    s = af * (np.int64(1) << np.int64(shift_a)) + bf * (np.int64(1) << np.int64(shift_b))
    return _sat8_clamp(round_shift(s, shift_out, mode), act_min, act_max)


def avgpool1d_s8(x, *, t_in: int, channels: int, kernel: int, stride: int, pad_l: int,
                 pad_r: int, count_include_pad: int, shift: int, mode: str) -> np.ndarray:
    """x [t_in][channels] -> y [t_out][channels]; shift = e_out - e_in.

    A window with no in-range frame and count_include_pad = 0 (count 0) gives 0.
    """
    _check_mode(mode)
    xf = _flat_i8(x, t_in * channels, "avgpool1d_s8 x").reshape(t_in, channels)
    t_out = (t_in + pad_l + pad_r - kernel) // stride + 1
    if t_out <= 0:
        return np.zeros((0, channels), dtype=np.int8)
    xp = np.zeros((t_in + pad_l + pad_r, channels), dtype=np.int64)
    xp[pad_l:pad_l + t_in] = xf
    valid = np.zeros(t_in + pad_l + pad_r, dtype=np.int64)
    valid[pad_l:pad_l + t_in] = 1
    base = np.arange(t_out) * stride
    total = np.zeros((t_out, channels), dtype=np.int64)
    frames = np.zeros(t_out, dtype=np.int64)
    for k in range(kernel):
        total += xp[base + k]
        frames += valid[base + k]
    count = np.full(t_out, kernel, dtype=np.int64) if count_include_pad else frames
    mul_n = np.int64(1) << np.int64(max(0, -shift))
    mul_d = np.int64(1) << np.int64(max(0, shift))
    d = np.maximum(count, 1) * mul_d
    y = round_div(total * mul_n, d[:, None], mode)
    y = np.where(count[:, None] == 0, 0, y)
    return np.clip(y, -128, 127).astype(np.int8)


def lut_s8(x, table, *, n: int | None = None) -> np.ndarray:
    """y[i] = table[x[i] + 128] (256-entry int8 table)."""
    xf = np.asarray(x)
    _check_n(n, xf.size, "lut_s8")
    t = np.asarray(table).reshape(-1)
    if t.size != 256:
        raise ValueError("lut_s8: table needs 256 entries")
    idx = _flat_i8(xf, xf.size, "lut_s8 x") + 128
    return t.astype(np.int8)[idx].reshape(xf.shape)


def requant_s8(x, *, shift: int, mode: str, n: int | None = None) -> np.ndarray:
    """y[i] = sat8(round_shift(x[i], shift))."""
    _check_mode(mode)
    xf = np.asarray(x)
    _check_n(n, xf.size, "requant_s8")
    y = round_shift(_flat_i8(xf, xf.size, "requant_s8 x"), shift, mode)
    return np.clip(y, -128, 127).astype(np.int8).reshape(xf.shape)


def transpose_s8(x, *, in_shape: Sequence[int], perm: Sequence[int],
                 rank: int | None = None) -> np.ndarray:
    """y = x.reshape(in_shape).transpose(perm), contiguous.

    `in_shape`/`perm` may have length `rank` or be padded to 4 like the C struct (then `rank`
    selects the leading entries).
    """
    if rank is None:
        rank = len(in_shape)
    in_shape = tuple(int(v) for v in list(in_shape)[:rank])
    perm = tuple(int(v) for v in list(perm)[:rank])
    if not 1 <= rank <= 4 or sorted(perm) != list(range(rank)):
        raise ValueError(f"transpose_s8: bad rank/perm {rank} {perm}")
    xf = np.asarray(x)
    size = int(np.prod(in_shape, dtype=np.int64))
    xf = _flat_i8(xf, size, "transpose_s8 x").astype(np.int8)
    return np.ascontiguousarray(xf.reshape(in_shape).transpose(perm))


def quantize_f32_s8(x, *, exp: int, mode: str, n: int | None = None) -> np.ndarray:
    """y[i] = sat8(round(x[i] * 2^-exp)): the product in float32 (as C: x * ldexpf(1, -exp)),
    NaN -> 0, rounded exactly with `mode`."""
    _check_mode(mode)
    xf = np.asarray(x, dtype=np.float32)
    _check_n(n, xf.size, "quantize_f32_s8")
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        scale = np.ldexp(np.float32(1.0), np.int32(-exp)).astype(np.float32)
        v = (xf * scale).astype(np.float32)
    return _round_f32_sat8(v, mode)


def dequantize_s8_f32(x, *, exp: int, n: int | None = None) -> np.ndarray:
    """y[i] = x[i] * 2^exp in float32 (as C: x * ldexpf(1, exp))."""
    xf = np.asarray(x)
    _check_n(n, xf.size, "dequantize_s8_f32")
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        scale = np.ldexp(np.float32(1.0), np.int32(exp)).astype(np.float32)
        return (xf.astype(np.float32) * scale).astype(np.float32)


# ------------------------------------------------------------------------ pooling, 2-D, misc

def _out_len(total: int, field: int, stride: int) -> int:
    """Output frames of a window of `field` frames sliding over `total` (padded) frames: the C
    kernels' floor division, 0 when the window does not fit at all."""
    span = total - field
    return span // stride + 1 if span >= 0 else 0


def _check_i8_scalar(v: int, what: str) -> None:
    if not -128 <= int(v) <= 127:
        raise ValueError(f"{what} must be an int8 value, got {v}")


def _check_groups(c_in: int, c_out: int, groups: int, what: str) -> None:
    if groups <= 0 or c_in % groups or c_out % groups:
        raise ValueError(f"{what}: c_in and c_out must be multiples of groups")


def _per_channel(bias, shift, c_out: int, what: str) -> tuple[np.ndarray, np.ndarray]:
    b, sh = _i64(bias).reshape(-1), _i64(shift).reshape(-1)
    if b.size != c_out or sh.size != c_out:
        raise ValueError(f"{what}: bias and shift need c_out elements")
    return b, sh


def maxpool1d_s8(x, *, t_in: int, channels: int, kernel: int, stride: int, dilation: int,
                 pad_l: int, pad_r: int, pad_value: int, shift: int, mode: str) -> np.ndarray:
    """x [t_in][channels] -> y [t_out][channels]: y = sat8(round_shift(window max, shift)).

    Padding frames read `pad_value` (not 0: -128 is ONNX's -inf padding in int8)."""
    _check_mode(mode)
    _check_i8_scalar(pad_value, "maxpool1d_s8 pad_value")
    xf = _flat_i8(x, t_in * channels, "maxpool1d_s8 x").reshape(t_in, channels)
    t_out = _out_len(t_in + pad_l + pad_r, dilation * (kernel - 1) + 1, stride)
    if t_out == 0:
        return np.zeros((0, channels), dtype=np.int8)
    xp = np.full((t_in + pad_l + pad_r, channels), pad_value, dtype=np.int64)
    xp[pad_l:pad_l + t_in] = xf
    taps = np.arange(t_out)[:, None] * stride + np.arange(kernel)[None, :] * dilation
    m = xp[taps].max(axis=1)  # [t_out, channels]
    return np.clip(round_shift(m, shift, mode), -128, 127).astype(np.int8)


def _conv2d_acc(x: np.ndarray, w: np.ndarray, *, groups: int, stride_t: int, stride_f: int,
                dilation_t: int, dilation_f: int, pad_t_l: int, pad_t_r: int, pad_f_l: int,
                pad_f_r: int) -> np.ndarray:
    """sum w*x of conv2d_s8 without bias: x [t_in][c_in][f_in], w [c_out][kt][kf][cg] ->
    [t_out][c_out][f_out] in x's dtype. Dtype-generic so that the tests can pin the index
    convention with float inputs against onnxruntime."""
    t_in, c_in, f_in = x.shape
    c_out, kernel_t, kernel_f, cg = w.shape
    og = c_out // groups
    t_out = _out_len(t_in + pad_t_l + pad_t_r, dilation_t * (kernel_t - 1) + 1, stride_t)
    f_out = _out_len(f_in + pad_f_l + pad_f_r, dilation_f * (kernel_f - 1) + 1, stride_f)
    acc = np.zeros((t_out, groups, og, f_out), dtype=x.dtype)
    if t_out == 0 or f_out == 0:
        return acc.reshape(t_out, c_out, f_out)
    xp = np.zeros((t_in + pad_t_l + pad_t_r, c_in, f_in + pad_f_l + pad_f_r), dtype=x.dtype)
    xp[pad_t_l:pad_t_l + t_in, :, pad_f_l:pad_f_l + f_in] = x
    wg = w.reshape(groups, og, kernel_t, kernel_f, cg)
    base_t, base_f = np.arange(t_out) * stride_t, np.arange(f_out) * stride_f
    for a in range(kernel_t):
        rows = xp[base_t + a * dilation_t]  # [t_out][c_in][f padded]
        for b in range(kernel_f):
            xk = rows[:, :, base_f + b * dilation_f].reshape(t_out, groups, cg, f_out)
            acc += np.einsum("tgif,goi->tgof", xk, wg[:, :, a, b, :])
    return acc.reshape(t_out, c_out, f_out)


def conv2d_s8(x, w, bias, shift, *, t_in: int, f_in: int, c_in: int, c_out: int, kernel_t: int,
              kernel_f: int, stride_t: int, stride_f: int, dilation_t: int, dilation_f: int,
              groups: int, pad_t_l: int, pad_t_r: int, pad_f_l: int, pad_f_r: int, act_min: int,
              act_max: int, mode: str) -> np.ndarray:
    """x [t_in][c_in][f_in], w [c_out][kernel_t][kernel_f][c_in/groups], bias [c_out] int32,
    shift [c_out] int8 -> y [t_out][c_out][f_out] int8 (conv1d with a frequency axis)."""
    _check_mode(mode)
    _check_groups(c_in, c_out, groups, "conv2d_s8")
    cg = c_in // groups
    xf = _flat_i8(x, t_in * c_in * f_in, "conv2d_s8 x").reshape(t_in, c_in, f_in)
    wf = _flat_i8(w, c_out * kernel_t * kernel_f * cg, "conv2d_s8 w").reshape(
        c_out, kernel_t, kernel_f, cg)
    b, sh = _per_channel(bias, shift, c_out, "conv2d_s8")
    acc = _conv2d_acc(xf, wf, groups=groups, stride_t=stride_t, stride_f=stride_f,
                      dilation_t=dilation_t, dilation_f=dilation_f, pad_t_l=pad_t_l,
                      pad_t_r=pad_t_r, pad_f_l=pad_f_l, pad_f_r=pad_f_r)
    acc = acc + b[None, :, None]
    _check_acc_i32(acc, "conv2d_s8")
    return _sat8_clamp(round_shift(acc, sh[None, :, None], mode), act_min, act_max)


def reduce_s8(x, *, outer: int, length: int, inner: int, op: int, shift: int,
              mode: str) -> np.ndarray:
    """x [outer][length][inner] -> y [outer][inner]: mean (op 0, avgpool's formula with
    count = length), max (op 1) or sum (op 2) over the middle axis; length 0 gives 0."""
    _check_mode(mode)
    if op not in (REDUCE_MEAN, REDUCE_MAX, REDUCE_SUM):
        raise ValueError(f"reduce_s8: op must be 0 (mean), 1 (max) or 2 (sum), got {op}")
    if length >= 2**24:
        raise OverflowError("reduce_s8: length >= 2^24 could overflow the int32 sum")
    xf = _flat_i8(x, outer * length * inner, "reduce_s8 x").reshape(outer, length, inner)
    if length == 0:
        return np.zeros((outer, inner), dtype=np.int8)
    if op == REDUCE_MAX:
        y = round_shift(xf.max(axis=1), shift, mode)
    elif op == REDUCE_SUM:
        y = round_shift(xf.sum(axis=1), shift, mode)
    else:
        den = length * 2 ** max(0, shift)
        if den > _I64_MAX:
            raise OverflowError("reduce_s8: length * 2^shift does not fit in int64")
        num = round_shift(xf.sum(axis=1), min(0, shift), mode)  # sum * 2^max(0,-shift), checked
        y = round_div(num, den, mode)
    return np.clip(y, -128, 127).astype(np.int8)


def softmax_table(exp_in: int, mode: str) -> np.ndarray:
    """int32[256] with table[k] = round(exp(-k * 2^exp_in) * 2^20): the exp of softmax_s8 for an
    input with exponent exp_in, where k = max - x is the distance below the row max.

    Compile-time only (float64 exp, rounded exactly with `round_to_int`); the C code gets the
    table as data, so C and Python read identical values whatever the host's libm does."""
    k = np.arange(256, dtype=np.float64)
    with np.errstate(over="ignore", under="ignore"):
        v = np.exp(np.ldexp(-k, exp_in)) * 2.0**20  # ldexp(-0, big) stays 0: table[0] = 2^20
    return round_to_int(v, mode).astype(np.int32)


def softmax_s8(x, table, *, rows: int, cols: int, out_bits: int, mode: str) -> np.ndarray:
    """x [rows][cols] -> y [rows][cols]: y[j] = sat8(round_div(e_j * 2^out_bits, sum e)) with
    e_j = table[max - x[j]]; a row whose sum is 0 gives 0."""
    _check_mode(mode)
    if not 0 <= out_bits <= 8:
        raise ValueError(f"softmax_s8: out_bits must be in [0, 8], got {out_bits}")
    t = _i64(table).reshape(-1)
    if t.size != 256 or t.min() < 0 or t.max() > 2**30:
        raise ValueError("softmax_s8: table needs 256 entries in [0, 2^30]")
    xf = _flat_i8(x, rows * cols, "softmax_s8 x").reshape(rows, cols)
    if cols == 0:
        return np.zeros((rows, 0), dtype=np.int8)
    e = t[xf.max(axis=1, keepdims=True) - xf]
    s = e.sum(axis=1, keepdims=True)
    y = round_div(e * (np.int64(1) << np.int64(out_bits)), np.maximum(s, 1), mode)
    return np.clip(np.where(s == 0, 0, y), -128, 127).astype(np.int8)


def mask_frames_s8(x, mask, *, frames: int, inner: int, pad: int) -> np.ndarray:
    """x [frames][inner], mask [frames] -> y[t][i] = x[t][i] if mask[t] != 0 else pad."""
    _check_i8_scalar(pad, "mask_frames_s8 pad")
    xf = _flat_i8(x, frames * inner, "mask_frames_s8 x").reshape(frames, inner)
    mk = _flat_i8(mask, frames, "mask_frames_s8 mask")
    return np.where(mk[:, None] != 0, xf, pad).astype(np.int8)


def _conv_transpose1d_acc(x: np.ndarray, w: np.ndarray, *, t_out: int, stride: int,
                          dilation: int, groups: int, pad_l: int) -> np.ndarray:
    """sum w*x of conv_transpose1d_s8 without bias: x [t_in][c_in], w [c_out][kernel][cg] ->
    [t_out][c_out] in x's dtype. Scatters every input frame to ti*stride + k*dilation on an
    unpadded axis, then crops pad_l frames. Dtype-generic so that the tests can pin the index
    convention with float inputs against onnxruntime."""
    t_in, c_in = x.shape
    c_out, kernel, cg = w.shape
    og = c_out // groups
    full = (t_in - 1) * stride + dilation * (kernel - 1) + 1 if t_in else 0
    buf = np.zeros((max(full, pad_l + t_out), groups, og), dtype=x.dtype)
    xg, wg = x.reshape(t_in, groups, cg), w.reshape(groups, og, kernel, cg)
    for k in range(kernel if t_in else 0):
        start = k * dilation
        buf[start:start + (t_in - 1) * stride + 1:stride] += np.einsum(
            "tgi,goi->tgo", xg, wg[:, :, k, :])
    return buf[pad_l:pad_l + t_out].reshape(t_out, c_out)


def conv_transpose1d_s8(x, w, bias, shift, *, t_in: int, c_in: int, c_out: int, kernel: int,
                        stride: int, dilation: int, groups: int, pad_l: int, pad_r: int,
                        output_padding: int, act_min: int, act_max: int,
                        mode: str) -> np.ndarray:
    """x [t_in][c_in], w [c_out][kernel][c_in/groups], bias [c_out] int32, shift [c_out] int8
    -> y [t_out][c_out] int8, t_out = (t_in-1)*stride - pads + dilation*(kernel-1) +
    output_padding + 1 (ONNX ConvTranspose)."""
    _check_mode(mode)
    _check_groups(c_in, c_out, groups, "conv_transpose1d_s8")
    if min(pad_l, pad_r, output_padding) < 0:
        raise ValueError("conv_transpose1d_s8: pads and output_padding must be >= 0")
    cg = c_in // groups
    xf = _flat_i8(x, t_in * c_in, "conv_transpose1d_s8 x").reshape(t_in, c_in)
    wf = _flat_i8(w, c_out * kernel * cg, "conv_transpose1d_s8 w").reshape(c_out, kernel, cg)
    b, sh = _per_channel(bias, shift, c_out, "conv_transpose1d_s8")
    t_out = max(0, (t_in - 1) * stride - pad_l - pad_r + dilation * (kernel - 1)
                + output_padding + 1)
    acc = _conv_transpose1d_acc(xf, wf, t_out=t_out, stride=stride, dilation=dilation,
                                groups=groups, pad_l=pad_l) + b[None, :]
    _check_acc_i32(acc, "conv_transpose1d_s8")
    return _sat8_clamp(round_shift(acc, sh[None, :], mode), act_min, act_max)
