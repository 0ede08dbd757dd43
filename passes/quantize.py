"""Choose the quantization parameters of every activation and weight (contract §3).

Activations get one exponent per tensor from the calibration values, by the calibration recipe
(Options.calibration, else observers.default_exponent: MSE at int8, the range with headroom
from the per-sample maxima (`calibration_maxima`) at int16; passes/observers.py), at the tensor's bits (`tensor_bits`, default
--bits). Conv/Gemm weights get one per output channel by WEIGHT_RECIPE, at the layer's weight
bits (`weight_bits`), unless a QDQ model gave them (ImportQDQ's `given_weight_exponents`, while
the weights are still the ones it quantized). With bias correction (Options.bias_correction,
passes/bias_correction.py) each weighted layer's expected weight-rounding error goes to `bias_corrections`, which lowering
adds to the float bias. Constant operands of element-wise ops get one exponent per tensor
(`constant_operand_exponents`, quant_rules.py). Biases, shifts and tables are derived later from these in
lowering.
"""
from __future__ import annotations

import numpy as np

from compiler.context import CompileContext
from compiler.errors import RillError
from compiler.graph import const_value, node_label
from compiler.pass_manager import Pass
from passes.bias_correction import MODES, correct_layer
from passes.calibrate import throttled
from passes.import_qdq import honored_weight_exponents
from passes.observers import RECIPES, channel_exponents
from passes.quant_rules import (ARITHMETIC_OPS, OPERAND_FINEST_BELOW_OUTPUT, WEIGHTED_OPS,
                                 fixed_exponents, node_operands, operand_exponents,
                                 out_channel_weights, plan_recurrent, softmax_exponent)
from passes.quant_scheme import PowerOfTwoScheme

WEIGHT_RECIPE = "mse"  # per output channel; measured against minmax in docs/quantization.md


class Quantize(Pass):
    name = "quantize"
    requires = frozenset({"calibrated"})
    ensures = frozenset({"quantized"})

    def run(self, ctx: CompileContext) -> bool:
        opts = ctx.options
        recipe = opts.calibration
        if recipe is not None and recipe not in RECIPES:
            raise RillError(f"calibration={recipe!r}: choose one of {', '.join(RECIPES)}")
        if opts.bias_correction not in MODES:
            raise RillError(f"bias_correction={opts.bias_correction!r}: choose one of "
                            f"{', '.join(MODES)}")
        scheme = PowerOfTwoScheme(opts.bits, recipe, opts.percentile, WEIGHT_RECIPE)
        tensor_bits = ctx.facts.get("tensor_bits", {})
        weight_bits = ctx.facts.get("weight_bits", {})
        report = throttled(ctx.progress)
        samples = ctx.facts["calibration"]
        maxima = ctx.facts.get("calibration_maxima", {})
        exps: dict[str, int] = {}
        for i, (name, values) in enumerate(samples.items()):
            if values.size and not np.all(np.isfinite(values)):
                raise RillError(f"tensor '{name}' takes non-finite values (NaN/Inf) on the "
                                "calibration data; check the model's weights and the data")
            exps[name] = scheme.choose(values, tensor_bits.get(name, opts.bits),
                                        maxima.get(name)).exp
            report(f"quantize: {recipe or 'default'} exponents of {i + 1}/{len(samples)} tensors")
        weighted = [n for n in ctx.graph.nodes if n.op in WEIGHTED_OPS]
        given, stale = honored_weight_exponents(ctx.graph, ctx.facts)  # from a QDQ model
        for name in stale:
            ctx.warn(f"layer '{name}': the model's own weight quantization no longer applies (a "
                     "fusion such as a folded BatchNorm changed its weights); Rill chose its "
                     "weight exponents itself")
        weight_exps: dict[str, np.ndarray] = {}
        for node in weighted:
            w = out_channel_weights(node)
            if not np.all(np.isfinite(w)):
                raise RillError(f"{node_label(node)}: weights contain NaN or Inf")
            if node.name in given:
                weight_exps[node.name] = np.asarray(given[node.name], np.int32).reshape(-1)
            else:
                weight_exps[node.name] = channel_exponents(
                    w, weight_bits.get(node.name, opts.bits), WEIGHT_RECIPE)
        ctx.facts["bias_corrections"], ctx.facts["bias_correction_mse"] = bias_corrections(
            ctx, weighted, exps, weight_exps, report)
        ctx.facts["operand_exponents"] = constant_operand_exponents(ctx, exps, weight_bits)
        ctx.facts["recurrent_plans"] = {n.name: plan_recurrent(n, ctx, exps[n.inputs[0].name])
                                         for n in ctx.graph.nodes if n.op in ("GRU", "LSTM")}
        ctx.facts["softmax_exponents"] = {
            n.outputs[0].name: softmax_exponent(exps.get(n.outputs[0].name),
                                                tensor_bits.get(n.outputs[0].name, opts.bits))
            for n in ctx.graph.nodes if n.op == "Softmax"}
        exps.update(fixed_exponents(ctx.graph, ctx.facts))
        ctx.facts["scheme"] = scheme
        ctx.facts["exponents"] = exps
        ctx.facts["weight_exponents"] = weight_exps
        return False


