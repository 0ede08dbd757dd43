"""An ordered pipeline of named passes, each declaring what it requires and ensures.

A pass returns whether it changed the model. The manager checks the declared requirements, can
dump the graph after each pass (`--dump-passes`, viewable in Netron) and, for passes that claim
to preserve the float semantics, check that claim in onnxruntime.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import onnx

from compiler.context import CompileContext
from compiler.errors import RillError


class Pass:
    """Base class: subclasses set the class attributes and implement `run`."""

    name: str = ""
    requires: frozenset[str] = frozenset()
    ensures: frozenset[str] = frozenset()
    preserves_float_semantics: bool = False  # the manager may verify this in onnxruntime

    def run(self, ctx: CompileContext) -> bool:  # pragma: no cover - interface
        raise NotImplementedError


@dataclass
class PassRecord:
    name: str
    changed: bool
    max_rel_error: float | None = None
    seconds: float = 0.0  # wall time of the pass (for --verbose; not in report.json)


class PassManager:
    def __init__(self, passes: Sequence[Pass], *, dump_dir: Path | None = None,
                 check_equivalence: bool = False, rel_tol: float = 1e-5,
                 on_pass: Callable[[str], None] | None = None,
                 on_done: Callable[[PassRecord], None] | None = None):
        self.passes = list(passes)
        self.dump_dir = dump_dir
        self.check_equivalence = check_equivalence
        self.rel_tol = rel_tol
        self.on_pass = on_pass
        self.on_done = on_done
        self.records: list[PassRecord] = []

    def run(self, ctx: CompileContext) -> CompileContext:
        for index, p in enumerate(self.passes):
            missing = p.requires - ctx.properties
            if missing:
                raise RuntimeError(f"pass '{p.name}' requires {sorted(missing)}, "
                                   f"which no earlier pass ensures")
            if self.on_pass:
                self.on_pass(p.name)
            before = self._snapshot(ctx) if self._checks(p) else None
            start = time.perf_counter()
            changed = bool(p.run(ctx))
            ctx.properties |= p.ensures
            record = PassRecord(p.name, changed, seconds=time.perf_counter() - start)
            if before is not None and changed:
                record.max_rel_error = self._check(p, before, ctx)
            self.records.append(record)
            if self.on_done:
                self.on_done(record)
            if self.dump_dir is not None:
                self._dump(index, p, ctx)
        return ctx

    def _checks(self, p: Pass) -> bool:
        return self.check_equivalence and p.preserves_float_semantics

    @staticmethod
    def _snapshot(ctx: CompileContext) -> onnx.ModelProto:
        from compiler.graph import to_runnable
        return to_runnable(ctx.graph)

    def _check(self, p: Pass, before: onnx.ModelProto, ctx: CompileContext) -> float:
        from compiler.graph import to_runnable
        from compiler.ort import random_feeds, run_model
        after = to_runnable(ctx.graph)
        feeds = random_feeds(before, seed=0)
        ref = run_model(before, feeds)
        got = run_model(after, feeds)
        worst = 0.0
        for name, r in ref.items():
            if name not in got:
                raise RillError(f"pass '{p.name}' lost graph output '{name}'")
            scale = max(float(np.max(np.abs(r))), 1e-30)
            err = float(np.max(np.abs(r - got[name]))) / scale if r.size else 0.0
            worst = max(worst, err)
        if worst > self.rel_tol:
            raise RillError(f"pass '{p.name}' changed the model's float outputs "
                            f"(max relative error {worst:.3g} > {self.rel_tol:g})")
        return worst

    def _dump(self, index: int, p: Pass, ctx: CompileContext) -> None:
        from compiler.graph import export_model
        self.dump_dir.mkdir(parents=True, exist_ok=True)
        safe = re.sub(r"[^a-z0-9_]+", "_", p.name.lower())
        onnx.save(export_model(ctx.graph.copy()), str(self.dump_dir / f"{index:02d}_{safe}.onnx"))
