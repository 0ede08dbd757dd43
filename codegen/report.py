"""report.json for tools and report.md for people (contract §4)."""
from __future__ import annotations

import math

import numpy as np

from codegen.emit_c import ModelInterface
from codegen.kernel_library import variant_suffix
from codegen.memory import MemoryPlan, copy_stats
from compiler.targets import Target
from runtime.ir import Program
from runtime.reference.f32 import TOLERANCE

KIB = 1024
# Where the "does it fit" notes come from (report.md cites them).
IDF_MEMORY_TYPES = "https://docs.espressif.com/projects/esp-idf/en/stable/{target}/api-guides/memory-types.html"
IDF_HEAP = "https://docs.espressif.com/projects/esp-idf/en/stable/{target}/api-reference/system/mem_alloc.html"


def _stored_axis(info) -> int | None:
    """The ONNX axis a buffer stores first (after a rank >= 3 tensor's batch axis 0), as
    physical_perm orders it; None: stored in ONNX order (no time axis)."""
    return info.axis if info is not None else None


def _finite(x: float) -> float | None:
    return round(x, 2) if math.isfinite(x) else None


def _jsonable(v):
    """Plain JSON values: numpy scalars and arrays unwrapped, non-finite floats as null."""
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, np.ndarray):
        return _jsonable(v.tolist())
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float):
        return round(v, 3) if math.isfinite(v) else None
    return v


def layer_rows(program: Program, per_layer: dict[str, float],
               kernels: list | None = None) -> list[dict]:
    """One row per step; `per_layer` is the SNR in dB of each tensor (a quantized program) or
    its max abs error against onnxruntime (a float32 program: no exponents, no SNR).
    `kernels`: each step's C kernel (codegen/kernel_select.py KernelCall): the row names it and
    counts the bytes of the constants it emits (else the step's logical arrays)."""
    rows = [_float_row(program, step, per_layer) if program.is_float
            else _quantized_row(program, step, per_layer) for step in program.steps]
    for row, kc in zip(rows, kernels or ()):
        if kc.types is not None:
            row["kernel"] = f"{kc.family}_{variant_suffix(kc.types)}"
        row["weight_bytes"] = kc.weight_bytes
    return rows


def _common_row(program: Program, step) -> dict:
    out = program.buffers[step.outputs[0]]
    return {"name": step.name, "op": step.op, "output": out.name,
            "output_shape": list(out.shape), "macs": step.macs}


def _weight_exponents(program: Program, step) -> dict:
    """{"weights": the distinct exponents of a step's weights, from its shifts}: shift =
    e_out - e_in - e_w for weighted layers, e_out - e_gamma + z_frac for layernorm."""
    if "shift" not in step.arrays or step.arrays["shift"].ndim != 1:
        return {}
    out = program.buffers[step.outputs[0]].exp
    base = step.params["z_frac"] if step.op == "layernorm" else \
        -program.buffers[step.inputs[0]].exp
    return {"weights": sorted({int(e) for e in -step.arrays["shift"] + out + base})}


def _quantized_row(program: Program, step, layer_snr: dict[str, float]) -> dict:
    out = program.buffers[step.outputs[0]]
    return {
        **_common_row(program, step),
        "exponents": {"inputs": [program.buffers[i].exp for i in step.inputs], "output": out.exp,
                      **_weight_exponents(program, step)},
        "precision": out.dtype,
        **({"weight_precision": str(step.arrays["w"].dtype),
            "accumulator": "int64" if step.arrays["bias"].dtype.itemsize == 8 else "int32"}
           if "w" in step.arrays and "bias" in step.arrays else {}),
        "weight_bytes": int(sum(a.nbytes for a in step.arrays.values())),
        "output_bytes": out.nbytes,
        "snr_db": _finite(layer_snr[out.name]) if out.name in layer_snr else None,
    }


def _float_row(program: Program, step, errors: dict[str, float]) -> dict:
    out = program.buffers[step.outputs[0]]
    return {
        **_common_row(program, step),
        "precision": out.dtype,
        "weight_bytes": int(sum(a.nbytes for a in step.arrays.values())),
        "output_bytes": out.nbytes,
        "max_abs_error": float(errors[out.name]) if out.name in errors else None,
    }


