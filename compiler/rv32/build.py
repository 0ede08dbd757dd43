"""Cross-compile C for RV32IMAFC / ilp32f, the ESP32-P4's base ISA, as a bare-metal ELF.

The toolchain is Debian's `gcc-riscv64-unknown-elf` (multilib: rv32imafc/ilp32f) with
`picolibc-riscv64-unknown-elf` for memcpy/memset and the two libm functions the float API uses
(floorf, ldexpf). The speed-optimized picolibc build (`--picolibc-buildtype=release`) is linked,
whose memcpy/memset copy words, as ESP-IDF's ROM/newlib ones do; a size-optimized byte loop would
inflate every state copy.

The code is compiled the way an ESP-IDF "performance" build compiles a component: -O2, builtins
on (gcc inlines small constant-size memcpy), floating-point contraction on (`a += b * c` is one
fmadd.s: the default of ESP-IDF's GNU C dialect, which the strict `-std=c99` would turn off),
no OS, no C start-up files. The ELF is linked at one
flat address range with load address = run address, so the emulator places each segment where it
runs; it is never started at its entry point: the emulator calls its functions directly.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from compiler.errors import RillError
from compiler.host_build import STRICT_FLAGS

CC = "riscv64-unknown-elf-gcc"
ARCH_FLAGS = ["-march=rv32imafc", "-mabi=ilp32f"]
OPT_FLAGS = ["-O2", "-ffp-contract=fast"]
PICOLIBC_SPECS = Path("/usr/lib/picolibc/riscv64-unknown-elf/picolibc.specs")
INSTALL_HINT = ("install Debian's gcc-riscv64-unknown-elf and picolibc-riscv64-unknown-elf "
                "(apt-get install gcc-riscv64-unknown-elf picolibc-riscv64-unknown-elf; "
                ".ci/run does it)")

#: Where the program is linked (the emulator maps this range from the ELF's segments).
PROGRAM_BASE = 0x0001_0000
PROGRAM_LIMIT = 0x0080_0000

LINKER_SCRIPT = f"""/* Rill RV32 emulator image: one flat region, load address = run address. */
ENTRY(main)
MEMORY {{ ram (rwx) : ORIGIN = {PROGRAM_BASE:#x}, LENGTH = {PROGRAM_LIMIT:#x} }}
SECTIONS {{
  .text : {{ *(.text.startup .text.startup.*) *(.text .text.*) }} > ram
  .rodata : ALIGN(16) {{ *(.rodata .rodata.* .srodata .srodata.*) }} > ram
  .data : ALIGN(16) {{ *(.data .data.*) }} > ram
  .sdata : ALIGN(16) {{ __global_pointer$ = . + 0x800; *(.sdata .sdata.*) }} > ram
  .bss (NOLOAD) : ALIGN(16) {{ *(.sbss .sbss.* .bss .bss.* COMMON) }} > ram
  _end = .;
}}
"""


def toolchain_missing() -> str | None:
    """None when the RV32 cross compiler and picolibc are installed, else what is missing."""
    missing = []
    if shutil.which(CC) is None:
        missing.append(CC)
    if not PICOLIBC_SPECS.is_file():
        missing.append(f"picolibc ({PICOLIBC_SPECS})")
    return f"{' and '.join(missing)} not found: {INSTALL_HINT}" if missing else None


def compile_flags(defines: dict[str, str | int] | None = None) -> list[str]:
    """The compile flags of every RV32 build: the host build's strict warnings, -O2, the ISA."""
    return [*STRICT_FLAGS, *OPT_FLAGS, *ARCH_FLAGS,
            *(f"-D{k}={v}" for k, v in (defines or {}).items())]


def build_elf(sources: list[Path], include_dirs: list[Path], out: Path, *,
              defines: dict[str, str | int] | None = None) -> Path:
    """Compile and link `sources` into the bare-metal RV32 ELF `out` (warnings are errors)."""
    why = toolchain_missing()
    if why:
        raise RillError(f"cannot build for RV32: {why}")
    out.parent.mkdir(parents=True, exist_ok=True)
    script = out.with_suffix(".ld")
    script.write_text(LINKER_SCRIPT)
    cmd = [CC, f"--specs={PICOLIBC_SPECS}", "--picolibc-buildtype=release", *compile_flags(defines),
           *(f"-I{d}" for d in include_dirs), *map(str, sources),
           "-nostartfiles", "-T", str(script), "-Wl,--no-gc-sections",
           "-Wl,--no-warn-rwx-segments", "-o", str(out), "-lm"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        raise RillError(f"the RV32 build failed ({' '.join(cmd[:1] + compile_flags(defines))}):\n"
                        f"{proc.stderr[-3000:]}")
    return out
