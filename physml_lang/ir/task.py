"""The task IR: what a ``run`` block does, with its options as typed values.

A run block becomes a :class:`TaskIR`: the task kind its statements decide (``sample``,
``train``, ``vmc``, ``exact``, ``evolve``, ...), the model it uses, its sampler, scans, ``let``
values, measured observables and plots, and every other statement with its items evaluated to
typed :data:`Value` s (numbers, strings, bare words, calls such as ``sr(lr = 0.02)``, lists).
Measured observables stay expressions. The runtime validates option values against the schemas
of the entries they name.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from physml_lang.diagnostics import Span

from .expr import Expr


def _span() -> Span | None:
    return field(default=None, compare=False, repr=False, kw_only=True)


@dataclass(frozen=True)
class Word:
    """A bare word used as a value: ``update = checkerboard``, ``visible = Nv``."""

    name: str
    span: Span | None = _span()

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class Option:
    """``name = value``."""

    name: str
    value: Value
    span: Span | None = _span()


@dataclass(frozen=True)
class CallValue:
    """A call used as a value (``cd(1)``, ``adam(lr = 0.01)``), resolved by a registry."""

    name: str
    args: tuple[Value, ...] = ()
    kwargs: tuple[Option, ...] = ()
    span: Span | None = _span()
    name_span: Span | None = _span()

    def options(self) -> dict[str, Value]:
        return {o.name: o.value for o in self.kwargs}


Value = int | float | bool | complex | str | Word | CallValue | tuple


@dataclass(frozen=True)
class ItemIR:
    """One item of a run statement.

    ``kind``: "value" (``iterations 300``), "named" (``final = 2000``), "in" (``T in ...``) or
    "via" (``psi via sr(...)``: ``value`` before the word, ``via`` after it). ``expr`` is the
    item as an expression, kept for statements whose items are observables.
    """

    kind: str
    value: Value | None
    name: str | None = None
    via: Value | None = None
    expr: Expr | None = None
    span: Span | None = _span()
    value_span: Span | None = _span()


@dataclass(frozen=True)
class StatementIR:
    word: str
    items: tuple[ItemIR, ...]
    span: Span | None = _span()
    word_span: Span | None = _span()


@dataclass(frozen=True)
class ModelRefIR:
    """``model Ising(L = 32)``: a model by name and the parameter values the run gives it."""

    name: str
    args: tuple[Option, ...] = ()
    span: Span | None = _span()


@dataclass(frozen=True)
class ScanIR:
    name: str
    values: tuple[int | float, ...]
    span: Span | None = _span()


@dataclass(frozen=True)
class MeasureIR:
    """A measured observable: a built-in (``expr`` None) or a named expression."""

    name: str
    expr: Expr | None = None
    span: Span | None = _span()


@dataclass(frozen=True)
class PlotIR:
    observables: tuple[str, ...]
    x: str | None = None
    marks: tuple[float, ...] = ()
    logx: bool = False
    logy: bool = False
    span: Span | None = _span()
    observable_spans: tuple[Span | None, ...] = field(default=(), compare=False, repr=False,
                                                      kw_only=True)  # fmt: skip
    x_span: Span | None = field(default=None, compare=False, repr=False, kw_only=True)


@dataclass(frozen=True)
class TaskIR:
    """One run block, checked."""

    name: str
    kind: str
    model: ModelRefIR | None = None
    sampler: CallValue | None = None
    scans: tuple[ScanIR, ...] = ()
    lets: tuple[Option, ...] = ()
    measures: tuple[MeasureIR, ...] = ()
    plots: tuple[PlotIR, ...] = ()
    statements: tuple[StatementIR, ...] = ()
    trains: tuple[str, ...] = ()
    span: Span | None = _span()
    name_span: Span | None = _span()

    def statement(self, word: str) -> StatementIR | None:
        """The first statement ``word`` of the run, or None."""
        return next((s for s in self.statements if s.word == word), None)

    def all(self, word: str) -> list[StatementIR]:
        return [s for s in self.statements if s.word == word]
