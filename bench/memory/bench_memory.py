"""RAM of every example and test model: the arena against its lower bound, and the bytes moved.

Compiles each model through the compiler's passes (no C build, no SNR: memory depends on the
schedule and the buffer sizes only, not on the calibration values) at int8 and int16 and prints
one row per (model, bits):

- `arena` / `lower`: `arena_bytes` and `arena_lower_bound_bytes` of report.json (contract §4),
  and their ratio (the goal: <= 1.05 on every model);
- `state` / `inst`: `state_bytes` (the frames kept between calls) and the bytes of `<name>_t`
  (state plus the new frames that streaming windows keep behind it); `RAM` = inst + arena, what
  one stream needs;
- `copies` / `copied`: copy and fill steps per call and the bytes they move (memcpy/memmove);
- `MACs`: multiply-accumulates per call (unchanged by memory planning).

The models: the tutorial TCN (examples/tcn, streaming at CHUNK 1 and 8, and offline), the
PyTorch exports of it in tests/fixtures, every streaming-construct fixture (tests/fixtures/
streaming, dynamo at its smallest legal CHUNK, TorchScript at the larger one the tests use) and
the hand-built graphs of tests/graphs.py.

    .venv/bin/python bench/memory/bench_memory.py [--models tcn,upsampler] [--bits 8,16]
        [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import onnx

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from codegen.memory import copy_stats, plan_memory  # noqa: E402
from compiler.context import CompileContext, Options  # noqa: E402
from compiler.pipeline import Compilation, load_graph, prepare_calibration  # noqa: E402
from compiler.targets import get_target  # noqa: E402
from passes.streaming_cut import time_series_input  # noqa: E402
from runtime.ir import Program  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures"
ZOO = FIXTURES / "streaming"
CALIB_SAMPLES = 8  # the plan does not depend on calibration values: a few samples suffice
# streaming fixtures: (smallest legal chunk, the larger chunk tests/test_streaming_models.py uses)
ZOO_CHUNKS = {
    "tcn_residual": (1, 8), "strided_encoder": (4, 8), "spectrogram_cnn": (1, 6),
    "window_classifier": (1, 4), "gru_tagger": (1, 5), "lookahead_tcn": (1, 6),
    "multi_window": (1, 4), "upsampler": (1, 4), "lstm_tagger": (1, 4),
}


@dataclass(frozen=True)
class Case:
    """One model to compile: where its ONNX comes from and how to compile it."""

    name: str
    model: Callable[[Path], Path]  # writes or finds the ONNX file (given a work folder)
    chunk: int | None = None
    offline: bool = False
    calib: Path | None = None  # .npy; None: synthetic standard-normal data


@dataclass
class Row:
    case: str
    bits: int
    arena_bytes: int
    lower_bound_bytes: int
    state_bytes: int
    instance_bytes: int
    copies: int
    copied_bytes: int
    macs: int
    strategy: str

    @property
    def ram(self) -> int:
        return self.instance_bytes + self.arena_bytes

    @property
    def ratio(self) -> float:
        return self.arena_bytes / self.lower_bound_bytes if self.lower_bound_bytes else 1.0


def _fixture(path: Path) -> Callable[[Path], Path]:
    return lambda work: path


def _built(name: str, build: Callable[[], onnx.ModelProto]) -> Callable[[Path], Path]:
    def write(work: Path) -> Path:
        path = work / f"{name}.onnx"
        if not path.exists():
            onnx.save(build(), str(path))
        return path
    return write


def _tcn() -> onnx.ModelProto:
    sys.path.insert(0, str(ROOT / "examples" / "tcn"))
    try:
        from make_tcn import build_tcn
    finally:
        sys.path.pop(0)
    return build_tcn("default", 0)


def cases() -> list[Case]:
    """Every model the suite compiles, once per compile mode that changes the schedule."""
    sys.path.insert(0, str(ROOT / "tests"))
    try:
        import graphs
    finally:
        sys.path.pop(0)
    tcn = _built("tcn", _tcn)
    torch_calib = FIXTURES / "tcn_torch_calib.npy"
    out = [Case("tcn", tcn, calib=torch_calib), Case("tcn-chunk8", tcn, 8, calib=torch_calib),
           Case("tcn-offline", tcn, offline=True, calib=torch_calib),
           Case("tcn_torch_dynamo", _fixture(FIXTURES / "tcn_torch_dynamo.onnx"), calib=torch_calib),
           Case("tcn_torch_script", _fixture(FIXTURES / "tcn_torch_script.onnx"), calib=torch_calib)]
    for model, (small, large) in ZOO_CHUNKS.items():
        calib = ZOO / f"{model}.calib.npy"
        out.append(Case(f"{model}-c{small}", _fixture(ZOO / f"{model}.dynamo.onnx"), small,
                        calib=calib))
        out.append(Case(f"{model}-c{large}", _fixture(ZOO / f"{model}.script.onnx"), large,
                        calib=calib))
    out += [
        Case("g.conv1d", _built("g_conv1d", lambda: graphs.conv1d_model(c_in=4, c_out=8, t=16))),
        Case("g.conv1d-c4", _built("g_conv1d", lambda: graphs.conv1d_model(c_in=4, c_out=8,
                                                                           t=16)), 4),
        Case("g.causal_tcn", _built("g_causal_tcn", lambda: graphs.causal_tcn_model(4, 12))),
        Case("g.explicit_state", _built("g_explicit", lambda: graphs.explicit_state_model())),
        Case("g.gru_state", _built("g_gru", lambda: graphs.gru_state_model())),
        Case("g.lstm_state", _built("g_lstm", lambda: graphs.gru_state_model(op="LSTM"))),
    ]
    return out


def lower(case: Case, bits: int, work: Path, target: str = "esp32p4") -> Program:
    """The integer program of one case, as `rill compile` lowers it (refinement skipped)."""
    path = case.model(work)
    calib = np.load(case.calib)[:CALIB_SAMPLES] if case.calib else None
    options = Options(target=get_target(target), bits=bits, chunk=case.chunk,
                      offline=case.offline, calib=calib, verify=False, name="bench")
    _, graph = load_graph(path, options, [], lambda s: None)
    ctx = CompileContext(graph, options, source=path)
    ctx.facts["skip_refine"] = True  # exponents do not change the memory plan
    shape = tuple(time_series_input(graph, {i for i, _ in options.state_pairs}).shape)
    options.calib = prepare_calibration(
        options.calib, shape, "calib",
        lambda s: None) if calib is not None else _synthetic(shape)
    Compilation(ctx).run_passes()
    return ctx.facts["program"]


def _synthetic(shape) -> np.ndarray:
    return np.random.default_rng(0).standard_normal((CALIB_SAMPLES,) + tuple(shape)).astype(
        np.float32)


def measure(program: Program, case: str, bits: int) -> Row:
    plan = plan_memory(program)
    copies, copied = copy_stats(program)
    return Row(case, bits, plan.arena_bytes, plan.lower_bound_bytes, program.state_bytes,
               program.instance_bytes, copies, copied, sum(s.macs for s in program.steps),
               plan.strategy)


def table(rows: list[Row], before: dict[tuple[str, int], dict] | None = None) -> str:
    """One line per row; with `before` (rows of an earlier --json), "was" columns too."""
    was = (lambda r, k: f"{before[(r.case, r.bits)][k]:>7}" if (r.case, r.bits) in before
           else f"{'-':>7}") if before else None
    head = (f"{'model':<24} {'bits':>4} {'arena':>7} {'lower':>7} {'ratio':>6} {'state':>6} "
            f"{'inst':>6} {'RAM':>6} {'copies':>6} {'copied':>6} {'MACs':>8}")
    if was:
        head += f" | {'arena<':>7} {'RAM<':>7} {'copies<':>7} {'copied<':>7} {'MACs<':>8}"
    lines = [head, "-" * len(head)]
    for r in rows:
        line = (f"{r.case:<24} {r.bits:>4} {r.arena_bytes:>7} {r.lower_bound_bytes:>7} "
                f"{r.ratio:>6.3f} {r.state_bytes:>6} {r.instance_bytes:>6} {r.ram:>6} "
                f"{r.copies:>6} {r.copied_bytes:>6} {r.macs:>8}")
        if was:
            line += (f" | {was(r, 'arena_bytes')} {was(r, 'ram')} {was(r, 'copies')} "
                     f"{was(r, 'copied_bytes')} {was(r, 'macs'):>8}")
        lines.append(line)
    worst = max(rows, key=lambda r: r.ratio)
    lines.append("-" * len(head))
    lines.append(f"{len(rows)} compiles; worst arena/lower bound {worst.ratio:.3f} ({worst.case}, "
                 f"{worst.bits} bits); totals: arena {sum(r.arena_bytes for r in rows)} B, lower "
                 f"bound {sum(r.lower_bound_bytes for r in rows)} B, RAM "
                 f"{sum(r.ram for r in rows)} B, {sum(r.copies for r in rows)} copies moving "
                 f"{sum(r.copied_bytes for r in rows)} B")
    if before:
        old = [before[(r.case, r.bits)] for r in rows if (r.case, r.bits) in before]
        lines.append(f"before (<): arena {sum(o['arena_bytes'] for o in old)} B, RAM "
                     f"{sum(o['ram'] for o in old)} B, {sum(o['copies'] for o in old)} copies "
                     f"moving {sum(o['copied_bytes'] for o in old)} B")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=None, help="comma-separated case names (default: all)")
    ap.add_argument("--bits", default="8,16", help="comma-separated: 8,16 (32: float32)")
    ap.add_argument("--json", type=Path, default=None, help="also write the rows as JSON here")
    ap.add_argument("--compare", type=Path, default=None,
                    help="a --json of an earlier run: print its numbers next to these")
    args = ap.parse_args(argv)
    wanted = set(args.models.split(",")) if args.models else None
    selected = [c for c in cases() if wanted is None or c.name in wanted]
    if wanted and len(selected) != len(wanted):
        known = ", ".join(c.name for c in cases())
        ap.error(f"unknown model(s) {sorted(wanted - {c.name for c in selected})}; known: {known}")
    rows = []
    start = time.time()
    with tempfile.TemporaryDirectory(prefix="rill-bench-memory-") as work:
        for case in selected:
            for bits in (int(b) for b in args.bits.split(",")):
                rows.append(measure(lower(case, bits, Path(work)), case.name, bits))
                print(f"  {case.name} {'float' if bits == 32 else 'int'}{bits} "
                      f"({time.time() - start:.0f} s)", file=sys.stderr, flush=True)
    before = None
    if args.compare:
        before = {(o["case"], o["bits"]): dict(o, ram=o.get("ram", o["arena_bytes"] +
                                                         o["instance_bytes"]))
                  for o in json.loads(args.compare.read_text())}
    print(table(rows, before))
    if args.json:
        args.json.write_text(json.dumps([dict(asdict(r), ratio=r.ratio, ram=r.ram) for r in rows],
                                        indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
