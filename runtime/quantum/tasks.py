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
stderr 0. Both tasks are driver scans (``run_scan``) whose rows go to disk as each point
finishes. A vmc point's checkpoint (``runtime/checkpoint.py``, with the draw counter of the
point's random streams) is saved every ``checkpoint every`` iterations and at least every
``--checkpoint-every`` seconds (0: only between points), and removed when the run is complete;
``--resume`` continues bit-identically on the CPU. An exact point is one diagonalisation, saved
only between points.

What a point measures is in ``measures.py``, the exact spectra in ``exact.py``, the history and
network files in ``history.py``, the figures in ``plots.py``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse.linalg
import torch

from physml_lang.catalogue import Catalogue
from physml_lang.catalogue.quantum import QUANTUM
from physml_lang.compiler.derive.pauli import PauliSum
from physml_lang.compiler.models.quantum import QuantumModel
from physml_lang.diagnostics import Diagnostic, PhysmlError, Span, clip
from physml_lang.ir.task import TaskIR
from physml_lang.ir.text import print_ir
from physml_lang.ir.walk import to_text

from ..checkpoint import Checkpoint
from ..device import check_memory
from ..distributed import SINGLE, World
from ..driver import RunContext, RunResult, ScanPoint, run_scan
from ..plans.quantum import (
    ExactPlan,
    Point,
    VMCPlan,
    plan_exact,
    plan_vmc,
    refuse_classical_sampling,
    sector_dim,
    vmc_sector,
)
from ..plans.quantum import sectors as magnetisation_sectors
from ..random import RandomStreams
from ..tasks import RunState, Task
from . import registry, vmc
from .exact import AUTO_REFERENCE_DIM, Spectrum, exact_spectrum, reference_energy
from .history import save_network, write_history
from .measures import OBSERVABLES, QuantumObservable, exact_row, vmc_row
from .operator import LocalOperator
from .plots import convergence_plot, scan_plot
from .registry import build_learner, unsymmetrised
from .vmc import VMC, IndependentDraws, make_sampler, optimizer_options


def _fail(code: str, msg: str, span: Span | None = None, hint: str | None = None):
    raise PhysmlError(Diagnostic(code, msg, span, hint))


# ---------------------------------------------------------------- memory estimates

# copies of each stored nonzero of a sparse H while it is built: the COO lists (row and column
# int64, the value), their concatenation, the CSR copy and scipy's temporaries (measured: 18
# qubits, 262144 states x 19 flip groups, peak 438 MiB; this estimate 0.5 GiB)
SPARSE_COPIES = 4
# Lanczos (eigsh) keeps ncv = max(2 levels + 1, 20) basis vectors; the start vector, the
# eigenvectors and a work vector add a few more of the sector's dimension
LANCZOS_EXTRA_VECTORS = 6
# bytes per state of a magnetisation sector's basis: Python ints from combinations, then int64
SECTOR_CODE_BYTES = 96


def flip_groups(h: PauliSum) -> int:
    """Distinct flip masks of a Pauli sum (the diagonal included): nonzeros per row of H."""
    return 1 + len({tuple(s for op, s in t.ops if op in ("X", "Y")) for t in h.terms} - {()})


def exact_memory(qm: QuantumModel, space: list[int | None], levels: int) -> tuple[int, int]:
    """(bytes, dimension) of a Lanczos diagonalisation of ``qm`` over the largest sector of
    ``space``: the sparse H (dimension x flip groups nonzeros, SPARSE_COPIES while built)
    dominates, then the Lanczos vectors."""
    dim = max(sector_dim(qm.n_sites, m) for m in space)
    item = 8 if qm.hamiltonian.is_real() else 16
    nonzero = SPARSE_COPIES * (16 + item)  # row, column (int64) and value
    vectors = max(2 * levels + 1, 20) + LANCZOS_EXTRA_VECTORS
    codes = SECTOR_CODE_BYTES if any(m is not None for m in space) else 8
    return dim * (flip_groups(qm.hamiltonian) * nonzero + vectors * item + codes), dim


