"""Front end: read an ONNX file into a checked, shape-pinned model."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from compiler.errors import RillError, UsageError


def load_onnx(path: Path) -> onnx.ModelProto:
    """Parse and check `path` (external data is read from its folder)."""
    if not path.is_file():
        raise UsageError(f"model file not found: {path}")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception:
        raise RillError(f"{path}: not a readable ONNX file (empty, truncated or not protobuf); "
                        "re-export the model") from None
    if not model.graph.node:
        raise RillError(f"{path}: the ONNX graph has no nodes; re-export the model")
    try:
        onnx.load_external_data_for_model(model, str(path.parent))
    except Exception as exc:
        raise RillError(f"{path}: cannot read the model's external weight data ({exc}); "
                        "keep the .data file next to the .onnx file") from None
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RillError(f"{path}: the model fails onnx.checker: {first}") from None
    check_finite_weights(model, path)
    return model


def check_finite_weights(model: onnx.ModelProto, path: Path) -> None:
    """NaN/Inf in a weight makes every later number meaningless: name the tensor up front."""
    users: dict[str, str] = {}
    for node in model.graph.node:
        for name in node.input:
            users.setdefault(name, node.name or node.op_type)
    bad = []
    for init in model.graph.initializer:
        values = numpy_helper.to_array(init)
        if values.dtype.kind == "f" and not np.all(np.isfinite(values)):
            bad.append(f"initializer '{init.name}' (used by node '{users.get(init.name, '?')}')")
    if bad:
        raise RillError(f"{path.name}: weights contain NaN or Inf; re-export the model from a "
                        "trained checkpoint", bad)


def check_onnxruntime_runs(model: onnx.ModelProto, path: Path) -> None:
    """onnxruntime is Rill's float reference (calibration, verification): a model it cannot
    load or run once (a Conv with both auto_pad and pads, a bias or weight that does not match
    its input's channels: things onnx.checker lets through) cannot be compiled and verified, so
    say so up front instead of failing in the middle of the pipeline."""
    from compiler.ort import random_feeds, session
    try:
        sess = session(model)
        sess.run(None, random_feeds(model))
    except Exception as exc:  # noqa: BLE001 - onnxruntime's exception types are not public
        raise RillError(f"{path}: onnxruntime (Rill's float reference) cannot run the model: "
                        f"{onnxruntime_reason(exc)}; fix or re-export the model") from None


def onnxruntime_reason(exc: Exception) -> str:
    """onnxruntime's message without its error-code prefix and C++ source locations."""
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    text = re.sub(r"^\[ONNXRuntimeError\] : \d+ : \w+ : ", "", text)
    text = re.sub(r"/onnxruntime_src/\S+ (\S+\([^)]*\)( \[with [^\]]*\])? )?", "", text)
    return text.strip() or type(exc).__name__


def parse_input_shape(text: str) -> tuple[str | None, list[int]]:
    """`NAME=1,16,24` or `1,16,24` -> (name or None, dims)."""
    name, _, dims = text.rpartition("=")
    try:
        shape = [int(d) for d in dims.replace("x", ",").split(",") if d.strip()]
    except ValueError:
        raise UsageError(f"--input-shape '{text}': expected e.g. 1,16,24 or input=1,16,24") from None
    if not shape or any(d <= 0 for d in shape):
        raise UsageError(f"--input-shape '{text}': dims must be positive integers")
    return (name or None), shape


def runtime_inputs(model: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    inits = {i.name for i in model.graph.initializer}
    return [vi for vi in model.graph.input if vi.name not in inits]


def pin_input_shapes(model: onnx.ModelProto, pins: list[tuple[str | None, list[int]]],
                     path: Path) -> None:
    """Fix every input dim: explicit pins first; any symbolic dim left is an error."""
    inputs = runtime_inputs(model)
    by_name = {vi.name: vi for vi in inputs}
    for name, shape in pins:
        if name is None:
            if len(inputs) != 1:
                raise UsageError("--input-shape without a name needs a model with one input; "
                                 f"inputs are: {', '.join(by_name)}")
            name = inputs[0].name
        if name not in by_name:
            raise UsageError(f"--input-shape names '{name}', which is not an input of {path.name} "
                             f"(inputs: {', '.join(by_name)})")
        dims = by_name[name].type.tensor_type.shape.dim
        if len(dims) != len(shape):
            raise UsageError(f"--input-shape for '{name}' has rank {len(shape)}, "
                             f"the model's input has rank {len(dims)}")
        for d, v in zip(dims, shape):
            if d.HasField("dim_value") and d.dim_value != v:
                raise UsageError(f"--input-shape for '{name}': dim {d.dim_value} of the model "
                                 f"cannot be pinned to {v}")
            d.Clear()
            d.dim_value = v
    for vi in inputs:
        dims = vi.type.tensor_type.shape.dim
        free = [d.dim_param or "?" for d in dims if not d.HasField("dim_value") or d.dim_value <= 0]
        if free:
            raise RillError(f"{path.name}: input '{vi.name}' has dynamic dims "
                            f"({', '.join(free)}); pin them with --input-shape "
                            f"{vi.name}=<d0>,<d1>,... (e.g. 1,16,24)")


def pins_from_calibration(model: onnx.ModelProto, calib_shape: tuple[int, ...]
                          ) -> list[tuple[str | None, list[int]]]:
    """Pin a dynamic input from the calibration data's shape ([N, *shape] or [N, *shape[1:]])."""
    inputs = runtime_inputs(model)
    if len(inputs) != 1:
        return []
    dims = inputs[0].type.tensor_type.shape.dim
    if all(d.HasField("dim_value") and d.dim_value > 0 for d in dims):
        return []
    sample = list(calib_shape[1:])
    if len(sample) == len(dims) - 1:
        sample = [1] + sample
    if len(sample) != len(dims):
        return []
    for d, v in zip(dims, sample):
        if d.HasField("dim_value") and d.dim_value > 0 and d.dim_value != v:
            return []
    return [(inputs[0].name, sample)]
