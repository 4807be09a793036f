"""Quantum tasks in the language: exact diagonalisation (``exact``) and variational Monte Carlo
(``vmc``) of qubit models, with their run statements and the quantum model kind.

Run statements (registry entries, not grammar)::

    exact levels = 4, sector = 0            # Lanczos: lowest levels (sector: a magnetisation)
    learner psi                             # which top-level learner to optimise (vmc)
    optimize psi via sr(lr = 0.02, diag_shift = 0.1)    # or sgd(...), adam(...)
    iterations 300                          # optimisation steps
    samples 1000, final = 20000             # samples per step, for the final estimate
    sampler metropolis(chains = 16, move = exchange)    # or autoregressive (rnn learners)
    reference exact                         # or none, or energy = -25.4909896864
    checkpoint every = 25
    measure energy, variance, magnetization, structure_factor, mx = sum(X[i] for i in sites) / N

Every result row carries ``{"mean", "stderr"}`` for each observable; the exact task reports
stderr 0.
"""

from __future__ import annotations

import csv
import io
import itertools
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel
from tqdm import tqdm

from physml_lang.catalogue import CATALOGUE, Catalogue, Entry, Registry
from physml_lang.catalogue.domains import SYMMETRIES
from physml_lang.catalogue.quantum import (
    QUANTUM,
    AutoregressiveSpec,
    MetropolisSpec,
)
from physml_lang.check.model import validate_options
from physml_lang.check.tasks import STATEMENTS
from physml_lang.compiler.derive.pauli import PauliSum
from physml_lang.compiler.models.quantum import PauliBuilder, QuantumModel, verify_symmetry
from physml_lang.diagnostics import Diagnostic, PhysmlError, Span, did_you_mean
from physml_lang.ir import expr as E
from physml_lang.ir.program import LearnerIR
from physml_lang.ir.task import CallValue, ItemIR, StatementIR, TaskIR, Word

from .. import outputs
from ..sample_task import RunResult
from ..statistics import Estimate
from ..tasks import RunState, Task, TaskCheck, option_values, plain
from . import registry, vmc
from .learners import MarshallSign, SymmetrizedAutoregressive
from .operator import LocalOperator
from .registry import QuantumContext, SymmetryError, make_learner
from .vmc import (
    AutoregressiveSampler,
    MetropolisOptions,
    MetropolisSampler,
    diagonal_observables,
    energy_statistics,
    expectation,
    run_vmc,
)

MAX_ED_DIM = 2**22  # exact diagonalisation: sparse H with ~N nonzeros per row
AUTO_REFERENCE_DIM = 2**16  # VMC runs compute the exact energy themselves below this
DIAGONAL = ("magnetization", "abs_magnetization", "staggered_magnetization", "structure_factor")


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
            elif item.kind == "value" and isinstance(v, Word) and v.name in ("lanczos",
                                                                            "ground_state"):
                if self.levels is None:
                    self.levels = (1, item.span)
            else:
                _fail("P100", "exact levels = N[, sector = M]", item.span,
                      STATEMENTS["exact"].usage)  # fmt: skip
        if self.exact_span is None:
            self.exact_span = stmt.span


def _statements(run: RunState) -> QuantumStatements:
    if not hasattr(run, "quantum"):
        run.quantum = QuantumStatements(run.ir)
    return run.quantum


# ---------------------------------------------------------------- plans


@dataclass
class Point:
    """One compiled model of a scan."""

    values: dict[str, Any]
    model: QuantumModel


@dataclass
class QuantumPlan:
    run: RunState
    points: list[Point]
    scans: list
    measures: list
    options: dict[str, Any] = field(default_factory=dict)


OVERRIDES = ("iterations", "samples", "final_samples", "resume", "levels", "sector",
             "checkpoint_every", "pretrain")  # fmt: skip


