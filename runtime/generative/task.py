"""The ``van`` task: train an autoregressive learner q of a lattice model's Boltzmann distribution
by the variational free energy, then estimate without bias.

Each scan point trains its own network (a :class:`VANTraining` of the driver's ``run_scan``:
checkpointed, resumable), then draws ``samples`` fresh configurations and reports

- F_q = <E + T log q>_q per site: a variational upper bound of F, with its standard error;
- F_NIS = -T log <exp(-beta E) / q>_q per site (neural importance sampling) with a delta-method
  error, the effective sample size per sample and var(log w);
- <E>/N reweighted, and the acceptance and <E>/N of an independence-Metropolis chain (neural
  MCMC) with q as its proposal (binned error);
- with ``reference exact``: the exact F per site (enumeration of small systems, else Kaufman's
  formula for the uniform nearest-neighbour Ising model on a periodic square lattice);
- with ``sampler nmcmc(...)``: each ``measure``d observable with its binned error from ``chains``
  independent independence-Metropolis chains, each proposing fresh samples of q, and their
  acceptance and split R-hat of the energy.

A learner respecting translation / point_group is the group average q_G(s) = mean_g q(g s)
(with the flip when it respects spin_flip too): exact, normalised and invariant. Its training
gradient averages over the whole group, or over ``symmetry_draws`` random elements a sample
(cheaper, biased); F_q, NIS and NMCMC always use the exact q_G.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from physml_lang.catalogue import CATALOGUE, Catalogue
from physml_lang.catalogue.generative import FAMILY
from physml_lang.compiler.lower.torch_backend import TORCH
from physml_lang.diagnostics import Diagnostic, PhysmlError
from physml_lang.ir.task import TaskIR

from ..checkpoint import Checkpoint, restore_training, training_tensors
from ..device import check_memory
from ..distributed import SINGLE, World
from ..driver import RunContext, RunResult, ScanPoint, run_scan
from ..learners.parallel import drawing, record_digests
from ..observables import FLUCTUATIONS, base_series, estimate_fluctuation, estimate_mean
from ..plans.generative import MAX_ENUMERATION, VANPlan, VANPoint, plan_van
from ..plans.sample import measured_expressions
from ..random import RandomStreams
from ..references.labels import axis_label
from ..statistics import binning_analysis, split_rhat
from ..tasks import RunState, Task
from .estimates import importance_estimate, nmcmc, nmcmc_chains, reweighted_mean
from .kaufman import ising2d_torus_free_energy
from .made import MADE
from .pixelcnn import PixelCNN
from .rnn import RecurrentAR
from .symmetry import FlipSymmetrised, GroupSymmetrised, value_flip
from .van import anneal_beta, van_step

ESTIMATE_CHUNK = 50_000  # at most this many samples at a time for the final estimates
HISTORY_POINTS = 200  # training history: about this many rows per point


class VANTraining(ScanPoint):
    """One scan point: the network, its optimiser, the training history; ``step`` runs one
    training step (``done`` counts them); ``rows`` makes the final estimates.

    On several processes (``world``) each rank draws its block ``world.shard(batch)`` of
    every training batch (streams keyed by the global sample index), the gradients are summed
    over the ranks (:func:`van_step`), and the final samples are drawn in the chunks of one
    process, each chunk sharded and its per-sample values gathered in global order."""

    def __init__(self, plan: VANPlan, point: VANPoint, streams: RandomStreams,
                 device: torch.device, world: World = SINGLE,
                 summary: dict | None = None) -> None:  # fmt: skip
        self.plan, self.point, self.streams = plan, point, streams
        self.world, self.summary = world, summary
        self.local = world.shard(plan.objective.batch)
        lo, ob = plan.learner_options, plan.objective
        self.cm = point.model
        dtype = torch.float64 if lo.dtype == "float64" else torch.float32
        self.dtype = dtype
        build = CATALOGUE.learners.lookup(plan.learner.call.name, FAMILY).implementation
        base = build(point, lo, dtype=dtype, device=device,
                     generator=streams.fork(0).host_generator())  # fmt: skip
        flip = value_flip(point.q)
        if point.perms is not None:
            perms = torch.as_tensor(point.perms, dtype=torch.int64, device="cpu")
            self.net = GroupSymmetrised(base, perms, flip if plan.flip_symmetric else None)
        else:
            self.net = FlipSymmetrised(base, flip) if plan.flip_symmetric else base
        self.symmetrised = plan.flip_symmetric or point.perms is not None
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=ob.lr)
        self.train_step = CATALOGUE.objectives.lookup("free_energy", FAMILY).implementation
        dom = self.cm.model.fields[point.field].domain
        self.domain_values = torch.tensor(dom.values(), dtype=self.cm.dtype, device=device)
        self.shape = tuple(self.cm.lattice.shape)
        self.total = ob.steps
        self.done = 0
        self.history: list[dict] = []
        self.every = max(1, ob.steps // HISTORY_POINTS)
        self.train_streams = streams.fork(1)
        self.train_streams.first = self.local.start  # sample b of this rank: global start + b
        if point.perms is not None:
            self._check_invariance(streams.fork(4), device)

    # ---------------------------------------------------------------- the energy
    def energy(self, s: torch.Tensor) -> torch.Tensor:
        """E of configurations given as value indices (B, N) -> (B,) float64."""
        x = self.domain_values[s].reshape(s.shape[0], *self.shape)
        return self.cm.energy({self.point.field: x}).double()

    def _check_invariance(self, streams: RandomStreams, device: torch.device) -> None:
        """E(g s) = E(s) for up to 32 random configurations and every element g of the averaged
        group (a located P500 otherwise): q_G approaches p only if p is invariant."""
        net, n = self.net, self.point.n_sites
        m = max(2, min(32, (1 << 20) // (net.order * n)))  # configurations: ~1M sites in all
        s = streams.integers(0, self.point.q, (m, n)).to(device)
        g = torch.arange(net.order, device=device).expand(m, -1)
        images = net.act(s, g)  # (m, G, N)
        e = self.energy(images.reshape(-1, n)).reshape(m, -1)
        scale = 1e-9 * (1.0 + e.abs().max())
        bad = ((e - e[:, :1]).abs() > scale).any(0)
        if bool(bad.any()):
            lo = self.plan.learner
            name = next(s for s in lo.respecting if s in ("translation", "point_group"))
            raise PhysmlError(Diagnostic(
                "P505", f"learner {lo.name} respects {', '.join(self.plan.group)}, but the "
                "model's energy is not invariant under it", lo.respecting_spans[
                    lo.respecting.index(name)],
                "drop the symmetry the energy does not have"))  # fmt: skip

    def draw(self, n: int, streams: RandomStreams) -> tuple[torch.Tensor, torch.Tensor | None]:
        u = streams.uniform((n, self.point.n_sites), torch.float64).to(self.dtype)
        u_flip = streams.uniform((n,), torch.float64).to(self.dtype) \
            if self.symmetrised else None  # fmt: skip
        return u, u_flip

    # ---------------------------------------------------------------- training
    def step(self) -> None:
        ob = self.plan.objective
        beta = anneal_beta(ob.beta, ob.anneal, self.done)
        b = self.local.stop - self.local.start
        u, u_flip = self.draw(b, self.train_streams)
        surrogate = None
        if ob.symmetry_draws and self.point.perms is not None:  # stochastic symmetrisation
            u_g = self.train_streams.uniform((b, ob.symmetry_draws), torch.float64)
            surrogate = lambda s: self.net.log_prob_draws(s, u_g)  # noqa: E731
        parallel = {"world": self.world, "batch": ob.batch} if self.world.size > 1 else {}
        r = self.train_step(self.net, self.energy, beta, u, self.optimizer, self.point.n_sites,
                     ob.clip or None, u_flip, surrogate, **parallel)  # fmt: skip
        if not (math.isfinite(r.free_energy) and math.isfinite(r.loss)):
            raise PhysmlError(Diagnostic(
                "P704", f"training diverged at step {self.done + 1}: the free energy became "
                "non-finite", self.plan.objective_span, "lower lr, or clip gradients harder "
                "(clip = 0.5); rows of earlier scan points were kept"))  # fmt: skip
        self.done += 1
        if self.done % self.every == 0 or self.done == self.total:
            self.history.append({"step": self.done, "beta": beta, "free_energy_q": r.free_energy,
                                 "free_energy_q_err": r.free_energy_err, "energy": r.energy,
                                 "entropy": r.entropy})  # fmt: skip

    def postfix(self) -> dict[str, str]:
        if not self.history:
            return {}
        return {"F_q": f"{self.history[-1]['free_energy_q']:.5f}"}

    # ---------------------------------------------------------------- checkpoint
    def tensors(self) -> dict[str, torch.Tensor]:
        out = training_tensors(self.net, self.optimizer)
        keys = ("step", "beta", "free_energy_q", "free_energy_q_err", "energy", "entropy")
        out["history"] = torch.tensor([[h[k] for k in keys] for h in self.history],
                                      dtype=torch.float64, device="cpu").reshape(-1, len(keys))  # fmt: skip
        out["train/draws"] = torch.tensor([self.train_streams.draws], dtype=torch.int64,
                                          device="cpu")  # fmt: skip
        return out

    def restore(self, saved: Checkpoint) -> None:
        t = saved.tensors
        restore_training(self.net, self.optimizer, t)
        keys = ("step", "beta", "free_energy_q", "free_energy_q_err", "energy", "entropy")
        self.history = [dict(zip(keys, (float(x) for x in row))) for row in t["history"].tolist()]
        for h in self.history:
            h["step"] = int(h["step"])
        self.done = saved.state["done"]
        self.train_streams.draws = int(t["train/draws"].reshape(-1)[0])

    # ---------------------------------------------------------------- estimates
    @torch.no_grad()
    def rows(self) -> list[dict]:
        ob, n, world = self.plan.objective, self.point.n_sites, self.world
        if self.summary is not None:
            record_digests(self.summary, self.net.parameters(), world)
        streams = self.streams.fork(2)
        E, logq = [], []
        chunk = estimate_chunk(self.plan, self.point)
        for first in range(0, ob.samples, chunk):
            m = min(chunk, ob.samples - first)
            mine = world.shard(m)  # this rank's block of the chunk (all of it on one process)
            with drawing(streams, mine.start):
                u, u_flip = self.draw(mine.stop - mine.start, streams)
            s = self.net.sample(u, u_flip) if self.symmetrised else self.net.sample(u)
            E.append(world.all_gather(self.energy(s), m))
            logq.append(world.all_gather(self.net.log_prob(s).double(), m))
        E, logq = torch.cat(E), torch.cat(logq)
        if not bool(torch.isfinite(E).all() & torch.isfinite(logq).all()):
            raise PhysmlError(Diagnostic("P704", "the trained network gave non-finite log q "
                                         "or energies", self.plan.objective_span,
                                         "lower lr or use dtype = float64"))  # fmt: skip
        est = importance_estimate(E, logq, ob.beta, n)
        log_w = -ob.beta * E - logq
        e_mean, e_err = reweighted_mean(E / n, log_w)
        chain = nmcmc(log_w, streams.uniform((len(log_w),), torch.float64))
        e_chain = binning_analysis((E[chain.chain] / n).cpu().numpy())
        row = {**self.point.values,
               "free_energy_q": {"mean": est.free_energy_q, "stderr": est.free_energy_q_err},
               "free_energy_nis": {"mean": est.free_energy_nis,
                                   "stderr": est.free_energy_nis_err},
               "energy_per_site": {"mean": e_mean, "stderr": e_err},
               "ess_per_sample": est.ess_per_sample, "var_log_w": est.var_log_w,
               "nmcmc_acceptance": chain.acceptance,
               "nmcmc_energy_per_site": e_chain.as_dict(), "steps": self.done}  # fmt: skip
        if self.plan.reference == "exact":
            row["exact_free_energy"] = exact_free_energy(self, ob.beta)
        if self.plan.nmcmc is not None:
            row.update(self.measure_nmcmc())
        return [row]

    @torch.no_grad()
    def measure_nmcmc(self) -> dict:
        """``sampler nmcmc``: C chains of burn_in + sweeps independence-Metropolis steps, each
        proposing a fresh sample of q; every measured observable of the visited states after
        burn-in with its binned error (per-sample series) or jackknife error (fluctuations)."""
        opts, ob, n = self.plan.nmcmc, self.plan.objective, self.point.n_sites
        streams = self.streams.fork(3)
        C, T = opts.chains, opts.burn_in + opts.sweeps
        cm, measures = self.cm, self.plan.measures
        compiler = measured_expressions(cm.derivation, cm.lattice_sum_module, measures)
        kernels = {m.name: compiler.compile(m.expr, m.name, TORCH) for m in measures
                   if m.expr is not None}  # fmt: skip
        series: dict[str, list[torch.Tensor]] = {k: [] for k in ("log_w", "E", "M", *kernels)}
        chunk, total = estimate_chunk(self.plan, self.point), C * T
        world = self.world
        for first in range(0, total, chunk):  # proposal p = t * C + c: step t of chain c
            m_all = min(chunk, total - first)
            mine = world.shard(m_all)  # this rank's block of the chunk
            m = mine.stop - mine.start
            with drawing(streams, mine.start):
                u, u_flip = self.draw(m, streams)
            s = self.net.sample(u, u_flip) if self.symmetrised else self.net.sample(u)
            state = {self.point.field: self.domain_values[s].reshape(m, *self.shape)}
            e, mag = cm.energy(state), cm.magnetization(state)
            logq = self.net.log_prob(s).double()
            series["log_w"].append(-ob.beta * e.double() - logq)
            series["E"].append(e.double())
            series["M"].append(mag.double())
            if kernels:
                beta = torch.full((m,), ob.beta, dtype=cm.dtype, device=e.device)
                env = compiler.env(state, e, mag, beta)
                for name, kern in kernels.items():
                    value = torch.as_tensor(kern(env), device=e.device)
                    if value.is_complex():
                        raise PhysmlError(Diagnostic(
                            "P700", f"observable '{name}' came out complex", _span(measures, name),
                            "measured observables are real: take abs(...), re(...) or im(...)"))  # fmt: skip
                    series[name].append(value.to(torch.float64).expand(m))
            if world.size > 1:  # every rank's block of the chunk, in global order
                for v in series.values():
                    v[-1] = world.all_gather(v[-1], m_all)
        cat = {k: torch.cat(v).reshape(T, C) for k, v in series.items()}
        at, acceptance = nmcmc_chains(cat.pop("log_w"), streams.uniform((T, C), torch.float64))
        chain = torch.arange(C, device=at.device).expand(T, -1)
        visited = {k: v[at.to(v.device), chain.to(v.device)][opts.burn_in:].cpu().numpy()
                   for k, v in cat.items()}  # (sweeps, C): the states the chains are at
        for name, v in visited.items():
            if not np.isfinite(v).all():
                raise PhysmlError(Diagnostic(
                    "P700", f"observable '{name}' is not finite (NaN or infinite) on a state of "
                    "the neural MCMC chains", _span(measures, name),
                    "e.g. sqrt or log of a negative number, or a division by zero"))  # fmt: skip
        base = base_series(visited["E"], visited["M"])
        out: dict = {}
        for m in measures:
            if m.name in kernels:
                out[m.name] = estimate_mean(visited[m.name]).as_dict()
            elif m.name in FLUCTUATIONS:
                out[m.name] = estimate_fluctuation(m.name, base, ob.beta, n).as_dict()
            elif m.name == "energy":
                out[m.name] = estimate_mean(base["E"]).as_dict()
            elif m.name == "magnetization":
                out[m.name] = estimate_mean(base["M"]).as_dict()
        out["acceptance"] = round(float(acceptance), 6)
        out["r_hat"] = round(split_rhat(visited["E"]), 6)
        return out


def _span(measures, name: str):
    return next((m.span for m in measures if m.name == name), None)


def memory_need(plan: VANPlan) -> int:
    """Bytes a van run needs at its largest point (float64): the network with its gradients and
    Adam's moments, the activations of a batch kept for the backward pass (twice when
    flip-symmetrised, |G| times when averaged over a group of |G| elements, k times with
    symmetry_draws = k), the energies and log q of the final samples, the series of the neural
    MCMC chains."""
    lo, ob, worst = plan.learner_options, plan.objective, 0
    for p in plan.points:
        width = p.n_sites * (1 if p.q == 2 else p.q)
        if plan.learner.call.name == "pixelcnn":
            params = lo.width * lo.width * _taps(lo) * lo.depth + lo.width * (width + p.q)
        elif plan.learner.call.name == "rnn":
            params = 3 * lo.hidden * (width + lo.hidden) * lo.layers + width * p.q * 2 \
                + lo.hidden * p.n_sites * p.q  # fmt: skip
        else:
            params = lo.hidden * (width + lo.hidden * (lo.depth - 1)) + p.n_sites * p.q * lo.hidden
        # a training batch keeps every layer for the backward pass (twice when symmetrised);
        # the estimates hold one chunk of one layer at a time
        acts = ob.batch * _row_bytes(plan, p) * getattr(lo, "depth", 1)
        if p.perms is not None:
            g = plan.group_order(p)
            acts *= min(ob.symmetry_draws, g) if ob.symmetry_draws else g
        else:
            acts *= 2 if plan.flip_symmetric else 1
        acts = max(acts, estimate_chunk(plan, p) * _row_bytes(plan, p) * plan.group_order(p))
        chains = 0
        if plan.nmcmc is not None:
            per = 4 + len(plan.measures)  # log w, E, M, the measures, the chain positions
            chains = 8 * per * plan.nmcmc.chains * (plan.nmcmc.burn_in + plan.nmcmc.sweeps)
        worst = max(worst, 8 * 4 * params + acts + 8 * 4 * ob.samples + chains)
    return worst


def _taps(options) -> int:
    return options.kernel * options.kernel // 2 + 1


def _row_bytes(plan: VANPlan, p: VANPoint) -> int:
    """Bytes of one configuration's activations in one layer (float64)."""
    lo = plan.learner_options
    if plan.learner.call.name == "pixelcnn":  # masked convolutions gather their taps
        return 8 * p.n_sites * lo.width * (_taps(lo) + 2)
    if plan.learner.call.name == "rnn":  # the GRU keeps its gates at every step
        return 8 * (p.n_sites * p.q + 4 * lo.hidden * lo.layers * p.n_sites)
    return 8 * (p.n_sites * p.q + 2 * lo.hidden)


