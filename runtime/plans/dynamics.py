"""Static plans of the dynamics tasks (torch-free): what an ``evolve`` or ``learn_dynamics`` run
of a phase-space model, or a ``sample`` run of a continuous field, would reject, checked
without running.

A plan reads a run's statements (``initial``, ``evolve``, ``trajectories``, ``train``,
``rollout``; ``let``, ``scan`` and ``measure`` of field sampling), applies ``--set`` values
(``runtime/plans/parameters.py``), validates options against the catalogue's schemas and
static facts (integrators that need a separable H, the objective that fits each learner, the
symmetries a learner can respect, field samplers, temperatures, observables and measured
expressions), reads initial states and trajectory files (numpy) and realises the model:
``program.derive`` for ``physml check``, ``program.compile_ir`` for a run, which starts from the
same plan (``runtime/dynamics/tasks.py``, ``runtime/dynamics/field.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from pydantic import BaseModel

from physml_lang.catalogue import CATALOGUE, Catalogue
from physml_lang.catalogue.dynamics import (
    FIELD_DEFAULTS,
    INTEGRATOR_FACTS,
    LEARNER_OBJECTIVES,
    EvolveOptions,
    RolloutOptions,
    TrainOptions,
    TrajectoryOptions,
)
from physml_lang.check.model import ModelChecker, validate_options
from physml_lang.check.paths import array_file_error, resolve_user_path
from physml_lang.check.tasks import STATEMENTS
from physml_lang.compiler.derive.field import FieldDerivation, field_measures
from physml_lang.diagnostics import Diagnostic, PhysmlError, Span, did_you_mean
from physml_lang.ir.model import ModelIR
from physml_lang.ir.task import CallValue, MeasureIR, StatementIR, TaskIR, Word

from ..tasks import RunState, Scan, TaskCheck, option_values
from .parameters import Settable, apply_sets, check_scanned
from .sample import THERMAL

Realise = Callable[[ModelIR], Any]  # a model IR -> its derivation (check) or compiled model (run)
Options = dict[str, tuple[Any, Span | None]]  # option name -> (value, span of its source)


class PhaseSpace(Protocol):
    """What the plans read of a phase-space model, derived or compiled: canonical pairs of shape
    ``shape`` (n = prod(shape) flattened) and whether H = T(p) + V(q)."""

    shape: tuple[int, ...]
    n: int

    @property
    def separable(self) -> bool: ...

    @property
    def default_integrator(self) -> str: ...

    @property
    def qname(self) -> str: ...

    @property
    def pname(self) -> str: ...


def _fail(code: str, msg: str, span: Span | None = None, hint: str | None = None):
    raise PhysmlError(Diagnostic(code, msg, span, hint))


# ---------------------------------------------------------------- statements


def _named(stmt: StatementIR) -> Options:
    opts: Options = {}
    for item in stmt.items:
        if item.kind != "named":
            _fail("P100", f"'{stmt.word}' takes options by name", item.span,
                  STATEMENTS[stmt.word].usage)  # fmt: skip
        if item.name in opts:
            _fail("P201", f"option '{item.name}' is given twice", item.span)
        opts[item.name] = (item.value, item.span)
    return opts


class DynamicsStatements:
    """``initial``, ``evolve``, ``trajectories``, ``train`` and ``rollout`` of a run, read
    from its IR: options as name -> (value, span)."""

    def __init__(self, task: TaskIR):
        self.initial: Options = {}
        self.initial_span: Span | None = None
        self.evolve: Options | None = None
        self.evolve_span: Span | None = None
        self.trajectories: Options = {}
        self.trajectories_load: tuple[str, Span | None] | None = None
        self.trajectories_span: Span | None = None
        self.train: list[tuple[list[tuple[str, Span | None]], str, Options, Span | None]] = []
        self.rollout: Options = {}
        self.rollout_span: Span | None = None
        for stmt in task.statements:
            if stmt.word == "initial":
                self.initial.update(_named(stmt))
                self.initial_span = stmt.span
            elif stmt.word == "evolve":
                if self.evolve is not None:
                    _fail("P201", "a run has one 'evolve' statement", stmt.word_span)
                self.evolve, self.evolve_span = _named(stmt), stmt.span
            elif stmt.word == "trajectories":
                self._trajectories(stmt)
            elif stmt.word == "train":
                self._train(stmt)
            elif stmt.word == "rollout":
                self.rollout, self.rollout_span = _named(stmt), stmt.span

    def _trajectories(self, stmt: StatementIR) -> None:
        items = stmt.items
        v = items[0].value if len(items) == 1 else None
        if len(items) == 1 and items[0].kind == "value" and isinstance(v, CallValue) \
                and v.name == "load":  # fmt: skip
            if len(v.args) != 1 or not isinstance(v.args[0], str) or v.kwargs:
                _fail("P316", 'load takes one file name: trajectories load("orbits.npz")', v.span)
            self.trajectories_load = (v.args[0], items[0].value_span)
        else:
            self.trajectories = _named(stmt)
        self.trajectories_span = stmt.span

    def _train(self, stmt: StatementIR) -> None:
        via = next((it.via for it in stmt.items if it.kind == "via"), None)
        method = via.name if isinstance(via, Word | CallValue) else None
        names: list[tuple[str, Span | None]] = []
        for k, item in enumerate(stmt.items):
            if item.kind not in ("value", "via") or not isinstance(item.value, Word) or (
                    item.kind == "via" and k != len(stmt.items) - 1):  # fmt: skip
                _fail("P104", "train takes learner names and one 'via' method", item.span,
                      STATEMENTS["train"].usage)  # fmt: skip
            names.append((item.value.name, item.value.span))
        method = method or "derivative_mse"
        options: Options = {}
        if isinstance(via, CallValue):
            if via.args:
                _fail("P318", "training options are given by name", via.span)
            options = {o.name: (o.value, o.span) for o in via.kwargs}
        self.train.append((names, method, options, stmt.span))


def _statements(run: RunState) -> DynamicsStatements:
    if not hasattr(run, "dynamics"):
        run.dynamics = DynamicsStatements(run.ir)
    return run.dynamics


# ---------------------------------------------------------------- shared planning


def _sets(run: RunState, checker: ModelChecker, sets: dict[str, Any] | None,
          groups: list[tuple[str, Options, type[BaseModel]]]) -> None:  # fmt: skip
    """``--set NAME=VALUE``: a scan variable, a model parameter or an option of the first
    group (what, option dict, schema) that has it (``runtime/plans/parameters.py``)."""
    apply_sets(run, sets or {}, checker.param_names,
               [Settable.options(what, schema, opts) for what, opts, schema in groups])  # fmt: skip


def model_point(run: RunState, checker: ModelChecker, extra: Options | None = None,
                thermal: Collection[str] = ()) -> ModelIR:  # fmt: skip
    """The IR of the run's model at its arguments, ``let`` values and ``extra`` (a point of a
    scan), each value located at its source; ``let`` names in ``thermal`` (T, beta of a
    sampling run) are not the model's."""
    args = {k: v for k, (v, _) in run.model_args.items()}
    spans = {k: s for k, (_, s) in run.model_args.items()}
    for k, (v, s) in (extra or {}).items():
        args[k], spans[k] = v, s
    params = set(checker.param_names)
    for name, (v, s) in run.lets.items():
        if name in thermal and name not in params:
            continue
        if name not in params:
            _fail("P205", f"'let {name}': not a parameter of model {checker.name}", s,
                  did_you_mean(name, params))  # fmt: skip
        args.setdefault(name, v)
        spans.setdefault(name, s)
    return checker.instantiate(args, spans)


