"""Read ONNX op attributes in one canonical form, whatever the opset or exporter wrote."""
from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs

from compiler.errors import RillError
from compiler.graph import const_value, node_label, static_shape


def spatial_rank(node: gs.Node) -> int:
    shape = static_shape(node.inputs[0])
    if shape is None:
        raise RillError(f"{node_label(node)}: input shape unknown")
    return len(shape) - 2


def kernel_shape(node: gs.Node) -> list[int]:
    if "kernel_shape" in node.attrs:
        return [int(k) for k in node.attrs["kernel_shape"]]
    w = node.inputs[1]
    return [int(d) for d in w.shape[2:]]


def window_attrs(node: gs.Node) -> dict:
    """kernel, strides, dilations, pads (begin..., end...) of a Conv/Pool with auto_pad resolved."""
    rank = spatial_rank(node)
    kernel = kernel_shape(node)
    strides = [int(s) for s in node.attrs.get("strides", [1] * rank)]
    dilations = [int(d) for d in node.attrs.get("dilations", [1] * rank)]
    pads = [int(p) for p in node.attrs.get("pads", [0] * (2 * rank))]
    auto_pad = node.attrs.get("auto_pad", "NOTSET")
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
    if auto_pad in ("SAME_UPPER", "SAME_LOWER") and node.op == "ConvTranspose":
        pads = _same_transposed_pads(node, auto_pad, kernel, strides, dilations)
    elif auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        size = static_shape(node.inputs[0])[2:]
        pads = [0] * (2 * rank)
        for i in range(rank):
            out = -(-size[i] // strides[i])
            total = max(0, (out - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1 - size[i])
            small, big = total // 2, total - total // 2
            pads[i], pads[i + rank] = (small, big) if auto_pad == "SAME_UPPER" else (big, small)
    elif auto_pad == "VALID":
        pads = [0] * (2 * rank)
    return {"kernel": kernel, "strides": strides, "dilations": dilations, "pads": pads}


def _same_transposed_pads(node: gs.Node, auto_pad: str, kernel, strides, dilations
                          ) -> list[int]:
    """A ConvTranspose's SAME pads (ONNX): output = input * stride, the total padding
    stride*(in-1) + output_padding + (k-1)*d + 1 - out split with the odd one at the end for
    SAME_UPPER, at the start for SAME_LOWER."""
    size = static_shape(node.inputs[0])[2:]
    rank = len(size)
    out_pad = [int(v) for v in node.attrs.get("output_padding", [0] * rank)]
    pads = [0] * (2 * rank)
    for i in range(rank):
        total = strides[i] * (size[i] - 1) + out_pad[i] + (kernel[i] - 1) * dilations[i] + 1 \
            - size[i] * strides[i]
        if total < 0:
            raise RillError(f"{node_label(node)}: auto_pad={auto_pad} asks for {-total} output "
                            "frame(s) more than the kernel covers; give explicit pads")
        small, big = total // 2, total - total // 2
        pads[i], pads[i + rank] = (small, big) if auto_pad == "SAME_UPPER" else (big, small)
    return pads


def set_explicit_pads(node: gs.Node, pads: list[int]) -> None:
    node.attrs["pads"] = [int(p) for p in pads]
    node.attrs["auto_pad"] = "NOTSET"


def pad_spec(node: gs.Node) -> tuple[list[int], float, str] | None:
    """(pads over all axes, constant value, mode) of a Pad node, or None if not constant."""
    mode = node.attrs.get("mode", "constant")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    if len(node.inputs) == 1:  # opset < 11: attributes
        return [int(p) for p in node.attrs.get("pads", [])], float(node.attrs.get("value", 0.0)), mode
    pads = const_value(node.inputs[1])
    if pads is None:
        return None
    pads = [int(p) for p in np.asarray(pads).reshape(-1)]
    value = 0.0
    if len(node.inputs) > 2 and node.inputs[2] is not None and node.inputs[2].name:
        v = const_value(node.inputs[2])
        if v is None:
            return None
        value = float(np.asarray(v).reshape(-1)[0]) if np.asarray(v).size else 0.0
    rank = len(static_shape(node.inputs[0]) or [])
    if len(node.inputs) > 3 and node.inputs[3] is not None and node.inputs[3].name:
        axes = const_value(node.inputs[3])
        if axes is None:
            return None
        full = [0] * (2 * rank)
        axes = [int(a) % rank for a in np.asarray(axes).reshape(-1)]
        for i, a in enumerate(axes):
            full[a], full[a + rank] = pads[i], pads[i + len(axes)]
        pads = full
    return pads, value, mode


def clip_bounds(node: gs.Node) -> tuple[float, float] | None:
    """(min, max) of a Clip node with constant bounds, else None. Clip is min(max(x, min), max):
    with min > max every value becomes max, so min is lowered to max."""
    bounds = _clip_bounds(node)
    return None if bounds is None else (min(bounds), bounds[1])


def _clip_bounds(node: gs.Node) -> tuple[float, float] | None:
    lo, hi = float("-inf"), float("inf")
    if "min" in node.attrs or "max" in node.attrs:  # opset < 11
        return float(node.attrs.get("min", lo)), float(node.attrs.get("max", hi))
    for idx in (1, 2):
        if len(node.inputs) > idx and node.inputs[idx] is not None and node.inputs[idx].name:
            v = const_value(node.inputs[idx])
            if v is None:
                return None
            if idx == 1:
                lo = float(np.asarray(v).reshape(-1)[0])
            else:
                hi = float(np.asarray(v).reshape(-1)[0])
    return lo, hi


def slice_spec(node: gs.Node) -> tuple[list[int], list[int], list[int], list[int]] | None:
    """(starts, ends, axes, steps) of a Slice with constant parameters, axes made non-negative."""
    rank = len(static_shape(node.inputs[0]) or [])
    if len(node.inputs) == 1:  # opset < 10
        starts, ends = node.attrs["starts"], node.attrs["ends"]
        axes = node.attrs.get("axes", list(range(len(starts))))
        steps = [1] * len(starts)
    else:
        vals = []
        for idx in range(1, 5):
            if len(node.inputs) > idx and node.inputs[idx] is not None and node.inputs[idx].name:
                v = const_value(node.inputs[idx])
                if v is None:
                    return None
                vals.append([int(x) for x in np.asarray(v).reshape(-1)])
            else:
                vals.append(None)
        starts, ends, axes, steps = vals
        axes = axes if axes is not None else list(range(len(starts)))
        steps = steps if steps is not None else [1] * len(starts)
    return ([int(s) for s in starts], [int(e) for e in ends],
            [int(a) % rank for a in axes], [int(s) for s in steps])


def normalized_slice(start: int, end: int, step: int, dim: int) -> tuple[int, int, int]:
    """ONNX Slice clamping for one axis: the python range(start, end, step) it selects."""
    s, e, _ = slice(start, end, step).indices(dim) if step != 0 else (0, 0, 1)
    return s, e, step


#: The activations of ONNX GRU / LSTM that the kernels implement: ONNX's defaults.
DEFAULT_RNN_ACTIVATIONS = {"GRU": ["Sigmoid", "Tanh"], "LSTM": ["Sigmoid", "Tanh", "Tanh"]}


def _text(v) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def recurrent_weights(node: gs.Node) -> tuple[np.ndarray, np.ndarray, np.ndarray | None,
                                              np.ndarray | None]:
    """(W [G*H, I], R [G*H, H], B [2*G*H] or None, LSTM peepholes P [3H] or None) of a GRU or
    LSTM the kernels implement: one forward direction, batch-second layout, the default
    activations, no clip, no input_forget, no sequence_lens shorter than the input."""
    where = node_label(node)
    acts = [_text(a) for a in node.attrs.get("activations", [])]
    if acts and acts != DEFAULT_RNN_ACTIVATIONS[node.op]:
        raise RillError(f"{where}: custom activations {acts} are not supported (only "
                        f"{DEFAULT_RNN_ACTIVATIONS[node.op]})")
    if node.attrs.get("clip") is not None or int(node.attrs.get("input_forget", 0)):
        raise RillError(f"{where}: clip and input_forget are not supported")
    direction = _text(node.attrs.get("direction", "forward"))
    if direction != "forward" or int(node.attrs.get("layout", 0)):
        raise RillError(f"{where}: only a forward {node.op} with layout 0 (time first) has a "
                        f"kernel, not direction={direction}, layout={node.attrs.get('layout', 0)}")
    w, r = (const_value(node.inputs[i]) for i in (1, 2))
    if w is None or r is None or w.shape[0] != 1:
        raise RillError(f"{where}: needs constant weights and one direction")
    x_shape = static_shape(node.inputs[0])
    if x_shape is None or len(x_shape) != 3 or x_shape[1] != 1:
        raise RillError(f"{where}: input X has shape {x_shape}; the kernels run one sequence "
                        "[T, 1, I] (batch 1)")
    if len(node.inputs) > 4 and node.inputs[4].name:
        lens = const_value(node.inputs[4])
        frames = (static_shape(node.inputs[0]) or [None])[0]
        if lens is None or np.any(np.asarray(lens) != frames):
            raise RillError(f"{where}: sequence_lens shorter than the input is not supported")
    b = const_value(node.inputs[3]) if len(node.inputs) > 3 and node.inputs[3].name else None
    p = const_value(node.inputs[7]) if len(node.inputs) > 7 and node.inputs[7].name else None
    return (w[0], r[0], None if b is None else b[0], None if p is None else p[0])
