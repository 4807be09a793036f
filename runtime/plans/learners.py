"""Static plans of the energy-based learners' tasks (torch-free): ``recall`` (Hopfield
retrieval), ``train`` (Boltzmann machines, RBMs, inverse Ising) and ``sample`` of Boltzmann
models (Gibbs chains).

A plan reads a run's statements (``recall``, ``train``, ``optimizer``, ``schedule``,
``generate``, ``ais``, ``data``, ``params``), validates every option against the catalogue's
schemas (``physml_lang/catalogue/boltzmann.py``), resolves scans and ``--set`` overrides (the
shared resolver of ``runtime/plans/parameters.py``: scan variables, lets, model parameters,
then the options of the run's statements: recall, dynamics, train, objective, optimizer,
schedule, sampler), and checks each point against the derived model
(``program.derive(ir, kind="boltzmann")``: site sets, fields, blocks, learnable arrays): the
data that feed a field (shape (samples, n_sites) and domain), the visible and latent units of
training, the learned-parameter file a sample run loads (names and shapes read from its
header). ``check_*`` run the plans for ``physml check``;
the runtime's tasks (``runtime/learners/tasks.py``) start from the same plans and run them on
the compiled model's derivation.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel
from safetensors import safe_open

from physml_lang.catalogue import CATALOGUE, Catalogue, Entry, Registry
from physml_lang.catalogue.boltzmann import (
    DEEP_OBSERVABLES,
    ENUMERATED_OBSERVABLES,
    FAMILY,
    GIBBS_OBSERVABLES,
    LEARNER_OBSERVABLES,
    RECALL_COLUMNS,
    RECALL_OBSERVABLES,
    AISOptions,
    GenerateOptions,
    RecallOptions,
    TrainOptions,
)
from physml_lang.check.model import ModelChecker, option_names, validate_options
from physml_lang.check.paths import resolve_user_path
from physml_lang.check.program import stdlib_index, stdlib_model
from physml_lang.check.tasks import STATEMENTS
from physml_lang.compiler.derive.boltzmann import BoltzmannDerivation
from physml_lang.compiler.instance import ModelInstance, RealData
from physml_lang.diagnostics import Diagnostic, PhysmlError, Span, did_you_mean, warn
from physml_lang.ir.model import GraphIR, ModelIR
from physml_lang.ir.program import LearnerIR
from physml_lang.ir.task import CallValue, StatementIR, TaskIR, Word
from physml_lang.ir.walk import fail

from .. import data as data_sources
from ..data import DataLoader, check_feeds
from ..tasks import RunState, TaskCheck, plain
from .parameters import Located, Settable, apply_sets, check_scanned
from .sample import THERMAL, check_measures

# the program a plan reads (physml_lang.api.Program, the layer above): its model declarations,
# learners, data, runs, and ``derive(ir, kind)`` / ``compile_ir(ir, kind)`` of model IRs
Program = Any

# a general Boltzmann machine's likelihood sums over its latent units by enumeration
MAX_LATENT = 20
# exact log Z: at most this many enumerated units (2^22 states)
MAX_ENUMERATED = 22


# ---------------------------------------------------------------- names and options


def _call_of(v: Any, span: Span | None) -> CallValue:
    """A name or a call (``cd(1)``, ``adam(lr = 0.01)``) as a call."""
    if isinstance(v, Word):
        return CallValue(v.name, span=v.span, name_span=v.span)
    if not isinstance(v, CallValue):
        fail("P322", "expected a name or a call here, e.g. cd(1) or adam(lr = 0.01)", span)
    return v


def call_values(call: CallValue, what: str, positional: tuple[str, ...] = ()) -> Located:
    """The options of a call (``cd(1)``, ``adam(lr = 0.01)``) as name -> (value, span);
    ``positional``: the names of options that may be given by position."""
    if len(call.args) > len(positional):
        fail("P318", f"{what} takes its options by name", call.span)
    values: Located = {name: (plain(a), call.span) for name, a in zip(positional, call.args)}
    values.update({k.name: (plain(k.value), k.span) for k in call.kwargs})
    return values


def validated(schema: type[BaseModel], values: Located, where: Span | None,
              what: str) -> BaseModel:  # fmt: skip
    """Options (name -> (value, span)) validated against ``schema``: words as text, whole
    numbers accepted where a real number is expected."""
    plain_values = {k: (str(v) if isinstance(v, Word) else v) for k, (v, _) in values.items()}
    for k, v in list(plain_values.items()):
        info = schema.model_fields.get(k)
        integer = isinstance(v, int) and not isinstance(v, bool)
        if info is not None and info.annotation is float and integer:
            plain_values[k] = float(v)
    return validate_options(schema, plain_values, {k: s for k, (_, s) in values.items()}, where,
                            what)  # fmt: skip


def _options(call: CallValue, schema: type[BaseModel], what: str,
             positional: tuple[str, ...] = ()) -> BaseModel:  # fmt: skip
    return validated(schema, call_values(call, what, positional), call.span, what)


def registry_entry(call: CallValue, registry: Registry, what: str) -> Entry:
    """The entry of ``registry`` (of Boltzmann models or shared by every kind) a call names."""
    entry = registry.get(call.name, FAMILY)
    if entry is None:
        known = registry.names(FAMILY)
        fail("P206", f"unknown {what} '{call.name}'", call.name_span,
             did_you_mean(call.name, set(known)) or f"{what}s: " + ", ".join(known))  # fmt: skip
    return entry


def registry_call(call: CallValue, registry: Registry, what: str,
                  positional: tuple[str, ...] = ()) -> BaseModel:  # fmt: skip
    """The validated options of a call naming an entry of ``registry`` (of Boltzmann models or
    shared by every kind)."""
    entry = registry_entry(call, registry, what)
    return _options(call, entry.schema, f"{what} {call.name}", positional)


@dataclass
class CallOptions:
    """A call naming a catalogue entry (``adam(lr = 0.01)``) and its options as name ->
    (value, span), open to ``--set`` until :meth:`options` validates them."""

    call: CallValue
    schema: type[BaseModel]
    values: Located
    kind: str  # what the entry is: objective, optimizer, ...

    @classmethod
    def of(cls, call: CallValue, registry: Registry, kind: str,
           positional: tuple[str, ...] = ()) -> CallOptions:  # fmt: skip
        entry = registry_entry(call, registry, kind)
        return cls(call, entry.schema, call_values(call, f"{kind} {call.name}", positional), kind)

    def settable(self) -> Settable:
        """Its options as a ``--set`` group."""
        return Settable(f"{self.kind} option", option_names(self.schema), self.values)

    def options(self) -> BaseModel:
        return validated(self.schema, self.values, self.call.span, f"{self.kind} {self.call.name}")


def is_learner_measure(name: str) -> bool:
    """A measure of a trained model, evaluated by the train task (not of generated samples)."""
    return name in LEARNER_OBSERVABLES


def gibbs_observable(name: str) -> str | None:
    """The observable of Boltzmann sample runs that ``name`` measures (``energy``,
    ``magnetization``, ``mean_<field>`` for any ``mean_...``), else None."""
    key = "mean_<field>" if name.startswith("mean_") else name
    return key if key in GIBBS_OBSERVABLES else None


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
            fail("P104", "recall names the stored patterns and the dynamics", stmt.span,
                 "recall xi via glauber(T = 0, update = sequential), flip = 0.1")  # fmt: skip
        call = _call_of(first.via, first.span)
        registry_call(call, CATALOGUE.updates, "dynamics")
        named = {}
        for item in stmt.items[1:]:
            if item.kind != "named":
                fail("P104", "recall options are named: flip = 0.1, patterns = 20", item.span)
            named[item.name] = (plain(item.value), item.span)
        self.recall = {"patterns": first.value.name, "span": first.value.span,
                       "dynamics": call, "named": named}  # fmt: skip

    def _train(self, stmt: StatementIR) -> None:
        first = stmt.items[0]
        if first.kind != "via" or not isinstance(first.value, Word):
            fail("P104", "train names a learner and an objective", stmt.span,
                 "train rbm via cd(1), epochs = 20, batch = 64")  # fmt: skip
        call = _call_of(first.via, first.span)
        registry_call(call, CATALOGUE.objectives, "objective", ("k",))
        named, models = {}, {}
        for item in stmt.items[1:]:
            if item.kind != "named":
                fail("P104", "train options are named: epochs = 20", item.span)
            if item.name in ("truth", "physical"):
                models[item.name] = _call_of(item.value, item.value_span)
                continue
            v = item.value
            named[item.name] = (str(v) if isinstance(v, Word) else plain(v), item.span)
        validated(TrainOptions, named, stmt.span, "train")
        self.train = {"learner": first.value.name, "span": first.value.span, "objective": call,
                      "named": named, "models": models}  # fmt: skip

    def _single(self, stmt: StatementIR, registry: Registry, what: str) -> CallValue:
        if len(stmt.items) != 1 or stmt.items[0].kind != "value":
            fail("P103", f"'{stmt.word}' takes one {what}", stmt.span)
        call = _call_of(stmt.items[0].value, stmt.items[0].value_span)
        registry_call(call, registry, what)
        return call

    def _optimizer(self, stmt: StatementIR) -> None:
        self.optimizer = self._single(stmt, CATALOGUE.optimisers, "optimizer")

    def _schedule(self, stmt: StatementIR) -> None:
        self.schedule = self._single(stmt, CATALOGUE.schedules, "schedule")

    def _named(self, stmt: StatementIR, schema: type[BaseModel]) -> BaseModel:
        values, spans = {}, {}
        for item in stmt.items:
            if item.kind != "named":
                fail("P103", f"'{stmt.word}' takes named options", item.span,
                     STATEMENTS[stmt.word].usage)  # fmt: skip
            values[item.name], spans[item.name] = plain(item.value), item.span
        return validate_options(schema, values, spans, stmt.span, stmt.word)

    def _generate(self, stmt: StatementIR) -> None:
        self.generate = self._named(stmt, GenerateOptions)

    def _ais(self, stmt: StatementIR) -> None:
        self.ais = self._named(stmt, AISOptions)

    def _data(self, stmt: StatementIR) -> None:
        if len(stmt.items) != 1 or not isinstance(stmt.items[0].value, Word):
            fail("P104", "'data' names a data declaration: data digits", stmt.span)
        self.data = (stmt.items[0].value.name, stmt.items[0].value_span)

    def _params(self, stmt: StatementIR) -> None:
        """``params "fit/params.safetensors"`` (or ``params load("...")``): learned arrays, by
        name, replace the model's declared values."""
        item = stmt.items[0] if len(stmt.items) == 1 else None
        value = item.value if item is not None and item.kind == "value" else None
        if isinstance(value, CallValue) and value.name == "load" and len(value.args) == 1:
            value = value.args[0]
        if not isinstance(value, str):
            fail("P104", "'params' takes one file of learned parameters", stmt.span,
                 STATEMENTS["params"].usage)  # fmt: skip
        self.learned_params = (value, item.value_span)


