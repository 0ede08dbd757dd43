"""Hostile input by mutation (issue 7, contract §5): valid small models with one random change to
an attribute, an initializer, the input's shape or the wiring must either compile to a verified
component or fail with one clear `rill: error:` (exit code 1, no traceback, no "internal error",
no output folder left behind): never crash.

A hypothesis strategy picks a base model (a 1-D conv stack with a pooled Gemm head, a 2-D conv
net with a Sigmoid gate and a max over frequency, and four models PyTorch exported: a conv+GRU
tagger, a spectrogram CNN, a window classifier, a look-ahead TCN), one mutation, a precision
(float32, or int8 with calibration data drawn for the mutated input's shape) and streaming or
--offline, then runs the CLI in-process.

CI runs a small derandomized sample (MUTATION_EXAMPLES); `RILL_FUZZ=1` (`make fuzz`) runs many
fresh random ones (RILL_FUZZ_MUTATIONS overrides the count).
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np
import onnx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import helper, numpy_helper

from conftest import FIXTURES, run_cli
from graphs import init, model, node, weights

FUZZ = os.environ.get("RILL_FUZZ") == "1"
MUTATION_EXAMPLES = int(os.environ.get("RILL_FUZZ_MUTATIONS", 300 if FUZZ else 12))

settings.register_profile("rill-mutation-ci", deadline=None, derandomize=True, database=None,
                          print_blob=True, suppress_health_check=list(HealthCheck))
settings.register_profile("rill-mutation-fuzz", settings.get_profile("rill-mutation-ci"),
                          derandomize=False)
PROFILE = settings.get_profile("rill-mutation-fuzz" if FUZZ else "rill-mutation-ci")


# ----------------------------------------------------------------------------- base models

def conv_stack() -> onnx.ModelProto:
    """[1, 4, 16] -> causal Conv k=3 -> Relu -> Conv 1x1 (+ residual) -> AveragePool k=2 s=2
    -> ReduceMean over time -> Gemm 4 -> 3."""
    nodes = [
        node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", kernel_shape=[3], pads=[2, 0]),
        node("Relu", ["c1"], ["r1"], name="relu1"),
        node("Conv", ["r1", "w2"], ["c2"], name="conv2", kernel_shape=[1]),
        node("Add", ["c2", "x"], ["a"], name="residual"),
        node("AveragePool", ["a"], ["p"], name="pool", kernel_shape=[2], strides=[2]),
        node("ReduceMean", ["p", "axes"], ["m"], name="mean", keepdims=0),
        node("Gemm", ["m", "wg", "bg"], ["y"], name="head", transB=1),
    ]
    inits = [init("w1", weights([4, 4, 3], 1)), init("b1", weights([4], 2)),
             init("w2", weights([4, 4, 1], 3)), init("axes", [2], np.int64),
             init("wg", weights([3, 4], 4)), init("bg", weights([3], 5))]
    return model(nodes, [("x", [1, 4, 16])], [("y", [1, 3])], inits)


def conv2d_net() -> onnx.ModelProto:
    """[1, 1, 6, 12] (time on W) -> Conv 3x3 -> Sigmoid gate -> ReduceMax over F -> Conv 1x1."""
    nodes = [
        node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", kernel_shape=[3, 3],
             pads=[1, 2, 1, 0]),
        node("Sigmoid", ["c1"], ["s"], name="gate"),
        node("Mul", ["c1", "s"], ["g"], name="gated"),
        node("ReduceMax", ["g", "axes"], ["p"], name="pool", keepdims=1),
        node("Conv", ["p", "w2"], ["y"], name="conv2", kernel_shape=[1, 1]),
    ]
    inits = [init("w1", weights([3, 1, 3, 3], 6)), init("b1", weights([3], 7)),
             init("axes", [2], np.int64), init("w2", weights([2, 3, 1, 1], 8))]
    return model(nodes, [("x", [1, 1, 6, 12])], [("y", [1, 2, 1, 12])], inits)


def exported(stem: str):
    """A model PyTorch exported (tests/fixtures/streaming, examples/streaming/models.py)."""
    return lambda: onnx.load(str(FIXTURES / "streaming" / f"{stem}.onnx"))


BASES = {"conv_stack": conv_stack, "conv2d_net": conv2d_net,
         "gru_tagger": exported("gru_tagger.script"),
         "spectrogram_cnn": exported("spectrogram_cnn.dynamo"),
         "window_classifier": exported("window_classifier.dynamo"),
         "lookahead_tcn": exported("lookahead_tcn.script")}


# ----------------------------------------------------------------------------- mutations

ATTRS = ("kernel_shape", "pads", "strides", "dilations", "group", "axis", "keepdims", "transB",
         "alpha", "ceil_mode", "auto_pad", "count_include_pad", "storage_order")
attr_values = st.one_of(
    st.integers(-3, 9),
    st.lists(st.integers(-3, 9), min_size=0, max_size=5),
    st.sampled_from([float("nan"), float("inf"), -1.5, 0.0, 1e30]),
    st.sampled_from(["NOTSET", "SAME_UPPER", "VALID", "bogus", ""]),
)


def _set_attr(n: onnx.NodeProto, name: str, value) -> None:
    kept = [a for a in n.attribute if a.name != name]
    del n.attribute[:]
    kind = onnx.AttributeProto.INTS if isinstance(value, list) else None
    n.attribute.extend(kept + [helper.make_attribute(name, value, attr_type=kind)])


def mutate_attribute(m: onnx.ModelProto, data: st.DataObject) -> str:
    n = data.draw(st.sampled_from(list(m.graph.node)))
    name = data.draw(st.sampled_from(sorted({a.name for a in n.attribute} | set(ATTRS))))
    value = data.draw(attr_values)
    _set_attr(n, name, value)
    return f"{n.name}.{name} = {value!r}"


def mutate_initializer(m: onnx.ModelProto, data: st.DataObject) -> str:
    t = data.draw(st.sampled_from(list(m.graph.initializer)))
    a = numpy_helper.to_array(t)
    how = data.draw(st.sampled_from(["nan", "inf", "huge", "zero", "drop", "grow", "rank",
                                     "float64", "int32", "empty"]))
    if how == "nan" and a.dtype.kind == "f" and a.size:
        a = a.copy()
        a.flat[0] = np.nan
    elif how == "inf" and a.dtype.kind == "f" and a.size:
        a = a.copy()
        a.flat[-1] = -np.inf
    elif how == "huge" and a.dtype.kind == "f":
        a = a * np.float32(1e30)
    elif how == "zero":
        a = np.zeros_like(a)
    elif how == "drop" and a.size > 1:
        a = a.reshape(-1)[:-1]
    elif how == "grow":
        a = np.concatenate([a.reshape(-1), a.reshape(-1)[:1]])
    elif how == "rank":
        a = a.reshape(1, *a.shape)
    elif how == "float64":
        a = a.astype(np.float64)
    elif how == "int32":
        a = a.astype(np.int32)
    elif how == "empty":
        a = a.reshape(-1)[:0]
    t.CopyFrom(numpy_helper.from_array(a, t.name))
    return f"initializer {t.name}: {how}"


def mutate_input_shape(m: onnx.ModelProto, data: st.DataObject) -> str:
    dims = m.graph.input[0].type.tensor_type.shape.dim
    i = data.draw(st.integers(0, len(dims) - 1))
    value = data.draw(st.one_of(st.sampled_from([0, 1, 2, 3, 5, 7, 64, 4096]),
                                st.sampled_from(["T", "batch", ""])))
    if isinstance(value, int):
        dims[i].ClearField("dim_param")
        dims[i].dim_value = value
    else:
        dims[i].ClearField("dim_value")
        dims[i].dim_param = value
    return f"input dim {i} = {value!r}"


def mutate_wiring(m: onnx.ModelProto, data: st.DataObject) -> str:
    g = m.graph
    nodes = list(g.node)
    how = data.draw(st.sampled_from(["swap", "dangling", "delete", "duplicate_name",
                                     "hostile_name", "self_loop", "output_name"]))
    n = data.draw(st.sampled_from(nodes))
    if how == "swap" and len(n.input) >= 2:
        n.input[0], n.input[1] = n.input[1], n.input[0]
    elif how == "dangling":
        n.input[0] = "no_such_tensor"
    elif how == "delete":
        g.node.remove(n)
    elif how == "duplicate_name":
        n.name = nodes[0].name
    elif how == "hostile_name":
        hostile = data.draw(st.sampled_from(['*/ int x; /*', 'a"b\\c', "new\nline", "ü-名",
                                             "int", "", "1abc", "x" * 300]))
        old = n.output[0]
        n.name = hostile
        for other in g.node:
            other.input[:] = [hostile if i == old else i for i in other.input]
        for out in g.output:
            if out.name == old:
                out.name = hostile
        n.output[0] = hostile
    elif how == "self_loop":
        n.input[0] = n.output[0]
    elif how == "output_name":
        g.output[0].name = g.input[0].name
    return f"{how} at {n.name!r}"


MUTATIONS = {"attribute": mutate_attribute, "initializer": mutate_initializer,
             "input_shape": mutate_input_shape, "wiring": mutate_wiring}


# ----------------------------------------------------------------------------- the property

def _calibration(m: onnx.ModelProto, path: Path) -> bool:
    """Write calibration data for the (mutated) input shape; False when it is not static."""
    dims = [d.dim_value if d.HasField("dim_value") else None
            for d in m.graph.input[0].type.tensor_type.shape.dim]
    if any(d is None for d in dims) or int(np.prod(dims)) > 1 << 16:
        return False
    data = np.random.default_rng(0).standard_normal((4, *dims)).astype(np.float32)
    np.save(path, data)
    return True


def check_compile(m: onnx.ModelProto, bits: int, what: str, offline: bool = True) -> int | None:
    """Compile the model through the CLI; check contract §5; the exit code (None: onnx itself
    could not serialize the mutant, so it is not an input Rill can be given)."""
    with tempfile.TemporaryDirectory(prefix="rill-mutation-") as work:
        work = Path(work)
        path = work / "mutant.onnx"
        try:
            onnx.save(m, str(path))
        except Exception:  # noqa: BLE001 - onnx itself cannot write it: not Rill's input
            return None
        out = work / "out"
        argv = ["compile", path, "--out", out, "--bits", bits, "--name", "mutant"]
        argv += ["--offline"] if offline else []
        if bits != 32:
            if not _calibration(m, work / "calib.npy"):
                argv += ["--calib", work / "missing.npy"]  # a clear usage error, still checked
            else:
                argv += ["--calib", work / "calib.npy"]
        rc, stdout, stderr = run_cli(argv)
        context = (f"mutation: {what}, bits {bits}, {'offline' if offline else 'streaming'}\n"
                   f"exit {rc}\n{stderr[-2000:]}")
        assert "Traceback" not in stderr + stdout, context
        assert "internal error" not in stderr, context
        assert rc in (0, 1, 2), context
        if rc == 0:
            report = json.loads((out / "mutant" / "report.json").read_text())
            assert report["verification"]["selftest"] == "passed", context
        else:
            assert stderr.startswith("rill: error:") or "usage:" in stderr, context
            assert not (out / "mutant").exists(), f"half-written output\n{context}"
            leftovers = list(out.iterdir()) if out.exists() else []
            assert not leftovers, f"left behind {leftovers}\n{context}"
        return rc


@settings(PROFILE, max_examples=MUTATION_EXAMPLES)
@given(base=st.sampled_from(sorted(BASES)), kind=st.sampled_from(sorted(MUTATIONS)),
       bits=st.sampled_from([32, 8]), offline=st.booleans(), data=st.data())
def test_a_mutated_model_compiles_or_fails_clearly(base, kind, bits, offline, data):
    m = BASES[base]()
    what = f"{base}: " + MUTATIONS[kind](m, data)
    check_compile(m, bits, what, offline)


def test_the_unmutated_bases_compile(tmp_path):
    for name, base in BASES.items():
        for bits, offline in ((32, True), (8, False)):
            assert check_compile(base(), bits, f"{name} unmutated", offline) == 0, (name, bits)


HOSTILE = ['*/ int x; /*', 'a"b', "back\\slash", "new\nline", "ü-名", "int", "a-b", "a_b",
           "1abc", "??=", "x" * 200]


def test_names_hostile_to_c(tmp_path):
    """Every node and tensor renamed to something C must never see raw (comment ends, quotes,
    backslashes, newlines, unicode, a keyword, names that collide once sanitized, a trigraph),
    in a file named after a C keyword: a verified component whose C builds strictly."""
    m = conv_stack()
    g = m.graph
    names = (h + ("" if i < len(HOSTILE) else f"*/{i}") for i, h in enumerate(HOSTILE * 4))
    renamed = {t: next(names) for t in [g.input[0].name] + [t for n in g.node for t in n.output]}
    renamed.update({i.name: f"{next(names)}/{i.name}" for i in g.initializer})
    for n in g.node:
        n.name = next(names)
        n.input[:] = [renamed.get(t, t) for t in n.input]
        n.output[:] = [renamed.get(t, t) for t in n.output]
    for t in list(g.initializer) + list(g.input) + list(g.output) + list(g.value_info):
        t.name = renamed.get(t.name, t.name)
    onnx.checker.check_model(m)
    path = tmp_path / "int.onnx"
    onnx.save(m, str(path))
    np.save(tmp_path / "calib.npy",
            np.random.default_rng(0).standard_normal((4, 1, 4, 16)).astype(np.float32))
    rc, _, stderr = run_cli(["compile", path, "--out", tmp_path / "out", "--calib",
                             tmp_path / "calib.npy"])
    assert rc == 0, stderr
    report = json.loads((tmp_path / "out" / "m_int" / "report.json").read_text())
    assert report["verification"]["selftest"] == "passed"
    sources = "".join(p.read_text() for p in (tmp_path / "out" / "m_int").rglob("*.[ch]"))
    assert "*/ int x;" not in sources and "new\nline" not in sources
    assert sources.isascii()
