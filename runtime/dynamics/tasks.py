"""Hamiltonian dynamics in the language: model kinds, run statements and tasks.

Model kinds (priority 15):

- ``phase_space``: models with ``phase_space (q, p)`` -> compiler/models/phase_space.PhaseSpaceModel.
- ``continuous_field``: ``field phi: real on sites`` / ``field theta: angle on sites`` ->
  compiler/models/field.FieldModel (derived dS/dx, roll stencils).

Names: ``particles`` and ``dims`` (sum domains) are known in phase-space models.

Run statements (registry entries, no grammar)::

    initial q = 1.0, p = 0.0                          # one state, or a batch (B, *shape)
    evolve integrator = [leapfrog, rk4], dt = 0.1, steps = 100000      -> task ``evolve``
    trajectories count = 25, points = 30, t_span = 3, noise = 0.1      # simulated training data
    trajectories load("orbits.npz")                  # or loaded (t, q, p[, dq, dp]; no pickle)
    train H_net, baseline via derivative_mse(steps = 2000)             -> task ``learn_dynamics``
    train S_net via step_mse(steps = 2000)           # sympnet: consecutive-state pairs
    rollout count = 10, horizon = 20, steps = 200    # evaluation of the learned dynamics

Continuous-field sampling shares the word ``sampler`` with the classical ``sample`` task (as the
gauge capability does): runs whose model declares a ``real`` or ``angle`` field on sites are
done by the ``sample`` task of the ``field`` kind (samplers hmc, mala, ula: catalogue entries of
that family); everything else keeps the classical task. Users write one word,
``sampler hmc(...)``, for every model, and the same ``let``/``scan T``/``measure`` statements:
the field task (``runtime/dynamics/field.py``) samples exp(-S/T) over scans of T or beta and of
model parameters, with built-in observables and measured expressions.

``train`` is shared with the energy-based learners (likelihood training of Boltzmann machines):
its ``via`` methods are training objectives in the catalogue; this capability's are
derivative_mse and step_mse (family ``phase_space``), and it handles a ``train`` that names no
method.

Names (integrators, samplers, observables, learners, objectives) resolve through the catalogue
(``physml_lang/catalogue/dynamics.py`` declares them with their options schemas and static
facts); :func:`bind` attaches the implementations. Each run starts from its task's static plan
(``runtime/plans/dynamics.py``: every validation, torch-free, the model compiled in place of
derived) and does the work.
"""

from __future__ import annotations

import io
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel
from torch import nn

from physml_lang.catalogue import CATALOGUE, Catalogue
from physml_lang.catalogue.dynamics import TrajectoryOptions
from physml_lang.compiler.models.phase_space import PhaseSpaceModel
from physml_lang.diagnostics import Diagnostic, PhysmlError, Span
from physml_lang.ir.task import TaskIR
from physml_lang.runtime.plans.dynamics import (
    integrator_options,
    plan_evolve,
    plan_learn,
    read_trajectories,
)

from .. import outputs
from ..driver import RunContext, RunResult
from ..tasks import RunState, Task
from .field import OBSERVABLES as FIELD_OBSERVABLE_ESTIMATES
from .field import run_field
from .integrators import (
    EnergyBlowupError,
    IntegratorError,
    Trajectory,
    evolve,
    make_integrator,
)
from .integrators import bind as bind_integrators
from .learners import LearnerKind, SympNet, TrainResult, train_map, train_vector_field
from .learners import bind as bind_learners
from .learners import rollout as learned_rollout
from .samplers import bind as bind_samplers

Tensor = torch.Tensor
F64 = torch.float64


def _fail(code: str, msg: str, span: Span | None = None, hint: str | None = None):
    raise PhysmlError(Diagnostic(code, msg, span, hint))


def _est(x: np.ndarray) -> dict[str, float]:
    """Mean and standard error over independent trajectories (0 for one)."""
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    se = float(x.std(ddof=1) / math.sqrt(len(x))) if len(x) > 1 else 0.0
    return {"mean": float(x.mean()), "stderr": se}


