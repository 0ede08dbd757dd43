"""Choose the quantization parameters of every activation and weight (contract §3).

Activations get one exponent per tensor from the calibration values; Conv/Gemm weights one per
output channel. Biases, shifts and tables are derived later from these in lowering.
"""
from __future__ import annotations

import numpy as np

from compiler.context import CompileContext
from compiler.errors import RillError
from compiler.graph import node_label
from compiler.pass_manager import Pass
from passes.quant_rules import fixed_exponents, out_channel_weights, plan_recurrent
from passes.quant_scheme import PowerOfTwoScheme

WEIGHTED_OPS = {"Conv", "FusedConv", "Gemm", "FusedGemm", "ConvTranspose"}


class Quantize(Pass):
    name = "quantize"
    requires = frozenset({"calibrated"})
    ensures = frozenset({"quantized"})

    def run(self, ctx: CompileContext) -> bool:
        scheme = PowerOfTwoScheme(ctx.options.bits)
        samples = ctx.facts["calibration"]
        exps: dict[str, int] = {}
        for name, values in samples.items():
            if values.size and not np.all(np.isfinite(values)):
                raise RillError(f"tensor '{name}' takes non-finite values (NaN/Inf) on the "
                                "calibration data; check the model's weights and the data")
            exps[name] = scheme.choose(values).exp
        weight_exps: dict[str, np.ndarray] = {}
        for node in ctx.graph.nodes:
            if node.op not in WEIGHTED_OPS:
                continue
            w = out_channel_weights(node)
            if not np.all(np.isfinite(w)):
                raise RillError(f"{node_label(node)}: weights contain NaN or Inf")
            weight_exps[node.name] = np.array([q.exp for q in scheme.choose_per_channel(w)], np.int32)
        ctx.facts["recurrent_plans"] = {n.name: plan_recurrent(n, ctx, exps[n.inputs[0].name])
                                         for n in ctx.graph.nodes if n.op in ("GRU", "LSTM")}
        exps.update(fixed_exponents(ctx.graph, ctx.facts))
        ctx.facts["scheme"] = scheme
        ctx.facts["exponents"] = exps
        ctx.facts["weight_exponents"] = weight_exps
        return False
