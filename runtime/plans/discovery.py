"""Static plans (torch-free) of the discovery task: ``discover ...`` of a run.

    run kepler { model SolarSystem   discover P via power_law(a), data = planets }
    run orbits { model Kepler   trajectories count = 20, t_span = 60, start = kepler
                 discover period via power_law(semi_major_axis) }
    run motion { model Pendulum   trajectories count = 8   discover equations(trig = true) }

A plan reads the ``discover`` statement (its method, the target and predictors of a law, the
method's options, ``data = NAME``), applies ``--set`` values (a model parameter, a scan
variable, an option of the method or of ``trajectories``), and finds the data source:
``data = NAME`` (or a ``data NAME`` statement) names a table of the run's model; otherwise a
phase-space model with a ``trajectories`` statement is simulated at every scan point, and its
columns are the orbit measures, the scanned variables and the model's parameters. ``discover
conserved(...), data = NAME`` reads a table of events instead: columns NAME and NAME_after pair
up (:func:`before_after_pairs`; a column without its partner is P428 there). Every name
the law uses must be a column (P203 with the columns). Units: a table's columns and the
model's parameters carry them (``physml_lang/check/units.py``); the period of a simulated orbit
is in seconds when the model's parameters carry units.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from dataclasses import field as dc_field
from fractions import Fraction
from typing import Any

from pydantic import BaseModel

from physml_lang.catalogue import Catalogue
from physml_lang.catalogue.discovery import (
    DISCOVER_SCHEMAS,
    LAW_METHODS,
    ORBIT_COLUMNS,
    DiscoverOptions,
)
from physml_lang.catalogue.dynamics import TrajectoryOptions
from physml_lang.check.tasks import STATEMENTS
from physml_lang.check.units import unit_of, unit_text
from physml_lang.diagnostics import Diagnostic, PhysmlError, Span, did_you_mean
from physml_lang.ir.task import CallValue, StatementIR, TaskIR, Word

from ..tasks import RunState, TaskCheck, option_values, plain
from .dynamics import DynamicsStatements, check_start, plain_words, read_trajectories
from .parameters import Located, ModelPoint, Settable, apply_sets, check_scanned

Dims = tuple[Fraction, ...]
SECOND: Dims = tuple(Fraction(int(b == "s")) for b in ("m", "kg", "s", "A", "K", "mol", "cd"))


def _fail(code: str, msg: str, span: Span | None = None, hint: str | None = None):
    raise PhysmlError(Diagnostic(code, msg, span, hint))


def unit_dims(unit: Any) -> Dims | None:
    """The dimensions of a declared unit (an expression of the IR), or None."""
    return None if unit is None else tuple(Fraction(x) for x in unit_of(unit).dims)


@dataclass
class DiscoverPlan:
    """A discover run, validated: the method and its options; for a law the ``target`` and
    ``predictors`` (column names, with spans); the source: ``table`` (a table of the model) or
    the simulated ``trajectories`` (their options, or a file ``load``); the scan points; the
    columns the source provides with their dimensions (None: no unit known) and the model's
    constant parameters with units (the dimensional analysis)."""

    method: str
    options: Any
    method_span: Span | None
    statement_span: Span | None
    option_spans: dict[str, Span | None]
    target: tuple[str, Span | None] | None = None
    predictors: list[tuple[str, Span | None]] = dc_field(default_factory=list)
    table: str | None = None
    table_span: Span | None = None
    trajectories: TrajectoryOptions | None = None
    trajectories_span: Span | None = None  # where the trajectories statement is written
    load: tuple[str, Span | None] | None = None
    points: list[ModelPoint] = dc_field(default_factory=list)
    columns: dict[str, Dims | None] = dc_field(default_factory=dict)
    units: dict[str, str] = dc_field(default_factory=dict)  # column -> its unit as written
    constants: dict[str, Dims] = dc_field(default_factory=dict)
    shape: tuple[int, ...] = ()
    pairs: list[tuple[str, str]] = dc_field(default_factory=list)  # conserved on a table

    @property
    def law(self) -> bool:
        return self.method in LAW_METHODS

    @property
    def source(self) -> str:
        return "table" if self.table is not None else "trajectories"


def _method(stmt: StatementIR) -> tuple[str, CallValue | Word, tuple[str, Span | None] | None]:
    """(method, its call, the target) of ``discover Y via METHOD(...)`` or
    ``discover METHOD(...)``."""
    via = next((it for it in stmt.items if it.kind == "via"), None)
    if via is not None:
        if not isinstance(via.value, Word):
            _fail("P108", "discover names the column it explains: discover P via power_law(a)",
                  via.value_span or via.span, STATEMENTS["discover"].usage)  # fmt: skip
        v = via.via
        target = (via.value.name, via.value.span or via.value_span)
    else:
        v = stmt.items[0].value if stmt.items else None
        target = None
    if not isinstance(v, Word | CallValue) or v.name not in DISCOVER_SCHEMAS:
        _fail("P108", "discover takes a method: power_law, monomial, equations or conserved",
              stmt.span, STATEMENTS["discover"].usage)  # fmt: skip
    return v.name, v, target


def _call_options(v: CallValue | Word, law: bool) -> tuple[list[tuple[str, Span | None]], Located]:
    """The predictors (positional names, laws only) and named options of the method's call."""
    if not isinstance(v, CallValue):
        return [], {}
    preds: list[tuple[str, Span | None]] = []
    for a in v.args:
        if not law or not isinstance(a, Word):
            _fail("P108", f"{v.name} takes its options by name" if not law else
                  f"{v.name} takes the names of its predictors: {v.name}(a, M)",
                  getattr(a, "span", None) or v.span, STATEMENTS["discover"].usage)  # fmt: skip
        if any(a.name == p for p, _ in preds):
            _fail("P213", f"predictor '{a.name}' is named twice", a.span or v.span)
        preds.append((a.name, a.span or v.span))
    opts: Located = {}
    for o in v.kwargs:
        if o.name in opts:
            _fail("P201", f"option '{o.name}' is given twice", o.span)
        opts[o.name] = (plain(o.value), o.span)
    return preds, opts


