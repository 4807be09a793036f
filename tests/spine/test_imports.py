"""Imports run one way: a stage imports earlier stages only (import-linter contracts in
pyproject.toml, run on the package laid out as installed); no module-level import cycle; no
deferred imports except in the top layer, where they keep ``physml --help`` and ``physml check``
from loading torch (checked with ``python -X importtime``)."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PACKAGE_DIRS: dict[str, str] = PYPROJECT["tool"]["setuptools"]["package-dir"]
# the top layer: the command, the API and the package root may defer imports (lazy loading)
TOP_LAYER = {"physml_lang", "physml_lang.api", "physml_lang.cli"}


def _sources() -> dict[str, Path]:
    """Module name -> file, for every module of the package (as installed)."""
    out = {}
    for pkg, folder in PACKAGE_DIRS.items():
        for path in sorted((ROOT / folder).glob("*.py")):
            name = pkg if path.stem == "__init__" else f"{pkg}.{path.stem}"
            out[name] = path
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT / folder).with_suffix("")
            if len(rel.parts) < 2 or any(
                    f"{pkg}.{'.'.join(rel.parts[:k])}" in PACKAGE_DIRS
                    for k in range(1, len(rel.parts))):  # fmt: skip
                continue
            parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
            out[".".join((pkg, *parts))] = path
    return out


def _imports(name: str, path: Path) -> list[tuple[str, int, bool]]:
    """(imported module, line, deferred) for every import of ``path`` (module ``name``);
    imports under ``if TYPE_CHECKING`` are left out (they never run)."""
    tree = ast.parse(path.read_text())
    is_package = path.name == "__init__.py"
    found: list[tuple[str, int, bool]] = []

    def visit(node: ast.AST, deferred: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            if isinstance(child, ast.Import):
                found.extend((a.name, child.lineno, deferred) for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = name.split(".")[: len(name.split(".")) - (0 if is_package else 1)]
                    base = base[: len(base) - (child.level - 1)]
                    module = ".".join(base + ([child.module] if child.module else []))
                else:
                    module = child.module or ""
                found.append((module, child.lineno, deferred))
                # `from pkg import module` imports the module too
                found.extend((f"{module}.{a.name}", child.lineno, deferred) for a in child.names)
            visit(child, deferred or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)))

    visit(tree, False)
    return found


def _graph() -> dict[str, set[str]]:
    """Module-level imports between the package's own modules."""
    sources = _sources()
    graph: dict[str, set[str]] = {m: set() for m in sources}
    for name, path in sources.items():
        for module, _, deferred in _imports(name, path):
            # a module's own parent packages are initialised before it: not an edge of a cycle
            if not deferred and module in sources and not (name + ".").startswith(module + "."):
                graph[name].add(module)
    return graph


def test_no_module_level_import_cycle():
    graph = _graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def strongly_connect(v: str) -> None:  # Tarjan, recursive (the graph has ~100 nodes)
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                strongly_connect(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in graph:
        if v not in index:
            strongly_connect(v)
    assert not cycles, f"import cycles: {cycles}"


def test_no_deferred_imports_below_the_top_layer():
    sources = _sources()
    found = [f"{path.relative_to(ROOT)}:{line}: {module}"
             for name, path in sources.items() if name not in TOP_LAYER
             for module, line, deferred in _imports(name, path)
             if deferred and module.startswith("physml_lang")]  # fmt: skip
    assert not found, "deferred imports (import at module level instead):\n" + "\n".join(found)


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The package laid out as a wheel installs it (folders mapped by pyproject.toml)."""
    site = tmp_path_factory.mktemp("site")
    for pkg, folder in sorted(PACKAGE_DIRS.items(), key=lambda kv: kv[0].count(".")):
        shutil.copytree(ROOT / folder, site.joinpath(*pkg.split(".")), dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    return site


def test_import_contracts_hold(installed):
    pytest.importorskip("importlinter")
    env = {**os.environ, "PYTHONPATH": str(installed)}
    code = ("import sys; from importlinter.cli import lint_imports; "
            f"sys.exit(lint_imports(config_filename={str(ROOT / 'pyproject.toml')!r}, "
            "no_cache=True))")  # fmt: skip
    proc = subprocess.run([sys.executable, "-c", code], cwd=installed, env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 broken" in proc.stdout


def _loads_torch(*args: str) -> list[str]:
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "physml_lang.cli", *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)  # fmt: skip
    return [line for line in proc.stderr.splitlines()
            if line.startswith("import time:") and line.split("|")[-1].strip() == "torch"]


def test_help_does_not_load_torch():
    assert not _loads_torch("--help")


def test_version_prints_the_version_without_torch():
    proc = subprocess.run([sys.executable, "-m", "physml_lang.cli", "--version"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0 and proc.stdout.startswith("physml ")
    assert not _loads_torch("--version")


def test_check_does_not_load_torch():
    assert not _loads_torch("check", str(ROOT / "examples" / "ising2d.phys"))


def test_checking_every_example_and_library_model_loads_no_torch():
    """``check`` of every example and standard-library file, in one interpreter: each
    succeeds and torch is never imported (geometry, derivations and static plans only)."""
    files = sorted((ROOT / "examples").glob("*.phys")) + sorted((ROOT / "stdlib").glob("*.phys"))
    code = ("import sys, physml_lang\n"
            f"for f in {[str(f) for f in files]!r}:\n"
            "    physml_lang.load(f).check()\n"
            "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')))\n")  # fmt: skip
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]", proc.stdout


def test_stored_parser_tables_match_the_grammar():
    """The LALR tables stored beside the grammar are current (rebuild them with
    ``python scripts/grammar_tables.py`` after editing the grammar)."""
    from lark import Lark

    from physml_lang.syntax.tables import OPTIONS, TABLES, grammar_text, load_tables

    grammar = grammar_text()
    assert (ROOT / "grammar" / TABLES).is_file()
    stored = load_tables(grammar)
    assert stored is not None, "stored tables are stale: run scripts/grammar_tables.py"
    # lark numbers states in set order, so the JSON differs run to run: compare parses instead
    built = Lark(grammar, **OPTIONS)
    files = [*(ROOT / "examples").glob("*.phys"), *(ROOT / "stdlib").glob("*.phys"),
             *(ROOT / "tests" / "golden").glob("*/*.phys")]  # fmt: skip
    for f in files:
        text = f.read_text()
        outcome = []
        for parser in (stored, built):
            try:
                outcome.append(parser.parse(text))
            except Exception as exc:  # a bad golden file: the same error from both
                outcome.append(repr(exc))
        assert outcome[0] == outcome[1], f


def test_check_parses_from_the_stored_tables():
    """A fresh process checking an example never compiles the grammar: lark's grammar
    compiler is made to fail, and check still succeeds (the tables come from the store)."""
    code = ("import lark.load_grammar as g\n"
            "def refuse(*a, **k):\n"
            "    raise AssertionError('grammar compiled at run time')\n"
            "g.GrammarBuilder.load_grammar = refuse\n"
            "import physml_lang\n"
            f"physml_lang.load({str(ROOT / 'examples' / 'ising2d.phys')!r}).check()\n"
            "print('ok')\n")  # fmt: skip
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr
