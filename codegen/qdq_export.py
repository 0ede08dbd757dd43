"""Dump the quantized model as a QDQ ONNX model that onnxruntime (or Netron) can run and show.

The float (offline) graph gets every quantized activation wrapped in QuantizeLinear ->
DequantizeLinear with scale 2^exp, and every Conv / ConvTranspose / Gemm weight stored as the
int8/int16 integers Rill uses behind a per-output-channel DequantizeLinear; biases become int32
behind DequantizeLinear at scale 2^(e_in + e_w) (or, when they need more than 32 bits, the float
value of Rill's integer bias). The constant operands of element-wise ops (a Mul's scale, a
PRelu's slope; passes/quant_rules.py) become their integers behind a per-tensor
DequantizeLinear. The result computes what Rill's integer program computes, up to
rounding details inside kernels; it lets users inspect the quantization with their usual tools
and is the machinery of the per-layer sensitivity analysis (compiler/sensitivity.py).

onnxruntime's QuantizeLinear rounds half to even, as esp32p4 does; on esp32s3 (half up) ties
can differ by one LSB. int16 QuantizeLinear needs opset 21: the model's opset is raised when an
int16 tensor or weight is present.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import numpy as np
import onnx
import onnx_graphsurgeon as gs
from onnx import helper, numpy_helper

from compiler.graph import to_runnable
from runtime.reference.kernels import round_to_int

INT16_OPSET = 21  # int16 QuantizeLinear / DequantizeLinear in the default domain
PER_AXIS_OPSET = 13  # DequantizeLinear's `axis` (per-channel weights)
INT16_IR_VERSION = 10
WEIGHTED_OPS = {"Conv", "ConvTranspose", "Gemm"}
INT_TYPES = {8: np.int8, 16: np.int16}
INT32_LIMIT = 2**31 - 1


@dataclass(frozen=True)
class ActivationQ:
    exp: int
    bits: int = 8


@dataclass(frozen=True)
class WeightQ:
    exps: np.ndarray  # one exponent per output channel
    bits: int = 8


@dataclass
class QDQPlan:
    """What to fake-quantize: activations by tensor name, weights by node name."""

    activations: dict[str, ActivationQ] = field(default_factory=dict)
    weights: dict[str, WeightQ] = field(default_factory=dict)
    bias_corrections: dict[str, np.ndarray] = field(default_factory=dict)  # added to float biases
    mode: str = "half_even"  # rounding of weights and biases (the target's)
    # constant operands of element-wise ops: node name -> input index -> one exponent
    operands: dict[str, dict[int, WeightQ]] = field(default_factory=dict)

    @property
    def uses_int16(self) -> bool:
        return any(a.bits == 16 for a in self.activations.values()) or \
            any(w.bits == 16 for w in self.weights.values()) or \
            any(q.bits == 16 for ops in self.operands.values() for q in ops.values())


def plan_from_facts(facts: Mapping, bits_default: int = 8, mode: str = "half_even") -> QDQPlan:
    """The plan of a compiled model: its exponents and widths (`tensor_bits` / `weight_bits`,
    else `bits_default`), and its bias corrections."""
    tbits, wbits = facts.get("tensor_bits", {}), facts.get("weight_bits", {})
    return QDQPlan(
        {n: ActivationQ(int(e), int(tbits.get(n, bits_default))) for n, e in facts["exponents"].items()},
        {n: WeightQ(np.asarray(e), int(wbits.get(n, bits_default)))
         for n, e in facts.get("weight_exponents", {}).items()},
        dict(facts.get("bias_corrections", {})), mode,
        {n: {int(i): WeightQ(np.asarray(e), int(wbits.get(n, bits_default))) for i, e in ops.items()}
         for n, ops in facts.get("operand_exponents", {}).items()})


def export_qdq(graph: gs.Graph, facts: Mapping, bits_default: int = 8, *,
               mode: str = "half_even") -> onnx.ModelProto:
    """The QDQ model of a compiled model; pass the offline float graph
    (`facts.get("offline_graph", ctx.graph)`) and the compilation's facts."""
    return apply_qdq(to_runnable(graph), plan_from_facts(facts, bits_default, mode))


