"""The ``flow`` task of continuous fields: train a coupling flow q(phi) of p(phi) = exp(-S) / Z by
reverse KL (optionally after a forward-KL warm start on HMC samples of the model), then estimate
without bias.

Each scan point trains its own flow (a :class:`FlowTraining` of the driver's ``run_scan``:
checkpointed, resumable), then draws ``samples`` fresh fields phi = f(z) and reports

- F_q = <log q + S>_q / V: a variational upper bound of -log Z / V, with its standard error;
- F_NIS = -log <exp(-S) / q>_q / V (neural importance sampling) with a delta-method error, the
  effective sample size per sample and var(log w) (``generative/estimates.py``);
- the acceptance of an independence-Metropolis chain over the samples with q as its proposal
  (neural MCMC), and each measured observable (``measure``: magnetisation m = mean phi, |m|,
  V <m^2>, susceptibility, Binder cumulant, S / V) on that chain with binned (means) or
  jackknife (functions of means) errors and tau_int (``dynamics/measures.py``).

``spin_flip = mixture`` (a learner option) realises ``respecting spin_flip`` as the sign mixture
q(phi) = (q0(phi) + q0(-phi)) / 2 of an unconstrained flow q0 (trained by reverse KL alone; its
warm start sees HMC samples folded to mean phi >= 0), so q0 may sit in one mode of a broken
phase while q has both. ``train_extent`` (an objective option) trains on a smaller torus with
the action of the field tiled over the model's lattice; the estimates are always made at the
model's own size with the same weights (``transfer``).
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import torch

from physml_lang.catalogue import Catalogue
from physml_lang.catalogue.flows import FAMILY
from physml_lang.diagnostics import Diagnostic, PhysmlError
from physml_lang.ir.task import TaskIR

from ..checkpoint import Checkpoint, restore_training, training_tensors
from ..device import check_memory
from ..distributed import SINGLE, World
from ..driver import RunContext, RunResult, ScanPoint, run_scan
from ..dynamics.measures import OBSERVABLES
from ..dynamics.samplers import HMCKernel
from ..generative.estimates import importance_estimate, nmcmc
from ..learners.parallel import drawing, record_digests
from ..outputs import plot_rows
from ..plans.flows import FlowPlan, FlowPoint, plan_flow
from ..random import RandomStreams
from ..tasks import RunState, Task
from .coupling import CouplingFlow
from .train import anneal_beta, forward_kl_step, reverse_kl_step

Tensor = torch.Tensor
F64 = torch.float64
HISTORY_POINTS = 200  # training history: about this many rows per point
HMC_BURN_IN = 100  # warm start: trajectories before the first forward-KL step
HISTORY_KEYS = ("step", "phase", "loss", "free_energy_q", "free_energy_q_err", "ess_per_sample")


def build_flow(point: FlowPoint | None, options, odd: bool, shape: tuple[int, ...] | None = None,
               **kw) -> CouplingFlow:  # fmt: skip
    """The coupling flow of a point's lattice, or of a torus of ``shape`` (``options``:
    CouplingFlowOptions)."""
    return CouplingFlow(shape or point.shape, options.layers, options.kind, options.width,
                        options.depth, options.kernel, options.bins, options.bound, odd,
                        **kw)  # fmt: skip


def transfer(flow: CouplingFlow, shape: tuple[int, ...], odd: bool, options,
             **kw) -> CouplingFlow:  # fmt: skip
    """The same weights on a torus of another ``shape`` (even extents): the conditioners are
    periodic CNNs, so every weight means the same on any torus; only the checkerboards differ."""
    out = build_flow(None, options, odd, shape, **kw)
    dtype = kw.get("dtype", flow.dtype)
    weights = {k: v.to(dtype) for k, v in flow.state_dict().items()
               if not k.endswith((".active", ".frozen"))}  # fmt: skip
    out.load_state_dict(weights, strict=False)
    return out


def tiled(fn, shape: tuple[int, ...]):
    """fn of fields on ``shape`` made a function of fields (C, *small) on a torus whose extents
    divide ``shape``: fn of the field tiled over ``shape``, divided by the number of tiles (for
    an action: the same local action on the small torus)."""

    def on_small(phi: Tensor) -> Tensor:
        reps = [n // m for n, m in zip(shape, phi.shape[1:])]
        return fn(phi.repeat(1, *reps)) / math.prod(reps)

    return on_small


def tiled_grad(grad, shape: tuple[int, ...]):
    """The gradient of ``tiled(action)``: grad S on the tiled field is periodic with the small
    torus's extents, so the small field's gradient is its first tile."""

    def on_small(phi: Tensor) -> Tensor:
        reps = [n // m for n, m in zip(shape, phi.shape[1:])]
        g = grad(phi.repeat(1, *reps))
        return g[(slice(None), *[slice(0, m) for m in phi.shape[1:]])]

    return on_small


class FlowTraining(ScanPoint):
    """One scan point: the flow, its optimiser, the warm start's HMC chains, the training
    history; ``step`` runs one training step (``done`` counts warm-start and reverse-KL
    steps); ``rows`` makes the final estimates.

    On several processes (``world``) each rank draws its block ``world.shard(batch)`` of every
    training batch (prior draws, warm-start HMC chains: streams keyed by the global sample or
    chain index), the gradients are summed over the ranks, and the final samples are drawn in
    the same chunks as on one process, each chunk sharded and gathered in global order."""

    def __init__(self, plan: FlowPlan, point: FlowPoint, streams: RandomStreams,
                 device: torch.device, world: World = SINGLE,
                 summary: dict | None = None) -> None:  # fmt: skip
        self.plan, self.point, self.streams, self.device = plan, point, streams, device
        self.world, self.summary = world, summary
        self.local = world.shard(plan.objective.batch)
        ob = plan.objective
        self.cm = point.model
        self.dtype = F64 if plan.learner_options.dtype == "float64" else torch.float32
        extent = ob.train_extent
        self.train_shape = (extent,) * len(point.shape) if extent else point.shape
        self.flow = build_flow(point, plan.learner_options, plan.odd, self.train_shape,
                               dtype=self.dtype, device=device,
                               generator=streams.fork(0).host_generator())  # fmt: skip
        self.train_action, self.train_grad = self.cm.action, self.cm.grad
        if self.train_shape != point.shape:
            self.train_action = tiled(self.cm.action, point.shape)
            self.train_grad = tiled_grad(self.cm.grad, point.shape)
        self.optimizer = torch.optim.Adam(self.flow.parameters(), lr=ob.lr)
        self.total = ob.warm_start + ob.steps
        self.done = 0
        self.history: list[dict] = []
        self.every = max(1, self.total // HISTORY_POINTS)
        self.train_streams = streams.fork(1)
        self.hmc_streams = streams.fork(3)
        # this rank's samples and chains: stream b is global sample local.start + b
        self.train_streams.first = self.hmc_streams.first = self.local.start
        self.hmc: HMCKernel | None = None
        self.x: Tensor | None = None
        self.train_s = 0.0

    def action(self, phi: Tensor) -> Tensor:
        """S(phi) (C,) of training fields (C, *train_shape), evaluated in float64, returned in
        phi's dtype."""
        return self.train_action(phi.to(F64)).to(phi.dtype)

    def flow64(self) -> CouplingFlow:
        """The trained flow evaluated in float64 at the model's own size (the estimates)."""
        if self.dtype == F64 and self.train_shape == self.point.shape:
            return self.flow
        return transfer(self.flow, self.point.shape, self.plan.odd, self.plan.learner_options,
                        dtype=F64, device=self.device)  # fmt: skip

    # ---------------------------------------------------------------- warm start
    def _start_hmc(self) -> None:
        """Chains (batch, *lattice) of physml's HMC of exp(-S), started at phi = 0 (a random
        start can diverge on a steep quartic action), burnt in."""
        ob = self.plan.objective
        self.hmc = HMCKernel(self.train_action, self.train_grad, self.hmc_streams, ob.hmc_step,
                             ob.hmc_steps, jitter=0.2)  # fmt: skip
        b = self.local.stop - self.local.start
        x = torch.zeros((b, *self.train_shape), dtype=F64, device=self.device)
        self.hmc.start(x)
        self.hmc.track = False
        for _ in range(HMC_BURN_IN):
            x = self.hmc.step(x)
        self.x = x

    # ---------------------------------------------------------------- training
    def step(self) -> None:
        ob = self.plan.objective
        t0 = time.perf_counter()
        if self.done < ob.warm_start:
            if self.x is None:
                self._start_hmc()
            self.x = self.hmc.step(self.x)
            data = fold_sign(self.x) if self.plan.mixture else self.x
            r = forward_kl_step(self.flow, data.to(self.dtype), self.optimizer, ob.clip or None,
                                self.world, ob.batch)  # fmt: skip
            phase = 0
        else:
            k = self.done - ob.warm_start
            b = self.local.stop - self.local.start
            z = self.train_streams.normal((b, *self.train_shape), F64).to(self.dtype)
            r = reverse_kl_step(self.flow, self.action, z, self.optimizer, ob.clip or None,
                                anneal_beta(ob.anneal, k), self.world, ob.batch)  # fmt: skip
            phase = 1
        self.train_s += time.perf_counter() - t0
        if not math.isfinite(r.loss):
            raise PhysmlError(Diagnostic(
                "P704", f"training diverged at step {self.done + 1}: the loss became "
                "non-finite", self.plan.objective_span, "lower lr, clip gradients harder "
                "(clip = 0.5) or bound the scales (bound = 0.5); rows of earlier scan points "
                "were kept"))  # fmt: skip
        self.done += 1
        if self.done % self.every == 0 or self.done == self.total:
            self.history.append({"step": self.done, "phase": phase, "loss": r.loss,
                                 "free_energy_q": r.free_energy_q,
                                 "free_energy_q_err": r.free_energy_q_err,
                                 "ess_per_sample": r.ess_per_sample})  # fmt: skip

    def postfix(self) -> dict[str, str]:
        if not self.history:
            return {}
        h = self.history[-1]
        return {"loss": f"{h['loss']:.4f}", "ess": f"{h['ess_per_sample']:.3f}"}

    # ---------------------------------------------------------------- checkpoint
    def tensors(self) -> dict[str, Tensor]:
        out = training_tensors(self.flow, self.optimizer)
        out["history"] = torch.tensor([[h[k] for k in HISTORY_KEYS] for h in self.history],
                                      dtype=F64).reshape(-1, len(HISTORY_KEYS))  # fmt: skip
        out["draws"] = torch.tensor([self.train_streams.draws, self.hmc_streams.draws],
                                    dtype=torch.int64)  # fmt: skip
        out["train_s"] = torch.tensor([self.train_s], dtype=F64)
        if self.x is not None:  # every rank's chains (a collective on several processes)
            out["hmc/x"] = self.world.all_gather(self.x.detach().clone(),
                                                 self.plan.objective.batch)  # fmt: skip
        return out

    def restore(self, saved: Checkpoint) -> None:
        t = saved.tensors
        restore_training(self.flow, self.optimizer, t)
        self.history = [dict(zip(HISTORY_KEYS, (float(x) for x in row)))
                        for row in t["history"].tolist()]  # fmt: skip
        for h in self.history:
            h["step"], h["phase"] = int(h["step"]), int(h["phase"])
        self.done = saved.state["done"]
        draws = t["draws"].reshape(-1)
        self.train_streams.draws, self.hmc_streams.draws = int(draws[0]), int(draws[1])
        self.train_s = float(t["train_s"].reshape(-1)[0])
        if "hmc/x" in t:
            ob = self.plan.objective
            self.hmc = HMCKernel(self.train_action, self.train_grad, self.hmc_streams,
                                 ob.hmc_step, ob.hmc_steps, jitter=0.2)  # fmt: skip
            self.x = t["hmc/x"][self.local].to(self.device)
            self.hmc.start(self.x)
            self.hmc.track = False

    # ---------------------------------------------------------------- estimates
    @torch.no_grad()
    def rows(self) -> list[dict]:
        ob, V, world = self.plan.objective, self.point.n_sites, self.world
        if self.summary is not None:
            record_digests(self.summary, self.flow.parameters(), world)
        streams = self.streams.fork(2)
        S, logq, m = [], [], []
        chunk = estimate_chunk(self.plan, self.point)
        flow = self.flow64()
        for first in range(0, ob.samples, chunk):
            n = min(chunk, ob.samples - first)
            mine = world.shard(n)  # this rank's block of the chunk (all of it on one process)
            with drawing(streams, mine.start):
                z = streams.normal((mine.stop - mine.start, *self.point.shape), F64)
                u = streams.uniform((mine.stop - mine.start,), F64) if self.plan.mixture else None
            phi, lq = flow(z)
            if u is not None:
                phi, lq = sign_mixture(flow, phi, lq, u)
            parts = (self.cm.action(phi), lq, phi.reshape(phi.shape[0], -1).mean(-1))
            for acc, part in zip((S, logq, m), parts):
                acc.append(world.all_gather(part, n))
        S, logq, m = torch.cat(S), torch.cat(logq), torch.cat(m)
        if not bool(torch.isfinite(S).all() & torch.isfinite(logq).all()):
            raise PhysmlError(Diagnostic("P704", "the trained flow gave non-finite log q or "
                                         "actions", self.plan.objective_span,
                                         "lower lr, or bound the scales (bound = 0.5)"))  # fmt: skip
        est = importance_estimate(S, logq, 1.0, V)
        chain = nmcmc(-S - logq, streams.uniform((len(S),), F64))
        series = chain_series(S, m, chain.chain, V)
        row = {**self.point.values}
        for name in self.plan.measures:
            row[name] = OBSERVABLES[name](series, float(V), 1.0).as_dict()
        row.update({
            "free_energy_q": {"mean": est.free_energy_q, "stderr": est.free_energy_q_err},
            "free_energy_nis": {"mean": est.free_energy_nis, "stderr": est.free_energy_nis_err},
            "ess_per_sample": est.ess_per_sample, "var_log_w": est.var_log_w,
            "nmcmc_acceptance": chain.acceptance, "steps": self.done,
            "train_s": round(self.train_s, 3)})  # fmt: skip
        return [row]


