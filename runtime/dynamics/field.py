"""The ``sample`` task of continuous fields: HMC / MALA / ULA of exp(-S/T) over a scan.

A scan over temperature (T or beta; T = 1, the action as written, when the run gives none) runs
as one batch: chains x temperatures, each chain sampling exp(-beta S) with its own beta (the
sampler sees the action beta S and its force beta dS/dx). A scan over model parameters
re-instantiates and re-compiles the model per value. The driver's ``run_scan`` runs the points:
each finished point's rows are written at once (``ctx.recorder``), the chains of a point
(:class:`FieldChains`, a ``ScanPoint``) are checkpointed every ``ctx.checkpoint_seconds`` of work
(``runtime/checkpoint.py``), and ``--resume`` continues a killed run with the numbers of an
uninterrupted one.

Per recorded state (series of shape (n_meas, temperatures x chains)): S / V, the magnetisation
m and its powers, the twist derivatives of S (helicity modulus) when measured, and every
measured expression (:class:`~physml_lang.compiler.derive.field.FieldMeasures`: sums over sites
and bonds of the field, ``action``, ``magnetization``, T, beta, parameters). Means get binning
errors, functions of averages (specific heat, susceptibility, Binder cumulant, helicity
modulus) jackknife errors over the same time blocks (``runtime/statistics.py``).
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path
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
from physml_lang.runtime.plans.sample import THERMAL

from .. import outputs
from ..checkpoint import Checkpoint
from ..driver import RunContext, RunResult, every_seconds, run_scan
from ..random import RandomStreams
from ..statistics import (
    Estimate,
    between_chain_excess,
    binning_analysis,
    excess_limit,
    jackknife,
    split_rhat,
)
from ..tasks import RunState
from .samplers import recorded

Tensor = torch.Tensor
F64 = torch.float64
BASE = ("action_density", "magnetization", "abs_magnetization", "m2", "m4")


def _start(cm: FieldModel, chains: int, generator: torch.Generator, device,
           start: str = "random") -> Tensor:  # fmt: skip
    """Initial fields (chains, *shape): ``random`` uniform angles or standard normal real
    fields; ``ordered`` theta = 0 or phi = 1 (no random numbers drawn)."""
    shape = (chains, *cm.shape)
    if start == "ordered":
        return torch.full(shape, 0.0 if cm.domain == "angle" else 1.0, dtype=F64, device=device)
    if cm.domain == "angle":
        return (2 * torch.rand(shape, generator=generator, dtype=F64, device=device) - 1) * math.pi
    return torch.randn(shape, generator=generator, dtype=F64, device=device)


def _est(x: np.ndarray) -> dict[str, float]:
    """Mean and standard error over independent chains (0 for one)."""
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    se = float(x.std(ddof=1) / math.sqrt(len(x))) if len(x) > 1 else 0.0
    return {"mean": float(x.mean()), "stderr": se}


def run_field(task: TaskIR, program, ctx: RunContext) -> RunResult:
    """Sample every scan point; each finished point's rows are written at once."""
    run = RunState.of(task)
    plan = plan_field(run, program, ctx.sets, program.compile_ir)
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
    def start(k: int, streams: RandomStreams) -> FieldChains:
        generator = torch.Generator(device=device)
        generator.manual_seed(streams.host_generator().initial_seed())
        extra = {s.name: (v, s.span) for s, v in zip(plan.others, combos[k])}
        cm = plan.model if k == 0 else program.compile_ir(
            model_point(run, plan.checker, extra, THERMAL))  # fmt: skip
        cm.to(device)
        summary["params"] = dict(cm.model.params)
        point = {s.name: v for s, v in zip(plan.others, combos[k])}
        return FieldChains(cm, plan, run, generator, device, point)

    def finish(k: int, rows: list[dict]) -> None:
        summary["rows"].extend(rows)
        for w in _unmixed(rows, plan, run):
            summary.setdefault("warnings", []).append(w)

    per_point = o.burn_in + recorded(o) * o.thin
    run_scan(ctx, run.span, len(combos), _settings(run, plan, combos, ctx), start, finish,
             per_point, run.name)  # fmt: skip
    files = _plots(ctx.out, run, plan, summary, len(first.shape)) if ctx.out else []
    return RunResult(summary, ctx.out, files)


