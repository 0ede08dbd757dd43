"""Executed RV32IMAFC instructions per MAC of Rill's kernels and example models (issue 6).

`make bench` runs this: everything is cross-compiled for the ESP32-P4's base ISA (rv32imafc /
ilp32f, gcc -O2, compiler/rv32/build.py) and executed in the unicorn emulator, which counts
every instruction (compiler/rv32/emulator.py): the P4 core's base instruction stream without its
SIMD and hardware-loop extensions and without cache or pipeline effects.

- Kernels, int8 on realistic shapes (pointwise 32->32 and 64->64, depthwise k=3/5 with dilation,
  k=3 full conv, each at 1 and 8 frames; Gemm 48->16; LUT; Add): MACs (elements for LUT/Add),
  instructions, instructions per MAC, for Rill's kernel (runtime/c) and for a straightforward
  reference (bench/rv32/reference: plain nested loops as a first version or onnx2c writes
  them), called with the same arguments; both must equal the Python integer reference bit
  for bit.
- Example models per chunk, through the public API from the initial state: MACs per call
  (report.json), instructions per call (the mean over a stream), per MAC; the same component
  with the reference kernels in place of conv1d/gemm/add/lut (other families keep Rill's); both
  bit-exact with the integer reference.
- Streaming vs offline instructions per output frame: the example TCN (its dynamic export pinned
  to a 64-frame window; a summary output, so per input frame) and a per-frame-output model
  (tcn_residual, its input widened to 64 frames).

The issue's goals are printed next to the numbers. Writes bench/results.json.

    .venv/bin/python bench/rv32/bench_rv32.py [--json bench/results.json] [--skip-models]
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import onnx

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from codegen.emit_c import SourceWriter  # noqa: E402
from codegen.kernel_select import Selection, select_for  # noqa: E402
from codegen.kernel_library import (F32, KernelTypes, function_name, instantiate,  # noqa: E402
                                    kernel_header, kernel_sources, program_variants, rename)
from compiler.context import Options  # noqa: E402
from compiler.pipeline import compile_model  # noqa: E402
from compiler.rv32.build import CC, build_elf, compile_flags, toolchain_missing  # noqa: E402
from compiler.rv32.component import Rv32Component  # noqa: E402
from compiler.rv32.emulator import Rv32Machine  # noqa: E402
from compiler.simulate import run_integer  # noqa: E402
from compiler.targets import get_target  # noqa: E402
from runtime import weight_layout  # noqa: E402
from runtime.reference import kernels as ref_kernels  # noqa: E402

REFERENCE_DIR = Path(__file__).resolve().parent / "reference"
ZOO = ROOT / "tests" / "fixtures" / "streaming"
MODE, ROUNDING_MACRO = "half_even", 0  # esp32p4
S8 = KernelTypes(x=8, y=8, w=8, acc=32)
S8_ADD = KernelTypes(x=8, y=8, x2=8)
S8_IO = KernelTypes(x=8, y=8)
KERNEL_VARIANTS = [("conv1d", S8), ("gemm", S8), ("add", S8_ADD), ("lut", S8_IO)]
# Rill's float-accumulating conv (codegen/kernel_select.py): int8 or float32 weights
FX_VARIANTS = [("conv1d_fx", KernelTypes(x=8, y=8, w=8)), ("conv1d_fx", KernelTypes(x=8, y=8, w=F32))]
SELECTION = Selection(float_mac=True)  # what the code generator picks for the esp32p4

# The goals (instructions per MAC, and the factor over the reference).
GOAL_PW_MANY, GOAL_PW_ONE, GOAL_DW, GOAL_TCN, GOAL_SPEEDUP, GOAL_STREAM = 3.0, 3.5, 4.0, 4.5, 2.0, 1.1


# ------------------------------------------------------------------------------ kernels

@dataclass
class KernelCase:
    name: str
    family: str
    args: Callable[[np.random.Generator], tuple[list[int], list[np.ndarray], np.ndarray]]
    macs: int
    goal: float | None = None             # instructions per MAC
    goal_speedup: float | None = None     # over the reference


def _requant_shift(fan_in: int) -> int:
    """A per-channel shift that keeps random int8 outputs mostly unsaturated."""
    return 7 + int(np.ceil(np.log2(max(fan_in, 1)) / 2))


def conv_case(name: str, *, c_in: int, c_out: int, kernel: int, dilation: int, groups: int,
              frames: int, goal: float | None) -> KernelCase:
    """A streaming conv: t_in = frames + the kept past frames, no padding, `frames` outputs."""
    t_in = frames + dilation * (kernel - 1)
    cg = c_in // groups
    params = dict(t_in=t_in, c_in=c_in, c_out=c_out, kernel=kernel, stride=1, dilation=dilation,
                  groups=groups, pad_l=0, pad_r=0, act_min=0, act_max=127)

    def args(rng):
        x = rng.integers(-128, 128, t_in * c_in, dtype=np.int8)
        w = rng.integers(-128, 128, c_out * kernel * cg, dtype=np.int8)
        bias = rng.integers(-4096, 4096, c_out, dtype=np.int32)
        shift = np.full(c_out, _requant_shift(kernel * cg) + 4, np.int8)
        want = ref_kernels.conv1d(x, w, bias, shift, mode=MODE, out_bits=8, **params)
        return params, [x, w, bias, shift], want

    return KernelCase(name, "conv1d", args, frames * c_out * kernel * cg, goal, GOAL_SPEEDUP)


def gemm_case(name: str, *, m: int, k: int, n: int) -> KernelCase:
    params = dict(m=m, k=k, n=n, act_min=-128, act_max=127)

    def args(rng):
        x = rng.integers(-128, 128, m * k, dtype=np.int8)
        w = rng.integers(-128, 128, n * k, dtype=np.int8)
        bias = rng.integers(-4096, 4096, n, dtype=np.int32)
        shift = np.full(n, _requant_shift(k) + 4, np.int8)
        want = ref_kernels.gemm(x, w, bias, shift, mode=MODE, out_bits=8, **params)
        return params, [x, w, bias, shift], want

    return KernelCase(name, "gemm", args, m * k * n, None, GOAL_SPEEDUP)


def add_case(name: str, n: int) -> KernelCase:
    params = dict(n=n, shift_a=1, shift_b=0, shift_out=1, act_min=-128, act_max=127)

    def args(rng):
        a = rng.integers(-128, 128, n, dtype=np.int8)
        b = rng.integers(-128, 128, n, dtype=np.int8)
        want = ref_kernels.add(a, b, mode=MODE, out_bits=8, **params)
        return params, [a, b], want

    return KernelCase(name, "add", args, n)


def lut_case(name: str, n: int) -> KernelCase:
    def args(rng):
        x = rng.integers(-128, 128, n, dtype=np.int8)
        table = rng.integers(-128, 128, 256, dtype=np.int8)
        want = ref_kernels.lut(x, table, mode=MODE, n=n, out_bits=8)
        return {"n": n, "frac_bits": 0}, [table, x], want

    return KernelCase(name, "lut", args, n)


def kernel_cases() -> list[KernelCase]:
    cases = []
    for c in (32, 64):
        for frames in (1, 8):
            cases.append(conv_case(f"pointwise {c}->{c}, {frames} frame(s)", c_in=c, c_out=c,
                                   kernel=1, dilation=1, groups=1, frames=frames,
                                   goal=GOAL_PW_ONE if frames < 4 else GOAL_PW_MANY))
    for k, d in ((3, 2), (5, 4)):
        for frames in (1, 8):
            cases.append(conv_case(f"depthwise 32 k={k} d={d}, {frames} frame(s)", c_in=32,
                                   c_out=32, kernel=k, dilation=d, groups=32, frames=frames,
                                   goal=GOAL_DW if frames >= 4 else None))
    for frames in (1, 8):
        cases.append(conv_case(f"conv k=3 32->32, {frames} frame(s)", c_in=32, c_out=32,
                               kernel=3, dilation=1, groups=1, frames=frames,
                               goal=GOAL_PW_ONE if frames < 4 else GOAL_PW_MANY))
    cases.append(gemm_case("gemm 48->16", m=1, k=48, n=16))
    cases.append(lut_case("lut 8x32 (per element)", 256))
    cases.append(add_case("add 8x32 (per element)", 256))
    return cases


def reference_source(family: str, types: KernelTypes) -> str:
    """The reference kernel of `family` instantiated for `types` (names still rill_*), or
    Rill's own kernel when the reference has none (or for float32)."""
    path = REFERENCE_DIR / f"{family}.c"
    if types.x != F32 and path.is_file():
        return instantiate(family, types, path.read_text())
    return instantiate(family, types)


