"""The state one compilation carries from pass to pass."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import onnx_graphsurgeon as gs

from compiler.targets import Target

FLOAT_BITS = 32  # --bits 32: float32 weights and activations, no quantization scheme
SUPPORTED_BITS = (8, 16, FLOAT_BITS)  # int8, int16 (quantized) and float32


@dataclass
class Options:
    """What the user asked for (CLI flags, already validated)."""

    target: Target
    bits: int = 8  # 8 or 16: quantized; FLOAT_BITS: float32
    chunk: int | None = None  # None: the smallest legal chunk
    offline: bool = False
    time_axis: int | None = None  # None: streaming_cut.default_time_axis of the input's rank
    calib: np.ndarray | dict[str, np.ndarray] | None = None  # [N, *input_shape] (or .npz arrays)
    calib_path: Path | None = None  # where `calib` came from (for error messages)
    name: str = "model"
    verify: bool = True
    ram_budget: int | None = None  # bytes for arena + state; None: the target's internal RAM
    # the model's own state pairs (input, output), from --state IN=OUT; empty: detect them
    state_pairs: list[tuple[str, str]] = field(default_factory=list)
    # -- quantization (contract §3) --
    # layers (node or output-tensor names) promoted to int16 on top of `bits`
    int16_layers: list[str] = field(default_factory=list)
    snr_target: float | None = None  # dB: promote layers to int16 until the output SNR reaches it
    calibration: str | None = None  # "minmax" | "percentile" | "kl" | "mse"; None: the default
    percentile: float = 99.99  # for calibration="percentile"
    bias_correction: str = "auto"  # "auto" (where it helps) | "on" | "off"
    # fold linear chains before a last-frames Gemm into it (passes/fold_linear_head.py):
    # "auto" when it costs no extra MACs per call | "on" whenever legal | "off"
    fold_linear: str = "auto"
    dump_qdq: bool = False  # also write <name>.qdq.onnx (the quantized model as QDQ ONNX)
    # -- code generation --
    # float32 weights for float-accumulating layers of few frames per call (codegen/kernel_select)
    float_weights: bool = True


@dataclass
class CompileContext:
    graph: gs.Graph
    options: Options
    source: Path | None = None
    properties: set[str] = field(default_factory=set)  # what passes have guaranteed so far
    warnings: list[str] = field(default_factory=list)
    # results of analysis passes, keyed by what they describe
    facts: dict[str, Any] = field(default_factory=dict)
    # progress of long steps (calibration, searches): one line each, shown with --verbose
    progress: Callable[[str], None] = lambda message: None

    def warn(self, message: str) -> None:
        self.warnings.append(message)