def apply_qdq(model: onnx.ModelProto, plan: QDQPlan) -> onnx.ModelProto:
    """A copy of the float `model` with the plan's tensors and weights fake-quantized."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    raise_opset(out, PER_AXIS_OPSET)  # converted before the Q/DQ nodes go in
    builder = _QDQBuilder(out, plan)
    builder.quantize_weights()
    builder.wrap_activations()
    if plan.uses_int16:
        raise_opset(out, INT16_OPSET)
    return out


def raise_opset(model: onnx.ModelProto, version: int) -> None:
    """Raise the default domain's opset to `version` in place, converting ops whose meaning
    changed on the way (e.g. ReduceMean's axes became an input at opset 18) with onnx's version
    converter; Rill's own domains and the QDQ ops pass through unchanged."""
    current = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), version)
    if current < version:
        try:
            converted = onnx.version_converter.convert_version(model, version)
            model.CopyFrom(converted)
        except Exception:  # the converter refuses some graphs; the ops Rill handles mostly
            pass           # keep their meaning, so fall back to raising the number only
    for opset in model.opset_import:
        if opset.domain in ("", "ai.onnx"):
            opset.version = max(opset.version, version)
    model.ir_version = max(model.ir_version, INT16_IR_VERSION)


def quantize_values(x: np.ndarray, exps: np.ndarray | int, bits: int, mode: str, axis: int = 0) -> np.ndarray:
    """Integers of `x` at exponent(s) `exps` (per-axis along `axis`), rounded and saturated."""
    e = np.asarray(exps, np.int64)
    if e.ndim:
        shape = [1] * x.ndim
        shape[axis] = e.size
        e = e.reshape(shape)
    info = np.iinfo(INT_TYPES[bits])
    q = round_to_int(np.asarray(x, np.float64) * np.ldexp(1.0, -e), mode)
    return np.clip(q, info.min, info.max).astype(INT_TYPES[bits])


