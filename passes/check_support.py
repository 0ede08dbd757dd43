"""Refuse a model Rill cannot compile before any work is spent on it, listing every reason.

After the front-end passes (folding, fusions, shape inference) every node left must be lowered
by a kernel of the chosen precision. This pass checks each node's op type and the attributes the
kernels do not implement (a Pad mode, a 3-D convolution, a MaxPool's indices, a Resize, ...)
and raises ONE RillError naming every offending node, instead of letting calibration run and
the lowering stop at the first one. Layout questions that depend on where time is stored are
the streaming-cut's and the lowering's (they name the node too).
"""
from __future__ import annotations

from typing import Callable

import onnx_graphsurgeon as gs

from compiler.context import CompileContext
from compiler.errors import RillError
from compiler.graph import const_value, node_label, static_shape
from compiler.op_attrs import clip_bounds, pad_spec, slice_spec
from compiler.pass_manager import Pass
from passes.lowering.base import lowering_method
from passes.tables import pow_exponent
from passes.time_analysis import reduce_axes

PAD_MODES = ("constant", "reflect", "edge", "wrap")


def _attr(node: gs.Node, name: str, default):
    v = node.attrs.get(name, default)
    return v.decode() if isinstance(v, bytes) else v


def _rank(node: gs.Node, i: int = 0) -> int:
    return len(static_shape(node.inputs[i]) or ())


def _used(t: gs.Tensor, graph: gs.Graph) -> bool:
    return bool(t.name) and (bool(t.outputs) or t in graph.outputs)


def _conv(node, graph):
    if _rank(node) not in (3, 4):
        return f"a {_rank(node) - 2}-D convolution (1-D and 2-D have kernels)"
    if const_value(node.inputs[1]) is None:
        return "weights that are not constant"
    return None


def _conv_transpose(node, graph):
    if _rank(node) not in (3, 4):
        return f"a {_rank(node) - 2}-D ConvTranspose (1-D and 2-D have kernels)"
    if const_value(node.inputs[1]) is None:
        return "weights that are not constant"
    return None


def _pool(node, graph):
    if _rank(node) not in (3, 4):
        return f"a {_rank(node) - 2}-D {node.op} (1-D and 2-D have kernels)"
    if node.op == "MaxPool" and any(_used(t, graph) for t in node.outputs[1:]):
        return "its Indices output"
    if node.op == "AveragePool" and any(int(d) != 1 for d in node.attrs.get("dilations", [])):
        return "dilations"
    return None


def _pad(node, graph):
    spec = pad_spec(node)
    if spec is None:
        return "pads or a value that are not constant"
    if spec[2] not in PAD_MODES:
        return f"mode '{spec[2]}' (supported: {', '.join(PAD_MODES)})"
    return None


def _slice(node, graph):
    spec = slice_spec(node)
    if spec is None:
        return "starts/ends/axes/steps that are not constant"
    if any(s != 1 for s in spec[3]):
        return "steps other than 1"
    return None


def _gather(node, graph):
    index = const_value(node.inputs[1])
    if index is None or index.size != 1:
        return "indices that are not one constant index"
    return None


def _reduce(node, graph):
    if not node.op.startswith("Global") and reduce_axes(node, _rank(node)) is None:
        return "axes that are not constant"
    return None


def _two_operands(node, graph):
    if len(node.inputs) != 2:
        return f"{len(node.inputs)} inputs (two are supported)"
    return None


def _layernorm(node, graph):
    if any(_used(t, graph) for t in node.outputs[1:]):
        return "its Mean and InvStdDev outputs"
    if const_value(node.inputs[1]) is None:
        return "a scale that is not constant"
    if len(node.inputs) > 2 and node.inputs[2].name and const_value(node.inputs[2]) is None:
        return "an offset (B) that is not constant"
    return None


