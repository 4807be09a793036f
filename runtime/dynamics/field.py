"""The ``sample`` task of continuous fields: HMC / MALA / ULA of exp(-S/T) over a scan.

A scan over temperature (T or beta; T = 1, the action as written, when the run gives none) runs
as one batch: chains x temperatures, each chain sampling exp(-beta S) with its own beta (the
sampler sees the action beta S and its force beta dS/dx). A scan over model parameters
re-instantiates and re-compiles the model per value. The driver's ``run_scan`` runs the points:
each finished point's rows are written at once (``ctx.recorder``), the chains of a point
(:class:`FieldChains`, a ``ScanPoint``) are checkpointed every ``ctx.checkpoint_seconds`` of work
(``runtime/checkpoint.py``), and ``--resume`` continues a killed run with the numbers of an
uninterrupted one. Every random number (starting fields, momenta, noise, accept draws) comes
from the point's random streams, chain on the leading axis.

Per recorded state (series of shape (n_meas, temperatures x chains)): S / V, the magnetisation
m and its powers, the twist derivatives of S (helicity modulus) when measured, and every
measured expression (:class:`~physml_lang.compiler.derive.field.FieldMeasures`: sums over sites
and bonds of the field, ``action``, ``magnetization``, T, beta, parameters). Means get binning
errors, functions of averages (specific heat, susceptibility, Binder cumulant, helicity
modulus) jackknife errors over the same time blocks (``runtime/statistics.py``); the estimates
are in ``measures.py``, the figures in ``plots.py``.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import torch

from physml_lang.catalogue import CATALOGUE
from physml_lang.compiler.derive.field import field_measures
from physml_lang.compiler.lower.program import Kernel
from physml_lang.compiler.lower.torch_backend import TORCH
from physml_lang.compiler.models.field import FieldModel
from physml_lang.diagnostics import Diagnostic, PhysmlError
from physml_lang.ir.task import TaskIR
from physml_lang.ir.walk import to_text
from physml_lang.runtime.plans.dynamics import (
    FIELD_FUNCTIONS,
    FieldPlan,
    model_point,
    plan_field,
)
from physml_lang.runtime.plans.parameters import numeric_parameters
from physml_lang.runtime.plans.sample import THERMAL

from ..checkpoint import Checkpoint
from ..device import check_memory
from ..divergences import stuck_chain_error
from ..driver import RunContext, RunResult, ScanPoint, run_scan
from ..random import RandomStreams
from ..statistics import between_chain_excess, binning_analysis, split_rhat
from ..tasks import RunState
from .measures import independent_mean, unmixed
from .plots import field_plots
from .samplers import initial_fields, recorded

Tensor = torch.Tensor
F64 = torch.float64
BASE = ("action_density", "magnetization", "abs_magnetization", "m2", "m4")


def run_field(task: TaskIR, program, ctx: RunContext) -> RunResult:
    """Sample every scan point; each finished point's rows are written at once."""
    run = RunState.of(task)
    # scanned real couplings are lowered as inputs: each point rebinds them (the first point is
    # compiled by the plan, which checks the run against it)
    numeric = numeric_parameters(program.checker_for(task), [s.name for s in run.scans],
                                 run.measures or [])  # fmt: skip
    plan = plan_field(run, program, ctx.sets,
                      lambda ir: program.compile_ir(ir, numeric=numeric))  # fmt: skip
    o, device = plan.options, ctx.device
    first: FieldModel = plan.model
    summary = ctx.recorder.summary
    summary.update({
        "run": run.name, "source": program.name, "model": first.ir.name,
        "params": dict(first.model.params), "device": str(device), "seed": ctx.seed,
        "task": "field_sample", "sampler": {"name": run.sampler, **o.model_dump()},
        "scan": {s.name: s.values for s in run.scans},
        "temperature": {plan.tvar: plan.tvalues} if plan.thermal else None,
        "field": {"name": first.field, "domain": first.domain, "lattice": list(first.shape)},
        "rows": [], "complete": False})  # fmt: skip
    combos = list(itertools.product(*[s.values for s in plan.others])) or [()]
    _check_memory(run, plan, combos, device)

    compiled: list = [plan.model]

    def start(k: int, streams: RandomStreams) -> FieldChains:
        extra = {s.name: (v, s.span) for s, v in zip(plan.others, combos[k])}
        ir = model_point(run, plan.checker, extra, THERMAL)
        if k > 0 and not compiled[0].rebind(ir):  # numeric parameters: values rebound
            compiled[0] = program.compile_ir(ir, numeric=numeric)
        cm = compiled[0]
        cm.to(device)
        summary["params"] = dict(cm.model.params)
        point = {s.name: v for s, v in zip(plan.others, combos[k])}
        return FieldChains(cm, plan, run, streams, point)

    def finish(k: int, rows: list[dict]) -> None:
        summary["rows"].extend(rows)
        for w in unmixed(rows, plan, run):
            summary.setdefault("warnings", []).append(w)

    per_point = o.burn_in + recorded(o) * o.thin
    run_scan(ctx, run.span, len(combos), _settings(run, plan, combos, ctx), start, finish,
             per_point, run.name)  # fmt: skip
    files = field_plots(ctx.out, run, plan, summary, len(first.shape)) if ctx.out else []
    return RunResult(summary, ctx.out, files)


