"""Quantize one ONNX model with ESP-PPQ and measure its output SNR on held-out inputs.

Runs inside the ESP-PPQ venv (`make venv-ppq` creates `.venv-ppq`: torch CPU, esp-ppq,
onnx<1.20, onnxruntime); it imports nothing from Rill.  `bench_quant.py` calls it once per
(model, target, bits)::

    .venv-ppq/bin/python bench/quant/ppq_runner.py MODEL.onnx CALIB.npy HELDOUT.npy \
        --target esp32p4 --bits 8 [--settings default,minmax,percentile,kl,mse] \
        [--bias-correction both|off|on] [--json-out FILE]

and prints one JSON object on stdout (ESP-PPQ's own log goes to stderr).

What it does, the way an ESP-PPQ user quantizes and checks a model:

- The model is copied into a temporary folder first (``espdl_quantize_onnx`` overwrites its
  input file with the onnxsim-simplified model).  ESP-PPQ wants batch 1 and static shapes:
  a dynamic input dim is pinned to the calibration data's shape (said in ``prepared``).
- Each setting is ``QuantizationSettingFactory.espdl_setting(num_of_bits=bits)`` (what
  ``espdl_quantize_onnx`` uses when given no setting) with, for an observer setting, the
  activation observer ``quantize_activation_setting.calib_algorithm`` replaced, and with
  ``bias_correct = True`` (ESP-PPQ's BiasCorrectionPass, its default block size and steps) for
  the ``+bc`` variants.  Weight quantization stays ESP-PPQ's default (per-channel power of
  two).  ``default`` is ``kl`` activations at int8 and ``minmax`` at int16; an observer setting
  that equals the default is not quantized twice (``same_as``).
- Calibration: every calibration input (batch 1) once, ``calib_steps`` = their number.
- Evaluation: ``TorchExecutor`` on the quantized graph (ESP-PPQ's fake-quantized simulation of
  the ESP-DL kernels, which is how ESP-PPQ users measure accuracy) on every held-out input,
  against the float model in onnxruntime; pooled SNR = 10·log10(Σref² / Σ(ref−q)²) over all
  held-out outputs (Rill's contract §4 definition).
- The default setting is also exported to ``.espdl`` (``espdl_export``: "ok" or the error), so
  a model ESP-DL could not load is visible.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
import traceback

import numpy as np

OBSERVERS = ("minmax", "percentile", "kl", "mse", "isotone")
DEFAULT_SETTINGS = ("default", "minmax", "percentile", "kl", "mse")


@contextlib.contextmanager
def stdout_to_stderr():
    """ESP-PPQ prints banners and progress on stdout: keep stdout for our JSON."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def snr_db(ref: np.ndarray, test: np.ndarray) -> float:
    ref, test = np.asarray(ref, np.float64).ravel(), np.asarray(test, np.float64).ravel()
    noise = float(np.sum((ref - test) ** 2))
    if noise == 0.0:
        return float("inf")
    return float(10.0 * np.log10(max(float(np.sum(ref ** 2)), 1e-300) / noise))


def prepare_model(src: str, dst: str, calib: np.ndarray) -> tuple[list[int], np.ndarray, list[str]]:
    """Copy the model to `dst` with a static batch-1 input; the calibration data shaped
    [N, *input_shape]; notes on what was changed."""
    import onnx

    model = onnx.load(src)
    notes = []
    inits = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in inits]
    if len(inputs) != 1 or len(model.graph.output) != 1:
        raise SystemExit(f"{src}: the bench handles one input and one output "
                         f"(got {len(inputs)} inputs, {len(model.graph.output)} outputs)")
    dims = inputs[0].type.tensor_type.shape.dim
    shape = [d.dim_value if d.HasField("dim_value") else None for d in dims]
    sample = tuple(calib.shape[1:])
    if len(sample) == len(shape) - 1:  # calibration given without the batch axis
        calib = calib[:, None]
        sample = tuple(calib.shape[1:])
    if len(sample) != len(shape):
        raise SystemExit(f"{src}: calibration shape {list(calib.shape)} does not fit input {shape}")
    if any(s is None for s in shape):
        for d, v in zip(dims, sample):
            d.ClearField("dim_param")
            d.dim_value = int(v)
        notes.append(f"dynamic input dims pinned to {list(sample)} (ESP-PPQ needs static shapes)")
        shape = list(sample)
    if shape[0] != 1:
        raise SystemExit(f"{src}: ESP-PPQ needs batch 1; the input is {shape}")
    if [int(v) for v in sample] != shape:
        raise SystemExit(f"{src}: calibration shape {list(calib.shape)} does not fit input {shape}")
    onnx.save(model, dst)
    return shape, calib.astype(np.float32), notes


