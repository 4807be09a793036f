"""Located diagnostics: ``FILE:LINE:COL: error[CODE]: message``, the source line, a caret, a hint.

Every user mistake anywhere in the pipeline (syntax, names, types, options, symmetry checks,
data files, numerical blow-ups during a run) becomes a :class:`Diagnostic` raised inside a
:class:`PhysmlError`; the command line renders it and exits non-zero, never with a traceback.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from difflib import get_close_matches


@dataclass(frozen=True, eq=False)
class Source:
    """A named text: a file on disk, a stdlib module, or a string given to ``compile()``."""

    name: str
    text: str

    def line(self, number: int) -> str:
        lines = self.text.splitlines()
        return lines[number - 1] if 1 <= number <= len(lines) else ""


@dataclass(frozen=True)
class Span:
    """A region of a source: 1-based line and column of its start and end (end exclusive)."""

    source: Source
    line: int
    column: int
    end_line: int
    end_column: int

    def __repr__(self) -> str:
        return f"{self.source.name}:{self.line}:{self.column}"


# Codes, by stage. Stable: tests and editors key on them.
CODES = {
    "P100": "syntax error",
    "P101": "unexpected end of file",
    "P102": "unexpected character",
    "P200": "unknown name",
    "P201": "duplicate name",
    "P202": "wrong use of a name",
    "P300": "type error",
    "P301": "domain error",
    "P302": "wrong number of indices or arguments",
    "P400": "impossible value",
    "P401": "unknown option",
    "P402": "invalid option value",
    "P403": "renamed option (deprecated name)",
    "P500": "symmetry does not hold",
    "P501": "symmetry not supported",
    "P502": "sampler not applicable",
    "P600": "file not found",
    "P601": "bad data file",
    "P602": "bad checkpoint",
    "P603": "not a model file",
    "P604": "cannot write output",
    "P700": "numerical failure during a run",
    "P701": "interrupted",
    "P702": "chains disagree (R-hat): results may be biased",
    "P800": "unsupported construct",
}


@dataclass
class Diagnostic:
    """One located message. ``span`` may be None for errors about the whole run or file."""

    code: str
    message: str
    span: Span | None = None
    hint: str | None = None
    severity: str = "error"
    notes: list[str] = field(default_factory=list)

    def render(self) -> str:
        where = (
            f"{clip(self.span.source.name, MAX_QUOTE)}:{self.span.line}:{self.span.column}: "
            if self.span else ""
        )  # fmt: skip
        out = [f"{where}{self.severity}[{self.code}]: {clip(self.message, MAX_MESSAGE)}"]
        if self.span is not None:
            text = self.span.source.line(self.span.line)
            if text:
                number = str(self.span.line)
                gutter = " " * len(number)
                width = (
                    self.span.end_column - self.span.column
                    if self.span.end_line == self.span.line
                    else len(text) - self.span.column + 1
                )
                text, column, width = _window(text, self.span.column, max(1, width))
                caret = " " * (column - 1) + "^" * width
                out += [f" {gutter} |", f" {number} | {text}", f" {gutter} | {caret}"]
        for note in self.notes:
            out.append(f"  = note: {clip(note, MAX_MESSAGE)}")
        if self.hint:
            out.append(f"  = hint: {clip(self.hint, MAX_MESSAGE)}")
        return "\n".join(out)

    def as_dict(self) -> dict:
        span = None
        if self.span is not None:
            span = {
                "file": self.span.source.name,
                "line": self.span.line,
                "column": self.span.column,
                "end_line": self.span.end_line,
                "end_column": self.span.end_column,
            }
        return {
            "severity": self.severity,
            "code": self.code,
            "message": clip(self.message, MAX_MESSAGE),
            "span": span,
            "hint": clip(self.hint, MAX_MESSAGE) if self.hint else self.hint,
            "notes": [clip(n, MAX_MESSAGE) for n in self.notes],
        }


MAX_QUOTE = 100  # characters of a file name shown
MAX_MESSAGE = 400  # characters of a message, note or hint (user text inside is quoted whole)
MAX_LINE = 120  # characters of a source line shown around the caret


def clip(text: str, limit: int) -> str:
    """Long text with its middle elided: a 5 MB token never makes a 15 MB message."""
    if len(text) <= limit:
        return text
    half = (limit - 5) // 2
    return f"{text[:half]} ... {text[-half:]}"


def _window(line: str, column: int, width: int) -> tuple[str, int, int]:
    """A source line cut to ~MAX_LINE characters around the caret: (text, column, width)."""
    if len(line) <= MAX_LINE:
        return line, column, width
    width = min(width, MAX_LINE // 2)
    start = max(0, column - 1 - MAX_LINE // 4)
    piece = line[start:start + MAX_LINE]
    prefix = "..." if start > 0 else ""
    suffix = "..." if start + MAX_LINE < len(line) else ""
    return prefix + piece + suffix, column - start + len(prefix), width


class PhysmlError(Exception):
    """A user-facing failure carrying one or more diagnostics."""

    def __init__(self, diagnostics: Diagnostic | list[Diagnostic]):
        self.diagnostics = diagnostics if isinstance(diagnostics, list) else [diagnostics]
        super().__init__(self.render())

    def render(self) -> str:
        return "\n\n".join(d.render() for d in self.diagnostics)

    def as_json(self) -> str:
        return json.dumps({"diagnostics": [d.as_dict() for d in self.diagnostics]}, indent=2)


MAX_ERRORS = 20  # errors reported at once by ``check``


class ErrorCollector:
    """Collects the located errors of independent checks (one per model, data declaration,
    learner or run): ``with collector:`` around each; ``raise_if_any()`` at the end raises
    them together, the same error reached twice once, at most MAX_ERRORS."""

    def __init__(self) -> None:
        self.diagnostics: list[Diagnostic] = []

    def __enter__(self) -> ErrorCollector:
        return self

    def __exit__(self, kind, exc, tb) -> bool:
        if isinstance(exc, PhysmlError) and not isinstance(exc, RunInterrupted):
            for d in exc.diagnostics:
                if d.severity == "error" and not any(_same(d, e) for e in self.diagnostics):
                    self.diagnostics.append(d)
            return True
        return False

    def raise_if_any(self) -> None:
        if not self.diagnostics:
            return
        shown = self.diagnostics[:MAX_ERRORS]
        if len(self.diagnostics) > MAX_ERRORS:
            shown[-1].notes.append(f"{len(self.diagnostics) - MAX_ERRORS} more error(s) not "
                                   "shown: fix these first")  # fmt: skip
        raise PhysmlError(shown)


def _same(a: Diagnostic, b: Diagnostic) -> bool:
    return (a.code, a.message, repr(a.span)) == (b.code, b.message, repr(b.span))


class PhysmlWarning(UserWarning):
    """A warning diagnostic raised through :mod:`warnings` (the command prints it located)."""

    def __init__(self, diagnostic: Diagnostic | str):
        # rebuilt from its text alone where warnings cross processes (pytest-xdist)
        self.diagnostic = diagnostic if isinstance(diagnostic, Diagnostic) else None
        super().__init__(diagnostic.render() if isinstance(diagnostic, Diagnostic) else diagnostic)


def warn(diagnostic: Diagnostic) -> None:
    """Report a located warning (e.g. a deprecated option name) without stopping."""
    diagnostic.severity = "warning"
    warnings.warn(PhysmlWarning(diagnostic), stacklevel=2)


class RunInterrupted(PhysmlError, KeyboardInterrupt):
    """Ctrl-C during a run, with a P701 saying what was kept on disk: a user-facing error for
    the command, still a KeyboardInterrupt for Python code that stops on one."""


def error(
    code: str, message: str, span: Span | None = None, hint: str | None = None
) -> PhysmlError:
    """Shorthand: ``raise error("P200", "unknown name 'x'", span, hint)``."""
    return PhysmlError(Diagnostic(code, message, span, hint))


def did_you_mean(name: str, candidates: list[str] | set[str]) -> str | None:
    """A 'did you mean' hint from the closest known names, or None."""
    close = get_close_matches(name, sorted(candidates), n=3, cutoff=0.6)
    if not close:
        return None
    return "did you mean " + " or ".join(f"'{c}'" for c in close) + "?"


def render_warning(d: dict) -> str:
    """One line (and hint) for a warning stored in summary.json as :meth:`Diagnostic.as_dict`."""
    span = d.get("span") or {}
    where = f"{span['file']}:{span['line']}:{span['column']}: " if span else ""
    out = f"{where}{d.get('severity', 'warning')}[{d['code']}]: {d['message']}"
    return out + (f"\n  = hint: {d['hint']}" if d.get("hint") else "")