def fold_sign(phi: Tensor) -> Tensor:
    """Fields (C, *lattice) flipped to mean phi >= 0: one mode of a Z2-symmetric p."""
    m = phi.reshape(phi.shape[0], -1).mean(-1)
    return phi * torch.where(m < 0, -1.0, 1.0).to(phi.dtype).reshape(-1, *[1] * (phi.dim() - 1))


def sign_mixture(flow: CouplingFlow, phi: Tensor, logq: Tensor,
                 u: Tensor) -> tuple[Tensor, Tensor]:  # fmt: skip
    """Samples of q(phi) = (q0(phi) + q0(-phi)) / 2 from samples phi (C, *lattice) of q0 with
    their log q0 (C,): the sign flipped where the uniforms u (C,) are below 1/2, and the exact
    log q (C,), q0(-phi) by the inverse map (q is even: the same for either sign)."""
    flipped = flow.log_prob(-phi)
    logq = torch.logaddexp(logq, flipped) - math.log(2.0)
    sign = torch.where(u < 0.5, -1.0, 1.0).to(phi.dtype).reshape(-1, *[1] * (phi.dim() - 1))
    return phi * sign, logq


def chain_series(S: Tensor, m: Tensor, chain: Tensor, V: int) -> dict[str, np.ndarray]:
    """The series of the neural MCMC chain (index ``chain`` into the proposals) in the form of
    the field observables: S / V, m, |m|, m^2, m^4, each (M,)."""
    a, mm = (S[chain] / V).cpu().numpy(), m[chain].cpu().numpy()
    return {"action_density": a, "magnetization": mm, "abs_magnetization": np.abs(mm),
            "m2": mm * mm, "m4": mm**4}  # fmt: skip


