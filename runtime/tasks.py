"""Tasks: what a ``run`` block does, as implementations of the catalogue's task entries.

A task has a static check (everything ``run`` would reject, without running and without
torch), bound by ``bind_check``, and a ``run`` returning a
:class:`~physml_lang.runtime.sample_task.RunResult`. Task entries are declared in
the catalogue (``physml_lang/catalogue/``), one per task word and, where model kinds do a task
differently (``sample`` of spins, links, fields, Boltzmann machines), one per kind (its
``family``). Each capability's ``bind(catalogue)`` attaches its :class:`Task` objects; the top
layer calls them (nothing registers on import).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from physml_lang.catalogue import Catalogue
from physml_lang.catalogue.registry import Entry
from physml_lang.check.model import plain, validate_options
from physml_lang.diagnostics import Diagnostic, ErrorCollector, PhysmlError, Span, did_you_mean
from physml_lang.ir.task import CallValue, MeasureIR, PlotIR, TaskIR, Word


@dataclass(frozen=True)
class Task:
    """The implementation of a task entry: ``run(run, program, *, sets, device, seed, out,
    progress)`` returning a :class:`~physml_lang.runtime.sample_task.RunResult`."""

    run: Callable


@dataclass(frozen=True)
class TaskCheck:
    """The static side of a task entry, torch-free: ``check(run, program)`` raises what ``run``
    would reject, without running. ``applies(run, program)``, when given, narrows a kind's
    task to the runs it does; others fall back to the entry shared by every kind (a diagnostic
    raised by ``applies`` means "no": the shared task's check reports it)."""

    check: Callable  # (run: TaskIR, program) -> None
    applies: Callable | None = None


def resolve_task(run: TaskIR, program, catalogue: Catalogue) -> Entry:
    """The task entry that executes ``run``: its model kind's own, or the one shared by every
    kind. Reads static checks only, so ``physml check`` resolves tasks without torch."""
    family = program.checker_for(run).kind
    entry = catalogue.tasks.get(run.kind, family)
    if entry is not None and entry.family:
        narrow = entry.static_check.applies if entry.static_check is not None else None
        try:
            applies = narrow is None or narrow(run, program)
        except PhysmlError:
            applies = False
        if applies:
            return entry
    return catalogue.tasks.lookup(run.kind, span=run.span)


def run_columns(run: TaskIR, entry: Entry) -> list[str] | None:
    """The columns of the rows ``run`` writes, as its task entry declares them (the
    catalogue's :class:`~physml_lang.catalogue.columns.Columns`); None for a task without
    rows."""
    columns = entry.facts.columns
    if columns is None:
        return None
    return columns.of([s.name for s in run.scans], [o.name for o in run.lets],
                      [m.name for m in run.measures])  # fmt: skip


def check_plots(run: TaskIR, entry: Entry) -> None:
    """Every name a ``plot`` of ``run`` draws (its observables and ``x``) is a column the run
    writes: a located P208 for each that is not, with the close names or the columns."""
    columns = run_columns(run, entry)
    if columns is None or not run.plots:
        return
    # a task whose measured names are columns: the hint can say what to measure
    measures = entry.facts.columns.measures
    measured = sorted(m.name for m in run.measures) if measures else []
    verb = "measure" if measures else "write"
    errors = ErrorCollector()
    for p in run.plots:
        spans = p.observable_spans or (None,) * len(p.observables)
        named = [*zip(p.observables, spans), *([(p.x, p.x_span)] if p.x else [])]
        for name, span in named:
            if name in columns:
                continue
            if measured:
                fallback = f"measure it too: measure {', '.join(measured)}, {name}"
            else:
                fallback = f"run {run.name} writes " + ", ".join(columns)
            with errors:
                raise PhysmlError(Diagnostic(
                    "P208", f"plot names '{name}', which run {run.name} does not {verb}",
                    span or p.span, did_you_mean(name, columns) or fallback))  # fmt: skip
    errors.raise_if_any()


# ---------------------------------------------------------------- a task being prepared


@dataclass
class Scan:
    name: str
    values: list
    span: Span | None


@dataclass
class RunState:
    """A task's values in mutable form while ``--set`` overrides and scans are resolved.

    ``model_args``, ``lets`` and ``sampler_options`` map a name to (value, span of its source).
    """

    ir: TaskIR
    name: str
    span: Span | None
    task: str
    model: str | None = None
    model_span: Span | None = None
    model_args: dict[str, tuple[Any, Span | None]] = field(default_factory=dict)
    sampler: str | None = None
    sampler_span: Span | None = None
    sampler_options: dict[str, tuple[Any, Span | None]] = field(default_factory=dict)
    scans: list[Scan] = field(default_factory=list)
    lets: dict[str, tuple[Any, Span | None]] = field(default_factory=dict)
    measures: tuple[MeasureIR, ...] = ()
    plots: tuple[PlotIR, ...] = ()
    trains: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, task: TaskIR) -> RunState:
        run = cls(task, task.name, task.span, task.kind, measures=task.measures,
                  plots=task.plots, trains=list(task.trains))  # fmt: skip
        if task.model is not None:
            run.model, run.model_span = task.model.name, task.model.span
            run.model_args = {o.name: (plain(o.value), o.span) for o in task.model.args}
        if task.sampler is not None:
            run.sampler, run.sampler_span = task.sampler.name, task.sampler.name_span
            run.sampler_options = {o.name: (plain(o.value), o.span) for o in task.sampler.kwargs}
        run.scans = [Scan(s.name, list(s.values), s.span) for s in task.scans]
        run.lets = {o.name: (plain(o.value), o.span) for o in task.lets}
        return run

    @property
    def statements(self):
        return self.ir.statements


def option_values(options: dict[str, tuple[Any, Span | None]], schema, where: Span | None,
                  what: str):  # fmt: skip
    """Validate run options (value, span) pairs against a schema: every bad option at once."""
    values = {k: v for k, (v, _) in options.items() if not isinstance(v, CallValue)}
    spans = {k: s for k, (_, s) in options.items() if k in values}
    errors = ErrorCollector()
    for k, (v, span) in options.items():
        if isinstance(v, CallValue):
            with errors:
                raise PhysmlError(Diagnostic("P402", f"option '{k}' of {what} must be a value, "
                                             "not a call", span))  # fmt: skip
    with errors:
        validated = validate_options(schema, values, spans, where, what)
    errors.raise_if_any()
    return validated


__all__ = ["Task", "TaskCheck", "check_plots", "resolve_task", "run_columns",
           "RunState", "Scan", "option_values", "plain", "Word"]
