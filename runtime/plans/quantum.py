"""Static plans of the quantum tasks (torch-free): what an ``exact`` or ``vmc`` run, or a
classical ``sample`` run of a qubit model, would reject, checked without running.

A plan reads a run's statements, applies ``--set`` overrides and scans (``plans/parameters.py``:
scan variables, model parameters, then the task's options and those of its learner, sampler and
optimiser), realises every point of the scan (``program.derive`` for ``physml check``; the
runtime passes ``program.compile_ir``),
and validates against the catalogue's schemas and static facts: learners and the symmetries
they can respect, samplers, optimisers, measured operators (Hermitian Pauli sums), magnetisation
sectors and the size of an exact diagonalisation. The runtime's tasks
(``runtime/quantum/tasks.py``) start from these plans.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from physml_lang.catalogue import CATALOGUE, Catalogue, Entry, Registry
from physml_lang.catalogue.domains import SYMMETRIES
from physml_lang.catalogue.quantum import (
    OBSERVABLE_RUNS,
    QUANTUM,
    MetropolisSpec,
    learner_conflict,
)
from physml_lang.check.model import MAX_COUNT, option_names
from physml_lang.check.tasks import STATEMENTS
from physml_lang.compiler.derive.quantum import (
    PauliBuilder,
    QuantumDerivation,
    SiteRef,
    Value,
    verify_symmetry,
)
from physml_lang.diagnostics import Diagnostic, PhysmlError, Span, clip, did_you_mean, warn
from physml_lang.ir import expr as E
from physml_lang.ir.model import ModelIR
from physml_lang.ir.program import LearnerIR
from physml_lang.ir.task import CallValue, ItemIR, StatementIR, TaskIR, Word

from ..tasks import RunState, TaskCheck, option_values, plain
from .parameters import Located, Settable, apply_sets

MAX_ED_DIM = 2**22  # exact diagonalisation: sparse H with ~N nonzeros per row
EXACT_OPTIONS = ("levels", "sector")  # what --set may give an exact run besides the model
# ... and a vmc run (``resume``: the deprecated spelling of --resume, with a P403 warning)
VMC_OPTIONS = ("iterations", "samples", "final_samples", "checkpoint_every", "pretrain", "resume")
# Both tasks accept both sets (each ignores the other's): `physml run FILE --set iterations=50`
# gives every run of a file the same --set, and quantum files pair exact and vmc runs.
RUN_OPTIONS = EXACT_OPTIONS + VMC_OPTIONS
EXACT_METHODS = ("lanczos", "ground_state")  # 'exact lanczos': the ground state (levels = 1)
Realise = Callable[[ModelIR], Any]  # a model IR -> its derivation (check) or compiled model (run)
Measured = list[tuple[str, Any]]  # (name, a built-in observable's name or a PauliSum)


def _fail(code: str, msg: str, span: Span | None = None, hint: str | None = None):
    raise PhysmlError(Diagnostic(code, msg, span, hint))


# ---------------------------------------------------------------- catalogue entries


def _entry(entries: Registry, name: str) -> Entry | None:
    """The quantum entry called ``name``; a shared entry of another capability (an optimiser of
    energy-based learners, say) does not run a vmc task."""
    entry = entries.get(name, QUANTUM)
    return entry if entry is not None and entry.family == QUANTUM else None


# ---------------------------------------------------------------- run statements


def _one_item(stmt: StatementIR) -> ItemIR:
    if len(stmt.items) != 1:
        _fail("P105", f"'{stmt.word}' takes one item", stmt.span, STATEMENTS[stmt.word].usage)
    return stmt.items[0]


def _int_value(v: Any, span: Span | None, what: str, low: int = 1) -> int:
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    if isinstance(v, bool) or not isinstance(v, int) or v < low:
        _fail("P406", f"{what} must be an integer >= {low}, got {clip(repr(v), 40)}", span)
    if v > MAX_COUNT:
        _fail("P421", f"{what} is too large: {clip(repr(v), 40)} (at most 2^40)", span,
              "no run can do that many iterations or samples")  # fmt: skip
    return v


def _method(v: Any, span: Span | None) -> tuple[str, Span | None, dict]:
    """An optimiser as (name, name span, {option: (value, span)}) from ``sr(lr = 0.02)``."""
    if isinstance(v, Word):
        return v.name, v.span, {}
    if not isinstance(v, CallValue):
        _fail("P105", "an optimiser is a call: sr(...), sgd(...) or adam(...)", span)
    if v.args:
        _fail("P318", "optimiser options are given by name: sr(lr = 0.02)", v.span)
    return v.name, v.name_span, {o.name: (plain(o.value), o.span) for o in v.kwargs}


class QuantumStatements:
    """The quantum statements of a run, read from its IR (each value with its span)."""

    def __init__(self, task: TaskIR):
        self.learner: tuple[str, Span | None] | None = None
        self.learner_optimized: tuple[str, Span | None] | None = None
        self.optimizer: tuple[str, Span | None, dict] | None = None
        self.pretrain: tuple[int, Span | None, tuple[str, Span | None, dict]] | None = None
        self.iterations: tuple[int, Span | None] | None = None
        self.samples: tuple[int, Span | None] | None = None
        self.final_samples: tuple[int, Span | None] | None = None
        self.reference: tuple[Any, Span | None] | None = None
        self.checkpoint_every: tuple[int, Span | None] | None = None
        self.levels: tuple[int, Span | None] | None = None
        self.sector: tuple[int | None, Span | None] | None = None
        self.exact_span: Span | None = None
        for stmt in task.statements:
            handler = getattr(self, f"_{stmt.word}", None)
            if handler is not None:
                handler(stmt)

    def given(self, word: str) -> Span | None:
        """The span of a statement the run gives (learner, optimizer, iterations, samples,
        reference), or None."""
        value = getattr(self, word, None)
        return None if value is None else value[1]

    def _learner(self, stmt: StatementIR) -> None:
        item = _one_item(stmt)
        if item.kind != "value" or not isinstance(item.value, Word):
            _fail("P105", "'learner' names a declared learner: learner psi", item.span,
                  "declare it at top level: learner psi = rbm(alpha = 2) respecting translation")  # fmt: skip
        self.learner = (item.value.name, item.value.span)

    def _optimize(self, stmt: StatementIR) -> None:
        item = _one_item(stmt)
        if item.kind == "via":
            if not isinstance(item.value, Word):
                _fail("P105", "optimize NAME via METHOD(...)", item.span)
            self.learner_optimized = (item.value.name, item.value.span)
            method = item.via
        elif item.kind == "value":
            method = item.value
        else:
            _fail("P105", "optimize psi via sr(lr = 0.02)", item.span)
        self.optimizer = _method(method, item.value_span)

    def _pretrain(self, stmt: StatementIR) -> None:
        item = _one_item(stmt)
        if item.kind not in ("value", "via"):
            _fail("P105", "pretrain 400 via adam(lr = 0.01)", item.span)
        n = _int_value(item.value, item.value_span, "pretrain iterations")
        opt: tuple = ("adam", item.span, {})
        if item.kind == "via":
            if isinstance(item.via, CallValue) and item.via.args:
                _fail("P105", "an optimiser is a call with named options: adam(lr = 0.01)",
                      item.span)  # fmt: skip
            opt = _method(item.via, item.span)
        self.pretrain = (n, stmt.span, opt)

    def _iterations(self, stmt: StatementIR) -> None:
        item = _one_item(stmt)
        if item.kind != "value":
            _fail("P105", "iterations takes a number: iterations 300", item.span)
        self.iterations = (_int_value(item.value, item.value_span, "iterations"), item.value_span)

    def _samples(self, stmt: StatementIR) -> None:
        for item in stmt.items:
            if item.kind == "value":
                self.samples = (_int_value(item.value, item.value_span, "samples"),
                                item.value_span)  # fmt: skip
            elif item.kind == "named" and item.name == "final":
                self.final_samples = (_int_value(item.value, item.value_span, "final samples"),
                                      item.span)  # fmt: skip
            else:
                _fail("P105", "samples N[, final = M]", item.span, STATEMENTS["samples"].usage)

    def _reference(self, stmt: StatementIR) -> None:
        item = _one_item(stmt)
        v = item.value
        if item.kind == "value" and isinstance(v, Word) and v.name in ("exact", "none", "auto"):
            self.reference = (v.name, item.span)
        elif item.kind == "named" and item.name == "energy":
            if isinstance(v, bool) or not isinstance(v, int | float):
                _fail("P322", "the reference energy is a number", item.value_span)
            self.reference = (float(v), item.span)
        else:
            _fail("P105", "reference exact | none | auto | energy = VALUE", item.span)

    def _checkpoint(self, stmt: StatementIR) -> None:
        item = _one_item(stmt)
        if item.kind != "named" or item.name != "every":
            _fail("P105", "checkpoint every = 25", item.span)
        self.checkpoint_every = (_int_value(item.value, item.value_span, "checkpoint every", 0),
                                 item.span)  # fmt: skip

    def _exact(self, stmt: StatementIR) -> None:
        for item in stmt.items:
            v = item.value
            if item.kind == "named" and item.name == "levels":
                self.levels = (_int_value(v, item.value_span, "levels"), item.span)
            elif item.kind == "named" and item.name == "sector":
                if isinstance(v, Word) and v.name == "all":
                    v = None
                elif isinstance(v, bool) or not isinstance(v, int):
                    _fail("P304", "sector is an integer magnetisation sum(Z) or all",
                          item.value_span)  # fmt: skip
                self.sector = (v, item.span)
            elif item.kind == "value" and isinstance(v, Word) and v.name in EXACT_METHODS:
                if self.levels is None:
                    self.levels = (1, item.span)
            else:
                _fail("P105", "exact levels = N[, sector = M]", item.span,
                      STATEMENTS["exact"].usage)  # fmt: skip
        if self.exact_span is None:
            self.exact_span = stmt.span


def statements(run: RunState) -> QuantumStatements:
    """The quantum statements of a run (read once)."""
    if not hasattr(run, "quantum"):
        run.quantum = QuantumStatements(run.ir)
    return run.quantum


# ---------------------------------------------------------------- model points and measures


@dataclass
class Point:
    """One model of a scan: the scanned values and the model realised with them (a
    :class:`QuantumDerivation`; the compiled ``QuantumModel`` in a run)."""

    values: dict[str, Any]
    model: QuantumDerivation


def model_points(run: RunState, program, realise: Realise | None = None) -> list[Point]:
    """Realise every point of the scan (``realise``: a model IR to a quantum model,
    ``program.derive`` by default), after ``--set`` was applied to ``run``."""
    realise = realise or program.derive
    checker = program.checker_for(run.ir)
    params = set(checker.param_names)
    model_args = {k: v for k, (v, _) in run.model_args.items()}
    spans: dict[str, Any] = {k: s for k, (_, s) in run.model_args.items()}
    for name, (v, s) in run.lets.items():
        if name not in params:
            _fail("P205", f"'let {name}': not a parameter of model {checker.name}", s,
                  did_you_mean(name, params))  # fmt: skip
        model_args.setdefault(name, v)
        spans.setdefault(name, s)
    for s in run.scans:
        if s.name not in params:
            _fail("P205", f"cannot scan '{s.name}': it is not a parameter of model "
                  f"{checker.name}", s.span, did_you_mean(s.name, params)
                  or "a quantum ground state has no temperature; scan a model parameter")  # fmt: skip
    points = []
    for combo in itertools.product(*[s.values for s in run.scans]) or [()]:
        args, sp_ = dict(model_args), dict(spans)
        for s, v in zip(run.scans, combo):
            args[s.name], sp_[s.name] = v, s.span
        qm = realise(checker.instantiate(args, sp_))
        if not isinstance(qm, QuantumDerivation):
            _fail("P413", f"run {run.name} is a quantum task, but model {checker.name} is "
                  "not a quantum model", run.model_span or run.span,
                  "a quantum model has a 'field s: qubit on sites' and a 'hamiltonian'")  # fmt: skip
        points.append(Point({s.name: v for s, v in zip(run.scans, combo)}, qm))
    return points


class MeasureBuilder(PauliBuilder):
    """Measured operator expressions: model names plus ``energy`` (= H) and ``sites`` (= N)."""

    def __init__(self, qm: QuantumDerivation):
        super().__init__(qm.model, qm.geometry)
        self.qm = qm

    def on_name(self, e: E.Name, env: dict[str, SiteRef]) -> Value:
        if e.id == "energy":
            return self.qm.hamiltonian
        if e.id == "sites":
            return complex(self.n)
        return super().on_name(e, env)


def measured_operators(run: RunState, qm: QuantumDerivation, task: str) -> Measured:
    """(name, what) per ``measure`` of a run of ``task`` (exact or vmc): what is a built-in
    observable's name or a PauliSum over the model's N sites (a declared operator, or an
    expression checked Hermitian)."""
    builtins = builtin_observables(task)
    out = []
    for m in run.measures:
        if m.expr is None and m.name in builtins:
            out.append((m.name, m.name))
        elif m.expr is None and m.name in qm.model.definitions:
            d = qm.model.definitions[m.name]
            if d.indices:
                _fail("P302", f"'{m.name}' is indexed; measure an operator without indices", m.span)
            out.append((m.name, qm.hamiltonian if d.kind == "hamiltonian" else qm.operator(m.name)))
        elif m.expr is None:
            known = builtins | set(qm.observables())
            _fail("P208", f"unknown observable '{m.name}'", m.span,
                  did_you_mean(m.name, known) or "quantum observables: " + ", ".join(sorted(known))
                  + ", or an operator expression: measure mx = sum(X[i] for i in sites) / N")  # fmt: skip
        else:
            op = MeasureBuilder(qm).operator(m.expr)
            if not op.is_hermitian():
                _fail("P312", f"observable '{m.name}' is not Hermitian", m.span,
                      "an expectation value of a non-Hermitian operator is complex")  # fmt: skip
            out.append((m.name, op))
    return out


def builtin_observables(task: str) -> set[str]:
    """Names of the catalogue's quantum observables that runs of ``task`` report."""
    return {name for name, runs in OBSERVABLE_RUNS.items() if task in runs}


