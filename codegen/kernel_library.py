"""Assemble the C kernels a model uses: templates instantiated per type signature, renamed into
the model's namespace.

Each kernel family has one template, `runtime/c/<family>.c`, written with type tokens:

    rill_x_t    input                     RILL_X_MIN / RILL_X_MAX / RILL_X_BITS its range / bits
    rill_x2_t   second input (add, binary, matmul)
    rill_w_t    weights                   rill_acc_t  bias and accumulator
    rill_y_t    output                    RILL_Y_MIN / RILL_Y_MAX / RILL_Y_BITS its range / bits
    rill_table_t  the lut table (the output type for int8 inputs, int32 for int16 inputs)
    rill_c_t    the LSTM cell             RILL_C_MIN / RILL_C_MAX its range (twice h's bits)
    VARIANT     the function name suffix (`rill_conv1d_VARIANT` -> `rill_conv1d_x16w8a32y16`)

`instantiate` substitutes them for one `KernelTypes`; the prototypes of the header are generated
from the instantiated definitions; `rename` then replaces the `rill_` / `RILL_` prefix by the
model's, so two models link into one firmware.

Float32 (`--bits 32`): a family's float variant `KernelTypes(F32, F32)` (suffix `f32`, e.g.
`rill_conv1d_f32`) comes from its own template, `Family.f32_file` (float math has other
formulas), with its params struct `rill_<family>_f32_params_t` from rill_kernels_f32.h; every
type token is `float` there. Where only the arithmetic differs, the two variants share code:
a pure data movement (transpose, pad) uses its integer template as the float one, and a family
with a `Family.loop` file (binary, matmul) has one loop nest for both, appended to the variant's
element stage (`file` or `f32_file`: the static per-element functions the loop calls). A shared
template names the integer params struct; the float variant reads it as the f32 struct. The
`unary` family is float only: one variant per function (`KernelTypes(F32, F32, fn="sigmoid")`
-> `rill_unary_sigmoid_f32`, the template's RILL_UNARY_FN becoming the RILL_F32_SIGMOID macro).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np

from runtime.ir import Buffer, Program, Step
from runtime.reference.f32 import UNARY_FUNCTIONS

C_DIR = Path(__file__).resolve().parent.parent / "runtime" / "c"

ACT_BITS = (8, 16)
ACC_BITS = (32, 64)
F32 = "f32"  # the float32 type in KernelTypes (integer types are given in bits)
FLOAT_ACC_FAMILIES = ("conv1d_fx",)  # integer layers accumulated exactly in float32


@dataclass(frozen=True)
class KernelTypes:
    """The type signature of one kernel variant, in bits: input `x`, output `y`, second input
    `x2` (add), weights `w` and accumulator `acc` (= the bias type) where the family has them.
    A float32 variant is `KernelTypes(F32, F32)` (every operand float32), plus `fn` (the
    function) for the unary family."""

    x: int | str
    y: int | str
    x2: int | None = None
    w: int | None = None
    acc: int | None = None
    fn: str | None = None


@dataclass(frozen=True)
class Family:
    """A kernel family: its template file and the KernelTypes fields it uses besides x and y,
    and the template of its float32 variant (None: integer only; `file` None: float only)."""

    file: str | None
    fields: tuple[str, ...] = ()
    same_xy: bool = False  # a data movement (or quantize/dequantize): y has x's type
    f32_file: str | None = None
    loop: str | None = None  # the loop nest both variants share, after their element stage


FAMILIES: dict[str, Family] = {
    "conv1d": Family("conv1d.c", ("w", "acc"), f32_file="conv1d_f32.c"),
    "conv2d": Family("conv2d.c", ("w", "acc"), f32_file="conv2d_f32.c"),
    "conv_transpose1d": Family("conv_transpose1d.c", ("w", "acc"),
                               f32_file="conv_transpose1d_f32.c"),
    "gemm": Family("gemm.c", ("w", "acc"), f32_file="gemm_f32.c"),
    # conv1d (and gemm) accumulated exactly in float32: int8 x, w int8 or F32 (the same integers)
    "conv1d_fx": Family("conv1d_fx.c", ("w",)),
    "add": Family("add.c", ("x2",), f32_file="add_f32.c"),
    "binary": Family("binary.c", ("x2",), f32_file="binary_f32.c", loop="binary_loop.c"),
    "pad": Family("pad.c", same_xy=True, f32_file="pad.c"),
    "layernorm": Family("layernorm.c", ("w", "acc"), f32_file="layernorm_f32.c"),
    "matmul": Family("matmul.c", ("x2", "acc"), f32_file="matmul_f32.c", loop="matmul_loop.c"),
    "avgpool1d": Family("avgpool1d.c", f32_file="avgpool1d_f32.c"),
    "maxpool1d": Family("maxpool1d.c", f32_file="maxpool1d_f32.c"),
    "reduce": Family("reduce.c", f32_file="reduce_f32.c"),
    "softmax": Family("softmax.c", f32_file="softmax_f32.c"),
    "lut": Family("lut.c"),
    "unary": Family(None, f32_file="unary_f32.c"),  # float only: expf, tanhf, erff, ...
    "requant": Family("requant.c"),
    "transpose": Family("transpose.c", same_xy=True, f32_file="transpose.c"),
    "mask_frames": Family("mask_frames.c", same_xy=True, f32_file="mask_frames_f32.c"),
    "quantize": Family("quantize.c", same_xy=True),  # quantize_f32 and dequantize, one type
    "gru": Family("gru.c", ("w", "acc"), f32_file="gru_f32.c"),
    "lstm": Family("lstm.c", ("w", "acc"), f32_file="lstm_f32.c"),
}

_WEIGHT_ARRAY = {"gru": "wx", "lstm": "wx"}  # the weights that give w (default "w")
_TOKEN = re.compile(r"\b(?:rill_(?:x|x2|w|acc|y|table|c)_t|RILL_[XYC]_(?:MIN|MAX|BITS)|"
                    r"RILL_UNARY_FN)\b")
_DEFINITION = re.compile(r"^(?!static\b)([A-Za-z_][\w ]*?\brill_\w+\s*\([^)]*\))\s*\{", re.M)


def variant_suffix(types: KernelTypes) -> str:
    """"s8" when every present activation/weight is 8 bits and acc is absent or 32; "s16" when
    every one is 16 and acc is absent or 64; else the parts x{x} b{x2} w{w} a{acc} y{y}.
    Float32: "f32" ("{fn}_f32" for a unary function)."""
    if types.x == F32:
        return f"{types.fn}_f32" if types.fn else "f32"
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
    if F32 in (types.x, types.y):
        return _check_f32_types(family, spec, types)
    if spec.file is None:
        raise ValueError(f"{family}: a float32 family only, got {types}")
    if types.fn is not None:
        raise ValueError(f"{family}: fn is for float32 unary variants, got {types}")
    for name in ("x2", "w", "acc"):
        present = getattr(types, name) is not None
        if present != (name in spec.fields):
            raise ValueError(f"{family}: {name} {'not ' if present else ''}expected in {types}")
    allowed = {"x": ACT_BITS, "y": ACT_BITS, "x2": ACT_BITS, "w": ACT_BITS, "acc": ACC_BITS}
    if family in FLOAT_ACC_FAMILIES:  # exact only for int8 inputs; weights int8 or float32
        allowed.update(x=(8,), w=(8, F32))
    for name, values in allowed.items():
        v = getattr(types, name)
        if v is not None and v not in values:
            raise ValueError(f"{family}: {name} = {v} bits is not one of {values}")
    if spec.same_xy and types.x != types.y:
        raise ValueError(f"{family}: input and output must have the same type, got {types}")


def _check_f32_types(family: str, spec: Family, types: KernelTypes) -> None:
    if spec.f32_file is None:
        raise ValueError(f"{family}: no float32 variant")
    if (types.x, types.y, types.x2, types.w, types.acc) != (F32, F32, None, None, None):
        raise ValueError(f"{family}: a float32 variant is KernelTypes(F32, F32), got {types}")
    if (family == "unary") != (types.fn is not None):
        raise ValueError(f"{family}: fn names the function of a unary variant only, got {types}")
    if types.fn is not None and types.fn not in UNARY_FUNCTIONS:
        raise ValueError(f"unary: no function {types.fn!r} (one of {', '.join(UNARY_FUNCTIONS)})")


def _bits(dtype) -> int:
    return np.dtype(dtype).itemsize * 8


def kernel_types(step: Step, buffers: Mapping[str, Buffer]) -> KernelTypes:
    """The variant a step needs: x from its first input buffer, or for two-operand families
    (add, binary) x and x2 from their operands (`operand_dtypes`; mask_frames flags are always
    int8), w from its weights' dtype, acc from its bias's dtype, y from its first output
    buffer."""
    spec = FAMILIES.get(step.op)
    if spec is None:
        raise ValueError(f"step op {step.op!r} is not a kernel family")
    if buffers[step.outputs[0]].is_float:  # a float32 program: every operand is float32
        fn = UNARY_FUNCTIONS[step.params["fn"]] if step.op == "unary" else None
        types = KernelTypes(F32, F32, fn=fn)
        check_types(step.op, types)
        return types
    if "x2" in spec.fields:
        x, x2 = (_bits(d) for d in operand_dtypes(step, buffers))
    else:
        x, x2 = _bits(buffers[step.inputs[0]].dtype), None
    w = (_bits(np.asarray(step.arrays[_WEIGHT_ARRAY.get(step.op, "w")]).dtype)
         if "w" in spec.fields else None)
    acc = (step.params["acc_bits"] if step.op == "matmul"  # no bias: the accumulator is a param
           else _bits(np.asarray(step.arrays["bias"]).dtype) if "acc" in spec.fields else None)
    types = KernelTypes(x=x, y=_bits(buffers[step.outputs[0]].dtype), x2=x2, w=w, acc=acc)
    check_types(step.op, types)
    return types


def params_struct(family: str, types: KernelTypes) -> tuple[str, tuple[str, ...]] | None:
    """(struct type without the prefix, field names) of the params struct a variant takes, or
    None when it takes its scalars as arguments. Float32 variants have their own structs
    (`<family>_f32_params_t`, some fields float), except transpose (no numbers in it). The
    integer conv1d and gemm structs end with the layout fields of runtime/weight_layout.py."""
    from runtime import weight_layout
    from runtime.reference import f32, kernels
    if types.x == F32 and family in f32.PARAMS_FIELDS:
        return f"{family}_f32_params_t", f32.PARAMS_FIELDS[family]
    if family in FLOAT_ACC_FAMILIES:  # the integer conv1d's struct
        family = "conv1d"
    if (types.x != F32 or family == "transpose") and family in kernels.PARAMS_FIELDS:
        layout = weight_layout.LAYOUT_FIELDS if family in weight_layout.LAYOUT_FAMILIES else ()
        return f"{family}_params_t", kernels.PARAMS_FIELDS[family] + layout
    return None


def operand_dtypes(step: Step, buffers: Mapping[str, Buffer]) -> tuple[np.dtype, np.dtype]:
    """The dtypes of a two-operand step's operands `a` and `b` (binary, matmul): each a constant
    array of that name (flash) or else the next input buffer."""
    inputs = iter(step.inputs)
    return tuple(np.asarray(step.arrays[k]).dtype if k in step.arrays
                 else np.dtype(buffers[next(inputs)].dtype) for k in ("a", "b"))


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
    API at the input and output types (when they are integers)."""
    variants = set()
    for step in program.steps:
        if step.op in FAMILIES:
            variants.add((step.op, kernel_types(step, program.buffers)))
    for name in program.inputs + program.outputs:
        if not program.buffers[name].is_float:
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

    if types.x == F32:  # every operand, weight and accumulator float
        tok = {t: "float" for t in ("rill_x_t", "rill_x2_t", "rill_w_t", "rill_acc_t",
                                    "rill_y_t")}
        if types.fn is not None:
            tok["RILL_UNARY_FN"] = f"RILL_F32_{types.fn.upper()}"
        return tok

    tok = {"rill_x_t": c_int(types.x), "rill_y_t": c_int(types.y),
           "RILL_X_MIN": f"INT{types.x}_MIN", "RILL_X_MAX": f"INT{types.x}_MAX",
           "RILL_X_BITS": str(types.x),
           "RILL_Y_MIN": f"INT{types.y}_MIN", "RILL_Y_MAX": f"INT{types.y}_MAX",
           "RILL_Y_BITS": str(types.y)}
    if types.x2 is not None:
        tok["rill_x2_t"] = c_int(types.x2)
    if types.w is not None:
        tok["rill_w_t"] = "float" if types.w == F32 else c_int(types.w)
    if types.acc is not None:
        tok["rill_acc_t"] = c_int(types.acc)
    if family == "lut":
        tok["rill_table_t"] = c_int(types.y) if types.x == 8 else "int32_t"
    if family == "lstm":  # the cell: int16 for int8 h, int32 for int16 h (RECURRENT.md)
        tok.update({"rill_c_t": c_int(2 * types.y), "RILL_C_MIN": f"INT{2 * types.y}_MIN",
                    "RILL_C_MAX": f"INT{2 * types.y}_MAX"})
    return tok


