"""Refine activation exponents for the model's output error, not each tensor's own error.

Calibration picks every int8 tensor's exponent from that tensor's values alone (clipping against
resolution, tensor by tensor). What matters is the output: a coarser exponent early may cost
less than the clipping it avoids downstream, or the reverse. This pass does a coordinate descent
over the exponent groups (tensors that share one exponent): each group tries one step finer
and one coarser, and keeps the change when the output SNR on the calibration data improves.

The output SNR is measured on the QDQ model (codegen/qdq_export.py) in onnxruntime: the float
model with every tensor and weight fake-quantized exactly as the integer program quantizes
them, so one evaluation costs milliseconds instead of a full integer simulation.
"""
from __future__ import annotations

import numpy as np
import onnx

from codegen.qdq_export import apply_qdq, plan_from_facts
from compiler.context import CompileContext
from compiler.graph import to_runnable
from compiler.ort import session
from compiler.pass_manager import Pass
from compiler.streams import snr_db
from passes.quant_rules import fixed_exponents
from passes.streaming_cut import is_per_call_model

MAX_SAMPLES = 32  # calibration inputs used per evaluation
SWEEPS = 2
MIN_GAIN_DB = 0.02  # ignore changes within measurement noise


class OutputSNR:
    """Output SNR of the fake-quantized float model for a given set of exponents."""

    def __init__(self, model: onnx.ModelProto, data: np.ndarray):
        self.model = model
        sess = session(model)
        self.in_name = sess.get_inputs()[0].name
        self.out_names = [o.name for o in sess.get_outputs()]
        self.data = [x.astype(np.float32) for x in data]
        self.refs = np.concatenate([self.run(sess, x) for x in self.data])

    def run(self, sess, x: np.ndarray) -> np.ndarray:
        return np.concatenate([np.asarray(v, np.float64).reshape(-1)
                               for v in sess.run(self.out_names, {self.in_name: x})])

    def __call__(self, facts: dict, bits: int, mode: str) -> float:
        sess = session(apply_qdq(self.model, plan_from_facts(facts, bits, mode)))
        return snr_db(self.refs, np.concatenate([self.run(sess, x) for x in self.data]))


def exponent_groups(facts: dict) -> list[list[str]]:
    """Tensors that share one exponent: the propagation's tie groups, plus every other tensor
    with an exponent on its own."""
    groups = [list(g) for g in facts["exponent_groups"]]
    tied = {m for g in groups for m in g}
    return groups + [[t] for t in sorted(facts["exponents"]) if t not in tied]


class RefineExponents(Pass):
    name = "refine-exponents"
    requires = frozenset({"qparams-propagated"})
    ensures = frozenset({"exponents-refined"})

    def run(self, ctx: CompileContext) -> bool:
        facts = ctx.facts
        if facts.get("skip_refine") or is_per_call_model(facts.get("streaming")):
            return False
        model = to_runnable(facts.get("offline_graph", ctx.graph))
        names = {v.name for v in model.graph.value_info} | \
            {o for n in model.graph.node for o in n.output} | {i.name for i in model.graph.input}
        fixed = fixed_exponents(ctx.graph, facts)
        bits = facts.get("tensor_bits", {})
        # int16 tensors keep their calibrated range: their resolution is ample, and an exponent
        # tuned to the calibration data would clip inputs slightly beyond it
        groups = [g for g in exponent_groups(facts)
                  if not any(m in fixed for m in g) and any(m in names for m in g)
                  and all(bits.get(m, ctx.options.bits) == 8 for m in g)]
        if not groups:
            return False
        score = OutputSNR(model, ctx.options.calib[:MAX_SAMPLES])
        bits, mode = ctx.options.bits, ctx.options.target.rounding
        best = score(facts, bits, mode)
        start, changed = best, False
        for sweep in range(SWEEPS):
            improved = False
            for i, group in enumerate(groups):
                ctx.progress(f"refine-exponents: sweep {sweep + 1}, group {i + 1}/{len(groups)}, "
                             f"output SNR {best:.2f} dB")
                current = facts["exponents"][group[0]]
                for e in (current - 1, current + 1):
                    self.set_group(facts, group, e)
                    snr = score(facts, bits, mode)
                    if snr > best + MIN_GAIN_DB:
                        best, current, improved, changed = snr, e, True, True
                    self.set_group(facts, group, current)
            if not improved:
                break
        facts["exponent_refinement"] = {"before_db": round(start, 2), "after_db": round(best, 2)}
        return changed

    @staticmethod
    def set_group(facts: dict, group: list[str], exp: int) -> None:
        for m in group:
            facts["exponents"][m] = exp
