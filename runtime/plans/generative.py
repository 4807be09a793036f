"""Static plan of a ``van`` run (torch-free): the learner it trains, the objective's options, the
reference and every model of its scan, checked without running.

    learner q = made(hidden = 64) respecting spin_flip
    run van { model Ising(L = 6)  train q via free_energy(beta = 0.44)  reference exact }

A van run trains one declared ``made`` learner over the one discrete field of a classical
lattice model; respecting spin_flip needs the model's own ``symmetry spin_flip`` (verified
against the energy), since a flip-averaged q cannot approach a distribution without it; likewise
respecting translation / point_group (averaging q over the lattice's translations / rotations
and reflections) needs the model's own declaration and a periodic lattice whose group is known.
``reference exact`` compares with the exact free energy: exact enumeration where q^N is small,
Kaufman's formula for the uniform nearest-neighbour Ising model on a periodic square lattice.
``sampler nmcmc(chains = 16, sweeps = 2000, burn_in = 100)`` with ``measure ...`` measures the
lattice observables with independence-Metropolis chains proposing samples of the trained q.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydantic import BaseModel

from physml_lang.catalogue import CATALOGUE, Catalogue
from physml_lang.catalogue.generative import FAMILY, FreeEnergyOptions, NMCMCOptions
from physml_lang.check.model import option_names
from physml_lang.compiler.derive.local import pair_couplings
from physml_lang.diagnostics import Diagnostic, PhysmlError, Span, did_you_mean
from physml_lang.ir.program import LearnerIR
from physml_lang.ir.task import CallValue, TaskIR, Word

from ..tasks import RunState, TaskCheck, option_values, plain
from .parameters import Located, Settable, apply_sets
from .sample import measured_expressions

MAX_ENUMERATION = 1 << 22  # configurations an exact reference enumerates
GROUPS = ("translation", "point_group")  # symmetries a learner respects by group averaging
MAX_GROUP = 1 << 16  # elements of a symmetry group a learner averages over


def _fail(code: str, msg: str, span: Span | None = None, hint: str | None = None):
    raise PhysmlError(Diagnostic(code, msg, span, hint))


@dataclass
class VANPoint:
    values: dict[str, Any]  # the scanned values of this point
    model: Any  # derivation (check) or compiled model (run)
    field: str
    q: int
    n_sites: int
    kaufman: float | None = None  # J of Kaufman's formula, where the reference needs it
    perms: np.ndarray | None = None  # (G, N) int64 site permutations of the averaged group


@dataclass
class VANPlan:
    """A van run, validated."""

    learner: LearnerIR
    learner_options: BaseModel
    flip_symmetric: bool
    objective: FreeEnergyOptions
    objective_span: Span | None
    reference: str  # "exact" or "none"
    reference_span: Span | None
    points: list[VANPoint] = field(default_factory=list)
    group: tuple[str, ...] = ()  # translation / point_group, averaged over
    nmcmc: NMCMCOptions | None = None  # sampler nmcmc(...): measure with neural MCMC chains
    nmcmc_span: Span | None = None
    measures: tuple = ()  # MeasureIR of the run's measure statements

    def group_order(self, point: VANPoint) -> int:
        """Elements the learner averages over at ``point`` (1: none; times 2 with spin_flip)."""
        g = 1 if point.perms is None else len(point.perms)
        return g * (2 if self.flip_symmetric and point.perms is not None else 1)


def _train_statement(run: RunState):
    stmt = next(s for s in run.statements if s.word == "train")
    item = next(it for it in stmt.items if it.kind == "via")
    return stmt, item


def plan_van(run: RunState, program, sets: dict[str, Any] | None = None,
             realise=None) -> VANPlan:  # fmt: skip
    """Validate a van run with its ``--set`` values and realise its models (``realise``: a
    model IR to its derivation (check, the default) or its compiled model (run))."""
    stmt, item = _train_statement(run)
    if not isinstance(item.value, Word):
        _fail("P103", "train NAME via free_energy(...): one declared learner", item.value_span)
    via: CallValue | Word = item.via
    objective_span = getattr(via, "span", None) or stmt.span
    objective_opts: Located = {}
    if isinstance(via, CallValue):
        if via.args:
            _fail("P318", "free_energy takes named options: free_energy(beta = 0.44)", via.span)
        objective_opts = {o.name: (plain(o.value), o.span) for o in via.kwargs}
    sets = dict(sets or {})
    taken = set(program.checker_for(run.ir).param_names) | {s.name for s in run.scans}
    for k in [k for k in sets if k in FreeEnergyOptions.model_fields and k not in taken]:
        objective_opts[k] = (sets.pop(k), None)  # --set of a training option
    objective = option_values(objective_opts, FreeEnergyOptions, objective_span,
                              "objective free_energy")  # fmt: skip
    name = item.value.name
    decl = program.learners.get(name)
    if decl is None:
        _fail("P207", f"unknown learner '{name}'", item.value_span,
              did_you_mean(name, set(program.learners))
              or "declare it: learner q = made(hidden = 64) respecting spin_flip")  # fmt: skip
    entry = CATALOGUE.learners.get(decl.call.name, FAMILY)
    if entry is None:
        known = CATALOGUE.learners.names(FAMILY, shared=False)
        _fail("P503", f"learner {name} = {decl.call.name}(...) cannot be trained by the free "
              "energy", item.value_span, "autoregressive learners of lattice models: "
              + ", ".join(known))  # fmt: skip
    learner_opts: Located = {k.name: (plain(k.value), k.span) for k in decl.call.kwargs}
    sampler_opts: Located = dict(run.sampler_options)
    apply_sets(run, sets, program.checker_for(run.ir).param_names, [
        Settable("training option", option_names(FreeEnergyOptions), objective_opts),
        Settable("learner option", option_names(entry.schema), learner_opts),
        Settable("sampler option", option_names(NMCMCOptions), sampler_opts)])  # fmt: skip
    lopts = option_values(learner_opts, entry.schema, decl.call.span, f"learner {decl.call.name}")
    for sym, span in zip(decl.respecting, decl.respecting_spans):
        if sym not in entry.facts.symmetries:
            _fail("P501", f"learner {decl.call.name} cannot respect {sym}", span,
                  f"{decl.call.name} respects: " + ", ".join(entry.facts.symmetries))  # fmt: skip
    reference, rspan = "none", None
    for s in run.statements:
        if s.word == "reference":
            v = s.items[0].value if len(s.items) == 1 else None
            if not (isinstance(v, Word) and v.name in ("exact", "none")):
                _fail("P406", "a van run's reference is 'exact' or 'none'", s.span)
            reference, rspan = v.name, s.span
    plan = VANPlan(decl, lopts, "spin_flip" in decl.respecting, objective, objective_span,
                   reference, rspan)  # fmt: skip
    plan.group = tuple(s for s in decl.respecting if s in GROUPS)
    if objective.symmetry_draws and not plan.group:
        _fail("P424", "symmetry_draws averages the training gradient over random elements of a "
              f"symmetry group, but learner {name} respects none", objective_opts.get(
                  "symmetry_draws", (None, objective_span))[1] or objective_span,
              "declare the learner 'respecting translation' (or point_group), or drop "
              "symmetry_draws")  # fmt: skip
    plan.nmcmc, plan.nmcmc_span = _sampler(run, sampler_opts, name)
    plan.measures = tuple(run.measures)
    if plan.measures and plan.nmcmc is None:
        _fail("P103", "a van run measures observables with its neural MCMC sampler",
              plan.measures[0].span, "add 'sampler nmcmc(chains = 16, sweeps = 2000, "
              "burn_in = 100)', or drop the measure statement")  # fmt: skip
    plan.points = _points(run, program, realise or program.derive, plan)
    if plan.measures:  # every name known and every expression lowered, at the first point
        deriv = getattr(plan.points[0].model, "derivation", plan.points[0].model)
        walker = measured_expressions(deriv, deriv.lattice_sum, plan.measures)
        for m in plan.measures:
            if m.expr is not None:
                walker.walk(m.expr)
    return plan


def _sampler(run: RunState, options: Located, learner: str) -> tuple[NMCMCOptions | None,
                                                                     Span | None]:  # fmt: skip
    """The options of ``sampler nmcmc(...)`` (None without a sampler statement); its proposal
    must be the learner the run trains."""
    if run.sampler is None:
        return None, None
    if run.sampler != "nmcmc":
        _fail("P206", f"a van run samples with nmcmc (neural MCMC with the trained learner as "
              f"proposal), not '{run.sampler}'", run.sampler_span,
              "sampler nmcmc(chains = 16, sweeps = 2000, burn_in = 100)")  # fmt: skip
    options = dict(options)
    if "proposal" in options:
        value, span = options.pop("proposal")
        got = value.name if isinstance(value, Word) else value
        if got != learner:
            _fail("P207", f"the proposal of nmcmc is the learner this run trains, {learner}; "
                  f"got {got!r}", span, f"proposal = {learner}")  # fmt: skip
    return option_values(options, NMCMCOptions, run.sampler_span, "sampler nmcmc"), \
        run.sampler_span  # fmt: skip


def _points(run: RunState, program, realise, plan: VANPlan) -> list[VANPoint]:
    checker = program.checker_for(run.ir)
    params = set(checker.param_names)
    args = {k: v for k, (v, _) in run.model_args.items()}
    spans = {k: s for k, (_, s) in run.model_args.items()}
    for s in run.scans:
        if s.name not in params:
            _fail("P205", f"cannot scan '{s.name}': it is not a parameter of model "
                  f"{checker.name}", s.span, did_you_mean(s.name, params)
                  or "the temperature is the objective's beta: scan a model parameter, or "
                  "write one run per beta")  # fmt: skip
    points = []
    for combo in itertools.product(*[s.values for s in run.scans]) or [()]:
        a, sp = dict(args), dict(spans)
        for s, v in zip(run.scans, combo):
            a[s.name], sp[s.name] = v, s.span
        ir = checker.instantiate(a, sp)
        fields = [f for f in ir.fields if f.domain.discrete and f.on == "sites"]
        if len(fields) != 1 or ir.energy is None:
            _fail("P422", f"a van run learns the distribution of one discrete field on sites; "
                  f"model {checker.name} has {len(fields)}", run.model_span or run.span)  # fmt: skip
        f = fields[0]
        if plan.flip_symmetric:
            active = {s.name for s in ir.symmetries if s.active}
            if "spin_flip" not in active:
                span = plan.learner.respecting_spans[plan.learner.respecting.index("spin_flip")]
                _fail("P505", f"learner {plan.learner.name} respects spin_flip, but model "
                      f"{checker.name} does not declare it (here)", span,
                      "declare 'symmetry spin_flip' in the model (it is verified against the "
                      "energy), or drop 'respecting spin_flip'")  # fmt: skip
        model = realise(ir)
        n = model.lattice.n_sites
        q = len(f.domain.values())
        if plan.flip_symmetric and f.domain.kind == "potts" and q > 2:
            span = plan.learner.respecting_spans[plan.learner.respecting.index("spin_flip")]
            _fail("P501", f"learner {plan.learner.name} cannot respect spin_flip on the "
                  f"{q}-state Potts field {f.name}: its flip is a cyclic shift of order {q}, "
                  "and averaging q(s) with one flip does not make q invariant", span,
                  "drop 'respecting spin_flip' for Potts fields")  # fmt: skip
        lat = model.lattice
        if plan.learner.call.name == "pixelcnn" and (lat.graph or lat.dim != 2 or lat.basis != 1):
            _fail("P503", f"learner {plan.learner.name} = pixelcnn(...) runs over a 2D grid of "
                  f"cells with one site each; model {checker.name} lives on "
                  f"{'a graph' if lat.graph else f'a {lat.dim}D lattice with {lat.basis} sites per cell'}",
                  plan.learner.call.span, "use made(...), which takes any set of sites")  # fmt: skip
        if q > 127:
            _fail("P422", f"field {f.name} has {q} values: autoregressive learners take at most "
                  "127", run.model_span or run.span)  # fmt: skip
        point = VANPoint({s.name: v for s, v in zip(run.scans, combo)}, model, f.name, q, n)
        if plan.group:
            active = {s.name for s in ir.symmetries if s.active}
            point.perms = symmetry_group(lat, plan, active, checker.name)
        if plan.reference == "exact" and q**n > MAX_ENUMERATION:
            point.kaufman = kaufman_coupling(model, f.name, f.domain.values())
            if point.kaufman is None:
                _fail("P423", f"no exact free energy is known here: {q}^{n} configurations are "
                      "too many to enumerate, and the model is not the uniform nearest-neighbour "
                      "Ising model on a periodic square lattice (Kaufman)", plan.reference_span,
                      "write 'reference none', or use a smaller lattice")  # fmt: skip
        points.append(point)
    return points


def symmetry_group(lat, plan: VANPlan, active: set[str], model: str) -> np.ndarray:
    """(G, N) int64: every site permutation of the group generated by the lattice translations
    and/or the point group a learner respects, (g s)_x = s[perm[x]], row 0 the identity. Each
    must be a declared symmetry of the model, on a periodic lattice that has it."""
    learner = plan.learner
    gens: list[np.ndarray] = []
    for sym in plan.group:
        span = learner.respecting_spans[learner.respecting.index(sym)]
        if sym not in active:
            _fail("P505", f"learner {learner.name} respects {sym}, but model {model} does not "
                  "declare it (here)", span, f"declare 'symmetry {sym}' in the model, or drop "
                  f"'respecting {sym}'")  # fmt: skip
        if lat.graph or not lat.all_periodic:
            _fail("P500", f"learner {learner.name} cannot respect {sym}: the "
                  f"{'graph' if lat.graph else 'lattice with an open boundary'} of model {model} "
                  "is not mapped onto itself", span, "declare the lattice with boundary = "
                  f"periodic, or drop 'respecting {sym}'")  # fmt: skip
        if sym == "translation":
            gens += lat.translation_generators()
        else:
            point = lat.point_group_generators()
            if point is None:
                _fail("P505", f"learner {learner.name} cannot respect point_group: no rotation "
                      f"maps the periodic {lat.kind} lattice of model {model} onto itself",
                      span, "point groups of periodic 1D and 2D lattices are known; drop "
                      "'respecting point_group'")  # fmt: skip
            gens += point
    group = _closure([np.asarray(g, dtype=np.int64) for g in gens], lat.n_sites)
    if group is None:
        span = learner.respecting_spans[learner.respecting.index(plan.group[-1])]
        _fail("P409", f"the symmetry group of model {model} has more than {MAX_GROUP} elements: "
              "too many to average over", span, "use a smaller lattice")  # fmt: skip
    return group


def _closure(gens: list[np.ndarray], n: int) -> np.ndarray | None:
    """(G, n) int64: the group generated by permutations ``gens`` (identity first), breadth
    first; None beyond MAX_GROUP elements."""
    elements = [np.arange(n, dtype=np.int64)]
    seen = {elements[0].tobytes()}
    frontier = elements[:]
    while frontier:
        new = []
        for p in frontier:
            for g in gens:
                c = p[g]
                key = c.tobytes()
                if key not in seen:
                    seen.add(key)
                    new.append(c)
        elements += new
        frontier = new
        if len(elements) > MAX_GROUP:
            return None
    return np.stack(elements)


def kaufman_coupling(model, field: str, values) -> float | None:
    """J where the energy is -J sum_<ij> s_i s_j (s = +-1) over the bonds of a periodic square
    lattice (Kaufman's finite-torus formula applies), else None. ``model``: a derivation or a
    compiled model (which holds one)."""
    deriv = getattr(model, "derivation", model)
    lat = deriv.lattice
    if getattr(lat, "kind", None) != "square" or lat.dim != 2 or not lat.all_periodic \
            or lat.basis != 1 or [float(v) for v in values] != [-1.0, 1.0]:  # fmt: skip
        return None
    if deriv.energy.constant != 0 or len(deriv.energy.terms) != 2:
        return None
    try:
        couplings = pair_couplings(deriv.energy, field)
    except PhysmlError:
        return None
    steps = set()
    for term, _ in couplings:
        offsets = sorted(tuple(abs(o) for o in a.offset) for a in term.accesses.values())
        steps.add(tuple(map(tuple, offsets)))
    Ks = {K for _, K in couplings}
    if steps != {((0, 0), (0, 1)), ((0, 0), (1, 0))} or len(Ks) != 1:
        return None
    (K,) = Ks
    return float(K) if K.is_number else None


def check_van(task: TaskIR, program) -> None:
    """The static check of a van run."""
    plan_van(RunState.of(task), program)


def bind_checks(catalogue: Catalogue) -> None:
    catalogue.tasks.bind_check("van", TaskCheck(check_van))


__all__ = ["GROUPS", "VANPlan", "VANPoint", "bind_checks", "check_van", "plan_van",
           "symmetry_group"]
