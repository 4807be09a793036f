"""Gauge models in the language: the tasks, the built-in observables, and the binding of the
gauge capability's catalogue entries (physml_lang/catalogue/gauge.py).

- Model kind ``gauge`` (priority 10): any model with a field on ``links`` compiles to
  :class:`physml_lang.compiler.models.gauge.GaugeModel`.
- Names: ``e_mu`` (the unit vector of a bound direction) is known in gauge models.
- Task ``sample`` [gauge]: users write the same ``sampler hmc(...)`` as for spins; the run's
  model kind picks this entry (``runtime.tasks.resolve_task``), and the sampler's name is
  looked up among the gauge samplers of the catalogue, whose schemas hold the sampler's options
  and the run's controls (chains, sweeps, burn_in, thin: one sweep = one hmc trajectory). Each
  finished point's row is written at once (the driver's recorder); a point's chains (links,
  matter, random stream, measurements, sweep counter) are checkpointed every
  ``--checkpoint-every`` seconds, and ``--resume`` continues bit-identically on the CPU.
- Task ``gauge_regress`` (run word ``regress``): train gauge learners (``lcnn``, ``gauge_cnn``)
  to regress a gauge-invariant target from sampled configurations and evaluate them on larger
  lattices.

Both start from their static plans (runtime/plans/gauge.py, torch-free: every name, option,
size and the sampler's fitness checked there) and validate nothing again.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from physml_lang.catalogue import CATALOGUE, Catalogue
from physml_lang.compiler.derive.gauge import span_text
from physml_lang.compiler.lower.gauge import Env
from physml_lang.compiler.lower.links import (
    mean_plaquette,
    polyakov_loops,
    topological_charge,
    wilson_loops,
)
from physml_lang.compiler.lower.torch_backend import TORCH
from physml_lang.compiler.models.gauge import GaugeModel
from physml_lang.diagnostics import Diagnostic, PhysmlError, Span
from physml_lang.ir import expr as E
from physml_lang.ir.task import TaskIR
from physml_lang.ir.text import print_ir
from physml_lang.ir.walk import names_in, to_text

from .. import outputs
from ..checkpoint import Checkpoint
from ..driver import RunContext, RunResult, every_seconds, run_scan
from ..plans.gauge import GaugeSamplePlan, Measure, measures, plan_gauge_sample, plan_regress
from ..random import RandomStreams
from ..statistics import binning_analysis
from ..tasks import Task
from . import exact, lcnn, sampling
from .lcnn import train_regressor
from .local import LocalSampler
from .sampling import LinkSampler, cold_start, heatbath_sweep, hot_start

Tensor = torch.Tensor


def _fail(code: str, msg: str, span: Span | None = None, hint: str | None = None):
    raise PhysmlError(Diagnostic(code, msg, span, hint))


# ---------------------------------------------------------------- observables


class Observable(Measure):
    """A measured expression compiled to f(U, matter) -> (B,) float64: the plan's walk
    (runtime/plans/gauge.py) on link tensors U (B, L..., d, *group_shape) and matter fields
    (B, L...) of models with a LocalSampler."""

    def __init__(self, cm: GaugeModel, expr: E.Expr | None, name: str, span: Span | None):
        super().__init__(cm.derivation, expr, name, span)
        self.cm = cm
        self.uses_q = "topological_charge" in names_in(self.expr)  # the row adds exact <Q^2>

    def __call__(self, U: Tensor, matter: dict[str, Tensor] | None = None) -> Tensor:
        v = self.walk(self.expr, (U, matter or {}))
        if not isinstance(v, Tensor):
            v = torch.full((U.shape[0],), float(v), dtype=torch.float64)
        return v.double()

    def is_array(self, v: Any) -> bool:
        return isinstance(v, Tensor)

    def builtin(self, name: str, config: Any, args: tuple[int, ...]) -> Any:
        U, matter = config
        return CATALOGUE.observables.implementation(name, "gauge")(self, U, matter, *args)

    def definition(self, e: E.Expr, config: Any) -> Any:
        U, matter = config
        t = self.cm.evaluator(U, matter).evaluate(e, Env()).t
        return t.real if isinstance(t, Tensor) and t.is_complex() else t

    def function(self, f: str, v: Any) -> Any:
        return TORCH.ops[f](torch.as_tensor(v, dtype=torch.float64))


# The gauge observable entries' implementations: (observable, U, matter, *loop sizes) -> (B,)
# values or a number; the observable carries the model. The plan checked where each is defined.


def measure_plaquette(obs: Observable, U: Tensor, matter: dict[str, Tensor]) -> Tensor:
    return mean_plaquette(U, obs.cm.group)


def measure_action(obs: Observable, U: Tensor, matter: dict[str, Tensor]) -> Tensor:
    return obs.cm.action(U, matter)


def measure_topological_charge(obs: Observable, U: Tensor, matter: dict[str, Tensor]) -> Tensor:
    return topological_charge(U)


def measure_polyakov_loop(obs: Observable, U: Tensor, matter: dict[str, Tensor]) -> Tensor:
    return polyakov_loops(U, obs.cm.group).flatten(1).mean(1).real


def measure_abs_polyakov_loop(obs: Observable, U: Tensor, matter: dict[str, Tensor]) -> Tensor:
    return polyakov_loops(U, obs.cm.group).flatten(1).mean(1).abs()


def measure_sites(obs: Observable, U: Tensor, matter: dict[str, Tensor]) -> float:
    return float(obs.cm.n_sites)


def measure_wilson_loop(obs: Observable, U: Tensor, matter: dict[str, Tensor], R: int,
                        T: int) -> Tensor:  # fmt: skip
    """Measured by a call only, ``wilson_loop(R, T)``: the lattice mean of the R x T loops."""
    return wilson_loops(U, obs.cm.group, R, T).flatten(1).mean(1)


# ---------------------------------------------------------------- the sample task


def _sampler_for(cm: GaugeModel, plan: GaugeSamplePlan):
    """The sampler of one point, as the plan decided: coloured local updates of links and
    matter (runtime/gauge/local.py) or the runtime's link sampler at beta * scale."""
    run, options, scale = plan.run, plan.options, plan.scale
    if not cm.is_wilson:
        if run.sampler == "heatbath":
            return LocalSampler(cm, "heatbath", scale)
        return LocalSampler(cm, "metropolis", scale, options.step_size, options.hits)
    factory: LinkSampler = CATALOGUE.samplers.implementation(run.sampler, "gauge")
    own = {k: getattr(options, k) for k in factory.options.model_fields}  # less the controls
    beta = float(cm.wilson_beta) * scale
    return factory(cm.group, beta, factory.options(**own))


