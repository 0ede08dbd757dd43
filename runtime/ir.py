"""The lowered integer program: what the C kernels and the Python integer reference both execute.

A `Program` is a straight-line schedule of kernel `Step`s over named `Buffer`s. Every buffer has a
*physical* shape: tensors that carry the time axis are stored time-major (frame after frame, the
other axes in ONNX order), everything else in ONNX order. Steps only ever see physical shapes, so
the reference and the C code index memory the same way.

A buffer holds integers (int8/int16/int32: real value = q * 2^exp, a quantized program) or float32
values (`exp` None: the value is the real value, a `--bits 32` program). Kernel steps of a float
program run the float32 variants of the same kernel families (runtime/KERNELS.md).

A buffer may be a *view*: its elements are a contiguous run of another buffer's (a reshape, a
slice of the outermost stored axis, an input's slot inside a Concat, the new frames behind a
streaming window's state). Views remove copies; the reference and the C both execute them, so
they agree byte for byte. Buffers that are not views are *roots*: the arena plan places the
scratch ones, the state ones live in `<name>_t`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

ROUNDING_MODES = ("half_even", "half_up")
FLOAT32 = "float32"  # the dtype of every buffer of a float (`--bits 32`) program


@dataclass
class Buffer:
    """One array the schedule reads or writes."""

    name: str
    shape: tuple[int, ...]
    dtype: str  # "int8" | "int16" | "int32" | "float32"
    exp: int | None  # real value = q * 2**exp; None for float32 (the value is the real value)
    role: str  # "input" | "output" | "state" | "scratch" | "view"
    view_of: str | None = None  # role "view": the buffer whose elements these are
    offset: int = 0  # role "view": the first element inside `view_of` (same dtype)

    @property
    def is_float(self) -> bool:
        return self.dtype == FLOAT32

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) if self.shape else 1

    @property
    def nbytes(self) -> int:
        return self.size * np.dtype(self.dtype).itemsize

    def real(self, values: np.ndarray) -> np.ndarray:
        """The real values (float64) of this buffer's contents: q * 2^exp, or the floats."""
        values = np.asarray(values, np.float64)
        return values if self.exp is None else values * 2.0 ** self.exp


@dataclass
class Step:
    """One kernel call.

    `params` are the integer fields of the kernel's params struct (the same names are the Python
    reference's keyword arguments); `arrays` are its constant operands (weights, bias, shifts,
    tables), emitted as `static const` arrays in flash.
    """

    op: str  # a kernel family ("conv1d", "lut", ...; see KERNELS.md) or "copy" / "fill"
    inputs: list[str]
    outputs: list[str]
    params: dict[str, int] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    name: str = ""  # the ONNX node this step comes from (for reports and errors)
    macs: int = 0


@dataclass
class StatePair:
    """A buffer kept between calls; `update` steps in the schedule write its new contents."""

    buffer: str
    onnx_input: str
    onnx_output: str
    init: int | float  # initial value of every element (quantized, or a float32 value)


@dataclass
class Program:
    buffers: dict[str, Buffer]
    steps: list[Step]
    inputs: list[str]
    outputs: list[str]
    states: list[StatePair]
    rounding: str  # one of ROUNDING_MODES

    def buffer(self, name: str) -> Buffer:
        return self.buffers[name]

    def root(self, name: str) -> tuple[str, int]:
        """The root buffer holding `name`'s elements and the element where they start."""
        offset = 0
        while self.buffers[name].view_of is not None:
            offset += self.buffers[name].offset
            name = self.buffers[name].view_of
        return name, offset

    @property
    def is_float(self) -> bool:
        """A float32 program (`--bits 32`): its input and output hold float values."""
        return self.buffers[self.inputs[0]].is_float

    @property
    def weight_bytes(self) -> int:
        """Bytes of the steps' constant arrays (weights, biases, shifts, tables): flash."""
        unique = {id(a): a for step in self.steps for a in step.arrays.values()}
        return sum(int(a.nbytes) for a in unique.values())  # shared by a batch's calls: once

    @property
    def state_bytes(self) -> int:
        """Bytes kept between calls (contract §3: the frames of every state pair)."""
        return sum(self.buffers[s.buffer].nbytes for s in self.states)

    @property
    def instance_bytes(self) -> int:
        """Bytes of `<name>_t`: its state buffers, each 16-byte aligned (the state pairs, and the
        new frames each streaming window keeps right behind its state): what one stream needs
        besides the arena."""
        return sum(-(-b.nbytes // 16) * 16 for b in self.buffers.values() if b.role == "state")
