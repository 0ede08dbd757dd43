"""report.md / report.json for people and tools (issue 7): the per-layer table, the memory plan,
the "does it fit" totals (code and constants measured by compiling the component for the
target's ISA, the worst-case stack from gcc's call graph, checked against the RV32 emulator's
deepest stack write), and the PNG pictures next to the report (skipped, saying so, without
matplotlib). Components are shared with the other test files (same `compiled` keys)."""
from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest

from codegen import plots
from codegen.footprint import CallGraph
from codegen.report import _cell
from conftest import require_tools, run_cli

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CONTRACT_KEYS = ["target", "bits", "chunk_frames", "macs_per_call", "weight_bytes", "state_bytes",
                 "arena_bytes", "arena_lower_bound_bytes", "latency_frames", "snr_db", "layers"]


def _has_matplotlib() -> bool:
    return plots._matplotlib() is not None


@pytest.fixture(scope="module")
def s3_int8(compiled, example_model, example_calib):
    """The example TCN, int8, esp32s3, chunk 2, verified (the key test_c_quality.py shares)."""
    c = compiled("quality_s3_c2", example_model, "--target", "esp32s3", "--chunk", "2",
                 "--calib", str(example_calib), name="quality")
    assert c.rc == 0, c.stderr
    return c.component, json.loads((c.component / "report.json").read_text())


@pytest.fixture(scope="module")
def p4_int8(compiled, example_model, example_calib):
    """The example TCN, int8, esp32p4, chunk 1 (the key test_e2e.py shares)."""
    c = compiled("mic_a", example_model, "--target", "esp32p4", "--chunk", "1",
                 "--calib", str(example_calib), name="mic_a")
    assert c.rc == 0, c.stderr
    return c.component, json.loads((c.component / "report.json").read_text())


def _table_rows(md: str, header: str) -> list[list[str]]:
    """The cells of the Markdown table that follows `header`."""
    lines = md[md.index(header):].splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith("|"))
    rows = []
    for ln in lines[start + 2:]:
        if not ln.startswith("|"):
            break
        rows.append([c.strip() for c in ln.strip("|").split(" | ")])
    return rows


def test_report_keeps_contract_keys_and_adds_fit(s3_int8):
    _, r = s3_int8
    for key in CONTRACT_KEYS + ["fit", "footprint", "memory_plan", "plots"]:
        assert key in r, key
    for layer in r["layers"]:
        assert {"name", "op", "output_shape", "macs", "exponents", "weight_bytes"} <= set(layer)


def test_layer_table_has_a_row_per_step(s3_int8):
    component, r = s3_int8
    md = (component / "report.md").read_text()
    rows = _table_rows(md, "## Layers")
    assert len(rows) == len(r["layers"])
    for row, layer in zip(rows, r["layers"]):
        index, name, op, shape, precision, exps, macs, wbytes, obytes, snr = row
        assert name == f"`{layer['name']}`" and op == layer["op"]
        assert shape == str(layer["output_shape"]) and precision.startswith(layer["precision"])
        assert exps.startswith(", ".join(map(str, layer["exponents"]["inputs"])))
        assert f"→ {layer['exponents']['output']}" in exps
        if layer["exponents"].get("weights"):
            assert f"(w {layer['exponents']['weights'][0]}" in exps
        assert macs == f"{layer['macs']:,}" and wbytes == f"{layer['weight_bytes']:,}"
        assert obytes == f"{layer['output_bytes']:,}"
        assert snr == ("-" if layer["snr_db"] is None else f"{layer['snr_db']:.2f}")
    assert any(layer["snr_db"] is not None for layer in r["layers"])


