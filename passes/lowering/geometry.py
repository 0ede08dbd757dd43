"""The integer geometry of window ops (sizes, strides, dilations, pads, groups) as kernel params:
shared by the integer and the float32 lowering, which add their numbers (activation bounds,
shifts, pad values) on top. Attributes no kernel implements are refused here, for both."""
from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs

from compiler.errors import RillError
from compiler.graph import node_label, static_shape
from compiler.op_attrs import window_attrs


def ceil_padding(node: gs.Node, in_len: int, out_len: int, kernel: int, stride: int,
                 dilation: int, pad_l: int, pad_r: int) -> int:
    """Right padding to add so the kernels' floor((in + pads - span) / stride) + 1 gives the
    `out_len` outputs of a ceil_mode pool (ONNX: the last window starts inside the input or
    its left padding): it reads pad values (max: the lowest) or is not counted (average with
    count_include_pad=0). An average that counts padding would count it: refused."""
    if not int(node.attrs.get("ceil_mode", 0)):
        return 0
    extra = max(0, (out_len - 1) * stride + dilation * (kernel - 1) + 1 - (in_len + pad_l + pad_r))
    if extra and node.op == "AveragePool" and int(node.attrs.get("count_include_pad", 0)):
        raise RillError(f"{node_label(node)}: ceil_mode=1 with count_include_pad=1 divides the "
                        "last window by a count the kernels do not give; use "
                        "count_include_pad=0 or ceil_mode=0")
    return extra


def conv1d_geometry(node: gs.Node, w_shape: tuple[int, ...]) -> dict[str, int]:
    """conv1d params without the activation bounds; w_shape is ONNX [c_out, c_in/groups, k]."""
    a = window_attrs(node)
    _, c_in, t_in = static_shape(node.inputs[0])
    return dict(t_in=t_in, c_in=c_in, c_out=w_shape[0], kernel=w_shape[2],
                stride=a["strides"][0], dilation=a["dilations"][0],
                groups=int(node.attrs.get("group", 1)), pad_l=a["pads"][0], pad_r=a["pads"][1])


def conv2d_geometry(node: gs.Node, w_shape: tuple[int, ...]) -> dict[str, int]:
    """conv2d params without the activation bounds; w_shape is ONNX [c_out, cg, kf, kt]
    ([1, C, F, T] with time on the last axis)."""
    a = window_attrs(node)
    _, c_in, f_in, t_in = static_shape(node.inputs[0])
    c_out, _, kf, kt = w_shape
    (pf_l, pt_l, pf_r, pt_r), (sf, st), (df, dt) = a["pads"], a["strides"], a["dilations"]
    return dict(t_in=t_in, f_in=f_in, c_in=c_in, c_out=c_out, kernel_t=kt, kernel_f=kf,
                stride_t=st, stride_f=sf, dilation_t=dt, dilation_f=df,
                groups=int(node.attrs.get("group", 1)), pad_t_l=pt_l, pad_t_r=pt_r,
                pad_f_l=pf_l, pad_f_r=pf_r)


def conv_transpose1d_geometry(node: gs.Node, w_shape: tuple[int, ...]) -> dict[str, int]:
    """conv_transpose1d params without the activation bounds; w_shape is the kernels'
    [c_out, k, c_in/groups] (passes/quant_rules.out_channel_weights)."""
    if len(static_shape(node.inputs[0])) != 3:
        raise RillError(f"{node_label(node)}: only 1-D and 2-D ConvTranspose are supported")
    if node.attrs.get("output_shape") is not None:
        raise RillError(f"{node_label(node)}: ConvTranspose with output_shape is not supported; "
                        "give pads and output_padding")
    a = window_attrs(node)
    _, c_in, t_in = static_shape(node.inputs[0])
    out_pad = [int(v) for v in node.attrs.get("output_padding", [0])]
    return dict(t_in=t_in, c_in=c_in, c_out=w_shape[0], kernel=w_shape[1],
                stride=a["strides"][0], dilation=a["dilations"][0],
                groups=int(node.attrs.get("group", 1)), pad_l=a["pads"][0], pad_r=a["pads"][1],
                output_padding=out_pad[0])