def _observables(cm: GaugeModel, plan: GaugeSamplePlan) -> list[Observable]:
    """The plan's measures (the plaquette when the run measures none) on the compiled model."""
    return [Observable(cm, m.expr, m.name, None) for m in measures(cm.derivation, plan.run)]


def _references(cm: GaugeModel, obs: list[Observable], scale: float) -> dict[str, float]:
    """Exact 2D torus values of the plaquette (and <Q^2> for U(1)) where available."""
    if cm.d != 2 or not cm.is_wilson:
        return {}
    beta, (L1, L2) = float(cm.wilson_beta) * scale, cm.shape
    ref = {}
    f = {"u1": exact.u1_plaquette_torus, "z2": exact.z2_plaquette_torus,
         "su2": exact.su2_plaquette_torus}[cm.group.name]  # fmt: skip
    ref["plaquette_exact"] = f(beta, L1, L2)
    if cm.group.name == "u1" and any(o.uses_q for o in obs):
        ref["Q2_exact"] = exact.u1_topological_susceptibility_torus(beta, L1, L2)
    return ref


def run_gauge_sample(task: TaskIR, program, ctx: RunContext) -> RunResult:
    """Sample every point of the scan; each finished point's row is written at once
    (``ctx.recorder``). A point's chains are checkpointed every ``ctx.checkpoint_seconds`` of
    work when the run has an output folder, so that ``--resume`` continues a killed run
    bit-identically (on the CPU) from where it was saved."""
    plan = plan_gauge_sample(task, program, ctx.sets, program.compile_ir)
    run, options, points = plan.run, plan.options, plan.points
    n_meas = max(1, options.sweeps // options.thin)
    summary = ctx.recorder.summary
    summary.update({
        "run": run.name, "source": program.name, "model": plan.checker.name, "params": {},
        "device": str(ctx.device), "seed": ctx.seed,
        "sampler": {"name": run.sampler, **options.model_dump()},
        "scan": {s.name: s.values for s in run.scans}, "rows": [], "complete": False,
    })  # fmt: skip
    last: dict[str, GaugeChains] = {}

    def start(k: int, streams: RandomStreams) -> GaugeChains:
        gen = torch.Generator(device=ctx.device)
        gen.manual_seed(streams.host_generator().initial_seed())
        point = points[k]
        summary["params"] = dict(point.model.model.params)
        values = {s.name: v for s, v in zip(run.scans, point.values)}
        last["chains"] = GaugeChains(point.model, plan, gen, ctx.device, n_meas, values,
                                     ctx.checkpoint_path(), run.span)  # fmt: skip
        return last["chains"]

    run_scan(ctx, run.span, len(points), _settings(plan, ctx), start,
             lambda k, rows: summary["rows"].extend(rows),
             options.burn_in + n_meas * options.thin, run.name)  # fmt: skip
    last_series = {n: v.cpu().numpy() for n, v in last["chains"].series.items()} if last else {}
    files: list[Path] = []
    if ctx.out is not None:
        names = [m.name for m in run.measures] or ["plaquette"]
        if len(summary["rows"]) > 1 and run.scans:
            f = outputs.plot_rows(ctx.out, summary["rows"], run.scans[0].name, names, None,
                                  "plot.png", f"{summary['model']} ({run.name})")  # fmt: skip
            if f:
                files.append(f)
        files.append(_history_plot(ctx.out, last_series, run.name))
    return RunResult(summary, ctx.out, files)


def _settings(plan: GaugeSamplePlan, ctx: RunContext) -> dict[str, Any]:
    """What a checkpoint of this run may be resumed with: every input of its numbers (the
    points' models as IR, hashed, and their values; the sampler; the measures; seed; device)."""
    run = plan.run
    ir = "".join(print_ir(p.model.ir) for p in plan.points)
    return {"run": run.name, "model": plan.checker.name,
            "model_ir": hashlib.sha256(ir.encode()).hexdigest(),
            "points": [dict(p.model.model.params) for p in plan.points],
            "scan": {s.name: s.values for s in run.scans}, "scale": plan.scale,
            "sampler": {"name": run.sampler, **plan.options.model_dump()},
            "measures": [m.name + (f" = {to_text(m.expr)}" if m.expr is not None else "")
                         for m in run.measures],
            "seed": ctx.seed, "device": ctx.device.type}  # fmt: skip


def _stored(t: Tensor) -> Tensor:
    """A tensor as a checkpoint holds it (safetensors has no complex128: real and imaginary
    parts in a trailing dimension)."""
    return torch.view_as_real(t) if t.is_complex() else t


def _loaded(tensors: dict[str, Tensor], name: str, like: Tensor, path: Path,
            span: Span | None) -> Tensor:  # fmt: skip
    """The checkpoint's ``name`` in the shape, dtype and device of ``like`` (P602 otherwise)."""
    t = tensors.get(name)
    want = _stored(torch.empty(like.shape, dtype=like.dtype, device="meta"))
    if t is None or tuple(t.shape) != tuple(want.shape) or t.dtype != want.dtype:
        got = "absent" if t is None else f"{tuple(t.shape)} {t.dtype}"
        _fail("P602", f"checkpoint {path}: tensor '{name}' is {got}, expected "
              f"{tuple(want.shape)} {want.dtype}", span,
              "delete it, or run without --resume to start afresh")  # fmt: skip
    t = t.to(like.device)
    return torch.view_as_complex(t.contiguous()) if like.is_complex() else t


class GaugeChains:
    """The chains of one scan point: links (and matter fields) of every chain, their random
    stream, the measurements so far and the sweep counter. ``advance`` sweeps to the end of the
    point (resumable: ``tensors``/``restore`` are the checkpoint), ``row`` is the point's row."""

    def __init__(self, cm: GaugeModel, plan: GaugeSamplePlan, generator: torch.Generator,
                 device: torch.device, n_meas: int, values: dict[str, Any],
                 path: Path | None = None, span: Span | None = None):  # fmt: skip
        options = plan.options
        self.values, self.path, self.span = values, path, span
        self.cm, self.options, self.scale = cm, options, plan.scale
        self.generator, self.n_meas, self.run = generator, n_meas, plan.run
        self.sampler = _sampler_for(cm, plan)
        self.obs = _observables(cm, plan)
        C, hot = options.chains, options.start == "hot"
        dt = torch.complex128 if cm.group.name == "su2" else torch.float64
        self.U = (hot_start(cm.group, C, cm.shape, generator, device=device, dtype=dt) if hot
                  else cold_start(cm.group, C, cm.shape, device, dt))  # fmt: skip
        if isinstance(self.sampler, LocalSampler):
            self.sampler.start(self.U, hot, generator)
        # kept on the device: no host transfer per sweep
        self.series = {o.name: torch.empty(n_meas, C, dtype=torch.float64, device=device)
                       for o in self.obs}  # fmt: skip
        self.acc = torch.zeros(C, dtype=torch.float64, device=device)  # summed acceptance
        self.done = 0  # sweeps (HMC: trajectories), burn-in included

    @property
    def measured(self) -> int:
        return max(0, self.done - self.options.burn_in) // self.options.thin

    @property
    def matter(self) -> dict[str, Tensor]:
        return self.sampler.matter if isinstance(self.sampler, LocalSampler) else {}

    def tensors(self) -> dict[str, Tensor]:
        k = self.measured
        out = {"links": _stored(self.U), "generator": self.generator.get_state(),
               "acceptance": self.acc}  # fmt: skip
        out.update({f"matter/{n}": _stored(v) for n, v in self.matter.items()})
        out.update({f"series/{n}": s[:k] for n, s in self.series.items()})
        return out

    def restore(self, saved: Checkpoint) -> None:
        """Continue from a checkpoint of this point (a tensor that does not fit is a P602)."""
        t, path, span = saved.tensors, self.path, self.span
        self.generator.set_state(t["generator"])
        self.done = int(saved.state["done"])
        k = self.measured
        self.U = _loaded(t, "links", self.U, path, span)
        if isinstance(self.sampler, LocalSampler):
            self.sampler.matter = {n: _loaded(t, f"matter/{n}", v, path, span)
                                   for n, v in self.sampler.matter.items()}  # fmt: skip
        self.acc.copy_(_loaded(t, "acceptance", self.acc, path, span))
        for n, s in self.series.items():
            s[:k].copy_(_loaded(t, f"series/{n}", s[:k], path, span))

    def advance(self, bar, save: Callable[[GaugeChains], None], every: float | None) -> None:
        """Sweep to the end of the point; ``save(self)`` at least every ``every`` seconds."""
        opts, sampler, gen = self.options, self.sampler, self.generator
        total = opts.burn_in + self.n_meas * opts.thin
        maybe_save = every_seconds(every, lambda: save(self))
        while self.done < total:
            self.U = sampler.step(self.U, gen)
            self.done += 1
            after = self.done - opts.burn_in  # measured-phase sweeps done
            if after > 0:
                self.acc += sampler.acceptance
                if after % opts.thin == 0:
                    self._measure(after // opts.thin - 1)
            bar.update(1)
            maybe_save()

    def _measure(self, k: int) -> None:
        for o in self.obs:
            self.series[o.name][k] = o(self.U, self.matter)
        if k % 64 == 63 or k == self.n_meas - 1:
            for o in self.obs:
                if not bool(torch.isfinite(self.series[o.name][: k + 1]).all()):
                    _fail("P700", f"observable {o.name} became non-finite in run "
                          f"{self.run.name}", self.run.span, "check beta and step_size")  # fmt: skip

    def rows(self) -> list[dict[str, Any]]:
        """The point's row: its scan values, the observables with errors, the acceptance and
        the exact references where known."""
        return [_row(self.values, self.obs, self.series, self.n_meas, self.acc, self.options, self.cm,
                     self.scale)]  # fmt: skip


def _row(row, obs, series, n, acc, options, cm, scale: float = 1.0) -> dict:
    row = dict(row)
    for o in obs:
        row[o.name] = binning_analysis(series[o.name][:n].cpu().numpy()).as_dict()
    row["acceptance"] = round(float(acc.mean()) / max(1, n * options.thin), 6)
    row.update(_references(cm, obs, scale))
    return row


def _history_plot(out: Path, series: dict[str, np.ndarray], title: str) -> Path:
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = max(1, len(series))
    fig, axes = plt.subplots(n, 1, figsize=(7, 2.2 * n), squeeze=False)
    for ax, (name, s) in zip(axes[:, 0], series.items()):
        ax.plot(s[:, 0], lw=0.6)
        ax.set_ylabel(name)
    axes[-1, 0].set_xlabel("measurement (chain 0)")
    fig.suptitle(title)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    path = out / "history.png"
    outputs._atomic_write(path, buf.getvalue())
    return path


# ---------------------------------------------------------------- the regress task


def _target_fn(cm: GaugeModel, target: tuple[str, tuple[int, ...]]):
    """The plan's regression target as f(U) -> (B,)."""
    name, sizes = target
    if name == "plaquette":
        return lambda U: mean_plaquette(U, cm.group)
    if name == "topological_charge_density":
        return lambda U: topological_charge(U) / math.prod(U.shape[1:3])
    R, T = sizes  # wilson_loop(R, T)
    return lambda U: wilson_loops(U, cm.group, R, T).flatten(1).mean(1)


def _sample(cm: GaugeModel, n: int, shape: tuple[int, ...], sweeps: int, gen, device):
    dt = torch.complex128 if cm.group.name == "su2" else torch.float64
    U = hot_start(cm.group, n, shape, gen, device=device, dtype=dt)
    for _ in range(sweeps):
        U = heatbath_sweep(U, cm.group, float(cm.wilson_beta), gen)
    return U


def run_regress(task: TaskIR, program, ctx: RunContext) -> RunResult:
    """Sample the data, train every learner and test it on every lattice size; each learner's
    rows are written as soon as it is tested (``ctx.recorder``)."""
    device, seed, out = ctx.device, ctx.seed, ctx.out
    plan = plan_regress(task, program, ctx.sets, program.compile_ir)
    run, stmt, options, learners = plan.run, plan.stmt, plan.options, plan.learners
    cms: list[GaugeModel] = [p.model for p in plan.points]
    target = _target_fn(cms[0], plan.target)
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    per = max(1, options.samples // len(cms))
    per_test = max(1, options.test_samples // len(cms))
    L_train = cms[0].shape
    d = len(L_train)

    def data(shape, n):
        U = torch.cat([_sample(cm, n, shape, options.sweeps, gen, device) for cm in cms])
        return U, target(U).double()[:, None]

    U_tr, y_tr = data(L_train, per)
    sizes = [L_train[0]] + [L for L in options.test_L if L != L_train[0]]
    tests = {L: data((L,) * d, per_test) for L in sizes}
    summary = ctx.recorder.summary
    summary.update({
        "run": run.name, "source": program.name, "model": program.checker_for(task).name,
        "params": dict(cms[0].model.params), "device": str(device), "seed": seed,
        # the data sampler (the command line's report reads summary["sampler"]["name"])
        "sampler": {"name": "heatbath", "sweeps": options.sweeps, "start": "hot"},
        "target": span_text(stmt.target_span), "options": options.model_dump(),
        "scan": {s.name: s.values for s in run.scans}, "train_L": list(L_train),
        "rows": [], "complete": False,
    })  # fmt: skip
    for name, kind, opts in learners:
        g = torch.Generator().manual_seed(seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)  # default initialisers of torch.nn layers (baseline CNN)
            build = CATALOGUE.learners.implementation(kind, "gauge")
            model = build(cms[0].group, d, opts, generator=g).double().to(device)
        hist = train_regressor(model, U_tr, y_tr.to(device), gen if device.type == "cpu" else g,
                               options.epochs, options.batch_size, options.lr)  # fmt: skip
        with torch.no_grad():
            for L, (U, y) in tests.items():
                err = (model(U).double() - y).flatten().cpu().numpy()
                std = float(y.std())
                se = err**2
                rel = float(math.sqrt(se.mean()) / std) if std > 0 else float("nan")
                summary["rows"].append({
                    "learner": name, "kind": kind, "L": L,
                    "mse": {"mean": float(se.mean()),
                            "stderr": float(se.std(ddof=1) / math.sqrt(len(se)))},
                    "relative_rmse": rel, "target_std": std, "train_loss": hist[-1],
                })  # fmt: skip
        ctx.recorder.write()
    summary["complete"] = True
    ctx.recorder.write()
    files: list[Path] = []
    if out is not None:
        files += _regress_outputs(out, summary)
    return RunResult(summary, out, files)


def _regress_outputs(out: Path, summary: dict) -> list[Path]:
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = summary["rows"]
    names = list(dict.fromkeys(r["learner"] for r in rows))
    sizes = sorted({r["L"] for r in rows})
    lines = [f"target: {summary['target']}, trained on L = {summary['train_L'][0]}",
             "relative RMSE (RMSE / std of the target on the test set)", "",
             "| learner | " + " | ".join(f"L = {L}" for L in sizes) + " |",
             "|---" * (len(sizes) + 1) + "|"]  # fmt: skip
    fig, ax = plt.subplots(figsize=(5, 3.6))
    for n in names:
        rs = {r["L"]: r for r in rows if r["learner"] == n}
        lines.append(f"| {n} ({rs[sizes[0]]['kind']}) | " +
                     " | ".join(f"{rs[L]['relative_rmse']:.3f}" for L in sizes) + " |")  # fmt: skip
        ax.plot(sizes, [rs[L]["relative_rmse"] for L in sizes], "o-",
                label=f"{n} ({rs[sizes[0]]['kind']})")  # fmt: skip
    ax.axvline(summary["train_L"][0], color="gray", ls="--", lw=1)
    ax.set_xlabel("L (test lattice)")
    ax.set_ylabel("relative RMSE")
    ax.set_yscale("log")
    ax.legend()
    ax.grid(alpha=0.3)
    ax.set_title(f"{summary['target']}: trained on L = {summary['train_L'][0]}")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    outputs._atomic_write(out / "generalisation.png", buf.getvalue())
    outputs._atomic_write(out / "table.md", ("\n".join(lines) + "\n").encode())
    return [out / "generalisation.png", out / "table.md"]


__all__ = ["GaugeChains", "Observable", "bind", "run_gauge_sample", "run_regress"]


def bind(catalogue: Catalogue) -> None:
    """Attach this capability's implementations to its catalogue entries (top layer only); the
    static checks are bound by runtime/plans/gauge.py."""
    catalogue.tasks.bind("sample", Task(run_gauge_sample), family="gauge")
    catalogue.tasks.bind("gauge_regress", Task(run_regress))
    sampling.bind(catalogue)
    lcnn.bind(catalogue)
    implementations = {"plaquette": measure_plaquette, "action": measure_action,
                "energy": measure_action, "topological_charge": measure_topological_charge,
                "polyakov_loop": measure_polyakov_loop,
                "abs_polyakov_loop": measure_abs_polyakov_loop, "sites": measure_sites,
                "wilson_loop": measure_wilson_loop}  # fmt: skip
    for name, measure in implementations.items():
        catalogue.observables.bind(name, measure, family="gauge")
