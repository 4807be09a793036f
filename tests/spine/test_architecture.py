"""The pipeline's structure, checked on the source: one phase touches lark, one walker and one
lowering tell expression nodes apart, and the IR between the phases is typed (no string-keyed
dicts, frozen records)."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("physml_lang", "compiler", "runtime")
NODE_TYPES = {"Num", "Imag", "Str", "Name", "ListExpr", "Unary", "Binary", "Index", "Call",
              "Reduce", "Loop", "Keyword"}  # fmt: skip
# where the expression IR may be told apart by node type: its definition, the one walker, and
# the compiler's lowering
DISPATCH_ALLOWED = ("physml_lang/ir/expr.py", "physml_lang/ir/walk.py", "compiler/lower/")


def _modules():
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            yield path.relative_to(ROOT).as_posix(), ast.parse(path.read_text())


def _expr_aliases(tree: ast.Module) -> tuple[set[str], set[str]]:
    """Names bound to the expression module (``from physml_lang.ir import expr as E``) and node
    classes imported from it by name."""
    modules, classes = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module.endswith("ir") or node.module in ("physml_lang.ir", "."):
                for a in node.names:
                    if a.name == "expr":
                        modules.add(a.asname or a.name)
            if node.module.endswith("ir.expr") or node.module == "expr":
                for a in node.names:
                    if a.name in NODE_TYPES:
                        classes.add(a.asname or a.name)
    return modules, classes


def _dispatches(tree: ast.Module) -> list[tuple[int, str]]:
    """References to expression node classes other than construction and annotations."""
    modules, classes = _expr_aliases(tree)
    if not modules and not classes:
        return []
    allowed: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            allowed.add(id(node.func))  # E.Num(...) builds a node
        for ann in _annotations(node):
            for sub in ast.walk(ann):
                allowed.add(id(sub))
    found = []
    for node in ast.walk(tree):
        if id(node) in allowed:
            continue
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                and node.value.id in modules and node.attr in NODE_TYPES:  # fmt: skip
            found.append((node.lineno, f"{node.value.id}.{node.attr}"))
        elif isinstance(node, ast.Name) and node.id in classes and isinstance(node.ctx, ast.Load):
            found.append((node.lineno, node.id))
    return found


def _annotations(node: ast.AST):
    if isinstance(node, ast.arg) and node.annotation is not None:
        yield node.annotation
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.returns is not None:
        yield node.returns
    if isinstance(node, ast.AnnAssign):
        yield node.annotation


def test_only_the_walker_and_the_lowering_dispatch_on_expression_nodes():
    offenders = []
    for rel, tree in _modules():
        if rel.startswith(DISPATCH_ALLOWED):
            continue
        for line, what in _dispatches(tree):
            offenders.append(f"{rel}:{line}: {what}")
    assert not offenders, "dispatch on expression node types outside the walker:\n" + "\n".join(
        offenders
    )


def test_the_dispatch_check_can_fail():
    code = "from physml_lang.ir import expr as E\ndef f(e):\n    return isinstance(e, E.Binary)\n"
    assert _dispatches(ast.parse(code)) == [(3, "E.Binary")]
    code = "from physml_lang.ir.expr import Num\nT = {Num: 'number'}\nx = Num(1)\n"
    assert _dispatches(ast.parse(code)) == [(2, "Num")]
    code = "from physml_lang.ir import expr as E\ndef f(e: E.Num) -> E.Name:\n    return E.Name('x')\n"
    assert _dispatches(ast.parse(code)) == []


def test_only_the_syntax_phase_touches_lark():
    offenders = []
    for rel, tree in _modules():
        if rel.startswith("physml_lang/syntax/"):
            continue
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            if any(n == "lark" or n.startswith("lark.") for n in names):
                offenders.append(f"{rel}:{node.lineno}")
    assert not offenders, offenders


def test_only_the_check_phase_reads_the_syntax_tree():
    """Later stages read the IR: the AST is consumed by check/; the top layer (command, API)
    only parses and prints it."""
    allowed = ("physml_lang/syntax/", "physml_lang/check/", "physml_lang/cli.py",
               "physml_lang/api.py", "physml_lang/tools/")  # the tool layer: fmt, lsp, notebook
    offenders = []
    for rel, tree in _modules():
        if rel.startswith(allowed):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and (
                    "syntax" in node.module.split(".")
                    or any(a.name == "syntax" for a in node.names)):  # fmt: skip
                offenders.append(f"{rel}:{node.lineno}")
    assert not offenders, offenders


def test_every_package_folder_is_a_package():
    """A folder of modules without __init__.py is left out of a wheel (setuptools finds
    packages by it): the installed package would miss it."""
    missing = [d.relative_to(ROOT).as_posix() for pkg in PACKAGES for d in (ROOT / pkg).rglob("*")
               if d.is_dir() and d.name != "__pycache__" and any(d.glob("*.py"))
               and not (d / "__init__.py").exists()]  # fmt: skip
    assert not missing, missing


def _ir_records():
    from physml_lang.ir import text

    return sorted(text.RECORDS.items())


@pytest.mark.parametrize("tag, cls", _ir_records())
def test_ir_records_are_frozen_and_typed(tag, cls):
    """Every record of the IR is a frozen dataclass whose fields are typed values: no
    dict of string keys crosses a stage."""
    assert dataclasses.is_dataclass(cls) and cls.__dataclass_params__.frozen, tag
    for f in dataclasses.fields(cls):
        annotation = str(f.type)
        assert "dict" not in annotation and "Any" not in annotation, (tag, f.name, annotation)


def test_expression_nodes_are_frozen_and_hashable():
    from physml_lang.ir import expr as E

    e = E.Binary("+", E.Name("J"), E.Num(1))
    assert hash(e) == hash(E.Binary("+", E.Name("J"), E.Num(1)))
    with pytest.raises(dataclasses.FrozenInstanceError):
        e.op = "-"  # type: ignore[misc]


def _example_models():
    import physml_lang
    from physml_lang.check.program import NO_MODEL

    seen = set()
    for path in sorted((ROOT / "examples").glob("*.phys")):
        program = physml_lang.load(path)
        for task in program.runs.values():
            checker = program.checker_for(task)
            if checker.name in seen or checker.name == NO_MODEL:  # runs that name no model
                continue
            seen.add(checker.name)
            yield pytest.param(path, checker.name, id=f"{path.stem}-{checker.name}")


@pytest.mark.parametrize("path, name", list(_example_models()))
def test_compiled_models_follow_their_kind_protocol(path, name):
    """Every model of every example compiles to an object of its kind's protocol, which is
    all the runtime reads (compiler/models/protocols.py)."""
    import physml_lang
    from physml_lang.compiler.models.protocols import PROTOCOLS, CompiledModel

    program = physml_lang.load(path)
    if path.stem == "rbm_digits":
        pytest.importorskip("sklearn")
    cm = program.model(name)
    assert isinstance(cm, CompiledModel)
    assert cm.kind == cm.ir.kind
    assert isinstance(cm, PROTOCOLS[cm.kind]), (name, cm.kind)
    assert cm.describe() and cm.emit_sympy() and cm.emit_torch()
