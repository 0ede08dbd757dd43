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

Float accumulation (`fx_choice`, runtime/c/conv1d_fx.c): on a core whose FPU has a fused
multiply-add (the ESP32-P4), an int8 conv1d or gemm runs as `conv1d_fx` when float32 holds every
partial sum exactly: every channel's `|bias| + 1 + sum|w| * 128 < 2^23` (`fx_exact`; the 1
covers half up's added 1/2). Its arrays (`fx_arrays`): dense convs and gemm keep `w` in the
blocked layout, int8 from `FX_INT8_FRAMES` output frames per call, else float32 holding the same
integers (each weight then feeds one frame: a float load saves the conversion; 4x those weights'
flash; without `float_weights` such layers keep the integer kernel); `bias` float32 (+ 1/2 for
half up, shift >= 1); `scale` float32 `2^-shift`. Depthwise convs hold float32 taps and bias
already scaled by `2^-shift` (exact) and `scale` 1. The result is the integer kernel's, bit for
bit.
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


# ----------------------------------------------------------------- float accumulation (fx)

FX_LIMIT = 1 << 23     # |partial sums| + 1/2 below this: exact in float32 (24-bit significand)
FX_INT8_FRAMES = 4     # from this many output frames per call, fx weights stay int8
FX_MAX_SHIFT = 62      # 2^-shift is a normal float far beyond this; keeps the check simple


def fx_exact(bias: np.ndarray, shift: np.ndarray, w: np.ndarray, c_out: int,
             x_bits: int) -> bool:
    """Whether a step's sums are exact in float32 for every int8 input: int8 x and w, an int32
    bias, 0 <= shift <= FX_MAX_SHIFT, and every channel's |bias| + 1 + sum|w| * 128 < 2^23."""
    bias, shift, w = np.asarray(bias), np.asarray(shift).astype(np.int64), np.asarray(w)
    if x_bits != 8 or w.dtype != np.int8 or bias.dtype != np.int32:
        return False
    if np.any(shift < 0) or np.any(shift > FX_MAX_SHIFT):
        return False
    products = np.abs(w.astype(np.int64)).reshape(c_out, -1).sum(axis=1)
    bound = np.abs(bias.astype(np.int64)) + 1 + products * 128
    return bool(np.all(bound < FX_LIMIT))


def out_frames(op: str, params: dict) -> int:
    """Output frames one call of a conv1d/gemm step computes."""
    if op == "gemm":
        return params["m"]
    span = (params["t_in"] + params["pad_l"] + params["pad_r"]
            - params["dilation"] * (params["kernel"] - 1) - 1)
    return 0 if span < 0 else span // params["stride"] + 1


def interior_frames(p: dict) -> int:
    """Output frames of a conv1d whose taps all read inside its input (rill_conv_frames' t_b -
    t_a)."""
    t_out = out_frames("conv1d", p)
    s = p["stride"]
    t_a = 0 if p["pad_l"] <= 0 else (p["pad_l"] + s - 1) // s
    t_b = p["t_in"] - 1 - p["dilation"] * (p["kernel"] - 1) + p["pad_l"]
    t_b = min(0 if t_b < 0 else t_b // s + 1, t_out)
    return t_b - min(t_a, t_b)


def fx_choice(op: str, params: dict, arrays: dict, x_bits: int,
              float_weights: bool = True) -> str | None:
    """None, or the weight type of the step's float-accumulating kernel. Dense convs and gemm:
    "int8" from FX_INT8_FRAMES output frames per call; fewer, "f32" when `float_weights` allows
    it, else None (with a conversion per weight use the integer kernel is as fast). Depthwise
    convs: "f32" (their taps scaled at compile time; c_out * kernel of them). Other groupings:
    None (they gain little)."""
    c_out, _, dense = weight_rows(op, params)
    depthwise = op == "conv1d" and params["groups"] == params["c_in"] == c_out
    if not (dense or depthwise):
        return None
    if not fx_exact(arrays["bias"], arrays["shift"], arrays["w"], c_out, x_bits):
        return None
    if depthwise:  # taps scaled at compile time, float32 (c_out * kernel of them: few)
        return "f32"
    if out_frames(op, params) >= FX_INT8_FRAMES:
        return "int8"
    return "f32" if float_weights else None


def gemm_as_conv(params: dict) -> dict:
    """A gemm's params as the pointwise conv1d it is (x [m][k] = m frames of k channels, w
    [n][k] = [c_out][1][c_in]): the code generator runs gemm steps on conv1d's kernels."""
    return dict(t_in=params["m"], c_in=params["k"], c_out=params["n"], kernel=1, stride=1,
                dilation=1, groups=1, pad_l=0, pad_r=0, act_min=params["act_min"],
                act_max=params["act_max"])


def fx_conv_params(op: str, params: dict) -> dict:
    """The conv1d params of a conv1d/gemm step (gemm: `gemm_as_conv`), with the layout fields:
    dense weights in DENSE_BLOCK-channel blocks."""
    if op == "gemm":
        params = gemm_as_conv(params)
    _, _, dense = weight_rows("conv1d", params)
    return {**params, "wblock": DENSE_BLOCK if dense else 1, "rq_bias": 0}


def fx_arrays(op: str, params: dict, arrays: dict, weights: str,
              mode: str) -> dict[str, np.ndarray]:
    """w (int8 or float32, `weights`), bias and scale as conv1d_fx reads them: dense convs
    their integers and scale 2^-shift; depthwise convs the taps and bias scaled by 2^-shift
    (exact) and scale 1."""
    conv = fx_conv_params(op, params)
    shift = np.asarray(arrays["shift"]).astype(np.int64)
    w = block_weights(arrays["w"], conv["c_out"], conv["wblock"]).astype(np.float64)
    half = (shift >= 1) if mode == "half_up" else np.zeros(shift.shape, bool)
    bias = np.asarray(arrays["bias"]).astype(np.float64) + 0.5 * half
    scale = np.ldexp(1.0, -shift)
    if conv["groups"] > 1:  # depthwise: w [c][kernel], scaled (no longer integers)
        if weights != "f32":
            raise ValueError("a depthwise conv1d_fx holds float32 weights")
        w, bias, scale = w * np.repeat(scale, conv["kernel"]), bias * scale, np.ones_like(scale)
    return {"w": w.astype(np.float32) if weights == "f32" else w.astype(np.int8),
            "bias": bias.astype(np.float32), "scale": scale.astype(np.float32)}
