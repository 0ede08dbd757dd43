"""Generate the streaming TCN example model as ONNX, without PyTorch.

The model is Espressif's streaming-TCN tutorial model.  Input ``x`` is
``[1, 16, 24]`` (NCW: 16 features x 24 frames), output ``y`` is ``[1, 16]``::

    x0 = conv_in(x)                          # Conv 16->32, k=1
    h  = x0
    for d in (1, 2, 1):                      # three causal depthwise-separable blocks
        b = pad_left(h, 2*d)                 # causal zero pad (k-1)*d, k=3
        b = relu(dw_conv(b, dilation=d))     # Conv 32->32, k=3, group=32
        b = relu(bn(pw_conv(b)))             # Conv 32->32, k=1 ; BatchNorm (eval)
        h = silu(b) + x0                     # SiLU, then residual with conv_in output
    h = avg_pool(pad_left(h, 2), k=3, s=1)   # causal, zero padding counted (count_include_pad)
    h = conv_out(h)                          # Conv 32->16, k=1
    h = h[:, :, -3:]                         # keep the last 3 frames
    y = fc(flatten(h))                       # Linear 48->16 (Gemm, transB=1)

Reading of the residual: the brief ("each block followed by SiLU -> residual Add
with the first 1x1 conv's output") is read as *every* block's SiLU output being
added to ``x0`` (the conv_in output), and that sum is the input of the next
block: ``h = silu(block(h)) + x0``.  So ``x0`` fans out to the first block and
to all three Adds.  ``examples/tcn/export_torch.py`` uses the same reading.

Weights are drawn like PyTorch's default init: every Conv/Linear weight and bias
is ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` with ``fan_in = in_ch/groups * k``
(what ``kaiming_uniform_(a=sqrt(5))`` reduces to).  BatchNorm gets non-trivial
eval statistics so that BN folding is exercised: ``gamma ~ U[0.5, 1.5)``,
``beta ~ 0.2 N(0,1)``, ``running_mean ~ 0.3 N(0,1)``, ``running_var ~ U[0.25, 1.75)``,
``epsilon = 1e-5``.  All from ``numpy.random.default_rng(seed)``.

Variants (all compute the same function with the same weights; checked in
onnxruntime, see ``verify()``):

``default``
    Causal pads folded into ``Conv.pads = [2d, 0]`` and ``AveragePool.pads = [2, 0]``
    (``count_include_pad=1``); ``BatchNormalization`` nodes present; SiLU as
    ``Sigmoid`` + ``Mul``; slice via ``Slice(starts=[-3], ends=[24], axes=[2],
    steps=[1])`` fed by ``Constant`` nodes; ``Flatten(axis=1)``; ``Gemm(transB=1)``.
``pad_nodes``
    As ``default`` but with explicit ``Pad`` nodes (mode ``constant``) in front of
    the three depthwise convs and the pool; the conv/pool ``pads`` are ``[0, 0]``.
    Each Pad's ``pads`` input is computed the way the TorchScript exporter does
    for ``F.pad(x, (p, 0))``: ``Constant [p, 0]`` ++ ``ConstantOfShape([4]) -> [0,0,0,0]``
    -> ``Concat`` -> ``Reshape [-1, 2]`` -> ``Slice`` (axis 0, step -1: reverse the
    pairs) -> ``Transpose [1, 0]`` -> ``Reshape [-1]`` -> ``Cast(int64)``, giving
    ``[0, 0, p, 0, 0, 0]``.  The block Pads have an empty ``constant_value`` input
    (``""``, as TorchScript emits); the pool Pad gets an explicit scalar ``0.0``
    constant_value from a ``Constant`` node, so both forms are covered.
``bn_folded``
    As ``default`` but each BatchNorm is folded into its pointwise conv by the
    generator (float64 math, stored as float32); the folded tensors get
    TorchScript-style names ``onnx::Conv_<n>``.  No ``BatchNormalization`` node.
``dynamic``
    As ``default`` but input ``x`` is ``[N, 16, T]`` and output ``y`` is ``[N, 16]``
    (symbolic ``N``, ``T``; ``T >= 3``); the slice end is ``INT64_MAX``; and the
    Flatten is replaced by the chain TorchScript emits for ``x.view(x.size(0), -1)``:
    ``Shape -> Gather(Constant 0 (scalar), axis 0) -> Unsqueeze(Constant [0])
    -> Concat(.., Constant [-1]) -> Reshape``.

Names follow the TorchScript exporter's conventions: nodes ``/conv_in/Conv``,
``/blocks.0/dw/Conv``, outputs ``<node>_output_0``, parameters ``conv_in.weight``,
folded parameters ``onnx::Conv_<n>``.  No value_info is written (like TorchScript).

CLI::

    python examples/tcn/make_tcn.py [--out DIR] [--seed N] [--variant NAME] [--name FILE]

writes ``DIR/tcn.onnx`` (or ``--name``) for the chosen variant and ``DIR/calib.npy``
(64 standard-normal float32 inputs ``[64, 1, 16, 24]`` from
``default_rng(seed + 1)``; for seed 0 this equals ``tests/fixtures/tcn_torch_calib.npy``).
``--variant all`` writes ``tcn_<variant>.onnx`` for every variant.  ``--verify``
additionally checks all variants in onnxruntime.

Importable API: ``build_tcn(variant, seed)``, ``make_calib(n, seed)``,
``make_weights(seed)``, ``reference_forward(x, weights)`` (plain numpy),
``VARIANTS``.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

VARIANTS = ("default", "pad_nodes", "bn_folded", "dynamic")

N_IN = 16
N_HID = 32
N_OUT = 16
T_IN = 24
KEEP = 3
KERNEL = 3
DILATIONS = (1, 2, 1)
BN_EPS = 1e-5
OPSET = 18
IR_VERSION = 8
INT64_MAX = np.iinfo(np.int64).max
INT64_MIN_PLUS_1 = -INT64_MAX  # what TorchScript uses as "slice to the beginning" with step -1


# --------------------------------------------------------------------------- weights
def make_weights(seed: int = 0) -> dict[str, np.ndarray]:
    """Parameters keyed by their PyTorch state_dict names (float32)."""
    rng = np.random.default_rng(seed)

    def uniform(shape, fan_in):
        bound = 1.0 / np.sqrt(fan_in)
        return rng.uniform(-bound, bound, size=shape).astype(np.float32)

    w: dict[str, np.ndarray] = {}
    w["conv_in.weight"] = uniform((N_HID, N_IN, 1), N_IN * 1)
    w["conv_in.bias"] = uniform((N_HID,), N_IN * 1)
    for i, _d in enumerate(DILATIONS):
        p = f"blocks.{i}."
        w[p + "dw.weight"] = uniform((N_HID, 1, KERNEL), 1 * KERNEL)
        w[p + "dw.bias"] = uniform((N_HID,), 1 * KERNEL)
        w[p + "pw.weight"] = uniform((N_HID, N_HID, 1), N_HID * 1)
        w[p + "pw.bias"] = uniform((N_HID,), N_HID * 1)
        w[p + "bn.weight"] = rng.uniform(0.5, 1.5, size=N_HID).astype(np.float32)
        w[p + "bn.bias"] = (0.2 * rng.standard_normal(N_HID)).astype(np.float32)
        w[p + "bn.running_mean"] = (0.3 * rng.standard_normal(N_HID)).astype(np.float32)
        w[p + "bn.running_var"] = rng.uniform(0.25, 1.75, size=N_HID).astype(np.float32)
    w["conv_out.weight"] = uniform((N_OUT, N_HID, 1), N_HID * 1)
    w["conv_out.bias"] = uniform((N_OUT,), N_HID * 1)
    w["fc.weight"] = uniform((N_OUT, N_OUT * KEEP), N_OUT * KEEP)
    w["fc.bias"] = uniform((N_OUT,), N_OUT * KEEP)
    return w


def fold_bn(w: dict[str, np.ndarray], i: int) -> tuple[np.ndarray, np.ndarray]:
    """Fold blocks.i.bn into blocks.i.pw; returns (weight, bias) as float32."""
    p = f"blocks.{i}."
    scale = w[p + "bn.weight"].astype(np.float64) / np.sqrt(
        w[p + "bn.running_var"].astype(np.float64) + BN_EPS)
    wf = w[p + "pw.weight"].astype(np.float64) * scale[:, None, None]
    bf = (w[p + "pw.bias"].astype(np.float64) - w[p + "bn.running_mean"]) * scale + w[p + "bn.bias"]
    return wf.astype(np.float32), bf.astype(np.float32)


def make_calib(n: int = 64, seed: int = 1) -> np.ndarray:
    """``n`` standard-normal inputs, float32 ``[n, 1, 16, 24]`` (each one a model input)."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 1, N_IN, T_IN)).astype(np.float32)