def constant_operand_exponents(ctx: CompileContext, exps: dict[str, int],
                               weight_bits: dict[str, int]) -> dict[str, dict[int, np.ndarray]]:
    """Node name -> input index -> the exponents of each constant operand (one for the tensor,
    or one per element of a LayerNormalization scale; quant_rules.operand_exponents, at the
    layer's weight bits); an add-like op's constant is never finer than its output needs."""
    out: dict[str, dict[int, np.ndarray]] = {}
    for node in ctx.graph.nodes:
        for i in node_operands(node):
            value = const_value(node.inputs[i])
            if not np.all(np.isfinite(value)):
                raise RillError(f"{node_label(node)}: constant '{node.inputs[i].name}' contains "
                                "NaN or Inf")
            e = operand_exponents(node.op, value, weight_bits.get(node.name, ctx.options.bits))
            y = node.outputs[0].name
            if node.op in ARITHMETIC_OPS - {"Mul", "Div", "PRelu"} and y in exps:
                e = np.maximum(e, exps[y] - OPERAND_FINEST_BELOW_OUTPUT)
            out.setdefault(node.name, {})[i] = e
    return out


def bias_corrections(ctx: CompileContext, weighted: list, exps: dict[str, int],
                     weight_exps: dict[str, np.ndarray], report
                     ) -> tuple[dict[str, np.ndarray], dict[str, tuple[float, float]]]:
    """Node name -> per-output-channel correction to add to the float bias (layers where
    Options.bias_correction keeps one), and node name -> (output MSE without, with) for the
    layers `auto` measured."""
    setting = ctx.options.bias_correction
    if setting == "off":
        return {}, {}
    # the offline graph's twin of each layer: its input is what calibration saw (the streaming
    # layer reads a state window instead, with the padding moved into the state)
    offline = {n.name: n for n in ctx.facts.get("offline_graph", ctx.graph).nodes
               if n.op in WEIGHTED_OPS}
    means, inputs = ctx.facts["layer_input_means"], ctx.facts["layer_inputs"]
    tensor_bits = ctx.facts.get("tensor_bits", {})
    weight_bits = ctx.facts.get("weight_bits", {})
    corrections, measured = {}, {}
    for i, node in enumerate(weighted):
        twin = offline[node.name]
        x = twin.inputs[0].name
        correction, mse = correct_layer(
            twin, const_value(twin.inputs[1]), weight_exps[node.name],
            weight_bits.get(node.name, ctx.options.bits), ctx.options.target.rounding,
            means[node.name], inputs[node.name], exps[x],
            tensor_bits.get(x, ctx.options.bits), setting)
        if correction is not None:
            corrections[node.name] = correction
        if mse is not None:
            measured[node.name] = mse
        report(f"quantize: bias correction of {i + 1}/{len(weighted)} layers")
    return corrections, measured
