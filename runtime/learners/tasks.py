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
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file
from tqdm import tqdm

from physml_lang.catalogue import CATALOGUE, Catalogue
from physml_lang.catalogue.boltzmann import (
    FAMILY,
    LEARNER_OBSERVABLES,
    AISOptions,
    GenerateOptions,
    GibbsSampleOptions,
)
from physml_lang.compiler.instance import RealData
from physml_lang.compiler.models.boltzmann import BoltzmannModel
from physml_lang.diagnostics import Diagnostic, PhysmlError
from physml_lang.ir.model import ModelIR
from physml_lang.ir.task import CallValue, TaskIR
from physml_lang.ir.text import print_ir
from physml_lang.ir.walk import fail, to_text
from physml_lang.runtime.plans.learners import (
    BoltzmannSamplePlan,
    RecallPlan,
    TrainPlan,
    TrainPoint,
    aux_ir,
    boltzmann_point_ir,
    gibbs_observable,
    physical_measures,
    plan_boltzmann_point,
    plan_boltzmann_sample,
    plan_recall,
    plan_train,
    plan_train_point,
    recall_ir,
    recall_patterns,
    statements,
    train_ir,
)

from .. import data as data_sources
from .. import outputs
from ..checkpoint import Checkpoint
from ..driver import RunContext, RunResult, run_scan
from ..observables import FLUCTUATIONS, base_series, estimate_fluctuation, estimate_mean
from ..random import RandomStreams
from ..sample_task import _compile_measures
from ..statistics import binning_analysis
from ..tasks import RunState, Task
from . import train as training
from .ais import ais_log_z, exact_log_z
from .gibbs import GibbsSampler, overlap
from .train import Divergence, Trainer, save_params

# ---------------------------------------------------------------- observables


@dataclass(frozen=True)
class LearnerMeasure:
    """A measure of a trained model, evaluated by the train task (:func:`_evaluate`); which
    ones need F(v) by enumeration is a static fact of the catalogue."""


@dataclass(frozen=True)
class GibbsObservable:
    """An observable of Boltzmann sample runs: ``series(series, field, name)`` -> (T, chains)
    from the Gibbs series of every field (``__energy__``: the energy) and the data field."""

    series: Callable[[dict[str, torch.Tensor], str, str], torch.Tensor]


def _energy_series(series: dict[str, torch.Tensor], field: str, name: str) -> torch.Tensor:
    return series["__energy__"]


def _magnetization_series(series: dict[str, torch.Tensor], field: str, name: str) -> torch.Tensor:
    return series[field].sum(-1)


def _mean_series(series: dict[str, torch.Tensor], field: str, name: str) -> torch.Tensor:
    return series[name[5:]].mean(-1)


ENERGY = GibbsObservable(_energy_series)
MAGNETIZATION = GibbsObservable(_magnetization_series)
MEAN = GibbsObservable(_mean_series)
LEARNER_MEASURE = LearnerMeasure()


# ---------------------------------------------------------------- shared


def _summary(run: RunState, program, ctx: RunContext, task: str, extra: dict) -> dict:
    """The run's summary (``ctx.recorder.summary``, what summary.json holds), started."""
    summary = ctx.recorder.summary
    summary.update({"run": run.name, "source": program.name, "model": "", "params": {},
                    "device": str(ctx.device), "seed": ctx.seed,
                    "sampler": {"name": task, **extra},
                    "scan": {s.name: s.values for s in run.scans}, "rows": [],
                    "complete": False})  # fmt: skip
    return summary


def _estimate(x: np.ndarray) -> dict:
    """Mean and standard error over independent samples (chains or patterns)."""
    return binning_analysis(np.asarray(x, dtype=np.float64)[None, :]).as_dict()


# ---------------------------------------------------------------- recall


def _recall_model(run: RunState, program, plan: RecallPlan,
                  point: dict) -> tuple[BoltzmannModel, str, np.ndarray]:  # fmt: skip
    """The compiled model of a recall point (as a Boltzmann model), the recalled field and
    its stored patterns (P, N)."""
    cm = program.compile_ir(recall_ir(run, plan, point), kind=FAMILY)
    field, xi = recall_patterns(run, cm.derivation)
    return cm, field, xi


