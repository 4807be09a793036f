"""Static plans (torch-free) of the landscape tasks: ``evolve METHOD(...)`` of a landscape model
(schrodinger, fokker_planck, langevin, taylor_diffusion, dmc) and ``optimise f via METHOD(...)``.

    run ground { model DoubleWell   evolve imaginary_time(points = 256, dtau = 0.01) }
    run search { model Rastrigin(d = 10)   optimise f via mqhoa(k = 20), evaluations = 1e5 }

A plan reads the statement, applies ``--set`` values (a model parameter, a scan variable, or an
option of the method or of ``optimise``), validates the options against the catalogue's schemas,
and derives the model of every scan point (``program.derive``): it must be a landscape model,
and the method must fit it -- a grid needs a box (``coordinates x: real in [-8, 8]``) and at
most 3 dimensions, the explicit scheme of the seed's eq. (16) needs D dtau / dx^2 <= 1/2, the
drift of Langevin, Fokker-Planck and importance-sampled DMC needs a differentiable potential.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import Any

from pydantic import BaseModel

from physml_lang.catalogue import Catalogue
from physml_lang.catalogue.landscape import (
    ACTIVE_METHODS,
    EVOLVE_SCHEMAS,
    EVOLVE_TASKS,
    MAX_GRID_POINTS,
    OPTIMISER_SCHEMAS,
    SPIN_OPTIMISER_SCHEMAS,
    SPINS,
    OptimiseOptions,
)
from physml_lang.check.tasks import STATEMENTS
from physml_lang.diagnostics import Diagnostic, PhysmlError, Span, did_you_mean
from physml_lang.ir.task import CallValue, TaskIR, Word

from ..tasks import RunState, TaskCheck, option_values, plain
from .parameters import Located, ModelPoint, Settable, apply_sets, check_scanned

GRID_METHODS = ("imaginary_time", "real_time", "fokker_planck", "taylor_diffusion")
DRIFT_METHODS = ("fokker_planck", "langevin", "taylor_diffusion")


def _fail(code: str, msg: str, span: Span | None = None, hint: str | None = None):
    raise PhysmlError(Diagnostic(code, msg, span, hint))


@dataclass
class LandscapePlan:
    """A landscape run, validated: ``method`` (an evolution or an optimiser) with its options,
    ``optimise`` the options of an optimise statement (None for an evolution), ``objective``
    the name the optimise statement minimises, the scan ``points`` and the spans to locate
    run-time failures at."""

    task: str
    method: str
    options: Any
    method_span: Span | None
    statement_span: Span | None
    option_spans: dict[str, Span | None]
    optimise: OptimiseOptions | None = None
    objective: str | None = None
    points: list[ModelPoint] = dc_field(default_factory=list)
    spins: bool = False  # an annealer of an Ising spin model (a lattice model)
    field: str = ""
    size: int = 0  # the most coordinates (or spins) of any scan point
    warm_start: str | None = None  # active learning: the simulated model that pre-trains
    warm_ir: Any = None  # its model IR (default parameters)

    def span_of(self, option: str) -> Span | None:
        return self.option_spans.get(option) or self.method_span


def _method_call(stmt, what: str) -> tuple[str, Located, Span | None]:
    """The method of ``evolve METHOD(...)`` (first item) or ``optimise f via METHOD(...)``."""
    item = stmt.items[0] if what == "evolve" else next(
        (it for it in stmt.items if it.kind == "via"), None)  # fmt: skip
    v = (item.value if what == "evolve" else item.via) if item is not None else None
    if not isinstance(v, Word | CallValue):
        _fail("P107", f"{what} takes a method", stmt.span, STATEMENTS[stmt.word].usage)
    opts: Located = {}
    if isinstance(v, CallValue):
        if v.args:
            _fail("P318", f"the options of {v.name} are given by name: {v.name}(steps = 1000)",
                  v.span)  # fmt: skip
        for o in v.kwargs:
            if o.name in opts:
                _fail("P201", f"option '{o.name}' is given twice", o.span)
            opts[o.name] = (plain(o.value), o.span)
    return v.name, opts, getattr(v, "name_span", None) or v.span


def plan_landscape(run: RunState, program, sets: dict[str, Any] | None = None) -> LandscapePlan:
    """Validate an evolve or optimise run of a landscape model with its ``--set`` values; the
    model of every scan point is derived (torch-free) and checked against the method."""
    word = "optimise" if run.task == "optimise" else "evolve"
    stmt = next(s for s in run.statements if s.word == word)
    method, mopts, mspan = _method_call(stmt, word)
    checker = program.checker_for(run.ir)
    spins = word == "optimise" and checker.kind == SPINS
    schemas = EVOLVE_SCHEMAS if word == "evolve" else (
        SPIN_OPTIMISER_SCHEMAS if spins else OPTIMISER_SCHEMAS)  # fmt: skip
    if method not in schemas:
        _fail("P427", f"{method} does not minimise a {checker.kind} model", mspan,
              "spin models: optimise E via simulated_annealing(...) or population_annealing"
              "(...); MQHOA needs continuous coordinates")  # fmt: skip
    schema: type[BaseModel] = schemas[method]
    groups = [Settable.options(f"{method} option", schema, mopts)]
    popts: Located = {}
    objective = None
    if word == "evolve":
        if len(stmt.items) > 1:
            _fail("P107", "evolve takes one method with its options: evolve "
                  f"{method}(steps = 1000)", stmt.items[1].span)  # fmt: skip
    else:
        for it in stmt.items:
            if it.kind == "via":
                if not isinstance(it.value, Word):
                    _fail("P107", "optimise names what it minimises: optimise f via mqhoa(...)",
                          it.span, STATEMENTS["optimise"].usage)  # fmt: skip
                objective = (it.value.name, it.value.span)
            elif it.kind == "named":
                popts[it.name] = (plain(it.value), it.span)
            else:
                _fail("P107", "optimise: options are named (evaluations = 20000)", it.span,
                      STATEMENTS["optimise"].usage)  # fmt: skip
        groups.append(Settable.options("optimise option", OptimiseOptions, popts))
    params = list(checker.param_names)
    apply_sets(run, dict(sets or {}), params, groups)
    options = option_values(mopts, schema, mspan, method)
    spans = {k: s for k, (_, s) in mopts.items()}
    plan = LandscapePlan(EVOLVE_TASKS.get(method, "optimise"), method, options, mspan,
                         stmt.span, spans, spins=spins)  # fmt: skip
    if word == "optimise":
        plan.optimise = option_values(popts, OptimiseOptions, stmt.span, "optimise")
        plan.option_spans.update({f"optimise.{k}": s for k, (_, s) in popts.items()})
        plan.objective = objective[0] if objective else None
        if method == "population_annealing" and not spins:
            need = options.population * (1 + 2 * options.sweeps)
            if plan.optimise.evaluations < need:
                _fail("P426", f"evaluations = {plan.optimise.evaluations} cannot pay for two "
                      f"temperatures of a population of {options.population} with "
                      f"{options.sweeps} sweeps each ({need} evaluations)",
                      popts.get("evaluations", (None, stmt.span))[1] or stmt.span,
                      "raise evaluations, or lower population or sweeps")  # fmt: skip
        if method in ACTIVE_METHODS:
            _check_active(plan, program, checker, popts, stmt.span)
    check_scanned(run, checker, params,
                  "scan a model parameter; lists of points or dtau are options")
    args = {k: v for k, (v, _) in run.model_args.items()}
    aspans = {k: s for k, (_, s) in run.model_args.items()}
    for combo in itertools.product(*[s.values for s in run.scans]) or [()]:
        a, sp = dict(args), dict(aspans)
        for s, v in zip(run.scans, combo, strict=True):
            a[s.name], sp[s.name] = v, s.span
        ir = checker.instantiate(a, sp)
        if spins:
            _spin_model(plan, ir, objective, run.model_span or run.span)
            plan.size = max(plan.size, program.derive(ir).lattice.n_sites)
        elif ir.kind != "landscape":
            _fail("P426", f"{method} needs a landscape model (coordinates x: real[n] and a "
                  f"potential); model {ir.name} is a {ir.kind} model", run.model_span or run.span,
                  "declare coordinates x: real[2] in [-5, 5] and potential f = ...")  # fmt: skip
        else:
            d = program.derive(ir)
            _check_point(plan, d, objective)
            _check_warm(plan, program, d)
            plan.size = max(plan.size, d.n)
        plan.points.append(ModelPoint({s.name: v for s, v in zip(run.scans, combo,
                                                                      strict=True)}, a))  # fmt: skip
    return plan


def _check_active(plan: LandscapePlan, program, checker, popts: Located,
                  span: Span | None) -> None:  # fmt: skip
    """The budget pays for the initial design and a proposal; a warm-start model is a
    landscape model of this program other than the optimised one."""
    o, g = plan.options, plan.optimise
    if o.initial >= g.evaluations:
        _fail("P426", f"evaluations = {g.evaluations} does not pay for initial = {o.initial} "
              "points and one proposal", plan.span_of("initial"),
              f"raise evaluations above {o.initial}, or lower initial")  # fmt: skip
    name = o.warm_start
    if name is None:
        return
    where = plan.span_of("warm_start")
    if name not in program.models:
        _fail("P203", f"no model '{name}' to warm-start from", where,
              did_you_mean(name, set(program.models)) or "name a landscape model of this "
              "file: a simulation of the experiment")  # fmt: skip
    if name == checker.name:
        _fail("P432", f"the warm start {name} is the optimised model itself", where,
              "warm-start from a simulated model of the experiment")  # fmt: skip
    plan.warm_start = name


def _check_warm(plan: LandscapePlan, program, d) -> None:
    """The warm-start model has the optimised model's coordinates and box."""
    if plan.warm_start is None:
        return
    where = plan.span_of("warm_start")
    ir = program.models[plan.warm_start].instantiate({})
    if ir.kind != "landscape":
        _fail("P432", f"the warm start {plan.warm_start} is a {ir.kind} model, not a "
              "landscape model", where)  # fmt: skip
    w = program.derive(ir)
    if (w.n, w.lower, w.upper) != (d.n, d.lower, d.upper):
        _fail("P432", f"the warm start {plan.warm_start} has {w.n} coordinates in "
              f"[{w.lower}, {w.upper}]; model {d.name} has {d.n} in [{d.lower}, {d.upper}]",
              where, "declare the simulation with the same coordinates and box")  # fmt: skip
    plan.warm_ir = ir


