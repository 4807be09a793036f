"""Golden emitted code: ``physml compile --emit torch|sympy`` of the programs in tests/golden/good
is pinned, and ``physml check`` accepts each of them.

The emitted text is the compiler's readable account of what it derived (local energies, flip
energy changes, colourings, roll/gather/dense lowering); a change to it must be reviewed.
Regenerate with ``PHYSML_UPDATE_GOLDEN=1``.
"""

from __future__ import annotations

import pytest
from frontend_util import GOLDEN, compare_golden, physml

GOOD = GOLDEN / "good"

KNOWN_BUGS: dict[str, str] = {}  # name -> reason: strict xfail until fixed


def _cases():
    for path in sorted(GOOD.glob("*.phys")):
        marks = []
        if path.stem in KNOWN_BUGS:
            marks.append(pytest.mark.xfail(reason=KNOWN_BUGS[path.stem], strict=True))
        yield pytest.param(path.name, id=path.stem, marks=marks)


def test_golden_set():
    names = {p.stem for p in GOOD.glob("*.phys")}
    assert {"ising2d_periodic", "ising2d_open", "potts3", "j1j2", "sk", "triangular"} <= names


@pytest.mark.parametrize("name", list(_cases()))
def test_check_succeeds(name: str):
    code, out, err = physml("check", name, cwd=GOOD)
    assert code == 0, err
    assert err == ""
    assert out.startswith("ok  model ")


@pytest.mark.parametrize("emit", ["torch", "sympy"])
@pytest.mark.parametrize("name", list(_cases()))
def test_emitted_code(name: str, emit: str):
    code, out, err = physml("compile", name, "--emit", emit, cwd=GOOD)
    assert code == 0, err
    assert "Traceback" not in out + err
    compare_golden(GOOD / f"{name[: -len('.phys')]}.{emit}.txt", out)


def test_emitted_torch_is_python_that_only_uses_torch_and_math():
    """The torch emission is readable source: it parses, and imports nothing but math/torch."""
    import ast

    for path in sorted(GOOD.glob("*.torch.txt")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                assert {a.name for a in node.names} <= {"math", "torch"}, path.name
            assert not isinstance(node, ast.ImportFrom), path.name


def test_lowering_paths_are_the_expected_ones():
    assert "path = roll" in (GOOD / "ising2d_periodic.torch.txt").read_text()
    assert "path = gather" in (GOOD / "ising2d_open.torch.txt").read_text()
    assert "path = dense" in (GOOD / "sk.torch.txt").read_text()
    assert "3 colours" in (GOOD / "triangular.sympy.txt").read_text()
    assert "2 colours" in (GOOD / "ising2d_periodic.sympy.txt").read_text()
    assert "4 colours" in (GOOD / "j1j2.sympy.txt").read_text()  # the king's graph


CLASSICAL = ["blume_capel", "honeycomb", "ising2d_open", "ising2d_periodic", "j1j2", "potts3", "sk",
             "triangular"]  # fmt: skip


@pytest.mark.parametrize("name", CLASSICAL)
def test_emitted_triton_kernels(name: str):
    """``--emit triton``: the generated local-update kernels (or, per field and rule, why the
    model admits none: open boundaries, complete graphs)."""
    code, out, err = physml("compile", f"{name}.phys", "--emit", "triton", cwd=GOOD)
    assert code == 0, err
    compare_golden(GOOD / f"{name}.triton.txt", out)