# ---------------------------------------------------------------- exact task


def sectors(qm: QuantumDerivation, sector: int | None, span: Span | None) -> list[int | None]:
    """The magnetisation sectors sum(Z) = m an exact run diagonalises: the one asked for, or
    every sector of a conserved sum(Z), else [None] (the whole 2^N space)."""
    n = qm.n_sites
    if sector is None:
        return list(range(n, -n - 1, -2)) if qm.conserves_magnetization else [None]
    if not qm.conserves_magnetization:
        _fail("P413", "a magnetisation sector needs a conserved sum(Z)", span,
              "declare 'conserve sum(Z[i] for i in sites)' in the model (it is checked)")  # fmt: skip
    if (n + sector) % 2 or abs(sector) > n:
        _fail("P400", f"no states with sum(Z) = {sector} on {n} sites", span)
    return [sector]


def sector_dim(n: int, m: int | None) -> int:
    """Dimension of the sector sum(Z) = m of n qubits (2^n for None)."""
    return 2**n if m is None else math.comb(n, (n - m) // 2)


def check_dims(qm: QuantumDerivation, space: list[int | None], span: Span | None) -> None:
    """The largest of the sectors ``space`` fits an exact diagonalisation (MAX_ED_DIM states)."""
    dim = max(sector_dim(qm.n_sites, m) for m in space)
    if dim > MAX_ED_DIM:
        _fail("P407", f"exact diagonalisation of {qm.n_sites} qubits needs a space of {dim} "
              f"states (limit {MAX_ED_DIM})", span, "use a smaller lattice, a magnetisation "
              "sector (conserve + sector = ...), or a vmc run")  # fmt: skip


@dataclass
class ExactPlan:
    """An exact run, validated: per point of the scan, the magnetisation sectors to diagonalise
    and the measured operators; the lowest ``levels`` energies are found."""

    points: list[Point]
    levels: int
    sectors: list[list[int | None]]
    measured: list[Measured]


def check_exact(task: TaskIR, program) -> None:
    """The static check of an exact run."""
    plan_exact(RunState.of(task), program)


def plan_exact(run: RunState, program, sets: dict[str, Any] | None = None,
               realise: Realise | None = None) -> ExactPlan:  # fmt: skip
    """Validate an exact run with its ``--set`` values (model parameters, scan variables,
    levels, sector; a vmc run's options are ignored) and realise its points (``realise``: see
    :func:`model_points`)."""
    options: Located = {}
    apply_sets(run, sets or {}, program.checker_for(run.ir).param_names,
               [Settable("run option", RUN_OPTIONS, options)])  # fmt: skip
    points = model_points(run, program, realise)
    q = statements(run)
    if "levels" in options:
        q.levels = (_int_value(options["levels"][0], None, "--set levels"), None)
    if "sector" in options:
        v = options["sector"][0]
        if v != "all" and (isinstance(v, bool) or not isinstance(v, int)):
            _fail("P406", f"--set sector: an integer magnetisation sum(Z) or all, got {v!r}")
        q.sector = (None if v == "all" else v, None)
    span = q.exact_span
    for key in ("learner", "optimizer", "iterations", "samples", "reference"):
        if getattr(q, key) is not None:
            _fail("P211", f"an exact run has no '{key}' statement; optimising a learner is a "
                  "separate vmc run", q.given(key))  # fmt: skip
    sector = q.sector or (None, span)
    plan = ExactPlan(points, q.levels[0] if q.levels is not None else 1, [], [])
    for p in points:
        plan.sectors.append(sectors(p.model, sector[0], sector[1]))
        check_dims(p.model, plan.sectors[-1], span)
        plan.measured.append(measured_operators(run, p.model, "exact"))
    if run.sampler is not None:
        _fail("P211", "an exact run samples nothing: drop the sampler", run.sampler_span)
    return plan


# ---------------------------------------------------------------- vmc task


@dataclass
class VMCPlan:
    """A vmc run, validated: the learner (declaration, options, symmetries it respects), the
    sampler, optimiser and pretraining optimiser with their options, the step counts, the
    reference energy (``exact``, ``none``, ``auto`` or a value) and the measured operators of
    every point of the scan (``points``). ``resume``: the deprecated ``--set resume`` (None:
    not given)."""

    learner_decl: LearnerIR
    learner_options: BaseModel
    respecting: list[str]
    sampler_name: str
    sampler_spec: BaseModel
    optimizer_name: str
    optimizer_spec: BaseModel
    iterations: int
    samples: int
    final_samples: int
    checkpoint_every: int
    reference: float | str = "auto"
    pretrain: int = 0
    pretrain_name: str = "adam"
    pretrain_spec: BaseModel | None = None
    measured: list[Measured] = field(default_factory=list)
    points: list[Point] = field(default_factory=list)
    resume: bool | None = None


def _learner_decl(run: RunState, program) -> LearnerIR:
    decls = program.learners
    q = statements(run)
    want = q.learner or q.learner_optimized
    other = q.learner_optimized
    if want and other and other[0] != want[0]:
        _fail("P211", f"run {run.name} names learner '{want[0]}' but optimises '{other[0]}'",
              other[1])  # fmt: skip
    if want is None:
        if len(decls) != 1:
            _fail("P412", f"run {run.name} must name its learner" if decls else
                  f"run {run.name} optimises a learner, but none is declared", run.span,
                  "declare one at top level: learner psi = rbm(alpha = 2) respecting "
                  "translation; then 'learner psi' in the run")  # fmt: skip
        return next(iter(decls.values()))
    if want[0] not in decls:
        _fail("P207", f"unknown learner '{want[0]}'", want[1],
              did_you_mean(want[0], set(decls)) or "declare it: learner psi = rbm(alpha = 2)")  # fmt: skip
    return decls[want[0]]


def _learner_entry(decl: LearnerIR) -> Entry:
    """The quantum learner entry a declaration calls, or the located error naming the known."""
    call = decl.call
    entry = _entry(CATALOGUE.learners, call.name)
    if entry is None:
        _fail("P207", f"unknown quantum learner '{call.name}'", call.name_span,
              did_you_mean(call.name, set(CATALOGUE.learners.names(QUANTUM, shared=False)))
              or "learners: " + ", ".join(CATALOGUE.learners.names(QUANTUM, shared=False)))  # fmt: skip
    if call.args:
        _fail("P318", "learner options are given by name: rbm(alpha = 2)", call.span)
    return entry


def _optimiser(name: str, span: Span | None) -> Entry:
    """The optimiser entry of a vmc run, or the located error naming the known ones."""
    entry = _entry(CATALOGUE.optimisers, name)
    if entry is None:
        _fail("P206", f"unknown optimiser '{name}'", span,
              did_you_mean(name, set(CATALOGUE.optimisers.names(QUANTUM, shared=False)))
              or "optimisers: " + ", ".join(CATALOGUE.optimisers.names(QUANTUM, shared=False)))  # fmt: skip
    return entry


def check_vmc(task: TaskIR, program) -> None:
    """The static check of a vmc run."""
    plan_vmc(RunState.of(task), program)


def _count(options: Located, name: str, given: tuple[int, Span | None] | None, default: int,
           low: int = 1) -> int:  # fmt: skip
    """A step count of a vmc run: its --set value, else its statement's, else ``default``."""
    if name in options:
        return _int_value(options[name][0], None, f"--set {name}", low)
    return given[0] if given is not None else default


def _resume_set(run: RunState, options: Located) -> bool | None:
    """``--set resume=...``: the old spelling of --resume (a P403 warning), or None."""
    if "resume" not in options:
        return None
    v = options["resume"][0]
    if not isinstance(v, bool):
        _fail("P406", f"--set resume must be true or false, got {v!r}", run.span, "use --resume")
    warn(Diagnostic("P403", f"--set resume={str(v).lower()} is deprecated: runs resume only "
                    "with --resume", run.span, "use --resume" if v else "drop it: a run "
                    "without --resume starts afresh"))  # fmt: skip
    return v


def plan_vmc(run: RunState, program, sets: dict[str, Any] | None = None,
             realise: Realise | None = None) -> VMCPlan:  # fmt: skip
    """Validate a vmc run with its ``--set`` values (model parameters, scan variables, the run's
    options in VMC_OPTIONS (an exact run's are ignored), and the options of its learner, sampler
    and optimiser) and realise its points (``realise``: see :func:`model_points`). The learner
    is checked against the catalogue's static facts (the symmetries it can respect,
    ``learner_conflict``) and every symmetry it respects against each point's Hamiltonian;
    nothing is built."""
    decl = _learner_decl(run, program)
    learner = _learner_entry(decl)
    name = run.sampler or "metropolis"
    sampler = _entry(CATALOGUE.samplers, name)
    if sampler is None:
        known = CATALOGUE.samplers.names(QUANTUM, shared=False)
        _fail("P206", f"unknown VMC sampler '{name}'", run.sampler_span,
              did_you_mean(name, set(known)) or "samplers: " + ", ".join(known))  # fmt: skip
    q = statements(run)
    oname, ospan, oopts = q.optimizer or ("sr", None, {})
    oschema = _optimiser(oname, ospan).schema
    oopts = dict(oopts)
    learner_opts: Located = {k.name: (plain(k.value), k.span) for k in decl.call.kwargs}
    options: Located = {}
    apply_sets(run, sets or {}, program.checker_for(run.ir).param_names, [
        Settable("run option", RUN_OPTIONS, options),
        Settable("learner option", option_names(learner.schema), learner_opts),
        Settable("sampler option", option_names(sampler.schema), run.sampler_options),
        Settable("optimiser option", option_names(oschema), oopts)])  # fmt: skip
    resume = _resume_set(run, options)
    points = model_points(run, program, realise)
    opts = option_values(learner_opts, learner.schema, decl.call.span,
                         f"learner {decl.call.name}")  # fmt: skip
    respecting = []
    for sym, span in zip(decl.respecting, decl.respecting_spans):
        if sym not in SYMMETRIES:
            _fail("P210", f"unknown symmetry '{sym}'", span,
                  did_you_mean(sym, set(SYMMETRIES)) or "learners respect: translation, spin_flip")  # fmt: skip
        if sym not in learner.facts.symmetries:
            _fail("P501", f"learner {decl.call.name} cannot respect {sym}", span,
                  "quantum learners respect translation and spin_flip")  # fmt: skip
        respecting.append(sym)
    for p in points:
        qm = p.model
        for sym, span in zip(decl.respecting, decl.respecting_spans):
            try:
                verify_symmetry(sym, qm.hamiltonian, qm.geometry, span)
            except PhysmlError as exc:
                why = exc.diagnostics[0] if hasattr(exc, "diagnostics") else None
                hint = getattr(why, "hint", None)
                _fail("P505", f"learner {decl.name} respects {sym}, but the Hamiltonian of "
                      f"{qm.ir.name} does not have it", span, hint)  # fmt: skip
        why = learner_conflict(opts, respecting, qm.a_sublattice() is not None)
        if why is not None:
            _learner_conflict(decl, why)
    spec = option_values(run.sampler_options, sampler.schema, run.sampler_span,
                         f"sampler {name}")  # fmt: skip
    normalized = decl.call.name == "rnn"
    if name == "autoregressive" and not normalized:
        _fail("P502", f"autoregressive sampling needs a normalised learner (rnn), not "
              f"{decl.call.name}", run.sampler_span, "use sampler metropolis(...)")  # fmt: skip
    if isinstance(spec, MetropolisSpec) and spec.move == "exchange":
        for p in points:
            if not p.model.conserves_magnetization:
                span = run.sampler_options.get("move", (None, run.sampler_span))[1]
                _fail("P502", "exchange moves keep sum(Z) fixed, but the model does not "
                      "conserve it", span, "declare 'conserve sum(Z[i] for i in sites)' (it is "
                      "checked against H) or use move = flip")  # fmt: skip
    if isinstance(spec, MetropolisSpec):
        span = run.sampler_options.get("magnetization", (None, run.sampler_span))[1]
        for p in points:  # a sector the chains cannot be in: a located P400
            if (sector := vmc_sector(p.model, spec)) is not None:
                sectors(p.model, sector, span)
    ospec = option_values(oopts, oschema, ospan, f"optimiser {oname}")
    iterations = _count(options, "iterations", q.iterations, 100)
    samples = _count(options, "samples", q.samples, 1000)
    final = _count(options, "final_samples", q.final_samples, 4 * samples)
    every = _count(options, "checkpoint_every", q.checkpoint_every, 25, 0)
    measured = []
    for p in points:
        measured.append(measured_operators(run, p.model, "vmc"))
        ref = q.reference
        if ref and ref[0] == "exact":
            sector = vmc_sector(p.model, spec)
            check_dims(p.model, sectors(p.model, sector, ref[1]) if sector is not None
                        else sectors(p.model, None, ref[1]), ref[1])  # fmt: skip
    reference = (q.reference or ("auto", None))[0]
    setup = VMCPlan(decl, opts, respecting, name, spec, oname, ospec, iterations, samples, final,
                    every, reference, measured=measured, points=points, resume=resume)  # fmt: skip
    if q.pretrain is not None:
        n_pre, pspan, (pname, pospan, popts) = q.pretrain
        if decl.call.name != "rnn" or "translation" not in respecting:
            _fail("P413", "pretrain trains the bare autoregressive model before its symmetrised "
                  "form: it applies to rnn learners respecting translation", pspan)  # fmt: skip
        pschema = _optimiser(pname, pospan).schema
        setup.pretrain = _count(options, "pretrain", (n_pre, pspan), n_pre, 0)
        setup.pretrain_name = pname
        setup.pretrain_spec = option_values(popts, pschema, pospan, f"optimiser {pname}")
    return setup


def _learner_conflict(decl: LearnerIR, why: str) -> None:
    """A located P501 for a learner whose options do not fit the model (at the option that asks
    for the Marshall sign, when that is the reason)."""
    span = decl.call.name_span
    marshall = "Marshall" in why
    for k in decl.call.kwargs:
        if k.name in ("sign_rule", "phase") and marshall:
            span = k.span
    _fail("P501", f"learner {decl.name}: {why}", span,
          "the Marshall sign rule needs a bipartite lattice (chain, square, cubic with even "
          "periodic extents)" if marshall else None)  # fmt: skip


def vmc_sector(qm: QuantumDerivation, spec: BaseModel) -> int | None:
    """The magnetisation sector the sampler stays in (exchange moves), else None."""
    if not isinstance(spec, MetropolisSpec):
        return None
    move = spec.move
    if move == "auto":
        move = "exchange" if qm.conserves_magnetization else "flip"
    if move != "exchange":
        return None
    return spec.magnetization if spec.magnetization is not None else qm.n_sites % 2


# ---------------------------------------------------------------- sampling a quantum model


def refuse_classical_sampling(task: TaskIR, program, **_: Any) -> None:
    """A classical sampling run of a quantum model gets a clear, located error."""
    _fail("P502", f"model {program.checker_for(task).name} is a quantum model: a classical "
          "sampler does not apply", task.sampler.name_span if task.sampler else task.span,
          "use 'exact levels = 4' (exact diagonalisation) or a vmc run: 'learner psi', "
          "'optimize psi via sr(...)'")  # fmt: skip


def bind_checks(catalogue: Catalogue) -> None:
    """Attach the static checks of the quantum tasks to their catalogue entries."""
    catalogue.tasks.bind_check("sample", TaskCheck(refuse_classical_sampling), family=QUANTUM)
    catalogue.tasks.bind_check("exact", TaskCheck(check_exact))
    catalogue.tasks.bind_check("vmc", TaskCheck(check_vmc))


__all__ = ["EXACT_OPTIONS", "ExactPlan", "MAX_ED_DIM", "MeasureBuilder", "Measured", "Point",
           "QuantumStatements", "RUN_OPTIONS", "VMCPlan", "VMC_OPTIONS", "bind_checks", "builtin_observables",
           "check_dims", "check_exact", "check_vmc", "measured_operators", "model_points",
           "plan_exact", "plan_vmc", "refuse_classical_sampling", "sector_dim", "sectors",
           "statements", "vmc_sector"]  # fmt: skip
