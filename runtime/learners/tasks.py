"""Run statements and tasks of the energy-based learners.

``recall`` (Hopfield retrieval)::

    run capacity {
        model Hopfield(N = 1000)
        recall xi via glauber(T = 0, update = sequential, sweeps = 30), flip = 0.05
        scan P in [50, 100, 150]
        plot overlap, x = alpha
    }

``train`` (Boltzmann machines, RBMs, inverse Ising)::

    run fit {
        train rbm via pcd(k = 1, chains = 100), data = digits, epochs = 20, batch = 64
        optimizer adam(lr = 0.01, weight_decay = 1e-4)
        schedule cosine(min_factor = 0.1)
        generate chains = 64, sweeps = 1000
        ais betas = 2000, chains = 100
        measure log_likelihood
    }

The words ``train``, ``recall``, ``optimizer``, ``schedule``, ``generate`` and ``ais`` are
run statements (``physml_lang.check.tasks``); what they name -- the objectives (cd, pcd), the
recall dynamics (glauber, an ``updates`` entry), optimisers, schedules, the ``gibbs`` sampler
and the observables of train and sample runs -- are catalogue entries of family boltzmann
(schemas in ``physml_lang/catalogue/boltzmann.py``), bound by :func:`bind`. Each run starts
from its static plan (:mod:`physml_lang.runtime.plans.learners`, what ``physml check`` runs),
checked here on the compiled model's derivation, then runs it with torch inside the run
driver's context (``runtime/driver.py``): each finished point's row goes to disk at once
through ``ctx.recorder``; each train point is a scan point of the driver's ``run_scan``, which
checkpoints it after every epoch in the one checkpoint format (``runtime/checkpoint.py``) and
continues from it only with ``--resume``.

Random numbers: point k of a run draws from ``ctx.streams.fork(k)`` (chains, examples and
patterns on the leading axis), so its numbers do not depend on the points before it; the
train/test split and the corruption of recall cues come from families of their own, the same
at every point. What is measured lives in :mod:`.measures`, the figures in :mod:`.plots`, the
compiled models of a point in :mod:`.models`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from physml_lang.catalogue import CATALOGUE, Catalogue
from physml_lang.catalogue.boltzmann import DEEP_OBSERVABLES, FAMILY, LEARNER_OBSERVABLES
from physml_lang.check.constants import evaluate
from physml_lang.diagnostics import Diagnostic, PhysmlError
from physml_lang.ir import expr as E
from physml_lang.ir.model import GraphIR, ModelIR
from physml_lang.ir.task import TaskIR
from physml_lang.ir.text import print_ir
from physml_lang.ir.walk import to_text
from physml_lang.runtime.plans.learners import (
    TrainPlan,
    boltzmann_point_ir,
    deep_learner,
    gibbs_observable,
    plan_boltzmann_sample,
    plan_recall,
    plan_train,
    recall_ir,
    statements,
    train_ir,
)

from .. import data as data_sources
from ..checkpoint import Checkpoint
from ..device import check_memory
from ..driver import RunContext, RunResult, ScanPoint, run_scan
from ..random import RandomStreams
from ..statistics import binning_analysis
from ..tasks import RunState, Task
from . import measures
from . import train as training
from .autoencoder import DeepAutoencoder
from .dbn import DBN
from .deep import run_deep
from .gibbs import GibbsSampler, overlap, random_state
from .measures import ENERGY, LEARNER_MEASURE, MAGNETIZATION, MEAN, estimate
from .models import boltzmann_point, recall_model, train_model
from .parallel import record_digests
from .plots import history_plot, run_plots, sample_grid, scan_plot, write_moments
from .train import Divergence, Trainer, save_params

# families of random numbers a run draws apart from its points' (ctx.streams.fork(k), k = 0, 1,
# ...): paths no point takes, the same whichever point reads them
SPLIT_STREAMS = 0x73706C6974  # "split": the train/test split of the data
CUE_STREAMS = 0x63756573  # "cues": the corruption of recall cues, keyed by the recall's seed


def _summary(run: RunState, program, ctx: RunContext, task: str, extra: dict) -> dict:
    """The run's summary (``ctx.recorder.summary``, what summary.json holds), started."""
    summary = ctx.recorder.summary
    summary.update({"run": run.name, "source": program.name, "model": "", "params": {},
                    "device": str(ctx.device), "seed": ctx.seed,
                    "sampler": {"name": task, **extra},
                    "scan": {s.name: s.values for s in run.scans}, "rows": [],
                    "complete": False})  # fmt: skip
    return summary