def _check_exact_memory(run: RunState, plan: ExactPlan) -> None:
    """Refuse, before any basis is built, an exact run whose largest point cannot fit in the
    host's memory (exact diagonalisation runs on the CPU)."""
    need, dim, n = 0, 0, 0
    for p, space in zip(plan.points, plan.sectors):
        b, d = exact_memory(p.model, space, plan.levels)
        if b > need:
            need, dim, n = b, d, p.model.n_sites
    check_memory(need, torch.device("cpu"), f"run {run.name} (exact diagonalisation of {n} "
                 f"qubits, {dim} states)", run.span, "use a smaller lattice, a magnetisation "
                 "sector (conserve + sector = ...), or a vmc run")  # fmt: skip


# rows of samples whose local energies an rbm's closed form computes at once, and rows of
# connected configurations the generic path evaluates log psi on at once
RBM_LOCAL_ENERGY_ROWS = 2048
LOG_PSI_ROWS = 65536
# copies of the parameters: the weights, their gradient, Adam's two moments, SR's warm start
# and a checkpoint's copy
PARAMETER_COPIES = 6
# copies of SR's Jacobian O (samples x parameters): O, its centred copy, the stacked real rows
JACOBIAN_COPIES = 3


def learner_size(setup: VMCPlan, qm: QuantumModel) -> tuple[int, int, int]:
    """(parameters, activations per sample kept for a backward pass, activations per sample
    alive at once without one) of the planned learner on model ``qm``, from its options
    (before it is built: an rbm with alpha = 10^4 must not be allocated to be counted).
    Upper-ish: translation tables counted, complex parts doubled."""
    o, kind, n = setup.learner_options, setup.learner_decl.call.name, qm.n_sites
    symmetric = "translation" in setup.respecting
    parts = 2 if learner_complex(setup) else 1
    if kind == "rbm":
        if symmetric:  # alpha features, each over the N translations of the (N, N) table
            a = max(1, round(o.alpha))
            return parts * (a * n + a + 1) + n * n, a * n, a * n
        m = max(1, math.ceil(o.alpha * n))
        return parts * (m * n + m + n), m, m
    if kind == "cnn":
        sizes = [1, *o.channels, 2]
        weights = sum(a * b * o.kernel_size**2 + b for a, b in zip(sizes, sizes[1:]))
        return weights, n * sum(sizes), 2 * n * max(sizes)
    if kind == "rnn":  # a GRU step per cell; the symmetrised network runs every translation
        cell = o.cell_size or qm.lattice.basis
        cell = cell if isinstance(cell, int) else len(cell)
        states, h = 2 ** min(cell, 62), o.hidden
        weights = 3 * h * (states + h + 1) + parts * states * (h + 1)
        step = (n if symmetric else 1) * (4 * h + states)
        return weights + n * n, (n // max(cell, 1) + 1) * step, step
    return 0, n, n


def vmc_memory(setup: VMCPlan, qm: QuantumModel) -> int:
    """Bytes of a vmc point of model ``qm``: the parameters' copies, SR's Jacobian (samples x
    parameters, float64 or complex128), the network's activations over a batch of samples, the
    connected configurations of the local energies (rows x flip groups x sites), the final
    samples, and the reference's exact diagonalisation when it runs."""
    n = qm.n_sites
    params, width, live = learner_size(setup, qm)
    batch = setup.samples
    item = 16 if learner_complex(setup) else 8
    sr = setup.optimizer_name == "sr"
    need = PARAMETER_COPIES * 8 * params
    if sr:
        rows = 2 * batch if item == 16 else batch
        need += JACOBIAN_COPIES * batch * params * item + 8 * min(params, rows) ** 2
    need += 4 * 8 * batch * width  # forward and backward activations of log psi
    # local energies: the closed form of an rbm goes through chunks of rows; the generic path
    # gathers every connected configuration of the batch at once (rows x flip groups x sites)
    # and evaluates log psi on them in chunks of LOG_PSI_ROWS
    rows, k = max(batch, setup.final_samples), flip_groups(qm.hamiltonian)
    if setup.learner_decl.call.name == "rbm":
        need += 3 * 8 * min(rows, RBM_LOCAL_ENERGY_ROWS) * k * (n + live)
    else:
        need += 3 * 8 * rows * k * n + 4 * 8 * min(rows * k, LOG_PSI_ROWS) * live
    # the final samples: the sampler's list and stack, float64 and complex copies (structure
    # factor), the local estimators of measured operators
    need += 8 * 8 * setup.final_samples * n
    reference = setup.reference
    if reference in ("exact", "auto"):
        space = magnetisation_sectors(qm, vmc_sector(qm, setup.sampler_spec), None)
        ed, dim = exact_memory(qm, space, 1)
        if reference == "exact" or dim <= AUTO_REFERENCE_DIM:
            need = max(need, ed)
    return need


def learner_complex(setup: VMCPlan) -> bool:
    """Whether the planned learner's log psi is complex (complex Jacobian rows)."""
    o = setup.learner_options
    return bool(getattr(o, "complex", False)) or getattr(o, "phase", "none") not in (
        "none", False)  # fmt: skip


def _check_vmc_memory(run: RunState, setup: VMCPlan, device: torch.device) -> None:
    """Refuse, before any network is built, a vmc run whose largest point cannot fit."""
    need, qm = 0, setup.points[0].model
    for p in setup.points:
        b = vmc_memory(setup, p.model)
        if b > need:
            need, qm = b, p.model
    params, n = learner_size(setup, qm)[0], qm.n_sites
    check_memory(need, device, f"run {run.name} (learner {setup.learner_decl.name} with about "
                 f"{params} parameters on {n} qubits, {setup.samples} samples per iteration)",
                 run.span, "use fewer samples, a smaller learner (alpha, channels, hidden), "
                 "a learner respecting translation, or optimize via adam or sgd instead of "
                 "sr")  # fmt: skip


# ---------------------------------------------------------------- exact task


def run_exact(task: TaskIR, program, ctx: RunContext) -> RunResult:
    """An exact run: per point of its plan, the lowest levels by Lanczos over the planned
    magnetisation sectors, and the measured operators in the ground state. The points are
    :class:`ExactPoint` scan points of the driver's ``run_scan``: each point's row is on disk
    as soon as it is found, and ``--resume`` skips the points already done."""
    run = RunState.of(task)
    plan = plan_exact(run, program, ctx.sets, program.compile_ir)
    _check_exact_memory(run, plan)
    summary = ctx.recorder.summary
    summary.update({
        "run": run.name, "source": program.name, "model": program.checker_for(run.ir).name,
        "task": "exact", "params": {}, "device": "cpu", "seed": ctx.seed,
        "sampler": {"name": "exact (Lanczos)"}, "levels": plan.levels,
        "scan": {s.name: s.values for s in run.scans}, "rows": [], "complete": False,
    })  # fmt: skip

    def start(k: int, streams: RandomStreams) -> ExactPoint:
        summary["params"] = dict(plan.points[k].model.model.params)
        return ExactPoint(plan, k, run.span)

    def finish(k: int, rows: list[dict]) -> None:
        summary["rows"] += rows

    run_scan(ctx, run.span, len(plan.points), _exact_settings(run, plan), start, finish, 1,
             run.name, "point")  # fmt: skip
    return RunResult(summary, ctx.out, scan_plot(ctx.out, run, summary, "exact"))


def _exact_settings(run: RunState, plan: ExactPlan) -> dict[str, Any]:
    """What a checkpoint of an exact run may be resumed with: the models as IR text and their
    points, levels, sectors and measures (nothing random)."""
    return {
        "run": run.name, "models": [print_ir(p.model.ir) for p in plan.points],
        "points": [dict(p.values) for p in plan.points], "levels": plan.levels,
        "sectors": plan.sectors,
        "measures": [m.name + (f" = {to_text(m.expr)}" if m.expr is not None else "")
                     for m in run.measures],
    }  # fmt: skip


class ExactPoint(ScanPoint):
    """One point of an exact run: one ``step``, the diagonalisation of the model at this point
    (never checkpointed midway), then its row."""

    total = 1
    saves = False

    def __init__(self, plan: ExactPlan, k: int, span: Span | None = None) -> None:
        self.k, self.point, self.levels, self.span = k, plan.points[k], plan.levels, span
        self.sectors, self.measured = plan.sectors[k], plan.measured[k]
        self.spectrum: Spectrum | None = None
        self.done = 0

    def step(self) -> None:
        try:
            self.spectrum = exact_spectrum(self.point.model, self.levels, self.sectors)
        except (FloatingPointError, np.linalg.LinAlgError,
                scipy.sparse.linalg.ArpackError) as exc:  # fmt: skip
            at = ", ".join(f"{k} = {v}" for k, v in self.point.values.items())
            raise PhysmlError(Diagnostic(
                "P700", f"exact diagonalisation failed{' at ' + at if at else ''}: "
                f"{clip(str(exc), 120)}", self.span,
                "check the couplings: magnitudes near 1e308 overflow when the terms are summed"
            )) from None  # fmt: skip
        self.done = 1

    def tensors(self) -> dict[str, torch.Tensor]:
        return {}

    def restore(self, saved: Checkpoint) -> None:
        pass  # never saved during the point

    def rows(self) -> list[dict]:
        return [exact_row(self.point.values, self.point.model, self.spectrum, self.measured)]


# ---------------------------------------------------------------- vmc task


def run_vmc_task(task: TaskIR, program, ctx: RunContext) -> RunResult:
    """A vmc run: per point of its plan, optimise the learner's log psi and report the final
    estimates, with the exact energy as a reference where asked (or small enough). The points
    are :class:`VMCPoint` scan points of the driver's ``run_scan`` (rows on disk at once, one
    checkpoint, ``--resume``); each point's history and convergence plot follow its row."""
    run = RunState.of(task)
    setup = plan_vmc(run, program, ctx.sets, program.compile_ir)
    points = setup.points
    _check_vmc_memory(run, setup, ctx.device)
    for p in points:  # every network of the scan is built before any work
        build_learner(setup, p.model, torch.Generator().manual_seed(0))
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
        summary["params"] = dict(points[k].model.model.params)
        history_csv = ctx.out / ("history.csv" if one else f"history-{k}.csv") if ctx.out else None
        current[:] = [VMCPoint(run, setup, points[k], k, ctx.device, streams, history_csv,
                               ctx.world)]  # fmt: skip
        return current[0]

    def finish(k: int, rows: list[dict]) -> None:
        summary["rows"] += rows
        if ctx.out is not None:
            write_history(current[0].history_csv, current[0].history)
            files.append(save_network(current[0].model,
                                      ctx.out / f"params{'' if one else f'-{k}'}.safetensors"))
            f = convergence_plot(ctx.out, current[0].history, rows[0].get("exact_energy"),
                                 "convergence.png" if one else f"convergence-{k}.png",
                                 f"{summary['model']} ({run.name})")  # fmt: skip
            if f:
                files.append(f)

    run_scan(ctx, run.span, len(points), _vmc_settings(run, setup, ctx), start, finish,
             setup.pretrain + setup.iterations, run.name, "it")  # fmt: skip
    return RunResult(summary, ctx.out, files + scan_plot(ctx.out, run, summary, "vmc"))


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
        "seed": ctx.seed,
    }  # fmt: skip


