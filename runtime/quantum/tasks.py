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
    checkpoint every = 25                   # iterations (0: no checkpoints)
    measure energy, variance, magnetization, structure_factor, mx = sum(X[i] for i in sites) / N

Every result row carries ``{"mean", "stderr"}`` for each observable; the exact task reports
stderr 0. Rows go to disk through the driver's recorder as each point finishes. A vmc run is a
driver scan (``run_scan``): its one checkpoint (``runtime/checkpoint.py``) is saved every
``checkpoint every`` iterations and at least every ``--checkpoint-every`` seconds (0: only
between points), and removed when the run is complete; ``--resume`` continues bit-identically
on the CPU.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel
from safetensors.torch import save_file

from physml_lang.catalogue import CATALOGUE, Catalogue
from physml_lang.catalogue.quantum import QUANTUM, AutoregressiveSpec, MetropolisSpec
from physml_lang.compiler.derive.pauli import PauliSum
from physml_lang.compiler.models.quantum import QuantumModel
from physml_lang.diagnostics import Diagnostic, PhysmlError, Span
from physml_lang.ir.task import TaskIR
from physml_lang.ir.text import print_ir
from physml_lang.ir.walk import to_text

from .. import outputs
from ..checkpoint import Checkpoint
from ..driver import RunContext, RunResult, every_seconds, run_scan
from ..plans.quantum import (
    Point,
    VMCPlan,
    plan_exact,
    plan_vmc,
    refuse_classical_sampling,
    sector_dim,
    sectors,
    vmc_sector,
)
from ..random import RandomStreams
from ..statistics import Estimate
from ..tasks import RunState, Task
from . import registry, vmc
from .learners import MarshallSign, SymmetrizedAutoregressive
from .operator import LocalOperator
from .registry import QuantumContext, make_learner
from .vmc import (
    VMC,
    AutoregressiveSampler,
    MetropolisOptions,
    MetropolisSampler,
    VMCResult,
    diagonal_observables,
    energy_statistics,
    expectation,
)

AUTO_REFERENCE_DIM = 2**16  # VMC runs compute the exact energy themselves below this
DIAGONAL = ("magnetization", "abs_magnetization", "staggered_magnetization", "structure_factor")


def _fail(code: str, msg: str, span: Span | None = None, hint: str | None = None):
    raise PhysmlError(Diagnostic(code, msg, span, hint))


# ---------------------------------------------------------------- observables


@dataclass(frozen=True)
class QuantumObservable:
    """The implementation of a built-in observable of quantum runs: the function that computes
    it in an exact run and in a vmc run (None: that run does not report it, as the catalogue's
    static ``OBSERVABLE_RUNS`` that ``physml check`` reads says)."""

    exact: Callable[..., Any] | None
    vmc: Callable[..., Any] | None


def _structure_qs(qm: QuantumModel) -> tuple[np.ndarray, np.ndarray]:
    """Positions (N, d) and the wavevectors q = 0 and q = (pi, ..., pi)."""
    pos = qm.geometry.coords.astype(np.float64)
    d = pos.shape[1]
    return pos, np.stack([np.zeros(d), np.full(d, math.pi)])


# ---------------------------------------------------------------- exact task


@dataclass
class Spectrum:
    energies: list[float]
    sectors: list[int | None]
    ground: np.ndarray  # ground-state vector in the basis of codes
    codes: np.ndarray  # (dim,) sorted basis indices of the ground state's sector


def exact_spectrum(qm: QuantumModel, levels: int, sectors: list[int | None]) -> Spectrum:
    """Lowest ``levels`` energies over the magnetisation sectors sum(Z) = m (None: the whole
    space), Lanczos per sector, merged."""
    op = LocalOperator(qm.hamiltonian)
    found: list[tuple[float, int | None, int]] = []
    vectors = {}
    for m in sectors:  # one Lanczos per magnetisation sector
        dim = sector_dim(qm.n_sites, m)
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


