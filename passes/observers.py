"""Calibration recipes: the power-of-two exponent of one tensor from its calibration values.

Rill quantizes real = q * 2^e with q in int8 [-128, 127] or int16 [-32768, 32767]. Each recipe
maps the calibration values of one tensor (or of one weight row) to e. They differ in how they
trade clipping (large values saturate) against resolution (small values round to few levels):

- `minmax`: never clips; the smallest e with max|x| <= qmax * 2^e. Safe, but one outlier
  coarsens the grid of the whole tensor.
- `percentile`: ignores the top (100 - p)% of |x| (outliers), then as minmax.
- `kl`: TensorRT-style entropy calibration: the threshold whose quantized histogram loses
  the least information (KL divergence) about the calibration histogram, with the thresholds
  restricted to the power-of-two ranges the integer kernels can use.
- `mse`: the e that minimizes the quantization MSE of the values themselves, computed exactly
  (every sample, the real integer range and rounding) over a wide range of candidates.

The recipes only see values; NaN/Inf are refused upstream (Quantize names the tensor).
"""
from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

RECIPES = ("minmax", "percentile", "kl", "mse")
DEFAULT_RECIPE = "mse"  # int8; measured: bench/quant/calibration_methods.py, docs/quantization.md
INT16_RANGE_MARGIN = 1.25  # the int16 fallback without per-sample maxima (default_exponent)
# int16 headroom: the calibration maximum plus this many Gumbel scales of the per-sample maxima
# (the expected maximum over e ~ 2.7x as much data). Measured (docs/quantization.md): 1 gives
# the held-out SNR of a range that knew the held-out data within ~1 dB; 1.25x margin costs 2-4 dB.
INT16_HEADROOM_SCALES = 0.5
MIN_MAXIMA = 8  # fewer calibration samples say nothing about the spread of their maxima

# MSE looks this many exponents below the no-clip one: clipping 2^12 = 4096x the range is never
# optimal in practice, and every candidate is one cheap pass over the samples.
MSE_SEARCH_DEPTH = 12
MSE_MAX_SAMPLES = 1 << 18  # larger tensors: exact tail + weighted uniform sample of the bulk

# KL: TensorRT's 2048-bin histogram. Its thresholds run from 128 bins (one per int8 level) to
# all 2048; the power-of-two ones among them are 2048, 1024, 512, 256 and 128 bins: 5 exponents.
KL_BINS = 2048
KL_EPS = 1e-4  # smoothing of empty bins in Q where P has mass (as TensorRT does)


def qmax(bits: int) -> int:
    """Largest integer of a signed `bits`-bit type (127 for int8, 32767 for int16)."""
    return (1 << (bits - 1)) - 1


def no_clip_exponent(max_abs: float, bits: int) -> int:
    """The smallest e with max_abs <= qmax * 2^e (0 for an all-zero tensor: any e is exact)."""
    if not np.isfinite(max_abs) or max_abs <= 0:
        return 0
    e = math.ceil(math.log2(max_abs / qmax(bits)))
    # log2 may round across an integer: make the condition exact
    if max_abs > qmax(bits) * math.ldexp(1.0, e):
        e += 1
    elif max_abs <= qmax(bits) * math.ldexp(1.0, e - 1):
        e -= 1
    return e


def fake_quant(x: np.ndarray, exp: int, bits: int) -> np.ndarray:
    """x quantized at 2^exp and back, saturated to the signed integer range (float64)."""
    q = np.rint(np.ldexp(np.asarray(x, np.float64), -exp))
    np.clip(q, -qmax(bits) - 1, qmax(bits), out=q)
    return np.ldexp(q, exp)


def quant_mse(x: np.ndarray, exp: int, bits: int) -> float:
    """Mean squared quantization error of x at exponent exp (0 for no values)."""
    x = np.asarray(x, np.float64).reshape(-1)
    if not x.size:
        return 0.0
    d = fake_quant(x, exp, bits)
    d -= x
    return float(np.sum(np.square(d))) / x.size  # not np.dot: BLAS threads stall under load


def _flat(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, np.float64).reshape(-1)


def minmax_exponent(x: np.ndarray, bits: int) -> int:
    """No clipping at all: the range covers max|x|."""
    x = _flat(x)
    return no_clip_exponent(float(np.max(np.abs(x))) if x.size else 0.0, bits)


