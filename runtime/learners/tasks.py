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
(schemas in ``physml_lang/catalogue/boltzmann.py``), bound by :func:`bind`.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from tqdm import tqdm

from physml_lang.catalogue import CATALOGUE, Catalogue, Entry, Registry
from physml_lang.catalogue.boltzmann import (
    FAMILY,
    AISOptions,
    GenerateOptions,
    GibbsSampleOptions,
    RecallOptions,
    TrainOptions,
)
from physml_lang.check.model import validate_options
from physml_lang.check.program import stdlib_index, stdlib_model
from physml_lang.check.tasks import STATEMENTS
from physml_lang.compiler.instance import RealData
from physml_lang.compiler.models.boltzmann import BoltzmannModel
from physml_lang.diagnostics import Diagnostic, PhysmlError, Span, did_you_mean
from physml_lang.ir.model import GraphIR
from physml_lang.ir.task import CallValue, StatementIR, TaskIR, Word
from physml_lang.ir.walk import fail

from .. import data as data_sources
from .. import outputs
from ..data import check_feeds
from ..observables import FLUCTUATIONS, base_series, estimate_fluctuation, estimate_mean
from ..sample_task import RunResult, _compile_measures
from ..statistics import binning_analysis
from ..tasks import RunState, Task, TaskCheck, plain
from . import train as training
from .ais import ais_log_z, exact_log_z
from .gibbs import GibbsSampler, overlap
from .train import MAX_LATENT, Divergence, Trainer, latent_units, save_params

Impl = TypeVar("Impl")


def _call_of(v: Any, span: Span | None) -> CallValue:
    """A name or a call (``cd(1)``, ``adam(lr = 0.01)``) as a call."""
    if isinstance(v, Word):
        return CallValue(v.name, span=v.span, name_span=v.span)
    if not isinstance(v, CallValue):
        fail("P300", "expected a name or a call here, e.g. cd(1) or adam(lr = 0.01)", span)
    return v


def _options(call: CallValue, schema, what: str, positional: tuple[str, ...] = ()):
    values, spans = {}, {}
    if len(call.args) > len(positional):
        fail("P302", f"{what} takes its options by name", call.span)
    for name, a in zip(positional, call.args):
        values[name], spans[name] = plain(a), call.span
    for k in call.kwargs:
        values[k.name], spans[k.name] = plain(k.value), k.span
    values = {k: (str(v) if isinstance(v, Word) else v) for k, v in values.items()}
    for k, v in list(values.items()):
        info = schema.model_fields.get(k)
        if info is not None and info.annotation is float and isinstance(v, int) and not isinstance(v, bool):
            values[k] = float(v)
    return validate_options(schema, values, spans, call.span, what)


def _registry_call(call: CallValue, registry: Registry, what: str, positional=()):
    """The validated options of a call naming an entry of ``registry`` (of Boltzmann models or
    shared by every kind)."""
    entry = registry.get(call.name, FAMILY)
    if entry is None:
        known = registry.names(FAMILY)
        fail("P200", f"unknown {what} '{call.name}'", call.name_span,
             did_you_mean(call.name, set(known)) or f"{what}s: " + ", ".join(known))  # fmt: skip
    return _options(call, entry.schema, f"{what} {call.name}", positional)


# ---------------------------------------------------------------- observables


@dataclass(frozen=True)
class LearnerMeasure:
    """A measure of a trained model, evaluated by the train task (:func:`_evaluate`).
    ``enumerated``: it needs F(v), which for a general BM sums over its hidden units."""

    enumerated: bool = False


@dataclass(frozen=True)
class GibbsObservable:
    """An observable of Boltzmann sample runs: ``series(series, field, name)`` -> (T, chains)
    from the Gibbs series of every field (``__energy__``: the energy) and the data field."""

    series: Callable[[dict[str, torch.Tensor], str, str], torch.Tensor]


def _observable(name: str, kind: type[Impl]) -> Impl | None:
    """The implementation of the Boltzmann observable ``name`` if it is one of ``kind`` (a
    learner measure or a Gibbs observable), else None."""
    entry = CATALOGUE.observables.get(name, FAMILY)
    impl = entry.implementation if entry is not None else None
    return impl if isinstance(impl, kind) else None


def _observable_names(kind: type) -> list[str]:
    """The Boltzmann observables of one kind (for hints)."""
    return [e.name for e in CATALOGUE.observables
            if e.family == FAMILY and isinstance(e.implementation, kind)]  # fmt: skip


def _gibbs_observable(name: str) -> GibbsObservable | None:
    """``energy``, ``magnetization`` or ``mean_<field>`` (any ``mean_...``)."""
    return _observable("mean_<field>" if name.startswith("mean_") else name, GibbsObservable)


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
# needs F(v): for general BMs, by enumerating the hidden units
ENUMERATED_MEASURE = LearnerMeasure(enumerated=True)


