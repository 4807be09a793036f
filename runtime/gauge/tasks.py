"""Gauge models in the language: the tasks, and the binding of the gauge capability's catalogue
entries (physml_lang/catalogue/gauge.py).

- Model kind ``gauge`` (priority 10): any model with a field on ``links`` compiles to
  :class:`physml_lang.compiler.models.gauge.GaugeModel`.
- Names: ``e_mu`` (the unit vector of a bound direction) is known in gauge models.
- Task ``sample`` [gauge]: users write the same ``sampler hmc(...)`` as for spins; the run's
  model kind picks this entry (``runtime.tasks.resolve_task``), and the sampler's name is
  looked up among the gauge samplers of the catalogue, whose schemas hold the sampler's options
  and the run's controls (chains, sweeps, burn_in, thin: one sweep = one hmc trajectory). Each
  finished point's row is written at once (the driver's recorder); a point's chains (links,
  matter, measurements, sweep counter; the driver adds the streams' draw counter) are
  checkpointed every ``--checkpoint-every`` seconds, and ``--resume`` continues bit-identically
  on the CPU.
- Task ``gauge_regress`` (run word ``regress``): train gauge learners (``lcnn``, ``gauge_cnn``)
  to regress a gauge-invariant target from sampled configurations and evaluate them on larger
  lattices. Each learner is a scan point (one step = one epoch), checkpointed alike.

Both start from their static plans (runtime/plans/gauge.py, torch-free: every name, option,
size and the sampler's fitness checked there) and validate nothing again. What they measure is
in measures.py, what they draw in sampling.py, local.py and ensembles.py, what they write
besides rows in plots.py.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch

from physml_lang.catalogue import CATALOGUE, Catalogue
from physml_lang.compiler.derive.gauge import span_text
from physml_lang.compiler.models.gauge import GaugeModel
from physml_lang.diagnostics import Diagnostic, PhysmlError, Span
from physml_lang.ir.task import TaskIR
from physml_lang.ir.text import print_ir
from physml_lang.ir.walk import to_text

from ..checkpoint import Checkpoint
from ..driver import RunContext, RunResult, ScanPoint, run_scan
from ..plans.gauge import GaugeSamplePlan, RegressPlan, plan_gauge_sample, plan_regress
from ..random import RandomStreams
from ..tasks import Task
from . import lcnn, sampling
from .checkpoints import loaded, stored
from .ensembles import regression_data
from .lcnn import RegressorTraining
from .local import LocalSampler
from .measures import (
    IMPLEMENTATIONS,
    Observable,
    observables,
    point_row,
    regression_rows,
    regression_target,
)
from .plots import regress_outputs, sample_outputs
from .sampling import LinkSampler, cold_start, hot_start

Tensor = torch.Tensor

# the random family of the regress data, apart from the learners' points 0, 1, ... of the scan
_DATA = -1


# ---------------------------------------------------------------- the sample task


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
        point = points[k]
        summary["params"] = dict(point.model.model.params)
        values = {s.name: v for s, v in zip(run.scans, point.values)}
        last["chains"] = GaugeChains(point.model, plan, streams, ctx.device, n_meas, values,
                                     ctx.checkpoint_path(), run.span)  # fmt: skip
        return last["chains"]

    run_scan(ctx, run.span, len(points), _settings(plan, ctx), start,
             lambda k, rows: summary["rows"].extend(rows),
             options.burn_in + n_meas * options.thin, run.name)  # fmt: skip
    files: list[Path] = []
    if ctx.out is not None:
        series = {n: v.cpu().numpy() for n, v in last["chains"].series.items()} if last else {}
        files = sample_outputs(ctx.out, summary, run, series)
    return RunResult(summary, ctx.out, files)


def _settings(plan: GaugeSamplePlan, ctx: RunContext) -> dict[str, Any]:
    """What a checkpoint of this run may be resumed with: every input of its numbers (the
    points' models as IR, hashed, and their values; the sampler; the measures; the seed, not
    the device: the random streams do not depend on it)."""
    run = plan.run
    return {"run": run.name, "model": plan.checker.name, "model_ir": _ir_hash(plan.points),
            "points": [dict(p.model.model.params) for p in plan.points],
            "scan": {s.name: s.values for s in run.scans}, "scale": plan.scale,
            "sampler": {"name": run.sampler, **plan.options.model_dump()},
            "measures": [m.name + (f" = {to_text(m.expr)}" if m.expr is not None else "")
                         for m in run.measures],
            "seed": ctx.seed}  # fmt: skip


def _ir_hash(points) -> str:
    return hashlib.sha256("".join(print_ir(p.model.ir) for p in points).encode()).hexdigest()


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


class GaugeChains(ScanPoint):
    """The chains of one scan point: links (B, L..., d, *group_shape) and matter fields
    (B, L...) of every chain, chain b drawing from stream b of ``streams``, the measurements so
    far (n_meas, B) and the sweep counter. ``step`` is one sweep (hmc: one trajectory), burn-in
    included; ``tensors``/``restore`` are the checkpoint, ``rows`` the point's row."""

    def __init__(self, cm: GaugeModel, plan: GaugeSamplePlan, streams: RandomStreams,
                 device: torch.device, n_meas: int, values: dict[str, Any],
                 path: Path | None = None, span: Span | None = None):  # fmt: skip
        options = plan.options
        self.values, self.path, self.span = values, path, span
        self.cm, self.options, self.scale = cm, options, plan.scale
        self.streams, self.n_meas, self.run = streams, n_meas, plan.run
        self.sampler = _sampler_for(cm, plan)
        self.obs: list[Observable] = observables(cm, plan.run)
        C, hot = options.chains, options.start == "hot"
        dt = torch.complex128 if cm.group.name == "su2" else torch.float64
        self.U = (hot_start(cm.group, C, cm.shape, streams, device=device, dtype=dt) if hot
                  else cold_start(cm.group, C, cm.shape, device, dt))  # fmt: skip
        if isinstance(self.sampler, LocalSampler):
            self.sampler.start(self.U, hot, streams)
        # kept on the device: no host transfer per sweep
        self.series = {o.name: torch.empty(n_meas, C, dtype=torch.float64, device=device)
                       for o in self.obs}  # fmt: skip
        self.acc = torch.zeros(C, dtype=torch.float64, device=device)  # summed acceptance
        self.done = 0  # sweeps (HMC: trajectories), burn-in included
        self.total = options.burn_in + n_meas * options.thin

    @property
    def measured(self) -> int:
        return max(0, self.done - self.options.burn_in) // self.options.thin

    @property
    def matter(self) -> dict[str, Tensor]:
        return self.sampler.matter if isinstance(self.sampler, LocalSampler) else {}

    def step(self) -> None:
        """One sweep; after burn-in its acceptance is summed, every ``thin`` sweeps measured."""
        opts = self.options
        self.U = self.sampler.step(self.U, self.streams)
        self.done += 1
        after = self.done - opts.burn_in  # measured-phase sweeps done
        if after > 0:
            self.acc += self.sampler.acceptance
            if after % opts.thin == 0:
                self._measure(after // opts.thin - 1)

    def _measure(self, k: int) -> None:
        for o in self.obs:
            self.series[o.name][k] = o(self.U, self.matter)
        if k % 64 == 63 or k == self.n_meas - 1:
            for o in self.obs:
                if not bool(torch.isfinite(self.series[o.name][: k + 1]).all()):
                    raise PhysmlError(Diagnostic(
                        "P700", f"observable {o.name} became non-finite in run "
                        f"{self.run.name}", self.run.span, "check beta and step_size"))  # fmt: skip

    def tensors(self) -> dict[str, Tensor]:
        k = self.measured
        out = {"links": stored(self.U), "acceptance": self.acc}
        out.update({f"matter/{n}": stored(v) for n, v in self.matter.items()})
        out.update({f"series/{n}": s[:k] for n, s in self.series.items()})
        return out

    def restore(self, saved: Checkpoint) -> None:
        """Continue from a checkpoint of this point (a tensor that does not fit is a P602)."""
        t, path, span = saved.tensors, self.path, self.span
        self.done = int(saved.state["done"])
        k = self.measured
        self.U = loaded(t, "links", self.U, path, span)
        if isinstance(self.sampler, LocalSampler):
            self.sampler.matter = {n: loaded(t, f"matter/{n}", v, path, span)
                                   for n, v in self.sampler.matter.items()}  # fmt: skip
        self.acc.copy_(loaded(t, "acceptance", self.acc, path, span))
        for n, s in self.series.items():
            s[:k].copy_(loaded(t, f"series/{n}", s[:k], path, span))

    def rows(self) -> list[dict[str, Any]]:
        """The point's row: its scan values, the observables with errors, the acceptance and
        the exact references where known."""
        return [point_row(self.values, self.obs, self.series, self.n_meas, self.acc,
                          self.options, self.cm, self.scale)]  # fmt: skip


# ---------------------------------------------------------------- the regress task


def run_regress(task: TaskIR, program, ctx: RunContext) -> RunResult:
    """Sample the data, train every learner (a scan point each: one step = one epoch,
    checkpointed, ``--resume`` continues a killed run) and test it on every lattice size; each
    learner's rows are written as soon as it is tested (``ctx.recorder``)."""
    device, out = ctx.device, ctx.out
    plan = plan_regress(task, program, ctx.sets, program.compile_ir)
    run, stmt, options, learners = plan.run, plan.stmt, plan.options, plan.learners
    cms: list[GaugeModel] = [p.model for p in plan.points]
    target = regression_target(cms[0], plan.target)
    per = max(1, options.samples // len(cms))
    per_test = max(1, options.test_samples // len(cms))
    L_train = cms[0].shape
    d = len(L_train)

    def data(shape: tuple[int, ...], n: int, name: int) -> tuple[Tensor, Tensor]:
        """Configurations at every point of the scan: family (_DATA, name, point), the sample
        index the stream (name: 0 the training set, L the test set on L^d)."""
        return regression_data(cms, target, shape, n, options.sweeps,
                               lambda i: ctx.streams.fork(_DATA, name, i), device)  # fmt: skip

    U_tr, y_tr = data(L_train, per, 0)
    sizes = [L_train[0]] + [L for L in options.test_L if L != L_train[0]]
    tests = {L: data((L,) * d, per_test, L) for L in sizes}
    summary = ctx.recorder.summary
    summary.update({
        "run": run.name, "source": program.name, "model": program.checker_for(task).name,
        "params": dict(cms[0].model.params), "device": str(device), "seed": ctx.seed,
        # the data sampler (the command line's report reads summary["sampler"]["name"])
        "sampler": {"name": "heatbath", "sweeps": options.sweeps, "start": "hot"},
        "target": span_text(stmt.target_span), "options": options.model_dump(),
        "scan": {s.name: s.values for s in run.scans}, "train_L": list(L_train),
        "rows": [], "complete": False,
    })  # fmt: skip

    def start(k: int, streams: RandomStreams) -> LearnerTraining:
        name, kind, opts = learners[k]
        build = CATALOGUE.learners.implementation(kind, "gauge")
        init = streams.host_generator()  # the initial weights: one host draw
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(init.initial_seed())  # torch.nn's own initialisers (baseline CNN)
            model = build(cms[0].group, d, opts, generator=init).double().to(device)
        return LearnerTraining(name, kind, model, U_tr, y_tr, tests, streams, options.epochs,
                               options.batch_size, options.lr, ctx.checkpoint_path(),
                               run.span)  # fmt: skip

    run_scan(ctx, run.span, len(learners), _regress_settings(plan, ctx), start,
             lambda k, rows: summary["rows"].extend(rows), options.epochs, run.name,
             unit="epoch")  # fmt: skip
    files = regress_outputs(out, summary) if out is not None else []
    return RunResult(summary, out, files)


def _regress_settings(plan: RegressPlan, ctx: RunContext) -> dict[str, Any]:
    """What a checkpoint of a regress run may be resumed with: every input of its numbers."""
    return {"run": plan.run.name, "model_ir": _ir_hash(plan.points),
            "points": [dict(p.model.model.params) for p in plan.points],
            "scan": {s.name: s.values for s in plan.run.scans},
            "options": plan.options.model_dump(), "target": list(plan.target),
            "learners": [[n, kind, o.model_dump()] for n, kind, o in plan.learners],
            "seed": ctx.seed}  # fmt: skip


class LearnerTraining(RegressorTraining):
    """One learner of a regress run: trained on the training configurations (one step = one
    epoch), then tested on every lattice size: ``rows``, one per size."""

    def __init__(self, name: str, kind: str, model, U: Tensor, y: Tensor,
                 tests: dict[int, tuple[Tensor, Tensor]], streams: RandomStreams, epochs: int,
                 batch_size: int, lr: float, path: Path | None,
                 span: Span | None):  # fmt: skip
        super().__init__(model, U, y.to(U.device), streams, epochs, batch_size, lr, path, span)
        self.name, self.kind, self.tests = name, kind, tests

    def rows(self) -> list[dict[str, Any]]:
        return regression_rows(self.model, self.tests, self.name, self.kind, self.history[-1])


__all__ = ["GaugeChains", "LearnerTraining", "Observable", "bind", "run_gauge_sample",
           "run_regress"]  # fmt: skip


def bind(catalogue: Catalogue) -> None:
    """Attach this capability's implementations to its catalogue entries (top layer only); the
    static checks are bound by runtime/plans/gauge.py."""
    catalogue.tasks.bind("sample", Task(run_gauge_sample), family="gauge")
    catalogue.tasks.bind("gauge_regress", Task(run_regress))
    sampling.bind(catalogue)
    lcnn.bind(catalogue)
    for name, measure in IMPLEMENTATIONS.items():
        catalogue.observables.bind(name, measure, family="gauge")