def statements(run: RunState) -> LearnerStatements:
    """The run's learner statements (read once per run state)."""
    if not hasattr(run, "learning"):
        run.learning = LearnerStatements(run.ir)
    return run.learning


def resolve_sets(run: RunState, sets: dict[str, Any] | None, params: set[str],
                 groups: list[Settable],
                 lets: set[str] | None = None) -> dict[str, Any]:  # fmt: skip
    """Apply ``--set`` (:func:`~physml_lang.runtime.plans.parameters.apply_sets`): a scan
    variable becomes that single point; a ``let`` value (``lets``: the names that may be let,
    the run's lets by default) or a model parameter (``params``) is replaced; else the first of
    ``groups`` with the name takes it. Returns the model parameters set that are neither scanned
    nor let."""
    sets = dict(sets or {})
    lets = set(run.lets) if lets is None else lets
    apply_sets(run, sets, params - lets, [Settable("let", lets, run.lets), *groups])
    fixed = lets | {s.name for s in run.scans}
    return {k: v for k, v in sets.items() if k in params and k not in fixed}


def scan_points(run: RunState, extra: dict[str, Any] | None = None) -> list[dict]:
    """Scan points (every combination of the scans) with the ``let`` values, then ``extra``."""
    lets = {k: v for k, (v, _) in run.lets.items()}
    names = [s.name for s in run.scans]
    combos = list(itertools.product(*[s.values for s in run.scans])) or [()]
    return [{**lets, **dict(zip(names, c)), **(extra or {})} for c in combos]


