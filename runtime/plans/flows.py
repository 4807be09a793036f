"""Static plan of a ``flow`` run of a continuous field (torch-free): the coupling flow it trains,
the reverse-KL options, the measured observables and every model of its scan, checked without
running.

    learner f = coupling_flow(layers = 8, kind = affine) respecting translation, spin_flip
    run r { model Phi4Lattice(L = 8)  train f via reverse_kl(steps = 2000)  measure abs_magnetization }

A flow run trains one declared ``coupling_flow`` learner of the one real field on the sites of a
periodic Bravais lattice (one site per cell, 1 to 3 dimensions) with even extents (the
checkerboard of its coupling layers must close around the torus); ``respecting spin_flip``
needs the model's own ``symmetry spin_flip`` (verified against the action): an odd flow gives
q(-phi) = q(phi), which cannot approach p otherwise. The weight is exp(-S) with the action as
written (no temperature).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from physml_lang.catalogue import CATALOGUE, Catalogue
from physml_lang.catalogue.flows import (
    FAMILY,
    FLOW_DEFAULTS,
    FLOW_OBSERVABLES,
    CouplingFlowOptions,
    ReverseKLOptions,
)
from physml_lang.check.model import option_names
from physml_lang.diagnostics import Diagnostic, PhysmlError, Span, did_you_mean
from physml_lang.ir.program import LearnerIR
from physml_lang.ir.task import CallValue, TaskIR, Word

from ..tasks import RunState, TaskCheck, option_values, plain
from .parameters import Located, Settable, apply_sets

MAX_DIM = 3  # periodic convolutions in 1, 2 or 3 dimensions


def _fail(code: str, msg: str, span: Span | None = None, hint: str | None = None):
    raise PhysmlError(Diagnostic(code, msg, span, hint))


@dataclass
class FlowPoint:
    """One scan point: its scanned values and its model (derivation or compiled model)."""

    values: dict[str, Any]
    model: Any
    shape: tuple[int, ...]
    n_sites: int


@dataclass
class FlowPlan:
    """A flow run, validated."""

    learner: LearnerIR
    learner_options: CouplingFlowOptions
    odd: bool  # respecting spin_flip
    objective: ReverseKLOptions
    objective_span: Span | None
    measures: list[str]
    points: list[FlowPoint] = field(default_factory=list)


def _train_statement(run: RunState):
    stmt = next(s for s in run.statements if s.word == "train")
    item = next(it for it in stmt.items if it.kind == "via")
    return stmt, item


def plan_flow(run: RunState, program, sets: dict[str, Any] | None = None,
              realise=None) -> FlowPlan:  # fmt: skip
    """Validate a flow run with its ``--set`` values and realise its models (``realise``: a
    model IR to its derivation (check, the default) or its compiled model (run))."""
    stmt, item = _train_statement(run)
    if not isinstance(item.value, Word):
        _fail("P103", "train NAME via reverse_kl(...): one declared learner", item.value_span)
    via: CallValue | Word = item.via
    objective_span = getattr(via, "span", None) or stmt.span
    objective_opts: Located = {}
    if isinstance(via, CallValue):
        if via.args:
            _fail("P318", "reverse_kl takes named options: reverse_kl(steps = 2000)", via.span)
        objective_opts = {o.name: (plain(o.value), o.span) for o in via.kwargs}
    name = item.value.name
    decl = program.learners.get(name)
    if decl is None:
        _fail("P207", f"unknown learner '{name}'", item.value_span,
              did_you_mean(name, set(program.learners))
              or "declare it: learner f = coupling_flow(layers = 8) respecting spin_flip")  # fmt: skip
    entry = CATALOGUE.learners.get(decl.call.name, FAMILY)
    if entry is None or decl.of != "learner":
        known = CATALOGUE.learners.names(FAMILY, shared=False)
        _fail("P503", f"learner {name} = {decl.call.name}(...) cannot be trained by reverse KL "
              "on a continuous field", item.value_span, "normalising flows of fields: "
              + ", ".join(known))  # fmt: skip
    learner_opts: Located = {k.name: (plain(k.value), k.span) for k in decl.call.kwargs}
    checker = program.checker_for(run.ir)
    apply_sets(run, dict(sets or {}), checker.param_names, [
        Settable("training option", option_names(ReverseKLOptions), objective_opts),
        Settable("learner option", option_names(entry.schema), learner_opts)])  # fmt: skip
    objective = option_values(objective_opts, ReverseKLOptions, objective_span,
                              "objective reverse_kl")  # fmt: skip
    lopts = option_values(learner_opts, entry.schema, decl.call.span,
                          f"learner {decl.call.name}")  # fmt: skip
    if lopts.kernel % 2 == 0:
        span = next((k.span for k in decl.call.kwargs if k.name == "kernel"), decl.call.span)
        _fail("P424", f"kernel = {lopts.kernel}: a periodic convolution kernel has an odd size",
              span, f"kernel = {lopts.kernel + 1}")  # fmt: skip
    if lopts.layers % 2:
        span = next((k.span for k in decl.call.kwargs if k.name == "layers"), decl.call.span)
        _fail("P424", f"layers = {lopts.layers}: checkerboard coupling layers come in pairs "
              "(each parity updated equally often)", span, f"layers = {lopts.layers + 1}")  # fmt: skip
    for sym, span in zip(decl.respecting, decl.respecting_spans):
        if sym not in entry.facts.symmetries:
            _fail("P501", f"learner {decl.call.name} cannot respect {sym}", span,
                  "coupling_flow respects translation (even shifts) and spin_flip")  # fmt: skip
    measures = []
    for m in run.measures or []:
        if m.expr is not None or m.name not in FLOW_OBSERVABLES:
            _fail("P208", f"a flow run measures built-in field observables; '{m.name}' is not "
                  "one", m.span, did_you_mean(m.name, set(FLOW_OBSERVABLES))
                  or "observables: " + ", ".join(FLOW_OBSERVABLES))  # fmt: skip
        measures.append(m.name)
    plan = FlowPlan(decl, lopts, "spin_flip" in decl.respecting, objective, objective_span,
                    measures or list(FLOW_DEFAULTS))  # fmt: skip
    plan.points = _points(run, program, realise or program.derive, plan)
    return plan


def _points(run: RunState, program, realise, plan: FlowPlan) -> list[FlowPoint]:
    checker = program.checker_for(run.ir)
    params = set(checker.param_names)
    args = {k: v for k, (v, _) in run.model_args.items()}
    spans = {k: s for k, (_, s) in run.model_args.items()}
    for s in run.scans:
        if s.name not in params:
            _fail("P205", f"cannot scan '{s.name}': it is not a parameter of model "
                  f"{checker.name}", s.span, did_you_mean(s.name, params)
                  or "a flow samples exp(-S) with the action as written: scan a model "
                  "parameter")  # fmt: skip
    for name, (_, s) in run.lets.items():
        if name not in params:
            _fail("P205", f"'let {name}': not a parameter of model {checker.name}", s,
                  did_you_mean(name, params))  # fmt: skip
        args.setdefault(name, run.lets[name][0])
        spans.setdefault(name, s)
    points = []
    for combo in itertools.product(*[s.values for s in run.scans]) or [()]:
        a, sp = dict(args), dict(spans)
        for s, v in zip(run.scans, combo):
            a[s.name], sp[s.name] = v, s.span
        ir = checker.instantiate(a, sp)
        where = run.model_span or run.span
        if ir.kind != FAMILY:
            _fail("P422", f"a flow run learns a continuous field (real on sites, with an "
                  f"action); model {checker.name} is a {ir.kind.replace('_', ' ')} model", where,
                  "declare 'field phi: real on sites' and an 'action S = ...'")  # fmt: skip
        if plan.odd and "spin_flip" not in {s.name for s in ir.symmetries if s.active}:
            span = plan.learner.respecting_spans[plan.learner.respecting.index("spin_flip")]
            _fail("P505", f"learner {plan.learner.name} respects spin_flip, but model "
                  f"{checker.name} does not declare it (here)", span,
                  "declare 'symmetry spin_flip' in the model (it is verified against the "
                  "action), or drop 'respecting spin_flip'")  # fmt: skip
        model = realise(ir)
        lat = model.lattice
        if model.domain != "real":
            _fail("P503", f"learner {plan.learner.name} = coupling_flow(...) acts on real "
                  f"fields; field {model.field} of model {checker.name} is an {model.domain} "
                  "field", where)  # fmt: skip
        if lat.graph or lat.basis != 1 or not lat.all_periodic or not 1 <= lat.dim <= MAX_DIM:
            _fail("P503", f"learner {plan.learner.name} = coupling_flow(...) runs periodic "
                  f"convolutions over a periodic 1D-{MAX_DIM}D lattice with one site per cell; "
                  f"model {checker.name} lives on another geometry", where,
                  "use a periodic chain, square or cubic lattice")  # fmt: skip
        shape = tuple(int(n) for n in model.shape)
        if any(n % 2 for n in shape):
            size = next((sp[k] for k in ("L", "N") if k in sp and sp[k] is not None), None)
            _fail("P424", f"lattice {list(shape)}: a checkerboard coupling flow needs even "
                  "extents (the checkerboard must close around the periodic lattice)",
                  size or where, "use an even lattice size, e.g. L = "
                  f"{next(n for n in shape if n % 2) + 1}")  # fmt: skip
        n = 1
        for e in shape:
            n *= e
        points.append(FlowPoint({s.name: v for s, v in zip(run.scans, combo)}, model, shape, n))
    return points


def check_flow(task: TaskIR, program) -> None:
    """The static check of a flow run."""
    plan_flow(RunState.of(task), program)


def bind_checks(catalogue: Catalogue) -> None:
    """Attach the static check of the field family's flow task."""
    catalogue.tasks.bind_check("flow", TaskCheck(check_flow), family=FAMILY)


__all__ = ["FlowPlan", "FlowPoint", "bind_checks", "check_flow", "plan_flow"]

