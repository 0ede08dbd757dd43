"""Import an already-quantized (QDQ) ONNX model: strip QuantizeLinear / DequantizeLinear and keep
what they say as Rill's power-of-two quantization parameters.

Exporters (onnxruntime's `quantize_static(..., quant_format=QuantFormat.QDQ)`, PyTorch and
ESP-PPQ exports, hand-made models) describe a quantized model as a float graph with
fake-quantization nodes. Rill's pipeline wants the float graph plus exponents, so this pass runs
first and turns
- an activation's Q -> DQ pair into nothing: the tensor's exponent becomes a fixed exponent
  (`facts["fixed_exponents"]`, honored by PropagateQParams), its width `facts["tensor_bits"]`;
- a constant behind DequantizeLinear (a weight, an int32 bias, a float constant behind Q -> DQ)
  into the float constant it dequantizes to; a Conv / ConvTranspose / Gemm / MatMul weight's
  per-output-channel exponents go to `facts["given_weight_exponents"][node]` and its width to
  `facts["weight_bits"][node]`.
A scale that is not a power of two is rounded to one, with a warning that states the error this
introduces. Rill's scheme is symmetric and signed: unsigned types and nonzero zero points are
refused. `facts["qdq_import"]` lists everything imported, for the report.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import numpy as np
import onnx
import onnx_graphsurgeon as gs

from compiler.context import CompileContext
from compiler.errors import RillError
from compiler.graph import const_value, node_label, replace_tensor_uses
from compiler.pass_manager import Pass
from passes.quant_rules import out_channel_weights
from runtime.reference.kernels import round_to_int

QDQ_DOMAINS = {"", "ai.onnx", "com.microsoft"}
SIGNED_BITS = {np.dtype(np.int8): 8, np.dtype(np.int16): 16}
WEIGHTED = {"Conv", "ConvTranspose", "Gemm", "MatMul"}
SYMMETRIC_HINT = ("Rill's scheme is symmetric signed int8/int16 (zero point 0); re-quantize "
                  "symmetrically, e.g. quantize_static(..., activation_type=QuantType.QInt8, "
                  "weight_type=QuantType.QInt8, extra_options={'ActivationSymmetric': True, "
                  "'WeightSymmetric': True})")


def is_op(node: gs.Node, op: str) -> bool:
    return node.op == op and (node.domain or "") in QDQ_DOMAINS


# --------------------------------------------------------------------------- parameters

@dataclass(frozen=True)
class QParams:
    """The parameters of one QuantizeLinear / DequantizeLinear node."""

    scale: np.ndarray  # float64, shape () or (n,)
    zero_point: np.ndarray | None
    dtype: np.dtype  # the quantized type
    axis: int  # as given (may be negative); meaningful when scale.size > 1


def qparams(node: gs.Node) -> QParams:
    """Scale, zero point and quantized type of a Q/DQ node; the constants must be constant."""
    if int(node.attrs.get("block_size", 0)):
        raise RillError(f"{node_label(node)}: blocked quantization is not supported")
    scale = const_value(node.inputs[1])
    if scale is None:
        raise RillError(f"{node_label(node)}: the scale must be a constant")
    zp = const_value(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2].name else None
    if len(node.inputs) > 2 and node.inputs[2].name and zp is None:
        raise RillError(f"{node_label(node)}: the zero point must be a constant")
    return QParams(np.asarray(scale, np.float64), None if zp is None else np.asarray(zp),
                   quantized_dtype(node, zp), int(node.attrs.get("axis", 1)))


def quantized_dtype(node: gs.Node, zp: np.ndarray | None) -> np.dtype:
    """The integer type: the zero point's; else DQ's constant input's or Q's `output_dtype`;
    else uint8 (the ONNX default for QuantizeLinear without a zero point)."""
    if zp is not None:
        return np.dtype(zp.dtype)
    if node.op == "DequantizeLinear":
        x = const_value(node.inputs[0])
        if x is not None:
            return np.dtype(x.dtype)
        if node.inputs[0].dtype is not None:
            return np.dtype(node.inputs[0].dtype)
    code = int(node.attrs.get("output_dtype", 0))
    return np.dtype(onnx.helper.tensor_dtype_to_np_dtype(code)) if code else np.dtype(np.uint8)


def symmetric_bits(what: str, qp: QParams) -> int:
    """8 or 16 for a symmetric signed quantization; a RillError naming `what` otherwise."""
    if qp.dtype not in SIGNED_BITS:
        raise RillError(f"{what} is quantized as {qp.dtype}; {SYMMETRIC_HINT}")
    if qp.zero_point is not None and np.any(qp.zero_point != 0):
        nonzero = sorted({int(v) for v in np.ravel(qp.zero_point) if v != 0})[:4]
        raise RillError(f"{what} has zero point {', '.join(map(str, nonzero))} (asymmetric "
                        f"quantization); {SYMMETRIC_HINT}")
    return SIGNED_BITS[qp.dtype]


def positive_scales(what: str, qp: QParams) -> np.ndarray:
    s = qp.scale.reshape(-1)
    if s.size == 0 or not np.all(np.isfinite(s)) or np.any(s <= 0):
        raise RillError(f"{what}: quantization scale {s.tolist()[:4]} is not positive and finite")
    return s


def is_power_of_two(s: float) -> bool:
    return math.frexp(s)[0] == 0.5


def nearest_exponent(s: float) -> int:
    """The exponent of the power of two nearest to `s` in log2 (exact for powers of two)."""
    return math.frexp(s)[1] - 1 if is_power_of_two(s) else int(round(math.log2(s)))


def qmax(bits: int) -> int:
    return (1 << (bits - 1)) - 1


# --------------------------------------------------------------------------- error statements

def activation_note(tensor: str, s: float, e: int, bits: int) -> str:
    """What rounding an activation's scale to 2^e changes: step, rounding error, range."""
    p = math.ldexp(1.0, e)
    ratio = p / s
    change = (f"the range shrinks from ±{qmax(bits) * s:.4g} to ±{qmax(bits) * p:.4g} (values in "
              "between now saturate)" if ratio < 1 else
              f"the range grows from ±{qmax(bits) * s:.4g} to ±{qmax(bits) * p:.4g}")
    return (f"tensor '{tensor}': QDQ scale {s:.6g} is not a power of two; Rill uses 2^{e} = {p:.6g} "
            f"(scale {100 * (ratio - 1):+.1f}%): the max rounding error on the int{bits} grid is "
            f"{p / 2:.4g} instead of {s / 2:.4g} (quantization-noise SNR "
            f"{-20 * math.log10(ratio):+.2f} dB), and {change}")


