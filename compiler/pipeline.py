"""The compile driver: the ordered pass pipeline, then codegen, verification and the output folder."""
from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import onnx

from codegen.component import write_component, write_report
from codegen.emit_c import ModelInterface, SourceWriter
from codegen.kernel_select import Selection
from codegen.memory import plan_memory
from codegen.footprint import measure_footprint
from codegen.plots import write_plots
from codegen.report import build_report, fit_summary, markdown
from compiler.context import FLOAT_BITS, SUPPORTED_BITS, CompileContext, Options
from codegen.qdq_export import export_qdq
from compiler.errors import RillError, VerificationError
from compiler.graph import import_model, static_shape, to_runnable
from compiler.float_check import (OnnxReference, float_inputs, reference_errors,
                                  verify_c_float)
from compiler.layer_snr import layer_snr, layer_snr_per_call, max_abs_error
from compiler.host_build import build_host, run_host, run_selftest
from compiler.mixed_precision import (RANK_SAMPLES, Evaluation, PrecisionSearch, Promotion,
                                      SearchResult, program_bytes)
from compiler.loader import (check_onnxruntime_runs, load_onnx, pin_input_shapes,
                             pins_from_calibration, runtime_inputs)
from compiler.ort import session
from compiler.pass_manager import Pass, PassManager, PassRecord
from compiler.progress import Progress
from compiler.sensitivity import layer_sensitivity
from compiler.simulate import StreamLayout, run_integer, stream_layout
from runtime.ir import Program
from compiler.state_pairs import resolve_state_pairs, time_series_name
from compiler.streams import CALLS_PER_STREAM, aligned, call_streams, run_float_stream, snr_db, stitch
from passes.assign_precision import AssignPrecision, layer_nodes
from passes.calibrate import Calibrate
from passes.check_support import CheckSupport
from passes.correct_output_bias import CorrectOutputBias
from passes.div_by_constant import DivByConstant
from passes.fold_chomp import FoldChomp
from passes.fold_constants import FoldConstants
from passes.fold_linear_head import FoldLinearHead
from passes.fuse_activation import FuseActivation
from passes.fuse_batchnorm import FuseBatchNorm
from passes.fuse_gelu import FuseGelu
from passes.fuse_gemm import FuseGemm
from passes.fuse_pad import FusePad
from passes.fuse_silu import FuseSilu
from passes.import_qdq import ImportQDQ
from passes.infer_shapes import InferShapes
from passes.lower_float import LowerToFloat
from passes.lower_integer import LowerToInteger
from passes.propagate_qparams import PropagateQParams
from passes.quant_rules import WEIGHTED_OPS
from passes.quantize import Quantize
from passes.refine_exponents import RefineExponents
from passes.remove_identity import RemoveIdentity
from passes.streaming_cut import (StreamingCut, is_per_call_model, state_input_names,
                                  streaming_metadata, time_series_input)

STREAM_TOLERANCE = 1e-5
LAYER_SNR_SAMPLES = 16  # per-layer SNR is a diagnostic: a subset of the data suffices


def float_passes(offline: bool) -> list[Pass]:
    """Normalize and fuse, refuse a model with nodes Rill cannot compile (all of them in one
    error, before any calibration), then cut into a streaming model (unless compiling
    offline)."""
    passes: list[Pass] = [ImportQDQ(), RemoveIdentity(), FoldConstants(), FuseGemm(), FusePad(), FoldChomp(),
                          FuseBatchNorm(), FuseActivation(), FuseSilu(), FuseGelu(), DivByConstant(),
                          FoldLinearHead(), InferShapes(), CheckSupport()]
    return passes if offline else passes + [StreamingCut()]


def quantization_passes() -> list[Pass]:
    return [Calibrate(), AssignPrecision(), Quantize(), PropagateQParams(), RefineExponents(),
            LowerToInteger(), CorrectOutputBias()]


def scheme_passes(options: Options) -> list[Pass]:
    """From the float graph to a Program: the quantization scheme's passes (calibrate,
    quantize, lower to integer kernels) for --bits 8/16; none for --bits 32, which lowers the
    float graph to float32 kernels as it is."""
    return [LowerToFloat()] if options.bits == FLOAT_BITS else quantization_passes()


def pipeline_for(options: Options) -> list[Pass]:
    """The ordered pipeline; both targets share it today (they differ in rounding only)."""
    return float_passes(options.offline) + scheme_passes(options)