def field_feeds(data: RealData, model: BoltzmannDerivation, sites: int, span: Span | None,
                what: str) -> tuple[str, np.ndarray]:  # fmt: skip
    """The first field of a Boltzmann model and the data that feed its first ``sites`` sites:
    (samples, sites), in the field's domain (a located P601 otherwise)."""
    field = next(iter(model.domains))
    return field, check_feeds(data, model.domains[field], (sites,), span, what)


def field_sites(model: BoltzmannDerivation, field: str) -> int:
    """The number of sites of a field: the size of the site set it lives on."""
    return model.sets[model.field_sets[field]]


# ---------------------------------------------------------------- recall


@dataclass
class RecallPlan:
    """A validated recall run: the model's declaration, the options of its dynamics
    (``glauber``), the recall options, the scan points and the run's model arguments."""

    checker: ModelChecker
    dynamics: BaseModel
    options: RecallOptions
    points: list[dict]
    model_args: dict[str, Any]


def plan_recall(run: RunState, program: Program, sets: dict[str, Any] | None) -> RecallPlan:
    """Validate a recall run: dynamics and recall options, ``--set`` overrides, scans and
    measured names."""
    spec = statements(run).recall
    checker = program.checker_for(run.ir)
    dynamics = CallOptions.of(spec["dynamics"], CATALOGUE.updates, "dynamics")
    named = dict(spec["named"])
    params = set(checker.param_names)
    recall = Settable("recall option", option_names(RecallOptions), named)
    fixed = resolve_sets(run, sets, params, [dynamics.settable(), recall])
    dyn = dynamics.options()
    opts = validated(RecallOptions, named, run.span, "recall")
    points = scan_points(run, fixed)
    check_scanned(run, checker, params)
    columns = set(RECALL_OBSERVABLES) | set(RECALL_COLUMNS) | set(points[0])
    for m in run.measures:
        if m.name not in columns:
            fail("P208", f"unknown recall observable '{m.name}'", m.span,
                 "recall measures: " + ", ".join(RECALL_OBSERVABLES))  # fmt: skip
    model_args = {k: v for k, (v, _) in run.model_args.items()}
    return RecallPlan(checker, dyn, opts, points, model_args)


def recall_ir(run: RunState, plan: RecallPlan, point: dict[str, Any]) -> ModelIR:
    """The model IR of one scan point; it must declare the recalled patterns."""
    checker = plan.checker
    args = {**plan.model_args, **{k: v for k, v in point.items() if k in checker.param_names}}
    ir = checker.instantiate(args)
    spec = statements(run).recall
    if spec["patterns"] not in ir.data_map:
        fail("P204", f"model {ir.name} has no data '{spec['patterns']}'", spec["span"],
             did_you_mean(spec["patterns"], set(ir.data_map)) or "declare: data xi: spin[P, N] = "
             "random(seed = 1)")  # fmt: skip
    return ir


def recall_patterns(run: RunState, model: BoltzmannDerivation) -> tuple[str, np.ndarray]:
    """The recalled field and its stored patterns xi, (P, n_sites), checked against the
    field's domain."""
    spec = statements(run).recall
    field = next(iter(model.domains))
    data = model.model.data[spec["patterns"]]
    return field_feeds(data, model, field_sites(model, field), spec["span"], f"field '{field}'")


def check_recall(task: TaskIR, program: Program) -> None:
    """Everything a recall run would reject, on the first point's derived model."""
    run = RunState.of(task)
    plan = plan_recall(run, program, {})
    ir = recall_ir(run, plan, plan.points[0])
    recall_patterns(run, program.derive(ir, kind=FAMILY))


# ---------------------------------------------------------------- train


@dataclass
class TrainPlan:
    """A validated train run: the learner's model declaration and fixed arguments, the train
    options, scan points, and the (name, options) of objective, optimiser and schedule."""

    checker: ModelChecker
    learner_args: dict[str, Any]
    options: TrainOptions
    points: list[dict]
    objective: tuple[str, BaseModel]
    optimizer: tuple[str, BaseModel]
    schedule: tuple[str, BaseModel]
    params: set[str]
    learner_spans: dict[str, Span | None] = field(default_factory=dict)


@dataclass(frozen=True)
class TrainingLayout:
    """Which units of a Boltzmann model the data feed: the first ``visible`` of the
    ``n_field`` sites of the first field (``field``). ``hidden``: block fields summed out
    analytically in the free energy F(v); ``latent``: the model has units that are neither
    (a general Boltzmann machine), sampled in a positive phase with the data clamped."""

    field: str
    n_field: int
    visible: int
    hidden: list[str]
    latent: bool


