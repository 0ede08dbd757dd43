"""Small helpers over the onnx-graphsurgeon IR that every pass uses."""
from __future__ import annotations

import numpy as np
import onnx
import onnx_graphsurgeon as gs

from compiler.rill_ops import RILL_DOMAIN, expand_rill_ops

Graph = gs.Graph
Node = gs.Node
Tensor = gs.Tensor


def import_model(model: onnx.ModelProto) -> gs.Graph:
    return gs.import_onnx(model)


def export_model(graph: gs.Graph, *, keep_shapes: bool = True) -> onnx.ModelProto:
    """A standalone ModelProto of `graph` (rill ops kept; see `to_runnable`)."""
    graph.cleanup(remove_unused_graph_inputs=False).toposort()
    model = gs.export_onnx(graph, do_type_check=False)
    if any(n.domain == RILL_DOMAIN for n in model.graph.node) and \
            not any(o.domain == RILL_DOMAIN for o in model.opset_import):
        model.opset_import.append(onnx.helper.make_opsetid(RILL_DOMAIN, 1))
    if not keep_shapes:
        del model.graph.value_info[:]
    return model


def to_runnable(graph: gs.Graph) -> onnx.ModelProto:
    """A standard-ONNX model of `graph` that onnxruntime can run."""
    return expand_rill_ops(export_model(graph.copy()))


def const_value(t: Tensor) -> np.ndarray | None:
    """The value of a constant tensor (initializer or Constant output), else None."""
    if isinstance(t, gs.Constant):
        return np.asarray(t.values)
    if len(t.inputs) == 1 and t.inputs[0].op == "Constant":
        attrs = t.inputs[0].attrs
        if "value" in attrs:
            v = attrs["value"]
            return np.asarray(v.values if isinstance(v, gs.Constant) else v)
    return None





def fusable_producer(graph: gs.Graph, t: Tensor, consumer: Node) -> Node | None:
    """The node writing `t` when `consumer` is its only reader and `t` is not a graph output,
    i.e. when a fusion may make the producer absorb the consumer."""
    if not t.inputs or only_consumer(t) is not consumer or t in graph.outputs:
        return None
    return t.inputs[0]


def only_consumer(t: Tensor) -> Node | None:
    outs = t.outputs
    return outs[0] if len(outs) == 1 else None


def is_graph_output(graph: gs.Graph, t: Tensor) -> bool:
    return any(o is t for o in graph.outputs)


def node_label(node: Node) -> str:
    return f"node '{node.name or '<unnamed>'}' ({node.op})"



def unique_name(graph: gs.Graph, base: str) -> str:
    """A tensor/node name not used in `graph` yet."""
    used = set(graph.tensors().keys()) | {n.name for n in graph.nodes}
    if base not in used:
        return base
    i = 1
    while f"{base}_{i}" in used:
        i += 1
    return f"{base}_{i}"


def replace_tensor_uses(old: Tensor, new: Tensor, graph: gs.Graph | None = None) -> None:
    """Point every consumer (and graph output slot) of `old` at `new`."""
    for node in list(old.outputs):
        for i, t in enumerate(node.inputs):
            if t is old:
                node.inputs[i] = new
    if graph is not None:
        for i, t in enumerate(graph.outputs):
            if t is old:
                graph.outputs[i] = new


def bypass_node(graph: gs.Graph, node: Node) -> None:
    """Remove a single-input single-output node by wiring its input to its consumers.

    When the output is a graph output, the input tensor takes over the output's name so the
    model's interface does not change.
    """
    src, dst = node.inputs[0], node.outputs[0]
    if is_graph_output(graph, dst):
        name = dst.name
        dst.name = unique_name(graph, name + "__removed")
        src.name = name
        src.dtype, src.shape = dst.dtype or src.dtype, dst.shape or src.shape
    replace_tensor_uses(dst, src, graph)
    node.inputs.clear()
    node.outputs.clear()


def absorb(node: Node, consumer: Node) -> None:
    """`node` takes over the output of `consumer`, which is left dangling for cleanup.

    Used by fusions: the fused node writes the tensor the absorbed op used to write, so every
    reader (and the graph output list) stays as it was.
    """
    out = consumer.outputs[0]
    consumer.outputs.clear()
    node.outputs[0] = out


def static_shape(t: Tensor) -> tuple[int, ...] | None:
    if t.shape is None or any(not isinstance(d, (int, np.integer)) or d < 0 for d in t.shape):
        return None
    return tuple(int(d) for d in t.shape)
