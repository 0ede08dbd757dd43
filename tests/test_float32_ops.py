"""--bits 32 for the broadcasting, layout, normalization and product ops (issue 5): the models of
tests/test_ops_*.py (every Add/Sub/Mul/Div/Max/Min/PRelu form, Split, standalone Pad and inner
Slices, LayerNormalization with Pow/Sqrt/Reciprocal, MatMul of two activations and batched
constants, streamed and offline) compile to float32 components whose C matches onnxruntime
within contract §3's tolerance (1e-5 x max|reference|), chunk by chunk through the C API; each
component builds strictly with gcc and clang, as 32-bit code and under ASan/UBSan, and its
self-test passes there."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import onnx
import pytest

from compiler.host_build import build_host, run_selftest
from conftest import run_cli
from test_c_quality import SANITIZE, _links
from test_float32 import TOL, c_vs_onnxruntime
from test_ops_arith import arith_model
from test_ops_layout import layout_model
from test_ops_matmul import attention_model, frame_product_model
from test_ops_norm import norm_model

#: name -> (model builder, compile options, kernels its float program must use)
MODELS = {
    "arith32": (arith_model, ["--chunk", "4"], {"binary", "unary", "reduce"}),
    "norm32": (norm_model, ["--chunk", "4", "--target", "esp32s3"], {"layernorm", "unary"}),
    "layout32": (layout_model, ["--chunk", "2"], {"pad", "copy"}),
    "product32": (frame_product_model, ["--chunk", "3"], {"matmul", "gemm"}),
    "attention32": (attention_model, ["--offline"], {"matmul", "softmax"}),
}


@pytest.fixture(scope="module", params=sorted(MODELS))
def component(request, tmp_path_factory) -> tuple[str, Path, dict, Path]:
    name = request.param
    make, args, _ = MODELS[name]
    work = tmp_path_factory.mktemp(name)
    path = work / f"{name}.onnx"
    onnx.save(make(), str(path))
    rc, _, err = run_cli(["compile", path, "--bits", "32", "--out", work / "out", *args])
    assert rc == 0, err
    out = work / "out" / name
    return name, out, json.loads((out / "report.json").read_text()), path


def test_float32_ops_match_onnxruntime(component, tmp_path):
    name, out, report, path = component
    kernels = MODELS[name][2]
    assert kernels <= {layer["op"] for layer in report["layers"]}, report["layers"]
    assert report["max_rel_error"] <= TOL and report["error_measured_on"] == "C"
    assert report["verification"]["selftest"] == "passed"
    dims = [d.dim_value for d in onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim]
    xs = np.random.default_rng(7).standard_normal((4, *dims)).astype(np.float32)
    err = c_vs_onnxruntime(out, report, path, xs, tmp_path)
    print(f"\n{name}: C vs onnxruntime max error {err:.3g} x max|output|")
    assert err <= TOL


@pytest.mark.parametrize("build", ["gcc", "clang", "gcc-m32", "gcc-sanitizers"])
def test_float32_ops_build_everywhere(component, build, tmp_path):
    name, out, _, _ = component
    cc = "clang" if build == "clang" else "gcc"
    if shutil.which(cc) is None:
        pytest.skip(f"{cc} is not installed (.ci/run installs it)")
    flags = {"gcc": ["-O2", "-Wshadow"], "clang": ["-O2", "-Wshadow"], "gcc-m32": ["-m32", "-O2"],
             "gcc-sanitizers": SANITIZE}[build]
    if build in ("gcc-m32", "gcc-sanitizers"):
        why = _links(*flags)
        if why:
            pytest.skip(f"gcc {' '.join(flags)} cannot link a hello world ({why})")
    exe = build_host(out, name, tmp_path, cc=cc, extra_flags=flags)
    if build == "gcc-sanitizers":
        proc = subprocess.run([str(exe), "selftest"], capture_output=True, text=True)
        assert proc.returncode == 0 and proc.stdout.strip() == "0", proc.stderr
    else:
        assert run_selftest(exe) == 0
