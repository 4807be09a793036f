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
from physml_lang.ir.task import TaskIR

from ..tasks import RunState, TaskCheck, option_values
from .parameters import Settable, apply_sets, check_scanned
from .training import read_training

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
    mixture: bool = False  # respecting spin_flip as the sign mixture (q0(phi) + q0(-phi)) / 2
    train_extent_span: Span | None = None


def plan_flow(run: RunState, program, sets: dict[str, Any] | None = None,
              realise=None) -> FlowPlan:  # fmt: skip
    """Validate a flow run with its ``--set`` values and realise its models (``realise``: a
    model IR to its derivation (check, the default) or its compiled model (run))."""
    sets = dict(sets or {})
    training = read_training(
        run, program, FAMILY, "reverse_kl", ReverseKLOptions, sets,
        options_example="reverse_kl(steps = 2000)",
        declare_example="learner f = coupling_flow(layers = 8) respecting spin_flip",
        refusal="reverse KL on a continuous field",
        refusal_hint="normalising flows of fields: "
        + ", ".join(CATALOGUE.learners.names(FAMILY, shared=False)),
        symmetry_hint="coupling_flow respects translation (even shifts) and spin_flip")  # fmt: skip
    decl, entry, name = training.learner, training.entry, training.learner.name
    objective_opts, learner_opts = training.objective_options, training.learner_options
    objective_span, objective = training.objective_span, training.options
    checker = program.checker_for(run.ir)
    apply_sets(run, sets, checker.param_names, [
        Settable("training option", option_names(ReverseKLOptions), objective_opts),
        Settable("learner option", option_names(entry.schema), learner_opts)])  # fmt: skip
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
    measures = []
    for m in run.measures or []:
        if m.expr is not None or m.name not in FLOW_OBSERVABLES:
            _fail("P208", f"a flow run measures built-in field observables; '{m.name}' is not "
                  "one", m.span, did_you_mean(m.name, set(FLOW_OBSERVABLES))
                  or "observables: " + ", ".join(FLOW_OBSERVABLES))  # fmt: skip
        measures.append(m.name)
    flip = "spin_flip" in decl.respecting
    if lopts.spin_flip == "mixture" and not flip:
        span = next((k.span for k in decl.call.kwargs if k.name == "spin_flip"),
                    decl.call.span)  # fmt: skip
        _fail("P424", "spin_flip = mixture: the sign mixture realises 'respecting spin_flip', "
              f"which learner {name} does not declare", span,
              "add 'respecting spin_flip', or drop the option")  # fmt: skip
    mixture = flip and lopts.spin_flip == "mixture"
    plan = FlowPlan(decl, lopts, flip and not mixture, objective, objective_span,
                    measures or list(FLOW_DEFAULTS), mixture=mixture,
                    train_extent_span=objective_opts.get("train_extent", (0, objective_span))[1])  # fmt: skip
    plan.points = _points(run, program, realise or program.derive, plan)
    return plan


def _points(run: RunState, program, realise, plan: FlowPlan) -> list[FlowPoint]:
    checker = program.checker_for(run.ir)
    params = set(checker.param_names)
    args = {k: v for k, (v, _) in run.model_args.items()}
    spans = {k: s for k, (_, s) in run.model_args.items()}
    check_scanned(run, checker, params, "a flow samples exp(-S) with the action as written: "
                  "scan a model parameter")
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
        if (plan.odd or plan.mixture) and "spin_flip" not in {
                s.name for s in ir.symmetries if s.active}:  # fmt: skip
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
        extent = plan.objective.train_extent
        if extent and (extent % 2 or any(e % extent for e in shape)):
            _fail("P424", f"train_extent = {extent}: the training torus must have an even extent "
                  f"that divides the lattice {list(shape)} (the field is tiled over it)",
                  plan.train_extent_span, "train_extent = 0 (the model's own size), or an "
                  "even divisor of every extent")  # fmt: skip
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