# --------------------------------------------------------------------------- numpy reference
def reference_forward(x: np.ndarray, w: dict[str, np.ndarray]) -> np.ndarray:
    """Plain-numpy float64 forward pass of the model; ``x`` is ``[N, 16, T]``."""
    x = np.asarray(x, dtype=np.float64)

    def conv1d(h, weight, bias, dilation=1, groups=1, left_pad=0):
        h = np.pad(h, ((0, 0), (0, 0), (left_pad, 0)))
        cout, cin_g, k = weight.shape
        t_out = h.shape[2] - dilation * (k - 1)
        out = np.zeros((h.shape[0], cout, t_out))
        cout_g = cout // groups
        for g in range(groups):
            hs = h[:, g * cin_g:(g + 1) * cin_g]
            ws = weight[g * cout_g:(g + 1) * cout_g].astype(np.float64)
            for j in range(k):
                seg = hs[:, :, j * dilation:j * dilation + t_out]
                out[:, g * cout_g:(g + 1) * cout_g] += np.einsum("oc,nct->not", ws[:, :, j], seg)
        return out + bias.astype(np.float64)[None, :, None]

    relu = lambda v: np.maximum(v, 0.0)
    silu = lambda v: v / (1.0 + np.exp(-v))
    x0 = conv1d(x, w["conv_in.weight"], w["conv_in.bias"])
    h = x0
    for i, d in enumerate(DILATIONS):
        p = f"blocks.{i}."
        b = relu(conv1d(h, w[p + "dw.weight"], w[p + "dw.bias"], d, N_HID, (KERNEL - 1) * d))
        b = conv1d(b, w[p + "pw.weight"], w[p + "pw.bias"])
        g, be, m, v = (w[p + "bn." + k].astype(np.float64)
                       for k in ("weight", "bias", "running_mean", "running_var"))
        b = relu((b - m[None, :, None]) / np.sqrt(v[None, :, None] + BN_EPS) * g[None, :, None]
                 + be[None, :, None])
        h = silu(b) + x0
    hp = np.pad(h, ((0, 0), (0, 0), (KERNEL - 1, 0)))
    h = sum(hp[:, :, j:j + h.shape[2]] for j in range(KERNEL)) / KERNEL
    h = conv1d(h, w["conv_out.weight"], w["conv_out.bias"])
    h = h[:, :, -KEEP:].reshape(h.shape[0], -1)
    return h @ w["fc.weight"].astype(np.float64).T + w["fc.bias"].astype(np.float64)


