"""Bit-exact Python integer reference of the Rill kernels (spec: runtime/KERNELS.md).

One function per kernel family, named like the family (`conv1d`, `gemm`, `add`, ...), mirroring
every C variant `rill_<family>_<variant>` of it. Scalar parameters are keyword-only and named
exactly like the fields of the family's C params struct, so one params dict drives both
(`PARAMS_FIELDS` lists the struct field order). Arrays use the physical layouts of the spec
(time-major); they may be passed flat or shaped.

Types: the numpy dtype of an input array (int8 / int16) gives its bits, the dtype of a bias
(int32 / int64) the accumulator's; `out_bits` (8 or 16, default: the input's bits) the output
type. The arithmetic is vectorized numpy int64; results are int8 / int16 (float32 for
`dequantize`) in the physical output shape. Where C would overflow (its accumulator, a left shift
out of int64) the reference raises `OverflowError`.

`mode` is the rounding mode, "half_even" or "half_up" (ties toward +inf), as in
`RILL_ROUNDING` 0 / 1.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

ROUNDING_MODES = ("half_even", "half_up")

#: The C params struct of each kernel family, fields in declaration order (all int32; list
#: fields such as transpose's in_shape[4], perm[4] have 4 entries). lut, requant and mask_frames take their scalars as
#: arguments (`n`, `frac_bits`, `shift`, `frames`, `inner`, `pad`).
PARAMS_FIELDS: dict[str, tuple[str, ...]] = {
    "conv1d": ("t_in", "c_in", "c_out", "kernel", "stride", "dilation", "groups",
               "pad_l", "pad_r", "act_min", "act_max"),
    "gemm": ("m", "k", "n", "act_min", "act_max"),
    "add": ("n", "shift_a", "shift_b", "shift_out", "act_min", "act_max"),
    "avgpool1d": ("t_in", "channels", "kernel", "stride", "pad_l", "pad_r",
                  "count_include_pad", "shift"),
    "transpose": ("rank", "in_shape", "perm"),
    "gru": ("input", "hidden", "linear_before_reset"),  # + t and the arrays as arguments
    "lstm": ("input", "hidden", "shift_ig", "shift_tc"),
    "maxpool1d": ("t_in", "channels", "kernel", "stride", "dilation", "pad_l", "pad_r",
                  "pad_value", "shift"),
    "conv2d": ("t_in", "f_in", "c_in", "c_out", "kernel_t", "kernel_f", "stride_t",
               "stride_f", "dilation_t", "dilation_f", "groups", "pad_t_l", "pad_t_r",
               "pad_f_l", "pad_f_r", "act_min", "act_max"),
    "reduce": ("outer", "length", "inner", "op", "shift"),
    "softmax": ("rows", "cols", "out_frac", "lo_bits", "hi_len", "scale_bits"),
    "matmul": ("batch0", "batch1", "m", "k", "n", "a_stride", "b_stride", "y_stride", "shift",
               "act_min", "act_max"),
    "layernorm": ("outer", "length", "inner", "z_frac", "eps_mant", "eps_shift"),
    "pad": ("mode", "value", "in_shape", "pad_lo", "pad_hi"),
    "binary": ("op", "shape", "a_stride", "b_stride", "shift_a", "shift_b", "shift_out",
               "act_min", "act_max"),
    "conv_transpose1d": ("t_in", "c_in", "c_out", "kernel", "stride", "dilation", "groups",
                         "pad_l", "pad_r", "output_padding", "act_min", "act_max"),
}

#: `op` codes of `reduce` (RILL_REDUCE_MEAN / _MAX / _SUM in C).
REDUCE_MEAN, REDUCE_MAX, REDUCE_SUM = 0, 1, 2

#: add's alignment shifts: |a * 2^shift_a| + |b * 2^shift_b| <= 2^63 for int16 a, b.
MAX_ALIGN_SHIFT = 47
#: softmax: the low part of the exp table covers d's low LO_BITS bits (256 entries).
SOFTMAX_LO_BITS = 8
#: softmax table scale: exp(0) = 2^SOFTMAX_SCALE[out_bits].
SOFTMAX_SCALE = {8: 20, 16: 24}

_DTYPES = {8: np.int8, 16: np.int16}
_I64_MAX = 2**63 - 1


def _check_mode(mode: str) -> None:
    if mode not in ROUNDING_MODES:
        raise ValueError(f"rounding mode must be one of {ROUNDING_MODES}, got {mode!r}")


def _i64(a) -> np.ndarray:
    return np.asarray(a).astype(np.int64, copy=False)


def _type_range(bits: int) -> tuple[int, int]:
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def _bits(a, what: str) -> int:
    """Bits of an activation or weight array: its dtype, int8 or int16."""
    dt = np.asarray(a).dtype
    if dt == np.int8:
        return 8
    if dt == np.int16:
        return 16
    raise TypeError(f"{what}: an int8 or int16 array expected (its dtype gives the bits), "
                    f"got {dt}")


def _values(a, size: int, what: str) -> tuple[np.ndarray, int]:
    """(flat int64 copy, bits) of an int8/int16 array of `size` elements."""
    bits = _bits(a, what)
    arr = np.asarray(a)
    if arr.size != size:
        raise ValueError(f"{what}: expected {size} elements, got {arr.size}")
    return arr.reshape(-1).astype(np.int64), bits


def _out_bits(out_bits: int | None, default: int, what: str) -> int:
    bits = default if out_bits is None else int(out_bits)
    if bits not in _DTYPES:
        raise ValueError(f"{what}: out_bits must be 8 or 16, got {out_bits}")
    return bits


def _check_n(n, size: int, what: str) -> None:
    if n is not None and int(n) != size:
        raise ValueError(f"{what}: n={n} but the input has {size} elements")


def _check_value(v: int, bits: int, what: str) -> None:
    lo, hi = _type_range(bits)
    if not lo <= int(v) <= hi:
        raise ValueError(f"{what} must be an int{bits} value, got {v}")


def _sat(v: np.ndarray, bits: int) -> np.ndarray:
    """sat_Y: clamp to the int`bits` range, as that dtype."""
    lo, hi = _type_range(bits)
    return np.clip(v, lo, hi).astype(_DTYPES[bits])


def _sat_act(v: np.ndarray, bits: int, act_min: int, act_max: int, what: str) -> np.ndarray:
    """clamp(sat_Y(v), act_min, act_max) for bounds inside the output range."""
    lo, hi = _type_range(bits)
    if not lo <= act_min <= act_max <= hi:
        raise ValueError(f"{what}: need {lo} <= act_min <= act_max <= {hi}, got "
                         f"[{act_min}, {act_max}]")
    return np.clip(v, act_min, act_max).astype(_DTYPES[bits])


def _bias(bias, c_out: int, what: str) -> tuple[np.ndarray, int]:
    """(flat int64 bias, accumulator bits): the bias dtype is the accumulator type."""
    if not isinstance(bias, np.ndarray) or bias.dtype not in (np.int32, np.int64):
        raise TypeError(f"{what}: the bias must be an int32 or int64 numpy array (its dtype is "
                        f"the accumulator type), got {type(bias).__name__} "
                        f"{getattr(bias, 'dtype', '')}")
    if bias.size != c_out:
        raise ValueError(f"{what}: bias needs {c_out} elements, got {bias.size}")
    return bias.reshape(-1).astype(np.int64), 8 * bias.dtype.itemsize


def _shift(shift, c_out: int, what: str) -> np.ndarray:
    sh = _i64(shift).reshape(-1)
    if sh.size != c_out:
        raise ValueError(f"{what}: shift needs {c_out} elements, got {sh.size}")
    if sh.size and (sh.min() < -128 or sh.max() > 127):
        raise ValueError(f"{what}: shifts are int8 values")
    return sh


def _accumulate(dot: Callable[[np.ndarray, np.ndarray], np.ndarray], x: np.ndarray,
                w: np.ndarray, b: np.ndarray, acc_bits: int,
                expand: Callable[[np.ndarray], np.ndarray], what: str) -> np.ndarray:
    """bias + dot(x, w) as C accumulates it: the bias and then one product after the other in
    the int`acc_bits` accumulator. Every partial sum is bounded by |bias| + sum |w*x|, so the
    reference raises OverflowError unless that fits (whatever the order of the sum).

    `dot` sums products of int64 arrays (exact: each |w*x| <= 2^30), `w` is [c_out][...],
    `expand` broadcasts a per-channel vector against dot's result."""
    limit = (1 << (acc_bits - 1)) - 1
    x_max = np.int64(np.abs(x).max()) if x.size else np.int64(0)
    w_sum = np.abs(w).reshape(b.size, -1).sum(axis=1)  # <= n * 2^15: exact
    room = np.int64(limit) - w_sum * x_max  # > 0 (products <= 2^30 each, n < 2^32)
    if np.any((b > room) | (b < -room)):  # the cheap bound |bias| + max|x| sum|w| fails
        b_abs = np.array([abs(v) for v in b.tolist()], dtype=object)
        mag = dot(np.abs(x), np.abs(w)).astype(object) + expand(b_abs)
        if mag.size and mag.max() > limit:
            raise OverflowError(f"{what}: the int{acc_bits} accumulator could overflow "
                                "(|bias| + sum |w*x| does not fit; the compiler must prevent it)")
    return dot(x, w) + expand(b)