def _summary(run: RunState, program, cm, device, seed, task: str, sampler: dict) -> dict[str, Any]:
    return {"run": run.name, "source": program.name, "model": cm.ir.name,
            "params": {k: v for k, v in cm.model.params.items()}, "device": str(device),
            "seed": seed, "task": task, "sampler": sampler, "rows": [], "complete": False}  # fmt: skip


def _savefig(fig, path: Path) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    outputs._atomic_write(path, buf.getvalue())
    return path


# ---------------------------------------------------------------- evolve


def run_evolve(task: TaskIR, program, ctx: RunContext) -> RunResult:
    sets, device, seed, out = ctx.sets, ctx.device, ctx.seed, ctx.out
    plan = plan_evolve(task, program, sets, program.compile_ir)
    run = RunState.of(task)
    cm: PhaseSpaceModel = plan.model
    o = plan.options
    save_every = o.save_every or max(1, o.steps // 2000)
    summary = ctx.recorder.summary
    summary.update(_summary(run, program, cm, device, seed, "evolve",
                            {"name": "evolve", **o.model_dump()}))  # fmt: skip
    summary["integrators"] = plan.integrators
    summary["separable"] = cm.separable
    files: list[Path] = []
    trajs: dict[str, Trajectory] = {}
    q0 = torch.tensor(plan.q0, dtype=F64).to(device)
    p0 = torch.tensor(plan.p0, dtype=F64).to(device)
    bar = ctx.progress_bar(len(plan.integrators) * o.steps, run.name, "step")
    try:
        for name in plan.integrators:
            t0 = time.time()
            opts = integrator_options(name, o)
            try:
                tr = _evolve_chunked(cm, q0, p0, o.dt, o.steps, name, opts, save_every, o.blowup,
                                     bar)  # fmt: skip
            except EnergyBlowupError as exc:
                ctx.recorder.write()
                rel = "non-finite" if not math.isfinite(exc.rel_error) else f"{exc.rel_error:.3g}"
                _fail("P700", f"the energy error exploded with {name}: relative error {rel} at "
                      f"step {exc.step} (t = {exc.step * o.dt:g}), dt = {o.dt:g}",
                      plan.spans["dt"] or plan.spans["evolve"],
                      "the step size is too large for this motion: reduce dt (try "
                      f"dt = {o.dt / 10:g})")  # fmt: skip
            except IntegratorError as exc:
                _fail("P700", f"{name} failed: {exc}", plan.spans["dt"] or plan.spans["evolve"],
                      "reduce dt")  # fmt: skip
            wall = time.time() - t0
            trajs[name] = tr
            err = tr.energy_error.detach().cpu().numpy()  # (T, B)
            tail = max(1, err.shape[0] // 10)
            symplectic = make_integrator(name, **opts).symplectic
            row = {"integrator": name, "symplectic": symplectic, "dt": o.dt, "steps": o.steps,
                   "trajectories": int(err.shape[1]),
                   "max_rel_energy_error": _est(np.abs(err).max(0)),
                   "final_energy_drift": _est(np.abs(err[-tail:]).mean(0)),
                   "early_energy_error": _est(np.abs(err[1: 1 + tail]).mean(0)),
                   "wall_s": round(wall, 3)}  # fmt: skip
            summary["rows"].append(row)
            if out is not None:
                files.append(tr.save_npz(out / f"trajectory_{name}.npz"))
                files += tr.plot(out, name)
            ctx.recorder.write()
    finally:
        bar.close()
    summary["complete"] = True
    ctx.recorder.write()
    if out is not None:
        files.append(_energy_plot(out, trajs, cm.ir.name))
    return RunResult(summary, out, files)


def _evolve_chunked(cm, q0, p0, dt, steps, name, opts, save_every, blowup, bar) -> Trajectory:
    """evolve() in chunks (for the progress bar), concatenated into one trajectory."""
    chunk = max(save_every, (20_000 // save_every) * save_every)
    parts: list[Trajectory] = []
    q, p, done = q0, p0, 0
    while done < steps:
        n = min(chunk, steps - done)
        tr = evolve(cm.system, q, p, dt, n, name, opts, save_every=min(save_every, n),
                    blowup_threshold=None)  # fmt: skip
        E0 = parts[0].energy[0] if parts else tr.energy[0]
        E = tr.energy
        finite = bool(torch.isfinite(E).all()) and bool(torch.isfinite(tr.q).all())
        scale = E0.abs().clamp_min(1e-8 * max(1.0, float(E0.abs().mean())))
        rel = ((E - E0).abs() / scale).max(0).values if finite else None
        if rel is None or float(rel.max()) > blowup:
            k = done + n
            if rel is not None:  # the first save past the threshold
                bad = ((E - E0).abs() / scale).max(1).values > blowup
                k = done + int(torch.nonzero(bad)[0]) * min(save_every, n)
            raise EnergyBlowupError(k, float(dt), float(rel.max()) if rel is not None
                                    else float("inf"), name)  # fmt: skip
        parts.append(tr)
        q, p = tr.q[-1], tr.p[-1]
        done += n
        bar.update(n)
    starts = np.cumsum([0.0] + [float(pt.t[-1]) for pt in parts[:-1]])
    t = torch.cat([parts[0].t] + [pt.t[1:] + s for pt, s in zip(parts[1:], starts[1:])])
    return Trajectory(t, torch.cat([parts[0].q] + [pt.q[1:] for pt in parts[1:]]),
                      torch.cat([parts[0].p] + [pt.p[1:] for pt in parts[1:]]),
                      torch.cat([parts[0].energy] + [pt.energy[1:] for pt in parts[1:]]),
                      float(dt), name)  # fmt: skip


def _energy_plot(out: Path, trajs: dict[str, Trajectory], model: str) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.5, 4))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for name, tr in trajs.items():
        t = tr.t.cpu().numpy()
        err = tr.energy_error.abs().max(1).values.cpu().numpy()
        ax.plot(t[1:], np.maximum(err[1:], 1e-17), lw=0.8, label=name)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("t")
    ax.set_ylabel("max |H(t) - H(0)| / |H(0)|")
    ax.set_title(f"{model}: energy error")
    ax.legend()
    fig.tight_layout()
    return _savefig(fig, out / "energy_error.png")


# ---------------------------------------------------------------- learned dynamics


def _initial_states(cm: PhaseSpaceModel, o: TrajectoryOptions, count: int,
                    generator: torch.Generator) -> tuple[Tensor, Tensor]:  # fmt: skip
    """(count, n) initial states for simulated data and rollouts."""
    lo, hi = o.radius
    n = cm.n

    def u(a: float, b: float, *shape: int) -> Tensor:
        return a + (b - a) * torch.rand(*shape, generator=generator, dtype=F64)

    if o.start == "circle":
        r, phi = u(lo, hi, count, n), u(0.0, 2 * math.pi, count, n)
        return r * torch.cos(phi), r * torch.sin(phi)
    if o.start == "normal":
        return (hi * torch.randn(count, n, generator=generator, dtype=F64),
                hi * torch.randn(count, n, generator=generator, dtype=F64))  # fmt: skip
    # two bodies at +-x about their centre of mass, near-circular speeds for equal masses
    D = cm.shape[1]
    m = float(cm.model.params.get("m", 1.0))
    G = float(cm.model.params.get("G", 1.0))
    rad, ang = u(0.5, 1.5, count), u(0.0, 2 * math.pi, count)
    x1 = torch.zeros(count, D, dtype=F64)
    v1 = torch.zeros(count, D, dtype=F64)
    x1[:, 0], x1[:, 1] = rad * torch.cos(ang), rad * torch.sin(ang)
    v = torch.sqrt(G * m / (4 * rad)) * u(0.8, 1.2, count)
    v1[:, 0], v1[:, 1] = -v * torch.sin(ang), v * torch.cos(ang)
    return torch.cat([x1, -x1], -1), m * torch.cat([v1, -v1], -1)


def _simulate(cm: PhaseSpaceModel, q0: Tensor, p0: Tensor, t_span: float, points: int,
              substeps: int) -> tuple[Tensor, Tensor, Tensor]:  # fmt: skip
    """Reference trajectories (B, T, n) with a 4th-order symplectic (or implicit) integrator."""
    name = "yoshida4" if cm.separable else "implicit_midpoint"
    dt = t_span / (points - 1) / substeps
    tr = evolve(cm.system, q0, p0, dt, (points - 1) * substeps, name, save_every=substeps,
                blowup_threshold=None)  # fmt: skip
    t = torch.linspace(0.0, t_span, points, dtype=F64)
    return tr.q.transpose(0, 1), tr.p.transpose(0, 1), t


@dataclass
class TrainingData:
    """Training data of learned dynamics: ``states`` q, p, dq, dp of shape (N, n) (states
    and their time derivatives), and ``z0``, ``z1`` (M, 2n): pairs of consecutive states."""

    states: list[Tensor]
    z0: Tensor
    z1: Tensor


# The training objectives (the implementations of the catalogue's objective entries):
# (model, data, generator, learner options) -> TrainResult.


def _derivative_mse(model: nn.Module, data: TrainingData, generator: torch.Generator,
                    o: BaseModel) -> TrainResult:  # fmt: skip
    """MSE of the learned vector field against (dq/dt, dp/dt)."""
    return train_vector_field(model, *data.states, generator, o.steps, o.lr, o.batch_size)


def _step_mse(model: nn.Module, data: TrainingData, generator: torch.Generator,
              o: BaseModel) -> TrainResult:  # fmt: skip
    """MSE of the learned one-step map against the next state."""
    return train_map(model, data.z0, data.z1, generator, o.steps, o.lr, o.batch_size)


def run_learn(task: TaskIR, program, ctx: RunContext) -> RunResult:
    sets, device, seed, out = ctx.sets, ctx.device, ctx.seed, ctx.out
    run = RunState.of(task)
    plan = plan_learn(run, program, sets, program.compile_ir)
    cm: PhaseSpaceModel = plan.model
    o, ro = plan.data, plan.rollout
    system = cm.system
    gen = torch.Generator().manual_seed(seed)
    summary = ctx.recorder.summary
    summary.update(_summary(run, program, cm, device, seed, "learn_dynamics",
                            {"name": "learn_dynamics", "trajectories": o.model_dump(),
                             "rollout": ro.model_dump()}))  # fmt: skip
    if plan.load is not None:
        loaded = read_trajectories(plan.load, cm.n, program)
        t, q, p, dq, dp = (torch.tensor(x, dtype=F64) for x in (loaded.t, loaded.q, loaded.p,
                                                                 loaded.dq, loaded.dp))  # fmt: skip
        summary["data"] = {"file": plan.load[0], "trajectories": int(q.shape[0])}
    else:
        q0, p0 = _initial_states(cm, o, o.count, gen)
        qc, pc, t = _simulate(cm, q0, p0, o.t_span, o.points, o.substeps)
        with torch.no_grad():
            dq, dp = system.dH_dp(qc, pc), -system.dH_dq(qc, pc)
        q = qc + o.noise * torch.randn(qc.shape, generator=gen, dtype=F64)
        p = pc + o.noise * torch.randn(pc.shape, generator=gen, dtype=F64)
        summary["data"] = {"simulated": o.count, "points": o.points, "noise": o.noise}
    n = cm.n
    z = torch.cat([q, p], -1).to(device)
    data = TrainingData([x.reshape(-1, n).to(device) for x in (q, p, dq, dp)],
                         z[:, :-1].reshape(-1, 2 * n), z[:, 1:].reshape(-1, 2 * n))  # fmt: skip
    data_dt = float(t[1] - t[0])
    # test set: fresh initial states, exact trajectories
    tgen = torch.Generator().manual_seed(seed + 7919)
    qt0, pt0 = _initial_states(cm, o, ro.count, tgen)
    files: list[Path] = []
    curves: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = {}
    for lp in plan.learners:
        lgen = torch.Generator(device=device).manual_seed(seed + 1)
        learner: LearnerKind = CATALOGUE.learners.implementation(lp.kind, "phase_space")
        model = learner.build(lp.options, n, torch.Generator().manual_seed(seed + 1))
        model = model.to(device)
        fit = CATALOGUE.objectives.implementation(lp.method, "phase_space")
        t0 = time.time()
        with ctx.progress_bar(1, f"{run.name}: {lp.name}", "learner"):
            res = fit(model, data, lgen, lp.options)
        train_s = time.time() - t0
        if isinstance(model, SympNet):
            steps, dt = max(1, round(ro.horizon / data_dt)), data_dt
        else:
            steps, dt = ro.steps, ro.horizon / ro.steps
        qt, pt, _ = _simulate(cm, qt0, pt0, steps * dt, steps + 1, 10)
        integ = ro.integrator if not isinstance(model, SympNet) else None
        tr = learned_rollout(model, qt0.to(device), pt0.to(device), dt, steps,
                             energy=system.hamiltonian, integrator=integ)  # fmt: skip
        with torch.no_grad():
            E_true = system.hamiltonian(qt, pt).cpu().numpy()  # (B, T)
        E_pred = tr.energy.T.detach().cpu().numpy()
        finite = np.isfinite(E_pred).all(1)
        e_mse = ((E_pred - E_true) ** 2).mean(1)
        s_mse = ((tr.q.transpose(0, 1).cpu().numpy() - qt.numpy()) ** 2
                 + (tr.p.transpose(0, 1).cpu().numpy() - pt.numpy()) ** 2).mean((1, 2))  # fmt: skip
        row = {"learner": lp.name, "kind": learner.name, "objective": lp.method,
               "parameters": int(sum(x.numel() for x in model.parameters())),
               "train_loss": {"mean": res.final_loss, "stderr": 0.0},
               "rollout_energy_mse": _est(e_mse),
               "rollout_state_mse": _est(s_mse),
               "diverged": int((~finite).sum()),
               "rollout_steps": steps, "rollout_dt": dt,
               "integrator": tr.integrator, "train_s": round(train_s, 3)}  # fmt: skip
        summary["rows"].append(row)
        curves[lp.name] = (tr.t.cpu().numpy(), E_pred[0], tr.q[:, 0, 0].cpu().numpy(),
                           tr.p[:, 0, 0].cpu().numpy())  # fmt: skip
        curves["_true"] = (np.linspace(0, steps * dt, steps + 1), E_true[0],
                           qt[0, :, 0].numpy(), pt[0, :, 0].numpy())  # fmt: skip
        if out is not None:
            from safetensors.torch import save_file

            out.mkdir(parents=True, exist_ok=True)
            state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
            save_file(state, str(out / f"{lp.name}.safetensors"))
            files.append(out / f"{lp.name}.safetensors")
        ctx.recorder.write()
    summary["complete"] = True
    ctx.recorder.write()
    if out is not None:
        files.append(_rollout_plot(out, curves, cm))
    return RunResult(summary, out, files)


def _rollout_plot(out: Path, curves: dict, cm: PhaseSpaceModel) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4))
    FigureCanvasAgg(fig)
    ax1, ax2 = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    for name, (t, E, q, p) in curves.items():
        label = "exact" if name == "_true" else name
        style = {"color": "k", "lw": 1.5, "ls": "--"} if name == "_true" else {"lw": 1}
        ax1.plot(t, E, label=label, **style)
        ax2.plot(q, p, label=label, **style)
    ax1.set_xlabel("t")
    ax1.set_ylabel("H_true along the rollout")
    ax1.set_title(f"{cm.ir.name}: energy (test trajectory 0)")
    ax2.set_xlabel(cm.labels()[0])
    ax2.set_ylabel(cm.labels()[0].replace(cm.qname, cm.pname, 1))
    ax2.set_title("phase portrait")
    ax1.legend()
    fig.tight_layout()
    return _savefig(fig, out / "rollout.png")


__all__ = ["run_evolve", "run_field", "run_learn"]


def bind(catalogue: Catalogue) -> None:
    """Attach this capability's implementations to its catalogue entries (top layer only)."""
    bind_integrators(catalogue)
    bind_samplers(catalogue)
    bind_learners(catalogue)
    for name, estimate in FIELD_OBSERVABLE_ESTIMATES.items():
        catalogue.observables.bind(name, estimate, family="field")
    catalogue.objectives.bind("derivative_mse", _derivative_mse, family="phase_space")
    catalogue.objectives.bind("step_mse", _step_mse, family="phase_space")
    catalogue.tasks.bind("evolve", Task(run_evolve))
    catalogue.tasks.bind("sample", Task(run_field), family="field")
    catalogue.tasks.bind("learn_dynamics", Task(run_learn))