def learner_model(run: RunState, program: Program
                  ) -> tuple[ModelChecker, dict[str, Any], dict[str, Span | None]]:  # fmt: skip
    """The learner's model declaration, fixed arguments and where each is given: a
    ``learner`` declaration naming a model (learner rbm = RBM(Nv = 64, Nh = 32)) or a model
    name."""
    spec = statements(run).train
    name = spec["learner"]
    decl = program.learners.get(name)
    if decl is not None:
        mname, span = decl.call.name, decl.call.name_span
        args = {k.name: plain(k.value) for k in decl.call.kwargs}
        spans = {k.name: k.span for k in decl.call.kwargs}
        if decl.call.args:
            fail("P318", "model parameters are given by name", decl.call.span)
    else:
        mname, span, args, spans = name, spec["span"], {}, {}
    if run.model is not None:  # 'model RBM(Nh = 64)' gives (more) arguments of the learner's model
        if run.model != mname:
            fail("P211", f"the run's model {run.model} is not the learner's model {mname}",
                 run.model_span, f"write 'model {mname}(...)' or train {run.model}")  # fmt: skip
        args.update({k: v for k, (v, _) in run.model_args.items()})
        spans.update({k: s for k, (_, s) in run.model_args.items()})
    if mname not in program.models:
        hint = (f"import it: import {mname}" if mname in stdlib_index()
                else did_you_mean(mname, set(program.models) | set(program.learners)))  # fmt: skip
        fail("P204", f"unknown learner or model '{mname}'", span, hint)
    return program.models[mname], args, spans


def aux_ir(program: Program, call: CallValue) -> ModelIR:
    """The IR of a model a train statement names (``truth = SK(N = 16, seed = 1)``): declared,
    imported or from the standard library."""
    checker = program.models.get(call.name) or stdlib_model(call.name)
    if checker is None:
        fail("P204", f"unknown model '{call.name}'", call.name_span,
             did_you_mean(call.name, set(stdlib_index())))  # fmt: skip
    args = {k.name: plain(k.value) for k in call.kwargs}
    return checker.instantiate(args, {k.name: k.span for k in call.kwargs})


def training_data(loader: DataLoader, program: Program, name: str, span: Span | None,
                  values: dict[str, Any]) -> RealData:  # fmt: skip
    """The data declaration ``name`` realised with a point's values (``loader``: the program's
    data loader for a run, its static one for a check)."""
    decl = program.data.get(name)
    if decl is None:
        fail("P204", f"no data declaration '{name}'", span,
             did_you_mean(name, set(program.data)) or "declare it: data X: binary = "
             "load(\"x.npz\")")  # fmt: skip
    return loader(decl, values)


def plan_train(run: RunState, program: Program, sets: dict[str, Any] | None) -> TrainPlan:
    """Validate a train run: learner, options, ``--set`` overrides, objective, optimiser and
    schedule (adam and a constant rate unless given), and that it names its data."""
    st = statements(run)
    spec = st.train
    checker, learner_args, learner_spans = learner_model(run, program)
    named: Located = dict(spec["named"])
    if st.data is not None:
        named.setdefault("data", st.data)
    objective = CallOptions.of(spec["objective"], CATALOGUE.objectives, "objective", ("k",))
    optimizer = CallOptions.of(st.optimizer or CallValue("adam", span=run.span,
                               name_span=run.span), CATALOGUE.optimisers, "optimizer")  # fmt: skip
    schedule = CallOptions.of(st.schedule or CallValue("constant", span=run.span,
                              name_span=run.span), CATALOGUE.schedules, "schedule")  # fmt: skip
    params = set(checker.param_names)
    learner_args.update(resolve_sets(run, sets, params, [
        Settable("train option", option_names(TrainOptions), named), objective.settable(),
        optimizer.settable(), schedule.settable()]))  # fmt: skip
    opts = validated(TrainOptions, named, run.span, "train")
    if "resume" in named:
        warn(Diagnostic("P403", "option 'resume' of train is deprecated: a run continues from "
                        "its checkpoint when the command asks", named["resume"][1],
                        "run with --resume (resume = true does the same for now)"))  # fmt: skip
    if opts.data is None:
        fail("P412", f"run {run.name} does not say what to train on", run.span,
             "add 'data = NAME' to the train statement")  # fmt: skip
    return TrainPlan(checker, learner_args, opts, scan_points(run),
                     (objective.call.name, objective.options()),
                     (optimizer.call.name, optimizer.options()),
                     (schedule.call.name, schedule.options()), params,
                     learner_spans)  # fmt: skip


def spans_of(spec: dict) -> dict[str, Span | None]:
    """Option name -> span of a statement's named options."""
    return {k: s for k, (_, s) in spec["named"].items()}


def train_ir(plan: TrainPlan, point: dict[str, Any]) -> ModelIR:
    """The learner's model IR at one scan point."""
    args = dict(plan.learner_args)
    args.update({k: v for k, v in point.items() if k in plan.params})
    return plan.checker.instantiate(args, dict(plan.learner_spans))


def visible_sites(value: int | str | None, model: ModelInstance, n: int,
                  span: Span | None) -> int:  # fmt: skip
    """The number of visible sites of the data field (``n`` sites): a number or the name of
    an integer model parameter (None: all of them)."""
    if value is None:
        return n
    if isinstance(value, str):
        if value not in model.params:
            fail("P205", f"visible = {value}: not a parameter of model {model.name}", span,
                 did_you_mean(value, set(model.params)) or "give a number or a model parameter")  # fmt: skip
        value = model.params[value]
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= n:
        fail("P406", f"visible = {value!r}: must be a whole number from 1 to the {n} sites of "
             f"the data field", span)  # fmt: skip
    return int(value)