def percentile_exponent(x: np.ndarray, bits: int, percentile: float = 99.99) -> int:
    """The range covers the `percentile`-th percentile of |x|; rarer, larger values clip.

    When that percentile is 0 (a tensor that is almost all zeros) the rare non-zero values are
    the signal, so the range falls back to covering them (minmax).
    """
    a = np.abs(_flat(x))
    if not a.size:
        return 0
    threshold = float(np.percentile(a, percentile))
    if threshold <= 0:
        return minmax_exponent(a, bits)
    return no_clip_exponent(threshold, bits)


def mse_exponent(x: np.ndarray, bits: int, depth: int = MSE_SEARCH_DEPTH,
                 max_samples: int = MSE_MAX_SAMPLES, seed: int = 0) -> int:
    """The exponent with the least quantization MSE, from the no-clip one down `depth` steps.

    The error is exact: the real integer range (including -2^(bits-1)) and round-to-nearest,
    on every value. Tensors larger than `max_samples` are bounded: the largest values (the ones
    clipping decides about) are kept exactly and a uniform sample of the rest stands for the
    bulk with its weight. Ties go to the coarser exponent.
    """
    x = _flat(x)
    if not x.size:
        return 0
    top = minmax_exponent(x, bits)
    tail, bulk, weight = _bounded(x, max_samples, seed)
    best, best_err = top, math.inf
    for e in range(top, top - depth - 1, -1):
        err = quant_mse(tail, e, bits) * tail.size + quant_mse(bulk, e, bits) * bulk.size * weight
        if err < best_err:
            best, best_err = e, err
    return best


def _bounded(x: np.ndarray, n: int, seed: int) -> tuple[np.ndarray, np.ndarray, float]:
    """(tail, bulk, bulk weight): all of x when it has at most n values; else the n/16 largest
    |x| exactly and a uniform sample of the others, each standing for `weight` of them."""
    if x.size <= n:
        return x, x[:0], 0.0
    keep = n // 16
    order = np.argpartition(np.abs(x), x.size - keep)
    tail, rest = x[order[x.size - keep:]], x[order[:x.size - keep]]
    bulk = np.random.default_rng(seed).choice(rest, n - keep, replace=False)
    return tail, bulk, rest.size / bulk.size


def kl_exponent(x: np.ndarray, bits: int, bins: int = KL_BINS) -> int:
    """Entropy calibration (TensorRT's KL method) over power-of-two thresholds.

    A histogram of the non-zero |x| spans the no-clip range L * 2^top (L = qmax + 1 levels).
    For each candidate e = top - j, P is the histogram up to the threshold L * 2^e with
    everything beyond added to its last bin (clipped values saturate there), and Q is the
    same histogram as L levels would see it: each level's mass spread evenly over its non-empty
    bins. The candidate with the least KL(P || Q) wins. Exact zeros are left out: they quantize
    exactly at any exponent, and a ReLU's spike at zero would swamp the comparison.

    A candidate needs at least one bin per level to be judged, so int8 has 5 candidates. int16
    has 32768 levels, more than the histogram has bins: it cannot see int16 rounding at all,
    only clipping, so KL keeps the no-clip exponent (the same as minmax) at 16 bits.
    """
    a = np.abs(_flat(x))
    a = a[a > 0]
    if not a.size:
        return 0
    top = no_clip_exponent(float(a.max()), bits)
    levels = qmax(bits) + 1
    index = (a * (bins / math.ldexp(levels, top))).astype(np.int64)
    hist = np.bincount(np.minimum(index, bins - 1), minlength=bins).astype(np.float64)
    best, best_kl = top, math.inf
    n, e = bins, top
    while n >= levels:
        kl = _kl_divergence(_reference(hist, n), _quantized(hist[:n], levels))
        if kl < best_kl:
            best, best_kl = e, kl
        n, e = n // 2, e - 1
    return best


def _reference(hist: np.ndarray, n: int) -> np.ndarray:
    """P: the first n bins, with the clipped tail added to the last one."""
    p = hist[:n].copy()
    p[-1] += hist[n:].sum()
    return p


def _quantized(hist: np.ndarray, levels: int) -> np.ndarray:
    """Q: each of `levels` equal groups of bins keeps its mass, spread over its non-empty bins."""
    groups = hist.reshape(levels, -1)
    used = groups > 0
    count = np.maximum(used.sum(axis=1, keepdims=True), 1)
    return (np.where(used, groups.sum(axis=1, keepdims=True) / count, 0.0)).reshape(-1)