# ----------------------------------------------------------------------------- rounding helpers

@dataclass
class _LayerOperands:
    """The checked operands of a weighted kernel (conv1d, conv2d, conv_transpose1d, gemm)."""

    x: np.ndarray  # int64, flat
    w: np.ndarray  # int64, in the kernel's weight shape
    bias: np.ndarray
    acc_bits: int
    shift: np.ndarray
    out_bits: int


def _layer_operands(x, w, bias, shift, x_size: int, w_shape: tuple[int, ...], c_out: int,
                    out_bits: int | None, what: str) -> _LayerOperands:
    xf, xb = _values(x, x_size, f"{what} x")
    wf, _ = _values(w, int(np.prod(w_shape)), f"{what} w")
    b, acc_bits = _bias(bias, c_out, what)
    return _LayerOperands(xf, wf.reshape(w_shape), b, acc_bits, _shift(shift, c_out, what),
                          _out_bits(out_bits, xb, what))


def round_shift(x, s, mode: str) -> np.ndarray:
    """`x / 2^s` rounded with `mode`, exactly, for s > 0; `x * 2^-s` for s <= 0 (int64).

    `x` and `s` broadcast (e.g. a per-channel shift). s >= 64 gives 0, which is the exact rounded
    result for any int64 x (same as C). Left shifts must fit in int64 (OverflowError if not).
    """
    _check_mode(mode)
    x = _i64(x)
    s = _i64(s)
    if s.size and 1 <= s.min() and s.max() <= 63:  # the common case: right shifts only
        return _round_right_shift(x, s, mode)
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


