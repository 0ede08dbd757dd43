"""The ONNX backend node tests (`onnx/backend/test/data/node/*`) as Rill test cases.

The onnx wheel Rill installs (>= 1.20) no longer ships that data, so `node_data_dir` fetches the
onnx==NODE_ONNX_VERSION wheel once with pip (`pip download --no-deps`) and extracts only the node
test data into a cache folder (RILL_ONNX_NODE_CACHE, default `.cache/onnx-node-tests/` in the
repository, git-ignored). Offline, without pip or with a broken download it returns why, and the
test skips saying so.

`load_case` turns one case into a Rill model: the first graph input stays the runtime
(time-series) input, the other inputs are bound as constants from the case's first data set.
A case is attempted when every op of its graph is one Rill claims to support and its runtime
input and single output are float tensors; `compile_case` compiles it at --bits 32 (offline:
the whole tensor in one call), and a clear RillError there counts as "unsupported" (shapes,
attributes or layouts Rill refuses), anything else as a failure.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

ROOT = Path(__file__).resolve().parents[1]
NODE_ONNX_VERSION = "1.19.1"  # the last onnx release whose wheel ships backend/test/data/node
DATA_PREFIX = "onnx/backend/test/data/node/"

def supported_ops() -> frozenset[str]:
    """The ONNX ops Rill claims to support at --bits 32: exactly what its check-support pass
    accepts (passes/check_support.py; README "Supported today")."""
    from passes.check_support import claimed_ops
    return claimed_ops(32)


def cache_dir() -> Path:
    return Path(os.environ.get("RILL_ONNX_NODE_CACHE", ROOT / ".cache" / "onnx-node-tests"))


def node_data_dir() -> tuple[Path | None, str]:
    """(the folder of the node test cases, "") or (None, why they are unavailable)."""
    import onnx as installed
    bundled = Path(installed.__file__).parent / "backend" / "test" / "data" / "node"
    if bundled.is_dir() and any(bundled.iterdir()):
        return bundled, ""
    target = cache_dir() / NODE_ONNX_VERSION / "node"
    if target.is_dir() and any(target.iterdir()):
        return target, ""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as work:
        cmd = [sys.executable, "-m", "pip", "download", f"onnx=={NODE_ONNX_VERSION}",
               "--no-deps", "--only-binary=:all:", "--disable-pip-version-check", "-q",
               "-d", work]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return None, f"could not run pip download onnx=={NODE_ONNX_VERSION}: {exc}"
        wheels = list(Path(work).glob("onnx-*.whl"))
        if proc.returncode != 0 or not wheels:
            last = (proc.stderr.strip().splitlines() or ["no wheel"])[-1]
            return None, (f"pip download onnx=={NODE_ONNX_VERSION} failed (offline?): {last}")
        extracted = Path(work) / "extracted"
        with zipfile.ZipFile(wheels[0]) as z:
            members = [n for n in z.namelist() if n.startswith(DATA_PREFIX)]
            if not members:
                return None, f"the onnx=={NODE_ONNX_VERSION} wheel has no {DATA_PREFIX}"
            for name in members:
                z.extract(name, extracted)
        try:  # atomic: the cache holds the complete data or none
            os.rename(extracted / DATA_PREFIX, target)
        except OSError:
            if not target.is_dir():  # not another run's copy that got there first
                raise
    return target, ""


@dataclass
class NodeCase:
    name: str
    model: onnx.ModelProto  # the other inputs bound as initializers
    x: np.ndarray  # the runtime input
    expected: np.ndarray  # the single output


def _tensor_type(value_info) -> int | None:
    t = value_info.type
    return t.tensor_type.elem_type if t.HasField("tensor_type") else None


def load_case(folder: Path) -> NodeCase | str:
    """The case as a Rill model, or why Rill does not attempt it (an unsupported op, dtype,
    a second output, no runtime input)."""
    model = onnx.load(str(folder / "model.onnx"))
    graph = model.graph
    ops = sorted({n.op_type for n in graph.node} - supported_ops())
    if ops:
        return f"ops {', '.join(ops)}"
    if not graph.input or len(graph.output) != 1:
        return f"{len(graph.input)} inputs, {len(graph.output)} outputs"
    if any(_tensor_type(vi) != onnx.TensorProto.FLOAT for vi in list(graph.input) + [graph.output[0]]):
        return "non-float32 inputs or outputs"
    data = folder / "test_data_set_0"
    arrays = [numpy_helper.to_array(onnx.load_tensor(str(data / f"input_{i}.pb")))
              for i in range(len(graph.input))]
    expected = numpy_helper.to_array(onnx.load_tensor(str(data / "output_0.pb")))
    for vi, value in list(zip(graph.input, arrays))[1:]:
        graph.initializer.append(numpy_helper.from_array(value, vi.name))
    del graph.input[1:]
    return NodeCase(folder.name, model, arrays[0], expected)


def all_cases(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if (p / "model.onnx").is_file())


@dataclass
class Result:
    name: str
    status: str  # "passed", "failed" or "unsupported"
    detail: str = ""


def run_case(case: NodeCase, index: int, work: Path) -> Result:
    """Compile the case at --bits 32 (offline; the float program checked against onnxruntime
    like any compile), build the C once (strict warnings), run its self-test, stream the
    case's input through the C API and compare with the expected output: max abs error
    <= TOLERANCE x max|expected| (contract §3). The compile's own C verification would build
    the same C a second time, so the harness does that part itself."""
    from compiler.context import Options
    from compiler.errors import RillError
    from compiler.host_build import build_host, run_selftest
    from compiler.measure import run_c_float
    from compiler.pipeline import compile_model
    from compiler.targets import get_target
    from runtime.reference.f32 import TOLERANCE

    path = work / f"{case.name}.onnx"
    onnx.save(case.model, str(path))
    name = f"node{index}"
    options = Options(target=get_target("esp32p4"), bits=32, offline=True, name=name,
                      verify=False)
    try:
        result = compile_model(path, options, work / "out", force=True)
    except RillError as exc:
        return Result(case.name, "unsupported", " ".join(str(exc).splitlines()[:2]))
    except Exception as exc:  # a Rill bug: a crash instead of a clear error or a component
        return Result(case.name, "failed", f"compile crashed: {type(exc).__name__}: {exc}")
    try:
        # -O0: half the build time of the -O1 every compile's verification uses
        exe = build_host(result.out_dir, name, work / name, extra_flags=["-O0"])
        if run_selftest(exe) != 0:
            return Result(case.name, "failed", "the component's self-test failed")
        got = run_c_float(result.out_dir, name, result.report, [case.x], work / name, exe)[0]
    except Exception as exc:
        return Result(case.name, "failed", f"building or running the C failed: {exc}")
    want = case.expected
    if got.size != want.size:
        return Result(case.name, "failed", f"C output shape {got.shape}, expected {want.shape}")
    got = got.reshape(want.shape).astype(np.float64)
    if not np.array_equal(np.isnan(got), np.isnan(want)):
        return Result(case.name, "failed", "NaN where the expected output has none (or not)")
    finite = np.isfinite(want)
    if not np.array_equal(got[~finite & ~np.isnan(want)], want[~finite & ~np.isnan(want)]):
        return Result(case.name, "failed", "infinities differ")
    scale = float(np.max(np.abs(want[finite]))) if finite.any() else 0.0
    err = float(np.max(np.abs(got[finite] - want[finite]))) if finite.any() else 0.0
    if err > TOLERANCE * max(scale, 1e-30):
        # a few cases store rounded outputs (e.g. 4 decimals): then the C must be no further
        # from them than onnxruntime is, and within the tolerance of onnxruntime
        ort = _onnxruntime_output(case).reshape(want.shape).astype(np.float64)
        ort_err = float(np.max(np.abs(ort[finite] - want[finite])))
        vs_ort = float(np.max(np.abs(got[finite] - ort[finite])))
        if ort_err <= TOLERANCE * scale or err > ort_err + TOLERANCE * scale \
                or vs_ort > TOLERANCE * scale:
            return Result(case.name, "failed",
                          f"max abs error {err:.3g} > {TOLERANCE:g} x {scale:.3g}")
        return Result(case.name, "passed", f"max abs error {vs_ort:.3g} vs onnxruntime (the "
                                           f"expected output is rounded: {ort_err:.3g} off)")
    return Result(case.name, "passed", f"max abs error {err:.3g} ({err / max(scale, 1e-30):.2g} "
                                       "x max|expected|)")


def _onnxruntime_output(case: NodeCase) -> np.ndarray:
    from compiler.ort import session
    sess = session(case.model)
    return sess.run(None, {sess.get_inputs()[0].name: case.x})[0]
