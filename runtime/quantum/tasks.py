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
stderr 0. Rows go to disk through the driver's recorder as each point finishes. A vmc point
checkpoints (``runtime/checkpoint.py``) every ``checkpoint every`` iterations, at least every
``--checkpoint-every`` seconds, and at its end (the trained state, kept with the point's row);
``--resume`` continues each point from its checkpoint bit-identically on the CPU, also to more
iterations than it was saved with.
"""

from __future__ import annotations

import csv
import io
import math
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel
from tqdm import tqdm

from physml_lang.catalogue import CATALOGUE, Catalogue
from physml_lang.catalogue.quantum import QUANTUM, AutoregressiveSpec, MetropolisSpec
from physml_lang.compiler.derive.pauli import PauliSum
from physml_lang.compiler.models.quantum import QuantumModel
from physml_lang.diagnostics import Diagnostic, PhysmlError, Span
from physml_lang.ir.task import TaskIR
from physml_lang.ir.text import print_ir
from physml_lang.ir.walk import to_text

from .. import outputs
from ..checkpoint import Checkpoint, save_checkpoint
from ..driver import RunContext, RunResult
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
from ..statistics import Estimate
from ..tasks import RunState, Task
from . import registry, vmc
from .learners import MarshallSign, SymmetrizedAutoregressive
from .operator import LocalOperator
from .registry import QuantumContext, make_learner
from .vmc import (
    AutoregressiveSampler,
    Checkpointing,
    MetropolisOptions,
    MetropolisSampler,
    diagonal_observables,
    energy_statistics,
    expectation,
    load_vmc_checkpoint,
    run_vmc,
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
    files = []
    if ctx.out is not None and run.scans:
        names = [k for k, v in summary["rows"][0].items() if isinstance(v, dict)]
        f = outputs.plot_rows(ctx.out, summary["rows"], run.scans[0].name, names, None,
                              "plot.png", f"{summary['model']} ({run.name}), exact")  # fmt: skip
        if f:
            files.append(f)
    return RunResult(summary, ctx.out, files)


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

    def state_shapes(self) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
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


CHECKPOINT_NAME = re.compile(r"checkpoint(-\d+)?\.safetensors")  # the files of a vmc run


def run_vmc_task(task: TaskIR, program, ctx: RunContext) -> RunResult:
    """A vmc run: per point of its plan, optimise the learner's log psi by run_vmc and report
    the final estimates, with the exact energy as a reference where asked (or small enough).
    Each point's row, history and convergence plot are on disk as soon as it finishes; without
    --resume, checkpoints of an earlier run in the output folder are removed first."""
    run = RunState.of(task)
    setup = plan_vmc(run, program, ctx.sets, program.compile_ir)
    points = setup.points
    for p in points:  # every network of the scan is built before any work
        _build_learner(setup, p.model, torch.Generator().manual_seed(0))
    resume = ctx.resume or bool(setup.resume)
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
    if ctx.out is not None and not resume and ctx.out.is_dir():
        for f in ctx.out.iterdir():  # a fresh run: nothing of an earlier one to resume
            if CHECKPOINT_NAME.fullmatch(f.name):
                f.unlink()
    files: list[Path] = []
    show = sys.stderr.isatty() if ctx.progress is None else ctx.progress
    one = len(points) == 1
    for k, p in enumerate(points):
        summary["params"] = dict(p.model.model.params)
        ckpt = (ctx.checkpoint_path("checkpoint" if one else f"checkpoint-{k}")
                if setup.checkpoint_every > 0 else None)  # fmt: skip
        history_csv = ctx.out / ("history.csv" if one else f"history-{k}.csv") if ctx.out else None
        row, hist, resumed = _vmc_point(run, setup, p, k, ctx, ckpt, resume, show, history_csv)
        if resumed:
            summary["resumed"] = True
        row = {**p.values, **row}
        summary["rows"].append(row)
        ctx.recorder.write()
        if ctx.out is not None:
            _write_history(history_csv, hist)
            f = _convergence_plot(ctx.out, hist, row.get("exact_energy"),
                                  "convergence.png" if one else f"convergence-{k}.png",
                                  f"{summary['model']} ({run.name})")  # fmt: skip
            if f:
                files.append(f)
    summary["complete"] = True
    ctx.recorder.write()
    if ctx.out is not None and run.scans:
        names = [k for k, v in summary["rows"][0].items() if isinstance(v, dict)]
        f = outputs.plot_rows(ctx.out, summary["rows"], run.scans[0].name, names, None,
                              "plot.png", f"{summary['model']} ({run.name}), vmc")  # fmt: skip
        if f:
            files.append(f)
    return RunResult(summary, ctx.out, files)


def _vmc_settings(run: RunState, setup: VMCPlan, point: Point, seed: int,
                  device: torch.device) -> dict[str, Any]:  # fmt: skip
    """What a point's optimisation depends on (its checkpoint's settings): the model (IR text,
    values, scan point), the learner, sampler, optimiser, pretraining, samples per step, seed
    and device. Not the iteration count: a resume may go on to more iterations."""
    qm = point.model
    return {
        "run": run.name, "model": print_ir(qm.ir), "params": dict(qm.model.params),
        "point": dict(point.values),
        "learner": {"name": setup.learner_decl.name, "kind": setup.learner_decl.call.name,
                    **setup.learner_options.model_dump(), "respecting": setup.respecting},
        "sampler": {"name": setup.sampler_name, **setup.sampler_spec.model_dump()},
        "optimizer": {"name": setup.optimizer_name, **setup.optimizer_spec.model_dump()},
        "pretrain": {"iterations": setup.pretrain, "name": setup.pretrain_name,
                     **setup.pretrain_spec.model_dump()} if setup.pretrain else None,
        "samples": setup.samples, "seed": seed, "device": device.type,
    }  # fmt: skip


def _row_settings(run: RunState, setup: VMCPlan) -> dict[str, Any]:
    """What a finished point's row depends on besides the optimisation: a resumed point reuses
    the row saved with its checkpoint only if these are the same."""
    return {"iterations": setup.iterations, "final_samples": setup.final_samples,
            "reference": setup.reference,
            "measures": [m.name + (f" = {to_text(m.expr)}" if m.expr is not None else "")
                         for m in run.measures]}  # fmt: skip


def _vmc_point(run: RunState, setup: VMCPlan, point: Point, k: int, ctx: RunContext,
               ckpt: Path | None, resume: bool, show: bool,
               history_csv: Path | None) -> tuple[dict, dict, bool]:  # fmt: skip
    """One point of a vmc run: (row of final estimates, optimisation history, whether it
    continued from a checkpoint). With ``resume``, a checkpoint of the point at ``ckpt`` is
    continued (a finished point's row is reused); one from other settings is a P602."""
    qm, seed, device = point.model, ctx.seed + k, ctx.device
    model = _build_learner(setup, qm, torch.Generator().manual_seed(seed)).to(device)
    generator = torch.Generator(device=device)
    generator.manual_seed(seed + 1_000_003)
    sampler = _make_sampler(setup, qm, device)
    optimizer = _optimizer_options(setup.optimizer_name, setup.optimizer_spec)
    settings = _vmc_settings(run, setup, point, seed, device)
    row_settings = _row_settings(run, setup)
    saved = None
    if resume and ckpt is not None and ckpt.is_file():
        saved = load_vmc_checkpoint(ckpt, settings, model, optimizer, sampler, generator,
                                    run.span)  # fmt: skip
        at = saved.state["iteration"]
        if at > setup.iterations:
            _fail("P602", f"checkpoint {ckpt}: saved at iteration {at}, past this run's "
                  f"{setup.iterations} iterations", run.span, f"resume with iterations >= {at}, "
                  "or run without --resume to start afresh")  # fmt: skip
        if saved.state.get("row") is not None and saved.state.get("row_settings") == row_settings:
            return saved.state["row"], saved.state["history"], True
    exact, how = _reference(setup, qm, vmc_sector(qm, setup.sampler_spec))
    history: dict[str, list[float]] = {}
    start = saved.state["iteration"] if saved is not None else 0
    bar = tqdm(total=setup.iterations, initial=start, disable=not show, desc=run.name,
               unit="it", leave=False)  # fmt: skip

    def callback(it: int, stats: dict[str, float]) -> None:
        if not math.isfinite(stats["energy"]):
            raise PhysmlError(Diagnostic(
                "P700", f"the variational energy became non-finite at iteration {it} of run "
                f"{run.name}", run.span, "lower the learning rate or raise diag_shift; the last "
                "checkpoint was kept"))  # fmt: skip
        bar.n = it + 1
        bar.set_postfix(E=f"{stats['energy']:.5f}", var=f"{stats['variance']:.3g}", refresh=False)
        bar.update(0)

    if setup.pretrain and saved is None:
        bar.set_description(f"{run.name} (pretrain)")
        run_vmc(
            LocalOperator(qm.hamiltonian, device=device), _unsymmetrised(model),
            _IndependentDraws(qm.n_sites),
            optimizer=_optimizer_options(setup.pretrain_name, setup.pretrain_spec),
            iterations=setup.pretrain, generator=generator, n_samples=setup.samples,
            eval_samples=setup.samples,
        )  # fmt: skip
        bar.set_description(run.name)
    saving = (Checkpointing(ckpt, settings, setup.checkpoint_every, ctx.checkpoint_seconds,
                            run.span) if ckpt is not None else None)  # fmt: skip
    try:
        res = run_vmc(
            LocalOperator(qm.hamiltonian, device=device), model, sampler, optimizer=optimizer,
            iterations=setup.iterations, generator=generator, n_samples=setup.samples,
            eval_samples=setup.final_samples, checkpoint=saving, resume_from=saved,
            history=history, callback=callback,
        )  # fmt: skip
    except PhysmlError:  # a diverged run: keep its history up to the failure for diagnosis
        if history_csv is not None:
            _write_history(history_csv, history)
        raise
    finally:
        bar.close()
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
    for name, what in setup.measured[k]:
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
    if ckpt is not None and res.checkpoint is not None:  # the trained state, with its row
        last = res.checkpoint
        save_checkpoint(ckpt, Checkpoint(last.tensors, {**last.state, "row": row,
                                                        "row_settings": row_settings}),
                        settings)  # fmt: skip
    return row, history, saved is not None


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
