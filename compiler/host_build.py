"""Build a generated component with the host C compiler and run it through its public API."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np

from compiler.errors import RillError, VerificationError

STRICT_FLAGS = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic"]

DRIVER = r"""/* Host driver: streams calls read from stdin through the public API. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

int main(int argc, char **argv)
{
    @NAME@_t m;
    int32_t calls, i;
    int f32 = argc > 1 && strcmp(argv[1], "f32") == 0;
    if (argc > 1 && strcmp(argv[1], "selftest") == 0) {
        int r = @NAME@_selftest();
        printf("%d\n", r);
        return r == 0 ? 0 : 1;
    }
    if (fread(&calls, sizeof(calls), 1, stdin) != 1) {
        return 2;
    }
    @NAME@_init(&m);
    for (i = 0; i < calls; ++i) {
        if (f32) {
            float in[@UNAME@_INPUT_ELEMS], out[@UNAME@_OUTPUT_ELEMS];
            if (fread(in, sizeof(in), 1, stdin) != 1 || @NAME@_run_f32(&m, in, out) != 0) {
                return 3;
            }
            fwrite(out, sizeof(out), 1, stdout);
        } else {
            in_t in[@UNAME@_INPUT_ELEMS];
            out_t out[@UNAME@_OUTPUT_ELEMS];
            if (fread(in, sizeof(in), 1, stdin) != 1 || @NAME@_run(&m, in, out) != 0) {
                return 3;
            }
            fwrite(out, sizeof(out), 1, stdout);
        }
    }
    return 0;
}
"""


def c_compiler() -> str:
    cc = os.environ.get("CC") or shutil.which("gcc") or shutil.which("cc") or shutil.which("clang")
    if not cc:
        raise RillError("no C compiler found for verification; install gcc or pass --no-verify")
    return cc


def build_host(component: Path, name: str, work: Path, *, cc: str | None = None,
               extra_flags: list[str] | None = None) -> Path:
    """Compile src/*.c + test/*.c + a driver into an executable; fail on any warning."""
    work.mkdir(parents=True, exist_ok=True)
    driver = work / "host_driver.c"
    driver.write_text(DRIVER.replace("@NAME@", name).replace("@UNAME@", name.upper()))
    exe = work / f"{name}_host"
    sources = sorted(str(p) for p in (component / "src").glob("*.c")) + \
        sorted(str(p) for p in (component / "test").glob("*.c")) + [str(driver)]
    cmd = [cc or c_compiler(), *STRICT_FLAGS, "-O1", *(extra_flags or []),
           f"-I{component / 'include'}", f"-I{component / 'src'}", *sources, "-o", str(exe), "-lm"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise VerificationError(f"the generated C does not compile cleanly with "
                                f"{' '.join(cmd[:1] + STRICT_FLAGS)}:\n{proc.stderr[-3000:]}")
    return exe


def run_host(exe: Path, inputs: np.ndarray, *, f32: bool = False, out_elems: int,
             out_dtype=np.int8) -> np.ndarray:
    """Stream `inputs` ([calls, input_elems], float32 with f32 else the input's integer type)
    through the public API; the outputs of every call ([calls, out_elems])."""
    calls = inputs.shape[0]
    blob = np.int32(calls).tobytes() + np.ascontiguousarray(inputs).tobytes()
    proc = subprocess.run([str(exe)] + (["f32"] if f32 else []), input=blob, capture_output=True)
    if proc.returncode != 0:
        raise VerificationError(f"the generated C failed at run time (exit {proc.returncode}): "
                                f"{proc.stderr.decode(errors='replace')[-2000:]}")
    dtype = np.float32 if f32 else out_dtype
    return np.frombuffer(proc.stdout, dtype).reshape(calls, out_elems)


def run_selftest(exe: Path) -> int:
    proc = subprocess.run([str(exe), "selftest"], capture_output=True, text=True)
    try:
        return int(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return -999
