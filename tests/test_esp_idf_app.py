"""examples/esp-idf-app (issue 7): the ESP-IDF application that feeds a Rill component from a
microphone. ESP-IDF cannot run here, so its plain-C part (audio_features.c, model_stream.c) is built
with the generated component at the strict flags and run on the host (tests/harness/app_host.c
in place of the I2S task): frame-by-frame feeding gives exactly the component's per-call
outputs, and the Goertzel features match a float64 numpy version of the same definition.
The ESP-IDF files are checked against the build system's conventions."""
from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from compiler.host_build import STRICT_FLAGS, build_host, run_host
from conftest import ROOT

APP = ROOT / "examples" / "esp-idf-app"
HARNESS = ROOT / "tests" / "harness" / "app_host.c"
SAMPLE_RATE, WINDOW, LOW_HZ, HIGH_HZ = 16000, 320, 100.0, 7000.0


def build_app(cc: str, component: Path, work: Path) -> Path:
    work.mkdir(parents=True, exist_ok=True)
    exe = work / "app_host"
    sources = [HARNESS, APP / "main" / "audio_features.c", APP / "main" / "model_stream.c",
               *sorted((component / "src").glob("*.c"))]
    cmd = [cc, *STRICT_FLAGS, "-O1", f"-I{APP / 'main'}", f"-I{component / 'include'}",
           f"-I{component / 'src'}", *map(str, sources), "-o", str(exe), "-lm"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return exe


def run_app(exe: Path, mode: str, blob: bytes) -> np.ndarray:
    proc = subprocess.run([str(exe), mode], input=blob, capture_output=True)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    return np.frombuffer(proc.stdout, np.float32)


@pytest.fixture(scope="module", params=[1, 4], ids=["chunk1", "chunk4"])
def component(request, compiled, example_model, example_calib) -> Path:
    chunk = request.param
    result = compiled(f"app_chunk{chunk}", example_model, "--calib", str(example_calib),
                      "--chunk", str(chunk), name="tcn")
    assert result.rc == 0, result.stderr
    return result.component


def test_frame_by_frame_feeding_gives_the_components_outputs(cc, component, tmp_path):
    chunk = json.loads((component / "report.json").read_text())["chunk_frames"]
    exe = build_app(cc, component, tmp_path / "app")
    header = (component / "include" / "tcn.h").read_text()
    channels = int(re.search(r"#define TCN_INPUT_CHANNELS (\d+)", header).group(1))
    out_elems = int(re.search(r"#define TCN_OUTPUT_ELEMS (\d+)", header).group(1))
    frames = 10 * chunk + chunk - 1  # the last chunk stays incomplete: no call for it
    x = np.random.default_rng(5).standard_normal((frames, channels)).astype(np.float32)
    got = run_app(exe, "stream", np.int32(frames).tobytes() + x.tobytes()).reshape(-1, out_elems)
    calls = frames // chunk
    assert got.shape[0] == calls
    direct = run_host(build_host(component, "tcn", tmp_path / "direct"),
                      x[:calls * chunk].reshape(calls, chunk * channels), f32=True,
                      out_elems=out_elems)
    np.testing.assert_array_equal(got, direct)


def goertzel_log_bands(window: np.ndarray, n_bands: int) -> np.ndarray:
    """audio_features.h definition in float64."""
    mel = lambda hz: 2595.0 * np.log10(1.0 + hz / 700.0)  # noqa: E731
    lo, hi = mel(LOW_HZ), mel(HIGH_HZ)
    centres = 700.0 * (10.0 ** ((lo + (np.arange(n_bands) + 0.5) * (hi - lo) / n_bands)
                                / 2595.0) - 1.0)
    n = window.size
    x = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / (n - 1))) * window / 32768.0
    spectrum = np.exp(-2j * np.pi * np.outer(centres / SAMPLE_RATE, np.arange(n))) @ x
    return np.log(np.abs(spectrum) ** 2 / n**2 + 1e-6)


def test_features_match_their_definition(cc, component, tmp_path):
    exe = build_app(cc, component, tmp_path / "app")
    t = np.arange(WINDOW) / SAMPLE_RATE
    rng = np.random.default_rng(9)
    for tone_hz in (440.0, 2500.0):
        pcm = (8000 * np.sin(2 * np.pi * tone_hz * t) + 300 * rng.standard_normal(WINDOW))
        pcm = pcm.astype(np.int16)
        got = run_app(exe, "features", np.int32(WINDOW).tobytes() + pcm.tobytes())
        want = goertzel_log_bands(pcm.astype(np.float64), got.size)
        np.testing.assert_allclose(got, want, atol=2e-3)
        assert abs(int(np.argmax(got)) - int(np.argmax(want))) == 0


def test_the_esp_idf_project_follows_the_build_system_conventions():
    project = (APP / "CMakeLists.txt").read_text()
    assert re.search(r"cmake_minimum_required\(VERSION 3\.\d+\)", project)
    include = project.index("include($ENV{IDF_PATH}/tools/cmake/project.cmake)")
    assert project.index("set(EXTRA_COMPONENT_DIRS") < include < project.index("project(")
    main = (APP / "main" / "CMakeLists.txt").read_text()
    listed = set(re.findall(r'"([\w.]+\.c)"', main))
    assert listed == {p.name for p in (APP / "main").glob("*.c")}
    assert re.search(r"REQUIRES\s+tcn\b", main)
    app = (APP / "main" / "app_main.c").read_text()
    assert "void app_main(void)" in app and "malloc" not in app
