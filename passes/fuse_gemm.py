"""Canonical Gemm: `y = x @ W^T + b` with W stored [N, K], alpha = beta = 1.

MatMul by a constant followed by Add of a constant bias becomes one Gemm (a constant on the
left, `C @ X`, is turned around first: (X^T C^T)^T); Gemm's alpha, beta and
transB are folded into its constants; a following bias Add is folded into the Gemm's bias. A
MatMul over a [..., M, K] activation (e.g. a per-frame Linear after a recurrent layer) becomes
Reshape to [prod(...)*M, K], Gemm, Reshape back, so every product is one 2-D Gemm; a vector
[K] (one feature frame) is one row.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import onnx_graphsurgeon as gs

from compiler.graph import (absorb, const_value, fusable_producer, only_consumer, static_shape,
                           unique_name)
from compiler.rewriter import RewritePass, RewriteRule


def _is_vector_bias(b: np.ndarray, n: int) -> bool:
    """A bias that is one value per output column: shape (), (1,), (n,), (1, n), ..."""
    return b.size in (1, n) and (b.ndim == 0 or all(d == 1 for d in b.shape[:-1]))


def _is_canonical(node: gs.Node, c: np.ndarray | None, n: int) -> bool:
    a = node.attrs
    return (int(a.get("transB", 0)) == 1 and float(a.get("alpha", 1.0)) == 1.0
            and float(a.get("beta", 1.0)) == 1.0 and c is not None and c.shape == (n,))


def _bias_of(add: gs.Node, src: gs.Tensor, n: int) -> np.ndarray | None:
    other = add.inputs[1] if add.inputs[0] is src else add.inputs[0]
    b = const_value(other)
    if b is None or not _is_vector_bias(b, n):
        return None
    return np.broadcast_to(b.reshape(-1).astype(np.float32), (n,)).copy()


class MatMulToGemm(RewriteRule):
    name = "matmul-to-gemm"
    anchor_ops = frozenset({"MatMul"})

    def match(self, graph: gs.Graph, node: gs.Node) -> dict[str, Any] | None:
        w = const_value(node.inputs[1])
        shape = static_shape(node.inputs[0])
        if w is None or w.ndim != 2 or shape is None or not shape:
            return None
        m = {"mm": node, "w": w, "shape": shape, "out": node.outputs[0], "bias": None}
        add = fusable_producer(graph, node.outputs[0], only_consumer(node.outputs[0])) and \
            only_consumer(node.outputs[0])
        if len(shape) != 2 and add is not None and add.op == "Add":
            bias = _bias_of(add, node.outputs[0], w.shape[1])
            if bias is not None and static_shape(add.outputs[0]) == static_shape(node.outputs[0]):
                m.update(bias=bias, out=add.outputs[0], add=add)
        return m

    def rewrite(self, graph: gs.Graph, m: dict[str, Any]) -> None:
        mm, w, shape = m["mm"], m["w"].astype(np.float32), m["shape"]
        inputs = [mm.inputs[0], gs.Constant(unique_name(graph, f"{mm.name}/weight_t"),
                                            np.ascontiguousarray(w.T))]
        if m["bias"] is not None:
            inputs.append(gs.Constant(unique_name(graph, f"{mm.name}/bias"), m["bias"]))
            m["add"].outputs.clear()
        out = m["out"]
        mm.outputs.clear()
        if len(shape) == 2:
            graph.nodes.append(gs.Node("Gemm", name=mm.name, attrs={"transB": 1}, inputs=inputs,
                                       outputs=[out]))
            return
        rows = int(np.prod(shape[:-1]))
        flat_in = self._reshape(graph, inputs[0], [rows, shape[-1]], f"{mm.name}/rows")
        flat_out = gs.Variable(unique_name(graph, f"{mm.name}.rows_out"), dtype=np.float32,
                               shape=[rows, w.shape[1]])
        graph.nodes.append(gs.Node("Gemm", name=mm.name, attrs={"transB": 1},
                                   inputs=[flat_in] + inputs[1:], outputs=[flat_out]))
        graph.nodes.append(gs.Node("Reshape", name=unique_name(graph, f"{mm.name}/unrows"),
                                   inputs=[flat_out, gs.Constant(
                                       unique_name(graph, f"{mm.name}/out_shape"),
                                       np.array(list(shape[:-1]) + [w.shape[1]], np.int64))],
                                   outputs=[out]))

    @staticmethod
    def _reshape(graph: gs.Graph, t: gs.Tensor, shape: list[int], name: str) -> gs.Variable:
        out = gs.Variable(unique_name(graph, f"{name}.out"), dtype=np.float32, shape=shape)
        graph.nodes.append(gs.Node("Reshape", name=unique_name(graph, name),
                                   inputs=[t, gs.Constant(unique_name(graph, f"{name}/shape"),
                                                          np.array(shape, np.int64))],
                                   outputs=[out]))
        return out


class ConstantLeftMatMul(RewriteRule):
    """`C @ X` with a constant 2-D C (e.g. a mel filterbank over spectrogram frames [1, F, T])
    becomes Transpose(Transpose(X) @ C^T): `matmul-to-gemm` then makes the product a Gemm whose
    output channels are C's rows (per-channel weight exponents); with time stored first the
    transposes move no data."""
    name = "matmul-constant-left"
    anchor_ops = frozenset({"MatMul"})

    def match(self, graph: gs.Graph, node: gs.Node) -> dict[str, Any] | None:
        c = const_value(node.inputs[0])
        shape = static_shape(node.inputs[1])
        if c is None or c.ndim != 2 or const_value(node.inputs[1]) is not None \
                or shape is None or len(shape) < 2:
            return None
        return {"mm": node, "c": c, "shape": shape}

    def rewrite(self, graph: gs.Graph, m: dict[str, Any]) -> None:
        mm, c, shape = m["mm"], m["c"], list(m["shape"])
        rank = len(shape)
        perm = list(range(rank - 2)) + [rank - 1, rank - 2]
        xt = gs.Variable(unique_name(graph, f"{mm.name}.x_t"), dtype=np.float32,
                         shape=[shape[p] for p in perm])
        graph.nodes.append(gs.Node("Transpose", name=unique_name(graph, f"{mm.name}/x_t"),
                                   attrs={"perm": perm}, inputs=[mm.inputs[1]], outputs=[xt]))
        out = mm.outputs[0]
        yt = gs.Variable(unique_name(graph, f"{mm.name}.y_t"), dtype=np.float32,
                         shape=shape[:-2] + [shape[-1], c.shape[0]])
        mm.inputs[0], mm.inputs[1] = xt, gs.Constant(unique_name(graph, f"{mm.name}/c_t"),
                                                     np.ascontiguousarray(c.T))
        mm.outputs[0] = yt
        graph.nodes.append(gs.Node("Transpose", name=unique_name(graph, f"{mm.name}/y_t"),
                                   attrs={"perm": perm}, inputs=[yt], outputs=[out]))


class CanonicalGemm(RewriteRule):
    """Any Gemm with a constant B: transA becomes a Transpose of A in front, alpha and transB
    are folded into W, beta into the bias; a bias C that is not one value per output column
    (a matrix, or a column) is added after the Gemm (`Add(y, beta * C)`)."""

    name = "canonical-gemm"
    anchor_ops = frozenset({"Gemm"})

    def match(self, graph: gs.Graph, node: gs.Node) -> dict[str, Any] | None:
        b = const_value(node.inputs[1])
        if b is None or b.ndim != 2 or static_shape(node.inputs[0]) is None:
            return None
        n = b.shape[0] if int(node.attrs.get("transB", 0)) else b.shape[1]
        has_c = len(node.inputs) > 2 and node.inputs[2].name
        c = const_value(node.inputs[2]) if has_c else None
        if has_c and c is None:
            return None
        if _is_canonical(node, c, n) and not int(node.attrs.get("transA", 0)):
            return None
        return {"gemm": node, "b": b, "c": c}

    def rewrite(self, graph: gs.Graph, m: dict[str, Any]) -> None:
        g = m["gemm"]
        alpha, beta = float(g.attrs.get("alpha", 1.0)), float(g.attrs.get("beta", 1.0))
        w = m["b"].astype(np.float64)
        w = w if int(g.attrs.get("transB", 0)) else w.T
        n = w.shape[0]
        if int(g.attrs.get("transA", 0)):
            g.inputs[0] = self._transposed(graph, g.inputs[0], f"{g.name}/transA")
        c = m["c"]
        vector = c is None or _is_vector_bias(c, n)
        bias = np.zeros(n) if c is None or not vector else np.broadcast_to(c.reshape(-1), (n,))
        while len(g.inputs) > 1:
            del g.inputs[-1]
        g.inputs.append(gs.Constant(unique_name(graph, f"{g.name}/weight"), (alpha * w).astype(np.float32)))
        g.inputs.append(gs.Constant(unique_name(graph, f"{g.name}/bias"), (beta * bias).astype(np.float32)))
        g.attrs = {"transB": 1}
        if not vector:
            out = g.outputs[0]
            product = gs.Variable(unique_name(graph, f"{out.name}.product"), dtype=np.float32,
                                  shape=out.shape)
            g.outputs[0] = product
            graph.nodes.append(gs.Node(
                "Add", name=unique_name(graph, f"{g.name}/bias_c"), outputs=[out],
                inputs=[product, gs.Constant(unique_name(graph, f"{g.name}/c"),
                                             (beta * c).astype(np.float32))]))

    @staticmethod
    def _transposed(graph: gs.Graph, t: gs.Tensor, name: str) -> gs.Variable:
        rows, cols = static_shape(t)
        out = gs.Variable(unique_name(graph, f"{name}.out"), dtype=np.float32, shape=[cols, rows])
        graph.nodes.append(gs.Node("Transpose", name=unique_name(graph, name), inputs=[t],
                                   outputs=[out], attrs={"perm": [1, 0]}))
        return out


class FoldBiasAdd(RewriteRule):
    name = "gemm-bias"
    anchor_ops = frozenset({"Add"})

    def match(self, graph: gs.Graph, node: gs.Node) -> dict[str, Any] | None:
        for src in node.inputs:
            prod = fusable_producer(graph, src, node)
            if prod is None or prod.op != "Gemm" or len(prod.inputs) < 3:
                continue
            w = const_value(prod.inputs[1])
            if w is None or not _is_canonical(prod, const_value(prod.inputs[2]), w.shape[0]):
                continue
            bias = _bias_of(node, src, w.shape[0])
            if bias is not None and static_shape(node.outputs[0]) == static_shape(src):
                return {"add": node, "gemm": prod, "bias": bias}
        return None

    def rewrite(self, graph: gs.Graph, m: dict[str, Any]) -> None:
        g, add = m["gemm"], m["add"]
        g.inputs[2] = gs.Constant(unique_name(graph, f"{g.name}/bias_add"),
                                  const_value(g.inputs[2]) + m["bias"])
        absorb(g, add)


class FuseGemm(RewritePass):
    name = "fuse-gemm"
    requires = frozenset({"constants-folded"})
    ensures = frozenset({"gemm-canonical"})
    rules = (ConstantLeftMatMul(), MatMulToGemm(), CanonicalGemm(), FoldBiasAdd())