def test_fit_totals_are_consistent(s3_int8):
    component, r = s3_int8
    fit, fp = r["fit"], r["footprint"]
    assert fp["measured"], fp
    assert fit["target_ram_bytes"] == 512 * 1024 and fit["target_ram"] == "SRAM"
    ram, flash = fit["ram"], fit["flash"]
    assert ram["arena_bytes"] == r["arena_bytes"] and ram["instance_bytes"] == r["instance_bytes"]
    assert 0 < ram["stack_bytes"] == fp["stack_bytes"] < 4096
    assert ram["total_bytes"] == ram["arena_bytes"] + ram["instance_bytes"] + ram["stack_bytes"]
    assert fit["fits_ram_budget"] and ram["total_bytes"] <= fit["ram_budget_bytes"]
    assert flash["total_bytes"] == fp["code_bytes"] + fp["const_bytes"] + fp["data_bytes"]
    assert fp["const_bytes"] >= r["weight_bytes"] > 0 and fp["code_bytes"] > 1000
    assert fp["bss_bytes"] == r["arena_bytes"]  # the arena is the only mutable static
    assert fp["stack_path"][0] == fp["stack_function"] and fp["stack_bounded"]
    assert fit["estimate"]  # no Xtensa LX7 compiler: the RV32 (or host) build stands in
    md = (component / "report.md").read_text()
    section = md[md.index("## Does it fit on the esp32s3?"):md.index("## Layers")]
    assert f"**{ram['total_bytes']:,} B" in section and f"**{flash['total_bytes']:,} B" in section
    assert f"{fp['code_bytes']:,} B" in section and f"{ram['stack_bytes']:,} B" in section
    assert "512 KiB SRAM" in section and "**estimate**" in section
    assert "ESP-IDF itself takes a large share" in section and "PSRAM" in section
    assert fp["compiler"] in section


def test_p4_code_size_is_measured_for_its_isa(p4_int8):
    component, r = p4_int8
    from compiler.rv32.build import toolchain_missing
    require_tools(toolchain_missing())
    fp = r["footprint"]
    assert fp["isa"] == "RV32IMAFC" and fp["exact_for_target"] and not r["fit"]["estimate"]
    assert fp["compiler"].startswith("riscv64-unknown-elf-gcc")
    assert "768 KiB L2MEM" in (component / "report.md").read_text()


def test_static_stack_bounds_the_emulated_run(p4_int8, tmp_path):
    """The call graph's worst case covers the deepest stack byte `<name>_run_f32` writes in the
    RV32 emulator (stack painted before the run); C library frames (not counted statically) may
    add a little."""
    component, r = p4_int8
    from test_rv32 import rv32_unavailable
    require_tools(rv32_unavailable())
    from compiler.rv32.component import Rv32Component
    from compiler.rv32.emulator import STACK_TOP
    rv = Rv32Component(component, "mic_a", tmp_path)
    painted = 64 * 1024
    rv.machine.write(STACK_TOP - painted, b"\xa5" * painted)
    rv.init()
    x = np.random.default_rng(0).standard_normal((4, rv.input_elems)).astype(np.float32)
    rv.run(x, f32=True)
    stack = np.frombuffer(rv.machine.read(STACK_TOP - painted, painted), np.uint8)
    deepest = painted - int(np.argmax(stack != 0xA5))
    used = deepest - 16  # the emulator starts each call 16 bytes below the top
    static = r["footprint"]["stack_per_function"]["mic_a_run_f32"]
    print(f"\nmic_a_run_f32 stack: static bound {static} B, emulated run wrote {used} B")
    assert 0 < used <= static + 64


def test_pictures_are_png_and_linked(s3_int8):
    if not _has_matplotlib():
        pytest.skip("matplotlib is not installed (the [test] extra installs it)")
    component, r = s3_int8
    md = (component / "report.md").read_text()
    assert r["plots"] == {"memory_plan": "memory_plan.png", "layer_snr": "layer_snr.png"}
    for png in r["plots"].values():
        data = (component / png).read_bytes()
        assert data[:8] == PNG_MAGIC and data[12:16] == b"IHDR"
        width, height = struct.unpack(">II", data[16:24])
        assert width >= 400 and height >= 300
        assert b"Software" not in data and b"tIME" not in data  # no version, no timestamp
        assert f"]({png})" in md


