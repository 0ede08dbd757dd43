"""Names that are safe in C: the model prefix, identifiers from ONNX names, comment text."""
from __future__ import annotations

import re

C_KEYWORDS = frozenset("""auto break case char const continue default do double else enum extern
float for goto if inline int long register restrict return short signed sizeof static struct
switch typedef union unsigned void volatile while _Bool _Complex _Imaginary bool true false
asm""".split())


def model_name(stem: str) -> str:
    """Contract §1: lower-case, [a-z0-9_] only, `m_` in front of a digit or a C keyword."""
    name = re.sub(r"[^a-z0-9_]", "_", stem.lower()) or "model"
    if name[0].isdigit() or name in C_KEYWORDS:
        name = "m_" + name
    return name


def c_identifier(text: str, used: set[str]) -> str:
    """A fresh C identifier that resembles `text` (ONNX names may hold anything)."""
    base = re.sub(r"[^A-Za-z0-9_]+", "_", text).strip("_").lower() or "t"
    base = re.sub(r"_+", "_", base)
    if base[0].isdigit() or base in C_KEYWORDS:
        base = "t_" + base
    base = base[:40].rstrip("_")
    name, i = base, 1
    while name in used:
        i += 1
        name = f"{base}_{i}"
    used.add(name)
    return name


def comment(text: str) -> str:
    """Text that can sit inside /* ... */ on one line whatever the ONNX name holds."""
    text = text.replace("*/", "* /").replace("/*", "/ *")
    text = "".join(ch if 32 <= ord(ch) < 127 else "?" for ch in text)
    return text.replace("\\", "/").replace("??", "?")