def build_report(*, name: str, target: str, bits: int, program: Program, plan: MemoryPlan,
                 iface: ModelInterface, snr: float | None, layer_snr: dict[str, float],
                 offline: bool, states: list[dict], time_axis: int, layout,
                 warnings: list[str], verification: dict, passes: list[dict],
                 requantizations: list[dict], mixed_precision: dict | None = None,
                 sensitivity: list[dict] = (), qdq_import: list[dict] = (),
                 folded_heads: list[dict] = (),
                 output_bias_correction: dict | None = None,
                 fit: dict | None = None, footprint: dict | None = None,
                 kernels: list | None = None) -> dict:
    """report.json. A float32 program has no SNR (`snr_db` null) and no quantization sections;
    it reports its max abs error against onnxruntime instead (the C's when it was verified).
    `kernels`: each step's C kernel as emitted (the flash its constants take)."""
    layers = layer_rows(program, layer_snr, kernels)
    copies, copied = copy_stats(program)
    head = {
        "name": name, "target": target, "bits": bits, "rounding": program.rounding,
        "mode": "offline" if offline else "streaming",
        "chunk_frames": iface.chunk_frames, "time_axis": time_axis,
        "latency_frames": iface.latency_frames,
        "macs_per_call": int(sum(s.macs for s in program.steps)),
        "weight_bytes": emitted_weight_bytes(program, kernels),
        "state_bytes": iface.state_bytes,
        "arena_bytes": plan.arena_bytes,
        "arena_lower_bound_bytes": plan.lower_bound_bytes,
        "arena_strategy": plan.strategy,
        "instance_bytes": program.instance_bytes,
        "copies_per_call": copies,
        "copied_bytes_per_call": copied,
        "inplace_steps": len(plan.inplace),
        "snr_db": None if snr is None else _finite(snr),
    }
    if program.is_float:
        measured = "c_vs_onnxruntime" if "c_vs_onnxruntime_max_abs_error" in verification \
            else "reference_vs_onnxruntime"
        head.update({"max_abs_error": verification.get(f"{measured}_max_abs_error"),
                     "max_rel_error": verification.get(f"{measured}_max_rel_error"),
                     "error_measured_on": "C" if measured.startswith("c_") else "reference",
                     "error_tolerance_rel": TOLERANCE})
    io = {
        "input": {"name": program.inputs[0], "exponent": iface.input_exp,
                  "elems_per_call": iface.input_elems},
        "output": {"name": program.outputs[0], "exponent": iface.output_exp,
                   "elems_per_call": iface.output_elems, "per_frame": iface.per_frame_output,
                   "shape_per_call": [int(d) for d in layout.output_shape],
                   "time_axis": layout.output_info.axis if iface.per_frame_output else None,
                   "stored_shape": list(program.buffers[program.outputs[0]].shape),
                   # the buffer is time-major along this ONNX axis (offline and summary
                   # outputs too), None: stored in ONNX order
                   "stored_time_axis": _stored_axis(layout.output_info)},
        "states": states,
    }
    quantized = {} if program.is_float else {
        "precision": {
            "int16_layers": [r["name"] for r in layers if r["precision"] == "int16"],
            "int64_accumulator_layers": [r["name"] for r in layers
                                         if r.get("accumulator") == "int64"]},
        "requantizations": requantizations,
        "folded_heads": _jsonable(list(folded_heads)),
        **({"output_bias_correction": _jsonable(output_bias_correction)}
           if output_bias_correction else {}),
        **({"mixed_precision": mixed_precision} if mixed_precision else {}),
        "sensitivity": _jsonable(list(sensitivity)),
        **({"qdq_import": _jsonable(list(qdq_import))} if qdq_import else {}),
    }
    on_chip = {**({"fit": fit} if fit else {}), **({"footprint": footprint} if footprint else {}),
               "memory_plan": memory_plan_rows(program, plan)}
    return {**head, **io, **quantized, **on_chip, "layers": layers,
            "verification": verification, "passes": passes, "warnings": warnings}


def memory_plan_rows(program: Program, plan: MemoryPlan) -> dict:
    """report.json's `memory_plan`: every arena block (named after its first buffer; views and
    in-place results share it) with its offset, bytes and the steps it is live (-1: on entry),
    in offset order."""
    blocks = [{"buffer": b.name, "offset": plan.arena.offsets[b.name], "bytes": b.size,
               "first_step": b.first, "last_step": b.last} for b in plan.items]
    blocks.sort(key=lambda b: (b["offset"], b["first_step"], b["buffer"]))
    return {"arena_bytes": plan.arena_bytes, "steps": len(program.steps), "arena": blocks}


