"""Static plans (torch-free): The Hopfield network's phase diagram in (alpha, T): paramagnet, retrieval and spin glass,
against the Amit-Gutfreund-Sompolinsky lines.

    run diagram {
        model Hopfield(N = 100)
        phases xi via tempering(T = linspace(0.9, 1.9, 11), sweeps = 2000), alpha = [0.1]
        scan N in [50, 100, 200]
    }

A phases run needs a Hopfield model: a complete graph of N sites, one spin field on them, the
patterns ``xi`` as spin data of shape [P, N], and model parameters ``N`` and ``P`` (the run sets
P = round(alpha N) for each alpha). With ``disorder > 1`` the pattern sets are the model's data
realised with its parameter ``seed`` = seed, seed + 1, ...: the model needs that parameter.
The energy is checked against the Hebb form E = -(N/2) sum_mu m_mu^2 + P/2 when the run compiles
the model (a number check, at run time).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import Any

from physml_lang.catalogue import Catalogue
from physml_lang.catalogue.hopfield import PhasesOptions, TemperingOptions
from physml_lang.compiler.arrays import MAX_ARRAY_ELEMENTS
from physml_lang.diagnostics import Diagnostic, PhysmlError, Span, did_you_mean
from physml_lang.ir.model import GraphIR
from physml_lang.ir.task import CallValue, TaskIR, Word

from ..data import data_shape
from ..tasks import RunState, TaskCheck, option_values, plain
from .parameters import Located, Settable, apply_sets, check_scanned

USAGE = ("phases xi via tempering(T = linspace(0.9, 1.9, 11), sweeps = 2000, burn_in = 500), "
         "alpha = [0.05, 0.1, 0.2], disorder = 32")  # fmt: skip
MAX_CHAINS_X_SITES = 1 << 31  # chains x sites of one point: beyond this a run is unreasonable


def _fail(code: str, msg: str, span: Span | None = None, hint: str | None = None):
    raise PhysmlError(Diagnostic(code, msg, span, hint))


@dataclass
class PhasePoint:
    """One (model parameters, alpha) point: ``args`` the model's arguments (N and P set),
    ``tempering`` whether the tempering chains run (alpha in ``alpha``) or only the retrieval
    chains (alpha in ``capacity``)."""

    values: dict[str, Any]  # the scanned values
    args: dict[str, Any]
    N: int
    P: int
    alpha: float  # the requested alpha (P / N is the realised one)
    tempering: bool


@dataclass
class PhasesPlan:
    """A phases run, validated."""

    patterns: str
    patterns_span: Span | None
    tempering: TemperingOptions
    tempering_span: Span | None
    options: PhasesOptions
    statement_span: Span | None
    field: str = ""
    points: list[PhasePoint] = dc_field(default_factory=list)
    seed_param: str | None = None


def _statement(run: RunState):
    return next(s for s in run.statements if s.word == "phases")


def plan_phases(run: RunState, program, sets: dict[str, Any] | None = None) -> PhasesPlan:
    """Validate a phases run with its ``--set`` values; every model of its points is derived
    (torch-free) and checked to be a Hopfield network."""
    stmt = _statement(run)
    vias = [it for it in stmt.items if it.kind == "via"]
    if len(vias) != 1 or not isinstance(vias[0].value, Word):
        _fail("P103", "phases takes the patterns and the dynamics: phases xi via tempering(...)",
              stmt.span, USAGE)  # fmt: skip
    item = vias[0]
    method = item.via
    mname = method.name if isinstance(method, Word | CallValue) else None
    mspan = getattr(method, "span", None) or item.span
    if mname != "tempering":
        _fail("P203", f"phases: unknown dynamics '{mname}'", mspan,
              did_you_mean(mname or "", {"tempering"}) or "phases ... via tempering(T = [...])")
    topts: Located = {}
    if isinstance(method, CallValue):
        if method.args:
            _fail("P318", "tempering takes named options: tempering(T = [1.0, 1.2], sweeps = "
                  "2000)", method.span)  # fmt: skip
        topts = {o.name: (plain(o.value), o.span) for o in method.kwargs}
    popts: Located = {}
    for it in stmt.items:
        if it.kind == "via":
            continue
        if not it.name:
            _fail("P103", "phases: options are named (alpha = [0.1], disorder = 32)", it.span,
                  USAGE)  # fmt: skip
        popts[it.name] = (plain(it.value), it.span)
    checker = program.checker_for(run.ir)
    params = list(checker.param_names)
    apply_sets(run, dict(sets or {}), params, [
        Settable.options("tempering option", TemperingOptions, topts),
        Settable.options("phases option", PhasesOptions, popts)])  # fmt: skip
    for k in ("T",):
        if k in topts and not isinstance(topts[k][0], list | tuple):
            topts[k] = ([topts[k][0]], topts[k][1])
    for k in ("alpha", "retrieval", "capacity"):
        if k in popts and not isinstance(popts[k][0], list | tuple):
            popts[k] = ([popts[k][0]], popts[k][1])
    tempering = option_values(topts, TemperingOptions, mspan, "tempering")
    options = option_values(popts, PhasesOptions, stmt.span, "phases")
    if tempering.burn_in >= tempering.sweeps:
        _fail("P425", f"burn_in = {tempering.burn_in} leaves no sweep to measure "
              f"(sweeps = {tempering.sweeps})", topts.get("burn_in", (None, mspan))[1] or mspan,
              "burn_in < sweeps")  # fmt: skip
    if tempering.exchange_every > tempering.sweeps:
        _fail("P425", "exchange_every exceeds sweeps", topts["exchange_every"][1] or mspan)
    plan = PhasesPlan(item.value.name, item.value_span, tempering, mspan, options, stmt.span)
    for name in ("N", "P"):
        if name not in params:
            _fail("P422", f"a phases run sets the model parameters N and P (P = round(alpha N)); "
                  f"model {checker.name} has no parameter '{name}'", run.model_span or run.span,
                  "declare model Hopfield(N: int = 100, P: int = 10, seed: int = 1) "
                  "(see stdlib/hopfield.phys)")  # fmt: skip
    check_scanned(run, checker, params, "scan N; alphas and temperatures are options of phases")
    for s in run.scans:
        if s.name in ("P", "seed"):
            _fail("P205", f"a phases run sets '{s.name}' itself", s.span,
                  "scan N, and give alpha = [...] (P = round(alpha N)); disorder = D for "
                  "pattern sets")  # fmt: skip
    if options.disorder > 1:
        if "seed" not in params:
            _fail("P425", f"disorder = {options.disorder} pattern sets need a model parameter "
                  f"'seed' that the patterns depend on; model {checker.name} has none",
                  popts["disorder"][1] if "disorder" in popts else stmt.span,
                  "declare data xi: spin[P, N] = random(seed = seed) with a parameter "
                  "seed, or write disorder = 1")  # fmt: skip
        plan.seed_param = "seed"
    plan.points = _points(run, program, plan)
    return plan


def _points(run: RunState, program, plan: PhasesPlan) -> list[PhasePoint]:
    checker = program.checker_for(run.ir)
    args = {k: v for k, (v, _) in run.model_args.items()}
    spans = {k: s for k, (_, s) in run.model_args.items()}
    opts = plan.options
    alphas = [(a, True) for a in opts.alpha] + [(a, False) for a in opts.capacity
                                                   if a not in opts.alpha]  # fmt: skip
    points: list[PhasePoint] = []
    checked: set[tuple] = set()
    derived: set[int] = set()  # sizes N whose model was derived (once: P only sizes the data)
    for combo in itertools.product(*[s.values for s in run.scans]) or [()]:
        a, sp = dict(args), dict(spans)
        for s, v in zip(run.scans, combo):
            a[s.name], sp[s.name] = v, s.span
        base = checker.instantiate(a, sp)
        N = base.values["N"]
        if not isinstance(N, int) or N < 2:
            _fail("P425", f"N = {N!r}: a phases run needs an integer N >= 2",
                  sp.get("N") or run.model_span)  # fmt: skip
        for alpha, tempering in alphas:
            P = max(1, round(alpha * N))
            point_args = {**a, "P": P}
            key = tuple(sorted((k, repr(v)) for k, v in point_args.items()))
            if key not in checked:
                checked.add(key)
                if P * N > MAX_ARRAY_ELEMENTS:
                    _fail("P407", f"this array would have {P * N:.3g} entries ({P} x {N}), more "
                          f"than physml builds ({MAX_ARRAY_ELEMENTS:.3g}: 2 GiB)",
                          sp.get("N") or run.model_span, f"the patterns {plan.patterns} at N = "
                          f"{N}, alpha = {alpha:g}: use a smaller N or alpha")  # fmt: skip
                _check_model(run, program, plan, checker.instantiate(point_args, sp), N, P,
                             derive=N not in derived)  # fmt: skip
                derived.add(N)
            chains = opts.disorder * ((2 * len(plan.tempering.T) if tempering else 0)
                                      + len(opts.retrieval))  # fmt: skip
            if chains * N > MAX_CHAINS_X_SITES:
                _fail("P409", f"N = {N}, alpha = {alpha:g}: {chains} chains of {N} spins are too "
                      "many", plan.statement_span, "fewer disorder samples or temperatures")
            points.append(PhasePoint({s.name: v for s, v in zip(run.scans, combo)}, point_args,
                                     N, P, alpha, tempering))  # fmt: skip
    if not points or (not any(p.tempering for p in points) and not plan.options.retrieval):
        _fail("P425", "phases: nothing to measure", plan.statement_span,
              "give alpha = [...] (tempering) or capacity = [...] with retrieval = [0]")
    return points


def _check_model(run: RunState, program, plan: PhasesPlan, ir, N: int, P: int,
                 derive: bool = True) -> None:  # fmt: skip
    """The model of a point is a Hopfield network: complete graph, one spin field on its
    sites, spin patterns [P, N]; ``derive``: also derive it (once per N: the derivation,
    which realises the patterns and the couplings, does not depend on P otherwise)."""
    span = run.model_span or run.span
    name = ir.name
    hint = "see stdlib/hopfield.phys: graph complete(N), field s: spin on sites, data xi: " \
           "spin[P, N], the Hebb energy"  # fmt: skip
    if not (isinstance(ir.lattice, GraphIR) and ir.lattice.kind == "complete"):
        _fail("P422", f"a phases run needs a Hopfield network on a complete graph; model {name} "
              "is not on 'graph complete(N)'", span, hint)  # fmt: skip
    spins = [f for f in ir.fields if f.on == "sites"]
    if len(ir.fields) != 1 or len(spins) != 1 or spins[0].domain.kind != "spin":
        _fail("P422", f"a phases run samples one spin field on the sites; model {name} has "
              f"{len(ir.fields)} field(s)", span, hint)  # fmt: skip
    plan.field = spins[0].name
    data = {d.name: d for d in ir.data}
    decl = data.get(plan.patterns)
    if decl is None:
        _fail("P203", f"model {name} has no data '{plan.patterns}'", plan.patterns_span,
              did_you_mean(plan.patterns, set(data)) or
              (f"its data: {', '.join(data)}" if data else "declare data xi: spin[P, N] = "
               "random(seed = seed)"))  # fmt: skip
    if decl.domain.kind != "spin":
        _fail("P422", f"the patterns {decl.name} must be spin data (+-1), not "
              f"{decl.domain.kind}", plan.patterns_span)  # fmt: skip
    if derive:
        n = program.derive(ir).lattice.n_sites
        if n != N:
            _fail("P422", f"model {name} has {n} sites but N = {N}", span, hint)
    shape = data_shape(decl, ir.values)
    if shape != (P, N):
        _fail("P422", f"the patterns {decl.name} have shape {shape}; a phases run needs "
              f"[P, N] = [{P}, {N}]", plan.patterns_span, hint)  # fmt: skip


def check_phases(task: TaskIR, program) -> None:
    """The static check of a phases run."""
    plan_phases(RunState.of(task), program)


def bind_checks(catalogue: Catalogue) -> None:
    """Attach the static checks of this family's tasks."""
    catalogue.tasks.bind_check("phases", TaskCheck(check_phases))


__all__ = ["PhasePoint", "PhasesPlan", "bind_checks", "check_phases", "plan_phases"]