# ---------------------------------------------------------------- run statements


class LearnerStatements:
    """``recall``, ``train``, ``optimizer``, ``schedule``, ``generate``, ``ais``, ``data`` and
    ``params`` of a run, read from its IR and validated against their schemas."""

    def __init__(self, task: TaskIR):
        self.span = task.span
        self.recall: dict | None = None
        self.train: dict | None = None
        self.optimizer: CallValue | None = None
        self.schedule: CallValue | None = None
        self.generate: GenerateOptions | None = None
        self.ais: AISOptions | None = None
        self.data: tuple[str, Span | None] | None = None
        self.learned_params: tuple[str, Span | None] | None = None
        for stmt in task.statements:
            handler = getattr(self, f"_{stmt.word}", None)
            if handler is not None:
                handler(stmt)

    def _recall(self, stmt: StatementIR) -> None:
        first = stmt.items[0]
        if first.kind != "via" or not isinstance(first.value, Word):
            fail("P100", "recall names the stored patterns and the dynamics", stmt.span,
                 "recall xi via glauber(T = 0, update = sequential), flip = 0.1")  # fmt: skip
        call = _call_of(first.via, first.span)
        _registry_call(call, CATALOGUE.updates, "dynamics")
        named = {}
        for item in stmt.items[1:]:
            if item.kind != "named":
                fail("P100", "recall options are named: flip = 0.1, patterns = 20", item.span)
            named[item.name] = (plain(item.value), item.span)
        self.recall = {"patterns": first.value.name, "span": first.value.span,
                       "dynamics": call, "named": named}  # fmt: skip

    def _train(self, stmt: StatementIR) -> None:
        first = stmt.items[0]
        if first.kind != "via" or not isinstance(first.value, Word):
            fail("P100", "train names a learner and an objective", stmt.span,
                 "train rbm via cd(1), epochs = 20, batch = 64")  # fmt: skip
        call = _call_of(first.via, first.span)
        _registry_call(call, CATALOGUE.objectives, "objective", ("k",))
        named, models = {}, {}
        for item in stmt.items[1:]:
            if item.kind != "named":
                fail("P100", "train options are named: epochs = 20", item.span)
            if item.name in ("truth", "physical"):
                models[item.name] = _call_of(item.value, item.value_span)
                continue
            v = item.value
            named[item.name] = (str(v) if isinstance(v, Word) else plain(v), item.span)
        values = {k: v for k, (v, _) in named.items()}
        validate_options(TrainOptions, values, {k: s for k, (_, s) in named.items()}, stmt.span,
                         "train")  # fmt: skip
        self.train = {"learner": first.value.name, "span": first.value.span, "objective": call,
                      "named": named, "models": models}  # fmt: skip

    def _single(self, stmt: StatementIR, registry: Registry, what: str) -> CallValue:
        if len(stmt.items) != 1 or stmt.items[0].kind != "value":
            fail("P100", f"'{stmt.word}' takes one {what}", stmt.span)
        call = _call_of(stmt.items[0].value, stmt.items[0].value_span)
        _registry_call(call, registry, what)
        return call

    def _optimizer(self, stmt: StatementIR) -> None:
        self.optimizer = self._single(stmt, CATALOGUE.optimisers, "optimizer")

    def _schedule(self, stmt: StatementIR) -> None:
        self.schedule = self._single(stmt, CATALOGUE.schedules, "schedule")

    def _named(self, stmt: StatementIR, schema):
        values, spans = {}, {}
        for item in stmt.items:
            if item.kind != "named":
                fail("P100", f"'{stmt.word}' takes named options", item.span,
                     STATEMENTS[stmt.word].usage)  # fmt: skip
            values[item.name], spans[item.name] = plain(item.value), item.span
        return validate_options(schema, values, spans, stmt.span, stmt.word)

    def _generate(self, stmt: StatementIR) -> None:
        self.generate = self._named(stmt, GenerateOptions)

    def _ais(self, stmt: StatementIR) -> None:
        self.ais = self._named(stmt, AISOptions)

    def _data(self, stmt: StatementIR) -> None:
        if len(stmt.items) != 1 or not isinstance(stmt.items[0].value, Word):
            fail("P100", "'data' names a data declaration: data digits", stmt.span)
        self.data = (stmt.items[0].value.name, stmt.items[0].value_span)

    def _params(self, stmt: StatementIR) -> None:
        """``params "fit/params.safetensors"`` (or ``params load("...")``): learned arrays, by
        name, replace the model's declared values."""
        item = stmt.items[0] if len(stmt.items) == 1 else None
        value = item.value if item is not None and item.kind == "value" else None
        if isinstance(value, CallValue) and value.name == "load" and len(value.args) == 1:
            value = value.args[0]
        if not isinstance(value, str):
            fail("P100", "'params' takes one file of learned parameters", stmt.span,
                 STATEMENTS["params"].usage)  # fmt: skip
        self.learned_params = (value, item.value_span)