def requantized(w: np.ndarray, e: np.ndarray, bits: int) -> np.ndarray:
    """Out-channel-first weights `w` quantized at per-channel exponents `e` and dequantized
    (round half to even, saturated), as the weights Rill will actually use."""
    step = np.ldexp(1.0, e.astype(np.int64)).reshape((-1,) + (1,) * (w.ndim - 1))
    q = np.clip(round_to_int(w / step, "half_even"), -qmax(bits) - 1, qmax(bits))
    return q * step


def weight_exponents(w: np.ndarray, scales: np.ndarray, bits: int) -> np.ndarray:
    """Per output channel, the power of two that represents the given weights best.

    A power-of-two scale is taken as given (re-quantization is then exact). Otherwise, of the
    two powers of two around the scale, the one with the smaller re-quantization error of the
    channel's dequantized weights: the nearer one in log2 may clip the channel's largest
    weights by up to 29%, the coarser one at most doubles the step."""
    exact = np.array([is_power_of_two(float(s)) for s in scales])
    lo = np.floor(np.log2(scales)).astype(np.int64)
    nearest = np.array([nearest_exponent(float(s)) for s in scales], np.int64)
    flat = w.reshape(w.shape[0], -1)
    err = [np.sum((requantized(flat, e, bits) - flat) ** 2, axis=1) for e in (lo, lo + 1)]
    best = np.where(err[0] < err[1], lo, lo + 1)
    best = np.where(err[0] == err[1], nearest, best)
    return np.where(exact, nearest, best).astype(np.int32)


def weight_note(tensor: str, node: gs.Node, w: np.ndarray, scales: np.ndarray, e: np.ndarray,
                bits: int) -> str:
    """What re-quantizing the given weights at power-of-two scales costs, measured."""
    ratio = np.ldexp(1.0, e.astype(np.int64)) / scales
    err = requantized(w, e, bits) - w
    top = max(float(np.max(np.abs(w))), 1e-30)
    noise = float(np.sum(err ** 2))
    snr = math.inf if noise == 0 else 10 * math.log10(max(float(np.sum(w ** 2)), 1e-300) / noise)
    bad = int(np.sum(~np.array([is_power_of_two(float(s)) for s in scales])))
    return (f"weights '{tensor}' of {node_label(node)}: {bad} of {len(scales)} QDQ scales are not "
            f"powers of two; Rill uses 2^{int(e.min())}..2^{int(e.max())} per output channel "
            f"(scale {100 * (ratio.min() - 1):+.1f}%..{100 * (ratio.max() - 1):+.1f}%): "
            f"re-quantizing the given weights costs max abs error {float(np.max(np.abs(err))):.4g} "
            f"({100 * float(np.max(np.abs(err))) / top:.2f}% of max|w|), weight SNR {snr:.1f} dB")


