"""`--snr-target DB`: promote layers to int16 until the output SNR reaches DB, at little cost.

Cost is what the issue counts: the extra bytes of weights and activations (every buffer of the
lowered program: scratch tensors, state, input and output) over the all-int8 program. A layer's
promotion can mean int16 activations with int16 weights, or int16 activations with int8 weights
(half the flash), whichever buys more SNR per byte.

The search is measured, not modeled: every candidate promotion is compiled and simulated
bit-exactly once, on a subset of the calibration data (an estimate is enough to order them,
and ranking is most of the search's time); promotions are then taken in order of noise removed
per added byte, re-measuring on all the calibration data after each, until the target holds;
finally promotions that the target no longer needs (most expensive first) are dropped again.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from runtime.ir import Program

RANK_SAMPLES = 16  # calibration inputs the candidates are ranked on (all of them decide)


@dataclass(frozen=True)
class Promotion:
    """One layer at int16 activations; `int8_weights` keeps its weights at int8."""

    layer: str
    int8_weights: bool = False

    def label(self) -> str:
        return self.layer + (" (int8 weights)" if self.int8_weights else "")


@dataclass
class Evaluation:
    snr_db: float
    cost_bytes: int  # weights + activation buffers


@dataclass
class SearchResult:
    promotions: list[Promotion]
    snr_db: float
    added_bytes: int
    all_int16_added_bytes: int
    evaluations: int
    trace: list[dict] = field(default_factory=list)

    def as_json(self, target_db: float) -> dict:
        return {"target_db": target_db, "achieved_db": round(self.snr_db, 2),
                "int16_layers": [p.layer for p in self.promotions],
                "int8_weight_layers": [p.layer for p in self.promotions if p.int8_weights],
                "added_bytes": self.added_bytes,
                "all_int16_added_bytes": self.all_int16_added_bytes,
                "evaluations": self.evaluations, "steps": self.trace}


def program_bytes(program: Program) -> int:
    """Weights plus every activation buffer (what promotions make bigger)."""
    return program.weight_bytes + sum(b.nbytes for b in program.buffers.values())


def noise(snr_db: float) -> float:
    """Noise power relative to the signal: the quantity promotions remove."""
    return 10.0 ** (-snr_db / 10.0)


class PrecisionSearch:
    """Greedy measured search over promotions; `evaluate` compiles and simulates one config,
    `estimate` (default: `evaluate`) does so more cheaply, to rank the candidates."""

    def __init__(self, evaluate: Callable[[list[Promotion]], Evaluation],
                 candidates: list[Promotion], *, progress: Callable[[str], None] = lambda s: None,
                 estimate: Callable[[list[Promotion]], Evaluation] | None = None):
        self.evaluate_config = evaluate
        self.estimate_config = estimate or evaluate
        self.candidates = candidates
        self.progress = progress
        self.count = 0
        self.trace: list[dict] = []

    def evaluate(self, config: list[Promotion]) -> Evaluation:
        self.count += 1
        return self.evaluate_config(config)

    def estimate(self, config: list[Promotion]) -> Evaluation:
        self.count += 1
        return self.estimate_config(config)

    def run(self, target_db: float, base: list[Promotion], all_int16: list[Promotion]
            ) -> SearchResult:
        int8 = self.evaluate([])
        current = self.evaluate(base) if base else int8
        chosen = list(base)
        layers = {p.layer for p in chosen}
        if current.snr_db < target_db:
            ranked = self.rank([c for c in self.candidates if c.layer not in layers], chosen,
                               current)
            for cand in ranked:
                if current.snr_db >= target_db:
                    break
                if cand.layer in {p.layer for p in chosen}:
                    continue
                trial = self.evaluate(chosen + [cand])
                self.step("promote", cand, trial)
                if trial.snr_db > current.snr_db:
                    chosen, current = chosen + [cand], trial
            chosen, current = self.prune(chosen, current, target_db, base)
        full = self.evaluate(all_int16)
        return SearchResult(chosen, current.snr_db, current.cost_bytes - int8.cost_bytes,
                            full.cost_bytes - int8.cost_bytes, self.count, self.trace)

    def rank(self, candidates: list[Promotion], chosen: list[Promotion], current: Evaluation
             ) -> list[Promotion]:
        """Candidates by noise removed per added byte, each estimated on top of `chosen`
        (`current`, re-estimated when estimates and evaluations differ)."""
        if self.estimate_config is not self.evaluate_config:
            current = self.estimate(chosen)
        scored = []
        for i, cand in enumerate(candidates):
            self.progress(f"snr-target: measuring {cand.label()} ({i + 1}/{len(candidates)})")
            e = self.estimate(chosen + [cand])
            gain = noise(current.snr_db) - noise(e.snr_db)
            added = max(e.cost_bytes - current.cost_bytes, 1)
            self.trace.append({"measure": cand.label(), "snr_db": round(e.snr_db, 2),
                               "added_bytes": added})
            if gain > 0:
                scored.append((gain / added, cand))
        scored.sort(key=lambda s: -s[0])
        return [c for _, c in scored]

    def prune(self, chosen: list[Promotion], current: Evaluation, target_db: float,
              keep: list[Promotion]) -> tuple[list[Promotion], Evaluation]:
        """Drop promotions the target does not need, most expensive first."""
        if current.snr_db < target_db:
            return chosen, current
        for cand in sorted((c for c in chosen if c not in keep),
                           key=lambda c: c.int8_weights):  # int16-weight promotions first
            trial_config = [c for c in chosen if c != cand]
            trial = self.evaluate(trial_config)
            if trial.snr_db >= target_db:
                self.step("drop", cand, trial)
                chosen, current = trial_config, trial
        return chosen, current

    def step(self, action: str, cand: Promotion, e: Evaluation) -> None:
        self.progress(f"snr-target: {action} {cand.label()}: {e.snr_db:.2f} dB, "
                      f"{e.cost_bytes} B")
        self.trace.append({action: cand.label(), "snr_db": round(e.snr_db, 2),
                           "bytes": e.cost_bytes})
