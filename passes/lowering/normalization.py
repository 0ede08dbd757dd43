"""Lowering of LayerNormalization to the `layernorm` kernel: integer mean and variance, an exact
integer square root, then a per-element scale and offset (runtime/KERNELS.md, layernorm).

Exponents: the normalized value Z = (x - mean) / sqrt(var + eps) is formed with `z_frac`
fraction bits (the most the row length allows, so Z keeps about 31 significant bits); gamma has
one exponent per element (passes/quant_rules.py), beta sits at e_gamma - z_frac in int64 next
to the product Z * gamma, and one shift per element rounds that once to the calibrated e_y.
"""
from __future__ import annotations

import math

import numpy as np
import onnx_graphsurgeon as gs

from compiler.errors import RillError
from compiler.graph import const_value, node_label, static_shape
from runtime.reference.kernels import round_to_int
from runtime.reference.layernorm import MAX_LENGTH

MAX_SHIFT = 40
INT64_SAFE = 1 << 62
EPS_LIMIT = 1 << 61  # epsilon in units of x^2 * length^2: beyond it the row is ~0 anyway


def axis_blocks(shape, perm, axes) -> tuple[int, int, int, list[int]] | None:
    """(outer, length, inner, stored order of `axes`) when `axes` are contiguous in the stored
    layout `perm` (size-1 axes ignored), else None."""
    stored = [a for a in perm if shape[a] != 1]
    pos = [i for i, a in enumerate(stored) if a in axes]
    if pos and pos != list(range(pos[0], pos[-1] + 1)):
        return None
    first = pos[0] if pos else len(stored)
    dims = [shape[a] for a in stored]
    outer = int(np.prod(dims[:first], dtype=np.int64))
    length = int(np.prod([shape[a] for a in axes], dtype=np.int64))
    inner = int(np.prod(dims[first + len(pos):], dtype=np.int64))
    return outer, length, inner, [a for a in perm if a in axes]


def z_frac_limit(length: int) -> int:
    """The most fraction bits of Z that keep D * 2^(z_frac + m) within int64."""
    return 31 - math.ceil(math.log2(length) / 2) if length > 1 else 31


def eps_params(eps: float, length: int, e_x: int) -> tuple[int, int]:
    """(eps_mant, eps_shift): eps * length^2 in units of x^2 (x at 2^e_x), rounded to 31
    significant bits."""
    value = min(eps * float(length) ** 2 * math.ldexp(1.0, -2 * e_x), float(EPS_LIMIT))
    shift = max(0, math.frexp(value)[1] - 31) if value > 0 else 0
    return int(round(math.ldexp(value, -shift))), shift


class NormLayout:
    """Where a LayerNormalization's rows are (both precisions)."""

    def norm_layout(self, node: gs.Node) -> tuple[int, int, int, int, list[int]]:
        """(axis, outer, length, inner, the stored order of the normalized axes relative to
        `axis`) of a LayerNormalization over axes contiguous in memory."""
        x, y = node.inputs[0], node.outputs[0]
        if any(t.name and (t.outputs or t in self.graph.outputs) for t in node.outputs[1:]):
            raise RillError(f"{node_label(node)}: the Mean and InvStdDev outputs are not supported")
        shape = static_shape(x)
        axis = int(node.attrs.get("axis", -1)) % len(shape)
        blocks = axis_blocks(shape, self.perm(x), list(range(axis, len(shape))))
        if blocks is None or self.perm(x) != self.perm(y):
            raise RillError(f"{node_label(node)}: normalizes axes that are not contiguous in "
                            "memory")
        outer, length, inner, order = blocks
        return axis, outer, length, inner, [a - axis for a in order]


class NormalizationOps(NormLayout):
    """LayerNormalization."""

    def layernorm(self, node: gs.Node) -> None:
        x, y = node.inputs[0], node.outputs[0]
        shape = static_shape(x)
        axis, outer, length, inner, order = self.norm_layout(node)
        if length > MAX_LENGTH:
            raise RillError(f"{node_label(node)}: normalizes {length} values; at most "
                            f"{MAX_LENGTH} are supported")
        gamma, e_g = self.norm_scale(node, shape[axis:], order)
        beta = stored_elements(np.asarray(norm_offset(node), np.float64), shape[axis:], order)
        e_y = self.exp(y)
        z_frac = min(z_frac_limit(length), MAX_SHIFT - int(np.max(e_y - e_g)))
        if z_frac < 0:
            raise RillError(f"{node_label(node)}: its scale is far smaller than its output "
                            "range needs; the layer is degenerate")
        qb = round_to_int(beta * np.ldexp(1.0, -(e_g - z_frac)), self.mode)
        bound = np.abs(qb) + (math.isqrt(length) + 1) * 2.0 ** z_frac * np.abs(gamma)
        shift = e_y - e_g + z_frac
        if np.any(bound > INT64_SAFE) or np.any(shift < -16):
            raise RillError(f"{node_label(node)}: its offset (beta) is far larger than its scale "
                            "(gamma); the integer kernel cannot hold both")
        mant, eps_shift = eps_params(float(node.attrs.get("epsilon", 1e-5)), length,
                                     self.exp(x))
        self.emit(node, "layernorm", [self.buffer(x)], [self.buffer(y)],
                  dict(outer=outer, length=length, inner=inner, z_frac=z_frac, eps_mant=mant,
                       eps_shift=eps_shift),
                  dict(w=gamma, bias=qb.astype(np.int64), shift=shift.astype(np.int8)),
                  macs=outer * length * inner * 4)

    def norm_scale(self, node: gs.Node, norm_shape, order) -> tuple[np.ndarray, np.ndarray]:
        """gamma quantized at its per-element exponents, both in the stored element order."""
        value = const_value(node.inputs[1])
        if value is None:
            raise RillError(f"{node_label(node)}: the scale (gamma) must be a constant")
        exps = self.ctx.facts["operand_exponents"][node.name][1].reshape(np.shape(value))
        e = stored_elements(exps.astype(np.int64), norm_shape, order)
        v = stored_elements(np.asarray(value, np.float64), norm_shape, order)
        bits = self.ctx.facts.get("weight_bits", {}).get(node.name, self.default_bits)
        top = (1 << (bits - 1)) - 1
        q = np.clip(round_to_int(v * np.ldexp(1.0, -e), self.mode), -top - 1, top)
        return q.astype(np.int8 if bits == 8 else np.int16), e


def norm_offset(node: gs.Node) -> np.ndarray:
    """LayerNormalization's B (zeros when absent)."""
    beta = const_value(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2].name else None
    if len(node.inputs) > 2 and node.inputs[2].name and beta is None:
        raise RillError(f"{node_label(node)}: the offset (B) must be a constant")
    return np.zeros(1, np.float32) if beta is None else beta


def stored_elements(value: np.ndarray, norm_shape, order) -> np.ndarray:
    """A per-element constant broadcast to the normalized shape, flattened in the order the
    normalized axes are stored."""
    full = np.broadcast_to(value, tuple(norm_shape))
    return np.ascontiguousarray(full.transpose(order)).reshape(-1)
