"""Generated C quality: strict C99 with gcc and clang, 32-bit (-m32) builds, sanitizers, and
byte-identical output that names what produced it. The build checks run on five components: the
example TCN in int8, int16 (--bits 16) and float32 (--bits 32), and the conv+GRU tagger (the
recurrent kernels) in int8 and float32, each compiled once per worker."""
from __future__ import annotations

import filecmp
import functools
import hashlib
import json
import shutil
import subprocess
import tempfile
from importlib import metadata
from pathlib import Path

import pytest

from compiler.host_build import build_host, run_selftest
from conftest import FIXTURES

STRICT = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic"]
SANITIZE = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-g"]
GRU = FIXTURES / "streaming" / "gru_tagger.script.onnx"
GRU_CALIB = FIXTURES / "streaming" / "gru_tagger.calib.npy"
VARIANTS = ["tcn_int8", "tcn_int16", "tcn_float32", "gru_int8", "gru_float32"]


@functools.cache
def _links(*flags: str) -> str | None:
    """None when gcc builds and links a hello world with `flags`, else why not."""
    if shutil.which("gcc") is None:
        return "gcc is not installed"
    with tempfile.TemporaryDirectory() as work:
        probe = subprocess.run(["gcc", *flags, "-x", "c", "-", "-o", str(Path(work) / "probe"),
                                "-lm"], input="int main(void){return 0;}\n", text=True,
                               capture_output=True)
    return None if probe.returncode == 0 else probe.stderr.strip().splitlines()[-1]


@pytest.fixture(scope="module", params=VARIANTS)
def component(request, compiled, example_model, example_calib) -> tuple[Path, str]:
    if request.param == "tcn_int8":  # the key test_component_build.py shares
        c = compiled("quality_s3_c2", example_model, "--target", "esp32s3", "--chunk", "2",
                     "--calib", str(example_calib), name="quality")
    elif request.param == "tcn_int16":
        c = compiled("quality16_s3_c2", example_model, "--target", "esp32s3", "--chunk", "2",
                     "--bits", "16", "--calib", str(example_calib), name="quality16")
    elif request.param == "tcn_float32":
        c = compiled("quality32_c2", example_model, "--chunk", "2", "--bits", "32",
                     name="quality32")
    elif request.param == "gru_int8":
        c = compiled("quality_gru", GRU, "--calib", str(GRU_CALIB), name="quality_gru")
    else:
        c = compiled("quality_gru32", GRU, "--bits", "32", name="quality_gru32")
    assert c.rc == 0, c.stderr
    return c.component, c.name


@pytest.mark.parametrize("compiler", ["gcc", "clang"])
def test_component_builds_strictly_and_selftest_passes(component, compiler, tmp_path):
    if shutil.which(compiler) is None:
        pytest.skip(f"{compiler} is not installed (.ci/run installs it)")
    path, name = component
    exe = build_host(path, name, tmp_path, cc=compiler, extra_flags=["-O2", "-Wshadow"])
    assert run_selftest(exe) == 0


def test_component_builds_and_passes_in_32_bit(component, tmp_path):
    """int is 32 bits but pointers, size_t and long are too: catches long/size_t assumptions."""
    why = _links("-m32")
    if why:
        pytest.skip(f"gcc -m32 cannot link a hello world ({why}); .ci/run installs gcc-multilib")
    path, name = component
    exe = build_host(path, name, tmp_path, cc="gcc", extra_flags=["-m32", "-O2"])
    file_type = subprocess.run(["file", "-b", str(exe)], capture_output=True, text=True).stdout
    if file_type:  # `file` is optional; when present, prove the build really is 32-bit
        assert "32-bit" in file_type, file_type
    proc = subprocess.run([str(exe), "selftest"], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.strip() == "0", proc.stderr


def test_selftest_is_clean_under_sanitizers(component, tmp_path):
    why = _links(*SANITIZE)
    if why:
        pytest.skip(f"gcc ASan/UBSan cannot link a hello world ({why})")
    path, name = component
    exe = build_host(path, name, tmp_path, cc="gcc", extra_flags=SANITIZE)
    proc = subprocess.run([str(exe), "selftest"], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.strip() == "0", proc.stderr


def test_compiling_twice_gives_identical_trees(compiled, example_model, example_calib):
    runs = [compiled(f"determinism_{i}", example_model, "--calib", str(example_calib),
                     "--no-verify", name="same") for i in range(2)]
    assert all(r.rc == 0 for r in runs)
    a, b = (r.component for r in runs)
    cmp = filecmp.dircmp(a, b)
    files = [p.relative_to(a) for p in a.rglob("*") if p.is_file()]
    different = [f for f in files if not filecmp.cmp(a / f, b / f, shallow=False)]
    assert not cmp.left_only and not cmp.right_only and not different, different


def test_generated_files_say_what_produced_them(compiled, example_model, example_calib):
    """Every generated text file opens with Rill's version and the model's name and SHA-256;
    report.json holds them under generated_by."""
    c = compiled("determinism_0", example_model, "--calib", str(example_calib), "--no-verify",
                 name="same")
    assert c.rc == 0, c.stderr
    digest = hashlib.sha256(example_model.read_bytes()).hexdigest()
    version = metadata.version("rill")
    line = f"Generated by Rill {version} from {example_model.name} (sha256 {digest[:16]})"
    texts = [p for p in c.component.rglob("*") if p.suffix in (".c", ".h", ".yml", ".txt", ".md")]
    assert len(texts) == 8, texts  # 5 C files, CMakeLists.txt, idf_component.yml, report.md
    for path in texts:
        first_lines = path.read_text().splitlines()[:3]
        assert any(line in ln for ln in first_lines), (path.name, first_lines)
    report = json.loads((c.component / "report.json").read_text())
    assert report["generated_by"] == {"generator": f"Rill {version}",
                                      "model": example_model.name, "model_sha256": digest}
