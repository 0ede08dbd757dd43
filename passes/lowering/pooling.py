"""2-D AveragePool and MaxPool over [N, C, F, T] (time on the last axis, stored [N][T][C][F]) as
two passes of the 1-D pool kernels, one along each axis: a rectangular window is separable.

- along time: the 1-D kernel over [T][C*F] as it is stored (per sequence of a batch);
- along frequency: over a transposed copy [F][N*T*C], transposed back afterwards.

Max: max over the rectangle = max over rows of the max over columns, so the two passes give the
same values as one (the first pass keeps the input's exponent, shift 0). Average: the count of
in-range taps of a rectangle clipped to the input is (in-range F taps) x (in-range T taps), so
mean = mean_T(mean_F) also without counting padding; the integer first pass keeps 8 more
fraction bits (int16) so the second rounds almost alone. A streamed pool keeps state along time
like any window op (the streaming cut strips its time padding)."""
from __future__ import annotations

import onnx_graphsurgeon as gs

from compiler.errors import RillError
from compiler.graph import node_label, static_shape
from compiler.op_attrs import window_attrs
from passes.lowering.geometry import ceil_padding
from passes.time_analysis import pad_value
from runtime.ir import Buffer

STORED = [0, 3, 1, 2]  # [N, C, F, T] stored [N][T][C][F]
F_OUTER = [2, 0, 3, 1]  # [F][N][T][C]: the frequency pass pools the outermost axis


class Pool2dOps:
    """`pool2d` for the integer and the float32 lowering; the format mixins give the numbers
    (`pool_mid`: the intermediate's type, `pool_numbers`: shift / pad value params)."""

    def pool2d(self, node: gs.Node, kind: str) -> None:
        x, y = node.inputs[0], node.outputs[0]
        if self.perm(x) != STORED or self.perm(y) != STORED:
            raise RillError(f"{node_label(node)}: a 2-D {node.op} needs time on the last axis "
                            "([N, C, F, T])")
        if kind == "maxpool1d" and len(node.outputs) > 1 and node.outputs[1].name:
            raise RillError(f"{node_label(node)}: MaxPool's Indices output is not supported")
        a = window_attrs(node)
        if kind == "avgpool1d" and a["dilations"] != [1, 1]:
            raise RillError(f"{node_label(node)}: dilated AveragePool is not supported")
        n, c, f_in, t_in = static_shape(x)
        f_out, t_out = static_shape(y)[2:]
        axes = {"f": self.axis_geometry(node, a, 0, kind, f_in, f_out),
                "t": self.axis_geometry(node, a, 1, kind, t_in, t_out)}
        pool_f = axes["f"]["kernel"] > 1 or axes["f"]["stride"] > 1 or f_out != f_in
        pool_t = axes["t"]["kernel"] > 1 or axes["t"]["stride"] > 1 or t_out != t_in
        src = self.buffer(x)
        if pool_f:
            src = self.pool_frequency(node, kind, axes["f"], x, y, last=not pool_t)
            if not pool_t:
                return
        if not pool_t:
            self.emit(node, "copy", [src], [self.buffer(y)],
                      dict(src_offset=0, dst_offset=0, count=self.buffers[src].size))
            return
        params = dict(axes["t"], t_in=t_in, channels=c * f_out)
        xb, yb = src, self.buffer(y)
        numbers = self.pool_numbers(node, kind, self.buffers[xb], self.buffers[yb], x)
        for i in range(n):  # one call per sequence of a batch
            ins = xb if n == 1 else self.sequence_view(xb, i, n)
            outs = yb if n == 1 else self.sequence_view(yb, i, n)
            self.emit(node, kind, [ins], [outs], dict(params, **numbers))

    def pool_frequency(self, node: gs.Node, kind: str, geometry: dict, x: gs.Tensor,
                       y: gs.Tensor, last: bool) -> str:
        """The pass along frequency over a [F][N*T*C] copy; returns the buffer holding its
        result stored like the input ([N][T][C][F_out]): `y` itself when it is the last pass."""
        n, c, f_in, t_in = static_shape(x)
        f_out = static_shape(y)[2]
        outer = self.reorder_buffer(node, self.buffer(x), static_shape(x), STORED, F_OUTER)
        dtype, exp = (self.buffers[self.buffer(y)].dtype, self.buffers[self.buffer(y)].exp) \
            if last else self.pool_mid(kind, x)
        pooled = f"{node.name}/pooled_f"
        self.buffers[pooled] = Buffer(pooled, (f_out, n, t_in, c), dtype, exp, "scratch")
        numbers = self.pool_numbers(node, kind, self.buffers[outer], self.buffers[pooled], x)
        self.emit(node, kind, [outer], [pooled],
                  dict(geometry, t_in=f_in, channels=n * t_in * c, **numbers))
        shape = (n, c, f_out, t_in)
        if last:
            self.reorder_buffer(node, pooled, shape, F_OUTER, STORED, self.buffer(y))
            return self.buffer(y)
        back = f"{node.name}/pooled_f_stored"
        self.buffers[back] = Buffer(back, (n, t_in, c, f_out), dtype, exp, "scratch")
        return self.reorder_buffer(node, pooled, shape, F_OUTER, STORED, back)

    @staticmethod
    def axis_geometry(node: gs.Node, a: dict, i: int, kind: str, in_len: int,
                      out_len: int) -> dict[str, int]:
        """The 1-D pool params of spatial axis `i` (0: frequency, 1: time) but sizes; a
        ceil_mode pool gets the right padding that yields its output length."""
        rank = len(a["kernel"])
        k, s, d = a["kernel"][i], a["strides"][i], a["dilations"][i]
        pl, pr = a["pads"][i], a["pads"][i + rank]
        g = dict(kernel=k, stride=s, pad_l=pl,
                 pad_r=pr + ceil_padding(node, in_len, out_len, k, s, d, pl, pr))
        if kind == "avgpool1d":
            g["count_include_pad"] = int(node.attrs.get("count_include_pad", 0))
        else:
            g["dilation"] = a["dilations"][i]
        return g


class IntegerPoolNumbers:
    """Integer pools: the intermediate keeps the input's exponent (max) or 8 more fraction bits
    in int16 (average); shifts and the max pad value in the pass's input units."""

    def pool_mid(self, kind: str, x: gs.Tensor) -> tuple[str, int]:
        if kind == "maxpool1d":
            return self.dtype(x), self.exp(x)
        return "int16", self.exp(x) - (8 if self.tensor_bits(x) == 8 else 0)

    def pool_numbers(self, node: gs.Node, kind: str, src: Buffer, dst: Buffer,
                     x: gs.Tensor) -> dict:
        numbers = dict(shift=dst.exp - src.exp)
        if kind == "maxpool1d":  # both passes read x's type and exponent
            numbers["pad_value"] = self.quantize_scalar(pad_value(node), x)
        return numbers


class FloatPoolNumbers:
    """float32 pools: every buffer float32; the max pad value as it is."""

    def pool_mid(self, kind: str, x: gs.Tensor) -> tuple[str, None]:
        return self.dtype(x), None

    def pool_numbers(self, node: gs.Node, kind: str, src: Buffer, dst: Buffer,
                     x: gs.Tensor) -> dict:
        if kind == "maxpool1d":
            return dict(pad_value=pad_value(node))
        return {}
