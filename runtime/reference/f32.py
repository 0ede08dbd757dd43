"""Python reference of the float32 kernels (spec: runtime/KERNELS.md, "Float32 kernels").

One function per kernel family, named like the family (`conv1d`, `gemm`, `unary`, `gru`, ...),
mirroring the C function `rill_<family>_f32` (`rill_unary_<fn>_f32` for unary functions).
Scalars are keyword-only and named like the fields of the C params struct (`PARAMS_FIELDS`);
arrays are float32 in the physical (time-major) layouts and may be flat or shaped.

Every sum is formed in float32 in the order the C kernel forms it (the bias first, then the
taps in ascending order), so the reference and C differ only where the C compiler contracts a
multiply-add (FMA), computes in higher precision (x87 on 32-bit x86) or its libm's expf/tanhf/
erff round differently: the self-test and the kernel tests compare with a relative tolerance
(`TOLERANCE`), not bit for bit.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np

F32 = np.float32

#: C params struct of each float kernel family (`rill_<family>_f32_params_t`), fields in order.
#: Fields in FLOAT_FIELDS are `float`, the rest `int32_t`. transpose uses the integer family's
#: struct (rill_transpose_params_t); add, unary, softmax and mask_frames take their scalars as
#: arguments.
PARAMS_FIELDS: dict[str, tuple[str, ...]] = {
    "conv1d": ("t_in", "c_in", "c_out", "kernel", "stride", "dilation", "groups", "pad_l",
               "pad_r", "act_min", "act_max"),
    "conv2d": ("t_in", "f_in", "c_in", "c_out", "kernel_t", "kernel_f", "stride_t",
               "stride_f", "dilation_t", "dilation_f", "groups", "pad_t_l", "pad_t_r",
               "pad_f_l", "pad_f_r", "act_min", "act_max"),
    "conv_transpose1d": ("t_in", "c_in", "c_out", "kernel", "stride", "dilation", "groups",
                         "pad_l", "pad_r", "output_padding", "act_min", "act_max"),
    "gemm": ("m", "k", "n", "act_min", "act_max"),
    "avgpool1d": ("t_in", "channels", "kernel", "stride", "pad_l", "pad_r",
                  "count_include_pad"),
    "maxpool1d": ("t_in", "channels", "kernel", "stride", "dilation", "pad_l", "pad_r",
                  "pad_value"),
    "reduce": ("outer", "length", "inner", "op"),
    "gru": ("input", "hidden", "linear_before_reset"),
    "lstm": ("input", "hidden"),
    "binary": ("op", "shape", "a_stride", "b_stride"),
    "matmul": ("batch0", "batch1", "m", "k", "n", "a_stride", "b_stride", "y_stride"),
    "pad": ("mode", "value", "in_shape", "pad_lo", "pad_hi"),
    "layernorm": ("outer", "length", "inner", "epsilon"),
}
FLOAT_FIELDS = frozenset({"act_min", "act_max", "pad_value", "alpha", "beta", "pad", "value",
                          "epsilon"})

#: `op` codes of `reduce` (the integer family's RILL_REDUCE_MEAN / _MAX / _SUM).
REDUCE_MEAN, REDUCE_MAX, REDUCE_SUM = 0, 1, 2

#: The self-test's and the tests' tolerance: |C - reference| <= TOLERANCE * max|reference|
#: (contract §3's float32 bound against onnxruntime).
TOLERANCE = 1e-5


def _erf(v: np.ndarray) -> np.ndarray:
    return np.vectorize(math.erf, otypes=[np.float64])(v.astype(np.float64)).astype(F32)


def _softplus(v: np.ndarray, a: F32, b: F32) -> np.ndarray:
    with np.errstate(over="ignore"):
        return np.where(v > 0, v + np.log1p(np.exp(-v)), np.log1p(np.exp(v))).astype(F32)


def _gelu_tanh(v: np.ndarray) -> np.ndarray:
    inner = F32(0.7978845608028654) * (v + F32(0.044715) * v * v * v)
    return F32(0.5) * v * (F32(1) + np.tanh(inner))


#: The unary functions (`rill_unary_<fn>_f32`; C: the RILL_F32_<FN> macros of
#: rill_kernels_f32.h), each f(v, alpha, beta) in float32. Their order is their `fn` code.
UNARY: dict[str, Callable[[np.ndarray, F32, F32], np.ndarray]] = {
    "relu": lambda v, a, b: np.where(v < 0, F32(0), v),
    "clip": lambda v, a, b: np.where(v < a, a, np.where(v > b, b, v)),
    "sigmoid": lambda v, a, b: F32(1) / (F32(1) + np.exp(-v)),
    "silu": lambda v, a, b: v / (F32(1) + np.exp(-v)),
    "tanh": lambda v, a, b: np.tanh(v),
    "leaky_relu": lambda v, a, b: np.where(v >= 0, v, a * v),
    "hard_sigmoid": lambda v, a, b: np.clip(a * v + b, F32(0), F32(1)),
    "hard_swish": lambda v, a, b: v * np.clip(a * v + b, F32(0), F32(1)),
    "gelu": lambda v, a, b: F32(0.5) * v * (F32(1) + _erf(v * F32(0.7071067811865476))),
    "gelu_tanh": lambda v, a, b: _gelu_tanh(v),
    "exp": lambda v, a, b: np.exp(v),
    "softplus": _softplus,
    "elu": lambda v, a, b: np.where(v > 0, v, a * np.expm1(v)),
    "neg": lambda v, a, b: -v,
    "abs": lambda v, a, b: np.abs(v),
    "erf": lambda v, a, b: _erf(v),
    "sqrt": lambda v, a, b: np.sqrt(v),
    "reciprocal": lambda v, a, b: F32(1) / v,
    "pow": lambda v, a, b: np.power(v, a),
}
UNARY_FUNCTIONS: tuple[str, ...] = tuple(UNARY)


def _f32(a, size: int | None, what: str) -> np.ndarray:
    """A flat float32 copy of `a` (checked: a float32 array of `size` elements)."""
    arr = np.asarray(a)
    if arr.dtype != F32:
        raise TypeError(f"{what}: a float32 array expected, got {arr.dtype}")
    if size is not None and arr.size != size:
        raise ValueError(f"{what}: expected {size} elements, got {arr.size}")
    return arr.reshape(-1).copy()


def _clamp(v: np.ndarray, lo, hi) -> np.ndarray:
    """C's `v < lo ? lo : (v > hi ? hi : v)` (NaN passes through)."""
    lo, hi = F32(lo), F32(hi)
    return np.where(v < lo, lo, np.where(v > hi, hi, v)).astype(F32)