# --------------------------------------------------------------------------- graph builder
class _Graph:
    """Tiny builder that names things the way torch.onnx (TorchScript) does."""

    def __init__(self):
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self._counts: dict[str, int] = {}
        self._onnx_id = 150  # counter for onnx::<Op>_<n> names

    def _node_name(self, scope: str, op: str) -> str:
        base = f"{scope}/{op}"
        k = self._counts.get(base, 0)
        self._counts[base] = k + 1
        return base if k == 0 else f"{base}_{k}"

    def op(self, op: str, scope: str, inputs: list[str], n_out: int = 1, **attrs) -> str | list[str]:
        name = self._node_name(scope, op)
        outs = [f"{name}_output_{j}" for j in range(n_out)]
        self.nodes.append(helper.make_node(op, inputs, outs, name=name, **attrs))
        return outs[0] if n_out == 1 else outs

    def const(self, scope: str, value) -> str:
        arr = np.asarray(value)
        if arr.dtype.kind == "i":
            arr = arr.astype(np.int64)
        elif arr.dtype.kind == "f":
            arr = arr.astype(np.float32)
        return self.op("Constant", scope, [], value=numpy_helper.from_array(arr))

    def init(self, name: str, arr: np.ndarray) -> str:
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(arr), name))
        return name

    def onnx_name(self, op: str) -> str:
        self._onnx_id += 1
        return f"onnx::{op}_{self._onnx_id}"


