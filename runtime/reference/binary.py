"""Bit-exact reference of the `binary` kernel family: element-wise ops of two operands with
numpy broadcasting through strides (runtime/KERNELS.md, binary)."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .kernels import _DTYPES, _bits, _check_mode, _out_bits, _sat_act, round_div, round_shift

#: `op` codes (RILL_BINARY_* in C).
BINARY_ADD, BINARY_SUB, BINARY_MUL, BINARY_DIV, BINARY_MAX, BINARY_MIN, BINARY_PRELU = range(7)
BINARY_OPS = {"add": BINARY_ADD, "sub": BINARY_SUB, "mul": BINARY_MUL, "div": BINARY_DIV,
              "max": BINARY_MAX, "min": BINARY_MIN, "prelu": BINARY_PRELU}
#: the alignment shifts of add/sub/max/min/prelu
MAX_ALIGN_SHIFT = 47
_LIMIT = 1 << 63


def _gather(operand, shape: tuple[int, ...], strides: Sequence[int], what: str
            ) -> tuple[np.ndarray, int]:
    """The operand's value at every output index (int64, in y's shape) and its bits."""
    arr = np.asarray(operand)
    bits = _bits(arr, what)
    index = np.zeros(shape, np.int64)
    for k, (n, s) in enumerate(zip(shape, strides)):
        view = [1] * 4
        view[k] = n
        index = index + (np.arange(n, dtype=np.int64) * int(s)).reshape(view)
    flat = arr.reshape(-1).astype(np.int64)
    if index.size and (index.min() < 0 or index.max() >= flat.size):
        raise ValueError(f"{what}: strides {list(strides)} reach outside its {flat.size} elements")
    return flat[index], bits


def _check_terms(mag: int, what: str) -> None:
    if mag > _LIMIT:
        raise OverflowError(f"binary: {what} does not fit int64 (the compiler must prevent it)")


def binary(a, b, *, op: int, shape: Sequence[int], a_stride: Sequence[int],
           b_stride: Sequence[int], shift_a: int, shift_b: int, shift_out: int, act_min: int,
           act_max: int, mode: str, out_bits: int | None = None) -> np.ndarray:
    """y [shape] (4-D, contiguous) = op(a, b) read through the operands' strides, requantized
    and clamped (KERNELS.md, binary); a and b int8/int16 independently; out_bits defaults to
    a's bits."""
    _check_mode(mode)
    shape = tuple(int(n) for n in shape)
    if len(shape) != 4 or len(a_stride) != 4 or len(b_stride) != 4 or min(shape) < 0:
        raise ValueError("binary: shape, a_stride and b_stride have 4 entries, shape >= 0")
    if op not in BINARY_OPS.values():
        raise ValueError(f"binary: unknown op {op}")
    if not (0 <= shift_a <= MAX_ALIGN_SHIFT and 0 <= shift_b <= MAX_ALIGN_SHIFT):
        raise ValueError(f"binary: shift_a and shift_b must be in [0, {MAX_ALIGN_SHIFT}]")
    va, a_bits = _gather(a, shape, a_stride, "binary a")
    vb, _ = _gather(b, shape, b_stride, "binary b")
    ob = _out_bits(out_bits, a_bits, "binary")
    if va.size == 0:
        return np.zeros(shape, _DTYPES[ob])
    ma, mb = int(np.abs(va).max()), int(np.abs(vb).max())
    sa, sb = np.int64(1) << np.int64(shift_a), np.int64(1) << np.int64(shift_b)
    if op in (BINARY_ADD, BINARY_SUB, BINARY_MAX, BINARY_MIN, BINARY_PRELU):
        _check_terms((ma << shift_a) + (mb << shift_b), "|a|*2^shift_a + |b|*2^shift_b")
    if op == BINARY_ADD:
        r = round_shift(va * sa + vb * sb, shift_out, mode)
    elif op == BINARY_SUB:
        r = round_shift(va * sa - vb * sb, shift_out, mode)
    elif op == BINARY_MUL:
        if shift_a or shift_b:
            raise ValueError("binary mul: shift_a and shift_b are 0")
        r = round_shift(va * vb, shift_out, mode)
    elif op == BINARY_MAX:
        r = round_shift(np.maximum(va * sa, vb * sb), shift_out, mode)
    elif op == BINARY_MIN:
        r = round_shift(np.minimum(va * sa, vb * sb), shift_out, mode)
    elif op == BINARY_PRELU:
        if ((ma * mb) << shift_b) >= _LIMIT:
            raise OverflowError("binary prelu: |a*b|*2^shift_b does not fit int64")
        r = round_shift(np.where(va >= 0, va * sa, va * vb * sb), shift_out, mode)
    else:
        r = _divide(va, vb, shift_out, ob, mode)
    return _sat_act(r, ob, act_min, act_max, "binary")


def _divide(va: np.ndarray, vb: np.ndarray, shift_out: int, out_bits: int, mode: str
            ) -> np.ndarray:
    """va/vb / 2^shift_out rounded once; division by zero saturates by the numerator's sign."""
    if abs(shift_out) > MAX_ALIGN_SHIFT:
        raise OverflowError(f"binary div: |shift_out| must be <= {MAX_ALIGN_SHIFT}")
    lo, hi = -(1 << (out_bits - 1)), (1 << (out_bits - 1)) - 1
    sign = np.where(vb < 0, -1, 1).astype(np.int64)
    num = sign * va * (np.int64(1) << np.int64(max(0, -shift_out)))
    den = np.abs(vb) * (np.int64(1) << np.int64(max(0, shift_out)))
    q = round_div(num, np.maximum(den, 1), mode)
    by_zero = np.where(va > 0, hi, np.where(va < 0, lo, 0))
    return np.where(vb == 0, by_zero, q)