def _out_len(total: int, field: int, stride: int) -> int:
    span = total - field
    return span // stride + 1 if span >= 0 else 0


def _groups(c_in: int, c_out: int, groups: int, what: str) -> None:
    if groups <= 0 or c_in % groups or c_out % groups:
        raise ValueError(f"{what}: c_in and c_out must be multiples of groups")


def _taps(n_out: int, stride: int, k: int, dilation: int, pad: int, n_in: int
          ) -> tuple[np.ndarray, np.ndarray]:
    """Input positions of tap k for every output position, and which are inside [0, n_in)."""
    pos = np.arange(n_out) * stride + k * dilation - pad
    valid = (pos >= 0) & (pos < n_in)
    return np.where(valid, pos, 0), valid


# ------------------------------------------------------------------------- weighted layers

def conv1d(x, w, bias, *, t_in: int, c_in: int, c_out: int, kernel: int, stride: int,
           dilation: int, groups: int, pad_l: int, pad_r: int, act_min: float,
           act_max: float) -> np.ndarray:
    """x [t_in][c_in], w [c_out][kernel][c_in/groups], bias [c_out] -> y [t_out][c_out]:
    acc = bias[co], then += w[co][k][i] * x[t*stride + k*dilation - pad_l][g*cg + i] for k
    ascending (taps in the padding skipped), i ascending; y = clamp(acc, act_min, act_max)."""
    _groups(c_in, c_out, groups, "conv1d")
    cg, og = c_in // groups, c_out // groups
    xf = _f32(x, t_in * c_in, "conv1d x").reshape(t_in, groups, cg)
    wf = _f32(w, c_out * kernel * cg, "conv1d w").reshape(groups, og, kernel, cg)
    b = _f32(bias, c_out, "conv1d bias").reshape(groups, og)
    t_out = _out_len(t_in + pad_l + pad_r, dilation * (kernel - 1) + 1, stride)
    acc = np.broadcast_to(b, (t_out, groups, og)).copy()
    for k in range(kernel):
        pos, valid = _taps(t_out, stride, k, dilation, pad_l, t_in)
        xk = xf[pos]  # [t_out, groups, cg]
        for i in range(cg):
            term = xk[:, :, None, i] * wf[None, :, :, k, i]
            acc = np.where(valid[:, None, None], acc + term, acc)
    return _clamp(acc.reshape(t_out, c_out), act_min, act_max)


