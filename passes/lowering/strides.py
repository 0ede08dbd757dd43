"""Element strides of stored tensors, for kernels that read operands through strides (binary,
matmul): numpy broadcasting and any stored layout (time-major or ONNX order) become at most four
output dimensions with one stride per operand, so no operand is copied into another layout."""
from __future__ import annotations

from typing import Sequence

import numpy as np

MAX_DIMS = 4


def onnx_strides(shape: Sequence[int], perm: Sequence[int]) -> list[int]:
    """The element stride of every ONNX axis of a tensor stored contiguously in the axis order
    `perm` (time-major tensors: time right after the batch axis)."""
    strides = [0] * len(shape)
    step = 1
    for axis in reversed(list(perm)):
        strides[axis] = step
        step *= int(shape[axis])
    return strides


def broadcast_strides(shape: Sequence[int], perm: Sequence[int], out_rank: int) -> list[int]:
    """Strides along each of `out_rank` output axes of an operand broadcast to the output
    (numpy rules: the operand's axes align right; size-1 and missing axes get stride 0)."""
    own = onnx_strides(shape, perm)
    offset = out_rank - len(shape)
    out = [0] * out_rank
    for j, n in enumerate(shape):
        out[j + offset] = own[j] if n != 1 else 0
    return out


def collapse(sizes: Sequence[int], strides: Sequence[Sequence[int]]
             ) -> tuple[list[int], list[list[int]]] | None:
    """Merge adjacent dimensions that every operand walks contiguously (or broadcasts) and drop
    size-1 ones; padded to MAX_DIMS with leading (1, stride 0) dimensions, or None when more
    than MAX_DIMS remain. `sizes` are the output's dims in its storage order (the output is
    contiguous), `strides[i]` operand i's stride along each of them."""
    dims = [(int(n), [int(s[d]) for s in strides]) for d, n in enumerate(sizes) if n != 1]
    merged: list[tuple[int, list[int]]] = []
    for n, st in dims:
        if merged and all(p == s * n for p, s in zip(merged[-1][1], st)):
            merged[-1] = (merged[-1][0] * n, st)
        else:
            merged.append((n, st))
    if any(n == 0 for n, _ in dims):
        merged = [(0, [0] * len(strides))]
    if len(merged) > MAX_DIMS:
        return None
    merged = [(1, [0] * len(strides))] * (MAX_DIMS - len(merged)) + merged
    return [n for n, _ in merged], [[st[i] for _, st in merged] for i in range(len(strides))]


def stored_order(out_shape: Sequence[int], out_perm: Sequence[int],
                 operand_strides: Sequence[Sequence[int]]) -> tuple[list[int], list[list[int]]]:
    """The output's dims in storage order and each operand's strides along them."""
    sizes = [int(out_shape[a]) for a in out_perm]
    return sizes, [[int(s[a]) for a in out_perm] for s in operand_strides]


def element_count(shape: Sequence[int]) -> int:
    return int(np.prod(shape, dtype=np.int64)) if len(shape) else 1