# ---------------------------------------------------------------- memory estimates

# bytes per entry of a learned (or fixed) array: its float64 realisation, the float32 tensor
# and a learnable's parameter copy, gradient and Adam's two moments, and the coupling matrices
# sampling builds from it (C, its upper triangle, C + C^T) -- all dense (n_i x n_j)
ARRAY_BYTES = 48
# bytes per unit of a chain or example: the float32 state, a proposal, the conditional fields
# and probabilities of its block, the uniforms (float64)
UNIT_BYTES = 48


def set_sizes(ir: ModelIR) -> dict[str, int]:
    """Sites of each site set of a Boltzmann model's graph or lattice (``sites``: all)."""
    lat = ir.lattice
    n = lat.n_sites if lat is not None else 1
    if isinstance(lat, GraphIR) and lat.kind == "bipartite":
        return {"visible": lat.sizes[0], "hidden": lat.sizes[1], "sites": n}
    return {"sites": n}


def model_bytes(ir: ModelIR) -> int:
    """Bytes of a compiled Boltzmann model: its arrays, dense over the sets they live on (on
    edges or pairs: n_i x n_j couplings; an array with k site indices: n^k), and its data."""
    sets = set_sizes(ir)
    n = sets["sites"]
    entries = 0
    for a in ir.arrays:
        if a.on in sets:
            entries += sets[a.on]
        elif a.on is not None:  # edges, pairs, bonds: a dense coupling matrix
            entries += sets.get("visible", n) * sets.get("hidden", n)
        else:
            entries += n ** len(a.indices)
    data = 0
    for d in ir.data:
        size = 1
        for x in d.shape or ():
            size *= _extent(ir, x)
        data += size
    return ARRAY_BYTES * entries + 8 * data


def _extent(ir: ModelIR, x: E.Expr) -> int:
    """A data declaration's extent (a number or a model parameter), 1 where it is neither."""
    try:
        v = evaluate(x, {p.name: p.value for p in ir.params})
    except (PhysmlError, KeyError, TypeError, ValueError):
        return 1
    return int(v) if isinstance(v, int | float) and not isinstance(v, bool) else 1


def units(ir: ModelIR) -> int:
    """Units of one configuration: the sites of every field's set."""
    sets = set_sizes(ir)
    return sum(sets.get(f.on, sets["sites"]) for f in ir.fields)


def _check_learner_memory(run: RunState, irs: list[ModelIR], rows: int, recorded: int,
                          device: torch.device, hint: str) -> None:  # fmt: skip
    """Refuse, before any model is compiled, a learner run whose largest point cannot fit:
    the model's arrays, ``rows`` configurations (chains, examples, minibatches) with an
    update's temporaries, and ``recorded`` configurations kept (float32)."""
    need, worst = 0, irs[0]
    for ir in irs[:64]:
        b = model_bytes(ir) + units(ir) * (UNIT_BYTES * rows + 4 * recorded)
        if b > need:
            need, worst = b, ir
    check_memory(need, device, f"run {run.name} (model {worst.name}: {units(worst)} units, "
                 f"{rows} chains or examples at once)", run.span, hint)  # fmt: skip


# ---------------------------------------------------------------- recall


def run_recall(task: TaskIR, program, ctx: RunContext) -> RunResult:
    """Cue each stored pattern (corrupted by ``flip``), run the dynamics, measure overlaps;
    each point's row is written at once. Pattern p's cue is corrupted by stream p of the
    recall's own seed; point k's dynamics draw from ``ctx.streams.fork(k)``."""
    run = RunState.of(task)
    plan = plan_recall(run, program, ctx.sets)
    dyn, opts, points = plan.dynamics, plan.options, plan.points
    irs = [recall_ir(run, plan, p) for p in points[:64]]
    cues = max(_patterns(ir, statements(run).recall["patterns"]) for ir in irs)
    _check_learner_memory(run, irs, min(cues, opts.patterns or cues), 0, ctx.device,
                          "use fewer sites or patterns")  # fmt: skip
    summary = _summary(run, program, ctx, "recall", dyn.model_dump())
    summary["model"] = plan.checker.name
    summary["recall"] = opts.model_dump()
    dynamics = CATALOGUE.updates.implementation(statements(run).recall["dynamics"].name, FAMILY)

    def start(k: int, streams: RandomStreams) -> RecallPoint:
        cm, field, xi = recall_model(run, program, plan, points[k])
        summary["params"] = dict(cm.model.params)
        return RecallPoint(cm.to(ctx.device), field, xi, points[k], plan, dynamics, streams)

    settings = {"run": run.name, "points": points, "dynamics": dyn.model_dump(),
                "recall": opts.model_dump(), "seed": ctx.seed}  # fmt: skip
    run_scan(ctx, run.span, len(points), settings, start,
             lambda k, rows: summary["rows"].extend(rows), dyn.sweeps, run.name)  # fmt: skip
    out = ctx.out
    files = run_plots(out, run, summary, ["overlap", "retrieved"], "alpha") if out else []
    return RunResult(summary, out, files)