def _round_right_shift(x: np.ndarray, s: np.ndarray, mode: str) -> np.ndarray:
    """round_shift for 1 <= s <= 63: floor shift, then +1 when the dropped bits round up."""
    q = np.right_shift(x, s)
    r = x - np.left_shift(q, s)  # the dropped low bits, 0 <= r < 2^s (wraps exactly for s = 63)
    half = np.left_shift(np.int64(1), s - 1)
    if mode == "half_up":
        up = r >= half
    else:
        up = (r > half) | ((r == half) & ((q & 1) == 1))
    return np.asarray(q + up)


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


def _round_f32_sat(v, bits: int, mode: str) -> np.ndarray:
    """float32 -> int`bits` as rill_round_f32_sat: NaN -> 0, clamp to [lo - 1, hi + 1], round
    exactly, saturate."""
    lo, hi = _type_range(bits)
    v = np.asarray(v, dtype=np.float32)
    v = np.where(np.isnan(v), np.float32(0), v)
    v = np.clip(v, np.float32(lo - 1), np.float32(hi + 1)).astype(np.float32)
    return _sat(_round_float(v, mode).astype(np.int64), bits)


# ------------------------------------------------------------------------- weighted layers

def _conv_groups(c_in: int, c_out: int, groups: int, what: str) -> None:
    if groups <= 0 or c_in % groups or c_out % groups:
        raise ValueError(f"{what}: c_in and c_out must be multiples of groups")


def _out_len(total: int, field: int, stride: int) -> int:
    """Output frames of a window of `field` frames sliding over `total` (padded) frames: the C
    kernels' floor division, 0 when the window does not fit at all."""
    span = total - field
    return span // stride + 1 if span >= 0 else 0


def _conv1d_acc(x: np.ndarray, w: np.ndarray, *, t_out: int, stride: int, dilation: int,
                groups: int, pad_l: int, pad_r: int) -> np.ndarray:
    """sum w*x of conv1d without bias: x [t_in][c_in], w [c_out][kernel][cg] -> [t_out][c_out]
    in x's dtype."""
    t_in, c_in = x.shape
    c_out, kernel, cg = w.shape
    og = c_out // groups
    xp = np.zeros((t_in + pad_l + pad_r, c_in), dtype=x.dtype)
    xp[pad_l:pad_l + t_in] = x
    wg = w.reshape(groups, og, kernel, cg)
    base = np.arange(t_out) * stride
    acc = np.zeros((t_out, groups, og), dtype=x.dtype)
    for k in range(kernel):
        xk = xp[base + k * dilation].reshape(t_out, groups, cg)
        acc += np.einsum("tgi,goi->tgo", xk, wg[:, :, k, :])
    return acc.reshape(t_out, c_out)