def training_layout(model: BoltzmannDerivation, visible: int | str | None, positive: str,
                    span: Span | None = None) -> TrainingLayout:  # fmt: skip
    """Data, hidden and latent units of a model trained on its first field's first
    ``visible`` sites; ``positive``: the objective's positive phase (``meanfield`` needs
    two-valued units). The model must have learnable arrays."""
    field = next(iter(model.domains))
    n_field = field_sites(model, field)
    visible = visible_sites(visible, model.model, n_field, span or model.model.fields[field].span)
    others = [f for f in model.domains if f != field]
    # latent: hidden units that cannot be summed out analytically (general BMs)
    latent = visible < n_field
    hidden: list[str] = []
    if not latent and others:
        try:
            hidden = model.summable(others)
        except PhysmlError:  # not summable: sampled in the positive phase
            latent = True
    if latent and positive == "meanfield":
        for f in model.domains:
            if len(model.domains[f].values()) != 2:
                fail("P503", f"positive = meanfield needs two-valued units; field '{f}' has more",
                     model.model.fields[f].span)  # fmt: skip
    if not model.learnable:
        fail("P413", f"model {model.model.name} has no learnable parameters",
             model.model.name_span, "mark them: 'learnable param W on edges = ...'")  # fmt: skip
    return TrainingLayout(field, n_field, visible, hidden, latent)


def latent_units(model: BoltzmannDerivation, field: str, visible: int) -> int:
    """Units of a general BM that are not data: other fields and hidden sites of ``field``."""
    n = field_sites(model, field) - visible
    return n + sum(field_sites(model, f) for f in model.domains if f != field)


def enumerated_fields(model: BoltzmannDerivation) -> tuple[list[str], list[str]]:
    """(enumerated, summed) fields of an exact log Z: the data field and every field that
    cannot be summed analytically are enumerated; block fields that do not interact with each
    other are summed in closed form."""
    data = next(iter(model.domains))
    try:
        summed = model.summable([f for f in model.blocks if f != data])
    except PhysmlError:
        summed = []
    return [f for f in model.domains if f not in summed], summed


def check_exactly_enumerable(model: BoltzmannDerivation, what: str, span: Span | None) -> None:
    """An exact log Z enumerates 2^n (q^n) states of its enumerated units: at most
    MAX_ENUMERATED units."""
    n = sum(field_sites(model, f) for f in enumerated_fields(model)[0])
    if n > MAX_ENUMERATED:
        fail("P407", f"{what} sums exactly over the {n} enumerated units of this Boltzmann "
             f"machine (at most {MAX_ENUMERATED})", span,
             "measure log_likelihood (annealed importance sampling) instead")  # fmt: skip


def check_enumerable(n_latent: int, what: str, span: Span | None) -> None:
    """F(v) of a general BM enumerates its latent units: at most MAX_LATENT of them."""
    if n_latent > MAX_LATENT:
        fail("P407", f"{what} of this Boltzmann machine sums over its {n_latent} hidden units "
             f"by enumeration (at most {MAX_LATENT})", span, "use fewer hidden units")  # fmt: skip


@dataclass
class TrainPoint:
    """One point of a train run, checked: the data, their values (samples, visible) and the
    training layout."""

    data: RealData
    values: np.ndarray
    layout: TrainingLayout


def plan_train_point(run: RunState, program: Program, plan: TrainPlan, model: BoltzmannDerivation,
                     loader: DataLoader, point: dict[str, Any]) -> TrainPoint:  # fmt: skip
    """The data that feed the model at one point (visible sites, domain), its training layout,
    and what the measures need of it (enumerable latent units, a known model to compare)."""
    field = next(iter(model.domains))
    spec = statements(run).train
    spans = spans_of(spec)
    span = spans.get("data", spec["span"])
    visible = visible_sites(plan.options.visible, model.model, field_sites(model, field),
                            spans.get("visible", spec["span"]))  # fmt: skip
    data = training_data(loader, program, plan.options.data, span, point)
    what = f"field '{field}' of {plan.checker.name}"
    if visible != field_sites(model, field):
        what = f"the {visible} visible sites of {what}"
    _, values = field_feeds(data, model, visible, data.span, what)
    layout = training_layout(model, visible, plan.objective[1].positive)
    for m in run.measures:
        if m.expr is None and m.name in ("exact_log_likelihood", "exact_kl"):
            check_exactly_enumerable(model, m.name, m.span)
    if layout.latent:
        n_lat = latent_units(model, layout.field, layout.visible)
        for m in run.measures:
            if is_learner_measure(m.name) and m.name in ENUMERATED_OBSERVABLES:
                check_enumerable(n_lat, m.name, m.span)
    models = spec["models"]
    for m in run.measures:
        if m.expr is None and is_learner_measure(m.name):
            if m.name == "coupling_error" and "truth" not in models:
                fail("P412", "coupling_error compares with a known model: add truth = Model(...) "
                     "to the train statement", m.span)  # fmt: skip
        elif "physical" not in models:
            known = sorted(LEARNER_OBSERVABLES)
            fail("P208", f"unknown learner observable '{m.name}'", m.span,
                 did_you_mean(m.name, set(known)) or "observables: "
                 + ", ".join(known) + "; energy and magnetization of generated samples"
                 " need physical = Model(...) in the train statement")  # fmt: skip
    return TrainPoint(data, values.reshape(len(values), -1), layout)


def physical_measures(run: RunState) -> list:
    """The measures of generated samples (not of the trained model): observables of the
    ``physical`` model of the train statement."""
    return [m for m in run.measures if not (m.expr is None and is_learner_measure(m.name))]