def _model_points(run: RunState, program, sets: dict[str, Any], extra_names: set[str]) -> tuple:
    """Apply --set and scans; compile every point of the scan (each a QuantumModel)."""
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
        qm = program.compile_ir(checker.instantiate(args, sp_))
        if not isinstance(qm, QuantumModel):
            _fail("P400", f"run {run.name} is a quantum task, but model {checker.name} is "
                  "not a quantum model", run.model_span or run.span,
                  "a quantum model has a 'field s: qubit on sites' and a 'hamiltonian'")  # fmt: skip
        points.append(Point({s.name: v for s, v in zip(run.scans, combo)}, qm))
    return points, rest


class MeasureBuilder(PauliBuilder):
    """Measured operator expressions: model names plus ``energy`` (= H) and ``sites`` (= N)."""

    def __init__(self, qm: QuantumModel):
        super().__init__(qm.model, qm.geometry)
        self.qm = qm

    def on_name(self, e: E.Name, env):
        if e.id == "energy":
            return self.qm.hamiltonian
        if e.id == "sites":
            return complex(self.n)
        return super().on_name(e, env)


def _measures(run: RunState, qm: QuantumModel, vmc: bool) -> list[tuple[str, Any]]:
    """(name, what): what is a built-in name or a PauliSum to measure."""
    builtins = _builtin_observables("vmc" if vmc else "exact")
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


@dataclass(frozen=True)
class QuantumObservable:
    """The implementation of a built-in observable of quantum runs: the function that computes
    it in an exact run and in a vmc run (None: that run does not report it)."""

    exact: Callable[..., Any] | None
    vmc: Callable[..., Any] | None


def _builtin_observables(task: str) -> set[str]:
    """Names of the catalogue's quantum observables that runs of ``task`` report."""
    return {e.name for e in _quantum_entries(CATALOGUE.observables)
            if getattr(CATALOGUE.observables.implementation(e.name, QUANTUM), task) is not None}  # fmt: skip


def _structure_qs(qm: QuantumModel) -> tuple[np.ndarray, np.ndarray]:
    """Positions (N, d) and the wavevectors q = 0 and q = (pi, ..., pi)."""
    pos = qm.geometry.coords.astype(np.float64)
    d = pos.shape[1]
    return pos, np.stack([np.zeros(d), np.full(d, math.pi)])


# ---------------------------------------------------------------- exact task


def _levels(run: RunState) -> int:
    q = _statements(run)
    return q.levels[0] if q.levels is not None else 1


def _sectors(qm: QuantumModel, sector: Any, span) -> list[int | None]:
    n = qm.n_sites
    if sector is None:
        return list(range(n, -n - 1, -2)) if qm.conserves_magnetization else [None]
    if not qm.conserves_magnetization:
        _fail("P400", "a magnetisation sector needs a conserved sum(Z)", span,
              "declare 'conserve sum(Z[i] for i in sites)' in the model (it is checked)")  # fmt: skip
    if (n + sector) % 2 or abs(sector) > n:
        _fail("P400", f"no states with sum(Z) = {sector} on {n} sites", span)
    return [sector]


