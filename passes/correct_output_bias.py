"""Empirical bias correction of the output layer: cancel the quantized program's mean output error.

Weight-rounding bias is corrected per layer before lowering (passes/bias_correction.py), but a
quantized program has other systematic errors that only a run of the integer program shows: on
esp32s3 every requantization rounds ties up (contract §3), so small shifts, where ties are
frequent, add a positive offset at every layer, and the offsets add up coherently at the output
(about 1 dB of int16 output SNR on the tutorial TCN). Those offsets are per output channel and
data-independent to first order, so the layer writing the model output absorbs them into its
integer bias for free at run time.

The pass simulates the lowered program on the calibration data (the Python integer reference,
bit-exact with the C), takes the mean error against the float model per output channel and
subtracts it from the bias of the Conv/Gemm step writing the output. `Options.bias_correction`
"auto" (the default) keeps the correction only when, estimated on half of the calibration inputs,
it lowers the output error on the other half (on esp32p4, which rounds ties to even, there is
usually nothing systematic left to correct); "on" always applies it; "off" never.
"""
from __future__ import annotations

import numpy as np

from compiler.context import CompileContext
from compiler.graph import to_runnable
from compiler.ort import session
from compiler.pass_manager import Pass
from compiler.simulate import run_integer, stream_layout
from compiler.streams import aligned
from passes.streaming_cut import is_per_call_model
from runtime.ir import Program, Step
from runtime.reference.kernels import round_to_int

WEIGHTED_STEPS = ("gemm", "conv1d", "conv2d", "conv_transpose1d")
CHANNEL_AXIS = 1  # of the output in ONNX layout: Gemm [M, N], Conv [N, C, ...]
INT32_MAX = 2**31 - 1


def output_writer(program: Program) -> Step | None:
    """The weighted step that writes the model's output buffer directly, if any."""
    out = program.outputs[0]
    writers = [s for s in program.steps if out in s.outputs]
    if len(writers) != 1 or writers[0].op not in WEIGHTED_STEPS:
        return None
    return writers[0]


def output_errors(ctx: CompileContext, program: Program, data: np.ndarray) -> list[np.ndarray]:
    """Per calibration input: quantized minus float output (aligned as contract §2 says),
    moved so the output channels are axis 0 and flattened behind it."""
    layout = stream_layout(ctx)
    stream = ctx.facts.get("streaming")
    latency = stream["latency_frames"] if stream else 0
    out_axis = layout.output_info.axis if layout.per_frame else 0
    sess = session(to_runnable(ctx.facts.get("offline_graph", ctx.graph)))
    in_name, out_name = sess.get_inputs()[0].name, sess.get_outputs()[0].name
    errors = []
    for x in data:
        want = sess.run([out_name], {in_name: x})[0]
        got = run_integer(program, layout, x).result
        a, b = aligned(got, want, latency, out_axis, layout.per_frame)
        err = np.asarray(a, np.float64) - np.asarray(b, np.float64)
        errors.append(np.moveaxis(err, CHANNEL_AXIS, 0).reshape(err.shape[CHANNEL_AXIS], -1))
    return errors


def mean_error(errors: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(errors, axis=1).mean(axis=1)


def mse_after(errors: list[np.ndarray], correction: np.ndarray) -> float:
    return float(np.mean((np.concatenate(errors, axis=1) - correction[:, None]) ** 2))


def bias_delta(step: Step, program: Program, correction: np.ndarray) -> np.ndarray:
    """The correction in the bias's units: 2^(e_out - shift) per output channel."""
    e_out = program.buffers[step.outputs[0]].exp
    shift = step.arrays["shift"].astype(np.int64)
    return round_to_int(-correction * np.ldexp(1.0, (shift - e_out).astype(np.int64)),
                        program.rounding).astype(np.int64)


def fits_accumulator(step: Step, program: Program, bias: np.ndarray) -> bool:
    """The int32 accumulator's overflow bound (passes/lowering/weighted.py) still holds."""
    if step.arrays["bias"].dtype != np.int32:
        return bool(np.all(np.abs(bias) < 2**62))
    x_max = 1 << (np.dtype(program.buffers[step.inputs[0]].dtype).itemsize * 8 - 1)
    w = np.abs(step.arrays["w"].astype(np.int64)).reshape(bias.size, -1).sum(axis=1)
    return bool(np.all(np.abs(bias) + w * x_max <= INT32_MAX))


class CorrectOutputBias(Pass):
    name = "correct-output-bias"
    requires = frozenset({"lowered"})
    ensures = frozenset({"output-bias-corrected"})

    def run(self, ctx: CompileContext) -> bool:
        setting, facts = ctx.options.bias_correction, ctx.facts
        program = facts["program"]
        step = output_writer(program)
        if setting == "off" or step is None or facts.get("skip_refine") \
                or is_per_call_model(facts.get("streaming")) or len(ctx.options.calib) < 2:
            return False
        ctx.progress("correct-output-bias: simulating the calibration data")
        errors = output_errors(ctx, program, ctx.options.calib)
        if errors[0].shape[0] != step.arrays["bias"].size:
            return False
        held = errors[1::2]
        before, after = mse_after(held, np.zeros(len(held[0]))), mse_after(held, mean_error(errors[::2]))
        correction = mean_error(errors)
        bias = step.arrays["bias"].astype(np.int64) + bias_delta(step, program, correction)
        keep = setting == "on" or after < before
        facts["output_bias_correction"] = {
            "step": step.name, "applied": bool(keep and fits_accumulator(step, program, bias)),
            "held_out_mse_before": before, "held_out_mse_after": after,
            "max_abs_correction": float(np.max(np.abs(correction)))}
        if not facts["output_bias_correction"]["applied"]:
            return False
        step.arrays["bias"] = bias.astype(step.arrays["bias"].dtype)
        return True