NEEDS = {"phase_space": "a phase-space model (phase_space (q, p) and a hamiltonian)",
         "field": "a continuous field (real or angle on sites)"}  # fmt: skip


def _realised(run: RunState, checker: ModelChecker, realise: Realise, kind: str, what: str,
              extra: Options | None = None, thermal: Collection[str] = ()) -> Any:  # fmt: skip
    """The run's model, of model kind ``kind`` (located P413 otherwise), realised."""
    ir = model_point(run, checker, extra, thermal)
    if ir.kind != kind:
        _fail("P413", f"{what} needs {NEEDS[kind]}; model {ir.name} is not one",
              run.model_span or run.span)  # fmt: skip
    return realise(ir)


def plain_words(v: Any) -> Any:
    """Words as names, tuples as lists (for the schemas)."""
    if isinstance(v, Word):
        return str(v)
    if isinstance(v, list | tuple):
        return [plain_words(x) for x in v]
    return v


def _options(opts: Options, schema: type[BaseModel], where: Span | None, what: str) -> Any:
    for k, (v, s) in opts.items():
        if isinstance(v, CallValue):
            _fail("P402", f"option '{k}' of {what} must be a value, not a call", s)
    values = {k: plain_words(v) for k, (v, _) in opts.items()}
    spans = {k: s for k, (_, s) in opts.items()}
    return validate_options(schema, values, spans, where, what)


