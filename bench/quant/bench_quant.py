"""Output SNR of Rill vs ESP-PPQ on the same models, calibration data and quantization scheme.

Usage::

    make bench-quant                       # sets up .venv-ppq once, then runs this script
    .venv/bin/python bench/quant/bench_quant.py [--ppq-python .venv-ppq/bin/python]
        [--models tcn,spectrogram_cnn,strided_encoder] [--targets esp32p4,esp32s3] [--bits 8,16]
        [--ppq-settings default,minmax,percentile,kl,mse] [--jobs 2] [--no-ppq] [--work DIR]

Three models: the tutorial TCN (`examples/tcn/make_tcn.py`: `build_tcn("default", seed=0)`,
calibration `make_calib(64, seed=1)` = `examples/tcn/calib.npy`, held-out `make_calib(20,
seed=2)`: 20 standard-normal inputs from another seed) and two streaming fixtures
(`tests/fixtures/streaming/{spectrogram_cnn,strided_encoder}.dynamo.onnx` with their 64
`.calib.npy` and 20 `.heldout.npy` inputs).  For each model, target (esp32p4, esp32s3) and
bit width (8, 16):

- **Rill**: `compiler.pipeline.compile_model` (streaming, default chunk, the calibration
  data), the generated component built for the host (`compiler.host_build.build_host`), and
  every held-out input streamed chunk by chunk from `<name>_init` through the float C API
  `<name>_run_f32` (time-major buffers, contract §4).  Per-frame outputs are stitched and
  aligned with the offline float output by the latency (contract §2); a summary output is the
  last call's.
- **ESP-PPQ** (`bench/quant/ppq_runner.py` in `.venv-ppq`): `espdl_quantize_onnx` with the
  same calibration data, at its default setting and with each activation observer (minmax,
  percentile, kl, mse), each without and with its bias correction; its quantized graph is run
  by `TorchExecutor` (fake-quantized) on the held-out inputs.  "best" = the highest SNR over
  those settings.

Both are compared with the float model in onnxruntime on the held-out inputs: pooled SNR =
10·log10(Σref² / Σ(ref−q)²) over all held-out outputs (contract §4).  Prints one table and
writes `bench/results_quant.json` (every setting, timings, reasons for any n/a).  A
configuration Rill cannot compile yet (e.g. int16 while it is being implemented) or ESP-PPQ
cannot quantize is "n/a" with its one-line reason, not a failure.  Nothing is hard-coded:
every number is measured on each run.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
FIXTURES = ROOT / "tests" / "fixtures" / "streaming"
RUNNER = Path(__file__).resolve().parent / "ppq_runner.py"
RESULTS = ROOT / "bench" / "results_quant.json"

MODELS = ("tcn", "spectrogram_cnn", "strided_encoder")
TARGETS = ("esp32p4", "esp32s3")
BITS = (8, 16)
TCN_HELDOUT_SEED = 2  # calibration is make_calib(64, seed=1); held-out from another seed
HELDOUT_N = 20


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def one_line(e: BaseException | str) -> str:
    """A one-line reason: Rill's own errors are user-facing messages already."""
    lines = [l.strip() for l in str(e).strip().splitlines() if l.strip()]
    text = lines[0] if lines else ""
    if text.endswith(":") and len(lines) > 1:  # "... does not compile cleanly with ...:" + why
        text += " " + lines[1]
    if isinstance(e, BaseException) and not hasattr(e, "exit_code"):
        text = f"{type(e).__name__}: {text}" if text else type(e).__name__
    return text[:200]


