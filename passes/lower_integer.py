"""Lower the quantized float graph to the integer `Program` the reference and C both execute.

Each ONNX node becomes zero or more kernel steps over physical buffers (time-major for tensors
that carry time). Weights are quantized per output channel here, biases at e_in + e_w, and every
requantization shift is fixed at compile time.
"""
from __future__ import annotations

from compiler.context import CompileContext
from compiler.pass_manager import Pass
from passes.lowering.arithmetic import ArithmeticOps
from passes.lowering.base import IntegerFormat, LoweringBase
from passes.lowering.elementwise import ElementwiseOps
from passes.lowering.movement import MovementOps
from passes.lowering.normalization import NormalizationOps
from passes.lowering.padding import PaddingOps
from passes.lowering.pooling import IntegerPoolNumbers, Pool2dOps
from passes.lowering.product import ProductOps
from passes.lowering.recurrent import RecurrentOps
from passes.lowering.weighted import WeightedOps
from passes.lowering.program import lower_graph, stored_time_info


class Lowering(WeightedOps, ArithmeticOps, ProductOps, NormalizationOps, ElementwiseOps,
               Pool2dOps, IntegerPoolNumbers, PaddingOps, MovementOps, RecurrentOps,
               IntegerFormat, LoweringBase):
    """Builds the program node by node; one method per ONNX op family (passes/lowering/,
    base.OP_METHODS)."""


class LowerToInteger(Pass):
    name = "lower-integer"
    requires = frozenset({"qparams-propagated"})
    ensures = frozenset({"lowered"})

    def run(self, ctx: CompileContext) -> bool:
        low = Lowering(ctx, stored_time_info(ctx))
        lower_graph(ctx, low)
        ctx.facts["requantizations"] = low.requantizations
        return True
