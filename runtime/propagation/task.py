"""The propagation task (``train U, plain via propagation(...)``), run through the shared driver.

The model's potential on the grid gives the exact propagator (``exact.py``). Training data:
``packets`` Gaussian packets (the run's data streams) evolved exactly from t = 0 to a start time
uniform in [0, start], then ``unroll`` steps of dt: sequences (packets, unroll + 1, G). Each
learner is one unit of the driver's scan (its own streams: initial weights): one Adam step per
``step`` on the full batch (backpropagation through the ``unroll`` recurrent steps, learning
rate on a cosine from lr to lr / 1000), checkpointed like the dynamics learners (parameters,
Adam's moments, losses). Then it is rolled out from ``test`` held-out packets (the test
streams) for horizon / dt steps next to the exact evolution: per step the fidelity
|<psi_exact|psi_learned>|^2 (normalised) and the norm <psi|psi>. Rows: one per learner.
Figure: ``fidelity.png`` (fidelity and norm against t). A non-finite training loss is a
located P704; a non-finite potential on the grid a located P705.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from physml_lang.catalogue import Catalogue
from physml_lang.catalogue.propagation import TASK, PropagationOptions
from physml_lang.diagnostics import Diagnostic, PhysmlError, Span
from physml_lang.ir.task import TaskIR

from ..device import check_memory
from ..driver import RunContext, RunResult, run_scan
from ..dynamics.learners import Fit, FittedPoint, save_parameters
from ..landscape.grid import GridSpec
from ..plans.propagation import PropagationPlan, RecurrentPlan, plan_propagation
from ..random import RandomStreams
from ..tasks import RunState, Task
from .cells import PlainCell, UnitaryCell, build_cell
from .exact import ExactPropagator, fidelity, inner, random_packets

Tensor = torch.Tensor
F64 = torch.float64
# families of the run's random streams besides the learners' (0, 1, ...): training and test
# packets, the same for every learner and on resume
DATA_STREAMS, TEST_STREAMS = -1, -2
MIN_LR_FACTOR = 1e-3  # the cosine schedule ends at lr / 1000


def _fail(code: str, msg: str, span: Span | None = None, hint: str | None = None):
    raise PhysmlError(Diagnostic(code, msg, span, hint))


@dataclass
class Curve:
    """A learner's rollout: times (T,), mean fidelity and mean norm over the test packets."""

    t: np.ndarray
    fidelity: np.ndarray
    norm: np.ndarray


# ---------------------------------------------------------------- data


@dataclass
class PropagationData:
    """The exact propagator, training sequences (packets, unroll + 1, G) and test packets
    (test, G), complex128 on the run's device."""

    exact: ExactPropagator
    sequences: Tensor
    test: Tensor

    @property
    def h(self) -> float:
        return self.exact.h


def make_data(plan: PropagationPlan, potential, device, seed: int,
              span: Span | None) -> PropagationData:  # fmt: skip
    """The grid, the exact propagator of ``potential`` (x (M, 1) -> (M,)) and the packets."""
    o = plan.options
    grid = GridSpec((plan.lower,), (plan.upper,), (o.points,))
    x = grid.axes(device, F64)[0]
    V = potential(x[:, None]).to(F64).reshape(-1)
    if not bool(torch.isfinite(V).all()):
        _fail("P705", "the potential is not finite on the grid", span,
              "a singular potential needs a softened form, e.g. 1 / sqrt(x^2 + a^2)")  # fmt: skip
    exact = ExactPropagator.of(grid, V, o.D)
    host = RandomStreams(seed)
    data_streams = host.fork(DATA_STREAMS)
    psi0 = random_packets(o.packets, plan.lower, plan.upper, o.width, o.momentum, o.spread, x,
                          exact.h, data_streams)  # fmt: skip
    start = o.horizon if o.start is None else o.start
    t0 = start * data_streams.uniform((o.packets,), F64).to(device)
    times = t0[:, None] + o.dt * torch.arange(o.unroll + 1, dtype=F64, device=device)
    sequences = exact.evolve(psi0, times)
    test = random_packets(o.test, plan.lower, plan.upper, o.width, o.momentum, o.spread, x,
                          exact.h, host.fork(TEST_STREAMS))  # fmt: skip
    return PropagationData(exact, sequences, test)


def memory_need(o: PropagationOptions, hidden: int) -> int:
    """Bytes of a run: the dense H and propagators (a few G x G complex), the sequences with
    their recurrent states and gradients, the plain cell's weights with Adam's moments."""
    G = o.points
    matrices = 16 * 16 * G * G
    states = 16 * 6 * (o.packets * (o.unroll + 1) + 4 * o.test) * G
    weights = 8 * 5 * (4 * G * G + 4 * G * hidden)
    return matrices + states + weights


# ---------------------------------------------------------------- training


