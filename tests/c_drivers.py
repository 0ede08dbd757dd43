"""Shared plumbing of the C test drivers (tests/c/*_driver.c): build one executable per
rounding mode (with AddressSanitizer + UBSan when they work here), encode a batch of kernel
calls into one stdin stream, run it once and split stdout back into per-call outputs.

Record format (native-endian int32): op nparams params[nparams] narrays (nbytes bytes)*narrays
[out_nbytes, when the driver reads it]; -1 ends the stream.
"""
from __future__ import annotations

import os
import struct
import subprocess
from pathlib import Path

import numpy as np

MODES = ("half_even", "half_up")
MODE_MACRO = {"half_even": 0, "half_up": 1}
STRICT = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic"]
SANITIZE = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all"]


def compile_c(cc: str, args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([cc, *args], capture_output=True, text=True, cwd=cwd, timeout=300)


def sanitizers_work(cc: str, build: Path) -> bool:
    probe = build / "probe.c"
    probe.write_text("int main(void) { return 0; }\n")
    san = compile_c(cc, [*SANITIZE, str(probe), "-o", str(build / "probe")], build)
    return san.returncode == 0 and subprocess.run([str(build / "probe")]).returncode == 0


def build_drivers(cc: str, build: Path, driver: Path, sources: list[Path], c_dir: Path,
                  name: str) -> dict[str, Path]:
    """One strict, sanitized (when possible) executable per rounding mode."""
    san = SANITIZE if sanitizers_work(cc, build) else []
    exes = {}
    for mode in MODES:
        exe = build / f"{name}_{mode}"
        proc = compile_c(cc, [*STRICT, "-O1", *san, f"-DRILL_ROUNDING={MODE_MACRO[mode]}",
                              f"-I{c_dir}", str(driver), *map(str, sources), "-lm", "-o",
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