# ------------------------------------------------------------------------------------- models
def prepare_models(names: list[str], work: Path) -> list[dict]:
    """Each model as files the ESP-PPQ venv can read too: model, calibration, held-out."""
    models = []
    for name in names:
        if name == "tcn":
            sys.path.insert(0, str(ROOT / "examples" / "tcn"))
            import onnx
            from make_tcn import build_tcn, make_calib

            d = work / "tcn"
            d.mkdir(parents=True, exist_ok=True)
            onnx.save(build_tcn("default", seed=0), str(d / "tcn.onnx"))
            np.save(d / "calib.npy", make_calib(64, seed=1))
            np.save(d / "heldout.npy", make_calib(HELDOUT_N, seed=TCN_HELDOUT_SEED))
            models.append({"name": "tcn", "model": d / "tcn.onnx", "calib": d / "calib.npy",
                           "heldout": d / "heldout.npy",
                           "source": "examples/tcn/make_tcn.py build_tcn('default', seed=0); "
                                     f"calib make_calib(64, seed=1); held-out make_calib("
                                     f"{HELDOUT_N}, seed={TCN_HELDOUT_SEED})"})
        else:
            model = FIXTURES / f"{name}.dynamo.onnx"
            if not model.exists():
                raise SystemExit(f"no fixture {model}")
            models.append({"name": name, "model": model, "calib": FIXTURES / f"{name}.calib.npy",
                           "heldout": FIXTURES / f"{name}.heldout.npy",
                           "source": f"tests/fixtures/streaming/{name}.dynamo.onnx with its "
                                     ".calib.npy and .heldout.npy"})
    return models


def float_reference(model: Path, xs: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return np.stack([sess.run(None, {name: x.astype(np.float32)})[0] for x in xs])


# --------------------------------------------------------------------------------------- Rill
def time_major_perm(rank: int, axis: int) -> list[int]:
    """ONNX axes in the order the C API stores them: time right after the batch axis."""
    perm = list(range(rank))
    if axis > 1:
        perm.remove(axis)
        perm.insert(1, axis)
    return perm


def to_time_major(x: np.ndarray, axis: int) -> np.ndarray:
    return np.ascontiguousarray(np.transpose(x, time_major_perm(x.ndim, axis))).reshape(-1)


def from_time_major(flat: np.ndarray, shape: list[int], axis: int) -> np.ndarray:
    perm = time_major_perm(len(shape), axis)
    return np.transpose(np.asarray(flat).reshape([shape[a] for a in perm]), np.argsort(perm))


def rill_measure(m: dict, target: str, bits: int, heldout: np.ndarray, ref: np.ndarray,
                 work: Path) -> dict:
    """Compile with Rill, build the C for the host, stream the held-out inputs through
    `<name>_run_f32`; pooled SNR against the float model."""
    from compiler.context import Options
    from compiler.host_build import build_host, run_host
    from compiler.pipeline import compile_model
    from compiler.streams import aligned, chunks, snr_db
    from compiler.targets import get_target

    name = m["name"]
    out_root = work / "rill" / f"{name}_{target}_int{bits}"
    t0 = time.time()
    options = Options(target=get_target(target), bits=bits, calib=np.load(m["calib"]),
                      calib_path=m["calib"], name=name, verify=False)
    try:
        result = compile_model(Path(m["model"]), options, out_root, force=True)
    except Exception as e:  # noqa: BLE001 - a configuration Rill cannot compile is a result
        return {"snr_db": None, "error": one_line(e), "seconds": round(time.time() - t0, 2)}
    rep = result.report
    t_compile = time.time() - t0
    exe = build_host(result.out_dir, name, out_root)
    axis, chunk, latency = rep["time_axis"], rep["chunk_frames"], rep["latency_frames"]
    out = rep["output"]
    refs, quants = [], []
    for x, r in zip(heldout, ref):
        calls = np.stack([to_time_major(c, axis) for c in chunks(x.astype(np.float32), axis, chunk)])
        y = run_host(exe, calls.astype(np.float32), f32=True, out_elems=out["elems_per_call"])
        if out["per_frame"]:
            stream = np.concatenate([from_time_major(row, out["shape_per_call"], out["time_axis"])
                                     for row in y], axis=out["time_axis"])
            a, b = aligned(stream, r, latency, out["time_axis"], True)
        else:
            a, b = y[-1].reshape(r.shape), r
        quants.append(a.reshape(-1))
        refs.append(b.reshape(-1))
    refs, quants = np.concatenate(refs), np.concatenate(quants)
    return {"snr_db": float(snr_db(refs, quants)), "error": None,
            "calib_snr_db_report": rep.get("snr_db"), "chunk_frames": chunk,
            "latency_frames": latency, "compared_values": int(refs.size),
            "reference_values": int(ref.size), "weight_bytes": rep.get("weight_bytes"),
            "compile_seconds": round(t_compile, 2), "seconds": round(time.time() - t0, 2)}


# ------------------------------------------------------------------------------------ ESP-PPQ
def ppq_status(ppq_python: str | None) -> str | None:
    """None when ESP-PPQ can run, else why not."""
    if not ppq_python:
        return "ESP-PPQ not run (--no-ppq)"
    exe = Path(ppq_python)
    unavailable = exe.parent.parent / ".unavailable"
    if unavailable.exists():
        tail = unavailable.read_text().strip().splitlines()
        return ("ESP-PPQ could not be installed in " + str(exe.parent.parent) +
                (f" ({tail[-1][:150]})" if tail else "") + "; rm -rf it and rerun to retry")
    if not exe.exists():
        return f"ESP-PPQ venv not found ({exe}); run `make venv-ppq`"
    return None


def ppq_measure(ppq_python: str, m: dict, target: str, bits: int, settings: str,
                work: Path) -> dict:
    out = work / "ppq" / f"{m['name']}_{target}_int{bits}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = [ppq_python, str(RUNNER), str(m["model"]), str(m["calib"]), str(m["heldout"]),
           "--target", target, "--bits", str(bits), "--settings", settings,
           "--json-out", str(out)]
    t0 = time.time()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0 or not out.exists():
        tail = [l for l in proc.stderr.strip().splitlines() if l.strip()]
        return {"error": f"ppq_runner exit {proc.returncode}: {tail[-1][:200] if tail else ''}",
                "default": None, "best": None, "seconds": round(time.time() - t0, 2)}
    data = json.loads(out.read_text())
    data["wall_seconds"] = round(time.time() - t0, 2)
    return data