def _patterns(ir: ModelIR, name: str) -> int:
    """Patterns (rows) of a recalled data declaration, 1 where its shape is not a number."""
    shape = ir.data_map[name].shape or ()
    return _extent(ir, shape[0]) if shape else 1


class RecallPoint(ScanPoint):
    """One recall point: every (corrupted) pattern a chain, ``step`` one sweep of the dynamics
    (at T = 0 the point ends when a sweep changes nothing), ``rows`` the overlaps reached."""

    saves = False  # a few sweeps: a killed run redoes the point

    def __init__(self, cm, field: str, xi, point: dict, plan, dynamics, streams: RandomStreams):
        self.cm, self.field, self.point, self.T = cm, field, point, plan.dynamics.T
        opts = plan.options
        cm.freeze()
        self.binary = cm.domains[field].kind == "binary"
        patterns = torch.as_tensor(xi, dtype=cm.dtype, device=streams.device)
        self.stored = patterns.shape[0]
        if opts.patterns is not None:
            patterns = patterns[: opts.patterns]
        self.patterns = patterns
        cues = RandomStreams(opts.seed, streams.device, path=(CUE_STREAMS,))
        flips = cues.uniform(patterns.shape, torch.float64) < opts.flip
        values = torch.tensor(cm.domains[field].values(), dtype=cm.dtype, device=streams.device)
        flipped = values[0] + values[1] - patterns
        self.state = {**random_state(cm, streams, patterns.shape[0]),
                      field: torch.where(flips, flipped, patterns)}  # fmt: skip
        self.m0 = overlap(self.state[field], patterns, self.binary)
        beta = float("inf") if self.T == 0 else 1.0 / self.T
        self.sampler = dynamics(cm, beta, streams, plan.dynamics.update)
        self.total, self.sweeps = plan.dynamics.sweeps, 0

    def step(self) -> None:
        new = self.sampler.sweep(self.state)
        self.sweeps += 1
        converged = self.T == 0 and all(torch.equal(new[f], self.state[f]) for f in self.state)
        self.state = new
        self.done = self.total if converged else self.sweeps

    def rows(self) -> list[dict]:
        cm, field, patterns = self.cm, self.field, self.patterns
        N = patterns.shape[1]
        m = overlap(self.state[field], patterns, self.binary)
        e_stored = cm.energy({**self.state, field: patterns}) / N
        e_final = cm.energy(self.state) / N
        cm.unfreeze()
        return [{**self.point, "alpha": self.stored / N,
                 "overlap": estimate(m.cpu().numpy()),
                 "overlap_initial": estimate(self.m0.cpu().numpy()),
                 "retrieved": estimate((m > 0.9).double().cpu().numpy()),
                 "energy_stored": estimate(e_stored.cpu().numpy()),
                 "energy_final": estimate(e_final.cpu().numpy()),
                 "sweeps": self.sweeps}]  # fmt: skip


# ---------------------------------------------------------------- train