def run_recall(task: TaskIR, program, ctx: RunContext) -> RunResult:
    """Cue each stored pattern (corrupted by ``flip``), run the dynamics, measure overlaps;
    each point's row is written at once."""
    device, out = ctx.device, ctx.out
    run = RunState.of(task)
    plan = plan_recall(run, program, ctx.sets)
    dyn, opts, points = plan.dynamics, plan.options, plan.points
    summary = _summary(run, program, ctx, "recall", dyn.model_dump())
    summary["model"] = plan.checker.name
    summary["recall"] = opts.model_dump()
    dynamics = CATALOGUE.updates.implementation(statements(run).recall["dynamics"].name, FAMILY)
    show = sys.stderr.isatty() if ctx.progress is None else ctx.progress
    g = torch.Generator(device=device).manual_seed(ctx.seed)
    bar = tqdm(total=len(points) * dyn.sweeps, disable=not show, desc=run.name, unit="sweep",
               leave=False)  # fmt: skip
    try:
        for point in points:
            cm, field, xi = _recall_model(run, program, plan, point)
            cm = cm.to(device)
            cm.freeze()
            summary["params"] = dict(cm.model.params)
            binary = cm.domains[field].kind == "binary"
            patterns = torch.as_tensor(xi, dtype=cm.dtype, device=device)
            stored = patterns.shape[0]
            if opts.patterns is not None:
                patterns = patterns[: opts.patterns]
            P, N = patterns.shape
            cg = torch.Generator(device=device).manual_seed(opts.seed)
            flips = torch.rand(patterns.shape, generator=cg, device=device) < opts.flip
            values = torch.tensor(cm.domains[field].values(), dtype=cm.dtype, device=device)
            flipped = values[0] + values[1] - patterns
            state = {field: torch.where(flips, flipped, patterns)}
            for f in cm.domains:
                if f != field:
                    state[f] = cm.random_state(P, g, device)[f]
            m0 = overlap(state[field], patterns, binary)
            beta = float("inf") if dyn.T == 0 else 1.0 / dyn.T
            sampler = dynamics(cm, beta, g, dyn.update)
            e_stored = cm.energy({**state, field: patterns}) / N
            sweeps = 0
            for _ in range(dyn.sweeps):
                new = sampler.sweep(state)
                sweeps += 1
                bar.update(1)
                converged = dyn.T == 0 and all(torch.equal(new[f], state[f]) for f in state)
                state = new
                if converged:
                    bar.update(dyn.sweeps - sweeps)
                    break
            m = overlap(state[field], patterns, binary)
            e_final = cm.energy(state) / N
            row = {**{k: v for k, v in point.items()}, "alpha": stored / N,
                   "overlap": _estimate(m.cpu().numpy()),
                   "overlap_initial": _estimate(m0.cpu().numpy()),
                   "retrieved": _estimate((m > 0.9).double().cpu().numpy()),
                   "energy_stored": _estimate(e_stored.cpu().numpy()),
                   "energy_final": _estimate(e_final.cpu().numpy()),
                   "sweeps": sweeps}  # fmt: skip
            summary["rows"].append(row)
            ctx.recorder.write()
    finally:
        bar.close()
    summary["complete"] = True
    ctx.recorder.write()
    files = _plots(out, run, summary, ["overlap", "retrieved"], "alpha") if out else []
    return RunResult(summary, out, files)


def _plots(out: Path, run: RunState, summary: dict, default: list[str], default_x: str) -> list:
    files = []
    rows = summary["rows"]
    title = f"{summary['model']} ({run.name})"
    plots = run.plots or [None]
    for i, p in enumerate(plots):
        names = (list(p.observables) if p else []) or [m.name for m in run.measures] or default
        names = [n for n in names if any(n in r for r in rows)]
        x = (p.x if p and p.x else None) or default_x
        f = outputs.plot_rows(out, rows, x, names, p.marks if p else None,
                              f"plot{i if i else ''}.png", title, p.logx if p else False,
                              p.logy if p else False)  # fmt: skip
        if f:
            files.append(f)
    return files


# ---------------------------------------------------------------- train


def _train_point(run: RunState, program, plan: TrainPlan,
                 point: dict) -> tuple[ModelIR, BoltzmannModel, TrainPoint]:  # fmt: skip
    """The learner's IR and compiled model at one scan point, with its data and layout
    checked."""
    ir = train_ir(plan, point)
    cm = program.compile_ir(ir, kind=FAMILY)
    return ir, cm, plan_train_point(run, program, plan, cm.derivation, program.data_loader, point)