def _settings(run: RunState, plan: FieldPlan, combos: list, ctx: RunContext) -> dict[str, Any]:
    """What a checkpoint of this run may be resumed with: every input of its numbers."""
    args = {k: v for k, (v, _) in run.model_args.items()}
    args.update({k: v for k, (v, _) in run.lets.items()})
    return {"run": run.name, "model": plan.checker.name, "model_args": args,
            "points": [list(c) for c in combos], "sampler": plan.options.model_dump(),
            "temperatures": {plan.tvar: plan.tvalues},
            "measures": [m.name + (f" = {to_text(m.expr)}" if m.expr is not None else "")
                         for m in plan.measures],
            "seed": ctx.seed, "device": ctx.device.type}  # fmt: skip


class FieldChains:
    """The chains of one scan point: every temperature as one batch of ``chains`` chains
    (fields (temperatures x chains, *lattice)). ``advance`` runs burn-in and measured updates
    (resumable: ``tensors``/``restore`` are the checkpoint), ``rows`` one row per temperature."""

    def __init__(self, cm: FieldModel, plan: FieldPlan, run: RunState,
                 generator: torch.Generator, device: torch.device,
                 point: dict[str, Any] | None = None):  # fmt: skip
        o = plan.options
        self.cm, self.plan, self.run, self.options, self.generator = cm, plan, run, o, generator
        self.point = point or {}
        self.nT, self.C = len(plan.betas), o.chains
        n = self.nT * self.C
        self.V = float(np.prod(cm.shape))
        self.beta = torch.tensor(plan.betas, dtype=F64, device=device).repeat_interleave(self.C)
        bcast = self.beta.reshape(-1, *([1] * len(cm.shape)))
        self.kernel = CATALOGUE.samplers.implementation(plan.sampler, "field")(o).kernel(
            lambda x: self.beta * cm.action(x), lambda x: bcast * cm.grad(x), generator)
        self.helicity = next((m for m in plan.measures if m.expr is None
                              and m.name == "helicity_modulus"), None)  # fmt: skip
        self.compiler, self.kernels = _compile_measures(cm, plan)
        self.n_meas = recorded(o)
        names = list(BASE)
        if self.helicity is not None:
            names += [f"twist{k}_{mu}" for k in (1, 2) for mu in range(len(cm.shape))]
        self.series = {name: torch.empty(self.n_meas, n, dtype=F64, device=device)
                       for name in names + [f"expr/{m}" for m in self.kernels]}  # fmt: skip
        self.x = _start(cm, n, generator, device, o.start)
        self.kernel.start(self.x)
        self.burned = self.measured = 0

    @property
    def done(self) -> int:
        """Updates done (burn-in and measurement)."""
        return self.burned + self.measured * self.options.thin

    def tensors(self) -> dict[str, Tensor]:
        k = self.measured
        out = {"x": self.x, "generator": self.generator.get_state()}
        out.update({f"kernel/{n}": v for n, v in self.kernel.tensors().items()})
        out.update({f"series/{n}": s[:k] for n, s in self.series.items()})
        return out

    def restore(self, saved: Checkpoint) -> None:
        """Continue from a checkpoint of this point (validated shapes: a mismatch is P602)."""
        t, done = saved.tensors, saved.state["done"]
        self.generator.set_state(t["generator"])
        self.burned = min(done, self.options.burn_in)
        self.measured = (done - self.burned) // self.options.thin
        k, dev = self.measured, self.x.device
        for name, target in self.series.items():
            target[:k].copy_(t[f"series/{name}"].to(dev))
        self.x = t["x"].to(dev)
        self.kernel.restore(self.x, {n[7:]: v for n, v in t.items() if n.startswith("kernel/")})

    def advance(self, bar, save, every: float | None) -> None:
        """Update to the end of the point; ``save(self)`` at least every ``every`` seconds."""
        o, kernel = self.options, self.kernel
        maybe_save = every_seconds(every, lambda: save(self))

        kernel.track = False
        while self.burned < o.burn_in:
            self.x = kernel.step(self.x)
            self.burned += 1
            bar.update(1)
            maybe_save()
        kernel.track = True
        while self.measured < self.n_meas:
            for _ in range(o.thin):
                self.x = kernel.step(self.x)
            bar.update(o.thin)
            self._measure(self.measured)
            self.measured += 1
            k = self.measured - 1
            if k % 64 == 63 or k == self.n_meas - 1:
                self._check_finite(k)
            maybe_save()

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

    def _check_finite(self, k: int) -> None:
        a = self.series["action_density"][: k + 1]
        if not bool(torch.isfinite(a).all()):
            bad = int((~torch.isfinite(a)).nonzero()[0, 0])
            raise PhysmlError(Diagnostic(
                "P700", f"the action became non-finite at measurement {bad} of run "
                f"{self.run.name}", self.run.span, "reduce step_size (HMC, Langevin) or check "
                "the action's couplings; results measured before this point were kept"))  # fmt: skip

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
            row["acceptance"] = _est(acc[sl])
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

