"""The --snr-target search on a model of known noise and cost: it must reach the target, take
the cheapest promotions that do, prefer int8 weights when they buy the same, and drop what the
target does not need. (tests/test_quantization_acceptance.py runs it on the tutorial TCN.)"""
from __future__ import annotations

import math

from compiler.mixed_precision import Evaluation, PrecisionSearch, Promotion, noise

# noise power each layer adds at int8 and what promoting it costs; int16 removes its noise
LAYERS = {"a": (4e-4, 100), "b": (4e-4, 5000), "c": (1e-6, 10), "d": (2e-4, 400)}
INT8_WEIGHTS_KEEP = 0.01  # int16 activations with int8 weights leave 1% of the layer's noise
BASE_BYTES = 10_000
FLOOR = 1e-9  # the noise every configuration keeps


def evaluate(config: list[Promotion]) -> Evaluation:
    promoted = {p.layer: p for p in config}
    total, cost = FLOOR, BASE_BYTES
    for name, (n, c) in LAYERS.items():
        p = promoted.get(name)
        if p is None:
            total += n
        elif p.int8_weights:
            total += n * INT8_WEIGHTS_KEEP
            cost += c // 2
        else:
            cost += c
    return Evaluation(-10 * math.log10(total), cost)


def candidates(with_int8_weights: bool = False) -> list[Promotion]:
    out = [Promotion(n) for n in LAYERS]
    return out + ([Promotion(n, True) for n in LAYERS] if with_int8_weights else [])


def test_reaches_the_target_with_the_cheapest_promotions():
    target = -10 * math.log10(4e-4 + 2e-6)  # a and d must go, b may stay
    result = PrecisionSearch(evaluate, candidates()).run(target, [], candidates())
    assert result.snr_db >= target
    assert {p.layer for p in result.promotions} == {"a", "d"}
    assert result.added_bytes == 500 < result.all_int16_added_bytes == 5510


def test_int8_weights_are_taken_when_they_buy_the_same_for_less():
    target = -10 * math.log10(4e-4 + 1e-6 + 1e-5)
    result = PrecisionSearch(evaluate, candidates(True)).run(target, [], candidates())
    assert result.snr_db >= target
    assert all(p.int8_weights for p in result.promotions)
    assert result.added_bytes == 250


def test_a_met_target_promotes_nothing_and_user_promotions_stay():
    low = evaluate([]).snr_db - 1
    result = PrecisionSearch(evaluate, candidates()).run(low, [], candidates())
    assert result.promotions == [] and result.added_bytes == 0
    kept = PrecisionSearch(evaluate, candidates()).run(low, [Promotion("c")], candidates())
    assert kept.promotions == [Promotion("c")]


def test_noise_is_the_inverse_of_snr():
    assert math.isclose(noise(30.0), 1e-3)


def test_estimates_rank_and_evaluations_decide():
    """With a cheaper `estimate` (e.g. a calibration subset) candidates are ranked on estimates
    only; every promotion and drop is decided on full evaluations."""
    calls = {"evaluate": [], "estimate": []}

    def full(config):
        calls["evaluate"].append(config)
        return evaluate(config)

    def rough(config):  # the subset overstates d's noise: d ranks first, the result is the same
        calls["estimate"].append(config)
        e = evaluate(config)
        extra = 0.0 if any(p.layer == "d" for p in config) else 3e-3
        return Evaluation(-10 * math.log10(noise(e.snr_db) + extra), e.cost_bytes)

    target = -10 * math.log10(4e-4 + 2e-6)
    result = PrecisionSearch(full, candidates(), estimate=rough).run(target, [], candidates())
    assert {p.layer for p in result.promotions} == {"a", "d"}
    assert len(calls["estimate"]) == 1 + len(LAYERS)  # the baseline, then every candidate
    assert result.evaluations == len(calls["evaluate"]) + len(calls["estimate"])
    promoted = [c for c in calls["evaluate"] if len(c) == 1]
    assert promoted[0][0].layer == "d"  # the estimates' order, confirmed by an evaluation
