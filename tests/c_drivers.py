"""Shared plumbing of the C test drivers (tests/c/*_driver.c): instantiate the kernel variants a
driver needs (codegen/kernel_library.py, as a component gets them), build one executable per
rounding mode (with AddressSanitizer + UBSan when they work here), encode a batch of kernel
calls into one stdin stream, run it once and split stdout back into per-call outputs.

Record format (native-endian int32): op nparams params[nparams] narrays (nbytes bytes)*narrays
[out_nbytes, when the driver reads it]; -1 ends the stream.
"""
from __future__ import annotations

import math
import os
import struct
import subprocess
from fractions import Fraction
from pathlib import Path
from typing import Iterable

import numpy as np

from codegen.kernel_library import (F32, FAMILIES, KernelTypes, function_name, kernel_header,
                                    kernel_sources, params_struct, quantize_names,
                                    variant_suffix)
from runtime.reference.f32 import FLOAT_FIELDS

MODES = ("half_even", "half_up")
MODE_MACRO = {"half_even": 0, "half_up": 1}
STRICT = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic"]
SANITIZE = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all"]

#: Op codes of kernel variants in a generated dispatch start here (below: the driver's own ops).
VARIANT_BASE = 100

Variant = tuple[str, KernelTypes]


def compile_c(cc: str, args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([cc, *args], capture_output=True, text=True, cwd=cwd, timeout=300)


def sanitizers_work(cc: str, build: Path) -> bool:
    probe = build / "probe.c"
    probe.write_text("int main(void) { return 0; }\n")
    san = compile_c(cc, [*SANITIZE, str(probe), "-o", str(build / "probe")], build)
    return san.returncode == 0 and subprocess.run([str(build / "probe")]).returncode == 0


def sorted_variants(variants: Iterable[Variant]) -> list[Variant]:
    return sorted(set(variants), key=lambda v: (v[0], variant_suffix(v[1])))


def write_kernels(build: Path, variants: Iterable[Variant], fixed=()) -> list[Path]:
    """rill_generated.h / .c in `build`: the header and the instantiated kernels of `variants`
    (and the `fixed` depthwise functions), as the code generator assembles them (prefix rill)."""
    header = build / "rill_generated.h"
    header.write_text("#ifndef RILL_GENERATED_H\n#define RILL_GENERATED_H\n"
                      + kernel_header("rill", variants, fixed) + "#endif\n")
    source = build / "rill_generated.c"
    source.write_text('#include "rill_generated.h"\n' + kernel_sources(variants, "rill", fixed))
    return [source]


# The call of each family from the driver's record: `pr` the params, `a` the arrays (void *,
# converted implicitly), `out` the output block. {fn} is the variant's function.
_STRUCT_CALLS = {
    "conv1d": (4, "{fn}(&p, a[0], a[1], a[2], a[3], out);"),
    "conv1d_fx": (4, "{fn}(&p, a[0], a[1], a[2], a[3], out);"),  # x w bias scale
    "conv2d": (4, "{fn}(&p, a[0], a[1], a[2], a[3], out);"),
    "conv_transpose1d": (4, "{fn}(&p, a[0], a[1], a[2], a[3], out);"),
    "gemm": (4, "{fn}(&p, a[0], a[1], a[2], a[3], out);"),
    "add": (2, "{fn}(&p, a[0], a[1], out);"),
    "binary": (2, "{fn}(&p, a[0], a[1], out);"),
    "pad": (1, "{fn}(&p, a[0], out);"),
    "matmul": (2, "{fn}(&p, a[0], a[1], out);"),
    "layernorm": (4, "{fn}(&p, a[0], a[1], a[2], a[3], out);"),
    "avgpool1d": (1, "{fn}(&p, a[0], out);"),
    "maxpool1d": (1, "{fn}(&p, a[0], out);"),
    "reduce": (1, "{fn}(&p, a[0], out);"),
    "transpose": (1, "{fn}(&p, a[0], out);"),
    "softmax": (2, "{fn}(&p, a[0], a[1], out);"),
}


# Float32 variants whose scalars are arguments: params (float ones as their int32 bits, read
# back with rill_param_f32), arrays, and the call.
_F32_CALLS = {
    "add": (1, 2, "{fn}(pr[0], a[0], a[1], out);"),
    "unary": (3, 1, "{fn}(pr[0], rill_param_f32(pr[1]), rill_param_f32(pr[2]), a[0], out);"),
    "softmax": (2, 1, "{fn}(pr[0], pr[1], a[0], out);"),
}

#: float32 helper of the dispatch: a float param travels as its int32 bit pattern.
F32_HELPER = """static float rill_param_f32(int32_t bits)
{
    float v;
    memcpy(&v, &bits, sizeof v);
    return v;
}

"""


def _f32_recurrent_case(family: str, fn: str) -> str:
    """gru/lstm f32: params = the struct fields + t; arrays x wx wh bias h0 (c0); out = y [t][H]
    followed by the final h (and c): one record checks the sequence and the state."""
    lstm = family == "lstm"
    n_struct = 2 if lstm else 3
    cell = ("        c = h + hid;\n        memcpy(c, a[5], (size_t)hid * sizeof(float));\n"
            if lstm else "")
    return (f"{{\n        rill_{family}_f32_params_t p;\n        int32_t t, hid;\n"
            f"        float *h, {'*c, ' if lstm else ''}*scratch, *y = (float *)out;\n"
            f"        rill_expect(np == {n_struct + 1} && na == {6 if lstm else 5}, record);\n"
            f"        memcpy(&p, pr, sizeof p);\n        t = pr[{n_struct}];\n"
            "        hid = p.hidden;\n        h = y + t * hid;\n"
            "        memcpy(h, a[4], (size_t)hid * sizeof(float));\n" + cell +
            "        scratch = (float *)malloc((size_t)(4 * hid) * sizeof(float));\n"
            "        if (scratch == NULL) {\n            rill_die(\"out of memory\", record);\n"
            "        }\n"
            f"        {fn}(&p, t, a[0], a[1], a[2], a[3], h, {'c, ' if lstm else ''}scratch, "
            "t > 0 ? y : 0);\n        free(scratch);\n        break;\n    }")


def _f32_case(family: str, types: KernelTypes) -> str:
    fn = function_name(family, types)
    if family in ("gru", "lstm"):
        return _f32_recurrent_case(family, fn)
    if family in _F32_CALLS:
        n_params, n_arrays, call = _F32_CALLS[family]
        return (f"rill_expect(np == {n_params} && na == {n_arrays}, record);\n"
                f"        {call.format(fn=fn)}\n        break;")
    if family == "mask_frames":  # params frames inner pad in_place; arrays mask x
        return ("rill_expect(np == 4 && na == 2, record);\n"
                "        if (pr[3]) { /* in place: y = x = out, x copied in first */\n"
                "            if (pr[0] * pr[1] > 0) {\n"
                "                memcpy(out, a[1], (size_t)pr[0] * (size_t)pr[1] * 4u);\n"
                "            }\n"
                f"            {fn}(pr[0], pr[1], rill_param_f32(pr[2]), a[0], out, out);\n"
                "        } else {\n"
                f"            {fn}(pr[0], pr[1], rill_param_f32(pr[2]), a[0], a[1], out);\n"
                "        }\n        break;")
    struct, _ = params_struct(family, types)
    narrays, call = _STRUCT_CALLS[family]
    narrays = narrays - 1 if family in ("conv1d", "conv2d", "conv_transpose1d", "gemm",
                                        "layernorm") else narrays  # no shift array
    args = ", ".join(f"a[{i}]" for i in range(narrays))
    return (f"{{\n        rill_{struct} p;\n"
            f"        rill_expect(np * 4 == (int32_t)sizeof p && na == {narrays}, record);\n"
            f"        memcpy(&p, pr, sizeof p);\n        {fn}(&p, {args}, out);\n        break;\n"
            "    }")


def f32_params(family: str, p: dict) -> list[int]:
    """A float32 kernel's struct params as int32 slots (float fields as their bit pattern)."""
    _, fields = params_struct(family, KernelTypes(F32, F32, fn="relu" if family == "unary"
                                                  else None))
    out = []
    for f in fields:
        v = p[f]
        if isinstance(v, (list, tuple)):
            out.extend(list(v) + [0] * (4 - len(v)))
        else:
            out.append(float_bits(v) if f in FLOAT_FIELDS else int(v))
    return out


def float_bits(v: float) -> int:
    return int(np.array([v], np.float32).view(np.int32)[0])


def _case(family: str, types: KernelTypes) -> str:
    fn = function_name(family, types)
    if types.x == F32:
        return _f32_case(family, types)
    if family in _STRUCT_CALLS:
        narrays, call = _STRUCT_CALLS[family]
        return (f"{{\n        rill_{params_struct(family, types)[0]} p;\n"
                f"        rill_expect(np * 4 == (int32_t)sizeof p && na == {narrays}, record);\n"
                f"        memcpy(&p, pr, sizeof p);\n        {call.format(fn=fn)}\n        break;\n"
                "    }")
    if family == "lut":  # params n frac_bits; arrays table x
        return (f"rill_expect(np == 2 && na == 2, record);\n"
                f"        {fn}(pr[0], pr[1], a[0], a[1], out);\n        break;")
    if family == "requant":  # params n shift; arrays x
        return (f"rill_expect(np == 2 && na == 1, record);\n"
                f"        {fn}(pr[0], pr[1], a[0], out);\n        break;")
    if family == "mask_frames":  # params frames inner pad in_place; arrays mask x
        size = f"(size_t)pr[0] * (size_t)pr[1] * {types.x // 8}u"
        return (f"rill_expect(np == 4 && na == 2, record);\n"
                f"        if (pr[3]) {{ /* in place: y = x = out, x copied in first */\n"
                f"            if (pr[0] * pr[1] > 0) {{\n"
                f"                memcpy(out, a[1], {size});\n            }}\n"
                f"            {fn}(pr[0], pr[1], pr[2], a[0], out, out);\n"
                f"        }} else {{\n            {fn}(pr[0], pr[1], pr[2], a[0], a[1], out);\n"
                f"        }}\n        break;")
    if family == "quantize":  # params n exp direction (0 quantize, 1 dequantize); arrays x
        q, d = quantize_names(f"int{types.x}", "rill")
        return (f"rill_expect(np == 3 && na == 1, record);\n"
                f"        if (pr[2] == 0) {{\n            {q}(pr[0], pr[1], a[0], out);\n"
                f"        }} else {{\n            {d}(pr[0], pr[1], a[0], out);\n        }}\n"
                "        break;")
    raise ValueError(f"the kernel driver has no call for {family}")


def dispatch_source(variants: Iterable[Variant]) -> tuple[str, dict[Variant, int]]:
    """C of `rill_call_variant(op, pr, np, a, na, out, record)` (1 when op is a variant of
    `variants`, else 0) and the op code of each variant (VARIANT_BASE + its index)."""
    ordered = sorted_variants(v for v in variants if v[0] in FAMILIES)
    ids = {v: VARIANT_BASE + i for i, v in enumerate(ordered)}
    cases = "\n".join(f"    case {ids[(f, t)]}: /* {f} {variant_suffix(t)} */\n"
                      f"        {_case(f, t)}" for f, t in ordered)
    helper = F32_HELPER if any(t.x == F32 for _, t in ordered) else ""
    src = ("/* Generated by tests/c_drivers.py: one case per kernel variant. */\n" + helper +
           "static int rill_call_variant(int32_t op, const int32_t *pr, int32_t np, void **a,\n"
           "                             int32_t na, void *out, long record)\n{\n"
           "    switch (op) {\n" + cases + "\n    default:\n        return 0;\n    }\n"
           "    return 1;\n}\n")
    return src, ids


def build_drivers(cc: str, build: Path, driver: Path, variants: Iterable[Variant], name: str,
                  dispatch: str | None = None, fixed=()) -> dict[str, Path]:
    """One strict, sanitized (when possible) executable per rounding mode of `driver` with the
    kernels of `variants` (rill_generated.h; plus `fixed` depthwise functions) and, if given,
    `dispatch` (kernel_dispatch.inc)."""
    variants = sorted_variants(variants)
    sources = write_kernels(build, variants, fixed)
    if dispatch is not None:
        (build / "kernel_dispatch.inc").write_text(dispatch)
    san = SANITIZE if sanitizers_work(cc, build) else []
    exes = {}
    for mode in MODES:
        exe = build / f"{name}_{mode}"
        proc = compile_c(cc, [*STRICT, "-O1", *san, f"-DRILL_ROUNDING={MODE_MACRO[mode]}",
                              f"-I{build}", str(driver), *map(str, sources), "-lm", "-o",
                              str(exe)], build)
        assert proc.returncode == 0, f"building {name} failed:\n{proc.stderr}"
        exes[mode] = exe
    return exes


def record(op: int, params, arrays, out_nbytes: int | None = None) -> bytes:
    params = [int(v) for v in params]
    parts = [struct.pack(f"=ii{len(params)}ii", op, len(params), *params, len(arrays))]
    for a in arrays:
        b = np.ascontiguousarray(a).tobytes()
        parts += [struct.pack("=i", len(b)), b]
    if out_nbytes is not None:
        parts.append(struct.pack("=i", out_nbytes))
    return b"".join(parts)


def run_records(exe: Path, records: list[bytes], sizes: list[int], what: str) -> list[bytes]:
    """Run the batch through one process; the output bytes of each call, in order."""
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1:abort_on_error=0",
               UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1")
    proc = subprocess.run([str(exe)], input=b"".join(records) + struct.pack("=i", -1),
                          capture_output=True, env=env, timeout=300)
    assert proc.returncode == 0, (f"{what} failed with status {proc.returncode}:\n"
                                  + proc.stderr.decode(errors="replace")[-4000:])
    out, pos = [], 0
    for n in sizes:
        out.append(proc.stdout[pos:pos + n])
        pos += n
    assert pos == len(proc.stdout), f"{what} wrote an unexpected number of bytes"
    return out


def exact_round(fr: Fraction, mode: str) -> int:
    """The rounding spec read literally on an exact fraction: the expected values of the
    "reference matches the spec" tests."""
    f = math.floor(fr)
    r = fr - f
    if r > Fraction(1, 2) or (r == Fraction(1, 2) and (mode == "half_up" or f % 2 == 1)):
        f += 1
    return f