class PropagationFit(Fit):
    """MSE of the learned recurrent steps against the exact sequences: the mean over packets
    and steps of sum_x |psi_learned - psi_exact|^2 h (full batch)."""

    def __init__(self, model: UnitaryCell | PlainCell, data: PropagationData,
                 streams: RandomStreams, lr: float):  # fmt: skip
        super().__init__(model, data.sequences.shape[0], streams, lr, None)
        self.data = data

    def loss(self, idx) -> Tensor:
        seq, h = self.data.sequences, self.data.h
        pred = self.model.steps(seq[:, 0], seq.shape[1] - 1)
        return ((pred - seq[:, 1:]).abs() ** 2).sum(-1).mean() * h

    def final_loss(self) -> float:
        with torch.no_grad():
            return float(self.loss(slice(None)))


def rollout(model: UnitaryCell | PlainCell, data: PropagationData, dt: float,
            steps: int) -> tuple[Curve, Tensor, Tensor]:  # fmt: skip
    """The learned cell from the test packets for ``steps`` steps next to the exact evolution:
    the curve (means over packets), the fidelity (test, T) and norm (test, T) per packet (a
    state that became non-finite: fidelity 0, norm inf)."""
    psi = data.test
    exact, h = data.exact, data.h
    fids, norms = [torch.ones(psi.shape[0], dtype=F64, device=psi.device)], [
        inner(psi, psi, h).real]  # fmt: skip
    with torch.no_grad():
        U = model.propagator().T if isinstance(model, UnitaryCell) else None
        for k in range(1, steps + 1):
            psi = psi @ U if U is not None else model.steps(psi, 1)[:, 0]
            ref = exact.evolve(data.test, torch.full((1,), k * dt, dtype=F64,
                                                     device=psi.device))[:, 0]  # fmt: skip
            norm, fid = inner(psi, psi, h).real, fidelity(ref, psi, h)
            ok = torch.isfinite(norm) & torch.isfinite(fid)  # diverged: no overlap left
            fids.append(torch.where(ok, fid, 0.0))
            norms.append(torch.where(ok, norm, math.inf))
    F, N = torch.stack(fids, 1), torch.stack(norms, 1)
    t = dt * np.arange(steps + 1)
    curve = Curve(t, F.mean(0).cpu().numpy(), N.mean(0).cpu().numpy())
    return curve, F, N


def _cell(plan: PropagationPlan, lp: RecurrentPlan, data: PropagationData,
          streams: RandomStreams) -> UnitaryCell | PlainCell:  # fmt: skip
    """The learner's cell, initial weights drawn on the host from its unit's streams."""
    return build_cell(lp.options, plan.options.points, data.h, streams.host_generator()).to(
        data.sequences.device)


class Training(FittedPoint):
    """One learner: ``steps`` Adam steps, then rolled out on the test packets."""

    def __init__(self, plan: PropagationPlan, lp: RecurrentPlan, data: PropagationData,
                 streams: RandomStreams):  # fmt: skip
        self.plan, self.lp, self.data = plan, lp, data
        o = plan.options
        self.model = _cell(plan, lp, data, streams)
        self.fit = PropagationFit(self.model, data, streams, o.lr)
        self.done, self.total = 0, o.steps
        self.losses = torch.zeros(self.total, dtype=F64, device=data.sequences.device)
        self.train_s = 0.0
        self.curve: Curve | None = None

    def learning_rate(self) -> float:
        o = self.plan.options
        low = o.lr * MIN_LR_FACTOR
        return low + 0.5 * (o.lr - low) * (1 + math.cos(math.pi * self.done / self.total))

    def check_finite(self) -> None:
        bad = self.first_non_finite()
        if bad is None:
            return
        _fail("P704", f"the training loss of learner {self.lp.name} became non-finite at step "
              f"{bad + 1} of {self.total}", self.lp.span,
              "lower lr, or a smaller dt; rows of learners trained before were kept")  # fmt: skip

    def rows(self) -> list[dict]:
        self.curve, row = evaluate(self.model, self.plan, self.lp, self.data)
        row["train_loss"] = {"mean": self.fit.final_loss(), "stderr": 0.0}
        row["train_s"] = round(self.train_s, 3)
        return [row]


def _mean(x: Tensor) -> dict[str, float]:
    x = x.detach().cpu().double().numpy()
    se = float(x.std(ddof=1) / math.sqrt(len(x))) if len(x) > 1 else 0.0
    return {"mean": float(x.mean()), "stderr": se}


def evaluate(model: UnitaryCell | PlainCell, plan: PropagationPlan, lp: RecurrentPlan,
             data: PropagationData) -> tuple[Curve, dict]:  # fmt: skip
    """The rollout's curve and the row's rollout columns (fidelity at the horizon with its
    error over test packets, the lowest mean fidelity along the way, the largest |norm - 1|,
    the one-step error against the exact step, how many rollouts diverged)."""
    o = plan.options
    steps = plan.rollout_steps
    curve, F, N = rollout(model, data, o.dt, steps)
    with torch.no_grad():
        one = model.steps(data.test, 1)[:, 0]
        ref = data.test @ data.exact.step(o.dt).T
        one_step = ((one - ref).abs() ** 2).sum(-1) * data.h
    row = {"learner": lp.name, "kind": "rnn", "unitary": lp.options.unitary,
           "parameters": int(sum(p.numel() for p in model.parameters())),
           "fidelity": _mean(F[:, -1]), "min_fidelity": float(curve.fidelity.min()),
           "norm_drift": float((N - 1).abs().max()), "one_step_error": _mean(one_step),
           "diverged": int((~torch.isfinite(N)).any(1).sum()),
           "horizon": steps * o.dt, "steps": steps, "dt": o.dt, "points": o.points}  # fmt: skip
    return curve, row


