"""refine-exponents: int8 exponent groups move only where the output SNR (QDQ model in
onnxruntime, calibration data) improves; fixed, int16 and skipped cases stay as they are."""
from __future__ import annotations

from graphs import run_pass
from passes.lower_integer import LowerToInteger
from passes.refine_exponents import OutputSNR, RefineExponents, exponent_groups
from compiler.graph import to_runnable
from test_pass_quantize import compile_ctx, conv_relu_add_model


def quantized_ctx(**opts):
    return compile_ctx(conv_relu_add_model(), upto=LowerToInteger, **opts)


def output_snr(ctx) -> float:
    score = OutputSNR(to_runnable(ctx.facts["offline_graph"]), ctx.options.calib[:32])
    return score(ctx.facts, ctx.options.bits, ctx.options.target.rounding)


def group_of(ctx, tensor: str) -> list[str]:
    return next(g for g in exponent_groups(ctx.facts) if tensor in g)


def test_a_spoiled_exponent_is_pulled_back_and_the_snr_recovers():
    ctx = quantized_ctx()
    calibrated = ctx.facts["exponents"]["r"]
    for m in group_of(ctx, "r"):  # three steps coarser than calibration chose
        ctx.facts["exponents"][m] = calibrated + 3
    spoiled = output_snr(ctx)
    assert run_pass(RefineExponents(), ctx)
    exps = ctx.facts["exponents"]
    assert exps["r"] < calibrated + 3
    assert len({exps[m] for m in group_of(ctx, "r")}) == 1  # the group moves as one
    after = output_snr(ctx)
    assert after > spoiled + 1.0
    assert ctx.facts["exponent_refinement"] == {"before_db": round(spoiled, 2),
                                                "after_db": round(after, 2)}


def test_refinement_never_lowers_the_output_snr():
    ctx = quantized_ctx()
    before = output_snr(ctx)
    run_pass(RefineExponents(), ctx)
    assert output_snr(ctx) >= before


def test_int16_and_skipped_compilations_are_left_alone():
    for facts in ({"tensor_bits_all": 16}, {"skip_refine": True}):
        ctx = quantized_ctx()
        if "tensor_bits_all" in facts:
            ctx.facts["tensor_bits"] = {t: 16 for t in ctx.facts["exponents"]}
        else:
            ctx.facts.update(facts)
        exps = dict(ctx.facts["exponents"])
        assert not run_pass(RefineExponents(), ctx)
        assert ctx.facts["exponents"] == exps