def write_kernel_library(work: Path, prefix: str, variants, reference: bool,
                         fixed=()) -> tuple[Path, Path]:
    header = work / f"{prefix}_generated.h"
    guard = f"{prefix.upper()}_GENERATED_H"
    header.write_text(f"#ifndef {guard}\n#define {guard}\n#define RILL_ROUNDING {ROUNDING_MACRO}\n"
                      + kernel_header(prefix, variants, fixed) + "#endif\n")
    source = work / f"{prefix}_generated.c"
    body = ("\n".join(rename(reference_source(f, t), prefix) for f, t in variants) if reference
            else kernel_sources(variants, prefix, fixed))
    source.write_text(f'#include "{prefix}_generated.h"\n' + body)
    return header, source


def fixed_shapes() -> set:
    """The depthwise layer shapes the code generator compiles with constant geometry among the
    kernel cases (codegen/kernel_select.py)."""
    shapes = set()
    for i, case in enumerate(kernel_cases()):
        if case.family in weight_layout.LAYOUT_FAMILIES:
            params, arrays, _ = case.args(np.random.default_rng(1000 + i))
            x, *named = arrays
            kc = select_for(case.family, dict(KERNEL_VARIANTS)[case.family], params,
                            dict(zip(("w", "bias", "shift"), named)), MODE, SELECTION)
            if kc.fixed is not None:
                shapes.add(kc.fixed)
    return shapes