def _statements(run: RunState) -> LearnerStatements:
    if not hasattr(run, "learning"):
        run.learning = LearnerStatements(run.ir)
    return run.learning


# ---------------------------------------------------------------- shared


def _points(run: RunState, sets: dict[str, Any] | None) -> tuple[list[dict], dict]:
    """Scan points (every combination) with ``let`` values; ``--set`` fixes a variable."""
    sets = dict(sets or {})
    scans = []
    for s in run.scans:
        values = [sets.pop(s.name)] if s.name in sets else s.values
        scans.append((s.name, values))
    lets = {k: v for k, (v, _) in run.lets.items()}
    combos = list(itertools.product(*[v for _, v in scans])) or [()]
    points = [{**lets, **dict(zip([n for n, _ in scans], c))} for c in combos]
    return points, sets


def _split(values: dict, model_params: set[str]) -> tuple[dict, dict]:
    model = {k: v for k, v in values.items() if k in model_params}
    return model, values


def _summary(run: RunState, program, device, seed, task: str, extra: dict) -> dict:
    return {"run": run.name, "source": program.name, "model": "", "params": {},
            "device": str(device), "seed": seed, "sampler": {"name": task, **extra},
            "scan": {s.name: s.values for s in run.scans}, "rows": [], "complete": False}  # fmt: skip


def _estimate(x: np.ndarray) -> dict:
    """Mean and standard error over independent samples (chains or patterns)."""
    return binning_analysis(np.asarray(x, dtype=np.float64)[None, :]).as_dict()


# ---------------------------------------------------------------- recall


def _plan_recall(run: RunState, program, sets):
    spec = _statements(run).recall
    checker = program.checker_for(run.ir)
    dyn = _registry_call(spec["dynamics"], CATALOGUE.updates, "dynamics")
    named = {k: v for k, (v, _) in spec["named"].items()}
    opts = validate_options(RecallOptions, named, {k: s for k, (_, s) in spec["named"].items()},
                            run.span, "recall")  # fmt: skip
    points, rest = _points(run, sets)
    params = set(checker.param_names)
    for k in list(rest):
        if k in params:
            for p in points:
                p[k] = rest.pop(k)
        elif k in type(dyn).model_fields:
            dyn = dyn.model_copy(update={k: rest.pop(k)})
        elif k in RecallOptions.model_fields:
            opts = opts.model_copy(update={k: rest.pop(k)})
    if rest:
        k = next(iter(rest))
        fail("P200", f"--set {k}: not a model parameter, scan variable or recall option", None)
    for s in run.scans:
        if s.name not in params:
            fail("P200", f"cannot scan '{s.name}': not a parameter of model {checker.name}",
                 s.span, did_you_mean(s.name, params))  # fmt: skip
    model_args = {k: v for k, (v, _) in run.model_args.items()}
    return checker, dyn, opts, points, model_args


def _recall_model(run, program, checker, point, model_args):
    args = {**model_args, **{k: v for k, v in point.items() if k in checker.param_names}}
    ir = checker.instantiate(args)
    spec = _statements(run).recall
    if spec["patterns"] not in ir.data_map:
        fail("P200", f"model {ir.name} has no data '{spec['patterns']}'", spec["span"],
             did_you_mean(spec["patterns"], set(ir.data_map)) or "declare: data xi: spin[P, N] = "
             "random(seed = 1)")  # fmt: skip
    cm = program.compile_ir(ir, kind="boltzmann")
    data: RealData = cm.model.data[spec["patterns"]]
    ir = cm.model
    field = next(iter(cm.domains))
    n = cm.sets[cm.field_sets[field]]
    xi = check_feeds(data, cm.domains[field], (n,), spec["span"], f"field '{field}'")
    return ir, cm, field, xi


def check_recall(task: TaskIR, program) -> None:
    run = RunState.of(task)
    checker, dyn, opts, points, model_args = _plan_recall(run, program, {})
    _recall_model(run, program, checker, points[0], model_args)