# -------------------------------------------------------------------------------------- table
def fmt(snr: float | None) -> str:
    if snr is None:
        return "n/a"
    return "inf" if snr == float("inf") else f"{snr:.1f}"


def print_table(rows: list[dict]) -> None:
    header = ["model", "target", "bits", "Rill", "ESP-PPQ default", "ESP-PPQ best (setting)"]
    notes: list[str] = []

    def note(reason: str) -> str:
        if reason not in notes:
            notes.append(reason)
        return f" [{notes.index(reason) + 1}]"

    lines = []
    for r in rows:
        rill = r["rill"]
        rill_cell = fmt(rill["snr_db"]) + (note(rill["error"]) if rill.get("error") else "")
        p = r["esp_ppq"]
        if p.get("default") is None and p.get("best") is None:
            default_cell = best_cell = "n/a" + note(p.get("error") or "no result")
        else:
            d = p["default"]
            default_cell = fmt(d["snr_db"]) + (note(d["error"]) if d.get("error") else "")
            b = p["best"]
            best_cell = f"{fmt(b['snr_db'])} ({b['setting']})" if b else \
                "n/a" + note("every ESP-PPQ setting failed")
        lines.append([r["model"], r["target"], str(r["bits"]), rill_cell, default_cell, best_cell])
    widths = [max(len(x) for x in col) for col in zip(header, *lines)]
    sep = "-+-".join("-" * w for w in widths)
    print("Output SNR in dB on held-out inputs (pooled, vs the float model in onnxruntime)")
    print(" | ".join(h.ljust(w) for h, w in zip(header, widths)))
    print(sep)
    for line in lines:
        print(" | ".join(c.ljust(w) for c, w in zip(line, widths)))
    for i, n in enumerate(notes, 1):
        print(f"[{i}] {n}")


