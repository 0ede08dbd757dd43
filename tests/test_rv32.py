"""The generated C on the ESP32-P4's base ISA (issue 6): every example component built for
RV32IMAFC / ilp32f (Debian's riscv64-unknown-elf-gcc + picolibc, -O2, strict warnings) and run in
the unicorn emulator through its public API, call after call from the initial state, bit-exact
with the host build and with the Python integer reference; the emulator's instruction count is
checked against hand-counted code.

The components: the tutorial TCN at int8 (esp32p4, half even), int16 (esp32s3, half up) and
float32, the conv+GRU tagger, and two per-frame-output models (the look-ahead TCN with its
latency and frame masks, the Conv2d spectrogram CNN), each compiled once.

Under CI (CI set) a missing toolchain or emulator fails: .ci/run installs them; elsewhere these
tests skip, saying what to install.
"""
from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from compiler.context import Options
from compiler.host_build import build_host, run_host
from compiler.pipeline import CompileResult, compile_model
from compiler.simulate import run_integer
from compiler.targets import get_target
from conftest import FIXTURES, require_tools

ZOO = FIXTURES / "streaming"
STREAMS = 2  # held-out input streams per model, plus two saturating ones
CALIB_SAMPLES = 16


def rv32_unavailable() -> str | None:
    """Why the RV32 tests cannot run here, or None."""
    from compiler.rv32.build import toolchain_missing

    why = toolchain_missing()
    for module in ("unicorn", "elftools"):
        try:
            __import__(module)
        except ImportError:
            why = (why + "; " if why else "") + \
                f"the Python package {module} is missing (pip install -e '.[test]')"
    return why


@pytest.fixture(scope="session")
def rv32_tools() -> None:
    require_tools(rv32_unavailable())


@dataclass(frozen=True)
class Case:
    key: str
    model: str           # "example" or a file under tests/fixtures/streaming
    target: str
    chunk: int
    bits: int = 8


CASES = [
    Case("tcn_int8", "example", "esp32p4", 4),
    Case("tcn_int16", "example", "esp32s3", 2, bits=16),
    Case("gru_tagger", "gru_tagger.script.onnx", "esp32p4", 5),
    Case("lookahead_tcn", "lookahead_tcn.script.onnx", "esp32s3", 4),
    Case("spectrogram_cnn", "spectrogram_cnn.script.onnx", "esp32p4", 2),
    Case("tcn_float32", "example", "esp32p4", 4, bits=32),
]
FLOAT_RTOL = 1e-5  # contract §3: float32 C vs the Python float reference


@dataclass
class Built:
    result: CompileResult
    name: str
    rv32: object         # compiler.rv32.component.Rv32Component
    host: Path           # the host build's executable
    streams: list[np.ndarray]


@pytest.fixture(params=[pytest.param(c, id=c.key) for c in CASES])
def built(request, rv32_tools, example_model, example_calib, held_out_inputs,
          tmp_path_factory) -> Built:
    from compiler.rv32.component import Rv32Component

    case: Case = request.param
    if case.model == "example":
        model, calib, held_out = example_model, np.load(example_calib), held_out_inputs
    else:
        model = ZOO / case.model
        stem = case.model.split(".")[0]
        calib, held_out = np.load(ZOO / f"{stem}.calib.npy"), np.load(ZOO / f"{stem}.heldout.npy")
    name = f"rv_{case.key}"
    work = tmp_path_factory.mktemp(name)
    # a few calibration samples suffice (bit-exactness, not SNR, is checked); the host build
    # is compared here, so the compile's own verification is skipped
    float32 = case.bits == 32  # no calibration; no saturation to exercise
    opts = Options(target=get_target(case.target), bits=case.bits, chunk=case.chunk,
                   calib=None if float32 else calib[:CALIB_SAMPLES], name=name, verify=False)
    result = compile_model(model, opts, work / "out")
    comp = result.out_dir
    streams = list(held_out[:STREAMS])
    if not float32:
        streams += [np.full_like(held_out[0], 1e6), np.full_like(held_out[0], -1e6)]
    return Built(result, name, Rv32Component(comp, name, work / "rv32"),
                 build_host(comp, name, work / "host"), streams)


def test_component_on_rv32(built):
    """One test per component (each compiles once): the self-test; every stream from the
    initial state with RV32 == host == integer reference call by call (float32: both within
    the contract's tolerance of the float reference; picolibc's and glibc's expf differ in the
    last bit); the float API equal on both and to the dequantized reference;
    re-initializing restarts the stream exactly."""
    program, layout = built.result.program, built.result.layout
    rv32 = built.rv32
    out_buf = program.buffers[program.outputs[0]]
    assert rv32.selftest() == 0, "the self-test fails on RV32"
    assert rv32.out_dtype == out_buf.dtype
    for s, x in enumerate(built.streams):
        ref = run_integer(program, layout, x)
        assert len(ref.inputs) >= 2, "too few calls to exercise the state"
        rv32.init()
        got = rv32.run(ref.inputs)
        host = run_host(built.host, ref.inputs, out_elems=rv32.output_elems,
                        out_dtype=out_buf.dtype)
        if out_buf.is_float:  # libm differs (picolibc vs glibc expf): the float tolerance
            tol = FLOAT_RTOL * float(np.max(np.abs(ref.outputs)))
            for what, out in (("RV32", got.outputs), ("host", host)):
                assert float(np.max(np.abs(out - ref.outputs))) <= tol, \
                    f"stream {s}: {what} float32 outside the tolerance of the reference"
        else:
            for call, (a, b, c) in enumerate(zip(got.outputs, host, ref.outputs)):
                assert np.array_equal(a, c), f"stream {s} call {call}: RV32 != integer reference"
                assert np.array_equal(b, c), f"stream {s} call {call}: host != integer reference"
        assert min(got.instructions) > 0
        if s == 0:
            rv32.init()
            again = rv32.run(ref.inputs)
            assert np.array_equal(again.outputs, got.outputs), "init does not restart the stream"
            assert again.instructions == got.instructions
            if not out_buf.is_float:
                check_float_api(built, ref)


