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

import torch

from physml_lang.catalogue import Catalogue
from physml_lang.catalogue.quantum import QUANTUM
from physml_lang.diagnostics import Diagnostic, PhysmlError, Span
from physml_lang.ir.task import TaskIR
from physml_lang.ir.text import print_ir
from physml_lang.ir.walk import to_text

from ..checkpoint import Checkpoint
from ..driver import RunContext, RunResult, ScanPoint, run_scan
from ..plans.quantum import (
    ExactPlan,
    Point,
    VMCPlan,
    plan_exact,
    plan_vmc,
    refuse_classical_sampling,
    vmc_sector,
)
from ..random import RandomStreams
from ..tasks import RunState, Task
from . import registry, vmc
from .exact import Spectrum, exact_spectrum, reference_energy
from .history import save_network, write_history
from .measures import OBSERVABLES, QuantumObservable, exact_row, vmc_row
from .operator import LocalOperator
from .plots import convergence_plot, scan_plot
from .registry import build_learner, unsymmetrised
from .vmc import VMC, IndependentDraws, make_sampler, optimizer_options


def _fail(code: str, msg: str, span: Span | None = None, hint: str | None = None):
    raise PhysmlError(Diagnostic(code, msg, span, hint))


# ---------------------------------------------------------------- exact task


def run_exact(task: TaskIR, program, ctx: RunContext) -> RunResult:
    """An exact run: per point of its plan, the lowest levels by Lanczos over the planned
    magnetisation sectors, and the measured operators in the ground state. The points are
    :class:`ExactPoint` scan points of the driver's ``run_scan``: each point's row is on disk
    as soon as it is found, and ``--resume`` skips the points already done."""
    run = RunState.of(task)
    plan = plan_exact(run, program, ctx.sets, program.compile_ir)
    summary = ctx.recorder.summary
    summary.update({
        "run": run.name, "source": program.name, "model": program.checker_for(run.ir).name,
        "task": "exact", "params": {}, "device": "cpu", "seed": ctx.seed,
        "sampler": {"name": "exact (Lanczos)"}, "levels": plan.levels,
        "scan": {s.name: s.values for s in run.scans}, "rows": [], "complete": False,
    })  # fmt: skip

    def start(k: int, streams: RandomStreams) -> ExactPoint:
        summary["params"] = dict(plan.points[k].model.model.params)
        return ExactPoint(plan, k)

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

    def __init__(self, plan: ExactPlan, k: int) -> None:
        self.k, self.point, self.levels = k, plan.points[k], plan.levels
        self.sectors, self.measured = plan.sectors[k], plan.measured[k]
        self.spectrum: Spectrum | None = None
        self.done = 0

    def step(self) -> None:
        self.spectrum = exact_spectrum(self.point.model, self.levels, self.sectors)
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
        current[:] = [VMCPoint(run, setup, points[k], k, ctx.device, streams, history_csv)]
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
    ``streams``; the initial weights from a host generator seeded from them."""

    def __init__(self, run: RunState, setup: VMCPlan, point: Point, k: int,
                 device: torch.device, streams: RandomStreams,
                 history_csv: Path | None) -> None:  # fmt: skip
        self.run, self.setup, self.point, self.k = run, setup, point, k
        self.history_csv = history_csv
        qm = point.model
        self.model = build_learner(setup, qm, streams.host_generator()).to(device)
        self.sampler = make_sampler(setup, qm, device)
        op = LocalOperator(qm.hamiltonian, device=device)
        self.history: dict[str, list[float]] = {}
        self.pre = VMC(op, unsymmetrised(self.model), IndependentDraws(qm.n_sites),
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
        self.last = self.vmc.step()
        if not math.isfinite(self.last["energy"]):
            if self.history_csv is not None:
                write_history(self.history_csv, self.history)
            _fail("P700", f"the variational energy became non-finite at iteration {it} of run "
                  f"{self.run.name}", self.run.span, "lower the learning rate or raise "
                  "diag_shift; the last checkpoint was kept")  # fmt: skip

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