def build_kernel_elf(work: Path) -> Path:
    """Rill's kernels (prefix rill) and the reference ones (prefix ref) in one ELF."""
    work.mkdir(parents=True, exist_ok=True)
    _, ours = write_kernel_library(work, "rill", KERNEL_VARIANTS + FX_VARIANTS, reference=False,
                                   fixed=fixed_shapes())
    _, ref = write_kernel_library(work, "ref", KERNEL_VARIANTS, reference=True)
    main = work / "main.c"
    main.write_text("int main(void);\nint main(void)\n{\n    return 0;\n}\n")
    return build_elf([ours, ref, main], [work], work / "kernels.elf")


def kernel_call(family: str, types: KernelTypes, params: dict, arrays: list[np.ndarray],
                ours: bool, prefix: str) -> tuple[str, list[int], list[np.ndarray]]:
    """(C function, params, arrays) of a case: Rill's kernel as the code generator selects it for
    the esp32p4 (codegen/kernel_select.py: the kernel, its params with the layout fields, its
    arrays in their compile-time layout); the reference's with the logical arrays."""
    if family not in weight_layout.LAYOUT_FAMILIES:
        return function_name(family, types, prefix), list(params.values()), arrays
    x, *named = arrays
    kc = select_for(family, types, params, dict(zip(("w", "bias", "shift"), named)), MODE,
                    SELECTION if ours else Selection(layouts=False))
    return (kc.function(prefix), list(kc.params.values()),
            [x, *kc.arrays.values()])


def call_kernel(m: Rv32Machine, fn: str, family: str, params: list[int],
                arrays: list[np.ndarray], out_elems: int) -> tuple[np.ndarray, int]:
    m.free_all()
    ptrs = [m.alloc(np.ascontiguousarray(a)) for a in arrays]
    out = m.alloc(out_elems)
    if family == "lut":
        args = [*params, *ptrs, out]
    else:
        args = [m.alloc(np.asarray(params, np.int32)), *ptrs, out]
    r = m.call(fn, *args)
    return m.read_array(out, np.int8, out_elems), r.instructions


