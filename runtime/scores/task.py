"""The ``diffusion`` task: train a score model (denoising score matching) or a flow-matching
velocity on samples of a continuous lattice field, sample it, and correct its ODE samples.

Each scan point (a :class:`ScoreTraining` of the driver's ``run_scan``: checkpointed, resumable)
first makes its training data: the run's ``sampler hmc(...)`` samples of the model (physml's own
HMC, exact), or the declared array of ``data NAME``. It trains the learner for ``steps`` Adam
steps (cosine-decayed learning rate, gradient clipping), then draws ``samples`` configurations
with each sampler and writes one row per sampler (column ``method``):

- ``hmc``: the data sampler's own estimates (binned errors over time, chains independent);
- ``langevin`` (annealed Langevin dynamics) and ``sde`` (reverse VE SDE), score models only:
  uncorrected, biased by the learned score and the discretisation;
- ``ode``: the ODE sampler's samples as they are (uncorrected);
- ``ode_reweighted``: self-normalised importance sampling with w = exp(-S) / q, q the exact
  density of the discrete RK4 map (``diffusion.ode_sample``): unbiased as samples grow; with
  the effective sample size per sample and var(log w);
- ``ode_metropolis``: an independence-Metropolis chain with the ODE sampler as proposal (exact
  stationary distribution exp(-S)), its acceptance, binned errors.

Observables per configuration (V sites, m = mean phi): S / V, m, |m| and V m^2 (columns
action_density, magnetization, abs_magnetization, m2: the sample task's names).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from physml_lang.catalogue import CATALOGUE, Catalogue
from physml_lang.catalogue.scores import FAMILY, TASK, ScoreMatchingOptions
from physml_lang.diagnostics import Diagnostic, PhysmlError
from physml_lang.ir.task import TaskIR

from ..checkpoint import Checkpoint, restore_training, training_tensors
from ..device import check_memory
from ..driver import RunContext, RunResult, ScanPoint, run_scan
from ..dynamics.samplers import initial_fields
from ..generative.estimates import importance_estimate, nmcmc, reweighted_mean
from ..plans.scores import ScorePlan, ScorePoint, plan_scores
from ..random import RandomStreams
from ..statistics import binning_analysis
from ..tasks import RunState, Task
from .diffusion import (
    NonInvertible,
    annealed_langevin,
    dsm_loss,
    flow_matching_ode,
    fm_loss,
    geometric_sigmas,
    ode_sample,
    probability_flow,
    reverse_sde,
)
from .nets import ScoreNet, VelocityNet, power_spectrum

Tensor = torch.Tensor
F64 = torch.float64
OBSERVABLES = ("action_density", "magnetization", "abs_magnetization", "m2")
HISTORY_POINTS = 100
SAMPLE_CHUNK = 4096  # configurations per batch of the uncorrected samplers


def observables(S: Tensor, x: Tensor) -> dict[str, Tensor]:
    """Per configuration: S / V, m, |m|, V m^2 (x (B, *shape), S (B,)) -> name -> (B,)."""
    flat = x.reshape(x.shape[0], -1).double()
    V = flat.shape[1]
    m = flat.mean(-1)
    return {"action_density": S.double() / V, "magnetization": m, "abs_magnetization": m.abs(),
            "m2": V * m * m}  # fmt: skip


class ScoreTraining(ScanPoint):
    """One scan point: the training data, the network and its optimiser; ``step`` is one
    training step; ``rows`` samples and estimates."""

    def __init__(self, plan: ScorePlan, point: ScorePoint, streams: RandomStreams,
                 device: torch.device) -> None:  # fmt: skip
        self.plan, self.point, self.streams, self.device = plan, point, streams, device
        self.cm = point.model
        ob, lo = plan.objective, plan.learner_options
        self.score = isinstance(ob, ScoreMatchingOptions)
        self.dtype = torch.float64 if lo.dtype == "float64" else torch.float32
        self.reference: dict[str, Any] | None = None
        self.data = self._training_data()
        sd = float(self.data.pow(2).mean().sqrt())
        build = CATALOGUE.learners.implementation(plan.learner.call.name, FAMILY)
        power = power_spectrum(self.data) if lo.skip == "spectral" else None
        self.net = build(point, lo, sd=sd, odd=plan.odd, power=power, dtype=self.dtype,
                         device=device, generator=streams.fork(0).host_generator())  # fmt: skip
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=ob.lr)
        self.loss_fn = CATALOGUE.objectives.implementation(plan.objective_name, FAMILY)
        self.train_streams = streams.fork(1)
        self.total, self.done = ob.steps, 0
        self.every = max(1, ob.steps // HISTORY_POINTS)
        self.history: list[dict] = []
        self._recent: list[float] = []

    # ---------------------------------------------------------------- data
    def action(self, x: Tensor) -> Tensor:
        return self.cm.action(x.to(F64))

    def _training_data(self) -> Tensor:
        """(n, *shape) float64 training fields; the HMC reference row on the way."""
        plan, point, device = self.plan, self.point, self.device
        samples = None
        if plan.sampler is not None:
            o = plan.sampler_options
            sampler = CATALOGUE.samplers.implementation(plan.sampler, "field")(o)
            hs = self.streams.fork(3)
            x0 = initial_fields((o.chains, *point.shape), "real", hs, o.start)
            res = sampler.run(self.cm.action, self.cm.grad, x0, hs)
            samples = res.samples  # (T, C, *shape)
            if not bool(torch.isfinite(samples).all()):
                raise PhysmlError(Diagnostic(
                    "P704", f"the {plan.sampler} samples became non-finite", plan.sampler_span,
                    "reduce step_size, or check the action's couplings"))  # fmt: skip
            T, C = samples.shape[:2]
            flat = samples.reshape(T * C, *point.shape)
            obs = observables(self.cm.action(flat), flat)
            row: dict[str, Any] = {**point.values, "method": plan.sampler, "samples": T * C}
            for k, v in obs.items():
                row[k] = binning_analysis(v.reshape(T, C).cpu().numpy()).as_dict()
            row["acceptance"] = res.acceptance
            self.reference = row
        if point.data is not None:
            return torch.as_tensor(point.data, dtype=F64, device=device)
        return samples.reshape(-1, *point.shape)

    # ---------------------------------------------------------------- training
    def _lr(self) -> float:
        return 0.5 * self.plan.objective.lr * (1 + math.cos(math.pi * self.done / self.total))

    def step(self) -> None:
        ob = self.plan.objective
        idx = self.train_streams.integers(0, self.data.shape[0], (ob.batch,))
        batch = self.data[idx.to(self.data.device)].to(self.dtype)
        for g in self.optimizer.param_groups:
            g["lr"] = self._lr()
        if self.score:
            loss = self.loss_fn(self.net, batch, ob.sigma_max, ob.sigma_min, self.train_streams)
        else:
            loss = self.loss_fn(self.net, batch, self.train_streams)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if ob.clip:
            torch.nn.utils.clip_grad_norm_(self.net.parameters(), ob.clip)
        value = float(loss.detach())
        if not math.isfinite(value):
            raise PhysmlError(Diagnostic(
                "P704", f"training diverged at step {self.done + 1}: the loss became non-finite",
                self.plan.objective_span, "lower lr, or clip gradients harder (clip = 0.5)"))
        self.optimizer.step()
        self.done += 1
        self._recent.append(value)
        if self.done % self.every == 0 or self.done == self.total:
            self.history.append({"step": self.done, "loss": float(np.mean(self._recent))})
            self._recent = []

    def postfix(self) -> dict[str, str]:
        return {"loss": f"{self.history[-1]['loss']:.4f}"} if self.history else {}

    # ---------------------------------------------------------------- checkpoint
    def tensors(self) -> dict[str, Tensor]:
        out = training_tensors(self.net, self.optimizer)
        out["history"] = torch.tensor([[h["step"], h["loss"]] for h in self.history],
                                      dtype=F64).reshape(-1, 2)  # fmt: skip
        out["recent"] = torch.tensor(self._recent, dtype=F64)
        out["train/draws"] = torch.tensor([self.train_streams.draws], dtype=torch.int64)
        return out

    def restore(self, saved: Checkpoint) -> None:
        t = saved.tensors
        restore_training(self.net, self.optimizer, t)
        self.history = [{"step": int(s), "loss": float(v)} for s, v in t["history"].tolist()]
        self._recent = [float(v) for v in t["recent"].tolist()]
        self.done = saved.state["done"]
        self.train_streams.draws = int(t["train/draws"].reshape(-1)[0])

    # ---------------------------------------------------------------- estimates
    def _prior(self, n: int, std: float, streams: RandomStreams) -> Tensor:
        return std * streams.normal((n, *self.point.shape), F64).to(self.dtype)

    def _row(self, method: str, x: Tensor, **extra: Any) -> dict[str, Any]:
        """Plain means of independent samples x (M, *shape)."""
        S = self.action(x)
        self._finite(S, method)
        row: dict[str, Any] = {**self.point.values, "method": method, "samples": x.shape[0]}
        for k, v in observables(S, x).items():
            row[k] = binning_analysis(v.cpu().numpy()).as_dict()
        row.update(extra)
        return row

    def _finite(self, S: Tensor, method: str) -> None:
        bad = ~torch.isfinite(S)
        if bool(bad.any()):
            raise PhysmlError(Diagnostic(
                "P704", f"{int(bad.sum())} of {S.numel()} {method} samples have a non-finite "
                "action", self.plan.objective_span, "train longer or with a lower lr; for "
                "Langevin lower langevin_step"))  # fmt: skip

    def _uncorrected(self, name: str, sample, std: float, streams: RandomStreams) -> Tensor:
        ob = self.plan.objective
        chunks = []
        for first in range(0, ob.samples, SAMPLE_CHUNK):
            m = min(SAMPLE_CHUNK, ob.samples - first)
            chunks.append(sample(self._prior(m, std, streams), streams).double())
        return torch.cat(chunks)

    def rows(self) -> list[dict]:
        ob, plan = self.plan.objective, self.plan
        self.net.train(False)  # inference mode (dropout-free nets: the same numbers)
        streams = self.streams.fork(2)
        rows: list[dict] = [self.reference] if self.reference is not None else []
        if self.score:
            top = math.sqrt(ob.sigma_max**2 + float(self.net.sd) ** 2)  # p_sigma_max, Gaussian
            sig = geometric_sigmas(ob.sigma_max, ob.sigma_min, ob.levels, dtype=self.dtype,
                                   device=self.device)  # fmt: skip
            x = self._uncorrected("langevin", lambda z, s: annealed_langevin(
                self.net, sig, ob.langevin_sweeps, ob.langevin_step, z, s), top, streams.fork(0))
            rows.append(self._row("langevin", x))
            grid = geometric_sigmas(ob.sigma_max, ob.sigma_min, ob.sde_steps + 1,
                                    dtype=self.dtype, device=self.device)  # fmt: skip
            x = self._uncorrected("sde", lambda z, s: reverse_sde(self.net, grid, z, s), top,
                                  streams.fork(1))  # fmt: skip
            rows.append(self._row("sde", x))
            ode = probability_flow(self.net, ob.sigma_max, ob.sigma_min, ob.ode_steps,
                                   ob.prior == "spectral")  # fmt: skip
        else:
            ode = flow_matching_ode(self.net, ob.ode_steps)
        ostreams = streams.fork(2)
        z = ode.prior(self._prior(ob.samples, 1.0, ostreams))
        try:
            x, log_q = ode_sample(ode, z, plan.learner_options.width)
        except NonInvertible as exc:
            raise PhysmlError(Diagnostic(
                "P704", f"the ODE sampler's discrete map is not invertible ({exc}): its density "
                "is undefined", plan.objective_span, "use more ode_steps, or train longer")) from exc
        x = x.double()
        S = self.action(x)
        self._finite(S, "ode")
        if not bool(torch.isfinite(log_q).all()):
            raise PhysmlError(Diagnostic("P704", "the ODE sampler gave a non-finite log q",
                                         plan.objective_span, "use more ode_steps"))  # fmt: skip
        obs = observables(S, x)
        rows.append(self._row("ode", x))
        est = importance_estimate(S, log_q, 1.0, self.point.n_sites)
        log_w = -S - log_q
        rw: dict[str, Any] = {**self.point.values, "method": "ode_reweighted",
                              "samples": x.shape[0]}  # fmt: skip
        for k, v in obs.items():
            mean, err = reweighted_mean(v, log_w)
            rw[k] = {"mean": mean, "stderr": err}
        rw.update(ess_per_sample=est.ess_per_sample, var_log_w=est.var_log_w)
        rows.append(rw)
        chain = nmcmc(log_w, ostreams.uniform((len(log_w),), F64))
        mc: dict[str, Any] = {**self.point.values, "method": "ode_metropolis",
                              "samples": x.shape[0], "acceptance": chain.acceptance}  # fmt: skip
        for k, v in obs.items():
            mc[k] = binning_analysis(v[chain.chain].cpu().numpy()).as_dict()
        rows.append(mc)
        if self.history:
            rows[-1]["loss"] = self.history[-1]["loss"]
        return rows


def memory_need(plan: ScorePlan) -> int:
    """Bytes of the largest point: the data, a training batch's activations (kept for the
    backward pass), the samples of the final estimates, one chunk of ODE Jacobians."""
    lo, ob = plan.learner_options, plan.objective
    worst = 0
    for p in plan.points:
        n = p.n_sites
        data = 8 * n * (p.data.shape[0] if p.data is not None else _hmc_samples(plan))
        acts = 8 * ob.batch * n * lo.width * (lo.depth + 1) * 3 * (2 if plan.odd else 1)
        samples = 8 * min(ob.samples, SAMPLE_CHUNK) * n * lo.width * 4 + 8 * 8 * ob.samples * n
        worst = max(worst, data + acts + samples + (1 << 27))
    return worst


def _hmc_samples(plan: ScorePlan) -> int:
    o = plan.sampler_options
    return 0 if o is None else o.chains * max(1, o.sweeps // o.thin)


def run_diffusion(task: TaskIR, program, ctx: RunContext) -> RunResult:
    device = ctx.device
    run = RunState.of(task)
    plan = plan_scores(run, program, ctx.sets,
                       lambda ir: program.compile_ir(ir).to(device), program.data_loader)  # fmt: skip
    ob = plan.objective
    check_memory(memory_need(plan), device, f"run {run.name}", plan.objective_span,
                 "use fewer samples, a smaller batch or width, fewer HMC sweeps, or a smaller "
                 "lattice")  # fmt: skip
    summary = ctx.recorder.summary
    summary.update({"run": run.name, "source": program.name,
                    "model": program.checker_for(task).name, "params": {},
                    "device": str(device), "seed": ctx.seed, "task": TASK,
                    "learner": {"name": plan.learner.call.name,
                                "respecting": list(plan.learner.respecting),
                                **plan.learner_options.model_dump()},
                    "objective": {"name": plan.objective_name, **ob.model_dump()},
                    "sampler": ({"name": plan.sampler, **plan.sampler_options.model_dump()}
                                if plan.sampler else None),
                    "data": plan.data_name,
                    "scan": {s.name: s.values for s in run.scans}, "rows": [], "history": [],
                    "complete": False})  # fmt: skip
    settings = {"task": TASK, "learner": plan.learner.call.name,
                "respecting": list(plan.learner.respecting),
                "learner_options": plan.learner_options.model_dump(),
                "objective": [plan.objective_name, ob.model_dump()],
                "sampler": summary["sampler"], "data": plan.data_name, "seed": ctx.seed,
                "points": [p.values for p in plan.points],
                "model": {k: v for k, (v, _) in run.model_args.items()}}  # fmt: skip
    current: list[ScoreTraining] = []

    def started(k: int, streams: RandomStreams) -> ScoreTraining:
        point = plan.points[k]
        summary["params"] = dict(point.model.model.params)
        current[:] = [ScoreTraining(plan, point, streams, device)]
        return current[0]

    def finish(k: int, rows: list[dict]) -> None:
        summary["rows"].extend(rows)
        summary["history"].append(current[0].history if current else [])

    run_scan(ctx, run.span, len(plan.points), settings, started, finish, ob.steps, run.name,
             "step")  # fmt: skip
    files = _plot(ctx.out, summary) if ctx.out is not None else []
    return RunResult(summary, ctx.out, files)


def _plot(out, summary: dict) -> list:
    """The training loss against the step, one line per scan point."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for k, hist in enumerate(summary["history"]):
        if hist:
            ax.plot([h["step"] for h in hist], [h["loss"] for h in hist], label=f"point {k}")
    ax.set_xlabel("training step")
    ax.set_ylabel("loss per site")
    ax.set_yscale("log")
    ax.legend()
    fig.tight_layout()
    path = out / "training.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return [path]