def emitted_weight_bytes(program: Program, kernels: list | None) -> int:
    """Bytes of the constant arrays the C holds (flash): those of each step's kernel as
    emitted (`kernels`, e.g. float32 weights of a float-accumulating conv), each array once;
    without `kernels`, the program's logical arrays."""
    if kernels is None:
        return program.weight_bytes
    arrays = {id(a): a for kc in kernels for a in kc.arrays.values()}
    return int(sum(np.asarray(a).nbytes for a in arrays.values()))


def fit_summary(target: Target, program: Program, plan: MemoryPlan, footprint: dict,
                ram_budget: int | None, kernels: list | None = None) -> dict:
    """report.json's `fit`: the totals that decide whether the model fits the chip. RAM per
    stream: the arena, one `<name>_t` and the worst-case stack of a call (measured by
    codegen/footprint.py; null when it could not be); flash: weights, code and other constants
    of src/*.c as compiled for the target (or an estimate, `estimate` true)."""
    measured = footprint.get("measured", False)
    stack = footprint.get("stack_bytes") if measured else None
    ram_total = plan.arena_bytes + program.instance_bytes + (stack or 0)
    budget = ram_budget or target.internal_ram_bytes
    flash = {"weight_bytes": emitted_weight_bytes(program, kernels),
             "code_bytes": footprint.get("code_bytes"),
             "const_bytes": footprint.get("const_bytes"),  # weights, tables, kernel parameters
             "data_bytes": footprint.get("data_bytes"),
             "total_bytes": (footprint["code_bytes"] + footprint["const_bytes"]
                             + footprint["data_bytes"]) if measured else None}
    return {
        "target_ram": target.ram_name, "target_ram_bytes": target.internal_ram_bytes,
        "ram_budget_bytes": budget,
        "ram": {"arena_bytes": plan.arena_bytes, "instance_bytes": program.instance_bytes,
                "stack_bytes": stack, "total_bytes": ram_total,
                "share_of_target_ram": round(ram_total / target.internal_ram_bytes, 5)},
        "flash": flash,
        "fits_ram_budget": ram_total <= budget,
        "measured_with": (f"{footprint['compiler']} {footprint['flags']}" if measured else None),
        "estimate": not (measured and footprint["exact_for_target"]),
    }


def markdown(report: dict) -> str:
    r = report
    float32 = r["bits"] == 32
    accuracy = (f"- max abs error vs onnxruntime ({r['error_measured_on']}, float32): "
                f"**{_sci(r['max_abs_error'])}** ({_sci(r['max_rel_error'])} x max|output|; "
                f"tolerance {r['error_tolerance_rel']:g})" if float32
                else f"- output SNR vs float (calibration data): **{r['snr_db']} dB**")
    lines = [f"# {r['name']}: Rill report", "",
             f"- target **{r['target']}**, " + ("float32, no quantization" if float32 else
                                               f"{r['bits']}-bit, rounding "
                                               f"{r['rounding'].replace('_', ' ')}"),
             f"- mode **{r['mode']}**, {r['chunk_frames']} frame(s) per call, "
             f"latency {r['latency_frames']} frame(s)",
             accuracy,
             f"- MACs per call: {r['macs_per_call']:,}",
             f"- weights (flash): {r['weight_bytes']:,} B; state: {r['state_bytes']:,} B "
             f"(`<name>_t`: {r['instance_bytes']:,} B with the windows' new frames); "
             f"scratch arena: {r['arena_bytes']:,} B (lower bound {r['arena_lower_bound_bytes']:,} B, "
             f"{r['arena_strategy']})",
             f"- data movement per call: {r['copies_per_call']} copies/fills "
             f"({r['copied_bytes_per_call']:,} B); {r['inplace_steps']} step(s) in place", ""]
    lines += fit_section(r)
    if r["warnings"]:
        lines += ["## Warnings", ""] + [f"- {w}" for w in r["warnings"]] + [""]
    lines += _float_layers(r) if float32 else _quantized_layers(r)
    lines += picture_lines(r, "layer_snr" if not float32 else "layer_error",
                           "per-layer max abs error" if float32 else "per-layer SNR")
    lines += memory_plan_section(r)
    if not float32:
        lines += precision_sections(r)
    lines += ["", "## State pairs", ""]
    if r["states"]:
        lines += ["| input | output | kind | holds | shape | init | bytes |",
                  "|---|---|---|---|---|---|---|"]
        lines += [f"| {_code(s['input'])} | {_code(s['output'])} | {s['kind']} | "
                  f"{_cell(s['holds'] or '-')} | {s['shape']} | {s['init']:g} | {s['bytes']} |"
                  for s in r["states"]]
    else:
        lines.append("none")
    lines += latency_section(r)
    v = r["verification"]
    lines += ["", "## Verification", ""] + [f"- {k}: {val}" for k, val in v.items()] + [""]
    return "\n".join(lines)


