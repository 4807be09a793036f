"""Checks ``run`` blocks: each statement word is resolved through :data:`RUN_STATEMENTS`, each
option through its pydantic schema. The result is a :class:`RunIR` the runtime executes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import ast
from .checker import fail, validate_options
from .diagnostics import Span, did_you_mean
from .evaluate import CallValue, ConstEvaluator, Ident


@dataclass
class ScanIR:
    name: str
    values: list[Any]
    span: Span


@dataclass
class MeasureIR:
    name: str
    expr: ast.Expr | None  # None: a built-in observable
    span: Span


@dataclass
class PlotIR:
    observables: list[tuple[str, Span]]
    x: str | None
    marks: list[float]
    span: Span
    logx: bool = False
    logy: bool = False


@dataclass
class RunIR:
    name: str
    span: Span
    model: str | None = None
    model_span: Span | None = None
    model_args: dict[str, tuple[Any, Span]] = field(default_factory=dict)
    sampler: str | None = None
    sampler_span: Span | None = None
    sampler_options: dict[str, tuple[Any, Span]] = field(default_factory=dict)
    scans: list[ScanIR] = field(default_factory=list)
    lets: dict[str, tuple[Any, Span]] = field(default_factory=dict)
    measures: list[MeasureIR] = field(default_factory=list)
    plots: list[PlotIR] = field(default_factory=list)
    task: str | None = None
    trains: list[str] = field(default_factory=list)  # learners (or models) the run trains
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunStatement:
    """A registry entry: the handler fills the RunIR from one statement."""

    handler: Callable[[ast.RunStmt, RunIR], None]
    usage: str
    task: str | None = None  # statements that decide what the run does
    default_task: str | None = None  # what the run does when no statement decides (weak)


def _single_call(stmt: ast.RunStmt, what: str) -> ast.Call:
    if (
        len(stmt.items) != 1
        or stmt.items[0].kind != "expr"
        or not isinstance(stmt.items[0].value, ast.Call | ast.Name)
    ):
        fail("P100", f"'{stmt.word}' takes one {what}", stmt.span, RUN_STATEMENTS[stmt.word].usage)
    v = stmt.items[0].value
    if isinstance(v, ast.Name):
        return ast.Call(v.span, v.id, v.span, [], [])
    return v


def _constant(e: ast.Expr, what: str) -> Any:
    return ConstEvaluator({}, allow_idents=True, allow_calls=True, what=what)(e)


def _model(stmt: ast.RunStmt, run: RunIR) -> None:
    call = _single_call(stmt, "model")
    if call.args:
        fail("P302", "model parameters are given by name: model Ising(L = 32)", call.args[0].span)
    run.model, run.model_span = call.func, call.func_span
    for k in call.kwargs:
        run.model_args[k.name] = (_constant(k.value, f"the value of {k.name}"), k.span)


def _sampler(stmt: ast.RunStmt, run: RunIR) -> None:
    call = _single_call(stmt, "sampler")
    if call.args:
        fail(
            "P302", "sampler options are given by name: metropolis(chains = 64)", call.args[0].span
        )
    run.sampler, run.sampler_span = call.func, call.func_span
    for k in call.kwargs:
        run.sampler_options[k.name] = (_constant(k.value, f"option {k.name}"), k.span)


def _scan(stmt: ast.RunStmt, run: RunIR) -> None:
    for item in stmt.items:
        if item.kind != "in":
            fail("P100", "a scan names a variable and its values", item.span,
                 RUN_STATEMENTS["scan"].usage)  # fmt: skip
        values = ConstEvaluator({}, what="scan values")(item.value)
        if not isinstance(values, list):
            values = [values]
        if not values:
            fail("P400", f"the scan over '{item.name}' is empty", item.value.span,
                 "give at least one value, e.g. linspace(1.5, 3.5, 21)")  # fmt: skip
        for v in values:
            if isinstance(v, bool) or not isinstance(v, int | float):
                fail("P300", f"scan values must be numbers, got {v!r}", item.value.span)
        if any(s.name == item.name for s in run.scans):
            fail("P201", f"'{item.name}' is scanned twice", item.span)
        run.scans.append(ScanIR(item.name, values, item.span))


def _let(stmt: ast.RunStmt, run: RunIR) -> None:
    for item in stmt.items:
        if item.kind != "named":
            fail("P100", "let binds a name: let T = 2.0", item.span)
        run.lets[item.name] = (ConstEvaluator({}, what=f"the value of {item.name}")(item.value),
                               item.span)  # fmt: skip


def _measure(stmt: ast.RunStmt, run: RunIR) -> None:
    for item in stmt.items:
        if item.kind == "named":
            run.measures.append(MeasureIR(item.name, item.value, item.span))
        elif item.kind == "expr":
            e = item.value
            if isinstance(e, ast.Name):
                run.measures.append(MeasureIR(e.id, None, e.span))
            else:
                run.measures.append(MeasureIR(_default_name(e), e, e.span))
        else:
            fail("P100", "measure takes observables: measure m = abs(magnetization) / sites",
                 item.span)  # fmt: skip
    names = [m.name for m in run.measures]
    for m in run.measures:
        if names.count(m.name) > 1:
            fail("P201", f"observable '{m.name}' is measured twice", m.span,
                 "give it another name: measure other = ...")  # fmt: skip


def _default_name(e: ast.Expr) -> str:
    """A column name for an unnamed expression: abs(magnetization) / sites -> abs_magnetization_per_site."""
    if isinstance(e, ast.Name):
        return e.id
    if isinstance(e, ast.Number):
        return str(e.value)
    if isinstance(e, ast.Call):
        return "_".join([e.func] + [_default_name(a) for a in e.args])
    if isinstance(e, ast.Binary):
        if e.op == "/" and isinstance(e.right, ast.Name) and e.right.id == "sites":
            return _default_name(e.left) + "_per_site"
        op = {"+": "plus", "-": "minus", "*": "times", "/": "over", "^": "pow"}.get(e.op, "op")
        return f"{_default_name(e.left)}_{op}_{_default_name(e.right)}"
    if isinstance(e, ast.Unary):
        return "minus_" + _default_name(e.operand)
    return "observable"


def _plot(stmt: ast.RunStmt, run: RunIR) -> None:
    obs, x, marks = [], None, []
    flags = {}
    for item in stmt.items:
        if item.kind == "expr" and isinstance(item.value, ast.Name):
            obs.append((item.value.id, item.value.span))
        elif item.kind == "named" and item.name == "x" and isinstance(item.value, ast.Name):
            x = item.value.id
        elif item.kind == "named" and item.name == "mark":
            v = ConstEvaluator({}, what="plot marks")(item.value)
            marks = [float(m) for m in (v if isinstance(v, list) else [v])]
        elif item.kind == "named" and item.name in ("logx", "logy"):
            flags[item.name] = bool(ConstEvaluator({}, what=item.name)(item.value))
        else:
            fail("P100", "plot takes observable names and options x = NAME, mark = VALUE(S), "
                 "logx = true, logy = true", item.span)  # fmt: skip
    run.plots.append(PlotIR(obs, x, marks, stmt.span, **flags))


RUN_STATEMENTS: dict[str, RunStatement] = {
    "model": RunStatement(_model, "model Ising(L = 32, h = 0.1)"),
    "sampler": RunStatement(
        _sampler, "sampler metropolis(chains = 64, sweeps = 2000, burn_in = 500)",
        default_task="sample",
    ),
    "scan": RunStatement(_scan, "scan T in linspace(1.5, 3.5, 21)"),
    "let": RunStatement(_let, "let T = 2.0"),
    "measure": RunStatement(_measure, "measure e = energy / sites, specific_heat, binder"),
    "plot": RunStatement(_plot, "plot e, specific_heat, mark = 2.269"),
}


def register_statement(
    word: str, handler, usage: str, task: str | None = None, default_task: str | None = None
) -> None:
    """Add a run statement (used by task modules: ``train``, ``evolve``, ``exact``, ...).

    ``task``: the statement decides what the run does. ``default_task``: what the run does when
    no statement decides (``sampler`` means sampling unless, say, a VMC statement is present).
    """
    RUN_STATEMENTS[word] = RunStatement(handler, usage, task, default_task)


@dataclass
class _MethodDispatch:
    """A statement shared by capabilities that tell their uses apart by the ``via`` method
    (``train rbm via pcd(k = 1)`` vs ``train H_net via derivative_mse(...)``)."""

    word: str
    methods: dict[str, RunStatement] = field(default_factory=dict)
    default: str | None = None

    def __call__(self, stmt: ast.RunStmt, run: RunIR) -> None:
        via = next((it.via for it in stmt.items if it.kind == "via"), None)
        method = via.func if isinstance(via, ast.Call) else (
            via.id if isinstance(via, ast.Name) else None)  # fmt: skip
        if method is None:
            method = self.default
        entry = self.methods.get(method) if method is not None else None
        if entry is None:
            known = sorted(self.methods)
            span = via.span if via is not None else stmt.span
            what = f"unknown method '{method}'" if method else "no 'via' method"
            hint = (did_you_mean(method, set(known)) if method else None) or (
                f"{self.word} ... via METHOD(...), METHOD one of: " + ", ".join(known))
            fail("P200", f"{self.word}: {what}", span, hint)
        entry.handler(stmt, run)
        if entry.task:
            if run.task and run.task != entry.task:
                fail("P201", f"a run does one thing: it already has a {run.task} task",
                     stmt.word_span)  # fmt: skip
            run.task = entry.task


def register_method(
    word: str, methods: list[str], handler, usage: str, task: str | None = None,
    default: bool = False,
) -> None:
    """Add the ``via`` methods ``methods`` of a shared statement ``word``; ``handler`` reads the
    statements that use them. ``default``: these handle the statement when it names no method."""
    entry = RUN_STATEMENTS.get(word)
    dispatch = entry.handler if entry is not None else None
    if not isinstance(dispatch, _MethodDispatch):
        dispatch = _MethodDispatch(word)
    for m in methods:
        dispatch.methods[m] = RunStatement(handler, usage, task)
    if default:
        dispatch.default = methods[0]
    usages = list(dict.fromkeys(e.usage for e in dispatch.methods.values()))
    RUN_STATEMENTS[word] = RunStatement(dispatch, "  |  ".join(usages))


def check_run(node: ast.Run) -> RunIR:
    """Resolve every statement of a run block."""
    run = RunIR(node.name, node.span)
    seen: dict[str, Span] = {}
    default = None
    for stmt in node.stmts:
        entry = RUN_STATEMENTS.get(stmt.word)
        if entry is None:
            hint = did_you_mean(stmt.word, set(RUN_STATEMENTS)) or (
                "run statements: " + ", ".join(sorted(RUN_STATEMENTS))
            )
            fail("P200", f"unknown run statement '{stmt.word}'", stmt.word_span, hint)
        if stmt.word in ("model", "sampler") and stmt.word in seen:
            fail("P201", f"a run has one '{stmt.word}' statement", stmt.word_span)
        seen[stmt.word] = stmt.span
        entry.handler(stmt, run)
        default = default or entry.default_task
        if entry.task:
            if run.task and run.task != entry.task:
                fail("P201", f"a run does one thing: it already has a {run.task} task",
                     stmt.word_span)  # fmt: skip
            run.task = entry.task
    if run.task is None:
        run.task = default
    if run.task is None:
        tasks = sorted({e.task or e.default_task for e in RUN_STATEMENTS.values()} - {None})
        fail("P400", f"run {node.name} does nothing", node.name_span,
             "add a statement that says what to do, e.g. 'sampler metropolis(chains = 64)'; "
             "tasks: " + ", ".join(tasks))  # fmt: skip
    return run


def option_values(options: dict[str, tuple[Any, Span]], schema, where: Span | None, what: str):
    """Validate run options (value, span) pairs against a schema."""
    values = {k: v for k, (v, _) in options.items()}
    spans = {k: s for k, (_, s) in options.items()}
    for k, v in values.items():
        if isinstance(v, CallValue):
            fail("P402", f"option '{k}' of {what} must be a value, not a call", spans[k])
    return validate_options(schema, values, spans, where, what)


__all__ = ["RunIR", "check_run", "RUN_STATEMENTS", "option_values", "Ident"]