def float_outputs(model_path: str, xs: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    sess = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return np.stack([sess.run(None, {name: x})[0] for x in xs])


def make_setting(bits: int, observer: str | None, bias_correct: bool):
    from esp_ppq import QuantizationSettingFactory

    setting = QuantizationSettingFactory.espdl_setting(num_of_bits=bits)
    if observer is not None:
        setting.quantize_activation_setting.calib_algorithm = observer
    setting.bias_correct = bias_correct
    return setting


def quantize_and_eval(model: str, work: str, shape: list[int], calib: np.ndarray,
                      heldout: np.ndarray, ref: np.ndarray, target: str, bits: int,
                      setting, export: bool) -> tuple[float, str | None]:
    import torch
    from esp_ppq.api import espdl_quantize_onnx
    from esp_ppq.executor import TorchExecutor

    path = os.path.join(work, "model.onnx")
    shutil.copyfile(model, path)  # espdl_quantize_onnx overwrites it with the simplified model
    torch.manual_seed(0)  # ESP-PPQ traces the graph with random inputs
    graph = espdl_quantize_onnx(
        onnx_import_file=path, espdl_export_file=os.path.join(work, "model.espdl"),
        calib_dataloader=[torch.from_numpy(x) for x in calib], calib_steps=len(calib),
        input_shape=shape, target=target, num_of_bits=bits, setting=setting, device="cpu",
        error_report=False, skip_export=True, verbose=0)
    executor = TorchExecutor(graph=graph, device="cpu")
    q = np.stack([executor.forward(inputs=torch.from_numpy(x))[0].detach().cpu().numpy()
                  for x in heldout])
    if q.size != ref.size:
        raise RuntimeError(f"quantized output has {q.size} values, float output {ref.size}")
    exported = None
    if export:
        try:
            import esp_ppq.lib as PFL
            from esp_ppq.api.espdl_interface import get_target_platform

            PFL.Exporter(platform=get_target_platform(target, bits)).export(
                file_path=os.path.join(work, "model.espdl"), graph=graph)
            exported = "ok"
        except Exception as e:  # noqa: BLE001 - report, do not fail the measurement
            exported = f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
    return snr_db(ref, q.reshape(ref.shape)), exported


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model")
    ap.add_argument("calib", help=".npy [N, *input_shape] (or without the batch axis)")
    ap.add_argument("heldout", help=".npy of held-out inputs, same layout as calib")
    ap.add_argument("--target", default="esp32p4", choices=("esp32p4", "esp32s3"))
    ap.add_argument("--bits", type=int, default=8, choices=(8, 16))
    ap.add_argument("--settings", default=",".join(DEFAULT_SETTINGS),
                    help=f"comma list of default and observers {OBSERVERS}")
    ap.add_argument("--bias-correction", default="both", choices=("both", "off", "on"),
                    help="run each setting without and/or with ESP-PPQ's bias correction")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--json-out", help="also write the JSON here")
    args = ap.parse_args(argv)

    names = [s.strip() for s in args.settings.split(",") if s.strip()]
    bad = [s for s in names if s != "default" and s not in OBSERVERS]
    if bad:
        ap.error(f"unknown settings {bad}; choose from default, {', '.join(OBSERVERS)}")
    bcs = {"both": (False, True), "off": (False,), "on": (True,)}[args.bias_correction]

    t_start = time.time()
    with stdout_to_stderr():
        from importlib.metadata import version

        import esp_ppq  # noqa: F401 - prints its banner here, not into our JSON
        import torch

        torch.set_num_threads(max(1, args.threads))
        default_observer = make_setting(args.bits, None, False).quantize_activation_setting.calib_algorithm
        calib_raw = np.load(args.calib)
        heldout_raw = np.load(args.heldout)
        results, seen, export_status = [], {}, None
        with tempfile.TemporaryDirectory(prefix="ppq-bench-") as work:
            model = os.path.join(work, "float.onnx")
            shape, calib, notes = prepare_model(args.model, model, calib_raw)
            heldout = heldout_raw[:, None] if heldout_raw.ndim == len(shape) else heldout_raw
            heldout = heldout.astype(np.float32)
            ref = float_outputs(model, heldout)
            for name in names:
                observer = None if name == "default" else name
                for bc in bcs:
                    label = name + ("+bc" if bc else "")
                    key = (observer or default_observer, bc)
                    row = {"setting": label, "activation_observer": key[0], "bias_correction": bc}
                    if key in seen:  # the same ESP-PPQ setting as one already run
                        same = seen[key]
                        results.append({**row, "snr_db": same["snr_db"], "error": same["error"],
                                        "seconds": 0.0, "same_as": same["setting"]})
                        continue
                    t0 = time.time()
                    try:
                        snr, exported = quantize_and_eval(
                            model, work, shape, calib, heldout, ref, args.target, args.bits,
                            make_setting(args.bits, observer, bc),
                            export=export_status is None and name == "default" and not bc)
                        export_status = exported or export_status
                        err = None
                    except Exception as e:  # noqa: BLE001 - one failing setting is a result
                        traceback.print_exc()
                        snr, err = None, f"{type(e).__name__}: {str(e).strip().splitlines()[0][:300] if str(e).strip() else ''}"
                    row.update(snr_db=snr, error=err, seconds=round(time.time() - t0, 2), same_as=None)
                    results.append(row)
                    seen[key] = row
        ok = [r for r in results if r["snr_db"] is not None]
        best = max(ok, key=lambda r: r["snr_db"]) if ok else None
        default = next((r for r in results if r["setting"] == "default"), None)
        out = {
            "tool": "esp-ppq", "esp_ppq_version": version("esp-ppq"), "torch_version": torch.__version__,
            "model": os.path.abspath(args.model), "target": args.target, "bits": args.bits,
            "input_shape": shape, "calib_inputs": len(calib), "heldout_inputs": len(heldout),
            "prepared": notes or ["used as given (static batch-1 input)"],
            "evaluation": "TorchExecutor (fake-quantized) vs onnxruntime float, pooled SNR over "
                          "all held-out outputs",
            "espdl_export": export_status,
            "settings": results,
            "default": {"setting": "default", "snr_db": default["snr_db"] if default else None,
                        "error": default["error"] if default else None},
            "best": {"setting": best["setting"], "snr_db": best["snr_db"]} if best else None,
            "seconds": round(time.time() - t_start, 2),
        }
    text = json.dumps(out, indent=1)
    if args.json_out:
        with open(args.json_out, "w") as f:
            f.write(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
