"""A .phys file can never run Python code (design.md, "Compiler principles").

Hostile programs get clean located diagnostics and have no side effect; pathological inputs
(deep nesting, huge expressions) are refused cleanly; and no module of the package calls
sympify / parse_expr / eval / exec (or similar) on anything.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from frontend_util import REPO, physml

import physml_lang
from physml_lang import PhysmlError

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


def test_nesting_too_deep_is_a_located_p800(tmp_path: Path):
    path = tmp_path / "deep.phys"
    path.write_text(MODEL.format(energy="-" * 20000 + "1"))
    code, _, err = physml("check", str(path))
    assert code == 1
    assert "error[P800]" in err and "nested too deeply" in err


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
