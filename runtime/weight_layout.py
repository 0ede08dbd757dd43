"""How the C kernels store a weighted step's constant arrays (conv1d, gemm): chosen at compile
time for the kernel that reads them.

A lowered step keeps the logical arrays of runtime/KERNELS.md (`w [c_out][kernel][cg]`,
`[n][k]` for gemm; `bias` at the accumulator's exponent), which the Python reference computes
from. The code generator emits `c_arrays(...)` instead and passes the two layout fields of the
C params struct (`LAYOUT_FIELDS`, after the spec's fields):

- `wblock` (>= 1): the weights in blocks of `wblock` output channels, each block
  `[kernel][cg][width]` (channels innermost; the last block `width = c_out mod wblock` channels
  wide when that is not 0). A register block of the kernel then walks one pointer with
  immediate offsets. `wblock = 1` is the logical layout. Dense convs and Gemm get `DENSE_BLOCK`
  (16: the kernels' widest register block; their 8-channel blocks read half a block);
  grouped and depthwise convs keep 1 (a depthwise kernel reads each channel's taps together).
- `rq_bias` (0/1): 1 when every bias already holds the rounding constant of its channel's
  requantization, `2^(s-1)` (half up) or `2^(s-1) - 1` (half even): the kernel's output stage is
  then a floor shift (half even: `q = floor(t / 2^s)`, `y = floor((t + (q & 1)) / 2^s)`, exact at
  ties) instead of the general rounding. Only with an int32 accumulator, every shift in
  [1, 31], and `|bias + c| + sum|w| * max|x| + 1 < 2^31` for every channel (so no partial sum
  overflows whatever the order).

Report sizes do not change: the same elements, reordered, and a bias of the same type.
"""
from __future__ import annotations

import numpy as np

LAYOUT_FIELDS = ("wblock", "rq_bias")
LAYOUT_FAMILIES = ("conv1d", "gemm")
DENSE_BLOCK = 16  # the weight blocks of runtime/c/conv1d.c and gemm.c: 16 output channels
INT32_MAX = 2**31 - 1


def weight_rows(op: str, params: dict) -> tuple[int, int, bool]:
    """(c_out, weights per output channel, dense) of a conv1d/gemm step's params."""
    if op == "gemm":
        return params["n"], params["k"], True
    return (params["c_out"], params["kernel"] * params["c_in"] // params["groups"],
            params["groups"] == 1)


def block_weights(w: np.ndarray, c_out: int, wblock: int) -> np.ndarray:
    """The logical `w [c_out][rows]` (any shape of that size) in blocks of `wblock` channels,
    channels innermost: flat, the same dtype."""
    w2 = np.asarray(w).reshape(c_out, -1)
    return np.concatenate([w2[b:b + wblock].T.reshape(-1) for b in range(0, c_out, wblock)]
                          or [w2.reshape(-1)])


def rounding_constant(shift: np.ndarray, mode: str) -> np.ndarray:
    """Per channel: what `rq_bias` adds to the bias (int64)."""
    half = np.left_shift(np.int64(1), shift.astype(np.int64) - 1)
    return half if mode == "half_up" else half - 1


def can_fold(bias: np.ndarray, shift: np.ndarray, w: np.ndarray, c_out: int, x_bits: int,
             mode: str) -> bool:
    """Whether the rounding constant fits in the bias (see the module docstring)."""
    bias, shift = np.asarray(bias), np.asarray(shift).astype(np.int64)
    if bias.dtype != np.int32 or np.any(shift < 1) or np.any(shift > 31):
        return False
    folded = bias.astype(np.int64) + rounding_constant(shift, mode)
    products = np.abs(np.asarray(w).astype(np.int64)).reshape(c_out, -1).sum(axis=1)
    bound = np.abs(folded) + products * (1 << (x_bits - 1)) + 1
    return bool(np.all(bound <= INT32_MAX))


def choose(op: str, params: dict, arrays: dict, x_bits: int, mode: str) -> dict[str, int]:
    """The layout fields of a conv1d/gemm step (x_bits: its input's bits)."""
    c_out, _, dense = weight_rows(op, params)
    fold = can_fold(arrays["bias"], arrays["shift"], arrays["w"], c_out, x_bits, mode)
    return {"wblock": DENSE_BLOCK if dense else 1, "rq_bias": int(fold)}


def c_arrays(op: str, params: dict, arrays: dict, layout: dict[str, int],
             mode: str) -> dict[str, np.ndarray]:
    """The step's arrays as its C kernel reads them with `layout` (the logical arrays for
    wblock 1 and rq_bias 0)."""
    c_out, _, _ = weight_rows(op, params)
    out = dict(arrays)
    if layout["wblock"] != 1:
        out["w"] = block_weights(arrays["w"], c_out, layout["wblock"])
    if layout["rq_bias"]:
        shift = np.asarray(arrays["shift"])
        out["bias"] = (np.asarray(arrays["bias"]).astype(np.int64)
                       + rounding_constant(shift, mode)).astype(np.int32)
    return out


def c_step(op: str, params: dict, arrays: dict, x_bits: int,
           mode: str) -> tuple[dict, dict[str, np.ndarray]]:
    """(params with the layout fields, arrays in that layout) of a conv1d/gemm step: what the
    code generator emits."""
    layout = choose(op, params, arrays, x_bits, mode)
    return {**params, **layout}, c_arrays(op, params, arrays, layout, mode)
