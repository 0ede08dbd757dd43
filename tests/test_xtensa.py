"""Portability smoke test for the Xtensa family (issue 6): Debian's gcc-xtensa-lx106 (an ESP8266
core, not the ESP32-S3: a compile check, nothing runs) compiles every C file of four generated
components -- the example TCN at int8 and int16, the conv+GRU tagger, and the TCN for the
esp32p4 at 8 frames per call (the float-accumulating convs and their per-layer-shape
functions, whose portable C path other cores take) -- freestanding, with the
strict warnings as errors. picolibc-xtensa-lx106-elf supplies <string.h> and <math.h>, which a
freestanding compiler does not. Under CI a missing toolchain fails (.ci/run installs it)."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import FIXTURES, require_tools

CC = "xtensa-lx106-elf-gcc"
SPECS = Path("/usr/lib/xtensa-lx106-elf/picolibc.specs")
FLAGS = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-ffreestanding", "-O2"]
GRU = FIXTURES / "streaming" / "gru_tagger.script.onnx"
GRU_CALIB = FIXTURES / "streaming" / "gru_tagger.calib.npy"


def xtensa_missing() -> str | None:
    missing = [what for what, ok in [(CC, shutil.which(CC)), (f"picolibc ({SPECS})", SPECS.is_file())]
               if not ok]
    return (f"{' and '.join(missing)} not found: apt-get install gcc-xtensa-lx106 "
            "picolibc-xtensa-lx106-elf (.ci/run does it)") if missing else None


@pytest.mark.parametrize("variant", ["tcn_int8", "tcn_int16", "gru_int8", "tcn_p4_fx"])
def test_generated_c_compiles_for_xtensa_lx106(variant, compiled, example_model, example_calib,
                                               tmp_path):
    require_tools(xtensa_missing())
    if variant == "gru_int8":  # the keys and arguments test_c_quality.py uses: shared per worker
        c = compiled("quality_gru", GRU, "--calib", str(GRU_CALIB), name="quality_gru")
    elif variant == "tcn_p4_fx":
        c = compiled("xtensa_p4_c8", example_model, "--target", "esp32p4", "--chunk", "8",
                     "--calib", str(example_calib), name="p4fx")
        assert "conv1d_fx_k3c32" in (c.component / "src" / "p4fx_kernels.c").read_text()
    else:
        bits = ["--bits", "16"] if variant == "tcn_int16" else []
        key, name = ("quality16_s3_c2", "quality16") if bits else ("quality_s3_c2", "quality")
        c = compiled(key, example_model, "--target", "esp32s3", "--chunk", "2", *bits,
                     "--calib", str(example_calib), name=name)
    assert c.rc == 0, c.stderr
    comp = c.component
    sources = sorted((comp / "src").glob("*.c")) + sorted((comp / "test").glob("*.c"))
    assert len(sources) >= 3
    for src in sources:
        obj = tmp_path / f"{src.stem}.o"
        proc = subprocess.run([CC, f"--specs={SPECS}", *FLAGS, f"-I{comp / 'include'}",
                               f"-I{comp / 'src'}", "-c", str(src), "-o", str(obj)],
                              capture_output=True, text=True)
        assert proc.returncode == 0, f"{src.name} for Xtensa lx106:\n{proc.stderr[-3000:]}"
        assert obj.stat().st_size > 0
