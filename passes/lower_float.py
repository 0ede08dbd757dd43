"""Lower the float graph to a float32 `Program` (`--bits 32`): no quantization scheme at all.

The same `runtime/ir` Program as the integer lowering, over float32 buffers without exponents:
each ONNX node becomes zero or more steps of the float32 kernel variants (runtime/KERNELS.md,
"Float32 kernels"), weights stay float32 in flash. No calibration: both chips have a
single-precision FPU, and the result matches onnxruntime within contract §3's tolerance.
"""
from __future__ import annotations

from compiler.context import CompileContext
from compiler.pass_manager import Pass
from passes.lowering.base import FloatFormat, LoweringBase
from passes.lowering.float_ops import (FloatArithmeticOps, FloatElementwiseOps,
                                       FloatNormalizationOps, FloatProductOps, FloatRecurrentOps,
                                       FloatWeightedOps)
from passes.lowering.movement import MovementOps
from passes.lowering.padding import PaddingOps
from passes.lowering.pooling import FloatPoolNumbers, Pool2dOps
from passes.lowering.program import lower_graph, stored_time_info


class FloatLowering(FloatWeightedOps, FloatArithmeticOps, FloatProductOps, FloatNormalizationOps,
                    FloatElementwiseOps, Pool2dOps, FloatPoolNumbers, PaddingOps, MovementOps,
                    FloatRecurrentOps, FloatFormat, LoweringBase):
    """Builds the float32 program node by node (base.OP_METHODS names the methods)."""


class LowerToFloat(Pass):
    name = "lower-float"
    requires = frozenset({"shapes", "activations-fused"})
    ensures = frozenset({"lowered"})

    def run(self, ctx: CompileContext) -> bool:
        lower_graph(ctx, FloatLowering(ctx, stored_time_info(ctx)))
        ctx.facts["requantizations"] = []
        return True
