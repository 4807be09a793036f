"""A .phys file can never run Python code (design.md, "Compiler principles").

Hostile programs get clean located diagnostics and have no side effect; pathological inputs
(deep nesting, huge expressions) are refused cleanly; and no module of the package calls
sympify / parse_expr / eval / exec (or similar) on anything.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from frontend_util import REPO, chdir, physml

import physml_lang
from physml_lang import Diagnostic, PhysmlError

MODEL = """model Ising(L: int = 4, J: real = 1.0) {{
    lattice square(L, L)
    field s: spin on sites
    energy E = {energy}
}}
"""
RUN = """
run r {
    sampler metropolis(chains = 2, sweeps = 5, burn_in = 1)
    let T = 2.0
}
"""


def hostile_programs(sentinel: Path) -> dict[str, str]:
    touch = f'__import__("os").system("touch {sentinel}")'
    py = f"open('{sentinel}', 'w')"
    return {
        "import_call": MODEL.format(energy=touch),
        "import_after_sum": MODEL.format(energy=f"-J * sum(s[i] for i in sites) + {touch}"),
        "eval": MODEL.format(energy=f'eval("{py}") * sum(s[i] for i in sites)'),
        "exec": MODEL.format(energy=f'exec("{py}")'),
        "string_energy": MODEL.format(
            energy=f'"{touch}"'.replace('"os"', "'os'").replace(
                f'"touch {sentinel}"', f"'touch {sentinel}'"
            )
        ),
        "string_in_sum": MODEL.format(energy=f'-J * sum(s[i] * "{py}" for i in sites)'),
        "dunder_attribute": MODEL.format(energy="s.__class__.__bases__"),
        "dunder_call": MODEL.format(energy="__builtins__(1) * sum(s[i] for i in sites)"),
        "dunder_name": MODEL.format(energy="__globals__ * sum(s[i] for i in sites)"),
        "default_eval": MODEL.replace("L: int = 4", f'L: int = eval("{py}")').format(
            energy="-sum(s[i] * s[j] for (i, j) in bonds)"
        ),
        "default_import": MODEL.replace("L: int = 4", 'L: int = __import__("os").getpid()').format(
            energy="-sum(s[i] * s[j] for (i, j) in bonds)"
        ),
        "lattice_string": MODEL.replace("square(L, L)", f'square("{py}", 4)').format(
            energy="-sum(s[i] * s[j] for (i, j) in bonds)"
        ),
        "option_string": MODEL.replace("square(L, L)", f'square(L, L, boundary = "{py}")').format(
            energy="-sum(s[i] * s[j] for (i, j) in bonds)"
        ),
        "lambda": MODEL.format(energy="lambda: 1"),
        "semicolon_statement": MODEL.format(energy="1; import os"),
        "backtick": MODEL.format(energy="`touch x`"),
        "sampler_option_eval": MODEL.format(energy="-sum(s[i] * s[j] for (i, j) in bonds)")
        + RUN.replace("chains = 2", f'chains = eval("{py}")'),
        "scan_eval": MODEL.format(energy="-sum(s[i] * s[j] for (i, j) in bonds)")
        + RUN.replace("let T = 2.0", f'scan T in eval("{py}")'),
    }


RUN_ONLY = {"sampler_option_eval", "scan_eval"}  # hostile text only in the run block


@pytest.fixture
def sentinel(tmp_path: Path) -> Path:
    return tmp_path / "pwned"


@pytest.mark.parametrize("case", sorted(hostile_programs(Path("/x"))))
def test_hostile_program_is_a_clean_error_without_side_effects(case, tmp_path, sentinel):
    path = tmp_path / f"{case}.phys"
    path.write_text(hostile_programs(sentinel)[case])
    for command in ("check", "run", "compile"):
        extra = ("--out", str(tmp_path / "out"), "--quiet") if command == "run" else ()
        code, out, err = physml(command, str(path), *extra)
        assert "Traceback" not in out + err
        if command == "compile" and case in RUN_ONLY:
            continue  # the model itself is fine: compiling it is allowed
        assert code == 1, f"{command}: {out}{err}"
        assert "Traceback" not in out + err
        assert "error[P" in err, err
        if command == "check":  # run may stop earlier (no run block): check names the spot
            assert err.startswith(f"{path}:"), err
    with pytest.raises(PhysmlError):
        p = physml_lang.compile(path.read_text())
        p.energy  # noqa: B018
        p.check()
    assert not sentinel.exists()


def test_dunder_identifiers_are_inert(tmp_path: Path):
    """A parameter may be *called* __class__; it is only a name in a table, never looked up
    as a Python attribute, so it works like any other name."""
    text = MODEL.replace("L: int = 4", "__class__: int = 4").replace(
        "square(L, L)", "square(__class__, 4)"
    )
    p = physml_lang.compile(text.format(energy="-sum(s[i] * s[j] for (i, j) in bonds)"))
    assert p.lattice.shape == (4, 4)


@pytest.mark.parametrize(
    ("case", "energy"),
    [
        ("deep_parens", "(" * 3000 + "1" + ")" * 3000),
        ("deep_negation", "-" * 20000 + "sum(s[i] for i in sites)"),
        ("long_sum", " + ".join(["sum(s[i] for i in sites)"] * 3000)),
        ("long_name", "x" * 200_000),
    ],
    ids=["deep_parens", "deep_negation", "long_sum", "long_name"],
)
def test_very_long_inputs_are_clean(case: str, energy: str, tmp_path: Path):
    path = tmp_path / f"{case}.phys"
    path.write_text(MODEL.format(energy=energy))
    code, out, err = physml("check", str(path))
    assert "Traceback" not in out + err
    assert code in (0, 1)
    if code == 1:
        assert "error[P" in err


def test_nesting_too_deep_is_a_located_p801(tmp_path: Path):
    path = tmp_path / "deep.phys"
    path.write_text(MODEL.format(energy="-" * 20000 + "1"))
    code, _, err = physml("check", str(path))
    assert code == 1
    assert "error[P801]" in err and "nested too deeply" in err


@pytest.mark.parametrize(
    "content",
    [b"\x00\x01\x02model", bytes(range(256)) * 4, b"model \x00 Ising", b"\xef\xbb\xbf"],
    ids=["control", "binary", "nul", "bom"],
)
def test_binary_garbage_is_clean(content: bytes, tmp_path: Path):
    path = tmp_path / "garbage.phys"
    path.write_bytes(content)
    code, out, err = physml("check", str(path))
    assert code == 1
    assert "Traceback" not in out + err
    assert "error[P" in err


# ---------------------------------------------------------------- files a program names

SECRET = "SECRET-CONTENTS-1f2e3d"  # in every file outside the tree: never in a message
MODEL_FILE = f"""# {SECRET}
model NAME(L: int = 4) {{
    lattice square(L, L)
    field s: spin on sites
    energy E = -sum(s[i] * s[j] for (i, j) in bonds)
}}
"""
USES = """
run r {
    model NAME(L = 4)
    sampler metropolis(chains = 2, sweeps = 5, burn_in = 1)
    let T = 2.0
}
"""
EDGES = """model G(J: real = 1.0) {
    graph edges("NAME")
    field s: spin on sites
    energy E = -J * sum(s[i] * s[j] for (i, j) in bonds)
}
run r {
    model G
    sampler metropolis(chains = 2, sweeps = 5, burn_in = 1)
    let T = 2.0
}
"""
DATA = """model H(N: int = 6, P: int = 2) {
    graph complete(N)
    field s: spin on sites
    data xi: spin[P, N] = load("NAME")
    param W[i, j] = sum(xi[mu, i] * xi[mu, j] for mu) / N, W[i, i] = 0
    energy E = -sum(W[i, j] * s[i] * s[j] for (i, j) in pairs)
}
run r {
    model H
    sampler metropolis(chains = 2, sweeps = 5, burn_in = 1)
    let T = 2.0
}
"""
RING = f"# {SECRET}\n" + "".join(f"{i}, {(i + 1) % 6}\n" for i in range(6))
PATTERNS = "".join(",".join(["1", "-1", "1", "1", "-1", "-1"]) + "\n" for _ in range(2))


def _project(tmp_path: Path) -> tuple[Path, Path]:
    """tmp/proj (the project tree) and tmp/outside, which holds a model, an edge list and a
    CSV of patterns, each with the SECRET line."""
    proj, outside = tmp_path / "proj", tmp_path / "outside"
    proj.mkdir()
    outside.mkdir()
    (outside / "o.phys").write_text(MODEL_FILE.replace("NAME", "O"))
    (outside / "ring.csv").write_text(RING)
    (outside / "xi.csv").write_text(f"# {SECRET}\n" + PATTERNS)
    return proj, outside


def _diagnostic(fn) -> Diagnostic:
    with pytest.raises(PhysmlError) as exc:
        fn()
    return exc.value.diagnostics[0]


@pytest.mark.parametrize("how", ["dotdot", "absolute", "symlink"])
def test_import_outside_the_project_tree_is_a_located_p605(how: str, tmp_path: Path):
    """``..``, an absolute path and a link inside the tree to a file outside it: P605 at the
    import's string, the hint names the flag; --allow-outside / allow_outside=True read it."""
    proj, outside = _project(tmp_path)
    name = {"dotdot": "../outside/o.phys", "absolute": str(outside / "o.phys"),
            "symlink": "link.phys"}[how]  # fmt: skip
    if how == "symlink":
        (proj / "link.phys").symlink_to(outside / "o.phys")
    path = proj / "main.phys"
    path.write_text(f'import "{name}"\n' + USES.replace("NAME", "O"))
    code, out, err = physml("check", str(path))
    assert code == 1, out + err
    assert err.startswith(f"{path}:1:8: error[P605]: imported file '{name}'"), err
    assert "--allow-outside" in err and "allow_outside=True" in err
    assert SECRET not in out + err and "Traceback" not in out + err
    d = _diagnostic(lambda: physml_lang.load(path))
    assert d.code == "P605" and d.span is not None and (d.span.line, d.span.column) == (1, 8)
    code, out, err = physml("check", "--allow-outside", str(path))
    assert code == 0, err
    assert "ok  run r" in out
    assert physml_lang.load(path, allow_outside=True).models["O"].name == "O"
    assert physml_lang.compile(path, allow_outside=True).lattice.shape == (4, 4)


