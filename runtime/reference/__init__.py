"""Bit-exact Python integer reference of the Rill C kernels (see runtime/KERNELS.md)."""
from .kernels import (
    PARAMS_FIELDS,
    ROUNDING_MODES,
    add_s8,
    avgpool1d_s8,
    conv1d_s8,
    dequantize_s8_f32,
    gemm_s8,
    lut_s8,
    quantize_f32_s8,
    requant_s8,
    round_div,
    round_shift,
    round_to_int,
    transpose_s8,
)

__all__ = [
    "PARAMS_FIELDS",
    "ROUNDING_MODES",
    "add_s8",
    "avgpool1d_s8",
    "conv1d_s8",
    "dequantize_s8_f32",
    "gemm_s8",
    "lut_s8",
    "quantize_f32_s8",
    "requant_s8",
    "round_div",
    "round_shift",
    "round_to_int",
    "transpose_s8",
]
