"""Pictures next to report.md where they beat tables: the memory plan over the schedule and the
per-layer SNR (float32: max abs error), as PNGs.

matplotlib is optional (`pip install 'rill[plots]'`): without it the pictures are skipped and
report.md says so in one line. The figures are drawn through matplotlib's object API on an Agg
canvas (no pyplot, no global backend switch) at a fixed size and dpi, with no timestamp or
version in the PNG metadata, so compiling twice gives byte-identical files.
"""
from __future__ import annotations

import math

import warnings
from pathlib import Path

LOG_FLOOR = 1e-12  # the float32 error axis starts here
DPI = 100
MAX_LABEL = 28  # characters of a buffer or layer name drawn in a picture
INSTALL_HINT = "matplotlib is not installed (pip install 'rill[plots]')"


def _matplotlib():
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return None
    return Figure, FigureCanvasAgg


def _short(name: str) -> str:
    """A name as drawn: its tail, on one line (drawn without mathtext: `$` stays a `$`)."""
    name = " ".join(name.splitlines())
    return name if len(name) <= MAX_LABEL else "…" + name[-(MAX_LABEL - 1):]


def write_plots(out: Path, report: dict) -> dict:
    """Draw the pictures of `report` into `out`; report.json's `plots`: file name per picture,
    or `{"skipped": why}`."""
    mpl = _matplotlib()
    if mpl is None:
        return {"skipped": INSTALL_HINT}
    plots = {}
    plan = report.get("memory_plan")
    if plan and plan["arena"]:
        plots["memory_plan"] = _save(memory_plan_figure(mpl, plan, report["name"]), out,
                                     "memory_plan.png")
    float32 = report["bits"] == 32
    key, metric = ("layer_error", "max_abs_error") if float32 else ("layer_snr", "snr_db")
    rows = [(layer["name"], layer[metric]) for layer in report["layers"]
            if layer.get(metric) is not None]
    if rows:
        output = report.get("max_abs_error") if float32 else report.get("snr_db")
        plots[key] = _save(layer_figure(mpl, rows, output, float32, report["name"]), out,
                           f"{key}.png")
    return plots


def _save(fig_canvas, out: Path, filename: str) -> str:
    fig, canvas = fig_canvas
    with open(out / filename, "wb") as f, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. a name's glyph missing from the font: a box
        canvas.print_png(f, metadata={"Software": None})
    fig.clear()
    return filename


def memory_plan_figure(mpl, plan: dict, name: str):
    """x: schedule step, y: arena offset; one rectangle per block over the steps it is live."""
    Figure, Canvas = mpl
    steps = max(plan["steps"], 1)
    fig = Figure(figsize=(min(4 + 0.25 * steps, 16), 5), dpi=DPI)
    canvas = Canvas(fig)
    ax = fig.add_subplot()
    arena = max(plan["arena_bytes"], 1)
    colors = [f"C{i % 10}" for i in range(len(plan["arena"]))]
    for color, b in zip(colors, plan["arena"]):
        x0, width = b["first_step"] - 0.45, b["last_step"] - b["first_step"] + 0.9
        ax.add_patch(_rect(x0, b["offset"], width, b["bytes"], color))
        if b["bytes"] >= 0.06 * arena:
            ax.text(x0 + width / 2, b["offset"] + b["bytes"] / 2, _short(b["buffer"]),
                    ha="center", va="center", fontsize=7, clip_on=True, parse_math=False)
    ax.set_xlim(-1.5, steps - 0.5)
    ax.set_ylim(0, arena)
    ax.set_xlabel("step of the call (-1: the input, on entry)")
    ax.set_ylabel("arena offset (bytes)")
    ax.set_title(f"{name}: scratch arena {plan['arena_bytes']:,} B over {plan['steps']} steps")
    ax.grid(True, axis="y", alpha=0.3)
    width, height = fig.get_size_inches()
    fig.subplots_adjust(left=0.9 / width, right=1 - 0.2 / width, bottom=0.6 / height,
                        top=1 - 0.4 / height)  # fixed margins: cheaper than tight_layout
    return fig, canvas


def _rect(x: float, y: float, w: float, h: float, color: str):
    from matplotlib.patches import Rectangle
    return Rectangle((x, y), w, h, facecolor=color, edgecolor="black", linewidth=0.5, alpha=0.6)


def _log_safe(error: float) -> float:
    """An error on the log axis: exact (0) and undefined (NaN where the model itself gives NaN,
    e.g. Sqrt of a negative input) errors drawn at the axis floor."""
    return error if math.isfinite(error) and error > LOG_FLOOR else LOG_FLOOR


def layer_figure(mpl, rows: list[tuple[str, float]], output: float | None, float32: bool,
                 name: str):
    """One horizontal bar per layer, in schedule order (top first), with the output's value."""
    Figure, Canvas = mpl
    fig = Figure(figsize=(8, min(1.5 + 0.22 * len(rows), 30)), dpi=DPI)
    canvas = Canvas(fig)
    ax = fig.add_subplot()
    ys = list(range(len(rows)))
    values = [_log_safe(v) if float32 else v for _, v in rows]
    ax.barh(ys, values, color="C0" if not float32 else "C3")
    ax.set_yticks(ys, [_short(n) for n, _ in rows], fontsize=7, parse_math=False)
    ax.invert_yaxis()
    if float32:
        ax.set_xscale("log")
        ax.set_xlabel("max abs error vs onnxruntime")
    else:
        ax.set_xlabel("SNR vs float (dB, calibration data)")
    title = f"{name}: per-layer {'max abs error' if float32 else 'SNR'}"
    if output is not None:
        ax.axvline(_log_safe(output) if float32 else output, color="black", linestyle="--",
                   linewidth=1)
        title += f" (dashed: the model output, {output:.3g})" if float32 else \
            f" (dashed: the model output, {output:.2f} dB)"
    ax.set_title(title, fontsize=10)
    ax.grid(True, axis="x", alpha=0.3)
    width, height = fig.get_size_inches()
    label_inches = 0.2 + 0.055 * max(len(_short(n)) for n, _ in rows)  # 7-point labels
    fig.subplots_adjust(left=label_inches / width, right=1 - 0.2 / width, bottom=0.6 / height,
                        top=1 - 0.4 / height)
    return fig, canvas
