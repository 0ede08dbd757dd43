"""Export the streaming-construct models (models.py) with both PyTorch ONNX exporters.

Writes into ``--out`` (default ``tests/fixtures/streaming``), for every model ``<m>``:

* ``<m>.dynamo.onnx``  -- ``torch.onnx.export(..., dynamo=True, opset_version=18)``
  (pinned: torch 2.13's own default is opset 20, where exact GELU becomes a native
  ``Gelu`` node instead of ``Div/Erf/Add/Mul``; ``--dynamo-opset 0`` uses the default)
* ``<m>.script.onnx``  -- ``torch.onnx.export(..., dynamo=False, opset_version=17)``
* ``<m>.calib.npy``    -- float32 ``[64, *input_shape]``, ``np.random.default_rng(0)`` standard normal
* ``<m>.heldout.npy``  -- float32 ``[20, *input_shape]``, ``np.random.default_rng(1)`` standard normal

Each ONNX file has its weights embedded, is checked with ``onnx.checker``, run in
onnxruntime on a few calibration + held-out samples and compared with torch
(atol 1e-4); the op types of every file are printed.

Usage (needs torch; in this repo: /work/torchenv)::

    /work/torchenv/bin/python examples/streaming/export.py [--out DIR] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections import Counter

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "tcn"))
import models  # noqa: E402
from export_torch import _save_embedded  # noqa: E402  (one way to embed initializers)

DYNAMO_OPSET = 18
SCRIPT_OPSET = 17
N_CALIB, CALIB_SEED = 64, 0
N_HELDOUT, HELDOUT_SEED = 20, 1
ATOL = 1e-4
MAX_BYTES = 60 * 1024


def _export(model: torch.nn.Module, example: torch.Tensor, path: str, dynamo: bool,
            dynamo_opset: int = DYNAMO_OPSET) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            kw = {"opset_version": dynamo_opset} if dynamo_opset else {}
            torch.onnx.export(model, (example,), path, input_names=["x"], output_names=["y"],
                              dynamo=True, external_data=False, **kw)
        else:
            torch.onnx.export(model, (example,), path, input_names=["x"], output_names=["y"],
                              dynamo=False, opset_version=SCRIPT_OPSET)
    _save_embedded(path)


def _op_types(path: str) -> tuple[int, Counter]:
    """(opset of the default domain, op-type counts incl. nested subgraphs)."""
    import onnx

    m = onnx.load(path)
    opset = next((o.version for o in m.opset_import if o.domain in ("", "ai.onnx")), -1)
    counts: Counter = Counter()

    def walk(g):
        for n in g.node:
            counts[n.op_type if not n.domain else f"{n.domain}.{n.op_type}"] += 1
            for a in n.attribute:
                if a.g is not None and a.HasField("g"):
                    walk(a.g)
                for sg in a.graphs:
                    walk(sg)

    walk(m.graph)
    return opset, counts


def _verify(model: torch.nn.Module, path: str, samples: np.ndarray) -> float:
    import onnxruntime as ort

    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    (inp,) = sess.get_inputs()
    outs = sess.get_outputs()
    assert len(outs) == 1, f"{path}: {len(outs)} outputs"
    worst = 0.0
    for s in samples:
        with torch.no_grad():
            ref = model(torch.from_numpy(s)).numpy()
        (got,) = sess.run(None, {inp.name: s})
        assert got.dtype == np.float32, f"{path}: output dtype {got.dtype}"
        assert got.shape == ref.shape, f"{path}: shape {got.shape} vs torch {ref.shape}"
        err = float(np.max(np.abs(got - ref)))
        worst = max(worst, err)
        if not np.allclose(got, ref, atol=ATOL, rtol=0):
            raise AssertionError(f"{path}: max |ort - torch| = {err:.3g} > {ATOL}")
    return worst


def export_model(name: str, out_dir: str, seed: int = 0,
                 dynamo_opset: int = DYNAMO_OPSET) -> list[str]:
    shape = models.input_shape(name)
    model = models.build(name, seed)
    calib = np.random.default_rng(CALIB_SEED).standard_normal((N_CALIB, *shape)).astype(np.float32)
    heldout = np.random.default_rng(HELDOUT_SEED).standard_normal(
        (N_HELDOUT, *shape)).astype(np.float32)
    written = []
    for kind in ("dynamo", "script"):
        path = os.path.join(out_dir, f"{name}.{kind}.onnx")
        _export(model, torch.from_numpy(calib[0]), path, dynamo=(kind == "dynamo"),
                dynamo_opset=dynamo_opset)
        size = os.path.getsize(path)
        assert size < MAX_BYTES, f"{path}: {size} bytes >= {MAX_BYTES}"
        worst = _verify(model, path, np.concatenate([calib[:8], heldout[:4]]))
        opset, ops = _op_types(path)
        with torch.no_grad():
            oshape = tuple(model(torch.from_numpy(calib[0])).shape)
        print(f"{name}.{kind}.onnx  {size} B  opset {opset}  {shape} -> {oshape}  "
              f"max|ort-torch| {worst:.2e}")
        print("    " + ", ".join(f"{k}x{v}" for k, v in sorted(ops.items())))
        written.append(path)
    for suffix, arr in (("calib", calib), ("heldout", heldout)):
        p = os.path.join(out_dir, f"{name}.{suffix}.npy")
        np.save(p, arr)
        written.append(p)
    return written


def main(argv: list[str] | None = None) -> int:
    here = os.path.dirname(os.path.abspath(__file__))
    default_out = os.path.normpath(os.path.join(here, "..", "..", "tests", "fixtures", "streaming"))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=default_out, help="output dir (default tests/fixtures/streaming)")
    ap.add_argument("--seed", type=int, default=0, help="weight seed (default 0)")
    ap.add_argument("--dynamo-opset", type=int, default=DYNAMO_OPSET,
                    help="opset for the dynamo exporter (default 18; 0 = exporter default)")
    ap.add_argument("--only", nargs="*", choices=sorted(models.MODELS), help="subset of models")
    args = ap.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    for name in args.only or list(models.MODELS):
        export_model(name, args.out, args.seed, args.dynamo_opset)
    print(f"torch {torch.__version__}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
