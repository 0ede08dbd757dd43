"""State pairs a model already has: `state` -> `stateN`, `h`/`c` -> `hn`/`cn` (issue 3).

A model whose runtime inputs include state inputs is already a per-call model: each call reads
the time-series input and the state the previous call wrote to the paired output. The pairs are
declared with `--state IN=OUT` or detected when names and shapes pair up unambiguously; the
time-series input is the one runtime input left unpaired.
"""
from __future__ import annotations

import onnx_graphsurgeon as gs

from compiler.errors import RillError, UsageError
from compiler.graph import static_shape
from compiler.shapes import infer_shapes

# OUT = IN + one of these (case-insensitive), e.g. state -> stateN, h -> hn, x_state -> x_state_out
OUT_SUFFIXES = ("n", "_n", "out", "_out", "next", "_next", "new", "_new", "1", "_1")
# or IN = stem + an "in" suffix and OUT = stem + an "out" suffix, e.g. state_in -> state_out
IN_SUFFIXES = ("_in", "in", "_prev", "prev", "_old", "old", "0", "_0")


def parse_state_pair(text: str) -> tuple[str, str]:
    """`IN=OUT` -> (IN, OUT) (a usage error otherwise)."""
    name_in, sep, name_out = text.partition("=")
    if not sep or not name_in.strip() or not name_out.strip():
        raise UsageError(f"--state '{text}': expected IN=OUT, the names of a state input and of "
                         "the graph output holding its next value (e.g. --state h=hn)")
    return name_in.strip(), name_out.strip()


def names_pair(name_in: str, name_out: str) -> bool:
    """Whether `name_out` reads like the next value of `name_in`."""
    a, b = name_in.lower(), name_out.lower()
    if a == b:
        return False
    if b.startswith(a):  # IN a prefix of OUT: stateN, hn, h_next, cache_out, ...
        return True
    stems_in = {a[: -len(s)] for s in IN_SUFFIXES if a.endswith(s) and len(a) > len(s)}
    stems_out = {b[: -len(s)] for s in OUT_SUFFIXES if b.endswith(s) and len(b) > len(s)}
    return bool(stems_in & stems_out)


def runtime_graph_inputs(graph: gs.Graph) -> list[gs.Variable]:
    return [t for t in graph.inputs if not isinstance(t, gs.Constant)]


def _shapes(graph: gs.Graph) -> dict[str, tuple[int, ...] | None]:
    """Static shapes of the graph's inputs and outputs (outputs inferred on a copy)."""
    g = graph.copy()
    try:
        infer_shapes(g)
    except RillError:
        g = graph
    return {t.name: static_shape(t) for t in list(g.inputs) + list(g.outputs)}


def _fmt(shape) -> str:
    return "unknown" if shape is None else str(list(shape))


def resolve_state_pairs(graph: gs.Graph, declared: list[tuple[str, str]] | None = None
                        ) -> list[tuple[str, str]]:
    """The model's own state pairs (IN, OUT): `declared` checked, or detected by name and shape.

    A model with one runtime input has none (unless declared, which is then an error).
    """
    declared = list(declared or [])
    inputs = runtime_graph_inputs(graph)
    if not declared and len(inputs) <= 1:
        return []
    shapes = _shapes(graph)
    if declared:
        return _check_declared(graph, inputs, declared, shapes)
    return _detect(graph, inputs, shapes)