def check_float_api(built: Built, ref) -> None:
    """`<name>_run_f32` (picolibc's floorf/ldexpf on RV32, glibc's on the host) gives the same
    floats on both, and they are the integer reference's dequantized outputs."""
    program = built.result.program
    e_in = program.buffers[program.inputs[0]].exp
    e_out = program.buffers[program.outputs[0]].exp
    xs = (ref.inputs.astype(np.float64) * 2.0 ** e_in).astype(np.float32)
    built.rv32.init()
    got = built.rv32.run(xs, f32=True).outputs
    host = run_host(built.host, xs, f32=True, out_elems=built.rv32.output_elems)
    assert np.array_equal(got, host), "run_f32 differs between RV32 and the host"
    want = (ref.outputs.astype(np.float64) * 2.0 ** e_out).astype(np.float32)
    assert np.array_equal(got, want), "run_f32 is not the dequantized integer reference"


# ---------------------------------------------------------------------- the emulator itself

COUNTED = r"""
    .text
    .globl count_loop
    .globl read_zero
    .globl main
    .type count_loop, @function
    .type read_zero, @function
    .type main, @function
/* a0 = n >= 1: runs 1 + 2n + 2 instructions, 16-bit and 32-bit mixed; returns n */
count_loop:
    c.li t0, 0
1:  addi t0, t0, 1
    bne t0, a0, 1b
    c.mv a0, t0
    c.jr ra
/* a fault: loads from address 0, which is not mapped */
read_zero:
    lw a0, 0(zero)
    ret
main:
    li a0, 7
    ret
"""


@pytest.fixture(scope="module")
def counted_elf(rv32_tools, tmp_path_factory) -> Path:
    from compiler.rv32.build import build_elf

    work = tmp_path_factory.mktemp("counted")
    src = work / "counted.S"
    src.write_text(COUNTED)
    return build_elf([src], [], work / "counted.elf")


@pytest.mark.parametrize("n", [1, 2, 1000])
def test_instruction_count_is_exact(counted_elf, n):
    from compiler.rv32.emulator import Rv32Machine

    machine = Rv32Machine(counted_elf)
    r = machine.call("count_loop", n)
    assert (r.value, r.instructions) == (n, 1 + 2 * n + 2)
    assert machine.call("main").value == 7


def test_profile_attributes_instructions_to_functions(counted_elf):
    from compiler.rv32.emulator import Rv32Machine

    r = Rv32Machine(counted_elf, profile=True).call("count_loop", 10)
    assert r.profile == {"count_loop": r.instructions} and r.instructions == 23


def test_fault_is_a_clear_error(counted_elf):
    from compiler.rv32.emulator import EmulationError, Rv32Machine

    machine = Rv32Machine(counted_elf)
    with pytest.raises(EmulationError, match=r"read_zero faulted at pc 0x[0-9a-f]+ \(in read_zero\)"):
        machine.call("read_zero")
    with pytest.raises(EmulationError, match="no symbol 'nothing'"):
        machine.call("nothing")


def test_missing_toolchain_is_one_clear_error(monkeypatch, tmp_path):
    from compiler.errors import RillError
    from compiler.rv32 import build

    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(RillError, match="riscv64-unknown-elf-gcc not found: install Debian's "
                                        "gcc-riscv64-unknown-elf"):
        build.build_elf([tmp_path / "x.c"], [], tmp_path / "x.elf")


def test_bench_kernels_run_bit_exact(rv32_tools, tmp_path, monkeypatch):
    """`make bench`'s kernel table runs: Rill's kernels and the plain-loop reference kernels
    (bench/rv32/reference, instantiated like runtime/c) equal the integer reference on every
    shape (the bench stops otherwise) and every count is positive."""
    import importlib.util

    from conftest import ROOT

    spec = importlib.util.spec_from_file_location("bench_rv32",
                                                  ROOT / "bench" / "rv32" / "bench_rv32.py")
    bench = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "bench_rv32", bench)  # dataclasses look their module up
    spec.loader.exec_module(bench)
    rows = bench.bench_kernels(tmp_path)
    assert [r["name"] for r in rows] == [c.name for c in bench.kernel_cases()]
    assert all(r["instructions"] > 0 and r["reference_instructions"] > 0 for r in rows)