# bytes per site and chain of an update in float64: the field, HMC's momenta and their updated
# copies, the force and the action's stencil temporaries, and the random numbers' words and
# uniforms (a normal draw goes through int64 counters and two uniforms). Measured: 16 chains
# of 256^2 sites, peak 219 MiB (HMC), 178 MiB (MALA), i.e. ~26 copies; counted: 40
UPDATE_BYTES_PER_SITE = 320


def field_memory(plan: FieldPlan, sites: int, n_measures: int) -> int:
    """Bytes of one point of a field run on ``sites`` sites: chains x temperatures fields with
    an update's temporaries, and the recorded series (measurements x chains per base
    observable, twist derivatives and measured expression)."""
    o = plan.options
    series = len(BASE) + 4 * len(plan.model.shape) + n_measures
    return o.chains * len(plan.betas) * (sites * UPDATE_BYTES_PER_SITE + recorded(o) * series * 8)


def _check_memory(run: RunState, plan: FieldPlan, combos: list, device: torch.device) -> None:
    """Refuse, before any field is allocated, a run whose largest point cannot fit on
    ``device`` (sizes read from the points' IR, nothing compiled)."""
    sites = 0
    for combo in combos[:64]:
        extra = {s.name: (v, s.span) for s, v in zip(plan.others, combo)}
        lat = model_point(run, plan.checker, extra, THERMAL).lattice
        sites = max(sites, lat.n_sites if lat is not None else 0)
    o = plan.options
    check_memory(field_memory(plan, sites, len(plan.measures)), device,
                 f"run {run.name} ({o.chains * len(plan.betas)} chains of {sites} sites, "
                 f"{recorded(o)} measurements each)", run.span,
                 "use fewer chains, temperatures or sweeps (or a larger thin), or a smaller "
                 "lattice")  # fmt: skip


def _settings(run: RunState, plan: FieldPlan, combos: list, ctx: RunContext) -> dict[str, Any]:
    """What a checkpoint of this run may be resumed with: every input of its numbers."""
    args = {k: v for k, (v, _) in run.model_args.items()}
    args.update({k: v for k, (v, _) in run.lets.items()})
    return {"run": run.name, "model": plan.checker.name, "model_args": args,
            "points": [list(c) for c in combos], "sampler": plan.options.model_dump(),
            "temperatures": {plan.tvar: plan.tvalues},
            "measures": [m.name + (f" = {to_text(m.expr)}" if m.expr is not None else "")
                         for m in plan.measures],
            "seed": ctx.seed}  # fmt: skip