def _aux_model(program, call: CallValue, kind: str | None = None):
    """The compiled model a train statement names (``truth = SK(N = 16, seed = 1)``)."""
    return program.compile_ir(aux_ir(program, call), kind=kind)


@dataclass
class PhysicalMeasures:
    """Observables of generated samples, measured with a physical model (``physical =
    Ising(L = 6)``, compiled as a lattice model): the measures, their expressions' compiler
    and kernels."""

    model: Any
    measures: list
    compiler: Any
    kernels: dict


def _physical_measures(run: RunState, program) -> PhysicalMeasures | None:
    """The physical model and its measured expressions, compiled when a train run starts
    (their names and expressions are checked by compiling them: torch)."""
    measures = physical_measures(run)
    if not measures:
        return None
    cm = _aux_model(program, statements(run).train["models"]["physical"], kind="lattice")
    compiler, kernels = _compile_measures(cm, measures)
    return PhysicalMeasures(cm, measures, compiler, kernels)


def _settings(run: RunState, plan: TrainPlan, ctx: RunContext) -> dict[str, Any]:
    """What a checkpoint of the run may be resumed with: every input of its numbers (the
    learner's IR at each point, the data, the scan, every option of training and evaluation,
    the seed and the device kind), one key per option so that a mismatch names it; the data's
    content is checked by the point (:meth:`TrainingPoint.restore`)."""
    st = statements(run)
    out: dict[str, Any] = {
        "run": run.name, "learner": plan.checker.name,
        "model": [print_ir(train_ir(plan, p)) for p in plan.points],
        "points": plan.points, "data": plan.options.data,
        "measures": [m.name + (f" = {to_text(m.expr)}" if m.expr is not None else "")
                     for m in run.measures],
        "seed": ctx.seed, "device": ctx.device.type}  # fmt: skip
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


class TrainingPoint:
    """One scan point of a train run for the driver's :func:`run_scan`: ``done`` epochs,
    saved after each (the trainer's tensors, the point's history, its data's hash), then the
    point's row from ``evaluate``. ``diverged`` turns a :class:`Divergence` into the P700."""

    def __init__(self, trainer: Trainer, split: torch.Generator, digest: bytes,
                 evaluate: Callable[[TrainingPoint], dict],
                 diverged: Callable[[TrainingPoint, Divergence], None],
                 span: Any) -> None:  # fmt: skip
        self.trainer, self.split, self.digest, self.span = trainer, split, digest, span
        self.evaluate, self.diverged = evaluate, diverged
        self.history: list[dict] = []
        self.done = 0

    def advance(self, bar, save: Callable[[TrainingPoint], None], every: float | None) -> None:
        while self.trainer.epoch < self.trainer.epochs:
            try:
                entry = self.trainer.run_epoch()
            except Divergence as exc:
                self.diverged(self, exc)
                raise
            self.history.append(entry)
            self.done = self.trainer.epoch
            bar.update(1)
            recon = entry["reconstruction"]
            bar.set_postfix(loss=f"{entry['loss']:.4g}",
                            recon="-" if recon is None else f"{recon:.3g}")  # fmt: skip
            if every is not None:  # with an output folder: a checkpoint after every epoch
                save(self)

    def tensors(self) -> dict[str, torch.Tensor]:
        t = self.trainer.tensors()
        t["trainer/generator"] = t.pop("generator")
        t["generator"] = self.split.get_state()
        t["step"] = torch.tensor(self.trainer.step_count)
        t["data/sha256"] = torch.tensor(list(self.digest), dtype=torch.uint8)
        for n in HISTORY:
            if self.history and self.history[0][n] is not None:
                t[f"history/{n}"] = torch.tensor([h[n] for h in self.history],
                                                 dtype=torch.float64)  # fmt: skip
        return t

    def restore(self, saved: Checkpoint) -> None:
        """Continue from a checkpoint of this point: other data, or tensors of other shapes
        than this point's trainer holds, are a located P602."""
        t = dict(saved.tensors)
        what = "the checkpoint"
        if bytes(t.get("data/sha256", torch.zeros(0, dtype=torch.uint8)).tolist()) != self.digest:
            raise PhysmlError(Diagnostic("P602", f"{what} was made with other data", self.span,
                                         "resume with the data it was made with, or use another "
                                         "--out"))  # fmt: skip
        t["generator"] = t.pop("trainer/generator", t["generator"])
        for name, (shape, dtype) in self.trainer.expected().items():
            got = t.get(name)
            if got is None or tuple(got.shape) != shape or got.dtype != dtype:
                have = "absent" if got is None else f"{tuple(got.shape)} {got.dtype}"
                raise PhysmlError(Diagnostic("P602", f"{what}: tensor '{name}' is {have}, "
                                             f"expected {shape} {dtype}", self.span,
                                             "delete it, or run without --resume to start "
                                             "afresh"))  # fmt: skip
        self.done = int(saved.state["done"])
        self.trainer.restore(t, self.done, int(t["step"]))
        lists = {n: t[f"history/{n}"].tolist() if f"history/{n}" in t else [None] * self.done
                 for n in HISTORY}  # fmt: skip
        self.history = [{"epoch": i + 1, **{n: lists[n][i] for n in HISTORY}}
                        for i in range(self.done)]  # fmt: skip

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