def _cell(text) -> str:
    """Text that cannot break a Markdown table row (names may hold | or newlines)."""
    return " ".join(str(text).replace("|", "\\|").splitlines())


def _code(text) -> str:
    text = _cell(text)
    fence = "``" if "`" in text else "`"
    return f"{fence} {text} {fence}" if fence == "``" else f"`{text}`"


def _kib(n: int | None) -> str:
    return "-" if n is None else f"{n:,} B ({n / KIB:.1f} KiB)"


def fit_section(r: dict) -> list[str]:
    """## Does it fit: flash and internal RAM per stream against the target's budget."""
    fit, fp = r.get("fit"), r.get("footprint") or {}
    if not fit:
        return []
    target, ram, flash = r["target"], fit["ram"], fit["flash"]
    measured = fp.get("measured", False)
    share = ram["share_of_target_ram"] * 100
    stack = (_kib(ram["stack_bytes"]) if ram["stack_bytes"] is not None
             else f"not measured ({_cell(fp.get('reason', 'no compiler'))})")
    entry = f" (`{fp['stack_function']}`)" if fp.get("stack_function") else ""
    budget = ("" if fit["ram_budget_bytes"] == fit["target_ram_bytes"]
              else f", budget {fit['ram_budget_bytes']:,} B (--ram-budget)")
    lines = [f"## Does it fit on the {target}?", "",
             "| what | bytes | where |", "|---|---|---|",
             f"| weights | {_kib(flash['weight_bytes'])} | flash (`static const`) |"]
    if measured:
        lines += [f"| code (`.text`) | {_kib(flash['code_bytes'])} | flash |",
                  f"| all constants: weights, tables, kernel parameters (`.rodata`) | "
                  f"{_kib(flash['const_bytes'])} | flash |",
                  f"| **flash total** | **{_kib(flash['total_bytes'])}** | code + constants"
                  f"{' + initialized data' if flash['data_bytes'] else ''} |"]
    else:
        lines.append(f"| code | not measured ({_cell(fp.get('reason', 'no compiler'))}) | flash |")
    lines += [f"| scratch arena | {_kib(ram['arena_bytes'])} | internal RAM (`.bss`; PSRAM with "
              f"`<NAME>_ARENA_ATTR`) |",
              f"| one stream's `<name>_t` (state {r['state_bytes']:,} B) | "
              f"{_kib(ram['instance_bytes'])} | internal RAM, where the caller puts it |",
              f"| worst-case stack of one call{entry} | {stack} | the calling task's stack |",
              f"| **internal RAM total** | **{_kib(ram['total_bytes'])}** | {share:.1f} % of the "
              f"{target}'s {fit['target_ram_bytes'] // KIB} KiB {fit['target_ram']}{budget} |",
              ""]
    lines += _fit_notes(r, fit, fp)
    return lines + [""]