class FieldChains(ScanPoint):
    """The chains of one scan point: every temperature as one batch of ``chains`` chains
    (fields (temperatures x chains, *lattice)), chain b drawing from stream b of the point's
    ``streams``. ``step`` runs one burn-in update, or ``thin`` updates and a measurement
    (resumable: ``tensors``/``restore`` are the checkpoint, the driver keeps the streams' draw
    counter); ``rows`` gives one row per temperature."""

    def __init__(self, cm: FieldModel, plan: FieldPlan, run: RunState, streams: RandomStreams,
                 point: dict[str, Any] | None = None):  # fmt: skip
        o = plan.options
        self.cm, self.plan, self.run, self.options = cm, plan, run, o
        self.point = point or {}
        self.nT, self.C = len(plan.betas), o.chains
        n, device = self.nT * self.C, streams.device
        self.V = float(np.prod(cm.shape))
        self.beta = torch.tensor(plan.betas, dtype=F64, device=device).repeat_interleave(self.C)
        bcast = self.beta.reshape(-1, *([1] * len(cm.shape)))
        self.kernel = CATALOGUE.samplers.implementation(plan.sampler, "field")(o).kernel(
            lambda x: self.beta * cm.action(x), lambda x: bcast * cm.grad(x), streams)
        self.helicity = next((m for m in plan.measures if m.expr is None
                              and m.name == "helicity_modulus"), None)  # fmt: skip
        self.compiler, self.kernels = _compile_measures(cm, plan)
        self.n_meas = recorded(o)
        names = list(BASE)
        if self.helicity is not None:
            names += [f"twist{k}_{mu}" for k in (1, 2) for mu in range(len(cm.shape))]
        self.series = {name: torch.empty(self.n_meas, n, dtype=F64, device=device)
                       for name in names + [f"expr/{m}" for m in self.kernels]}  # fmt: skip
        self.x = initial_fields((n, *cm.shape), cm.domain, streams, o.start)
        self.kernel.start(self.x)
        self.burned = self.measured = 0
        self.total = o.burn_in + self.n_meas * o.thin

    @property
    def done(self) -> int:
        """Updates done (burn-in and measurement)."""
        return self.burned + self.measured * self.options.thin

    def tensors(self) -> dict[str, Tensor]:
        k = self.measured
        out = {"x": self.x}
        out.update({f"kernel/{n}": v for n, v in self.kernel.tensors().items()})
        out.update({f"series/{n}": s[:k] for n, s in self.series.items()})
        return out

    def restore(self, saved: Checkpoint) -> None:
        """Continue from a checkpoint of this point (validated shapes: a mismatch is P602)."""
        t, done = saved.tensors, saved.state["done"]
        self.burned = min(done, self.options.burn_in)
        self.measured = (done - self.burned) // self.options.thin
        k, dev = self.measured, self.x.device
        for name, target in self.series.items():
            target[:k].copy_(t[f"series/{name}"].to(dev))
        self.x = t["x"].to(dev)
        self.kernel.restore(self.x, {n[7:]: v for n, v in t.items() if n.startswith("kernel/")})
        self.kernel.trajectories = done  # updates are counted from the point's start

    def step(self) -> None:
        """One burn-in update (not tracked: the acceptance counts measured updates only), or
        ``thin`` updates and a measurement (a finiteness check every 64 and at the last)."""
        o, kernel = self.options, self.kernel
        if self.burned < o.burn_in:
            kernel.track = False
            self.x = kernel.step(self.x)
            self.burned += 1
            if self.burned % 64 == 0 or self.burned == o.burn_in:
                self._check_updates()
            return
        kernel.track = True
        for _ in range(o.thin):
            self.x = kernel.step(self.x)
        k = self.measured
        self._measure(k)
        self.measured = k + 1
        if k % 64 == 63 or k == self.n_meas - 1:
            self._check_updates()
            self._check_finite(k)

    def _measure(self, k: int) -> None:
        """Record the series of the current fields at measurement k."""
        cm, x, s = self.cm, self.x, self.series
        with torch.no_grad():
            S = cm.action(x)
            flat = x.reshape(x.shape[0], -1)
            if cm.domain == "angle":
                m = torch.sqrt(torch.cos(flat).mean(-1) ** 2 + torch.sin(flat).mean(-1) ** 2)
                signed = m
            else:
                signed = flat.mean(-1)
                m = signed.abs()
            s["action_density"][k] = S / self.V
            s["magnetization"][k], s["abs_magnetization"][k] = signed, m
            s["m2"][k], s["m4"][k] = m * m, m**4
            if self.helicity is not None:
                d1, d2 = cm.twist(x, self.helicity.span)
                for mu in range(d1.shape[1]):
                    s[f"twist1_{mu}"][k], s[f"twist2_{mu}"][k] = d1[:, mu], d2[:, mu]
            if self.kernels:
                env = self.compiler.env({cm.field: x}, S, cm.magnetization(x), self.beta)
                for name, kern in self.kernels.items():
                    s[f"expr/{name}"][k] = torch.as_tensor(kern(env), dtype=F64,
                                                           device=x.device)  # fmt: skip

    def _at(self) -> str:
        """The point's scan values for a message (empty when the run scans nothing)."""
        values = ", ".join(f"{k} = {v:g}" if isinstance(v, float) else f"{k} = {v}"
                           for k, v in self.point.items())  # fmt: skip
        return f" at {values}" if values else ""

    def _check_updates(self) -> None:
        """A located P700 once most updates of a chain had a non-finite energy (HMC: H of a
        trajectory; MALA: the acceptance ratio): the action is unbounded below or the step
        far too large. Each such proposal is rejected, which keeps the chain exact; a chain
        stuck behind them samples nothing."""
        stuck = self.kernel.divergence()
        if stuck is None:
            return
        what = "H = S + p^2 / 2 of HMC trajectories" if self.plan.sampler == "hmc" else (
            "the acceptance ratio of proposals")  # fmt: skip
        span = self.run.sampler_options.get("step_size", (None, self.run.span))[1]
        raise stuck_chain_error(
            stuck, what, self.options.burn_in, f"run {self.run.name}{self._at()}",
            span or self.run.span, "the action may be unbounded below (e.g. a negative quartic "
            "coupling) or step_size too large: check the couplings' signs, reduce step_size")

    def _check_finite(self, k: int) -> None:
        a = self.series["action_density"][: k + 1]
        if not bool(torch.isfinite(a).all()):
            bad = int((~torch.isfinite(a)).nonzero()[0, 0])
            raise PhysmlError(Diagnostic(
                "P700", f"the action became non-finite at measurement {bad} of run "
                f"{self.run.name}{self._at()}", self.run.span, "reduce step_size (HMC, "
                "Langevin) or check the action's couplings; results measured before this point "
                "were kept"))  # fmt: skip

    def rows(self) -> list[dict]:
        """One row per temperature: the scan values, acceptance, every measure, diagnostics."""
        plan, C = self.plan, self.C
        series = {n: v.cpu().numpy() for n, v in self.series.items()}
        acc = self.kernel.acceptance().cpu().numpy()
        rows = []
        for t in range(self.nT):
            sl = slice(t * C, (t + 1) * C)
            cut = {n: v[:, sl] for n, v in series.items()}
            row: dict[str, Any] = {plan.tvar: plan.tvalues[t]} if plan.thermal else {}
            row.update(self.point)
            row["acceptance"] = independent_mean(acc[sl])
            for m in plan.measures:
                if m.expr is not None:
                    row[m.name] = binning_analysis(cut[f"expr/{m.name}"]).as_dict()
                else:
                    estimate = CATALOGUE.observables.implementation(m.name, "field")
                    row[m.name] = estimate(cut, self.V, plan.betas[t]).as_dict()
            row.update(self.kernel.info(sl))
            row["r_hat"] = round(split_rhat(cut["action_density"]), 6)
            row["chain_excess"] = round(between_chain_excess(cut["action_density"]), 6)
            rows.append(row)
        return rows


def _compile_measures(cm: FieldModel, plan: FieldPlan):
    """The measured expressions of a run lowered to torch kernels at this point's model."""
    compiler = field_measures(cm.derived, cm.lattice_sum_module, cm.model.params, FIELD_FUNCTIONS)
    kernels: dict[str, Kernel] = {m.name: compiler.compile(m.expr, m.name, TORCH)
                                  for m in plan.measures if m.expr is not None}  # fmt: skip
    for module in compiler.modules.values():
        module.to(cm.device)
    return compiler, kernels


__all__ = ["FieldChains", "run_field"]