def run_train(task: TaskIR, program, ctx: RunContext) -> RunResult:
    """Train the learner at every scan point and evaluate it, each point a :class:`TrainingPoint`
    of the driver's :func:`run_scan`: each finished point's row is written at once, training
    checkpoints after every epoch (``checkpoint.safetensors``, removed when the run
    completes), and ``--resume`` (or the deprecated ``resume = true``) continues a killed run
    bit-identically on the CPU (other settings: a located P602). The summary's histories of
    finished points are read back from its summary.json on resume."""
    device, out = ctx.device, ctx.out
    run = RunState.of(task)
    plan = plan_train(run, program, ctx.sets)
    opts = plan.options
    physical = _physical_measures(run, program)
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
    split = torch.Generator().manual_seed(ctx.seed)  # the train/test split, the same each point
    span = statements(run).train["span"]

    def start(k: int, streams: RandomStreams) -> TrainingPoint:
        if summary.get("resumed") and len(summary["history"]) < k:
            summary["history"] = _finished_histories(out, k)
        point = plan.points[k]
        _, cm, fed = _train_point(run, program, plan, point)
        data, values = fed.data, fed.values
        cm = cm.to(device)
        summary["params"] = dict(cm.model.params)
        g = torch.Generator(device=device).manual_seed(ctx.seed + 1000 * k)
        x = torch.as_tensor(values, dtype=cm.dtype, device=device)
        perm = torch.randperm(len(x), generator=split.manual_seed(ctx.seed)).to(device)
        n_test = int(round(opts.test * len(x)))
        test, train = x[perm[:n_test]], x[perm[n_test:]]
        trainer = Trainer(cm, train, *plan.objective, *plan.optimizer, *plan.schedule,
                          opts.epochs, opts.batch, g, opts.max_weight, x.shape[1])  # fmt: skip
        suffix = f"_{k}" if len(plan.points) > 1 else ""
        digest = hashlib.sha256(np.ascontiguousarray(values).tobytes()).digest()

        def evaluate(p: TrainingPoint) -> dict:
            summary["history"].append(p.history)
            if out is not None:
                save_params(cm, out / f"params{suffix}.safetensors")
            row = {**point, "epochs": trainer.epoch}
            last = p.history[-1] if p.history else {}
            row.update(_evaluate(run, program, cm, trainer, train, test, last, data, g, out,
                                 suffix, files, physical))  # fmt: skip
            return row

        return TrainingPoint(trainer, split, digest, evaluate, diverged, run.span)

    def diverged(p: TrainingPoint, exc: Divergence) -> None:
        summary["history"].append(p.history)
        summary["diverged"] = str(exc)
        ctx.recorder.write()
        kept = (f"the last good checkpoint (epoch {p.trainer.epoch}) is kept in {ckpt}"
                if ckpt is not None and ckpt.is_file() else "no checkpoint was written")  # fmt: skip
        raise PhysmlError(Diagnostic(
            "P700", f"training diverged at epoch {p.trainer.epoch + 1}, step "
            f"{p.trainer.step_count}: {exc}", span,
            f"lower the learning rate or add weight_decay; {kept}")) from None  # fmt: skip

    def finish(k: int, rows: list[dict]) -> None:
        summary["rows"].extend(rows)

    run_scan(ctx, run.span, len(plan.points), _settings(run, plan, ctx), start, finish,
             opts.epochs, run.name, "epoch")  # fmt: skip
    if out is not None:
        files += _history_plot(out, summary)
        if len(summary["rows"]) > 1:
            x = run.scans[0].name if run.scans else "epochs"
            names = [m.name for m in run.measures] or ["loss"]
            f = outputs.plot_rows(out, summary["rows"], x, names, run.plots[0].marks
                                  if run.plots else None, "plot.png", summary["model"],
                                  run.plots[0].logx if run.plots else False,
                                  run.plots[0].logy if run.plots else False)  # fmt: skip
            if f:
                files.append(f)
    return RunResult(summary, out, files)


