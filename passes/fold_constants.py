"""Evaluate everything that does not depend on the model's inputs.

This is what turns exporter chains (Shape/Gather/Concat/ConstantOfShape/Reshape/Slice/Transpose/
Cast feeding a Pad's pads or a Reshape's shape) into plain constants for the later passes.
"""
from __future__ import annotations

import onnx_graphsurgeon as gs

import compiler.ort  # noqa: F401  (quiets onnxruntime before graphsurgeon uses it)
from compiler.context import CompileContext
from compiler.pass_manager import Pass
from compiler.shapes import infer_shapes


def _signature(graph: gs.Graph) -> tuple:
    return tuple((n.op, n.name) for n in graph.nodes)


class FoldConstants(Pass):
    name = "fold-constants"
    requires = frozenset()
    ensures = frozenset({"constants-folded", "shapes"})
    preserves_float_semantics = True

    def run(self, ctx: CompileContext) -> bool:
        graph = ctx.graph
        start = _signature(graph)
        for _ in range(8):  # shapes unlock folding and folding unlocks shapes
            before = _signature(graph)
            infer_shapes(graph)
            graph.fold_constants(fold_shapes=True, partitioning=None, error_ok=True,
                                 flatten_subgraphs=False)
            graph.cleanup(remove_unused_graph_inputs=False).toposort()
            for node in graph.nodes:  # Constant nodes become initializers
                if node.op == "Constant" and "value" in node.attrs and len(node.outputs) == 1:
                    value = node.attrs["value"]
                    out = node.outputs[0]
                    if isinstance(value, gs.Constant) and out not in graph.outputs:
                        const = gs.Constant(out.name, value.values)
                        for c in list(out.outputs):
                            c.inputs[:] = [const if t is out else t for t in c.inputs]
                        node.outputs.clear()
            graph.cleanup(remove_unused_graph_inputs=False).toposort()
            if _signature(graph) == before:
                break
        infer_shapes(graph)
        return _signature(graph) != start