def check_train(task: TaskIR, program: Program) -> None:
    """Everything a train run would reject, on the first point's derived model: data, layout,
    measures, and the models it compares with (truth, physical). A run that trains a deep
    learner (dbn, autoencoder) is checked by :func:`check_deep`."""
    run = RunState.of(task)
    if deep_learner(run, program) is not None:
        check_deep(run, program)
        return
    plan = plan_train(run, program, {})
    point = plan.points[0]
    model = program.derive(train_ir(plan, point), kind=FAMILY)
    plan_train_point(run, program, plan, model, program.static_data, point)
    models = statements(run).train["models"]
    for name in ("truth", "physical"):
        call = models.get(name)
        if call is not None:
            program.derive(aux_ir(program, call))
    measures = physical_measures(run)
    if measures:
        check_measures(program.derive(aux_ir(program, models["physical"]), kind="lattice"),
                       measures)  # fmt: skip


# ---------------------------------------------------------------- deep learners (dbn, autoencoder)

# learners of the catalogue that a train statement trains greedily as a stack of RBMs
DEEP_LEARNERS = ("dbn", "autoencoder")
# measures of a trained model that a deep learner's run computes, by what they need
DEEP_MEASURES = ("loss", "reconstruction", *DEEP_OBSERVABLES)
LIKELIHOOD_MEASURES = ("log_likelihood", "log_z", "exact_log_likelihood", "exact_kl")
EXACT_MEASURES = ("exact_log_likelihood", "exact_kl")
# visible units a deep learner's first layer can have (the data's domain)
DEEP_DOMAINS = ("binary", "spin", "potts")


def deep_learner(run: RunState, program: Program) -> LearnerIR | None:
    """The learner declaration a run's train statement names if it is a deep learner of the
    catalogue (``learner deep = dbn(layers = [64, 32, 16])``), else None."""
    spec = statements(run).train
    if spec is None:
        return None
    decl = program.learners.get(spec["learner"])
    if decl is not None and decl.of == "learner" and decl.call.name in DEEP_LEARNERS:
        return decl
    return None


@dataclass
class DeepPlan:
    """A validated train run of a deep learner: its declaration and catalogue options (name
    -> (value, span), with the point's scanned values applied by :func:`deep_options`), the
    train options, scan points, and the (name, options) of objective, optimiser and
    schedule."""

    learner: LearnerIR
    schema: type[BaseModel]
    values: Located
    options: TrainOptions
    points: list[dict]
    objective: tuple[str, BaseModel]
    optimizer: tuple[str, BaseModel]
    schedule: tuple[str, BaseModel]

    @property
    def kind(self) -> str:
        return self.learner.call.name


def plan_deep(run: RunState, program: Program, sets: dict[str, Any] | None) -> DeepPlan:
    """Validate a train run of a deep learner: learner, train, objective, optimiser and
    schedule options with ``--set`` overrides; scans run over the learner's options (``scan
    code in [2, 4, 8]``); measures are those of a trained stack."""
    st = statements(run)
    spec = st.train
    decl = deep_learner(run, program)
    assert decl is not None
    entry = CATALOGUE.learners.get(decl.call.name, FAMILY)
    if run.model is not None:
        fail("P503", f"learner {decl.name} = {decl.call.name}(...) builds its own layers: a "
             "run that trains it names no model", run.model_span,
             f"remove 'model {run.model}'; the sizes are layers = [...]")  # fmt: skip
    for name in ("truth", "physical"):
        if name in spec["models"]:
            fail("P413", f"'{name} = ...' compares Boltzmann machines declared as models; "
                 f"learner {decl.name} is a {decl.call.name}", spec["span"])  # fmt: skip
    named: Located = dict(spec["named"])
    if st.data is not None:
        named.setdefault("data", st.data)
    values: Located = {k.name: (plain(k.value), k.span) for k in decl.call.kwargs}
    objective = CallOptions.of(spec["objective"], CATALOGUE.objectives, "objective", ("k",))
    optimizer = CallOptions.of(st.optimizer or CallValue("adam", span=run.span,
                               name_span=run.span), CATALOGUE.optimisers, "optimizer")  # fmt: skip
    schedule = CallOptions.of(st.schedule or CallValue("constant", span=run.span,
                              name_span=run.span), CATALOGUE.schedules, "schedule")  # fmt: skip
    names = option_names(entry.schema)
    resolve_sets(run, sets, set(), [
        Settable("train option", option_names(TrainOptions), named), objective.settable(),
        optimizer.settable(), schedule.settable(),
        Settable(f"option of learner {decl.call.name}", names, values)])  # fmt: skip
    opts = validated(TrainOptions, named, run.span, "train")
    if opts.data is None:
        fail("P412", f"run {run.name} does not say what to train on", run.span,
             "add 'data = NAME' to the train statement")  # fmt: skip
    if opts.visible is not None:
        fail("P413", "visible = ... selects the data units of a general Boltzmann machine; "
             f"learner {decl.name}'s first layer takes every site of the data",
             named["visible"][1])  # fmt: skip
    for s in run.scans:
        if s.name not in names:
            fail("P205", f"cannot scan '{s.name}': not an option of learner {decl.call.name}",
                 s.span, did_you_mean(s.name, set(names)) or "scan e.g. code in [2, 4, 8]")  # fmt: skip
    for m in run.measures:
        if m.expr is not None or m.name not in (*DEEP_MEASURES, *LIKELIHOOD_MEASURES):
            known = sorted({*DEEP_MEASURES, *LIKELIHOOD_MEASURES})
            fail("P208", f"'{m.name}' is not a measure of a {decl.call.name}", m.span,
                 did_you_mean(m.name, set(known)) or "measures: " + ", ".join(known))  # fmt: skip
    plan = DeepPlan(decl, entry.schema, values, opts, scan_points(run),
                    (objective.call.name, objective.options()),
                    (optimizer.call.name, optimizer.options()),
                    (schedule.call.name, schedule.options()))  # fmt: skip
    for point in plan.points:
        deep_options(plan, point)
    return plan


