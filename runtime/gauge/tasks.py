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
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from physml_lang.catalogue import CATALOGUE, Catalogue
from physml_lang.compiler.derive.gauge import span_text
from physml_lang.compiler.models.gauge import GaugeModel
from physml_lang.diagnostics import Diagnostic, PhysmlError, Span
from physml_lang.ir.model import ModelIR
from physml_lang.ir.task import TaskIR
from physml_lang.ir.text import print_ir
from physml_lang.ir.walk import to_text

from ..checkpoint import Checkpoint
from ..device import check_memory
from ..divergences import stuck_chain_error
from ..driver import RunContext, RunResult, ScanPoint, run_scan
from ..plans.gauge import GaugeSamplePlan, RegressPlan, plan_gauge_sample, plan_regress
from ..random import RandomStreams
from ..tasks import RunState, Task
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


# ---------------------------------------------------------------- memory estimates

# bytes of a link as the chains store it (an angle, a sign, a 2x2 complex matrix) and in the
# derivation's linear form (numpy: a phase, a sign, a 2x2 complex matrix)
LINK_BYTES = {"u1": 8, "z2": 8, "su2": 64}
LIN_BYTES = {"u1": 16, "z2": 8, "su2": 64}
# the derivation evaluates the action on 2 random configurations: links and plaquettes of
# every plane with their products' temporaries. Measured peaks of compiling: U1_4D L = 16 77
# MiB, SU2_4D L = 12 98 MiB, U1 L = 512 112 MiB; this estimate about twice those
DERIVE_CONFIGURATIONS, DERIVE_COPIES = 2, 8
# copies of a chain's links an update holds (the links, HMC's momenta, moved links and
# forces, staples, a colour's gathered links and their new values, measured loops), and of
# its plaquettes (angles or products, their sines). Measured peaks (compiling included): U1
# L = 256 x 16 chains hmc 245 MiB (this estimate 0.3 GiB), SU2_4D L = 10 x 4 chains hmc 137
# MiB (175 MiB), U1_4D L = 12 x 4 chains hmc 65 MiB (62 MiB of chains + 51 compiling)
LINK_COPIES, PLAQUETTE_COPIES = 16, 6


def lattice_of(ir: ModelIR) -> tuple[int, int, str, int]:
    """(sites, dimensions, link group, matter fields) of a gauge model's IR, read without
    compiling it."""
    lat = ir.lattice
    sites, d = (lat.n_sites, lat.dim) if lat is not None else (0, 0)
    links = [f.domain.kind for f in ir.fields if f.on == "links"]
    matter = sum(1 for f in ir.fields if f.on == "sites")
    return sites, d, links[0] if links else "u1", matter


def derive_memory(ir: ModelIR) -> int:
    """Bytes of deriving and compiling a gauge model: the action evaluated on random
    configurations of its links and plaquettes."""
    sites, d, group, matter = lattice_of(ir)
    planes = d * (d - 1) // 2
    return (DERIVE_CONFIGURATIONS * DERIVE_COPIES * sites
            * ((d + planes) * LIN_BYTES.get(group, 64) + 16 * matter))  # fmt: skip


def chains_memory(ir: ModelIR, chains: int) -> int:
    """Bytes of ``chains`` chains of a gauge model during an update: links, plaquettes and
    matter with the update's temporaries."""
    sites, d, group, matter = lattice_of(ir)
    planes = d * (d - 1) // 2
    per_site = (d * LINK_COPIES * LINK_BYTES.get(group, 64) + planes * PLAQUETTE_COPIES * 8
                + matter * LINK_COPIES * 8)  # fmt: skip
    return chains * sites * per_site


def compiled_within_memory(realise: Callable[[ModelIR], Any],
                           run: RunState) -> Callable[[ModelIR], Any]:  # fmt: skip
    """``realise`` (a gauge model's IR -> its compiled model) refusing, before it allocates,
    a model whose derivation cannot fit in the host's memory (located at the run)."""

    def guarded(ir: ModelIR) -> Any:
        sites = lattice_of(ir)[0]
        check_memory(derive_memory(ir), torch.device("cpu"), f"compiling model {ir.name} of run "
                     f"{run.name} ({sites} sites)", run.span, "use a smaller lattice")  # fmt: skip
        return realise(ir)

    return guarded


def _check_sample_memory(plan: GaugeSamplePlan, n_meas: int, device: torch.device) -> None:
    """Refuse a sampling run whose chains (the largest point's) cannot fit on ``device``."""
    run, o = plan.run, plan.options
    ir = max((p.model.ir for p in plan.points), key=lambda ir: lattice_of(ir)[0])
    n_obs = max(1, len(run.measures))
    need = chains_memory(ir, o.chains) + n_meas * o.chains * n_obs * 8
    check_memory(need, device, f"run {run.name} ({o.chains} chains of {lattice_of(ir)[0]} "
                 f"sites, {n_meas} measurements each)", run.span,
                 "use fewer chains or sweeps (or a larger thin), or a smaller lattice")  # fmt: skip