def _data_item(run: RunState, stmt: StatementIR, method: str) -> tuple[str, Span | None] | None:
    """``data = NAME`` on the discover statement, or a ``data NAME`` statement."""
    found = None
    for it in stmt.items:
        if it.kind == "via" or (it.kind == "value" and it is stmt.items[0]):
            continue
        if it.kind != "named":
            _fail("P108", "discover takes one method and data = NAME", it.span,
                  STATEMENTS["discover"].usage)  # fmt: skip
        if it.name != "data":  # a located P401 naming the statement's options
            option_values({it.name: (plain(it.value), it.span)}, DiscoverOptions, it.span,
                          "discover")  # fmt: skip
        if not isinstance(it.value, Word):
            _fail("P108", "data names a table of the model: data = planets", it.span)
        found = (it.value.name, it.value_span or it.span)
    for s in run.statements:
        if s.word == "data" and found is None:
            v = s.items[0].value if len(s.items) == 1 else None
            if not isinstance(v, Word):
                _fail("P108", "data names a table of the model: data planets", s.span)
            found = (v.name, s.items[0].value_span or s.span)
    return found


AFTER = "_after"  # a table of events: column NAME before, NAME_after after each event
TRAJECTORY_ONLY = ("trig", "inverse_radius", "velocities")  # conserved options of trajectories


def _table_of(ir, name: str):
    return next(d for d in ir.data if d.name == name)


def before_after_pairs(table, span: Span | None) -> list[tuple[str, str]]:
    """The (NAME, NAME_after) column pairs of a table of events, in the table's order: every
    column has its partner (P428 at the column without one; P108 for a table without pairs)."""
    names = {c.name for c in table.columns}
    pairs = []
    for c in table.columns:
        before = c.name[: -len(AFTER)] if c.name.endswith(AFTER) else None
        partner = before if before is not None else c.name + AFTER
        if partner not in names:
            _fail("P428", f"column '{c.name}' of table {table.name} has no partner "
                  f"'{partner}': discover conserved pairs each column NAME (before an event) "
                  "with NAME_after (after it)", c.span or span,
                  f"add the column {partner} or leave {c.name} out")  # fmt: skip
        if before is None:
            pairs.append((c.name, partner))
    if not pairs:
        _fail("P108", f"table {table.name} has no before/after columns for discover conserved",
              span, "name the columns NAME and NAME_after: table(v1 = m / s, v1_after = m / s)")
    return pairs