def _unmixed(rows: list[dict], plan: FieldPlan, run: RunState) -> list[dict]:
    """P702 for every row whose chains sampled different states: the spread of their mean
    actions exceeds what the binning error admits, or their split R-hat exceeds 1.2 (trapped
    vortices or windings after a random start at low T, or a run shorter than the
    autocorrelation time)."""
    out, C = [], plan.options.chains
    names = [plan.tvar] + [s.name for s in plan.others]
    if plan.options.start == "random":
        hint = ("the chains are trapped in different states (vortices, windings after a random "
                "start at low T) or the run is shorter than the autocorrelation time: "
                "start = ordered at low T, or add sweeps or burn_in")  # fmt: skip
    else:
        hint = ("the run is shorter than the autocorrelation time, or the burn-in too short to "
                "forget the ordered start at high T: add burn_in or sweeps")  # fmt: skip
    for row in rows:
        ratio, rhat = row.get("chain_excess", float("nan")), row.get("r_hat", float("nan"))
        if C < 4 or not (ratio > excess_limit(C) or rhat > 1.2):
            continue
        at = ", ".join(f"{k} = {row[k]:g}" if isinstance(row[k], float) else f"{k} = {row[k]}"
                       for k in row if k in names)  # fmt: skip
        where = f" at {at}" if at else ""
        d = Diagnostic("P702", f"chains disagree{where}: split R-hat of the action {rhat:.3f}, "
                       f"their mean actions scatter {ratio:.1f}x the binning error; the error "
                       "bars there come from the spread between chains", run.span, hint,
                       severity="warning")  # fmt: skip
        out.append(d.as_dict())
    return out


def _compile_measures(cm: FieldModel, plan: FieldPlan):
    """The measured expressions of a run lowered to torch kernels at this point's model."""
    compiler = field_measures(cm.derived, cm.lattice_sum_module, cm.model.params, FIELD_FUNCTIONS)
    kernels: dict[str, Kernel] = {m.name: compiler.compile(m.expr, m.name, TORCH)
                                  for m in plan.measures if m.expr is not None}  # fmt: skip
    for module in compiler.modules.values():
        module.to(cm.device)
    return compiler, kernels


# ---------------------------------------------------------------- built-in observables
# The implementations of the catalogue's observable entries of the field family:
# (series name -> (T, chains) of one temperature, volume V, beta) -> estimate.


def _action_density(s: dict[str, np.ndarray], V: float, beta: float) -> Estimate:
    return binning_analysis(s["action_density"])


def _magnetization(s: dict[str, np.ndarray], V: float, beta: float) -> Estimate:
    return binning_analysis(s["magnetization"])