def test_memory_plan_table_matches_json(s3_int8):
    component, r = s3_int8
    plan = r["memory_plan"]
    assert plan["arena_bytes"] == r["arena_bytes"] and plan["arena"]
    assert max(b["offset"] + b["bytes"] for b in plan["arena"]) <= r["arena_bytes"]
    rows = _table_rows((component / "report.md").read_text(), "## Memory plan")
    assert [(row[0], row[1], row[2], row[3]) for row in rows] == [
        (f"`{b['buffer']}`", f"{b['offset']:,}", f"{b['bytes']:,}",
         f"{b['first_step']}..{b['last_step']}") for b in plan["arena"]]


def test_float32_report_has_error_picture_and_no_snr(compiled, example_model, example_calib):
    c = compiled("f32_tcn", example_model, "--bits", "32", "--chunk", "2", "--target",
                 "esp32s3", "--calib", str(example_calib), name="tcn32")
    assert c.rc == 0, c.stderr
    r = json.loads((c.component / "report.json").read_text())
    md = (c.component / "report.md").read_text()
    assert "SNR" not in md and "## Does it fit on the esp32s3?" in md
    if _has_matplotlib():
        assert r["plots"]["layer_error"] == "layer_error.png"
        assert (c.component / "layer_error.png").read_bytes()[:8] == PNG_MAGIC


def test_without_matplotlib_pictures_are_skipped_with_a_note(example_model, example_calib,
                                                             tmp_path, monkeypatch):
    monkeypatch.setattr(plots, "_matplotlib", lambda: None)
    rc, _, err = run_cli(["compile", example_model, "--calib", example_calib, "--out", tmp_path,
                          "--no-verify", "-q"])
    assert rc == 0, err
    component = tmp_path / "tcn"
    r = json.loads((component / "report.json").read_text())
    md = (component / "report.md").read_text()
    assert r["plots"] == {"skipped": plots.INSTALL_HINT}
    assert not list(component.glob("*.png"))
    assert f"picture skipped: {plots.INSTALL_HINT}" in md
    assert r["footprint"] == {"measured": False, "reason": "--no-verify: the C was not compiled"}
    assert r["fit"]["ram"]["stack_bytes"] is None and "not measured (--no-verify" in md


def test_stack_counts_against_the_ram_budget(p4_int8, example_model, example_calib, tmp_path):
    """A budget that holds arena + state but not the stack too: one clear error naming it."""
    _, r = p4_int8
    ram = r["fit"]["ram"]
    budget = ram["arena_bytes"] + ram["instance_bytes"] + ram["stack_bytes"] - 1
    rc, _, err = run_cli(["compile", example_model, "--target", "esp32p4", "--chunk", "1",
                          "--calib", example_calib, "--name", "mic_a", "--out", tmp_path,
                          "--ram-budget", str(budget)])
    assert rc == 1 and err.count("rill: error:") == 1 and "Traceback" not in err
    assert f"stack {ram['stack_bytes']:,} B" in err and f"{budget:,} B" in err
    assert not (tmp_path / "mic_a").exists()


CI_TEXT = """graph: { title: "m.c"
node: { title: "m_run" label: "m_run\\nm.c:1:5\\n48 bytes (static)" }
node: { title: "k_a" label: "k_a\\nm_kernels.h:3:6" shape : ellipse }
edge: { sourcename: "m_run" targetname: "k_a" label: "m.c:2:5" }
node: { title: "memcpy" label: "__builtin_memcpy\\n<built-in>" shape : ellipse }
edge: { sourcename: "m_run" targetname: "memcpy" }
node: { title: "k_b" label: "k_b\\nm.c:9:6\\n200 bytes (dynamic)" }
edge: { sourcename: "m_run" targetname: "k_b" }
node: { title: "k_r" label: "k_r\\nm.c:12:6\\n8 bytes (static)" }
edge: { sourcename: "k_r" targetname: "k_r" }
}
graph: { title: "m_kernels.c"
node: { title: "k_a" label: "k_a\\nm_kernels.c:3:6\\n304 bytes (static)" }
node: { title: "k_c" label: "k_c\\nm_kernels.c:9:6\\n16 bytes (dynamic,bounded)" }
edge: { sourcename: "k_a" targetname: "k_c" }
}
"""


