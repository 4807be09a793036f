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
from physml_lang.diagnostics import Diagnostic, PhysmlError, Span
from physml_lang.ir.program import LearnerIR
from physml_lang.ir.task import TaskIR, Word

from ..tasks import RunState, TaskCheck, option_values
from .parameters import Located, Settable, apply_sets, check_scanned
from .sample import measured_expressions
from .training import read_reference, read_training

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


def plan_van(run: RunState, program, sets: dict[str, Any] | None = None,
             realise=None) -> VANPlan:  # fmt: skip
    """Validate a van run with its ``--set`` values and realise its models (``realise``: a
    model IR to its derivation (check, the default) or its compiled model (run))."""
    sets = dict(sets or {})
    training = read_training(
        run, program, FAMILY, "free_energy", FreeEnergyOptions, sets, options_example="free_energy(beta = 0.44)",
        declare_example="learner q = made(hidden = 64) respecting spin_flip",
        refusal="the free energy",
        refusal_hint="autoregressive learners of lattice models: "
        + ", ".join(CATALOGUE.learners.names(FAMILY, shared=False)))  # fmt: skip
    decl, entry, name = training.learner, training.entry, training.learner.name
    objective_opts, learner_opts = training.objective_options, training.learner_options
    objective_span = training.objective_span
    sampler_opts: Located = dict(run.sampler_options)
    apply_sets(run, sets, program.checker_for(run.ir).param_names, [
        Settable("training option", option_names(FreeEnergyOptions), objective_opts),
        Settable("learner option", option_names(entry.schema), learner_opts),
        Settable("sampler option", option_names(NMCMCOptions), sampler_opts)])  # fmt: skip
    objective = training.options
    lopts = option_values(learner_opts, entry.schema, decl.call.span, f"learner {decl.call.name}")
    reference, rspan = read_reference(run, "van")
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
    check_scanned(run, checker, params, "the temperature is the objective's beta: scan a model "
                  "parameter, or write one run per beta")
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
