"""Static plans of the gauge tasks (torch-free): what a ``sample`` run of a gauge model or a
``regress`` run of gauge learners would reject, checked without running.

A plan reads the run's statements, applies ``--set`` overrides and scans, realises every point of
the scan (``program.derive`` for ``physml check``; the runtime passes ``program.compile_ir``,
whose models carry the same derivation) and validates against the catalogue
(physml_lang/catalogue/gauge.py): the sampler and its options, whether it can sample the model
(hmc needs a Wilson action and a continuous group; parallel updates need a colouring of the
lattice), every measured expression (names, loop sizes, observables defined for the model), the
regression target, the learners and the symmetries they can respect. The runtime's tasks
(runtime/gauge/tasks.py) start from these plans and validate nothing again.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import BaseModel

from physml_lang.catalogue import CATALOGUE, Catalogue
from physml_lang.catalogue.domains import SYMMETRIES
from physml_lang.catalogue.gauge import (
    CALLS,
    CHECKERBOARD,
    DEFINED_ON,
    GROUP_NAMES,
    REGRESSORS,
    TARGETS,
    RegressOptions,
)
from physml_lang.check.constants import evaluate
from physml_lang.check.model import ModelChecker, validate_options
from physml_lang.compiler.derive.gauge import GaugeDerivation, Kind
from physml_lang.compiler.geometry import Colouring, check_link_parity, local_colouring
from physml_lang.compiler.lower.backends import NUMPY
from physml_lang.compiler.lower.gauge import Env
from physml_lang.diagnostics import Diagnostic, PhysmlError, Span, did_you_mean
from physml_lang.ir import expr as E
from physml_lang.ir.model import ModelIR
from physml_lang.ir.task import CallValue, StatementIR, TaskIR, Word
from physml_lang.ir.walk import Walker

from ..tasks import RunState, TaskCheck, option_values, plain
from .parameters import Settable, apply_sets, check_scanned

Realise = Callable[[ModelIR], Any]  # a model IR -> its derivation (check) or compiled model (run)


def _fail(code: str, msg: str, span: Span | None = None, hint: str | None = None):
    raise PhysmlError(Diagnostic(code, msg, span, hint))


def gauge_of(model: Any) -> GaugeDerivation:
    """The derivation of a realised gauge model (a derivation, or a compiled model's)."""
    return model if isinstance(model, GaugeDerivation) else model.derivation


# hints name the samplers and learners in this order (the catalogue lists names sorted)


def sampler_hint() -> str:
    return "gauge samplers: " + ", ".join(CATALOGUE.samplers.names("gauge", shared=False))


def learner_hint() -> str:
    return "gauge learners: " + ", ".join(CATALOGUE.learners.names("gauge", shared=False))


def builtin_observables() -> set[str]:
    """The gauge observables of the catalogue as the hints name them (aliases left out)."""
    reg = CATALOGUE.observables
    return {n for n in reg.names("gauge") if not reg.lookup(n, "gauge").doc.startswith("alias of")}


def defined_for(g: GaugeDerivation, name: str, span: Span | None) -> None:
    """P414 unless the observable or target ``name`` is defined for the model's group and d."""
    groups, d = DEFINED_ON.get(name, ((), 0))
    if (groups and g.group not in groups) or (d and g.d != d):
        where = " or ".join(GROUP_NAMES[k] for k in groups)
        _fail("P414", f"{name} is defined for {d}D {where} models", span)


def loop_size(g: GaugeDerivation, a: E.Expr | Any, span: Span | None = None) -> int:
    """A Wilson-loop extent: an integer 1 .. min(L) (an expression or a value)."""
    v = evaluate(a, g.model.params, "a loop size") if isinstance(a, E.Expr) else a
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    if not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= min(g.shape):
        _fail("P406", f"a loop size is an integer 1 .. {min(g.shape)}",
              a.span if isinstance(a, E.Expr) else span)  # fmt: skip
    return v


# ---------------------------------------------------------------- colourings of parallel updates


def local_colourings(g: GaugeDerivation, kind: str) -> dict[Kind, Colouring]:
    """The colouring of every variable kind of the local updates ``kind`` (metropolis or
    heatbath) of a non-Wilson model; P502 for a term that is not local, ValueError when the
    lattice admits no colouring or heat-bath meets a variable that is not z2."""
    local = g.local_stencils()
    colours = {k: local_colouring(local.stencil[k], g.shape) for k in local.kinds}
    if kind == "heatbath":
        bad = [k[0] for k in local.kinds
               if (g.group if k[1] is not None else g.matter_domains[k[0]]) != "z2"]  # fmt: skip
        if bad:
            raise ValueError(f"heat-bath for generic actions needs z2 variables; "
                             f"{bad[0]} is not")  # fmt: skip
    return colours


# ---------------------------------------------------------------- measured expressions

# functions of measured values: ops of the lowering's backends (its one function table)
FUNCS = ("abs", "sqrt", "exp", "log", "cos", "sin")


class Measure(Walker[Any]):
    """A measured expression of a gauge model, f(configuration) -> (B,) values.

    Names are the catalogue's gauge observables (they shadow parameters; ``wilson_loop(R, T)``
    by a call, with loop sizes 1 .. min(L)), numeric parameters and definitions without
    indices; arithmetic and FUNCS combine them. The walk checks every name and size; the value
    hooks compute. Here they evaluate on numpy links (B, L..., d, *lin_shape) in linear form,
    built-in observables as placeholders: ``check()`` is the static check. The runtime's
    ``Observable`` evaluates on torch link tensors."""

    what = "a gauge observable"

    def __init__(self, gauge: GaugeDerivation, expr: E.Expr | None, name: str,
                 span: Span | None):  # fmt: skip
        self.gauge = gauge
        self.name = name
        self.expr = expr if expr is not None else E.Name(name, span=span)

    def check(self) -> None:
        """Everything a measurement would reject, on a random configuration (numpy)."""
        self.walk(self.expr, self.gauge.random_configuration(1, np.random.default_rng(0)))

    # -------------------------------------------------------------- value hooks (numpy)
    def is_array(self, v: Any) -> bool:
        return isinstance(v, np.ndarray | np.generic)

    def builtin(self, name: str, config: Any, args: tuple[int, ...]) -> Any:
        """A built-in observable's value: a placeholder (B,) here; ``sites`` is a number."""
        if name == "sites":
            return float(self.gauge.n_sites)
        return np.ones(config[0].shape[0])

    def definition(self, e: E.Expr, config: Any) -> Any:
        """Re of an expression of the action's language (a definition, a sum) on the links."""
        lin, matter = config
        t = self.gauge.evaluator(lin, matter).evaluate(e, Env()).t
        return np.real(t) if self.is_array(t) else t

    def function(self, f: str, v: Any) -> Any:
        return np.asarray(NUMPY.ops[f](np.asarray(v, dtype=np.float64)))

    # -------------------------------------------------------------- the walk
    def not_here(self, e: E.Expr, what: str = "this"):
        return PhysmlError(Diagnostic(
            "P308", "this expression cannot be measured on a gauge model", e.span,
            "observables: " + ", ".join(sorted(builtin_observables() - set(CALLS)))
            + ", wilson_loop(R, T), declared observables, sums, with + - * / ^ and abs, sqrt, "
            "exp, log"))  # fmt: skip

    def on_number(self, e: E.Num, config: Any) -> Any:
        return float(e.value)

    def on_name(self, e: E.Name, config: Any) -> Any:
        g = self.gauge
        n = e.id
        # built-in observables first (they shadow parameters); wilson_loop is measured by a call
        if n not in CALLS and CATALOGUE.observables.get(n, "gauge") is not None:
            defined_for(g, n, e.span)
            return self.builtin(n, config, ())
        if n in g.model.params and isinstance(g.model.params[n], int | float):
            return float(g.model.params[n])
        d = g.model.definitions.get(n)
        if d is not None and not d.indices:
            return self.definition(d.expr, config)
        known = builtin_observables() | set(g.model.params) | {
            k for k, v in g.model.definitions.items() if not v.indices}  # fmt: skip
        _fail("P208", f"unknown observable '{n}'", e.span,
              did_you_mean(n, known) or "gauge observables: " + ", ".join(sorted(known)))  # fmt: skip

    def on_call(self, e: E.Call, config: Any) -> Any:
        if e.func in CALLS:
            if len(e.args) != len(CALLS[e.func]) or e.kwargs:
                _fail("P316", f"{e.func} takes the loop size: {e.func}"
                      f"({', '.join(CALLS[e.func])})", e.span)  # fmt: skip
            return self.builtin(e.func, config, tuple(loop_size(self.gauge, a) for a in e.args))
        if e.func in FUNCS and len(e.args) == 1:
            return self.function(e.func, self.walk(e.args[0], config))
        raise self.not_here(e)

    def on_unary(self, e: E.Unary, config: Any) -> Any:
        if e.op != "-":
            raise self.not_here(e)
        return -self.walk(e.operand, config)

    def on_binary(self, e: E.Binary, config: Any) -> Any:
        if e.op not in ("+", "-", "*", "/", "^"):
            raise self.not_here(e)
        a, b = self.walk(e.left, config), self.walk(e.right, config)
        if e.op == "/" and not self.is_array(b) and b == 0:
            _fail("P417", "division by zero", e.right.span)
        return {"+": lambda: a + b, "-": lambda: a - b, "*": lambda: a * b,
                "/": lambda: a / b, "^": lambda: a ** b}[e.op]()  # fmt: skip

    def on_reduce(self, e: E.Reduce, config: Any) -> Any:
        return self.definition(e, config)


def measures(g: GaugeDerivation, run: RunState) -> list[Measure]:
    """The run's measured expressions (the plaquette when it measures none)."""
    if not run.measures:
        return [Measure(g, None, "plaquette", run.span)]
    return [Measure(g, m.expr, m.name, m.span) for m in run.measures]


# ---------------------------------------------------------------- points of a scan


@dataclass
class Point:
    """One point of a run's scan: the scan values, the model's arguments (with the spans of
    their sources) and the model realised there (a derivation, or a compiled model)."""

    values: tuple
    args: dict[str, Any]
    spans: dict[str, Span | None]
    model: Any

    @property
    def gauge(self) -> GaugeDerivation:
        return gauge_of(self.model)


def _points(run: RunState, model_args: dict, model_spans: dict
            ) -> Iterator[tuple[tuple, dict, dict]]:  # fmt: skip
    combos = list(itertools.product(*[s.values for s in run.scans])) or [()]
    for combo in combos:
        point, spans = dict(model_args), dict(model_spans)
        for s, v in zip(run.scans, combo):
            point[s.name], spans[s.name] = v, s.span
        yield combo, point, spans


# ---------------------------------------------------------------- the sample task


@dataclass
class GaugeSamplePlan:
    """A gauge sampling run, validated: ``options`` of the sampler entry's schema (the
    sampler's and the run's controls), the weight exp(-scale * S) (``let T`` or ``let beta``
    that is not a model parameter), the scan's points and how the sampler updates the model:
    ``links`` (Wilson action: the runtime's link samplers) or ``local`` (coloured local updates
    of links and matter from the action's densities)."""

    run: RunState
    checker: ModelChecker
    options: BaseModel
    scale: float
    points: list[Point]
    updates: str


def _resolve_sample(run: RunState, checker: ModelChecker, sets: dict[str, Any] | None
                    ) -> tuple[BaseModel, dict, dict, float]:  # fmt: skip
    """``--set`` overrides, sampler options, scans and lets of a gauge sampling run: (options
    of the sampler entry's schema, model_args, model_spans, scale)."""
    entry = CATALOGUE.samplers.get(run.sampler, "gauge")
    if entry is None:
        _fail("P206", f"unknown gauge sampler '{run.sampler}'", run.sampler_span,
              did_you_mean(run.sampler, set(CATALOGUE.samplers.names("gauge")))
              or sampler_hint())  # fmt: skip
    schema = entry.schema
    params = set(checker.param_names)
    apply_sets(run, sets or {}, params,
               [Settable.options("sampler option", schema, run.sampler_options)])
    options = option_values(run.sampler_options, schema, run.sampler_span,
                            f"sampler {run.sampler}")  # fmt: skip
    check_scanned(run, checker, params,
                  "gauge models scan their parameters, e.g. scan beta in [1.0, 2.0]")
    model_args = {k: v for k, (v, _) in run.model_args.items()}
    model_spans = {k: s for k, (_, s) in run.model_args.items()}
    scale = 1.0  # weight exp(-scale * S): 'let T = ...' (not a model parameter) gives 1 / T
    for name, (v, s) in run.lets.items():
        if name in params:
            model_args.setdefault(name, v)
            model_spans.setdefault(name, s)
        elif name in ("T", "beta"):
            if isinstance(v, bool) or not isinstance(v, int | float) or not v > 0:
                _fail("P406", f"{name} must be a positive number, got {v!r}", s)
            scale = 1.0 / v if name == "T" else float(v)
        else:
            _fail("P205", f"'let {name}': not a parameter of model {checker.name}", s,
                  did_you_mean(name, params | {"T"}))  # fmt: skip
    return options, model_args, model_spans, scale


def sampler_updates(g: GaugeDerivation, run: RunState) -> str:
    """How the run's sampler updates the model -- ``links`` (Wilson action: the runtime's link
    samplers) or ``local`` (coloured local updates from the action's densities) -- or a P502
    saying why it cannot sample it."""
    if not g.is_wilson:
        if run.sampler == "hmc":
            _fail("P502", f"hmc needs a Wilson action; model {g.name}'s action is "
                  + ("coupled to matter" if g.matter_domains else "not of the Wilson form"),
                  run.sampler_span, "use metropolis (or heatbath for z2 links and spins)")  # fmt: skip
        try:
            local_colourings(g, "heatbath" if run.sampler == "heatbath" else "metropolis")
        except ValueError as exc:
            _fail("P502", f"sampler {run.sampler}: {exc}", run.sampler_span,
                  "use metropolis, and even lattice extents" if run.sampler == "heatbath"
                  else "use even lattice extents")  # fmt: skip
        return "local"
    groups = CATALOGUE.samplers.lookup(run.sampler, "gauge").facts.domains
    if g.group not in groups:
        _fail("P502", f"{run.sampler} needs a continuous group ({', '.join(groups)}); "
              f"{g.group} links are discrete", run.sampler_span, "use heatbath or metropolis")  # fmt: skip
    if run.sampler in CHECKERBOARD:
        try:
            check_link_parity(g.shape)
        except ValueError as exc:
            _fail("P502", f"sampler {run.sampler}: {exc}", run.sampler_span,
                  "use even lattice extents, or hmc")  # fmt: skip
    return "links"


def plan_gauge_sample(task: TaskIR, program, sets: dict[str, Any] | None,
                      realise: Realise | None = None) -> GaugeSamplePlan:  # fmt: skip
    """Validate a gauge sampling run at every point of its scan: options, sampler, measures.
    ``realise`` makes a point's model (``program.derive`` unless given)."""
    run = RunState.of(task)
    checker = program.checker_for(task)
    options, model_args, model_spans, scale = _resolve_sample(run, checker, sets)
    realise = realise or program.derive
    points, updates = [], ""
    for combo, args, spans in _points(run, model_args, model_spans):
        point = Point(combo, args, spans, realise(checker.instantiate(args, spans)))
        updates = sampler_updates(point.gauge, run)
        for m in measures(point.gauge, run):
            m.check()
        points.append(point)
    return GaugeSamplePlan(run, checker, options, scale, points, updates)


def check_gauge_sample(task: TaskIR, program) -> None:
    plan_gauge_sample(task, program, {})


# ---------------------------------------------------------------- the regress task


class RegressStatement:
    """``regress f, g, target = wilson_loop(2, 2), test_L = [16, 32], ...`` read from the IR."""

    def __init__(self, stmt: StatementIR):
        self.span = stmt.span
        self.learners: list[tuple[str, Span | None]] = []
        self.options: dict[str, tuple[Any, Span | None]] = {}
        self.target: Any = None
        self.target_span: Span | None = None
        for item in stmt.items:
            if item.kind == "value" and isinstance(item.value, Word):
                self.learners.append((item.value.name, item.span))
            elif item.kind == "named" and item.name == "target":
                self.target, self.target_span = item.value, item.value_span
            elif item.kind == "named":
                if isinstance(item.value, Word | CallValue):
                    _fail("P322", f"option {item.name} takes a value", item.span)
                self.options[item.name] = (plain(item.value), item.span)
            else:
                _fail("P104", "regress takes learner names and options", item.span,
                      "regress f, g, target = wilson_loop(2, 2), test_L = [16, 32]")  # fmt: skip
        if not self.learners:
            _fail("P412", "regress needs at least one learner", stmt.span)
        if self.target is None:
            _fail("P412", "regress needs a target", stmt.span, "target = wilson_loop(2, 2)")


def regress_target(g: GaugeDerivation, target: Any, span: Span | None
                   ) -> tuple[str, tuple[int, ...]]:  # fmt: skip
    """The regression target as (name, loop sizes): plaquette, topological_charge_density (2D
    U(1)) or wilson_loop with (R, T)."""
    name = target.name if isinstance(target, Word | CallValue) else None
    if isinstance(target, Word) and name in TARGETS and name not in CALLS:
        defined_for(g, name, span)
        return name, ()
    if isinstance(target, CallValue) and name in CALLS:
        if len(target.args) != len(CALLS[name]) or target.kwargs:
            _fail("P316", f"{name} takes the loop size: {name}({', '.join(CALLS[name])})", span)
        return name, tuple(loop_size(g, a, span) for a in target.args)
    _fail("P208", "unknown regression target", span, "targets: " + "; ".join(TARGETS.values()))


def _respectable() -> set[str]:
    """The symmetries some gauge learner can respect."""
    reg = CATALOGUE.learners
    return set().union(*(reg.lookup(n, "gauge").facts.symmetries for n in reg.names("gauge")))


def regress_learners(stmt: RegressStatement, program, g: GaugeDerivation
                     ) -> list[tuple[str, str, BaseModel]]:  # fmt: skip
    """(name, learner kind, options) of every learner the statement trains, each checked: known
    to the catalogue, its options, the symmetries it is asked to respect."""
    decls = program.learners
    out = []
    for name, span in stmt.learners:
        ld = decls.get(name)
        if ld is None:
            _fail("P207", f"unknown learner '{name}'", span,
                  did_you_mean(name, set(decls)) or "declare it: learner f = lcnn(channels = [4, 8])"
                  " respecting gauge, translation")  # fmt: skip
        call = ld.call
        func = call.name
        entry = CATALOGUE.learners.get(func, "gauge")
        if entry is None:
            _fail("P207", f"unknown gauge learner '{func}'", call.name_span,
                  did_you_mean(func, set(CATALOGUE.learners.names("gauge"))) or learner_hint())  # fmt: skip
        if func not in REGRESSORS:  # e.g. a normalising flow, trained in a flow run
            _fail("P503", f"learner {name} = {func}(...) is not a regressor", call.name_span,
                  f"regressors: {', '.join(REGRESSORS)}; a gauge_flow is trained by "
                  "'train f via reverse_kl(...)' in a flow run")  # fmt: skip
        if call.args:
            _fail("P318", "learner options are given by name", call.span)
        opts = validate_options(entry.schema, {k.name: plain(k.value) for k in call.kwargs},
                                {k.name: k.span for k in call.kwargs}, call.span,
                                f"learner {func}")  # fmt: skip
        respects = set(entry.facts.symmetries)
        for sym, sspan in zip(ld.respecting, ld.respecting_spans):
            if sym not in SYMMETRIES:
                _fail("P210", f"unknown symmetry '{sym}'", sspan,
                      did_you_mean(sym, _respectable()))  # fmt: skip
            if sym not in respects:
                _fail("P501", f"learner {name} = {func}(...) cannot respect {sym}", sspan,
                      f"{func} respects: {', '.join(sorted(respects))}"
                      + ("; use lcnn for gauge equivariance" if sym == "gauge" else ""))  # fmt: skip
            if sym == "gauge" and not any(s.name == "gauge" and s.active
                                          for s in g.model.symmetries):  # fmt: skip
                _fail("P505", f"learner {name} respects gauge, but model {g.name} does not "
                      "declare 'symmetry gauge'", sspan, "add 'symmetry gauge' to the model")  # fmt: skip
        if func == "gauge_cnn" and g.d > 3:
            _fail("P413", "gauge_cnn works in d = 1..3", call.name_span)
        out.append((name, func, opts))
    return out


@dataclass
class RegressPlan:
    """A regress run, validated: its options, the scan's points (each a Wilson model the data
    are sampled from with heat-bath), the target (name, loop sizes) and the learners
    (name, kind, options)."""

    run: RunState
    stmt: RegressStatement
    options: RegressOptions
    points: list[Point]
    target: tuple[str, tuple[int, ...]]
    learners: list[tuple[str, str, BaseModel]]


def plan_regress(task: TaskIR, program, sets: dict[str, Any] | None,
                 realise: Realise | None = None) -> RegressPlan:  # fmt: skip
    """Validate a regress run at every point of its scan. ``realise`` makes a point's model
    (``program.derive`` unless given)."""
    run = RunState.of(task)
    stmt = RegressStatement(task.statement("regress"))
    checker = program.checker_for(task)
    params = set(checker.param_names)
    ropts = dict(stmt.options)
    apply_sets(run, sets or {}, params,
               [Settable.options("regress option", RegressOptions, ropts)])
    options = option_values(ropts, RegressOptions, stmt.span, "regress")
    check_scanned(run, checker, params)
    model_args = {k: v for k, (v, _) in run.model_args.items()}
    model_spans = {k: s for k, (_, s) in run.model_args.items()}
    for name, (v, s) in run.lets.items():
        model_args.setdefault(name, v)
        model_spans.setdefault(name, s)
    realise = realise or program.derive
    points = []
    for combo, args, spans in _points(run, model_args, model_spans):
        point = Point(combo, args, spans, realise(checker.instantiate(args, spans)))
        g = point.gauge
        if not g.is_wilson:
            _fail("P502", "regress samples its data with heat-bath: the model needs a Wilson "
                  "action", stmt.span)  # fmt: skip
        try:
            check_link_parity(g.shape)
        except ValueError as exc:
            _fail("P502", f"regress samples its data with heat-bath: {exc}", stmt.span,
                  "use even lattice extents")  # fmt: skip
        for L in options.test_L:
            if L < 2 or L % 2:
                _fail("P406", f"test lattice sizes must be even, got {L}",
                      ropts.get("test_L", (None, None))[1])  # fmt: skip
        points.append(point)
    g = points[0].gauge
    target = regress_target(g, stmt.target, stmt.target_span)
    learners = regress_learners(stmt, program, g)
    return RegressPlan(run, stmt, options, points, target, learners)


def check_regress(task: TaskIR, program) -> None:
    plan_regress(task, program, {})


def bind_checks(catalogue: Catalogue) -> None:
    """Attach the static checks of the gauge tasks to their catalogue entries."""
    catalogue.tasks.bind_check("sample", TaskCheck(check_gauge_sample), family="gauge")
    catalogue.tasks.bind_check("gauge_regress", TaskCheck(check_regress))


__all__ = ["FUNCS", "Colouring", "GaugeSamplePlan", "Measure", "Point", "RegressPlan",
           "RegressStatement", "bind_checks", "builtin_observables", "check_gauge_sample",
           "check_link_parity", "check_regress", "defined_for", "gauge_of", "learner_hint",
           "local_colouring", "local_colourings", "loop_size", "measures",
           "plan_gauge_sample", "plan_regress", "regress_learners", "regress_target",
           "sampler_hint", "sampler_updates"]  # fmt: skip