def _evaluate(run, program, cm, trainer, train, test, last, data, g, out, suffix, files,
              physical: PhysicalMeasures | None) -> dict:  # fmt: skip
    """Measures of a trained model: likelihoods, couplings, observables of generated samples."""
    row: dict[str, Any] = {}
    names = [m.name for m in run.measures] or ["loss"]
    row["loss"] = {"mean": last.get("loss"), "stderr": None}
    if "reconstruction" in names:
        row["reconstruction"] = {"mean": last.get("reconstruction"), "stderr": None}
    evald = test if len(test) else train
    ais = statements(run).ais or AISOptions()
    if "log_likelihood" in names or "log_z" in names:
        log_z, err = ais_log_z(cm, ais.betas, ais.chains, g)
        row["log_z"] = {"mean": log_z, "stderr": err}
        if "log_likelihood" in names:
            with torch.no_grad():
                f = trainer.free_energy(evald).double().cpu().numpy()
            se = math.sqrt(err**2 + f.var(ddof=1) / len(f)) if len(f) > 1 else err
            row["log_likelihood"] = {"mean": float(-f.mean() - log_z), "stderr": se}
    if "exact_log_likelihood" in names or "exact_kl" in names:
        lz = exact_log_z(cm)
        with torch.no_grad():
            f = trainer.free_energy(evald).double().cpu().numpy()
        ll = float(-f.mean() - lz)
        se = float(f.std(ddof=1) / math.sqrt(len(f))) if len(f) > 1 else None
        if "exact_log_likelihood" in names:
            row["exact_log_likelihood"] = {"mean": ll, "stderr": se}
        if "exact_kl" in names:
            # KL(p_data || p_model) = sum_v p_data log p_data - mean_data log p_model(v)
            _, counts = np.unique(evald.cpu().numpy(), axis=0, return_counts=True)
            pd = counts / counts.sum()
            row["exact_kl"] = {"mean": float((pd * np.log(pd)).sum() - ll), "stderr": se,
                               "data_entropy": float(-(pd * np.log(pd)).sum())}  # fmt: skip
    models = statements(run).train["models"]
    if "coupling_error" in names:
        truth = _aux_model(program, models["truth"]).model
        T = data.meta.get("T", 1.0)
        errs, scale = [], []
        for name, arr in truth.arrays.items():
            if name in cm.params:
                learned = cm.params[name].detach().double().cpu().numpy()
                true = np.asarray(arr.values) / T
                if arr.on == "pairs":
                    iu = np.triu_indices(true.shape[0], 1)
                    learned, true = learned[iu], true[iu]
                errs.append((learned - true).ravel())
                scale.append(true.ravel())
        e, s = np.concatenate(errs), np.concatenate(scale)
        row["coupling_error"] = {"mean": float(np.sqrt((e**2).mean())), "stderr": None,
                                 "relative": float(np.sqrt((e**2).mean() / (s**2).mean()))}  # fmt: skip
    gen = statements(run).generate
    if gen is not None or physical is not None:
        gen = gen or GenerateOptions()
        samples, series = _generate(cm, trainer.field, gen, g)
        samples, series = samples[:, : trainer.visible], series[..., : trainer.visible]
        if physical is not None:
            row.update(_physical(physical, series, data))
        if out is not None:
            f = _sample_grid(out / f"samples{suffix}.png", samples, data)
            if f:
                files.append(f)
    return row