def _trajectory_options_only(plan: DiscoverPlan) -> None:
    """Options of conserved that need trajectories (angles, radii, velocities): not on a table."""
    for name in TRAJECTORY_ONLY:
        if getattr(plan.options, name):
            _fail("P402", f"option '{name}' of conserved needs trajectories; a table of events "
                  "takes degree and tol", plan.option_spans.get(name) or plan.method_span,
                  f"leave {name} out")  # fmt: skip


def _table_columns(plan: DiscoverPlan, ir, program) -> None:
    """The columns (with dimensions) of the table the plan names, from the model's data."""
    tables = {d.name: d for d in ir.data if getattr(d, "columns", None) is not None}
    name, span = plan.table, plan.table_span
    if name not in tables:
        _fail("P203", f"model {ir.name} has no table '{name}'", span,
              did_you_mean(name, set(tables)) or ("its tables: " + ", ".join(tables) if tables
              else "declare one: data planets: table(a = AU, P = yr) = "
              "load(\"planets.csv\")"))  # fmt: skip
    for c in tables[name].columns:
        plan.columns[c.name] = unit_dims(c.unit)
        plan.units[c.name] = unit_text(c.unit)


def _params(plan: DiscoverPlan, ir, scanned: set[str]) -> None:
    """The model's parameters as columns (the scanned ones vary) and, with units, constants."""
    for p in ir.params:
        dims = unit_dims(getattr(p, "unit", None))
        plan.columns.setdefault(p.name, dims)
        plan.units.setdefault(p.name, unit_text(getattr(p, "unit", None)))
        if dims is not None and p.name not in scanned:
            plan.constants[p.name] = dims


def _check_names(plan: DiscoverPlan, run: RunState) -> None:
    names = list(plan.columns)
    wanted = ([plan.target] if plan.target else []) + plan.predictors
    where = f"table {plan.table}" if plan.table else f"the trajectories of run {run.name}"
    for name, span in wanted:
        if name not in plan.columns:
            _fail("P203", f"'{name}' is not a column of {where}", span,
                  did_you_mean(name, set(names)) or "columns: " + ", ".join(names))  # fmt: skip
    if plan.target and any(p == plan.target[0] for p, _ in plan.predictors):
        _fail("P108", f"'{plan.target[0]}' is both the target and a predictor",
              plan.target[1])  # fmt: skip