def run_exact(task: TaskIR, program, ctx: RunContext) -> RunResult:
    """An exact run: per point of its plan, the lowest levels by Lanczos over the planned
    magnetisation sectors, and the measured operators in the ground state; each point's row is
    on disk as soon as it is found."""
    run = RunState.of(task)
    plan = plan_exact(run, program, ctx.sets, program.compile_ir)
    levels = plan.levels
    summary = ctx.recorder.summary
    summary.update({
        "run": run.name, "source": program.name, "model": program.checker_for(run.ir).name,
        "task": "exact", "params": {}, "device": "cpu", "seed": ctx.seed,
        "sampler": {"name": "exact (Lanczos)"}, "levels": levels,
        "scan": {s.name: s.values for s in run.scans}, "rows": [], "complete": False,
    })  # fmt: skip
    for p, point_sectors, measured in zip(plan.points, plan.sectors, plan.measured):
        qm = p.model
        summary["params"] = dict(qm.model.params)
        spec = exact_spectrum(qm, levels, point_sectors)
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
        for name, what in measured:
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
        ctx.recorder.write()
    summary["complete"] = True
    ctx.recorder.write()
    return RunResult(summary, ctx.out, _scan_plot(ctx, run, summary, "exact"))


# ---------------------------------------------------------------- vmc task


def _optimizer_options(name: str, spec: BaseModel) -> vmc.OptimizerOptions:
    """run_vmc's configuration of a validated ``optimize ... via NAME(...)``."""
    return CATALOGUE.optimisers.implementation(name, QUANTUM)(spec)


def _unsymmetrised(model: torch.nn.Module) -> torch.nn.Module:
    """The bare autoregressive model inside a translation-symmetrised one (shared parameters)."""

    if isinstance(model, MarshallSign) and isinstance(model.model, SymmetrizedAutoregressive):
        return MarshallSign(model.model.model, model.sublattice > 0.5)
    if isinstance(model, SymmetrizedAutoregressive):
        return model.model
    return model


def _build_learner(setup: VMCPlan, qm: QuantumModel, generator: torch.Generator) -> torch.nn.Module:
    """The planned learner (log psi(s) of configurations s (B, N) -> (B,)) on the model's
    lattice. What only building the network finds (an even CNN kernel, a GRU cell size that
    does not divide N, a magnetisation N cannot have) is a located P400 here; the plan has
    checked everything static."""
    decl = setup.learner_decl
    ctx = QuantumContext(
        qm.n_sites,
        shape=tuple(qm.lattice.shape),
        translations=qm.translation_table(),
        sublattice=qm.sublattice(),
        symmetries=set(setup.respecting),
        generator=generator,
    )
    try:
        return make_learner(decl.call.name, setup.learner_options, ctx)
    except ValueError as exc:
        _fail("P400", f"learner {decl.name} cannot be built for model {qm.ir.name}: {exc}",
              decl.call.span)  # fmt: skip


class _IndependentDraws:
    """Autoregressive draws (1, n, N) presented as a series (n, 1, N) for binning and R-hat."""

    def __init__(self, n_sites: int):
        self.inner = AutoregressiveSampler(n_sites)
        self.acceptance = 1.0

    def sample(self, model, n_samples: int, generator):
        return self.inner.sample(model, n_samples, generator).transpose(0, 1)

    def state_tensors(self) -> dict[str, torch.Tensor]:
        return {}

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        pass


def _make_sampler(setup: VMCPlan, qm: QuantumModel, device):
    factory = CATALOGUE.samplers.implementation(setup.sampler_name, QUANTUM)
    return factory(setup.sampler_spec, qm, device)


def autoregressive_sampler(spec: AutoregressiveSpec, qm: QuantumModel,
                           device) -> _IndependentDraws:  # fmt: skip
    """``sampler autoregressive``: independent draws from the (normalised) learner."""
    return _IndependentDraws(qm.n_sites)


def metropolis_sampler(spec: MetropolisSpec, qm: QuantumModel, device) -> MetropolisSampler:
    """``sampler metropolis(...)``: chains over |psi|^2, with exchange moves in the sector of a
    model that conserves sum(Z) (move = auto), else flips."""
    sector = vmc_sector(qm, spec)
    opts = MetropolisOptions(
        n_chains=spec.chains, sweeps_per_sample=spec.sweeps, burn_in_sweeps=spec.burn_in,
        initial_burn_in_sweeps=spec.initial_burn_in,
        move="exchange" if sector is not None else "flip",
        magnetization=sector if sector is not None else spec.magnetization,
        compile=spec.compile,
    )  # fmt: skip
    return MetropolisSampler(qm.n_sites, opts, device=device)


