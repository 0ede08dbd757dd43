"""Lookup tables for nonlinear unary ops, computed at compile time from the exact float function.

int8 inputs read a 256-entry table of the output type; int16 inputs an interpolated int32 table
(runtime/KERNELS.md, lut). `lut_plan` builds either for the `lut` kernel family."""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
import onnx_graphsurgeon as gs

from compiler.graph import const_value
from compiler.op_attrs import clip_bounds
from runtime.reference.kernels import lut, round_to_int

_erf = np.vectorize(math.erf)


def _float_function(node: gs.Node) -> Callable[[np.ndarray], np.ndarray] | None:
    a = node.attrs
    op = node.op
    if op == "Relu":
        return lambda x: np.maximum(x, 0.0)
    if op == "Clip":
        lo, hi = clip_bounds(node)
        return lambda x: np.clip(x, lo, hi)
    if op == "Sigmoid":
        return lambda x: 1.0 / (1.0 + np.exp(-x))
    if op == "Silu":
        return lambda x: x / (1.0 + np.exp(-x))
    if op == "Tanh":
        return np.tanh
    if op == "LeakyRelu":
        alpha = float(a.get("alpha", 0.01))
        return lambda x: np.where(x >= 0, x, alpha * x)
    if op == "HardSigmoid":
        alpha, beta = float(a.get("alpha", 0.2)), float(a.get("beta", 0.5))
        return lambda x: np.clip(alpha * x + beta, 0.0, 1.0)
    if op == "HardSwish":
        return lambda x: x * np.clip(x / 6.0 + 0.5, 0.0, 1.0)
    if op == "Gelu":
        if a.get("approximate", "none") in ("tanh", b"tanh"):
            return lambda x: 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))
        return lambda x: 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))
    if op == "Exp":
        return np.exp
    if op == "Softplus":
        return lambda x: np.logaddexp(0.0, x)
    if op == "Elu":
        alpha = float(a.get("alpha", 1.0))
        return lambda x: np.where(x > 0, x, alpha * np.expm1(x))
    if op == "Neg":
        return lambda x: -x
    if op == "Abs":
        return np.abs
    if op == "Erf":
        return _erf
    if op == "Sqrt":
        return np.sqrt
    if op == "Reciprocal":
        return lambda x: 1.0 / x
    if op == "Pow":
        p = pow_exponent(node)
        return None if p is None else (lambda x: np.power(x, p))
    return None


def pow_exponent(node: gs.Node) -> float | None:
    """The constant exponent of a Pow node (a scalar), else None."""
    value = const_value(node.inputs[1]) if len(node.inputs) > 1 else None
    if value is None or np.asarray(value).size != 1:
        return None
    return float(np.asarray(value).reshape(-1)[0])


TABLE_OPS = frozenset({"Relu", "Clip", "Sigmoid", "Silu", "Tanh", "LeakyRelu", "HardSigmoid",
                       "HardSwish", "Gelu", "Exp", "Softplus", "Elu", "Neg", "Abs", "Erf", "Sqrt",
                       "Reciprocal", "Pow"})


#: int16-input tables: frac_bits from 16 (2 knots) down to this (4097 knots, 16 KB).
MIN_FRAC_BITS = 4
#: Knots are stored unsaturated (interpolation between them stays meaningful) within +-2^24.
KNOT_LIMIT = 2**24
_DTYPES = {8: np.int8, 16: np.int16}


def _values(f: Callable[[np.ndarray], np.ndarray], q: np.ndarray, exp_in: int,
            exp_out: int) -> np.ndarray:
    """f(q * 2^exp_in) / 2^exp_out in float64 (NaN -> 0, infinities -> +-1e30)."""
    with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
        y = f(np.ldexp(q.astype(np.float64), exp_in)) / math.ldexp(1.0, exp_out)
    return np.nan_to_num(np.asarray(y, dtype=np.float64), nan=0.0, posinf=1e30, neginf=-1e30)