def _kl_divergence(p: np.ndarray, q: np.ndarray) -> float:
    """KL(P || Q) of two histograms, normalized; Q smoothed where P has mass and Q has none."""
    p = p / p.sum()
    q = q / q.sum() if q.sum() > 0 else q
    holes = (q == 0) & (p > 0)
    if holes.any():
        q = np.where(q > 0, q * (1 - KL_EPS), 0.0)
        q[holes] = KL_EPS / holes.sum()
    m = p > 0
    return float(np.sum(p[m] * np.log(p[m] / q[m])))


def margin_exponent(x: np.ndarray, bits: int, margin: float = INT16_RANGE_MARGIN) -> int:
    """The calibration range with `margin`: no clipping traded for resolution, and a maximum
    close to the top of its power-of-two range gets the next one."""
    xf = _flat(x)
    return no_clip_exponent(float(np.max(np.abs(xf))) * margin if xf.size else 0.0, bits)


def gumbel_scale(maxima: np.ndarray) -> float:
    """Scale of a Gumbel fit (method of moments: sd * sqrt(6) / pi) to per-sample maxima: the
    maximum of n samples grows by about scale * ln(k) when n grows k-fold."""
    return float(np.std(np.asarray(maxima, np.float64))) * math.sqrt(6.0) / math.pi


def headroom_exponent(x: np.ndarray, bits: int, maxima: np.ndarray,
                      scales: float = INT16_HEADROOM_SCALES) -> int:
    """The no-clip range of the calibration maximum plus `scales` Gumbel scales of the
    per-sample maxima: headroom where the maxima of new inputs spread widely, none where every
    input reaches about the same maximum (a bounded activation, a normalized signal)."""
    xf = _flat(x)
    top = float(np.max(np.abs(xf))) if xf.size else 0.0
    return no_clip_exponent(top + scales * gumbel_scale(maxima), bits)


def default_exponent(x: np.ndarray, bits: int, maxima: np.ndarray | None = None) -> int:
    """What Rill uses without --calibration. int8: MSE. int16: resolution is ample (~80-90 dB
    per tensor) and what costs SNR is clipping new inputs slightly beyond the calibration data
    (one clipped value costs more than the whole rounding noise), so the range with headroom
    from the spread of the per-sample maxima (`maxima`, one max|x| per calibration sample);
    without them (fewer than MIN_MAXIMA samples) the range with 25% margin."""
    if bits == 8:
        return mse_exponent(x, bits)
    if maxima is not None and len(maxima) >= MIN_MAXIMA:
        return headroom_exponent(x, bits, maxima)
    return margin_exponent(x, bits)


Observer = Callable[..., int]  # (values, bits, maxima=None) -> exponent


def observer(recipe: str | None, percentile: float = 99.99) -> Observer:
    """The function (values, bits, maxima=None) -> exponent of a recipe name; None:
    `default_exponent`. Only the default uses the per-sample maxima."""
    if recipe is None:
        return default_exponent
    choose: Callable[[np.ndarray, int], int]
    if recipe == "minmax":
        choose = minmax_exponent
    elif recipe == "percentile":
        choose = lambda x, bits: percentile_exponent(x, bits, percentile)  # noqa: E731
    elif recipe == "kl":
        choose = kl_exponent
    elif recipe == "mse":
        choose = mse_exponent
    else:
        raise ValueError(f"unknown calibration recipe {recipe!r}; choose one of {', '.join(RECIPES)}")
    return lambda x, bits, maxima=None: choose(x, bits)


def channel_exponents(w: np.ndarray, bits: int, recipe: str = "mse") -> np.ndarray:
    """One exponent per output channel (axis 0) of a weight array, by `recipe`.

    All-zero channels get the exponent of the largest channel so that their requantization
    shift stays in range (their weights are exact at any exponent).
    """
    choose = observer(recipe)
    rows = np.asarray(w).reshape(w.shape[0], -1)
    exps = np.array([choose(r, bits) for r in rows], np.int32)
    zero = ~np.any(rows != 0, axis=1)
    if zero.any() and not zero.all():
        exps[zero] = exps[~zero].max()
    return exps