def _settings(run: RunState, plan: TrainPlan, ctx: RunContext) -> dict[str, Any]:
    """What a checkpoint of the run may be resumed with: every input of its numbers (the
    learner's IR at each point, the data, the scan, every option of training and evaluation,
    the seed; not the device: the random streams are the same on every device), one key per
    option so that a mismatch names it; the data's content is checked by the point
    (:meth:`TrainingPoint.restore`)."""
    st = statements(run)
    out: dict[str, Any] = {
        "run": run.name, "learner": plan.checker.name,
        "model": [print_ir(train_ir(plan, p)) for p in plan.points],
        "points": plan.points, "data": plan.options.data,
        "measures": [m.name + (f" = {to_text(m.expr)}" if m.expr is not None else "")
                     for m in run.measures],
        "seed": ctx.seed}  # fmt: skip
    train = plan.options.model_dump(exclude={"resume", "data"})
    out.update({f"train.{n}": v for n, v in train.items()})
    for group, (name, opts) in (("objective", plan.objective), ("optimizer", plan.optimizer),
                                ("schedule", plan.schedule)):  # fmt: skip
        out[group] = name
        out.update({f"{group}.{n}": v for n, v in opts.model_dump().items()})
    for group, given in (("generate", st.generate), ("ais", st.ais)):
        if given is not None:
            out.update({f"{group}.{n}": v for n, v in given.model_dump().items()})
    out.update({name: print_ir(call) for name, call in st.train["models"].items()})
    return out


HISTORY = ("loss", "reconstruction", "lr")  # the numbers of an epoch's history entry


class TrainingPoint(ScanPoint):
    """One scan point of a train run for the driver's :func:`run_scan`: one step is one epoch
    of the trainer (drawing from the point's streams), saved after each (``save_every = 1``:
    the trainer's tensors, the point's history, its data's hash; the driver adds the draw
    counter), then the point's row from ``evaluate``. ``diverged`` turns a
    :class:`Divergence` into the P700."""

    save_every = 1

    def __init__(self, trainer: Trainer, digest: bytes,
                 evaluate: Callable[[TrainingPoint], dict],
                 diverged: Callable[[TrainingPoint, Divergence], None],
                 span: Any) -> None:  # fmt: skip
        self.trainer, self.digest, self.span = trainer, digest, span
        self.evaluate, self.diverged = evaluate, diverged
        self.history: list[dict] = []
        self.total = trainer.epochs

    @property
    def done(self) -> int:
        """Epochs trained."""
        return self.trainer.epoch

    def step(self) -> None:
        """One epoch; its mean loss, reconstruction error and learning rate to the history."""
        try:
            entry = self.trainer.run_epoch()
        except Divergence as exc:
            self.diverged(self, exc)
            raise
        self.history.append(entry)

    def postfix(self) -> dict[str, str]:
        if not self.history:
            return {}
        loss, recon = self.history[-1]["loss"], self.history[-1]["reconstruction"]
        return {"loss": f"{loss:.4g}", "recon": "-" if recon is None else f"{recon:.3g}"}

    def tensors(self) -> dict[str, torch.Tensor]:
        t = self.trainer.tensors()
        t["step"] = torch.tensor(self.trainer.step_count, device="cpu")
        t["data/sha256"] = torch.tensor(list(self.digest), dtype=torch.uint8, device="cpu")
        for n in HISTORY:
            if self.history and self.history[0][n] is not None:
                t[f"history/{n}"] = torch.tensor([h[n] for h in self.history],
                                                 dtype=torch.float64, device="cpu")  # fmt: skip
        return t

    def restore(self, saved: Checkpoint) -> None:
        """Continue from a checkpoint of this point: other data, or tensors of other shapes
        than this point's trainer holds, are a located P602."""
        t = saved.tensors
        what = "the checkpoint"
        if bytes(t.get("data/sha256", torch.zeros(0, dtype=torch.uint8, device="cpu")).tolist()) != self.digest:
            raise PhysmlError(Diagnostic("P602", f"{what} was made with other data", self.span,
                                         "resume with the data it was made with, or use another "
                                         "--out"))  # fmt: skip
        for name, (shape, dtype) in self.trainer.expected().items():
            got = t.get(name)
            if got is None or tuple(got.shape) != shape or got.dtype != dtype:
                have = "absent" if got is None else f"{tuple(got.shape)} {got.dtype}"
                raise PhysmlError(Diagnostic("P602", f"{what}: tensor '{name}' is {have}, "
                                             f"expected {shape} {dtype}", self.span,
                                             "delete it, or run without --resume to start "
                                             "afresh"))  # fmt: skip
        done = int(saved.state["done"])
        self.trainer.restore(t, done, int(t["step"]))
        lists = {n: t[f"history/{n}"].tolist() if f"history/{n}" in t else [None] * done
                 for n in HISTORY}  # fmt: skip
        self.history = [{"epoch": i + 1, **{n: lists[n][i] for n in HISTORY}}
                        for i in range(done)]  # fmt: skip

    def rows(self) -> list[dict]:
        return [self.evaluate(self)]


