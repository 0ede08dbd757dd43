"""Calibration recipes (passes/observers.py) on distributions with known answers."""
from __future__ import annotations

import math

import numpy as np
import pytest

from passes import observers as obs
from passes.observers import (RECIPES, channel_exponents, kl_exponent, minmax_exponent,
                              mse_exponent, no_clip_exponent, observer, percentile_exponent,
                              qmax, quant_mse)


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def covered(x: np.ndarray, e: int, bits: int) -> bool:
    """Whether exponent e represents every value of x without clipping."""
    return float(np.max(np.abs(x))) <= qmax(bits) * 2.0 ** e


def uniform() -> np.ndarray:
    return rng(1).uniform(-1.0, 1.0, 100_000)


def gaussian_with_outliers() -> np.ndarray:
    """200k N(0, 1) values and two outliers at +-20: a 2^-5 range would hold the bulk."""
    return np.concatenate([rng(2).standard_normal(200_000), [20.0, -20.0]])


# --------------------------------------------------------------------------- exponent basics

@pytest.mark.parametrize("bits", [8, 16])
@pytest.mark.parametrize("max_abs", [1e-6, 0.3, 1.0, 127.0, 127.5, 4096.0, 3.3e5])
def test_no_clip_exponent_is_the_smallest_that_covers(max_abs, bits):
    e = no_clip_exponent(max_abs, bits)
    assert max_abs <= qmax(bits) * 2.0 ** e
    assert max_abs > qmax(bits) * 2.0 ** (e - 1)


def test_qmax_of_int8_and_int16():
    assert (qmax(8), qmax(16)) == (127, 32767)


def test_unknown_recipe_is_refused():
    with pytest.raises(ValueError, match="minmax"):
        observer("entropy")


def test_none_means_the_default_recipe():
    x = gaussian_with_outliers()
    assert observer(None)(x, 8) == observer(obs.DEFAULT_RECIPE)(x, 8)


# --------------------------------------------------------------------------- uniform

def test_uniform_int8_known_answers():
    x = uniform()  # max|x| just under 1
    # minmax and the 99.99th percentile (~0.9999) both need 127 * 2^-6 ~ 1.98
    assert minmax_exponent(x, 8) == -6
    assert percentile_exponent(x, 8, 99.99) == -6
    # 2^-7 resolves twice as finely and clips only (0.992, 1): MSE 5.1e-6 instead of 2.0e-5
    assert mse_exponent(x, 8) == -7
    assert quant_mse(x, -7, 8) < quant_mse(x, -6, 8) / 3
    # a flat histogram: the threshold 128 * 2^-7 = 1 loses nothing to clipping, 2^-8 half of it
    assert kl_exponent(x, 8) == -7


def test_uniform_int16_is_int8_shifted_by_the_extra_bits():
    x = uniform()
    assert minmax_exponent(x, 16) == -14  # 32767 * 2^-15 = 0.99997 < max|x|
    assert mse_exponent(x, 16) == -15
    for recipe in RECIPES:
        e8, e16 = observer(recipe)(x, 8), observer(recipe)(x, 16)
        assert e8 - 9 <= e16 <= e8 - 7, recipe


# --------------------------------------------------------------------------- outliers

def test_gaussian_with_outliers_minmax_keeps_them():
    x = gaussian_with_outliers()
    e = minmax_exponent(x, 8)
    assert e == -2 and covered(x, e, 8)


@pytest.mark.parametrize("recipe", ["percentile", "mse", "kl"])
def test_gaussian_with_outliers_clipping_recipes_clip_them(recipe):
    x = gaussian_with_outliers()
    e = observer(recipe, percentile=99.99)(x, 8)
    assert not covered(x, e, 8)  # the outliers saturate
    assert covered(x[:-2], e + 3, 8)  # but not far from the bulk's range
    assert quant_mse(x, e, 8) < quant_mse(x, minmax_exponent(x, 8), 8)