def _abs_magnetization(s: dict[str, np.ndarray], V: float, beta: float) -> Estimate:
    return binning_analysis(s["abs_magnetization"])


def _m2(s: dict[str, np.ndarray], V: float, beta: float) -> Estimate:
    e = binning_analysis(s["m2"])
    return Estimate(V * e.mean, V * e.stderr, e.tau_int)


def _specific_heat(s: dict[str, np.ndarray], V: float, beta: float) -> Estimate:
    """beta^2 var(S) / V = beta^2 V (<a^2> - <a>^2), a = S / V."""
    a = s["action_density"]
    return jackknife(lambda a2, a1: beta * beta * V * (a2 - a1 * a1), [a * a, a])


def _susceptibility(s: dict[str, np.ndarray], V: float, beta: float) -> Estimate:
    return jackknife(lambda m2, m: beta * V * (m2 - m * m), [s["m2"], s["abs_magnetization"]])


def _binder(s: dict[str, np.ndarray], V: float, beta: float) -> Estimate:
    return jackknife(lambda m4, m2: 1 - m4 / (3 * m2 * m2), [s["m4"], s["m2"]])


def _helicity_modulus(s: dict[str, np.ndarray], V: float, beta: float) -> Estimate:
    """Upsilon = (1 / d V) sum_mu [<S''_mu> - beta (<S'_mu^2> - <S'_mu>^2)] over the d axes
    (S'_mu, S''_mu: derivatives of S by a twist of the angles along mu)."""
    d = sum(1 for n in s if n.startswith("twist1_"))
    inputs = []
    for mu in range(d):
        d1 = s[f"twist1_{mu}"]
        inputs += [s[f"twist2_{mu}"], d1 * d1, d1]

    def upsilon(*means: float) -> float:
        total = sum(means[3 * mu] - beta * (means[3 * mu + 1] - means[3 * mu + 2] ** 2)
                    for mu in range(d))  # fmt: skip
        return total / (d * V)

    return jackknife(upsilon, inputs)


OBSERVABLES = {"action_density": _action_density, "magnetization": _magnetization,
               "abs_magnetization": _abs_magnetization, "m2": _m2,
               "specific_heat": _specific_heat, "susceptibility": _susceptibility,
               "binder": _binder, "helicity_modulus": _helicity_modulus}  # fmt: skip


# ---------------------------------------------------------------- plots


def _plots(out: Path, run: RunState, plan: FieldPlan, summary: dict, dim: int) -> list[Path]:
    """``plot`` statements (or every measure against the scanned variable); the helicity
    modulus of a 2D model is drawn with the BKT line Upsilon = 2T / pi."""
    rows, title = summary["rows"], f"{summary['model']}: {run.sampler} ({run.name})"
    scanned = [n for n in [plan.tvar if plan.thermal else None, *(s.name for s in plan.others)]
               if n is not None and len({repr(r.get(n)) for r in rows}) > 1]  # fmt: skip
    default_x = scanned[0] if scanned else None
    plots = [(p.x or default_x, list(p.observables) or [m.name for m in plan.measures],
              list(p.marks), p.logx, p.logy) for p in run.plots] or \
        [(default_x, [m.name for m in plan.measures], [], False, False)]  # fmt: skip
    files = []
    for i, (x, names, marks, logx, logy) in enumerate(plots):
        if x is None:
            continue
        guides = {}
        if dim == 2 and x in THERMAL:
            guides["helicity_modulus"] = ((lambda T: 2 * T / math.pi) if x == "T" else
                                          (lambda b: 2 / (math.pi * b)), "2T/π (BKT)")  # fmt: skip
        f = outputs.plot_rows(out, rows, x, names, marks, f"plot{i if i else ''}.png", title,
                              logx, logy, guides)  # fmt: skip
        if f is not None:
            files.append(f)
    return files


__all__ = ["FieldChains", "OBSERVABLES", "run_field"]