@dataclass
class CompileResult:
    out_dir: Path
    report: dict
    warnings: list[str] = field(default_factory=list)
    program: Program | None = None  # the lowered program: tools run the integer reference on it
    layout: StreamLayout | None = None
    writer: SourceWriter | None = None  # emitted the C: tools may emit variants of it


def select_calibration(calib, names: list[str], source: str) -> np.ndarray | None:
    """The calibration array of the model's input: a .npy, or the .npz array of that name."""
    if not isinstance(calib, dict):
        return calib
    if len(calib) == 1:
        return next(iter(calib.values()))
    for name in names:
        if name in calib:
            return calib[name]
    raise RillError(f"{source}: the .npz holds arrays {sorted(calib)}, none named after the "
                    f"model's input ({', '.join(names)})")


def load_graph(path: Path, options: Options, input_shapes: list,
               warn: Callable[[str], None]) -> tuple[onnx.ModelProto, object]:
    """The shape-pinned model and graph; resolves the model's own state pairs (if any) into
    `options.state_pairs` and picks the calibration array of the time-series input."""
    model = load_onnx(path)
    source = f"--calib {options.calib_path}"
    names = [vi.name for vi in runtime_inputs(model)]
    if len(names) == 1:
        options.calib = calib = select_calibration(options.calib, names, source)
        if not input_shapes and calib is not None:
            input_shapes = pins_from_calibration(model, calib.shape)
            for name, shape in input_shapes:
                warn(f"input '{name}' has dynamic dims; pinned to {shape} from the calibration "
                     "data (use --input-shape to choose)")
    pin_input_shapes(model, input_shapes, path)
    check_onnxruntime_runs(model, path)
    graph = import_model(model)
    options.state_pairs = resolve_state_pairs(graph, options.state_pairs)
    if options.state_pairs and options.offline:
        raise RillError(f"--offline: the model has its own state pairs "
                        f"({', '.join(f'{i}={o}' for i, o in options.state_pairs)}), so it is "
                        "already a per-call model; compile it without --offline")
    if options.state_pairs:
        options.calib = select_calibration(
            options.calib, [time_series_name(graph, options.state_pairs)], source)
    return model, graph


def prepare_calibration(calib: np.ndarray | None, shape: tuple[int, ...], source: str,
                        warn: Callable[[str], None]) -> np.ndarray:
    from passes.calibrate import synthetic_calibration
    if calib is None:
        warn("NO CALIBRATION DATA (--calib): exponents come from 64 synthetic standard-normal "
             "inputs; accuracy on real data may be poor")
        return synthetic_calibration(shape)
    if not np.issubdtype(calib.dtype, np.floating):
        raise RillError(f"{source}: calibration data has dtype {calib.dtype}; expected floats")
    if tuple(calib.shape[1:]) == tuple(shape):
        data = calib
    elif shape[0] == 1 and tuple(calib.shape[1:]) == tuple(shape[1:]):
        data = calib.reshape((calib.shape[0],) + tuple(shape))
    else:
        raise RillError(f"{source}: calibration data has shape {list(calib.shape)}; expected "
                        f"[N, {', '.join(map(str, shape))}] or [N, {', '.join(map(str, shape[1:]))}]")
    if data.shape[0] == 0 or not np.all(np.isfinite(data)):
        raise RillError(f"{source}: calibration data is empty or holds NaN/Inf")
    return data.astype(np.float32)


# passes that take long enough to announce at the default level (what they run over)
LONG_PASSES = {"calibrate": "calibrate: running the float model on {n} calibration inputs",
               "refine-exponents": "refine-exponents: measuring exponent changes on {n} "
                                   "calibration inputs",
               "correct-output-bias": "correct-output-bias: measuring the output error on {n} "
                                      "calibration inputs"}


