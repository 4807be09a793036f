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

from physml_lang.catalogue import Catalogue
from physml_lang.catalogue.gauge_flows import FAMILY, ReverseKLOptions
from physml_lang.check.model import option_names
from physml_lang.diagnostics import Diagnostic, PhysmlError, Span
from physml_lang.ir.program import LearnerIR
from physml_lang.ir.task import TaskIR

from ..tasks import RunState, TaskCheck, option_values
from .gauge import Measure, gauge_of, measures
from .parameters import Settable, apply_sets, check_scanned
from .training import read_reference, read_training

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


def plan_gauge_flow(run: RunState, program, sets: dict[str, Any] | None = None,
                    realise=None) -> GaugeFlowPlan:  # fmt: skip
    """Validate a flow run of a gauge model with its ``--set`` values and realise its models
    (``realise``: a model IR to its derivation (check, the default) or compiled model (run))."""
    sets = dict(sets or {})
    training = read_training(
        run, program, FAMILY, "reverse_kl", ReverseKLOptions, sets, options_example="reverse_kl(steps = 1000)",
        declare_example="learner f = gauge_flow(layers = 16) respecting gauge, translation",
        refusal="reverse_kl on a gauge model", learners=FLOW_LEARNERS,
        refusal_hint="gauge flows: " + ", ".join(FLOW_LEARNERS),
        symmetry_hint="gauge_flow respects gauge, translation")  # fmt: skip
    decl, entry = training.learner, training.entry
    objective_opts, learner_opts = training.objective_options, training.learner_options
    objective_span = training.objective_span
    apply_sets(run, sets, program.checker_for(run.ir).param_names, [
        Settable("training option", option_names(ReverseKLOptions), objective_opts),
        Settable("learner option", option_names(entry.schema), learner_opts)])  # fmt: skip
    objective = training.options
    lopts = option_values(learner_opts, entry.schema, decl.call.span, f"learner {decl.call.name}")
    if lopts.kernel % 2 == 0:
        span = next((k.span for k in decl.call.kwargs if k.name == "kernel"), decl.call.span)
        _fail("P424", f"kernel must be odd (a centred circular convolution), got {lopts.kernel}",
              span, "kernel = 3")  # fmt: skip
    reference, rspan = read_reference(run, "flow")
    plan = GaugeFlowPlan(run, decl, lopts, objective, objective_span, reference, rspan)
    plan.run_via = training.objective_call
    _points(run, program, realise or program.derive, plan)
    return plan


def _points(run: RunState, program, realise, plan: GaugeFlowPlan) -> None:
    checker = program.checker_for(run.ir)
    params = set(checker.param_names)
    args = {k: v for k, (v, _) in run.model_args.items()}
    spans = {k: s for k, (_, s) in run.model_args.items()}
    check_scanned(run, checker, params,
                  "gauge models scan their parameters, e.g. scan beta in [1.0, 2.0]")
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
        _check_train_extent(plan, g.shape)
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


def _check_train_extent(plan: GaugeFlowPlan, shape) -> None:
    """``train_extent``: a torus the masks tile (a multiple of 4) that tiles the lattice."""
    T = plan.objective.train_extent
    if not T:
        return
    span = next((k.span for k in getattr(plan.run_via, "kwargs", ())
                 if k.name == "train_extent"), plan.objective_span)  # fmt: skip
    if T % PERIOD:
        _fail("P424", f"train_extent must be a multiple of {PERIOD} (the masks' period), got "
              f"{T}", span, "train_extent = 8")  # fmt: skip
    if any(L % T for L in shape):
        _fail("P424", f"train_extent = {T} does not divide the lattice "
              f"({' x '.join(map(str, shape))}): the training torus tiles the model's", span,
              "train_extent = 0 (the model's own lattice), or a multiple of 4 dividing every "
              "extent")  # fmt: skip


def check_gauge_flow(task: TaskIR, program) -> None:
    """The static check of a flow run of a gauge model."""
    plan_gauge_flow(RunState.of(task), program)


def bind_checks(catalogue: Catalogue) -> None:
    """Attach the static check of the flow [gauge] task."""
    catalogue.tasks.bind_check("flow", TaskCheck(check_gauge_flow), family=FAMILY)


__all__ = ["FlowPoint", "GaugeFlowPlan", "bind_checks", "check_gauge_flow", "plan_gauge_flow"]
