"""End to end: compile the example TCN and the real PyTorch exports, then check the component
(contract §4), the float streaming model (contract §2, with our own chunk loop written from the
metadata only) and the generated C through a hand-written harness that only knows the public API.

Every model/target/chunk combination is compiled once per session (per xdist worker) through
`compiler.cli.main` in-process, with host verification on (the product's default path).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from conftest import FIXTURES, HARNESS_DIR, STRICT_CFLAGS, TORCH_CALIB
from test_component_build import main_source

T_FRAMES = 24          # the TCN's offline window
IN_CHANNELS = 16
OUT_ELEMS = 16
STREAM_RTOL = 1e-5     # contract §2: float streaming vs float offline
MIN_HARNESS_SNR_DB = 25.0
SANITIZE = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer"]


@dataclass(frozen=True)
class Config:
    key: str
    model: str                 # "example" (make_tcn default) or a file in tests/fixtures
    target: str
    chunk: int | None          # None: --offline
    extra: tuple[str, ...] = field(default_factory=tuple)

    @property
    def offline(self) -> bool:
        return self.chunk is None

    @property
    def frames_per_call(self) -> int:
        return T_FRAMES if self.offline else self.chunk

    @property
    def rounding(self) -> str:
        return {"esp32p4": "half_even", "esp32s3": "half_up"}[self.target]


CONFIGS = [
    Config("example-p4-chunk1", "example", "esp32p4", 1),
    Config("example-s3-chunk3", "example", "esp32s3", 3),
    Config("example-p4-offline", "example", "esp32p4", None),
    Config("dynamo-p4-chunk1", "tcn_torch_dynamo.onnx", "esp32p4", 1),
    Config("script-s3-chunk3", "tcn_torch_script.onnx", "esp32s3", 3),
    Config("dynamo_noopt-p4-chunk2", "tcn_torch_dynamo_noopt.onnx", "esp32p4", 2),
    # dynamic [N, 16, T] export: the calibration data's shape pins it
    Config("dynamic-s3-chunk4", "tcn_torch_dynamic.onnx", "esp32s3", 4),
    # dynamic TorchScript export pinned explicitly
    Config("script_dynamic-p4-chunk6", "tcn_torch_script_dynamic.onnx", "esp32p4", 6,
           ("--input-shape", "1,16,24")),
]
BY_KEY = {c.key: c for c in CONFIGS}
STREAMING = [c for c in CONFIGS if not c.offline]


def _ids(configs):
    return [pytest.param(c, id=c.key) for c in configs]


# ----------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="session")
def build(compiled, example_model, example_calib):
    """build(config) -> (Compiled, model path): compiles on first use."""

    def get(cfg: Config):
        if cfg.model == "example":
            model, calib = example_model, example_calib
        else:
            model, calib = FIXTURES / cfg.model, TORCH_CALIB
        args = ["--target", cfg.target, "--calib", str(calib), *cfg.extra]
        args += ["--offline"] if cfg.offline else ["--chunk", str(cfg.chunk)]
        result = compiled(cfg.key, model, *args)
        assert result.rc == 0, f"compile {cfg.key} failed (exit {result.rc}):\n{result.stderr}"
        return result, model

    return get


def header_macros(header: Path) -> dict[str, int]:
    macros = {}
    for m in re.finditer(r"^#define\s+(\w+)\s+\(?\s*(-?\d+)\s*\)?\s*$", header.read_text(), re.M):
        macros[m.group(1)] = int(m.group(2))
    return macros


def float_offline(model: Path, xs: np.ndarray) -> np.ndarray:
    """The original float model in onnxruntime, one input [1, 16, T] at a time."""
    sess = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return np.stack([sess.run(None, {name: x.astype(np.float32)})[0] for x in xs])


def pooled_snr_db(ref: np.ndarray, test: np.ndarray) -> float:
    ref, test = np.asarray(ref, np.float64), np.asarray(test, np.float64)
    return float(10.0 * np.log10(np.sum(ref ** 2) / np.sum((ref - test) ** 2)))


# ----------------------------------------------------------------------------- 1. the component

@pytest.mark.parametrize("cfg", _ids(CONFIGS))
def test_component_layout(cfg, build):
    result, _ = build(cfg)
    comp, name = result.component, result.name
    assert "Traceback" not in result.stderr and "rill: error" not in result.stderr, result.stderr
    for rel in ["CMakeLists.txt", "idf_component.yml", f"include/{name}.h", "report.md", "report.json"]:
        assert (comp / rel).is_file(), f"{cfg.key}: missing {rel}"
    assert sorted((comp / "src").glob("*.c")), "no src/*.c"
    assert sorted((comp / "test").glob("*.c")), "no test/*.c"
    streaming_onnx = comp / f"{name}.streaming.onnx"
    assert streaming_onnx.is_file() != cfg.offline, \
        f"{name}.streaming.onnx must exist exactly when streaming ({cfg.key})"
    # nothing else left in --out (no temporary folder)
    assert [p.name for p in result.out_root.iterdir()] == [name]

    cmake = (comp / "CMakeLists.txt").read_text()
    assert "idf_component_register" in cmake and "add_library" in cmake
    assert cfg.target in (comp / "idf_component.yml").read_text()
    assert (comp / "report.md").read_text().strip()

    header = (comp / "include" / f"{name}.h").read_text()
    for decl in [rf"}}\s*{name}_t\s*;", rf"void\s+{name}_init\s*\(\s*{name}_t\s*\*",
                 rf"int\s+{name}_run\s*\(\s*{name}_t\s*\*\s*\w*\s*,\s*const\s+int8_t\s*\*",
                 rf"int\s+{name}_run_f32\s*\(\s*{name}_t\s*\*\s*\w*\s*,\s*const\s+float\s*\*",
                 rf"int\s+{name}_selftest\s*\(\s*void\s*\)"]:
        assert re.search(decl, header), f"{name}.h lacks {decl}"
    macros = header_macros(comp / "include" / f"{name}.h")
    up = name.upper()
    for suffix in ["CHUNK_FRAMES", "INPUT_CHANNELS", "INPUT_ELEMS", "OUTPUT_ELEMS", "INPUT_EXPONENT",
                   "OUTPUT_EXPONENT", "STATE_BYTES", "ARENA_BYTES"]:
        assert f"{up}_{suffix}" in macros, f"{name}.h lacks #define {up}_{suffix}"
    assert macros[f"{up}_CHUNK_FRAMES"] == cfg.frames_per_call
    assert macros[f"{up}_INPUT_CHANNELS"] == IN_CHANNELS
    assert macros[f"{up}_INPUT_ELEMS"] == IN_CHANNELS * cfg.frames_per_call
    assert macros[f"{up}_OUTPUT_ELEMS"] == OUT_ELEMS

    # weights: static const, aligned to 16 bytes (the arrays with an initializer list)
    for src in (comp / "src").glob("*.c"):
        for decl in re.findall(r"^([^\n;{}]*\[\s*\d+\s*\][^\n;{}]*)=\s*\{", src.read_text(), re.M):
            assert decl.lstrip().startswith("static const"), f"{src.name}: not static const: {decl}"
            assert "ALIGN16" in decl or "aligned(16)" in decl, f"{src.name}: not aligned: {decl}"


REPORT_KEYS = ["target", "bits", "chunk_frames", "macs_per_call", "weight_bytes", "state_bytes",
               "arena_bytes", "arena_lower_bound_bytes", "latency_frames", "snr_db", "layers"]
# MACs the TCN needs per new frame: conv_in 16*32, three dw 32*3, three pw 32*32; conv_out 32*16
# on at least the kept frames; the final Linear 48*16 once per call.
BODY_MACS = 16 * 32 + 3 * 32 * 3 + 3 * 32 * 32
CONV_OUT_MACS, FC_MACS = 32 * 16, 48 * 16
INT8_PARAMS = BODY_MACS + CONV_OUT_MACS + FC_MACS  # every weight once, one byte each
FLOAT_PARAM_BYTES = 4 * (INT8_PARAMS + 32 + 3 * 64 + 16 + 16)  # float32 weights + biases
MIN_STATE_BYTES = 32 * (2 + 4 + 2 + 2)  # past frames of the three dw convs and the pool
# --fold-linear auto folds pool -> conv_out -> last 3 frames -> fc into one Gemm over the last 5
# frames of the residual stream when that costs no extra MACs per call (CHUNK >= 4)
FOLDED_HEAD_MACS, HEAD_WINDOW = 32 * 5 * 16, 5


def head_folds(frames_per_call: int) -> bool:
    return frames_per_call * CONV_OUT_MACS + FC_MACS >= FOLDED_HEAD_MACS


@pytest.mark.parametrize("cfg", _ids(CONFIGS))
def test_report(cfg, build):
    result, _ = build(cfg)
    comp, name = result.component, result.name
    r = json.loads((comp / "report.json").read_text())
    missing = [k for k in REPORT_KEYS if k not in r]
    assert not missing, f"report.json lacks {missing}"
    f = cfg.frames_per_call
    assert r["target"] == cfg.target
    assert r["bits"] == 8
    assert r["chunk_frames"] == f
    assert isinstance(r["latency_frames"], int) and r["latency_frames"] >= 0
    assert r["latency_frames"] == 0, "a summary output has no latency"

    macs = r["macs_per_call"]
    folded = bool(r["folded_heads"])
    assert folded == head_folds(f), r["folded_heads"]
    if folded:
        assert macs == f * BODY_MACS + FOLDED_HEAD_MACS
        assert r["folded_heads"][0]["macs_per_call_after"] <= \
            r["folded_heads"][0]["macs_per_call_before"]
    else:
        low = f * BODY_MACS + min(f, 3) * CONV_OUT_MACS + FC_MACS
        high = f * (BODY_MACS + CONV_OUT_MACS + 3 * 32) + FC_MACS
        assert low <= macs <= high, f"macs_per_call {macs} outside [{low}, {high}]"
    # int8 weights, except the float32 ones of float-accumulating layers of few frames per
    # call (esp32p4; codegen/kernel_select.py): 4 bytes each
    f32_layers = [layer for layer in r["layers"] if "wf32" in layer.get("kernel", "")]
    assert r["weight_bytes"] == sum(layer["weight_bytes"] for layer in r["layers"])
    if f32_layers:
        assert cfg.target == "esp32p4", [layer["kernel"] for layer in f32_layers]
        assert INT8_PARAMS < r["weight_bytes"] <= 5 * INT8_PARAMS, r["weight_bytes"]
    else:
        assert INT8_PARAMS <= r["weight_bytes"] < FLOAT_PARAM_BYTES, r["weight_bytes"]

    assert r["arena_lower_bound_bytes"] > 0 and r["arena_lower_bound_bytes"] % 16 == 0
    assert r["arena_bytes"] >= r["arena_lower_bound_bytes"]

    if cfg.offline:
        assert r["state_bytes"] == 0
    else:
        # folded: the pool's 2 past frames become the head window's 5 - CHUNK (if any)
        head = max(0, HEAD_WINDOW - f) if folded else 2
        assert r["state_bytes"] >= MIN_STATE_BYTES - 32 * 2 + 32 * head
        meta = streaming_meta(comp / f"{name}.streaming.onnx")
        kept = sum(int(np.prod(s["shape"])) for s in meta["states"])  # int8: one byte a value
        assert r["state_bytes"] <= kept, "state_bytes counts more than the frames kept"

    snr = r["snr_db"]
    assert isinstance(snr, (int, float)) and 20.0 <= snr < 80.0, snr

    layers = r["layers"]
    assert isinstance(layers, list) and layers
    for layer in layers:
        assert isinstance(layer.get("name"), str) and layer["name"]
        assert isinstance(layer.get("op"), str) and layer["op"]
        shape = layer.get("output_shape", layer.get("shape"))
        assert isinstance(shape, list) and all(isinstance(d, int) and d > 0 for d in shape), layer
        assert isinstance(layer.get("macs"), int) and layer["macs"] >= 0
        assert "exponents" in layer or "exponent" in layer, layer
        assert any(k.endswith("bytes") for k in layer), layer
    assert sum(layer["macs"] for layer in layers) == macs
    assert any("gemm" in layer["op"].lower() for layer in layers)
    assert sum("conv" in layer["op"].lower() for layer in layers) >= (7 if folded else 8)

    macros = header_macros(comp / "include" / f"{name}.h")
    up = name.upper()
    assert macros[f"{up}_STATE_BYTES"] == r["state_bytes"]
    assert macros[f"{up}_ARENA_BYTES"] == r["arena_bytes"]


def test_report_has_per_layer_snr(build):
    """Contract §3: the quantization error is reported per layer as well as at the outputs."""
    result, _ = build(BY_KEY["example-p4-chunk1"])
    r = json.loads((result.component / "report.json").read_text())
    weighted = [layer for layer in r["layers"] if re.search(r"conv|gemm", layer["op"], re.I)]
    assert weighted and all(isinstance(layer.get("snr_db"), (int, float)) for layer in weighted), \
        [(layer["name"], layer.get("snr_db")) for layer in weighted]


# ----------------------------------------------------------------------------- streaming ONNX

def streaming_meta(path: Path) -> dict:
    model = onnx.load(str(path))
    props = {p.key: p.value for p in model.metadata_props}
    assert "rill.streaming" in props, f"{path.name}: no metadata_props 'rill.streaming'"
    return json.loads(props["rill.streaming"])


def run_stream(path: Path, meta: dict, x: np.ndarray) -> list[np.ndarray]:
    """Feed x [1, 16, T] chunk by chunk from the initial state; every call's output."""
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    state_in = [s["input"] for s in meta["states"]]
    state_out = [s["output"] for s in meta["states"]]
    (x_name,) = [i.name for i in sess.get_inputs() if i.name not in state_in]
    (y_name,) = [o.name for o in sess.get_outputs() if o.name not in state_out]
    axis, chunk = meta["time_axis"], meta["chunk"]
    state = {s["input"]: np.full(s["shape"], s["init"], np.float32) for s in meta["states"]}
    outs = []
    for k in range(x.shape[axis] // chunk):
        piece = np.take(x, np.arange(k * chunk, (k + 1) * chunk), axis=axis).astype(np.float32)
        values = sess.run([y_name, *state_out], {x_name: piece, **state})
        outs.append(values[0])
        state = dict(zip(state_in, values[1:]))
    return outs


@pytest.mark.parametrize("cfg", _ids(STREAMING))
def test_streaming_onnx_matches_offline(cfg, build, held_out_inputs):
    result, model = build(cfg)
    path = result.component / f"{result.name}.streaming.onnx"
    meta = streaming_meta(path)
    assert {"time_axis", "chunk", "latency_frames", "states"} <= set(meta), meta
    assert meta["time_axis"] == 2 and meta["chunk"] == cfg.chunk and meta["latency_frames"] == 0
    # three causal dw convs and the pool (or the folded head's 5-frame window, which needs
    # past frames when CHUNK < 5) read past frames
    needs_head_state = not head_folds(cfg.chunk) or cfg.chunk < HEAD_WINDOW
    assert len(meta["states"]) >= 3 + needs_head_state
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    inputs = {i.name: i.shape for i in sess.get_inputs()}
    outputs = {o.name for o in sess.get_outputs()}
    for s in meta["states"]:
        assert {"input", "output", "shape", "init"} <= set(s), s
        assert s["input"] in inputs and s["output"] in outputs, s
        assert list(inputs[s["input"]]) == list(s["shape"]), (s, inputs[s["input"]])
        assert s["init"] == 0.0, f"zero padding everywhere: initial state must be 0 ({s})"
    assert len(inputs) == len(meta["states"]) + 1 and len(outputs) == len(meta["states"]) + 1

    xs = np.concatenate([held_out_inputs[:6], 4.0 * held_out_inputs[6:7]])
    offline = float_offline(model, xs)
    for x, ref in zip(xs, offline):
        outs = run_stream(path, meta, x)
        assert len(outs) == T_FRAMES // cfg.chunk
        last = outs[-1]
        assert last.shape == ref.shape, (last.shape, ref.shape)
        err = float(np.max(np.abs(last - ref)))
        assert err <= STREAM_RTOL * float(np.max(np.abs(ref))), \
            f"{cfg.key}: streaming vs offline max abs error {err:.3g} (max|offline| {np.max(np.abs(ref)):.3g})"


# ----------------------------------------------------------------------------- 2. the C harness

HARNESS = HARNESS_DIR / "stream_harness.c"
HARNESS_CONFIGS = ["dynamo-p4-chunk1", "script-s3-chunk3"]


def build_harness(cc: str, include: Path, sources: list[Path], name: str, exe: Path,
                  extra: list[str] = (), link: list[Path] = ()) -> Path:
    cmd = [cc, *STRICT_CFLAGS, "-O1", *extra, f'-DMODEL_HEADER="{name}.h"', f"-DMODEL={name}",
           f"-DMODEL_UPPER={name.upper()}", f"-I{include}", str(HARNESS), *map(str, sources),
           *map(str, link), "-o", str(exe), "-lm"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, f"harness build failed:\n{' '.join(cmd)}\n{proc.stderr[-4000:]}"
    assert proc.stderr.strip() == "", proc.stderr
    return exe


def component_sources(comp: Path) -> list[Path]:
    return sorted((comp / "src").glob("*.c")) + sorted((comp / "test").glob("*.c"))


def run_harness(exe: Path, xs: np.ndarray, work: Path, rounding: str, env=None) -> tuple[np.ndarray, str, str]:
    work.mkdir(parents=True, exist_ok=True)
    inp, out = work / "in.f32", work / "out.f32"
    xs = np.ascontiguousarray(xs.reshape(len(xs), IN_CHANNELS, -1), dtype=np.float32)
    xs.tofile(inp)
    proc = subprocess.run([str(exe), str(inp), str(out), str(len(xs)), str(xs.shape[-1]), rounding],
                          capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, f"harness exit {proc.returncode}:\n{proc.stdout}\n{proc.stderr[-4000:]}"
    assert "selftest 0" in proc.stdout and "mismatches 0" in proc.stdout, proc.stdout
    return np.fromfile(out, np.float32).reshape(len(xs), OUT_ELEMS), proc.stdout, proc.stderr


def stress_inputs(input_exponent: int) -> np.ndarray:
    """Rounding ties at every half step across the int8 range and beyond, saturation, NaN, Inf."""
    step = 2.0 ** input_exponent
    ties = ((np.arange(IN_CHANNELS * T_FRAMES) - 192 + 0.5) * step).astype(np.float32)
    rng = np.random.default_rng(7)
    xs = [ties.reshape(IN_CHANNELS, T_FRAMES), -ties.reshape(IN_CHANNELS, T_FRAMES),
          np.full((IN_CHANNELS, T_FRAMES), 1e6, np.float32),
          np.full((IN_CHANNELS, T_FRAMES), -1e6, np.float32)]
    special = rng.standard_normal((IN_CHANNELS, T_FRAMES)).astype(np.float32)
    special.flat[::5] = np.nan
    special.flat[1::7] = np.inf
    special.flat[2::11] = -np.inf
    special.flat[3::13] = 1e-42  # denormal
    xs.append(special)
    return np.stack(xs)[:, None]


@pytest.mark.parametrize("key", HARNESS_CONFIGS)
def test_harness_snr(key, build, cc, held_out_inputs, tmp_path, record_property):
    """The acceptance test: a foreign harness reaches >= 25 dB against the float model."""
    cfg = BY_KEY[key]
    result, model = build(cfg)
    comp, name = result.component, result.name
    # only include/ on the include path: src/*.c find their private headers next to themselves
    exe = build_harness(cc, comp / "include", component_sources(comp), name, tmp_path / "harness")
    q, stdout, _ = run_harness(exe, held_out_inputs, tmp_path / "run", cfg.rounding)
    ref = float_offline(model, held_out_inputs).reshape(len(held_out_inputs), OUT_ELEMS)
    snr = pooled_snr_db(ref, q)
    record_property("snr_db", snr)
    print(f"\n{key}: harness SNR vs float onnxruntime on 20 held-out inputs = {snr:.2f} dB")
    assert snr >= MIN_HARNESS_SNR_DB, f"{key}: SNR {snr:.2f} dB < {MIN_HARNESS_SNR_DB} dB"

    # float API vs the harness's own quantization at ties / saturation / NaN / Inf
    exp = header_macros(comp / "include" / f"{name}.h")[f"{name.upper()}_INPUT_EXPONENT"]
    run_harness(exe, stress_inputs(exp), tmp_path / "stress", cfg.rounding)


def test_harness_under_sanitizers(build, cc, held_out_inputs, tmp_path):
    cfg = BY_KEY["dynamo-p4-chunk1"]
    result, _ = build(cfg)
    comp, name = result.component, result.name
    plain = build_harness(cc, comp / "include", component_sources(comp), name, tmp_path / "plain")
    exe = build_harness(cc, comp / "include", component_sources(comp), name, tmp_path / "asan",
                        extra=[*SANITIZE, "-g"])
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:halt_on_error=1",
               UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1")
    exp = header_macros(comp / "include" / f"{name}.h")[f"{name.upper()}_INPUT_EXPONENT"]
    xs = np.concatenate([held_out_inputs, stress_inputs(exp)])
    got, stdout, stderr = run_harness(exe, xs, tmp_path / "run_asan", cfg.rounding, env=env)
    for marker in ("runtime error", "AddressSanitizer", "LeakSanitizer", "UndefinedBehaviorSanitizer"):
        assert marker not in stderr, stderr[-4000:]
    want, _, _ = run_harness(plain, xs, tmp_path / "run_plain", cfg.rounding)
    np.testing.assert_array_equal(got, want)


def test_component_as_cmake_static_library(build, cc, held_out_inputs, tmp_path):
    cmake = shutil.which("cmake")
    if cmake is None:
        pytest.skip("no cmake")
    cfg = BY_KEY["script-s3-chunk3"]
    result, _ = build(cfg)
    comp, name = result.component, result.name
    bdir = tmp_path / "build"
    for cmd in ([cmake, "-S", str(comp), "-B", str(bdir), f"-DCMAKE_C_COMPILER={cc}",
                 "-DCMAKE_C_FLAGS=-Wall -Wextra -Werror -pedantic"],
                [cmake, "--build", str(bdir)]):
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    libs = sorted(bdir.rglob("*.a"))
    assert [p.name for p in libs] == [f"lib{name}.a"], libs
    exe = build_harness(cc, comp / "include", [], name, tmp_path / "harness_lib", link=libs)
    got, _, _ = run_harness(exe, held_out_inputs, tmp_path / "run_lib", cfg.rounding)
    direct = build_harness(cc, comp / "include", component_sources(comp), name, tmp_path / "direct")
    want, _, _ = run_harness(direct, held_out_inputs, tmp_path / "run_direct", cfg.rounding)
    np.testing.assert_array_equal(got, want)
    # init, run, run_f32 and the self-test through the library, from a strict C99 program
    (tmp_path / "main.c").write_text(main_source([name]))
    app = tmp_path / "app"
    proc = subprocess.run([cc, *STRICT_CFLAGS, f"-I{comp / 'include'}", str(tmp_path / "main.c"),
                           str(libs[0]), "-lm", "-o", str(app)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert subprocess.run([str(app)], capture_output=True, text=True).stdout.split() == [name, "0"]


# ----------------------------------------------------------------------------- 3. two models

@pytest.fixture(scope="session")
def two_components(compiled, example_model, example_calib):
    a = compiled("mic_a", example_model, "--target", "esp32p4", "--chunk", "1",
                 "--calib", str(example_calib), name="mic_a")
    b = compiled("mic_b", example_model, "--target", "esp32s3", "--chunk", "3",
                 "--calib", str(example_calib), name="mic_b")
    assert a.rc == 0, a.stderr
    assert b.rc == 0, b.stderr
    return a.component, b.component


@pytest.mark.parametrize("caller_arena", [False, True], ids=["builtin-arena", "caller-arena"])
def test_two_models_in_one_program(two_components, cc, tmp_path, caller_arena):
    a, b = two_components
    assert (a / "include" / "mic_a.h").is_file() and (b / "include" / "mic_b.h").is_file()
    extra = ["-DCALLER_ARENA", "-DMIC_A_CALLER_ARENA", "-DMIC_B_CALLER_ARENA"] if caller_arena else []
    exe = tmp_path / "two_models"
    cmd = [cc, *STRICT_CFLAGS, "-O1", *extra, f"-I{a / 'include'}", f"-I{b / 'include'}",
           f"-I{HARNESS_DIR}", str(HARNESS_DIR / "two_models.c"),
           *map(str, component_sources(a)), *map(str, component_sources(b)), "-o", str(exe), "-lm"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, f"build/link failed:\n{proc.stderr[-4000:]}"
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    for line in ("mic_a selftest 0", "mic_b selftest 0", "mic_a two_instances 0",
                 "mic_b two_instances 0"):
        assert line in run.stdout, run.stdout
