"""Run blocks -> task IR. Each statement word is looked up in :data:`STATEMENTS`, which says
what the statement is for and which task it decides; its items become typed values.

The words and the tasks they decide are front-end facts (no runtime import): the runtime reads
the statements of a :class:`~physml_lang.ir.task.TaskIR` and validates their options against
the schemas of the entries they name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from physml_lang.catalogue import CATALOGUE
from physml_lang.catalogue.discovery import DISCOVER_TASKS
from physml_lang.catalogue.landscape import EVOLVE_TASKS, OPTIMISER_SCHEMAS
from physml_lang.catalogue.phases import CLASSIFY_TASKS
from physml_lang.catalogue.topology import INVARIANT_TASKS, LOCATE_TASKS
from physml_lang.diagnostics import ErrorCollector, Span, did_you_mean
from physml_lang.ir import expr as E
from physml_lang.ir.task import (
    CallValue,
    ItemIR,
    MeasureIR,
    ModelRefIR,
    Option,
    PlotIR,
    ScanIR,
    StatementIR,
    TaskIR,
    Word,
)
from physml_lang.ir.walk import as_call, column_name, fail, name_of
from physml_lang.syntax import ast

from .constants import ConstEvaluator, as_value
from .lowering import to_ir


@dataclass(frozen=True)
class Statement:
    """A run-statement word: its usage, and the task it decides (``task``), or the task a run
    does when no statement decides (``default_task``). Words shared by capabilities tell their
    uses apart by the ``via`` method: ``methods`` maps a method to its task."""

    usage: str
    task: str | None = None
    default_task: str | None = None
    methods: dict[str, str] = field(default_factory=dict)
    default_method: str | None = None
    # the method may also be the statement's first item, a call (evolve dmc(walkers = 1000));
    # a statement that names no method then does ``no_method_task``
    method_first: bool = False
    no_method_task: str | None = None


def _train_methods() -> dict[str, str]:
    """Method of a ``train`` statement -> the task it does: each objective declares the task
    its ``train ... via`` statement runs (one task per objective name, whatever its family)."""
    methods: dict[str, str] = {}
    for o in CATALOGUE.objectives:
        if methods.setdefault(o.name, o.facts.task) != o.facts.task or not o.facts.task:
            raise ValueError(f"objective {o.title} must name one task for every family")
    return methods


# fmt: off
STATEMENTS: dict[str, Statement] = {
    "model": Statement("model Ising(L = 32, h = 0.1)"),
    "sampler": Statement("sampler metropolis(chains = 64, sweeps = 2000, burn_in = 500)",
                         default_task="sample"),
    "scan": Statement("scan T in linspace(1.5, 3.5, 21)"),
    "let": Statement("let T = 2.0"),
    "measure": Statement("measure e = energy / sites, specific_heat, binder"),
    "plot": Statement("plot e, specific_heat, mark = 2.269"),
    # exact diagonalisation and variational Monte Carlo of quantum models
    "exact": Statement("exact levels = 4, sector = 0", task="exact"),
    "learner": Statement("learner psi", task="vmc"),
    "optimize": Statement("optimize psi via sr(lr = 0.02, diag_shift = 0.1)", task="vmc"),
    "iterations": Statement("iterations 300", task="vmc"),
    "pretrain": Statement("pretrain 400 via adam(lr = 0.01)", task="vmc"),
    "samples": Statement("samples 1000, final = 20000", task="vmc"),
    "reference": Statement("reference exact | none | energy = -25.49"),
    "checkpoint": Statement("checkpoint every = 25"),
    # gauge-equivariant regression
    "regress": Statement("regress f, g, target = wilson_loop(2, 2), test_L = [16, 32], "
                         "epochs = 40", task="gauge_regress"),
    # Hamiltonian dynamics and learned dynamics
    "initial": Statement("initial q = 1.0, p = 0.0"),
    "evolve": Statement("evolve integrator = [leapfrog, rk4], dt = 0.1, steps = 100000  |  "
                        "evolve imaginary_time(points = 256, dtau = 0.01, steps = 4000)  |  "
                        "evolve dmc(walkers = 2000, dtau = [0.02, 0.01])",
                        methods=dict(EVOLVE_TASKS), method_first=True, no_method_task="evolve"),
    # optimisation as dynamics (runtime/landscape)
    "optimise": Statement("optimise f via mqhoa(k = 20), evaluations = 20000, restarts = 30, "
                          "target = 0", methods={m: "optimise" for m in OPTIMISER_SCHEMAS}),
    # learning about physics: laws, conserved quantities, phases, invariants, images
    "discover": Statement("discover P via power_law(a)  |  discover equations(degree = 3, "
                          "threshold = 0.05)  |  discover conserved(degree = 2)  |  discover "
                          "conserved(degree = 3), data = events (columns NAME before and "
                          "NAME_after after each event)",
                          methods=dict(DISCOVER_TASKS), method_first=True),
    "classify": Statement("classify phases via supervised(epochs = 30), learners = [cnn_net, "
                          "fc_net]  |  classify phases via pca  |  classify phases via confusion",
                          methods=dict(CLASSIFY_TASKS)),
    "invariant": Statement("invariant winding(train = [-1, 0, 1], test = [-3, -2, 2, 3]), "
                           "learners = [cnn_net, fc_net]  |  invariant chern(...)",
                           methods=dict(INVARIANT_TASKS), method_first=True),
    "locate": Statement("locate impurities(size = 16, noise = 0.3), learners = [cnn_net, "
                        "fc_net]", methods=dict(LOCATE_TASKS), method_first=True),
    "trajectories": Statement("trajectories count = 25, points = 30, t_span = 3.0, noise = 0.1"
                              '  |  trajectories load("orbits.npz")'),
    "rollout": Statement("rollout count = 10, horizon = 20, steps = 200"),
    # 'train' is shared: dynamics learners (derivative_mse, step_mse) and energy-based learners
    "train": Statement(
        "train H_net, baseline via derivative_mse(steps = 2000, lr = 1e-3)  |  "
        "train rbm via pcd(k = 1, chains = 100), data = digits, epochs = 20, batch = 64  |  "
        "train q via free_energy(beta = 0.44, steps = 2000, batch = 1000)",
        methods=_train_methods(),
        default_method="derivative_mse"),
    # Hopfield networks and Boltzmann learners
    "recall": Statement("recall xi via glauber(T = 0, update = sequential, sweeps = 20), "
                        "flip = 0.1", task="recall"),
    "optimizer": Statement("optimizer adam(lr = 0.01, weight_decay = 1e-4)"),
    "schedule": Statement("schedule cosine(min_factor = 0.1)"),
    "generate": Statement("generate chains = 64, burn_in = 200, sweeps = 200"),
    "ais": Statement("ais betas = 2000, chains = 100"),
    "data": Statement("data digits"),
    "params": Statement('params "fit/params.safetensors"'),
    # the Hopfield phase diagram (runtime/hopfield)
    "phases": Statement("phases xi via tempering(T = linspace(0.9, 1.9, 11), sweeps = 2000), "
                        "alpha = [0.05, 0.1, 0.2], disorder = 32", task="phases"),
}
# fmt: on
TASKS = sorted(
    {s.task or s.default_task or s.no_method_task for s in STATEMENTS.values()} - {None}
    | {t for s in STATEMENTS.values() for t in s.methods.values()}
)


def _constant(e: E.Expr, what: str) -> Any:
    return as_value(ConstEvaluator({}, allow_words=True, allow_calls=True, what=what).walk(e))


def _as_call(e: E.Expr, what: str, usage: str, span: Span | None) -> CallValue:
    """``metropolis(chains = 4)`` or a bare ``autoregressive``: a call with named options."""
    name = name_of(e)
    if name is not None:
        return CallValue(name, span=e.span, name_span=e.span)
    call = as_call(e)
    if call is None:
        fail("P103", f"'{what}' takes one {what}", span, usage)
    value = _constant(e, f"the {what}")
    return value


class TaskChecker:
    """Checks one run block into a :class:`TaskIR`."""

    def __init__(self, node: ast.Run):
        self.node = node
        self.model: ModelRefIR | None = None
        self.sampler: CallValue | None = None
        self.scans: list[ScanIR] = []
        self.lets: list[Option] = []
        self.measures: list[MeasureIR] = []
        self.plots: list[PlotIR] = []
        self.statements: list[StatementIR] = []
        self.trains: list[str] = []
        self.task: str | None = None

    def check(self) -> TaskIR:
        """The task IR; the errors of every statement at once (statements are independent:
        one that fails is reported and the others are still checked)."""
        node = self.node
        errors = ErrorCollector()
        seen: dict[str, Span] = {}
        default = None
        undecided = False  # a statement that may have said what the run does failed
        for stmt in node.stmts:
            entry = STATEMENTS.get(stmt.word)
            if entry is None:
                hint = did_you_mean(stmt.word, set(STATEMENTS)) or (
                    "run statements: " + ", ".join(sorted(STATEMENTS)))
                with errors:
                    fail("P203", f"unknown run statement '{stmt.word}'", stmt.word_span, hint)
                undecided = True
                continue
            if stmt.word in ("model", "sampler") and stmt.word in seen:
                with errors:
                    fail("P201", f"a run has one '{stmt.word}' statement", stmt.word_span)
                continue
            seen[stmt.word] = stmt.span
            default = default or entry.default_task
            task = entry.task
            done = False
            with errors:
                handler = getattr(self, f"_{stmt.word}", None)
                if handler is not None:
                    handler(stmt)
                else:
                    ir = self._statement(stmt)
                    if entry.methods:
                        task = self._method_task(stmt, ir, entry)
                    self.statements.append(ir)
                done = True
            if not done and entry.methods:
                undecided = True  # its method says which task: unknown
                continue
            if task:
                if self.task and self.task != task:
                    with errors:
                        fail("P211", f"a run does one thing: it already has a {self.task} task",
                             stmt.word_span)  # fmt: skip
                    continue
                self.task = task
        kind = self.task or default
        if kind is None and not undecided:
            with errors:
                fail("P412", f"run {node.name} does nothing", node.name_span,
                     "add a statement that says what to do, e.g. 'sampler metropolis(chains = "
                     "64)'; tasks: " + ", ".join(TASKS))  # fmt: skip
        errors.raise_if_any()
        return TaskIR(
            node.name, kind, self.model, self.sampler, tuple(self.scans), tuple(self.lets),
            tuple(self.measures), tuple(self.plots), tuple(self.statements), tuple(self.trains),
            span=node.span, name_span=node.name_span,
        )  # fmt: skip

    # ---------------------------------------------------------------- generic statements
    def _statement(self, stmt: ast.RunStmt) -> StatementIR:
        items = []
        for it in stmt.items:
            value = to_ir(it.value)
            what = f"option {it.name}" if it.name else f"'{stmt.word}'"
            if it.kind == "via":
                via = to_ir(it.via)
                items.append(ItemIR("via", _constant(value, what), via=_constant(via, what),
                                    span=it.span, value_span=it.value.span))  # fmt: skip
            else:
                kind = {"expr": "value"}.get(it.kind, it.kind)
                items.append(ItemIR(kind, _constant(value, what), name=it.name, span=it.span,
                                    value_span=it.value.span))  # fmt: skip
        return StatementIR(stmt.word, tuple(items), span=stmt.span, word_span=stmt.word_span)

    def _method_task(self, stmt: ast.RunStmt, ir: StatementIR, entry: Statement) -> str:
        via = next((it for it in ir.items if it.kind == "via"), None)
        method = None
        if via is not None:
            v = via.via
            method = v.name if isinstance(v, Word | CallValue) else None
        elif entry.method_first:
            first = ir.items[0] if ir.items else None
            v = first.value if first is not None and first.kind == "value" else None
            if not isinstance(v, Word | CallValue):
                if entry.no_method_task is None:
                    fail("P107", f"{stmt.word} takes a method first", stmt.span, entry.usage)
                return entry.no_method_task
            method = v.name
            if method not in entry.methods:
                known = sorted(entry.methods)
                fail("P203", f"{stmt.word}: unknown method '{method}'", v.span,
                     did_you_mean(method, set(known))
                     or f"{stmt.word} METHOD(...), METHOD one of: " + ", ".join(known))  # fmt: skip
        else:
            method = entry.default_method
        task = entry.methods.get(method) if method is not None else None
        if task is None:
            known = sorted(entry.methods)
            vspan = None
            if via is not None:
                src = next(i for i in stmt.items if i.kind == "via")
                vspan = src.via.span
            what = f"unknown method '{method}'" if method else "no 'via' method"
            hint = (did_you_mean(method, set(known)) if method else None) or (
                f"{stmt.word} ... via METHOD(...), METHOD one of: " + ", ".join(known))
            fail("P203", f"{stmt.word}: {what}", vspan or stmt.span, hint)
        if stmt.word == "train":
            for it in ir.items:
                if it.kind == "via" and isinstance(it.value, Word):
                    self.trains.append(it.value.name)
                elif it.kind == "value" and isinstance(it.value, Word) and task == "learn_dynamics":
                    self.trains.append(it.value.name)
        return task

    # ---------------------------------------------------------------- the core statements
    def _single_call(self, stmt: ast.RunStmt, what: str) -> E.Expr:
        if (len(stmt.items) != 1 or stmt.items[0].kind != "expr"
                or not isinstance(stmt.items[0].value, ast.Call | ast.Name)):  # fmt: skip
            fail("P103", f"'{stmt.word}' takes one {what}", stmt.span,
                 STATEMENTS[stmt.word].usage)  # fmt: skip
        return to_ir(stmt.items[0].value)

    def _model(self, stmt: ast.RunStmt) -> None:
        e = self._single_call(stmt, "model")
        name = name_of(e)
        call = as_call(e)
        if call is None:
            self.model = ModelRefIR(name, span=e.span)
            return
        if call.args:
            fail("P318", "model parameters are given by name: model Ising(L = 32)",
                 call.args[0].span)  # fmt: skip
        args = tuple(Option(k.name, _constant(k.value, f"the value of {k.name}"), span=k.span)
                     for k in call.kwargs)  # fmt: skip
        self.model = ModelRefIR(call.func, args, span=call.func_span)

    def _sampler(self, stmt: ast.RunStmt) -> None:
        e = self._single_call(stmt, "sampler")
        call = as_call(e)
        if call is not None and call.args:
            fail("P318", "sampler options are given by name: metropolis(chains = 64)",
                 call.args[0].span)  # fmt: skip
        if call is None:
            self.sampler = CallValue(name_of(e), span=e.span, name_span=e.span)
            return
        kwargs = tuple(Option(k.name, _constant(k.value, f"option {k.name}"), span=k.span)
                       for k in call.kwargs)  # fmt: skip
        self.sampler = CallValue(call.func, (), kwargs, span=call.span, name_span=call.func_span)

    def _scan(self, stmt: ast.RunStmt) -> None:
        for item in stmt.items:
            if item.kind != "in":
                fail("P103", "a scan names a variable and its values", item.span,
                     STATEMENTS["scan"].usage)  # fmt: skip
            value = to_ir(item.value)
            values = ConstEvaluator({}, what="scan values").walk(value)
            if not isinstance(values, list):
                values = [values]
            if not values:
                fail("P406", f"the scan over '{item.name}' is empty", item.value.span,
                     "give at least one value, e.g. linspace(1.5, 3.5, 21)")  # fmt: skip
            for v in values:
                if isinstance(v, bool) or not isinstance(v, int | float):
                    fail("P322", f"scan values must be numbers, got {v!r}", item.value.span)
            if any(s.name == item.name for s in self.scans):
                fail("P201", f"'{item.name}' is scanned twice", item.span)
            self.scans.append(ScanIR(item.name, tuple(values), span=item.span))

    def _let(self, stmt: ast.RunStmt) -> None:
        for item in stmt.items:
            if item.kind != "named":
                fail("P103", "let binds a name: let T = 2.0", item.span)
            v = ConstEvaluator({}, what=f"the value of {item.name}").walk(to_ir(item.value))
            self.lets.append(Option(item.name, as_value(v), span=item.span))

    def _measure(self, stmt: ast.RunStmt) -> None:
        for item in stmt.items:
            if item.kind == "named":
                self.measures.append(MeasureIR(item.name, to_ir(item.value), span=item.span))
            elif item.kind == "expr":
                e = to_ir(item.value)
                name = name_of(e)
                if name is not None:
                    self.measures.append(MeasureIR(name, None, span=e.span))
                else:
                    self.measures.append(MeasureIR(column_name(e), e, span=e.span))
            else:
                fail("P103", "measure takes observables: measure m = abs(magnetization) / sites",
                     item.span)  # fmt: skip
        names = [m.name for m in self.measures]
        for m in self.measures:
            if names.count(m.name) > 1:
                fail("P201", f"observable '{m.name}' is measured twice", m.span,
                     "give it another name: measure other = ...")  # fmt: skip

    def _plot(self, stmt: ast.RunStmt) -> None:
        obs, spans, x, x_span, marks = [], [], None, None, []
        flags = {}
        for item in stmt.items:
            e = to_ir(item.value)
            name = name_of(e)
            if item.kind == "expr" and name is not None:
                obs.append(name)
                spans.append(e.span)
            elif item.kind == "named" and item.name == "x" and name is not None:
                x, x_span = name, e.span
            elif item.kind == "named" and item.name == "mark":
                v = ConstEvaluator({}, what="plot marks").walk(e)
                for m in v if isinstance(v, list) else [v]:
                    if isinstance(m, bool) or not isinstance(m, int | float):
                        fail("P322", f"plot marks are numbers, got {m!r}", e.span)
                    marks.append(float(m))
            elif item.kind == "named" and item.name in ("logx", "logy"):
                flags[item.name] = bool(ConstEvaluator({}, what=item.name).walk(e))
            else:
                fail("P103", "plot takes observable names and options x = NAME, mark = VALUE(S), "
                     "logx = true, logy = true", item.span)  # fmt: skip
        self.plots.append(PlotIR(tuple(obs), x, tuple(marks), span=stmt.span,
                                 observable_spans=tuple(spans), x_span=x_span, **flags))  # fmt: skip


def check_run(node: ast.Run) -> TaskIR:
    """The task IR of a run block."""
    return TaskChecker(node).check()