def test_imports_inside_the_tree_and_nested_imports(tmp_path: Path):
    """A nested import starts at the importing file's folder; the project tree stays the
    top-level file's folder (a nested file may import a sibling of its folder, not leave the
    tree); stdlib imports by name are unaffected; an import cycle is read once."""
    proj, _ = _project(tmp_path)
    (proj / "lib").mkdir()
    (proj / "shared.phys").write_text(MODEL_FILE.replace("NAME", "S"))
    (proj / "lib" / "b.phys").write_text('import "../shared.phys"\nimport "a.phys"\n'
                                         + MODEL_FILE.replace("NAME", "B"))  # fmt: skip
    (proj / "lib" / "a.phys").write_text('import "b.phys"\nimport Ising\n'
                                         + MODEL_FILE.replace("NAME", "A"))  # fmt: skip
    path = proj / "main.phys"
    path.write_text('import "lib/a.phys"\n' + USES.replace("NAME", "S") + USES.replace(
        "run r", "run q").replace("NAME", "B"))  # fmt: skip
    code, out, err = physml("check", str(path))
    assert code == 0, err
    program = physml_lang.load(path)
    assert {"A", "B", "S", "Ising"} <= set(program.models)
    # the same files seen from a source text in the project folder (the working directory)
    with chdir(proj):
        assert "B" in physml_lang.load('import "lib/a.phys"\n').models
        d = _diagnostic(lambda: physml_lang.load('import "../outside/o.phys"\n'))
        assert d.code == "P605" and d.span is not None
    # a nested import that leaves the tree: located in the nested file
    (proj / "lib" / "c.phys").write_text('import "../../outside/o.phys"\n')
    path.write_text('import "lib/c.phys"\n')
    code, _, err = physml("check", str(path))
    assert code == 1
    assert err.startswith(f"{proj / 'lib' / 'c.phys'}:1:8: error[P605]"), err
    assert SECRET not in err
    assert physml("check", "--allow-outside", str(path))[0] == 0