def build_score_net(point: ScorePoint, options, *, sd: float, odd: bool,
                    power: Tensor | None = None, **kw) -> ScoreNet:  # fmt: skip
    """An epsilon-predictor over the point's periodic lattice (1D or 2D: checked by the plan)."""
    return ScoreNet(len(point.shape), options.width, options.depth, options.kernel, sd, odd,
                    power, **kw)  # fmt: skip


def build_velocity_net(point: ScorePoint, options, *, sd: float, odd: bool,
                       power: Tensor | None = None, **kw) -> VelocityNet:  # fmt: skip
    """A flow-matching velocity over the point's periodic lattice."""
    return VelocityNet(len(point.shape), options.width, options.depth, options.kernel, sd, odd,
                       power, **kw)  # fmt: skip


def bind(catalogue: Catalogue) -> None:
    """Attach the networks, the training losses and the task to their catalogue entries."""
    catalogue.learners.bind("score_net", build_score_net, family=FAMILY)
    catalogue.learners.bind("velocity_net", build_velocity_net, family=FAMILY)
    catalogue.objectives.bind("score_matching", dsm_loss, family=FAMILY)
    catalogue.objectives.bind("flow_matching", fm_loss, family=FAMILY)
    catalogue.tasks.bind(TASK, Task(run_diffusion))


__all__ = ["ScoreTraining", "bind", "memory_need", "observables", "run_diffusion"]
