"""Shared fixtures for the end-to-end, harness and CLI tests.

- `run_cli(argv)`: runs `compiler.cli.main(argv)` in-process and returns (exit code, stdout, stderr).
- `example_model` / `example_calib`: the bundled TCN written by `examples/tcn/make_tcn.py`
  (`build_tcn("default", 0)`, `make_calib(64, 1)`) into a session temp folder, so the tests do
  not depend on a checked-in build artefact.
- `compiled(key, model, *args)`: compiles once per session (per xdist worker) and caches the result;
  every compile gets its own `--out` folder under tmp_path_factory.
- `held_out_inputs`: 20 standard-normal inputs [20, 1, 16, 24] from a seed that the calibration
  data does not use.
"""
from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

FIXTURES = ROOT / "tests" / "fixtures"
HARNESS_DIR = ROOT / "tests" / "harness"
TORCH_CALIB = FIXTURES / "tcn_torch_calib.npy"
CC = shutil.which("gcc")
STRICT_CFLAGS = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic"]


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    """`python -m compiler <argv>` in-process: (exit code, stdout, stderr)."""
    from compiler.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main([str(a) for a in argv])
        except SystemExit as exc:  # main() should not raise, but report it like the shell would
            rc = exc.code if isinstance(exc.code, int) else 1
    return rc, out.getvalue(), err.getvalue()


@dataclass
class Compiled:
    """One compile run: the exit code, its output and where the component went."""

    rc: int
    stdout: str
    stderr: str
    out_root: Path
    name: str

    @property
    def component(self) -> Path:
        return self.out_root / self.name


@pytest.fixture(scope="session")
def example_dir(tmp_path_factory) -> Path:
    sys.path.insert(0, str(ROOT / "examples" / "tcn"))
    try:
        import make_tcn
    finally:
        sys.path.pop(0)
    d = tmp_path_factory.mktemp("example")
    model = make_tcn.build_tcn("default", 0)
    onnx.checker.check_model(model)
    onnx.save(model, str(d / "tcn.onnx"))
    np.save(d / "calib.npy", make_tcn.make_calib(64, 1))
    return d


@pytest.fixture(scope="session")
def example_model(example_dir) -> Path:
    return example_dir / "tcn.onnx"


@pytest.fixture(scope="session")
def example_calib(example_dir) -> Path:
    return example_dir / "calib.npy"


@pytest.fixture(scope="session")
def held_out_inputs() -> np.ndarray:
    """20 inputs drawn like the calibration data (standard normal) but from another seed."""
    return np.random.default_rng(20240607).standard_normal((20, 1, 16, 24)).astype(np.float32)


@pytest.fixture(scope="session")
def compiled(tmp_path_factory):
    """compiled(key, model, *extra_args, name=None) -> Compiled, once per key per session."""
    cache: dict[str, Compiled] = {}

    def compile_once(key: str, model: Path, *args: str, name: str | None = None) -> Compiled:
        if key not in cache:
            out = tmp_path_factory.mktemp(f"out_{key}")
            argv = ["compile", str(model), "--out", str(out), *args]
            if name:
                argv += ["--name", name]
            rc, so, se = run_cli(argv)
            default = name or _sanitized_stem(model)
            cache[key] = Compiled(rc, so, se, out, default)
        return cache[key]

    return compile_once


C_KEYWORDS = {
    "auto", "break", "case", "char", "const", "continue", "default", "do", "double", "else", "enum",
    "extern", "float", "for", "goto", "if", "inline", "int", "long", "register", "restrict",
    "return", "short", "signed", "sizeof", "static", "struct", "switch", "typedef", "union",
    "unsigned", "void", "volatile", "while", "_Bool", "_Complex", "_Imaginary"}


def _sanitized_stem(model: Path) -> str:
    """Contract §1: lower-cased stem, [^a-z0-9_] -> '_', 'm_' before a digit or a C keyword."""
    name = re.sub(r"[^a-z0-9_]", "_", model.stem.lower())
    return "m_" + name if name[:1].isdigit() or name in C_KEYWORDS else name


@pytest.fixture(scope="session")
def cc() -> str:
    if CC is None:
        pytest.skip("no gcc on PATH")
    return CC


def require_tools(why: str | None) -> None:
    """Skip, saying why, when a cross toolchain the test needs is missing, except under CI
    (CI set), where .ci/run installs it: there its absence fails the test."""
    if why and os.environ.get("CI"):
        pytest.fail(f"this test must run in CI: {why}", pytrace=False)
    if why:
        pytest.skip(why)