def _torch_pad_chain(g: _Graph, scope: str, left: int) -> str:
    """TorchScript's pads computation for F.pad(x, (left, 0)) on a rank-3 tensor."""
    n_zero = g.const(scope, np.array([4], dtype=np.int64))      # 2*rank - len(pad)
    pad_py = g.const(scope, np.array([left, 0], dtype=np.int64))
    zeros = g.op("ConstantOfShape", scope, [n_zero],
                 value=numpy_helper.from_array(np.array([0], dtype=np.int64)))
    cat = g.op("Concat", scope, [pad_py, zeros], axis=0)         # [left,0,0,0,0,0]
    shape = g.const(scope, np.array([-1, 2], dtype=np.int64))
    pairs = g.op("Reshape", scope, [cat, shape], allowzero=0)    # [[left,0],[0,0],[0,0]]
    axes = g.const(scope, np.array([0], dtype=np.int64))
    starts = g.const(scope, np.array([-1], dtype=np.int64))
    ends = g.const(scope, np.array([INT64_MIN_PLUS_1], dtype=np.int64))
    steps = g.const(scope, np.array([-1], dtype=np.int64))
    rev = g.op("Slice", scope, [pairs, starts, ends, axes, steps])  # [[0,0],[0,0],[left,0]]
    tr = g.op("Transpose", scope, [rev], perm=[1, 0])            # [[0,0,left],[0,0,0]]
    flat_shape = g.const(scope, np.array([-1], dtype=np.int64))
    flat = g.op("Reshape", scope, [tr, flat_shape], allowzero=0)  # [0,0,left,0,0,0]
    return g.op("Cast", scope, [flat], to=TensorProto.INT64)