@pytest.mark.parametrize("kind", ["edges", "data"])
def test_data_files_outside_the_tree_are_p605(kind: str, tmp_path: Path):
    """An edge list or a CSV of data named with ``..``: P605 at its string (check, run and
    compile alike), readable with the flag."""
    proj, outside = _project(tmp_path)
    path = proj / "g.phys"
    text = (EDGES.replace("NAME", "../outside/ring.csv") if kind == "edges"
            else DATA.replace("NAME", "../outside/xi.csv"))  # fmt: skip
    path.write_text(text)
    for command in ("check", "compile", "run"):
        extra = ("--out", str(tmp_path / "out"), "--quiet") if command == "run" else ()
        code, out, err = physml(command, str(path), *extra)
        assert code == 1, out + err
        assert err.startswith(f"{path}:"), err
        assert "error[P605]" in err and "leads out of the project tree" in err, err
        assert SECRET not in out + err and "Traceback" not in out + err
    code, out, err = physml("check", "--allow-outside", str(path))
    assert code == 0, err
    cm = physml_lang.compile(path, allow_outside=True)
    assert cm.lattice is not None
    # inside the tree: fine without the flag
    (proj / "data").mkdir()
    (proj / "data" / "f.csv").write_text((outside / ("ring.csv" if kind == "edges" else
                                                     "xi.csv")).read_text())  # fmt: skip
    path.write_text(text.replace("../outside/ring.csv", "data/f.csv").replace(
        "../outside/xi.csv", "data/f.csv"))  # fmt: skip
    assert physml("check", str(path))[0] == 0