def gemm(x, w, bias, *, m: int, k: int, n: int, act_min: float, act_max: float) -> np.ndarray:
    """x [m][k], w [n][k], bias [n] -> y [m][n]: acc = bias[j], += x[i][l] * w[j][l] for l
    ascending; y = clamp(acc, act_min, act_max)."""
    xf = _f32(x, m * k, "gemm x").reshape(m, k)
    wf = _f32(w, n * k, "gemm w").reshape(n, k)
    acc = np.broadcast_to(_f32(bias, n, "gemm bias"), (m, n)).copy()
    for l in range(k):
        acc = acc + xf[:, l, None] * wf[None, :, l]
    return _clamp(acc, act_min, act_max)


def conv2d(x, w, bias, *, t_in: int, f_in: int, c_in: int, c_out: int, kernel_t: int,
           kernel_f: int, stride_t: int, stride_f: int, dilation_t: int, dilation_f: int,
           groups: int, pad_t_l: int, pad_t_r: int, pad_f_l: int, pad_f_r: int,
           act_min: float, act_max: float) -> np.ndarray:
    """x [t_in][c_in][f_in], w [c_out][kernel_t][kernel_f][c_in/groups], bias [c_out] ->
    y [t_out][c_out][f_out]: acc = bias[co], += w[co][kt][kf][i] * x[ti][g*cg + i][fi] for
    kt, kf, i ascending (positions in the padding skipped); clamped."""
    _groups(c_in, c_out, groups, "conv2d")
    cg, og = c_in // groups, c_out // groups
    xf = _f32(x, t_in * c_in * f_in, "conv2d x").reshape(t_in, groups, cg, f_in)
    wf = _f32(w, c_out * kernel_t * kernel_f * cg, "conv2d w").reshape(
        groups, og, kernel_t, kernel_f, cg)
    b = _f32(bias, c_out, "conv2d bias").reshape(groups, og)
    t_out = _out_len(t_in + pad_t_l + pad_t_r, dilation_t * (kernel_t - 1) + 1, stride_t)
    f_out = _out_len(f_in + pad_f_l + pad_f_r, dilation_f * (kernel_f - 1) + 1, stride_f)
    acc = np.broadcast_to(b[None, :, :, None], (t_out, groups, og, f_out)).copy()
    for a in range(kernel_t):
        tpos, tvalid = _taps(t_out, stride_t, a, dilation_t, pad_t_l, t_in)
        for c in range(kernel_f):
            fpos, fvalid = _taps(f_out, stride_f, c, dilation_f, pad_f_l, f_in)
            xk = xf[tpos][:, :, :, fpos]  # [t_out, groups, cg, f_out]
            valid = (tvalid[:, None] & fvalid[None, :])[:, None, None, :]
            for i in range(cg):
                term = xk[:, :, None, i, :] * wf[None, :, :, a, c, i, None]
                acc = np.where(valid, acc + term, acc)
    return _clamp(acc.reshape(t_out, c_out, f_out), act_min, act_max)