def build_tcn(variant: str = "default", seed: int = 0) -> onnx.ModelProto:
    """Build the TCN as an opset-18 ModelProto (input ``x``, output ``y``)."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose from {VARIANTS}")
    w = make_weights(seed)
    g = _Graph()
    pad_nodes = variant == "pad_nodes"
    bn_folded = variant == "bn_folded"
    dynamic = variant == "dynamic"

    def conv(scope, inp, wname, bname, arr_w=None, arr_b=None, **attrs):
        wn = g.init(wname, w[wname] if arr_w is None else arr_w)
        bn = g.init(bname, w[bname] if arr_b is None else arr_b)
        k = (arr_w if arr_w is not None else w[wname]).shape[-1]
        full = dict(dilations=[1], group=1, kernel_shape=[k], pads=[0, 0], strides=[1])
        full.update(attrs)
        return g.op("Conv", scope, [inp, wn, bn], **full)

    x0 = conv("/conv_in", "x", "conv_in.weight", "conv_in.bias")
    h = x0
    for i, d in enumerate(DILATIONS):
        s = f"/blocks.{i}"
        left = (KERNEL - 1) * d
        if pad_nodes:
            pads = _torch_pad_chain(g, s, left)
            hp = g.op("Pad", s, [h, pads, ""], mode="constant")
            b = conv(f"{s}/dw", hp, f"blocks.{i}.dw.weight", f"blocks.{i}.dw.bias",
                     dilations=[d], group=N_HID)
        else:
            b = conv(f"{s}/dw", h, f"blocks.{i}.dw.weight", f"blocks.{i}.dw.bias",
                     dilations=[d], group=N_HID, pads=[left, 0])
        b = g.op("Relu", f"{s}/relu", [b])
        if bn_folded:
            wf, bf = fold_bn(w, i)
            b = conv(f"{s}/pw", b, g.onnx_name("Conv"), g.onnx_name("Conv"), arr_w=wf, arr_b=bf)
        else:
            b = conv(f"{s}/pw", b, f"blocks.{i}.pw.weight", f"blocks.{i}.pw.bias")
            bn_in = [b] + [g.init(f"blocks.{i}.bn.{k}", w[f"blocks.{i}.bn.{k}"])
                           for k in ("weight", "bias", "running_mean", "running_var")]
            b = g.op("BatchNormalization", f"{s}/bn", bn_in, epsilon=BN_EPS, momentum=0.9)
        b = g.op("Relu", f"{s}/relu_1", [b])
        act = "/act" if i == 0 else f"/act_{i}"
        sig = g.op("Sigmoid", act, [b])
        b = g.op("Mul", act, [b, sig])
        h = g.op("Add", "", [b, x0])

    if pad_nodes:
        pads = _torch_pad_chain(g, "", KERNEL - 1)
        zero = g.const("", np.array(0.0, dtype=np.float32))
        hp = g.op("Pad", "", [h, pads, zero], mode="constant")
        h = g.op("AveragePool", "/pool", [hp], ceil_mode=0, count_include_pad=1,
                 kernel_shape=[KERNEL], pads=[0, 0], strides=[1])
    else:
        h = g.op("AveragePool", "/pool", [h], ceil_mode=0, count_include_pad=1,
                 kernel_shape=[KERNEL], pads=[KERNEL - 1, 0], strides=[1])
    h = conv("/conv_out", h, "conv_out.weight", "conv_out.bias")

    axes = g.const("", np.array([2], dtype=np.int64))
    starts = g.const("", np.array([-KEEP], dtype=np.int64))
    ends = g.const("", np.array([INT64_MAX if dynamic else T_IN], dtype=np.int64))
    steps = g.const("", np.array([1], dtype=np.int64))
    h = g.op("Slice", "", [h, starts, ends, axes, steps])

    if dynamic:
        shp = g.op("Shape", "", [h])
        idx = g.const("", np.array(0, dtype=np.int64))            # scalar index
        n = g.op("Gather", "", [shp, idx], axis=0)
        ax0 = g.const("", np.array([0], dtype=np.int64))
        n1 = g.op("Unsqueeze", "", [n, ax0])
        minus1 = g.const("", np.array([-1], dtype=np.int64))
        new_shape = g.op("Concat", "", [n1, minus1], axis=0)
        h = g.op("Reshape", "", [h, new_shape], allowzero=0)
    else:
        h = g.op("Flatten", "", [h], axis=1)

    fw = g.init("fc.weight", w["fc.weight"])
    fb = g.init("fc.bias", w["fc.bias"])
    g.nodes.append(helper.make_node("Gemm", [h, fw, fb], ["y"], name="/fc/Gemm",
                                    alpha=1.0, beta=1.0, transB=1))

    if dynamic:
        x_vi = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", N_IN, "T"])
        y_vi = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", N_OUT])
    else:
        x_vi = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, N_IN, T_IN])
        y_vi = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, N_OUT])

    graph = helper.make_graph(g.nodes, f"tcn_{variant}", [x_vi], [y_vi], initializer=g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="rill-make_tcn", producer_version="0.1.0",
                              ir_version=IR_VERSION)
    model.doc_string = f"Streaming TCN example (variant={variant}, seed={seed})"
    return model


# --------------------------------------------------------------------------- verification
def verify(seed: int = 0, n_inputs: int = 8, rtol: float = 1e-5) -> dict[str, float]:
    """check_model + onnxruntime on every variant; compare with 'default' and the numpy ref.

    Returns max relative error (|a-b| / max|ref|) per variant.  Raises on mismatch.
    """
    import onnxruntime as ort

    w = make_weights(seed)
    xs = np.random.default_rng(seed + 12345).standard_normal((n_inputs, 1, N_IN, T_IN)).astype(np.float32)
    outs: dict[str, np.ndarray] = {}
    for v in VARIANTS:
        m = build_tcn(v, seed)
        onnx.checker.check_model(m, full_check=True)
        sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
        outs[v] = np.stack([sess.run(None, {"x": x})[0] for x in xs])
    ref = np.stack([reference_forward(x, w) for x in xs])
    scale = float(np.abs(ref).max())
    errs = {}
    for v, o in outs.items():
        e_def = float(np.abs(o - outs["default"]).max()) / scale
        e_ref = float(np.abs(o - ref).max()) / scale
        errs[v] = max(e_def, e_ref)
        if errs[v] > rtol:
            raise AssertionError(f"variant {v}: rel err {errs[v]:.3e} > {rtol}")
    return errs


# --------------------------------------------------------------------------- CLI
def main(argv: list[str] | None = None) -> int:
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description="Generate the streaming TCN example ONNX model.")
    ap.add_argument("--out", default=here, help="output directory (default: examples/tcn/)")
    ap.add_argument("--seed", type=int, default=0, help="weight seed (default 0); calib uses seed+1")
    ap.add_argument("--variant", default="default", choices=VARIANTS + ("all",))
    ap.add_argument("--name", default="tcn.onnx", help="model file name (single variant)")
    ap.add_argument("--verify", action="store_true", help="check all variants in onnxruntime")
    args = ap.parse_args(argv)

    os.makedirs(args.out, exist_ok=True)
    variants = VARIANTS if args.variant == "all" else (args.variant,)
    for v in variants:
        model = build_tcn(v, args.seed)
        onnx.checker.check_model(model, full_check=True)
        fname = f"tcn_{v}.onnx" if args.variant == "all" else args.name
        path = os.path.join(args.out, fname)
        onnx.save(model, path)
        print(f"wrote {path} ({v}, {len(model.graph.node)} nodes)")
    calib_path = os.path.join(args.out, "calib.npy")
    np.save(calib_path, make_calib(64, args.seed + 1))
    print(f"wrote {calib_path}")
    if args.verify:
        for v, e in verify(args.seed).items():
            print(f"verify {v:10s} max rel err {e:.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