# ---------------------------------------------------------------- the run


def run_propagation(task: TaskIR, program, ctx: RunContext) -> RunResult:
    """Train each learner on the same exact sequences, one driver unit each, and roll it out
    next to the exact propagator: a row and ``<learner>.safetensors`` as each finishes,
    ``fidelity.png`` at the end."""
    run = RunState.of(task)
    plan = plan_propagation(run, program, ctx.sets)
    o = plan.options
    checker = program.checker_for(task)
    hidden = max((lp.options.hidden for lp in plan.learners), default=1)
    check_memory(memory_need(o, hidden), ctx.device, f"run {run.name}", run.span,
                 "fewer grid points, packets or unroll steps")  # fmt: skip
    cm = program.compile_ir(checker.instantiate(plan.args))
    data = make_data(plan, cm.potential, ctx.device, ctx.seed, run.model_span or run.span)
    summary = ctx.recorder.summary
    summary.update({"run": run.name, "source": program.name, "model": checker.name,
                    "params": dict(plan.args), "device": str(ctx.device), "seed": ctx.seed,
                    "task": TASK, "method": {"name": "propagation", **o.model_dump()},
                    "exact": {"points": o.points, "spacing": data.h,
                              "ground_energy": float(data.exact.energies[0])},
                    "rows": [], "complete": False})  # fmt: skip
    settings = {"task": TASK, "options": o.model_dump(), "seed": ctx.seed, "params": plan.args,
                "learners": [[lp.name, lp.options.model_dump()] for lp in plan.learners]}
    running: list[Training] = []
    curves: dict[str, Curve] = {}
    files: list[Path] = []

    def start(k: int, streams: RandomStreams) -> Training:
        running[:] = [Training(plan, plan.learners[k], data, streams)]
        return running[0]

    def finish(k: int, rows: list[dict]) -> None:
        summary["rows"].extend(rows)
        point = running[0]
        curves[point.lp.name] = point.curve
        if ctx.out is not None:
            files.append(save_parameters(point.model, ctx.out / f"{point.lp.name}.safetensors"))

    run_scan(ctx, run.span, len(plan.learners), settings, start, finish, o.steps, run.name,
             "step")  # fmt: skip
    if ctx.out is not None:
        for k, lp in enumerate(plan.learners):
            if lp.name not in curves:  # trained before a resume: its saved parameters
                model = _cell(plan, lp, data, ctx.streams.fork(k))
                model.load_state_dict(load_file(str(ctx.out / f"{lp.name}.safetensors")))
                curves[lp.name] = evaluate(model, plan, lp, data)[0]
        files.append(fidelity_plot(ctx.out, curves, checker.name))
    return RunResult(summary, ctx.out, files)


def fidelity_plot(out: Path, curves: dict[str, Curve], model: str) -> Path:
    """Fidelity |<psi_exact|psi_learned>|^2 and norm drift against t, one line per learner
    (means over the test packets)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.5, 6.0))
    FigureCanvasAgg(fig)
    ax_f, ax_n = fig.subplots(2, 1, sharex=True)
    for name, c in curves.items():
        ax_f.plot(c.t, c.fidelity, label=name)
        drift = np.abs(c.norm[1:] - 1)
        ax_n.semilogy(c.t[1:], np.where(np.isfinite(drift), drift.clip(1e-17), np.nan),
                      label=name)  # fmt: skip
    ax_f.axhline(1.0, color="k", lw=0.8, ls="--", label="exact propagator")
    ax_n.axhline(1e-16, color="k", lw=0.8, ls="--", label="round-off")
    for ax in (ax_f, ax_n):
        ax.legend()
    ax_f.set_ylabel(r"fidelity $|\langle\psi_{exact}|\psi_{learned}\rangle|^2$")
    ax_n.set_ylabel(r"norm drift $|\langle\psi|\psi\rangle - 1|$")
    ax_n.set_xlabel("t")
    ax_f.set_title(f"{model}: learned real-time evolution vs exact (held-out packets)")
    fig.tight_layout()
    path = out / "fidelity.png"
    fig.savefig(path, dpi=110)
    return path


def bind(catalogue: Catalogue) -> None:
    """Attach this family's tasks and learners."""
    catalogue.tasks.bind(TASK, Task(run_propagation))
    catalogue.learners.bind("rnn", build_cell, family="landscape")
    catalogue.objectives.bind("propagation", PropagationFit, family="landscape")


__all__ = ["PropagationData", "PropagationFit", "Training", "bind", "evaluate", "make_data",
           "memory_need", "rollout", "run_propagation"]