def test_gaussian_with_outliers_known_answers():
    x = gaussian_with_outliers()
    # 99.99th percentile of |N(0,1)| ~ 3.9 -> 127 * 2^-5 = 3.97
    assert percentile_exponent(x, 8, 99.99) == -5
    # clipping +-20 to 15.9 costs 1.7e-4, halving the step from 2^-2 saves 3.9e-3
    assert mse_exponent(x, 8) == -3


def test_lower_percentile_clips_more():
    x = gaussian_with_outliers()
    assert percentile_exponent(x, 8, 99.0) <= percentile_exponent(x, 8, 99.99) \
        <= percentile_exponent(x, 8, 100.0) == minmax_exponent(x, 8)


def test_mse_is_the_exact_optimum_over_every_exponent():
    for x in (uniform()[:20_000], np.concatenate([rng(2).standard_normal(20_000), [9.0]]),
              rng(3).laplace(size=20_000), np.maximum(rng(4).standard_normal(20_000), 0)):
        for bits in (8, 16):
            top = minmax_exponent(x, bits)
            errors = {e: quant_mse(x, e, bits) for e in range(top + 2, top - 14, -1)}
            assert mse_exponent(x, bits) == min(errors, key=lambda e: (errors[e], -e))


def test_mse_counts_the_asymmetric_int_range():
    # 65/128 needs 2^-7; so does -1 = -128 * 2^-7, but +1 would clip to 127/128 there
    assert mse_exponent(np.array([-1.0, 65 / 128]), 8) == -7
    assert mse_exponent(np.array([1.0, 65 / 128]), 8) == -6  # equal errors: the coarser


def test_int16_mse_keeps_outliers_int8_mse_clips():
    x = gaussian_with_outliers()
    assert not covered(x, mse_exponent(x, 8), 8)
    assert covered(x, mse_exponent(x, 16), 16)  # int16 rounding is too fine to trade for


def test_int16_kl_cannot_resolve_the_levels_and_keeps_the_range():
    x = gaussian_with_outliers()
    assert kl_exponent(x, 16) == minmax_exponent(x, 16)


def test_kl_ignores_exact_zeros():
    x = np.maximum(rng(5).standard_normal(100_000), 0.0)  # ReLU: half exact zeros
    assert kl_exponent(x, 8) == kl_exponent(x[x > 0], 8)


def test_bounded_mse_matches_the_exact_answer():
    x = np.concatenate([rng(6).standard_normal(300_000), [12.0, -15.0]])
    assert mse_exponent(x, 8, max_samples=1 << 15) == mse_exponent(x, 8, max_samples=1 << 20)
    assert mse_exponent(x, 16, max_samples=1 << 15) == mse_exponent(x, 16, max_samples=1 << 20)


# --------------------------------------------------------------------------- degenerate inputs

@pytest.mark.parametrize("recipe", RECIPES)
@pytest.mark.parametrize("bits", [8, 16])
def test_all_zeros_and_empty(recipe, bits):
    assert observer(recipe)(np.zeros(1000), bits) == 0
    assert observer(recipe)(np.zeros(0), bits) == 0


@pytest.mark.parametrize("recipe", RECIPES)
@pytest.mark.parametrize("bits", [8, 16])
@pytest.mark.parametrize("value", [0.3, -0.3, 5.0, 1e-4])
def test_one_value_is_covered(recipe, bits, value):
    """A constant tensor: every recipe picks the no-clip exponent (anything finer clips it)."""
    e = observer(recipe)(np.full(500, value), bits)
    assert e == no_clip_exponent(abs(value), bits)
    assert abs(value - np.clip(round(value / 2.0 ** e), -qmax(bits) - 1, qmax(bits)) * 2.0 ** e) \
        <= 2.0 ** (e - 1)