def deep_options(plan: DeepPlan, point: dict[str, Any]) -> BaseModel:
    """The learner's options at one scan point (scanned options replace declared ones)."""
    values = dict(plan.values)
    values.update({k: (v, plan.learner.call.span) for k, v in point.items()
                   if k in plan.schema.model_fields})  # fmt: skip
    return validated(plan.schema, values, plan.learner.call.span,
                     f"learner {plan.learner.call.name}")  # fmt: skip


def deep_sizes(plan: DeepPlan, opts: BaseModel) -> list[int]:
    """Units per layer, the data's first; ``code`` replaces the top layer's."""
    sizes = list(opts.layers)
    if opts.code is not None:
        sizes[-1] = opts.code
    return sizes


@dataclass
class DeepPoint:
    """One point of a deep learner's train run, checked: the learner's options, units per
    layer, the data, their values (samples, sites) and the visible units' domain."""

    options: BaseModel
    sizes: list[int]
    data: RealData
    values: np.ndarray
    domain: Any


def plan_deep_point(run: RunState, program: Program, plan: DeepPlan, loader: DataLoader,
                    point: dict[str, Any]) -> DeepPoint:  # fmt: skip
    """The data of one point against the learner: a discrete domain of visible units
    (binary, spin, potts(q)), as many sites per example as the first layer has units, and
    measures the stack can compute (likelihoods of one RBM, enumerable where exact)."""
    spec = statements(run).train
    spans = spans_of(spec)
    opts = deep_options(plan, point)
    sizes = deep_sizes(plan, opts)
    data = training_data(loader, program, plan.options.data, spans.get("data", spec["span"]),
                         point)  # fmt: skip
    decl = plan.learner
    dspan = data.span or spans.get("data", spec["span"])
    domain = data.domain
    if domain is None or domain.kind not in DEEP_DOMAINS:
        have = "no domain" if domain is None else f"domain {domain}"
        fail("P601", f"data '{data.name}' has {have}; learner {decl.name} needs binary, spin "
             "or potts(q) values for its visible units", dspan,
             f"declare the domain: data {data.name}: binary = ...")  # fmt: skip
    n = int(np.prod(data.values.shape[1:])) if data.values.ndim >= 2 else 0
    layers_span = next((k.span for k in decl.call.kwargs if k.name == "layers"), decl.call.span)
    if n != sizes[0]:
        fail("P405", f"learner {decl.name}: the first layer has {sizes[0]} units, but data "
             f"'{data.name}' has {n} sites per example", layers_span,
             f"layers = [{n}, {', '.join(map(str, sizes[1:]))}]: the first entry is the "
             "data's sites")  # fmt: skip
    if any(s < 1 for s in sizes):
        fail("P405", "every layer needs at least one unit", layers_span)
    values = check_feeds(data, domain, (n,), dspan, f"learner {decl.name}")
    for m in run.measures:
        if m.name in LIKELIHOOD_MEASURES:
            if len(sizes) != 2 or plan.kind != "dbn":
                fail("P414", f"{m.name} is computed for one RBM: a dbn with layers = [n, m]; "
                     f"the likelihood of a deeper stack is intractable", m.span,
                     "measure reconstruction, or train a one-layer dbn")  # fmt: skip
            q = domain.q or 2
            states = min(q ** sizes[0], 2 ** sizes[1])
            if m.name in EXACT_MEASURES and states > 1 << MAX_ENUMERATED:
                fail("P407", f"{m.name} sums exactly over min(q^n, 2^m) = {states} states (at "
                     f"most 2^{MAX_ENUMERATED})", m.span,
                     "measure log_likelihood (annealed importance sampling) instead")  # fmt: skip
    if plan.options.test == 0 and any(m.name in DEEP_OBSERVABLES for m in run.measures):
        fail("P412", "pca_reconstruction compares held-out errors: hold out data", spec["span"],
             "add test = 0.2 to the train statement")  # fmt: skip
    return DeepPoint(opts, sizes, data, values.reshape(len(values), -1), domain)


def check_deep(run: RunState, program: Program) -> None:
    """Everything a deep learner's train run would reject, at every scan point (data are
    realised statically)."""
    plan = plan_deep(run, program, {})
    for point in plan.points:
        plan_deep_point(run, program, plan, program.static_data, point)


# ---------------------------------------------------------------- sample (Gibbs) of Boltzmann models


@dataclass
class BoltzmannSamplePlan:
    """A validated Gibbs sample run: the model's declaration, the sampler entry and options,
    the scan points and the model's parameter names."""

    checker: ModelChecker
    entry: Entry
    options: BaseModel
    points: list[dict]
    params: set[str]


def boltzmann_sampler(run: RunState) -> Entry | None:
    """The catalogue entry of the run's sampler if it samples Boltzmann models, else None."""
    return CATALOGUE.samplers.get(run.sampler, FAMILY) if run.sampler is not None else None


def boltzmann_ir(run: RunState, program: Program,
                 point: dict[str, Any] | None = None) -> tuple[ModelChecker, ModelIR]:  # fmt: skip
    """The run's model declaration and its IR with the run's arguments and a point's values."""
    checker = program.checker_for(run.ir)
    args = {k: v for k, (v, _) in run.model_args.items()}
    spans = {k: s for k, (_, s) in run.model_args.items()}
    args.update(point or {})
    return checker, checker.instantiate(args, spans)


def is_boltzmann_run(task: TaskIR, program: Program) -> bool:
    """Does the Boltzmann ``sample`` task do this run? gibbs on any Boltzmann model; other
    samplers stay with the lattice sampler where it can compile the model (complete graphs),
    and get a located error here otherwise (site-set graphs)."""
    run = RunState.of(task)
    checker, ir = boltzmann_ir(run, program)
    site_sets = isinstance(ir.lattice, GraphIR) and ir.lattice.kind != "complete"
    return checker.kind == FAMILY and (boltzmann_sampler(run) is not None or site_sets)