def test_call_graph_worst_path(tmp_path):
    """Frames from the file that defines a function, calls from every file; the deepest path;
    library calls and dynamic frames and recursion said, not hidden."""
    a, b = tmp_path / "m.ci", tmp_path / "m_kernels.ci"
    first, second = CI_TEXT.split("}\ngraph")
    a.write_text(first + "}\n")
    b.write_text("graph" + second)
    g = CallGraph.read([a, b])
    s = g.worst("m_run")
    assert (s.bytes, s.path) == (48 + 304 + 16, ["m_run", "k_a", "k_c"])
    assert s.unknown == {"memcpy"} and not s.bounded  # k_b's frame is dynamic
    assert g.worst("k_a").bounded and g.worst("k_a").bytes == 320
    assert not g.worst("k_r").bounded and "k_r (recursion)" in g.worst("k_r").unknown


def test_markdown_cells_cannot_break_a_table():
    assert _cell("a|b\nc") == "a\\|b c"


def test_pictures_draw_hostile_names(tmp_path):
    """Tensor names are drawn as text, never as mathtext or several lines."""
    if not _has_matplotlib():
        pytest.skip("matplotlib is not installed (the [test] extra installs it)")
    names = ["$\\frac{$", "a\nb */ \"q\" \\", "ünï|cödé", "x" * 200]
    report = {"name": "m", "bits": 8, "snr_db": 12.5,
              "layers": [{"name": n, "snr_db": 10.0 + i} for i, n in enumerate(names)],
              "memory_plan": {"arena_bytes": 64, "steps": 4, "arena": [
                  {"buffer": n, "offset": 16 * i, "bytes": 16, "first_step": i - 1,
                   "last_step": i} for i, n in enumerate(names)]}}
    assert plots.write_plots(tmp_path, report) == {"memory_plan": "memory_plan.png",
                                                   "layer_snr": "layer_snr.png"}
    for png in ("memory_plan.png", "layer_snr.png"):
        assert (tmp_path / png).read_bytes()[:8] == PNG_MAGIC


def test_float32_error_picture_takes_exact_and_undefined_errors(tmp_path):
    """A float32 model can be exact everywhere (error 0) or NaN where the model is (Sqrt of a
    negative input): the log axis draws those at its floor instead of failing the compile."""
    mpl = plots._matplotlib()
    if mpl is None:
        pytest.skip("matplotlib is not installed")
    nan = float("nan")
    for rows, output in (([("sqrt", nan)], nan), ([("relu", 0.0)], 0.0)):
        fig = plots.layer_figure(mpl, rows, output, True, "m")
        assert plots._save(fig, tmp_path, "layer_error.png") == "layer_error.png"
        assert (tmp_path / "layer_error.png").read_bytes().startswith(PNG_MAGIC)


def test_footprint_of_a_relative_output_folder(p4_int8, monkeypatch):
    """`make compile` writes to OUT=build, a relative path: the measuring compiler runs in its
    own work folder and must still find the sources."""
    from codegen.footprint import measure_footprint
    from compiler.targets import get_target
    component, r = p4_int8
    monkeypatch.chdir(component.parent)
    fp = measure_footprint(Path(component.name), r["name"], get_target("esp32p4"))
    assert fp["measured"], fp
    assert fp == r["footprint"]
    assert not any("/" in f for f in fp["stack_path"])  # no temporary folders: deterministic