def _activation_bytes(plan: FlowPlan, p: FlowPoint) -> int:
    """Bytes of one field's activations through the flow, kept for the backward pass (float64;
    twice when odd: the conditioners see phi and -phi)."""
    lo = plan.learner_options
    out = 2 if lo.kind == "affine" else 3 * lo.bins - 1
    per_layer = p.n_sites * (lo.width * lo.depth * 2 + out * (4 if lo.kind == "spline" else 2) + 6)
    return 8 * per_layer * lo.layers * (2 if plan.odd else 1)


def estimate_chunk(plan: FlowPlan, p: FlowPoint) -> int:
    """Fields drawn at a time for the final estimates: about 256 MiB of activations."""
    per = max(1, _activation_bytes(plan, p) // plan.learner_options.layers)
    return max(64, min(plan.objective.samples, (1 << 28) // per))


def memory_need(plan: FlowPlan) -> int:
    """Bytes a flow run needs at its largest point: a training batch's activations, one chunk of
    the estimates, and the per-sample series of the final estimates."""
    ob, worst = plan.objective, 0
    for p in plan.points:
        train = ob.batch * _activation_bytes(plan, p)
        final = estimate_chunk(plan, p) * _activation_bytes(plan, p) // plan.learner_options.layers
        worst = max(worst, max(train, final) + 8 * 8 * ob.samples)
    return worst


def run_flow(task: TaskIR, program, ctx: RunContext) -> RunResult:
    device, out = ctx.device, ctx.out
    run = RunState.of(task)
    plan = plan_flow(run, program, ctx.sets,
                     lambda ir: program.compile_ir(ir).to(device))  # fmt: skip
    ob = plan.objective
    check_memory(memory_need(plan), device, f"run {run.name}", plan.objective_span,
                 "use fewer samples, a smaller batch or width, or a smaller lattice")  # fmt: skip
    summary = ctx.recorder.summary
    summary.update({"run": run.name, "source": program.name,
                    "model": program.checker_for(task).name, "params": {},
                    "device": str(device), "seed": ctx.seed, "task": "flow",
                    "sampler": {"name": "flow", "learner": plan.learner.call.name,
                                "respecting": list(plan.learner.respecting),
                                **plan.learner_options.model_dump(), **ob.model_dump()},
                    "scan": {s.name: s.values for s in run.scans}, "rows": [], "history": [],
                    "complete": False})  # fmt: skip
    settings = {"task": "flow", "learner": plan.learner.call.name,
                "respecting": list(plan.learner.respecting),
                "learner_options": plan.learner_options.model_dump(),
                "objective": ob.model_dump(), "seed": ctx.seed, "measures": plan.measures,
                "points": [p.values for p in plan.points],
                "model": {k: v for k, (v, _) in run.model_args.items()}}  # fmt: skip
    current: list[FlowTraining] = []

    def started(k: int, streams: RandomStreams) -> FlowTraining:
        point = plan.points[k]
        summary["params"] = dict(point.model.model.params)
        current[:] = [FlowTraining(plan, point, streams, device, ctx.world, summary)]
        return current[0]

    def finish(k: int, rows: list[dict]) -> None:
        summary["rows"].extend(rows)
        summary["history"].append(current[0].history)

    run_scan(ctx, run.span, len(plan.points), settings, started, finish, ob.warm_start + ob.steps,
             run.name, "step")  # fmt: skip
    files = []
    if out is not None:
        files = _history_plot(out, summary) + _scan_plots(out, run, plan, summary)
    return RunResult(summary, out, files)


def _scan_plots(out: Path, run: RunState, plan: FlowPlan, summary: dict) -> list[Path]:
    """The run's ``plot`` statements (or its measures) against the first scanned variable (or
    a plot's ``x``): one figure each, where the scan has two points or more."""
    if not run.scans and not any(p.x for p in run.plots):
        return []
    title = f"{summary['model']} ({run.name})"
    default = run.scans[0].name if run.scans else None
    plots = run.plots or (None,)
    scanned = {s.name for s in run.scans}
    rows = [{k: {"mean": v} if isinstance(v, int | float) and k not in scanned else v
             for k, v in r.items()} for r in summary["rows"]]  # plain numbers as points  # fmt: skip
    files = []
    for i, p in enumerate(plots):
        x = (p.x if p is not None else None) or default
        names = list(p.observables) if p is not None and p.observables else plan.measures
        f = plot_rows(out, rows, x, names, list(p.marks) if p is not None else None,
                      f"plot{i if i else ''}.png", title, p.logx if p else False,
                      p.logy if p else False)  # fmt: skip
        if f:
            files.append(f)
    return files


def _history_plot(out: Path, summary: dict) -> list[Path]:
    """Training history per point: F_q - F_NIS per site (the KL divergence per site, from each
    step's batch, log scale; the forward-KL warm start dotted as -<log q>_HMC / V - F_NIS) and
    the batch's effective sample size per sample."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, bx) = plt.subplots(2, 1, figsize=(6, 6), sharex=True)
    for k, hist in enumerate(summary["history"]):
        if not hist or k >= len(summary["rows"]):
            continue
        f_nis = summary["rows"][k]["free_energy_nis"]["mean"]
        rev = [h for h in hist if h["phase"] == 1]
        fwd = [h for h in hist if h["phase"] == 0]
        if fwd:
            ax.plot([h["step"] for h in fwd], [max(h["loss"] - f_nis, 1e-5) for h in fwd],
                    ls=":", label=f"warm start (point {k})")  # fmt: skip
        if rev:
            steps = [h["step"] for h in rev]
            ax.plot(steps, [max(h["free_energy_q"] - f_nis, 1e-5) for h in rev],
                    label=f"F_q - F_NIS (point {k})")  # fmt: skip
            bx.plot(steps, [h["ess_per_sample"] for h in rev], label=f"point {k}")
    ax.set_yscale("log")
    ax.set_ylabel("KL(q || p) / V  (batch)")
    ax.legend()
    bx.set_xlabel("training step")
    bx.set_ylabel("ESS / N  (batch)")
    bx.set_ylim(0, 1)
    fig.tight_layout()
    path = out / "training.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return [path]


def bind(catalogue: Catalogue) -> None:
    """Attach the flow, the training step and the task to their catalogue entries."""
    catalogue.learners.bind("coupling_flow", build_flow, family=FAMILY)
    catalogue.objectives.bind("reverse_kl", reverse_kl_step, family=FAMILY)
    catalogue.tasks.bind("flow", Task(run_flow), family=FAMILY)


__all__ = ["FlowTraining", "bind", "build_flow", "chain_series", "fold_sign", "run_flow",
           "sign_mixture"]
