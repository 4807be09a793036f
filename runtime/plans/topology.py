"""Static plans (torch-free) of the topology tasks: ``invariant winding|chern(...)`` (task
``topology``) and ``locate impurities(...)`` (task ``images``), each with ``learners = [...]``.

    learner cnn_net = classifier(channels = [16, 16]) respecting translation
    learner fc_net = classifier(hidden = [128])
    run winding { invariant winding(train = [-1, 0, 1], test = [-3, -2, 2, 3]), learners = [cnn_net, fc_net] }

A plan reads the statement, applies ``--set`` values (options of the method), validates them
against the catalogue's schemas and the learners against ``classifier``'s, and refuses what
cannot be met, located (P430): an empty training set, test invariants that overlap the training
ones, invariants the generator cannot reach with its harmonics or grid, a grid too coarse to
resolve them, images too small for their lattice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from physml_lang.catalogue import Catalogue
from physml_lang.catalogue.topology import (
    FAMILY,
    INVARIANT_SCHEMAS,
    ClassifierOptions,
    ImpurityOptions,
)
from physml_lang.check.tasks import STATEMENTS
from physml_lang.diagnostics import Diagnostic, PhysmlError, Span, did_you_mean
from physml_lang.ir.task import CallValue, TaskIR, Word

from ..tasks import RunState, TaskCheck, option_values, plain
from .parameters import Located, Settable, apply_sets

# k-points per axis and unit of |Chern number| at least: the data keep models whose unit
# vectors d/|d| at neighbouring k differ by less than pi/2, which QWZ with |C| = p q needs
RESOLVE = 8
# k-points per unit of the highest harmonic at least: the data keep curves whose neighbouring
# k differ by less than pi/2 in angle, and a pure harmonic H steps by 2 pi H / k_points
WINDING_RESOLVE = 8


def _fail(code: str, msg: str, span: Span | None = None, hint: str | None = None):
    raise PhysmlError(Diagnostic(code, msg, span, hint))


@dataclass
class LearnerSpec:
    """A declared learner used by the run: its name, whether it is convolutional (respecting
    translation) and its validated options."""

    name: str
    conv: bool
    options: ClassifierOptions
    span: Span | None


@dataclass
class TopologyPlan:
    """A topology or images run, validated: ``method`` (winding, chern, impurities), its
    options, the learners in order, and the spans to locate run-time failures at."""

    task: str
    method: str
    options: Any
    learners: list[LearnerSpec]
    method_span: Span | None
    statement_span: Span | None
    option_spans: dict[str, Span | None] = field(default_factory=dict)

    def span_of(self, option: str) -> Span | None:
        return self.option_spans.get(option) or self.method_span


def _statement(run: RunState):
    word = "invariant" if run.task == "topology" else "locate"
    return word, next(s for s in run.statements if s.word == word)


def _method(stmt, word: str) -> tuple[str, Located, Span | None]:
    item = stmt.items[0] if stmt.items else None
    v = item.value if item is not None and item.kind == "value" else None
    if not isinstance(v, Word | CallValue):
        _fail("P109", f"{word} takes a method first", stmt.span, STATEMENTS[word].usage)
    opts: Located = {}
    if isinstance(v, CallValue):
        if v.args:
            _fail("P109", f"the options of {v.name} are given by name: {v.name}(epochs = 30)",
                  v.span)  # fmt: skip
        for o in v.kwargs:
            if o.name in opts:
                _fail("P109", f"option '{o.name}' is given twice", o.span)
            opts[o.name] = (plain(o.value), o.span)
    return v.name, opts, getattr(v, "name_span", None) or v.span


def _learners(stmt, word: str, program) -> list[LearnerSpec]:
    """The ``learners = [a, b]`` of the statement, each a declared table classifier."""
    usage = STATEMENTS[word].usage
    item = None
    for it in stmt.items[1:]:
        if it.kind != "named" or it.name != "learners":
            _fail("P109", f"{word}: after the method comes learners = [...] (the method's "
                  "options go in its parentheses)", it.span, usage)  # fmt: skip
        item = it
    if item is None:
        _fail("P109", f"{word} names the learners it trains", stmt.span, usage)
    names = item.value if isinstance(item.value, tuple | list) else (item.value,)
    if not names or not all(isinstance(n, Word) for n in names):
        _fail("P109", "learners = [cnn_net, fc_net]: declared learners by name", item.span, usage)
    out: list[LearnerSpec] = []
    for n in names:
        decl = program.learners.get(n.name)
        span = n.span or item.span
        if decl is None:
            _fail("P203", f"unknown learner '{n.name}'", span,
                  did_you_mean(n.name, set(program.learners))
                  or "declare it: learner cnn_net = classifier(channels = [16, 16]) "
                  "respecting translation")  # fmt: skip
        if decl.of != "learner" or decl.call.name != "classifier":
            _fail("P430", f"learner {n.name} = {decl.call.name}(...) is not a classifier",
                  span, "learner fc_net = classifier(hidden = [128])")  # fmt: skip
        if any(o.name == n.name for o in out):
            _fail("P109", f"learner {n.name} is listed twice", span)
        opts: Located = {k.name: (plain(k.value), k.span) for k in decl.call.kwargs}
        values = option_values(opts, ClassifierOptions, decl.call.span, "learner classifier")
        conv = "translation" in decl.respecting
        for sym, sspan in zip(decl.respecting, decl.respecting_spans, strict=True):
            if sym != "translation":
                _fail("P501", f"learner classifier cannot respect {sym}", sspan,
                      "classifier respects: translation")  # fmt: skip
        if conv and "hidden" in opts:
            _fail("P430", "hidden widths belong to a fully connected classifier; one that "
                  "respects translation is convolutional", opts["hidden"][1],
                  "give channels = [16, 16]")  # fmt: skip
        conv_keys = [k for k in ("channels", "kernel", "pointwise", "order") if k in opts]
        if not conv and conv_keys:
            key = conv_keys[0]
            _fail("P430", f"{key} belong to a convolutional classifier, which respects "
                  "translation", opts[key][1],
                  f"learner {n.name} = classifier(...) respecting translation, or give "
                  "hidden = [128]")  # fmt: skip
        out.append(LearnerSpec(n.name, conv, values, span))
    return out


def plan_topology(run: RunState, program, sets: dict[str, Any] | None = None) -> TopologyPlan:
    """Validate an ``invariant`` or ``locate`` run with its ``--set`` values."""
    word, stmt = _statement(run)
    method, mopts, mspan = _method(stmt, word)
    schema: type[BaseModel] = (INVARIANT_SCHEMAS[method] if word == "invariant"
                               else ImpurityOptions)  # fmt: skip
    checker = program.checker_for(run.ir)
    if checker.kind != FAMILY:
        _fail("P430", f"{word} {method} generates its own data and needs no model; run "
              f"{run.name} names model {checker.name}", run.model_span or run.span,
              "leave the model out")  # fmt: skip
    apply_sets(run, dict(sets or {}), list(checker.param_names),
               [Settable.options(f"{method} option", schema, mopts)])  # fmt: skip
    options = option_values(mopts, schema, mspan, method)
    learners = _learners(stmt, word, program)
    plan = TopologyPlan(run.task, method, options, learners, mspan, stmt.span,
                        {k: s for k, (_, s) in mopts.items()})  # fmt: skip
    if word == "invariant":
        _check_invariant(plan)
    else:
        _check_images(plan)
    return plan


def _check_invariant(plan: TopologyPlan) -> None:
    o = plan.options
    if not o.train:
        _fail("P430", "the training set is empty: train lists no invariant",
              plan.span_of("train"), "train = [-1, 0, 1]")  # fmt: skip
    if not o.test:
        _fail("P430", "the test set is empty", plan.span_of("test"), "test = [-3, -2, 2, 3]")
    both = sorted(set(o.train) & set(o.test))
    if both:
        _fail("P430", f"test invariants {both} are also trained on: the test is of invariants "
              "beyond the training set", plan.span_of("test"),
              "test = " + str(sorted({-3, -2, 2, 3} - set(o.train))))  # fmt: skip
    most = max(abs(w) for w in [*o.train, *o.test])
    if plan.method == "winding":
        if most > o.harmonics:
            _fail("P430", f"winding {most} needs a harmonic e^(i {most} k); harmonics = "
                  f"{o.harmonics}", plan.span_of("harmonics"),
                  f"harmonics = {most}")  # fmt: skip
        if o.k_points < WINDING_RESOLVE * o.harmonics:
            need = WINDING_RESOLVE * o.harmonics
            _fail("P430", f"k_points = {o.k_points} cannot resolve harmonics up to "
                  f"{o.harmonics} (at least {need} points)", plan.span_of("k_points"),
                  f"k_points = {need}, or fewer harmonics")  # fmt: skip
    elif o.points < RESOLVE * max(most, 1):
        _fail("P430", f"points = {o.points} cannot resolve Chern number {most} (its models "
              f"wind {most} times across the zone; at least {RESOLVE * most} points per axis)",
              plan.span_of("points"), f"points = {RESOLVE * most}")  # fmt: skip


def _check_images(plan: TopologyPlan) -> None:
    o = plan.options
    for key in ("size", "test_size"):
        if getattr(o, key) < 2 * o.spacing:
            _fail("P430", f"{key} = {getattr(o, key)} holds fewer than 2 x 2 sites of spacing "
                  f"{o.spacing}", plan.span_of(key), f"{key} = {4 * o.spacing}")  # fmt: skip
    if o.psf > o.spacing:
        _fail("P430", f"psf = {o.psf:g} is wider than the lattice spacing {o.spacing}: the "
              "atoms are not resolved", plan.span_of("psf"), f"psf <= {o.spacing / 3:.2g}")


def check_topology(task: TaskIR, program) -> None:
    """The static check of a topology or images run."""
    plan_topology(RunState.of(task), program)


def bind_checks(catalogue: Catalogue) -> None:
    """Attach the static checks of this family's tasks."""
    for task in ("topology", "images"):
        catalogue.tasks.bind_check(task, TaskCheck(check_topology))


__all__ = ["LearnerSpec", "TopologyPlan", "bind_checks", "check_topology", "plan_topology"]
