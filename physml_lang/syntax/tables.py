"""The parser's LALR tables, stored beside the grammar as JSON so that no process rebuilds them."""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path

from lark import Lark

# The LALR tables built from the grammar are stored beside it as JSON (no pickle): building
# them takes ~0.25 s per process, loading them ~15 ms. ``scripts/grammar_tables.py``
# regenerates them; a stale file (grammar or lark changed) is ignored, and a test keeps it current.
TABLES = "physml.tables.json"
OPTIONS = {"parser": "lalr", "strict": True, "propagate_positions": True,
            "maybe_placeholders": True}  # fmt: skip


def _grammar_key(grammar: str) -> str:
    """What the tables depend on: the grammar text, the options and lark's version."""
    import lark

    text = grammar + json.dumps(OPTIONS, sort_keys=True) + lark.__version__
    return hashlib.sha256(text.encode()).hexdigest()


def _int_keys(d: dict) -> dict:
    # JSON turns the integer keys of lark's parse table and memo (state and object ids) into
    # strings; no grammar symbol is all digits, so digit strings are exactly those keys
    return {int(k) if k.isdigit() else k: v for k, v in d.items()}


def load_tables(grammar: str) -> Lark | None:
    try:
        text = resources.files("physml_lang.grammar").joinpath(TABLES).read_text()
        tables = json.loads(text, object_hook=_int_keys)
    except (OSError, ValueError):
        return None
    if tables.get("key") != _grammar_key(grammar):
        return None
    return Lark._load_from_dict(tables["data"], tables["memo"])


def write_tables() -> Path:
    """Rebuild the stored tables from the grammar; returns the file written."""
    path = Path(str(resources.files("physml_lang.grammar"))) / TABLES
    path.write_text(build_tables(grammar_text()) + "\n")
    return path


def build_tables(grammar: str) -> str:
    """The JSON text of the LALR tables for ``grammar`` (what ``TABLES`` holds)."""
    from lark.grammar import Rule
    from lark.lexer import TerminalDef

    data, memo = Lark(grammar, **OPTIONS).memo_serialize([TerminalDef, Rule])
    return json.dumps({"key": _grammar_key(grammar), "data": data, "memo": memo},
                      separators=(",", ":"))  # fmt: skip


def grammar_text() -> str:
    return resources.files("physml_lang.grammar").joinpath("physml.lark").read_text()

