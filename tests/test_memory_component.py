"""RAM in the generated component (contract §4, issue 5): the arena attribute places the arena
where the caller says, `<name>_t` is exactly `instance_bytes`, report.json counts the copies the C
makes, and windows kept in `<name>_t` update by one move of their kept frames.

The tutorial TCN at CHUNK 8 has windows of both kinds (in `<name>_t` and in the arena)."""
from __future__ import annotations

import json
import re
import subprocess

import pytest

from conftest import FIXTURES, STRICT_CFLAGS

NAME = "memtcn"


@pytest.fixture(scope="module")
def component(compiled, example_model, example_calib):
    c = compiled("memtcn_c8", example_model, "--chunk", "8", "--calib", str(example_calib),
                 name=NAME)
    assert c.rc == 0, c.stderr
    return c.component


@pytest.fixture(scope="module")
def report(component) -> dict:
    return json.loads((component / "report.json").read_text())


def run_body(component) -> str:
    source = (component / "src" / f"{NAME}.c").read_text()
    return source[source.index(f"int {NAME}_run("):source.index(f"int {NAME}_run_f32(")]


def test_report_counts_the_copies_the_c_makes(component, report):
    body = run_body(component)
    assert report["copies_per_call"] == len(re.findall(r"\bmem(?:cpy|move)\(", body))
    assert report["copied_bytes_per_call"] > 0 and report["inplace_steps"] > 0
    assert report["arena_bytes"] <= 1.05 * report["arena_lower_bound_bytes"]
    assert report["instance_bytes"] >= report["state_bytes"]


def test_windows_in_the_instance_update_by_one_move(component, report):
    """memmove where the kept frames overlap their new place, memcpy where CHUNK >= them."""
    body = run_body(component)
    members = re.findall(r"mem(?:move|cpy)\(m->(\w+), m->\1 \+ \d+, \d+\);", body)
    assert members, "no window kept in the instance"
    header = (component / "include" / f"{NAME}.h").read_text()
    for member in members:
        assert re.search(rf"int8_t {member}\[\d+\] {NAME.upper()}_ALIGN16; /\* kept between "
                         r"calls: .*then the call's new frames \*/", header)
    assert "/kept_frames" in body  # and a window in the arena, its kept frames copied in


@pytest.mark.parametrize("caller_arena", [False, True])
def test_instance_size_is_instance_bytes(component, report, cc, tmp_path, caller_arena):
    main = tmp_path / "size.c"
    main.write_text(f'#include <stdio.h>\n#include "{NAME}.h"\n'
                    f"int main(void) {{ printf(\"%u\\n\", (unsigned)sizeof({NAME}_t)); "
                    "return 0; }\n")
    flags = [f"-D{NAME.upper()}_CALLER_ARENA"] if caller_arena else []
    exe = tmp_path / "size"
    subprocess.run([cc, *STRICT_CFLAGS, *flags, f"-I{component / 'include'}", str(main),
                    "-o", str(exe)], check=True)
    size = int(subprocess.run([str(exe)], capture_output=True, text=True).stdout)
    pointer = 16 if caller_arena else 0  # the arena pointer, padded to the struct's alignment
    assert size <= report["instance_bytes"] + pointer and size >= report["instance_bytes"]


def test_arena_attribute_places_the_arena(component, cc, tmp_path):
    """What EXT_RAM_BSS_ATTR does inside ESP-IDF: put the arena into its own section."""
    obj = tmp_path / "model.o"
    attr = '__attribute__((section(".ext_ram.bss.rill")))'
    subprocess.run([cc, *STRICT_CFLAGS, f"-D{NAME.upper()}_ARENA_ATTR={attr}",
                    f"-I{component / 'include'}", f"-I{component / 'src'}", "-c",
                    str(component / "src" / f"{NAME}.c"), "-o", str(obj)], check=True)
    table = subprocess.run(["objdump", "-t", str(obj)], capture_output=True, text=True).stdout
    line = next(l for l in table.splitlines() if l.endswith(f" {NAME}_arena"))
    assert ".ext_ram.bss.rill" in line, line


def test_int16_state_with_a_nonzero_initial_value(tmp_path):
    """A causal max-pool keeps -32768 frames at int16, which no memset writes: the component
    initializes them in a loop, and its self-test and the bit-exact check pass."""
    from conftest import run_cli
    zoo = FIXTURES / "streaming"
    rc, _, err = run_cli(["compile", zoo / "tcn_residual.dynamo.onnx", "--calib",
                          zoo / "tcn_residual.calib.npy", "--bits", "16", "--out", tmp_path,
                          "--name", "res16", "-q"])
    assert rc == 0, err
    report = json.loads((tmp_path / "res16" / "report.json").read_text())
    assert report["verification"]["selftest"] == "passed"
    assert any(s["init"] < -1e3 for s in report["states"])  # the pad value of the max-pool
    assert re.search(r"m->state_\w+\[i\] = -32768;", (tmp_path / "res16" / "src" / "res16.c").read_text())
