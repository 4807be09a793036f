"""The words of the language, read from the grammar, the run-statement table, the catalogue and
the function table so that highlighting and completion cannot drift from what the parser and
the checker accept; and the TextMate grammar built from them (``scripts/textmate_grammar.py``
writes it to ``editors/vscode``)."""

from __future__ import annotations

import json
import re
from functools import cache

from physml_lang.catalogue import CATALOGUE
from physml_lang.catalogue.domains import SYMMETRIES
from physml_lang.check.tasks import STATEMENTS
from physml_lang.ir.expr import REDUCTIONS
from physml_lang.ir.functions import CONSTANTS, FUNCTIONS
from physml_lang.syntax.parser import keywords

WORD = re.compile(r"[A-Za-z_][A-Za-z_0-9]*")
# a registry name may hold a placeholder: ``mean_<field>`` is ``mean_s`` for a field ``s``
PLACEHOLDER = re.compile(r"<[A-Za-z_]+>")
IDENTIFIER = r"[A-Za-z_][A-Za-z_0-9]*"
# Oniguruma (TextMate) and Python's re agree on these patterns: no look-behind, no named groups
NUMBER = r"(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?(?:[ij]\b)?"
OPERATOR = r"\*\*|==|!=|<=|>=|[-+*/%^<>=]"
PUNCTUATION = r"[(){}\[\],:]"


@cache
def grammar_keywords() -> tuple[str, ...]:
    """Every word the grammar spells out (its string terminals that are words)."""
    return keywords()


@cache
def statement_words() -> tuple[str, ...]:
    """The words that start run statements (``sampler``, ``scan``, ``measure``, ...) that are
    not grammar keywords already."""
    return tuple(sorted(set(STATEMENTS) - set(grammar_keywords())))


@cache
def registry_names() -> dict[str, tuple[str, ...]]:
    """Every catalogue name -> the kinds of entry (``samplers``, ...) that declare it."""
    kinds: dict[str, list[str]] = {}
    for registry in CATALOGUE:
        for name in registry.names():
            kinds.setdefault(name, [])
            if registry.kind not in kinds[name]:
                kinds[name].append(registry.kind)
    return {name: tuple(kinds[name]) for name in sorted(kinds)}


def functions() -> tuple[str, ...]:
    """The functions of expressions and constant values (``sum``, ``sqrt``, ``linspace``)."""
    return tuple(sorted({*FUNCTIONS, *REDUCTIONS}))


def symmetries() -> tuple[str, ...]:
    """The symmetries a model declares and a learner respects."""
    return tuple(sorted(SYMMETRIES))


def constants() -> tuple[str, ...]:
    return tuple(sorted(CONSTANTS))


def word_pattern(name: str) -> str:
    """The regular expression of a name: the name itself, a placeholder any identifier tail."""
    parts = PLACEHOLDER.split(name)
    return "[A-Za-z_0-9]+".join(re.escape(p) for p in parts)


def example_word(name: str) -> str:
    """A word the name's pattern matches (``mean_<field>`` -> ``mean_s``)."""
    return PLACEHOLDER.sub("s", name)


def words_pattern(names: list[str] | tuple[str, ...]) -> str:
    """One whole word out of ``names``; longest first, so that no name hides a longer one."""
    ordered = sorted({word_pattern(n) for n in names}, key=lambda p: (-len(p), p))
    return r"\b(?:" + "|".join(ordered) + r")\b"


def highlighted_words() -> dict[str, tuple[str, ...]]:
    """The word classes in the order a highlighter tries them (a word in two classes takes
    the first): keywords, run-statement words, registry names, symmetries, functions,
    constants."""
    keywords = set(grammar_keywords())
    names = [n for n in registry_names() if n not in keywords]
    classes = {"keywords": grammar_keywords(), "statements": statement_words(),
               "registry": tuple(names)}  # fmt: skip
    for kind, words in (("symmetries", symmetries()), ("functions", functions()),
                        ("constants", constants())):  # fmt: skip
        # statement words are keywords only at the start of a line: elsewhere they are names
        taken = {w for k, ws in classes.items() if k != "statements" for w in ws}
        classes[kind] = tuple(w for w in words if w not in taken)
    return classes


SCOPES = {
    "keywords": "keyword.control.physml",
    "statements": "keyword.other.statement.physml",
    "registry": "support.function.catalogue.physml",
    "symmetries": "support.constant.symmetry.physml",
    "functions": "support.function.builtin.physml",
    "constants": "constant.language.physml",
}


def textmate_grammar() -> dict:
    """The TextMate grammar of ``.phys`` files (what ``editors/vscode`` ships)."""
    words = highlighted_words()
    patterns: list[dict] = [
        {"name": "comment.line.number-sign.physml", "match": r"#.*$"},
        {"name": "string.quoted.double.physml", "match": r'"[^"\n]*"'},
        {"name": "constant.numeric.physml", "match": NUMBER},
        {"name": SCOPES["keywords"], "match": words_pattern(words["keywords"])},
        # a run statement's word starts its line: elsewhere it is an ordinary name
        {"match": r"^\s*(" + words_pattern(words["statements"]) + ")",
         "captures": {"1": {"name": SCOPES["statements"]}}},
    ]
    for kind in ("registry", "symmetries", "functions", "constants"):
        patterns.append({"name": SCOPES[kind], "match": words_pattern(words[kind])})
    patterns += [
        {"name": "variable.other.physml", "match": r"\b" + IDENTIFIER + r"\b"},
        {"name": "keyword.operator.physml", "match": OPERATOR},
        {"name": "punctuation.physml", "match": PUNCTUATION},
    ]
    return {
        "$schema": "https://raw.githubusercontent.com/martinring/tmlanguage/master/"
                   "tmlanguage.json",
        "name": "physml",
        "scopeName": "source.physml",
        "fileTypes": ["phys"],
        "comment": "Generated by scripts/textmate_grammar.py from the grammar and the catalogue: "
                   "do not edit by hand.",
        "patterns": patterns,
    }


def textmate_json() -> str:
    """The text of the TextMate grammar file, as committed."""
    return json.dumps(textmate_grammar(), indent=2) + "\n"


__all__ = ["grammar_keywords", "statement_words", "registry_names", "functions", "constants",
           "symmetries",
           "highlighted_words", "textmate_grammar", "textmate_json", "word_pattern", "example_word",
           "words_pattern"]
