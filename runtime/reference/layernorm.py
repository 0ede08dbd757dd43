"""Bit-exact reference of the `layernorm` kernel family: LayerNormalization with integer mean
and variance and an exact integer square root (runtime/KERNELS.md, layernorm)."""
from __future__ import annotations

import numpy as np

from .kernels import (_DTYPES, _bias, _check_mode, _out_bits, _sat, _shift, _values,
                      round_div, round_shift)

#: rows longer than this overflow length * sum(x^2) in int64
MAX_LENGTH = 1 << 16
_LIMIT = (1 << 63) - 1


def bit_length(v: np.ndarray) -> np.ndarray:
    """Bits of each non-negative int64 value (0 for 0)."""
    v = np.asarray(v, np.int64)
    out = np.zeros(v.shape, np.int64)
    for k in range(63):
        out += (v >> k) > 0
    return out


def isqrt(v: np.ndarray) -> np.ndarray:
    """floor(sqrt(v)) of int64 values in [0, 2^62), exactly."""
    v = np.asarray(v, np.int64)
    s = np.floor(np.sqrt(v.astype(np.float64))).astype(np.int64)
    for _ in range(3):  # float64 is within one of the answer; settle it exactly
        s = np.where(s * s > v, s - 1, s)
        s = np.where((s + 1) * (s + 1) <= v, s + 1, s)
    return s


def normalizer(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(s, m) with s = isqrt(W * 4^m) in [2^30, 2^31) (W >> 2 for m = -1), i.e. s ~ sqrt(W) *
    2^m with 31 significant bits; s = 0 where W = 0."""
    k = 62 - bit_length(w)
    k = k - (k % 2)
    wn = np.where(k >= 0, w << np.maximum(k, 0), w >> np.maximum(-k, 0))
    return np.where(w == 0, 0, isqrt(wn)), k // 2


def layernorm(x, gamma, beta, shift, *, outer: int, length: int, inner: int, z_frac: int,
              eps_mant: int, eps_shift: int, mode: str, out_bits: int | None = None
              ) -> np.ndarray:
    """x [outer][length][inner] normalized over `length` for each (outer, inner); gamma
    [length] int8/int16, beta [length] int32/int64 at the exponent of Z * gamma, shift
    [length] -> y [outer][length][inner] of out_bits."""
    _check_mode(mode)
    if not 0 < length <= MAX_LENGTH or not 0 <= z_frac <= 31 or eps_mant < 0 \
            or not 0 <= eps_shift <= 62:
        raise ValueError(f"layernorm: need 0 < length <= {MAX_LENGTH}, z_frac in [0, 31], "
                         "eps_mant >= 0, eps_shift in [0, 62]")
    xf, xb = _values(x, outer * length * inner, "layernorm x")
    g, _ = _values(gamma, length, "layernorm gamma")
    b, _ = _bias(beta, length, "layernorm")
    sh = _shift(shift, length, "layernorm")
    ob = _out_bits(out_bits, xb, "layernorm")
    xs = xf.reshape(outer, length, inner).transpose(0, 2, 1)  # [outer][inner][length]
    total = xs.sum(axis=-1, keepdims=True)
    w = length * (xs * xs).sum(axis=-1, keepdims=True) - total * total
    eps = eps_mant << eps_shift
    if eps > _LIMIT or (w.size and int(w.max()) > _LIMIT - eps):
        raise OverflowError("layernorm: the variance plus epsilon does not fit int64")
    s, m = normalizer(w + eps)
    d = length * xs - total
    e = z_frac + m
    if np.any(np.abs(d) > (np.int64(_LIMIT) >> np.maximum(e, 0))):
        raise OverflowError("layernorm: D * 2^(z_frac + m) does not fit int64 (z_frac too big)")
    num = d * (np.int64(1) << np.maximum(e, 0))
    den = np.maximum(s, 1) * (np.int64(1) << np.maximum(-e, 0))
    z = np.where(s == 0, 0, round_div(num, den, mode))
    if z.size and int(np.abs(z).max()) * int(np.abs(g).max()) + int(np.abs(b).max()) > _LIMIT:
        raise OverflowError("layernorm: beta + Z * gamma does not fit int64")
    acc = b + z * g
    y = _sat(round_shift(acc, sh, mode), ob)
    return np.ascontiguousarray(y.transpose(0, 2, 1)).astype(_DTYPES[ob])
