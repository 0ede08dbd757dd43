"""Lowering of Pad (constant, reflect, edge, wrap) and of crops (a Slice of contiguous ranges
along any axes) as one `pad` step over the stored layout.

Along a streamed time axis a constant Pad at the start has become a delay line in the
streaming-cut (passes/time_analysis.py), so the step here only pads the other axes.
"""
from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs

from compiler.errors import RillError
from compiler.graph import node_label, static_shape
from compiler.op_attrs import normalized_slice, pad_spec, slice_spec
from runtime.reference.pad import PAD_MODES

MAX_DIMS = 4


def collapse_pads(shape: list[int], lo: list[int], hi: list[int]
                  ) -> tuple[list[int], list[int], list[int]] | None:
    """Stored dims with their pads: unpadded neighbours merged, unpadded size-1 dims dropped,
    padded to MAX_DIMS with leading 1s; None when more than MAX_DIMS remain."""
    dims: list[list[int]] = []
    for n, a, b in zip(shape, lo, hi):
        if n == 1 and a == 0 and b == 0:
            continue
        if dims and a == b == 0 and dims[-1][1] == dims[-1][2] == 0:
            dims[-1][0] *= n
        else:
            dims.append([n, a, b])
    if len(dims) > MAX_DIMS:
        return None
    dims = [[1, 0, 0]] * (MAX_DIMS - len(dims)) + dims
    return [d[0] for d in dims], [d[1] for d in dims], [d[2] for d in dims]


class PaddingOps:
    """Pad and crop (Slice) through the `pad` kernel."""

    def pad(self, node: gs.Node) -> None:
        x, y = node.inputs[0], node.outputs[0]
        spec = pad_spec(node)
        if spec is None:
            raise RillError(f"{node_label(node)}: the pads and the value must be constants")
        pads, value, mode = spec
        if mode not in PAD_MODES:
            raise RillError(f"{node_label(node)}: Pad mode '{mode}' is not supported "
                            f"(supported: {', '.join(PAD_MODES)})")
        rank = len(pads) // 2
        self.emit_pad(node, x, y, pads[:rank], pads[rank:], PAD_MODES[mode],
                      self.constant(value, x))

    def crop(self, node: gs.Node, ranges: dict[int, tuple[int, int, int]]) -> None:
        """A Slice with step 1 on every axis: a pad with negative pads."""
        x, y = node.inputs[0], node.outputs[0]
        shape = static_shape(x)
        lo, hi = [0] * len(shape), [0] * len(shape)
        for axis, (start, end, _) in ranges.items():
            lo[axis], hi[axis] = -start, end - shape[axis]
        self.emit_pad(node, x, y, lo, hi, PAD_MODES["constant"], 0)

    def emit_pad(self, node: gs.Node, x: gs.Tensor, y: gs.Tensor, lo: list[int], hi: list[int],
                 mode: int, value: int) -> None:
        if self.perm(x) != self.perm(y):
            raise RillError(f"{node_label(node)}: input and output are stored in different "
                            "layouts")
        perm, shape = self.perm(x), static_shape(x)
        plan = collapse_pads([shape[a] for a in perm], [lo[a] for a in perm],
                             [hi[a] for a in perm])
        if plan is None:
            raise RillError(f"{node_label(node)}: pads more than 4 axes that cannot be merged")
        in_shape, pad_lo, pad_hi = plan
        if mode != PAD_MODES["constant"] and any(
                n == 0 and (a or b) for n, a, b in zip(in_shape, pad_lo, pad_hi)):
            raise RillError(f"{node_label(node)}: cannot {node.op} an empty axis")
        self.emit(node, "pad", [self.buffer(x)], [self.buffer(y)],
                  dict(mode=mode, value=value, in_shape=in_shape, pad_lo=pad_lo, pad_hi=pad_hi))