def _recurrent(node, graph):
    direction = _attr(node, "direction", "forward")
    if direction != "forward":
        return f"direction '{direction}' (forward is supported)"
    if node.attrs.get("activations") or node.attrs.get("clip") or \
            int(node.attrs.get("input_forget", 0)):
        return "custom activations, clip or input_forget"
    if any(const_value(node.inputs[i]) is None for i in (1, 2)):
        return "weights that are not constant"
    return None


def _unary(node, graph):
    if node.op == "Clip" and clip_bounds(node) is None:
        return "bounds that are not constant"
    if node.op == "Pow" and pow_exponent(node) is None:
        return "it needs a constant scalar exponent"
    return None


CHECKS: dict[str, Callable[[gs.Node, gs.Graph], str | None]] = {
    "Conv": _conv, "FusedConv": _conv, "ConvTranspose": _conv_transpose,
    "AveragePool": _pool, "MaxPool": _pool, "Pad": _pad, "Slice": _slice, "Gather": _gather,
    "ReduceMean": _reduce, "ReduceMax": _reduce, "ReduceSum": _reduce,
    "Add": _two_operands, "Sub": _two_operands, "Mul": _two_operands, "Div": _two_operands,
    "Max": _two_operands, "Min": _two_operands, "LayerNormalization": _layernorm,
    "GRU": _recurrent, "LSTM": _recurrent, "Clip": _unary, "Pow": _unary,
}


#: Ops the front-end passes fold, fuse or remove before this check (BatchNormalization into a
#: conv or a depthwise 1x1 conv, Dropout and Identity removed, Constant folded, a MatMul with a
#: constant operand made a Gemm, a zero Pad folded into the conv after it): a model may contain
#: them in every precision; what is left of them is checked like any node.
FRONTEND_OPS = frozenset({"BatchNormalization", "Dropout", "Identity", "Constant", "MatMul",
                          "Pad"})


def lowering_for(bits: int) -> type:
    """The Lowering class of a precision: float32 for --bits 32, else the integer one."""
    from passes.lower_float import FloatLowering
    from passes.lower_integer import Lowering
    return FloatLowering if bits == 32 else Lowering


def has_kernel(op: str, lowering: type) -> bool:
    """Whether `lowering` has a kernel for ONNX op `op` (its attributes aside)."""
    method = lowering_method(op)
    return method is not None and hasattr(lowering, method) and \
        (method != "unary" or op in lowering.unary_ops)


def claimed_ops(bits: int) -> frozenset[str]:
    """The ONNX op types a model compiled at `bits` may contain (README "Supported today"):
    those with a kernel in that precision and those the front end removes. The ONNX node-test
    harness attempts exactly the cases made of these."""
    from passes.lowering.base import OP_METHODS
    from passes.tables import TABLE_OPS
    lowering = lowering_for(bits)
    return frozenset(op for op in set(OP_METHODS) | TABLE_OPS
                     if has_kernel(op, lowering)) | FRONTEND_OPS


def unsupported(node: gs.Node, graph: gs.Graph, lowering: type) -> str | None:
    """Why `node` cannot be compiled by `lowering` (a Lowering class), or None."""
    if not has_kernel(node.op, lowering):
        known = lowering_method(node.op) is not None
        return "no kernel for this op" + (f" in {lowering.precision}" if known else "")
    check = CHECKS.get(node.op)
    return check(node, graph) if check else None


class CheckSupport(Pass):
    name = "check-support"
    requires = frozenset({"shapes"})
    ensures = frozenset({"ops-supported"})

    def run(self, ctx: CompileContext) -> bool:
        lowering = lowering_for(ctx.options.bits)
        problems = []
        for node in ctx.graph.nodes:
            why = unsupported(node, ctx.graph, lowering)
            if why:
                problems.append(f"{node_label(node)}: {why}")
        if problems:
            raise RillError(f"the model uses {len(problems)} node(s) Rill cannot compile "
                            f"({'float32' if ctx.options.bits == 32 else 'int8/int16'}); "
                            "README.md lists what is supported:", problems)
        return False
