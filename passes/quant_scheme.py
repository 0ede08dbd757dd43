"""Quantization schemes: how real values map to integers.

Rill's scheme today is symmetric power-of-two (real = q * 2^exp), the one ESP-DL's kernels use.
Passes only talk to a `QuantScheme`, so an affine TFLite-style scheme (scale, zero point) for
ESP-NN can be added as another implementation without touching them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PowerOfTwo:
    """real = q * 2**exp, q in [qmin, qmax]."""

    exp: int
    bits: int = 8

    @property
    def qmax(self) -> int:
        return (1 << (self.bits - 1)) - 1

    @property
    def qmin(self) -> int:
        return -(1 << (self.bits - 1))

    def fake_quant(self, x: np.ndarray) -> np.ndarray:
        scale = math.ldexp(1.0, self.exp)
        return np.clip(np.rint(x / scale), self.qmin, self.qmax) * scale


class PowerOfTwoScheme:
    """Chooses exponents by minimizing the quantization MSE over a few candidates.

    Starting from the smallest exponent that represents max|x| without clipping, it also tries
    finer exponents that clip the rare large values but resolve the bulk better.
    """

    name = "pow2"
    search_depth = 4

    def __init__(self, bits: int = 8):
        self.bits = bits

    def _qmax(self) -> int:
        return (1 << (self.bits - 1)) - 1

    def no_clip_exp(self, max_abs: float) -> int:
        if not np.isfinite(max_abs) or max_abs <= 0:
            return 0
        return int(math.ceil(math.log2(max_abs / self._qmax())))

    def choose(self, samples: np.ndarray) -> PowerOfTwo:
        x = np.asarray(samples, np.float64).reshape(-1)
        top = self.no_clip_exp(float(np.max(np.abs(x))) if x.size else 0.0)
        best, best_err = PowerOfTwo(top, self.bits), math.inf
        for e in range(top, top - self.search_depth - 1, -1):
            q = PowerOfTwo(e, self.bits)
            err = float(np.mean((q.fake_quant(x) - x) ** 2)) if x.size else 0.0
            if err < best_err:
                best, best_err = q, err
        return best

    def choose_per_channel(self, w: np.ndarray) -> list[PowerOfTwo]:
        """One exponent per output channel (axis 0)."""
        return [self.choose(w[c]) for c in range(w.shape[0])]
