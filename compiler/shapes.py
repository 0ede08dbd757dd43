"""Shape inference over graphs that may contain Rill's fused ops."""
from __future__ import annotations

import onnx
import onnx_graphsurgeon as gs

from compiler.errors import RillError
from compiler.graph import export_model
from compiler.rill_ops import expand_rill_ops


def _dims(vi: onnx.ValueInfoProto):
    tt = vi.type.tensor_type
    if not tt.HasField("shape"):
        return None
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in tt.shape.dim]


def infer_shapes(graph: gs.Graph) -> None:
    """Recompute every intermediate tensor's shape and dtype in place.

    Fused ops are expanded to standard ONNX first; their outputs keep their names, so the shapes
    map back one to one.
    """
    graph.cleanup(remove_unused_graph_inputs=False).toposort()
    model = expand_rill_ops(export_model(graph.copy(), keep_shapes=False))
    for out in model.graph.output:  # outputs are re-derived too (e.g. after the streaming-cut)
        out.type.tensor_type.ClearField("shape")
    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True, data_prop=True)
    except Exception as exc:  # onnx raises several types; all mean the same to the user
        raise RillError(f"shape inference failed: {str(exc).strip().splitlines()[-1]}") from None
    info = {vi.name: vi for vi in list(inferred.graph.value_info) + list(inferred.graph.output)}
    for name, t in graph.tensors().items():
        if isinstance(t, gs.Constant) or name not in info:
            continue
        vi = info[name]
        dims = _dims(vi)
        if dims is not None:
            t.shape = dims
        elem = vi.type.tensor_type.elem_type
        if elem:
            t.dtype = onnx.helper.tensor_dtype_to_np_dtype(elem)
