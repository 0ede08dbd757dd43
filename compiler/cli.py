"""Command line: `python -m compiler compile MODEL.onnx --target esp32p4 ...`."""
from __future__ import annotations

import argparse
import sys
import traceback
from pathlib import Path

import numpy as np

from codegen.names import model_name
from compiler.context import FLOAT_BITS, SUPPORTED_BITS, Options
from compiler.errors import RillError, UsageError
from compiler.loader import parse_input_shape
from compiler.progress import NORMAL, QUIET, VERBOSE, Progress
from compiler.state_pairs import parse_state_pair
from compiler.targets import TARGETS, get_target

CALIBRATION_METHODS = ("minmax", "percentile", "kl", "mse")


class RillArgumentParser(argparse.ArgumentParser):
    """argparse with Rill's one-line error format (exit code 2 for usage errors)."""

    def error(self, message: str):
        self.exit(2, f"rill: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = RillArgumentParser(
        prog="python -m compiler",
        description="Rill: compile an ONNX time-series model into a streaming ESP-IDF component.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=RillArgumentParser)
    c = sub.add_parser("compile", help="compile a model into OUT/<name>/",
                       description="Compile MODEL into a verified ESP-IDF component in OUT/<name>/. "
                                   "By default it prints on stderr a line when a long step starts "
                                   "(calibration, refining exponents, the --snr-target search, "
                                   "measuring the SNR, verification), a progress line at most "
                                   "every 2 s inside one and the warnings, and on stdout a "
                                   "one-line summary (SNR, bytes, RAM per stream); errors "
                                   "always (stderr).")
    c.add_argument("model", type=Path, help="the .onnx file (external data next to it is read)")
    c.add_argument("--target", default="esp32p4", help=f"chip: {', '.join(TARGETS)} (default esp32p4)")
    c.add_argument("--chunk", type=int, default=None,
                   help="input frames per call: a multiple of the model's cumulative time "
                        "downsampling, dividing the window when the output summarizes it "
                        "(default: the smallest legal chunk)")
    c.add_argument("--calib", type=Path, default=None,
                   help="calibration inputs: .npy [N, *input_shape] (or [N, *input_shape[1:]] "
                        "when the batch is 1), or .npz with one array per input name")
    c.add_argument("--bits", type=int, default=8,
                   help="precision of every layer: 8 (int8, default) or 16 (int16), quantized "
                        "with power-of-two exponents; or 32: float32 weights and activations, "
                        "no quantization and no calibration (both chips have a single-precision "
                        "FPU), within 1e-5 x max|output| of onnxruntime")
    q = c.add_argument_group("quantization")
    q.add_argument("--int16", action="append", default=[], metavar="LAYER[,LAYER...]",
                   help="promote these layers (ONNX node or output tensor names) to int16 "
                        "activations and weights (repeatable)")
    q.add_argument("--snr-target", type=float, default=None, metavar="DB",
                   help="promote layers to int16, cheapest first, until the output SNR on the "
                        "calibration data reaches DB")
    q.add_argument("--calibration", choices=CALIBRATION_METHODS, default=None,
                   help="how activation exponents are chosen from the calibration data "
                        "(default: mse, the one that measures best)")
    q.add_argument("--percentile", type=float, default=99.99, metavar="P",
                   help="the |x| percentile kept unclipped by --calibration percentile "
                        "(default 99.99)")
    q.add_argument("--qdq", action="store_true",
                   help="also write OUT/<name>/<name>.qdq.onnx: the quantized model as "
                        "QuantizeLinear/DequantizeLinear ONNX that onnxruntime runs")
    q.add_argument("--bias-correction", choices=("auto", "on", "off"), default="auto",
                   help="fold the mean error of quantized weights into each layer's bias, and the "
                        "quantized program's mean output error into the output layer's bias: "
                        "auto (default) keeps each only where it lowers the error")
    c.add_argument("--out", type=Path, default=Path("build"), help="output root (default build)")
    c.add_argument("--name", default=None, help="C prefix (default: the model file's stem, sanitized)")
    c.add_argument("--offline", action="store_true", help="compile the whole-window model instead")
    c.add_argument("--fold-linear", choices=("auto", "on", "off"), default="auto",
                   help="fold linear layers (1-D Conv without activation, AveragePool) between a "
                        "'last N frames' slice and its Gemm into that Gemm: fewer rounding points. "
                        "auto (default): only when it costs no extra MACs per call; on: whenever "
                        "legal (more accuracy, maybe more MACs/flash); off: never")
    c.add_argument("--input-shape", action="append", default=[], metavar="[NAME=]D0,D1,...",
                   help="pin an input's shape (repeatable); needed for dynamic dims")
    c.add_argument("--time-axis", type=int, default=None,
                   help="axis of the input that is time, any axis (default: the last of a "
                        "rank-3/4 input [N, C, T] / [N, C, F, T], axis 0 of a rank-1/2 input "
                        "[T] / [T, F])")
    c.add_argument("--state", action="append", default=[], metavar="IN=OUT",
                   help="a state pair the model already has (repeatable): input IN is fed the "
                        "previous call's output OUT, zeros at first. Such a model is already a "
                        "per-call model: it runs as given, its time-series input's frames are the "
                        "chunk, and nothing else is cut. Without --state, pairs are detected when "
                        "every extra input matches one output of the same shape by name "
                        "(state->stateN, h->hn, state_in->state_out)")
    c.add_argument("--dump-passes", type=Path, default=None, metavar="DIR",
                   help="write the ONNX graph after every pass into DIR (open in Netron)")
    c.add_argument("--ram-budget", type=int, default=None, metavar="BYTES",
                   help="RAM the arena, one stream's state and a call's stack may use (default: "
                        "the target's internal RAM; raise it when the arena goes to PSRAM)")
    c.add_argument("--compact-weights", action="store_true",
                   help="keep every conv/Gemm weight int8 in flash (by default, on a chip with a "
                        "fused multiply-add FPU, an int8 layer that computes fewer than 4 frames "
                        "per call holds its weights as float32 for speed: 4x their flash; "
                        "report.md gives the total)")
    c.add_argument("--no-verify", action="store_true",
                   help="skip compiling the generated C: no host build and run against the "
                        "integer reference, and no target build, so report.md's code size and "
                        "stack are not measured")
    c.add_argument("--force", action="store_true", help="overwrite OUT/<name> if it exists")
    talk = c.add_mutually_exclusive_group()
    talk.add_argument("-q", "--quiet", action="store_true",
                      help="print only errors: no progress, warnings or summary (the warnings "
                           "are in report.md; the exit code says whether it worked)")
    talk.add_argument("-v", "--verbose", action="store_true",
                      help="also print every pass with its time and every progress line of the "
                           "long steps (not at most one per 2 s), each with the seconds since the "
                           "start, and the traceback of an internal error")
    return parser


def load_calibration(path: Path | None) -> np.ndarray | dict[str, np.ndarray] | None:
    """A .npy array, or the arrays of a .npz by name (matched to the model's input later)."""
    if path is None:
        return None
    if not path.is_file():
        raise UsageError(f"calibration file not found: {path}")
    try:
        data = np.load(path, allow_pickle=False)
        return dict(data.items()) if isinstance(data, np.lib.npyio.NpzFile) else data
    except Exception:
        raise RillError(f"{path}: not a readable .npy/.npz file") from None


def options_from(args: argparse.Namespace) -> Options:
    target = get_target(args.target)
    if args.bits not in SUPPORTED_BITS:
        raise UsageError(f"--bits {args.bits}: use 8 (int8), 16 (int16) or 32 (float32)")
    if args.bits == FLOAT_BITS:
        quantizing = [flag for flag, used in (("--int16", args.int16), ("--snr-target",
                      args.snr_target is not None), ("--qdq", args.qdq),
                      ("--calibration", args.calibration is not None)) if used]
        if quantizing:
            raise UsageError(f"{', '.join(quantizing)}: quantization options, but --bits 32 keeps "
                             "the model in float32")
    if not 0 < args.percentile <= 100:
        raise UsageError("--percentile must be in (0, 100]")
    if args.chunk is not None and args.chunk <= 0:
        raise UsageError("--chunk must be a positive number of frames")
    name = args.name or model_name(args.model.stem)
    if name != model_name(name):
        raise UsageError(f"--name '{name}' is not a valid C prefix; try '{model_name(name)}'")
    return Options(target=target, bits=args.bits, chunk=args.chunk, offline=args.offline,
                   time_axis=args.time_axis, calib=load_calibration(args.calib), calib_path=args.calib,
                   name=name,
                   verify=not args.no_verify, ram_budget=args.ram_budget,
                   state_pairs=[parse_state_pair(s) for s in args.state],
                   int16_layers=[n.strip() for v in args.int16 for n in v.split(",") if n.strip()],
                   snr_target=args.snr_target, calibration=args.calibration,
                   percentile=args.percentile, bias_correction=args.bias_correction,
                   dump_qdq=args.qdq, fold_linear=args.fold_linear,
                   float_weights=not args.compact_weights)


def run_compile(args: argparse.Namespace) -> int:
    from compiler.pipeline import compile_model
    options = options_from(args)
    shapes = [parse_input_shape(s) for s in args.input_shape]

    level = QUIET if args.quiet else VERBOSE if args.verbose else NORMAL
    result = compile_model(args.model, options, args.out, input_shapes=shapes,
                           dump_dir=args.dump_passes, force=args.force, progress=Progress(level))
    if level > QUIET:
        for w in result.warnings:
            print(f"rill: WARNING: {w}", file=sys.stderr)
        print(f"rill: {summary(result.out_dir, result.report)}")  # the result: stdout
    return 0


def summary(out_dir: Path, r: dict) -> str:
    """The one line a successful compile ends with."""
    float32 = r["bits"] == FLOAT_BITS
    accuracy = (f"max error {r['max_rel_error']:.2g} x max|output| vs onnxruntime"
                if float32 else f"SNR {r['snr_db']} dB")
    precision = "float32" if float32 else f"int{r['bits']}"
    ram = r["fit"]["ram"]
    stack = "" if ram["stack_bytes"] is not None else " (stack not measured)"
    flash = r["fit"]["flash"]["total_bytes"]
    return (f"wrote {out_dir} ({r['target']}, {precision}, {r['mode']}, "
            f"chunk {r['chunk_frames']}, latency {r['latency_frames']}): {accuracy}, "
            f"weights {r['weight_bytes']} B, state {r['state_bytes']} B, arena {r['arena_bytes']} B "
            f"(lower bound {r['arena_lower_bound_bytes']} B), {r['macs_per_call']} MACs/call; "
            f"RAM per stream {ram['total_bytes']} B{stack} = "
            f"{100 * ram['share_of_target_ram']:.1f} % of {r['fit']['target_ram']}"
            + (f", flash {flash} B" if flash is not None else ""))


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: usage errors exit 2, --help exits 0
        return int(exc.code or 0)
    try:
        return run_compile(args)
    except RillError as err:
        print(f"rill: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("rill: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug in Rill: still one clear message, traceback on request
        if getattr(args, "verbose", False):
            traceback.print_exc()
        print(f"rill: internal error: {type(exc).__name__}: {exc}. This is a Rill bug; please "
              "report it with the model (--verbose shows the traceback)", file=sys.stderr)
        return 1
