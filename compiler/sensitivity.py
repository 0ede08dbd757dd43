"""Per-layer sensitivity: how much each layer alone costs the model's output when quantized.

For every quantized layer (each op output tensor that has an exponent) the float model is run
with only that tensor, and the weights of the layer that writes it, fake-quantized (QDQ, see
codegen/qdq_export.py) and everything else float; the pooled output SNR at int8 and at int16
says which layers deserve int16, and the bytes column what promoting each one costs. This is
what a mixed-precision choice (--snr-target, --int16) needs, and what the report shows.

One onnxruntime session per layer and width: about 15 ms for a small layer on 16 inputs, so a
30-layer model takes about a second (tests/test_sensitivity.py measures it).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np
import onnx
from onnx import numpy_helper

from codegen.qdq_export import (WEIGHTED_OPS, ActivationQ, QDQPlan, WeightLayout, WeightQ,
                                apply_qdq, float_tensors)
from compiler.ort import session, with_all_outputs
from compiler.streams import snr_db
from passes import quant_rules
from passes.quant_rules import operand_indices
from passes.quant_scheme import PowerOfTwoScheme

MAX_VALUES = 1 << 20  # calibration values kept per tensor to choose an exponent
Feeds = Sequence[Mapping[str, np.ndarray]]


@dataclass
class Layer:
    """One quantized tensor, the node writing it and the weighted nodes that are part of it
    (a fused Conv+Relu expands to Conv -> Relu: the Relu writes the tensor, the Conv's weights
    belong to it)."""

    tensor: str
    node: str
    op: str
    weighted: list[str]
    weight_elems: int
    bias_elems: int


@dataclass
class Values:
    """A tensor's calibration values (a sample when large) and the maximum of each input."""

    sample: np.ndarray
    maxima: np.ndarray


def layer_sensitivity(offline_model: onnx.ModelProto, calib_inputs: np.ndarray | Feeds,
                      exponents: Mapping[str, int] | None = None,
                      weight_exponents: Mapping[str, np.ndarray] | None = None, *,
                      tensor_bits: Mapping[str, int] | None = None,
                      weight_bits: Mapping[str, int] | None = None, bits_default: int = 8,
                      widths: Sequence[int] = (8, 16), mode: str = "half_even",
                      operand_exponents: Mapping[str, Mapping[int, np.ndarray]] | None = None,
                      progress: Callable[[str], None] = lambda s: None) -> list[dict]:
    """Rows {layer, node, op, weights, snr_int8_db, snr_int16_db, int16_*_bytes}, most sensitive
    (lowest SNR at the narrowest width) first.

    `exponents` / `weight_exponents` / `operand_exponents` are the compilation's
    (facts["exponents"], ["weight_exponents"], ["operand_exponents"]), valid at their width (`tensor_bits` / `weight_bits`, else
    `bits_default`); at another width, and for anything not given, the exponent is chosen from
    the calibration values by Rill's scheme. Without `exponents` every op output is a layer.
    `calib_inputs`: [N, *input_shape] for a one-input model, or a list of feed dicts.
    """
    feeds = as_feeds(offline_model, calib_inputs)
    floats = float_tensors(offline_model)
    names = [t for n in offline_model.graph.node for t in n.output
             if t in floats and (exponents is None or t in exponents)]
    layers = find_layers(offline_model, names)
    refs, values, sizes = float_run(offline_model, feeds, names)
    plans = {w: width_plan(offline_model, values, w, exponents or {}, weight_exponents or {},
                           tensor_bits or {}, weight_bits or {}, bits_default, mode,
                           operand_exponents or {}) for w in widths}
    rows = []
    for i, layer in enumerate(layers):
        progress(f"sensitivity {i + 1}/{len(layers)}: {layer.tensor}")
        snrs = {w: layer_snr(offline_model, layer, plans[w], feeds, refs) for w in widths}
        rows.append(row(layer, snrs, sizes[layer.tensor]))
    return sorted(rows, key=lambda r: r[f"snr_int{min(widths)}_db"])


def as_feeds(model: onnx.ModelProto, data: np.ndarray | Feeds) -> list[dict[str, np.ndarray]]:
    if not isinstance(data, np.ndarray):
        return [dict(f) for f in data]
    inits = {i.name for i in model.graph.initializer}
    (name,) = [vi.name for vi in model.graph.input if vi.name not in inits]
    return [{name: np.asarray(x, np.float32)} for x in data]


def find_layers(model: onnx.ModelProto, names: list[str]) -> list[Layer]:
    """The layer of each quantized tensor: its producer and, back through tensors that are not
    quantized, the weighted nodes whose weights it owns."""
    producer = {o: n for n in model.graph.node for o in n.output}
    inits = {i.name: i for i in model.graph.initializer}
    quantized = set(names) | {vi.name for vi in model.graph.input}
    layers = []
    for name in names:
        node = producer[name]
        weighted, stack, seen = [], [node], set()
        while stack:
            n = stack.pop()
            if n.name in seen:
                continue
            seen.add(n.name)
            if weight_inputs(n, inits):
                weighted.append(n)
            stack += [producer[t] for t in n.input if t in producer and t not in quantized]
        layers.append(Layer(name, node.name, node.op_type, [w.name for w in weighted],
                            sum(init_elems(inits, w, i) for w in weighted
                                for i in weight_inputs(w, inits)),
                            sum(init_elems(inits, w, 2) for w in weighted
                                if w.op_type in WEIGHTED_OPS)))
    return layers