class _QDQBuilder:
    """Edits one ModelProto in place: integer weights first, then activation Q/DQ pairs."""

    def __init__(self, model: onnx.ModelProto, plan: QDQPlan):
        self.model, self.graph, self.plan = model, model.graph, plan
        self.inits = {i.name: i for i in self.graph.initializer}
        self.new_inits: dict[str, onnx.TensorProto] = {}
        self.float_types = float_tensors(model)

    def constant(self, name: str, values: np.ndarray) -> str:
        if name not in self.new_inits:
            self.new_inits[name] = numpy_helper.from_array(np.asarray(values), name)
        return name

    def scale(self, e: int) -> str:
        return self.constant(f"qdq/scale_e{e}", np.array(np.ldexp(1.0, e), np.float32))

    def zero(self, bits: int) -> str:
        return self.constant(f"qdq/zero_int{bits}", np.array(0, INT_TYPES[bits]))

    # -- weights -----------------------------------------------------------------------------
    def quantize_weights(self) -> None:
        nodes = []
        for node in self.graph.node:
            q = self.plan.weights.get(node.name)
            if q is not None and node.op_type in WEIGHTED_OPS and node.input[1] in self.inits:
                nodes += self.weight_nodes(node, q)
                nodes += self.bias_nodes(node, q)
            for i, oq in sorted(self.plan.operands.get(node.name, {}).items()):
                if i < len(node.input) and node.input[i] in self.inits:
                    nodes += self.operand_nodes(node, i, oq)
            nodes.append(node)
        self.replace_nodes(nodes)

    def operand_nodes(self, node: onnx.NodeProto, i: int, q: WeightQ) -> list[onnx.NodeProto]:
        """DequantizeLinear of a constant operand's integers (one exponent) feeding `node`; an
        operand with one exponent per element (a LayerNormalization scale) is replaced by its
        quantized values as floats."""
        value = numpy_helper.to_array(self.inits[node.input[i]])
        base = f"{node.name}/qdq_operand{i}"
        exps = np.asarray(q.exps).reshape(-1)
        if exps.size > 1:
            e = exps.reshape(value.shape).astype(np.int64)
            ints = quantize_values(value * np.ldexp(1.0, -e), 0, q.bits, self.plan.mode)
            node.input[i] = self.constant(f"{base}/quantized",
                                          (ints * np.ldexp(1.0, e)).astype(value.dtype))
            return []
        e = int(exps[0])
        ints = quantize_values(value, e, q.bits, self.plan.mode)
        ins = [self.constant(f"{base}/int{q.bits}", ints), self.scale(e), self.zero(q.bits)]
        node.input[i] = f"{base}/dequantized"
        return [helper.make_node("DequantizeLinear", ins, [node.input[i]],
                                 name=f"{base}/DequantizeLinear")]

    def weight_nodes(self, node: onnx.NodeProto, q: WeightQ) -> list[onnx.NodeProto]:
        """DequantizeLinear of the integer weights (per output channel) feeding `node`."""
        w = numpy_helper.to_array(self.inits[node.input[1]])
        base = f"{node.name}/qdq_weight"
        layout = WeightLayout.of(node, w.shape)
        w_oc = layout.out_first(w)
        ints = quantize_values(w_oc, q.exps, q.bits, self.plan.mode, axis=0)
        stored = layout.stored_ints(ints)
        axis = layout.scale_axis
        n = stored.shape[axis]
        scales = np.ldexp(1.0, np.asarray(q.exps, np.int64).reshape(-1)).astype(np.float32)
        ins = [self.constant(f"{base}/int{q.bits}", stored), self.constant(f"{base}/scale", scales),
               self.constant(f"{base}/zero", np.zeros(n, INT_TYPES[q.bits]))]
        deq = f"{base}/dequantized"
        nodes = [helper.make_node("DequantizeLinear", ins, [deq], name=f"{base}/DequantizeLinear",
                                  axis=axis)]
        restored, extra = layout.restore(deq, base, self.constant)
        node.input[1] = restored
        return nodes + extra

    def bias_nodes(self, node: onnx.NodeProto, q: WeightQ) -> list[onnx.NodeProto]:
        """Rill's integer bias at e_in + e_w (with its bias correction), behind an int32
        DequantizeLinear; float when the layer's input is not quantized or it needs > 32 bits."""
        has_bias = len(node.input) > 2 and node.input[2] in self.inits
        correction = self.plan.bias_corrections.get(node.name)
        if not has_bias and correction is None:
            return []
        c_out = len(np.asarray(q.exps).reshape(-1))
        b = numpy_helper.to_array(self.inits[node.input[2]]).astype(np.float64) if has_bias \
            else np.zeros(c_out)
        if correction is not None:
            b = b + np.asarray(correction, np.float64).reshape(-1)
        base = f"{node.name}/qdq_bias"
        x = self.plan.activations.get(node.input[0])
        if x is None:
            self.set_input(node, 2, self.constant(f"{base}/float", b.astype(np.float32)))
            return []
        e_b = x.exp + np.asarray(q.exps, np.int64).reshape(-1)
        qb = round_to_int(b * np.ldexp(1.0, -e_b), self.plan.mode)
        if np.any(np.abs(qb) > INT32_LIMIT):
            self.set_input(node, 2, self.constant(f"{base}/float", (qb * np.ldexp(1.0, e_b)).astype(np.float32)))
            return []
        ins = [self.constant(f"{base}/int32", qb.astype(np.int32)),
               self.constant(f"{base}/scale", np.ldexp(1.0, e_b).astype(np.float32)),
               self.constant(f"{base}/zero", np.zeros(c_out, np.int32))]
        self.set_input(node, 2, f"{base}/dequantized")
        return [helper.make_node("DequantizeLinear", ins, [f"{base}/dequantized"],
                                 name=f"{base}/DequantizeLinear", axis=0)]

    @staticmethod
    def set_input(node: onnx.NodeProto, i: int, name: str) -> None:
        while len(node.input) <= i:
            node.input.append("")
        node.input[i] = name

    # -- activations -------------------------------------------------------------------------
    def wrap_activations(self) -> None:
        """Q -> DQ after every quantized graph input and node output; the DQ output keeps the
        tensor's name, so readers and graph outputs need no change (graph inputs keep theirs
        too: their readers move to the DQ output)."""
        nodes: list[onnx.NodeProto] = []
        for vi in self.graph.input:
            if self.quantized(vi.name) and vi.name not in self.inits:
                nodes += self.wrap_input(vi.name)
        for node in self.graph.node:
            nodes.append(node)
            for i, name in enumerate(node.output):
                if self.quantized(name):
                    node.output[i] = f"{name}/float"
                    nodes += self.pair(f"{name}/float", name, self.plan.activations[name])
        self.replace_nodes(nodes)

    def quantized(self, name: str) -> bool:
        return bool(name) and name in self.plan.activations and name in self.float_types

    def wrap_input(self, name: str) -> list[onnx.NodeProto]:
        deq = f"{name}/dequantized"
        for node in self.graph.node:
            for i, t in enumerate(node.input):
                if t == name:
                    node.input[i] = deq
        return self.pair(name, deq, self.plan.activations[name])

    def pair(self, src: str, dst: str, q: ActivationQ) -> list[onnx.NodeProto]:
        ins = [self.scale(q.exp), self.zero(q.bits)]
        mid = f"{dst}/int{q.bits}"
        return [helper.make_node("QuantizeLinear", [src] + ins, [mid], name=f"{dst}/QuantizeLinear"),
                helper.make_node("DequantizeLinear", [mid] + ins, [dst],
                                 name=f"{dst}/DequantizeLinear")]

    def replace_nodes(self, nodes: list[onnx.NodeProto]) -> None:
        kept = [onnx.NodeProto() for _ in nodes]
        for k, n in zip(kept, nodes):
            k.CopyFrom(n)
        del self.graph.node[:]
        self.graph.node.extend(kept)
        self.graph.initializer.extend(i for n, i in self.new_inits.items() if n not in self.inits)
        self.inits.update(self.new_inits)


