"""Generated C quality: strict C99 with gcc and clang, sanitizers, and byte-identical output."""
from __future__ import annotations

import filecmp
import shutil
import subprocess
from pathlib import Path

import pytest

from compiler.host_build import build_host, run_selftest

STRICT = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic"]


@pytest.fixture(scope="module")
def component(compiled, example_model, example_calib) -> tuple[Path, str]:
    c = compiled("quality_s3_c2", example_model, "--target", "esp32s3", "--chunk", "2",
                 "--calib", str(example_calib), name="quality")
    assert c.rc == 0, c.stderr
    return c.component, c.name


@pytest.mark.parametrize("compiler", ["gcc", "clang"])
def test_component_builds_strictly_and_selftest_passes(component, compiler, tmp_path):
    if shutil.which(compiler) is None:
        pytest.skip(f"{compiler} is not installed (.ci/run installs it)")
    path, name = component
    exe = build_host(path, name, tmp_path, cc=compiler, extra_flags=["-O2", "-Wshadow"])
    assert run_selftest(exe) == 0


def test_selftest_is_clean_under_sanitizers(component, tmp_path):
    path, name = component
    flags = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-g"]
    probe = subprocess.run(["gcc", *flags, "-x", "c", "-", "-o", str(tmp_path / "probe")],
                           input="int main(void){return 0;}", text=True, capture_output=True)
    if probe.returncode != 0:
        pytest.skip("gcc sanitizers unavailable")
    exe = build_host(path, name, tmp_path, cc="gcc", extra_flags=flags)
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
