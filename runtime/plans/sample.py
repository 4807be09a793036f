"""Static plan of the ``sample`` task of lattice models (torch-free).

Validates a sampling run from its IR -- the sampler and its options, temperatures, scans,
``let`` values and ``--set`` overrides -- and, for ``check``, derives the model at the first
scan point: the sampler must apply to it (discrete site fields of a domain it updates, the
symmetry it needs, a colouring for checkerboard updates) and every measured expression must
lower. The runtime's sampling starts from the same plan and the same applicability rules.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from physml_lang.catalogue import CATALOGUE, Catalogue
from physml_lang.catalogue.registry import Entry
from physml_lang.check.model import ModelChecker
from physml_lang.compiler.derive.lattice import LatticeDerivation
from physml_lang.compiler.derive.measures import MeasuredExpressions
from physml_lang.diagnostics import Diagnostic, ErrorCollector, PhysmlError, Span, did_you_mean
from physml_lang.ir.task import MeasureIR, TaskIR
from physml_lang.runtime.observables import FLUCTUATIONS
from physml_lang.runtime.tasks import RunState, Scan, TaskCheck, option_values

from .parameters import Settable, apply_sets

THERMAL = ("T", "beta")


def _fail(code: str, msg: str, span: Span | None = None, hint: str | None = None):
    raise PhysmlError(Diagnostic(code, msg, span, hint))


def resolve_overrides(run: RunState, checker: ModelChecker, sets: dict[str, Any], schema) -> None:
    """Apply ``--set NAME=VALUE``: a scan variable becomes a single point; otherwise a model
    parameter, a ``let`` value (T, beta) or a sampler option of that name is replaced."""
    apply_sets(run, sets, checker.param_names, [
        Settable("let", set(run.lets) | set(THERMAL), run.lets),
        Settable.options("sampler option", schema, run.sampler_options)])  # fmt: skip


@dataclass
class SamplePlan:
    """A validated sampling run: everything checked before the first sweep."""

    entry: Entry
    options: Any
    tvar: str
    tvalues: list
    betas: list[float]
    others: list[Scan]
    model_args: dict[str, Any]
    model_spans: dict[str, Any]
    measures: Sequence[MeasureIR]

    def first_point(self) -> tuple[dict[str, Any], dict[str, Span | None]]:
        """Model arguments and their spans at the first point of the non-thermal scans."""
        point, spans = dict(self.model_args), dict(self.model_spans)
        for s in self.others:
            point[s.name], spans[s.name] = s.values[0], s.span
        return point, spans


def plan_sample(run: RunState, checker: ModelChecker, sets: dict[str, Any] | None) -> SamplePlan:
    """Validate a sampling run (names, options, temperatures, scans, overrides): every
    independent error at once; what depends on a failed part (the options of an unknown
    sampler, the values of a missing temperature) is not checked."""
    errors = ErrorCollector()
    entry = CATALOGUE.samplers.get(run.sampler, "lattice")
    options = None
    if entry is None:
        known = CATALOGUE.samplers.names("lattice")
        with errors:
            _fail("P206", f"unknown sampler '{run.sampler}'", run.sampler_span,
                  did_you_mean(run.sampler, set(known)) or "samplers: " + ", ".join(known))  # fmt: skip
    else:
        with errors:
            resolve_overrides(run, checker, sets or {}, entry.schema)
        with errors:
            options = option_values(run.sampler_options, entry.schema, run.sampler_span,
                                    f"sampler {run.sampler}")  # fmt: skip
    params = set(checker.param_names)
    thermal = [s for s in run.scans if s.name in THERMAL]
    others = [s for s in run.scans if s.name not in THERMAL]
    for s in others:
        if s.name not in params:
            with errors:
                _fail("P205", f"cannot scan '{s.name}': it is not T, beta or a parameter of "
                      f"model {checker.name}", s.span, did_you_mean(s.name, params | set(THERMAL)))  # fmt: skip
    if len(thermal) > 1:
        with errors:
            _fail("P211", "scan either T or beta, not both", thermal[1].span)
    for name in run.lets:
        if name not in THERMAL and name not in params:
            with errors:
                _fail("P205", f"'let {name}': not T, beta or a model parameter", run.lets[name][1],
                      did_you_mean(name, params | set(THERMAL)))  # fmt: skip
    tvar, tvalues, tspan = "T", [], None
    if thermal:
        tvar, tvalues, tspan = thermal[0].name, thermal[0].values, thermal[0].span
    elif "T" in run.lets or "beta" in run.lets:
        tvar = "T" if "T" in run.lets else "beta"
        tvalues, tspan = [run.lets[tvar][0]], run.lets[tvar][1]
    else:
        with errors:
            _fail("P412", f"run {run.name} has no temperature", run.span,
                  "add 'let T = 2.0' or 'scan T in linspace(1.5, 3.5, 21)'")  # fmt: skip
    with errors:
        for v in tvalues:
            if isinstance(v, bool) or not isinstance(v, int | float) or not 0 < v < math.inf:
                _fail("P406", f"{tvar} must be a positive, finite number, got {v!r}", tspan,
                      "temperatures and inverse temperatures are > 0 and finite (T = inf is "
                      "beta = 0: sample uniformly instead)")  # fmt: skip
    if options is not None and options.exchange and len(tvalues) < 2:
        where = run.sampler_options.get("exchange", (None, run.sampler_span))[1]
        with errors:
            _fail("P406", f"exchange = {options.exchange} swaps replicas between temperatures, "
                  f"but run {run.name} samples one temperature", where,
                  "scan T (or beta) over at least two values, or drop exchange")  # fmt: skip
    errors.raise_if_any()
    betas = [1.0 / v if tvar == "T" else float(v) for v in tvalues]
    model_args, model_spans = first_model_args(run, params)
    return SamplePlan(entry, options, tvar, tvalues, betas, others, model_args, model_spans,
                      run.measures or [])  # fmt: skip


def first_model_args(run: RunState, params: set[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The model's arguments from the run (``model M(...)`` and ``let`` of a parameter), with
    the spans of their sources."""
    model_args = {k: v for k, (v, _) in run.model_args.items()}
    model_spans = {k: s for k, (_, s) in run.model_args.items()}
    for name, (v, s) in run.lets.items():
        if name in params:
            model_args.setdefault(name, v)
            model_spans.setdefault(name, s)
    return model_args, model_spans