def instantiate(family: str, types: KernelTypes, template: str | None = None) -> str:
    """The family's template (or `template`, C written with the same tokens: the bench's
    reference kernels) with the type tokens of `types` substituted (includes dropped, names
    still `rill_*`)."""
    check_types(family, types)
    spec = FAMILIES[family]
    if template is None:
        files = [spec.f32_file if types.x == F32 else spec.file] + ([spec.loop] if spec.loop else [])
        template = "".join(_strip_includes((C_DIR / f).read_text()) for f in files)
    src = _strip_includes(template)
    if types.x == F32 and family in _f32_struct_families():  # a template shared with integers
        src = re.sub(rf"\brill_{family}_params_t\b", f"rill_{family}_f32_params_t", src)
    tok = _tokens(family, types)

    def sub(m: re.Match) -> str:
        if m.group(0) not in tok:
            raise ValueError(f"{family}.c uses {m.group(0)}, which {types} does not define")
        return tok[m.group(0)]

    return _TOKEN.sub(sub, src).replace("VARIANT", variant_suffix(types))


def _f32_struct_families() -> frozenset[str]:
    from runtime.reference import f32
    return frozenset(f32.PARAMS_FIELDS)


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


@dataclass(frozen=True)
class FixedDepthwise:
    """A depthwise conv1d_fx of one layer shape -- kernel 3 or 5, `channels`, `dilation`,
    `frames` interior output frames, stride 1 -- compiled with its geometry as constants
    (runtime/c/conv1d_fx.c `rill_conv1d_fx_fixed`): a small generated function per shape whose
    walkers step by immediate offsets. It takes conv1d_fx's arguments."""

    types: KernelTypes
    kernel: int
    channels: int
    dilation: int
    frames: int

    @property
    def family(self) -> str:
        """The name part that stands where a family's does: conv1d_fx_k3c32d2n8."""
        return f"conv1d_fx_k{self.kernel}c{self.channels}d{self.dilation}n{self.frames}"

    def source(self) -> str:
        """The generated function (names still rill_*), after conv1d_fx's variant."""
        template = (
            f"/* The depthwise conv1d_fx of one layer shape: kernel {self.kernel}, "
            f"{self.channels} channels,\n * dilation {self.dilation}, {self.frames} interior "
            "frames, as constants. */\n"
            f"RILL_WIDE_BLOCK void rill_{self.family}_VARIANT(const rill_conv1d_params_t *p,\n"
            "    const rill_x_t *x, const rill_w_t *w, const float *bias, const float *scale,\n"
            "    rill_y_t *y)\n{\n"
            f"    rill_conv1d_fx_fixed_VARIANT(p, x, w, bias, scale, y, {self.kernel}, "
            f"{self.channels}, {self.dilation}, {self.frames});\n}}\n")
        return instantiate("conv1d_fx", self.types, template)


