"""report.json for tools and report.md for people (contract §4)."""
from __future__ import annotations

import math

import numpy as np

from codegen.emit_c import ModelInterface
from codegen.memory import MemoryPlan, copy_stats
from runtime.ir import Program
from runtime.reference.f32 import TOLERANCE


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


def layer_rows(program: Program, per_layer: dict[str, float]) -> list[dict]:
    """One row per step; `per_layer` is the SNR in dB of each tensor (a quantized program) or
    its max abs error against onnxruntime (a float32 program: no exponents, no SNR)."""
    return [_float_row(program, step, per_layer) if program.is_float
            else _quantized_row(program, step, per_layer) for step in program.steps]


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
                 output_bias_correction: dict | None = None) -> dict:
    """report.json. A float32 program has no SNR (`snr_db` null) and no quantization sections;
    it reports its max abs error against onnxruntime instead (the C's when it was verified)."""
    layers = layer_rows(program, layer_snr)
    copies, copied = copy_stats(program)
    head = {
        "name": name, "target": target, "bits": bits, "rounding": program.rounding,
        "mode": "offline" if offline else "streaming",
        "chunk_frames": iface.chunk_frames, "time_axis": time_axis,
        "latency_frames": iface.latency_frames,
        "macs_per_call": int(sum(s.macs for s in program.steps)),
        "weight_bytes": program.weight_bytes,
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
    return {**head, **io, **quantized, "layers": layers, "verification": verification,
            "passes": passes, "warnings": warnings}


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
    if r["warnings"]:
        lines += ["## Warnings", ""] + [f"- {w}" for w in r["warnings"]] + [""]
    lines += _float_layers(r) if float32 else _quantized_layers(r)
    if not float32:
        lines += precision_sections(r)
    lines += ["", "## State pairs", ""]
    if r["states"]:
        lines += ["| input | output | kind | holds | shape | init | bytes |",
                  "|---|---|---|---|---|---|---|"]
        lines += [f"| `{s['input']}` | `{s['output']}` | {s['kind']} | {s['holds'] or '-'} | "
                  f"{s['shape']} | {s['init']:g} | {s['bytes']} |" for s in r["states"]]
    else:
        lines.append("none")
    v = r["verification"]
    lines += ["", "## Verification", ""] + [f"- {k}: {val}" for k, val in v.items()] + [""]
    return "\n".join(lines)


def _quantized_layers(r: dict) -> list[str]:
    lines = ["## Layers", "", "| # | node | kernel | output shape | precision | MACs | "
             "exp in → out | weights B | SNR dB |", "|---|---|---|---|---|---|---|---|---|"]
    for i, l in enumerate(r["layers"]):
        e = l["exponents"]
        precision = l["precision"] + (f" (w {l['weight_precision']}, acc {l['accumulator']})"
                                      if "accumulator" in l else "")
        lines.append(f"| {i} | `{l['name']}` | {l['op']} | {l['output_shape']} | {precision} | "
                     f"{l['macs']:,} | {e['inputs']} → {e['output']} | {l['weight_bytes']:,} | "
                     f"{l['snr_db']} |")
    return lines


def _float_layers(r: dict) -> list[str]:
    lines = ["## Layers", "", "| # | node | kernel | output shape | MACs | weights B | "
             "max abs error vs onnxruntime |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {i} | `{l['name']}` | {l['op']} | {l['output_shape']} | {l['macs']:,} | "
              f"{l['weight_bytes']:,} | {_sci(l['max_abs_error'])} |"
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