def run_recall(task: TaskIR, program, *, sets, device, seed, out, progress) -> RunResult:
    """Cue each stored pattern (corrupted by ``flip``), run the dynamics, measure overlaps."""
    run = RunState.of(task)
    checker, dyn, opts, points, model_args = _plan_recall(run, program, sets)
    summary = _summary(run, program, device, seed, "recall", dyn.model_dump())
    summary["model"] = checker.name
    summary["recall"] = opts.model_dump()
    dynamics = CATALOGUE.updates.implementation(_statements(run).recall["dynamics"].name, FAMILY)
    show = sys.stderr.isatty() if progress is None else progress
    started = time.time()
    g = torch.Generator(device=device).manual_seed(seed)
    bar = tqdm(total=len(points) * dyn.sweeps, disable=not show, desc=run.name, unit="sweep",
               leave=False)  # fmt: skip
    try:
        for point in points:
            ir, cm, field, xi = _recall_model(run, program, checker, point, model_args)
            cm = cm.to(device)
            cm.freeze()
            summary["params"] = dict(ir.params)
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
            if run.measures:
                keep = {m_.name for m_ in run.measures}
                unknown = keep - set(row)
                if unknown:
                    name = sorted(unknown)[0]
                    fail("P200", f"unknown recall observable '{name}'",
                         next(m_.span for m_ in run.measures if m_.name == name),
                         "recall measures: overlap, overlap_initial, retrieved, energy_stored, "
                         "energy_final")  # fmt: skip
            summary["rows"].append(row)
            summary["elapsed_s"] = round(time.time() - started, 3)
            if out is not None:
                outputs.write_summary(out, summary)
    finally:
        bar.close()
    summary["complete"] = True
    files = []
    if out is not None:
        outputs.write_summary(out, summary)
        files = _plots(out, run, summary, ["overlap", "retrieved"], "alpha")
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


def _learner(run: RunState, program):
    """The learner's model checker and fixed arguments: a ``learner`` declaration naming a
    model (learner rbm = RBM(Nv = 64, Nh = 32)) or a model name."""
    spec = _statements(run).train
    name = spec["learner"]
    decl = program.learners.get(name)
    if decl is not None:
        mname, span = decl.call.name, decl.call.name_span
        args = {k.name: plain(k.value) for k in decl.call.kwargs}
        if decl.call.args:
            fail("P302", "model parameters are given by name", decl.call.span)
    else:
        mname, span, args = name, spec["span"], {}
    if run.model is not None:  # 'model RBM(Nh = 64)' gives (more) arguments of the learner's model
        if run.model != mname:
            fail("P201", f"the run's model {run.model} is not the learner's model {mname}",
                 run.model_span, f"write 'model {mname}(...)' or train {run.model}")  # fmt: skip
        args.update({k: v for k, (v, _) in run.model_args.items()})
    if mname not in program.models:
        hint = (f"import it: import {mname}" if mname in stdlib_index()
                else did_you_mean(mname, set(program.models) | set(program.learners)))  # fmt: skip
        fail("P200", f"unknown learner or model '{mname}'", span, hint)
    return program.models[mname], args


def _model_named(program, name: str, span):
    """A model a train statement names (``truth = SK(...)``): declared, imported or stdlib."""
    checker = program.models.get(name) or stdlib_model(name)
    if checker is None:
        fail("P200", f"unknown model '{name}'", span, did_you_mean(name, set(stdlib_index())))
    return checker


def _top_data(program, name: str, span, values: dict) -> RealData:
    decl = program.data.get(name)
    if decl is None:
        fail("P200", f"no data declaration '{name}'", span,
             did_you_mean(name, set(program.data)) or "declare it: data X: binary = "
             "load(\"x.npz\")")  # fmt: skip
    return program.data_loader(decl, values)


def _plan_train(run: RunState, program, sets):
    st = _statements(run)
    spec = st.train
    checker, learner_args = _learner(run, program)
    named = {k: v for k, (v, _) in spec["named"].items()}
    spans = {k: s for k, (_, s) in spec["named"].items()}
    if st.data is not None:
        named.setdefault("data", st.data[0])
        spans.setdefault("data", st.data[1])
    points, rest = _points(run, sets)
    params = set(checker.param_names)
    for k in list(rest):
        if k in params:
            learner_args[k] = rest.pop(k)
        elif k in TrainOptions.model_fields:
            named[k] = rest.pop(k)
    if rest:
        k = next(iter(rest))
        fail("P200", f"--set {k}: not a learner parameter, scan variable or train option", None,
             did_you_mean(k, params | set(TrainOptions.model_fields)))  # fmt: skip
    opts = validate_options(TrainOptions, named, spans, run.span, "train")
    objective = spec["objective"]
    oopts = _registry_call(objective, CATALOGUE.objectives, "objective", ("k",))
    opt_call = st.optimizer or CallValue("adam", span=run.span, name_span=run.span)
    optopts = _registry_call(opt_call, CATALOGUE.optimisers, "optimizer")
    sch_call = st.schedule or CallValue("constant", span=run.span, name_span=run.span)
    schopts = _registry_call(sch_call, CATALOGUE.schedules, "schedule")
    if opts.data is None:
        fail("P400", f"run {run.name} does not say what to train on", run.span,
             "add 'data = NAME' to the train statement")  # fmt: skip
    return {"checker": checker, "learner_args": learner_args, "opts": opts, "points": points,
            "objective": (objective.name, oopts), "optimizer": (opt_call.name, optopts),
            "schedule": (sch_call.name, schopts), "params": params}  # fmt: skip


