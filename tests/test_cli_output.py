"""What a compile prints (issue 7): --quiet only errors, the default the start of each long step,
at most one progress line every 2 s inside one and the warnings (stderr) and a one-line summary
(stdout), --verbose
every pass with its time and every progress line (compiler/progress.py). Through the CLI
in-process, on a small causal conv stack (and the shared example compile for the default)."""
from __future__ import annotations

import json
import re

import numpy as np
import onnx
import pytest

from compiler import progress as progress_mod
from compiler.progress import NORMAL, QUIET, VERBOSE, Progress
from conftest import run_cli
from graphs import causal_tcn_model


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    d = tmp_path_factory.mktemp("small")
    onnx.save(causal_tcn_model(channels=4, t=12), str(d / "small.onnx"))
    np.save(d / "calib.npy", np.random.default_rng(0).standard_normal((16, 1, 4, 12))
            .astype(np.float32))
    return d


def _compile(small, out, *flags):
    return run_cli(["compile", small / "small.onnx", "--calib", small / "calib.npy",
                    "--out", out, "--chunk", "2", *flags])


def test_quiet_prints_nothing_on_success(small, tmp_path):
    rc, so, se = _compile(small, tmp_path, "--no-verify", "--quiet")
    assert rc == 0 and so == "" and se == ""
    assert (tmp_path / "small" / "report.md").is_file()


def test_quiet_still_prints_errors(small, tmp_path):
    rc, so, se = _compile(small, tmp_path, "--no-verify", "--quiet", "--chunk", "0")
    assert rc == 2 and so == "" and se.startswith("rill: error:") and se.count("\n") == 1


def test_verbose_lists_every_pass_with_its_time(small, tmp_path):
    rc, so, se = _compile(small, tmp_path, "--verbose")
    assert rc == 0, se
    passes = json.loads((tmp_path / "small" / "report.json").read_text())["passes"]
    for p in passes:
        assert re.search(rf"^rill: \[ *\d+\.\d s\] pass {re.escape(p['name'])}: \d+\.\d\d s",
                         se, re.M), p["name"]
    assert "measuring code size and stack" in se and "verifying: building the generated C" in se
    assert so.startswith("rill: wrote ") and so.count("\n") == 1


def test_default_shows_long_steps_and_a_summary(compiled, example_model, example_calib):
    c = compiled("quality_s3_c2", example_model, "--target", "esp32s3", "--chunk", "2",
                 "--calib", str(example_calib), name="quality")
    assert c.rc == 0, c.stderr
    lines = c.stderr.splitlines()
    for step in ("calibrate: running the float model on 64 calibration inputs",
                 "refine-exponents: measuring", "measuring the integer program",
                 "verifying: building the generated C"):
        assert any(step in ln for ln in lines), step
    assert not any(" pass " in ln or re.match(r"rill: \[", ln) for ln in lines)
    assert len(lines) < 40  # progress inside a step is throttled
    assert c.stdout.startswith("rill: wrote ") and c.stdout.count("\n") == 1
    assert "RAM per stream" in c.stdout and "% of SRAM" in c.stdout


def test_default_prints_progress_inside_a_long_step(small, tmp_path, monkeypatch):
    """With the throttle at 0 s every progress line of a long step shows (here the
    sensitivity measurement, layer by layer); the passes do not."""
    monkeypatch.setattr(progress_mod, "TICK_SECONDS", 0.0)
    rc, _, se = _compile(small, tmp_path, "--no-verify")
    assert rc == 0, se
    assert re.search(r"^rill: sensitivity 1/\d+: ", se, re.M)
    assert " pass " not in se


def test_quiet_and_verbose_together_is_a_usage_error(small, tmp_path):
    rc, _, se = _compile(small, tmp_path, "-q", "-v")
    assert rc == 2 and "not allowed with" in se


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


@pytest.mark.parametrize("level,expected", [
    (QUIET, []),
    (NORMAL, ["step A", "tick 2", "step B"]),  # tick 1 and 3: < 2 s after a line
    (VERBOSE, ["[   0.0 s] step A", "[   0.5 s] tick 1", "[   1.0 s] detail",
               "[   2.0 s] tick 2", "[   2.6 s] tick 3", "[   2.7 s] step B"]),
])
def test_progress_levels_and_throttle(level, expected):
    clock, out = Clock(), []
    p = Progress(level, emit=out.append, clock=clock, tick_seconds=2.0)
    for t, kind, msg in [(0.0, "step", "step A"), (0.5, "tick", "tick 1"),
                         (1.0, "detail", "detail"), (2.0, "tick", "tick 2"),
                         (2.6, "tick", "tick 3"), (2.7, "step", "step B")]:
        clock.t = t
        getattr(p, kind)(msg)
    assert out == expected
