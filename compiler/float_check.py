"""Verification of a float32 program (`--bits 32`): contract §3's max abs error <= 1e-5 x
max|reference| against onnxruntime, for the Python reference and for the generated C.

A float32 model needs no calibration: it is checked on seeded standard-normal inputs (the
calibration data, if given, is not used). The C is compared with the Python float reference
call by call within the same tolerance (float sums differ by multiply-add contraction, excess
precision and libm, so not bit for bit) and, stitched into the offline output's layout, with
onnxruntime directly.
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import onnx

from compiler.errors import VerificationError
from compiler.host_build import build_host, run_host, run_selftest
from compiler.ort import session
from compiler.simulate import StreamLayout, run_integer
from compiler.streams import aligned, call_streams, from_physical, run_float_stream, stitch
from runtime.ir import Program
from runtime.reference.f32 import TOLERANCE

#: Inputs a float32 compile is verified on (per-call models: this many streams of 4 calls).
FLOAT_CHECK_INPUTS = 8
CHECK_SEED = 20240611


def float_inputs(calib, shape: tuple[int, ...], per_call: bool, time_axis: int | None,
                 warn: Callable[[str], None]) -> list[np.ndarray]:
    """The inputs a float32 compile is verified on: seeded standard-normal ones (streams of
    consecutive calls for a model with its own state pairs)."""
    if calib is not None:
        warn("--bits 32 needs no calibration: the values of --calib are not used (the float32 "
             "program is verified on synthetic standard-normal inputs)")
    n = FLOAT_CHECK_INPUTS * (4 if per_call else 1)
    data = np.random.default_rng(CHECK_SEED).standard_normal((n,) + tuple(shape))
    data = data.astype(np.float32)
    return call_streams(data, time_axis) if per_call else list(data)


@dataclass
class Errors:
    """Max abs error and max abs error / max|reference| of one output stream or several."""

    max_abs: float = 0.0
    max_rel: float = 0.0

    def add(self, ref: np.ndarray, got: np.ndarray) -> None:
        if not np.size(ref):
            return
        err = float(np.max(np.abs(np.asarray(got, np.float64) - ref)))
        if not np.isfinite(err):  # a NaN or Inf where onnxruntime has a number
            err = np.inf
        self.max_abs = max(self.max_abs, err)
        self.max_rel = max(self.max_rel, err / max(float(np.max(np.abs(ref))), 1e-30))

    def as_json(self, prefix: str) -> dict:
        return {f"{prefix}_max_abs_error": self.max_abs, f"{prefix}_max_rel_error": self.max_rel}


class OnnxReference:
    """onnxruntime's outputs a run of the program on one input must match: the offline model's
    output (per-call outputs are stitched and aligned for latency), or, for a model with its
    own state pairs, the output of every call with the states carried."""

    def __init__(self, model: onnx.ModelProto, layout: StreamLayout, latency: int,
                 per_call_meta: dict | None = None):
        self.model, self.layout, self.latency, self.meta = model, layout, latency, per_call_meta
        self.sess = session(model)

    def compare(self, x: np.ndarray, calls: list[np.ndarray], errors: Errors) -> None:
        """Add the error of `calls` (the program's per-call outputs in ONNX layout) on `x`."""
        if self.meta is not None:
            for got, want in zip(calls, run_float_stream(self.model, self.meta, x)):
                errors.add(want, got)
            return
        want = self.sess.run(None, {self.sess.get_inputs()[0].name: x.astype(np.float32)})[0]
        axis = self.layout.output_info.axis if self.layout.per_frame else 0
        got = stitch(calls, self.layout.per_frame, axis)
        a, b = aligned(got, want, self.latency, axis, self.layout.per_frame)
        errors.add(b, a)


def reference_errors(program: Program, layout: StreamLayout, onnx_ref: OnnxReference,
                     inputs: list[np.ndarray]) -> Errors:
    """The Python float reference against onnxruntime; a VerificationError beyond the
    tolerance (a Rill bug)."""
    errors = Errors()
    for x in inputs:
        onnx_ref.compare(x, run_integer(program, layout, x).calls, errors)
    if errors.max_rel > TOLERANCE:
        raise VerificationError(f"the float32 program differs from onnxruntime (max abs error "
                                f"{errors.max_abs:.3g} = {errors.max_rel:.3g} x max|reference| > "
                                f"{TOLERANCE:g}); this is a Rill bug: please report it")
    return errors


def verify_c_float(component: Path, name: str, program: Program, layout: StreamLayout,
                   onnx_ref: OnnxReference, inputs: list[np.ndarray], out_elems: int) -> dict:
    """Build the component, run its self-test, and stream `inputs` through its C API: every
    call within the tolerance of the Python reference, the stitched output within it of
    onnxruntime."""
    c_errors, worst_vs_ref, calls = Errors(), 0.0, 0
    with tempfile.TemporaryDirectory(prefix="rill-verify-") as work:
        exe = build_host(component, name, Path(work))
        if run_selftest(exe) != 0:
            raise VerificationError("the generated component's self-test failed")
        for x in inputs:
            ref = run_integer(program, layout, x)
            got = run_host(exe, ref.inputs, out_elems=out_elems, out_dtype=np.float32)
            vs_ref = Errors()
            vs_ref.add(ref.outputs, got)
            worst_vs_ref = max(worst_vs_ref, vs_ref.max_rel)
            onnx_ref.compare(x, [from_physical(v, layout.output_shape, layout.output_info)
                                 for v in got], c_errors)
            calls += len(got)
    if worst_vs_ref > TOLERANCE or c_errors.max_rel > TOLERANCE:
        raise VerificationError(
            f"the generated C differs from the float reference ({worst_vs_ref:.3g} x max|ref|) "
            f"or onnxruntime ({c_errors.max_rel:.3g} x max|reference|) beyond {TOLERANCE:g}; "
            "this is a Rill bug: please report it")
    return {"c_float_calls": calls, **c_errors.as_json("c_vs_onnxruntime"),
            "c_max_rel_error_vs_reference": worst_vs_ref, "selftest": "passed"}