def _finished_histories(out: Path | None, n: int) -> list[list[dict]]:
    """The training histories of the ``n`` points a resumed run has finished (their rows come
    from the checkpoint), read from the summary.json written with those rows: it is always
    written before the checkpoint that follows a row, so it holds at least ``n``."""
    try:
        saved = json.loads((out / "summary.json").read_text())["history"]  # type: ignore[operator]
    except (OSError, TypeError, ValueError, KeyError):
        saved = []
    return (list(saved) + [[]] * n)[:n]


def _check_train_memory(run: RunState, plan: TrainPlan, device: torch.device) -> None:
    """The train run's estimate: persistent chains, minibatches (data and negatives), the
    chains of ``generate`` and ``ais``, and the configurations ``generate`` records."""
    st, opts = statements(run), plan.options
    chains = getattr(plan.objective[1], "chains", 0)
    gen, ais = st.generate, st.ais
    rows = chains + 3 * opts.batch + (gen.chains if gen else 0) + (ais.chains if ais else 0)
    recorded = gen.chains * max(1, gen.sweeps // gen.thin) if gen else 0
    _check_learner_memory(run, [train_ir(plan, p) for p in plan.points[:64]], rows, recorded,
                          device, "use a smaller model, fewer chains, a smaller batch, or "
                          "fewer generated sweeps")  # fmt: skip


def run_train(task: TaskIR, program, ctx: RunContext) -> RunResult:
    """Train the learner at every scan point and evaluate it, each point a :class:`TrainingPoint`
    of the driver's :func:`run_scan`: each finished point's row is written at once, training
    checkpoints after every epoch (``checkpoint.safetensors``, removed when the run
    completes), and ``--resume`` (or the deprecated ``resume = true``) continues a killed run
    bit-identically on the CPU (other settings: a located P602). The summary's histories of
    finished points are read back from its summary.json on resume."""
    device, out = ctx.device, ctx.out
    run = RunState.of(task)
    if deep_learner(run, program) is not None:  # dbn, autoencoder: a stack of RBMs
        return run_deep(task, program, ctx, _summary, SPLIT_STREAMS)
    plan = plan_train(run, program, ctx.sets)
    opts = plan.options
    _check_train_memory(run, plan, ctx.device)
    physical = measures.compile_physical(run, program)
    summary = _summary(run, program, ctx, "train",
                       {"objective": plan.objective[0], **plan.objective[1].model_dump(),
                        "optimizer": plan.optimizer[0], **plan.optimizer[1].model_dump(),
                        "schedule": plan.schedule[0],
                        **opts.model_dump(exclude={"resume"})})  # fmt: skip
    summary["model"] = plan.checker.name
    summary["history"] = []
    files: list[Path] = []
    ckpt = ctx.checkpoint_path()
    ctx.resume = ctx.resume or bool(opts.resume)  # resume = true: the deprecated --resume
    span = statements(run).train["span"]

    def start(k: int, streams: RandomStreams) -> TrainingPoint:
        if summary.get("resumed") and len(summary["history"]) < k:
            summary["history"] = _finished_histories(out, k)
        point = plan.points[k]
        _, cm, fed = train_model(run, program, plan, point)
        data, values = fed.data, fed.values
        cm = cm.to(device)
        summary["params"] = dict(cm.model.params)
        x = torch.as_tensor(values, dtype=cm.dtype, device=device)
        # the run's split, not the point's: the same examples held out at every point
        perm = ctx.streams.fork(SPLIT_STREAMS).permutation(len(x)).to(device)
        n_test = int(round(opts.test * len(x)))
        test, train = x[perm[:n_test]], x[perm[n_test:]]
        trainer = Trainer(cm, train, *plan.objective, *plan.optimizer, *plan.schedule,
                          opts.epochs, opts.batch, streams, opts.max_weight, x.shape[1],
                          ctx.world)  # fmt: skip
        suffix = f"_{k}" if len(plan.points) > 1 else ""
        digest = hashlib.sha256(np.ascontiguousarray(values).tobytes()).digest()

        def evaluate(p: TrainingPoint) -> dict:
            summary["history"].append(p.history)
            record_digests(summary, trainer.params, ctx.world)
            if out is not None:
                save_params(cm, out / f"params{suffix}.safetensors")
            row = {**point, "epochs": trainer.epoch}
            last = p.history[-1] if p.history else {}
            measured, samples = measures.evaluate(run, program, cm, trainer, train, test, last,
                                                  data, streams, physical)  # fmt: skip
            row.update(measured)
            if out is not None and samples is not None:
                f = sample_grid(out / f"samples{suffix}.png", samples, data)
                if f:
                    files.append(f)
            return row

        return TrainingPoint(trainer, digest, evaluate,
                             lambda p, exc: diverged(p, exc, point), run.span)  # fmt: skip

    def diverged(p: TrainingPoint, exc: Divergence, point: dict) -> None:
        summary["history"].append(p.history)
        summary["diverged"] = str(exc)
        ctx.recorder.write()
        kept = (f"the last good checkpoint (epoch {p.trainer.epoch}) is kept in {ckpt}"
                if ckpt is not None and ckpt.is_file() else "no checkpoint was written")  # fmt: skip
        rows = len(summary["rows"])
        if rows and out is not None:
            kept += f"; the {rows} finished row(s) are on disk"
        at = ", ".join(f"{k} = {v:g}" if isinstance(v, float) else f"{k} = {v}"
                       for k, v in point.items())  # fmt: skip
        raise PhysmlError(Diagnostic(
            "P700", f"training diverged at epoch {p.trainer.epoch + 1}, step "
            f"{p.trainer.step_count}" + (f" at {at}" if at else "") + f": {exc}", span,
            f"lower the learning rate or add weight_decay; {kept}")) from None  # fmt: skip

    def finish(k: int, rows: list[dict]) -> None:
        summary["rows"].extend(rows)

    run_scan(ctx, run.span, len(plan.points), _settings(run, plan, ctx), start, finish,
             opts.epochs, run.name, "epoch")  # fmt: skip
    if out is not None:
        files += history_plot(out, summary)
        files += scan_plot(out, run, summary)
    return RunResult(summary, out, files)


# ---------------------------------------------------------------- sample (Gibbs) of Boltzmann models


def run_boltzmann_sample(task: TaskIR, program, ctx: RunContext) -> RunResult:
    """Gibbs sampling of a Boltzmann model (block updates of fields that do not interact with
    themselves, site by site otherwise), point k's chains drawing from ``ctx.streams.fork(k)``;
    each point's row is written at once, per-unit means to moments.npz at the end."""
    run = RunState.of(task)
    plan = plan_boltzmann_sample(run, program, ctx.sets)
    checker, entry, opts, points = plan.checker, plan.entry, plan.options, plan.points
    _check_learner_memory(run, [boltzmann_point_ir(run, program, plan, p) for p in points[:64]],
                          opts.chains, opts.chains * max(1, opts.sweeps // opts.thin),
                          ctx.device, "use fewer chains or sweeps (or a larger thin), or a "
                          "smaller model")  # fmt: skip
    summary = _summary(run, program, ctx, "gibbs", opts.model_dump())
    summary["sampler"]["name"] = run.sampler
    summary["model"] = checker.name
    moments: dict[str, np.ndarray] = {}
    names = [m.name for m in run.measures] or ["energy"]

    def start(k: int, streams: RandomStreams) -> GibbsChains:
        cm, beta = boltzmann_point(run, program, plan, points[k])
        summary["params"] = dict(cm.model.params)
        return GibbsChains(cm.to(ctx.device), beta, opts, entry.implementation, streams,
                           points[k], names)  # fmt: skip

    def finish(k: int, rows: list[dict]) -> None:
        summary["rows"].extend(rows)
        moments.update(measures.unit_moments(current[k].series, k))

    current: dict[int, GibbsChains] = {}

    def started(k: int, streams: RandomStreams) -> GibbsChains:
        current[k] = start(k, streams)
        return current[k]

    settings = {"run": run.name, "points": points, "sampler": opts.model_dump(),
                "measures": names, "seed": ctx.seed}  # fmt: skip
    per_point = opts.burn_in + max(1, opts.sweeps // opts.thin) * opts.thin
    run_scan(ctx, run.span, len(points), settings, started, finish, per_point, run.name)
    files = [write_moments(ctx.out, moments)] if ctx.out is not None else []
    return RunResult(summary, ctx.out, files)


class GibbsChains(ScanPoint):
    """The Gibbs chains of one point: ``step`` a burn-in sweep or ``thin`` sweeps and a
    recorded state (every field's units and the energy), ``rows`` the measures' estimates
    (binning analysis over the recorded series, chains as independent series)."""

    def __init__(self, cm, beta: float, opts, sampler_class, streams: RandomStreams,
                 point: dict, names: list[str]):  # fmt: skip
        self.cm, self.opts, self.point, self.names = cm, opts, point, names
        cm.freeze()
        self.sampler = sampler_class(cm, beta, streams, opts.update)
        self.state = random_state(cm, streams, opts.chains)
        self.n_meas = max(1, opts.sweeps // opts.thin)
        self.total = opts.burn_in + self.n_meas * opts.thin
        self.recorded: dict[str, list[torch.Tensor]] = {f: [] for f in cm.domains}
        self.energy: list[torch.Tensor] = []

    @torch.no_grad()
    def step(self) -> None:
        if self.done < self.opts.burn_in:
            self.state = self.sampler.sweep(self.state)
            self.done += 1
            return
        for _ in range(self.opts.thin):
            self.state = self.sampler.sweep(self.state)
        for f in self.cm.domains:
            self.recorded[f].append(self.state[f].clone())
        self.energy.append(self.cm.energy(self.state))
        self.done += self.opts.thin

    def tensors(self) -> dict[str, torch.Tensor]:
        out = {f"state/{f}": v for f, v in self.state.items()}
        out.update({f"series/{f}": torch.stack(x) for f, x in self.recorded.items() if x})
        if self.energy:
            out["series/__energy__"] = torch.stack(self.energy)
        return out

    def restore(self, saved: Checkpoint) -> None:
        t = saved.tensors
        self.done = int(saved.state["done"])
        self.state = {f: t[f"state/{f}"].to(v.device) for f, v in self.state.items()}
        for f in self.recorded:
            self.recorded[f] = list(t[f"series/{f}"].unbind()) if f"series/{f}" in t else []
        self.energy = list(t["series/__energy__"].unbind()) if "series/__energy__" in t else []

    @property
    def series(self) -> dict[str, torch.Tensor]:
        """{field: (T, chains, n)} and ``__energy__`` (T, chains)."""
        out = {f: torch.stack(x) for f, x in self.recorded.items()}
        out["__energy__"] = torch.stack(self.energy)
        return out

    @torch.no_grad()
    def rows(self) -> list[dict]:
        series, field = self.series, next(iter(self.cm.domains))
        row: dict[str, Any] = dict(self.point)
        for name in self.names:
            observable = CATALOGUE.observables.implementation(gibbs_observable(name), FAMILY)
            x = observable.series(series, field, name)
            row[name] = binning_analysis(x.double().cpu().numpy()).as_dict()
        self.cm.unfreeze()
        return [row]


def bind(catalogue: Catalogue) -> None:
    """Attach this capability's implementations to its catalogue entries (top layer only):
    tasks, sampler and recall dynamics, training methods, observables and data sources. Their
    static checks are bound by :mod:`physml_lang.runtime.plans.learners`."""
    catalogue.tasks.bind("recall", Task(run_recall))
    catalogue.tasks.bind("train", Task(run_train))
    catalogue.tasks.bind("sample", Task(run_boltzmann_sample), family=FAMILY)
    catalogue.samplers.bind("gibbs", GibbsSampler, family=FAMILY)
    catalogue.updates.bind("glauber", GibbsSampler, family=FAMILY)
    training.bind(catalogue)
    for name, observable in (("energy", ENERGY), ("magnetization", MAGNETIZATION),
                             ("mean_<field>", MEAN)):  # fmt: skip
        catalogue.observables.bind(name, observable, family=FAMILY)
    for name in (*LEARNER_OBSERVABLES, *DEEP_OBSERVABLES):
        catalogue.observables.bind(name, LEARNER_MEASURE, family=FAMILY)
    # deep learners: a stack of RBMs (greedy training by the train task, runtime/learners/deep.py)
    catalogue.learners.bind("dbn", DBN, family=FAMILY)
    catalogue.learners.bind("autoencoder", DeepAutoencoder, family=FAMILY)
    data_sources.bind(catalogue)