def conv1d(x, w, bias, shift, *, t_in: int, c_in: int, c_out: int, kernel: int, stride: int,
           dilation: int, groups: int, pad_l: int, pad_r: int, act_min: int, act_max: int,
           mode: str, out_bits: int | None = None) -> np.ndarray:
    """x [t_in][c_in] int8/int16, w [c_out][kernel][c_in/groups] int8/int16, bias [c_out]
    int32/int64 (the accumulator), shift [c_out] -> y [t_out][c_out] of out_bits."""
    _check_mode(mode)
    _conv_groups(c_in, c_out, groups, "conv1d")
    cg = c_in // groups
    o = _layer_operands(x, w, bias, shift, t_in * c_in, (c_out, kernel, cg), c_out, out_bits,
                        "conv1d")
    t_out = _out_len(t_in + pad_l + pad_r, dilation * (kernel - 1) + 1, stride)
    if t_out == 0:
        return np.zeros((0, c_out), dtype=_DTYPES[o.out_bits])

    def dot(xv, wv):
        return _conv1d_acc(xv, wv, t_out=t_out, stride=stride, dilation=dilation, groups=groups,
                           pad_l=pad_l, pad_r=pad_r)

    acc = _accumulate(dot, o.x.reshape(t_in, c_in), o.w, o.bias, o.acc_bits,
                      lambda v: v[None, :], "conv1d")
    return _sat_act(round_shift(acc, o.shift[None, :], mode), o.out_bits, act_min, act_max,
                    "conv1d")


def gemm(x, w, bias, shift, *, m: int, k: int, n: int, act_min: int, act_max: int, mode: str,
         out_bits: int | None = None) -> np.ndarray:
    """x [m][k], w [n][k], bias [n] int32/int64, shift [n] -> y [m][n] of out_bits."""
    _check_mode(mode)
    o = _layer_operands(x, w, bias, shift, m * k, (n, k), n, out_bits, "gemm")
    acc = _accumulate(lambda xv, wv: xv @ wv.T, o.x.reshape(m, k), o.w, o.bias, o.acc_bits,
                      lambda v: v[None, :], "gemm")
    return _sat_act(round_shift(acc, o.shift[None, :], mode), o.out_bits, act_min, act_max,
                    "gemm")


def _conv2d_acc(x: np.ndarray, w: np.ndarray, *, groups: int, stride_t: int, stride_f: int,
                dilation_t: int, dilation_f: int, pad_t_l: int, pad_t_r: int, pad_f_l: int,
                pad_f_r: int) -> np.ndarray:
    """sum w*x of conv2d without bias: x [t_in][c_in][f_in], w [c_out][kt][kf][cg] ->
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


def conv2d(x, w, bias, shift, *, t_in: int, f_in: int, c_in: int, c_out: int, kernel_t: int,
           kernel_f: int, stride_t: int, stride_f: int, dilation_t: int, dilation_f: int,
           groups: int, pad_t_l: int, pad_t_r: int, pad_f_l: int, pad_f_r: int, act_min: int,
           act_max: int, mode: str, out_bits: int | None = None) -> np.ndarray:
    """x [t_in][c_in][f_in], w [c_out][kernel_t][kernel_f][c_in/groups], bias [c_out]
    int32/int64, shift [c_out] -> y [t_out][c_out][f_out] of out_bits (conv1d with a frequency
    axis)."""
    _check_mode(mode)
    _conv_groups(c_in, c_out, groups, "conv2d")
    cg = c_in // groups
    o = _layer_operands(x, w, bias, shift, t_in * c_in * f_in, (c_out, kernel_t, kernel_f, cg),
                        c_out, out_bits, "conv2d")

    def dot(xv, wv):
        return _conv2d_acc(xv, wv, groups=groups, stride_t=stride_t, stride_f=stride_f,
                           dilation_t=dilation_t, dilation_f=dilation_f, pad_t_l=pad_t_l,
                           pad_t_r=pad_t_r, pad_f_l=pad_f_l, pad_f_r=pad_f_r)

    acc = _accumulate(dot, o.x.reshape(t_in, c_in, f_in), o.w, o.bias, o.acc_bits,
                      lambda v: v[None, :, None], "conv2d")
    return _sat_act(round_shift(acc, o.shift[None, :, None], mode), o.out_bits, act_min, act_max,
                    "conv2d")


def _conv_transpose1d_acc(x: np.ndarray, w: np.ndarray, *, t_out: int, stride: int,
                          dilation: int, groups: int, pad_l: int) -> np.ndarray:
    """sum w*x of conv_transpose1d without bias: x [t_in][c_in], w [c_out][kernel][cg] ->
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