def _train_point(run, program, plan, point):
    checker = plan["checker"]
    args = dict(plan["learner_args"])
    args.update({k: v for k, v in point.items() if k in plan["params"]})
    cm = program.compile_ir(checker.instantiate(args), kind="boltzmann")
    ir = cm.model
    field = next(iter(cm.domains))
    n = cm.sets[cm.field_sets[field]]
    spec = _statements(run).train
    spans = spans_of(spec)
    span = spans.get("data", spec["span"])
    visible = _visible(plan["opts"].visible, ir, n, spans.get("visible", spec["span"]))
    data = _top_data(program, plan["opts"].data, span, point)
    what = f"field '{field}' of {checker.name}"
    if visible != n:
        what = f"the {visible} visible sites of {what}"
    values = check_feeds(data, cm.domains[field], (visible,), data.span, what)
    return cm, data, values.reshape(len(values), -1)


def _visible(value, ir, n: int, span) -> int:
    """The number of visible sites: a number or the name of an integer model parameter."""
    if value is None:
        return n
    if isinstance(value, str):
        if value not in ir.params:
            fail("P200", f"visible = {value}: not a parameter of model {ir.name}", span,
                 did_you_mean(value, set(ir.params)) or "give a number or a model parameter")  # fmt: skip
        value = ir.params[value]
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= n:
        fail("P400", f"visible = {value!r}: must be a whole number from 1 to the {n} sites of "
             f"the data field", span)  # fmt: skip
    return int(value)


def spans_of(spec) -> dict:
    return {k: s for k, (_, s) in spec["named"].items()}


def check_train(task: TaskIR, program) -> None:
    run = RunState.of(task)
    plan = _plan_train(run, program, {})
    cm, data, values = _train_point(run, program, plan, plan["points"][0])
    trainer = Trainer(cm, torch.as_tensor(values[:2]), *plan["objective"], *plan["optimizer"],
                      *plan["schedule"], plan["opts"].epochs, plan["opts"].batch,
                      torch.Generator(), visible=values.shape[1])  # fmt: skip
    if trainer.latent:
        n_lat = latent_units(cm, trainer.field, trainer.visible)
        for m in run.measures:
            measure = _observable(m.name, LearnerMeasure)
            if measure is not None and measure.enumerated and n_lat > MAX_LATENT:
                fail("P400", f"{m.name} of this Boltzmann machine sums over its {n_lat} hidden "
                     f"units by enumeration (at most {MAX_LATENT})", m.span,
                     "use fewer hidden units")  # fmt: skip
    models = _statements(run).train["models"]
    for name in ("truth", "physical"):
        call = models.get(name)
        if call is not None:
            _aux_model(program, call)
    _check_measures(run, cm, models.get("physical"), program)


def _aux_model(program, call: CallValue, kind: str | None = None):
    """The compiled model a train statement names (``truth = SK(N = 16, seed = 1)``)."""
    checker = _model_named(program, call.name, call.name_span)
    args = {k.name: plain(k.value) for k in call.kwargs}
    ir = checker.instantiate(args, {k.name: k.span for k in call.kwargs})
    return program.compile_ir(ir, kind=kind)


def _check_measures(run: RunState, cm, physical_call, program):
    physical = None
    for m in run.measures:
        if m.expr is None and _observable(m.name, LearnerMeasure) is not None:
            if m.name == "coupling_error" and "truth" not in _statements(run).train["models"]:
                fail("P400", "coupling_error compares with a known model: add truth = Model(...) "
                     "to the train statement", m.span)  # fmt: skip
            continue
        if physical_call is None:
            known = _observable_names(LearnerMeasure)
            fail("P200", f"unknown learner observable '{m.name}'", m.span,
                 did_you_mean(m.name, set(known)) or "observables: "
                 + ", ".join(known) + "; energy and magnetization of generated samples"
                 " need physical = Model(...) in the train statement")  # fmt: skip
        if physical is None:
            physical = _aux_model(program, physical_call, kind="lattice")
    if physical is not None:

        _compile_measures(physical, [m for m in run.measures
                                     if _observable(m.name, LearnerMeasure) is None])  # fmt: skip
    return physical


def _config_hash(plan, point) -> str:
    keys = {"point": point, "learner": plan["learner_args"], "opts": plan["opts"].model_dump(),
            "objective": [plan["objective"][0], plan["objective"][1].model_dump()],
            "optimizer": [plan["optimizer"][0], plan["optimizer"][1].model_dump()],
            "schedule": [plan["schedule"][0], plan["schedule"][1].model_dump()]}  # fmt: skip
    return hashlib.sha256(json.dumps(keys, sort_keys=True, default=str).encode()).hexdigest()[:16]


