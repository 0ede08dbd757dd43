"""Emit the component's C sources from a lowered `Program` and its arena plan."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from codegen.kernel_library import (F32, FixedDepthwise, KernelTypes, io_types, kernel_header,
                                    kernel_sources, params_struct, quantize_names)
from codegen.kernel_select import KernelCall, Selection, select
from codegen.memory import MemoryPlan
from codegen.names import c_identifier, comment
from runtime.ir import Program, Step
from runtime.reference.f32 import FLOAT_FIELDS, TOLERANCE

C_TYPES = {"int8": "int8_t", "int16": "int16_t", "int32": "int32_t", "float32": "float"}
ROUNDING_MACRO = {"half_even": 0, "half_up": 1}


@dataclass
class ModelInterface:
    """What the public header promises (contract §4)."""

    name: str
    chunk_frames: int
    input_channels: int
    input_elems: int
    output_elems: int
    input_exp: int
    output_exp: int
    latency_frames: int
    per_frame_output: bool
    state_bytes: int
    arena_bytes: int


def c_float(v: float) -> str:
    """A float32 value as an exact C literal: the shortest decimal that reads back as the same
    float32, with an f suffix (INFINITY for infinities; NaN is refused)."""
    v = np.float32(v)
    if np.isnan(v):
        raise ValueError("NaN has no place in a generated constant")
    if np.isinf(v):
        return "INFINITY" if v > 0 else "-INFINITY"
    return f"{v}f"


def _array_literal(values: np.ndarray, per_line: int = 16, nan: bool = False) -> str:
    """A C initializer; `nan`: NaN is written as NAN (expected outputs of a self-test, e.g. a
    Sqrt of a negative test input; never weights)."""
    values = np.asarray(values).reshape(-1)
    if values.dtype.kind == "f":
        flat = ["NAN" if nan and np.isnan(v) else c_float(v) for v in values]
        per_line = 8
    else:
        flat = [str(int(v)) for v in values]
    lines = [", ".join(flat[i:i + per_line]) for i in range(0, len(flat), per_line)]
    return "{\n    " + ",\n    ".join(lines) + "\n}"


def _param_literal(field: str, v, floats: bool) -> str:
    """One params struct initializer: an int, a float field of a float32 struct (act_min,
    pad_value, ...: `floats`) or a 4-entry int array (transpose)."""
    if isinstance(v, (list, tuple)):
        return "{" + ", ".join(str(int(x)) for x in list(v) + [0] * (4 - len(v))) + "}"
    return c_float(v) if floats and field in FLOAT_FIELDS else str(int(v))


def _offset(pointer: str, offset: int) -> str:
    """`pointer + offset`, folding constant arena offsets ("arena + 64" + 32 -> "arena + 96")."""
    if not offset:
        return pointer
    if pointer.startswith("arena + "):
        return f"arena + {int(pointer.split(' + ')[1]) + offset}"
    return f"{pointer} + {offset}"


def _constants_key(step: Step) -> tuple:
    """What makes two steps share their constants and params struct: one node's kernel called
    once per sequence of a batch."""
    return (step.name, step.op, tuple((k, id(a)) for k, a in step.arrays.items()),
            repr(sorted(step.params.items())))


class SourceWriter:
    """`selection`: how each step's C kernel is chosen (codegen/kernel_select.py: layouts,
    float accumulation); Selection(layouts=False) keeps the logical layouts and integer kernels
    (the bench's reference build)."""

    def __init__(self, program: Program, plan: MemoryPlan, iface: ModelInterface,
                 selection: Selection = Selection()):
        self.p, self.plan, self.iface = program, plan, iface
        self.selection = selection
        self._calls: dict[tuple, KernelCall] = {}
        self.prefix = iface.name
        self.used: set[str] = set()
        # the constants of steps that repeat one node's kernel (once per sequence of a batch)
        self.declared: dict[tuple, dict[str, str]] = {}
        # one member of <name>_t per state root (a state pair's buffer, or the window holding
        # it in front of the call's new frames), named after the pair
        self.state_members: dict[str, str] = {}
        for s in program.states:
            root = program.root(s.buffer)[0]
            if root not in self.state_members:
                self.state_members[root] = c_identifier(f"state_{s.onnx_input}", self.used)

    # -- public header -----------------------------------------------------------------------
    def header(self) -> str:
        i, P, p = self.iface, self.prefix.upper(), self.prefix
        members = "\n".join(
            f"    {C_TYPES[self.p.buffers[b].dtype]} {m}[{self.p.buffers[b].size}] {P}_ALIGN16; "
            f"/* {self.member_comment(b)} */" for b, m in self.state_members.items())
        if not members:
            members = "    int8_t unused; /* this model keeps no state between calls */"
        latency = (f"{i.latency_frames} output frames of pre-roll; feed {i.latency_frames} "
                   "zero frames to flush the end of a stream" if i.per_frame_output
                   else "a summary output: each call summarizes the most recent window")
        return f"""/* {p}.h: runs the model chunk by chunk ({i.chunk_frames} frame(s) per call).
 *
 * Buffers are time-major: frame after frame, all values of one frame contiguous.
 * Latency: {latency}.
 * RAM: {p}_t holds the state of one stream ({P}_STATE_BYTES bytes of kept frames, plus the
 * new frames each streaming window keeps right behind them); the scratch arena
 * ({P}_ARENA_BYTES bytes) is shared by the calls.
 * Build options:
 * - {P}_CALLER_ARENA: give each instance its own scratch arena (set m->arena to
 *   {P}_ARENA_BYTES bytes aligned to 16 after {p}_init), e.g. to run two instances
 *   concurrently on both cores;
 * - {P}_ARENA_ATTR: an attribute for the built-in arena, e.g. EXT_RAM_BSS_ATTR to place it
 *   in PSRAM (defined only inside ESP-IDF, by esp_attr.h; needs
 *   CONFIG_SPIRAM_ALLOW_BSS_SEG_EXTERNAL_MEMORY).
 */
#ifndef {P}_H
#define {P}_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {{
#endif

#define {P}_CHUNK_FRAMES {i.chunk_frames}
#define {P}_INPUT_CHANNELS {i.input_channels}
#define {P}_INPUT_ELEMS {i.input_elems}
#define {P}_OUTPUT_ELEMS {i.output_elems}
#define {P}_INPUT_EXPONENT ({i.input_exp})
#define {P}_OUTPUT_EXPONENT ({i.output_exp})
#define {P}_LATENCY_FRAMES {i.latency_frames}
#define {P}_INPUT_BITS {self.bits(self.p.inputs[0])}
#define {P}_OUTPUT_BITS {self.bits(self.p.outputs[0])}
#define {P}_STATE_BYTES {i.state_bytes}
#define {P}_ARENA_BYTES {i.arena_bytes}

#if defined(__GNUC__) || defined(__clang__)
#define {P}_ALIGN16 __attribute__((aligned(16)))
#else
#define {P}_ALIGN16
#endif

/* The state of one stream: several instances may run side by side. */
typedef struct {{
{members}
#ifdef {P}_CALLER_ARENA
    void *arena; /* {P}_ARENA_BYTES bytes, 16-byte aligned, owned by the caller */
#endif
}} {p}_t;

/* Reset to the initial state (what the offline model sees before its first frame). */
void {p}_init({p}_t *m);

/* One call: {self.run_doc()} 0 on success. */
{self.run_signature()};

/* {self.run_f32_doc()} */
int {p}_run_f32({p}_t *m, const float *in, float *out);

/* In test/: 0 when the outputs match the compiler's vectors {self.selftest_doc()}. */
int {p}_selftest(void);

#ifdef __cplusplus
}}
#endif

#endif /* {P}_H */
"""

    def member_comment(self, root: str) -> str:
        kept = [s for s in self.p.states if self.p.root(s.buffer)[0] == root]
        held = sum(self.p.buffers[s.buffer].size for s in kept)
        text = f"kept between calls: {comment(', '.join(s.onnx_input for s in kept))}"
        if held < self.p.buffers[root].size:
            text += f" ({held} values), then the call's new frames"
        return text

    def bits(self, buffer: str) -> int:
        return np.dtype(self.p.buffers[buffer].dtype).itemsize * 8

    def run_doc(self) -> str:
        P = self.prefix.upper()
        if self.p.is_float:
            return (f"{P}_INPUT_ELEMS float inputs in, {P}_OUTPUT_ELEMS float outputs out (a "
                    "float32 model: the values themselves, the exponents are 0).")
        return (f"{P}_INPUT_ELEMS int{self.bits(self.p.inputs[0])} inputs at "
                f"2^{P}_INPUT_EXPONENT in, {P}_OUTPUT_ELEMS int{self.bits(self.p.outputs[0])} "
                f"outputs at 2^{P}_OUTPUT_EXPONENT out.")

    def run_f32_doc(self) -> str:
        if self.p.is_float:
            return f"The same as {self.prefix}_run (the model is float32)."
        return "The same with float buffers: quantizes the input, dequantizes the output."

    def selftest_doc(self) -> str:
        if self.p.is_float:
            return f"within {TOLERANCE:g} x their largest magnitude (float32)"
        return "bit for bit"

    def io_type(self, buffer: str) -> str:
        return C_TYPES[self.p.buffers[buffer].dtype]

    def run_signature(self) -> str:
        return (f"int {self.prefix}_run({self.prefix}_t *m, const {self.io_type(self.p.inputs[0])} "
                f"*in, {self.io_type(self.p.outputs[0])} *out)")

    # -- kernels -----------------------------------------------------------------------------
    def kernels_header(self) -> str:
        P = self.prefix.upper()
        return (f"/* {self.prefix}_kernels.h: the kernels of this component; private to it. */\n"
                f"#ifndef {P}_KERNELS_PRIVATE_H\n#define {P}_KERNELS_PRIVATE_H\n\n"
                f"#define RILL_ROUNDING {ROUNDING_MACRO[self.p.rounding]} "
                f"/* {self.p.rounding.replace('_', ' ')} */\n"
                + kernel_header(self.prefix, self.variants(), self.fixed())
                + f"\n#endif /* {P}_KERNELS_PRIVATE_H */\n")

    def kernels_source(self) -> str:
        return (f"/* {self.prefix}_kernels.c: from runtime/c; only the kernel "
                f"variants this model uses. */\n#include \"{self.prefix}_kernels.h\"\n\n"
                + kernel_sources(self.variants(), self.prefix, self.fixed()))

    def fixed(self) -> set[FixedDepthwise]:
        """The depthwise layer shapes compiled with their geometry as constants."""
        return {c.fixed for c in map(self.kernel_call, self.p.steps) if c.fixed is not None}

    def variants(self) -> set[tuple[str, KernelTypes]]:
        """Every (family, types) the steps call, plus quantize/dequantize for the float API at
        integer input and output types."""
        out = {(c.family, c.types) for c in map(self.kernel_call, self.p.steps)
               if c.types is not None}
        for name in self.p.inputs + self.p.outputs:
            if not self.p.buffers[name].is_float:
                out.add(("quantize", io_types(self.p.buffers[name].dtype)))
        return out

    def kernel_call(self, step: Step) -> KernelCall:
        """The step's C kernel, params and arrays (codegen/kernel_select.py), chosen once for
        the steps that share one node's constants (a batch's calls: one set of arrays)."""
        key = _constants_key(step)
        if key not in self._calls:
            self._calls[key] = select(step, self.p.buffers, self.p.rounding, self.selection)
        return self._calls[key]

    def kernel_calls(self) -> list[KernelCall]:
        """Every step's kernel call, in schedule order."""
        return [self.kernel_call(step) for step in self.p.steps]

    # -- model source ------------------------------------------------------------------------
    def pointer(self, name: str) -> str:
        """Where `name` starts, from the memory plan: the arena, `in`, `out` or a state member
        (a view or an in-place buffer may start inside one)."""
        space, anchor, offset = self.plan.places[name]
        ctype = C_TYPES[self.p.buffers[name].dtype]
        if space == "arena":
            return f"arena + {offset}" if ctype == "int8_t" else f"({ctype} *)(arena + {offset})"
        base = {"input": "in", "output": "out"}.get(space) or f"m->{self.state_members[anchor]}"
        const = "const " if space == "input" else ""
        size = np.dtype(self.p.buffers[name].dtype).itemsize
        if self.p.buffers[anchor].dtype == self.p.buffers[name].dtype:
            return _offset(base, offset // size)
        return f"({const}{ctype} *)({const}int8_t *){base}" if not offset else \
            f"({const}{ctype} *)(({const}int8_t *){base} + {offset})"

    def overlaps(self, step: Step) -> bool:
        """Whether a copy's source and destination bytes overlap in the plan (memmove)."""
        from codegen.memory_check import accesses
        reads, writes = accesses(step, self.p)
        spans = []
        for name, lo, hi in reads + writes:
            space, anchor, offset = self.plan.places[name]
            size = np.dtype(self.p.buffers[name].dtype).itemsize
            spans.append((space, anchor, offset + lo * size, offset + hi * size))
        return any(a[:2] == b[:2] and a[2] < b[3] and b[2] < a[3]
                   for a in spans[:len(reads)] for b in spans[len(reads):])

    def step_constants(self, index: int, step: Step) -> tuple[str, dict[str, str]]:
        """The step's static const arrays and params struct: declared once for the steps of one
        node that share them (a kernel called once per sequence of a batch)."""
        key = _constants_key(step)
        if key in self.declared:
            return "", self.declared[key]
        decl, names = self.declare_constants(index, step)
        self.declared[key] = names
        return decl, names

    def declare_constants(self, index: int, step: Step) -> tuple[str, dict[str, str]]:
        base = c_identifier(f"l{index}_{step.name or step.op}", self.used)
        decls, names = [], {}
        c_types = {**C_TYPES, "int64": "int64_t"}  # int64: the bias of a wide accumulator
        kc = self.kernel_call(step)
        params, arrays = kc.params, kc.arrays
        for key, arr in arrays.items():
            ctype = c_types[str(np.asarray(arr).dtype)]
            names[key] = f"{base}_{key}"
            decls.append(f"static const {ctype} {names[key]}[{np.asarray(arr).size}] "
                         f"{self.prefix.upper()}_ALIGN16 = {_array_literal(arr)};")
        struct = params_struct(kc.family, kc.types) if kc.types is not None else None
        if struct:
            type_name, fields = struct
            names["params"] = f"{base}_params"
            floats = type_name.endswith("_f32_params_t")
            values = [_param_literal(f, params[f], floats) for f in fields]
            decls.append(f"static const {self.prefix}_{type_name} "
                         f"{names['params']} = {{{', '.join(values)}}};")
        return "\n".join(decls), names

    def call(self, step: Step, names: dict[str, str]) -> str:
        ins = [self.pointer(n) for n in step.inputs]
        out = self.pointer(step.outputs[0])
        if step.op == "copy":
            q = step.params
            src = _offset(ins[0], q["src_offset"])
            dst = _offset(out, q["dst_offset"])
            size = np.dtype(self.p.buffers[step.outputs[0]].dtype).itemsize
            count = q["count"] if size == 1 else f"{q['count']} * {size}"  # offsets: elements
            move = "memmove" if self.overlaps(step) else "memcpy"
            if q.get("blocks", 1) > 1:
                return (f"for (i = 0; i < {q['blocks']}; ++i) {{\n"
                        f"        {move}({dst} + i * {q['dst_stride']}, {src} + i * {q['src_stride']}, "
                        f"{count});\n    }}")
            return f"{move}({dst}, {src}, {count});"
        if step.op == "fill":
            size = np.dtype(self.p.buffers[step.outputs[0]].dtype).itemsize
            return (f"memcpy({_offset(out, step.params['dst_offset'])}, {names['values']}, "
                    f"{step.params['count'] * size});")
        kc = self.kernel_call(step)
        fn = kc.function(self.prefix)
        q = step.params
        if kc.types.x == F32:
            return self.float_call(step, names, fn)
        if kc.family == "conv1d_fx":
            return (f"{fn}(&{names['params']}, {ins[0]}, {names['w']}, {names['bias']}, "
                    f"{names['scale']}, {out});")
        if step.op in ("gru", "lstm"):
            outs = [self.pointer(n) for n in step.outputs]
            y = outs.pop(0) if q["has_y"] else "0"
            arrays = ", ".join(names[k] for k in ("wx", "wh", "bias", "shift", "table"))
            return f"{fn}(&{names['params']}, {q['t']}, {ins[0]}, {arrays}, {', '.join(outs)}, {y});"
        if step.op in ("conv1d", "gemm", "conv2d", "conv_transpose1d", "layernorm"):
            return (f"{fn}(&{names['params']}, {ins[0]}, {names['w']}, {names['bias']}, "
                    f"{names['shift']}, {out});")
        if step.op == "add":
            return f"{fn}(&{names['params']}, {ins[0]}, {ins[1]}, {out});"
        if step.op in ("binary", "matmul"):
            a, b = self.operands(step, names)
            return f"{fn}(&{names['params']}, {a}, {b}, {out});"
        if step.op == "softmax":
            return f"{fn}(&{names['params']}, {names['table']}, {ins[0]}, {out});"
        if step.op == "mask_frames":
            return f"{fn}({q['frames']}, {q['inner']}, {q['pad']}, {ins[1]}, {ins[0]}, {out});"
        if step.op in ("avgpool1d", "transpose", "maxpool1d", "reduce", "pad"):
            return f"{fn}(&{names['params']}, {ins[0]}, {out});"
        if step.op == "lut":
            return f"{fn}({q['n']}, {q['frac_bits']}, {names['table']}, {ins[0]}, {out});"
        if step.op == "requant":
            return f"{fn}({q['n']}, {q['shift']}, {ins[0]}, {out});"
        raise ValueError(f"no C emission for step op {step.op!r}")

    def float_call(self, step: Step, names: dict[str, str], fn: str) -> str:
        """The call of a float32 kernel variant (runtime/KERNELS.md, "Float32 kernels")."""
        ins = [self.pointer(n) for n in step.inputs]
        out = self.pointer(step.outputs[0])
        q = step.params
        if step.op in ("gru", "lstm"):  # outputs [(y,) h(, c), scratch]
            outs = [self.pointer(n) for n in step.outputs]
            y = outs.pop(0) if q["has_y"] else "0"
            arrays = ", ".join(names[k] for k in ("wx", "wh", "bias"))
            return (f"{fn}(&{names['params']}, {q['t']}, {ins[0]}, {arrays}, "
                    f"{', '.join(outs)}, {y});")
        if step.op in ("conv1d", "gemm", "conv2d", "conv_transpose1d"):
            return f"{fn}(&{names['params']}, {ins[0]}, {names['w']}, {names['bias']}, {out});"
        if step.op == "add":
            return f"{fn}({q['n']}, {ins[0]}, {ins[1]}, {out});"
        if step.op == "unary":
            return f"{fn}({q['n']}, {c_float(q['alpha'])}, {c_float(q['beta'])}, {ins[0]}, {out});"
        if step.op == "softmax":
            return f"{fn}({q['rows']}, {q['cols']}, {ins[0]}, {out});"
        if step.op == "mask_frames":
            return (f"{fn}({q['frames']}, {q['inner']}, {c_float(q['pad'])}, {ins[1]}, {ins[0]}, "
                    f"{out});")
        if step.op in ("binary", "matmul"):
            a, b = self.operands(step, names)
            return f"{fn}(&{names['params']}, {a}, {b}, {out});"
        if step.op == "layernorm":
            return f"{fn}(&{names['params']}, {ins[0]}, {names['w']}, {names['bias']}, {out});"
        if step.op in ("avgpool1d", "transpose", "maxpool1d", "reduce", "pad"):
            return f"{fn}(&{names['params']}, {ins[0]}, {out});"
        raise ValueError(f"no C emission for float32 step op {step.op!r}")

    def operands(self, step: Step, names: dict[str, str]) -> list[str]:
        """Operands a and b of a two-operand step: its constant array of that name, else the
        next input buffer (codegen/kernel_library.py operand_dtypes)."""
        buffers = iter(step.inputs)
        return [names[k] if k in step.arrays else self.pointer(next(buffers)) for k in ("a", "b")]

    def float_io(self, kind: str) -> str:
        """The kernel of the float API: "quantize" (float -> the input buffer's type) or
        "dequantize" (the output buffer's type -> float)."""
        name = self.p.inputs[0] if kind == "quantize" else self.p.outputs[0]
        return quantize_names(self.p.buffers[name].dtype, self.prefix)[kind == "dequantize"]

    def model_source(self) -> str:
        p, P, i = self.prefix, self.prefix.upper(), self.iface
        consts, body = [], []
        for index, step in enumerate(self.p.steps):
            decl, names = self.step_constants(index, step)
            if decl:
                consts.append(f"/* step {index}: {comment(step.name)} ({step.op}) */\n{decl}")
            out = self.p.buffers[step.outputs[0]]
            number = "float32" if out.is_float else f"@ 2^{out.exp}"
            body.append(f"    /* {index}: {comment(step.name)} -> {comment(out.name)} "
                        f"{list(out.shape)} {number} */\n    {self.call(step, names)}")
        inits = self.state_inits()
        arena_decl = (f"#ifndef {P}_CALLER_ARENA\n#ifndef {P}_ARENA_ATTR\n#define {P}_ARENA_ATTR\n#endif\n"
                      f"static int8_t {p}_arena[{max(i.arena_bytes, 16)}] {P}_ALIGN16 {P}_ARENA_ATTR;\n#endif")
        arena_ptr = (f"#ifdef {P}_CALLER_ARENA\n    int8_t *arena = (int8_t *)m->arena;\n#else\n"
                     f"    int8_t *arena = {p}_arena;\n#endif\n"
                     "    if (m == 0 || in == 0 || out == 0 || arena == 0) {\n        return -1;\n    }")
        if any(st.op == "copy" and st.params.get("blocks", 1) > 1 for st in self.p.steps):
            arena_ptr += "\n    int32_t i; /* row index of strided copies */"
        numbers = ("float32, no quantization" if self.p.is_float
                   else f"Rounding: {self.p.rounding.replace('_', ' ')}")
        return f"""/* {p}.c: the schedule of one call, the weights (static const,
 * in flash) and the public API. {numbers}. */
#include <string.h>

#include "{p}.h"
#include "{p}_kernels.h"

{arena_decl}

{chr(10).join(consts)}

void {p}_init({p}_t *m)
{{
    memset(m, 0, sizeof(*m));
{inits}
}}

{self.run_signature()}
{{
{arena_ptr}
{chr(10).join(body)}
    return 0;
}}

int {p}_run_f32({p}_t *m, const float *in, float *out)
{{
{self.run_f32_body()}
}}
"""

    def state_inits(self) -> str:
        """`init` statements: each state set to its initial value (a memset where every byte
        is equal: zeros, any int8 value; else a loop over the elements). A window's state is
        the front of its member; the memset covers the new frames behind it too (every call
        writes them before reading)."""
        lines, loop = [], False
        for s in self.p.states:
            root, offset = self.p.root(s.buffer)
            member, buf = f"m->{self.state_members[root]}", self.p.buffers[s.buffer]
            if s.init == 0 or buf.dtype == "int8":
                lines.append(f"    memset({member}, {int(s.init)}, sizeof({member}));" if not offset
                             else f"    memset({_offset(member, offset)}, {int(s.init)}, "
                                  f"sizeof({member}) - {offset * buf.nbytes // buf.size});")
                continue
            value = c_float(s.init) if buf.is_float else str(int(s.init))
            index = f"{offset} + i" if offset else "i"
            lines.append(f"    for (i = 0; i < {buf.size}; ++i) {{\n"
                         f"        {member}[{index}] = {value};\n    }}")
            loop = True
        return ("    int32_t i;\n" if loop else "") + "\n".join(lines)

    def run_f32_body(self) -> str:
        P = self.prefix.upper()
        if self.p.is_float:
            return f"    return {self.prefix}_run(m, in, out);"
        return f"""    {self.io_type(self.p.inputs[0])} qin[{P}_INPUT_ELEMS];
    {self.io_type(self.p.outputs[0])} qout[{P}_OUTPUT_ELEMS];
    int status;
    if (in == 0 || out == 0) {{
        return -1;
    }}
    {self.float_io('quantize')}({P}_INPUT_ELEMS, {P}_INPUT_EXPONENT, in, qin);
    status = {self.prefix}_run(m, qin, qout);
    if (status == 0) {{
        {self.float_io('dequantize')}({P}_OUTPUT_ELEMS, {P}_OUTPUT_EXPONENT, qout, out);
    }}
    return status;"""


def selftest_source(name: str, inputs: np.ndarray, outputs: np.ndarray) -> str:
    """test/<name>_selftest.c: stream the compiler's vectors and compare them with the outputs:
    bit for bit (integer outputs), or every value within TOLERANCE x the largest expected
    magnitude (float32 outputs: C and the Python reference sum in the same order, but a C
    compiler may contract multiply-adds, compute in higher precision or have another libm)."""
    P = name.upper()
    calls = inputs.shape[0]
    in_t, out_t = C_TYPES[str(inputs.dtype)], C_TYPES[str(outputs.dtype)]
    if outputs.dtype.kind == "f":
        finite = outputs[np.isfinite(outputs)]
        tol = float(np.float32(TOLERANCE * float(np.max(np.abs(finite), initial=0.0))))
        what = f"within {TOLERANCE:g} x the largest expected magnitude ({tol:.6g})"
        compare = f"{name}_mismatch(out, {name}_test_expected + call * {P}_OUTPUT_ELEMS)"
        helper = f"""
/* 1 when any output differs from the expected one by more than the tolerance; an expected NaN
 * (e.g. Sqrt of a negative input) or infinity must be matched exactly. */
static int {name}_mismatch(const float *out, const float *expected)
{{
    const float tolerance = {c_float(tol)};
    int i;
    for (i = 0; i < {P}_OUTPUT_ELEMS; ++i) {{
        const float e = expected[i], d = out[i] - e;
        if (e != e) {{
            if (out[i] == out[i]) {{
                return 1;
            }}
        }} else if (e - e != 0.0f) {{ /* +-infinity */
            if (out[i] != e) {{
                return 1;
            }}
        }} else if (!(d <= tolerance && -d <= tolerance)) {{
            return 1;
        }}
    }}
    return 0;
}}
"""
    else:
        what = "bit for bit"
        compare = (f"memcmp(out, {name}_test_expected + call * {P}_OUTPUT_ELEMS, sizeof(out)) "
                   "!= 0")
        helper = ""
    return f"""/* {name}_selftest.c: streams {calls} call(s) of test vectors from the
 * initial state and compares every output with the compiler's reference, {what}. */
#include <math.h>
#include <string.h>

#include "{name}.h"

static const {in_t} {name}_test_input[{calls} * {P}_INPUT_ELEMS] = {_array_literal(inputs)};

static const {out_t} {name}_test_expected[{calls} * {P}_OUTPUT_ELEMS] = {_array_literal(outputs, nan=True)};
{helper}
int {name}_selftest(void)
{{
    {name}_t m;
    {out_t} out[{P}_OUTPUT_ELEMS];
    int call, mismatches = 0;
#ifdef {P}_CALLER_ARENA
    static int8_t arena[{P}_ARENA_BYTES + 16] {P}_ALIGN16;
#endif
    {name}_init(&m);
#ifdef {P}_CALLER_ARENA
    m.arena = arena;
#endif
    for (call = 0; call < {calls}; ++call) {{
        if ({name}_run(&m, {name}_test_input + call * {P}_INPUT_ELEMS, out) != 0) {{
            return -1;
        }}
        if ({compare}) {{
            ++mismatches;
        }}
    }}
    return mismatches;
}}
"""