def conv_transpose1d(x, w, bias, shift, *, t_in: int, c_in: int, c_out: int, kernel: int,
                     stride: int, dilation: int, groups: int, pad_l: int, pad_r: int,
                     output_padding: int, act_min: int, act_max: int, mode: str,
                     out_bits: int | None = None) -> np.ndarray:
    """x [t_in][c_in], w [c_out][kernel][c_in/groups], bias [c_out] int32/int64, shift [c_out]
    -> y [t_out][c_out] of out_bits, t_out = (t_in-1)*stride - pads + dilation*(kernel-1) +
    output_padding + 1 (ONNX ConvTranspose)."""
    _check_mode(mode)
    _conv_groups(c_in, c_out, groups, "conv_transpose1d")
    if min(pad_l, pad_r, output_padding) < 0:
        raise ValueError("conv_transpose1d: pads and output_padding must be >= 0")
    cg = c_in // groups
    o = _layer_operands(x, w, bias, shift, t_in * c_in, (c_out, kernel, cg), c_out, out_bits,
                        "conv_transpose1d")
    t_out = max(0, (t_in - 1) * stride - pad_l - pad_r + dilation * (kernel - 1)
                + output_padding + 1)

    def dot(xv, wv):
        return _conv_transpose1d_acc(xv, wv, t_out=t_out, stride=stride, dilation=dilation,
                                     groups=groups, pad_l=pad_l)

    acc = _accumulate(dot, o.x.reshape(t_in, c_in), o.w, o.bias, o.acc_bits,
                      lambda v: v[None, :], "conv_transpose1d")
    return _sat_act(round_shift(acc, o.shift[None, :], mode), o.out_bits, act_min, act_max,
                    "conv_transpose1d")


# ---------------------------------------------------------------------------- elementwise

def add(a, b, *, n: int, shift_a: int, shift_b: int, shift_out: int, act_min: int,
        act_max: int, mode: str, out_bits: int | None = None) -> np.ndarray:
    """y[i] = clamp(sat_Y(round_shift(a[i]*2^shift_a + b[i]*2^shift_b, shift_out))); a and b
    int8/int16 (independently), shift_a, shift_b in [0, MAX_ALIGN_SHIFT]; out_bits defaults to
    a's bits."""
    _check_mode(mode)
    for s in (shift_a, shift_b):
        if not 0 <= s <= MAX_ALIGN_SHIFT:
            raise ValueError(f"add: shift_a and shift_b must be in [0, {MAX_ALIGN_SHIFT}]")
    af, ab = _values(a, n, "add a")
    bf, _ = _values(b, n, "add b")
    ob = _out_bits(out_bits, ab, "add")
    s = af * (np.int64(1) << np.int64(shift_a)) + bf * (np.int64(1) << np.int64(shift_b))
    return _sat_act(round_shift(s, shift_out, mode), ob, act_min, act_max, "add")


def lut(x, table, *, mode: str, frac_bits: int = 0, n: int | None = None,
        out_bits: int | None = None) -> np.ndarray:
    """Elementwise table lookup; y has x's shape.

    int8 x: `table` has 256 entries of the output type (an int8 / int16 array),
    y = table[x + 128] (frac_bits 0). int16 x: `table` is int32 [2^(16 - frac_bits) + 1]
    (frac_bits in [0, 16]), u = x + 32768, k = u >> frac_bits, f = u & (2^frac_bits - 1),
    y = sat_Y(table[k] + round_shift((table[k+1] - table[k]) * f, frac_bits)) in int64."""
    _check_mode(mode)
    xa = np.asarray(x)
    _check_n(n, xa.size, "lut")
    xf, xb = _values(xa, xa.size, "lut x")
    ob = _out_bits(out_bits, xb, "lut")
    t = np.asarray(table)
    if xb == 8:
        if frac_bits != 0:
            raise ValueError("lut: an int8 input reads a plain table (frac_bits 0)")
        if t.dtype != _DTYPES[ob] or t.size != 256:
            raise ValueError(f"lut: an int8 input needs a 256-entry int{ob} table, got "
                             f"{t.dtype} [{t.size}]")
        return t.reshape(-1)[xf + 128].reshape(xa.shape)
    if not 0 <= frac_bits <= 16:
        raise ValueError(f"lut: frac_bits must be in [0, 16], got {frac_bits}")
    size = (1 << (16 - frac_bits)) + 1
    if t.dtype != np.int32 or t.size != size:
        raise ValueError(f"lut: an int16 input needs an int32 table of 2^(16 - frac_bits) + 1 = "
                         f"{size} entries, got {t.dtype} [{t.size}]")
    t = t.reshape(-1).astype(np.int64)
    u = xf + 32768
    k = u >> frac_bits
    step = (t[k + 1] - t[k]) * (u & ((1 << frac_bits) - 1))
    return _sat(t[k] + round_shift(step, frac_bits, mode), ob).reshape(xa.shape)


def requant(x, *, shift: int, mode: str, n: int | None = None,
            out_bits: int | None = None) -> np.ndarray:
    """y[i] = sat_Y(round_shift(x[i], shift)); y has x's shape."""
    _check_mode(mode)
    xa = np.asarray(x)
    _check_n(n, xa.size, "requant")
    xf, xb = _values(xa, xa.size, "requant x")
    ob = _out_bits(out_bits, xb, "requant")
    return _sat(round_shift(xf, shift, mode), ob).reshape(xa.shape)