def plan_discover(run: RunState, program, sets: dict[str, Any] | None = None,
                  realise=None) -> DiscoverPlan:  # fmt: skip
    """Validate a discover run with its ``--set`` values (module docstring). ``realise``: how
    the model of a scan point is realised (``program.derive`` for a check, the default)."""
    stmts = [s for s in run.statements if s.word == "discover"]
    if len(stmts) != 1:
        _fail("P201", f"a run has one '{stmts[1].word}' statement", stmts[1].word_span)
    stmt = stmts[0]
    method, call, target = _method(stmt)
    law = method in LAW_METHODS
    preds, mopts = _call_options(call, law)
    if law and target is None:
        _fail("P108", f"{method} explains a column: discover P via {method}(a)", stmt.span,
              STATEMENTS["discover"].usage)  # fmt: skip
    if not law and target is not None:
        _fail("P108", f"{method} needs no target: discover {method}(...)", target[1])
    schema: type[BaseModel] = DISCOVER_SCHEMAS[method]
    dyn = DynamicsStatements(run.ir)
    topts: Located = {k: (plain_words(v), s) for k, (v, s) in dyn.trajectories.items()}
    topts.setdefault("noise", (0.0, None))  # discovery sees exact states unless told otherwise
    checker = program.checker_for(run.ir)
    params = list(checker.param_names)
    apply_sets(run, dict(sets or {}), params,
               [Settable.options(f"{method} option", schema, mopts),
                Settable.options("trajectories option", TrajectoryOptions, topts)])  # fmt: skip
    options = option_values(mopts, schema, call.span, method)
    plan = DiscoverPlan(method, options, getattr(call, "name_span", None) or call.span,
                        stmt.span, {k: s for k, (_, s) in mopts.items()}, target,
                        preds)  # fmt: skip
    data = _data_item(run, stmt, method)
    check_scanned(run, checker, params)
    realise = realise or program.derive
    args = {k: v for k, (v, _) in run.model_args.items()}
    aspans = {k: s for k, (_, s) in run.model_args.items()}
    scanned = {s.name for s in run.scans}
    for combo in itertools.product(*[s.values for s in run.scans]) or [()]:
        a, sp = dict(args), dict(aspans)
        for s, v in zip(run.scans, combo, strict=True):
            a[s.name], sp[s.name] = v, s.span
        plan.points.append(ModelPoint({s.name: v for s, v in zip(run.scans, combo,
                                                                    strict=True)}, a))  # fmt: skip
    ir = checker.instantiate(plan.points[0].args, {})
    if data is not None:
        if not law and method != "conserved":
            _fail("P108", f"{method} reads trajectories, not a table", data[1],
                  "give the model a trajectories statement")  # fmt: skip
        if run.scans:
            _fail("P108", "a table or loaded trajectories are one data set: no scan",
                  run.scans[0].span)  # fmt: skip
        plan.table, plan.table_span = data
        _table_columns(plan, ir, program)
        if law:
            _params(plan, ir, scanned)
        else:
            _trajectory_options_only(plan)
            plan.pairs = before_after_pairs(_table_of(ir, plan.table), plan.table_span)
        realise(ir)  # the table is loaded (a missing file is a located P600 in check too)
    else:
        if ir.kind != "phase_space" or dyn.trajectories_span is None:
            hint = ("add data = NAME (a table of the model)" if ir.kind != "phase_space" else
                    "add a trajectories statement: trajectories count = 20, t_span = 20")
            _fail("P108", f"discover reads a table (data = NAME) or the trajectories of a "
                  f"phase-space model; run {run.name} has neither", stmt.span, hint)  # fmt: skip
        plan.load = dyn.trajectories_load
        if plan.load is None:
            plan.trajectories_span = dyn.trajectories_span
            plan.trajectories = option_values(topts, TrajectoryOptions, dyn.trajectories_span,
                                              "trajectories")  # fmt: skip
        units = any(getattr(p, "unit", None) is not None for p in ir.params)
        for c in ORBIT_COLUMNS:
            plan.columns[c] = SECOND if (c == "period" and units) else None
            plan.units[c] = "s" if (c == "period" and units) else ""
        _params(plan, ir, scanned)
        for pt in plan.points:
            d = realise(checker.instantiate(pt.args, {}))
            plan.shape = tuple(d.shape)
        if plan.load is not None and run.scans:
            _fail("P108", "a table or loaded trajectories are one data set: no scan",
                  run.scans[0].span)  # fmt: skip
        if plan.trajectories is not None:
            check_start(plan.trajectories.start, plan.shape,
                        topts.get("start", (None, run.span))[1])  # fmt: skip
    if law:
        if not preds:
            if plan.table is None:
                _fail("P108", f"name the predictors of {target[0]}: discover {target[0]} via "
                      f"{method}(semi_major_axis)", plan.method_span)  # fmt: skip
            plan.predictors = [(c, plan.method_span) for c in plan.columns
                               if c != target[0] and c in _table_names(ir, plan.table)]  # fmt: skip
        _check_names(plan, run)
    return plan


def _table_names(ir, table: str) -> list[str]:
    return [c.name for d in ir.data if d.name == table for c in d.columns or ()]


def check_discover(task: TaskIR, program) -> None:
    """The static check of a discover run."""
    plan = plan_discover(RunState.of(task), program)
    if plan.load is not None:
        read_trajectories(plan.load, max(1, _size(plan.shape)), program)


def _size(shape: tuple[int, ...]) -> int:
    n = 1
    for k in shape:
        n *= k
    return n


def bind_checks(catalogue: Catalogue) -> None:
    """Attach the static checks of this family's tasks."""
    catalogue.tasks.bind_check("discover", TaskCheck(check_discover))


__all__ = ["AFTER", "DiscoverPlan", "before_after_pairs", "bind_checks",
           "check_discover", "plan_discover", "unit_dims", "unit_text"]  # fmt: skip
