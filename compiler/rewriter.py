"""Pattern / check / rewrite rules applied to a fixed point, in the style of onnxscript's rewriter.

A rule looks at one anchor node: `match` returns the bindings it needs (or None), `check` may
reject a match for a semantic reason, `rewrite` mutates the graph. `RewritePass` applies its
rules until none fires.
"""
from __future__ import annotations

from typing import Any

import onnx_graphsurgeon as gs

from compiler.context import CompileContext
from compiler.pass_manager import Pass
from compiler.shapes import infer_shapes


class RewriteRule:
    name: str = ""
    anchor_ops: frozenset[str] = frozenset()  # op types the rule starts matching from

    def match(self, graph: gs.Graph, node: gs.Node) -> dict[str, Any] | None:
        raise NotImplementedError

    def check(self, graph: gs.Graph, m: dict[str, Any]) -> bool:
        return True

    def rewrite(self, graph: gs.Graph, m: dict[str, Any]) -> None:
        raise NotImplementedError


class RewritePass(Pass):
    rules: tuple[RewriteRule, ...] = ()
    preserves_float_semantics = True
    reinfer_shapes = False  # set when rewrites change tensor shapes that later rules read

    def run(self, ctx: CompileContext) -> bool:
        graph = ctx.graph
        changed = False
        for _ in range(10000):
            fired = self._apply_once(graph)
            if not fired:
                break
            changed = True
            graph.cleanup(remove_unused_graph_inputs=False).toposort()
            if self.reinfer_shapes:
                infer_shapes(graph)
        return changed

    def _apply_once(self, graph: gs.Graph) -> bool:
        for node in list(graph.nodes):
            for rule in self.rules:
                if node.op not in rule.anchor_ops:
                    continue
                m = rule.match(graph, node)
                if m is not None and rule.check(graph, m):
                    rule.rewrite(graph, m)
                    return True
        return False
