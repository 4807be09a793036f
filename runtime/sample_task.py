"""The ``sample`` task: Markov-chain sampling over a scan, measuring observables with errors.

A scan over temperature (T or beta) runs as one batch: chains x temperatures, each chain with
its own beta. A scan over model parameters re-instantiates and re-compiles the model per value.
Rows are written after every compiled point, so an interrupt or a failure loses nothing that
was already measured.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
import torch

from physml_lang.catalogue import Catalogue
from physml_lang.check.model import ModelChecker
from physml_lang.check.units import unit_text
from physml_lang.compiler.derive.measures import MeasuredExpressions
from physml_lang.compiler.lower import domains
from physml_lang.compiler.lower.program import Kernel
from physml_lang.compiler.lower.torch_backend import TORCH
from physml_lang.compiler.models.lattice import LatticeModel
from physml_lang.diagnostics import Diagnostic, PhysmlError, Span
from physml_lang.ir.task import TaskIR
from physml_lang.ir.walk import to_text

from . import outputs, samplers
from .checkpoint import Checkpoint
from .device import check_memory
from .distributed import SINGLE, World
from .driver import RunContext, RunResult, ScanPoint, run_scan
from .observables import (
    FLUCTUATIONS,
    SERIES,
    base_series,
    estimate_fluctuation,
    estimate_mean,
)
from .plans.parameters import numeric_parameters
from .plans.sample import SamplePlan, measured_expressions, plan_sample
from .random import RandomStreams
from .references import axis_label, critical_marks, labelled_marks, reference_curves
from .statistics import between_chain_excess, excess_limit, split_rhat
from .tasks import RunState, Task


def _compile_measures(cm: LatticeModel,
                      measures) -> tuple[MeasuredExpressions, dict[str, Kernel]]:  # fmt: skip
    """The measured expressions of a run lowered to torch kernels (names checked by the plan)."""
    compiler = measured_expressions(cm.derivation, cm.lattice_sum_module, measures)
    kernels = {m.name: compiler.compile(m.expr, m.name, TORCH) for m in measures
               if m.expr is not None}  # fmt: skip
    return compiler, kernels


def run_sample(run: RunState, checker: ModelChecker, program, ctx: RunContext,
               source: str = "") -> RunResult:  # fmt: skip
    """Sample every scan point; each finished point's rows are written at once. The chains of
    a point (all temperatures as one batch) are checkpointed every ``ctx.checkpoint_seconds``
    of work, so that ``--resume`` continues a killed run where it was saved."""
    plan = plan_sample(run, checker, ctx.sets)
    entry, options, tvar, tvalues = plan.entry, plan.options, plan.tvar, plan.tvalues
    betas, others, device = plan.betas, plan.others, ctx.device
    measures = run.measures or []
    summary = ctx.recorder.summary
    summary.update({
        "run": run.name,
        "source": source,
        "model": checker.name,
        "params": {},
        "device": str(device),
        "seed": ctx.seed,
        "sampler": {"name": run.sampler, **options.model_dump()},
        "scan": {s.name: s.values for s in run.scans},
        "rows": [],
        "complete": False,
    })  # fmt: skip
    combos = list(itertools.product(*[s.values for s in others])) or [()]
    _check_memory(run, checker, plan, others, combos, len(measures), device)
    numeric = numeric_parameters(checker, [s.name for s in others], measures)
    compiled: list = []

    world = ctx.world
    # points of a parameter scan go to the ranks whole; one point (a temperature batch), or
    # replicas that exchange, share their chains over the ranks
    spread = len(combos) > 1 and not options.exchange
    traces: dict[str, list] = {}
    current: list[PointChains] = []

    def start(k: int, streams: RandomStreams) -> PointChains:
        point, spans = dict(plan.model_args), dict(plan.model_spans)
        for s, v in zip(others, combos[k]):
            point[s.name], spans[s.name] = v, s.span
        ir = checker.instantiate(point, spans)
        summary["params"] = dict(ir.values)
        if not (compiled and compiled[0].rebind(ir)):  # numeric parameters: tensors rebound
            compiled[:] = [program.compile_ir(ir, numeric=numeric).to(device)]
        cm = compiled[0]
        chains = PointChains(cm, run, entry, options, betas, tvar, tvalues, measures, streams,
                             device, world if not spread else SINGLE)  # fmt: skip
        _note_kernel(run, options, chains.sampler, summary)
        current[:] = [chains]
        return chains

    def finish(k: int, rows: list[dict]) -> None:
        for r in rows:
            for s, v in zip(others, combos[k]):
                r[s.name] = v
            summary["rows"].append(r)
            _warn_unmixed(run, r, tvar, others, summary, options.chains)
        if not (spread and world.size > 1):  # (a point run on another rank keeps its chains)
            for name, series in current[0].traces.items():
                traces.setdefault(name, []).append(series)

    per_point = options.burn_in + max(1, options.sweeps // options.thin) * options.thin
    run_scan(ctx, run.span, len(combos), _settings(run, checker, plan, combos, ctx), start,
             finish, per_point, run.name, spread=spread)  # fmt: skip
    files = _plots(ctx.out, run, summary, measures, tvar, others,
                   compiled[0] if compiled else None) if ctx.out else []
    joined = {n: np.concatenate(v) for n, v in traces.items()
              if sum(len(a) for a in v) == len(summary["rows"])}  # fmt: skip
    return RunResult(summary, ctx.out, files, joined)


def _settings(run: RunState, checker: ModelChecker, plan: SamplePlan, combos: list,
              ctx: RunContext) -> dict[str, Any]:  # fmt: skip
    """What a checkpoint of this run may be resumed with: every input of its numbers."""
    return {"run": run.name, "model": checker.name, "model_args": plan.model_args,
            "points": [list(c) for c in combos], "sampler": plan.options.model_dump(),
            "temperatures": {plan.tvar: plan.tvalues},
            "measures": [m.name + (f" = {to_text(m.expr)}" if m.expr is not None else "")
                         for m in plan.measures],
            "seed": ctx.seed}  # fmt: skip


def _note_kernel(run: RunState, options, sampler, summary: dict) -> None:
    """Record which sweep ran (a generated kernel's backend, or torch and why); a kernel asked
    for by name that could not run is a warning (the torch path makes the same chains)."""
    note = getattr(sampler, "kernel_note", None)
    if note is None or "kernel_used" in summary["sampler"]:
        return
    ran = getattr(sampler, "kernel", None) is not None
    summary["sampler"]["kernel_used"] = note if ran or note.startswith("torch") else f"torch ({note})"
    asked = getattr(options, "kernel", "auto")
    if asked in ("numba", "triton") and not ran:
        where = run.sampler_options.get("kernel", (None, None))[1] or run.sampler_span or run.span
        d = Diagnostic("P703", f"sampler kernel = {asked} could not run: {note}", where,
                       "the torch path ran instead (the same chains, slower); use kernel = auto "
                       "to choose silently", severity="warning")  # fmt: skip
        summary.setdefault("warnings", []).append(d.as_dict())


def _warn_unmixed(run: RunState, row: dict, tvar: str, others, summary: dict, chains: int) -> None:
    """Warn when chains sampled different states: the spread of their mean energies exceeds what
    the binning error admits (a metastable domain wall, or far too short a run)."""
    ratio = row.get("chain_excess", float("nan"))
    if chains < 4 or not ratio > excess_limit(chains):
        return
    at = ", ".join(f"{k} = {row[k]:g}" if isinstance(row[k], float) else f"{k} = {row[k]}"
                   for k in [tvar, *(s.name for s in others)] if k in row)  # fmt: skip
    d = Diagnostic("P702", f"chains disagree at {at}: their mean energies scatter {ratio:.1f}x "
                   f"more than binning the time series admits (split R-hat {row['r_hat']:.3f}); "
                   "the error bars there come from the spread between chains", run.span,
                   "the chains are trapped in different states (metastable domains) or the run "
                   "is shorter than the autocorrelation time: add sweeps or burn_in, "
                   "start = ordered at low T, or use wolff", severity="warning")  # fmt: skip
    summary.setdefault("warnings", []).append(d.as_dict())


# bytes per site and chain of a sweep in float32 (the state, the uniforms, a proposal, the
# energy change and acceptance temporaries), and per site of the geometry's tables
SWEEP_BYTES_PER_SITE = 48
TABLE_BYTES_PER_SITE = 64


def _check_memory(run: RunState, checker: ModelChecker, plan: SamplePlan, others, combos,
                  n_measures: int, device: torch.device) -> None:  # fmt: skip
    """Estimate the largest scan point's memory from the model IR alone (before compiling:
    the geometry of a huge lattice is itself large) and refuse what cannot fit."""
    sizes = []
    for combo in combos[:64]:
        point, spans = dict(plan.model_args), dict(plan.model_spans)
        for s, v in zip(others, combo):
            point[s.name], spans[s.name] = v, s.span
        lat = checker.instantiate(point, spans).lattice
        sizes.append(lat.n_sites if lat is not None else 0)
    n = max(sizes)
    chains = plan.options.chains * len(plan.tvalues)
    n_meas = max(1, plan.options.sweeps // plan.options.thin)
    need = (n * (chains * SWEEP_BYTES_PER_SITE + TABLE_BYTES_PER_SITE)
            + n_meas * chains * 8 * (2 + n_measures))  # fmt: skip
    check_memory(need, device, f"run {run.name} ({chains} chains of {n} sites, {n_meas} "
                 "measurements each)", run.span,
                 "use fewer chains, temperatures or sweeps, or a smaller lattice")  # fmt: skip


class PointChains(ScanPoint):
    """The chains of one scan point: every temperature as one batch of ``chains`` chains each
    (slot ``t * chains + c``: temperature t, chain c). ``step`` runs a burn-in sweep or a
    measured one (resumable: ``tensors``/``restore`` are the checkpoint), ``rows`` gives one
    row per temperature.

    On several processes (``world``) each rank holds a contiguous block of the slots; chain
    streams are keyed by the global slot, and series are gathered in slot order, so the rows
    are those of one process bit for bit. With ``exchange = n`` (parallel tempering) every n
    sweeps the configurations of neighbouring temperatures swap, chain by chain, with
    probability min(1, exp((beta_a - beta_b)(E_a - E_b))); the decisions use the gathered
    energies and a stream shared by every rank, so each rank takes the same ones unasked."""

    def __init__(self, cm, run: RunState, entry, options, betas: list[float], tvar: str,
                 tvalues: list, measures, streams: RandomStreams, device: torch.device,
                 world: World = SINGLE):  # fmt: skip
        self.cm, self.run, self.options, self.betas = cm, run, options, betas
        self.tvar, self.tvalues, self.world = tvar, tvalues, world
        self.measures = measures
        nT, C = len(betas), options.chains
        self.slots = nT * C
        self.local = world.shard(self.slots)
        all_beta = torch.tensor(betas, dtype=cm.dtype, device=device).repeat_interleave(C)
        self.beta = all_beta[self.local]
        streams.first = self.local.start  # chain b of this rank is global slot start + b
        self.exchange_streams = streams.fork(-1)  # the same swap decisions on every rank
        self.sampler = entry.implementation(cm, options, self.beta, streams)
        self.compiler, self.kernels = _compile_measures(cm, measures)
        self.n_meas = max(1, options.sweeps // options.thin)
        B = self.local.stop - self.local.start
        self.E = torch.empty(self.n_meas, B, dtype=torch.float64, device=device)
        self.M = torch.empty_like(self.E)
        self.series = {name: torch.empty_like(self.E) for name in self.kernels}
        self.state = self.sampler.initial_state()
        self.burned = self.measured = 0
        self.total = options.burn_in + self.n_meas * options.thin
        # neighbouring temperatures in beta order: pair i swaps ladder[i] and ladder[i + 1]
        self.ladder = sorted(range(nT), key=lambda t: betas[t])
        self.swaps_tried = torch.zeros(max(nT - 1, 0), dtype=torch.float64, device=device)
        self.swaps_accepted = torch.zeros_like(self.swaps_tried)
        self.traces: dict[str, np.ndarray] = {}

    @property
    def done(self) -> int:
        """Sweeps done (burn-in and measurement)."""
        return self.burned + self.measured * self.options.thin

    def _whole(self, local: torch.Tensor, dim: int = 0) -> torch.Tensor:
        """A per-slot tensor of this rank joined with the other ranks' (global slot order)."""
        return self.world.all_gather(local, self.slots, dim)

    def tensors(self) -> dict[str, torch.Tensor]:
        """The point's checkpoint, whole (every rank's slots): resumable on any number of
        processes."""
        k = self.measured
        out = {f"state/{f}": self._whole(v) for f, v in self.state.items()}
        out.update({"E": self._whole(self.E[:k], 1), "M": self._whole(self.M[:k], 1),
                    "accepted": self._whole(self.sampler.accepted),
                    "proposed": self._whole(self.sampler.proposed),
                    "swaps_tried": self.swaps_tried, "swaps_accepted": self.swaps_accepted})
        out.update({f"series/{n}": self._whole(s[:k], 1) for n, s in self.series.items()})
        return out

    def restore(self, saved: Checkpoint) -> None:
        """Continue from a checkpoint of this point (validated shapes: a mismatch is P602)."""
        t, done = saved.tensors, saved.state["done"]
        burn_in, thin = self.options.burn_in, self.options.thin
        self.burned = min(done, burn_in)
        self.measured = (done - self.burned) // thin
        k, dev, sl = self.measured, self.E.device, self.local
        for name, target in [("E", self.E[:k]), ("M", self.M[:k])] + \
                [(f"series/{n}", s[:k]) for n, s in self.series.items()]:  # fmt: skip
            target.copy_(t[name][:, sl].to(dev))
        self.state = {f: t[f"state/{f}"][sl].to(dev) for f in self.state}
        self.sampler.accepted.copy_(t["accepted"][sl].to(dev))
        self.sampler.proposed.copy_(t["proposed"][sl].to(dev))
        if "swaps_tried" in t:
            self.swaps_tried.copy_(t["swaps_tried"].to(dev))
            self.swaps_accepted.copy_(t["swaps_accepted"].to(dev))
        if self.options.exchange:
            self.exchange_streams.draws = self.done // self.options.exchange

    def _sweep(self, sweeps: int) -> None:
        """One sweep, the ``sweeps``-th of the point; replicas exchange after every
        ``exchange``-th."""
        self.state = self.sampler.sweep(self.state)
        every = self.options.exchange
        if every and sweeps % every == 0:
            self._exchange(sweeps // every)

    def _exchange(self, n: int) -> None:
        """The ``n``-th exchange (from 1): swap configurations of neighbouring temperatures,
        chain by chain; even pairs of the ladder at odd n, odd pairs at even n."""
        C, dev = self.options.chains, self.beta.device
        n_pairs = len(self.ladder) - 1
        u = self.exchange_streams.uniform((C, n_pairs), torch.float64)
        parity = (n - 1) % 2
        pairs = torch.arange(parity, n_pairs, 2, device=dev)
        if pairs.numel() == 0:
            return
        energy = self._whole(self.cm.energy(self.state).to(torch.float64))
        ladder = torch.tensor(self.ladder, device=dev)
        chain = torch.arange(C, device=dev)[:, None]
        a, b = ladder[pairs] * C + chain, ladder[pairs + 1] * C + chain  # (C, pairs) slots
        betas = torch.tensor(self.betas, dtype=torch.float64, device=dev)
        log_ratio = (betas[ladder[pairs]] - betas[ladder[pairs + 1]]) * (energy[a] - energy[b])
        accept = u[:, pairs] < torch.exp(log_ratio.clamp(max=0.0))
        self.swaps_tried[pairs] += C
        self.swaps_accepted[pairs] += accept.sum(0).to(torch.float64)
        source = torch.arange(self.slots, device=dev)
        source[a[accept]], source[b[accept]] = b[accept], a[accept]
        mine = source[self.local]
        self.state = {f: self._whole(v)[mine] for f, v in self.state.items()}

    def step(self) -> None:
        """One sweep of burn-in, or ``thin`` sweeps and a measurement."""
        opts, sampler, cm = self.options, self.sampler, self.cm
        if self.burned < opts.burn_in:
            sampler.track_acceptance = False  # burn-in at the bare update cost
            self._sweep(self.done + 1)
            self.burned += 1
            return
        sampler.track_acceptance = True
        k = self.measured
        for i in range(opts.thin):
            self._sweep(self.done + i + 1)
        e, m = cm.energy(self.state), cm.magnetization(self.state)
        self.E[k], self.M[k] = e, m
        if self.kernels:
            env = self.compiler.env(self.state, e, m, self.beta)
            for name, kern in self.kernels.items():
                value = torch.as_tensor(kern(env), device=e.device)
                if value.is_complex():
                    raise PhysmlError(Diagnostic(
                        "P700", f"observable '{name}' came out complex", self._span(name),
                        "measured observables are real: take abs(...), re(...) or im(...)"))  # fmt: skip
                self.series[name][k] = value.to(torch.float64)
        self.measured = k + 1
        if k % 64 == 63 or k == self.n_meas - 1:
            self._check_finite(k)

    def _check_finite(self, k: int) -> None:
        if not bool(torch.isfinite(self.E[: k + 1]).all()):
            bad = int((~torch.isfinite(self.E[: k + 1])).nonzero()[0, 0])
            raise PhysmlError(Diagnostic(
                "P700", f"the energy became non-finite at measurement {bad} of run "
                f"{self.run.name}", self.run.span, "check couplings and temperatures for "
                "overflow; results measured before this point were kept"))  # fmt: skip
        for name, series in self.series.items():
            finite = torch.isfinite(series[: k + 1])
            if not bool(finite.all()):
                bad = int((~finite).nonzero()[0, 0])
                raise PhysmlError(Diagnostic(
                    "P700", f"observable '{name}' is not finite (NaN or infinite) at measurement "
                    f"{bad}, while the energy is", self._span(name),
                    "e.g. sqrt or log of a negative number, or a division by zero; rows of "
                    "earlier scan points were kept"))  # fmt: skip

    def _span(self, name: str):
        """Where observable ``name`` is measured (the run, if no measure names it)."""
        return next((m.span for m in self.measures if m.name == name), self.run.span)

    def rows(self) -> list[dict]:
        """One row per temperature, from every rank's chains in global slot order (the
        sampled series also kept in ``traces``: (temperatures, chains, draws))."""
        nT, C = len(self.betas), self.options.chains
        E, M = self._whole(self.E, 1), self._whole(self.M, 1)
        series = {n: self._whole(s, 1) for n, s in self.series.items()}
        acceptance = self._whole(self.sampler.acceptance())
        rows = _rows(self.cm, E, M, series, self.betas, self.tvar, self.tvalues,
                     self.measures, acceptance, nT, C)  # fmt: skip
        if self.options.exchange:
            rate = (self.swaps_accepted / self.swaps_tried.clamp(min=1)).cpu().tolist()
            for i, t in enumerate(self.ladder[:-1]):  # pair (t, next colder temperature)
                rows[t]["exchange_acceptance"] = round(rate[i], 6)
        by_chain = {"energy": E, "magnetization": M, **series}
        self.traces = {n: v.cpu().numpy().T.reshape(nT, C, -1) for n, v in by_chain.items()}
        return rows



def _rows(cm, E, M, series, betas, tvar, tvalues, measures, acceptance, nT, C) -> list[dict]:
    N = cm.lattice.n_sites
    E, M = E.cpu().numpy(), M.cpu().numpy()
    series = {n: s.cpu().numpy() for n, s in series.items()}
    rows = []
    for t in range(nT):
        sl = slice(t * C, (t + 1) * C)
        base = base_series(E[:, sl], M[:, sl])
        row: dict[str, Any] = {tvar: tvalues[t]}
        for m in measures:
            if m.name in series:
                row[m.name] = estimate_mean(series[m.name][:, sl]).as_dict()
            elif m.name in FLUCTUATIONS:
                row[m.name] = estimate_fluctuation(m.name, base, betas[t], N).as_dict()
            elif m.name == "energy":
                row[m.name] = estimate_mean(base["E"]).as_dict()
            elif m.name == "magnetization":
                row[m.name] = estimate_mean(base["M"]).as_dict()
        if not measures:
            row["energy"] = estimate_mean(base["E"]).as_dict()
        row["acceptance"] = round(float(acceptance[sl].mean()), 6)
        row["r_hat"] = round(split_rhat(E[:, sl]), 6)
        row["chain_excess"] = round(between_chain_excess(E[:, sl]), 6)
        rows.append(row)
    return rows


def _plots(out: Path, run: RunState, summary: dict, measures, tvar: str, others,
           cm=None) -> list[Path]:  # fmt: skip
    """plot.png, plot1.png, ...: the run's plot statements (or every measure against the scanned
    variable), axes labelled with units; given the compiled model ``cm``, its exact curves and
    named critical points where they are known (runtime/references)."""
    files = []
    rows = summary["rows"]
    title = f"{summary['model']} ({run.name})"
    default_x = tvar if len({r[tvar] for r in rows}) > 1 else (others[0].name if others else tvar)
    units = {q.name: unit_text(q.unit) for q in cm.ir.params if q.unit is not None} if cm else {}
    energy_unit = "J" if "J" in summary.get("params", {}) and "J" not in units else None
    exprs = {m.name: to_text(m.expr) if m.expr is not None else None for m in measures}
    # the compiled model is the last point's: its curves hold for every row only without
    # another scanned variable
    single = cm is not None and all(len(s.values) == 1 for s in others)
    known = critical_marks(cm, tvar) if single else []
    plots = [(p.x or default_x, list(p.observables) or [m.name for m in measures], p.marks,
              p.logx, p.logy) for p in run.plots] or \
        [(default_x, [m.name for m in measures], (), False, False)]  # fmt: skip
    for i, (x, names, marks, logx, logy) in enumerate(plots):
        xs = [r[x] for r in rows if isinstance(r.get(x), int | float)]
        on_axis = known if x == tvar and xs else []
        marked = labelled_marks(marks or (), on_axis, x)
        refs = reference_curves(cm, tvar, names, (min(xs), max(xs)), exprs) if on_axis else []
        if on_axis and not marks:
            marked = [k for k in on_axis if min(xs) <= k.x <= max(xs)]
        labels = {n: axis_label(n, exprs.get(n), energy_unit, units.get(n)) for n in [x, *names]}
        f = outputs.plot_rows(out, rows, x, names, marked, f"plot{i if i else ''}.png", title,
                              logx, logy, references=refs, labels=labels)  # fmt: skip
        if f:
            files.append(f)
    return files


__all__ = ["run_sample", "RunResult", "Span", "np"]


def _run_task(task: TaskIR, program, ctx: RunContext) -> RunResult:
    return run_sample(RunState.of(task), program.checker_for(task), program, ctx,
                      source=program.name)  # fmt: skip


def bind(catalogue: Catalogue) -> None:
    """Attach this capability's implementations to its catalogue entries (top layer only)."""
    catalogue.tasks.bind("sample", Task(_run_task))
    domains.bind(catalogue)
    samplers.bind(catalogue)
    for name, fluctuation in FLUCTUATIONS.items():
        catalogue.observables.bind(name, fluctuation, family="lattice")
    for name, series in SERIES.items():
        catalogue.observables.bind(name, series, family="lattice")