def weight_inputs(node: onnx.NodeProto, inits: Mapping[str, onnx.TensorProto]) -> list[int]:
    """The inputs of `node` Rill quantizes as weights: a Conv/Gemm's weights, an element-wise
    op's constant operands (passes/quant_rules.py)."""
    if node.op_type in WEIGHTED_OPS:
        return [1] if len(node.input) > 1 and node.input[1] in inits else []
    return operand_indices(node.op_type, [t in inits for t in node.input])


def init_elems(inits: Mapping[str, onnx.TensorProto], node: onnx.NodeProto, i: int) -> int:
    """Elements of the node's i-th input if it is an initializer (weights, bias), else 0."""
    if len(node.input) <= i or node.input[i] not in inits:
        return 0
    return int(np.prod(inits[node.input[i]].dims))


def float_run(model: onnx.ModelProto, feeds: list[dict[str, np.ndarray]], names: list[str]
              ) -> tuple[list[np.ndarray], dict[str, Values], dict[str, int]]:
    """The float model's outputs per feed, every named tensor's values over all feeds (a
    sample of them when there are many, with the maximum of each feed), and its number of
    elements."""
    outs = [o.name for o in model.graph.output]
    sess = session(with_all_outputs(model, names))
    refs, parts = [], {n: [] for n in names}
    for f in feeds:
        got = dict(zip(outs + names, sess.run(outs + names, f)))
        refs.append(np.concatenate([np.asarray(got[o], np.float64).ravel() for o in outs]))
        for n in names:
            parts[n].append(np.asarray(got[n], np.float32).ravel())
    sizes = {n: p[0].size for n, p in parts.items()}
    rng = np.random.default_rng(0)
    values = {}
    for n, p in parts.items():
        flat = np.concatenate(p)
        kept = flat if flat.size <= MAX_VALUES else rng.choice(flat, MAX_VALUES, replace=False)
        values[n] = Values(kept, np.array([float(np.max(np.abs(v))) if v.size else 0.0 for v in p]))
    return refs, values, sizes


def width_plan(model: onnx.ModelProto, values: dict[str, Values], width: int,
               exponents: Mapping[str, int], weight_exponents: Mapping[str, np.ndarray],
               tensor_bits: Mapping[str, int], weight_bits: Mapping[str, int], bits_default: int,
               mode: str, operand_exponents: Mapping[str, Mapping[int, np.ndarray]] = {}
               ) -> QDQPlan:
    """Every tensor and weight quantized at `width`: the given exponent where it was chosen for
    that width, else the scheme's choice from the values."""
    scheme = PowerOfTwoScheme(width)
    acts = {}
    for name, v in values.items():
        given = name in exponents and tensor_bits.get(name, bits_default) == width
        exp = int(exponents[name]) if given else scheme.choose(v.sample, maxima=v.maxima).exp
        acts[name] = ActivationQ(exp, width)
    inits = {i.name: i for i in model.graph.initializer}
    weights = {}
    for node in model.graph.node:
        if node.op_type not in WEIGHTED_OPS or len(node.input) < 2 or node.input[1] not in inits:
            continue
        if node.name in weight_exponents and weight_bits.get(node.name, bits_default) == width:
            weights[node.name] = WeightQ(np.asarray(weight_exponents[node.name]), width)
            continue
        w = numpy_helper.to_array(inits[node.input[1]])
        w_oc = WeightLayout.of(node, w.shape).out_first(w)
        weights[node.name] = WeightQ(np.array([q.exp for q in scheme.choose_per_channel(w_oc)]), width)
    operands: dict[str, dict[int, WeightQ]] = {}
    for node in model.graph.node:
        for i in weight_inputs(node, inits) if node.op_type not in WEIGHTED_OPS else []:
            given = operand_exponents.get(node.name, {}).get(i)
            if given is None or weight_bits.get(node.name, bits_default) != width:
                given = quant_rules.operand_exponents(node.op_type,
                                                      numpy_helper.to_array(inits[node.input[i]]),
                                                      width)
            operands.setdefault(node.name, {})[i] = WeightQ(np.asarray(given), width)
    return QDQPlan(acts, weights, {}, mode, operands)


def layer_snr(model: onnx.ModelProto, layer: Layer, plan: QDQPlan, feeds: list[dict[str, np.ndarray]],
              refs: list[np.ndarray]) -> float:
    """Pooled output SNR with only `layer` fake-quantized."""
    one = QDQPlan({layer.tensor: plan.activations[layer.tensor]},
                  {n: plan.weights[n] for n in layer.weighted if n in plan.weights}, {}, plan.mode,
                  {n: plan.operands[n] for n in layer.weighted if n in plan.operands})
    sess = session(apply_qdq(model, one))
    outs = [o.name for o in model.graph.output]
    got = [np.concatenate([np.asarray(v, np.float64).ravel() for v in sess.run(outs, f)]) for f in feeds]
    return snr_db(np.concatenate(refs), np.concatenate(got))


def row(layer: Layer, snrs: dict[int, float], activation_elems: int) -> dict:
    """One report row; int16 costs one more byte per weight and activation element and four per
    bias (int32 -> int64 accumulator). Activation bytes are the offline tensor's: a streamed
    tensor's buffer holds fewer frames."""
    weight_bytes = layer.weight_elems + 4 * layer.bias_elems
    out = {"layer": layer.tensor, "node": layer.node, "op": layer.op, "weights": layer.weighted}
    out.update({f"snr_int{w}_db": float(s) for w, s in snrs.items()})
    out.update(int16_weight_bytes=weight_bytes, int16_activation_bytes=activation_elems,
               int16_extra_bytes=weight_bytes + activation_elems)
    return out