def sampled_field(entry: Entry, options: Any, derivation: LatticeDerivation,
                  field: str | None = None) -> str:  # fmt: skip
    """The discrete site field a lattice sampler updates, after checking that the sampler
    applies: a domain it updates, the symmetries it needs, a colouring for checkerboard
    updates. Raises a located P502 otherwise."""
    model = derivation.model
    discrete = [n for n, f in model.fields.items() if f.domain.discrete and f.on == "sites"]
    if not discrete:
        _fail("P502", f"this sampler updates discrete fields (spin, binary, potts, integer) on sites; "
              f"model {model.name} has none", model.name_span,
              "continuous fields are sampled by hmc, langevin or mala")  # fmt: skip
    field = field or discrete[0]
    decl = model.fields[field]
    facts = entry.facts
    if facts.domains and decl.domain.kind not in facts.domains:
        _fail("P502", f"{entry.name} updates need a {' or '.join(facts.domains)} field, "
              f"'{field}' is {decl.domain}", decl.span, "use metropolis or heatbath")  # fmt: skip
    declared = {s.name for s in model.symmetries if s.active}
    for needed in facts.symmetries:
        if needed not in declared:
            _fail("P502", f"{entry.name} updates need the {needed.replace('_', '-')} symmetry; "
                  f"declare 'symmetry {needed}' (it is verified against the energy)",
                  model.name_span)  # fmt: skip
    if getattr(options, "update", None) == "checkerboard" and derivation.colouring(field) is None:
        _fail("P502", "no colouring of this interaction graph exists for checkerboard updates",
              None, "use update = random (or auto)")  # fmt: skip
    return field