def _fit_notes(r: dict, fit: dict, fp: dict) -> list[str]:
    target = r["target"]
    notes = []
    if fp.get("measured"):
        how = ("measured" if not fit["estimate"] else
               f"an **estimate** for the {target}: no compiler for its core here, so the "
               f"{fp['isa']} build stands in (code size and frames differ by ISA)")
        notes.append(f"- Code, constants and stack: `{fit['measured_with']}` on `src/*.c` "
                     f"({fp['isa']}), {how}. Stack: {fp['stack_method']}"
                     f" (`{' -> '.join(fp['stack_path'])}`)"
                     + (f"; C library calls not counted: {', '.join(fp['stack_not_counted'])}"
                        if fp["stack_not_counted"] else "")
                     + ("" if fp["stack_bounded"] else
                        "; a frame of dynamic size or a recursion makes this a lower bound")
                     + ".")
    verdict = ("fits" if fit["fits_ram_budget"] else "does NOT fit")
    notes += [f"- RAM per stream {verdict} in the budget of {fit['ram_budget_bytes']:,} B; each "
              f"more stream (`<name>_t`) adds {fit['ram']['instance_bytes']:,} B, the arena is "
              f"shared (unless `<NAME>_CALLER_ARENA`).",
              f"- ESP-IDF itself takes a large share of the {fit['target_ram']}: its static data "
              "and IRAM code, the FreeRTOS task stacks, Wi-Fi/Bluetooth buffers and caches all "
              "come out of it, and how much depends on the configuration: compare the totals "
              "with the free heap ESP-IDF logs at start-up (`heap_init`) and `idf.py size` of "
              f"your application ([memory types]({IDF_MEMORY_TYPES.format(target=target)}), "
              f"[heap]({IDF_HEAP.format(target=target)})).",
              "- PSRAM is optional: `-D<NAME>_ARENA_ATTR=EXT_RAM_BSS_ATTR` moves the arena there "
              "(slower to access); raise `--ram-budget` accordingly."]
    return notes


def picture_lines(r: dict, key: str, what: str) -> list[str]:
    """A link to a PNG next to the report, or the one-line note saying why there is none."""
    plots = r.get("plots") or {}
    if plots.get(key):
        return ["", f"![{what}]({plots[key]})"]
    if plots.get("skipped"):
        return ["", f"({what} picture skipped: {plots['skipped']})"]
    return []


def memory_plan_section(r: dict) -> list[str]:
    plan = r.get("memory_plan")
    if not plan:
        return []
    lines = ["", "## Memory plan", "",
             f"The scratch arena: {plan['arena_bytes']:,} B over {plan['steps']} steps. Each block "
             "is live from the step that first writes it to the last step that reads it "
             "(-1: on entry); views and in-place results share their block's bytes. States live "
             "in `<name>_t` (below).", ""]
    if plan["arena"]:
        lines += ["| block | offset | bytes | live steps |", "|---|---|---|---|"]
        lines += [f"| {_code(b['buffer'])} | {b['offset']:,} | {b['bytes']:,} | "
                  f"{b['first_step']}..{b['last_step']} |" for b in plan["arena"]]
    else:
        lines.append("The arena is empty.")
    return lines + picture_lines(r, "memory_plan", "memory plan over the schedule")


def latency_section(r: dict) -> list[str]:
    chunk, lat = r["chunk_frames"], r["latency_frames"]
    per_frame = r["output"]["per_frame"]
    lines = ["", "## Latency", ""]
    if per_frame:
        lines.append(f"- An output frame leaves {lat} frame(s) after its input frame "
                     f"(look-ahead; `<NAME>_LATENCY_FRAMES`), plus up to {chunk - 1} frame(s) "
                     f"waiting for a call's {chunk}-frame chunk to fill: at most {lat + chunk - 1} "
                     "frame(s) and the time of one call.")
    else:
        lines.append(f"- Every call ({chunk} frame(s)) outputs the summary of the window ending "
                     f"with its last frame: a frame waits at most {chunk - 1} frame(s) for its "
                     "call, plus the time of one call.")
    lines.append(f"- One call: {r['macs_per_call']:,} MACs and {r['copies_per_call']} "
                 f"copies/fills ({r['copied_bytes_per_call']:,} B).")
    return lines


