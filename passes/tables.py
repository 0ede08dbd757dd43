"""Lookup tables for nonlinear unary ops, computed at compile time from the exact float function."""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
import onnx_graphsurgeon as gs

from compiler.op_attrs import clip_bounds
from runtime.reference.kernels import round_to_int

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
    return None


TABLE_OPS = frozenset({"Relu", "Clip", "Sigmoid", "Silu", "Tanh", "LeakyRelu", "HardSigmoid",
                       "HardSwish", "Gelu", "Exp", "Softplus", "Elu", "Neg", "Abs", "Erf"})


def int8_table(node: gs.Node, exp_in: int, exp_out: int, mode: str) -> np.ndarray:
    """table[q + 128] = sat8(round(f(q * 2^exp_in) / 2^exp_out)) for q in -128..127."""
    f = _float_function(node)
    q = np.arange(-128, 128, dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        y = f(np.ldexp(q, exp_in)) / math.ldexp(1.0, exp_out)
    y = np.nan_to_num(y, nan=0.0, posinf=1e9, neginf=-1e9)
    return np.clip(round_to_int(y, mode), -128, 127).astype(np.int8)
