"""Give every tensor a static shape (and fail clearly where that is impossible)."""
from __future__ import annotations

from compiler.context import CompileContext
from compiler.errors import RillError
from compiler.graph import node_label, static_shape
from compiler.pass_manager import Pass
from compiler.shapes import infer_shapes


class InferShapes(Pass):
    name = "infer-shapes"
    ensures = frozenset({"shapes"})
    preserves_float_semantics = True

    def run(self, ctx: CompileContext) -> bool:
        infer_shapes(ctx.graph)
        unknown = []
        for node in ctx.graph.nodes:
            for t in node.outputs:
                if t.outputs or t in ctx.graph.outputs:
                    if static_shape(t) is None:
                        unknown.append(f"{node_label(node)}: output '{t.name}' has shape {t.shape}")
        if unknown:
            raise RillError("some tensor shapes stay unknown after pinning the inputs; pin every "
                            "input dim with --input-shape, or export with static shapes", unknown)
        return False