def _sector_dim(n: int, m: int | None) -> int:
    return 2**n if m is None else math.comb(n, (n - m) // 2)


def _check_dims(qm: QuantumModel, sectors: list, span) -> None:
    dim = max(_sector_dim(qm.n_sites, m) for m in sectors)
    if dim > MAX_ED_DIM:
        _fail("P400", f"exact diagonalisation of {qm.n_sites} qubits needs a space of {dim} "
              f"states (limit {MAX_ED_DIM})", span, "use a smaller lattice, a magnetisation "
              "sector (conserve + sector = ...), or a vmc run")  # fmt: skip


@dataclass
class Spectrum:
    energies: list[float]
    sectors: list[int | None]
    ground: np.ndarray  # ground-state vector in the basis of codes
    codes: np.ndarray  # (dim,) sorted basis indices of the ground state's sector


def exact_spectrum(qm: QuantumModel, levels: int, sectors: list[int | None]) -> Spectrum:
    """Lowest ``levels`` energies over the sectors (Lanczos per sector, merged)."""
    op = LocalOperator(qm.hamiltonian)
    found: list[tuple[float, int | None, int]] = []
    vectors = {}
    for m in sectors:  # one Lanczos per magnetisation sector
        dim = _sector_dim(qm.n_sites, m)
        k = min(levels, dim)
        if dim > 64 and k >= dim - 1:
            k = dim - 2
        w, v = op.exact_ground_state(k=max(k, 1), magnetization=m)
        vectors[m] = v[:, 0]
        found += [(float(e), m, j) for j, e in enumerate(w)]
    found.sort(key=lambda x: x[0])
    found = found[:levels]
    m0 = found[0][1]
    return Spectrum([f[0] for f in found], [f[1] for f in found], vectors[m0],
                    op.sector_codes(m0))  # fmt: skip


def exact_expectation(h: PauliSum, codes: np.ndarray, psi: np.ndarray, chunk: int = 1 << 15):
    """<psi|O|psi> for psi on the sorted basis ``codes`` (zero elsewhere), batched over rows."""
    op = LocalOperator(h)
    n = h.n_sites
    num = 0j
    masks = op.mask_codes.numpy()
    for start in range(0, len(codes), chunk):
        c = codes[start : start + chunk]
        s = LocalOperator.codes_to_configs(torch.as_tensor(c), n)
        mels = op.matrix_elements(s).numpy()  # (M, K)
        cols = c[:, None] ^ masks[None, :]
        idx = np.clip(np.searchsorted(codes, cols), 0, len(codes) - 1)
        psi_col = np.where(codes[idx] == cols, psi[idx], 0.0)
        num += np.sum(np.conj(psi[start : start + chunk])[:, None] * mels * psi_col)
    return complex(num / np.vdot(psi, psi))


def _exact_diagonal(qm: QuantumModel, codes: np.ndarray, psi: np.ndarray) -> dict[str, float]:
    """Z-basis observables of an exact state from its |psi|^2 weights."""
    w = np.abs(psi) ** 2
    w = w / w.sum()
    s = LocalOperator.codes_to_configs(torch.as_tensor(codes), qm.n_sites).numpy()
    m = s.mean(1)
    out = {"magnetization": float(w @ m), "abs_magnetization": float(w @ np.abs(m))}
    sub = qm.sublattice()
    if sub is not None:
        signs = np.where(sub.numpy(), 1.0, -1.0)
        out["staggered_magnetization"] = float(w @ np.abs(s @ signs / qm.n_sites))
    pos, qs = _structure_qs(qm)
    amp = np.exp(1j * qs @ pos.T) @ s.T  # (Q, M)
    sq = (np.abs(amp) ** 2 / qm.n_sites) @ w
    out["structure_factor_q0"], out["structure_factor_qpi"] = float(sq[0]), float(sq[1])
    return out


def _exact_value(x: float) -> dict[str, float]:
    return {"mean": x, "stderr": 0.0}


def check_exact(task: TaskIR, program) -> QuantumPlan:
    run = RunState.of(task)
    points, rest = _model_points(run, program, {}, set(OVERRIDES))
    return _plan_exact(run, points)


def _plan_exact(run: RunState, points: list[Point]) -> QuantumPlan:
    q = _statements(run)
    span = q.exact_span
    for key in ("learner", "optimizer", "iterations", "samples", "reference"):
        if getattr(q, key) is not None:
            _fail("P201", f"an exact run has no '{key}' statement; optimising a learner is a "
                  "separate vmc run", q.given(key))  # fmt: skip
    sector = q.sector or (None, span)
    for p in points:
        sectors = _sectors(p.model, sector[0], sector[1])
        _check_dims(p.model, sectors, span)
        _measures(run, p.model, vmc=False)
    if run.sampler is not None:
        _fail("P201", "an exact run samples nothing: drop the sampler", run.sampler_span)
    return QuantumPlan(run, points, run.scans, run.measures)


def run_exact(task: TaskIR, program, *, sets, device, seed, out, progress) -> RunResult:
    run = RunState.of(task)
    q = _statements(run)
    started = time.time()
    sets = dict(sets or {})
    points, rest = _model_points(run, program, sets, set(OVERRIDES))
    if "levels" in rest:
        q.levels = (int(rest["levels"]), None)
    if "sector" in rest:
        v = rest["sector"]
        q.sector = (None if v == "all" else int(v), None)
    _plan_exact(run, points)
    levels = _levels(run)
    summary: dict[str, Any] = {
        "run": run.name, "source": program.name, "model": program.checker_for(run.ir).name,
        "task": "exact", "params": {}, "device": "cpu", "seed": seed,
        "sampler": {"name": "exact (Lanczos)"}, "levels": levels,
        "scan": {s.name: s.values for s in run.scans}, "rows": [], "complete": False,
    }  # fmt: skip
    span = q.exact_span
    sector = (q.sector or (None, span))[0]
    for p in points:
        qm = p.model
        summary["params"] = dict(qm.model.params)
        sectors = _sectors(qm, sector, span)
        spec = exact_spectrum(qm, levels, sectors)
        e0 = spec.energies[0]
        row: dict[str, Any] = dict(p.values)
        row["energy"] = _exact_value(e0)
        row["energy_per_site"] = _exact_value(e0 / qm.n_sites)
        if len(spec.energies) > 1:
            row["gap"] = _exact_value(spec.energies[1] - e0)
        row["levels"] = spec.energies
        if qm.conserves_magnetization:
            row["sectors"] = spec.sectors
        diag = None
        for name, what in _measures(run, qm, vmc=False):
            if isinstance(what, PauliSum):
                row[name] = _exact_value(exact_expectation(what, spec.codes, spec.ground).real)
            elif what in DIAGONAL:
                diag = diag or _exact_diagonal(qm, spec.codes, spec.ground)
                if what == "structure_factor":
                    for k in ("structure_factor_q0", "structure_factor_qpi"):
                        row[k] = _exact_value(diag[k])
                elif what in diag:
                    row[name] = _exact_value(diag[what])
        summary["rows"].append(row)
        if out is not None:
            outputs.write_summary(out, summary)
    summary["complete"] = True
    summary["elapsed_s"] = round(time.time() - started, 3)
    files = []
    if out is not None:
        outputs.write_summary(out, summary)
        if run.scans:
            names = [k for k, v in summary["rows"][0].items() if isinstance(v, dict)]
            f = outputs.plot_rows(out, summary["rows"], run.scans[0].name, names, None,
                                  "plot.png", f"{summary['model']} ({run.name}), exact")  # fmt: skip
            if f:
                files.append(f)
    return RunResult(summary, out, files)


# ---------------------------------------------------------------- vmc task


@dataclass
class VMCSetup:
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
    pretrain: int = 0
    pretrain_name: str = "adam"
    pretrain_spec: BaseModel | None = None


def _learner_decl(run: RunState, program) -> LearnerIR:
    decls = program.learners
    q = _statements(run)
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


def _optimizer_options(name: str, spec: BaseModel) -> vmc.OptimizerOptions:
    """run_vmc's configuration of a validated ``optimize ... via NAME(...)``."""
    return CATALOGUE.optimisers.implementation(name, QUANTUM)(spec)


def _plan_vmc(run: RunState, program, points: list[Point], rest: dict[str, Any]) -> VMCSetup:
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
        _build_learner(decl, opts, respecting, qm, torch.Generator().manual_seed(0))
    # sampler
    name = run.sampler or "metropolis"
    sampler = _entry(CATALOGUE.samplers, name)
    if sampler is None:
        known = CATALOGUE.samplers.names(QUANTUM, shared=False)
        _fail("P200", f"unknown VMC sampler '{name}'", run.sampler_span,
              did_you_mean(name, set(known)) or "samplers: " + ", ".join(known))
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
    q = _statements(run)
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
    for p in points:
        _measures(run, p.model, vmc=True)
        ref = q.reference
        if ref and ref[0] == "exact":
            sector = _vmc_sector(p.model, spec)
            _check_dims(p.model, _sectors(p.model, sector, ref[1]) if sector is not None
                        else _sectors(p.model, None, ref[1]), ref[1])  # fmt: skip
    setup = VMCSetup(decl, opts, respecting, name, spec, oname, ospec, iterations, samples, final,
                     every)  # fmt: skip
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


def _unsymmetrised(model: torch.nn.Module) -> torch.nn.Module:
    """The bare autoregressive model inside a translation-symmetrised one (shared parameters)."""

    if isinstance(model, MarshallSign) and isinstance(model.model, SymmetrizedAutoregressive):
        return MarshallSign(model.model.model, model.sublattice > 0.5)
    if isinstance(model, SymmetrizedAutoregressive):
        return model.model
    return model


def _build_learner(decl, opts, respecting, qm: QuantumModel, generator) -> torch.nn.Module:
    ctx = QuantumContext(
        qm.n_sites,
        shape=tuple(qm.lattice.shape),
        translations=qm.translation_table(),
        sublattice=qm.sublattice(),
        symmetries=set(respecting),
        generator=generator,
    )
    try:
        return make_learner(decl.call.name, opts, ctx)
    except SymmetryError as exc:
        span = decl.call.name_span
        for k in decl.call.kwargs:
            if k.name in ("sign_rule", "phase") and "Marshall" in str(exc):
                span = k.span
        _fail("P501", f"learner {decl.name}: {exc}", span,
              "the Marshall sign rule needs a bipartite lattice (chain, square, cubic with even "
              "periodic extents)" if "Marshall" in str(exc) else None)  # fmt: skip


def _vmc_sector(qm: QuantumModel, spec) -> int | None:
    """The magnetisation sector the sampler stays in (exchange moves), else None."""
    if not isinstance(spec, MetropolisSpec):
        return None
    move = spec.move
    if move == "auto":
        move = "exchange" if qm.conserves_magnetization else "flip"
    if move != "exchange":
        return None
    return spec.magnetization if spec.magnetization is not None else qm.n_sites % 2


class _IndependentDraws:
    """Autoregressive draws (1, n, N) presented as a series (n, 1, N) for binning and R-hat."""

    def __init__(self, n_sites: int):
        self.inner = AutoregressiveSampler(n_sites)
        self.acceptance = 1.0

    def sample(self, model, n_samples: int, generator):
        return self.inner.sample(model, n_samples, generator).transpose(0, 1)

    def state_tensors(self):
        return {}

    def load_state_tensors(self, tensors) -> None:
        pass


def _make_sampler(setup: VMCSetup, qm: QuantumModel, device):
    factory = CATALOGUE.samplers.implementation(setup.sampler_name, QUANTUM)
    return factory(setup.sampler_spec, qm, device)


def autoregressive_sampler(spec: AutoregressiveSpec, qm: QuantumModel,
                           device) -> _IndependentDraws:  # fmt: skip
    """``sampler autoregressive``: independent draws from the (normalised) learner."""
    return _IndependentDraws(qm.n_sites)


def metropolis_sampler(spec: MetropolisSpec, qm: QuantumModel, device) -> MetropolisSampler:
    """``sampler metropolis(...)``: chains over |psi|^2, with exchange moves in the sector of a
    model that conserves sum(Z) (move = auto), else flips."""
    sector = _vmc_sector(qm, spec)
    opts = MetropolisOptions(
        n_chains=spec.chains, sweeps_per_sample=spec.sweeps, burn_in_sweeps=spec.burn_in,
        initial_burn_in_sweeps=spec.initial_burn_in,
        move="exchange" if sector is not None else "flip",
        magnetization=sector if sector is not None else spec.magnetization,
        compile=spec.compile,
    )  # fmt: skip
    return MetropolisSampler(qm.n_sites, opts, device=device)


def _reference(run: RunState, qm: QuantumModel, sector: int | None) -> tuple[float | None, str]:
    ref = (_statements(run).reference or ("auto", None))[0]
    if isinstance(ref, float):
        return ref, "given"
    if ref == "none":
        return None, "none"
    sectors = _sectors(qm, sector, None) if sector is not None else _sectors(qm, None, None)
    dim = max(_sector_dim(qm.n_sites, m) for m in sectors)
    if ref == "auto" and dim > AUTO_REFERENCE_DIM:
        return None, "none"
    spec = exact_spectrum(qm, 1, sectors)
    return spec.energies[0], "exact" + (f" (sector sum(Z) = {sector})" if sector is not None
                                        else "")  # fmt: skip


def check_vmc(task: TaskIR, program) -> None:
    run = RunState.of(task)
    points, rest = _model_points(run, program, {}, _vmc_override_names(run, program))
    _plan_vmc(run, program, points, rest)


def _vmc_override_names(run: RunState, program) -> set[str]:
    names = set(OVERRIDES)
    for entries in (CATALOGUE.samplers, CATALOGUE.optimisers, CATALOGUE.learners):
        for entry in _quantum_entries(entries):
            names |= set(entry.schema.model_fields)
    return names


def _estimate(e: Estimate) -> dict[str, float]:
    return e.as_dict()


def run_vmc_task(task: TaskIR, program, *, sets, device, seed, out, progress) -> RunResult:
    run = RunState.of(task)
    started = time.time()
    points, rest = _model_points(run, program, dict(sets or {}),
                                 _vmc_override_names(run, program))  # fmt: skip
    setup = _plan_vmc(run, program, points, rest)
    resume_flag = rest.get("resume")
    summary: dict[str, Any] = {
        "run": run.name, "source": program.name, "model": program.checker_for(run.ir).name,
        "task": "vmc", "params": {}, "device": str(device), "seed": seed,
        "sampler": {"name": setup.sampler_name, **setup.sampler_spec.model_dump()},
        "learner": {"name": setup.learner_decl.name, "kind": setup.learner_decl.call.name,
                    **setup.learner_options.model_dump(), "respecting": setup.respecting},
        "optimizer": {"name": setup.optimizer_name, **setup.optimizer_spec.model_dump()},
        "iterations": setup.iterations, "samples": setup.samples,
        "final_samples": setup.final_samples, "pretrain": setup.pretrain,
        "scan": {s.name: s.values for s in run.scans}, "rows": [], "complete": False,
    }  # fmt: skip
    files: list[Path] = []
    show = sys.stderr.isatty() if progress is None else progress
    for k, p in enumerate(points):
        qm = p.model
        summary["params"] = dict(qm.model.params)
        ckpt = None
        resume = False
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            ckpt = out / (f"checkpoint{'' if len(points) == 1 else f'-{k}'}.safetensors")
            resume = ckpt.exists() if resume_flag is None else bool(resume_flag)
            if resume and not ckpt.exists():
                resume = False
        if resume:
            summary["resumed_from_checkpoint"] = str(ckpt)
        row, hist = _vmc_point(run, setup, qm, device, seed + k, ckpt, resume, show, summary, out)
        row = {**p.values, **row}
        summary["rows"].append(row)
        if out is not None:
            outputs.write_summary(out, summary)
            name = "history.csv" if len(points) == 1 else f"history-{k}.csv"
            _write_history(out / name, hist)
            f = _convergence_plot(out, hist, row.get("exact_energy"),
                                  "convergence.png" if len(points) == 1 else f"convergence-{k}.png",
                                  f"{summary['model']} ({run.name})")  # fmt: skip
            if f:
                files.append(f)
    summary["complete"] = True
    summary["elapsed_s"] = round(time.time() - started, 3)
    if out is not None:
        outputs.write_summary(out, summary)
        if run.scans:
            names = [k for k, v in summary["rows"][0].items() if isinstance(v, dict)]
            f = outputs.plot_rows(out, summary["rows"], run.scans[0].name, names, None,
                                  "plot.png", f"{summary['model']} ({run.name}), vmc")  # fmt: skip
            if f:
                files.append(f)
    return RunResult(summary, out, files)


def _vmc_point(run, setup: VMCSetup, qm: QuantumModel, device, seed, ckpt, resume, show,
               summary, out) -> tuple[dict, dict]:  # fmt: skip
    init = torch.Generator().manual_seed(seed)
    model = _build_learner(setup.learner_decl, setup.learner_options, setup.respecting, qm, init)
    model = model.to(device)
    generator = torch.Generator(device=device)
    generator.manual_seed(seed + 1_000_003)
    sampler = _make_sampler(setup, qm, device)
    sector = _vmc_sector(qm, setup.sampler_spec)
    exact, how = _reference(run, qm, sector)
    history: dict[str, list[float]] = {}
    bar = tqdm(total=setup.iterations, disable=not show, desc=run.name, unit="it", leave=False)

    def callback(it: int, stats: dict[str, float]) -> None:
        for key, v in stats.items():
            history.setdefault(key, []).append(float(v))
        history.setdefault("iteration", []).append(float(it))
        if not math.isfinite(stats["energy"]):
            raise PhysmlError(Diagnostic(
                "P700", f"the variational energy became non-finite at iteration {it} of run "
                f"{run.name}", run.span, "lower the learning rate or raise diag_shift; the last "
                "checkpoint was kept"))  # fmt: skip
        bar.n = it + 1
        bar.set_postfix(E=f"{stats['energy']:.5f}", var=f"{stats['variance']:.3g}", refresh=False)
        bar.update(0)

    if setup.pretrain and not resume:
        bar.set_description(f"{run.name} (pretrain)")
        run_vmc(
            LocalOperator(qm.hamiltonian, device=device), _unsymmetrised(model),
            _IndependentDraws(qm.n_sites),
            optimizer=_optimizer_options(setup.pretrain_name, setup.pretrain_spec),
            iterations=setup.pretrain, generator=generator, n_samples=setup.samples,
            eval_samples=setup.samples,
        )  # fmt: skip
        bar.set_description(run.name)
    try:
        res = run_vmc(
            LocalOperator(qm.hamiltonian, device=device), model, sampler,
            optimizer=_optimizer_options(setup.optimizer_name, setup.optimizer_spec),
            iterations=setup.iterations, generator=generator, n_samples=setup.samples,
            eval_samples=setup.final_samples,
            checkpoint_path=str(ckpt) if ckpt is not None else None,
            checkpoint_every=setup.checkpoint_every if ckpt is not None else 0, resume=resume,
            callback=callback,
        )  # fmt: skip
    except KeyboardInterrupt:
        summary["interrupted"] = True
        if out is not None:
            outputs.write_summary(out, summary)
            _write_history(out / "history.csv", history)
        raise
    except PhysmlError:  # a diverged run: keep its history up to the failure for diagnosis
        if out is not None:
            _write_history(out / "history.csv", history)
        raise
    except (RuntimeError, KeyError, ValueError) as exc:
        if resume and ckpt is not None:
            _fail("P400", f"the checkpoint {ckpt} does not match this run ({type(exc).__name__})",
                  run.span, "start afresh with --set resume=false or another --out")  # fmt: skip
        raise
    finally:
        bar.close()
    if resume and res.history:
        history = {**res.history, "iteration": list(map(float, range(len(res.history["energy"]))))}
    n = qm.n_sites
    row: dict[str, Any] = {"energy": _estimate(res.energy)}
    row["energy_per_site"] = {"mean": res.energy.mean / n, "stderr": res.energy.stderr / n,
                              "tau_int": res.energy.tau_int}  # fmt: skip
    row["variance"] = {"mean": res.variance, "stderr": None}
    row["r_hat"] = res.extra["r_hat"]
    if exact is not None:
        row["exact_energy"] = exact
        row["relative_error"] = abs(res.energy.mean - exact) / abs(exact)
        row["reference"] = how
    row["acceptance"] = round(float(sampler.acceptance), 6)
    row["iterations"] = setup.iterations
    diag = None
    samples = res.samples  # (T, C, N) of the final estimate
    for name, what in _measures(run, qm, vmc=True):
        if name in ("energy", "energy_per_site", "variance", "r_hat"):
            continue
        if isinstance(what, PauliSum):

            row[name] = _estimate(expectation(LocalOperator(what, device=device), model, samples))
        elif what in DIAGONAL:
            if diag is None:
                pos, qs = _structure_qs(qm)
                diag = diagonal_observables(samples, pos, qs, qm.sublattice())
            if what == "structure_factor":
                sf = diag["structure_factor"]
                row["structure_factor_q0"], row["structure_factor_qpi"] = (
                    _estimate(sf[0]), _estimate(sf[1]))  # fmt: skip
            elif what in diag:
                row[name] = _estimate(diag[what])
    return row, history


HISTORY_COLUMNS = ("iteration", "energy", "energy_stderr", "variance", "tau_int", "r_hat",
                   "acceptance", "lr")  # fmt: skip


def _write_history(path: Path, history: dict[str, list[float]]) -> None:
    if not history.get("energy"):
        return
    buf = io.StringIO()
    w = csv.writer(buf)
    cols = [c for c in HISTORY_COLUMNS if c in history]
    w.writerow(cols)
    for i in range(len(history["energy"])):
        w.writerow([history[c][i] if i < len(history[c]) else "" for c in cols])
    outputs._atomic_write(path, buf.getvalue().encode())


def _convergence_plot(out: Path, history: dict, exact: float | None, name: str,
                      title: str) -> Path | None:  # fmt: skip
    if len(history.get("energy", [])) < 2:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    it = np.arange(len(history["energy"]))
    e = np.asarray(history["energy"])
    err = np.asarray(history.get("energy_stderr", np.zeros_like(e)))
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    axes[0].plot(it, e, lw=1)
    axes[0].fill_between(it, e - err, e + err, alpha=0.3)
    if exact is not None:
        axes[0].axhline(exact, color="tab:red", ls="--", lw=1, label=f"exact {exact:.6f}")
        axes[0].legend()
        rel = np.abs(e - exact) / abs(exact)
        axes[1].semilogy(it, np.maximum(rel, 1e-12), lw=1)
        axes[1].set_ylabel("|E - E0| / |E0|")
    else:
        axes[1].semilogy(it, np.maximum(np.asarray(history.get("variance", e * 0)), 1e-12), lw=1)
        axes[1].set_ylabel("variance of E_loc")
    axes[0].set_ylabel("energy")
    for ax in axes:
        ax.set_xlabel("iteration")
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    path = out / name
    outputs._atomic_write(path, buf.getvalue())
    return path


# ---------------------------------------------------------------- registration


def _refuse_classical_sampling(task: TaskIR, program, **_) -> None:
    """A classical sampling run of a quantum model gets a clear, located error."""
    _fail("P502", f"model {program.checker_for(task).name} is a quantum model: a classical "
          "sampler does not apply", task.sampler.name_span if task.sampler else task.span,
          "use 'exact levels = 4' (exact diagonalisation) or a vmc run: 'learner psi', "
          "'optimize psi via sr(...)'")  # fmt: skip


__all__ = ["QuantumObservable", "bind", "exact_spectrum", "exact_expectation", "run_exact",
           "run_vmc_task"]  # fmt: skip


def bind(catalogue: Catalogue) -> None:
    """Attach this capability's implementations to its catalogue entries (top layer only)."""
    catalogue.tasks.bind("sample", Task(_refuse_classical_sampling), family="quantum")
    catalogue.tasks.bind("exact", Task(run_exact))
    catalogue.tasks.bind("vmc", Task(run_vmc_task))
    catalogue.tasks.bind_check("sample", TaskCheck(_refuse_classical_sampling), family="quantum")
    catalogue.tasks.bind_check("exact", TaskCheck(check_exact))
    catalogue.tasks.bind_check("vmc", TaskCheck(check_vmc))
    registry.bind(catalogue)
    vmc.bind(catalogue)
    catalogue.samplers.bind("metropolis", metropolis_sampler, family=QUANTUM)
    catalogue.samplers.bind("autoregressive", autoregressive_sampler, family=QUANTUM)
    energy = QuantumObservable(exact=exact_spectrum, vmc=energy_statistics)
    diagonal = QuantumObservable(exact=_exact_diagonal, vmc=diagonal_observables)
    observables = {"energy": energy, "energy_per_site": energy,
                   "gap": QuantumObservable(exact=exact_spectrum, vmc=None),
                   "variance": QuantumObservable(exact=None, vmc=energy_statistics),
                   "r_hat": QuantumObservable(exact=None, vmc=energy_statistics),
                   **dict.fromkeys(DIAGONAL, diagonal)}  # fmt: skip
    for name, observable in observables.items():
        catalogue.observables.bind(name, observable, family=QUANTUM)