def test_percentile_of_a_mostly_zero_tensor_keeps_the_rare_values():
    x = np.zeros(100_000)
    x[:3] = [0.5, -2.0, 1.0]  # 99.99th percentile of |x| is 0
    assert percentile_exponent(x, 8, 99.99) == minmax_exponent(x, 8)


# --------------------------------------------------------------------------- weights

def test_channel_exponents_one_per_row():
    w = rng(7).standard_normal((4, 3, 5))
    w[1] *= 0.01
    e = channel_exponents(w, 8, "minmax")
    assert e.shape == (4,) and e.dtype == np.int32
    for c in range(4):
        assert e[c] == minmax_exponent(w[c], 8)
    assert e[0] - e[1] >= 6


def test_channel_exponents_mse_never_worse_than_minmax():
    w = rng(8).standard_normal((6, 32))
    w[2, 0] = 9.0  # one large weight
    e_mse, e_mm = channel_exponents(w, 8, "mse"), channel_exponents(w, 8, "minmax")
    for c in range(6):
        assert quant_mse(w[c], e_mse[c], 8) <= quant_mse(w[c], e_mm[c], 8)


def test_all_zero_channel_takes_the_largest_exponent():
    w = rng(9).standard_normal((3, 8))
    w[1] = 0.0
    e = channel_exponents(w, 8, "mse")
    assert e[1] == max(e[0], e[2])


def test_recipes_are_fast_on_a_million_values():
    import time
    x = rng(10).standard_normal(1 << 20).astype(np.float32)
    for recipe in RECIPES:
        start = time.perf_counter()
        observer(recipe)(x, 8)
        assert time.perf_counter() - start < 2.0, recipe
    assert math.isfinite(quant_mse(x, -4, 8))


def test_default_is_mse_at_int8_and_the_range_with_margin_at_int16_without_maxima():
    """Without per-sample maxima (or too few to have a spread) int16 keeps 25% margin: a
    maximum in the top fifth of its power-of-two range (0.45 of 0.5) gets the next range, one
    well inside it (0.3) keeps its own."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal(4000)
    assert obs.observer(None)(x, 8) == obs.mse_exponent(x, 8)
    near_top = np.append(rng.uniform(-0.2, 0.2, 999), 0.45)
    inside = np.append(rng.uniform(-0.2, 0.2, 999), 0.3)
    for v in (near_top, inside):
        assert obs.observer(None)(v, 16) == obs.margin_exponent(v, 16)
        few = np.full(obs.MIN_MAXIMA - 1, 0.2)
        assert obs.observer(None)(v, 16, few) == obs.margin_exponent(v, 16)
    assert obs.margin_exponent(near_top, 16) == obs.minmax_exponent(near_top, 16) + 1
    assert obs.margin_exponent(inside, 16) == obs.minmax_exponent(inside, 16)


def test_int16_headroom_follows_the_spread_of_the_per_sample_maxima():
    """Every sample reaching the same maximum (a bounded activation) needs no headroom even at
    the top of its range; maxima that spread widely get the next range, since new inputs
    will go beyond the calibration maximum."""
    rng = np.random.default_rng(7)
    x = np.append(rng.uniform(-0.3, 0.3, 4000), 0.49)  # range 0.5 at e = -16
    tight = 0.49 - rng.uniform(0.0, 0.002, 64)
    spread = rng.uniform(0.2, 0.49, 64)
    e = obs.minmax_exponent(x, 16)
    assert obs.observer(None)(x, 16, tight) == e
    assert obs.observer(None)(x, 16, spread) == e + 1
    assert obs.gumbel_scale(np.full(10, 3.0)) == 0.0
    # well inside its range nothing moves, whatever the spread
    inside = x * 0.6
    assert obs.observer(None)(inside, 16, spread * 0.6) == obs.minmax_exponent(inside, 16)
    # the explicit recipes ignore the maxima; int8 stays MSE
    assert obs.observer("minmax")(x, 16, spread) == e
    assert obs.observer(None)(x, 8, spread) == obs.mse_exponent(x, 8)
