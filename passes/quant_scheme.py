"""Quantization schemes: how real values map to integers.

Rill's scheme today is symmetric power-of-two (real = q * 2^exp), the one ESP-DL's kernels use.
Passes only talk to a `QuantScheme`, so an affine TFLite-style scheme (scale, zero point) for
ESP-NN can be added as another implementation without touching them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from passes import observers


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
    """Chooses power-of-two exponents with calibration recipes (passes/observers.py): `recipe`
    for tensors, `weight_recipe` for weight rows (per output channel).

    Tensors default to `observers.default_exponent` (MSE at int8; at int16 the range with
    headroom from the spread of the per-sample maxima), weights to MSE; Quantize passes the
    recipe the user chose. MSE starts from the smallest exponent that represents max|x| without clipping and also tries finer ones that
    clip the rare large values but resolve the bulk better, keeping the least-error one.
    """

    name = "pow2"

    def __init__(self, bits: int = 8, recipe: str | None = None, percentile: float = 99.99,
                 weight_recipe: str = "mse"):
        self.bits = bits
        # the recipe's name; None (the default) is DEFAULT_RECIPE at int8, the margin at int16
        self.recipe, self.weight_recipe = recipe or observers.DEFAULT_RECIPE, weight_recipe
        self._choose = observers.observer(recipe, percentile)

    def no_clip_exp(self, max_abs: float) -> int:
        return observers.no_clip_exponent(max_abs, self.bits)

    def choose(self, samples: np.ndarray, bits: int | None = None,
               maxima: np.ndarray | None = None) -> PowerOfTwo:
        """The exponent of one tensor (at `bits`, default the scheme's) from its samples and,
        where known, its per-calibration-sample maxima (the int16 default's headroom)."""
        bits = self.bits if bits is None else bits
        return PowerOfTwo(self._choose(samples, bits, maxima), bits)

    def choose_per_channel(self, w: np.ndarray, bits: int | None = None) -> list[PowerOfTwo]:
        """One exponent per output channel (axis 0)."""
        bits = self.bits if bits is None else bits
        return [PowerOfTwo(int(e), bits)
                for e in observers.channel_exponents(w, bits, self.weight_recipe)]