def _reference(setup: VMCPlan, qm: QuantumModel, sector: int | None) -> tuple[float | None, str]:
    """The reference energy of a vmc run and how it was found: given, none, or exact (Lanczos
    in the sampler's sector; ``auto``: when that sector has at most AUTO_REFERENCE_DIM states)."""
    ref = setup.reference
    if isinstance(ref, float):
        return ref, "given"
    if ref == "none":
        return None, "none"
    space = sectors(qm, sector, None)
    dim = max(sector_dim(qm.n_sites, m) for m in space)
    if ref == "auto" and dim > AUTO_REFERENCE_DIM:
        return None, "none"
    spec = exact_spectrum(qm, 1, space)
    return spec.energies[0], "exact" + (f" (sector sum(Z) = {sector})" if sector is not None
                                        else "")  # fmt: skip


def _estimate(e: Estimate) -> dict[str, float]:
    return e.as_dict()


def run_vmc_task(task: TaskIR, program, ctx: RunContext) -> RunResult:
    """A vmc run: per point of its plan, optimise the learner's log psi and report the final
    estimates, with the exact energy as a reference where asked (or small enough). The points
    are :class:`VMCPoint` scan points of the driver's ``run_scan`` (rows on disk at once, one
    checkpoint, ``--resume``); each point's history and convergence plot follow its row."""
    run = RunState.of(task)
    setup = plan_vmc(run, program, ctx.sets, program.compile_ir)
    points = setup.points
    for p in points:  # every network of the scan is built before any work
        _build_learner(setup, p.model, torch.Generator().manual_seed(0))
    ctx.resume = ctx.resume or bool(setup.resume)
    summary = ctx.recorder.summary
    summary.update({
        "run": run.name, "source": program.name, "model": program.checker_for(run.ir).name,
        "task": "vmc", "params": {}, "device": str(ctx.device), "seed": ctx.seed,
        "sampler": {"name": setup.sampler_name, **setup.sampler_spec.model_dump()},
        "learner": {"name": setup.learner_decl.name, "kind": setup.learner_decl.call.name,
                    **setup.learner_options.model_dump(), "respecting": setup.respecting},
        "optimizer": {"name": setup.optimizer_name, **setup.optimizer_spec.model_dump()},
        "iterations": setup.iterations, "samples": setup.samples,
        "final_samples": setup.final_samples, "pretrain": setup.pretrain,
        "scan": {s.name: s.values for s in run.scans}, "rows": [], "complete": False,
    })  # fmt: skip
    files: list[Path] = []
    one = len(points) == 1
    current: list[VMCPoint] = []

    def start(k: int, streams: RandomStreams) -> VMCPoint:
        generator = torch.Generator(device=ctx.device)
        summary["params"] = dict(points[k].model.model.params)
        history_csv = ctx.out / ("history.csv" if one else f"history-{k}.csv") if ctx.out else None
        current[:] = [VMCPoint(run, setup, points[k], k, ctx, generator, history_csv)]
        return current[0]

    def finish(k: int, rows: list[dict]) -> None:
        summary["rows"] += rows
        if ctx.out is not None:
            _write_history(current[0].history_csv, current[0].history)
            files.append(_save_network(current[0].model,
                                       ctx.out / f"params{'' if one else f'-{k}'}.safetensors"))
            f = _convergence_plot(ctx.out, current[0].history, rows[0].get("exact_energy"),
                                  "convergence.png" if one else f"convergence-{k}.png",
                                  f"{summary['model']} ({run.name})")  # fmt: skip
            if f:
                files.append(f)

    run_scan(ctx, run.span, len(points), _vmc_settings(run, setup, ctx), start, finish,
             setup.pretrain + setup.iterations, run.name, "it")  # fmt: skip
    return RunResult(summary, ctx.out, files + _scan_plot(ctx, run, summary, "vmc"))


def _scan_plot(ctx: RunContext, run: RunState, summary: dict, task: str) -> list[Path]:
    """The rows of a scan against its first variable (no plot without a scan)."""
    if ctx.out is None or not run.scans:
        return []
    names = [k for k, v in summary["rows"][0].items() if isinstance(v, dict)]
    f = outputs.plot_rows(ctx.out, summary["rows"], run.scans[0].name, names, None, "plot.png",
                          f"{summary['model']} ({run.name}), {task}")  # fmt: skip
    return [f] if f else []


