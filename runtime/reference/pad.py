"""Bit-exact reference of the `pad` kernel family: constant, reflect, edge and wrap padding (and
cropping, with negative pads) of a tensor of up to 4 dims (runtime/KERNELS.md, pad)."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .kernels import _DTYPES, _check_value, _out_bits, _values

#: `mode` codes (RILL_PAD_* in C).
PAD_CONSTANT, PAD_REFLECT, PAD_EDGE, PAD_WRAP = range(4)
PAD_MODES = {"constant": PAD_CONSTANT, "reflect": PAD_REFLECT, "edge": PAD_EDGE,
             "wrap": PAD_WRAP}


def pad_index(i: np.ndarray, n: int, mode: int) -> np.ndarray:
    """The input index each (shifted) output index reads along an axis of n elements; -1 for
    the constant value."""
    i = np.asarray(i, np.int64)
    inside = (i >= 0) & (i < n)
    if n <= 0 or mode == PAD_CONSTANT:
        out = np.full(i.shape, -1, np.int64)
    elif mode == PAD_REFLECT:
        if n == 1:
            out = np.zeros(i.shape, np.int64)
        else:
            period = 2 * (n - 1)
            j = np.abs(i) % period
            out = np.where(j >= n, period - j, j)
    elif mode == PAD_EDGE:
        out = np.where(i < 0, 0, n - 1)
    elif mode == PAD_WRAP:
        out = np.mod(i, n)
    else:
        raise ValueError(f"pad: unknown mode {mode}")
    return np.where(inside, i, out)


def pad(x, *, mode: int, value: int, in_shape: Sequence[int], pad_lo: Sequence[int],
        pad_hi: Sequence[int], out_bits: int | None = None) -> np.ndarray:
    """y [in_shape + pad_lo + pad_hi] from x [in_shape] (4 dims each, contiguous, one type)."""
    if not (len(in_shape) == len(pad_lo) == len(pad_hi) == 4):
        raise ValueError("pad: in_shape, pad_lo and pad_hi have 4 entries")
    shape = [int(n) for n in in_shape]
    out = [n + int(lo) + int(hi) for n, lo, hi in zip(shape, pad_lo, pad_hi)]
    if min(shape) < 0 or min(out) < 0:
        raise ValueError(f"pad: negative size (in {shape}, out {out})")
    xf, xb = _values(x, int(np.prod(shape)), "pad x")
    if _out_bits(out_bits, xb, "pad") != xb:
        raise ValueError("pad: the output has the input's type")
    _check_value(value, xb, "pad value")
    index = [pad_index(np.arange(o) - int(lo), n, mode) for o, n, lo in zip(out, shape, pad_lo)]
    src = xf.reshape(shape)
    safe = [np.maximum(i, 0) for i in index]
    y = src[np.ix_(*safe)] if src.size else np.zeros(out, np.int64)
    outside = np.zeros(out, bool)
    for d, i in enumerate(index):
        view = [1] * 4
        view[d] = out[d]
        outside |= (i < 0).reshape(view)
    return np.where(outside, int(value), y).astype(_DTYPES[xb])
