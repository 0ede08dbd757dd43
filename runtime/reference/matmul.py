"""Bit-exact reference of the `matmul` kernel family: a batched product of two operands (either
one a constant) read and written through strides (runtime/KERNELS.md, matmul)."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .kernels import _DTYPES, _bits, _check_mode, _out_bits, _sat_act, round_shift

ACC_BITS = (32, 64)


def _read(operand, dims: tuple[int, ...], strides: Sequence[int], what: str
          ) -> tuple[np.ndarray, int]:
    """The operand as an int64 array of `dims` (4-D) through its strides, and its bits."""
    arr = np.asarray(operand)
    bits = _bits(arr, what)
    index = np.zeros(dims, np.int64)
    for d, (n, s) in enumerate(zip(dims, strides)):
        view = [1] * 4
        view[d] = n
        index = index + (np.arange(n, dtype=np.int64) * int(s)).reshape(view)
    flat = arr.reshape(-1).astype(np.int64)
    if index.size and (index.min() < 0 or index.max() >= flat.size):
        raise ValueError(f"{what}: strides {list(strides)} reach outside its {flat.size} elements")
    return flat[index], bits


def matmul(a, b, *, batch0: int, batch1: int, m: int, k: int, n: int, a_stride: Sequence[int],
           b_stride: Sequence[int], y_stride: Sequence[int], shift: int, act_min: int,
           act_max: int, acc_bits: int, mode: str, out_bits: int | None = None) -> np.ndarray:
    """y (flat, batch0*batch1*m*n elements) with y[i0*ys0 + i1*ys1 + i*ys2 + j*ys3] =
    clamp(sat_Y(round_shift(sum_l a * b, shift))) (y_stride a permutation of a contiguous
    layout). Products and the sum in int`acc_bits`."""
    _check_mode(mode)
    if acc_bits not in ACC_BITS:
        raise ValueError(f"matmul: acc_bits must be 32 or 64, got {acc_bits}")
    va, a_bits = _read(a, (batch0, batch1, m, k), a_stride, "matmul a")
    vb, _ = _read(b, (batch0, batch1, k, n), b_stride, "matmul b")
    ob = _out_bits(out_bits, a_bits, "matmul")
    bound = np.abs(va) @ np.abs(vb) if va.size and vb.size else np.zeros((batch0, batch1, m, n),
                                                                          np.int64)
    if bound.size and int(bound.max()) > (1 << (acc_bits - 1)) - 1:
        raise OverflowError(f"matmul: the int{acc_bits} accumulator could overflow")
    acc = va @ vb if k else np.zeros((batch0, batch1, m, n), np.int64)
    r = _sat_act(round_shift(acc, shift, mode), ob, act_min, act_max, "matmul")
    size = batch0 * batch1 * m * n
    y = np.zeros(size, _DTYPES[ob])
    index = np.zeros((batch0, batch1, m, n), np.int64)
    for d, (cnt, s) in enumerate(zip((batch0, batch1, m, n), y_stride)):
        view = [1] * 4
        view[d] = cnt
        index = index + (np.arange(cnt, dtype=np.int64) * int(s)).reshape(view)
    if index.size and (index.min() < 0 or index.max() >= size):
        raise ValueError("matmul: y_stride reaches outside y")
    y[index.reshape(-1)] = r.reshape(-1)
    return y