def _save_network(model: torch.nn.Module, path: Path) -> Path:
    """The trained wave function's parameters by name (its state dict), written atomically."""
    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    tmp = path.with_name(f".{path.name}.tmp")
    save_file(tensors, str(tmp))
    tmp.replace(path)
    return path


def _vmc_settings(run: RunState, setup: VMCPlan, ctx: RunContext) -> dict[str, Any]:
    """What a checkpoint of a vmc run may be resumed with: every input of its numbers (the
    models as IR text and their points, the learner, sampler, optimiser, pretraining,
    iterations, samples, reference, measures, seed and device)."""
    return {
        "run": run.name, "models": [print_ir(p.model.ir) for p in setup.points],
        "points": [dict(p.values) for p in setup.points],
        "learner": {"name": setup.learner_decl.name, "kind": setup.learner_decl.call.name,
                    **setup.learner_options.model_dump(), "respecting": setup.respecting},
        "sampler": {"name": setup.sampler_name, **setup.sampler_spec.model_dump()},
        "optimizer": {"name": setup.optimizer_name, **setup.optimizer_spec.model_dump()},
        "pretrain": {"iterations": setup.pretrain, "name": setup.pretrain_name,
                     **setup.pretrain_spec.model_dump()} if setup.pretrain else None,
        "iterations": setup.iterations, "samples": setup.samples,
        "final_samples": setup.final_samples, "reference": setup.reference,
        "measures": [m.name + (f" = {to_text(m.expr)}" if m.expr is not None else "")
                     for m in run.measures],
        "seed": ctx.seed, "device": ctx.device.type,
    }  # fmt: skip


