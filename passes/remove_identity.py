"""Remove nodes that do nothing at inference: Identity, Dropout, and dead nodes."""
from __future__ import annotations

from compiler.context import CompileContext
from compiler.errors import RillError
from compiler.graph import bypass_node, node_label
from compiler.pass_manager import Pass

NO_OPS = {"Identity", "Dropout"}


class RemoveIdentity(Pass):
    name = "remove-identity"
    ensures = frozenset({"no-identity"})
    preserves_float_semantics = True

    def run(self, ctx: CompileContext) -> bool:
        graph = ctx.graph
        changed = False
        for node in list(graph.nodes):
            if node.op not in NO_OPS:
                continue
            if node.op == "Dropout" and len(node.outputs) > 1 and node.outputs[1].outputs:
                raise RillError(f"{node_label(node)}: the dropout mask is used by the model; "
                                "export the model in eval mode")
            if node.outputs[0] in graph.outputs and (node.inputs[0] in graph.inputs
                                                     or node.inputs[0] in graph.outputs):
                # the copy is the model's interface: an output distinct from its source
                if node.op == "Dropout":  # at inference a Dropout is that copy
                    node.op, node.attrs = "Identity", {}
                    while len(node.inputs) > 1:
                        node.inputs.pop()
                    while len(node.outputs) > 1:
                        node.outputs.pop()
                    changed = True
                continue
            bypass_node(graph, node)
            changed = True
        n = len(graph.nodes)
        graph.cleanup(remove_unused_graph_inputs=False).toposort()
        return changed or len(graph.nodes) != n