def transpose(x, *, in_shape: Sequence[int], perm: Sequence[int], rank: int | None = None,
              out_bits: int | None = None) -> np.ndarray:
    """y = x.reshape(in_shape).transpose(perm), contiguous, of x's type.

    `in_shape`/`perm` may have length `rank` or be padded to 4 like the C struct (then `rank`
    selects the leading entries).
    """
    if rank is None:
        rank = len(in_shape)
    in_shape = tuple(int(v) for v in list(in_shape)[:rank])
    perm = tuple(int(v) for v in list(perm)[:rank])
    if not 1 <= rank <= 4 or sorted(perm) != list(range(rank)):
        raise ValueError(f"transpose: bad rank/perm {rank} {perm}")
    size = int(np.prod(in_shape, dtype=np.int64))
    xf, xb = _values(x, size, "transpose x")
    if _out_bits(out_bits, xb, "transpose") != xb:
        raise ValueError("transpose: the output has the input's type")
    return np.ascontiguousarray(xf.astype(_DTYPES[xb]).reshape(in_shape).transpose(perm))


def mask_frames(x, mask, *, frames: int, inner: int, pad: int,
                out_bits: int | None = None) -> np.ndarray:
    """x [frames][inner], mask int8 [frames] -> y[t][i] = x[t][i] if mask[t] != 0 else pad
    (pad a value of x's type; y has x's type)."""
    xf, xb = _values(x, frames * inner, "mask_frames x")
    if _out_bits(out_bits, xb, "mask_frames") != xb:
        raise ValueError("mask_frames: the output has the input's type")
    _check_value(pad, xb, "mask_frames pad")
    if np.asarray(mask).dtype != np.int8:
        raise TypeError("mask_frames: the mask (frame flags) is an int8 array")
    mk, _ = _values(mask, frames, "mask_frames mask")
    return np.where(mk[:, None] != 0, xf.reshape(frames, inner), pad).astype(_DTYPES[xb])


def quantize(x, *, exp: int, mode: str, out_bits: int, n: int | None = None) -> np.ndarray:
    """float32 -> int8/int16: y[i] = sat_Y(round(x[i] * 2^-exp)), the product in float32 (as
    C: x * ldexpf(1, -exp)), NaN -> 0, rounded exactly with `mode`."""
    _check_mode(mode)
    ob = _out_bits(out_bits, 8, "quantize")
    xf = np.asarray(x, dtype=np.float32)
    _check_n(n, xf.size, "quantize")
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        scale = np.ldexp(np.float32(1.0), np.int32(-exp)).astype(np.float32)
        v = (xf * scale).astype(np.float32)
    return _round_f32_sat(v, ob, mode)


def dequantize(x, *, exp: int, n: int | None = None) -> np.ndarray:
    """int8/int16 -> float32: y[i] = x[i] * 2^exp in float32 (as C: x * ldexpf(1, exp))."""
    xa = np.asarray(x)
    _check_n(n, xa.size, "dequantize")
    _bits(xa, "dequantize x")
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        scale = np.ldexp(np.float32(1.0), np.int32(exp)).astype(np.float32)
        return (xa.astype(np.float32) * scale).astype(np.float32)


# ------------------------------------------------------------------------ pooling, reductions

def _mul_pow2(v: np.ndarray, s: int, what: str) -> np.ndarray:
    """v * 2^s for 0 <= s <= 62, OverflowError where C's int64 product would overflow."""
    if not 0 <= s <= 62:
        raise OverflowError(f"{what}: 2^{s} does not fit in int64")
    return round_shift(v, -s, "half_even")  # a left shift: exact, overflow-checked


def avgpool1d(x, *, t_in: int, channels: int, kernel: int, stride: int, pad_l: int,
              pad_r: int, count_include_pad: int, shift: int, mode: str,
              out_bits: int | None = None) -> np.ndarray:
    """x [t_in][channels] -> y [t_out][channels]; shift = e_out - e_in.

    y = sat_Y(round_div(sum * 2^max(0,-shift), count * 2^max(0,shift))); a window with no
    in-range frame and count_include_pad = 0 (count 0) gives 0.
    """
    _check_mode(mode)
    xf, xb = _values(x, t_in * channels, "avgpool1d x")
    ob = _out_bits(out_bits, xb, "avgpool1d")
    t_out = _out_len(t_in + pad_l + pad_r, kernel, stride)
    if t_out == 0:
        return np.zeros((0, channels), dtype=_DTYPES[ob])
    xp = np.zeros((t_in + pad_l + pad_r, channels), dtype=np.int64)
    xp[pad_l:pad_l + t_in] = xf.reshape(t_in, channels)
    valid = np.zeros(t_in + pad_l + pad_r, dtype=np.int64)
    valid[pad_l:pad_l + t_in] = 1
    base = np.arange(t_out) * stride
    total = np.zeros((t_out, channels), dtype=np.int64)
    frames = np.zeros(t_out, dtype=np.int64)
    for k in range(kernel):
        total += xp[base + k]
        frames += valid[base + k]
    count = np.full(t_out, kernel, dtype=np.int64) if count_include_pad else frames
    num = _mul_pow2(total, max(0, -shift), "avgpool1d")
    d = _mul_pow2(np.maximum(count, 1), max(0, shift), "avgpool1d")
    y = round_div(num, d[:, None], mode)
    return _sat(np.where(count[:, None] == 0, 0, y), ob)


