"""What the language server says about a document, without the protocol: the diagnostics
``physml check`` reports for its text, completions at a position and the docs under the
cursor. Positions are 0-based lines and characters (code points)."""

from __future__ import annotations

import contextlib
import re
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

from physml_lang.api import Program
from physml_lang.catalogue import CATALOGUE
from physml_lang.catalogue.domains import SYMMETRIES
from physml_lang.catalogue.listing import entry_text, registry_text
from physml_lang.check.program import check_program
from physml_lang.check.tasks import STATEMENTS
from physml_lang.diagnostics import Diagnostic, PhysmlError, PhysmlWarning
from physml_lang.ir.functions import FUNCTIONS
from physml_lang.syntax.parser import parse

from . import vocabulary

# ---------------------------------------------------------------- diagnostics


def check_text(text: str, path: Path | None = None) -> list[Diagnostic]:
    """The errors and warnings ``physml check`` reports for ``text`` read as the file ``path``
    (its folder resolves imports and data files; None: text without a file)."""
    found: list[Diagnostic] = []
    # the LSP stream is stdout: nothing a check prints may reach it
    with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stdout(sys.stderr):
        warnings.simplefilter("always", PhysmlWarning)
        try:
            name = str(path) if path is not None else "<string>"
            program = Program(check_program(parse(text, name), path, name))
            program.check()
        except PhysmlError as exc:
            found += exc.diagnostics
    for w in caught:
        if isinstance(w.message, PhysmlWarning) and w.message.diagnostic is not None:
            found.append(w.message.diagnostic)
    return found


# ---------------------------------------------------------------- reading the text

_TOKEN = re.compile(r'#[^\n]*|"[^"\n]*"?|==|!=|<=|>=|[A-Za-z_0-9.]+|[()\[\]{},=:]')
_WORD = re.compile(r"[A-Za-z_][A-Za-z_0-9]*")
_WORD_END = re.compile(r"[A-Za-z_][A-Za-z_0-9]*$")


def offset_of(text: str, line: int, character: int) -> int:
    """The index into ``text`` of a 0-based position (clipped to the text)."""
    lines = text.splitlines(keepends=True)
    return min(len(text), sum(len(x) for x in lines[:line]) + character)


@dataclass
class Context:
    """Where the cursor is: the call it is an argument of (``metropolis`` in
    ``metropolis(chains = |``), whether an option name goes there (no ``=`` yet in this
    argument), the word before the one being typed, and the first word of its line."""

    call: str | None = None
    option_name: bool = False
    previous: str | None = None
    line_first: str | None = None


def context_at(text: str, offset: int) -> Context:
    """The context of a position, from the tokens before it (comments and strings skipped)."""
    typed = _WORD_END.search(text[:offset])
    end = typed.start() if typed else offset  # the word being typed is not context
    calls: list[list] = []  # open brackets: [bracket, call name, '=' seen in this argument]
    previous: str | None = None
    line_first: str | None = None
    line, row, counted = -1, 0, 0
    for m in _TOKEN.finditer(text, 0, end):
        tok = m.group()
        row, counted = row + text.count("\n", counted, m.start()), m.start()
        if tok[0] in '#"':
            continue
        if row != line:
            line, line_first = row, tok
        if tok in "([{":
            is_call = tok == "(" and previous is not None and _WORD.fullmatch(previous)
            calls.append([tok, previous if is_call else None, False])
        elif tok in ")]}" and calls:
            calls.pop()
        elif tok in ",=" and calls:
            calls[-1][2] = tok == "="
        previous = tok
    if row + text.count("\n", counted, end) != line:
        line_first = None
    context = Context(previous=previous, line_first=line_first)
    if calls and calls[-1][0] == "(":
        context.call, context.option_name = calls[-1][1], not calls[-1][2]
    return context


def word_at(text: str, offset: int) -> tuple[str, int, int]:
    """The word under (or just before) the cursor and its start and end offsets."""
    start = text.rfind("\n", 0, offset) + 1
    stop = text.find("\n", offset)
    for m in _WORD.finditer(text, start, len(text) if stop < 0 else stop):
        if m.start() <= offset <= m.end():
            return m.group(), m.start(), m.end()
    return "", offset, offset


# ---------------------------------------------------------------- the catalogue's words

# the kinds of entry a word asks for next: ``sampler |`` wants a sampler
WANTS: dict[str, tuple[str, ...]] = {
    "sampler": ("samplers",), "lattice": ("lattices",), "graph": ("lattices",),
    "via": ("objectives", "optimisers", "analyses", "samplers", "updates", "tasks"),
    "optimize": ("optimisers",), "optimizer": ("optimisers",), "optimise": ("optimisers",),
    "schedule": ("schedules",), "measure": ("observables",), "plot": ("observables",),
    "data": ("sources",), "evolve": ("integrators",), "integrator": ("integrators",),
    "discover": ("analyses",), "classify": ("analyses",), "invariant": ("analyses",),
    "locate": ("analyses",), "update": ("updates",), ":": ("domains",),
}  # fmt: skip


def _entries(name: str):
    """(registry, entry) of every entry called ``name`` (``mean_s`` is ``mean_<field>``)."""
    for registry in CATALOGUE:
        for entry in registry:
            if entry.name == name or (
                "<" in entry.name and re.fullmatch(vocabulary.word_pattern(entry.name), name)
            ):
                yield registry, entry


