"""Tiny hand-built ONNX graphs for pass unit tests (opset 18), and helpers to run one pass.

Usage in a test:

    m = model([node("Relu", ["x"], ["y"])], [("x", [1, 4, 8])], [("y", [1, 4, 8])])
    ctx = ctx_for(m)
    assert run_pass(RemoveIdentity(), ctx)
    assert_ort_equal(m, ctx)

Every builder names its nodes (exporters do), seeds its weights, and returns a checked
ModelProto.
"""
from __future__ import annotations

import itertools
from typing import Any, Iterable, Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from compiler.context import CompileContext, Options
from compiler.graph import import_model, to_runnable
from compiler.ort import run_model
from compiler.pass_manager import Pass, PassManager
from compiler.shapes import infer_shapes
from compiler.targets import get_target

OPSET = 18


def _float_properties() -> frozenset[str]:
    """What the offline float pipeline guarantees (so a fusion or the streaming-cut can run
    alone); derived from the pipeline so new passes are picked up."""
    from compiler.pipeline import float_passes
    out: set[str] = set()
    for p in float_passes(offline=True):
        out |= p.ensures
    return frozenset(out)


FLOAT_PROPERTIES = _float_properties()

_counter = itertools.count()


# --------------------------------------------------------------------------- raw builders

def value_info(name: str, shape: Sequence[int] | None = None,
               elem: int = TensorProto.FLOAT) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem, None if shape is None else list(shape))


def _vi(spec) -> onnx.ValueInfoProto:
    if isinstance(spec, onnx.ValueInfoProto):
        return spec
    if isinstance(spec, str):
        return value_info(spec, None)
    return value_info(*spec)


def init(name: str, values: Any, dtype=np.float32) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(values, dtype=dtype), name)


def ints(name: str, values: Any) -> onnx.TensorProto:
    return init(name, values, np.int64)


def node(op: str, inputs: Sequence[str], outputs: Sequence[str], name: str | None = None,
         domain: str | None = None, **attrs) -> onnx.NodeProto:
    """A named node (name defaults to `<op>_<first output>`)."""
    return helper.make_node(op, list(inputs), list(outputs),
                            name=name if name is not None else f"{op}_{outputs[0]}",
                            domain=domain, **attrs)


def constant(output: str, values: Any, dtype=np.float32, name: str | None = None) -> onnx.NodeProto:
    return helper.make_node("Constant", [], [output], name=name or f"Constant_{output}",
                            value=numpy_helper.from_array(np.asarray(values, dtype=dtype)))


def model(nodes: Iterable[onnx.NodeProto], inputs: Iterable, outputs: Iterable,
          initializers: Iterable[onnx.TensorProto] = (), *, check: bool = True) -> onnx.ModelProto:
    """A ModelProto; inputs/outputs are `(name, shape)` pairs (shape None: unknown) or ValueInfos."""
    graph = helper.make_graph(list(nodes), f"g{next(_counter)}", [_vi(i) for i in inputs],
                              [_vi(o) for o in outputs], list(initializers))
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                          producer_name="rill-tests")
    m.ir_version = 8
    if check:  # fills in the output shapes left unknown, and checks the model
        m = onnx.shape_inference.infer_shapes(m, strict_mode=True)
        onnx.checker.check_model(m)
    return m


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def weights(shape: Sequence[int], seed: int = 0, scale: float = 0.5) -> np.ndarray:
    return (rng(seed).standard_normal(shape) * scale).astype(np.float32)


# --------------------------------------------------------------------------- model builders