def estimate_chunk(plan: VANPlan, p: VANPoint) -> int:
    """Samples drawn at a time for the final estimates: about 256 MiB of activations (the group
    average evaluates q on |G| images of each)."""
    per = _row_bytes(plan, p) * (plan.group_order(p) if p.perms is not None else 1)
    return max(256, min(ESTIMATE_CHUNK, plan.objective.samples, (1 << 28) // per))


def exact_free_energy(t: VANTraining, beta: float) -> float:
    """F per site: enumeration where q^N is small enough, else Kaufman's formula for the
    uniform nearest-neighbour Ising model on a periodic square lattice (the plan made sure
    that one of the two applies)."""
    n, q = t.point.n_sites, t.point.q
    if q**n <= MAX_ENUMERATION:
        digits = q ** torch.arange(n, device=t.domain_values.device)
        chunks = []
        for first in range(0, q**n, 1 << 18):
            code = torch.arange(first, min(q**n, first + (1 << 18)),
                                device=t.domain_values.device)  # fmt: skip
            s = torch.div(code[:, None], digits, rounding_mode="floor") % q
            chunks.append(-beta * t.energy(s))
        return float(-torch.logsumexp(torch.cat(chunks), 0) / (beta * n))
    L1, L2 = t.cm.lattice.cells
    return ising2d_torus_free_energy(L1, L2, beta, t.point.kaufman)


def run_van(task: TaskIR, program, ctx: RunContext) -> RunResult:
    device, out = ctx.device, ctx.out
    run = RunState.of(task)
    plan = plan_van(run, program, ctx.sets,
                    lambda ir: program.compile_ir(ir, dtype=torch.float64).to(device))  # fmt: skip
    ob = plan.objective
    check_memory(memory_need(plan), device, f"run {run.name}", plan.objective_span,
                 "use fewer samples, a smaller batch or hidden layer, or a smaller lattice")  # fmt: skip
    summary = ctx.recorder.summary
    summary.update({"run": run.name, "source": program.name,
                    "model": program.checker_for(task).name, "params": {},
                    "device": str(device), "seed": ctx.seed,
                    "sampler": {"name": "van", "learner": plan.learner.call.name,
                                "respecting": list(plan.learner.respecting),
                                **plan.learner_options.model_dump(), **ob.model_dump(),
                                **({"nmcmc": plan.nmcmc.model_dump()} if plan.nmcmc else {})},
                    "scan": {s.name: s.values for s in run.scans}, "rows": [], "history": [],
                    "complete": False})  # fmt: skip
    settings = {"task": "van", "learner": plan.learner.call.name,
                "respecting": list(plan.learner.respecting),
                "learner_options": plan.learner_options.model_dump(),
                "objective": ob.model_dump(), "seed": ctx.seed,
                "nmcmc": plan.nmcmc.model_dump() if plan.nmcmc else None,
                "measures": [m.name for m in plan.measures],
                "points": [p.values for p in plan.points],
                "model": {k: v for k, (v, _) in run.model_args.items()}}  # fmt: skip

    def start(k: int, streams: RandomStreams) -> VANTraining:
        point = plan.points[k]
        summary["params"] = dict(point.model.model.params)
        return VANTraining(plan, point, streams, device, ctx.world, summary)

    current: list[VANTraining] = []

    def started(k: int, streams: RandomStreams) -> VANTraining:
        current[:] = [start(k, streams)]
        return current[0]

    def finish(k: int, rows: list[dict]) -> None:
        summary["rows"].extend(rows)
        summary["history"].append(current[0].history)

    run_scan(ctx, run.span, len(plan.points), settings, started, finish, ob.steps, run.name,
             "step")  # fmt: skip
    files = _history_plot(out, summary) if out is not None else []
    return RunResult(summary, out, files)


def _history_plot(out: Path, summary: dict) -> list[Path]:
    """F_q per site against the training step, the final unbiased F_NIS with its error bar,
    and the exact F where known (enumeration, or Kaufman's formula for the Ising torus)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    shown: list[float] = []  # the values the y axis frames: the annealed start is far off
    for k, hist in enumerate(summary["history"]):
        if not hist:
            continue
        steps = [h["step"] for h in hist]
        fq = [h["free_energy_q"] for h in hist]
        ax.plot(steps, fq, label=f"F_q (point {k})")
        shown += fq[len(fq) // 4:]
        row = summary["rows"][k] if k < len(summary["rows"]) else {}
        nis = row.get("free_energy_nis") or {}
        if nis.get("mean") is not None:
            ax.errorbar([steps[-1]], [nis["mean"]], yerr=[nis.get("stderr") or 0.0], fmt="s",
                        capsize=3, ms=4, label=f"F_NIS ± stderr (point {k})")  # fmt: skip
            shown.append(nis["mean"])
        exact = row.get("exact_free_energy")
        if exact is not None:
            ax.axhline(exact, color="k", ls="--", lw=1, label=f"exact F/N = {exact:.6f}")
            shown.append(exact)
    finite = [v for v in shown if v is not None and math.isfinite(v)]
    if finite and max(finite) > min(finite):
        pad = 0.1 * (max(finite) - min(finite))
        ax.set_ylim(min(finite) - pad, max(finite) + pad)
    ax.set_xlabel("training step")
    unit = "J" if "J" in summary.get("params", {}) else None
    ax.set_ylabel(axis_label("free_energy", energy_unit=unit))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = out / "training.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return [path]


def build_made(point: VANPoint, options, **kw) -> MADE:
    """A MADE over the point's sites (any lattice or graph: its flat site order)."""
    return MADE(point.n_sites, point.q, options.hidden, options.depth, **kw)


def build_rnn(point: VANPoint, options, **kw) -> RecurrentAR:
    """A GRU over the point's unit cells (``cells``; a graph's sites are cells of one), or over
    its sites one at a time (``cells = false``)."""
    lat = point.model.lattice
    basis = int(lat.basis) if options.cells and not lat.graph else 1
    return RecurrentAR(point.n_sites // basis, basis, point.q, options.hidden, options.layers,
                       **kw)  # fmt: skip


def build_pixelcnn(point: VANPoint, options, **kw) -> PixelCNN:
    """A PixelCNN over the point's 2D grid of cells (one site each: checked by the plan)."""
    cells = tuple(int(c) for c in point.model.lattice.cells)
    return PixelCNN(cells, point.q, options.width, options.depth, options.kernel, **kw)


def bind(catalogue: Catalogue) -> None:
    """Attach the networks, the training step and the task to their catalogue entries."""
    catalogue.learners.bind("made", build_made, family=FAMILY)
    catalogue.learners.bind("pixelcnn", build_pixelcnn, family=FAMILY)
    catalogue.learners.bind("rnn", build_rnn, family=FAMILY)
    catalogue.objectives.bind("free_energy", van_step, family=FAMILY)
    catalogue.tasks.bind("van", Task(run_van))


__all__ = ["VANTraining", "bind", "exact_free_energy", "run_van"]