@dataclass(frozen=True)
class WeightLayout:
    """How a weighted op stores its weights relative to output-channels-first.

    Conv and canonical Gemm store output channels on axis 0, Gemm with transB=0 on axis 1, and
    ConvTranspose [c_in, c_out/g, k...] per group on axis 1. A grouped ConvTranspose's output
    channels span two axes, which DequantizeLinear's per-axis scale cannot express: its integers
    are stored output-channels-first and Reshape/Transpose restore the layout after dequantizing.
    """

    op: str
    shape: tuple[int, ...]
    groups: int = 1
    trans_b: bool = True

    @staticmethod
    def of(node: onnx.NodeProto, shape: tuple[int, ...]) -> WeightLayout:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        return WeightLayout(node.op_type, tuple(shape), int(attrs.get("group", 1)),
                            bool(attrs.get("transB", 0)))

    @property
    def regrouped(self) -> bool:
        return self.op == "ConvTranspose" and self.groups > 1

    @property
    def scale_axis(self) -> int:
        if self.regrouped:
            return 0
        if self.op == "ConvTranspose" or (self.op == "Gemm" and not self.trans_b):
            return 1
        return 0

    def grouped_shape(self) -> tuple[int, ...]:
        c_in, og, *k = self.shape
        return (self.groups, c_in // self.groups, og, *k)

    def out_first(self, w: np.ndarray) -> np.ndarray:
        """[c_out, ...] with row `co` holding every weight that feeds output channel `co`."""
        if self.op == "Gemm" and not self.trans_b:
            return w.T
        if self.op != "ConvTranspose":
            return w
        g = self.grouped_shape()
        perm = (0, 2, 1) + tuple(range(3, len(g)))
        return np.transpose(w.reshape(g), perm).reshape((g[0] * g[2], g[1]) + g[3:])

    def stored_ints(self, ints: np.ndarray) -> np.ndarray:
        """The integers in the order the DequantizeLinear stores them."""
        if self.regrouped:
            return ints
        if self.op == "ConvTranspose":  # one group: [c_out, c_in, k] -> [c_in, c_out, k]
            return np.ascontiguousarray(np.swapaxes(ints, 0, 1))
        return np.ascontiguousarray(ints.T) if self.op == "Gemm" and not self.trans_b else ints

    def restore(self, deq: str, base: str, constant) -> tuple[str, list[onnx.NodeProto]]:
        """Nodes from the dequantized stored weights back to the op's own layout."""
        if not self.regrouped:
            return deq, []
        g = self.grouped_shape()
        perm = [0, 2, 1] + list(range(3, len(g)))
        split = constant(f"{base}/grouped_shape", np.array((g[0], g[2], g[1]) + g[3:], np.int64))
        back = constant(f"{base}/shape", np.array(self.shape, np.int64))
        return f"{base}/restored", [
            helper.make_node("Reshape", [deq, split], [f"{base}/grouped"], name=f"{base}/Reshape"),
            helper.make_node("Transpose", [f"{base}/grouped"], [f"{base}/transposed"],
                             name=f"{base}/Transpose", perm=perm),
            helper.make_node("Reshape", [f"{base}/transposed", back], [f"{base}/restored"],
                             name=f"{base}/Restore")]


def float_tensors(model: onnx.ModelProto) -> set[str]:
    """Names of the float tensors (inputs and node outputs) of `model`, by shape inference;
    tensors whose type is unknown count as float (only Rill's exponents name them anyway)."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # an op the inference does not know: trust the exponents' names
        inferred = model
    typed = {vi.name: vi.type.tensor_type.elem_type for vi in
             list(inferred.graph.input) + list(inferred.graph.value_info) + list(inferred.graph.output)}
    names = {vi.name for vi in model.graph.input} | {o for n in model.graph.node for o in n.output}
    return {n for n in names if typed.get(n, onnx.TensorProto.FLOAT) == onnx.TensorProto.FLOAT}