# --------------------------------------------------------------------------- weights

def out_axis(node: gs.Node, ndim: int) -> int:
    """The axis of the stored weight that indexes output channels (per group, for
    ConvTranspose)."""
    if node.op == "ConvTranspose":
        return 1
    if node.op == "Gemm":
        return 0 if int(node.attrs.get("transB", 0)) else 1
    if node.op == "MatMul":
        return ndim - 1
    return 0


def out_channel_first(node: gs.Node) -> np.ndarray:
    """The node's (constant) weights with output channels first, as Quantize sees them once the
    float passes made every Gemm canonical (MatMul and transB=0 weights are transposed)."""
    if node.op in ("Conv", "ConvTranspose") or (node.op == "Gemm" and int(node.attrs.get("transB", 0))):
        return out_channel_weights(node)
    return const_value(node.inputs[1]).T


def weight_fingerprint(w: np.ndarray) -> str:
    """Identifies the float weights a node was imported with, so that the quantizer can tell
    whether a later pass (e.g. a folded BatchNorm) changed them."""
    w = np.ascontiguousarray(w, np.float32)
    return hashlib.sha1(repr(w.shape).encode() + w.tobytes()).hexdigest()


def out_channel_scales(node: gs.Node, w: np.ndarray, qp: QParams, what: str) -> np.ndarray:
    """One scale per output channel of `node` (in out_channel_first's order)."""
    scales = positive_scales(what, qp)
    axis = out_axis(node, w.ndim)
    groups = int(node.attrs.get("group", 1)) if node.op == "ConvTranspose" else 1
    c_out = w.shape[axis] * groups
    if scales.size == 1:
        return np.full(c_out, scales[0])
    if qp.axis % w.ndim != axis or scales.size != w.shape[axis]:
        raise RillError(f"{what}: per-axis scales along axis {qp.axis} are not per output channel "
                        f"of {node_label(node)} (axis {axis})")
    return np.tile(scales, groups)


def weight_consumers(t: gs.Tensor, ndim: int) -> list[gs.Node]:
    """The weighted nodes reading `t` (of rank `ndim`) as their weights."""
    return [n for n in t.outputs if n.op in WEIGHTED and len(n.inputs) > 1 and n.inputs[1] is t
            and (n.op != "MatMul" or ndim == 2)]


# --------------------------------------------------------------------------- the pass

class ImportQDQ(Pass):
    name = "import-qdq"
    ensures = frozenset({"qdq-imported"})

    def run(self, ctx: CompileContext) -> bool:
        graph = ctx.graph
        if not any(is_op(n, op) for n in graph.nodes for op in ("QuantizeLinear", "DequantizeLinear")):
            return False
        for key in ("fixed_exponents", "tensor_bits", "weight_bits", "given_weight_exponents",
                    "given_weight_fingerprints"):
            ctx.facts.setdefault(key, {})
        ctx.facts.setdefault("qdq_import", [])
        importer = _Importer(graph, ctx)
        for q in [n for n in graph.nodes if is_op(n, "QuantizeLinear")]:
            if const_value(q.inputs[0]) is not None:
                importer.fold_quantize(q)
        for dq in [n for n in graph.nodes if is_op(n, "DequantizeLinear")]:
            if dq.inputs and const_value(dq.inputs[0]) is not None:
                importer.fold_dequantize(dq)
        importer.refuse_integer_inputs()
        importer.strip_activation_pairs()
        graph.cleanup(remove_unused_graph_inputs=False).toposort()
        left = [n for n in graph.nodes if is_op(n, "QuantizeLinear") or is_op(n, "DequantizeLinear")]
        if left:
            raise RillError("QuantizeLinear/DequantizeLinear nodes that are not a constant's "
                            "dequantization or an activation's Q -> DQ pair remain",
                            [node_label(n) for n in left[:8]])
        return True


