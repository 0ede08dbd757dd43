"""What the generated component costs on the chip: code and constant bytes (flash) and the
worst-case stack of one call, measured by compiling the component's sources.

The sources are compiled for the target's ISA when a cross compiler is installed: RV32IMAFC (the
ESP32-P4's base ISA) with Debian's riscv64-unknown-elf-gcc + picolibc, at -O2 (ESP-IDF's
"performance" optimization level). There is no Xtensa LX7 compiler here, so for the ESP32-S3 the
same RV32 build is an *estimate*; without a cross compiler the host build (x86-64) is one.

Sizes come from the objects' sections (`size -A`): .text is code, .rodata/.srodata the weights,
tables and kernel parameters, .bss the arena. The stack comes from gcc itself: `-fstack-usage`
gives each function's frame and `-fcallgraph-info=su` its calls, so the worst case of an API
function is its deepest path through the call graph (static functions the compiler inlined are
part of their caller's frame). C library calls (memcpy, memset, floorf, ...) have no stack
information; they are named as not counted.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from compiler.rv32.build import ARCH_FLAGS, CC as RV32_CC, OPT_FLAGS, PICOLIBC_SPECS, \
    toolchain_missing

from compiler.targets import Target

STACK_FLAGS = ["-fstack-usage", "-fcallgraph-info=su"]


@dataclass(frozen=True)
class Toolchain:
    cc: str
    size: str
    flags: tuple[str, ...]
    isa: str  # what the objects are built for
    exact: bool  # the target's own ISA (else the numbers are an estimate)


def toolchain_for(target: Target) -> Toolchain | None:
    """The RV32 cross compiler when installed (exact for a RISC-V core), else the host gcc,
    else None."""
    if toolchain_missing() is None:
        size = RV32_CC.replace("gcc", "size")
        if shutil.which(size):
            flags = (f"--specs={PICOLIBC_SPECS}", *ARCH_FLAGS, *OPT_FLAGS)
            return Toolchain(RV32_CC, size, flags, "RV32IMAFC", target.core.startswith("RISC-V"))
    host, size = shutil.which("gcc"), shutil.which("size")
    if host and size:
        return Toolchain(host, size, tuple(OPT_FLAGS), "host (x86-64)", False)
    return None


def measure_footprint(component: Path, name: str, target: Target) -> dict:
    """report.json's `footprint`: code/constant/data/bss bytes of src/*.c and the worst-case
    stack of `<name>_run`, `<name>_run_f32` and `<name>_init`; `{"measured": False, "reason"}`
    when no compiler can measure it."""
    tc = toolchain_for(target)
    if tc is None:
        return {"measured": False, "reason": "no gcc or cross compiler found"}
    component = component.resolve()  # the compiler runs in its own work folder
    sources = sorted((component / "src").glob("*.c"))
    with tempfile.TemporaryDirectory(prefix="rill-footprint-") as work:
        cmd = [tc.cc, "-std=c99", *tc.flags, *STACK_FLAGS, f"-I{component / 'include'}",
               f"-I{component / 'src'}", "-c", *map(str, sources)]
        proc = subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=300)
        if proc.returncode != 0:
            return {"measured": False,
                    "reason": f"{Path(tc.cc).name} failed: {proc.stderr.strip()[-300:]}"}
        objects = sorted(Path(work).glob("*.o"))
        sections = section_sizes(tc.size, objects)
        graph = CallGraph.read(sorted(Path(work).glob("*.ci")))
    entries = [f"{name}_run", f"{name}_run_f32", f"{name}_init"]
    stacks = {e: graph.worst(e) for e in entries if e in graph.frames}
    worst = max(stacks, key=lambda e: (stacks[e].bytes, e)) if stacks else None
    version = subprocess.run([tc.cc, "-dumpversion"], capture_output=True, text=True).stdout
    return {
        "measured": True,
        "compiler": f"{Path(tc.cc).name} {version.strip()}",
        "flags": " ".join(f for f in tc.flags if not f.startswith("--specs")),
        "isa": tc.isa,
        "exact_for_target": tc.exact,
        "code_bytes": sections["text"],
        "const_bytes": sections["rodata"],
        "data_bytes": sections["data"],
        "bss_bytes": sections["bss"],
        "stack_bytes": stacks[worst].bytes if worst else None,
        "stack_function": worst,
        "stack_path": stacks[worst].path if worst else [],
        "stack_bounded": all(s.bounded for s in stacks.values()),
        "stack_per_function": {e: s.bytes for e, s in stacks.items()},
        "stack_not_counted": sorted({c for s in stacks.values() for c in s.unknown}),
        "stack_method": "gcc -fstack-usage -fcallgraph-info=su: each function's frame, summed "
                        "along the deepest call path",
    }


SECTION_KINDS = (("text", (".text",)), ("rodata", (".rodata", ".srodata")),
                 ("data", (".data", ".sdata")), ("bss", (".bss", ".sbss")))


def section_sizes(size_tool: str, objects: list[Path]) -> dict[str, int]:
    """Bytes of code, constants, initialized and zeroed data over the objects (`size -A`)."""
    proc = subprocess.run([size_tool, "-A", *map(str, objects)], capture_output=True, text=True,
                          check=True)
    totals = {kind: 0 for kind, _ in SECTION_KINDS}
    for line in proc.stdout.splitlines():
        parts = line.split()
        if len(parts) != 3 or not parts[1].isdigit():
            continue
        for kind, prefixes in SECTION_KINDS:
            if any(parts[0] == p or parts[0].startswith(p + ".") for p in prefixes):
                totals[kind] += int(parts[1])
    return totals


@dataclass(frozen=True)
class Stack:
    bytes: int
    path: list[str]  # the deepest call chain, the entry first
    unknown: frozenset[str]  # callees without stack information (C library)
    bounded: bool  # no dynamic (alloca/VLA) frame of unknown size on the way


_NODE = re.compile(r'node: \{ title: "([^"]+)" label: "([^"]*)"')
_EDGE = re.compile(r'edge: \{ sourcename: "([^"]+)" targetname: "([^"]+)"')
_FRAME = re.compile(r"\\n(\d+) bytes \(([a-z,]+)\)")


def _function(title: str) -> str:
    """A call-graph node's name: gcc titles a static function `<source path>:<name>`; keep the
    file name only, so the report does not carry the build's temporary folder."""
    path, sep, fn = title.rpartition(":")
    return f"{Path(path).name}:{fn}" if sep and "/" in path else title


