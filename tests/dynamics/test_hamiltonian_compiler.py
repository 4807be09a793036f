"""compiler/hamiltonian.py: derivation, separability, diagnostics, lowering vs autograd."""

import pytest
import sympy
import torch

from physml_lang.compiler.derive.hamiltonian import HamiltonianError, derive_hamiltonian
from physml_lang.compiler.lower.hamiltonian import compile_hamiltonian, lower_expressions
from physml_lang.runtime.dynamics.system import autograd_system, kepler, pendulum

F64 = torch.float64


def _pendulum():
    q, p, m, l, g = sympy.symbols("q p m l g")
    H = p**2 / (2 * m * l**2) + m * g * l * (1 - sympy.cos(q))
    return H, [q], [p], {m: 1.3, l: 0.7, g: 3.0}


def _kepler():
    x1, y1, x2, y2 = sympy.symbols("x1 y1 x2 y2")
    a1, b1, a2, b2 = sympy.symbols("px1 py1 px2 py2")
    m1, m2, G = sympy.symbols("m1 m2 G")
    r = sympy.sqrt((x1 - x2) ** 2 + (y1 - y2) ** 2)
    H = (a1**2 + b1**2) / (2 * m1) + (a2**2 + b2**2) / (2 * m2) - G * m1 * m2 / r
    return H, [x1, y1, x2, y2], [a1, b1, a2, b2], {m1: 1.0, m2: 0.5, G: 1.0}


def _random_state(n, gen, B=64):
    q = torch.randn(B, n, generator=gen, dtype=F64)
    p = torch.randn(B, n, generator=gen, dtype=F64)
    return q, p


@pytest.mark.parametrize("case", [_pendulum, _kepler])
def test_derived_gradients_match_autograd(case):
    H, q, p, params = case()
    c = compile_hamiltonian(H, q, p, params)
    assert c.separable
    gen = torch.Generator().manual_seed(0)
    Q, P = _random_state(len(q), gen)
    auto = autograd_system(c.hamiltonian)
    assert torch.allclose(c.dH_dq(Q, P), auto.dH_dq(Q, P), atol=1e-12, rtol=1e-10)
    assert torch.allclose(c.dH_dp(Q, P), auto.dH_dp(Q, P), atol=1e-12, rtol=1e-10)
    assert c.hamiltonian(Q, P).shape == (64,)
    assert c.dH_dq(Q, P).shape == (64, len(q))


def test_lowered_matches_hand_written_systems():
    gen = torch.Generator().manual_seed(1)
    H, q, p, _ = _pendulum()
    sym = {s.name: s for s in H.free_symbols}
    c = compile_hamiltonian(H, q, p, {sym["m"]: 1.0, sym["l"]: 1.0, sym["g"]: 3.0})
    ref = pendulum(1.0, 1.0, 3.0)
    Q, P = _random_state(1, gen)
    for name in ("hamiltonian", "dH_dq", "dH_dp"):
        assert torch.allclose(getattr(c, name)(Q, P), getattr(ref, name)(Q, P), atol=1e-13)
    H, q, p, params = _kepler()
    c = compile_hamiltonian(H, q, p, params)
    ref = kepler(1.0, 0.5, 1.0)
    Q, P = _random_state(4, gen)
    for name in ("hamiltonian", "dH_dq", "dH_dp"):
        assert torch.allclose(getattr(c, name)(Q, P), getattr(ref, name)(Q, P), atol=1e-12)


def test_hamilton_equations_and_structure():
    H, q, p, _ = _pendulum()
    d = derive_hamiltonian(H, q, p)
    m, l, g = sorted((s for s in H.free_symbols if s not in (q[0], p[0])), key=str)[::-1][:3]
    assert sympy.simplify(d.qdot[0] - p[0] / (m * l**2)) == 0
    assert sympy.simplify(d.pdot[0] + m * g * l * sympy.sin(q[0])) == 0
    assert d.separable and d.unused_pairs == () and d.nondifferentiable == ()
    assert sympy.simplify(d.kinetic + d.potential - H) == 0


