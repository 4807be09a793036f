"""The ``flow`` task of gauge models: train a gauge-equivariant flow q of 2D U(1) links
(flow.py) by reverse KL, then estimate without bias.

Each scan point trains its own flow (a :class:`GaugeFlowTraining` of the driver's
``run_scan``: checkpointed, resumable), on the model's lattice or, with ``train_extent = T``,
on the T x T torus of the same action: the conditioners are circular CNNs and the masks have
period 4, so the trained weights define the same kind of flow (exactly normalised, gauge
equivariant) on the model's lattice, where every estimate is made. Optionally the first
``warm_start`` steps minimise the forward KL -<log q> on configurations of HMC chains
(physml's own HMC at its defaults, 100 trajectories of burn-in, one trajectory per step).
The reverse-KL steps minimise F_q = <S + log q>_q by the reparametrised gradient (the action
optionally annealed, S_t = (1 - anneal^(t+1)) S; the learning rate optionally cosine-decayed).
Then ``samples`` fresh configurations give

- F_q = <S + log q>_q / V: a variational upper bound of F = -log Z / V (Haar measure normalised
  per link, V sites), with its standard error;
- F_NIS = -log <exp(-S) / q>_q / V (neural importance sampling) with a delta-method error, the
  effective sample size per sample and var(log w);
- an independence-Metropolis chain over the samples (neural MCMC): its acceptance, every
  measured observable with its binned error along the chain, and the integrated
  autocorrelation time of Q (in proposals);
- with ``reference exact``: the exact F, <cos P> and <Q^2> of the torus (runtime/gauge/exact.py).
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any

import torch

from physml_lang.catalogue import CATALOGUE, Catalogue
from physml_lang.catalogue.gauge_flows import FAMILY
from physml_lang.compiler.lower.links import topological_charge
from physml_lang.diagnostics import Diagnostic, PhysmlError
from physml_lang.ir.task import TaskIR
from physml_lang.ir.text import print_ir

from ..checkpoint import Checkpoint, restore_training, training_tensors
from ..device import check_memory
from ..driver import RunContext, RunResult, ScanPoint, run_scan
from ..gauge.exact import torus_references, u1_partition_function_log
from ..gauge.measures import Observable
from ..gauge.sampling import hot_start
from ..generative.estimates import importance_estimate, nmcmc
from ..plans.gauge_flows import FlowPoint, GaugeFlowPlan, plan_gauge_flow
from ..random import RandomStreams
from ..statistics import binning_analysis
from ..tasks import RunState, Task
from .flow import GaugeFlow

Tensor = torch.Tensor
HISTORY_POINTS = 200  # training history: about this many rows per point
WARM_BURN_IN = 100  # HMC trajectories before the warm start's first step
ESTIMATE_CHUNK = 4096  # at most this many samples at a time for the final estimates
HISTORY_KEYS = ("step", "phase", "loss", "loss_err", "ess")  # phase 0: forward KL, 1: reverse


def build_gauge_flow(shape: tuple[int, int], options, *, dtype: torch.dtype = torch.float64,
                     device=None, generator: torch.Generator | None = None) -> GaugeFlow:  # fmt: skip
    """The flow of a ``gauge_flow(...)`` learner over an L0 x L1 lattice."""
    return GaugeFlow(shape, options.layers, options.width, options.depth, options.kernel,
                     options.bins, dtype, device, generator)  # fmt: skip


def _batch_ess(log_w: Tensor) -> float:
    w = torch.exp(log_w - log_w.max())
    return float(w.sum() ** 2 / (w * w).sum()) / log_w.numel()


def reverse_kl_step(flow: GaugeFlow, action, u: Tensor, scale: float,
                    optimizer: torch.optim.Optimizer, clip: float | None
                    ) -> tuple[float, float, float]:  # fmt: skip
    """One reverse-KL step on uniforms u (B, L0, L1, 2): minimise <scale S + log q>_q by the
    path gradient. Returns (F_q per site of the batch at this scale, its standard error, the
    batch's ESS per sample)."""
    theta, log_q = flow.sample(u)
    f = scale * action(theta) + log_q  # (B,)
    loss = f.mean()
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if clip:
        torch.nn.utils.clip_grad_norm_(flow.parameters(), clip)
    optimizer.step()
    f = f.detach()
    V = theta[0, ..., 0].numel()
    return float(f.mean()) / V, float(f.std()) / math.sqrt(f.numel()) / V, _batch_ess(-f)


def forward_kl_step(flow: GaugeFlow, theta: Tensor, optimizer: torch.optim.Optimizer,
                    clip: float | None) -> tuple[float, float]:  # fmt: skip
    """One forward-KL step on configurations theta (B, L0, L1, 2) of the target: minimise
    -<log q(theta)>. Returns (-<log q> per site, its standard error)."""
    nll = -flow.log_prob(theta)
    optimizer.zero_grad(set_to_none=True)
    nll.mean().backward()
    if clip:
        torch.nn.utils.clip_grad_norm_(flow.parameters(), clip)
    optimizer.step()
    nll = nll.detach()
    V = theta[0, ..., 0].numel()
    return float(nll.mean()) / V, float(nll.std()) / math.sqrt(nll.numel()) / V


class GaugeFlowTraining(ScanPoint):
    """One scan point: the flow, its optimiser, the HMC chains of the warm start, the training
    history; ``step`` runs one training step (forward KL, then reverse KL); ``rows`` makes the
    final estimates."""

    def __init__(self, plan: GaugeFlowPlan, point: FlowPoint, streams: RandomStreams,
                 device: torch.device) -> None:  # fmt: skip
        self.plan, self.point, self.streams, self.device = plan, point, streams, device
        ob = plan.objective
        self.cm = point.model
        self.train_shape = train_shape(plan, point)
        self.flow = build_gauge_flow(self.train_shape, plan.learner_options, device=device,
                                     generator=streams.fork(0).host_generator())  # fmt: skip
        self.optimizer = torch.optim.Adam(self.flow.parameters(), lr=ob.lr)
        self.train_streams = streams.fork(1)
        self.warm_streams = streams.fork(3)
        self.total = ob.warm_start + ob.steps
        self.done = 0
        self.history: list[dict] = []
        self.every = max(1, self.total // HISTORY_POINTS)
        self.chains: Tensor | None = None  # the warm start's HMC chains (B, L0, L1, 2)
        self.hmc = None
        if ob.warm_start:
            hmc = CATALOGUE.samplers.implementation("hmc", "gauge")
            self.hmc = hmc(self.cm.group, point.beta, hmc.options())

    def action(self, theta: Tensor) -> Tensor:
        """S(theta) (B,) of link angles (B, L0, L1, 2)."""
        return self.cm.action(theta).double()

    def train_action(self, theta: Tensor) -> Tensor:
        """S(theta) (B,) on the training torus (T0, T1): the model's action of theta tiled
        over its lattice, divided by the number of tiles (a Wilson action: the same action of
        the T0 x T1 torus, evaluated there)."""
        if self.train_shape == self.point.shape or self.cm.is_wilson:
            return self.action(theta)
        reps = [L // T for L, T in zip(self.point.shape, self.train_shape)]
        return self.action(theta.repeat(1, *reps, 1)) / math.prod(reps)

    # ---------------------------------------------------------------- training
    def _warm_chains(self) -> Tensor:
        """The HMC chains, advanced one trajectory (burnt in on first use)."""
        if self.chains is None:
            self.chains = hot_start(self.cm.group, self.plan.objective.batch, self.train_shape,
                                    self.warm_streams, device=self.device,
                                    dtype=torch.float64)  # fmt: skip
            for _ in range(WARM_BURN_IN):
                self.chains = self.hmc.step(self.chains, self.warm_streams)
        self.chains = self.hmc.step(self.chains, self.warm_streams)
        return self.chains

    def step(self) -> None:
        ob = self.plan.objective
        clip = ob.clip or None
        if self.done < ob.warm_start:
            loss, err = forward_kl_step(self.flow, self._warm_chains(), self.optimizer, clip)
            phase, ess = 0, float("nan")
        else:
            t = self.done - ob.warm_start
            scale = 1 - ob.anneal ** (t + 1) if ob.anneal else 1.0
            if ob.lr_schedule == "cosine":  # a function of the step: resumes exactly
                for group in self.optimizer.param_groups:
                    group["lr"] = ob.lr * 0.5 * (1 + math.cos(math.pi * t / ob.steps))
            shape = (ob.batch, *self.train_shape, 2)
            u = self.train_streams.uniform(shape, torch.float64)
            loss, err, ess = reverse_kl_step(self.flow, self.train_action, u, scale,
                                             self.optimizer, clip)  # fmt: skip
            phase = 1
        if not math.isfinite(loss):
            raise PhysmlError(Diagnostic(
                "P704", f"training diverged at step {self.done + 1}: the loss became "
                "non-finite", self.plan.objective_span, "lower lr, or clip gradients harder "
                "(clip = 0.5); rows of earlier scan points were kept"))  # fmt: skip
        self.done += 1
        if self.done % self.every == 0 or self.done == self.total:
            self.history.append({"step": self.done, "phase": phase, "loss": loss,
                                 "loss_err": err, "ess": ess})  # fmt: skip

    def postfix(self) -> dict[str, str]:
        if not self.history:
            return {}
        h = self.history[-1]
        return {"F_q" if h["phase"] else "-log q": f"{h['loss']:.5f}"}

    # ---------------------------------------------------------------- checkpoint
    def tensors(self) -> dict[str, Tensor]:
        out = training_tensors(self.flow, self.optimizer)
        out["history"] = torch.tensor([[h[k] for k in HISTORY_KEYS] for h in self.history],
                                      dtype=torch.float64).reshape(-1, len(HISTORY_KEYS))  # fmt: skip
        out["draws"] = torch.tensor([self.train_streams.draws, self.warm_streams.draws],
                                    dtype=torch.int64)  # fmt: skip
        if self.chains is not None:
            out["chains"] = self.chains.detach().clone()
        return out

    def restore(self, saved: Checkpoint) -> None:
        t = saved.tensors
        restore_training(self.flow, self.optimizer, t)
        self.history = [dict(zip(HISTORY_KEYS, (float(x) for x in row)))
                        for row in t["history"].tolist()]  # fmt: skip
        for h in self.history:
            h["step"], h["phase"] = int(h["step"]), int(h["phase"])
        self.done = int(saved.state["done"])
        draws = t["draws"].reshape(-1).tolist()
        self.train_streams.draws, self.warm_streams.draws = int(draws[0]), int(draws[1])
        if "chains" in t:
            self.chains = t["chains"].to(self.device)

    # ---------------------------------------------------------------- estimates
    def model_flow(self) -> GaugeFlow:
        """The trained flow on the model's lattice: the training flow itself, or its weights in
        a flow of the model's extents (``train_extent``)."""
        if self.train_shape == self.point.shape:
            return self.flow
        flow = build_gauge_flow(self.point.shape, self.plan.learner_options,
                                device=self.device)  # fmt: skip
        flow.load_state_dict(self.flow.state_dict())
        return flow

    @torch.no_grad()
    def draw(self, n: int, streams: RandomStreams) -> tuple[Tensor, Tensor, Tensor]:
        """n configurations of q in chunks: (theta (n, L0, L1, 2), S (n,), log q (n,))."""
        flow = self.model_flow()
        thetas, S, log_q = [], [], []
        for first in range(0, n, ESTIMATE_CHUNK):
            m = min(ESTIMATE_CHUNK, n - first)
            u = streams.uniform((m, *self.point.shape, 2), torch.float64)
            theta, lq = flow.sample(u)
            thetas.append(theta)
            S.append(self.action(theta))
            log_q.append(lq)
        return torch.cat(thetas), torch.cat(S), torch.cat(log_q)

    @torch.no_grad()
    def rows(self) -> list[dict]:
        ob, V = self.plan.objective, math.prod(self.point.shape)
        streams = self.streams.fork(2)
        theta, S, log_q = self.draw(ob.samples, streams)
        if not bool(torch.isfinite(S).all() & torch.isfinite(log_q).all()):
            raise PhysmlError(Diagnostic("P704", "the trained flow gave non-finite log q or "
                                         "actions", self.plan.objective_span,
                                         "lower lr, or clip gradients harder"))  # fmt: skip
        est = importance_estimate(S, log_q, 1.0, V)
        log_w = -S - log_q
        chain = nmcmc(log_w, streams.uniform((len(log_w),), torch.float64))
        at = chain.chain
        row: dict[str, Any] = dict(self.point.values)
        uses_q = False
        for m in self.plan.measures:
            obs = Observable(self.cm, m.expr, m.name, None)
            uses_q |= obs.uses_q
            values = torch.cat([obs(theta[i:i + ESTIMATE_CHUNK])
                                for i in range(0, len(theta), ESTIMATE_CHUNK)])  # fmt: skip
            row[m.name] = binning_analysis(values[at].cpu().numpy()).as_dict()
        Q = topological_charge(theta)
        row.update({
            "free_energy_q": {"mean": est.free_energy_q, "stderr": est.free_energy_q_err},
            "free_energy_nis": {"mean": est.free_energy_nis, "stderr": est.free_energy_nis_err},
            "ess_per_sample": est.ess_per_sample, "var_log_w": est.var_log_w,
            "nmcmc_acceptance": chain.acceptance,
            "tau_int_Q": binning_analysis(Q[at].cpu().numpy()).tau_int,
            "steps": self.done})  # fmt: skip
        if self.plan.reference == "exact" and self.point.beta is not None:
            L0, L1 = self.point.shape
            row["exact_free_energy"] = -u1_partition_function_log(self.point.beta, L0, L1) / V
            row.update(torus_references("u1", self.point.beta, L0, L1, uses_q))
        return [row]


def train_shape(plan: GaugeFlowPlan, point: FlowPoint) -> tuple[int, int]:
    """The torus the flow of a point trains on: (T, T) with ``train_extent = T``, else the
    model's (validated by the plan: T a multiple of 4 dividing every extent)."""
    T = plan.objective.train_extent
    return (T, T) if T else tuple(point.shape)


def memory_need(plan: GaugeFlowPlan) -> int:
    """Bytes a flow run needs at its largest point (float64): every layer's activations of a
    training batch kept for the backward pass (convolutions, spline parameters and their
    temporaries) on the training torus, and the final samples with their observables."""
    lo, ob = plan.learner_options, plan.objective

    def per_layer(V: int) -> int:  # bytes of one layer's activations of one configuration
        return 8 * V * (2 * lo.width * lo.depth + 4 + 2 * (3 * lo.bins + 1) + 24)

    worst = 0
    for p in plan.points:
        V = math.prod(p.shape)
        train = ob.batch * lo.layers * per_layer(math.prod(train_shape(plan, p)))
        estimate = min(ob.samples, ESTIMATE_CHUNK) * per_layer(V) * 2
        samples = ob.samples * (8 * 2 * V + 8 * (4 + len(plan.measures)))
        worst = max(worst, train + estimate + samples)
    return worst


def run_gauge_flow(task: TaskIR, program, ctx: RunContext) -> RunResult:
    """Train and estimate at every point of the scan; rows written as points finish."""
    device, out = ctx.device, ctx.out
    run = RunState.of(task)
    plan = plan_gauge_flow(run, program, ctx.sets,
                           lambda ir: program.compile_ir(ir, dtype=torch.float64))  # fmt: skip
    ob = plan.objective
    check_memory(memory_need(plan), device, f"run {run.name}", plan.objective_span,
                 "use fewer samples, a smaller batch, fewer layers or a smaller lattice")  # fmt: skip
    summary = ctx.recorder.summary
    lo = plan.learner_options.model_dump()
    summary.update({"run": run.name, "source": program.name,
                    "model": program.checker_for(task).name, "params": {},
                    "device": str(device), "seed": ctx.seed,
                    "sampler": {"name": "flow", "learner": plan.learner.call.name,
                                "respecting": list(plan.learner.respecting), **lo,
                                **ob.model_dump()},
                    "scan": {s.name: s.values for s in run.scans}, "rows": [], "history": [],
                    "complete": False})  # fmt: skip
    settings = {"task": "flow", "family": FAMILY, "learner": plan.learner.call.name,
                "learner_options": lo, "objective": ob.model_dump(), "seed": ctx.seed,
                "points": [p.values for p in plan.points],
                "model_ir": hashlib.sha256("".join(print_ir(p.model.ir) for p in plan.points)
                                           .encode()).hexdigest(),
                "measures": [m.name for m in plan.measures]}  # fmt: skip
    current: list[GaugeFlowTraining] = []

    def started(k: int, streams: RandomStreams) -> GaugeFlowTraining:
        point = plan.points[k]
        summary["params"] = dict(point.model.model.params)
        current[:] = [GaugeFlowTraining(plan, point, streams, device)]
        return current[0]

    def finish(k: int, rows: list[dict]) -> None:
        summary["rows"].extend(rows)
        summary["history"].append(current[0].history)

    run_scan(ctx, run.span, len(plan.points), settings, started, finish,
             ob.warm_start + ob.steps, run.name, "step")  # fmt: skip
    files = _history_plot(out, summary) if out is not None else []
    return RunResult(summary, out, files)


def _history_plot(out: Path, summary: dict) -> list[Path]:
    """F_q per site (reverse KL) and -<log q> per site (warm start) against the training step,
    with the exact F where known; the batch ESS per sample beside it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(10, 4))
    for k, hist in enumerate(summary["history"]):
        rev = [h for h in hist if h["phase"] == 1]
        warm = [h for h in hist if h["phase"] == 0]
        if rev:
            ax.plot([h["step"] for h in rev], [h["loss"] for h in rev], label=f"F_q (point {k})")
            bx.plot([h["step"] for h in rev], [h["ess"] for h in rev], label=f"point {k}")
        if warm:
            ax.plot([h["step"] for h in warm], [h["loss"] for h in warm], ls=":",
                    label=f"-<log q>_HMC / V (point {k})")  # fmt: skip
        row = summary["rows"][k] if k < len(summary["rows"]) else {}
        if row.get("exact_free_energy") is not None:
            ax.axhline(row["exact_free_energy"], color="k", ls="--", lw=1, label="exact F")
    ax.set_xlabel("training step")
    ax.set_ylabel("per site")
    ax.legend(fontsize=8)
    bx.set_xlabel("training step")
    bx.set_ylabel("batch ESS per sample")
    bx.set_ylim(0, 1)
    fig.tight_layout()
    path = out / "training.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return [path]


def bind(catalogue: Catalogue) -> None:
    """Attach the flow, its training step and the task to their catalogue entries."""
    catalogue.learners.bind("gauge_flow", build_gauge_flow, family=FAMILY)
    catalogue.objectives.bind("reverse_kl", reverse_kl_step, family=FAMILY)
    catalogue.tasks.bind("flow", Task(run_gauge_flow), family=FAMILY)


__all__ = ["GaugeFlowTraining", "bind", "build_gauge_flow", "forward_kl_step",
           "reverse_kl_step", "run_gauge_flow"]