class CallGraph:
    """Frames and calls from gcc's -fcallgraph-info=su files (VCG text)."""

    def __init__(self):
        self.frames: dict[str, tuple[int, bool]] = {}  # function -> (bytes, bounded)
        self.calls: dict[str, set[str]] = {}

    @classmethod
    def read(cls, files: list[Path]) -> "CallGraph":
        g = cls()
        for f in files:
            for line in f.read_text().splitlines():
                node, edge = _NODE.search(line), _EDGE.search(line)
                if node and (frame := _FRAME.search(node.group(2))):
                    qualifier = frame.group(2)
                    g.frames[_function(node.group(1))] = (
                        int(frame.group(1)), qualifier == "static" or "bounded" in qualifier)
                elif edge:
                    g.calls.setdefault(_function(edge.group(1)), set()).add(
                        _function(edge.group(2)))
        return g

    def worst(self, fn: str, seen: frozenset[str] = frozenset()) -> Stack:
        """The deepest path from `fn` (a recursive call would have no bound: refused)."""
        if fn in seen:
            return Stack(0, [fn], frozenset({f"{fn} (recursion)"}), False)
        if fn not in self.frames:
            return Stack(0, [], frozenset({fn}), True)
        own, bounded = self.frames[fn]
        subs = [self.worst(c, seen | {fn}) for c in sorted(self.calls.get(fn, ()))]
        deepest = max(subs, key=lambda s: s.bytes, default=Stack(0, [], frozenset(), True))
        unknown = frozenset().union(*(s.unknown for s in subs)) if subs else frozenset()
        return Stack(own + deepest.bytes, [fn] + deepest.path, unknown,
                     bounded and all(s.bounded for s in subs))