def conv_transpose1d(x, w, bias, *, t_in: int, c_in: int, c_out: int, kernel: int,
                     stride: int, dilation: int, groups: int, pad_l: int, pad_r: int,
                     output_padding: int, act_min: float, act_max: float) -> np.ndarray:
    """x [t_in][c_in], w [c_out][kernel][c_in/groups], bias [c_out] -> y [t_out][c_out],
    t_out = (t_in-1)*stride - pad_l - pad_r + dilation*(kernel-1) + output_padding + 1:
    acc = bias[co], then for k ascending with ti = (t + pad_l - k*dilation) / stride a whole
    number in [0, t_in), += w[co][k][i] * x[ti][g*cg + i] for i ascending; clamped."""
    _groups(c_in, c_out, groups, "conv_transpose1d")
    if min(pad_l, pad_r, output_padding) < 0:
        raise ValueError("conv_transpose1d: pads and output_padding must be >= 0")
    cg, og = c_in // groups, c_out // groups
    xf = _f32(x, t_in * c_in, "conv_transpose1d x").reshape(t_in, groups, cg)
    wf = _f32(w, c_out * kernel * cg, "conv_transpose1d w").reshape(groups, og, kernel, cg)
    b = _f32(bias, c_out, "conv_transpose1d bias").reshape(groups, og)
    t_out = max((t_in - 1) * stride - pad_l - pad_r + dilation * (kernel - 1)
                + output_padding + 1, 0)
    acc = np.broadcast_to(b, (t_out, groups, og)).copy()
    for k in range(kernel):
        num = np.arange(t_out) + pad_l - k * dilation
        valid = (num >= 0) & (num % stride == 0) & (num // stride < t_in)
        xk = xf[np.where(valid, num // stride, 0)]
        for i in range(cg):
            term = xk[:, :, None, i] * wf[None, :, :, k, i]
            acc = np.where(valid[:, None, None], acc + term, acc)
    return _clamp(acc.reshape(t_out, c_out), act_min, act_max)


# ---------------------------------------------------------------------------- elementwise

def add(a, b, *, n: int) -> np.ndarray:
    """y[i] = a[i] + b[i]."""
    return _f32(a, n, "add a") + _f32(b, n, "add b")


def unary(x, *, fn: str, alpha: float = 0.0, beta: float = 0.0,
          n: int | None = None) -> np.ndarray:
    """y[i] = UNARY[fn](x[i], alpha, beta); y has x's shape."""
    if fn not in UNARY:
        raise ValueError(f"unary: no function {fn!r} (one of {', '.join(UNARY)})")
    xa = np.asarray(x)
    xf = _f32(xa, n, "unary x")
    with np.errstate(over="ignore", invalid="ignore", under="ignore", divide="ignore"):
        y = UNARY[fn](xf, F32(alpha), F32(beta))
    return np.asarray(y, F32).reshape(xa.shape)


def mask_frames(x, mask, *, frames: int, inner: int, pad: float) -> np.ndarray:
    """x [frames][inner], mask [frames] -> y[t][i] = x[t][i] if mask[t] != 0 else pad."""
    xf = _f32(x, frames * inner, "mask_frames x").reshape(frames, inner)
    mk = _f32(mask, frames, "mask_frames mask")
    return np.where(mk[:, None] != 0, xf, F32(pad)).astype(F32)


def transpose(x, *, in_shape, perm, rank: int | None = None) -> np.ndarray:
    """y = x.reshape(in_shape).transpose(perm), contiguous (the integer family's struct)."""
    rank = len(in_shape) if rank is None else rank
    shape = tuple(int(v) for v in list(in_shape)[:rank])
    order = tuple(int(v) for v in list(perm)[:rank])
    if not 1 <= rank <= 4 or sorted(order) != list(range(rank)):
        raise ValueError(f"transpose: bad rank/perm {rank} {order}")
    xf = _f32(x, int(np.prod(shape, dtype=np.int64)), "transpose x")
    return np.ascontiguousarray(xf.reshape(shape).transpose(order))


# ------------------------------------------------------------------------ pooling, reductions

def avgpool1d(x, *, t_in: int, channels: int, kernel: int, stride: int, pad_l: int,
              pad_r: int, count_include_pad: int) -> np.ndarray:
    """x [t_in][channels] -> y [t_out][channels]: the in-range frames of the window summed
    in order from 0, divided by count (kernel with count_include_pad, else the in-range
    frames); a window with count 0 gives 0."""
    xf = _f32(x, t_in * channels, "avgpool1d x").reshape(t_in, channels)
    t_out = _out_len(t_in + pad_l + pad_r, kernel, stride)
    total = np.zeros((t_out, channels), F32)
    frames = np.zeros(t_out, np.int64)
    for k in range(kernel):
        pos, valid = _taps(t_out, stride, k, 1, pad_l, t_in)
        total = np.where(valid[:, None], total + xf[pos], total)
        frames += valid
    count = np.full(t_out, kernel) if count_include_pad else frames
    with np.errstate(invalid="ignore", divide="ignore"):
        y = total / np.maximum(count, 1).astype(F32)[:, None]
    return np.where(count[:, None] == 0, F32(0), y).astype(F32)


def maxpool1d(x, *, t_in: int, channels: int, kernel: int, stride: int, dilation: int,
              pad_l: int, pad_r: int, pad_value: float) -> np.ndarray:
    """x [t_in][channels] -> y [t_out][channels]: m = tap 0, then m = v if v > m for the
    other taps in order (a tap in the padding reads pad_value)."""
    xf = _f32(x, t_in * channels, "maxpool1d x").reshape(t_in, channels)
    t_out = _out_len(t_in + pad_l + pad_r, dilation * (kernel - 1) + 1, stride)
    m = None
    for k in range(kernel):
        pos, valid = _taps(t_out, stride, k, dilation, pad_l, t_in)
        v = np.where(valid[:, None], xf[pos], F32(pad_value))
        m = v if m is None else np.where(v > m, v, m)
    return np.asarray(m if m is not None else np.zeros((t_out, channels)), F32)


def reduce(x, *, outer: int, length: int, inner: int, op: int) -> np.ndarray:
    """x [outer][length][inner] -> y [outer][inner]: mean (op 0: the sum in order from 0
    divided by length), max (op 1: m = x[0], m = v if v > m) or sum (op 2); length 0 gives 0."""
    if op not in (REDUCE_MEAN, REDUCE_MAX, REDUCE_SUM):
        raise ValueError(f"reduce: op must be 0 (mean), 1 (max) or 2 (sum), got {op}")
    xf = _f32(x, outer * length * inner, "reduce x").reshape(outer, length, inner)
    if length == 0:
        return np.zeros((outer, inner), F32)
    acc = xf[:, 0].copy() if op == REDUCE_MAX else np.zeros((outer, inner), F32)
    for l in range(length):
        v = xf[:, l]
        acc = np.where(v > acc, v, acc) if op == REDUCE_MAX else acc + v
    return (acc / F32(length) if op == REDUCE_MEAN else acc).astype(F32)


def softmax(x, *, rows: int, cols: int) -> np.ndarray:
    """Over the last axis of x [rows][cols]: m = the row's max, e_j = exp(x_j - m), s = the
    sum of e_j in order, y_j = e_j / s."""
    xf = _f32(x, rows * cols, "softmax x").reshape(rows, cols)
    if cols == 0:
        return xf
    m = xf[:, 0].copy()
    for j in range(1, cols):
        m = np.where(xf[:, j] > m, xf[:, j], m)
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        e = np.exp(xf - m[:, None]).astype(F32)
    s = np.zeros(rows, F32)
    for j in range(cols):
        s = s + e[:, j]
    with np.errstate(invalid="ignore", divide="ignore"):
        return (e / s[:, None]).astype(F32)


# ----------------------------------------------------- broadcasting, products, normalization

def _strided(arr: np.ndarray, dims, strides, what: str) -> np.ndarray:
    """The float32 values of flat `arr` at sum_d i_d * strides[d] for every index of `dims`."""
    index = np.zeros(tuple(int(n) for n in dims), np.int64)
    for d, (n, st) in enumerate(zip(dims, strides)):
        view = [1] * len(dims)
        view[d] = int(n)
        index = index + (np.arange(int(n), dtype=np.int64) * int(st)).reshape(view)
    if index.size and (index.min() < 0 or index.max() >= arr.size):
        raise ValueError(f"{what}: strides {list(strides)} reach outside its {arr.size} elements")
    return arr[index]


def binary(a, b, *, op: int, shape, a_stride, b_stride) -> np.ndarray:
    """y [shape] (4-D, contiguous) = op(a, b) read through the operands' strides: add, sub, mul,
    div (IEEE), max a >= b ? a : b, min a <= b ? a : b, prelu a >= 0 ? a : a * b (op codes of
    runtime/reference/binary.py)."""
    from .binary import (BINARY_ADD, BINARY_DIV, BINARY_MAX, BINARY_MIN, BINARY_MUL,
                         BINARY_PRELU, BINARY_SUB)
    va = _strided(_f32(a, None, "binary a"), shape, a_stride, "binary a")
    vb = _strided(_f32(b, None, "binary b"), shape, b_stride, "binary b")
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        y = {BINARY_ADD: lambda: va + vb, BINARY_SUB: lambda: va - vb,
             BINARY_MUL: lambda: va * vb, BINARY_DIV: lambda: va / vb,
             BINARY_MAX: lambda: np.where(va >= vb, va, vb),
             BINARY_MIN: lambda: np.where(va <= vb, va, vb),
             BINARY_PRELU: lambda: np.where(va >= 0, va, va * vb)}[op]()
    return np.asarray(y, F32)


def matmul(a, b, *, batch0: int, batch1: int, m: int, k: int, n: int, a_stride, b_stride,
           y_stride) -> np.ndarray:
    """y (flat) with y[i0*ys0 + i1*ys1 + i*ys2 + j*ys3] = sum_l a[i0,i1,i,l] * b[i0,i1,l,j],
    the sum from 0 with l ascending; operands read through their strides."""
    va = _strided(_f32(a, None, "matmul a"), (batch0, batch1, m, k), a_stride, "matmul a")
    vb = _strided(_f32(b, None, "matmul b"), (batch0, batch1, k, n), b_stride, "matmul b")
    acc = np.zeros((batch0, batch1, m, n), F32)
    for l in range(k):
        acc = acc + va[:, :, :, l, None] * vb[:, :, None, l, :]
    size = batch0 * batch1 * m * n
    y = np.zeros(size, F32)
    index = _strided(np.arange(size), (batch0, batch1, m, n), y_stride, "matmul y")
    y[index.reshape(-1)] = acc.reshape(-1)
    return y


def pad(x, *, mode: int, value: float, in_shape, pad_lo, pad_hi) -> np.ndarray:
    """The integer pad family's data movement (runtime/reference/pad.py) with a float32
    constant."""
    from .pad import pad_index
    shape = [int(v) for v in in_shape]
    out = [v + int(lo) + int(hi) for v, lo, hi in zip(shape, pad_lo, pad_hi)]
    src = _f32(x, int(np.prod(shape)), "pad x").reshape(shape)
    index = [pad_index(np.arange(o) - int(lo), v, mode) for o, v, lo in zip(out, shape, pad_lo)]
    y = src[np.ix_(*[np.maximum(i, 0) for i in index])] if src.size else np.zeros(out, F32)
    outside = np.zeros(out, bool)
    for d, i in enumerate(index):
        view = [1] * 4
        view[d] = out[d]
        outside |= (i < 0).reshape(view)
    return np.where(outside, F32(value), y).astype(F32)


def layernorm(x, gamma, beta, *, outer: int, length: int, inner: int,
              epsilon: float) -> np.ndarray:
    """x [outer][length][inner] normalized over `length`: mean = (sum_l x_l in order) / length,
    var = (sum_l (x_l - mean)^2 in order) / length, inv = 1 / sqrt(var + epsilon),
    y_l = (x_l - mean) * inv * gamma[l] + beta[l]."""
    xf = _f32(x, outer * length * inner, "layernorm x").reshape(outer, length, inner)
    g = _f32(gamma, length, "layernorm gamma")[None, :, None]
    b = _f32(beta, length, "layernorm beta")[None, :, None]
    if length == 0:
        return xf
    mean = np.zeros((outer, inner), F32)
    for l in range(length):
        mean = mean + xf[:, l]
    mean = mean / F32(length)
    var = np.zeros((outer, inner), F32)
    for l in range(length):
        d = xf[:, l] - mean
        var = var + d * d
    with np.errstate(divide="ignore"):
        inv = F32(1) / np.sqrt(var / F32(length) + F32(epsilon))
    return ((xf - mean[:, None]) * inv[:, None] * g + b).astype(F32)


# ------------------------------------------------------------------------------- recurrent

def _sigmoid(v: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return F32(1) / (F32(1) + np.exp(-v))


def _projections(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """acc[f][j] = b[j] + sum_k w[j][k] * x[f][k], k ascending (every frame at once)."""
    acc = np.broadcast_to(b, (x.shape[0], b.size)).copy()
    for k in range(x.shape[1]):
        acc = acc + w[None, :, k] * x[:, k, None]
    return acc


def _dot_rows(w: np.ndarray, b: np.ndarray, h: np.ndarray) -> np.ndarray:
    """b[j] + sum_k w[j][k] * h[k], k ascending."""
    acc = b.copy()
    for k in range(h.size):
        acc = acc + w[:, k] * h[k]
    return acc


def _recurrent_operands(x, h, wx, wh, bias, *, t: int, input: int, hidden: int, gates: int,
                        what: str):
    if input < 1 or hidden < 1 or t < 0:
        raise ValueError(f"{what}: input, hidden >= 1 and t >= 0 needed")
    return (_f32(x, t * input, f"{what} x").reshape(t, input),
            _f32(h, hidden, f"{what} h"),
            _f32(wx, gates * hidden * input, f"{what} wx").reshape(gates * hidden, input),
            _f32(wh, gates * hidden * hidden, f"{what} wh").reshape(gates * hidden, hidden),
            _f32(bias, 2 * gates * hidden, f"{what} bias"))


def gru(x, h, wx, wh, bias, *, t: int, input: int, hidden: int,
        linear_before_reset: int) -> tuple[np.ndarray, np.ndarray]:
    """ONNX GRU (gates z, r, n), one direction, `t` frames from state h -> (y [t][hidden],
    the new h). wx [3H][I], wh [3H][H], bias [6H] = ONNX B (Wb z r n, Rb z r n). Per frame,
    with ax[j] = Wb[j] + wx[j].x, ah[j] = Rb[j] + wh[j].h (sums in order):
    z, r = sigmoid(ax + ah); n = tanh(ax_n + r * ah_n) when linear_before_reset, else
    tanh(ax_n + (Rb_n + wh_n.(r*h))); h = (1 - z) * n + z * h."""
    H = hidden
    xf, hv, wxf, whf, b = _recurrent_operands(x, h, wx, wh, bias, t=t, input=input, hidden=H,
                                              gates=3, what="gru")
    ax = _projections(xf, wxf, b[:3 * H])
    y = np.zeros((t, H), F32)
    for f in range(t):
        ah = _dot_rows(whf[:2 * H], b[3 * H:5 * H], hv)
        zr = _sigmoid(ax[f, :2 * H] + ah)
        z, r = zr[:H], zr[H:]
        if linear_before_reset:
            n = np.tanh(ax[f, 2 * H:] + r * _dot_rows(whf[2 * H:], b[5 * H:], hv))
        else:
            n = np.tanh(ax[f, 2 * H:] + _dot_rows(whf[2 * H:], b[5 * H:], r * hv))
        hv = ((F32(1) - z) * n + z * hv).astype(F32)
        y[f] = hv
    return y, hv


def lstm(x, h, c, wx, wh, bias, *, t: int, input: int, hidden: int
         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ONNX LSTM (gates i, o, f, c), one direction, no peepholes, `t` frames from state h, c
    -> (y [t][hidden], h, c). wx [4H][I], wh [4H][H], bias [8H] = ONNX B (Wb, Rb). Per frame,
    with pre[j] = (Wb[j] + wx[j].x) + (Rb[j] + wh[j].h): i, o, f = sigmoid(pre),
    g = tanh(pre); c = f * c + i * g; h = o * tanh(c)."""
    H = hidden
    xf, hv, wxf, whf, b = _recurrent_operands(x, h, wx, wh, bias, t=t, input=input, hidden=H,
                                              gates=4, what="lstm")
    cv = _f32(c, H, "lstm c")
    ax = _projections(xf, wxf, b[:4 * H])
    y = np.zeros((t, H), F32)
    for f in range(t):
        pre = ax[f] + _dot_rows(whf, b[4 * H:], hv)
        gates = _sigmoid(pre[:3 * H])
        i, o, fg = gates[:H], gates[H:2 * H], gates[2 * H:]
        cv = (fg * cv + i * np.tanh(pre[3 * H:])).astype(F32)
        hv = (o * np.tanh(cv)).astype(F32)
        y[f] = hv
    return y, hv, cv
