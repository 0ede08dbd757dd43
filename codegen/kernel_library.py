"""Assemble the C kernels a model uses, renamed into the model's namespace.

The library in `runtime/c/` names everything `rill_*` / `RILL_*`; the component gets the same
code with the prefix replaced by the model name, so two models link into one firmware.
"""
from __future__ import annotations

import re
from pathlib import Path

C_DIR = Path(__file__).resolve().parent.parent / "runtime" / "c"

# step op -> the library file that implements it
KERNEL_FILES = {
    "conv1d_s8": "conv1d_s8.c", "gemm_s8": "gemm_s8.c", "add_s8": "add_s8.c",
    "avgpool1d_s8": "avgpool1d_s8.c", "lut_s8": "lut_s8.c", "requant_s8": "requant_s8.c",
    "transpose_s8": "transpose_s8.c", "quantize": "quantize_f32_s8.c",
    "gru_s8": "gru_s8.c", "lstm_s8": "lstm_s8.c",
    "maxpool1d_s8": "maxpool1d_s8.c", "conv2d_s8": "conv2d_s8.c", "reduce_s8": "reduce_s8.c",
    "softmax_s8": "softmax_s8.c", "mask_frames_s8": "mask_frames_s8.c",
    "conv_transpose1d_s8": "conv_transpose1d_s8.c",
}


def _strip_includes(src: str) -> str:
    return "\n".join(line for line in src.splitlines() if not line.startswith('#include "'))


def rename(src: str, prefix: str) -> str:
    src = re.sub(r"\brill_", f"{prefix}_", src)
    return re.sub(r"\bRILL_(?!ROUNDING)", f"{prefix.upper()}_", src)


def kernel_header(prefix: str) -> str:
    common = _strip_includes((C_DIR / "rill_common.h").read_text())
    kernels = _strip_includes((C_DIR / "rill_kernels.h").read_text())
    recurrent = _strip_includes((C_DIR / "rill_recurrent.h").read_text())
    return rename(common + "\n" + kernels + "\n" + recurrent, prefix)


def kernel_sources(ops: set[str], prefix: str) -> str:
    files = sorted({KERNEL_FILES[op] for op in ops if op in KERNEL_FILES})
    return "\n".join(rename(_strip_includes((C_DIR / f).read_text()), prefix) for f in files)