class _Importer:
    """The rewrites of one ImportQDQ run and the facts they record."""

    def __init__(self, graph: gs.Graph, ctx: CompileContext):
        self.graph, self.ctx, self.facts = graph, ctx, ctx.facts

    def record(self, **entry) -> None:
        if entry.get("note"):
            self.ctx.warn(entry["note"])
        self.facts["qdq_import"].append(entry)

    # -- constants ---------------------------------------------------------------------------
    def fold_quantize(self, q: gs.Node) -> None:
        """Q of a float constant (fake-quantized weights): the integer constant it produces,
        rounded half to even as ONNX specifies."""
        qp, x = qparams(q), const_value(q.inputs[0]).astype(np.float64)
        info = np.iinfo(qp.dtype)
        zp = 0 if qp.zero_point is None else per_axis(qp.zero_point.astype(np.float64), qp.axis, x.ndim)
        v = round_to_int(x / per_axis(qp.scale, qp.axis, x.ndim), "half_even") + zp
        out = gs.Constant(q.outputs[0].name + "__int", np.clip(v, info.min, info.max).astype(qp.dtype))
        replace_tensor_uses(q.outputs[0], out, self.graph)
        q.inputs.clear()
        q.outputs.clear()

    def fold_dequantize(self, dq: gs.Node) -> None:
        """A constant's DequantizeLinear becomes the float constant; weights of weighted nodes
        keep their per-output-channel exponents."""
        qp, q = qparams(dq), const_value(dq.inputs[0])
        src, out = dq.inputs[0].name, dq.outputs[0]
        if out in self.graph.outputs:
            raise RillError(f"{node_label(dq)}: a constant graph output is not supported")
        zp = 0 if qp.zero_point is None else per_axis(qp.zero_point.astype(np.float64), qp.axis, q.ndim)
        values = ((q.astype(np.float64) - zp) * per_axis(qp.scale, qp.axis, q.ndim)).astype(np.float32)
        const = gs.Constant(out.name, values)
        users = weight_consumers(out, values.ndim)
        replace_tensor_uses(out, const, self.graph)
        dq.inputs.clear()
        dq.outputs.clear()
        for node in users:
            self.import_weight(node, src, qp)
        if not users:
            kind = "bias" if q.dtype == np.int32 else "constant"
            self.record(kind=kind, tensor=src, node=None, bits=int(q.dtype.itemsize * 8),
                        scales=qp.scale.reshape(-1).tolist(), exponents=None, exact=True, note=None)

    def import_weight(self, node: gs.Node, tensor: str, qp: QParams) -> None:
        what = f"weights '{tensor}' of {node_label(node)}"
        bits = symmetric_bits(what, qp)
        w = out_channel_first(node).astype(np.float64)
        scales = out_channel_scales(node, const_value(node.inputs[1]), qp, what)
        e = weight_exponents(w, scales, bits)
        exact = all(is_power_of_two(float(s)) for s in scales)
        self.facts["given_weight_exponents"][node.name] = e
        self.facts["given_weight_fingerprints"][node.name] = weight_fingerprint(w)
        self.facts["weight_bits"][node.name] = bits
        self.record(kind="weight", tensor=tensor, node=node.name, bits=bits,
                    scales=scales.tolist(), exponents=e.tolist(), exact=exact,
                    note=None if exact else weight_note(tensor, node, w, scales, e, bits))

    # -- activations -------------------------------------------------------------------------
    def refuse_integer_inputs(self) -> None:
        """A model fed integers (a DequantizeLinear reading a graph input) is not Rill's: its
        generated component quantizes the float input itself."""
        for dq in [n for n in self.graph.nodes if is_op(n, "DequantizeLinear") and n.inputs]:
            if dq.inputs[0] in self.graph.inputs:
                raise RillError(f"the model's input '{dq.inputs[0].name}' is already quantized "
                                f"({node_label(dq)} reads it); export the model with a float input "
                                "and a QuantizeLinear -> DequantizeLinear pair on it")

    def strip_activation_pairs(self) -> None:
        by_source: dict[str, list[gs.Node]] = {}
        for q in [n for n in self.graph.nodes if is_op(n, "QuantizeLinear") and n.inputs]:
            by_source.setdefault(q.inputs[0].name, []).append(q)
        for qs in by_source.values():
            self.strip_pairs(qs)

    def strip_pairs(self, qs: list[gs.Node]) -> None:
        """Every Q -> DQ pair of one source tensor disappears; the tensor keeps the exponent."""
        src = qs[0].inputs[0]
        qp = qparams(qs[0])
        what = f"activation '{src.name}'"
        bits = symmetric_bits(what, qp)
        scales = positive_scales(what, qp)
        if np.ptp(scales) != 0:
            raise RillError(f"{what} has per-channel scales; Rill quantizes activations per tensor")
        for q in qs[1:]:
            if not dq_matches(qparams(q), qp):
                raise RillError(f"{what} is quantized twice, with different parameters "
                                f"({node_label(qs[0])}, {node_label(q)})")
        dqs = [dq for q in qs for dq in self.pair_dequantizer(q, qp, what)]
        name = self.rewire(src, dqs)
        for q in qs:
            q.inputs.clear()
            q.outputs.clear()
        s = float(scales[0])
        e = nearest_exponent(s)
        if self.facts["fixed_exponents"].get(name, e) != e:
            raise RillError(f"activation '{name}' is quantized twice with different scales (a "
                            "Q -> DQ -> Q -> DQ chain); Rill gives a tensor one exponent")
        self.facts["fixed_exponents"][name] = e
        self.facts["tensor_bits"][name] = bits
        exact = is_power_of_two(s)
        self.record(kind="activation", tensor=name, node=None, bits=bits, scales=[s], exponents=e,
                    exact=exact, note=None if exact else activation_note(name, s, e, bits))

    def pair_dequantizer(self, q: gs.Node, qp: QParams, what: str) -> list[gs.Node]:
        """The DequantizeLinear nodes reading Q's output, checked to undo exactly that Q."""
        out = q.outputs[0]
        if out in self.graph.outputs:
            raise RillError(f"{what}: the model outputs the quantized integers ('{out.name}'); "
                            "export it with float outputs (a DequantizeLinear at the end)")
        readers = list(out.outputs)
        if any(not is_op(r, "DequantizeLinear") for r in readers):
            other = next(r for r in readers if not is_op(r, "DequantizeLinear"))
            raise RillError(f"{what}: its quantized value is read by {node_label(other)}; only the "
                            "QDQ format is supported (not QOperator / QLinear* ops)")
        for dq in readers:
            if not dq_matches(qparams(dq), qp):
                raise RillError(f"{what}: {node_label(dq)} dequantizes with other parameters than "
                                f"{node_label(q)} quantized with")
        return readers

    def rewire(self, src: gs.Tensor, dqs: list[gs.Node]) -> str:
        """Readers of the DQ outputs read `src`; a DQ output that is a graph output lends its
        name to `src` (so the model's interface does not change). Returns `src`'s final name."""
        fixed = src in self.graph.inputs or src in self.graph.outputs
        for dq in dqs:
            out = dq.outputs[0]
            dq.outputs.clear()
            dq.inputs.clear()
            if out in self.graph.outputs and not fixed:
                name = out.name
                out.name = name + "__dequantized"
                src.name, src.dtype = name, out.dtype or src.dtype
                src.shape = out.shape or src.shape
                fixed = True
            replace_tensor_uses(out, src, self.graph)
        return src.name


