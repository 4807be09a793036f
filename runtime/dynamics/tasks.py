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

Every task runs its points through the driver's ``run_scan`` (rows on disk as each point
finishes, checkpoints at least every ``--checkpoint-every`` seconds, ``--resume``): ``evolve``
one point per integrator (:class:`Evolution`: chunks of steps), ``learn_dynamics`` one point per
learner (:class:`Training`: Adam steps), field ``sample`` one point per parameter value
(``field.py``). Random numbers come from the run's streams (``runtime/random.py``): each point
its own, the simulated training data and the rollouts' test states their own families, so that
a resumed run regenerates the same data. Data helpers live in ``data.py``, what is measured in
``measures.py``, the figures in ``plots.py``.
"""

from __future__ import annotations

import hashlib
import math
import time
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import torch
from safetensors.torch import load_file

from physml_lang.catalogue import CATALOGUE, Catalogue
from physml_lang.catalogue.dynamics import RolloutOptions
from physml_lang.compiler.models.phase_space import PhaseSpaceModel
from physml_lang.diagnostics import Diagnostic, PhysmlError, Span
from physml_lang.ir.task import TaskIR
from physml_lang.runtime.plans.dynamics import (
    EvolvePlan,
    LearnerPlan,
    LearnPlan,
    integrator_options,
    plan_evolve,
    plan_learn,
    read_trajectories,
)

from ..checkpoint import Checkpoint
from ..device import check_memory
from ..driver import RunContext, RunResult, ScanPoint, run_scan
from ..random import RandomStreams
from ..tasks import RunState, Task
from .data import TrainingData, initial_states, simulated
from .field import run_field
from .integrators import (
    EnergyBlowupError,
    IntegratorError,
    Trajectory,
    evolve,
    make_integrator,
)
from .integrators import bind as bind_integrators
from .learners import Fit, FittedPoint, LearnerKind, save_parameters
from .learners import bind as bind_learners
from .measures import OBSERVABLES as FIELD_OBSERVABLE_ESTIMATES
from .measures import RolloutEvaluation, energy_errors, evaluate_rollouts
from .plots import Curve, energy_error_plot, rollout_plot
from .samplers import bind as bind_samplers

Tensor = torch.Tensor
F64 = torch.float64
# families of the run's random streams besides the scan points' (0, 1, ...): the simulated
# training data and the test states of the rollouts, the same for every learner and on resume
DATA_STREAMS, TEST_STREAMS = -1, -2


def _fail(code: str, msg: str, span: Span | None = None, hint: str | None = None):
    raise PhysmlError(Diagnostic(code, msg, span, hint))


def _summary(run: RunState, program, cm, ctx: RunContext, task: str,
             sampler: dict) -> dict[str, Any]:  # fmt: skip
    return {"run": run.name, "source": program.name, "model": cm.ir.name,
            "params": {k: v for k, v in cm.model.params.items()}, "device": str(ctx.device),
            "seed": ctx.seed, "task": task, "sampler": sampler, "rows": [], "complete": False}  # fmt: skip


# ---------------------------------------------------------------- memory estimates

# copies of a recorded trajectory (t, q, p, H per saved state): its chunks, their
# concatenation (rows, the checkpoint's tensors), and the numpy arrays of the .npz file
TRAJECTORY_COPIES = 4
# float64 vectors of (trajectories x canonical coordinates) an integrator step holds: the
# state, its stages (rk4: four of q and p) and the forces' temporaries
STEP_VECTORS = 32
# bytes per state saved within a chunk besides its numbers: the three small tensors (q, p, H)
# of the integrator's lists until the chunk is stacked (measured: 10^5 saved states of one
# pendulum, peak 71 MiB; this estimate 70 MiB)
SAVED_STATE_OVERHEAD = 3000


def evolve_memory(plan: EvolvePlan, save_every: int, chunk: int) -> int:
    """Bytes of one integrator's trajectories: (steps / save_every + 1) saved states of q, p
    (B, n) and H (B,), a few copies of them, the lists of a chunk's saves, and an integrator
    step's temporaries."""
    B, n = plan.q0.shape[0], plan.model.n
    saved = plan.options.steps // save_every + 2
    in_chunk = min(saved, chunk // save_every + 1)
    return (8 * B * (TRAJECTORY_COPIES * saved * (2 * n + 2) + STEP_VECTORS * n)
            + SAVED_STATE_OVERHEAD * in_chunk)  # fmt: skip


def _check_evolve_memory(run: RunState, plan: EvolvePlan, save_every: int,
                         device: torch.device) -> None:  # fmt: skip
    """Refuse, before integrating, trajectories whose saved states cannot fit on ``device``."""
    o = plan.options
    chunk = max(save_every, (Evolution.CHUNK_STEPS // save_every) * save_every)
    check_memory(evolve_memory(plan, save_every, chunk), device, f"run {run.name} "
                 f"({plan.q0.shape[0]} trajectories of {o.steps} steps, a state saved every "
                 f"{save_every})", run.span, "use fewer steps, a larger save_every, or fewer "
                 "initial states")  # fmt: skip


def learner_widths(lp: LearnerPlan, n: int) -> list[int]:
    """The layer widths of a dynamics learner on ``n`` canonical pairs (inputs to outputs)."""
    o = lp.options
    if hasattr(o, "hidden"):
        return [2 * n, *o.hidden, 2 * n]
    width = getattr(o, "width", 32)
    return [2 * n] + [width] * (2 * getattr(o, "layers", 4)) + [2 * n]


# copies of the training data (count x points states of q, p, dq, dp): the clean and noisy
# trajectories, the derivatives, the flat training tensors and the pairs of consecutive states
DATA_COPIES = 14
# per parameter: the weights, gradient, Adam's moments and a checkpoint's copy
PARAMETER_COPIES = 5
# activations kept per layer unit and state: forward, backward and an HNN's second backward
# (the vector field is the gradient of H_theta)
ACTIVATION_COPIES = 8


def learn_memory(plan: LearnPlan, count: int, points: int) -> int:
    """Bytes of a learn_dynamics run: its training data, the largest learner's parameters and
    the activations of a (full or minibatch) step, and the rollouts (learned and exact, every
    step saved) of the test states."""
    n, ro = plan.model.n, plan.rollout
    states = count * points
    need = DATA_COPIES * 8 * states * n
    worst = 0
    for lp in plan.learners:
        w = learner_widths(lp, n)
        params = sum((a + 1) * b for a, b in zip(w, w[1:]))
        batch = min(lp.options.batch_size or states, states)
        worst = max(worst, 8 * (PARAMETER_COPIES * params + ACTIVATION_COPIES * batch * sum(w)))
    rollouts = TRAJECTORY_COPIES * 8 * ro.count * (ro.steps + 2) * (2 * n + 2) * 2
    return need + max(worst, rollouts)


def _check_learn_memory(run: RunState, plan: LearnPlan, device: torch.device) -> None:
    """Refuse, before simulating or loading data, a learn_dynamics run that cannot fit."""
    if plan.load is not None:
        count, points = 1, 1  # loaded data are not counted: the file's size bounds them
    else:
        count, points = plan.data.count, plan.data.points
    check_memory(learn_memory(plan, count, points), device, f"run {run.name} ({count} "
                 f"trajectories of {points} points, {len(plan.learners)} learner(s), "
                 f"{plan.rollout.count} rollouts of {plan.rollout.steps} steps)", run.span,
                 "use fewer or shorter trajectories, smaller hidden layers, a batch_size, or "
                 "fewer rollout steps")  # fmt: skip


# ---------------------------------------------------------------- evolve


def run_evolve(task: TaskIR, program, ctx: RunContext) -> RunResult:
    """Integrate the initial states with each integrator of the run, one scan point each:
    a row of energy errors, ``trajectory_<integrator>.npz`` and its plots as each finishes,
    ``energy_error.png`` at the end. A blow-up of the energy (or an implicit solver that does
    not converge) is a located P700. No random numbers: the initial states are the run's."""
    plan = plan_evolve(task, program, ctx.sets, program.compile_ir)
    run = RunState.of(task)
    cm: PhaseSpaceModel = plan.model
    o, out = plan.options, ctx.out
    save_every = o.save_every or max(1, o.steps // 2000)
    _check_evolve_memory(run, plan, save_every, ctx.device)
    summary = ctx.recorder.summary
    summary.update(_summary(run, program, cm, ctx, "evolve", {"name": "evolve", **o.model_dump()}))
    summary["integrators"] = plan.integrators
    summary["separable"] = cm.separable
    files: list[Path] = []
    q0 = torch.tensor(plan.q0, dtype=F64, device=ctx.device)
    p0 = torch.tensor(plan.p0, dtype=F64, device=ctx.device)
    running: list[Evolution] = []

    def start(k: int, streams: RandomStreams) -> Evolution:
        name = plan.integrators[k]
        running[:] = [Evolution(cm, name, integrator_options(name, o), q0, p0, o.dt, o.steps,
                                save_every, o.blowup)]  # fmt: skip
        return running[0]

    def finish(k: int, rows: list[dict]) -> None:
        summary["rows"].extend(rows)
        if out is not None:
            name, tr = plan.integrators[k], running[0].trajectory()
            files.append(tr.save_npz(out / f"trajectory_{name}.npz"))
            files.extend(tr.plot(out, name))

    where = plan.spans["dt"] or plan.spans["evolve"]
    try:
        run_scan(ctx, run.span, len(plan.integrators), _evolve_settings(run, plan, ctx), start,
                 finish, o.steps, run.name, "step")  # fmt: skip
    except EnergyBlowupError as exc:
        ctx.recorder.write()
        rel = "non-finite" if not math.isfinite(exc.rel_error) else f"{exc.rel_error:.3g}"
        _fail("P700", f"the energy error exploded with {exc.integrator}: relative error {rel} "
              f"at step {exc.step} (t = {exc.step * o.dt:g}), dt = {o.dt:g}", where,
              "the step size is too large for this motion: reduce dt (try "
              f"dt = {o.dt / 10:g})")  # fmt: skip
    except IntegratorError as exc:
        _fail("P700", f"{running[0].name} failed: {exc}", where, "reduce dt")
    if out is not None:
        files.append(energy_error_plot(out, plan.integrators, cm.ir.name))
    return RunResult(summary, out, files)


def _evolve_settings(run: RunState, plan: EvolvePlan, ctx: RunContext) -> dict[str, Any]:
    """What a checkpoint of an evolve run may be resumed with: every input of its numbers."""
    cm = plan.model
    return {"run": run.name, "model": cm.ir.name, "params": dict(cm.model.params),
            "evolve": plan.options.model_dump(), "integrators": plan.integrators,
            "initial_state_sha256": _sha256(plan.q0, plan.p0)}  # fmt: skip


def _sha256(*arrays) -> str:
    """A digest of arrays' values (float64): a large initial state keys a checkpoint by it."""
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(np.asarray(a, dtype=np.float64)).tobytes())
    return h.hexdigest()


class Evolution(ScanPoint):
    """One integrator's trajectories from the initial states q0, p0 (B, n): ``step``
    integrates a chunk of steps (a multiple of ``save_every``, about 20000), appending its saved
    states to the recorded trajectory, and raises :class:`EnergyBlowupError` at the first saved
    state whose relative energy error exceeds ``blowup`` (or a non-finite state). Deterministic;
    the checkpoint is the current q, p, the recorded trajectory (t, q, p, H) and the wall time."""

    CHUNK_STEPS = 20_000

    def __init__(self, cm: PhaseSpaceModel, name: str, options: dict[str, Any], q0: Tensor,
                 p0: Tensor, dt: float, steps: int, save_every: int,
                 blowup: float):  # fmt: skip
        self.system, self.name, self.options = cm.system, name, options
        self.symplectic = make_integrator(name, **options).symplectic
        self.dt, self.save_every, self.blowup = dt, save_every, blowup
        self.chunk = max(save_every, (self.CHUNK_STEPS // save_every) * save_every)
        self.q, self.p = q0, p0
        self.done, self.total = 0, steps
        # the recorded trajectory in parts: the first with the initial state, the others without
        self.parts: list[tuple[Tensor, Tensor, Tensor, Tensor]] = []
        self.wall = 0.0

    def step(self) -> None:
        n = min(self.chunk, self.total - self.done)
        started = time.perf_counter()
        try:
            tr = evolve(self.system, self.q, self.p, self.dt, n, self.name, self.options,
                        save_every=min(self.save_every, n), blowup_threshold=None)  # fmt: skip
        except EnergyBlowupError as exc:  # a non-finite state: located from the start
            raise EnergyBlowupError(self.done + exc.step, exc.dt, exc.rel_error,
                                    exc.integrator) from None  # fmt: skip
        self._check(tr.energy, tr.q, n)
        first = 0 if not self.parts else 1
        self.parts.append((tr.t[first:] + self.done * self.dt, tr.q[first:], tr.p[first:],
                           tr.energy[first:]))  # fmt: skip
        self.q, self.p = tr.q[-1], tr.p[-1]
        self.done += n
        self.wall += time.perf_counter() - started

    def _check(self, E: Tensor, q: Tensor, n: int) -> None:
        """EnergyBlowupError at the first saved state of this chunk (energies E (T, B)) whose
        relative error from H(0) exceeds ``blowup``, or at its end for a non-finite state."""
        E0 = self.parts[0][3][0] if self.parts else E[0]
        scale = E0.abs().clamp_min(1e-8 * max(1.0, float(E0.abs().mean())))
        finite = bool(torch.isfinite(E).all()) and bool(torch.isfinite(q).all())
        rel = ((E - E0).abs() / scale).max(0).values if finite else None
        if rel is not None and float(rel.max()) <= self.blowup:
            return
        k = self.done + n
        if rel is not None:  # the first save past the threshold
            bad = ((E - E0).abs() / scale).max(1).values > self.blowup
            k = self.done + int(torch.nonzero(bad)[0]) * min(self.save_every, n)
        raise EnergyBlowupError(k, float(self.dt), float(rel.max()) if rel is not None
                                else float("inf"), self.name)  # fmt: skip

    def trajectory(self) -> Trajectory:
        """The recorded trajectory: t (T,), q, p (T, B, n), energy (T, B)."""
        t, q, p, E = (torch.cat(x) for x in zip(*self.parts))
        return Trajectory(t, q, p, E, float(self.dt), self.name)

    def tensors(self) -> dict[str, Tensor]:
        tr = self.trajectory()
        return {"q": self.q, "p": self.p, "trajectory/t": tr.t, "trajectory/q": tr.q,
                "trajectory/p": tr.p, "trajectory/energy": tr.energy,
                "wall_s": torch.tensor([self.wall], dtype=F64, device="cpu")}  # fmt: skip

    def restore(self, saved: Checkpoint) -> None:
        t, device = saved.tensors, self.q.device
        self.done = int(saved.state["done"])
        self.q, self.p = t["q"].to(device), t["p"].to(device)
        self.parts = [tuple(t[f"trajectory/{k}"].to(device) for k in ("t", "q", "p", "energy"))]
        self.wall = float(t["wall_s"][0])

    def rows(self) -> list[dict]:
        """The integrator, its properties and the energy errors (means over trajectories)."""
        return [{"integrator": self.name, "symplectic": self.symplectic, "dt": self.dt,
                 "steps": self.total, **energy_errors(self.trajectory()),
                 "wall_s": round(self.wall, 3)}]  # fmt: skip


# ---------------------------------------------------------------- learned dynamics


def run_learn(task: TaskIR, program, ctx: RunContext) -> RunResult:
    """Train each learner of the run on the same trajectories (simulated from the run's data
    streams, or loaded), one scan point each, and evaluate it by rollouts from the same test
    states: a row and ``<learner>.safetensors`` as each finishes, ``rollout.png`` at the end."""
    run = RunState.of(task)
    plan = plan_learn(run, program, ctx.sets, program.compile_ir)
    cm: PhaseSpaceModel = plan.model
    o, ro, out, device = plan.data, plan.rollout, ctx.out, ctx.device
    _check_learn_memory(run, plan, device)
    summary = ctx.recorder.summary
    summary.update(_summary(run, program, cm, ctx, "learn_dynamics",
                            {"name": "learn_dynamics", "trajectories": o.model_dump(),
                             "rollout": ro.model_dump()}))  # fmt: skip
    host = RandomStreams(ctx.seed)  # drawn on the CPU, where the data are simulated
    if plan.load is not None:
        loaded = read_trajectories(plan.load, cm.n, program)
        arrays = (loaded.t, loaded.q, loaded.p, loaded.dq, loaded.dp)
        t, q, p, dq, dp = (torch.tensor(x, dtype=F64, device="cpu") for x in arrays)  # host data
        summary["data"] = {"file": plan.load[0], "trajectories": int(q.shape[0])}
        digest = hashlib.sha256(b"".join(np.ascontiguousarray(a).tobytes()
                                         for a in arrays)).hexdigest()  # fmt: skip
    else:
        try:
            t, q, p, dq, dp = simulated(cm, o, host.fork(DATA_STREAMS))
        except IntegratorError as exc:
            integration_failed("simulating the training trajectories from the declared "
                                "Hamiltonian", exc, _statement_span(task, "trajectories"),
                                "the initial states (radius, start) reach a singularity or "
                                "move too fast for `substeps` steps between points: raise "
                                "substeps, shorten t_span or change radius")  # fmt: skip
        summary["data"] = {"simulated": o.count, "points": o.points, "noise": o.noise}
        digest = None
    data = TrainingData.of(t, q, p, dq, dp, device)
    qt0, pt0 = initial_states(cm, o, ro.count, host.fork(TEST_STREAMS))
    evaluations: dict[str, RolloutEvaluation] = {}
    running: list[Training] = []
    files: list[Path] = []

    rollout_span = _statement_span(task, "rollout") or run.span

    def start(k: int, streams: RandomStreams) -> Training:
        running[:] = [Training(cm, plan.learners[k], data, streams, ro, qt0, pt0,
                               rollout_span)]  # fmt: skip
        return running[0]

    def finish(k: int, rows: list[dict]) -> None:
        summary["rows"].extend(rows)
        point = running[0]
        evaluations[point.plan.name] = point.evaluation
        if out is not None:
            files.append(save_parameters(point.model, out / f"{point.plan.name}.safetensors"))

    steps = [lp.options.steps for lp in plan.learners]
    run_scan(ctx, run.span, len(steps), _learn_settings(run, plan, digest, ctx), start, finish,
             sum(steps) / len(steps), run.name, "step")  # fmt: skip
    if out is not None:
        for k, lp in enumerate(plan.learners):
            if lp.name not in evaluations:  # trained before a resume: its saved parameters
                model = _learner(cm, lp, ctx.streams.fork(k)).to(device)
                model.load_state_dict(load_file(str(out / f"{lp.name}.safetensors")))
                evaluations[lp.name] = checked_rollouts(model, cm, ro, data.dt, qt0, pt0,
                                                        rollout_span)  # fmt: skip
        curves: dict[str, Curve] = {lp.name: evaluations[lp.name].curve for lp in plan.learners}
        exact = evaluations[plan.learners[-1].name].exact
        labels = cm.labels()[0], cm.labels()[0].replace(cm.qname, cm.pname, 1)
        files.append(rollout_plot(out, curves, exact, cm.ir.name, *labels))
    return RunResult(summary, out, files)


def _statement_span(task: TaskIR, word: str) -> Span | None:
    """Where the run's first ``word`` statement is written (None: it has none)."""
    return next((st.span for st in task.statements if st.word == word), None)


def integration_failed(what: str, exc: IntegratorError, span: Span | None,
                        hint: str) -> NoReturn:  # fmt: skip
    """The located P700 of an integration that blew up (``exc``) while doing ``what``."""
    if isinstance(exc, EnergyBlowupError):
        state = ("the state became non-finite" if not math.isfinite(exc.rel_error)
                 else f"the relative energy error reached {exc.rel_error:.3g}")  # fmt: skip
        exc_text = (f"{exc.integrator} blew up at step {exc.step} (t = {exc.step * exc.dt:g}, "
                    f"dt = {exc.dt:g}): {state}")  # fmt: skip
    else:
        exc_text = str(exc)
    raise PhysmlError(Diagnostic("P700", f"{what}: {exc_text}", span, hint)) from None


def checked_rollouts(model: torch.nn.Module, cm: PhaseSpaceModel, ro: RolloutOptions,
                     data_dt: float, q0: Tensor, p0: Tensor,
                     span: Span | None) -> RolloutEvaluation:  # fmt: skip
    """``evaluate_rollouts``, its exact reference trajectories' blow-up a located P700 (a
    learned rollout that diverges is counted in the row instead)."""
    try:
        return evaluate_rollouts(model, cm, ro, data_dt, q0, p0)
    except IntegratorError as exc:
        integration_failed("the exact trajectories the rollouts are compared with", exc, span,
                            "the rollout's step (horizon / steps) is too large for the declared "
                            "motion: raise the rollout's steps or shorten its horizon")  # fmt: skip


def _learn_settings(run: RunState, plan: LearnPlan, digest: str | None,
                    ctx: RunContext) -> dict[str, Any]:  # fmt: skip
    """What a checkpoint of a learn_dynamics run may be resumed with: every input of its
    numbers (loaded data by their SHA-256)."""
    cm = plan.model
    data = plan.data.model_dump() if digest is None else {"load": plan.load[0], "sha256": digest}
    return {"run": run.name, "model": cm.ir.name, "params": dict(cm.model.params),
            "trajectories": data, "rollout": plan.rollout.model_dump(),
            "learners": [[lp.name, lp.kind, lp.method, lp.options.model_dump()]
                         for lp in plan.learners],
            "seed": ctx.seed}  # fmt: skip


def _learner(cm: PhaseSpaceModel, lp: LearnerPlan, streams: RandomStreams) -> torch.nn.Module:
    """The learner's network for cm's n canonical pairs, weights drawn on the host from the
    point's streams (the same initial weights on every device)."""
    kind: LearnerKind = CATALOGUE.learners.implementation(lp.kind, "phase_space")
    return kind.build(lp.options, cm.n, streams.host_generator())


class Training(FittedPoint):
    """One learner fitted by its objective (``lp.method``), one Adam step per ``step``
    (minibatch indices from the point's streams), then evaluated by rollouts from the test
    states q0, p0 (B, n). The checkpoint: parameters, Adam's moments, the loss per step and
    the training time; the data are regenerated from the run's streams on resume."""

    def __init__(self, cm: PhaseSpaceModel, lp: LearnerPlan, data: TrainingData,
                 streams: RandomStreams, ro: RolloutOptions, q0: Tensor,
                 p0: Tensor, rollout_span: Span | None = None):  # fmt: skip
        self.cm, self.plan, self.data, self.ro, self.q0, self.p0 = cm, lp, data, ro, q0, p0
        self.rollout_span = rollout_span
        self.kind: LearnerKind = CATALOGUE.learners.implementation(lp.kind, "phase_space")
        self.model = _learner(cm, lp, streams).to(data.z0.device)
        objective = CATALOGUE.objectives.implementation(lp.method, "phase_space")
        self.fit: Fit = objective(self.model, data, streams, lp.options)
        self.done, self.total = 0, lp.options.steps
        self.losses = torch.zeros(self.total, dtype=F64, device=data.z0.device)
        self.train_s = 0.0
        self.evaluation: RolloutEvaluation | None = None

    def check_finite(self) -> None:
        """A located P700 at the first non-finite loss since the last check."""
        bad = self.first_non_finite()
        if bad is None:
            return
        _fail("P700", f"the training loss of learner {self.plan.name} became non-finite at "
              f"step {bad + 1} of {self.total}", self.plan.span,
              "lower lr or give a batch_size, or check the training data for huge values; "
              "rows of learners trained before were kept")  # fmt: skip

    def rows(self) -> list[dict]:
        """The learner, its size, the final loss on all data, the rollout errors."""
        lp, model = self.plan, self.model
        final_loss = self.fit.final_loss()
        self.evaluation = ev = checked_rollouts(model, self.cm, self.ro, self.data.dt,
                                                self.q0, self.p0, self.rollout_span)  # fmt: skip
        return [{"learner": lp.name, "kind": self.kind.name, "objective": lp.method,
                 "parameters": int(sum(x.numel() for x in model.parameters())),
                 "train_loss": {"mean": final_loss, "stderr": 0.0}, **ev.errors,
                 "rollout_steps": ev.steps, "rollout_dt": ev.dt, "integrator": ev.integrator,
                 "train_s": round(self.train_s, 3)}]  # fmt: skip


__all__ = ["Evolution", "Training", "integration_failed", "run_evolve", "run_field", "run_learn"]


def bind(catalogue: Catalogue) -> None:
    """Attach this capability's implementations to its catalogue entries (top layer only)."""
    bind_integrators(catalogue)
    bind_samplers(catalogue)
    bind_learners(catalogue)
    for name, estimate in FIELD_OBSERVABLE_ESTIMATES.items():
        catalogue.observables.bind(name, estimate, family="field")
    catalogue.tasks.bind("evolve", Task(run_evolve))
    catalogue.tasks.bind("sample", Task(run_field), family="field")
    catalogue.tasks.bind("learn_dynamics", Task(run_learn))