def test_non_separable_unused_pairs_and_nondifferentiable():
    q1, q2, q3, p1, p2, p3 = sympy.symbols("q1 q2 q3 p1 p2 p3")
    H = p1**2 * (1 + q1**2) / 2 + sympy.Abs(q2) + sympy.Max(q1, 0)
    d = derive_hamiltonian(H, [q1, q2, q3], [p1, p2, p3])
    assert not d.separable and d.kinetic is None
    assert d.unused_pairs == (2,)
    assert d.unused_p == (1, 2)
    kinds = sorted(x.kind for x in d.nondifferentiable)
    assert kinds == ["Abs", "Max"]
    # still lowerable: sign(q2) and Heaviside-like pieces become torch ops
    c = compile_hamiltonian(H, [q1, q2, q3], [p1, p2, p3])
    Q = torch.tensor([[0.5, -2.0, 1.0]], dtype=F64)
    P = torch.tensor([[1.0, 1.0, 1.0]], dtype=F64)
    assert torch.allclose(c.dH_dq(Q, P)[0, :2], torch.tensor([0.5 + 1.0, -1.0], dtype=F64))
    assert c.dH_dq(Q, P)[0, 2] == 0.0


def test_separable_by_mixed_partials_and_expand():
    q, p = sympy.symbols("q p")
    d = derive_hamiltonian((p + q) ** 2 - 2 * p * q, [q], [p])
    assert d.separable
    assert sympy.simplify(d.kinetic - p**2) == 0 and sympy.simplify(d.potential - q**2) == 0
    assert not derive_hamiltonian((p + q) ** 2, [q], [p]).separable


def test_source_is_readable_and_has_no_lambdify():
    H, q, p, params = _kepler()
    c = compile_hamiltonian(H, q, p, params)
    src = c.source
    assert "def dH_dq(q: torch.Tensor, p: torch.Tensor)" in src
    assert "x1 = qs[0]" in src and "torch.stack" in src
    assert "lambdify" not in src
    compile(src, "<emit>", "exec")  # valid Python (checked, never executed)


def test_elementwise_template_runs_on_whole_tensors():
    """Components of one form in (q_k, p_k) lower once and run unsliced; values as unrolled."""
    q = sympy.symbols("q0:3", real=True)
    p = sympy.symbols("p0:3", real=True)
    H = sum(pk**2 / 2 + 2 * (1 - sympy.cos(qk)) for qk, pk in zip(q, p))
    c = compile_hamiltonian(H, q, p)
    assert c.dH_dq.elementwise and c.dH_dp.elementwise and not c.hamiltonian.elementwise
    assert "return 2.0 * torch.sin(q)" in c.dH_dq.source and "unbind" not in c.dH_dq.source
    gen = torch.Generator().manual_seed(4)
    Q, P = _random_state(3, gen)
    torch.testing.assert_close(c.dH_dq(Q, P), 2 * torch.sin(Q), rtol=0, atol=0)
    torch.testing.assert_close(c.dH_dp(Q, P), P, rtol=0, atol=0)
    # mixed: q_0 appears in the force on q_1 -> per-component layout
    c2 = compile_hamiltonian(H + q[0] * q[1], q, p)
    assert not c2.dH_dq.elementwise and c2.dH_dp.elementwise
    torch.testing.assert_close(c2.dH_dq(Q, P)[:, 1], 2 * torch.sin(Q[:, 1]) + Q[:, 0])


def test_more_functions_and_piecewise_lower():
    q, p = sympy.symbols("q p")
    H = (sympy.exp(-q**2) + sympy.log(1 + p**2) + sympy.tanh(q) * sympy.sqrt(1 + p**2)
         + sympy.Piecewise((q**2, q > 0), (0, True)) + sympy.atan(p) ** 3)  # fmt: skip
    c = compile_hamiltonian(H, [q], [p])
    gen = torch.Generator().manual_seed(3)
    Q, P = _random_state(1, gen)
    auto = autograd_system(c.hamiltonian)
    assert torch.allclose(c.dH_dq(Q, P), auto.dH_dq(Q, P), atol=1e-12)
    assert torch.allclose(c.dH_dp(Q, P), auto.dH_dp(Q, P), atol=1e-12)
    ref = (torch.exp(-Q**2) + torch.log(1 + P**2) + torch.tanh(Q) * torch.sqrt(1 + P**2)
           + torch.where(Q > 0, Q**2, 0.0) + torch.atan(P) ** 3)[:, 0]  # fmt: skip
    assert torch.allclose(c.hamiltonian(Q, P), ref, atol=1e-13)


def test_errors():
    q, p, k = sympy.symbols("q p k")
    with pytest.raises(HamiltonianError, match="no value for parameter"):
        compile_hamiltonian(k * q**2 + p**2, [q], [p])
    with pytest.raises(HamiltonianError, match="cannot lower"):
        lower_expressions("f", [sympy.gamma(q)], [q], [p])
    with pytest.raises(HamiltonianError):
        derive_hamiltonian(q + p, [q], [p, k])
    with pytest.raises(HamiltonianError, match="sympy expression"):
        derive_hamiltonian("p**2", [q], [p])