def bench_kernels(work: Path) -> list[dict]:
    machine = Rv32Machine(build_kernel_elf(work))
    rows = []
    for i, case in enumerate(kernel_cases()):
        params, arrays, want = case.args(np.random.default_rng(1000 + i))
        types = dict(KERNEL_VARIANTS)[case.family]
        counts = {}
        for prefix in ("rill", "ref"):
            fn, c_params, c_arrays = kernel_call(case.family, types, params, arrays,
                                                 prefix == "rill", prefix)
            got, n = call_kernel(machine, fn, case.family, c_params, c_arrays, want.size)
            if not np.array_equal(got, want.reshape(-1)):
                raise SystemExit(f"{case.name}: the {prefix} kernel on RV32 differs from the "
                                 "integer reference")
            counts[prefix] = n
        rows.append(row(case.name, case.family, case.macs, counts["rill"], counts["ref"],
                        case.goal, case.goal_speedup))
    return rows


def row(name: str, kind: str, macs: int, ours: float, ref: float, goal: float | None,
        goal_speedup: float | None, **extra) -> dict:
    r = {"name": name, "kind": kind, "macs": macs, "instructions": round(ours, 1),
         "instructions_per_mac": round(ours / macs, 3),
         "reference_instructions": round(ref, 1),
         "reference_instructions_per_mac": round(ref / macs, 3),
         "speedup": round(ref / ours, 3), "goal_instructions_per_mac": goal,
         "goal_speedup": goal_speedup, **extra}
    r["meets_goals"] = ((goal is None or r["instructions_per_mac"] <= goal)
                        and (goal_speedup is None or r["speedup"] >= goal_speedup))
    return r


# ------------------------------------------------------------------------------ models

@dataclass
class ModelCase:
    name: str
    model: Callable[[Path], Path]     # writes or finds the ONNX (given a work folder)
    calib: Callable[[Path], np.ndarray | None]
    chunk: int | None                 # None: offline
    bits: int = 8
    goal: float | None = None
    input_shape: tuple[int, ...] | None = None
    frames_per_call: int = 0          # output frames (per-frame models) or input frames
    tags: list[str] = field(default_factory=list)


def example_tcn(variant: str) -> Callable[[Path], Path]:
    def make(work: Path) -> Path:
        sys.path.insert(0, str(ROOT / "examples" / "tcn"))
        try:
            import make_tcn
        finally:
            sys.path.pop(0)
        path = work / f"tcn_{variant}.onnx"
        if not path.exists():
            onnx.save(make_tcn.build_tcn(variant, 0), str(path))
        return path
    return make


def example_calib(frames: int) -> Callable[[Path], np.ndarray]:
    def make(_work: Path) -> np.ndarray:
        sys.path.insert(0, str(ROOT / "examples" / "tcn"))
        try:
            import make_tcn
        finally:
            sys.path.pop(0)
        x = make_tcn.make_calib(64, 1)
        if frames != x.shape[-1]:  # the same statistics over a longer window
            x = np.random.default_rng(1).standard_normal((*x.shape[:-1], frames)).astype(
                np.float32)
        return x
    return make


def zoo(stem: str, frames: int | None = None) -> tuple[Callable, Callable]:
    """A streaming fixture (TorchScript export) and its calibration data; with `frames`, its
    input and per-frame output widened to that many frames (inner shapes re-inferred)."""
    def model(work: Path) -> Path:
        src = ZOO / f"{stem}.script.onnx"
        if frames is None:
            return src
        m = onnx.load(str(src))
        for vi in (m.graph.input[0], m.graph.output[0]):  # per-frame: time last, same rate
            vi.type.tensor_type.shape.dim[-1].dim_value = frames
        del m.graph.value_info[:]
        path = work / f"{stem}_{frames}.onnx"
        onnx.save(m, str(path))
        return path

    def calib(_work: Path) -> np.ndarray:
        x = np.load(ZOO / f"{stem}.calib.npy")
        if frames is not None and frames != x.shape[-1]:
            x = np.random.default_rng(0).standard_normal((*x.shape[:-1], frames)).astype(
                np.float32)
        return x

    return model, calib