# --------------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Rill vs ESP-PPQ output SNR (int8/int16, esp32p4/esp32s3)")
    default_ppq = ROOT / ".venv-ppq" / "bin" / "python"
    ap.add_argument("--ppq-python", default=str(default_ppq),
                    help="python of the ESP-PPQ venv (default .venv-ppq/bin/python)")
    ap.add_argument("--no-ppq", action="store_true", help="measure Rill only")
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--targets", default=",".join(TARGETS))
    ap.add_argument("--bits", default=",".join(map(str, BITS)))
    ap.add_argument("--ppq-settings", default="default,minmax,percentile,kl,mse",
                    help="ESP-PPQ settings, each run without and with bias correction")
    ap.add_argument("--jobs", type=int, default=2, help="ESP-PPQ runs in parallel (default 2)")
    ap.add_argument("--work", help="keep the compiled components and ESP-PPQ JSON here")
    ap.add_argument("--out", default=str(RESULTS), help="results JSON (default bench/results_quant.json)")
    args = ap.parse_args(argv)

    names = [s for s in args.models.split(",") if s]
    targets = [s for s in args.targets.split(",") if s]
    bits_list = [int(s) for s in args.bits.split(",") if s]
    t_start = time.time()
    tmp = None if args.work else tempfile.TemporaryDirectory(prefix="rill-bench-quant-")
    work = Path(args.work or tmp.name).resolve()
    work.mkdir(parents=True, exist_ok=True)
    try:
        models = prepare_models(names, work)
        status = ppq_status(None if args.no_ppq else args.ppq_python)
        if status:
            log(f"NOTE: {status}; the ESP-PPQ columns are n/a")
        configs = [(m, t, b) for m in models for t in targets for b in bits_list]
        pool = ThreadPoolExecutor(max_workers=max(1, args.jobs))
        futures = {}
        if status is None:  # ESP-PPQ runs in the background while Rill compiles
            # int16 runs first: its KL observer is the slowest setting by far
            for m, t, b in sorted(configs, key=lambda c: -c[2]):
                futures[(m["name"], t, b)] = pool.submit(ppq_measure, args.ppq_python, m, t, b,
                                                         args.ppq_settings, work)
        rows = []
        for m in models:
            heldout = np.load(m["heldout"]).astype(np.float32)
            ref = float_reference(Path(m["model"]), heldout)
            for t in targets:
                for b in bits_list:
                    log(f"rill    {m['name']:16s} {t} int{b}")
                    try:
                        rill = rill_measure(m, t, b, heldout, ref, work)
                    except Exception as e:  # noqa: BLE001 - e.g. a component that fails to build
                        rill = {"snr_db": None, "error": one_line(e)}
                    rows.append({"model": m["name"], "source": m["source"], "target": t, "bits": b,
                                 "rill": rill})
        for r in rows:
            key = (r["model"], r["target"], r["bits"])
            if key in futures:
                log(f"esp-ppq {key[0]:16s} {key[1]} int{key[2]} (waiting)")
                r["esp_ppq"] = futures[key].result()
            else:
                r["esp_ppq"] = {"error": status, "default": None, "best": None}
        pool.shutdown()
        elapsed = time.time() - t_start
        print_table(rows)
        print(f"({len(rows)} configurations in {elapsed:.0f} s; details in {args.out})")
        results = {
            "generated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "metric": "pooled output SNR in dB on held-out inputs: 10*log10(sum ref^2 / "
                      "sum (ref - q)^2), ref = float model in onnxruntime",
            "rill": "compile_model (streaming, default chunk), host-built C, <name>_run_f32 "
                    "chunk by chunk from init; outputs aligned by latency (contract 2)",
            "esp_ppq": "bench/quant/ppq_runner.py: espdl_quantize_onnx, TorchExecutor "
                       "(fake-quantized) on the quantized graph; best = max over settings "
                       f"({args.ppq_settings}, each +/- bias correction)",
            "esp_ppq_status": status or "ok",
            "seconds": round(elapsed, 1),
            "rows": rows,
        }
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results, indent=1, default=str) + "\n")
    finally:
        if tmp is not None:
            tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
