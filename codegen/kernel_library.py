"""Assemble the C kernels a model uses: templates instantiated per type signature, renamed into
the model's namespace.

Each kernel family has one template, `runtime/c/<family>.c`, written with type tokens:

    rill_x_t    input                     RILL_X_MIN / RILL_X_MAX / RILL_X_BITS its range / bits
    rill_x2_t   second input (add)
    rill_w_t    weights                   rill_acc_t  bias and accumulator
    rill_y_t    output                    RILL_Y_MIN / RILL_Y_MAX / RILL_Y_BITS its range / bits
    rill_table_t  the lut table (the output type for int8 inputs, int32 for int16 inputs)
    rill_c_t    the LSTM cell             RILL_C_MIN / RILL_C_MAX its range (twice h's bits)
    VARIANT     the function name suffix (`rill_conv1d_VARIANT` -> `rill_conv1d_x16w8a32y16`)

`instantiate` substitutes them for one `KernelTypes`; the prototypes of the header are generated
from the instantiated definitions; `rename` then replaces the `rill_` / `RILL_` prefix by the
model's, so two models link into one firmware.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np

from runtime.ir import Buffer, Program, Step

C_DIR = Path(__file__).resolve().parent.parent / "runtime" / "c"

ACT_BITS = (8, 16)
ACC_BITS = (32, 64)


@dataclass(frozen=True)
class KernelTypes:
    """The type signature of one kernel variant, in bits: input `x`, output `y`, second input
    `x2` (add), weights `w` and accumulator `acc` (= the bias type) where the family has them."""

    x: int
    y: int
    x2: int | None = None
    w: int | None = None
    acc: int | None = None


@dataclass(frozen=True)
class Family:
    """A kernel family: its template file and the KernelTypes fields it uses besides x and y."""

    file: str
    fields: tuple[str, ...] = ()
    same_xy: bool = False  # a data movement (or quantize/dequantize): y has x's type


FAMILIES: dict[str, Family] = {
    "conv1d": Family("conv1d.c", ("w", "acc")),
    "conv2d": Family("conv2d.c", ("w", "acc")),
    "conv_transpose1d": Family("conv_transpose1d.c", ("w", "acc")),
    "gemm": Family("gemm.c", ("w", "acc")),
    "add": Family("add.c", ("x2",)),
    "avgpool1d": Family("avgpool1d.c"),
    "maxpool1d": Family("maxpool1d.c"),
    "reduce": Family("reduce.c"),
    "softmax": Family("softmax.c"),
    "lut": Family("lut.c"),
    "requant": Family("requant.c"),
    "transpose": Family("transpose.c", same_xy=True),
    "mask_frames": Family("mask_frames.c", same_xy=True),
    "quantize": Family("quantize.c", same_xy=True),  # quantize_f32 and dequantize, one type
    "gru": Family("gru.c", ("w", "acc")),
    "lstm": Family("lstm.c", ("w", "acc")),
}

_WEIGHT_ARRAY = {"gru": "wx", "lstm": "wx"}  # the weights that give w (default "w")
_TOKEN = re.compile(r"\b(?:rill_(?:x|x2|w|acc|y|table|c)_t|RILL_[XYC]_(?:MIN|MAX|BITS))\b")
_DEFINITION = re.compile(r"^(?!static\b)([A-Za-z_][\w ]*?\brill_\w+\s*\([^)]*\))\s*\{", re.M)


def variant_suffix(types: KernelTypes) -> str:
    """"s8" when every present activation/weight is 8 bits and acc is absent or 32; "s16" when
    every one is 16 and acc is absent or 64; else the parts x{x} b{x2} w{w} a{acc} y{y}."""
    bits = [b for b in (types.x, types.x2, types.w, types.y) if b is not None]
    if all(b == 8 for b in bits) and types.acc in (None, 32):
        return "s8"
    if all(b == 16 for b in bits) and types.acc in (None, 64):
        return "s16"
    parts = [("x", types.x), ("b", types.x2), ("w", types.w), ("a", types.acc), ("y", types.y)]
    return "".join(f"{k}{v}" for k, v in parts if v is not None)


def check_types(family: str, types: KernelTypes) -> None:
    """ValueError unless `types` is a signature `family` has."""
    spec = FAMILIES.get(family)
    if spec is None:
        raise ValueError(f"no kernel family {family!r}")
    for name in ("x2", "w", "acc"):
        present = getattr(types, name) is not None
        if present != (name in spec.fields):
            raise ValueError(f"{family}: {name} {'not ' if present else ''}expected in {types}")
    allowed = {"x": ACT_BITS, "y": ACT_BITS, "x2": ACT_BITS, "w": ACT_BITS, "acc": ACC_BITS}
    for name, values in allowed.items():
        v = getattr(types, name)
        if v is not None and v not in values:
            raise ValueError(f"{family}: {name} = {v} bits is not one of {values}")
    if spec.same_xy and types.x != types.y:
        raise ValueError(f"{family}: input and output must have the same type, got {types}")


def _bits(dtype) -> int:
    return np.dtype(dtype).itemsize * 8


def kernel_types(step: Step, buffers: Mapping[str, Buffer]) -> KernelTypes:
    """The variant a step needs: x from its first input buffer, x2 from the second (add only;
    mask_frames flags are always int8), w from its weights' dtype, acc from its bias's dtype,
    y from its first output buffer."""
    spec = FAMILIES.get(step.op)
    if spec is None:
        raise ValueError(f"step op {step.op!r} is not a kernel family")
    x = _bits(buffers[step.inputs[0]].dtype)
    x2 = _bits(buffers[step.inputs[1]].dtype) if "x2" in spec.fields else None
    w = (_bits(np.asarray(step.arrays[_WEIGHT_ARRAY.get(step.op, "w")]).dtype)
         if "w" in spec.fields else None)
    acc = _bits(np.asarray(step.arrays["bias"]).dtype) if "acc" in spec.fields else None
    types = KernelTypes(x=x, y=_bits(buffers[step.outputs[0]].dtype), x2=x2, w=w, acc=acc)
    check_types(step.op, types)
    return types


def function_name(family: str, types: KernelTypes, prefix: str = "rill") -> str:
    """The C function of a step (quantize: see `quantize_names`)."""
    return f"{prefix}_{family}_{variant_suffix(types)}"


def io_types(dtype: str) -> KernelTypes:
    """The quantize/dequantize variant of a model input/output buffer of `dtype`."""
    bits = _bits(dtype)
    return KernelTypes(x=bits, y=bits)


def quantize_names(dtype: str, prefix: str) -> tuple[str, str]:
    """(quantize, dequantize) C functions between float32 and a buffer of `dtype`, e.g.
    ("m_quantize_f32_s16", "m_dequantize_s16_f32")."""
    v = variant_suffix(io_types(dtype))
    return f"{prefix}_quantize_f32_{v}", f"{prefix}_dequantize_{v}_f32"


def program_variants(program: Program) -> set[tuple[str, KernelTypes]]:
    """Every (family, types) the program's steps call, plus quantize/dequantize for its float
    API at the input and output types."""
    variants = set()
    for step in program.steps:
        if step.op in FAMILIES:
            variants.add((step.op, kernel_types(step, program.buffers)))
    for name in program.inputs + program.outputs:
        variants.add(("quantize", io_types(program.buffers[name].dtype)))
    return variants


# ---------------------------------------------------------------------------- instantiation

def _strip_includes(src: str) -> str:
    return "\n".join(line for line in src.splitlines() if not line.startswith('#include "')) + "\n"


def rename(src: str, prefix: str) -> str:
    src = re.sub(r"\brill_", f"{prefix}_", src)
    return re.sub(r"\bRILL_(?!ROUNDING)", f"{prefix.upper()}_", src)


def _tokens(family: str, types: KernelTypes) -> dict[str, str]:
    def c_int(bits: int) -> str:
        return f"int{bits}_t"

    tok = {"rill_x_t": c_int(types.x), "rill_y_t": c_int(types.y),
           "RILL_X_MIN": f"INT{types.x}_MIN", "RILL_X_MAX": f"INT{types.x}_MAX",
           "RILL_X_BITS": str(types.x),
           "RILL_Y_MIN": f"INT{types.y}_MIN", "RILL_Y_MAX": f"INT{types.y}_MAX",
           "RILL_Y_BITS": str(types.y)}
    if types.x2 is not None:
        tok["rill_x2_t"] = c_int(types.x2)
    if types.w is not None:
        tok["rill_w_t"] = c_int(types.w)
    if types.acc is not None:
        tok["rill_acc_t"] = c_int(types.acc)
    if family == "lut":
        tok["rill_table_t"] = c_int(types.y) if types.x == 8 else "int32_t"
    if family == "lstm":  # the cell: int16 for int8 h, int32 for int16 h (RECURRENT.md)
        tok.update({"rill_c_t": c_int(2 * types.y), "RILL_C_MIN": f"INT{2 * types.y}_MIN",
                    "RILL_C_MAX": f"INT{2 * types.y}_MAX"})
    return tok


def instantiate(family: str, types: KernelTypes) -> str:
    """The family's template with the type tokens of `types` substituted (includes dropped,
    names still `rill_*`)."""
    check_types(family, types)
    src = _strip_includes((C_DIR / FAMILIES[family].file).read_text())
    tok = _tokens(family, types)

    def sub(m: re.Match) -> str:
        if m.group(0) not in tok:
            raise ValueError(f"{family}.c uses {m.group(0)}, which {types} does not define")
        return tok[m.group(0)]

    return _TOKEN.sub(sub, src).replace("VARIANT", variant_suffix(types))


def prototypes(source: str, width: int = 100) -> list[str]:
    """The declarations of the non-static functions defined in C `source`, wrapped at `width`
    with the parameters aligned after the opening parenthesis."""
    out = []
    for m in _DEFINITION.finditer(source):
        head, params = re.sub(r"\s+", " ", m.group(1)).split("(", 1)
        lines, line = [], head + "("
        for i, param in enumerate(params.split(", ")):
            piece = param + (", " if not param.endswith(")") else ";")
            if i and len(line) + len(piece.rstrip()) > width:
                lines.append(line.rstrip())
                line = " " * (len(head) + 1)
            line += piece
        out.append("\n".join(lines + [line]))
    return out


def _sorted(variants: Iterable[tuple[str, KernelTypes]]) -> list[tuple[str, KernelTypes]]:
    return sorted(set(variants), key=lambda v: (v[0], variant_suffix(v[1])))


def kernel_header(prefix: str, variants: Iterable[tuple[str, KernelTypes]]) -> str:
    """rill_common.h, the params structs, the recurrent helpers and the prototypes of
    `variants` ((family, KernelTypes) pairs), renamed to `prefix`."""
    parts = [_strip_includes((C_DIR / name).read_text())
             for name in ("rill_common.h", "rill_kernels.h", "rill_recurrent.h")]
    decls = [p for family, types in _sorted(variants)
             for p in prototypes(instantiate(family, types))]
    parts.append("/* The kernel variants of this component. */\n" + "\n".join(decls) + "\n")
    return rename("\n".join(parts), prefix)


def kernel_sources(variants: Iterable[tuple[str, KernelTypes]], prefix: str) -> str:
    """The instantiated kernels of `variants`, renamed to `prefix`."""
    return "\n".join(rename(instantiate(family, types), prefix)
                     for family, types in _sorted(variants))