# ---------------------------------------------------------------- evolve


@dataclass
class EvolvePlan:
    """An ``evolve`` run: the model, the validated options, the integrators in order and the
    initial states ``q0``, ``p0`` of shape (B, n) (float64)."""

    model: PhaseSpace
    options: EvolveOptions
    integrators: list[str]
    q0: np.ndarray
    p0: np.ndarray
    spans: dict[str, Span | None] = field(default_factory=dict)


def _state(value: Any, shape: tuple[int, ...], span: Span | None, name: str) -> np.ndarray:
    """An initial q or p: one state of ``shape`` or a batch (B, *shape), finite (float64)."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        _fail("P322", f"initial {name} must be a number or a (nested) list of numbers", span)
    if arr.shape == shape:
        arr = arr[None]
    if arr.shape[1:] != shape or arr.ndim != len(shape) + 1 or arr.shape[0] < 1:
        _fail("P319", f"initial {name} has shape {arr.shape}; expected {shape or 'a number'} "
              f"or a batch (B, {', '.join(map(str, shape))})", span)  # fmt: skip
    if not np.isfinite(arr).all():
        _fail("P404", f"initial {name} is not finite", span)
    return arr


def integrator_options(name: str, o: EvolveOptions) -> dict[str, Any]:
    """The options of integrator ``name`` from those of ``evolve`` (the solver settings of the
    implicit midpoint rule; the other integrators have none)."""
    return {"tol": o.tol, "max_iter": o.max_iter} if name == "implicit_midpoint" else {}


def plan_evolve(task: TaskIR, program: Any, sets: dict[str, Any] | None,
                realise: Realise | None = None) -> EvolvePlan:  # fmt: skip
    """Options, integrators (known, listed once, and symplectic for this H: leapfrog, verlet
    and yoshida4 need H = T(p) + V(q)) and initial states of an ``evolve`` run. ``realise``:
    ``program.derive`` (the default) or ``program.compile_ir``."""
    run = RunState.of(task)
    dyn = _statements(run)
    checker = program.checker_for(task)
    opts = dict(dyn.evolve or {})
    _sets(run, checker, sets, [("evolve option", opts, EvolveOptions)])
    span = dyn.evolve_span
    options = _options(opts, EvolveOptions, span, "evolve")
    cm: PhaseSpace = _realised(run, checker, realise or program.derive, "phase_space", "evolve")
    names = options.integrator
    names = [names] if isinstance(names, str) else (names or [cm.default_integrator])
    ispan = opts.get("integrator", (None, span))[1]
    for name in names:
        if CATALOGUE.integrators.get(name) is None:
            known = CATALOGUE.integrators.names("")  # the Hamiltonian integrators
            _fail("P206", f"unknown integrator '{name}'", ispan,
                  did_you_mean(name, set(known)) or "integrators: " + ", ".join(known))  # fmt: skip
        if INTEGRATOR_FACTS[name].requires_separable and not cm.separable:
            _fail("P413", f"{name} needs a separable Hamiltonian H = T(p) + V(q); "
                  f"the Hamiltonian of {checker.name} is not", ispan,
                  "use integrator = implicit_midpoint (symplectic for any H)")  # fmt: skip
    if len(set(names)) != len(names):
        _fail("P201", "an integrator is listed twice", ispan)
    init = dyn.initial
    if not init:
        _fail("P412", "evolve needs initial conditions", span,
              f"add e.g. 'initial {cm.qname} = 1.0, {cm.pname} = 0.0'")  # fmt: skip
    qn, pn = cm.qname, cm.pname
    for k, (_, s) in init.items():
        if k not in (qn, pn):
            _fail("P205", f"'{k}' is not a coordinate of model {checker.name}", s,
                  f"the phase space is ({qn}, {pn})")  # fmt: skip
    for k in (qn, pn):
        if k not in init:
            _fail("P412", f"initial conditions need {k} too", dyn.initial_span)
    q0 = _state(plain_words(init[qn][0]), cm.shape, init[qn][1], qn)
    p0 = _state(plain_words(init[pn][0]), cm.shape, init[pn][1], pn)
    if q0.shape[0] != p0.shape[0] and 1 not in (q0.shape[0], p0.shape[0]):
        _fail("P319", f"{q0.shape[0]} initial {qn} but {p0.shape[0]} initial {pn}",
              dyn.initial_span)  # fmt: skip
    B = max(q0.shape[0], p0.shape[0])
    q0 = np.broadcast_to(q0, (B, *cm.shape)).reshape(B, cm.n)
    p0 = np.broadcast_to(p0, (B, *cm.shape)).reshape(B, cm.n)
    spans = {"dt": opts.get("dt", (None, span))[1], "integrator": ispan, "evolve": span}
    return EvolvePlan(cm, options, names, q0, p0, spans)


def check_evolve(task: TaskIR, program: Any) -> None:
    plan_evolve(task, program, {})


# ---------------------------------------------------------------- continuous-field sampling


@dataclass
class FieldPlan:
    """A ``sample`` run of a continuous field with weight exp(-S/T): the sampler (a catalogue
    entry of the field family) and its options, the temperatures (``tvar`` T or beta, its
    values and the betas; T = 1, the action as written, when the run gives none: ``thermal``
    false), the scans of model parameters, the measures (built-in observables and measured
    expressions) and the model at the first point of the scans (realised)."""

    sampler: str
    options: BaseModel
    tvar: str
    tvalues: list
    betas: list[float]
    thermal: bool
    others: list[Scan]
    measures: list[MeasureIR]
    checker: ModelChecker
    model: Any

    @property
    def builtins(self) -> list[str]:
        """The measured built-in observables (names of the catalogue's field family)."""
        return [m.name for m in self.measures if m.expr is None]



def _temperatures(run: RunState, params: set[str]) -> tuple[str, list, bool]:
    """(T or beta, values, given): a scan or ``let`` of T or beta that is not a model
    parameter; T = 1 when there is none. Located P211/P406 for two of them, values <= 0."""
    thermal = [s for s in run.scans if s.name in THERMAL and s.name not in params]
    if len(thermal) > 1:
        _fail("P211", "scan either T or beta, not both", thermal[1].span)
    lets = [n for n in THERMAL if n in run.lets and n not in params]
    if thermal:
        if lets:
            _fail("P211", f"{thermal[0].name} is scanned and set by 'let {lets[0]}'",
                  run.lets[lets[0]][1])  # fmt: skip
        tvar, tvalues, tspan = thermal[0].name, thermal[0].values, thermal[0].span
    elif lets:
        if len(lets) > 1:
            _fail("P211", "give either T or beta, not both", run.lets[lets[1]][1])
        tvar, (v, tspan) = lets[0], run.lets[lets[0]]
        tvalues = [v]
    else:
        return "T", [1.0], False
    for v in tvalues:
        if isinstance(v, bool) or not isinstance(v, int | float) or not v > 0:
            _fail("P406", f"{tvar} must be a positive number, got {v!r}", tspan,
                  "temperatures and inverse temperatures are > 0")  # fmt: skip
    return tvar, list(tvalues), True


def plan_field(run: RunState, program: Any, sets: dict[str, Any] | None,
               realise: Realise | None = None) -> FieldPlan:  # fmt: skip
    """Sampler, options, temperatures, scans (T or beta and model parameters), ``let`` values
    and measures of a field ``sample`` run, ``--set`` values applied; the model at the first
    point of the scans realised (``program.derive`` by default)."""
    checker = program.checker_for(run.ir)
    entry = CATALOGUE.samplers.get(run.sampler or "", "field")
    if entry is None:
        known = CATALOGUE.samplers.names("field")
        _fail("P206", f"unknown sampler '{run.sampler}' for a continuous field", run.sampler_span,
              did_you_mean(run.sampler or "", set(known))
              or "continuous-field samplers: " + ", ".join(known))  # fmt: skip
    schema = entry.schema
    params = set(checker.param_names)
    apply_sets(run, sets or {}, params, [
        Settable("let", set(run.lets) | set(THERMAL), run.lets),
        Settable.options("sampler option", schema, run.sampler_options)])  # fmt: skip
    options = option_values(run.sampler_options, schema, run.sampler_span,
                            f"sampler {run.sampler}")  # fmt: skip
    tvar, tvalues, given = _temperatures(run, params)
    check_scanned(run, checker, params, "scan T, beta or one of " + ", ".join(sorted(params)),
                  also=THERMAL)
    others = [s for s in run.scans if s.name not in THERMAL or s.name in params]
    for m in run.measures or []:
        if m.expr is None and CATALOGUE.observables.get(m.name, "field") is None:
            known = CATALOGUE.observables.names("field")
            _fail("P208", f"unknown continuous-field observable '{m.name}'", m.span,
                  did_you_mean(m.name, set(known)) or "observables: " + ", ".join(known)
                  + "; or measure an expression: measure NAME = EXPR")  # fmt: skip
    measures = list(run.measures) or [MeasureIR(n) for n in FIELD_DEFAULTS]
    first = {s.name: (s.values[0], s.span) for s in others}
    model = _realised(run, checker, realise or program.derive, "field",
                      f"sampler {run.sampler}", first, THERMAL)  # fmt: skip
    betas = [1.0 / v if tvar == "T" else float(v) for v in tvalues]
    return FieldPlan(entry.name, options, tvar, tvalues, betas, given, others, measures, checker,
                     model)  # fmt: skip


def check_field_measures(derivation: FieldDerivation, measures: list[MeasureIR]) -> None:
    """Every measured expression of a field run lowers (names, sums over sites and bonds of
    the field); ``helicity_modulus`` is defined for this action and lattice."""
    walker = field_measures(derivation, derivation.lattice_sum, derivation.model.params,
                            FIELD_FUNCTIONS)  # fmt: skip
    for m in measures:
        if m.expr is not None:
            walker.walk(m.expr)
        elif m.name == "helicity_modulus":
            derivation.twist(m.span)


# the built-in functions of averages of the field family (not per-sample quantities)
FIELD_FUNCTIONS = ("specific_heat", "susceptibility", "binder", "helicity_modulus")


def check_field(task: TaskIR, program: Any) -> None:
    plan = plan_field(RunState.of(task), program, {})
    check_field_measures(plan.model, plan.measures)


# ---------------------------------------------------------------- learned dynamics


@dataclass
class LearnerPlan:
    """A learner to train: its name, its catalogue entry (``kind``), validated options and
    the training objective (``method``) that fits it."""

    name: str
    kind: str
    options: BaseModel
    method: str
    span: Span | None


@dataclass
class LearnPlan:
    """A ``learn_dynamics`` run: the model, its learners, the training data (simulated with
    ``data``, or loaded from the file ``load``) and the rollout evaluation."""

    model: PhaseSpace
    learners: list[LearnerPlan]
    data: TrajectoryOptions
    load: tuple[str, Span | None] | None
    rollout: RolloutOptions


def check_start(start: str, shape: tuple[int, ...], span: Span | None) -> None:
    """The initial states a ``trajectories`` start mode draws fit the phase space: ``kepler``
    two bodies (real[2, D]), ``orbit`` one body in D >= 2 dimensions (real[D])."""
    kepler = start == "kepler" and (len(shape) != 2 or shape[0] != 2 or shape[1] < 2)
    orbit = start == "orbit" and (len(shape) != 1 or shape[0] < 2)
    if kepler or orbit:
        need = ("a two-body phase space: real[2, D] with D >= 2" if kepler
                else "one body in D >= 2 dimensions: real[D]")  # fmt: skip
        _fail("P413", f"start = {start} needs {need}; the phase space has shape {shape}", span,
              "start = orbit for one body about the origin, kepler for two bodies")  # fmt: skip


def plan_learn(run: RunState, program: Any, sets: dict[str, Any] | None,
               realise: Realise | None = None) -> LearnPlan:  # fmt: skip
    """Trajectory, training and rollout options and the learners of a ``learn_dynamics`` run:
    each a dynamics learner of the catalogue, trained via its own objective, respecting only
    what it can, and integrable by the rollout integrator (one that needs a separable H needs
    a learner declared separable)."""
    dyn = _statements(run)
    checker = program.checker_for(run.ir)
    topts = dict(dyn.trajectories)
    ropts = dict(dyn.rollout)
    train_common: Options = {}
    _sets(run, checker, sets, [("train option", train_common, TrainOptions),
                               ("trajectories option", topts, TrajectoryOptions),
                               ("rollout option", ropts, RolloutOptions)])  # fmt: skip
    cm: PhaseSpace = _realised(run, checker, realise or program.derive, "phase_space", "train")
    data = _options(topts, TrajectoryOptions, dyn.trajectories_span, "trajectories")
    roll = _options(ropts, RolloutOptions, dyn.rollout_span, "rollout")
    rollout_span = ropts.get("integrator", (None, None))[1]
    if roll.integrator is not None and CATALOGUE.integrators.get(roll.integrator) is None:
        _fail("P206", f"unknown integrator '{roll.integrator}'", ropts["integrator"][1],
              did_you_mean(roll.integrator, set(CATALOGUE.integrators.names(""))))  # fmt: skip
    check_start(data.start, tuple(cm.shape), topts.get("start", (None, run.span))[1])
    decls = program.learners
    learners: list[LearnerPlan] = []
    for names, method, options, _span in dyn.train:
        for name, nspan in names:
            if name not in decls:
                _fail("P207", f"unknown learner '{name}'", nspan,
                      did_you_mean(name, set(decls)) or f"declare it: learner {name} = "
                      "hnn(hidden = [200, 200])")  # fmt: skip
            d = decls[name]
            func = d.call.name
            entry = CATALOGUE.learners.get(func, "phase_space")
            if entry is None:
                _fail("P207", f"'{func}' is not a dynamics learner", d.call.name_span,
                      did_you_mean(func, set(CATALOGUE.learners.names("phase_space")))
                      or "dynamics learners: hnn, mlp, sympnet")  # fmt: skip
            objective = LEARNER_OBJECTIVES[entry.name]
            if d.call.args:
                _fail("P318", "learner options are given by name", d.call.span)
            if objective != method:
                _fail("P413", f"{func} learner '{name}' is trained via {objective}, "
                      f"not {method}", nspan, f"train {name} via {objective}(...)")  # fmt: skip
            for sym, sspan in zip(d.respecting, d.respecting_spans):
                if sym not in entry.facts.symmetries:
                    _fail("P501", f"{func} cannot respect '{sym}'", sspan,
                          "hnn and sympnet are symplectic by construction; an mlp vector field "
                          "respects nothing" if sym == "symplectic" else
                          f"{func} respects: " + (", ".join(entry.facts.symmetries)
                                                  or "nothing"))  # fmt: skip
            schema = entry.schema
            vals = {k.name: plain_words(k.value) for k in d.call.kwargs}
            spans: dict[str, Span | None] = {k.name: k.span for k in d.call.kwargs}
            for k, (v, s) in list(options.items()) + list(train_common.items()):
                vals[k], spans[k] = plain_words(v), s
            vals = {k: v for k, v in vals.items() if v is not None}
            opts = validate_options(schema, vals, {k: spans[k] for k in vals}, d.span,
                                    f"learner {name}")  # fmt: skip
            dims = getattr(opts, "dims", None)  # pairwise forces act in D dimensions
            if dims is not None and (len(cm.shape) != 2 or cm.shape[1] != dims):
                _fail("P431", f"{func}(dims = {dims}) needs a phase space real[N, {dims}]; "
                      f"model {checker.name} has shape {tuple(cm.shape)}",
                      spans.get("dims") or d.call.span,
                      f"give dims = {cm.shape[-1]}" if len(cm.shape) == 2 else
                      "pairwise forces need particles: phase_space (q, p): real[N, D]")  # fmt: skip
            # a learned Hamiltonian (hnn) is separable only when declared so; a learned vector
            # field (mlp) has no Hamiltonian at all
            integ = roll.integrator if objective == "derivative_mse" else None
            if integ is not None and not getattr(opts, "separable", False) \
                    and INTEGRATOR_FACTS[integ].requires_separable:  # fmt: skip
                hint = ("declare hnn(separable = true) or use implicit_midpoint"
                        if "separable" in schema.model_fields else
                        "roll a learned vector field out with rk4 or implicit_midpoint")  # fmt: skip
                _fail("P413", f"{integ} needs a separable H; learner {name} is not separable",
                      rollout_span, hint)
            learners.append(LearnerPlan(name, entry.name, opts, method, d.span))
    if not learners:
        _fail("P412", "train names no learner", run.span)
    return LearnPlan(cm, learners, data, dyn.trajectories_load, roll)


@dataclass
class Trajectories:
    """Trajectories read from a file: times ``t`` (T,) and states ``q``, ``p`` with their time
    derivatives ``dq``, ``dp``, each (N, T, n) float64 (finite differences in t when the file
    has none)."""

    t: np.ndarray
    q: np.ndarray
    p: np.ndarray
    dq: np.ndarray
    dp: np.ndarray


def read_trajectories(load: tuple[str, Span | None], n: int, program: Any) -> Trajectories:
    """t (T,), q, p (N, T, *shape or n)[, dq, dp] from an .npz file (no pickle), relative to
    the program's folder; located P600/P609 for a missing or malformed file."""
    name, span = load
    base = (Path(program.path).parent if program.path else Path()) if span is None else None
    path = resolve_user_path(name, span, "trajectory file", {".npz"}, base=base,
                             suffix_hint="trajectories are loaded from .npz files",
                             type_code="P609")  # fmt: skip
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: np.asarray(f[k], dtype=np.float64) for k in f.files
                      if k in ("t", "q", "p", "dq", "dp")}  # fmt: skip
    except Exception as exc:  # noqa: BLE001 - any reader failure is a bad file
        array_file_error(path, exc, span, "P609")
    for k in ("t", "q", "p"):
        if k not in arrays:
            _fail("P609", f"{path.name} has no array '{k}'", span,
                  "expected t (T,), q and p (N, T, n)[, dq, dp]")  # fmt: skip
    t = arrays["t"]
    out = {}
    for k in ("q", "p", "dq", "dp"):
        if k not in arrays:
            continue
        a = arrays[k]
        if a.ndim < 2 or a.shape[1] != len(t) or int(np.prod(a.shape[2:])) != n:
            _fail("P609", f"'{k}' in {path.name} has shape {a.shape}; expected (N, {len(t)}, "
                  f"{n})", span)  # fmt: skip
        out[k] = a.reshape(a.shape[0], len(t), n)
        if not np.isfinite(out[k]).all():
            _fail("P609", f"'{k}' in {path.name} holds non-finite values", span)
    if len(t) < 3 or not np.all(np.diff(t) > 0):
        _fail("P609", f"'t' in {path.name} must be increasing with at least 3 times", span)
    for k in ("q", "p"):
        if "d" + k not in out:
            out["d" + k] = np.gradient(out[k], t, axis=1)
    return Trajectories(t, out["q"], out["p"], out["dq"], out["dp"])


def check_learn(task: TaskIR, program: Any) -> None:
    plan = plan_learn(RunState.of(task), program, {})
    if plan.load is not None:
        read_trajectories(plan.load, plan.model.n, program)


def bind_checks(catalogue: Catalogue) -> None:
    """Attach the static checks of the dynamics tasks to their catalogue entries."""
    catalogue.tasks.bind_check("evolve", TaskCheck(check_evolve))
    catalogue.tasks.bind_check("sample", TaskCheck(check_field), family="field")
    catalogue.tasks.bind_check("learn_dynamics", TaskCheck(check_learn))


__all__ = ["DynamicsStatements", "EvolvePlan", "FIELD_DEFAULTS", "FIELD_FUNCTIONS", "FieldPlan",
           "LearnPlan", "LearnerPlan", "PhaseSpace", "Trajectories", "bind_checks",
           "check_evolve", "check_field", "check_field_measures", "check_learn",
           "integrator_options", "model_point", "plan_evolve", "plan_field", "plan_learn",
           "read_trajectories"]  # fmt: skip