def activation_bytes(kind: str, options: Any, group: str, d: int) -> int:
    """Bytes per site and configuration of a gauge learner's forward pass: an L-CNN's link and
    plaquette matrices and, per layer, its convolved, bilinear and activated channels (complex
    matrices; kernel_size neighbours gathered by a convolution); a plain CNN's inputs and real
    channels."""
    planes, lin = d * (d - 1) // 2, LIN_BYTES.get(group, 64)
    channels = sum(getattr(options, "channels", [16]))
    if kind == "lcnn":
        k = getattr(options, "kernel_size", 1)
        return (d + planes + (6 + k * d) * channels) * lin + 16 * getattr(options, "hidden", 16)
    return 8 * (2 * d * 8 + 2 * channels)


def _check_regress_memory(plan: RegressPlan, device: torch.device) -> None:
    """Refuse a regress run whose data or training cannot fit on ``device``: the training and
    test configurations (pooled over the scan) with a heat-bath sweep's temporaries over the
    largest ensemble sampled at once, a minibatch's activations kept for the backward pass,
    and the full test set of the largest test lattice through the network (measured: the
    example lcnn_wilson_loops, 283 MiB; this estimate 0.4 GiB)."""
    run, o, ir = plan.run, plan.options, plan.points[0].model.ir
    sites, d, group, _ = lattice_of(ir)
    L = round(sites ** (1 / d)) if d else 0
    sizes = [L] + [x for x in o.test_L if x != L]
    link = d * LINK_BYTES.get(group, 64)
    data = (o.samples * sites + sum(o.test_samples * x**d for x in sizes)) * link
    per = max(1, o.samples // len(plan.points))
    sweep = max(per * sites, max(o.test_samples * x**d for x in sizes)) * link * LINK_COPIES
    act = max(activation_bytes(kind, opts, group, d) for _, kind, opts in plan.learners)
    train = 3 * min(o.batch_size, o.samples) * sites * act
    test = 3 * max(o.test_samples * x**d for x in sizes) * act
    check_memory(data + max(sweep, train, test), device, f"run {run.name} ({o.samples} training "
                 f"configurations of {sites} sites, tested on L = {sizes})", run.span,
                 "use fewer samples or test_samples, smaller test_L, a smaller batch_size or "
                 "fewer channels")  # fmt: skip


# ---------------------------------------------------------------- the sample task


def run_gauge_sample(task: TaskIR, program, ctx: RunContext) -> RunResult:
    """Sample every point of the scan; each finished point's row is written at once
    (``ctx.recorder``). A point's chains are checkpointed every ``ctx.checkpoint_seconds`` of
    work when the run has an output folder, so that ``--resume`` continues a killed run
    bit-identically (on the CPU) from where it was saved."""
    plan = plan_gauge_sample(task, program, ctx.sets,
                             compiled_within_memory(program.compile_ir, RunState.of(task)))
    run, options, points = plan.run, plan.options, plan.points
    n_meas = max(1, options.sweeps // options.thin)
    _check_sample_memory(plan, n_meas, ctx.device)
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
        """One sweep; after burn-in its acceptance is summed, every ``thin`` sweeps measured
        (HMC trajectories and measurements are checked finite every 64 measurements, every
        64 burn-in sweeps and at the end: one host sync each, not per sweep)."""
        opts = self.options
        self.U = self.sampler.step(self.U, self.streams)
        self.done += 1
        after = self.done - opts.burn_in  # measured-phase sweeps done
        if after > 0:
            self.acc += self.sampler.acceptance
            if after % opts.thin == 0:
                self._measure(after // opts.thin - 1)
        elif self.done % 64 == 0 or self.done == opts.burn_in:
            self._check_trajectories()

    def _at(self) -> str:
        """The point's scan values for a message (empty when the run scans nothing)."""
        values = ", ".join(f"{k} = {v:g}" if isinstance(v, float) else f"{k} = {v}"
                           for k, v in self.values.items())  # fmt: skip
        return f" at {values}" if values else ""

    def _check_trajectories(self) -> None:
        """A located P700 once most HMC trajectories of a chain had a non-finite dH (each is
        rejected, which keeps the chain exact; a chain stuck behind them samples nothing)."""
        stuck = self.sampler.divergence() if hasattr(self.sampler, "divergence") else None
        if stuck is None:
            return
        span = self.run.sampler_options.get("step_size", (None, self.run.span))[1]
        raise stuck_chain_error(
            stuck, "the energy change dH of HMC trajectories", self.options.burn_in,
            f"run {self.run.name}{self._at()}", span or self.run.span,
            "reduce step_size (or beta: a huge coupling overflows the force)")

    def _measure(self, k: int) -> None:
        for o in self.obs:
            self.series[o.name][k] = o(self.U, self.matter)
        if k % 64 == 63 or k == self.n_meas - 1:
            self._check_trajectories()
            for o in self.obs:
                finite = torch.isfinite(self.series[o.name][: k + 1])
                if not bool(finite.all()):
                    bad = int((~finite).nonzero()[0, 0])
                    raise PhysmlError(Diagnostic(
                        "P700", f"observable {o.name} became non-finite at measurement {bad} "
                        f"of run {self.run.name}{self._at()}", self._span(o.name),
                        "check beta and step_size; rows of points finished before were "
                        "kept"))  # fmt: skip

    def _span(self, name: str) -> Span | None:
        """Where observable ``name`` is measured (the run, if no measure names it)."""
        return next((m.span for m in self.run.measures if m.name == name), self.run.span)

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
    plan = plan_regress(task, program, ctx.sets,
                        compiled_within_memory(program.compile_ir, RunState.of(task)))
    _check_regress_memory(plan, device)
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
