"""Static plans of the quantum tasks (torch-free): what an ``exact`` or ``vmc`` run, or a
classical ``sample`` run of a qubit model, would reject, checked without running.

A plan reads a run's statements, applies ``--set`` overrides and scans, realises every point of
the scan (``program.derive`` for ``physml check``; the runtime passes ``program.compile_ir``),
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
from physml_lang.check.model import validate_options
from physml_lang.check.tasks import STATEMENTS
from physml_lang.compiler.derive.quantum import (
    PauliBuilder,
    QuantumDerivation,
    SiteRef,
    Value,
    verify_symmetry,
)
from physml_lang.diagnostics import Diagnostic, PhysmlError, Span, did_you_mean
from physml_lang.ir import expr as E
from physml_lang.ir.model import ModelIR
from physml_lang.ir.program import LearnerIR
from physml_lang.ir.task import CallValue, ItemIR, StatementIR, TaskIR, Word

from ..tasks import RunState, TaskCheck, option_values, plain

MAX_ED_DIM = 2**22  # exact diagonalisation: sparse H with ~N nonzeros per row
OVERRIDES = ("iterations", "samples", "final_samples", "resume", "levels", "sector",
             "checkpoint_every", "pretrain")  # fmt: skip
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


def _quantum_entries(entries: Registry) -> list[Entry]:
    return [e for e in entries if e.family == QUANTUM]


# ---------------------------------------------------------------- run statements


def _one_item(stmt: StatementIR) -> ItemIR:
    if len(stmt.items) != 1:
        _fail("P100", f"'{stmt.word}' takes one item", stmt.span, STATEMENTS[stmt.word].usage)
    return stmt.items[0]


def _int_value(v: Any, span: Span | None, what: str, low: int = 1) -> int:
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    if isinstance(v, bool) or not isinstance(v, int) or v < low:
        _fail("P400", f"{what} must be an integer >= {low}, got {v!r}", span)
    return v


def _method(v: Any, span: Span | None) -> tuple[str, Span | None, dict]:
    """An optimiser as (name, name span, {option: (value, span)}) from ``sr(lr = 0.02)``."""
    if isinstance(v, Word):
        return v.name, v.span, {}
    if not isinstance(v, CallValue):
        _fail("P100", "an optimiser is a call: sr(...), sgd(...) or adam(...)", span)
    if v.args:
        _fail("P302", "optimiser options are given by name: sr(lr = 0.02)", v.span)
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
            _fail("P100", "'learner' names a declared learner: learner psi", item.span,
                  "declare it at top level: learner psi = rbm(alpha = 2) respecting translation")  # fmt: skip
        self.learner = (item.value.name, item.value.span)

    def _optimize(self, stmt: StatementIR) -> None:
        item = _one_item(stmt)
        if item.kind == "via":
            if not isinstance(item.value, Word):
                _fail("P100", "optimize NAME via METHOD(...)", item.span)
            self.learner_optimized = (item.value.name, item.value.span)
            method = item.via
        elif item.kind == "value":
            method = item.value
        else:
            _fail("P100", "optimize psi via sr(lr = 0.02)", item.span)
        self.optimizer = _method(method, item.value_span)

    def _pretrain(self, stmt: StatementIR) -> None:
        item = _one_item(stmt)
        if item.kind not in ("value", "via"):
            _fail("P100", "pretrain 400 via adam(lr = 0.01)", item.span)
        n = _int_value(item.value, item.value_span, "pretrain iterations")
        opt: tuple = ("adam", item.span, {})
        if item.kind == "via":
            if isinstance(item.via, CallValue) and item.via.args:
                _fail("P100", "an optimiser is a call with named options: adam(lr = 0.01)",
                      item.span)  # fmt: skip
            opt = _method(item.via, item.span)
        self.pretrain = (n, stmt.span, opt)

    def _iterations(self, stmt: StatementIR) -> None:
        item = _one_item(stmt)
        if item.kind != "value":
            _fail("P100", "iterations takes a number: iterations 300", item.span)
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
                _fail("P100", "samples N[, final = M]", item.span, STATEMENTS["samples"].usage)

    def _reference(self, stmt: StatementIR) -> None:
        item = _one_item(stmt)
        v = item.value
        if item.kind == "value" and isinstance(v, Word) and v.name in ("exact", "none", "auto"):
            self.reference = (v.name, item.span)
        elif item.kind == "named" and item.name == "energy":
            if isinstance(v, bool) or not isinstance(v, int | float):
                _fail("P300", "the reference energy is a number", item.value_span)
            self.reference = (float(v), item.span)
        else:
            _fail("P100", "reference exact | none | auto | energy = VALUE", item.span)

    def _checkpoint(self, stmt: StatementIR) -> None:
        item = _one_item(stmt)
        if item.kind != "named" or item.name != "every":
            _fail("P100", "checkpoint every = 25", item.span)
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
                    _fail("P300", "sector is an integer magnetisation sum(Z) or all",
                          item.value_span)  # fmt: skip
                self.sector = (v, item.span)
            elif item.kind == "value" and isinstance(v, Word) and v.name in EXACT_METHODS:
                if self.levels is None:
                    self.levels = (1, item.span)
            else:
                _fail("P100", "exact levels = N[, sector = M]", item.span,
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


def model_points(run: RunState, program, sets: dict[str, Any], extra_names: set[str],
                 realise: Realise | None = None) -> tuple[list[Point], dict[str, Any]]:  # fmt: skip
    """Apply --set and scans; realise every point of the scan (``realise``: a model IR to a
    quantum model, ``program.derive`` by default). Returns the points and the --set values
    that name run options (``extra_names``)."""
    realise = realise or program.derive
    checker = program.checker_for(run.ir)
    params = set(checker.param_names)
    model_args = {k: v for k, (v, _) in run.model_args.items()}
    spans: dict[str, Any] = {k: s for k, (_, s) in run.model_args.items()}
    for name, (v, s) in run.lets.items():
        if name not in params:
            _fail("P200", f"'let {name}': not a parameter of model {checker.name}", s,
                  did_you_mean(name, params))  # fmt: skip
        model_args.setdefault(name, v)
        spans.setdefault(name, s)
    rest = {}
    for name, value in sets.items():
        scan = next((s for s in run.scans if s.name == name), None)
        if scan is not None:
            scan.values = [value]
        elif name in params:
            model_args[name], spans[name] = value, None
        elif name in extra_names:
            rest[name] = value
        else:
            known = params | extra_names | {s.name for s in run.scans}
            _fail("P200", f"--set {name}: no model parameter, scan variable or option of run "
                  f"{run.name} is called '{name}'", None,
                  did_you_mean(name, known) or "known names: " + ", ".join(sorted(known)))  # fmt: skip
    for s in run.scans:
        if s.name not in params:
            _fail("P200", f"cannot scan '{s.name}': it is not a parameter of model "
                  f"{checker.name}", s.span, did_you_mean(s.name, params)
                  or "a quantum ground state has no temperature; scan a model parameter")  # fmt: skip
    points = []
    for combo in itertools.product(*[s.values for s in run.scans]) or [()]:
        args, sp_ = dict(model_args), dict(spans)
        for s, v in zip(run.scans, combo):
            args[s.name], sp_[s.name] = v, s.span
        qm = realise(checker.instantiate(args, sp_))
        if not isinstance(qm, QuantumDerivation):
            _fail("P400", f"run {run.name} is a quantum task, but model {checker.name} is "
                  "not a quantum model", run.model_span or run.span,
                  "a quantum model has a 'field s: qubit on sites' and a 'hamiltonian'")  # fmt: skip
        points.append(Point({s.name: v for s, v in zip(run.scans, combo)}, qm))
    return points, rest


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
            _fail("P200", f"unknown observable '{m.name}'", m.span,
                  did_you_mean(m.name, known) or "quantum observables: " + ", ".join(sorted(known))
                  + ", or an operator expression: measure mx = sum(X[i] for i in sites) / N")  # fmt: skip
        else:
            op = MeasureBuilder(qm).operator(m.expr)
            if not op.is_hermitian():
                _fail("P300", f"observable '{m.name}' is not Hermitian", m.span,
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
        _fail("P400", "a magnetisation sector needs a conserved sum(Z)", span,
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
        _fail("P400", f"exact diagonalisation of {qm.n_sites} qubits needs a space of {dim} "
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
    run = RunState.of(task)
    points, rest = model_points(run, program, {}, set(OVERRIDES))
    plan_exact(run, points, rest)


def plan_exact(run: RunState, points: list[Point], rest: dict[str, Any]) -> ExactPlan:
    """Validate an exact run (``rest``: its --set levels and sector)."""
    q = statements(run)
    if "levels" in rest:
        q.levels = (int(rest["levels"]), None)
    if "sector" in rest:
        v = rest["sector"]
        q.sector = (None if v == "all" else int(v), None)
    span = q.exact_span
    for key in ("learner", "optimizer", "iterations", "samples", "reference"):
        if getattr(q, key) is not None:
            _fail("P201", f"an exact run has no '{key}' statement; optimising a learner is a "
                  "separate vmc run", q.given(key))  # fmt: skip
    sector = q.sector or (None, span)
    plan = ExactPlan(points, q.levels[0] if q.levels is not None else 1, [], [])
    for p in points:
        plan.sectors.append(sectors(p.model, sector[0], sector[1]))
        check_dims(p.model, plan.sectors[-1], span)
        plan.measured.append(measured_operators(run, p.model, "exact"))
    if run.sampler is not None:
        _fail("P201", "an exact run samples nothing: drop the sampler", run.sampler_span)
    return plan


# ---------------------------------------------------------------- vmc task


@dataclass
class VMCPlan:
    """A vmc run, validated: the learner (declaration, options, symmetries it respects), the
    sampler, optimiser and pretraining optimiser with their options, the step counts, the
    reference energy (``exact``, ``none``, ``auto`` or a value) and the measured operators of
    every point of the scan."""

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


def _learner_decl(run: RunState, program) -> LearnerIR:
    decls = program.learners
    q = statements(run)
    want = q.learner or q.learner_optimized
    other = q.learner_optimized
    if want and other and other[0] != want[0]:
        _fail("P201", f"run {run.name} names learner '{want[0]}' but optimises '{other[0]}'",
              other[1])  # fmt: skip
    if want is None:
        if len(decls) != 1:
            _fail("P400", f"run {run.name} must name its learner" if decls else
                  f"run {run.name} optimises a learner, but none is declared", run.span,
                  "declare one at top level: learner psi = rbm(alpha = 2) respecting "
                  "translation; then 'learner psi' in the run")  # fmt: skip
        return next(iter(decls.values()))
    if want[0] not in decls:
        _fail("P200", f"unknown learner '{want[0]}'", want[1],
              did_you_mean(want[0], set(decls)) or "declare it: learner psi = rbm(alpha = 2)")  # fmt: skip
    return decls[want[0]]


def _learner_options(decl: LearnerIR, sets: dict[str, Any]) -> BaseModel:
    call = decl.call
    entry = _entry(CATALOGUE.learners, call.name)
    if entry is None:
        _fail("P200", f"unknown quantum learner '{call.name}'", call.name_span,
              did_you_mean(call.name, set(CATALOGUE.learners.names(QUANTUM, shared=False)))
              or "learners: " + ", ".join(CATALOGUE.learners.names(QUANTUM, shared=False)))  # fmt: skip
    if call.args:
        _fail("P302", "learner options are given by name: rbm(alpha = 2)", call.span)
    schema = entry.schema
    values = {k.name: plain(k.value) for k in call.kwargs}
    spans: dict[str, Any] = {k.name: k.span for k in call.kwargs}
    for k, v in sets.items():
        if k in schema.model_fields:
            values[k], spans[k] = v, call.span
    return validate_options(schema, values, spans, call.span, f"learner {call.name}")


def _optimiser(name: str, span: Span | None) -> Entry:
    """The optimiser entry of a vmc run, or the located error naming the known ones."""
    entry = _entry(CATALOGUE.optimisers, name)
    if entry is None:
        _fail("P200", f"unknown optimiser '{name}'", span,
              did_you_mean(name, set(CATALOGUE.optimisers.names(QUANTUM, shared=False)))
              or "optimisers: " + ", ".join(CATALOGUE.optimisers.names(QUANTUM, shared=False)))  # fmt: skip
    return entry


def check_vmc(task: TaskIR, program) -> None:
    """The static check of a vmc run."""
    run = RunState.of(task)
    points, rest = model_points(run, program, {}, vmc_override_names())
    plan_vmc(run, program, points, rest)


def vmc_override_names() -> set[str]:
    """The --set names of a vmc run besides model parameters: overrides and the options of
    every quantum sampler, optimiser and learner."""
    names = set(OVERRIDES)
    for entries in (CATALOGUE.samplers, CATALOGUE.optimisers, CATALOGUE.learners):
        for entry in _quantum_entries(entries):
            names |= set(entry.schema.model_fields)
    return names


def plan_vmc(run: RunState, program, points: list[Point], rest: dict[str, Any]) -> VMCPlan:
    """Validate a vmc run (``rest``: its --set options). The learner is checked against the
    catalogue's static facts (the symmetries it can respect, ``learner_conflict``) and every
    symmetry it respects against each point's Hamiltonian; nothing is built."""
    decl = _learner_decl(run, program)
    opts = _learner_options(decl, rest)
    respecting = []
    for name, span in zip(decl.respecting, decl.respecting_spans):
        if name not in SYMMETRIES:
            _fail("P200", f"unknown symmetry '{name}'", span,
                  did_you_mean(name, set(SYMMETRIES)) or "learners respect: translation, spin_flip")  # fmt: skip
        if name not in CATALOGUE.learners.lookup(decl.call.name, QUANTUM).facts.symmetries:
            _fail("P501", f"learner {decl.call.name} cannot respect {name}", span,
                  "quantum learners respect translation and spin_flip")  # fmt: skip
        respecting.append(name)
    for p in points:
        qm = p.model
        for name, span in zip(decl.respecting, decl.respecting_spans):
            try:
                verify_symmetry(name, qm.hamiltonian, qm.geometry, span)
            except PhysmlError as exc:
                why = exc.diagnostics[0] if hasattr(exc, "diagnostics") else None
                hint = getattr(why, "hint", None)
                _fail("P500", f"learner {decl.name} respects {name}, but the Hamiltonian of "
                      f"{qm.ir.name} does not have it", span, hint)  # fmt: skip
        why = learner_conflict(opts, respecting, qm.a_sublattice() is not None)
        if why is not None:
            _learner_conflict(decl, why)
    # sampler
    name = run.sampler or "metropolis"
    sampler = _entry(CATALOGUE.samplers, name)
    if sampler is None:
        known = CATALOGUE.samplers.names(QUANTUM, shared=False)
        _fail("P200", f"unknown VMC sampler '{name}'", run.sampler_span,
              did_you_mean(name, set(known)) or "samplers: " + ", ".join(known))  # fmt: skip
    for k, v in rest.items():
        if k in sampler.schema.model_fields:
            run.sampler_options[k] = (v, None)
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
    # optimiser
    q = statements(run)
    oname, ospan, oopts = q.optimizer or ("sr", None, {})
    oschema = _optimiser(oname, ospan).schema
    oopts = dict(oopts)
    for k, v in rest.items():
        if k in oschema.model_fields:
            oopts[k] = (v, None)
    ospec = option_values(oopts, oschema, ospan, f"optimiser {oname}")
    iterations = int(rest.get("iterations", (q.iterations or (100, None))[0]))
    samples = int(rest.get("samples", (q.samples or (1000, None))[0]))
    final = int(rest.get("final_samples", (q.final_samples or (4 * samples, None))[0]))
    every = int(rest.get("checkpoint_every", (q.checkpoint_every or (25, None))[0]))
    for what, v in (("iterations", iterations), ("samples", samples), ("final samples", final)):
        if v < 1:
            _fail("P400", f"{what} must be >= 1, got {v}", None)
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
                    every, reference, measured=measured)  # fmt: skip
    if q.pretrain is not None:
        n_pre, pspan, (pname, pospan, popts) = q.pretrain
        if decl.call.name != "rnn" or "translation" not in respecting:
            _fail("P400", "pretrain trains the bare autoregressive model before its symmetrised "
                  "form: it applies to rnn learners respecting translation", pspan)  # fmt: skip
        pschema = _optimiser(pname, pospan).schema
        setup.pretrain = int(rest.get("pretrain", n_pre))
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


__all__ = ["ExactPlan", "MAX_ED_DIM", "MeasureBuilder", "Measured", "OVERRIDES", "Point", "QuantumStatements",
           "VMCPlan", "bind_checks", "builtin_observables", "check_dims", "check_exact",
           "check_vmc", "measured_operators", "model_points", "plan_exact", "plan_vmc",
           "refuse_classical_sampling", "sector_dim", "sectors", "statements", "vmc_override_names",
           "vmc_sector"]  # fmt: skip