def avgpool1d_geometry(node: gs.Node) -> dict[str, int]:
    """avgpool1d params without the shift."""
    if len(static_shape(node.inputs[0])) != 3:
        raise RillError(f"{node_label(node)}: only 1-D and 2-D AveragePool are supported")
    a = window_attrs(node)
    if a["dilations"] != [1]:
        raise RillError(f"{node_label(node)}: dilated AveragePool is not supported")
    _, c, t_in = static_shape(node.inputs[0])
    k, s, (pl, pr) = a["kernel"][0], a["strides"][0], a["pads"]
    pr += ceil_padding(node, t_in, static_shape(node.outputs[0])[2], k, s, 1, pl, pr)
    return dict(t_in=t_in, channels=c, kernel=k, stride=s, pad_l=pl, pad_r=pr,
                count_include_pad=int(node.attrs.get("count_include_pad", 0)))


def maxpool1d_geometry(node: gs.Node) -> dict[str, int]:
    """maxpool1d params without the pad value and the shift."""
    if len(static_shape(node.inputs[0])) != 3 or len(node.outputs) > 1 and node.outputs[1].name:
        raise RillError(f"{node_label(node)}: only 1-D and 2-D MaxPool without indices "
                        "are supported")
    a = window_attrs(node)
    _, c, t_in = static_shape(node.inputs[0])
    k, s, d, (pl, pr) = a["kernel"][0], a["strides"][0], a["dilations"][0], a["pads"]
    pr += ceil_padding(node, t_in, static_shape(node.outputs[0])[2], k, s, d, pl, pr)
    return dict(t_in=t_in, channels=c, kernel=k, stride=s, dilation=d, pad_l=pl, pad_r=pr)


def elements(t: gs.Tensor) -> int:
    return int(np.prod(static_shape(t), dtype=np.int64))


#: a 2-D ConvTranspose folded into a 1-D one may grow its weights this much (and beyond
#: FOLD_MIN_ELEMENTS): past it the model needs a real 2-D kernel
FOLD_GROWTH, FOLD_MIN_ELEMENTS = 16, 1 << 16


def fold_conv_transpose2d(node: gs.Node, w: np.ndarray) -> tuple[np.ndarray, dict[str, int]]:
    """A 2-D ConvTranspose over [N, C, F, T] (time last, stored [N][T][C][F]) as a 1-D one over
    time with channels (c, f): output channel (co, fo) takes input channel (ci, fi) through
    tap kf of the ONNX weight where fo = fi*stride_f - pad_f + kf*dilation_f (at most one
    tap). Returns the kernels' weights [c_out*F_out, kt, (c_in/groups)*F_in] and the
    conv_transpose1d params (without activation bounds). Exact; the weights grow by about
    F_in*F_out/kf, so large frequency axes are refused."""
    if w is None:
        raise RillError(f"{node_label(node)}: weights must be constant")
    if node.attrs.get("output_shape") is not None:
        raise RillError(f"{node_label(node)}: ConvTranspose with output_shape is not supported; "
                        "give pads and output_padding")
    a = window_attrs(node)
    _, c_in, f_in, t_in = static_shape(node.inputs[0])
    f_out = static_shape(node.outputs[0])[2]
    groups = int(node.attrs.get("group", 1))
    _, og, kf, kt = w.shape
    cg = c_in // groups
    (pf_l, pt_l, _, pt_r), (sf, st), (df, dt) = a["pads"], a["strides"], a["dilations"]
    size = groups * og * f_out * kt * cg * f_in
    if size > max(FOLD_GROWTH * w.size, FOLD_MIN_ELEMENTS):
        raise RillError(f"{node_label(node)}: a 2-D ConvTranspose runs as a 1-D one over "
                        f"(channel, frequency) pairs, which needs {size} weights here (the model "
                        f"has {w.size}); no 2-D ConvTranspose kernel yet for F_in={f_in}, "
                        f"F_out={f_out}")
    src = w.reshape(groups, cg, og, kf, kt)
    folded = np.zeros((groups, og, f_out, kt, cg, f_in), np.float64)
    for fi in range(f_in):
        for k in range(kf):
            fo = fi * sf - pf_l + k * df
            if 0 <= fo < f_out:
                folded[:, :, fo, :, :, fi] += src[:, :, :, k, :].transpose(0, 2, 3, 1)
    out_pad = [int(v) for v in node.attrs.get("output_padding", [0, 0])]
    params = dict(t_in=t_in, c_in=c_in * f_in, c_out=groups * og * f_out, kernel=kt, stride=st,
                  dilation=dt, groups=groups, pad_l=pt_l, pad_r=pt_r, output_padding=out_pad[1])
    return folded.reshape(groups * og * f_out, kt, cg * f_in).astype(w.dtype), params