def plan_boltzmann_sample(run: RunState, program: Program,
                          sets: dict[str, Any] | None) -> BoltzmannSamplePlan:  # fmt: skip
    """Validate a Gibbs sample run: sampler and options, scans, lets, ``--set`` overrides and
    the measured observables."""
    entry = boltzmann_sampler(run)
    if entry is None:
        known = CATALOGUE.samplers.names(FAMILY)
        fail("P206", f"sampler '{run.sampler}' does not apply to Boltzmann models", run.sampler_span,
             did_you_mean(run.sampler, set(known)) or "use sampler gibbs(chains = "
             "64, sweeps = 1000)")  # fmt: skip
    checker = program.checker_for(run.ir)
    params = set(checker.param_names)
    thermal = set(THERMAL)
    for name, (_, span) in run.lets.items():
        if name not in params | thermal:
            fail("P205", f"'let {name}': not T, beta or a model parameter", span)
    fixed = resolve_sets(run, sets, params, [Settable(
        "sampler option", option_names(entry.schema), run.sampler_options)],
        lets=set(run.lets) | thermal)  # fmt: skip
    opts = validated(entry.schema, run.sampler_options, run.sampler_span, f"sampler {run.sampler}")
    for s in run.scans:
        if s.name not in params | thermal:
            fail("P205", f"cannot scan '{s.name}': not T, beta or a parameter of model "
                 f"{checker.name}", s.span, did_you_mean(s.name, params | thermal))  # fmt: skip
    points = scan_points(run, fixed)
    for m in run.measures:
        if m.expr is not None or gibbs_observable(m.name) is None:
            fail("P208", f"'{m.name}' is not an observable of Boltzmann sample runs", m.span,
                 "observables: " + ", ".join(sorted(GIBBS_OBSERVABLES)) + " (e.g. mean_v)")  # fmt: skip
    return BoltzmannSamplePlan(checker, entry, opts, points, params)


def learned_params(run: RunState, program: Program, model: BoltzmannDerivation) -> Path | None:
    """The file of learned arrays a sample run loads (``params "fit/params.safetensors"``),
    checked against the model from its header: every array it holds is one the model declares,
    of the declared shape. None without a ``params`` statement."""
    if statements(run).learned_params is None:
        return None
    name, span = statements(run).learned_params
    base = (Path(program.path).parent if program.path else Path()) if span is None else None
    path = resolve_user_path(name, span, "parameter file", {".safetensors"}, base=base,
                             type_code="P608",
                             missing_hint="a train run writes params.safetensors into its "
                             "output folder")  # fmt: skip
    try:
        with safe_open(str(path), framework="numpy") as f:
            shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the user's input
        fail("P608", f"cannot read {path.name}: {exc}", span)
    arrays = {k: np.shape(a.values) for k, a in model.model.arrays.items()}
    for k, shape in shapes.items():
        if k not in arrays:
            fail("P608", f"{path.name} has '{k}', which model {model.model.name} does not "
                 "declare", span, did_you_mean(k, set(arrays)))  # fmt: skip
        if shape != tuple(arrays[k]):
            fail("P608", f"'{k}' in {path.name} has shape {shape}; model {model.model.name} "
                 f"needs {tuple(arrays[k])}", span)  # fmt: skip
    return path


@dataclass
class BoltzmannSamplePoint:
    """One point of a Gibbs sample run, checked: the learned-parameter file (or None) and the
    inverse temperature beta."""

    params_file: Path | None
    beta: float


def plan_boltzmann_point(run: RunState, program: Program, model: BoltzmannDerivation,
                         point: dict[str, Any]) -> BoltzmannSamplePoint:  # fmt: skip
    """A point of a Gibbs sample run against its derived model: learned parameters, the fields
    of ``mean_<field>`` measures, and T or beta (positive)."""
    params_file = learned_params(run, program, model)
    for m in run.measures:
        if m.name.startswith("mean_") and m.name[5:] not in model.domains:
            fail("P208", f"model {model.model.name} has no field '{m.name[5:]}'", m.span,
                 did_you_mean(m.name[5:], set(model.domains)))  # fmt: skip
    T = point.get("T")
    beta = point.get("beta", 1.0 / T if T is not None else 1.0)
    if isinstance(beta, bool) or not isinstance(beta, int | float) or not beta > 0:
        fail("P406", f"T and beta must be positive numbers, got {point}", run.span)
    return BoltzmannSamplePoint(params_file, float(beta))


def boltzmann_point_ir(run: RunState, program: Program, plan: BoltzmannSamplePlan,
                       point: dict[str, Any]) -> ModelIR:  # fmt: skip
    """The model IR at one point of a Gibbs sample run (its model parameters only)."""
    _, ir = boltzmann_ir(run, program, {k: v for k, v in point.items() if k in plan.params})
    return ir


def check_boltzmann_sample(task: TaskIR, program: Program) -> None:
    """Everything a Gibbs sample run would reject, on the first point's derived model."""
    run = RunState.of(task)
    plan = plan_boltzmann_sample(run, program, {})
    point = plan.points[0]
    model = program.derive(boltzmann_point_ir(run, program, plan, point), kind=FAMILY)
    plan_boltzmann_point(run, program, model, point)


def bind_checks(catalogue: Catalogue) -> None:
    """Attach the static checks of recall, train and Boltzmann sample runs to their task
    entries, and the loaders of the data sources they read (torch-free)."""
    catalogue.tasks.bind_check("recall", TaskCheck(check_recall))
    catalogue.tasks.bind_check("train", TaskCheck(check_train))
    catalogue.tasks.bind_check("sample", TaskCheck(check_boltzmann_sample,
                                                   applies=is_boltzmann_run), family=FAMILY)  # fmt: skip
    data_sources.bind(catalogue)
