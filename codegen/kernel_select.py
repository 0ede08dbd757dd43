"""Which C kernel runs each step, with which params and constant arrays.

A lowered step names a kernel family and keeps the logical arrays of runtime/KERNELS.md, which
the Python reference computes from. The C call may differ, chosen at compile time for the
kernel that runs fastest on the target (runtime/weight_layout.py):

- conv1d / gemm: their weights in the blocked layout of their register blocks and the rounding
  constant in the bias (`weight_layout.c_step`); a gemm runs as the pointwise conv1d it is
  (`weight_layout.gemm_as_conv`: one set of dense register blocks for both);
- with `float_mac` (a core whose FPU has a fused multiply-add: Target.float_mac), an int8
  conv1d or gemm whose sums float32 holds exactly runs as `conv1d_fx` (runtime/c/conv1d_fx.c),
  bit-exact with the integer kernel (`weight_layout.fx_choice`).

The SourceWriter emits what `select` returns; the report counts the bytes it emits.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

from codegen.kernel_library import (F32, FAMILIES, FixedDepthwise, KernelTypes, function_name,
                                    kernel_types)
from runtime import weight_layout
from runtime.ir import Buffer, Step


@dataclass(frozen=True)
class KernelCall:
    """One step's C kernel: family and type variant (None for copy/fill), the values of its
    params struct, and its constant arrays as emitted."""

    family: str
    types: KernelTypes | None
    params: dict
    arrays: dict[str, np.ndarray]
    fixed: FixedDepthwise | None = None  # a depthwise conv1d_fx compiled for its shape

    def function(self, prefix: str) -> str:
        """The C function the step calls."""
        if self.fixed is not None:
            return function_name(self.fixed.family, self.types, prefix)
        return function_name(self.family, self.types, prefix)

    @property
    def weight_bytes(self) -> int:
        return int(sum(np.asarray(a).nbytes for a in self.arrays.values()))


@dataclass(frozen=True)
class Selection:
    """How to choose: `layouts` False keeps every logical layout and integer kernel (the
    bench's reference build); `float_mac` allows conv1d_fx; `float_weights` its float32
    weights for steps of few frames per call (else they stay int8); `fixed_geometry` a
    generated function per depthwise layer shape that the phase walkers cover (kernel 3 or 5,
    stride 1, at least 4 interior frames): their strides become immediate offsets."""

    layouts: bool = True
    float_mac: bool = False
    float_weights: bool = True
    fixed_geometry: bool = True  # depthwise conv1d_fx walkers compiled per layer shape


def select(step: Step, buffers: Mapping[str, Buffer], rounding: str,
           how: Selection = Selection()) -> KernelCall:
    """The kernel call of `step` (see the module docstring)."""
    if step.op not in FAMILIES:  # copy / fill: no kernel
        return KernelCall(step.op, None, step.params, step.arrays)
    return select_for(step.op, kernel_types(step, buffers), step.params, step.arrays, rounding,
                      how)


def select_for(op: str, types: KernelTypes, params: dict, arrays: dict, rounding: str,
               how: Selection = Selection()) -> KernelCall:
    """`select` for a kernel family's variant, logical params and arrays (no Step needed)."""
    if op not in weight_layout.LAYOUT_FAMILIES or types.x == F32:
        return KernelCall(op, types, params, arrays)
    if not how.layouts:
        return KernelCall(op, types, {**params, "wblock": 1, "rq_bias": 0}, arrays)
    if how.float_mac:
        weights = weight_layout.fx_choice(op, params, arrays, types.x, how.float_weights)
        if weights is not None:
            fx_types = KernelTypes(x=types.x, y=types.y, w=F32 if weights == "f32" else 8)
            conv = weight_layout.fx_conv_params(op, params)
            fixed = fixed_depthwise(conv, fx_types) if how.fixed_geometry else None
            return KernelCall("conv1d_fx", fx_types, conv,
                              weight_layout.fx_arrays(op, params, arrays, weights, rounding),
                              fixed)
    if op == "gemm":  # a pointwise conv over m frames: conv1d's register blocks serve both
        op, params = "conv1d", weight_layout.gemm_as_conv(params)
    c_params, c_arrays = weight_layout.c_step(op, params, arrays, types.x, rounding)
    return KernelCall(op, types, c_params, c_arrays)


WALKER_KERNELS = (3, 5)  # the depthwise phase walkers of runtime/c/conv1d_fx.c
WALKER_FRAMES = 4        # their least interior frames (RILL_CONV1D_FX_DW_FRAMES)


def fixed_depthwise(conv: dict, types: KernelTypes) -> FixedDepthwise | None:
    """The fixed-shape function of a depthwise conv1d_fx the walkers cover, else None."""
    c = conv["c_out"]
    if not (conv["groups"] == conv["c_in"] == c and conv["kernel"] in WALKER_KERNELS
            and conv["stride"] == 1):
        return None
    interior = weight_layout.interior_frames(conv)
    if interior < WALKER_FRAMES:
        return None
    return FixedDepthwise(types, conv["kernel"], c, conv["dilation"], interior)
