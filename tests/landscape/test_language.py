"""Landscape models in the language: ``coordinates x: real[N, D] in [lower, upper]`` and a
``potential``; the compiler's symbolic gradient and trial-function derivatives against autograd,
the standard library's objectives against hand-written torch, and what ``check`` refuses."""

from __future__ import annotations

import math

import pytest
import torch

import physml_lang
from physml_lang.diagnostics import PhysmlError
from physml_lang.runtime.landscape import test_functions as tf

F64 = torch.float64


def _model(source: str, name: str | None = None, **params):
    program = physml_lang.load(source)
    return program.model(name, **params) if name else program.model(**params)


@pytest.mark.parametrize("name, fn, d", [
    ("Sphere", tf.sphere, 5), ("Rastrigin", tf.rastrigin, 7), ("Ackley", tf.ackley, 4),
    ("Griewank", tf.griewank, 6), ("Rosenbrock", tf.rosenbrock, 5),
    ("Schwefel", tf.schwefel, 3)])  # fmt: skip
def test_stdlib_objectives_equal_hand_written(name, fn, d):
    """The language's objective (stdlib/landscapes.phys) is the literature's function, on
    random points of its box and at its minimum."""
    cm = _model(f"import {name}\n", name, d=d)
    assert cm.n == d
    g = torch.Generator().manual_seed(d)
    x = cm.lower + (cm.upper - cm.lower) * torch.rand(64, d, generator=g, dtype=F64)
    torch.testing.assert_close(cm.potential(x), fn(x), rtol=1e-12, atol=1e-9)
    entry = tf.TEST_FUNCTIONS[name.lower()]
    assert (entry.lower, entry.upper) == (cm.lower, cm.upper)
    x_star = entry.x_star(d).reshape(1, d).to(torch.float64)
    assert abs(float(cm.potential(x_star))) < 1e-6


def test_gradient_is_autograd():
    """grad f, derived symbolically, equals autograd of the lowered f (a 2-particle potential
    with a pair term and a let with an index)."""
    src = """model M(k: real = 1.5) {
        coordinates q: real[2, 3] in [-3, 3]
        let r[i] = sqrt(sum(q[i, a]^2 for a in dims))
        potential V = sum(k * r[i]^2 / 2 + exp(-r[i]) for i in particles)
                      + 1 / sqrt(sum((q[0, a] - q[1, a])^2 for a in dims) + 0.1)
    }"""
    cm = _model(src)
    x = torch.randn(16, 6, generator=torch.Generator().manual_seed(1), dtype=F64).requires_grad_(True)
    (auto,) = torch.autograd.grad(cm.potential(x).sum(), x)
    torch.testing.assert_close(cm.gradient(x.detach()), auto, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(cm.force(x.detach()), -auto, rtol=1e-12, atol=1e-12)


def test_trial_derivatives_are_autograd():
    """grad log psi and lap log psi of the declared trial function (H2 of the standard library)
    equal autograd's; the local energy of the exact hydrogen trial is -1/2 everywhere."""
    cm = _model("import H2\n", "H2")
    x = torch.randn(8, 6, generator=torch.Generator().manual_seed(2), dtype=F64).requires_grad_(True)
    logp = cm.trial.log_psi(x)
    (g,) = torch.autograd.grad(logp.sum(), x, create_graph=True)
    lap = sum(torch.autograd.grad(g[:, k].sum(), x, retain_graph=True)[0][:, k]
              for k in range(6))  # fmt: skip
    torch.testing.assert_close(cm.trial.grad_log_psi(x.detach()), g.detach(), rtol=1e-10,
                               atol=1e-12)  # fmt: skip
    torch.testing.assert_close(cm.trial.laplacian_log_psi(x.detach()), lap.detach(), rtol=1e-10,
                               atol=1e-10)  # fmt: skip
    h = _model("import Hydrogen\n", "Hydrogen", alpha=1.0)
    r = torch.randn(32, 3, generator=torch.Generator().manual_seed(3), dtype=F64)
    t = h.trial
    e_local = -0.5 * (t.laplacian_log_psi(r) + (t.grad_log_psi(r) ** 2).sum(-1)) + h.potential(r)
    torch.testing.assert_close(e_local, torch.full((32,), -0.5, dtype=F64), rtol=1e-12,
                               atol=1e-12)  # fmt: skip


def test_scalar_and_vector_coordinates():
    """real (one coordinate), real[n] (dims run over n) and range() loops."""
    one = _model("model W { coordinates x: real in [-2, 2]\n potential f = (x^2 - 1)^2 }")
    assert (one.n, one.shape, one.lower, one.upper) == (1, (), -2.0, 2.0)
    x = torch.tensor([[0.0], [1.0], [2.0]], dtype=F64)
    torch.testing.assert_close(one.potential(x), torch.tensor([1.0, 0.0, 9.0], dtype=F64))
    chain = _model("""model C(n: int = 4) { coordinates x: real[n]
        potential f = sum((x[i + 1] - x[i])^2 for i in range(n - 1)) }""")
    y = torch.arange(4.0, dtype=F64).reshape(1, 4) ** 2
    assert float(chain.potential(y)) == pytest.approx(1 + 9 + 25)
    assert chain.lower is None


@pytest.mark.parametrize("body, code", [
    ("coordinates x: real[2] in [1, 1]\n potential f = x[0]", "P426"),
    ("coordinates x: real[2]\n let g = x[0]", "P420"),
    ("coordinates x: real[2]\n potential f = x[0]\n potential g = x[1]", "P420"),
    ("coordinates x: real[2]\n potential f = 3", "P419"),
    ("coordinates x: real[2]\n potential f = x[2]", "P405"),
    ("coordinates x: real[300]\n potential f = x[0]", "P426"),
    ("coordinates x: complex[2]\n potential f = x[0]", "P301"),
    ("coordinates x: real[2]\n coordinates y: real\n potential f = x[0]", "P201"),
])  # fmt: skip
def test_bad_landscapes_are_located(body, code):
    with pytest.raises(PhysmlError) as err:
        _model(f"model Bad {{ {body} }}")
    first = err.value.diagnostics[0]
    assert first.code == code
    assert first.span is not None


def test_emit_shows_derived_expressions():
    p = physml_lang.compile("import Rastrigin\n", d=2)
    sym = p.emit("sympy")
    assert "df/dx_0 = 2*x_0 + 20*pi*sin(2*pi*x_0)" in sym
    assert "def potential" in p.emit("torch") and "def gradient" in p.emit("torch")
    assert math.isfinite(float(p.compiled.potential(torch.zeros(1, 2, dtype=F64))))