@dataclass(frozen=True)
class Completion:
    """One completion: the word, what it is (``keyword``, ``statement``, ``entry``,
    ``option``, ``symmetry``, ``function``), a one-line detail, its docs, and a sort key."""

    label: str
    kind: str
    detail: str = ""
    doc: str = ""
    sort: str = ""


def _option_lines(entry) -> dict[str, str]:
    """Option name -> its line in ``physml list`` (``chains: int = 64  -- ...``)."""
    lines = entry_text(entry, indent="")[1:]
    return {name: next(x.strip() for x in lines if x.strip().startswith(f"{name}:"))
            for name in entry.schema.model_fields}  # fmt: skip


def option_completions(call: str) -> list[Completion]:
    """The options of the entries called ``call``, with type and default as detail (each
    family's where the entries of several model kinds differ: ``int = 8 [gauge] | ...``)."""
    found: dict[str, list[tuple[str, str, str]]] = {}  # option -> (title, detail, doc)
    for registry, entry in _entries(call):
        for name, line in _option_lines(entry).items():
            detail, _, doc = line[len(name) + 1:].strip().partition("  -- ")
            found.setdefault(name, []).append((f"{registry.noun} {entry.title}", detail, doc))
    out = []
    for name, uses in found.items():
        details = list(dict.fromkeys(d for _, d, _ in uses))
        if len(details) > 1:
            details = [f"{d} [{title.rpartition('[')[2].rstrip(']')}]" for title, d, _ in uses]
        docs = list(dict.fromkeys(f"{doc} ({title})" if doc else f"({title})"
                                  for title, _, doc in uses))  # fmt: skip
        out.append(Completion(name, "option", " | ".join(details), "\n".join(docs), f"0{name}"))
    return out


def word_completions(wanted: tuple[str, ...] = ()) -> list[Completion]:
    """Keywords, run-statement words, registry names, symmetries and functions; the entries
    of the ``wanted`` kinds (registry kinds, or ``symmetries``) first."""
    out: dict[str, Completion] = {}
    for registry in CATALOGUE:
        rank = "0" if registry.kind in wanted else "2"
        for entry in registry:
            old = out.get(entry.name)
            nouns = old.detail.split(", ") if old else []
            detail = ", ".join(dict.fromkeys([*nouns, registry.noun]))
            sort = min(old.sort, rank + entry.name) if old else rank + entry.name
            out[entry.name] = Completion(entry.name, "entry", detail, old.doc if old and
                                         old.doc else entry.doc, sort)  # fmt: skip
    rank = "1" if not wanted else "3"
    for word in vocabulary.grammar_keywords():
        out.setdefault(word, Completion(word, "keyword", "keyword", "", rank + word))
    for word in vocabulary.statement_words():
        out.setdefault(word, Completion(word, "statement", "run statement",
                                        STATEMENTS[word].usage, rank + word))  # fmt: skip
    rank = "0" if "symmetries" in wanted else "4"
    for word, doc in SYMMETRIES.items():
        out.setdefault(word, Completion(word, "symmetry", "symmetry", doc, rank + word))
    for word, function in FUNCTIONS.items():
        out.setdefault(word, Completion(word, "function", function.usage, function.doc,
                                        "4" + word))  # fmt: skip
    return list(out.values())


def completions(text: str, offset: int) -> list[Completion]:
    """What may be typed at ``offset``: an entry's options inside its call before ``=``,
    else every word, the kinds of entry the previous word asks for first."""
    context = context_at(text, offset)
    if context.call is not None and context.option_name:
        options = option_completions(context.call)
        if options:
            return options
    first, previous = context.line_first or "", context.previous or ""
    if first == "learner" and previous == "=":
        return word_completions(("learners",))
    if "symmetry" in (first, previous) or "respecting" in (first, previous):
        return word_completions(("symmetries",))
    return word_completions(WANTS.get(previous) or WANTS.get(first, ()))


def hover_text(text: str, offset: int) -> str | None:
    """The docs of the word under the cursor: an option inside its entry's call (its line of
    ``physml list``), an entry (what ``physml list KIND NAME`` prints), a run statement's
    usage, a symmetry or a function; None for other words."""
    word, start, end = word_at(text, offset)
    if not word:
        return None
    context = context_at(text, start)
    if context.call is not None and context.option_name:
        shown = [f"{entry.title} ({registry.noun}): {_option_lines(entry)[word]}"
                 for registry, entry in _entries(context.call)
                 if word in entry.schema.model_fields]  # fmt: skip
        if shown:
            return "\n".join(shown)
    if word in STATEMENTS and context.line_first is None:
        return f"run statement: {STATEMENTS[word].usage}"
    shown = ["\n".join(registry_text(registry, [entry.name]))
             for registry, entry in _entries(word)]  # fmt: skip
    if shown:
        return "\n".join(dict.fromkeys(shown))
    if word in SYMMETRIES:
        return f"symmetry {word}: {SYMMETRIES[word]}"
    if word in FUNCTIONS:
        return f"{FUNCTIONS[word].usage}: {FUNCTIONS[word].doc}"
    return None


__all__ = ["Completion", "Context", "check_text", "completions", "context_at", "hover_text",
           "offset_of", "word_at"]