def _check_declared(graph, inputs, declared, shapes) -> list[tuple[str, str]]:
    in_names = [t.name for t in inputs]
    out_names = [t.name for t in graph.outputs]
    constants = {t.name for t in graph.inputs if isinstance(t, gs.Constant)}
    seen_in: set[str] = set()
    seen_out: set[str] = set()
    for name_in, name_out in declared:
        flag = f"--state {name_in}={name_out}"
        if name_in not in in_names:
            why = "is a constant (initializer)" if name_in in constants else "is not an input"
            raise UsageError(f"{flag}: '{name_in}' {why} of the model; runtime inputs: "
                             f"{', '.join(in_names)}")
        if name_out not in out_names:
            raise UsageError(f"{flag}: '{name_out}' is not an output of the model; outputs: "
                             f"{', '.join(out_names)}")
        if name_in in seen_in or name_out in seen_out:
            raise UsageError(f"{flag}: '{name_in if name_in in seen_in else name_out}' is in two "
                             "--state pairs")
        seen_in.add(name_in)
        seen_out.add(name_out)
        if shapes.get(name_in) is None or shapes.get(name_in) != shapes.get(name_out):
            raise UsageError(f"{flag}: input '{name_in}' has shape {_fmt(shapes.get(name_in))} "
                             f"but output '{name_out}' has shape {_fmt(shapes.get(name_out))}; a "
                             "state output must have its input's shape")
    left = [n for n in in_names if n not in seen_in]
    if len(left) != 1:
        what = "no runtime input is" if not left else \
            f"runtime inputs {', '.join(repr(n) for n in left)} are"
        raise UsageError(f"{what} left for the time series after the --state pairs; declare every "
                         "state input with --state IN=OUT and leave exactly one (the time-series "
                         "input) unpaired")
    _check_one_output(graph, seen_out)
    return list(declared)


def _detect(graph, inputs, shapes) -> list[tuple[str, str]]:
    outputs = [t.name for t in graph.outputs]
    candidates = {t.name: [o for o in outputs
                           if shapes.get(t.name) is not None and shapes.get(o) == shapes[t.name]
                           and names_pair(t.name, o)] for t in inputs}
    unpaired = [n for n, c in candidates.items() if not c]
    hint = "; declare the pairs with --state IN=OUT (repeatable)"
    if len(unpaired) > 1:
        same_shape = {n: [o for o in outputs if shapes.get(n) is not None
                          and shapes.get(o) == shapes[n]] for n in unpaired}
        maybe = [f"--state {n}={o[0]}" for n, o in same_shape.items() if len(o) == 1]
        raise RillError(
            f"the model has {len(inputs)} runtime inputs ({', '.join(candidates)}): one is the "
            "time series and every other must be a state input paired with the graph output "
            "holding its next value, but inputs "
            f"{' and '.join(repr(n) for n in unpaired)} match no output by name and shape "
            f"(e.g. 'state' -> 'stateN', 'h' -> 'hn'){hint}"
            + (f" (e.g. {', '.join(maybe)})" if maybe else "")
            + ", or make the extra inputs constants")
    if not unpaired:
        raise RillError(f"every runtime input ({', '.join(candidates)}) matches a graph output by "
                        "name and shape, so none is left for the time series" + hint)
    several = {n: c for n, c in candidates.items() if len(c) > 1}
    if several:
        raise RillError("ambiguous state pairs: " + "; ".join(
            f"input '{n}' matches outputs {', '.join(repr(o) for o in c)}"
            for n, c in several.items()) + hint)
    pairs = [(n, c[0]) for n, c in candidates.items() if c]
    outs = [o for _, o in pairs]
    twice = sorted({o for o in outs if outs.count(o) > 1})
    if twice:
        raise RillError("ambiguous state pairs: " + "; ".join(
            f"output '{o}' matches inputs {', '.join(repr(i) for i, p in pairs if p == o)}"
            for o in twice) + hint)
    _check_one_output(graph, set(outs))
    return pairs


def _check_one_output(graph: gs.Graph, state_outputs: set[str]) -> None:
    rest = [t.name for t in graph.outputs if t.name not in state_outputs]
    if len(rest) != 1:
        raise RillError(f"the model has {len(rest)} outputs besides its state outputs "
                        f"({', '.join(rest) or 'none'}); Rill supports one")


def time_series_name(graph: gs.Graph, pairs: list[tuple[str, str]]) -> str:
    ins = {i for i, _ in pairs}
    return next(t.name for t in runtime_graph_inputs(graph) if t.name not in ins)