@torch.no_grad()
def _generate(cm: BoltzmannModel, field: str, gen: GenerateOptions, g) -> tuple:
    cm.freeze()
    try:
        sampler = GibbsSampler(cm, 1.0, g)
        state = cm.random_state(gen.chains, g)
        for _ in range(gen.burn_in):
            state = sampler.sweep(state)
        series = []
        for _ in range(gen.sweeps // gen.thin):
            for _ in range(gen.thin):
                state = sampler.sweep(state)
            series.append(state[field].clone())
    finally:
        cm.unfreeze()
    return state[field], torch.stack(series)  # (chains, n), (T, chains, n)


def _physical(physical: PhysicalMeasures, series: torch.Tensor, data: RealData) -> dict:
    """Observables of a physical model (energy, magnetization, expressions) on generated
    visible configurations ``series`` (sweeps, chains, n_visible), with binning errors over
    (sweeps, chains)."""
    cm, measures, compiler, kernels = (physical.model, physical.measures, physical.compiler,
                                       physical.kernels)  # fmt: skip
    Tn, C, n = series.shape
    field = next(iter(cm.fields))
    x = series.reshape(Tn * C, *cm.lattice.shape).to(cm.dtype).cpu()
    state = {field: x}
    e = cm.energy(state)
    m = cm.magnetization(state)
    T = data.meta.get("T", 1.0)
    beta = torch.full_like(e, 1.0 / T)
    env = compiler.env(state, e, m, beta)
    out = {}
    base = base_series(e.reshape(Tn, C).double().numpy(), m.reshape(Tn, C).double().numpy())
    for meas in measures:
        if meas.name in kernels:
            v = torch.as_tensor(kernels[meas.name](env), dtype=torch.float64).expand(Tn * C)
            out[meas.name] = estimate_mean(v.reshape(Tn, C).numpy()).as_dict()
        elif meas.name in FLUCTUATIONS:
            n_sites = cm.lattice.n_sites
            out[meas.name] = estimate_fluctuation(meas.name, base, 1.0 / T, n_sites).as_dict()
        elif meas.name == "energy":
            out[meas.name] = estimate_mean(base["E"]).as_dict()
        elif meas.name == "magnetization":
            out[meas.name] = estimate_mean(base["M"]).as_dict()
    return out


def _sample_grid(path: Path, samples: torch.Tensor, data: RealData) -> Path | None:
    """A PNG grid of generated configurations, shaped like the data (or square)."""
    shape = data.values.shape[1:]
    n = samples.shape[1]
    if len(shape) != 2:
        side = int(round(math.sqrt(n)))
        if side * side != n:
            return None
        shape = (side, side)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = min(64, samples.shape[0])
    cols = int(math.ceil(math.sqrt(k)))
    rows = int(math.ceil(k / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 0.8, rows * 0.8), squeeze=False)
    imgs = samples[:k].reshape(k, *shape).cpu().numpy()
    for ax in axes.flat:
        ax.axis("off")
    for ax, img in zip(axes.flat, imgs):
        ax.imshow(img, cmap="gray_r", interpolation="nearest")
    fig.tight_layout(pad=0.1)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    outputs._atomic_write(path, buf.getvalue())
    return path


def _history_plot(out: Path, summary: dict) -> list[Path]:
    rows = []
    for k, hist in enumerate(summary["history"]):
        for h in hist:
            rows.append({"epoch": h["epoch"], f"loss_{k}": {"mean": h["loss"], "stderr": 0.0}})
    names = sorted({n for r in rows for n in r if n != "epoch"})
    if not names:
        return []
    f = outputs.plot_rows(out, rows, "epoch", names[:6], None, "training.png",
                          f"{summary['model']}: training loss")  # fmt: skip
    return [f] if f else []


# ---------------------------------------------------------------- sample (Gibbs) of Boltzmann models


def _load_params(run: RunState, path: Path, cm: BoltzmannModel) -> None:
    """Copy the learned arrays of a parameter file (checked by the plan: names and shapes)
    into the compiled model."""
    try:
        tensors = load_file(str(path))
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the user's input
        fail("P600", f"cannot read {path}: {exc}", statements(run).learned_params[1])
    with torch.no_grad():
        for k, t in tensors.items():
            cm.array(k).copy_(t.to(cm.array(k).dtype))


def _boltzmann_point(run: RunState, program, plan: BoltzmannSamplePlan,
                     point: dict) -> tuple[BoltzmannModel, float]:  # fmt: skip
    """The compiled model of one point of a Gibbs sample run, with its learned parameters
    loaded, and beta."""
    cm = program.compile_ir(boltzmann_point_ir(run, program, plan, point), kind=FAMILY)
    checked = plan_boltzmann_point(run, program, cm.derivation, point)
    if checked.params_file is not None:
        _load_params(run, checked.params_file, cm)
    return cm, checked.beta


@torch.no_grad()
def gibbs_series(cm: BoltzmannModel, opts: GibbsSampleOptions, beta: float, g, on_sweep=None,
                 sampler_class: type = GibbsSampler) -> dict[str, torch.Tensor]:  # fmt: skip
    """Gibbs chains of a Boltzmann model: per measurement, every field's units, (T, chains, n)
    and the energy (T, chains). ``sampler_class``: the ``gibbs`` entry's implementation."""
    cm.freeze()
    try:
        sampler = sampler_class(cm, beta, g, opts.update)
        state = cm.random_state(opts.chains, g)
        for _ in range(opts.burn_in):
            state = sampler.sweep(state)
            if on_sweep:
                on_sweep()
        series: dict[str, list] = {f: [] for f in cm.domains}
        energy = []
        for _ in range(max(1, opts.sweeps // opts.thin)):
            for _ in range(opts.thin):
                state = sampler.sweep(state)
                if on_sweep:
                    on_sweep()
            for f in cm.domains:
                series[f].append(state[f].clone())
            energy.append(cm.energy(state))
    finally:
        cm.unfreeze()
    out = {f: torch.stack(x) for f, x in series.items()}
    out["__energy__"] = torch.stack(energy)
    return out


def run_boltzmann_sample(task: TaskIR, program, ctx: RunContext) -> RunResult:
    """Gibbs sampling of a Boltzmann model (block updates of fields that do not interact with
    themselves, site by site otherwise); each point's row is written at once, per-unit means to
    moments.npz at the end."""
    device, out = ctx.device, ctx.out
    run = RunState.of(task)
    plan = plan_boltzmann_sample(run, program, ctx.sets)
    checker, entry, opts, points = plan.checker, plan.entry, plan.options, plan.points
    summary = _summary(run, program, ctx, "gibbs", opts.model_dump())
    summary["sampler"]["name"] = run.sampler
    summary["model"] = checker.name
    show = sys.stderr.isatty() if ctx.progress is None else ctx.progress
    bar = tqdm(total=len(points) * (opts.burn_in + opts.sweeps), disable=not show,
               desc=run.name, unit="sweep", leave=False)  # fmt: skip
    g = torch.Generator(device=device).manual_seed(ctx.seed)
    moments: dict[str, np.ndarray] = {}
    names = [m.name for m in run.measures] or ["energy"]
    try:
        for k, point in enumerate(points):
            cm, beta = _boltzmann_point(run, program, plan, point)
            cm = cm.to(device)
            summary["params"] = dict(cm.model.params)
            series = gibbs_series(cm, opts, beta, g, lambda: bar.update(1), entry.implementation)
            field = next(iter(cm.domains))
            row: dict[str, Any] = dict(point)
            for name in names:
                observable = CATALOGUE.observables.implementation(gibbs_observable(name), FAMILY)
                x = observable.series(series, field, name)
                row[name] = binning_analysis(x.double().cpu().numpy()).as_dict()
            for f in cm.domains:
                x = series[f].double().cpu().numpy()  # (T, chains, n)
                est = [binning_analysis(x[:, :, i]) for i in range(x.shape[2])]  # analysis only
                moments[f"{f}_mean_{k}"] = np.array([e.mean for e in est])
                moments[f"{f}_stderr_{k}"] = np.array([e.stderr for e in est])
            summary["rows"].append(row)
            ctx.recorder.write()
    finally:
        bar.close()
    summary["complete"] = True
    ctx.recorder.write()
    files: list[Path] = []
    if out is not None:
        buf = io.BytesIO()
        np.savez(buf, **moments)
        outputs._atomic_write(out / "moments.npz", buf.getvalue())
        files.append(out / "moments.npz")
    return RunResult(summary, out, files)


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
    for name in LEARNER_OBSERVABLES:
        catalogue.observables.bind(name, LEARNER_MEASURE, family=FAMILY)
    data_sources.bind(catalogue)
