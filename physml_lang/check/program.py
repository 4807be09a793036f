"""A whole file checked: imports resolved, models declared (instantiated on request), learners,
top-level data and run blocks as IR."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache, lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from physml_lang.catalogue import CATALOGUE
from physml_lang.catalogue.domains import SYMMETRIES
from physml_lang.diagnostics import (
    Diagnostic,
    ErrorCollector,
    PhysmlError,
    Span,
    did_you_mean,
)
from physml_lang.ir.model import DataIR, ModelIR
from physml_lang.ir.program import LearnerIR
from physml_lang.ir.task import CallValue, Option, TaskIR, Word
from physml_lang.syntax import ast
from physml_lang.syntax.parser import parse, parse_file

from .constants import ConstEvaluator, as_value
from .lowering import to_ir
from .model import ModelChecker, data_declaration, declared_kind, plain, validate_options
from .paths import project_root, resolve_user_path
from .tasks import check_run


@lru_cache(maxsize=1)
def stdlib_index() -> dict[str, tuple[str, str]]:
    """Model name -> (stdlib file name, text) for every model in ``stdlib/*.phys``."""
    index: dict[str, tuple[str, str]] = {}
    for entry in resources.files("physml_lang.stdlib").iterdir():
        if entry.name.endswith(".phys"):
            text = entry.read_text()
            for m in parse(text, f"<stdlib>/{entry.name}").models:
                index[m.name] = (entry.name, text)
    return index


@cache
def _stdlib_tree(fname: str) -> ast.Program:
    """A parsed stdlib file (the checker never modifies syntax trees, so they are shared)."""
    text = resources.files("physml_lang.stdlib").joinpath(fname).read_text()
    return parse(text, f"<stdlib>/{fname}")


def stdlib_model(name: str) -> ModelChecker | None:
    index = stdlib_index()
    if name not in index:
        return None
    fname, _ = index[name]
    node = next(m for m in _stdlib_tree(fname).models if m.name == name)
    return ModelChecker(node)


NO_MODEL = "none"  # the empty table model of a run that generates its own data


def _model_free(run: TaskIR) -> bool:
    """Whether ``run``'s task can do without a model (it generates its data: band Hamiltonians,
    images): its task entry applies to table models."""
    entry = CATALOGUE.tasks.get(run.kind, "table") if run.kind else None
    return entry is not None and "table" in entry.facts.kinds


@dataclass
class CheckedProgram:
    """The front end's product for one file: model declarations by name (declared and imported),
    learners, top-level data and tasks, in declaration order."""

    name: str
    path: Path | None
    declared: list[str] = field(default_factory=list)  # models declared in this file
    models: dict[str, ModelChecker] = field(default_factory=dict)
    learners: dict[str, LearnerIR] = field(default_factory=dict)
    data: dict[str, DataIR] = field(default_factory=dict)
    tasks: dict[str, TaskIR] = field(default_factory=dict)

    @property
    def runs(self) -> dict[str, TaskIR]:
        return self.tasks

    def checker_for(self, run: TaskIR) -> ModelChecker:
        """The declaration of the model a task uses (named, or implied by what it trains)."""
        if run.model is None:
            if _model_free(run):  # it generates its data: whatever models the file declares
                return ModelChecker(ast.Model(run.span, NO_MODEL, run.name_span, [], []))
            for name in run.trains:  # a run that trains a learner is about the learner's model
                decl = self.learners.get(name)
                model = decl.call.name if decl is not None else name
                if model in self.models:
                    return self.models[model]
            local = self.declared or list(self.models)
            if not local and any(_stacks_rbms(self.learners.get(n)) for n in run.trains):
                return stdlib_model("RBM")  # dbn, autoencoder: a stack of RBMs, no model needed
            if len(local) != 1:
                raise PhysmlError(Diagnostic(
                    "P412", f"run {run.name} must name its model: several are declared", run.span,
                    "add e.g. 'model " + (local[0] if local else "Ising") + "(L = 16)'"))  # fmt: skip
            return self.models[local[0]]
        if run.model.name not in self.models:
            raise PhysmlError(Diagnostic(
                "P204", f"unknown model '{run.model.name}'", run.model.span,
                did_you_mean(run.model.name, set(self.models) | set(stdlib_index()))
                or f"declare it or import it from the standard library: import "
                f"{run.model.name}"))  # fmt: skip
        return self.models[run.model.name]

    def default_model(self) -> str:
        names = self.declared or list(self.models)
        if not names:
            raise PhysmlError(Diagnostic("P420", f"{self.name} declares no model"))
        return names[0]

    def instantiate(self, name: str | None = None, params: dict[str, Any] | None = None,
                    spans: dict[str, Span | None] | None = None) -> ModelIR:  # fmt: skip
        """The model IR of a model with parameter values."""
        name = name or self.default_model()
        if name not in self.models:
            raise PhysmlError(Diagnostic("P204", f"unknown model '{name}'",
                                         hint=did_you_mean(name, set(self.models))))  # fmt: skip
        return self.models[name].instantiate(params or {}, spans)


def _stacks_rbms(decl: LearnerIR | None) -> bool:
    """Is ``decl`` a catalogue learner of Boltzmann models (dbn, autoencoder: RBM stacks)?"""
    if decl is None or decl.of != "learner":
        return False
    entry = CATALOGUE.learners.get(decl.call.name, "boltzmann")
    return entry is not None and entry.family == "boltzmann"


def _learner(decl: ast.LearnerDecl, models: dict[str, ModelChecker]) -> LearnerIR:
    ev = ConstEvaluator({}, allow_words=True, allow_calls=True, what="a learner option")
    call = decl.call
    args = tuple(as_value(ev.walk(to_ir(a))) for a in call.args)
    kwargs = tuple(Option(k.name, as_value(ev.walk(to_ir(k.value))), span=k.span)
                   for k in call.kwargs)  # fmt: skip
    value = CallValue(call.func, args, kwargs, span=call.span, name_span=call.func_span)
    of = "model" if call.func in models else "learner"
    return LearnerIR(decl.name, value, of, tuple(n for n, _ in decl.respecting), span=decl.span,
                     respecting_spans=tuple(s for _, s in decl.respecting))  # fmt: skip


def check_learner(decl: LearnerIR) -> None:
    """A learner of the catalogue: known, its options valid, and able to respect what it is
    asked to (the entry's static facts); a model used as a learner is checked as a model."""
    if decl.of == "model":
        return
    call = decl.call
    entries = [e for e in CATALOGUE.learners if e.name == call.name]
    if not entries:
        known = CATALOGUE.learners.names()
        raise PhysmlError(Diagnostic(
            "P207", f"unknown learner '{call.name}'", call.name_span or call.span,
            did_you_mean(call.name, set(known)) or "learners: " + ", ".join(known)))  # fmt: skip
    for sym, span in zip(decl.respecting, decl.respecting_spans, strict=True):
        if sym not in SYMMETRIES:
            raise PhysmlError(Diagnostic(
                "P210", f"unknown symmetry '{sym}'", span,
                did_you_mean(sym, set(SYMMETRIES)) or "symmetries: " + ", ".join(SYMMETRIES)))
    if len(entries) > 1:  # a name of several kinds: the run's model decides (its task checks)
        return
    entry = entries[0]
    if call.args:
        raise PhysmlError(Diagnostic(
            "P318", f"learner {call.name} takes named options: {call.name}(option = value)",
            call.span, "options: " + ", ".join(entry.schema.model_fields)))  # fmt: skip
    validate_options(entry.schema, {o.name: plain(o.value) for o in call.kwargs},
                     {o.name: o.span for o in call.kwargs}, call.span, f"learner {call.name}")
    for sym, span in zip(decl.respecting, decl.respecting_spans, strict=True):
        if sym not in entry.facts.symmetries:
            can = ", ".join(entry.facts.symmetries) or "no symmetry"
            raise PhysmlError(Diagnostic(
                "P501", f"learner {call.name} cannot respect {sym}", span,
                f"{call.name} respects: {can}"))  # fmt: skip


def _learners_used(task: TaskIR, learners: dict[str, LearnerIR]) -> list[tuple[str, Span | None]]:
    """The declared learners a run uses (``learner psi``, ``train f, g via ...``, ``regress f``)."""
    used = []
    for st in task.statements:
        for item in st.items:
            if isinstance(item.value, Word) and item.value.name in learners:
                used.append((item.value.name, item.value.span))
    for name in task.trains:
        if name in learners and name not in {n for n, _ in used}:
            used.append((name, task.span))
    return used


def check_learner_use(task: TaskIR, out: CheckedProgram) -> None:
    """A learner of one kind of model used by a run of another kind, or on fields it does not
    act on: located at the use."""
    if task.model is None or task.model.name not in out.models:
        return
    checker = out.models[task.model.name]
    kind = declared_kind(checker.node)
    domains = {s.type.name for s in checker.node.body if isinstance(s, ast.FieldStmt)}
    for name, span in _learners_used(task, out.learners):
        decl = out.learners[name]
        if decl.of == "model":
            continue
        entries = [e for e in CATALOGUE.learners if e.name == decl.call.name]
        if not entries or any(e.family in ("", kind) for e in entries):
            entry = next((e for e in entries if e.family in ("", kind)), None)
            if entry is not None and entry.facts.domains and domains \
                    and not domains & set(entry.facts.domains):  # fmt: skip
                raise PhysmlError(Diagnostic(
                    "P503", f"learner {name} = {decl.call.name}(...) acts on "
                    f"{', '.join(entry.facts.domains)} fields; model {checker.name} has "
                    f"{', '.join(sorted(domains))} fields", span))  # fmt: skip
            continue
        kinds = ", ".join(sorted({e.family for e in entries}))
        raise PhysmlError(Diagnostic(
            "P503", f"learner {name} = {decl.call.name}(...) is a learner of {kinds} models; "
            f"model {checker.name} is a {kind.replace('_', ' ')} model", span,
            "learners for it: " + ", ".join(CATALOGUE.learners.names(kind))))  # fmt: skip


def _resolve_imports(tree: ast.Program, out: CheckedProgram, seen: set[Path]) -> None:
    """The models of a file's imports into ``out.models``: stdlib models by name; the models
    of imported files (and of their own imports, each relative to the file that names it),
    every file once. Paths follow ``check/paths.py`` (inside the project tree)."""
    for imp in tree.imports:
        if not imp.is_file:
            checker = stdlib_model(imp.name)
            if checker is None:
                index = stdlib_index()
                raise PhysmlError(Diagnostic(
                    "P204", f"no model '{imp.name}' in the standard library", imp.span,
                    did_you_mean(imp.name, set(index)) or "stdlib models: "
                    + ", ".join(sorted(index))))  # fmt: skip
            out.models[imp.name] = checker
            continue
        target = resolve_user_path(imp.name, imp.span, "imported file", {".phys"},
                                   missing_hint="paths are relative to the importing file")
        key = target.resolve()
        if key in seen:  # imported twice, or a cycle of imports
            continue
        seen.add(key)
        source = imp.span.source if imp.span is not None else None
        imported = parse_file(target, span=imp.span, root=str(project_root(source)),
                              allow_outside=source.allow_outside if source else False)  # fmt: skip
        _resolve_imports(imported, out, seen)
        for m in imported.models:
            out.models[m.name] = ModelChecker(m)


def check_program(tree: ast.Program, path: Path | None = None,
                  name: str = "<string>") -> CheckedProgram:  # fmt: skip
    """Resolve imports and check every declaration and run block of a parsed file."""
    out = CheckedProgram(name, path)
    _resolve_imports(tree, out, {path.resolve()} if path is not None else set())
    for m in tree.models:
        if m.name in out.declared:
            raise PhysmlError(Diagnostic("P201", f"model '{m.name}' is declared twice",
                                         m.name_span))  # fmt: skip
        out.models[m.name] = ModelChecker(m)
        out.declared.append(m.name)
    errors = ErrorCollector()  # declarations are checked independently: all errors at once
    for d in tree.data:
        with errors:
            out.data[d.name] = data_declaration(d, {})
    for decl in tree.learners:
        with errors:
            out.learners[decl.name] = _learner(decl, out.models)
            check_learner(out.learners[decl.name])
    for r in tree.runs:
        with errors:
            if r.name in out.tasks:
                raise PhysmlError(Diagnostic("P201", f"run '{r.name}' is declared twice",
                                             r.name_span))  # fmt: skip
            out.tasks[r.name] = check_run(r)
            check_learner_use(out.tasks[r.name], out)
    errors.raise_if_any()
    return out
