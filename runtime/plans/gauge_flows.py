"""Static plan of a ``flow`` run of a gauge model (torch-free): the gauge flow it trains, the
reverse-KL options, the measures, the reference and every model of its scan, checked without
running.

    learner f = gauge_flow(layers = 16) respecting gauge, translation
    run flow { model U1(L = 8, beta = 2.0)  train f via reverse_kl(steps = 1000)  reference exact }

A gauge flow learns 2D U(1) link fields without matter on a periodic lattice whose extents are
multiples of 4 (the period of its stripe masks). ``respecting gauge`` needs the model's own
``symmetry gauge`` (verified against the action), ``respecting translation`` its
``symmetry translation`` (the flow commutes with translations by multiples of 4). ``reference
exact`` compares with the exact torus values of the Wilson action (log Z, <cos P>, <Q^2>).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from physml_lang.catalogue import CATALOGUE, Catalogue
from physml_lang.catalogue.gauge_flows import FAMILY, ReverseKLOptions
from physml_lang.check.model import option_names
from physml_lang.diagnostics import Diagnostic, PhysmlError, Span, did_you_mean
from physml_lang.ir.program import LearnerIR
from physml_lang.ir.task import CallValue, TaskIR, Word

from ..tasks import RunState, TaskCheck, option_values, plain
from .gauge import Measure, gauge_of, measures
from .parameters import Located, Settable, apply_sets

PERIOD = 4  # the stripe masks' period across each direction
FLOW_LEARNERS = ("gauge_flow",)


def _fail(code: str, msg: str, span: Span | None = None, hint: str | None = None):
    raise PhysmlError(Diagnostic(code, msg, span, hint))


@dataclass
class FlowPoint:
    """One point of the scan: its scanned values and the model realised there."""

    values: dict[str, Any]
    model: Any  # derivation (check) or compiled model (run)
    shape: tuple[int, int]
    beta: float | None  # the Wilson coupling, where the action is of the Wilson form


@dataclass
class GaugeFlowPlan:
    """A flow run of a gauge model, validated."""

    run: RunState
    learner: LearnerIR
    learner_options: BaseModel
    objective: ReverseKLOptions
    objective_span: Span | None
    reference: str  # "exact" or "none"
    reference_span: Span | None
    points: list[FlowPoint] = field(default_factory=list)
    measures: list[Measure] = field(default_factory=list)  # of the first point (names, exprs)
    run_via: Any = None  # the objective's call (spans of its options)


def _train_statement(run: RunState):
    stmt = next(s for s in run.statements if s.word == "train")
    item = next(it for it in stmt.items if it.kind == "via")
    return stmt, item


def plan_gauge_flow(run: RunState, program, sets: dict[str, Any] | None = None,
                    realise=None) -> GaugeFlowPlan:  # fmt: skip
    """Validate a flow run of a gauge model with its ``--set`` values and realise its models
    (``realise``: a model IR to its derivation (check, the default) or compiled model (run))."""
    stmt, item = _train_statement(run)
    if not isinstance(item.value, Word):
        _fail("P103", "train NAME via reverse_kl(...): one declared learner", item.value_span)
    via: CallValue | Word = item.via
    objective_span = getattr(via, "span", None) or stmt.span
    objective_opts: Located = {}
    if isinstance(via, CallValue):
        if via.args:
            _fail("P318", "reverse_kl takes named options: reverse_kl(steps = 1000)", via.span)
        objective_opts = {o.name: (plain(o.value), o.span) for o in via.kwargs}
    sets = dict(sets or {})
    params = set(program.checker_for(run.ir).param_names)
    taken = params | {s.name for s in run.scans}
    for k in [k for k in sets if k in ReverseKLOptions.model_fields and k not in taken]:
        objective_opts[k] = (sets.pop(k), None)  # --set of a training option
    name = item.value.name
    decl = program.learners.get(name)
    if decl is None:
        _fail("P207", f"unknown learner '{name}'", item.value_span,
              did_you_mean(name, set(program.learners))
              or "declare it: learner f = gauge_flow(layers = 16) respecting gauge, translation")  # fmt: skip
    entry = CATALOGUE.learners.get(decl.call.name, FAMILY)
    if entry is None or decl.call.name not in FLOW_LEARNERS:
        _fail("P503", f"learner {name} = {decl.call.name}(...) cannot be trained by reverse_kl "
              "on a gauge model", item.value_span,
              "gauge flows: " + ", ".join(FLOW_LEARNERS))  # fmt: skip
    learner_opts: Located = {k.name: (plain(k.value), k.span) for k in decl.call.kwargs}
    apply_sets(run, sets, params, [
        Settable("training option", option_names(ReverseKLOptions), objective_opts),
        Settable("learner option", option_names(entry.schema), learner_opts)])  # fmt: skip
    objective = option_values(objective_opts, ReverseKLOptions, objective_span,
                              "objective reverse_kl")  # fmt: skip
    lopts = option_values(learner_opts, entry.schema, decl.call.span, f"learner {decl.call.name}")
    if lopts.kernel % 2 == 0:
        span = next((k.span for k in decl.call.kwargs if k.name == "kernel"), decl.call.span)
        _fail("P424", f"kernel must be odd (a centred circular convolution), got {lopts.kernel}",
              span, "kernel = 3")  # fmt: skip
    for sym, span in zip(decl.respecting, decl.respecting_spans):
        if sym not in entry.facts.symmetries:
            _fail("P501", f"learner {decl.call.name} cannot respect {sym}", span,
                  "gauge_flow respects gauge, translation")  # fmt: skip
    reference, rspan = "none", None
    for s in run.statements:
        if s.word == "reference":
            v = s.items[0].value if len(s.items) == 1 else None
            if not (isinstance(v, Word) and v.name in ("exact", "none")):
                _fail("P406", "a flow run's reference is 'exact' or 'none'", s.span)
            reference, rspan = v.name, s.span
    plan = GaugeFlowPlan(run, decl, lopts, objective, objective_span, reference, rspan)
    plan.run_via = via
    _points(run, program, realise or program.derive, plan)
    return plan


def _points(run: RunState, program, realise, plan: GaugeFlowPlan) -> None:
    checker = program.checker_for(run.ir)
    params = set(checker.param_names)
    args = {k: v for k, (v, _) in run.model_args.items()}
    spans = {k: s for k, (_, s) in run.model_args.items()}
    for s in run.scans:
        if s.name not in params:
            _fail("P205", f"cannot scan '{s.name}': it is not a parameter of model "
                  f"{checker.name}", s.span, did_you_mean(s.name, params)
                  or "gauge models scan their parameters, e.g. scan beta in [1.0, 2.0]")  # fmt: skip
    for name, (_, s) in run.lets.items():
        _fail("P205", f"'let {name}': a flow run takes the model's parameters as they are", s,
              "write the value in the model's arguments: model U1(L = 8, beta = 2.0)")  # fmt: skip
    where = run.model_span or run.span
    for combo in itertools.product(*[s.values for s in run.scans]) or [()]:
        a, sp = dict(args), dict(spans)
        for s, v in zip(run.scans, combo):
            a[s.name], sp[s.name] = v, s.span
        model = realise(checker.instantiate(a, sp))
        g = gauge_of(model)
        if g.group != "u1":
            _fail("P422", f"gauge flows learn U(1) links; model {checker.name} has {g.group} "
                  "links", where, "use a U(1) model (import U1), or sample it: sampler hmc(...)")  # fmt: skip
        if g.d != 2:
            _fail("P422", f"gauge flows learn 2D U(1) links; model {checker.name} is "
                  f"{g.d}-dimensional", where, "use the 2D model U1")  # fmt: skip
        if g.matter_domains:
            _fail("P422", f"gauge flows learn pure gauge fields; model {checker.name} has matter "
                  f"fields ({', '.join(sorted(g.matter_domains))})", where)  # fmt: skip
        bad = [L for L in g.shape if L % PERIOD]
        if bad:
            span = next((sp[k] for k in ("L", "L1", "L2") if sp.get(k) is not None), where)
            _fail("P424", f"gauge_flow's masks have period {PERIOD}: lattice extents must be "
                  f"multiples of {PERIOD}, got {' x '.join(map(str, g.shape))}", span,
                  "use L = 4, 8, 12, 16, ...")  # fmt: skip
        active = {s.name for s in g.model.symmetries if s.active}
        for sym, sspan in zip(plan.learner.respecting, plan.learner.respecting_spans):
            if sym not in active:
                _fail("P505", f"learner {plan.learner.name} respects {sym}, but model "
                      f"{checker.name} does not declare it (here)", sspan,
                      f"declare 'symmetry {sym}' in the model (it is verified against the "
                      f"action), or drop 'respecting {sym}'")  # fmt: skip
        if plan.objective.warm_start and not g.is_wilson:
            span = next((k.span for k in getattr(plan.run_via, "kwargs", ())
                         if k.name == "warm_start"), plan.objective_span)
            _fail("P502", "warm_start draws HMC configurations, and hmc needs a Wilson action",
                  span, "drop warm_start")  # fmt: skip
        if plan.reference == "exact" and not g.is_wilson:
            _fail("P423", "no exact reference is known here: the action is not of the Wilson "
                  "form", plan.reference_span, "write 'reference none'")  # fmt: skip
        ms = measures(g, run)
        for m in ms:
            m.check()
        if not plan.measures:
            plan.measures = ms
        beta = float(g.wilson_beta) if g.is_wilson else None
        plan.points.append(FlowPoint({s.name: v for s, v in zip(run.scans, combo)}, model,
                                     (int(g.shape[0]), int(g.shape[1])), beta))  # fmt: skip


def check_gauge_flow(task: TaskIR, program) -> None:
    """The static check of a flow run of a gauge model."""
    plan_gauge_flow(RunState.of(task), program)


def bind_checks(catalogue: Catalogue) -> None:
    """Attach the static check of the flow [gauge] task."""
    catalogue.tasks.bind_check("flow", TaskCheck(check_gauge_flow), family=FAMILY)


__all__ = ["FlowPoint", "GaugeFlowPlan", "bind_checks", "check_gauge_flow", "plan_gauge_flow"]