def test_names_the_file_system_refuses_are_located(tmp_path: Path):
    """A NUL byte or an over-long name: a located P600 (no traceback); the message quotes the
    name clipped."""
    for name in ("a\x00b.phys", "x" * 5000 + ".phys", "x" * 5000 + "/y.csv"):
        text = f'import "{name}"\n' if name.endswith(".phys") else EDGES.replace("NAME", name)
        d = _diagnostic(lambda text=text: physml_lang.load(text).check())
        assert d.code == "P600" and d.span is not None, d.render()
        assert len(d.message) < 300


def _binary_phys(tmp_path: Path) -> tuple[Path, bytes]:
    garbage = b"\xff\xfe\x00" + SECRET.encode() + b"\x9c"
    path = tmp_path / "bin.phys"
    path.write_bytes(b"model M(L: int = 4) {\n    lattice " + garbage + b"\n}\n")
    return path, garbage


def test_binary_phys_file_is_a_located_p606_through_the_command(tmp_path: Path):
    """``python -m physml_lang.cli check FILE`` on a non-UTF-8 .phys file: exit 1, the file,
    line and column of the first bad byte, no traceback, none of its bytes."""
    import subprocess
    import sys

    path, _ = _binary_phys(tmp_path)
    p = subprocess.run([sys.executable, "-m", "physml_lang.cli", "check", str(path)],
                       capture_output=True, cwd=REPO, timeout=120)  # fmt: skip
    err = p.stderr.decode("utf-8", errors="replace")
    assert p.returncode == 1, err
    assert err.startswith(f"{path}:2:13: error[P606]: "), err
    assert "not a text file" in err and "Traceback" not in err
    assert SECRET.encode() not in p.stderr + p.stdout and b"\xff" not in p.stderr


def test_binary_imported_file_is_located_at_the_import(tmp_path: Path):
    path, _ = _binary_phys(tmp_path)
    main = tmp_path / "main.phys"
    main.write_text('import "bin.phys"\n')
    code, out, err = physml("check", str(main))
    assert code == 1
    assert err.startswith(f"{main}:1:8: error[P606]: the imported file is not a text file: "
                          "line 2, column 13"), err  # fmt: skip
    assert SECRET not in out + err and "Traceback" not in out + err


@pytest.mark.parametrize("kind", ["edges", "data"])
def test_binary_or_non_utf8_data_files_are_located(kind: str, tmp_path: Path):
    """A CSV (edge list or data) with a bad byte on line 3: P606 at the file's string, the line
    in the message, the bytes never shown; a row that is not numbers is named by line, not
    quoted."""
    path = tmp_path / "g.phys"
    path.write_text(EDGES.replace("NAME", "f.csv") if kind == "edges"
                    else DATA.replace("NAME", "f.csv"))  # fmt: skip
    good = (RING if kind == "edges" else "# header\n" + PATTERNS).encode()
    lines = good.splitlines(keepends=True)
    for bad in (b"\xff\xfe" + SECRET.encode(), b"1\x00" + SECRET.encode()):
        (tmp_path / "f.csv").write_bytes(b"".join(lines[:2]) + bad + b"\n" + b"".join(lines[2:]))
        code, out, err = physml("check", str(path))
        assert code == 1, out + err
        col = 17 if kind == "edges" else 32
        assert err.startswith(f"{path}:{2 if kind == 'edges' else 4}:{col}: error[P606]: "
                              "f.csv line 3: not a text file"), err  # fmt: skip
        assert SECRET not in out + err and "Traceback" not in out + err
    (tmp_path / "f.csv").write_text(good.decode() + f"1, {SECRET}\n")
    code, out, err = physml("check", str(path))
    assert code == 1 and "error[P60" in err and f"f.csv line {len(lines) + 1}:" in err, err
    assert SECRET not in out + err


