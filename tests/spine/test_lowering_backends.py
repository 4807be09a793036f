"""One lowering, two backends: the numpy program (static checks) computes what the torch program
(runs) computes, for every operation the lowering knows and for generated expressions; the
Potts spin-flip check that uses it is exact and located."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
import sympy as sp
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import physml_lang as pl
from physml_lang.compiler.lower.backends import NUMPY
from physml_lang.compiler.lower.program import Kernel, lower_program, source_of
from physml_lang.compiler.lower.torch_backend import TORCH
from physml_lang.diagnostics import PhysmlError

ROOT = Path(__file__).resolve().parents[2]
x, y = sp.symbols("x y", real=True)
BACKENDS = {"torch": TORCH, "numpy": NUMPY}

# One expression per operation the lowering dispatches on (inputs: x in (-1, 1), y in (1, 2)).
EVERY_OPERATION = [
    sp.sin(x) + sp.cos(y) + sp.tan(x), sp.exp(x) * sp.log(y), sp.tanh(x) - sp.sinh(x) * sp.cosh(y),
    sp.asin(x / 2) + sp.acos(x / 2) + sp.atan(y), sp.asinh(x) + sp.acosh(y) + sp.atanh(x / 2),
    sp.Abs(x) + sp.sign(x), sp.floor(3 * x) + sp.ceiling(3 * y), sp.erf(x),
    sp.re(x + sp.I * y) + sp.im(x + sp.I * y), sp.conjugate(x) * y,
    sp.sqrt(y) + 1 / sp.sqrt(y) + 1 / y + x**2 + y**-7 + y**x + (x + y) ** 2,
    sp.atan2(x, y), sp.Max(x, y, 1.5) + sp.Min(x, y),
    sp.Heaviside(x), sp.KroneckerDelta(sp.floor(3 * x), 0),
    sp.Piecewise((x, x < 0), (y, sp.And(x >= 0, y <= 1.5)), (x * y, True)),
    sp.Piecewise((1, sp.Or(x > 0.5, sp.Eq(sp.floor(y), 2))), (2, sp.Ne(x, 0)), (3, True)),
    sp.Piecewise((1, sp.Not(x > 0)), (0, True)),
    sp.Integer(3) * sp.pi,  # a constant program
]  # fmt: skip


def _inputs(n: int = 257) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.uniform(-1, 1, n), rng.uniform(1, 2, n)


def _run(expr: sp.Expr, which: str, share_powers: bool = False) -> np.ndarray:
    prog = lower_program([expr], [x, y], {x: "x", y: "y"}, None, "test",
                         share_powers=share_powers, backend=BACKENDS[which])  # fmt: skip
    xs, ys = _inputs()
    if which == "torch":
        out = prog.run(torch.from_numpy(xs), torch.from_numpy(ys))[0]
        out = out.numpy() if isinstance(out, torch.Tensor) else out
    else:
        out = prog.run(xs, ys)[0]
    return np.broadcast_to(np.asarray(out, dtype=float), xs.shape)


def test_both_backends_know_the_same_operations():
    assert set(TORCH.ops) == set(NUMPY.ops)


@pytest.mark.parametrize("expr", EVERY_OPERATION, ids=lambda e: sp.srepr(e)[:40])
@pytest.mark.parametrize("share_powers", [False, True])
def test_numpy_program_computes_what_the_torch_program_computes(expr, share_powers):
    a = _run(expr, "torch", share_powers)
    b = _run(expr, "numpy", share_powers)
    assert np.allclose(a, b, rtol=1e-12, atol=1e-12)


def test_the_printed_program_names_its_backend():
    e = sp.sqrt(y) + sp.Max(x, y) + sp.KroneckerDelta(x, y) + sp.asin(x)
    t = source_of(e, backend=TORCH)
    n = source_of(e, backend=NUMPY)
    assert "torch.sqrt" in t and "torch.asin" in t and "np." not in t
    assert "np.sqrt" in n and "np.arcsin" in n and "np.maximum" in n and "torch" not in n
    assert ".astype(float)" in n and ".to(dtype)" in t


_leaves = st.sampled_from([x, y, sp.Integer(2), sp.Rational(1, 2), sp.Float(0.75)])


def _compose(children: st.SearchStrategy) -> st.SearchStrategy:
    unary = st.sampled_from([sp.sin, sp.cos, sp.tanh, sp.atan, sp.Abs, lambda a: a**2,
                             lambda a: sp.exp(sp.sin(a)), lambda a: sp.sqrt(1 + a**2)])
    binary = st.sampled_from([sp.Add, sp.Mul, lambda a, b: a - b, sp.Max, sp.Min,
                              lambda a, b: a / (1 + b**2)])  # fmt: skip
    return st.one_of(st.builds(lambda f, a: f(a), unary, children),
                     st.builds(lambda f, a, b: f(a, b), binary, children, children))  # fmt: skip


@settings(max_examples=80, deadline=None)
@given(st.recursive(_leaves, _compose, max_leaves=12))
def test_generated_expressions_agree_on_both_backends(expr):
    a = _run(expr, "torch", share_powers=True)
    b = _run(expr, "numpy", share_powers=True)
    assert np.allclose(a, b, rtol=1e-10, atol=1e-10)


def test_a_kernel_lowers_for_numpy_with_lazy_inputs():
    s, t = sp.symbols("s s_e0", real=True)
    k = Kernel("pair", -sp.KroneckerDelta(s, t), {s: "s", t: "s_e0"}, backend=NUMPY)
    got = k({s: np.array([0.0, 1.0, 2.0]), t: lambda: np.array([0.0, 2.0, 2.0])})
    assert np.array_equal(got, [-1.0, 0.0, -1.0])


def test_the_lowering_imports_torch_only_in_the_torch_backend():
    """program.py and backends.py never import torch, so static checks run without it."""
    for name in ("program.py", "backends.py"):
        tree = ast.parse((ROOT / "compiler" / "lower" / name).read_text())
        imports = [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]
        mods = {a.name for n in imports if isinstance(n, ast.Import) for a in n.names}
        mods |= {n.module for n in imports if isinstance(n, ast.ImportFrom) and n.module}
        assert not any(m.split(".")[0] in ("torch", "torch_backend") for m in mods), name


# ---------------------------------------------------------------- the Potts spin-flip check

POTTS = (ROOT / "tests" / "golden" / "good" / "potts3.phys").read_text()


def _with_energy(extra: str, params: str = "") -> str:
    """The Potts model with ``extra`` energy terms (and arrays: then without translation)."""
    src = POTTS.replace("for (i, j) in bonds)\n", "for (i, j) in bonds)" + extra + "\n")
    if params:
        src = src.replace("    field s:", params + "    field s:")
        src = src.replace("symmetry translation, spin_flip", "symmetry spin_flip")
    return src


@pytest.mark.parametrize("extra, params", [
    ("", ""),
    (" + 0.3 * sum(cos(2 * pi * (s[i] - s[j]) / q) for (i, j) in bonds)", ""),
    (" - sum(K[i, j] * delta(s[i], s[j]) for (i, j) in bonds)",
     "    param K on bonds = normal(0, 1, seed = 2)\n"),
    (" - sum(h[i] * delta(s[i], 0) for i in sites)", "    param h on sites = 0.0\n"),
])  # fmt: skip
def test_potts_spin_flip_holds(extra, params):
    model = pl.compile(_with_energy(extra, params)).model()
    assert "spin_flip" in model.describe()


@pytest.mark.parametrize("extra, params", [
    (" - 0.5 * sum(delta(s[i], 0) for i in sites)", ""),
    (" + 0.5 * sum(delta(s[i], s[j] + 1) for (i, j) in bonds)", ""),  # s + 1 is not mod q
    (" - sum(h[i] * delta(s[i], 0) for i in sites)",
     "    param h on sites = uniform(0, 1, seed = 1)\n"),
])  # fmt: skip
def test_potts_spin_flip_broken_is_located(extra, params):
    src = _with_energy(extra, params)
    with pytest.raises(PhysmlError) as err:
        pl.compile(src).model()
    d = err.value.diagnostics[0]
    assert d.code == "P500" and "s -> s + 1 mod q" in d.message
    line = src.splitlines()[d.span.line - 1]
    assert line[d.span.column - 1:d.span.end_column - 1] in extra  # the offending sum