def measured_expressions(derivation: LatticeDerivation, lattice_sum,
                         measures: Sequence[MeasureIR]) -> MeasuredExpressions:  # fmt: skip
    """The walker of a run's measured expressions, every name checked: an expression is
    walked (the runtime then lowers it), a bare name must be a catalogued observable."""
    model = derivation.model
    walker = MeasuredExpressions(derivation.lattice, model.definitions, lattice_sum,
                                 model.params, FLUCTUATIONS)  # fmt: skip
    for m in measures:
        if m.expr is None and CATALOGUE.observables.get(m.name, "lattice") is None:
            known = set(CATALOGUE.observables.names("lattice"))
            _fail("P208", f"unknown observable '{m.name}'", m.span,
                  did_you_mean(m.name, known) or "built-in observables: "
                  + ", ".join(sorted(known)))  # fmt: skip
    return walker


def check_measures(derivation: LatticeDerivation, measures: Sequence[MeasureIR]) -> None:
    """Every measured expression of a lattice model lowers to sympy; every name is known."""
    walker = measured_expressions(derivation, derivation.lattice_sum, measures)
    for m in measures:
        if m.expr is not None:
            walker.walk(m.expr)


def check_sample(task: TaskIR, program) -> None:
    """Everything ``run`` would reject, without sampling: the plan, the model derived at the
    first point (symmetries verified), the sampler's applicability, every measure. Independent
    parts are checked independently and their errors raised together; the measures need only
    the model, not the plan."""
    run = RunState.of(task)
    checker = program.checker_for(task)
    errors = ErrorCollector()
    plan = None
    with errors:
        plan = plan_sample(run, checker, {})
    known = set(CATALOGUE.observables.names("lattice"))
    for m in run.measures:
        if m.expr is None and CATALOGUE.observables.get(m.name, "lattice") is None:
            with errors:
                _fail("P208", f"unknown observable '{m.name}'", m.span,
                      did_you_mean(m.name, known) or "built-in observables: "
                      + ", ".join(sorted(known)))  # fmt: skip
    derivation = None
    with errors:  # a broken model is reported by its own check: nothing here depends on it
        point, spans = plan.first_point() if plan is not None else _first_point(run, checker)
        derivation = program.derive(checker.instantiate(point, spans))
    if derivation is not None:
        if plan is not None:
            with errors:
                sampled_field(plan.entry, plan.options, derivation)
        walker = MeasuredExpressions(derivation.lattice, derivation.model.definitions,
                                     derivation.lattice_sum, derivation.model.params,
                                     FLUCTUATIONS)  # fmt: skip
        for m in run.measures:
            if m.expr is not None:
                with errors:
                    walker.walk(m.expr)
    errors.raise_if_any()


def _first_point(run: RunState, checker: ModelChecker) -> tuple[dict[str, Any], dict[str, Any]]:
    """The model arguments at the first scan point when the plan failed (scans of names that
    are not parameters are the plan's errors, left out here)."""
    params = set(checker.param_names)
    point, spans = first_model_args(run, params)
    for s in run.scans:
        if s.name in params and s.values:
            point[s.name], spans[s.name] = s.values[0], s.span
    return point, spans


def bind_checks(catalogue: Catalogue) -> None:
    """Attach the static check of lattice sampling to the shared ``sample`` task."""
    catalogue.tasks.bind_check("sample", TaskCheck(check_sample))


__all__ = ["SamplePlan", "THERMAL", "bind_checks", "check_measures", "check_sample",
           "first_model_args", "measured_expressions", "plan_sample", "resolve_overrides",
           "sampled_field"]  # fmt: skip