def maxpool1d(x, *, t_in: int, channels: int, kernel: int, stride: int, dilation: int,
              pad_l: int, pad_r: int, pad_value: int, shift: int, mode: str,
              out_bits: int | None = None) -> np.ndarray:
    """x [t_in][channels] -> y [t_out][channels]: y = sat_Y(round_shift(window max, shift)).

    Padding frames read `pad_value` (a value of x's type; its minimum stands for ONNX's -inf
    padding)."""
    _check_mode(mode)
    xf, xb = _values(x, t_in * channels, "maxpool1d x")
    ob = _out_bits(out_bits, xb, "maxpool1d")
    _check_value(pad_value, xb, "maxpool1d pad_value")
    t_out = _out_len(t_in + pad_l + pad_r, dilation * (kernel - 1) + 1, stride)
    if t_out == 0:
        return np.zeros((0, channels), dtype=_DTYPES[ob])
    xp = np.full((t_in + pad_l + pad_r, channels), pad_value, dtype=np.int64)
    xp[pad_l:pad_l + t_in] = xf.reshape(t_in, channels)
    taps = np.arange(t_out)[:, None] * stride + np.arange(kernel)[None, :] * dilation
    m = xp[taps].max(axis=1)  # [t_out, channels]
    return _sat(round_shift(m, shift, mode), ob)


def reduce(x, *, outer: int, length: int, inner: int, op: int, shift: int, mode: str,
           out_bits: int | None = None) -> np.ndarray:
    """x [outer][length][inner] -> y [outer][inner]: mean (op 0, avgpool's formula with
    count = length), max (op 1) or sum (op 2) over the middle axis, sums in int64; length 0
    gives 0."""
    _check_mode(mode)
    if op not in (REDUCE_MEAN, REDUCE_MAX, REDUCE_SUM):
        raise ValueError(f"reduce: op must be 0 (mean), 1 (max) or 2 (sum), got {op}")
    xf, xb = _values(x, outer * length * inner, "reduce x")
    ob = _out_bits(out_bits, xb, "reduce")
    xf = xf.reshape(outer, length, inner)
    if op == REDUCE_MEAN:  # C builds 2^|shift| (and length * 2^shift) even for empty inputs
        _mul_pow2(np.array([max(length, 1)]), max(0, shift), "reduce")
        _mul_pow2(np.array([0]), max(0, -shift), "reduce")
    if length == 0:
        return np.zeros((outer, inner), dtype=_DTYPES[ob])
    if op == REDUCE_MAX:
        y = round_shift(xf.max(axis=1), shift, mode)
    elif op == REDUCE_SUM:
        y = round_shift(xf.sum(axis=1), shift, mode)
    else:
        num = _mul_pow2(xf.sum(axis=1), max(0, -shift), "reduce")
        y = round_div(num, _mul_pow2(np.int64(length), max(0, shift), "reduce"), mode)
    return _sat(y, ob)


# -------------------------------------------------------------------------------- softmax

def softmax_table(exp_in: int, mode: str, scale_bits: int = 20) -> np.ndarray:
    """int32[256] with table[j] = round(exp(-j * 2^exp_in) * 2^scale_bits): exp at the
    distance j = max - x below the row max for an input with exponent exp_in (softmax's low
    table part; for int8 inputs the whole exp).

    Compile-time only (float64 exp, rounded exactly with `round_to_int`); the C code gets the
    table as data, so C and Python read identical values whatever the host's libm does."""
    j = np.arange(256, dtype=np.float64)
    with np.errstate(over="ignore", under="ignore"):
        v = np.exp(np.ldexp(-j, exp_in)) * 2.0**scale_bits  # ldexp(-0, big) stays 0
    return round_to_int(v, mode).astype(np.int32)


