"""Run functions of a bare-metal RV32IMAFC ELF in the unicorn CPU emulator, counting executed
instructions.

The ELF's loadable segments are placed at their addresses; a stack, a scratch data region (for
inputs the caller places) and a return trap page are mapped around them. `call(fn, *args)` sets
the integer argument registers, points `ra` at the trap page and runs until the function returns
there. Instructions are counted with a block hook: unicorn reports each executed translation
block's address and byte size once per execution, and the block's instruction count (2-byte
compressed or 4-byte instructions, told apart by the low two bits) is decoded once and cached.
A block ends at every branch, so every instruction of a block that starts also executes (a fault
stops the run with an error, never with a count).

What is counted is the base instruction stream of the P4's core without its SIMD and hardware-loop
extensions and without cycle effects (cache misses, load-use stalls, multi-cycle divides): a
measure of the code's work, not of time.
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from compiler.errors import RillError

# Address map (the program itself is linked at compiler.rv32.build.PROGRAM_BASE..LIMIT).
RETURN_ADDR = 0x0000_1000   # `ra` of every call: the emulation stops when pc reaches it
SCRATCH_BASE = 0x0100_0000  # caller-placed data (`alloc`)
SCRATCH_BYTES = 0x0040_0000
STACK_TOP = 0x0200_0000     # the stack grows down from here; below it nothing is mapped
STACK_BYTES = 0x0010_0000
PAGE = 0x1000
MSTATUS_FS_INITIAL = 1 << 13  # the FPU is off at reset: float instructions would trap
ARG_REGS = 8


class EmulationError(RillError):
    """The program faulted, ran away or could not be loaded."""


@dataclass(frozen=True)
class Symbol:
    addr: int
    size: int


@dataclass
class CallResult:
    value: int                       # a0 as a signed 32-bit integer
    instructions: int                # executed instructions, the call's own and its callees'
    profile: dict[str, int] | None   # instructions per function, with profile=True


def _uc():
    try:
        import unicorn
        from unicorn import riscv_const
    except ImportError as exc:  # the [test] extra installs it
        raise EmulationError(f"the RV32 emulator needs the unicorn package ({exc}); "
                             "pip install -e '.[test]'") from exc
    return unicorn, riscv_const


def _page_range(lo: int, hi: int) -> tuple[int, int]:
    start = lo & ~(PAGE - 1)
    return start, ((hi + PAGE - 1) & ~(PAGE - 1)) - start


def instruction_count(code: bytes) -> int:
    """Instructions in a run of RV32C code: 16-bit ones have low bits != 0b11."""
    n = i = 0
    while i < len(code):
        i += 4 if code[i] & 3 == 3 else 2
        n += 1
    return n


class Rv32Machine:
    """One emulated RV32IMAFC hart with an ELF loaded. `profile=True` also attributes the
    instructions of every call to the function symbols they execute in."""

    def __init__(self, elf: Path, *, profile: bool = False):
        unicorn, rc = _uc()
        self._unicorn, self._rc = unicorn, rc
        self.elf = Path(elf)
        self.uc = unicorn.Uc(unicorn.UC_ARCH_RISCV, unicorn.UC_MODE_RISCV32)
        self.symbols: dict[str, Symbol] = {}
        self._load()
        for base, size in [(RETURN_ADDR, PAGE), (SCRATCH_BASE, SCRATCH_BYTES),
                           (STACK_TOP - STACK_BYTES, STACK_BYTES)]:
            self.uc.mem_map(base, size)
        self._scratch_next = SCRATCH_BASE
        gp = self.symbols.get("__global_pointer$")
        if gp is not None:
            self.uc.reg_write(rc.UC_RISCV_REG_GP, gp.addr)
        self.uc.reg_write(rc.UC_RISCV_REG_MSTATUS,
                          self.uc.reg_read(rc.UC_RISCV_REG_MSTATUS) | MSTATUS_FS_INITIAL)
        self._counts: dict[tuple[int, int], int] = {}
        self._executed = 0
        self._profile: dict[str, int] | None = None
        funcs = sorted((s.addr, name) for name, s in self._functions.items())
        self._func_starts = [a for a, _ in funcs]
        self._func_names = [n for _, n in funcs]
        # hooks must exist before the first run: blocks translated earlier would not call them
        self.uc.hook_add(unicorn.UC_HOOK_BLOCK, self._on_block_profiled if profile
                         else self._on_block)
        self.profiling = profile

    # ------------------------------------------------------------------ loading

    def _load(self) -> None:
        from elftools.elf.elffile import ELFFile
        from elftools.elf.sections import SymbolTableSection

        with open(self.elf, "rb") as f:
            elf = ELFFile(f)
            if elf["e_machine"] != "EM_RISCV" or elf.elfclass != 32:
                raise EmulationError(f"{self.elf} is not an RV32 ELF "
                                     f"({elf['e_machine']}, {elf.elfclass}-bit)")
            mapped: list[tuple[int, int]] = []
            for seg in elf.iter_segments():
                if seg["p_type"] != "PT_LOAD" or seg["p_memsz"] == 0:
                    continue
                start, size = _page_range(seg["p_vaddr"], seg["p_vaddr"] + seg["p_memsz"])
                for a, n in mapped:  # segments may share a page
                    if start < a + n and a < start + size:
                        raise EmulationError(f"{self.elf}: overlapping segments at {start:#x}")
                self.uc.mem_map(start, size)
                mapped.append((start, size))
                self.uc.mem_write(seg["p_vaddr"], seg.data())  # the rest of p_memsz stays 0
            self._functions: dict[str, Symbol] = {}
            for sec in elf.iter_sections():
                if not isinstance(sec, SymbolTableSection):
                    continue
                for s in sec.iter_symbols():
                    if not s.name:
                        continue
                    sym = Symbol(s["st_value"], s["st_size"])
                    if s["st_info"]["bind"] != "STB_LOCAL" or s.name not in self.symbols:
                        self.symbols[s.name] = sym
                    if s["st_info"]["type"] == "STT_FUNC":
                        self._functions[s.name] = sym

    # ------------------------------------------------------------------ memory

    def symbol(self, name: str) -> Symbol:
        try:
            return self.symbols[name]
        except KeyError:
            raise EmulationError(f"{self.elf.name} defines no symbol {name!r}") from None

    def write(self, addr: int, data: bytes | np.ndarray) -> None:
        self.uc.mem_write(addr, data.tobytes() if isinstance(data, np.ndarray) else bytes(data))

    def read(self, addr: int, nbytes: int) -> bytes:
        return bytes(self.uc.mem_read(addr, nbytes))

    def read_array(self, addr: int, dtype, count: int) -> np.ndarray:
        dtype = np.dtype(dtype)
        return np.frombuffer(self.read(addr, dtype.itemsize * count), dtype).copy()

    def alloc(self, data: bytes | np.ndarray | int, align: int = 16) -> int:
        """Place `data` (or reserve that many zero bytes) in the scratch region; its address."""
        raw = b"\0" * data if isinstance(data, int) else (
            data.tobytes() if isinstance(data, np.ndarray) else bytes(data))
        addr = (self._scratch_next + align - 1) & ~(align - 1)
        if addr + len(raw) > SCRATCH_BASE + SCRATCH_BYTES:
            raise EmulationError(f"the emulator's scratch region ({SCRATCH_BYTES} B) is full")
        self.write(addr, raw)
        self._scratch_next = addr + len(raw)
        return addr

    def free_all(self) -> None:
        """Forget every `alloc` (the bytes stay until overwritten)."""
        self._scratch_next = SCRATCH_BASE

    # ------------------------------------------------------------------ running

    def _block_count(self, uc, addr: int, size: int) -> int:
        n = self._counts.get((addr, size))
        if n is None:
            n = self._counts[(addr, size)] = instruction_count(bytes(uc.mem_read(addr, size)))
        return n

    def _on_block(self, uc, addr: int, size: int, _data) -> None:
        self._executed += self._block_count(uc, addr, size)

    def _on_block_profiled(self, uc, addr: int, size: int, _data) -> None:
        n = self._block_count(uc, addr, size)
        self._executed += n
        if self._profile is not None:
            name = self.function_at(addr)
            self._profile[name] = self._profile.get(name, 0) + n

    def function_at(self, addr: int) -> str:
        i = bisect.bisect_right(self._func_starts, addr) - 1
        return self._func_names[i] if i >= 0 else f"{addr:#x}"

    def call(self, fn: str | int, *args: int, timeout_s: float = 120.0) -> CallResult:
        """Call `fn` (a symbol or an address) with up to 8 integer/pointer arguments."""
        rc = self._rc
        if len(args) > ARG_REGS:
            raise EmulationError(f"at most {ARG_REGS} register arguments, got {len(args)}")
        entry = self.symbol(fn).addr if isinstance(fn, str) else fn
        for i, a in enumerate(args):
            self.uc.reg_write(rc.UC_RISCV_REG_A0 + i, int(a) & 0xFFFF_FFFF)
        self.uc.reg_write(rc.UC_RISCV_REG_SP, STACK_TOP - 16)
        self.uc.reg_write(rc.UC_RISCV_REG_RA, RETURN_ADDR)
        self._executed = 0
        self._profile = {} if self.profiling else None
        try:
            self.uc.emu_start(entry, RETURN_ADDR, timeout=int(timeout_s * 1e6))
        except self._unicorn.UcError as exc:
            pc = self.uc.reg_read(rc.UC_RISCV_REG_PC)
            raise EmulationError(f"{self.elf.name}: {fn if isinstance(fn, str) else hex(fn)} "
                                 f"faulted at pc {pc:#x} (in {self.function_at(pc)}): {exc}"
                                 ) from None
        pc = self.uc.reg_read(rc.UC_RISCV_REG_PC)
        if pc != RETURN_ADDR:
            raise EmulationError(f"{self.elf.name}: {fn} did not return within {timeout_s} s "
                                 f"(pc {pc:#x} in {self.function_at(pc)})")
        value = self.uc.reg_read(rc.UC_RISCV_REG_A0)
        value = value - (1 << 32) if value & 0x8000_0000 else value
        return CallResult(value, self._executed, self._profile)