def _quantized_layers(r: dict) -> list[str]:
    lines = ["## Layers", "", "One row per step of a call (views cost nothing and have no row). "
             "Exponents: real = q · 2^e; SNR of the layer's output against the float model "
             "on calibration data.", "",
             "| # | node | kernel | output shape | precision | exponents in → out (weights) | "
             "MACs | weights B | output B | SNR dB |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for i, l in enumerate(r["layers"]):
        e = l["exponents"]
        precision = l["precision"] + (f" (w {l['weight_precision']}, acc {l['accumulator']})"
                                      if "accumulator" in l else "")
        lines.append(f"| {i} | {_code(l['name'])} | {l['op']} | {l['output_shape']} | "
                     f"{precision} | {_exponents(e)} | {l['macs']:,} | {l['weight_bytes']:,} | "
                     f"{l['output_bytes']:,} | {_fmt2(l['snr_db'])} |")
    return lines


def _exponents(e: dict) -> str:
    text = f"{', '.join(map(str, e['inputs']))} → {e['output']}"
    w = e.get("weights")
    if w:
        text += f" (w {w[0]}" + (f"..{w[-1]})" if len(w) > 1 else ")")
    return text


def _fmt2(x) -> str:
    return "-" if x is None else f"{x:.2f}"


def _float_layers(r: dict) -> list[str]:
    lines = ["## Layers", "", "| # | node | kernel | output shape | MACs | weights B | output B | "
             "max abs error vs onnxruntime |", "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {i} | {_code(l['name'])} | {l['op']} | {l['output_shape']} | {l['macs']:,} | "
              f"{l['weight_bytes']:,} | {l['output_bytes']:,} | {_sci(l['max_abs_error'])} |"
              for i, l in enumerate(r["layers"])]
    return lines


def _sci(x) -> str:
    return "-" if x is None else f"{x:.2e}"


def precision_sections(r: dict) -> list[str]:
    """Mixed precision, per-layer sensitivity and imported QDQ parameters, when present."""
    lines = []
    p = r["precision"]
    lines += ["", "## Precision", "",
              f"- int16 layers: {', '.join(f'`{n}`' for n in p['int16_layers']) or 'none'}",
              f"- int64 accumulators: "
              f"{', '.join(f'`{n}`' for n in p['int64_accumulator_layers']) or 'none'}",
              f"- requantized Concat inputs: {len(r.get('requantizations', []))}"]
    lines += [f"  - `{q['tensor']}` into `{q['node']}`: int{q['from_bits']} 2^{q['from_exp']} -> "
              f"int{q['to_bits']} 2^{q['to_exp']} ({q['reason']})"
              for q in r.get("requantizations", [])]
    lines += accuracy_rewrite_lines(r)
    m = r.get("mixed_precision")
    if m:
        lines += [f"- --snr-target {m['target_db']} dB: reached {m['achieved_db']} dB with "
                  f"{len(m['int16_layers'])} promotion(s) for {m['added_bytes']:,} extra bytes "
                  f"(every layer int16: {m['all_int16_added_bytes']:,} B; "
                  f"{m['evaluations']} measured configurations)"]
    if r.get("sensitivity"):
        lines += ["", "## Sensitivity (one layer quantized, the rest float)", "",
                  "| layer | op | SNR int8 dB | SNR int16 dB | int16 costs B |", "|---|---|---|---|---|"]
        lines += [f"| `{s['layer']}` | {s['op']} | {_fmt(s.get('snr_int8_db'))} | "
                  f"{_fmt(s.get('snr_int16_db'))} | {s['int16_extra_bytes']:,} |"
                  for s in r["sensitivity"]]
    if r.get("qdq_import"):
        lines += ["", "## Imported quantization (QDQ)", "",
                  "| kind | tensor | bits | exponents | note |", "|---|---|---|---|---|"]
        lines += [f"| {q.get('kind')} | `{q.get('tensor')}` | {q.get('bits')} | "
                  f"{q.get('exponents')} | {q.get('note') or ''} |" for q in r["qdq_import"]]
    return lines


def accuracy_rewrite_lines(r: dict) -> list[str]:
    """What fold-linear-head and correct-output-bias did (docs/quantization.md)."""
    lines = [f"- linear head folded into `{f['gemm']}`: {', '.join(f'`{n}`' for n in f['folded'])}"
             f" -> one Gemm over the last {f['window_frames']} frames (MACs per call "
             f"{f['macs_per_call_before']:,} -> {f['macs_per_call_after']:,})"
             for f in r.get("folded_heads", [])]
    b = r.get("output_bias_correction")
    if b:
        lines.append(f"- output bias correction of `{b['step']}`: "
                     f"{'applied' if b['applied'] else 'not applied'} (mean output error up to "
                     f"{b['max_abs_correction']:.3g}; held-back calibration MSE "
                     f"{b['held_out_mse_before']:.3g} -> {b['held_out_mse_after']:.3g})")
    return lines


def _fmt(x) -> str:
    return "-" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.1f}"
