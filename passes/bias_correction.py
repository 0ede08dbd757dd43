"""Bias correction: cancel the mean output error that quantizing a layer's weights causes.

Rounding each weight to its power-of-two grid errs by up to half a step, and nothing forces
those errors to average out: a Conv/Gemm/ConvTranspose with weights W_q = W + dW computes
W x + dW x, whose error dW x has, over the data, the mean dW E[x] per output channel. When the
inputs are not zero-mean (after a ReLU they never are), that mean is a systematic offset
every output frame carries, and the next layers amplify it like a signal. Subtracting it from
the float bias (before the bias is quantized) removes it for free at run time.

E[x] is the per-input-channel mean of the layer's input on the calibration data (Calibrate's
`layer_input_means`); the error is computed by running the layer itself on that mean filled in
(so padding, strides, groups and ConvTranspose's overlapping taps count exactly).

The correction estimates a mean from calibration data and ignores the activation's own
quantization error, so it can miss. `auto` keeps it for a layer only where it lowers that
layer's output MSE on the calibration inputs, measured in float: the layer with its input
fake-quantized at its exponent and its fake-quantized weights, with and without the correction.
"""
from __future__ import annotations

import numpy as np
import onnx_graphsurgeon as gs
from onnx import TensorProto, helper

from compiler.ort import session
from compiler.rill_ops import ACTIVATION_ATTRS, FUSED_WITH_ACTIVATION
from passes.observers import fake_quant
from runtime.reference.kernels import round_to_int

MODES = ("auto", "on", "off")
LAYER_OPSET = 17


class Layer:
    """One weighted node as a float function y = op(x, w) without bias or activation, run in
    onnxruntime (the same semantics as the model's float reference)."""

    def __init__(self, node: gs.Node):
        self.op = FUSED_WITH_ACTIVATION.get(node.op, node.op)
        self.groups = int(node.attrs.get("group", 1))
        attrs = {k: v for k, v in node.attrs.items() if k not in ACTIVATION_ATTRS}
        if self.op == "Gemm":  # canonical Gemm (FuseGemm): only transB matters without C
            attrs = {"transB": int(attrs.get("transB", 0))}
        nodes = [helper.make_node(self.op, ["x", "w"], ["y"], **attrs)]
        graph = helper.make_graph(
            nodes, "layer", [helper.make_tensor_value_info(n, TensorProto.FLOAT, None)
                             for n in ("x", "w")],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", LAYER_OPSET)])
        self.session = session(model)

    def __call__(self, x: np.ndarray, w: np.ndarray) -> np.ndarray:
        return self.session.run(["y"], {"x": np.asarray(x, np.float32),
                                        "w": np.asarray(w, np.float32)})[0].astype(np.float64)

    def out_channel_exps(self, exps: np.ndarray, w_shape: tuple[int, ...]) -> np.ndarray:
        """Per-output-channel exponents broadcast to the weights' ONNX layout (ConvTranspose
        stores [c_in, c_out/groups, k...]; the others have output channels first)."""
        exps = np.asarray(exps, np.int64)
        if self.op != "ConvTranspose":
            return exps.reshape((-1,) + (1,) * (len(w_shape) - 1))
        c_in, og = w_shape[:2]
        g = self.groups
        full = np.broadcast_to(exps.reshape(g, 1, og, 1), (g, c_in // g, og, 1))
        return full.reshape((c_in, og) + (1,) * (len(w_shape) - 2))


def quantized_weights(w: np.ndarray, exps: np.ndarray, bits: int, mode: str) -> np.ndarray:
    """W_q = clip(round(w / 2^e)) * 2^e with `exps` broadcastable to w, as lowering does."""
    q = round_to_int(np.ldexp(np.asarray(w, np.float64), -exps), mode)
    lim = 1 << (bits - 1)
    return np.ldexp(np.clip(q, -lim, lim - 1), exps)


def channel_mean(y: np.ndarray) -> np.ndarray:
    """Mean over everything but axis 1 (output channels of [N, C, ...] and of Gemm's [M, N])."""
    return y.reshape(y.shape[0], y.shape[1], -1).mean(axis=(0, 2))


def weight_error_mean(layer: Layer, dw: np.ndarray, means: np.ndarray,
                      shape: tuple[int, ...]) -> np.ndarray:
    """E[dW x] per output channel for inputs of `shape` whose channels (axis 1) have `means`."""
    xbar = np.broadcast_to(np.asarray(means, np.float64).reshape((1, -1) + (1,) * (len(shape) - 2)),
                           shape)
    return channel_mean(layer(xbar, dw))


def output_mse(layer: Layer, x: np.ndarray, x_q: np.ndarray, w: np.ndarray, w_q: np.ndarray,
               correction: np.ndarray) -> tuple[float, float]:
    """The layer's output MSE against float (input and weights fake-quantized), without and
    with `correction` added to its bias. The error op(x_q, W_q) - op(x, W) is linear in its
    parts, computed as op(x_q, W_q - W) + op(x_q - x, W) to keep float32 precision."""
    err = layer(x_q, w_q - w) + layer(x_q - x, w)
    shift = np.asarray(correction, np.float64).reshape((1, -1) + (1,) * (err.ndim - 2))
    return float(np.mean(err ** 2)), float(np.mean((err + shift) ** 2))


def correct_layer(node: gs.Node, w: np.ndarray, w_exps: np.ndarray, w_bits: int, mode: str,
                  means: np.ndarray, inputs: np.ndarray, x_exp: int, x_bits: int,
                  setting: str) -> tuple[np.ndarray | None, tuple[float, float] | None]:
    """(correction to add to the float bias or None, (MSE without, MSE with) when measured)."""
    layer = Layer(node)
    w_q = quantized_weights(w, layer.out_channel_exps(w_exps, w.shape), w_bits, mode)
    correction = -weight_error_mean(layer, w_q - w, means, inputs.shape)
    if setting == "on":
        return correction, None
    mse = output_mse(layer, inputs, fake_quant(inputs, x_exp, x_bits), w, w_q, correction)
    return (correction if mse[1] < mse[0] else None), mse