def conv1d_model(c_in: int = 4, c_out: int = 4, t: int = 16, k: int = 3, dilation: int = 1,
                 pads: Sequence[int] | None = None, bias: bool = True, stride: int = 1,
                 group: int = 1, seed: int = 0, tail: Sequence[onnx.NodeProto] = (),
                 out: str | None = None, extra_inits: Sequence[onnx.TensorProto] = ()
                 ) -> onnx.ModelProto:
    """x[1, c_in, t] -> Conv (named 'conv', output 'c') [-> tail nodes] -> out.

    `pads` default: causal, [(k-1)*dilation, 0]. `tail` nodes read 'c'; `out` names the graph
    output (default 'c', or the last tail node's first output).
    """
    pads = [(k - 1) * dilation, 0] if pads is None else list(pads)
    inits = [init("w", weights([c_out, c_in // group, k], seed))]
    ins = ["x", "w"]
    if bias:
        inits.append(init("b", weights([c_out], seed + 1)))
        ins.append("b")
    conv = node("Conv", ins, ["c"], name="conv", kernel_shape=[k], dilations=[dilation],
                pads=pads, strides=[stride], group=group)
    out = out or (tail[-1].output[0] if tail else "c")
    return model([conv, *tail], [("x", [1, c_in, t])], [(out, None)], inits + list(extra_inits))


def causal_tcn_model(channels: int = 3, t: int = 12, layers: Sequence[tuple[int, int]] = ((3, 1), (3, 2), (2, 4)),
                     seed: int = 0) -> onnx.ModelProto:
    """A causal dilated conv stack: per (kernel, dilation) a Conv with left pad (k-1)*d + Relu."""
    nodes, inits, prev = [], [], "x"
    for i, (k, d) in enumerate(layers):
        inits += [init(f"w{i}", weights([channels, channels, k], seed + i)),
                  init(f"b{i}", weights([channels], seed + 100 + i))]
        nodes.append(node("Conv", [prev, f"w{i}", f"b{i}"], [f"c{i}"], name=f"conv{i}",
                          kernel_shape=[k], dilations=[d], pads=[(k - 1) * d, 0]))
        nodes.append(node("Relu", [f"c{i}"], [f"r{i}"], name=f"relu{i}"))
        prev = f"r{i}"
    return model(nodes, [("x", [1, channels, t])], [(prev, None)], inits)


def explicit_state_model(channels: int = 3, chunk: int = 4, k: int = 3, c_out: int = 4,
                         state: str = "state", state_out: str = "stateN", seed: int = 0,
                         outputs_first: bool = False, pads: Sequence[int] = (0, 0)
                         ) -> onnx.ModelProto:
    """A per-call model with its own state pair: x [1, C, chunk] and `state` [1, C, k-1];
    window = Concat(state, x) along time, y = Relu(Conv(window)) (no padding unless `pads`), and
    `state_out` = the last k-1 frames of the window. `outputs_first` lists the state output
    before y."""
    nodes = [node("Concat", [state, "x"], ["window"], name="window", axis=2),
             node("Conv", ["window", "w", "b"], ["c"], name="conv", kernel_shape=[k],
                  pads=list(pads)),
             node("Relu", ["c"], ["y"], name="relu"),
             node("Slice", ["window", "starts", "ends", "axes"], [state_out], name="keep")]
    inits = [init("w", weights([c_out, channels, k], seed)), init("b", weights([c_out], seed + 1)),
             ints("starts", [-(k - 1)]), ints("ends", [np.iinfo(np.int64).max]), ints("axes", [2])]
    outs = [("y", None), (state_out, None)]
    return model(nodes, [("x", [1, channels, chunk]), (state, [1, channels, k - 1])],
                 outs[::-1] if outputs_first else outs, inits)


def gru_state_model(channels: int = 3, chunk: int = 4, hidden: int = 5, seed: int = 0,
                    h: str = "h", hn: str = "hn", op: str = "GRU") -> onnx.ModelProto:
    """A per-call recurrent model with its own state: x [1, C, chunk] -> 1x1 Conv -> [T, 1, C]
    -> GRU (or LSTM) from initial_h = `h` [1, 1, H] -> y [1, H, chunk] and Y_h = `hn`
    (LSTM: also c -> cn)."""
    gates = {"GRU": 3, "LSTM": 4}[op]
    attrs = {"hidden_size": hidden}
    if op == "GRU":
        attrs["linear_before_reset"] = 1
    rnn_ins = ["xt", "W", "R", "B", "", h] + (["c"] if op == "LSTM" else [])
    rnn_outs = ["Y", hn] + (["cn"] if op == "LSTM" else [])
    nodes = [node("Conv", ["x", "w", "b"], ["p"], name="proj", kernel_shape=[1]),
             node("Transpose", ["p"], ["xt"], perm=[2, 0, 1]),
             node(op, rnn_ins, rnn_outs, name="rnn", **attrs),
             node("Squeeze", ["Y", "one"], ["ys"], name="squeeze"),
             node("Transpose", ["ys"], ["y"], perm=[1, 2, 0])]
    inits = [init("w", weights([channels, channels, 1], seed)),
             init("b", weights([channels], seed + 1)),
             init("W", weights([1, gates * hidden, channels], seed + 2)),
             init("R", weights([1, gates * hidden, hidden], seed + 3)),
             init("B", weights([1, 2 * gates * hidden], seed + 4)), ints("one", [1])]
    ins = [("x", [1, channels, chunk]), (h, [1, 1, hidden])]
    outs = [("y", None), (hn, None)]
    if op == "LSTM":
        ins.append(("c", [1, 1, hidden]))
        outs.append(("cn", None))
    return model(nodes, ins, outs, inits)


INT64_MIN_PLUS_1 = -9223372036854775807


def torchscript_pad_chain(left: int, right: int = 0, rank: int = 3, p: str = "") -> list:
    """The TorchScript exporter's F.pad(x, (left, right)) pads computation -> tensor `p + 'pads'`
    (Constant -> ConstantOfShape -> Concat -> Reshape -> Slice(reverse) -> Transpose -> Reshape
    -> Cast). `p` prefixes every tensor name so a model can hold several chains."""
    n = {k: p + k for k in ("n_zeros", "zeros", "torch_pads", "cat", "pairs_shape", "pairs", "s_start",
                            "s_end", "s_axes", "s_steps", "rev", "tr", "flat_shape", "flat", "pads")}
    return [
        constant(n["n_zeros"], [2 * rank - 2], np.int64),
        node("ConstantOfShape", [n["n_zeros"]], [n["zeros"]], value=init("", [0], np.int64)),
        constant(n["torch_pads"], [left, right], np.int64),
        node("Concat", [n["torch_pads"], n["zeros"]], [n["cat"]], axis=0),
        constant(n["pairs_shape"], [-1, 2], np.int64),
        node("Reshape", [n["cat"], n["pairs_shape"]], [n["pairs"]]),
        constant(n["s_start"], [-1], np.int64), constant(n["s_end"], [INT64_MIN_PLUS_1], np.int64),
        constant(n["s_axes"], [0], np.int64), constant(n["s_steps"], [-1], np.int64),
        node("Slice", [n["pairs"], n["s_start"], n["s_end"], n["s_axes"], n["s_steps"]], [n["rev"]]),
        node("Transpose", [n["rev"]], [n["tr"]], perm=[1, 0]),
        constant(n["flat_shape"], [-1], np.int64),
        node("Reshape", [n["tr"], n["flat_shape"]], [n["flat"]]),
        node("Cast", [n["flat"]], [n["pads"]], to=TensorProto.INT64),
    ]


# --------------------------------------------------------------------------- running passes

def options(**kw) -> Options:
    target = kw.pop("target", "esp32p4")
    return Options(target=get_target(target) if isinstance(target, str) else target, **kw)


def ctx_for(m: onnx.ModelProto, properties: Iterable[str] = FLOAT_PROPERTIES,
            shapes: bool = True, **opts) -> CompileContext:
    """Import `m` into a gs graph (with inferred shapes) and wrap it in a CompileContext whose
    properties are pre-set so any single pass can run."""
    graph = import_model(m)
    if shapes:
        infer_shapes(graph)
    return CompileContext(graph, options(**opts), properties=set(properties))


def run_pass(p: Pass, ctx: CompileContext, check_equivalence: bool | None = None,
             rel_tol: float = 1e-5) -> bool:
    """Run one pass through the PassManager (requires/ensures, and for passes that preserve the
    float semantics the onnxruntime equivalence check). Returns whether it changed the graph."""
    check = p.preserves_float_semantics if check_equivalence is None else check_equivalence
    manager = PassManager([p], check_equivalence=check, rel_tol=rel_tol)
    manager.run(ctx)
    assert p.ensures <= ctx.properties
    return manager.records[-1].changed


def runnable(ctx: CompileContext) -> onnx.ModelProto:
    m = to_runnable(ctx.graph)
    onnx.checker.check_model(m)
    return m


def random_input(shape: Sequence[int], seed: int = 0) -> np.ndarray:
    return rng(seed).standard_normal(shape).astype(np.float32)


def assert_ort_equal(before: onnx.ModelProto, ctx_or_model, rel: float = 1e-5, seeds=(0, 1),
                     feeds: dict[str, np.ndarray] | None = None) -> None:
    """Outputs of `before` and of the pass's result agree in onnxruntime (max abs error
    <= rel * max |reference|), on a few seeded random inputs."""
    after = runnable(ctx_or_model) if isinstance(ctx_or_model, CompileContext) else ctx_or_model
    inits = {i.name for i in before.graph.initializer}
    specs = [(vi.name, [d.dim_value for d in vi.type.tensor_type.shape.dim])
             for vi in before.graph.input if vi.name not in inits]
    all_feeds = [feeds] if feeds is not None else \
        [{n: random_input(s, seed + 17 * i) for i, (n, s) in enumerate(specs)} for seed in seeds]
    for f in all_feeds:
        ref = run_model(before, f)
        got = run_model(after, f)
        assert set(ref) <= set(got), f"outputs lost: {set(ref) - set(got)}"
        for name, r in ref.items():
            assert got[name].shape == r.shape, (name, got[name].shape, r.shape)
            scale = max(float(np.max(np.abs(r))), 1e-30)
            err = float(np.max(np.abs(got[name] - r)))
            assert err <= rel * scale, f"output '{name}': max abs error {err:.3g} > {rel:g} * {scale:.3g}"


# --------------------------------------------------------------------------- inspecting graphs

def op_types(ctx: CompileContext) -> list[str]:
    return [n.op for n in ctx.graph.nodes]


def nodes_of(ctx: CompileContext, op: str) -> list:
    return [n for n in ctx.graph.nodes if n.op == op]


def only(ctx: CompileContext, op: str):
    found = nodes_of(ctx, op)
    assert len(found) == 1, f"expected one {op}, graph has {op_types(ctx)}"
    return found[0]


def const_of(t) -> np.ndarray:
    from compiler.graph import const_value
    v = const_value(t)
    assert v is not None, f"tensor '{t.name}' is not constant"
    return v


def attr_str(value) -> str:
    return value.decode() if isinstance(value, bytes) else value


def integer_snr(m: onnx.ModelProto, ctx: CompileContext, xs: Iterable[np.ndarray]) -> float:
    """Output SNR (dB) of the integer program lowered in `ctx` against the float model `m`
    (one input, one output), pooled over the offline inputs `xs`."""
    from compiler.pipeline import Compilation
    from compiler.simulate import run_integer
    from compiler.streams import snr_db
    layout = Compilation(ctx).layout()
    x_name, y_name = m.graph.input[0].name, m.graph.output[0].name
    ref, got = [], []
    for x in xs:
        ref.append(run_model(m, {x_name: x})[y_name].ravel())
        got.append(run_integer(ctx.facts["program"], layout, x).result.ravel())
    return snr_db(np.concatenate(ref), np.concatenate(got))