def run_train(task: TaskIR, program, *, sets, device, seed, out, progress) -> RunResult:
    run = RunState.of(task)
    plan = _plan_train(run, program, sets)
    opts = plan["opts"]
    summary = _summary(run, program, device, seed, "train",
                       {"objective": plan["objective"][0], **plan["objective"][1].model_dump(),
                        "optimizer": plan["optimizer"][0], **plan["optimizer"][1].model_dump(),
                        "schedule": plan["schedule"][0], **opts.model_dump()})  # fmt: skip
    summary["model"] = plan["checker"].name
    summary["history"] = []
    show = sys.stderr.isatty() if progress is None else progress
    started = time.time()
    files: list[Path] = []
    for k, point in enumerate(plan["points"]):
        cm, data, values = _train_point(run, program, plan, point)
        cm = cm.to(device)
        summary["params"] = dict(cm.model.params)
        g = torch.Generator(device=device).manual_seed(seed + 1000 * k)
        x = torch.as_tensor(values, dtype=cm.dtype, device=device)
        perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed)).to(device)
        n_test = int(round(opts.test * len(x)))
        test, train = x[perm[:n_test]], x[perm[n_test:]]
        trainer = Trainer(cm, train, *plan["objective"], *plan["optimizer"], *plan["schedule"],
                          opts.epochs, opts.batch, g, opts.max_weight, x.shape[1])  # fmt: skip
        suffix = f"_{k}" if len(plan["points"]) > 1 else ""
        ckpt = out / f"checkpoint{suffix}.safetensors" if out is not None else None
        chash = _config_hash(plan, point)
        history: list[dict] = []
        if ckpt is not None and opts.resume and ckpt.is_file():
            meta = trainer.load(ckpt)
            if meta.get("hash") == chash:
                history = meta.get("history", [])
            else:  # another configuration: start afresh
                trainer = Trainer(cm, train, *plan["objective"], *plan["optimizer"],
                                  *plan["schedule"], opts.epochs, opts.batch, g, opts.max_weight,
                                  x.shape[1])  # fmt: skip
        n_batches = max(1, len(train) // trainer.batch)
        bar = tqdm(total=opts.epochs * n_batches, initial=trainer.epoch * n_batches,
                   disable=not show, desc=f"{run.name}{suffix}", unit="step", leave=False)  # fmt: skip

        def on_step(loss, recon, bar=bar):
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.4g}", recon=f"{recon:.3g}" if recon == recon else "-")

        try:
            while trainer.epoch < opts.epochs:
                rec = trainer.run_epoch(on_step)
                history.append(rec)
                if ckpt is not None:
                    trainer.save(ckpt, {"hash": chash, "history": history})
        except Divergence as exc:
            bar.close()
            summary["history"].append(history)
            summary["diverged"] = str(exc)
            if out is not None:
                outputs.write_summary(out, summary)
            kept = (f"the last good checkpoint (epoch {trainer.epoch}) is kept in {ckpt}"
                    if ckpt is not None and ckpt.is_file() else "no checkpoint was written")  # fmt: skip
            raise PhysmlError(Diagnostic(
                "P700", f"training diverged at epoch {trainer.epoch + 1}, step "
                f"{trainer.step_count}: {exc}", _statements(run).train["span"],
                f"lower the learning rate or add weight_decay; {kept}")) from None  # fmt: skip
        except KeyboardInterrupt:
            bar.close()
            summary["history"].append(history)
            summary["interrupted"] = True
            if out is not None:
                outputs.write_summary(out, summary)
            raise
        bar.close()
        summary["history"].append(history)
        if out is not None:
            save_params(cm, out / f"params{suffix}.safetensors")
        row = {**point, "epochs": trainer.epoch}
        last = history[-1] if history else {}
        row.update(_evaluate(run, program, cm, trainer, train, test, last, data, g, out, suffix,
                             files))  # fmt: skip
        summary["rows"].append(row)
        summary["elapsed_s"] = round(time.time() - started, 3)
        if out is not None:
            outputs.write_summary(out, summary)
    summary["complete"] = True
    if out is not None:
        outputs.write_summary(out, summary)
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


def _evaluate(run, program, cm, trainer, train, test, last, data, g, out, suffix, files) -> dict:
    """Measures of a trained model: likelihoods, couplings, observables of generated samples."""
    row: dict[str, Any] = {}
    names = [m.name for m in run.measures] or ["loss"]
    row["loss"] = {"mean": last.get("loss"), "stderr": None}
    if "reconstruction" in names:
        row["reconstruction"] = {"mean": last.get("reconstruction"), "stderr": None}
    evald = test if len(test) else train
    ais = _statements(run).ais or AISOptions()
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
    models = _statements(run).train["models"]
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
    gen = _statements(run).generate
    physical_measures = [m for m in run.measures if _observable(m.name, LearnerMeasure) is None]
    if gen is not None or physical_measures:
        gen = gen or GenerateOptions()
        samples, series = _generate(cm, trainer.field, gen, g)
        samples, series = samples[:, : trainer.visible], series[..., : trainer.visible]
        if physical_measures:
            row.update(_physical(run, program, models.get("physical"), series, physical_measures,
                                 data))  # fmt: skip
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