def softmax_plan(exp_in: int, in_bits: int, out_bits: int, mode: str
                 ) -> tuple[dict[str, int], dict[str, np.ndarray]]:
    """Compile-time params and arrays of a softmax with input exponent `exp_in` and
    probabilities out at exponent -(out_bits - 1) (q = p * 2^7 or p * 2^15, saturated).

    The exp of d = max - x >= 0 is the product of two tables (KERNELS.md, softmax): a low part
    lo[j] = round(exp(-j * 2^exp_in) * 2^S) over d's low 8 bits and a high part
    hi[k] = round(exp(-k * 2^(exp_in + 8)) * 2^S) over the rest, S = SOFTMAX_SCALE[out_bits]
    (20, or 24 for int16 outputs). Each entry is within 1/2 of the exact value, so every e_j is
    within about 1.5 units of exp(-d * 2^exp_in) * 2^S: no interpolation error, 2 KB at most.
    The high part stops after its last non-zero entry (hi_len); int8 inputs (d < 256) need
    hi = [2^S] only, so that e = lo[d] exactly.

    Returns (params: out_frac, lo_bits, hi_len, scale_bits; arrays: table int32
    [2^lo_bits + hi_len]); the lowering adds rows and cols."""
    if in_bits not in _DTYPES or out_bits not in _DTYPES:
        raise ValueError(f"softmax_plan: bits must be 8 or 16, got {in_bits}, {out_bits}")
    scale = SOFTMAX_SCALE[out_bits]
    lo = softmax_table(exp_in, mode, scale)
    if in_bits == 8:
        hi = np.array([1 << scale], dtype=np.int32)
    else:
        k = np.arange(1 << (16 - SOFTMAX_LO_BITS), dtype=np.float64)
        with np.errstate(over="ignore", under="ignore"):
            v = np.exp(np.ldexp(-k, exp_in + SOFTMAX_LO_BITS)) * 2.0**scale
        hi = round_to_int(v, mode).astype(np.int32)
        hi = hi[:max(1, int(np.count_nonzero(hi)))]  # non-increasing: the zeros trail
    params = dict(out_frac=out_bits - 1, lo_bits=SOFTMAX_LO_BITS, hi_len=int(hi.size),
                  scale_bits=scale)
    return params, dict(table=np.concatenate([lo, hi]).astype(np.int32))


def softmax(x, table, *, rows: int, cols: int, out_frac: int, lo_bits: int, hi_len: int,
            scale_bits: int, mode: str, out_bits: int | None = None) -> np.ndarray:
    """x [rows][cols] -> y [rows][cols] at exponent -out_frac. With d_j = max - x[j],
    lo = table[:2^lo_bits], hi = table[2^lo_bits:]:
    e_j = round_shift(lo[d_j & (2^lo_bits - 1)] * hi[d_j >> lo_bits], scale_bits) if
    d_j >> lo_bits < hi_len else 0; y[j] = sat_Y(round_div(e_j * 2^out_frac, sum e)); a row
    whose sum is 0 gives 0."""
    _check_mode(mode)
    if not (0 <= lo_bits <= 16 and 1 <= hi_len <= 1 << (16 - lo_bits) and 0 <= scale_bits <= 30
            and 0 <= out_frac <= 16):
        raise ValueError("softmax: need lo_bits in [0, 16], hi_len in [1, 2^(16-lo_bits)], "
                         "scale_bits in [0, 30], out_frac in [0, 16]")
    t = np.asarray(table)
    if t.dtype != np.int32 or t.size != (1 << lo_bits) + hi_len:
        raise ValueError(f"softmax: the table is int32 [2^lo_bits + hi_len] = "
                         f"[{(1 << lo_bits) + hi_len}]")
    t = t.reshape(-1).astype(np.int64)
    lo, hi = t[:1 << lo_bits], t[1 << lo_bits:]
    if lo.min() < 0 or lo.max() > 2**30 or hi.min() < 0 or hi.max() > 2**scale_bits:
        raise ValueError("softmax: table entries in [0, 2^30], the high part in "
                         "[0, 2^scale_bits]")
    xf, xb = _values(x, rows * cols, "softmax x")
    ob = _out_bits(out_bits, xb, "softmax")
    if cols == 0:
        return np.zeros((rows, 0), dtype=_DTYPES[ob])
    xf = xf.reshape(rows, cols)
    d = xf.max(axis=1, keepdims=True) - xf
    k = d >> lo_bits
    e = round_shift(lo[d & ((1 << lo_bits) - 1)] * hi[np.minimum(k, hi_len - 1)], scale_bits,
                    mode)
    e = np.where(k < hi_len, e, 0)
    s = e.sum(axis=1, keepdims=True)
    y = round_div(e * (np.int64(1) << np.int64(out_frac)), np.maximum(s, 1), mode)
    return _sat(np.where(s == 0, 0, y), ob)
