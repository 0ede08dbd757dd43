"""A generated component built for RV32IMAFC and run in the emulator through its public API.

The component's src/*.c and test/*.c are linked with a driver that only provides storage: one
`<name>_t` instance and its call buffers; its `main()` is the self-test. The emulator then calls
`<name>_init`, `<name>_run` and `<name>_run_f32` directly on that storage, call after call, and
counts each call's instructions.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from compiler.errors import RillError
from compiler.rv32.build import build_elf
from compiler.rv32.emulator import Rv32Machine

DRIVER = r"""/* RV32 emulator driver: the storage the emulator calls @NAME@'s public API on. */
#include "@NAME@.h"

#if @UNAME@_INPUT_BITS == 32
typedef float in_t;
#elif @UNAME@_INPUT_BITS == 16
typedef int16_t in_t;
#else
typedef int8_t in_t;
#endif
#if @UNAME@_OUTPUT_BITS == 32
typedef float out_t;
#elif @UNAME@_OUTPUT_BITS == 16
typedef int16_t out_t;
#else
typedef int8_t out_t;
#endif

@NAME@_t rill_model;
in_t rill_in[@UNAME@_INPUT_ELEMS];
out_t rill_out[@UNAME@_OUTPUT_ELEMS];
float rill_in_f32[@UNAME@_INPUT_ELEMS];
float rill_out_f32[@UNAME@_OUTPUT_ELEMS];

int main(void)
{
    return @NAME@_selftest();
}
"""

DTYPES = {8: np.int8, 16: np.int16, 32: np.float32}


def header_macros(header: Path) -> dict[str, int]:
    """The integer `#define NAME value` lines of a component header."""
    text = header.read_text()
    return {m.group(1): int(m.group(2)) for m in
            re.finditer(r"^#define\s+(\w+)\s+\(?\s*(-?\d+)\s*\)?\s*$", text, re.M)}


@dataclass
class Calls:
    outputs: np.ndarray        # [calls, output_elems]
    instructions: list[int]    # executed instructions of each call


class Rv32Component:
    """`component`/`name` built into `work` for RV32 and loaded into an emulator.
    `kernels` replaces src/<name>_kernels.c (same functions, other implementation: the bench's
    reference build); `profile` attributes each call's instructions to functions."""

    def __init__(self, component: Path, name: str, work: Path, *, kernels: Path | None = None,
                 profile: bool = False):
        self.component, self.name = Path(component), name
        macros = header_macros(self.component / "include" / f"{name}.h")
        up = name.upper()
        try:
            self.input_elems = macros[f"{up}_INPUT_ELEMS"]
            self.output_elems = macros[f"{up}_OUTPUT_ELEMS"]
            self.in_dtype = np.dtype(DTYPES[macros.get(f"{up}_INPUT_BITS", 8)])
            self.out_dtype = np.dtype(DTYPES[macros.get(f"{up}_OUTPUT_BITS", 8)])
        except KeyError as exc:
            raise RillError(f"{name}.h lacks or has an unknown {exc}: not a Rill component?"
                            ) from None
        work.mkdir(parents=True, exist_ok=True)
        driver = work / f"{name}_rv32_driver.c"
        driver.write_text(DRIVER.replace("@NAME@", name).replace("@UNAME@", up))
        sources = sorted((self.component / "src").glob("*.c"))
        if kernels is not None:
            sources = [kernels if p.name == f"{name}_kernels.c" else p for p in sources]
        sources += sorted((self.component / "test").glob("*.c")) + [driver]
        self.elf = build_elf(sources, [self.component / "include", self.component / "src"],
                             work / f"{name}.elf")
        self.machine = Rv32Machine(self.elf, profile=profile)
        m = self.machine
        self._model = m.symbol("rill_model").addr
        self._in, self._out = m.symbol("rill_in").addr, m.symbol("rill_out").addr
        self._in_f32, self._out_f32 = m.symbol("rill_in_f32").addr, m.symbol("rill_out_f32").addr
        self.last_profile: dict[str, int] = {}

    def selftest(self) -> int:
        """`<name>_selftest()` on the target: 0 when it matches the compiler's vectors."""
        return self.machine.call("main").value

    def init(self) -> int:
        """`<name>_init` of the instance (the initial state); its instruction count."""
        return self.machine.call(f"{self.name}_init", self._model).instructions

    def run(self, inputs: np.ndarray, *, f32: bool = False) -> Calls:
        """Stream `inputs` ([calls, input_elems]) through `<name>_run` (or `_run_f32`) from the
        instance's current state; the outputs and instructions of every call."""
        fn = f"{self.name}_run_f32" if f32 else f"{self.name}_run"
        dtype = np.dtype(np.float32) if f32 else self.in_dtype
        out_dtype = np.dtype(np.float32) if f32 else self.out_dtype
        in_addr, out_addr = (self._in_f32, self._out_f32) if f32 else (self._in, self._out)
        inputs = np.asarray(inputs)
        if inputs.ndim != 2 or inputs.shape[1] != self.input_elems or inputs.dtype != dtype:
            raise RillError(f"{self.name}: inputs must be [calls, {self.input_elems}] {dtype}, "
                            f"got {list(inputs.shape)} {inputs.dtype}")
        outs, counts = [], []
        self.last_profile = {}
        for x in inputs:
            self.machine.write(in_addr, np.ascontiguousarray(x))
            r = self.machine.call(fn, self._model, in_addr, out_addr)
            if r.value != 0:
                raise RillError(f"{fn} returned {r.value} on RV32")
            outs.append(self.machine.read_array(out_addr, out_dtype, self.output_elems))
            counts.append(r.instructions)
            for k, v in (r.profile or {}).items():
                self.last_profile[k] = self.last_profile.get(k, 0) + v
        return Calls(np.stack(outs) if outs else np.zeros((0, self.output_elems), out_dtype),
                     counts)