def _physical(run, program, call, series: torch.Tensor, measures, data) -> dict:
    """Observables of a physical model (energy, magnetization, expressions) on generated
    visible configurations, with binning errors over (sweeps, chains)."""

    cm = _aux_model(program, call, kind="lattice")
    compiler, kernels = _compile_measures(cm, measures)
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
            out[meas.name] = estimate_fluctuation(meas.name, base, 1.0 / T, cm.lattice.n_sites).as_dict()
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
    import io

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


def _boltzmann_ir(run: RunState, program, point: dict | None = None):
    checker = program.checker_for(run.ir)
    args = {k: v for k, (v, _) in run.model_args.items()}
    spans = {k: s for k, (_, s) in run.model_args.items()}
    args.update(point or {})
    return checker, checker.instantiate(args, spans)


def _is_boltzmann_run(task: TaskIR, program) -> bool:
    run = RunState.of(task)
    checker, ir = _boltzmann_ir(run, program)
    # gibbs on any Boltzmann model; other samplers stay with the lattice sampler where it can
    # compile the model (complete graphs), and get a located error here otherwise
    site_sets = isinstance(ir.lattice, GraphIR) and ir.lattice.kind != "complete"
    return checker.kind == FAMILY and (_sampler(run) is not None or site_sets)


def _load_params(run: RunState, program, cm: BoltzmannModel) -> None:
    if _statements(run).learned_params is None:
        return
    from safetensors.torch import load_file

    name, span = _statements(run).learned_params
    path = Path(name)
    if not path.is_absolute() and program.path is not None:
        path = Path(program.path).parent / path
    if not path.is_file():
        fail("P600", f"no parameter file {path}", span,
             "a train run writes params.safetensors into its output folder")  # fmt: skip
    try:
        tensors = load_file(str(path))
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the user's input
        fail("P600", f"cannot read {path}: {exc}", span)
    arrays = {k: cm.array(k) for k in list(cm.params) + list(cm.model.arrays)}
    for k, t in tensors.items():
        if k not in arrays:
            fail("P601", f"{path.name} has '{k}', which model {cm.ir.name} does not declare",
                 span, did_you_mean(k, set(arrays)))  # fmt: skip
        if tuple(t.shape) != tuple(arrays[k].shape):
            fail("P601", f"'{k}' in {path.name} has shape {tuple(t.shape)}; model "
                 f"{cm.ir.name} needs {tuple(arrays[k].shape)}", span)  # fmt: skip
    with torch.no_grad():
        for k, t in tensors.items():
            arrays[k].copy_(t.to(arrays[k].dtype))


def _sampler(run: RunState) -> Entry | None:
    """The catalogue entry of the run's sampler if it samples Boltzmann models, else None."""
    return CATALOGUE.samplers.get(run.sampler, FAMILY) if run.sampler is not None else None


def _plan_boltzmann_sample(run: RunState, program, sets):
    entry = _sampler(run)
    if entry is None:
        known = CATALOGUE.samplers.names(FAMILY)
        fail("P200", f"sampler '{run.sampler}' does not apply to Boltzmann models", run.sampler_span,
             did_you_mean(run.sampler, set(known)) or "use sampler gibbs(chains = "
             "64, sweeps = 1000)")  # fmt: skip
    values = {k: v for k, (v, _) in run.sampler_options.items()}
    spans = {k: s for k, (_, s) in run.sampler_options.items()}
    sets = dict(sets or {})
    for k in list(sets):
        if k in entry.schema.model_fields:
            values[k] = sets.pop(k)
    opts = validate_options(entry.schema, values, spans, run.sampler_span,
                            f"sampler {run.sampler}")  # fmt: skip
    checker = program.checker_for(run.ir)
    params = set(checker.param_names)
    thermal = {"T", "beta"}
    for s in run.scans:
        if s.name not in params | thermal:
            fail("P200", f"cannot scan '{s.name}': not T, beta or a parameter of model "
                 f"{checker.name}", s.span, did_you_mean(s.name, params | thermal))  # fmt: skip
    for name, (_, span) in run.lets.items():
        if name not in params | thermal:
            fail("P200", f"'let {name}': not T, beta or a model parameter", span)
    points, rest = _points(run, sets)
    for k in list(rest):
        if k in params:
            for p in points:
                p[k] = rest.pop(k) if k in rest else p.get(k)
    if rest:
        fail("P200", f"--set {next(iter(rest))}: not a model parameter, scan variable or "
             "sampler option", None)  # fmt: skip
    for m in run.measures:
        if m.expr is not None or _gibbs_observable(m.name) is None:
            fail("P200", f"'{m.name}' is not an observable of Boltzmann sample runs", m.span,
                 "observables: " + ", ".join(_observable_names(GibbsObservable))
                 + " (e.g. mean_v)")  # fmt: skip
    return checker, entry, opts, points, params