def model_cases() -> list[ModelCase]:
    tcn, tcn64 = example_tcn("default"), example_tcn("dynamic")
    res_model, res_calib = zoo("tcn_residual")
    res64_model, res64_calib = zoo("tcn_residual", 64)
    gru_model, gru_calib = zoo("gru_tagger")
    cases = [ModelCase(f"tutorial TCN int8, chunk {c}", tcn, example_calib(24), c, goal=GOAL_TCN,
                       frames_per_call=c, tags=["tcn_stream"]) for c in (1, 4, 8)]
    cases += [
        ModelCase("tutorial TCN int8, offline 24 frames", tcn, example_calib(24), None,
                  goal=GOAL_TCN, frames_per_call=24),
        ModelCase("tutorial TCN int8, offline 64 frames", tcn64, example_calib(64), None,
                  input_shape=(1, 16, 64), frames_per_call=64, tags=["tcn_offline"]),
        ModelCase("tutorial TCN int16, chunk 4", tcn, example_calib(24), 4, bits=16,
                  frames_per_call=4),
        ModelCase("conv+GRU tagger int8, chunk 4", gru_model, gru_calib, 4, frames_per_call=4),
    ]
    cases += [ModelCase(f"tcn_residual (per-frame) int8, chunk {c}", res_model, res_calib, c,
                        frames_per_call=c, tags=["frame_stream"]) for c in (4, 8)]
    cases.append(ModelCase("tcn_residual (per-frame) int8, offline 64 frames", res64_model,
                           res64_calib, None, frames_per_call=64, tags=["frame_offline"]))
    return cases


def reference_kernels_file(program, name: str, work: Path) -> Path:
    """<name>_kernels.c with the reference conv1d/gemm/add/lut (Rill's kernels for the rest)."""
    variants = sorted(program_variants(program), key=lambda v: (v[0], str(v[1])))
    path = work / f"{name}_kernels_reference.c"
    path.write_text(f'#include "{name}_kernels.h"\n'
                    + "\n".join(rename(reference_source(f, t), name) for f, t in variants))
    return path


def logical_component(result, name: str, work: Path) -> Path:
    """A copy of the compiled component whose weights keep the logical layout of
    runtime/KERNELS.md and whose steps call the integer kernels (what the reference kernels
    implement) instead of the kernels the code generator selected."""
    out = work / f"{name}_logical"
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(result.out_dir, out)
    w = result.writer
    logical = SourceWriter(w.p, w.plan, w.iface, Selection(layouts=False))
    (out / "src" / f"{name}.c").write_text(logical.model_source())
    (out / "src" / f"{name}_kernels.h").write_text(logical.kernels_header())
    return out


def bench_model(case: ModelCase, work: Path) -> dict:
    name = "m_" + "".join(ch if ch.isalnum() else "_" for ch in case.name.lower())[:40].strip("_")
    work.mkdir(parents=True, exist_ok=True)
    model, calib = case.model(work), case.calib(work)
    opts = Options(target=get_target("esp32p4"), bits=case.bits, chunk=case.chunk,
                   offline=case.chunk is None, calib=calib[:16], name=name, verify=False)
    result = compile_model(model, opts, work / "out", input_shapes=(
        [(None, list(case.input_shape))] if case.input_shape else []), force=True)
    program, layout = result.program, result.layout
    stream = run_integer(program, layout, calib[-1])
    counts = {}
    for kind, kernels in (("rill", None), ("ref", reference_kernels_file(program, name, work))):
        component = result.out_dir if kind == "rill" else logical_component(result, name, work)
        comp = Rv32Component(component, name, work / f"{name}_{kind}", kernels=kernels)
        comp.init()
        got = comp.run(stream.inputs)
        if not np.array_equal(got.outputs, stream.outputs):
            raise SystemExit(f"{case.name}: the {kind} build on RV32 differs from the integer "
                             "reference")
        counts[kind] = float(np.mean(got.instructions))
    macs = result.report["macs_per_call"]
    return row(case.name, "model", macs, counts["rill"], counts["ref"], case.goal,
               None, chunk=case.chunk, bits=case.bits, calls=len(stream.inputs),
               frames_per_call=case.frames_per_call,
               instructions_per_frame=round(counts["rill"] / case.frames_per_call, 1),
               tags=case.tags)


