"""Static plans (torch-free) of the propagation tasks: ``train U, plain via propagation(...)``
of a one-dimensional landscape model with a box.

A plan reads the ``train`` statement (learner names and the objective's options), applies
``--set`` values (a model parameter, or an option of ``propagation``), validates the options
against the catalogue's schemas, checks that every learner is a declared ``rnn`` of the
landscape family with valid options, and derives the model (``program.derive``): it must be a
landscape model of one coordinate in a box. Failures are located: P207 (unknown learner), P413
(a learner of another kind), P431 (the model or a setting cannot be met).
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import Any

from physml_lang.catalogue import Catalogue
from physml_lang.catalogue.propagation import FAMILY, TASK, PropagationOptions, RNNOptions
from physml_lang.check.model import validate_options
from physml_lang.check.tasks import STATEMENTS
from physml_lang.diagnostics import Diagnostic, PhysmlError, Span, did_you_mean
from physml_lang.ir.task import CallValue, TaskIR, Word

from ..tasks import RunState, TaskCheck, option_values, plain
from .parameters import Located, Settable, apply_sets


def _fail(code: str, msg: str, span: Span | None = None, hint: str | None = None):
    raise PhysmlError(Diagnostic(code, msg, span, hint))


@dataclass
class RecurrentPlan:
    """A learner to train: its name, validated ``rnn`` options and where it is declared."""

    name: str
    options: RNNOptions
    span: Span | None


@dataclass
class PropagationPlan:
    """A learn_propagation run: the objective's options, the learners, the model's arguments
    and its box [lower, upper] (one coordinate), and spans to locate run-time failures at."""

    options: PropagationOptions
    learners: list[RecurrentPlan]
    args: dict[str, Any]
    lower: float
    upper: float
    statement_span: Span | None
    option_spans: dict[str, Span | None] = dc_field(default_factory=dict)

    @property
    def rollout_steps(self) -> int:
        o = self.options
        return max(1, round(o.horizon / o.dt))


def _train_statement(run: RunState) -> tuple[list[tuple[str, Span | None]], Located, Span | None]:
    """(learner names with spans, the options of ``propagation(...)``, the statement's span)."""
    stmts = [s for s in run.statements if s.word == "train"]
    if len(stmts) != 1:
        _fail("P431", "a propagation run has one train statement", stmts[1].word_span,
              STATEMENTS["train"].usage)  # fmt: skip
    stmt = stmts[0]
    names: list[tuple[str, Span | None]] = []
    opts: Located = {}
    for k, item in enumerate(stmt.items):
        if item.kind not in ("value", "via") or not isinstance(item.value, Word) or (
                item.kind == "via" and k != len(stmt.items) - 1):  # fmt: skip
            _fail("P104", "train takes learner names and one 'via' method", item.span,
                  "train U, plain via propagation(steps = 2000, dt = 0.05)")  # fmt: skip
        names.append((item.value.name, item.value.span))
        if item.kind == "via" and isinstance(item.via, CallValue):
            if item.via.args:
                _fail("P318", "the options of propagation are given by name", item.via.span)
            for o in item.via.kwargs:
                if o.name in opts:
                    _fail("P201", f"option '{o.name}' is given twice", o.span)
                opts[o.name] = (plain(o.value), o.span)
    return names, opts, stmt.span


def _learners(names: list[tuple[str, Span | None]], program) -> list[RecurrentPlan]:
    decls = program.learners
    out: list[RecurrentPlan] = []
    for name, span in names:
        if name not in decls:
            _fail("P207", f"unknown learner '{name}'", span,
                  did_you_mean(name, set(decls)) or f"declare it: learner {name} = "
                  "rnn(unitary = true)")  # fmt: skip
        d = decls[name]
        if d.of != "learner" or d.call.name != "rnn":
            _fail("P431", f"learner '{name}' = {d.call.name}(...) does not learn a propagator; "
                  "propagation trains rnn learners", span,
                  f"learner {name} = rnn(hidden = 128, unitary = true)")  # fmt: skip
        if d.respecting:
            _fail("P501", f"rnn cannot respect '{d.respecting[0]}'", d.respecting_spans[0],
                  "unitarity is an option: rnn(unitary = true)")  # fmt: skip
        if d.call.args:
            _fail("P318", "learner options are given by name", d.call.span)
        vals = {k.name: plain(k.value) for k in d.call.kwargs}
        spans = {k.name: k.span for k in d.call.kwargs}
        opts = validate_options(RNNOptions, vals, spans, d.span, f"learner {name}")
        if any(p.name == name for p in out):
            _fail("P213", f"learner '{name}' is named twice", span)
        out.append(RecurrentPlan(name, opts, d.span))
    return out


def plan_propagation(run: RunState, program, sets: dict[str, Any] | None = None
                     ) -> PropagationPlan:  # fmt: skip
    """Validate a learn_propagation run with its ``--set`` values; the model is derived
    (torch-free) and must be a 1D landscape model with a box."""
    names, opts, span = _train_statement(run)
    checker = program.checker_for(run.ir)
    params = list(checker.param_names)
    apply_sets(run, dict(sets or {}), params,
               [Settable.options("propagation option", PropagationOptions, opts)])  # fmt: skip
    options = option_values(opts, PropagationOptions, span, "propagation")
    learners = _learners(names, program)
    if run.scans:
        _fail("P431", "a propagation run trains at one model point; it does not scan",
              run.scans[0].span, "run the file once per value with --set NAME=VALUE")  # fmt: skip
    args = {k: v for k, (v, _) in run.model_args.items()}
    aspans = {k: s for k, (_, s) in run.model_args.items()}
    ir = checker.instantiate(args, aspans)
    where = run.model_span or run.span
    if ir.kind != FAMILY:
        _fail("P431", f"propagation needs a landscape model (coordinates x: real in [a, b] and "
              f"a potential); model {ir.name} is a {ir.kind} model", where,
              "declare coordinates x: real in [-8, 8] and potential V = x^2 / 2")  # fmt: skip
    d = program.derive(ir)
    if d.n != 1 or not d.bounded:
        _fail("P431", f"propagation runs on the grid of one coordinate in a box; model {d.name} "
              f"has {d.n} coordinate(s){'' if d.bounded else ', unbounded'}", where,
              "declare coordinates x: real in [-8, 8]")  # fmt: skip
    lower, upper = float(d.lower), float(d.upper)
    spans = {k: s for k, (_, s) in opts.items()}
    box = upper - lower
    h = box / options.points
    if options.width[0] < h:
        _fail("P431", f"packets of width {options.width[0]:g} are not resolved by the grid "
              f"spacing {h:.3g}", spans.get("width") or span,
              f"widths >= {h:.3g}, or more points")  # fmt: skip
    if options.width[1] > box / 8:
        _fail("P431", f"packets of width {options.width[1]:g} do not fit the box "
              f"[{lower:g}, {upper:g}]", spans.get("width") or span,
              f"widths <= {box / 8:.3g}")  # fmt: skip
    k_max = 3.141592653589793 / h
    if options.momentum + 3 / (2 * options.width[0]) > k_max:
        _fail("P431", f"momenta up to {options.momentum:g} (plus 3 standard deviations of the "
              f"packets' momentum spread, 1 / (2 width)) exceed "
              f"the grid's largest wavenumber pi / h = {k_max:.3g}",
              spans.get("momentum") or span, "lower momentum or use more points")  # fmt: skip
    return PropagationPlan(options, learners, args, lower, upper, span, spans)


def check_propagation(task: TaskIR, program) -> None:
    """The static check of a learn_propagation run."""
    plan_propagation(RunState.of(task), program)


def bind_checks(catalogue: Catalogue) -> None:
    """Attach the static checks of this family's tasks."""
    catalogue.tasks.bind_check(TASK, TaskCheck(check_propagation))


__all__ = ["PropagationPlan", "RecurrentPlan", "bind_checks", "check_propagation",
           "plan_propagation"]