class VMCPoint(ScanPoint):
    """One point of a vmc run: ``step`` is one iteration, pretraining (of the bare
    autoregressive network) first, then the optimisation; ``rows`` draws the final samples and
    gives the point's row. Saved every ``checkpoint every`` iterations and by time (never with
    ``checkpoint every = 0``); ``tensors``/``restore`` hold the state of the phase it is in.
    Every sample (chains, pretraining draws, final estimate) comes from the point's
    ``streams``; the initial weights from a host generator seeded from them.

    On several processes (``world``) the Metropolis chains are sharded over the ranks (chain
    streams keyed by the global chain index), per-sample quantities are gathered in global
    sample order and every reduction runs on the whole arrays on every rank (``VMC``): rows,
    history and parameters are one process's bit for bit; the checkpoint holds every rank's
    chains, so a run resumes on any number of processes. Exact (autoregressive) draws, of the
    optimisation and of pretraining, are sharded over the ranks by sample the same way."""

    def __init__(self, run: RunState, setup: VMCPlan, point: Point, k: int,
                 device: torch.device, streams: RandomStreams,
                 history_csv: Path | None, world: World = SINGLE) -> None:  # fmt: skip
        self.run, self.setup, self.point, self.k = run, setup, point, k
        self.history_csv = history_csv
        qm = point.model
        self.model = build_learner(setup, qm, streams.host_generator()).to(device)
        self.sampler = make_sampler(setup, qm, device, world)
        op = LocalOperator(qm.hamiltonian, device=device)
        self.history: dict[str, list[float]] = {}
        self.pre = VMC(op, unsymmetrised(self.model), IndependentDraws(qm.n_sites, world),
                       optimizer_options(setup.pretrain_name, setup.pretrain_spec), streams,
                       setup.samples) if setup.pretrain else None  # fmt: skip
        self.vmc = VMC(op, self.model, self.sampler,
                       optimizer_options(setup.optimizer_name, setup.optimizer_spec), streams,
                       setup.samples, self.history)  # fmt: skip
        self.total = setup.pretrain + setup.iterations
        self.save_every = setup.checkpoint_every or None
        self.saves = setup.checkpoint_every > 0
        self.last: dict[str, float] = {}

    @property
    def done(self) -> int:
        """Iterations done (pretraining included)."""
        return (self.pre.iteration if self.pre else 0) + self.vmc.iteration

    def _phase(self) -> VMC:
        pretraining = self.pre is not None and self.pre.iteration < self.setup.pretrain
        return self.pre if pretraining else self.vmc

    def step(self) -> None:
        """One iteration: of pretraining, or of the optimisation (a non-finite energy is a P700,
        with the history up to it written for diagnosis)."""
        phase = self._phase()
        if phase is self.pre:
            phase.step()
            return
        it = self.vmc.iteration
        try:
            self.last = self.vmc.step()
        except torch.linalg.LinAlgError:  # an SR matrix without shift that the samples leave singular
            _fail("P704", f"the stochastic-reconfiguration matrix is singular at iteration {it} of "
                  f"run {self.run.name}: the samples' log-derivatives span too few directions",
                  self.run.span, "raise diag_shift (e.g. 0.01), or use more samples")  # fmt: skip
        if not math.isfinite(self.last["energy"]):
            if self.history_csv is not None:
                write_history(self.history_csv, self.history)
            at = ", ".join(f"{k} = {v:g}" if isinstance(v, float) else f"{k} = {v}"
                           for k, v in self.point.values.items())  # fmt: skip
            _fail("P700", f"the variational energy became non-finite at iteration {it} of run "
                  f"{self.run.name}" + (f" at {at}" if at else ""), self.run.span,
                  "lower the learning rate or raise diag_shift; the last checkpoint and the "
                  "rows of points finished before were kept")  # fmt: skip

    def postfix(self) -> dict[str, str]:
        if not self.last:
            return {}
        return {"E": f"{self.last['energy']:.5f}", "var": f"{self.last['variance']:.3g}"}

    def tensors(self) -> dict[str, torch.Tensor]:
        return self._phase().tensors()

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

    def rows(self) -> list[dict]:
        """The point's row of final estimates, from ``final_samples`` fresh samples of the
        trained state."""
        setup, qm = self.setup, self.point.model
        res = self.vmc.result(setup.final_samples)
        exact, how = reference_energy(setup.reference, qm, vmc_sector(qm, setup.sampler_spec))
        columns: dict[str, Any] = {}
        if exact is not None:
            columns["exact_energy"] = exact
            columns["relative_error"] = abs(res.energy.mean - exact) / abs(exact)
            columns["reference"] = how
        columns["acceptance"] = round(float(self.sampler.acceptance), 6)
        columns["iterations"] = setup.iterations
        return [vmc_row(self.point.values, qm, self.model, res, setup.measured[self.k], columns)]


# ---------------------------------------------------------------- registration


__all__ = ["ExactPoint", "QuantumObservable", "VMCPoint", "bind", "run_exact", "run_vmc_task"]


def bind(catalogue: Catalogue) -> None:
    """Attach this capability's implementations to its catalogue entries (top layer only)."""
    catalogue.tasks.bind("sample", Task(refuse_classical_sampling), family="quantum")
    catalogue.tasks.bind("exact", Task(run_exact))
    catalogue.tasks.bind("vmc", Task(run_vmc_task))
    registry.bind(catalogue)
    vmc.bind(catalogue)
    for name, observable in OBSERVABLES.items():
        catalogue.observables.bind(name, observable, family=QUANTUM)