def _function(node: gs.Node) -> Callable[[np.ndarray], np.ndarray]:
    f = _float_function(node)
    if f is None:
        raise ValueError(f"no table for op {node.op!r}")
    return f


def direct_table(node: gs.Node, exp_in: int, exp_out: int, out_bits: int,
                 mode: str) -> np.ndarray:
    """The 256-entry table of an int8 input: table[q + 128] = sat_Y(round(f(q * 2^exp_in) /
    2^exp_out)) for q in -128..127, as int8 or int16 by out_bits."""
    lo, hi = -(1 << (out_bits - 1)), (1 << (out_bits - 1)) - 1
    y = _values(_function(node), np.arange(-128, 128), exp_in, exp_out)
    return np.clip(round_to_int(y, mode), lo, hi).astype(_DTYPES[out_bits])


def interpolated_table(node: gs.Node, exp_in: int, exp_out: int, frac_bits: int,
                       mode: str) -> np.ndarray:
    """The int32 knots of an int16 input's table: f at u = i * 2^frac_bits (x = u - 32768,
    i = 0..2^(16 - frac_bits), the last knot one step past the int16 range) in output units,
    rounded exactly and clipped to +-KNOT_LIMIT (not saturated to the output type)."""
    x = np.arange((1 << (16 - frac_bits)) + 1, dtype=np.int64) * (1 << frac_bits) - 32768
    y = _values(_function(node), x, exp_in, exp_out)
    return np.clip(round_to_int(y, mode), -KNOT_LIMIT, KNOT_LIMIT).astype(np.int32)


def lut_plan(node: gs.Node, exp_in: int, exp_out: int, in_bits: int, out_bits: int,
             mode: str) -> tuple[dict[str, int], dict[str, np.ndarray]]:
    """Params and arrays of the `lut` step computing `node`'s function from exponent exp_in
    (in_bits) to exp_out (out_bits); the lowering adds `n`.

    int8 input: ({"frac_bits": 0}, {"table": 256 entries of the output type}), exactly rounded.
    int16 input: the smallest interpolated table (frac_bits from 16 down to MIN_FRAC_BITS)
    whose worst error over all 65536 inputs, |y - v| with v the exact value saturated to the
    output range, is at most 0.5 LSB above the exactly rounded table's worst error (itself
    <= 0.5): i.e. interpolation adds at most half an LSB. When no table qualifies, the finest
    (frac_bits = MIN_FRAC_BITS). The error is measured with the reference kernel itself."""
    if in_bits not in _DTYPES or out_bits not in _DTYPES:
        raise ValueError(f"lut_plan: bits must be 8 or 16, got {in_bits}, {out_bits}")
    if in_bits == 8:
        return {"frac_bits": 0}, {"table": direct_table(node, exp_in, exp_out, out_bits, mode)}
    lo, hi = -(1 << (out_bits - 1)), (1 << (out_bits - 1)) - 1
    x = np.arange(-32768, 32768, dtype=np.int64)
    exact = np.clip(_values(_function(node), x, exp_in, exp_out), lo, hi)
    budget = float(np.max(np.abs(np.clip(round_to_int(exact, mode), lo, hi) - exact))) + 0.5
    xq = x.astype(np.int16)
    for frac_bits in range(16, MIN_FRAC_BITS - 1, -1):
        table = interpolated_table(node, exp_in, exp_out, frac_bits, mode)
        y = lut(xq, table, frac_bits=frac_bits, mode=mode, out_bits=out_bits)
        if float(np.max(np.abs(y.astype(np.float64) - exact))) <= budget:
            break
    return {"frac_bits": frac_bits}, {"table": table}


def int8_table(node: gs.Node, exp_in: int, exp_out: int, mode: str) -> np.ndarray:
    """table[q + 128] = sat8(round(f(q * 2^exp_in) / 2^exp_out)) for q in -128..127 (the int8 ->
    int8 case of `lut_plan`)."""
    return direct_table(node, exp_in, exp_out, 8, mode)
