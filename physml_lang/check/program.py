"""A whole file checked: imports resolved, models declared (instantiated on request), learners,
top-level data and run blocks as IR."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache, lru_cache
from importlib import resources
from pathlib import Path

from physml_lang.diagnostics import Diagnostic, PhysmlError, did_you_mean
from physml_lang.ir.model import DataIR
from physml_lang.ir.program import LearnerIR
from physml_lang.ir.task import CallValue, Option, TaskIR
from physml_lang.syntax import ast
from physml_lang.syntax.parser import parse, parse_file

from .constants import ConstEvaluator, as_value
from .lowering import to_ir
from .model import ModelChecker, data_declaration
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


def check_program(tree: ast.Program, path: Path | None = None,
                  name: str = "<string>") -> CheckedProgram:  # fmt: skip
    """Resolve imports and check every declaration and run block of a parsed file."""
    out = CheckedProgram(name, path)
    for imp in tree.imports:
        if imp.is_file:
            base = path.parent if path else Path.cwd()
            target = base / imp.name
            if not target.is_file():
                raise PhysmlError(Diagnostic("P600", f"imported file not found: {target}",
                                             imp.span, "paths are relative to the importing file"))
            for m in parse_file(target).models:
                out.models[m.name] = ModelChecker(m)
            continue
        checker = stdlib_model(imp.name)
        if checker is None:
            index = stdlib_index()
            raise PhysmlError(Diagnostic(
                "P200", f"no model '{imp.name}' in the standard library", imp.span,
                did_you_mean(imp.name, set(index)) or "stdlib models: "
                + ", ".join(sorted(index))))  # fmt: skip
        out.models[imp.name] = checker
    for m in tree.models:
        if m.name in out.declared:
            raise PhysmlError(Diagnostic("P201", f"model '{m.name}' is declared twice",
                                         m.name_span))  # fmt: skip
        out.models[m.name] = ModelChecker(m)
        out.declared.append(m.name)
    for d in tree.data:
        out.data[d.name] = data_declaration(d, {})
    for decl in tree.learners:
        out.learners[decl.name] = _learner(decl, out.models)
    for r in tree.runs:
        if r.name in out.tasks:
            raise PhysmlError(Diagnostic("P201", f"run '{r.name}' is declared twice",
                                         r.name_span))  # fmt: skip
        out.tasks[r.name] = check_run(r)
    return out