def _spin_model(plan: LandscapePlan, ir, objective: tuple[str, Span | None] | None,
                span: Span | None) -> None:
    """An annealed spin model: one spin field on the sites, and ``objective`` its energy (that
    the energy is quadratic in the spins is checked on the compiled model)."""
    fields = [f for f in ir.fields if f.on == "sites"]
    if len(ir.fields) != 1 or len(fields) != 1 or not fields[0].domain.ising:
        _fail("P427", f"the annealers minimise an Ising energy of one spin field (s = +-1) on "
              f"the sites; model {ir.name} has {len(ir.fields)} field(s)", span,
              "declare field s: spin on sites")  # fmt: skip
    plan.field = fields[0].name
    energy = ir.energy
    if objective is not None and (energy is None or objective[0] != energy.name):
        _fail("P203", f"model {ir.name} has no energy '{objective[0]}'", objective[1],
              f"its energy is {energy.name}: optimise {energy.name} via {plan.method}(...)"
              if energy else None)  # fmt: skip


def _check_point(plan: LandscapePlan, d, objective: tuple[str, Span | None] | None) -> None:
    """The method fits the derived landscape ``d`` (located P426, P313, P203)."""
    o, m = plan.options, plan.method
    if objective is not None and objective[0] != d.f_name:
        _fail("P203", f"model {d.name} has no potential '{objective[0]}'", objective[1],
              f"its potential is {d.f_name}: optimise {d.f_name} via {m}(...)")  # fmt: skip
    needs_box = m in GRID_METHODS or plan.task == "optimise"
    if needs_box and not d.bounded:
        what = "a grid" if m in GRID_METHODS else "an optimiser"
        _fail("P426", f"{m} needs a box: {what} covers the bounded coordinates, and "
              f"{d.coordinate} is unbounded", plan.method_span,
              f"bound them: coordinates {d.coordinate}: ... in [-8, 8]")  # fmt: skip
    if m in GRID_METHODS:
        if d.n > 3:
            _fail("P426", f"{m} runs on a grid of at most 3 dimensions; model {d.name} has "
                  f"{d.n} coordinates", plan.method_span,
                  "walkers work in any dimension: evolve langevin(...) or dmc(...)")  # fmt: skip
        if m == "taylor_diffusion" and d.n != 1:
            _fail("P426", f"the scheme of eq. (16) is one-dimensional; model {d.name} has {d.n} "
                  "coordinates", plan.method_span, "use fokker_planck in 2 or 3 dimensions")
        sizes = o.points if isinstance(o.points, list) else [o.points]
        for n in sizes:
            if n ** d.n > MAX_GRID_POINTS:
                _fail("P426", f"a grid of {n}^{d.n} = {n ** d.n:.3g} points is too large "
                      f"(at most {MAX_GRID_POINTS:.3g})", plan.span_of("points"),
                      "fewer points per axis")  # fmt: skip
        if m == "taylor_diffusion":
            dx = (d.upper - d.lower) / max(sizes)  # the finest grid is the least stable
            ratio = o.D * o.dtau / dx**2
            if ratio > 0.5:
                _fail("P426", f"D dtau / dx^2 = {ratio:.3g} > 1/2: the explicit scheme of eq. "
                      f"(16) is unstable (D = {o.D:g}, dtau = {o.dtau:g}, dx = {dx:.3g})",
                      plan.span_of("dtau"), f"take dtau <= {0.5 * dx**2 / o.D:.3g}, or fewer "
                      "points")  # fmt: skip
    uses_trial = m == "dmc" and o.trial and d.trial is not None
    if m in DRIFT_METHODS or uses_trial:
        names = d.nondifferentiable
        if names:
            expr, span = names[0]
            _fail("P313", f"{m} needs the gradient of the potential, and it is not "
                  f"differentiable here ({type(expr).__name__})", span,
                  "use a smooth form, e.g. sqrt(x^2 + eps^2) for abs(x); MQHOA and the "
                  "annealers need no gradient")  # fmt: skip
    if m == "real_time":
        for k in ("center", "momentum"):
            v = getattr(o, k)
            if isinstance(v, list) and len(v) != d.n:
                _fail("P426", f"{k} has {len(v)} entries; the coordinates have {d.n}",
                      plan.span_of(k))  # fmt: skip
            vs = v if isinstance(v, list) else [v]
            if k == "center" and any(not d.lower < c < d.upper for c in vs):
                _fail("P426", f"the packet's centre {v} is outside the box [{d.lower:g}, "
                      f"{d.upper:g}]", plan.span_of(k))  # fmt: skip
    if not all(math.isfinite(x) for x in (d.lower or 0.0, d.upper or 0.0)):
        _fail("P404", "the box is not finite", plan.method_span)


def check_landscape(task: TaskIR, program) -> None:
    """The static check of a landscape run."""
    plan_landscape(RunState.of(task), program)


def bind_checks(catalogue: Catalogue) -> None:
    """Attach the static checks of this family's tasks."""
    for task in sorted(set(EVOLVE_TASKS.values()) | {"optimise"}):
        catalogue.tasks.bind_check(task, TaskCheck(check_landscape))


__all__ = ["LandscapePlan", "bind_checks", "check_landscape", "plan_landscape"]
