"""The generated component as a user gets it: its idf_component.yml passes `compote manifest lint`,
and two components of different models link into one program without symbol clashes (the plain
CMake static library build and two instances of one model are in test_e2e.py).

The components share their compile keys with test_c_quality.py, so a worker compiles each once."""
from __future__ import annotations

import collections
import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import FIXTURES

STRICT = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic"]
GRU = FIXTURES / "streaming" / "gru_tagger.script.onnx"
GRU_CALIB = FIXTURES / "streaming" / "gru_tagger.calib.npy"

# Runs one model once through its public API: init, run (integer and float), selftest.
RUN_ONE = r"""
static int run_@NAME@(void)
{
    static @NAME@_t m;
#if @UNAME@_INPUT_BITS == 16
    static int16_t in[@UNAME@_INPUT_ELEMS];
#else
    static int8_t in[@UNAME@_INPUT_ELEMS];
#endif
#if @UNAME@_OUTPUT_BITS == 16
    static int16_t out[@UNAME@_OUTPUT_ELEMS];
#else
    static int8_t out[@UNAME@_OUTPUT_ELEMS];
#endif
    static float fin[@UNAME@_INPUT_ELEMS], fout[@UNAME@_OUTPUT_ELEMS];
    int i, rc;
    for (i = 0; i < @UNAME@_INPUT_ELEMS; ++i) {
        in[i] = (int8_t)(i % 7 - 3);
        fin[i] = 0.25f * (float)(i % 5 - 2);
    }
    @NAME@_init(&m);
    rc = @NAME@_run(&m, in, out);
    if (rc == 0) {
        rc = @NAME@_run_f32(&m, fin, fout);
    }
    if (rc == 0) {
        rc = @NAME@_selftest();
    }
    printf("@NAME@ %d\n", rc);
    return rc;
}
"""


def main_source(names: list[str]) -> str:
    head = "#include <stdio.h>\n" + "".join(f'#include "{n}.h"\n' for n in names)
    bodies = "".join(RUN_ONE.replace("@NAME@", n).replace("@UNAME@", n.upper()) for n in names)
    calls = " | ".join(f"run_{n}()" for n in names)
    return f"{head}{bodies}\nint main(void)\n{{\n    return ({calls}) != 0;\n}}\n"


@pytest.fixture(scope="module")
def tcn(compiled, example_model, example_calib) -> tuple[Path, str]:
    c = compiled("quality_s3_c2", example_model, "--target", "esp32s3", "--chunk", "2",
                 "--calib", str(example_calib), name="quality")
    assert c.rc == 0, c.stderr
    return c.component, c.name


@pytest.fixture(scope="module")
def gru(compiled) -> tuple[Path, str]:
    c = compiled("quality_gru", GRU, "--calib", str(GRU_CALIB), name="quality_gru")
    assert c.rc == 0, c.stderr
    return c.component, c.name


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(a) for a in cmd], capture_output=True, text=True, **kw)
    assert proc.returncode == 0, f"{' '.join(map(str, cmd))}\n{proc.stdout}\n{proc.stderr}"
    return proc


def test_manifest_passes_compote_lint(tcn, gru, tmp_path):
    if importlib.util.find_spec("idf_component_manager") is None:
        pytest.skip("idf-component-manager is not installed (it is in the [test] extra: "
                    "pip install -e '.[test]')")
    lint = [sys.executable, "-m", "idf_component_manager", "manifest", "lint"]
    for path, _ in (tcn, gru):  # esp32s3 and esp32p4
        proc = subprocess.run([*lint, str(path / "idf_component.yml")], capture_output=True,
                              text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    # the linter does reject a broken manifest, so a pass above means something
    bad = tmp_path / "bad"
    bad.mkdir()
    text = (tcn[0] / "idf_component.yml").read_text()
    (bad / "idf_component.yml").write_text(text.replace('version: "1.0.0"', 'version: "1.0"'))
    assert subprocess.run([*lint, str(bad / "idf_component.yml")],
                          capture_output=True).returncode != 0


def _objects(component: Path, name: str, work: Path) -> list[Path]:
    """Every .c of the component (sources and self-test) compiled to its own object file."""
    work.mkdir()
    objs = []
    for src in sorted((component / "src").glob("*.c")) + sorted((component / "test").glob("*.c")):
        obj = work / (src.stem + ".o")
        run(["gcc", *STRICT, "-O1", "-c", f"-I{component / 'include'}",
             f"-I{component / 'src'}", src, "-o", obj])
        objs.append(obj)
    return objs


def test_two_models_link_into_one_program(tcn, gru, tmp_path):
    if shutil.which("gcc") is None or shutil.which("nm") is None:
        pytest.skip("needs gcc and nm (binutils)")
    components = [tcn, gru]
    objects = {name: _objects(path, name, tmp_path / name) for path, name in components}
    # every externally visible symbol carries its model's prefix, and none is defined twice
    defined = collections.Counter()
    for name, objs in objects.items():
        out = run(["nm", "--defined-only", *objs]).stdout
        entries = [line.split()[-2:] for line in out.splitlines() if len(line.split()) == 3]
        symbols = [sym for kind, sym in entries if kind.isupper()]
        assert symbols, out
        foreign = [s for s in symbols if not s.lower().startswith(name + "_")]
        assert not foreign, f"{name}: global symbols without the model prefix: {foreign}"
        mutable = [sym for kind, sym in entries if kind in "bBdD" and "arena" not in sym]
        assert not mutable, f"{name}: mutable global state besides the arena: {mutable}"
        defined.update(symbols)
    assert not [s for s, n in defined.items() if n > 1]
    (tmp_path / "main.c").write_text(main_source([n for _, n in components]))
    exe = tmp_path / "two_models"
    run(["gcc", *STRICT, "-O1", *(f"-I{p / 'include'}" for p, _ in components),
         tmp_path / "main.c", *(o for objs in objects.values() for o in objs), "-lm", "-o", exe])
    assert run([exe]).stdout.split() == ["quality", "0", "quality_gru", "0"]