def _boltzmann_point(run, program, checker, point, params):
    _, ir = _boltzmann_ir(run, program, {k: v for k, v in point.items() if k in params})
    cm = program.compile_ir(ir, kind="boltzmann")
    _load_params(run, program, cm)
    for m in run.measures:
        if m.name.startswith("mean_") and m.name[5:] not in cm.domains:
            fail("P200", f"model {ir.name} has no field '{m.name[5:]}'", m.span,
                 did_you_mean(m.name[5:], set(cm.domains)))  # fmt: skip
    T = point.get("T")
    beta = point.get("beta", 1.0 / T if T is not None else 1.0)
    if isinstance(beta, bool) or not isinstance(beta, int | float) or not beta > 0:
        fail("P400", f"T and beta must be positive numbers, got {point}", run.span)
    return cm, float(beta)


def check_boltzmann_sample(task: TaskIR, program) -> None:
    run = RunState.of(task)
    checker, _, opts, points, params = _plan_boltzmann_sample(run, program, {})
    _boltzmann_point(run, program, checker, points[0], params)


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


def run_boltzmann_sample(task: TaskIR, program, *, sets, device, seed, out, progress) -> RunResult:
    """Gibbs sampling of a Boltzmann model (block updates of fields that do not interact with
    themselves, site by site otherwise); per-unit means are written to moments.npz."""
    run = RunState.of(task)
    checker, entry, opts, points, params = _plan_boltzmann_sample(run, program, sets)
    summary = _summary(run, program, device, seed, "gibbs", opts.model_dump())
    summary["sampler"]["name"] = run.sampler
    summary["model"] = checker.name
    show = sys.stderr.isatty() if progress is None else progress
    bar = tqdm(total=len(points) * (opts.burn_in + opts.sweeps), disable=not show,
               desc=run.name, unit="sweep", leave=False)  # fmt: skip
    g = torch.Generator(device=device).manual_seed(seed)
    started = time.time()
    moments: dict[str, np.ndarray] = {}
    names = [m.name for m in run.measures] or ["energy"]
    try:
        for k, point in enumerate(points):
            cm, beta = _boltzmann_point(run, program, checker, point, params)
            cm = cm.to(device)
            summary["params"] = dict(cm.model.params)
            series = gibbs_series(cm, opts, beta, g, lambda: bar.update(1), entry.implementation)
            field = next(iter(cm.domains))
            row: dict[str, Any] = dict(point)
            for name in names:
                x = _gibbs_observable(name).series(series, field, name)
                row[name] = binning_analysis(x.double().cpu().numpy()).as_dict()
            for f in cm.domains:
                x = series[f].double().cpu().numpy()  # (T, chains, n)
                est = [binning_analysis(x[:, :, i]) for i in range(x.shape[2])]  # analysis only
                moments[f"{f}_mean_{k}"] = np.array([e.mean for e in est])
                moments[f"{f}_stderr_{k}"] = np.array([e.stderr for e in est])
            summary["rows"].append(row)
            summary["elapsed_s"] = round(time.time() - started, 3)
            if out is not None:
                outputs.write_summary(out, summary)
    finally:
        bar.close()
    summary["complete"] = True
    files: list[Path] = []
    if out is not None:
        outputs.write_summary(out, summary)
        import io

        buf = io.BytesIO()
        np.savez(buf, **moments)
        outputs._atomic_write(out / "moments.npz", buf.getvalue())
        files.append(out / "moments.npz")
    return RunResult(summary, out, files)


def bind(catalogue: Catalogue) -> None:
    """Attach this capability's implementations to its catalogue entries (top layer only):
    tasks, sampler and recall dynamics, training methods, observables and data sources."""
    catalogue.tasks.bind("recall", Task(run_recall))
    catalogue.tasks.bind("train", Task(run_train))
    catalogue.tasks.bind("sample", Task(run_boltzmann_sample), family=FAMILY)
    catalogue.tasks.bind_check("recall", TaskCheck(check_recall))
    catalogue.tasks.bind_check("train", TaskCheck(check_train))
    catalogue.tasks.bind_check("sample", TaskCheck(check_boltzmann_sample,
                                                   applies=_is_boltzmann_run), family=FAMILY)
    catalogue.samplers.bind("gibbs", GibbsSampler, family=FAMILY)
    catalogue.updates.bind("glauber", GibbsSampler, family=FAMILY)
    training.bind(catalogue)
    for name, observable in (("energy", ENERGY), ("magnetization", MAGNETIZATION),
                             ("mean_<field>", MEAN)):  # fmt: skip
        catalogue.observables.bind(name, observable, family=FAMILY)
    for name in ("log_likelihood", "exact_log_likelihood", "exact_kl"):
        catalogue.observables.bind(name, ENUMERATED_MEASURE, family=FAMILY)
    for name in ("log_z", "reconstruction", "loss", "coupling_error"):
        catalogue.observables.bind(name, LEARNER_MEASURE, family=FAMILY)
    data_sources.bind(catalogue)