class VMCPoint:
    """One point of a vmc run as a driver ``ScanPoint``: ``done`` iterations (pretraining
    first, then optimisation), ``advance`` to the end saving every ``checkpoint every``
    iterations and at least every ``every`` seconds, ``tensors``/``restore`` the state of the
    phase it is in, ``rows`` the final estimates."""

    def __init__(self, run: RunState, setup: VMCPlan, point: Point, k: int, ctx: RunContext,
                 generator: torch.Generator, history_csv: Path | None) -> None:  # fmt: skip
        self.run, self.setup, self.point, self.k, self.history_csv = run, setup, point, k, history_csv
        qm, seed, device = point.model, ctx.seed + k, ctx.device
        self.model = _build_learner(setup, qm, torch.Generator().manual_seed(seed)).to(device)
        generator.manual_seed(seed + 1_000_003)
        self.sampler = _make_sampler(setup, qm, device)
        op = LocalOperator(qm.hamiltonian, device=device)
        self.history: dict[str, list[float]] = {}
        self.pre = VMC(op, _unsymmetrised(self.model), _IndependentDraws(qm.n_sites),
                       _optimizer_options(setup.pretrain_name, setup.pretrain_spec),
                       generator, setup.samples) if setup.pretrain else None  # fmt: skip
        self.vmc = VMC(op, self.model, self.sampler,
                       _optimizer_options(setup.optimizer_name, setup.optimizer_spec),
                       generator, setup.samples, self.history)  # fmt: skip
        self.result: VMCResult | None = None

    @property
    def done(self) -> int:
        """Iterations done (pretraining included)."""
        return (self.pre.iteration if self.pre else 0) + self.vmc.iteration

    def _phase(self, done: int) -> VMC:
        return self.pre if self.pre is not None and done < self.setup.pretrain else self.vmc

    def tensors(self) -> dict[str, torch.Tensor]:
        return self._phase(self.done).tensors()

    def restore(self, saved: Checkpoint) -> None:
        """Continue from a checkpoint of this point (one that does not fit is a P602)."""
        done, pretrain = saved.state["done"], self.setup.pretrain
        try:
            if self.pre is not None and done < pretrain:
                self.pre.restore(saved.tensors, done)
            else:
                if self.pre is not None:
                    self.pre.iteration = pretrain
                self.vmc.restore(saved.tensors, done - pretrain)
        except (RuntimeError, KeyError, ValueError, TypeError) as exc:
            _fail("P602", f"checkpoint of point {self.k} does not fit this run "
                  f"({type(exc).__name__}: {str(exc)[:100]})", self.run.span,
                  "delete it, or run without --resume to start afresh")  # fmt: skip

    def advance(self, bar, save: Callable[[VMCPoint], None], every: float | None) -> None:
        """Pretrain, optimise and estimate; ``save(self)`` every ``checkpoint every``
        iterations and at least every ``every`` seconds (not with ``checkpoint every = 0``)."""
        setup, count = self.setup, self.setup.checkpoint_every
        maybe_save = every_seconds(every if count > 0 else None, lambda: save(self))
        if self.pre is not None and self.pre.iteration < setup.pretrain:
            while self.pre.iteration < setup.pretrain:
                self.pre.step()
                bar.update(1)
                if self.pre.iteration < setup.pretrain:
                    maybe_save()
            self.pre.result(setup.samples)  # as the pretraining run always drew it
        try:
            while self.vmc.iteration < setup.iterations:
                it = self.vmc.iteration
                stats = self.vmc.step()
                if not math.isfinite(stats["energy"]):
                    _fail("P700", f"the variational energy became non-finite at iteration {it} "
                          f"of run {self.run.name}", self.run.span, "lower the learning rate or "
                          "raise diag_shift; the last checkpoint was kept")  # fmt: skip
                bar.update(1)
                bar.set_postfix(E=f"{stats['energy']:.5f}", var=f"{stats['variance']:.3g}")
                if count > 0 and self.vmc.iteration % count == 0:
                    save(self)
                else:
                    maybe_save()
        except PhysmlError:  # a diverged run: keep its history up to the failure for diagnosis
            if self.history_csv is not None:
                _write_history(self.history_csv, self.history)
            raise
        self.result = self.vmc.result(setup.final_samples)

    def rows(self) -> list[dict]:
        """The point's row of final estimates."""
        res, setup, qm, device = self.result, self.setup, self.point.model, self.model_device
        exact, how = _reference(setup, qm, vmc_sector(qm, setup.sampler_spec))
        n = qm.n_sites
        row: dict[str, Any] = {**self.point.values, "energy": _estimate(res.energy)}
        row["energy_per_site"] = {"mean": res.energy.mean / n, "stderr": res.energy.stderr / n,
                                  "tau_int": res.energy.tau_int}  # fmt: skip
        row["variance"] = {"mean": res.variance, "stderr": None}
        row["r_hat"] = res.extra["r_hat"]
        if exact is not None:
            row["exact_energy"] = exact
            row["relative_error"] = abs(res.energy.mean - exact) / abs(exact)
            row["reference"] = how
        row["acceptance"] = round(float(self.sampler.acceptance), 6)
        row["iterations"] = setup.iterations
        diag = None
        samples = res.samples  # (T, C, N) of the final estimate
        for name, what in setup.measured[self.k]:
            if name in ("energy", "energy_per_site", "variance", "r_hat"):
                continue
            if isinstance(what, PauliSum):
                row[name] = _estimate(expectation(LocalOperator(what, device=device), self.model,
                                                  samples))  # fmt: skip
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
        return [row]

    @property
    def model_device(self) -> torch.device:
        return next(self.model.parameters()).device


HISTORY_COLUMNS = ("iteration", "energy", "energy_stderr", "variance", "tau_int", "r_hat",
                   "acceptance", "lr")  # fmt: skip


def _write_history(path: Path, history: dict[str, list[float]]) -> None:
    """One row per iteration (numbered from 0) of a point's optimisation."""
    if not history.get("energy"):
        return
    history = {"iteration": [float(i) for i in range(len(history["energy"]))], **history}
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


__all__ = ["QuantumObservable", "bind", "exact_spectrum", "exact_expectation", "run_exact",
           "run_vmc_task"]  # fmt: skip


def bind(catalogue: Catalogue) -> None:
    """Attach this capability's implementations to its catalogue entries (top layer only)."""
    catalogue.tasks.bind("sample", Task(refuse_classical_sampling), family="quantum")
    catalogue.tasks.bind("exact", Task(run_exact))
    catalogue.tasks.bind("vmc", Task(run_vmc_task))
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
