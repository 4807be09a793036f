"""Error codes are fine enough to search for, and every one is documented.

Every code that the source raises is in :data:`physml_lang.diagnostics.CODES` and in
``docs/diagnostics.md``; every CODES entry has a documented row; and no code is reused for
many unrelated messages.

"Distinct messages" are counted on the source: each call that passes a code literal followed
by its message (``fail("P405", f"a {what} size must be at least 2, got {v}", ...)``) gives a
message format (placeholders as ``{}``), and formats count as one when their first
:data:`PREFIX` characters agree (so ``"division by zero"`` raised in six places is one message).
:data:`MAX_MESSAGES` is 15: the taxonomy of docs/diagnostics.md keeps every code at or below it
(the largest classes, P407 "too large", P411 "incomplete declaration", P412 "the run lacks what
its task needs", have 13-15), while the overloaded codes it replaced had 20-125 by this count
(P400 "impossible value" 124, P300 91, P302 72, P200 60, P800 37, P100 31, P601 27); a class
of 15 messages is still one thing a user can look up, a page of them is not. A new message
that fits no code's class gets a new code (and a row in docs/diagnostics.md), not a higher
limit.
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

from physml_lang.diagnostics import CODES

REPO = Path(__file__).resolve().parents[2]
SOURCES = [REPO / "physml_lang", REPO / "compiler", REPO / "runtime"]
DOCS = REPO / "docs" / "diagnostics.md"
CODE = re.compile(r"^P\d{3}$")
LITERAL = re.compile(r"""["'](P\d{3})["']""")
MAX_MESSAGES = 15
PREFIX = 30


def _files() -> list[Path]:
    return sorted(p for root in SOURCES for p in root.rglob("*.py"))


def _documented() -> dict[str, str]:
    """Code -> its table row in docs/diagnostics.md."""
    rows = {}
    for line in DOCS.read_text().splitlines():
        m = re.match(r"^\|\s*(P\d{3})\s*\|", line)
        if m:
            rows[m.group(1)] = line
    return rows


def _render(node: ast.expr) -> str:
    """A message expression as a format: literal text kept, everything computed as ``{}``."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _render(node.left) + _render(node.right)
    return "{}"


def _codes(node: ast.expr) -> list[str]:
    """The code literals of a code argument (``"P203" if name else "P303"`` gives both)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str) and CODE.match(node.value):
        return [node.value]
    if isinstance(node, ast.IfExp):
        return _codes(node.body) + _codes(node.orelse)
    return []


def _messages(node: ast.expr) -> list[str]:
    """The message formats of a message argument, one per branch of a conditional."""
    if isinstance(node, ast.IfExp):
        return _messages(node.body) + _messages(node.orelse)
    return [_render(node)]


def messages_by_code() -> dict[str, set[str]]:
    """Code -> the distinct message prefixes raised with it anywhere in the source."""
    out: dict[str, set[str]] = defaultdict(set)
    for path in _files():
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            for i, arg in enumerate(node.args[:-1]):
                codes = _codes(arg)
                if not codes:
                    continue
                msgs = _messages(node.args[i + 1])
                # a conditional code goes with the same conditional message, branch by branch
                pairs = zip(codes, msgs) if len(codes) == len(msgs) else \
                    ((c, m) for c in codes for m in msgs)  # fmt: skip
                for code, msg in pairs:
                    out[code].add(msg.lower()[:PREFIX])
    return out


def test_every_used_code_is_known_and_documented():
    documented = _documented()
    used: dict[str, str] = {}
    for path in _files():
        for code in LITERAL.findall(path.read_text()):
            used.setdefault(code, str(path.relative_to(REPO)))
    assert used, "no code literal found: the search is broken"
    unknown = {c: where for c, where in used.items() if c not in CODES}
    assert not unknown, f"codes used but missing from CODES: {unknown}"
    undocumented = {c: where for c, where in used.items() if c not in documented}
    assert not undocumented, f"codes used but missing from docs/diagnostics.md: {undocumented}"


def test_every_code_is_documented():
    documented = _documented()
    missing = sorted(set(CODES) - set(documented))
    assert not missing, f"CODES entries without a row in docs/diagnostics.md: {missing}"
    for code, row in documented.items():
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert len(cells) == 5 and all(cells), f"{code}: a row has family, meaning, message, fix"


def test_no_code_is_overloaded():
    counts = messages_by_code()
    assert len(counts) > 40, "too few codes found: the message search is broken"
    over = {c: sorted(m) for c, m in counts.items() if len(m) > MAX_MESSAGES}
    assert not over, (
        f"codes used for more than {MAX_MESSAGES} distinct messages (split them into codes a "
        f"user can search for, documented in docs/diagnostics.md): {over}"
    )
