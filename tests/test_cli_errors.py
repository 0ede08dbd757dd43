"""Contract §5: bad input gives one clear `rill: error:` message, the right exit code, no traceback
and no (half-written) output folder.

Every case runs `compiler.cli.main` in-process against a fresh `--out` folder; a couple of cases also
run `python -m compiler` as a real subprocess to check the process exit code.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from conftest import FIXTURES, ROOT, TORCH_CALIB, run_cli

DYNAMO = FIXTURES / "tcn_torch_dynamo.onnx"
DYNAMIC = FIXTURES / "tcn_torch_dynamic.onnx"


# ----------------------------------------------------------------------------- bad models

def _base(example_model: Path) -> onnx.ModelProto:
    return onnx.load(str(example_model))


def _with_topk_on_time(example_model: Path) -> onnx.ModelProto:
    """conv_out -> TopK(k=3, axis=time) -> Slice ...: no streaming meaning."""
    m = _base(example_model)
    g = m.graph
    sl = next(n for n in g.node if n.op_type == "Slice")
    k = helper.make_node("Constant", [], ["topk_k"], name="/time/TopK_k",
                         value=numpy_helper.from_array(np.array([3], np.int64)))
    topk = helper.make_node("TopK", [sl.input[0], "topk_k"], ["topk_values", "topk_indices"],
                            axis=2, name="/time/TopK")
    sl.input[0] = "topk_values"
    at = list(g.node).index(sl)
    g.node.insert(at, topk)
    g.node.insert(at, k)
    onnx.checker.check_model(m)
    return m


def _with_cumsum_on_time(model: onnx.ModelProto, after: str = "/conv_out/Conv") -> onnx.ModelProto:
    """A CumSum along time after node `after`: it mixes every past frame, no streaming meaning."""
    g = model.graph
    producer = next(n for n in g.node if n.name == after)
    out = producer.output[0]
    for n in g.node:
        n.input[:] = [f"{out}_cumsum" if i == out else i for i in n.input]
    axis = helper.make_node("Constant", [], ["cumsum_axis"], name="/time/CumSum_axis",
                            value=numpy_helper.from_array(np.array(2, np.int64)))
    at = list(g.node).index(producer) + 1
    g.node.insert(at, helper.make_node("CumSum", [out, "cumsum_axis"], [f"{out}_cumsum"],
                                       name="/time/CumSum"))
    g.node.insert(at, axis)
    onnx.checker.check_model(model)
    return model


def _with_unsupported_chain(model: onnx.ModelProto, after: str = "/conv_out/Conv") -> onnx.ModelProto:
    """Cos -> Floor -> Pow(f, f) after node `after`: two ops without a kernel and a Pow whose
    exponent is not a constant."""
    g = model.graph
    producer = next(n for n in g.node if n.name == after)
    out = producer.output[0]
    for n in g.node:
        n.input[:] = [f"{out}_pow" if i == out else i for i in n.input]
    at = list(g.node).index(producer) + 1
    for k, n in enumerate([
            helper.make_node("Cos", [out], [f"{out}_cos"], name="/bad/Cos"),
            helper.make_node("Floor", [f"{out}_cos"], [f"{out}_floor"], name="/bad/Floor"),
            helper.make_node("Pow", [f"{out}_floor", f"{out}_floor"], [f"{out}_pow"],
                             name="/bad/Pow")]):
        g.node.insert(at + k, n)
    onnx.checker.check_model(model)
    return model


def _with_stride2_on_time(model: onnx.ModelProto, node: str = "/conv_out/Conv") -> onnx.ModelProto:
    """A Conv with stride 2 along time (downsampling by 2)."""
    conv = next(n for n in model.graph.node if n.name == node)
    for a in conv.attribute:
        if a.name == "strides":
            a.ints[:] = [2]
    onnx.checker.check_model(model)
    return model


def _with_nan_weight(example_model: Path) -> onnx.ModelProto:
    m = _base(example_model)
    for init in m.graph.initializer:
        if init.name == "blocks.1.pw.weight":
            w = numpy_helper.to_array(init).copy()
            w[3, 4, 0] = np.nan
            init.CopyFrom(numpy_helper.from_array(w, init.name))
    return m


def _with_second_input(example_model: Path) -> onnx.ModelProto:
    """A second runtime (non-constant) input 'gain' multiplied into the first residual sum."""
    m = _base(example_model)
    g = m.graph
    g.input.append(helper.make_tensor_value_info("gain", TensorProto.FLOAT, [1, 32, 24]))
    add = next(n for n in g.node if n.op_type == "Add")
    old = add.output[0]
    for n in g.node:
        for j, name in enumerate(n.input):
            if name == old:
                n.input[j] = "gained"
    g.node.insert(list(g.node).index(add) + 1,
                  helper.make_node("Mul", [old, "gain"], ["gained"], name="/gain/Mul"))
    onnx.checker.check_model(m)
    return m


def _failing_checker(example_model: Path) -> onnx.ModelProto:
    """A Relu reading a tensor nothing produces."""
    m = _base(example_model)
    next(n for n in m.graph.node if n.op_type == "Relu").input[0] = "no_such_tensor"
    return m


def _too_big_for_esp32s3() -> onnx.ModelProto:
    """A depthwise conv with dilation 8000 over 128 channels: ~1 MB of state (S3 has 512 KiB)."""
    rng = np.random.default_rng(0)
    c, d = 128, 8000

    def t(name, arr):
        return numpy_helper.from_array(np.asarray(arr), name)

    inits = [t("in.w", (0.25 * rng.standard_normal((c, 16, 1))).astype(np.float32)),
             t("in.b", np.zeros(c, np.float32)),
             t("dw.w", (0.5 * rng.standard_normal((c, 1, 2))).astype(np.float32)),
             t("dw.b", np.zeros(c, np.float32)),
             t("fc.w", (0.1 * rng.standard_normal((8, c))).astype(np.float32)),
             t("fc.b", np.zeros(8, np.float32)),
             t("starts", np.array([-1], np.int64)), t("ends", np.array([24], np.int64)),
             t("axes", np.array([2], np.int64))]
    nodes = [helper.make_node("Conv", ["x", "in.w", "in.b"], ["h0"], name="/in/Conv", kernel_shape=[1]),
             helper.make_node("Conv", ["h0", "dw.w", "dw.b"], ["h1"], name="/huge/Conv",
                              kernel_shape=[2], dilations=[d], pads=[d, 0], group=c),
             helper.make_node("Slice", ["h1", "starts", "ends", "axes"], ["h2"], name="/last/Slice"),
             helper.make_node("Flatten", ["h2"], ["h3"], name="/flat/Flatten", axis=1),
             helper.make_node("Gemm", ["h3", "fc.w", "fc.b"], ["y"], name="/fc/Gemm", transB=1)]
    g = helper.make_graph(nodes, "huge", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16, 24])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8])], initializer=inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)], ir_version=8)
    onnx.checker.check_model(m)
    return m


def _with_own_state(tmp: Path, **kw) -> tuple[Path, Path]:
    """A per-call model with its own state pair (tests/graphs.py) and calibration for it."""
    from graphs import explicit_state_model
    name = kw.pop("file", "stateful")
    p = _save(tmp, explicit_state_model(**kw), f"{name}.onnx")
    calib = tmp / f"{name}_calib.npy"
    np.save(calib, np.random.default_rng(0).standard_normal((8, 1, 3, 4)).astype(np.float32))
    return p, calib


def _ambiguous_state(tmp: Path) -> tuple[Path, Path]:
    """`state` matches two outputs of its shape: `stateN` and `state_out` (a copy of it)."""
    p, calib = _with_own_state(tmp, file="ambiguous")
    m = onnx.load(str(p))
    m.graph.node.append(helper.make_node("Identity", ["stateN"], ["state_out"], name="/copy"))
    m.graph.output.append(helper.make_tensor_value_info("state_out", TensorProto.FLOAT, [1, 3, 2]))
    onnx.checker.check_model(m)
    return _save(tmp, m, "ambiguous.onnx"), calib


# ----------------------------------------------------------------------------- cases
# Each builder gets (tmp_path, example_model, example_calib) and returns
# (argv without "--out", expected exit code, substrings the message must contain; a tuple in that
# list means "one of these").

def _save(tmp: Path, model: onnx.ModelProto, name: str) -> Path:
    p = tmp / name
    onnx.save(model, str(p))
    return p


def case_missing_model(tmp, ex, calib):
    return ["compile", tmp / "nope.onnx"], 2, ["nope.onnx"]


def case_unknown_target(tmp, ex, calib):
    return ["compile", ex, "--calib", calib, "--target", "esp32c3"], 2, ["esp32c3"]


def case_unknown_option(tmp, ex, calib):
    return ["compile", ex, "--calib", calib, "--frobnicate"], 2, ["--frobnicate"]


def case_bits_24(tmp, ex, calib):
    return ["compile", ex, "--calib", calib, "--bits", "24"], 2, ["24", "32"]


def case_bits_32_with_quantization_options(tmp, ex, calib):
    return (["compile", ex, "--bits", "32", "--int16", "x", "--snr-target", "40"], 2,
            ["--int16", "--snr-target", "float32"])


def case_empty_file(tmp, ex, calib):
    p = tmp / "empty.onnx"
    p.write_bytes(b"")
    return ["compile", p], 1, ["empty.onnx"]


def case_random_bytes(tmp, ex, calib):
    p = tmp / "noise.onnx"
    p.write_bytes(np.random.default_rng(0).bytes(5000))
    return ["compile", p], 1, ["noise.onnx"]


def case_truncated(tmp, ex, calib):
    blob = DYNAMO.read_bytes()
    p = tmp / "truncated.onnx"
    p.write_bytes(blob[: len(blob) // 2])
    return ["compile", p, "--calib", TORCH_CALIB], 1, ["truncated.onnx"]


def case_checker(tmp, ex, calib):
    p = _save(tmp, _failing_checker(ex), "unchecked.onnx")
    return ["compile", p, "--calib", calib], 1, ["unchecked.onnx", "no_such_tensor"]


def case_topk_on_time(tmp, ex, calib):
    p = _save(tmp, _with_topk_on_time(ex), "topk.onnx")
    return ["compile", p, "--calib", calib], 1, ["/time/TopK", "TopK"]


def case_conv_stride2_on_time(tmp, ex, calib):
    """Contract §2: CHUNK must be a multiple of the cumulative downsampling; legal values listed."""
    p = _save(tmp, _with_stride2_on_time(_base(ex)), "stride2.onnx")
    return ["compile", p, "--calib", calib, "--chunk", "3"], 1, ["CHUNK=3", "2, 4, 6"]


def case_two_unstreamable_nodes(tmp, ex, calib):
    """Contract §2: the error lists every offending node, not just the first."""
    onnx.save(_with_topk_on_time(ex), str(tmp / "topk_tmp.onnx"))
    p = _save(tmp, _with_cumsum_on_time(onnx.load(str(tmp / "topk_tmp.onnx"))), "two_bad.onnx")
    return ["compile", p, "--calib", calib], 1, ["/time/TopK", "/time/CumSum"]


def case_three_unsupported_nodes(tmp, ex, calib):
    """Issue 5: a model with unsupported nodes fails (before calibration) listing all of them."""
    p = _save(tmp, _with_unsupported_chain(_base(ex)), "three_bad.onnx")
    return ["compile", p, "--calib", calib], 1, ["3 node(s)", "/bad/Cos", "/bad/Floor",
                                                 "/bad/Pow", "no kernel", "exponent"]


def case_three_unsupported_nodes_float32(tmp, ex, calib):
    p = _save(tmp, _with_unsupported_chain(_base(ex)), "three_bad32.onnx")
    return ["compile", p, "--bits", "32"], 1, ["3 node(s)", "float32", "/bad/Cos", "/bad/Floor",
                                               "/bad/Pow"]


def case_dynamic_unpinned(tmp, ex, calib):
    return ["compile", DYNAMIC], 1, ["tcn_torch_dynamic.onnx", "'x'", "--input-shape"]


def case_chunk_not_dividing(tmp, ex, calib):
    return ["compile", DYNAMO, "--calib", TORCH_CALIB, "--chunk", "5"], 1, ["5", "24"]


def case_calib_wrong_shape(tmp, ex, calib):
    p = tmp / "calib_bad_shape.npy"
    np.save(p, np.zeros((8, 16, 23), np.float32))
    return ["compile", DYNAMO, "--calib", p], 1, ["calib", "23", "16, 24"]


def case_calib_int_dtype(tmp, ex, calib):
    p = tmp / "calib_int.npy"
    np.save(p, np.zeros((8, 1, 16, 24), np.int16))
    return ["compile", DYNAMO, "--calib", p], 1, ["calib", "int16"]


def case_nan_weights(tmp, ex, calib):
    p = _save(tmp, _with_nan_weight(ex), "nanweights.onnx")
    return ["compile", p, "--calib", calib], 1, ["NaN", ("blocks.1.pw.weight", "/blocks.1/pw/Conv")]


def case_second_input(tmp, ex, calib):
    p = _save(tmp, _with_second_input(ex), "twoinputs.onnx")
    return ["compile", p, "--calib", calib], 1, ["gain"]


def case_does_not_fit_memory(tmp, ex, calib):
    p = _save(tmp, _too_big_for_esp32s3(), "huge.onnx")
    return ["compile", p, "--target", "esp32s3", "--chunk", "24", "--no-verify"], 1, ["esp32s3"]


def case_state_pairing_ambiguous(tmp, ex, calib):
    p, c = _ambiguous_state(tmp)
    return ["compile", p, "--calib", c], 1, ["'state'", "'stateN'", "'state_out'", "--state IN=OUT"]


def case_state_input_unmatched(tmp, ex, calib):
    p, c = _with_own_state(tmp, file="unmatched", state="memory", state_out="stateN")
    return ["compile", p, "--calib", c], 1, ["'memory'", "--state"]


def case_state_unknown_input(tmp, ex, calib):
    p, c = _with_own_state(tmp)
    return ["compile", p, "--calib", c, "--state", "h=stateN"], 2, ["--state h=stateN", "'h'",
                                                                   "x, state"]


def case_state_unknown_output(tmp, ex, calib):
    p, c = _with_own_state(tmp)
    return ["compile", p, "--calib", c, "--state", "state=hn"], 2, ["'hn'", "y, stateN"]


def case_state_shape_mismatch(tmp, ex, calib):
    p, c = _with_own_state(tmp)
    return ["compile", p, "--calib", c, "--state", "state=y"], 2, [
        "--state state=y", "[1, 3, 2]", "[1, 4, 4]"]


def case_state_not_a_pair(tmp, ex, calib):
    p, c = _with_own_state(tmp)
    return ["compile", p, "--calib", c, "--state", "state"], 2, ["--state 'state'", "IN=OUT"]


def case_state_on_one_input_model(tmp, ex, calib):
    return ["compile", ex, "--calib", calib, "--state", "x=y"], 2, ["'y'", "--state x=y"]


def case_state_chunk_mismatch(tmp, ex, calib):
    p, c = _with_own_state(tmp)
    return ["compile", p, "--calib", c, "--chunk", "2"], 1, ["--chunk 2", "state=stateN",
                                                             "4 frame(s) of input 'x'"]


def case_state_offline(tmp, ex, calib):
    p, c = _with_own_state(tmp)
    return ["compile", p, "--calib", c, "--offline"], 1, ["--offline", "state=stateN"]


CASES = [
    pytest.param(case_missing_model, id="missing-model-file"),
    pytest.param(case_unknown_target, id="unknown-target"),
    pytest.param(case_unknown_option, id="unknown-option"),
    pytest.param(case_bits_24, id="bits-24-unsupported"),
    pytest.param(case_bits_32_with_quantization_options, id="bits-32-with-int16"),
    pytest.param(case_empty_file, id="empty-file"),
    pytest.param(case_random_bytes, id="random-bytes"),
    pytest.param(case_truncated, id="truncated-protobuf"),
    pytest.param(case_checker, id="fails-onnx-checker"),
    pytest.param(case_topk_on_time, id="topk-on-time-path"),
    pytest.param(case_conv_stride2_on_time, id="chunk-not-multiple-of-stride"),
    pytest.param(case_two_unstreamable_nodes, id="lists-every-unstreamable-node"),
    pytest.param(case_three_unsupported_nodes, id="lists-every-unsupported-node"),
    pytest.param(case_three_unsupported_nodes_float32, id="lists-every-unsupported-node-f32"),
    pytest.param(case_dynamic_unpinned, id="dynamic-dims-unpinned"),
    pytest.param(case_chunk_not_dividing, id="chunk-does-not-divide-window"),
    pytest.param(case_calib_wrong_shape, id="calib-wrong-shape"),
    pytest.param(case_calib_int_dtype, id="calib-integer-dtype"),
    pytest.param(case_nan_weights, id="nan-weights"),
    pytest.param(case_second_input, id="second-runtime-input"),
    pytest.param(case_does_not_fit_memory, id="does-not-fit-target-memory"),
    pytest.param(case_state_pairing_ambiguous, id="state-pairing-ambiguous"),
    pytest.param(case_state_input_unmatched, id="state-input-matches-no-output"),
    pytest.param(case_state_unknown_input, id="state-names-unknown-input"),
    pytest.param(case_state_unknown_output, id="state-names-unknown-output"),
    pytest.param(case_state_shape_mismatch, id="state-shape-mismatch"),
    pytest.param(case_state_not_a_pair, id="state-not-in-out"),
    pytest.param(case_state_on_one_input_model, id="state-on-one-input-model"),
    pytest.param(case_state_chunk_mismatch, id="state-chunk-not-the-models"),
    pytest.param(case_state_offline, id="state-offline"),
]


def assert_one_clear_error(rc: int, stdout: str, stderr: str, expected_rc: int, mentions: list[str]):
    assert rc == expected_rc, f"exit {rc}, expected {expected_rc}; stderr:\n{stderr}"
    assert "Traceback" not in stderr and "Traceback" not in stdout, stderr
    assert "internal error" not in stderr, stderr
    text = stderr.strip()
    at = text.find("rill: error:")
    assert at >= 0, f"no 'rill: error:' message:\n{stderr}"
    progress, text = text[:at].splitlines(), text[at:]  # a compile says which step it ran
    assert all(ln.startswith("rill: ") and "WARNING" not in ln for ln in progress), \
        f"more than progress lines before the message:\n{stderr}"
    assert text.count("rill: error:") == 1, f"more than one message:\n{stderr}"
    assert len(text) > len("rill: error:") + 10, f"no explanation:\n{stderr}"
    for m in mentions:  # a tuple: any one of its strings
        options = m if isinstance(m, tuple) else (m,)
        assert any(o in text for o in options), f"message does not mention {m!r}:\n{stderr}"


def assert_no_output(out: Path, name: str):
    assert not (out / name).exists(), f"{out / name} was written although the compile failed"
    leftovers = sorted(p.name for p in out.iterdir()) if out.exists() else []
    assert leftovers == [], f"left in --out after a failed compile: {leftovers}"


@pytest.mark.parametrize("case", CASES)
def test_bad_input(case, tmp_path, example_model, example_calib):
    src = tmp_path / "src"
    src.mkdir()
    argv, expected_rc, mentions = case(src, example_model, example_calib)
    out = tmp_path / "out"
    rc, so, se = run_cli([*argv, "--out", out])
    assert_one_clear_error(rc, so, se, expected_rc, mentions)
    model_arg = Path(str(argv[1]))
    assert_no_output(out, re.sub(r"[^a-z0-9_]", "_", model_arg.stem.lower()))


def test_chunk_error_lists_the_legal_values(tmp_path):
    rc, so, se = run_cli(["compile", DYNAMO, "--calib", TORCH_CALIB, "--chunk", "5",
                          "--out", tmp_path / "out"])
    assert_one_clear_error(rc, so, se, 1, ["5"])
    listed = se.split("legal", 1)[-1] if "legal" in se else se
    values = {int(v) for v in re.findall(r"\b\d+\b", listed)}
    assert {1, 2, 3, 4, 6, 8, 12, 24} <= values, se
    assert not values & {5, 7, 9, 10, 16}, f"illegal CHUNK values listed as legal: {se}"
    assert_no_output(tmp_path / "out", "tcn_torch_dynamo")


def test_existing_output_needs_force(tmp_path, example_model, example_calib):
    out = tmp_path / "out"
    old = out / "tcn"
    old.mkdir(parents=True)
    (old / "keep.txt").write_text("user file")
    args = ["compile", example_model, "--calib", example_calib, "--out", out, "--no-verify"]

    rc, so, se = run_cli(args)
    assert_one_clear_error(rc, so, se, 1, [str(old), "--force"])
    assert (old / "keep.txt").read_text() == "user file"
    assert sorted(p.name for p in out.iterdir()) == ["tcn"]

    rc, so, se = run_cli(args + ["--force"])
    assert rc == 0, se
    assert "Traceback" not in se
    assert not (old / "keep.txt").exists(), "--force did not replace the old folder"
    assert (old / "include" / "tcn.h").is_file() and (old / "report.json").is_file()
    assert sorted(p.name for p in out.iterdir()) == ["tcn"], "temporary folder left in --out"


def test_failed_forced_compile_keeps_the_old_output(tmp_path, example_model, example_calib):
    """--force over an existing folder, then a compile error: the old folder stays as it was."""
    out = tmp_path / "out"
    old = out / "tcn"
    old.mkdir(parents=True)
    (old / "keep.txt").write_text("user file")
    rc, so, se = run_cli(["compile", example_model, "--calib", example_calib, "--out", out,
                          "--force", "--chunk", "5", "--no-verify"])
    assert_one_clear_error(rc, so, se, 1, ["5"])
    assert (old / "keep.txt").read_text() == "user file"
    assert sorted(p.name for p in out.iterdir()) == ["tcn"]


OPTIONS = ["--target", "--chunk", "--calib", "--bits", "--out", "--name", "--offline",
           "--input-shape", "--time-axis", "--state", "--dump-passes", "--no-verify", "--force",
           "--quiet", "--verbose", "--help"]


def test_help_mentions_every_option():
    rc, so, se = run_cli(["compile", "--help"])
    assert rc == 0, se
    for opt in OPTIONS:
        assert opt in so, f"`compile --help` does not mention {opt}"
    for target in ("esp32p4", "esp32s3"):
        assert target in so
    rc, so, se = run_cli(["--help"])
    assert rc == 0 and "compile" in so


@pytest.mark.parametrize("argv,expected_rc", [
    (["compile", "does_not_exist.onnx"], 2),
    (["compile", str(FIXTURES / "tcn_torch_calib.npy")], 1),  # not an ONNX file
])
def test_process_exit_codes(argv, expected_rc, tmp_path):
    """The real `python -m compiler` process: exit code and a single clean message."""
    proc = subprocess.run([sys.executable, "-m", "compiler", *argv, "--out", str(tmp_path / "out")],
                          cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert proc.returncode == expected_rc, proc.stderr
    assert proc.stderr.startswith("rill: error:") and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.count("rill: error:") == 1
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_npz_calibration_is_matched_by_input_name(tmp_path):
    from compiler.cli import main
    fixtures = Path(__file__).resolve().parent / "fixtures"
    data = np.load(fixtures / "tcn_torch_calib.npy")
    np.savez(tmp_path / "named.npz", other=data[:2] * 0, x=data)
    rc = main(["compile", str(fixtures / "tcn_torch_dynamo.onnx"), "--calib", str(tmp_path / "named.npz"),
               "--out", str(tmp_path / "out"), "--no-verify", "-q"])
    assert rc == 0
    np.savez(tmp_path / "unnamed.npz", a=data, b=data)
    rc = main(["compile", str(fixtures / "tcn_torch_dynamo.onnx"), "--calib", str(tmp_path / "unnamed.npz"),
               "--out", str(tmp_path / "out2"), "--no-verify", "-q"])
    assert rc == 1 and not (tmp_path / "out2" / "tcn_torch_dynamo").exists()