class Compilation:
    """One run of the compiler from a loaded graph to a verified output folder."""

    def __init__(self, ctx: CompileContext, *, dump_dir: Path | None = None,
                 progress: Progress | None = None):
        self.ctx, self.dump_dir = ctx, dump_dir
        self.progress = progress or Progress.to_log(lambda s: None)

    def run_passes(self) -> PassManager:
        manager = PassManager(pipeline_for(self.ctx.options), dump_dir=self.dump_dir,
                              on_pass=self._starting, on_done=self._done)
        manager.run(self.ctx)
        return manager

    def _starting(self, name: str) -> None:
        calib = self.ctx.options.calib
        if name in LONG_PASSES and calib is not None:
            self.progress.step(LONG_PASSES[name].format(n=len(calib)))

    def _done(self, record: PassRecord) -> None:
        self.progress.detail(f"pass {record.name}: {record.seconds:.2f} s"
                             f"{', changed the model' if record.changed else ''}")

    def requantize(self, config: list[Promotion]) -> Program:
        """Re-run the quantization passes after calibration with these int16 promotions."""
        ctx = self.ctx
        ctx.options.int16_layers = [p.layer for p in config]
        ctx.facts["int8_weight_layers"] = [p.layer for p in config if p.int8_weights]
        for p in quantization_passes()[1:]:  # calibration data stays
            p.run(ctx)
        return ctx.facts["program"]

    def search_precision(self, snr: Callable[[Program, np.ndarray], float],
                         data: np.ndarray) -> SearchResult:
        """--snr-target: the cheapest measured set of int16 promotions reaching the target
        (`snr(program, data)` on the calibration data; candidates are ranked on a subset)."""
        ctx = self.ctx
        subset = data[::max(1, -(-len(data) // RANK_SAMPLES))]

        def evaluate(config: list[Promotion], on: np.ndarray = data) -> Evaluation:
            prog = self.requantize(config)
            return Evaluation(snr(prog, on), program_bytes(prog))

        layers = layer_nodes(ctx.graph)
        x = time_series_input(ctx.graph, state_input_names(ctx.facts))
        everything = [Promotion(x.name)] + [Promotion(n.name) for n in layers]
        candidates = everything + [Promotion(n.name, int8_weights=True) for n in layers
                                   if n.op in WEIGHTED_OPS]
        base = [Promotion(name) for name in ctx.options.int16_layers]
        ctx.facts["skip_refine"] = True  # refine the chosen configuration only
        search = PrecisionSearch(evaluate, candidates, progress=ctx.progress,
                                 estimate=(lambda c: evaluate(c, subset))
                                 if len(subset) < len(data) else None)
        result = search.run(ctx.options.snr_target, base, everything)
        ctx.facts["skip_refine"] = False
        self.requantize(result.promotions)
        return result

    def layout(self) -> StreamLayout:
        return stream_layout(self.ctx)


@dataclass
class Measurement:
    """How close the program is to the float model, and the inputs the C is checked on."""

    checks: list[np.ndarray]  # inputs (streams) the C is verified on; the first: the self-test's
    float_check: float | None  # the float streaming model vs the offline model
    per_layer: dict[str, float]  # tensor -> SNR dB (quantized) or max abs error (float32)
    snr: float | None = None  # quantized: output SNR on the calibration data
    sensitivity: list[dict] = field(default_factory=list)
    errors: dict | None = None  # float32: the reference vs onnxruntime
    onnx_ref: OnnxReference | None = None  # float32: what the C is compared with


def compile_model(path: Path, options: Options, out_root: Path, *, input_shapes: list = (),
                  dump_dir: Path | None = None, force: bool = False,
                  log: Callable[[str], None] = lambda s: None,
                  progress: Progress | None = None) -> CompileResult:
    """`progress` tells the person running it what happens (compiler/progress.py); without
    it, every message goes to `log`."""
    progress = progress or Progress.to_log(log)
    if options.bits not in SUPPORTED_BITS:  # the API guards what the CLI guards
        raise RillError(f"bits={options.bits}: Rill quantizes to int8 or int16, or keeps float32 "
                        "(32)")
    notes: list[str] = []
    model, graph = load_graph(path, options, list(input_shapes), notes.append)
    ctx = CompileContext(graph, options, source=path, warnings=notes)
    x = time_series_input(graph, {i for i, _ in options.state_pairs})
    offline_shape = static_shape(x)
    float32 = options.bits == FLOAT_BITS
    if not float32:
        options.calib = prepare_calibration(options.calib, offline_shape,
                                            f"--calib {options.calib_path}", ctx.warn)
    final = out_root / options.name
    if final.exists() and not force:
        raise RillError(f"output folder {final} exists; pass --force to overwrite it")
    ctx.progress = progress.tick
    comp = Compilation(ctx, dump_dir=dump_dir, progress=progress)
    manager = comp.run_passes()
    layout = comp.layout()
    stream = ctx.facts.get("streaming")
    offline_model = to_runnable(ctx.facts.get("offline_graph", ctx.graph))
    search = None
    if options.snr_target is not None:
        progress.step(f"snr-target: searching int16 promotions for {options.snr_target} dB")
        search = comp.search_precision(
            lambda prog, data: calibration_snr(prog, layout, offline_model, stream, data),
            options.calib)
    program = ctx.facts["program"]
    plan = plan_memory(program)
    check_memory_fits(program, plan, options)
    streaming_model = None
    if stream:
        streaming_model = to_runnable(ctx.graph)
        onnx.helper.set_model_props(streaming_model,
                                    {"rill.streaming": json.dumps(streaming_metadata(stream))})
    shapes = {n: static_shape(t) for n, t in ctx.graph.tensors().items()
              if static_shape(t) is not None}
    if float32:
        progress.step("running the float32 program against onnxruntime")
        m = measure_float(ctx, program, layout, offline_model, streaming_model, stream, shapes)
    else:
        progress.step("measuring the integer program on the calibration data: output SNR, "
                      "per-layer SNR and sensitivity")
        m = measure_quantized(ctx, program, layout, offline_model, streaming_model, stream,
                              shapes)
    iface = interface(options, program, plan, layout, stream)
    test_run = run_integer(program, layout, m.checks[0])
    writer = SourceWriter(program, plan, iface,
                          Selection(float_mac=options.target.float_mac,
                                    float_weights=options.float_weights))
    out_root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{options.name}.", dir=out_root))
    try:
        write_component(tmp, writer, target=options.target.name, bits=options.bits,
                        streaming_model=streaming_model, test_inputs=test_run.inputs,
                        test_outputs=test_run.outputs, source=Path(path))
        footprint = {"measured": False, "reason": "--no-verify: the C was not compiled"}
        if options.verify:
            progress.detail("measuring code size and stack")
            footprint = measure_footprint(tmp, options.name, options.target)
        check_memory_fits(program, plan, options, stack_bytes=footprint.get("stack_bytes") or 0)
        if options.dump_qdq:
            onnx.save(export_qdq(ctx.facts.get("offline_graph", ctx.graph), ctx.facts,
                                 options.bits, mode=options.target.rounding),
                      str(tmp / f"{options.name}.qdq.onnx"))
        verification = {"float_stream_max_rel_error": m.float_check, **(m.errors or {})}
        if options.verify:
            against = "onnxruntime" if float32 else "the integer reference, bit for bit"
            progress.step(f"verifying: building the generated C and running it against {against}")
            if float32:
                verification.update(verify_c_float(tmp, options.name, program, layout,
                                                   m.onnx_ref, m.checks, iface.output_elems))
            else:
                verification.update(verify_c(tmp, options.name, program, layout, m.checks,
                                             iface))
        report = build_report(
            name=options.name, target=options.target.name, bits=options.bits, program=program,
            plan=plan, iface=iface, snr=m.snr, layer_snr=m.per_layer, offline=options.offline,
            states=state_rows(program, stream), time_axis=layout.time_axis, layout=layout,
            warnings=ctx.warnings, verification=verification,
            passes=[{"name": r.name, "changed": r.changed} for r in manager.records],
            requantizations=ctx.facts.get("requantizations", []),
            mixed_precision=search.as_json(options.snr_target) if search else None,
            sensitivity=m.sensitivity, qdq_import=ctx.facts.get("qdq_import", []),
            folded_heads=ctx.facts.get("folded_heads", []),
            output_bias_correction=ctx.facts.get("output_bias_correction"),
            fit=fit_summary(options.target, program, plan, footprint, options.ram_budget,
                            writer.kernel_calls()),
            footprint=footprint, kernels=writer.kernel_calls())
        progress.detail("writing report.md, report.json and the pictures")
        report["plots"] = write_plots(tmp, report)
        write_report(tmp, report, markdown(report), source=Path(path))
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return CompileResult(final, report, ctx.warnings, program, layout, writer)


def measure_quantized(ctx: CompileContext, program: Program, layout: StreamLayout,
                      offline_model, streaming_model, stream, shapes: dict) -> Measurement:
    """Output SNR, per-layer SNR and sensitivity on the calibration data; the C is checked
    bit for bit on its first inputs."""
    options = ctx.options
    if is_per_call_model(stream):  # streams of consecutive calls, state carried
        streams = call_streams(options.calib, layout.time_axis)
        snr = evaluate_per_call(program, layout, offline_model, stream, streams)
        per_layer = layer_snr_per_call(program, offline_model, streaming_metadata(stream),
                                       shapes, ctx.facts["time_info"], layout,
                                       streams[:LAYER_SNR_SAMPLES // CALLS_PER_STREAM])
        return Measurement(streams[:2], None, per_layer, snr)
    snr, float_check = evaluate(program, layout, offline_model, streaming_model, stream,
                                options.calib)
    per_layer = layer_snr(program, layout, offline_model, shapes, ctx.facts["time_info"],
                          ctx.facts.get("stream_time_info", {}),
                          options.calib[:LAYER_SNR_SAMPLES])
    sensitivity = layer_sensitivity(
        offline_model, options.calib[:LAYER_SNR_SAMPLES], ctx.facts["exponents"],
        ctx.facts["weight_exponents"], tensor_bits=ctx.facts.get("tensor_bits"),
        weight_bits=ctx.facts.get("weight_bits"), bits_default=options.bits,
        mode=options.target.rounding, operand_exponents=ctx.facts.get("operand_exponents"),
        progress=ctx.progress)
    return Measurement(list(options.calib[:4]), float_check, per_layer, snr, sensitivity)


def measure_float(ctx: CompileContext, program: Program, layout: StreamLayout, offline_model,
                  streaming_model, stream, shapes: dict) -> Measurement:
    """A float32 program: the float reference against onnxruntime (contract §3), per tensor
    and at the output, on seeded synthetic inputs; the streaming model against the offline
    one (contract §2)."""
    per_call = is_per_call_model(stream)
    offline_graph = ctx.facts.get("offline_graph", ctx.graph)  # per-call models: the graph
    x_shape = static_shape(offline_graph.tensors()[program.inputs[0]])
    inputs = float_inputs(ctx.options.calib, x_shape, per_call, layout.time_axis, ctx.warn)
    latency = stream["latency_frames"] if stream else 0
    meta = streaming_metadata(stream) if per_call else None
    onnx_ref = OnnxReference(offline_model, layout, latency, meta)
    errors = reference_errors(program, layout, onnx_ref, inputs)
    float_check = None
    if streaming_model is not None and not per_call:
        float_check = evaluate(program, layout, offline_model, streaming_model, stream,
                               np.stack(inputs), snr=False)[1]
    if per_call:
        per_layer = layer_snr_per_call(program, offline_model, meta, shapes,
                                       ctx.facts["time_info"], layout, inputs[:2],
                                       metric=max_abs_error)
    else:
        per_layer = layer_snr(program, layout, offline_model, shapes, ctx.facts["time_info"],
                              ctx.facts.get("stream_time_info", {}), np.stack(inputs[:4]),
                              metric=max_abs_error)
    return Measurement(inputs[:4], float_check, per_layer,
                       errors=errors.as_json("reference_vs_onnxruntime"), onnx_ref=onnx_ref)


def state_rows(program, stream) -> list[dict]:
    """report.json's state pairs: the metadata entry plus what it holds and its bytes."""
    return [{**s.as_json(), "kind": s.kind, "holds": s.tensor,
             "bytes": program.buffers[s.input].nbytes} for s in (stream or {}).get("states", [])]


def check_memory_fits(program, plan, options: Options, stack_bytes: int = 0) -> None:
    """Arena + `<name>_t` (+ the worst-case stack of a call, once measured) within the budget."""
    state = program.instance_bytes  # the kept frames plus the windows' new frames
    budget = options.ram_budget or options.target.internal_ram_bytes
    need = state + plan.arena_bytes + stack_bytes
    if need > budget:
        stack = f" + stack {stack_bytes:,} B" if stack_bytes else ""
        raise RillError(
            f"the model needs {need:,} B of RAM per stream (state {state:,} B + "
            f"arena {plan.arena_bytes:,} B{stack}), more than {options.target.name}'s budget of {budget:,} B "
            "(and ESP-IDF itself needs a large share of internal RAM); use a smaller --chunk, or "
            "place the arena in PSRAM (<NAME>_ARENA_ATTR) and raise --ram-budget")


def interface(options: Options, program, plan, layout: StreamLayout, stream) -> ModelInterface:
    x = program.buffers[program.inputs[0]]
    y = program.buffers[program.outputs[0]]
    chunk = layout.chunk
    return ModelInterface(
        name=options.name, chunk_frames=chunk, input_channels=x.size // chunk,
        input_elems=x.size, output_elems=y.size, input_exp=x.exp or 0, output_exp=y.exp or 0,
        latency_frames=stream["latency_frames"] if stream else 0,
        per_frame_output=layout.per_frame,
        state_bytes=program.state_bytes,
        arena_bytes=plan.arena_bytes)


def evaluate(program, layout: StreamLayout, offline_model, streaming_model, stream,
             data: np.ndarray, snr: bool = True) -> tuple[float | None, float | None]:
    """Quantized-vs-float SNR on the data (unless `snr` is False), and the float streaming
    model's max relative error against the offline model."""
    refs, quants, worst = [], [], 0.0
    out_axis = layout.output_info.axis if layout.per_frame else 0
    latency = stream["latency_frames"] if stream else 0
    sess = session(offline_model)
    in_name, out_name = sess.get_inputs()[0].name, sess.get_outputs()[0].name
    for i, x in enumerate(data):
        offline = sess.run([out_name], {in_name: x})[0]
        if snr:
            q = run_integer(program, layout, x).result
            a, b = aligned(q, offline, latency, out_axis, layout.per_frame)
            quants.append(a.reshape(-1))
            refs.append(b.reshape(-1))
        if streaming_model is not None and i < 8:
            s = stitch(run_float_stream(streaming_model, streaming_metadata(stream), x),
                       layout.per_frame, out_axis)
            sa, sb = aligned(s, offline, latency, out_axis, layout.per_frame)
            worst = max(worst, float(np.max(np.abs(sa - sb))) / max(float(np.max(np.abs(offline))), 1e-30))
    if streaming_model is not None and worst > STREAM_TOLERANCE:
        raise VerificationError(f"the streaming model differs from the offline model "
                                f"(max relative error {worst:.3g} > {STREAM_TOLERANCE:g}); "
                                "this is a Rill bug: please report it with the model")
    return (snr_db(np.concatenate(refs), np.concatenate(quants)) if snr else None,
            worst if streaming_model else None)


def calibration_snr(program, layout: StreamLayout, offline_model, stream, data: np.ndarray
                    ) -> float:
    """The quantized program's output SNR on the calibration data (what --snr-target meets)."""
    if is_per_call_model(stream):
        return evaluate_per_call(program, layout, offline_model, stream,
                                 call_streams(data, layout.time_axis))
    return evaluate(program, layout, offline_model, None, stream, data)[0]


def evaluate_per_call(program, layout: StreamLayout, model, stream, streams: list[np.ndarray]
                      ) -> float:
    """Quantized-vs-float SNR of a model with its own state pairs: every call's output of the
    integer program against the float model run call by call, both carrying their state."""
    meta = streaming_metadata(stream)
    refs, quants = [], []
    for x in streams:
        refs += [r.reshape(-1) for r in run_float_stream(model, meta, x)]
        quants += [q.reshape(-1) for q in run_integer(program, layout, x).calls]
    return snr_db(np.concatenate(refs), np.concatenate(quants))


def verify_c(component: Path, name: str, program, layout: StreamLayout,
             inputs: list[np.ndarray], iface: ModelInterface) -> dict:
    """Build the component, run its self-test and compare it with the integer reference on
    the given input streams and on saturating ones."""
    with tempfile.TemporaryDirectory(prefix="rill-verify-") as work:
        exe = build_host(component, name, Path(work))
        if run_selftest(exe) != 0:
            raise VerificationError("the generated component's self-test failed")
        checked = 0
        for x in list(inputs) + [np.full_like(inputs[0], 1e6), np.full_like(inputs[0], -1e6)]:
            ref = run_integer(program, layout, x)
            got = run_host(exe, ref.inputs, out_elems=iface.output_elems,
                           out_dtype=program.buffers[program.outputs[0]].dtype)
            if not np.array_equal(got, ref.outputs):
                call = int(np.argmax(np.any(got != ref.outputs, axis=1)))
                raise VerificationError(f"the generated C differs from the integer reference at "
                                        f"call {call}; this is a Rill bug: please report it")
            checked += len(ref.inputs)
        return {"c_bit_exact_calls": checked, "selftest": "passed"}
