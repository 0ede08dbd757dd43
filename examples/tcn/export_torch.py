"""Export the streaming TCN example model with PyTorch (reference fixtures).

This is the PyTorch twin of ``make_tcn.py``: the same architecture written as a
``torch.nn.Module`` and exported with ``torch.onnx.export`` at opset 18.  It is
NOT needed to use Rill; it produces the ONNX files in ``tests/fixtures/`` that
the compiler is tested against, so that the importer sees graphs exactly as the
real PyTorch exporters write them.

Architecture (Espressif streaming-TCN tutorial model), input ``[1, 16, 24]``
(NCW: 16 features x 24 frames)::

    x0 = conv_in(x)                         # Conv1d 16->32, k=1
    h  = x0
    for d in (1, 2, 1):                     # three causal DS blocks
        b = F.pad(h, (2*d, 0))              # causal left zero-pad (k-1)*d
        b = relu(dw(b))                     # Conv1d 32->32, k=3, groups=32, dilation=d
        b = relu(bn(pw(b)))                 # Conv1d 32->32, k=1 ; BatchNorm1d(32)
        h = silu(b) + x0                    # SiLU, then residual with conv_in output
    h = avg_pool(F.pad(h, (2, 0)))          # causal AvgPool1d(3, stride=1), zeros count
    h = conv_out(h)                         # Conv1d 32->16, k=1
    h = h[:, :, -3:]                        # keep last 3 frames
    y = fc(h.flatten(1))                    # Linear 48->16  -> [1, 16]

The residual reading ("each block's SiLU output is added to x0") is the same
one documented in ``make_tcn.py``.

Usage (needs torch; in this repo: /work/torchenv)::

    /work/torchenv/bin/python examples/tcn/export_torch.py [--out tests/fixtures] [--seed 0]

Writes into ``--out``:

* ``tcn_torch_dynamo.onnx``   -- ``torch.onnx.export(..., dynamo=True)`` (default exporter)
* ``tcn_torch_script.onnx``   -- ``torch.onnx.export(..., dynamo=False)`` (TorchScript exporter)
* ``tcn_torch_dynamic.onnx``  -- dynamo exporter, dynamic batch ``N`` and time ``T`` dims
* extras: ``tcn_torch_dynamo_noopt.onnx`` (dynamo, ``optimize=False``: BatchNormalization
  and Pad nodes kept) and ``tcn_torch_script_dynamic.onnx`` (TorchScript, ``dynamic_axes``)
* ``tcn_torch_calib.npy``     -- 64 standard-normal inputs, float32 ``[64, 1, 16, 24]``,
  ``numpy.random.default_rng(1)``
* ``tcn_torch_expected.npy``  -- torch outputs for calib[0:4], float32 ``[4, 1, 16]``
  (``expected[i] = model(calib[i])``)

All ONNX files have their weights embedded (no external data).
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

N_IN = 16          # input features
N_HID = 32         # hidden channels
N_OUT = 16         # conv_out channels / classifier outputs
T_IN = 24          # frames in the reference window
KEEP = 3           # frames kept before the classifier
KERNEL = 3
DILATIONS = (1, 2, 1)
OPSET = 18
CALIB_SEED = 1


class CausalDSBlock(nn.Module):
    """Causal depthwise-separable block: pad-left, dw conv, ReLU, pw conv, BN, ReLU."""

    def __init__(self, channels: int, kernel_size: int, dilation: int):
        super().__init__()
        self.left_pad = (kernel_size - 1) * dilation
        self.dw = nn.Conv1d(channels, channels, kernel_size, dilation=dilation, groups=channels)
        self.pw = nn.Conv1d(channels, channels, 1)
        self.bn = nn.BatchNorm1d(channels)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, (self.left_pad, 0))
        x = self.relu(self.dw(x))
        x = self.relu(self.bn(self.pw(x)))
        return x


class StreamingTCN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv_in = nn.Conv1d(N_IN, N_HID, 1)
        self.blocks = nn.ModuleList([CausalDSBlock(N_HID, KERNEL, d) for d in DILATIONS])
        self.act = nn.SiLU()
        self.pool = nn.AvgPool1d(KERNEL, stride=1)
        self.conv_out = nn.Conv1d(N_HID, N_OUT, 1)
        self.fc = nn.Linear(N_OUT * KEEP, N_OUT)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x0 = self.conv_in(x)
        h = x0
        for block in self.blocks:
            h = self.act(block(h)) + x0
        h = self.pool(F.pad(h, (KERNEL - 1, 0)))
        h = self.conv_out(h)
        h = h[:, :, -KEEP:]
        h = h.flatten(1)
        return self.fc(h)


def build_model(seed: int = 0) -> StreamingTCN:
    """PyTorch default init (seeded), plus randomized BatchNorm affine + running stats."""
    torch.manual_seed(seed)
    model = StreamingTCN()
    g = torch.Generator().manual_seed(seed + 1000)
    with torch.no_grad():
        for block in model.blocks:
            bn = block.bn
            c = bn.num_features
            bn.weight.copy_(0.5 + torch.rand(c, generator=g))            # gamma in [0.5, 1.5)
            bn.bias.copy_(0.2 * torch.randn(c, generator=g))              # beta
            bn.running_mean.copy_(0.3 * torch.randn(c, generator=g))
            bn.running_var.copy_(0.25 + 1.5 * torch.rand(c, generator=g))  # var in [0.25, 1.75)
    model.eval()
    return model


def make_calib(n: int = 64, seed: int = CALIB_SEED) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 1, N_IN, T_IN)).astype(np.float32)


def _save_embedded(path: str) -> None:
    """Re-save `path` with every initializer embedded; delete any external-data side file."""
    import onnx

    model = onnx.load(path, load_external_data=True)
    side_files = set()
    for init in model.graph.initializer:
        if init.data_location == onnx.TensorProto.EXTERNAL:
            for kv in init.external_data:
                if kv.key == "location":
                    side_files.add(os.path.join(os.path.dirname(path), kv.value))
    onnx.save(model, path, save_as_external_data=False)
    for f in side_files:
        if os.path.exists(f):
            os.remove(f)
    onnx.checker.check_model(onnx.load(path), full_check=True)


def export_all(out_dir: str, seed: int = 0) -> dict[str, str]:
    os.makedirs(out_dir, exist_ok=True)
    model = build_model(seed)
    example = (torch.randn(1, N_IN, T_IN),)
    paths = {}

    # 1) default exporter of torch 2.x (dynamo / torch.export based)
    p = os.path.join(out_dir, "tcn_torch_dynamo.onnx")
    torch.onnx.export(model, example, p, input_names=["x"], output_names=["y"],
                      opset_version=OPSET, dynamo=True, external_data=False)
    _save_embedded(p)
    paths["dynamo"] = p

    # 2) legacy TorchScript exporter
    p = os.path.join(out_dir, "tcn_torch_script.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, example, p, input_names=["x"], output_names=["y"],
                          opset_version=OPSET, dynamo=False)
    _save_embedded(p)
    paths["script"] = p

    # 3) dynamo exporter with symbolic batch N and time T (T >= 3 so the slice keeps 3 frames)
    p = os.path.join(out_dir, "tcn_torch_dynamic.onnx")
    dyn = {"x": {0: torch.export.Dim("N", min=1, max=1024),
                 2: torch.export.Dim("T", min=KEEP, max=4096)}}
    torch.onnx.export(model, (torch.randn(2, N_IN, T_IN),), p, input_names=["x"],
                      output_names=["y"], opset_version=OPSET, dynamo=True,
                      dynamic_shapes=dyn, external_data=False)
    _save_embedded(p)
    paths["dynamic"] = p

    # Extras (not required by the tests, but they show what other exporter settings emit):
    # 4) dynamo exporter with optimize=False: keeps BatchNormalization, separate Pad nodes,
    #    and the un-simplified Slice/Reshape index plumbing.
    p = os.path.join(out_dir, "tcn_torch_dynamo_noopt.onnx")
    torch.onnx.export(model, example, p, input_names=["x"], output_names=["y"],
                      opset_version=OPSET, dynamo=True, optimize=False, external_data=False)
    _save_embedded(p)
    paths["dynamo_noopt"] = p

    # 5) TorchScript exporter with dynamic_axes on batch/time.
    p = os.path.join(out_dir, "tcn_torch_script_dynamic.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, example, p, input_names=["x"], output_names=["y"],
                          opset_version=OPSET, dynamo=False,
                          dynamic_axes={"x": {0: "N", 2: "T"}, "y": {0: "N"}})
    _save_embedded(p)
    paths["script_dynamic"] = p

    calib = make_calib()
    np.save(os.path.join(out_dir, "tcn_torch_calib.npy"), calib)
    with torch.no_grad():
        expected = np.stack([model(torch.from_numpy(calib[i])).numpy() for i in range(4)])
    np.save(os.path.join(out_dir, "tcn_torch_expected.npy"), expected.astype(np.float32))
    return paths


def main(argv: list[str] | None = None) -> int:
    here = os.path.dirname(os.path.abspath(__file__))
    default_out = os.path.normpath(os.path.join(here, "..", "..", "tests", "fixtures"))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=default_out, help="output directory (default: tests/fixtures)")
    ap.add_argument("--seed", type=int, default=0, help="weight seed (default 0)")
    args = ap.parse_args(argv)
    paths = export_all(args.out, args.seed)
    for k, v in paths.items():
        print(f"{k:8s} -> {v}")
    print(f"torch {torch.__version__}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
