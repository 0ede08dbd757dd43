"""Int8 output SNR of every calibration recipe and bias-correction mode, on held-out inputs.

Compiles each model through the compiler API (the same passes as `rill compile`, no C build)
and compares the integer reference (bit-exact with the generated C) with the float model in
onnxruntime on inputs the calibration never saw:

- the tutorial TCN (examples/tcn/make_tcn.py, seed 0), calibrated on make_calib(64, seed=1)
  (= examples/tcn/calib.npy), held out: default_rng(12345).standard_normal((20, 1, 16, 24));
- every tests/fixtures/streaming/*.dynamo.onnx with its .calib.npy / .heldout.npy.

SNR is pooled over the held-out inputs: 10*log10(sum ref^2 / sum (ref - q)^2).

    .venv/bin/python bench/quant/calibration_methods.py [--recipes mse,kl] [--bias off,on,auto]
        [--refine on,off] [--models tcn,upsampler] [--bits 8] [--weights mse,minmax]
        [--json out.json]

`--weights` compares the per-channel weight exponent rules (passes.quantize.WEIGHT_RECIPE);
`--refine off` measures the recipe's exponents alone, without the refine-exponents pass (output-
SNR coordinate descent that starts from them).
Prints one row per model and one column per (recipe, bias correction), plus the mean.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "examples" / "tcn"))

from compiler.context import CompileContext, Options
from compiler.graph import to_runnable
from compiler.pipeline import (Compilation, evaluate, evaluate_per_call, load_graph,
                               prepare_calibration)
from compiler.streams import call_streams
from compiler.targets import get_target
from passes import quantize
from passes.streaming_cut import is_per_call_model, time_series_input

FIXTURES = ROOT / "tests" / "fixtures" / "streaming"
RECIPES = ["minmax", "percentile", "kl", "mse"]
BIAS_MODES = ["off", "on", "auto"]


def cases(work: Path) -> dict[str, tuple[Path, np.ndarray, np.ndarray]]:
    """name -> (model path, calibration inputs, held-out inputs)."""
    from make_tcn import build_tcn, make_calib
    tcn = work / "tcn.onnx"
    onnx.save(build_tcn("default", seed=0), str(tcn))
    out = {"tcn": (tcn, make_calib(64, seed=1),
                   np.random.default_rng(12345).standard_normal((20, 1, 16, 24)).astype(np.float32))}
    for path in sorted(FIXTURES.glob("*.dynamo.onnx")):
        name = path.name.split(".")[0]
        out[name] = (path, np.load(FIXTURES / f"{name}.calib.npy"),
                     np.load(FIXTURES / f"{name}.heldout.npy"))
    return out


def held_out_snr(path: Path, calib: np.ndarray, heldout: np.ndarray, *, calibration: str,
                 bias_correction: str, refine: bool = True, bits: int = 8,
                 target: str = "esp32p4") -> float:
    """Compile `path` (passes only) and return the output SNR on `heldout` in dB.
    `calibration="default"`: no --calibration (the compiler's default, which at int16 is the
    calibration range with a margin); `refine=False` skips the refine-exponents pass."""
    options = Options(target=get_target(target), bits=bits, calib=calib, verify=False,
                      calibration=None if calibration == "default" else calibration,
                      bias_correction=bias_correction)
    _, graph = load_graph(path, options, [], lambda s: None)
    ctx = CompileContext(graph, options, source=path)
    ctx.facts["skip_refine"] = not refine
    shape = tuple(time_series_input(graph, {i for i, _ in options.state_pairs}).shape)
    options.calib = prepare_calibration(options.calib, shape, "calib", ctx.warn)
    comp = Compilation(ctx)
    comp.run_passes()
    program, layout, stream = ctx.facts["program"], comp.layout(), ctx.facts.get("streaming")
    offline = to_runnable(ctx.facts.get("offline_graph", ctx.graph))
    if is_per_call_model(stream):
        return evaluate_per_call(program, layout, offline, stream,
                                 call_streams(heldout, layout.time_axis))
    return evaluate(program, layout, offline, None, stream, heldout)[0]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipes", default=",".join(RECIPES),
                    help="comma-separated; 'default' = no --calibration (the compiler's choice)")
    ap.add_argument("--bias", default=",".join(BIAS_MODES))
    ap.add_argument("--refine", default="on,off",
                    help="with and/or without the refine-exponents pass (on,off)")
    ap.add_argument("--weights", default=None,
                    help="weight exponent rules to compare (default: the compiler's)")
    ap.add_argument("--models", default=None, help="comma-separated subset")
    ap.add_argument("--bits", type=int, default=8)
    ap.add_argument("--target", default="esp32p4")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args(argv)
    recipes, modes = args.recipes.split(","), args.bias.split(",")
    weight_rules = args.weights.split(",") if args.weights else [quantize.WEIGHT_RECIPE]
    refines = [r == "on" for r in args.refine.split(",")]
    columns = [(r, b, w, f) for f in refines for w in weight_rules for r in recipes for b in modes]
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as work:
        all_cases = cases(Path(work))
        wanted = args.models.split(",") if args.models else list(all_cases)
        for name in wanted:
            path, calib, heldout = all_cases[name]
            row = results.setdefault(name, {})
            for recipe, mode, rule, refine in columns:
                quantize.WEIGHT_RECIPE = rule
                start = time.perf_counter()
                snr = held_out_snr(path, calib, heldout, calibration=recipe, bias_correction=mode,
                                   refine=refine, bits=args.bits, target=args.target)
                key = label(recipe, mode, rule, len(weight_rules) > 1, refine)
                row[key] = snr
                print(f"  {name:18s} {key:24s} {snr:7.2f} dB  ({time.perf_counter() - start:.1f} s)",
                      file=sys.stderr, flush=True)
    keys = [label(r, b, w, len(weight_rules) > 1, f) for r, b, w, f in columns]
    print(table(results, keys))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


def label(recipe: str, mode: str, rule: str, with_rule: bool, refine: bool) -> str:
    return (f"{recipe}/bc-{mode}" + (f"/w-{rule}" if with_rule else "")
            + ("" if refine else "/no-refine"))


def table(results: dict[str, dict[str, float]], keys: list[str]) -> str:
    """A markdown table: one row per model, one column per setting, and the mean row."""
    lines = ["| model | " + " | ".join(keys) + " |", "|---|" + "---:|" * len(keys)]
    for name, row in results.items():
        lines.append(f"| {name} | " + " | ".join(f"{row[k]:.2f}" for k in keys) + " |")
    means = [np.mean([row[k] for row in results.values()]) for k in keys]
    lines.append("| **mean** | " + " | ".join(f"**{m:.2f}**" for m in means) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