def stream_vs_offline(models: list[dict]) -> list[dict]:
    """Instructions per frame of each streaming row against its offline row."""
    out = []
    for stream_tag, offline_tag, goal in (("tcn_stream", "tcn_offline", None),
                                          ("frame_stream", "frame_offline", GOAL_STREAM)):
        offline = next((m for m in models if offline_tag in m["tags"]), None)
        if offline is None:
            continue
        for m in models:
            if stream_tag in m["tags"]:
                ratio = m["instructions_per_frame"] / offline["instructions_per_frame"]
                applies = goal is not None and m["chunk"] >= 4
                out.append({"stream": m["name"], "offline": offline["name"],
                            "stream_instructions_per_frame": m["instructions_per_frame"],
                            "offline_instructions_per_frame": offline["instructions_per_frame"],
                            "ratio": round(ratio, 3), "goal_ratio": goal if applies else None,
                            "meets_goals": (not applies) or ratio <= goal})
    return out


# ------------------------------------------------------------------------------ output

def fmt_goal(r: dict) -> str:
    parts = []
    if r["goal_instructions_per_mac"] is not None:
        parts.append(f"<={r['goal_instructions_per_mac']:.1f}/MAC")
    if r["goal_speedup"] is not None:
        parts.append(f">={r['goal_speedup']:.0f}x")
    if not parts:
        return ""
    return " ".join(parts) + ("  ok" if r["meets_goals"] else "  MISSED")


def print_table(title: str, rows: list[dict]) -> None:
    print(f"\n{title}")
    head = (f"{'':44} {'MACs':>7} {'instr':>10} {'/MAC':>6} {'ref instr':>10} {'/MAC':>6} "
            f"{'x ref':>6}  goal")
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['name']:44} {r['macs']:>7} {r['instructions']:>10.0f} "
              f"{r['instructions_per_mac']:>6.2f} {r['reference_instructions']:>10.0f} "
              f"{r['reference_instructions_per_mac']:>6.2f} {r['speedup']:>6.2f}  {fmt_goal(r)}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", type=Path, default=ROOT / "bench" / "results.json")
    ap.add_argument("--skip-models", action="store_true", help="kernels only")
    args = ap.parse_args(argv)
    why = toolchain_missing()
    if why:
        print(f"make bench: {why}", file=sys.stderr)
        return 2
    t0 = time.time()
    version = subprocess.run([CC, "-dumpversion"], capture_output=True, text=True).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="rill-bench-rv32-") as tmp:
        work = Path(tmp)
        kernels = bench_kernels(work / "kernels")
        models = [] if args.skip_models else [bench_model(c, work / "models")
                                              for c in model_cases()]
    streaming = stream_vs_offline(models)
    results = {"isa": "rv32imafc/ilp32f (ESP32-P4 base ISA, no SIMD/hardware loops)",
               "compiler": f"{CC} {version} {' '.join(compile_flags())}",
               "rounding": MODE, "kernels": kernels, "models": models,
               "streaming_vs_offline": streaming,
               "meets_all_goals": all(r["meets_goals"] for r in kernels + models + streaming)}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n")
    print(f"RV32IMAFC instructions (unicorn), {results['compiler']}")
    print_table("Kernels (int8; LUT/Add per element; reference = plain nested loops)", kernels)
    if models:
        print_table("Models per call (public API; reference = plain conv1d/gemm/add/lut)", models)
    if streaming:
        print("\nStreaming vs offline, instructions per frame")
        for s in streaming:
            goal = (f"<={s['goal_ratio']}x  {'ok' if s['meets_goals'] else 'MISSED'}"
                    if s["goal_ratio"] else "")
            print(f"  {s['stream']:44} {s['stream_instructions_per_frame']:>9.0f} vs "
                  f"{s['offline_instructions_per_frame']:>9.0f} ({s['offline']}): "
                  f"{s['ratio']:.2f}x  {goal}")
    print(f"\nwrote {args.json} ({time.time() - t0:.0f} s); all goals met: "
          f"{results['meets_all_goals']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
