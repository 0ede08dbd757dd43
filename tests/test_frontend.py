"""Front end and driver: external data, --dump-passes, model-shape variants (chomp, last frame)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from compiler.cli import main
from conftest import run_cli
from compiler.graph import to_runnable
from compiler.ort import run_model
from compiler.pipeline import float_passes
from compiler.streams import aligned, run_float_stream, stitch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples" / "tcn"))
from make_tcn import build_tcn, make_calib  # noqa: E402


def compile_ok(model_path: Path, out: Path, *args: str) -> dict:
    rc = main(["compile", str(model_path), "--out", str(out), "--force", "-q", *args])
    assert rc == 0
    name = next(p for p in out.iterdir() if p.is_dir() and not p.name.startswith("."))
    return json.loads((name / "report.json").read_text())


def test_external_data_is_read(tmp_path: Path):
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    onnx.save(build_tcn("default", 0), str(model_dir / "tcn_ext.onnx"), save_as_external_data=True,
              all_tensors_to_one_file=True, location="tcn_ext.data", size_threshold=0)
    assert (model_dir / "tcn_ext.data").stat().st_size > 10_000
    np.save(tmp_path / "calib.npy", make_calib(16, 1))
    report = compile_ok(model_dir / "tcn_ext.onnx", tmp_path / "out", "--calib",
                        str(tmp_path / "calib.npy"), "--no-verify")
    assert report["weight_bytes"] > 5000


def test_missing_or_short_external_data_is_a_clear_error(tmp_path: Path):
    """Contract §5: the weights file next to the .onnx is gone, or cut short."""
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    onnx.save(build_tcn("default", 0), str(model_dir / "tcn_ext.onnx"), save_as_external_data=True,
              all_tensors_to_one_file=True, location="tcn_ext.data", size_threshold=0)
    data = model_dir / "tcn_ext.data"
    full = data.read_bytes()
    for damage in ("missing", "truncated"):
        if damage == "missing":
            data.unlink()
        else:
            data.write_bytes(full[: len(full) // 2])
        out = tmp_path / f"out_{damage}"
        rc, _, err = run_cli(["compile", model_dir / "tcn_ext.onnx", "--out", out])
        assert rc == 1, (damage, err)
        assert err.startswith("rill: error:") and "tcn_ext" in err and "Traceback" not in err
        assert "external" in err, err
        assert not out.exists() or not any(out.iterdir())


def test_dump_passes_writes_one_model_per_pass(tmp_path: Path):
    path = tmp_path / "tcn.onnx"
    onnx.save(build_tcn("pad_nodes", 0), str(path))
    dump = tmp_path / "dump"
    report = compile_ok(path, tmp_path / "out", "--dump-passes", str(dump), "--no-verify")
    files = sorted(dump.glob("*.onnx"))
    assert [f.stem.split("_", 1)[1] for f in files] == \
        [p["name"].replace("-", "_") for p in report["passes"]]
    fused = onnx.load(str(dump / "06_fuse_batchnorm.onnx"))
    assert not any(n.op_type in ("Pad", "BatchNormalization") for n in fused.graph.node)


def _conv(name, x, y, c_in, c_out, k, dil, pads, rng, inits):
    w = numpy_helper.from_array((rng.standard_normal((c_out, c_in, k)) / np.sqrt(c_in * k)).astype(np.float32), f"{name}.w")
    b = numpy_helper.from_array(rng.standard_normal(c_out).astype(np.float32) * 0.1, f"{name}.b")
    inits += [w, b]
    return helper.make_node("Conv", [x, w.name, b.name], [y], name=name, kernel_shape=[k],
                            dilations=[dil], pads=pads)


def chomp_model(head: str, frames: int = 20) -> onnx.ModelProto:
    """Conv1d(padding=(k-1)d) + crop of the last (k-1)d frames (Chomp1d), then a head."""
    rng = np.random.default_rng(3)
    inits: list = []
    nodes = [_conv("c1", "x", "c1_out", 8, 16, 3, 2, [4, 4], rng, inits)]
    consts = {"s0": [0], "e": [-4], "ax": [2], "last": -1}
    for k, v in consts.items():
        inits.append(numpy_helper.from_array(np.array(v, np.int64), k))
    nodes += [helper.make_node("Slice", ["c1_out", "s0", "e", "ax"], ["chomp"], name="chomp"),
              helper.make_node("Relu", ["chomp"], ["h"], name="relu")]
    if head == "last":
        w = numpy_helper.from_array(rng.standard_normal((4, 16)).astype(np.float32) * 0.3, "fc.w")
        inits.append(w)
        nodes += [helper.make_node("Gather", ["h", "last"], ["h_last"], name="last_frame", axis=2),
                  helper.make_node("Gemm", ["h_last", "fc.w"], ["y"], name="fc", transB=1)]
        out = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    else:
        nodes.append(helper.make_node("Identity", ["h"], ["y"], name="out"))
        out = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16, frames])
    graph = helper.make_graph(nodes, "chomp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, frames])],
                              [out], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def test_chomp_becomes_a_causal_conv_and_streams(tmp_path: Path):
    from compiler.context import CompileContext, Options
    from compiler.graph import import_model
    from compiler.pass_manager import PassManager
    from compiler.targets import get_target
    model = chomp_model("frames")
    ctx = CompileContext(import_model(model), Options(get_target("esp32p4"), chunk=2))
    PassManager(float_passes(offline=False), check_equivalence=True).run(ctx)
    ops = [n.op for n in ctx.graph.nodes]
    assert "Slice" not in [n.op for n in ctx.facts["offline_graph"].nodes]
    conv = next(n for n in ctx.graph.nodes if n.op == "FusedConv")
    assert conv.attrs["pads"] == [0, 0] and ops.count("Concat") == 1
    meta = ctx.facts["streaming"]
    assert [s.shape for s in meta["states"]] == [[1, 8, 4]] and meta["latency_frames"] == 0
    x = np.random.default_rng(0).standard_normal((1, 8, 20)).astype(np.float32)
    offline = run_model(model, {"x": x})["y"]
    from passes.streaming_cut import streaming_metadata
    stream = stitch(run_float_stream(to_runnable(ctx.graph), streaming_metadata(meta), x), True, 2)
    a, b = aligned(stream, offline, 0, 2, True)
    assert np.max(np.abs(a - b)) <= 1e-5 * np.max(np.abs(offline))


def test_last_frame_head_compiles_and_verifies(tmp_path: Path):
    path = tmp_path / "last.onnx"
    onnx.save(chomp_model("last"), str(path))
    report = compile_ok(path, tmp_path / "out", "--chunk", "4")
    assert report["snr_db"] > 25
    assert report["verification"]["selftest"] == "passed"
    assert [s["shape"] for s in report["states"]] == [[1, 8, 4]]


def test_unfolded_torchscript_export_compiles(tmp_path: Path):
    """132 nodes of shape arithmetic, BatchNorm and a dynamic batch: all of it must fold away."""
    fixtures = ROOT / "tests" / "fixtures"
    report = compile_ok(fixtures / "tcn_torch_script_nofold_op17.onnx", tmp_path / "out",
                        "--calib", str(fixtures / "tcn_torch_calib.npy"), "--chunk", "3",
                        "--target", "esp32s3")
    assert report["snr_db"] > 25 and report["macs_per_call"] == 13920
    assert [layer["op"] for layer in report["layers"]].count("conv1d") == 8