def _sorted_fixed(fixed: Iterable[FixedDepthwise]) -> list[FixedDepthwise]:
    return sorted(set(fixed), key=lambda f: (f.family, variant_suffix(f.types)))


def kernel_header(prefix: str, variants: Iterable[tuple[str, KernelTypes]],
                  fixed: Iterable[FixedDepthwise] = ()) -> str:
    """rill_common.h, the params structs, the recurrent helpers (the float32 structs and
    functions when a float variant is used) and the prototypes of `variants` ((family,
    KernelTypes) pairs) and of the `fixed` depthwise functions, renamed to `prefix`."""
    variants = _sorted(variants)
    headers = ["rill_common.h", "rill_kernels.h", "rill_recurrent.h"]
    if any(types.x == F32 for _, types in variants):
        headers.append("rill_kernels_f32.h")
    parts = [_strip_includes((C_DIR / name).read_text()) for name in headers]
    decls = [p for family, types in variants
             for p in prototypes(instantiate(family, types))]
    decls += [p for f in _sorted_fixed(fixed) for p in prototypes(f.source())]
    parts.append("/* The kernel variants of this component. */\n" + "\n".join(decls) + "\n")
    return rename("\n".join(parts), prefix)


def kernel_sources(variants: Iterable[tuple[str, KernelTypes]], prefix: str,
                   fixed: Iterable[FixedDepthwise] = ()) -> str:
    """The instantiated kernels of `variants`, then the `fixed` depthwise functions (each after
    its conv1d_fx variant, which must be among `variants`), renamed to `prefix`."""
    fixed = _sorted_fixed(fixed)
    variants = _sorted(variants)
    missing = {("conv1d_fx", f.types) for f in fixed} - set(variants)
    if missing:
        raise ValueError(f"fixed depthwise functions without their conv1d_fx variant: {missing}")
    return "\n".join([rename(instantiate(family, types), prefix) for family, types in variants]
                     + [rename(f.source(), prefix) for f in fixed])
