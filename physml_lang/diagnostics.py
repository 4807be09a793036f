"""Located diagnostics: ``FILE:LINE:COL: error[CODE]: message``, the source line, a caret, a hint.

Every user mistake anywhere in the pipeline (syntax, names, types, options, symmetry checks,
data files, numerical blow-ups during a run) becomes a :class:`Diagnostic` raised inside a
:class:`PhysmlError`; the command line renders it and exits non-zero, never with a traceback.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field, replace
from difflib import get_close_matches


@dataclass(frozen=True, eq=False)
class Source:
    """A named text: a file on disk, a stdlib module, or a string given to ``compile()``.

    ``root`` and ``allow_outside`` say which files the text may name (``check/paths.py``): the
    project tree (None: the folder of this file, or the working directory for a string) and
    whether files outside it are allowed (``--allow-outside``)."""

    name: str
    text: str
    root: str | None = None
    allow_outside: bool = False

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
    "P103": "malformed run statement (model, sampler, scan, let, measure, plot, options)",
    "P104": "malformed training statement (train, recall, regress, data, params)",
    "P105": "malformed VMC or exact statement (optimize, pretrain, samples, reference, exact)",
    "P106": "malformed --set argument",
    "P107": "malformed evolve or optimise statement (its method, its options)",
    "P108": "malformed discover statement (its method, its target and predictors, its data)",
    "P109": "malformed classify, invariant or locate statement (its method, its learners)",
    "P200": "unknown name",
    "P201": "duplicate name or statement",
    "P202": "wrong use of a name",
    "P203": "unknown catalogue entry, run statement or method",
    "P204": "unknown model, run or declaration",
    "P205": "not a parameter of the model (scan, let, --set, model arguments)",
    "P206": "unknown sampler, integrator, optimiser or schedule",
    "P207": "unknown learner",
    "P208": "unknown observable",
    "P209": "unknown lattice, graph, structure or site set",
    "P210": "unknown symmetry",
    "P211": "conflicting statements",
    "P212": "a unit or a table column that is not right: an unknown unit, units whose dimensions do "
    "not fit, a column named twice",
    "P213": "a learner or a predictor named twice in one statement",
    "P300": "type error",
    "P301": "domain error",
    "P302": "wrong number of indices",
    "P303": "wrong type of value (a number or a file name expected)",
    "P304": "not an integer where one is needed",
    "P305": "not allowed in an energy or expression",
    "P306": "not allowed in a Hamiltonian",
    "P307": "not allowed in a gauge action",
    "P308": "cannot be measured",
    "P309": "index used as a number, or its range unknown",
    "P310": "wrong kind of index",
    "P311": "cannot be indexed",
    "P312": "matrix, operator or complex value where a real number is needed",
    "P313": "not differentiable",
    "P314": "missing index",
    "P315": "a sum binds the wrong number of names",
    "P316": "wrong number of arguments",
    "P317": "wrong arguments of a lattice, graph, domain or phase space",
    "P318": "options and model parameters are given by name",
    "P319": "shapes do not match",
    "P320": "malformed array or definition (indices, diagonal)",
    "P321": "model parameter of the wrong type",
    "P322": "wrong type of value in a run statement",
    "P323": "index count does not fit where it lives (sites, bonds, links)",
    "P400": "impossible value",
    "P401": "unknown option",
    "P402": "invalid option value",
    "P403": "renamed option (deprecated name)",
    "P404": "non-finite number",
    "P405": "value out of range (size, count, index, direction, spread)",
    "P406": "run setting out of range (temperature, step, threads, loop size, scan)",
    "P407": "too large (sites, array entries, terms, qubits, exponents)",
    "P408": "the lattice or graph has no such structure (neighbour shell, bonds, pairs)",
    "P409": "not enough memory",
    "P410": "expression too large to derive",
    "P411": "incomplete declaration (no default, no lattice, where it lives, what a sum runs over)",
    "P412": "the run lacks what its task needs (model, temperature, learner, initial values)",
    "P413": "the task or learner does not apply to this model",
    "P414": "observable not defined for this model",
    "P415": "the model's kind requires another form (gauge, quantum)",
    "P416": "device not available",
    "P417": "cannot evaluate (division by zero, overflow)",
    "P418": "definition refers to itself",
    "P419": "a quantity is zero or does not depend on its variables",
    "P420": "nothing to derive: no energy, action, Hamiltonian or model declared",
    "P421": "a count no run can reach (sweeps, steps, iterations, samples beyond 2^40)",
    "P422": "a generative run needs a field it can learn (one discrete field; flows: one real field)",
    "P423": "no exact reference is known for this model",
    "P424": "a generative learner's architecture or schedule does not fit the model",
    "P425": "a Hopfield phases run's setting cannot be met",
    "P426": "a landscape model or run cannot be set up as declared (bounds, too many "
            "coordinates, a grid needs a box, an unstable explicit step, a grid too large)",
    "P427": "the annealers of spin models need one Ising spin field and an energy quadratic in it",
    "P428": "the data cannot support the fit: values under a logarithm not positive, fewer points "
    "than parameters, a constant feature or column",
    "P429": "a classify phases run's setting cannot be met (model, sizes, temperatures, windows)",
    "P430": "an invariant or locate run's setting cannot be met (classes, grids, image sizes)",
    "P431": "a learned-dynamics setting cannot be met (propagation grid and packets, pairwise "
    "forces' dimensions)",
    "P432": "an active-learning optimise run's setting cannot be met (warm start, experiment, "
    "noise)",
    "P500": "symmetry does not hold",
    "P501": "symmetry not supported",
    "P502": "sampler not applicable",
    "P503": "learner not applicable",
    "P504": "the energy or action does not have the form the update needs",
    "P505": "a learner is asked to respect a symmetry the model or its lattice does not have",
    "P600": "file not found",
    "P601": "bad data file",
    "P602": "bad checkpoint",
    "P603": "not a model file",
    "P604": "cannot write output",
    "P605": "file outside the project tree",
    "P606": "not a text file",
    "P607": "bad edge list file",
    "P608": "bad parameter file",
    "P609": "bad trajectory file",
    "P700": "numerical failure during a run",
    "P701": "interrupted",
    "P702": "chains disagree (R-hat): results may be biased",
    "P703": "a sampler kernel asked for could not run: the torch path ran",
    "P704": "a learned sampler failed: training diverged, or its density or samples are not finite",
    "P705": "an evolution failed: a walker population exploded or died out, a potential is "
            "unbounded below, a wavefunction or density became non-finite",
    "P706": "a run on several processes failed: a process died or stalled past the collective "
            "timeout, or the process settings are impossible",
    "P800": "unsupported construct",
    "P801": "nested too deeply",
    "P802": "not a sum of local terms",
    "P803": "function or sum not supported here",
    "P804": "model form not supported",
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


class Poisoned(Exception):
    """A check skipped because it uses a name whose declaration already failed: that failure
    is reported where it happened, and the statements that depend on it say nothing more
    (an :class:`ErrorCollector` swallows this silently)."""


class ErrorCollector:
    """Collects the located errors of independent checks (models, data declarations, learners,
    runs, and the statements inside a model or a run): ``with collector:`` around each;
    ``raise_if_any()`` at the end raises them together in source order, the same error
    reached twice once, at most MAX_ERRORS. A :class:`Poisoned` check is skipped silently."""

    def __init__(self) -> None:
        self.diagnostics: list[Diagnostic] = []

    def __enter__(self) -> ErrorCollector:
        return self

    def __exit__(self, kind, exc, tb) -> bool:
        if isinstance(exc, Poisoned):
            return True
        if isinstance(exc, PhysmlError) and not isinstance(exc, RunInterrupted):
            # a nested collector's error carries all it collected, not only what it showed
            for d in getattr(exc, "collected", exc.diagnostics):
                if d.severity == "error" and not any(_same(d, e) for e in self.diagnostics):
                    self.diagnostics.append(d)
            return True
        return False

    def raise_if_any(self) -> None:
        """Raise the collected errors (sorted by file and position; a note on the last one
        shown counts those left out), or nothing when there are none."""
        if not self.diagnostics:
            return
        ordered = _source_order(self.diagnostics)
        shown = ordered[:MAX_ERRORS]
        if len(ordered) > MAX_ERRORS:
            note = f"{len(ordered) - MAX_ERRORS} more error(s) not shown: fix these first"
            shown[-1] = replace(shown[-1], notes=[*shown[-1].notes, note])
        error = PhysmlError(shown)
        error.collected = ordered  # type: ignore[attr-defined]
        raise error


def _source_order(diagnostics: list[Diagnostic]) -> list[Diagnostic]:
    """Located diagnostics by file (in the order files first appear) and position; the
    unlocated ones after them, in the order they came."""
    rank: dict[str, int] = {}
    for d in diagnostics:
        if d.span is not None:
            rank.setdefault(d.span.source.name, len(rank))

    def key(d: Diagnostic) -> tuple[int, int, int]:
        if d.span is None:
            return (len(rank), 0, 0)
        return (rank[d.span.source.name], d.span.line, d.span.column)

    return sorted(diagnostics, key=key)


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
