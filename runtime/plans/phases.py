"""Static plan (torch-free) of a ``classify phases via METHOD(...)`` run.

    learner cnn_net = classifier(channels = [8, 8]) respecting translation
    run phases {
        model Ising
        sampler metropolis(chains = 32, sweeps = 100, burn_in = 400, thin = 5)
        scan T in linspace(1.6, 3.2, 17)
        classify phases via supervised(epochs = 20), learners = [cnn_net], sizes = [8, 12, 16]
    }

The plan reads the statement, applies ``--set`` values (a scan variable, a model parameter, an
option of the method, of ``classify`` or of the sampler), validates the options, and checks
what the run needs: a classical lattice model with one spin field (s = +-1) and an integer
size parameter ``L`` when ``sizes`` are given, a scan over the temperature ``T``, training
windows that each hold scan temperatures, declared ``classifier`` learners (convolutional ones
``respecting translation`` on a model that declares it), and transfer models of the same kind.
Every model of every size is derived (``program.derive``), so ``physml check`` sees a size the
lattice refuses.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import Any

from pydantic import BaseModel

from physml_lang.catalogue import CATALOGUE, Catalogue
from physml_lang.catalogue.phases import (
    FAMILY,
    METHOD_SCHEMAS,
    ClassifierOptions,
    ClassifyOptions,
)
from physml_lang.check.tasks import STATEMENTS
from physml_lang.diagnostics import Diagnostic, PhysmlError, Span, did_you_mean
from physml_lang.ir.task import CallValue, TaskIR, Word

from ..tasks import RunState, TaskCheck, option_values, plain
from .parameters import Located, Settable, apply_sets

SIZE = "L"  # the structural parameter the sizes re-instantiate
TEMPERATURE = "T"
MIN_TEMPERATURES = 4
DEFAULT_SAMPLER = {"chains": 32, "sweeps": 100, "burn_in": 500, "thin": 5}


def _fail(code: str, msg: str, span: Span | None = None, hint: str | None = None):
    raise PhysmlError(Diagnostic(code, msg, span, hint))


@dataclass
class Learner:
    """A declared classifier: its name, options and whether it respects translation."""

    name: str
    options: ClassifierOptions
    translation: bool
    span: Span | None = None


@dataclass
class PhasesPlan:
    """A classify run, validated: the method and its options, the classify options, the
    learners, the temperatures, the sizes (L values; [None] for the model as given), the
    sampler (name, options), the model arguments and the transfer models."""

    method: str
    options: BaseModel
    classify: ClassifyOptions
    learners: list[Learner]
    temperatures: list[float]
    sizes: list[int | None]
    sampler: str
    sampler_options: BaseModel
    args: dict[str, Any]
    model: str
    field: str = ""
    spin_flip: bool = False  # the model declares spin_flip: configurations may be flipped
    method_span: Span | None = None
    statement_span: Span | None = None
    spans: dict[str, Span | None] = dc_field(default_factory=dict)
    ordered_below: float = 0.0
    disordered_above: float = 0.0

    def span_of(self, option: str) -> Span | None:
        return self.spans.get(option) or self.statement_span

    @property
    def per_temperature(self) -> int:
        """Configurations per temperature and size: one per chain every ``thin`` sweeps."""
        o = self.sampler_options
        return o.chains * max(1, o.sweeps // o.thin)


def _method(stmt) -> tuple[str, Located, Span | None, Span | None]:
    """``classify phases via METHOD(...)``: the method, its options and spans."""
    item = next((it for it in stmt.items if it.kind == "via"), None)
    if item is None or not isinstance(item.value, Word) or item.value.name != "phases":
        _fail("P109", "classify names what it recognises and a method: classify phases via "
              "supervised(...)", stmt.span, STATEMENTS["classify"].usage)  # fmt: skip
    v = item.via
    if not isinstance(v, Word | CallValue):
        _fail("P109", "classify phases via METHOD(...): a method", item.span)
    opts: Located = {}
    if isinstance(v, CallValue):
        if v.args:
            _fail("P109", f"the options of {v.name} are given by name: {v.name}(epochs = 20)",
                  v.span)  # fmt: skip
        for o in v.kwargs:
            if o.name in opts:
                _fail("P201", f"option '{o.name}' is given twice", o.span)
            opts[o.name] = (plain(o.value), o.span)
    return v.name, opts, getattr(v, "name_span", None) or v.span, item.span


def _names(value: Any, span: Span | None, what: str) -> list[tuple[str, Span | None]]:
    """A list of bare words (learners, models) with their spans."""
    values = value if isinstance(value, list) else [value]
    out = []
    for v in values:
        if not isinstance(v, Word):
            _fail("P109", f"{what} is a list of declared names: {what} = [cnn_net, fc_net]", span)
        out.append((v.name, v.span or span))
    return out


def _learner(name: str, span: Span | None, program) -> Learner:
    decl = program.learners.get(name)
    if decl is None:
        _fail("P207", f"unknown learner '{name}'", span, did_you_mean(name, set(program.learners))
              or "declare it: learner cnn_net = classifier(channels = [8, 8]) respecting "
              "translation")  # fmt: skip
    entry = CATALOGUE.learners.get(decl.call.name, FAMILY)
    if decl.of != "learner" or entry is None or decl.call.name != "classifier":
        _fail("P429", f"learner {name} = {decl.call.name}(...) does not classify "
              "configurations", span, "declare learner net = classifier(hidden = [64])")  # fmt: skip
    opts: Located = {k.name: (plain(k.value), k.span) for k in decl.call.kwargs}
    options = option_values(opts, ClassifierOptions, decl.call.span, "learner classifier")
    translation = "translation" in decl.respecting
    for sym, sspan in zip(decl.respecting, decl.respecting_spans, strict=True):
        if sym != "translation":
            _fail("P501", f"learner classifier cannot respect {sym}", sspan,
                  "classifier respects: translation (its convolutional form)")  # fmt: skip
        if not options.convolutional:
            _fail("P501", f"a fully connected classifier ({name}) cannot respect translation",
                  sspan, "give it convolution channels: classifier(channels = [8, 8])")  # fmt: skip
    return Learner(name, options, translation or options.convolutional, span)


def _field(ir, span: Span | None) -> str:
    """The one spin field (s = +-1) on the sites of a classical lattice model."""
    fields = [f for f in ir.fields if f.on == "sites"]
    if ir.kind != FAMILY or len(ir.fields) != 1 or len(fields) != 1 \
            or not fields[0].domain.ising:  # fmt: skip
        _fail("P429", f"classify phases needs a classical lattice model with one spin field "
              f"(s = +-1) on the sites; model {ir.name} is a {ir.kind} model with "
              f"{len(ir.fields)} field(s)", span, "e.g. import Ising")  # fmt: skip
    return fields[0].name


def plan_phases(run: RunState, program, sets: dict[str, Any] | None = None) -> PhasesPlan:
    """Validate a classify run with its ``--set`` values (located diagnostics)."""
    stmt = next(s for s in run.statements if s.word == "classify")
    method, mopts, mspan, vspan = _method(stmt)
    if method not in METHOD_SCHEMAS:
        _fail("P203", f"{stmt.word}: unknown method '{method}'", mspan,
              did_you_mean(method, set(METHOD_SCHEMAS)) or "methods: "
              + ", ".join(METHOD_SCHEMAS))  # fmt: skip
    schema = METHOD_SCHEMAS[method]
    copts: Located = {}
    learner_items: list[tuple[str, Span | None]] = []
    transfer: list[tuple[str, Span | None]] = []
    for it in stmt.items:
        if it.kind == "via":
            continue
        if it.kind != "named":
            _fail("P109", "classify: options are named (sizes = [8, 16])", it.span,
                  STATEMENTS["classify"].usage)  # fmt: skip
        if it.name in copts or (it.name == "learners" and learner_items):
            _fail("P201", f"option '{it.name}' is given twice", it.span)
        if it.name == "learners":
            learner_items = _names(plain(it.value), it.value_span, "learners")
        elif it.name == "transfer":
            transfer = _names(plain(it.value), it.value_span, "transfer")
            copts["transfer"] = ([n for n, _ in transfer], it.span)
        else:
            copts[it.name] = (plain(it.value), it.span)
    checker = program.checker_for(run.ir)
    params = list(checker.param_names)
    sampler = run.sampler or "metropolis"
    sentry = CATALOGUE.samplers.lookup(sampler, FAMILY, run.sampler_span)
    sopts: Located = dict(run.sampler_options)
    if run.sampler is None:
        sopts = {k: (v, None) for k, v in DEFAULT_SAMPLER.items()}
    apply_sets(run, dict(sets or {}), params, [
        Settable.options(f"{method} option", schema, mopts),
        Settable.options("classify option", ClassifyOptions, copts),
        Settable.options("sampler option", sentry.schema, sopts)])  # fmt: skip
    options = option_values(mopts, schema, mspan, method)
    classify = option_values(copts, ClassifyOptions, stmt.span, "classify")
    sampler_options = option_values(sopts, sentry.schema, run.sampler_span or stmt.span, sampler)
    learners = [_learner(n, s, program) for n, s in learner_items]
    if method in ("supervised", "confusion") and not learners:
        _fail("P109", f"classify phases via {method} trains classifiers: name them with "
              "learners = [cnn_net, fc_net]", stmt.span,
              "declare learner cnn_net = classifier(channels = [8, 8]) respecting "
              "translation")  # fmt: skip
    if len({lr.name for lr in learners}) != len(learners):
        _fail("P213", "a learner is named twice", stmt.span)
    temperatures = _temperatures(run, params, stmt.span)
    spans = {k: s for k, (_, s) in copts.items()}
    plan = PhasesPlan(method, options, classify, learners, temperatures, [None], sampler,
                      sampler_options, {k: v for k, (v, _) in run.model_args.items()},
                      checker.name, method_span=mspan, statement_span=stmt.span,
                      spans=spans)  # fmt: skip
    if classify.sizes is not None:
        if SIZE not in params:
            _fail("P429", f"sizes re-instantiate the parameter {SIZE}, and model "
                  f"{checker.name} has none", plan.span_of("sizes"),
                  f"declare model {checker.name}({SIZE}: int = 16) and a lattice of size "
                  f"{SIZE}")  # fmt: skip
        plan.sizes = list(classify.sizes)
    elif classify.train_size is not None:
        _fail("P429", "train_size trains convolutional learners at one L and reads every size: "
              "give the sizes too (sizes = [8, 16, 32])", plan.span_of("train_size"))  # fmt: skip
    _windows(plan, vspan)
    extra = [classify.train_size] if classify.train_size not in (None, *plan.sizes) else []
    for L in [*plan.sizes, *extra]:
        args = dict(plan.args) if L is None else {**plan.args, SIZE: L}
        ir = checker.instantiate(args, {SIZE: plan.span_of("train_size" if L in extra
                                                           else "sizes")})
        plan.field = _field(ir, run.model_span or run.span)
        plan.spin_flip = any(s.name == "spin_flip" and s.active for s in ir.symmetries)
        translation = any(s.name == "translation" and s.active for s in ir.symmetries)
        for lr in learners:
            if lr.translation and not translation:
                _fail("P501", f"learner {lr.name} respects translation, and model {ir.name} "
                      "does not declare it", lr.span,
                      "declare symmetry translation on a periodic lattice")  # fmt: skip
        derived = program.derive(ir)
        if classify.coarse_grain is not None:
            _coarse(plan, derived.lattice, ir.name)
    if classify.perturbed is not None:
        _perturbed(plan, checker, params, program)
    for (name, span) in transfer:
        other = program.checked.models.get(name) if hasattr(program, "checked") else None
        if other is None:
            _fail("P204", f"unknown model '{name}'", span,
                  f"import it or declare it: import {name}")  # fmt: skip
        L = max(s for s in plan.sizes if s is not None) if plan.sizes != [None] else None
        ir = other.instantiate({} if L is None or SIZE not in other.param_names else {SIZE: L})
        _field(ir, span)
        program.derive(ir)
    if transfer and classify.transfer_T is None:
        _fail("P429", "transfer models need their temperature ranges: transfer_T = [[3.0, "
              "4.4], ...]", plan.span_of("transfer"))  # fmt: skip
    return plan


def _perturbed(plan: PhasesPlan, checker, params: list[str], program) -> None:
    """perturbed = PARAMETER: a real parameter of the model other than the size, whose
    perturbed instance the lattice accepts at the largest size."""
    c = plan.classify
    where = plan.span_of("perturbed")
    if c.perturbed not in params or c.perturbed == SIZE:
        _fail("P429", f"perturbed names a parameter of model {checker.name} to change; "
              f"'{c.perturbed}' is not one", where,
              did_you_mean(c.perturbed, set(params) - {SIZE})
              or f"parameters: {', '.join(p for p in params if p != SIZE)}")  # fmt: skip
    L = max((s for s in plan.sizes if s is not None), default=None)
    args = {**plan.args, c.perturbed: c.perturbed_value}
    spans = {c.perturbed: where, SIZE: plan.span_of("sizes")}
    program.derive(checker.instantiate(args if L is None else {**args, SIZE: L}, spans))


def _coarse(plan: PhasesPlan, lattice, name: str) -> None:
    """coarse_grain = b: one site per cell and every side of every size divisible by b."""
    b = plan.classify.coarse_grain
    where = plan.span_of("coarse_grain")
    if int(lattice.basis) != 1:
        _fail("P429", f"coarse_grain makes block spins of one-site cells; model {name} has "
              f"{int(lattice.basis)} sites per cell", where)  # fmt: skip
    shape = tuple(int(n) for n in lattice.shape)
    if any(n % b for n in shape):
        _fail("P429", f"coarse_grain = {b}: a lattice of {' x '.join(map(str, shape))} cells "
              f"does not divide into {b} blocks per side", where,
              f"sizes that are multiples of {b}")  # fmt: skip
    if plan.classify.transfer:
        _fail("P429", "coarse_grain and transfer cannot be combined: the transferred lattices "
              "are read without block spins", where)  # fmt: skip


def _temperatures(run: RunState, params: list[str], span: Span | None) -> list[float]:
    scan = next((s for s in run.scans if s.name == TEMPERATURE), None)
    others = [s for s in run.scans if s.name != TEMPERATURE]
    if others:
        _fail("P429", f"classify phases scans the temperature T only; it cannot scan "
              f"'{others[0].name}'", others[0].span, "give other parameters in the model "
              "statement, sizes with sizes = [...]")  # fmt: skip
    if scan is None or len(scan.values) < MIN_TEMPERATURES:
        _fail("P429", f"classify phases needs a scan over T with at least {MIN_TEMPERATURES} "
              "temperatures", scan.span if scan else span,
              "scan T in linspace(1.6, 3.2, 17)")  # fmt: skip
    values = sorted(float(v) for v in scan.values)
    if values[0] <= 0 or len(set(values)) != len(values):
        _fail("P429", "the scanned temperatures must be distinct and positive", scan.span)
    return values


def _windows(plan: PhasesPlan, span: Span | None) -> None:
    """The training windows (default: the outer quarters of the scan): each must hold a
    scanned temperature, or one phase has no configurations."""
    ts, c = plan.temperatures, plan.classify
    lo, hi = ts[0], ts[-1]
    plan.ordered_below = c.ordered_below if c.ordered_below is not None else lo + (hi - lo) / 4
    plan.disordered_above = (c.disordered_above if c.disordered_above is not None
                             else hi - (hi - lo) / 4)  # fmt: skip
    if plan.method != "supervised":
        return
    if not any(t < plan.ordered_below for t in ts):
        _fail("P429", f"no scanned temperature lies below ordered_below = "
              f"{plan.ordered_below:g}: the ordered phase has no training configurations",
              plan.span_of("ordered_below"), f"the scan starts at T = {lo:g}")  # fmt: skip
    if not any(t > plan.disordered_above for t in ts):
        _fail("P429", f"no scanned temperature lies above disordered_above = "
              f"{plan.disordered_above:g}: the disordered phase has no training configurations",
              plan.span_of("disordered_above"), f"the scan ends at T = {hi:g}")  # fmt: skip


def check_phases(task: TaskIR, program) -> None:
    """The static check of a classify run."""
    plan_phases(RunState.of(task), program)


def bind_checks(catalogue: Catalogue) -> None:
    """Attach the static checks of this family's tasks."""
    catalogue.tasks.bind_check("classify", TaskCheck(check_phases))


__all__ = ["Learner", "PhasesPlan", "bind_checks", "check_phases", "plan_phases"]