def dq_matches(a: QParams, b: QParams) -> bool:
    """Same type, scale and zero point (a missing zero point is 0)."""
    zp = lambda q: np.zeros(q.scale.shape) if q.zero_point is None else q.zero_point.astype(np.float64)
    return (a.dtype == b.dtype and a.scale.shape == b.scale.shape
            and np.array_equal(a.scale, b.scale) and np.array_equal(zp(a), zp(b)))


def per_axis(v: np.ndarray, axis: int, ndim: int) -> np.ndarray:
    """A per-tensor or per-axis parameter shaped to broadcast against an `ndim` array."""
    v = np.asarray(v, np.float64)
    if v.size == 1 or ndim == 0:
        return v.reshape(()) if v.size == 1 else v
    shape = [1] * ndim
    shape[axis % ndim] = v.size
    return v.reshape(shape)


def honored_weight_exponents(graph: gs.Graph, facts: dict) -> tuple[dict[str, np.ndarray], list[str]]:
    """The imported per-output-channel weight exponents that still apply, and the nodes whose
    given exponents no longer do (renamed, or weights changed by a later pass such as a folded
    BatchNorm: the quantizer must choose those itself).

    Quantize calls this instead of reading `facts["given_weight_exponents"]` directly."""
    given = facts.get("given_weight_exponents", {})
    prints = facts.get("given_weight_fingerprints", {})
    nodes = {n.name: n for n in graph.nodes}
    honored, stale = {}, []
    for name, e in given.items():
        node = nodes.get(name)
        ok = node is not None and const_value(node.inputs[1]) is not None and \
            weight_fingerprint(out_channel_first(node)) == prints.get(name)
        if ok:
            honored[name] = e
        else:
            stale.append(name)
    return honored, stale