@pytest.mark.parametrize("suffix", [".npy", ".npz"])
def test_pickled_arrays_are_refused(suffix: str, tmp_path: Path):
    """An .npy/.npz holding Python objects is never unpickled: a located P601."""
    import numpy as np

    sentinel = tmp_path / "pwned"
    objects = np.array([{"cmd": f"touch {sentinel}"}, SECRET], dtype=object)
    if suffix == ".npy":
        np.save(tmp_path / f"xi{suffix}", objects, allow_pickle=True)
    else:
        np.savez(tmp_path / f"xi{suffix}", xi=objects)
    path = tmp_path / "h.phys"
    path.write_text(DATA.replace("NAME", f"xi{suffix}"))
    code, out, err = physml("check", str(path))
    assert code == 1, out + err
    assert err.startswith(f"{path}:4:"), err
    assert "error[P601]" in err and "pickled arrays are refused" in err, err
    assert SECRET not in out + err and "Traceback" not in out + err
    assert not sentinel.exists()
    if suffix == ".npy":  # an edge list too
        path.write_text(EDGES.replace("NAME", "xi.npy"))
        code, _, err = physml("check", str(path))
        assert code == 1 and "error[P60" in err and "pickled arrays are refused" in err, err


# ---------------------------------------------------------------- source scan

# Calls that would turn text into code (or unpickle it). Banned by name, on any receiver:
# eval(...), builtins.eval(...), sympy.sympify(...), sp.parse_expr(...), ...
BANNED_CALLS = {
    "eval", "exec", "compile", "__import__", "sympify", "parse_expr", "lambdify", "S",
    "execfile", "runpy", "import_module", "loads",
}  # fmt: skip
BANNED_IMPORTS = {"pickle", "dill", "marshal", "shelve", "cloudpickle"}
PACKAGE_DIRS = [REPO / "physml_lang", REPO / "compiler", REPO / "runtime"]


def _violations(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        where = f"{path.relative_to(REPO)}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Call):
            f = node.func
            name = None
            if isinstance(f, ast.Name):
                name = f.id
            elif isinstance(f, ast.Attribute):
                name = f.attr
            if name in BANNED_CALLS:
                # str.compile-like methods of our own objects are not Python's compile():
                # only a bare compile(...) call or builtins.compile(...) is banned.
                receiver = f.value.id if isinstance(f, ast.Attribute) and isinstance(
                    f.value, ast.Name) else None  # fmt: skip
                if name == "compile" and isinstance(f, ast.Attribute) and receiver != "builtins":
                    continue
                if name == "loads" and receiver not in ("pickle", "marshal", "dill"):
                    continue
                found.append(f"{where}: call to {name}()")
            if name == "load" and isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name):
                kw = {k.arg: k.value for k in node.keywords}
                if f.value.id == "torch":
                    w = kw.get("weights_only")
                    if not (isinstance(w, ast.Constant) and w.value is True):
                        found.append(f"{where}: torch.load without weights_only=True")
                if f.value.id in ("np", "numpy"):
                    a = kw.get("allow_pickle")
                    if isinstance(a, ast.Constant) and a.value is True:
                        found.append(f"{where}: np.load(allow_pickle=True)")
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] in BANNED_IMPORTS:
                    found.append(f"{where}: import {a.name}")
        elif isinstance(node, ast.ImportFrom):
            if (node.module or "").split(".")[0] in BANNED_IMPORTS:
                found.append(f"{where}: from {node.module} import ...")
            for a in node.names:
                if a.name in BANNED_CALLS - {"S", "loads", "compile"}:
                    found.append(f"{where}: from {node.module} import {a.name}")
    return found


def test_package_sources_never_turn_text_into_code():
    files = [p for d in PACKAGE_DIRS for p in sorted(d.rglob("*.py"))]
    assert len(files) > 20
    violations = [v for p in files for v in _violations(p)]
    assert violations == []


def test_the_scanner_catches_what_it_bans(tmp_path: Path, monkeypatch):
    """The scan itself is tested: each banned form in a throwaway module is reported."""
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import pickle\nimport sympy as sp\nfrom sympy import sympify\nimport torch\n"
        "eval('1')\nexec('x = 1')\nsp.sympify('x')\nsp.parsing.sympy_parser.parse_expr('x')\n"
        "sp.lambdify([], 1)\n__import__('os')\ncompile('1', 'f', 'eval')\ntorch.load('f')\n"
        "pickle.loads(b'')\nsp.S('x')\nre_compiled = obj.compile(1)\n"
    )
    monkeypatch.setattr(f"{__name__}.REPO", tmp_path)
    found = _violations(bad)
    assert len(found) == 12, found
