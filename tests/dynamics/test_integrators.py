"""Integrators: symplecticity (M^T Omega M = Omega), reversibility, energy behaviour, order."""

import numpy as np
import pydantic
import pytest
import sympy
import torch

from physml_lang.catalogue import CATALOGUE
from physml_lang.compiler.lower.hamiltonian import compile_hamiltonian
from physml_lang.runtime.dynamics import (
    EnergyBlowupError,
    NotSeparableError,
    evolve,
    make_integrator,
)
from physml_lang.runtime.dynamics.system import as_system, autograd_system, kepler, pendulum

F64 = torch.float64


def omega(n: int) -> torch.Tensor:
    eye, zero = torch.eye(n, dtype=F64), torch.zeros(n, n, dtype=F64)
    return torch.cat([torch.cat([zero, eye], 1), torch.cat([-eye, zero], 1)], 0)


def step_jacobian(integrator, system, z0: torch.Tensor, dt: float) -> torch.Tensor:
    """Jacobian (2n, 2n) of one step z = (q, p) -> z'."""
    n = z0.numel() // 2

    def f(z):
        q, p = integrator.step(system, z[:n][None], z[n:][None], dt)
        return torch.cat([q[0], p[0]])

    return torch.autograd.functional.jacobian(f, z0)


def symplectic_defect(M: torch.Tensor) -> float:
    W = omega(M.shape[0] // 2)
    return float((M.T @ W @ M - W).abs().max())


def compiled_pendulum():
    q, p = sympy.symbols("q p")
    return compile_hamiltonian(p**2 / 2 + 3 * (1 - sympy.cos(q)), [q], [p])


def compiled_kepler():
    x1, y1, x2, y2, a1, b1, a2, b2 = sympy.symbols("x1 y1 x2 y2 px1 py1 px2 py2")
    r = sympy.sqrt((x1 - x2) ** 2 + (y1 - y2) ** 2)
    H = (a1**2 + b1**2) / 2 + (a2**2 + b2**2) / 2 - 1 / r
    return compile_hamiltonian(H, [x1, y1, x2, y2], [a1, b1, a2, b2])


def non_separable():
    """H = p^2 (1 + q^2) / 2 + q^2 / 2 + q p^3 / 10, with q, p in 2 pairs (not separable)."""
    q1, q2, p1, p2 = sympy.symbols("q1 q2 p1 p2")
    H = (p1**2 * (1 + q1**2) / 2 + q1**2 / 2 + q1 * p1**3 / 10 + p2**2 / 2
         + sympy.cos(q2) * (1 + p2**2 / 4) + q1 * q2 * p2 / 5)  # fmt: skip
    return compile_hamiltonian(H, [q1, q2], [p1, p2])


Z_PENDULUM = torch.tensor([0.9, -0.4], dtype=F64)
Z_KEPLER = torch.tensor([1.0, 0.1, -0.8, 0.0, 0.1, 0.7, -0.1, -0.6], dtype=F64)


@pytest.mark.parametrize("name", ["leapfrog", "verlet", "yoshida4", "implicit_midpoint"])
@pytest.mark.parametrize("case", ["pendulum", "kepler"])
def test_symplectic_integrators_are_symplectic(name, case):
    system, z0 = {"pendulum": (compiled_pendulum(), Z_PENDULUM),
                  "kepler": (compiled_kepler(), Z_KEPLER)}[case]  # fmt: skip
    M = step_jacobian(make_integrator(name), system, z0, 0.1)
    assert symplectic_defect(M) < 1e-12


def test_implicit_midpoint_symplectic_for_non_separable_h():
    system = non_separable()
    assert not system.separable
    z0 = torch.tensor([0.3, -0.7, 0.5, 0.2], dtype=F64)
    M = step_jacobian(make_integrator("implicit_midpoint", tol=1e-14), system, z0, 0.1)
    assert symplectic_defect(M) < 1e-11
    # leapfrog applied to a non-separable H would not be symplectic: refuse it
    with pytest.raises(NotSeparableError):
        make_integrator("leapfrog").check(system)
    with pytest.raises(NotSeparableError):
        evolve(system, z0[:2][None], z0[2:][None], 0.1, 3, "yoshida4")


@pytest.mark.parametrize("name", ["euler", "rk4"])
def test_euler_and_rk4_are_not_symplectic(name):
    for system, z0 in ((compiled_pendulum(), Z_PENDULUM), (compiled_kepler(), Z_KEPLER)):
        M = step_jacobian(make_integrator(name), system, z0, 0.1)
        assert symplectic_defect(M) > 1e-9  # O(dt^5) for RK4; symplectic ones are < 1e-12
    assert not make_integrator(name).symplectic


def test_autograd_system_steps_are_symplectic():
    """The integrators also work with autograd-derived gradients (a learned H)."""
    system = autograd_system(compiled_pendulum().hamiltonian, separable=True)
    for name in ("leapfrog", "yoshida4", "implicit_midpoint"):
        M = step_jacobian(make_integrator(name), system, Z_PENDULUM, 0.2)
        assert symplectic_defect(M) < 1e-12


@pytest.mark.parametrize("name", ["leapfrog", "yoshida4", "implicit_midpoint"])
def test_time_reversible(name):
    system = as_system(compiled_kepler())
    integ = make_integrator(name)
    gen = torch.Generator().manual_seed(5)
    q0 = Z_KEPLER[:4][None] + 0.05 * torch.randn(8, 4, generator=gen, dtype=F64)
    p0 = Z_KEPLER[4:][None] + 0.05 * torch.randn(8, 4, generator=gen, dtype=F64)
    q, p = q0, p0
    for _ in range(200):
        q, p = integ.step(system, q, p, 0.01)
    p = -p
    for _ in range(200):
        q, p = integ.step(system, q, p, 0.01)
    assert torch.allclose(q, q0, atol=1e-9) and torch.allclose(-p, p0, atol=1e-9)


def test_order_of_accuracy():
    """Global error at t = 2 ~ dt^2 (leapfrog, midpoint), dt^4 (yoshida4, rk4), dt (euler)."""
    system = pendulum()
    q0, p0 = torch.tensor([[1.0]], dtype=F64), torch.tensor([[0.0]], dtype=F64)
    ref = evolve(system, q0, p0, 2.0 / 4096, 4096, "yoshida4", save_every=4096)
    expected = {"leapfrog": 2, "implicit_midpoint": 2, "yoshida4": 4, "rk4": 4, "euler": 1}
    for name, order in expected.items():
        errs = []
        for steps in (64, 128):
            tr = evolve(system, q0, p0, 2.0 / steps, steps, name, save_every=steps,
                        blowup_threshold=None)  # fmt: skip
            errs.append(max(float((tr.q[-1] - ref.q[-1]).abs().max()),
                            float((tr.p[-1] - ref.p[-1]).abs().max())))  # fmt: skip
        measured = np.log2(errs[0] / errs[1])
        assert abs(measured - order) < 0.3, (name, measured)


def test_leapfrog_energy_bounded_rk4_drifts_fast():
    """Pendulum, dt = 0.25, 4000 steps (t = 1000): leapfrog's energy error oscillates at O(dt^2)
    without trend; RK4's grows steadily (dissipative drift)."""
    system = pendulum()
    gen = torch.Generator().manual_seed(2)
    q0 = 2.0 * torch.rand(16, 1, generator=gen, dtype=F64) - 1.0
    p0 = torch.randn(16, 1, generator=gen, dtype=F64)
    lf = evolve(system, q0, p0, 0.25, 4000, "leapfrog", save_every=10)
    rk = evolve(system, q0, p0, 0.25, 4000, "rk4", save_every=10)
    e_lf = lf.energy_error.abs()
    e_rk = rk.energy_error.abs()
    half = e_lf.shape[0] // 2
    assert float(e_lf.max()) < 0.05  # O(dt^2)
    assert float(e_lf[half:].max()) < 1.5 * float(e_lf[:half].max())  # no secular growth
    # RK4: error at the end is about twice the error at the middle (linear drift)
    ratio = float(e_rk[-1].mean() / e_rk[half].mean())
    assert 1.6 < ratio < 2.4
    assert float(e_rk[-1].mean()) > float(e_lf[-1].mean())


@pytest.mark.slow
def test_leapfrog_energy_bounded_1e5_steps():
    """Pendulum, dt = 0.1, 10^5 steps (t = 10^4): leapfrog bounded, RK4 drifts past it."""
    system = pendulum()
    gen = torch.Generator().manual_seed(3)
    q0 = 2.0 * torch.rand(32, 1, generator=gen, dtype=F64) - 1.0
    p0 = torch.randn(32, 1, generator=gen, dtype=F64)
    lf = evolve(system, q0, p0, 0.1, 100_000, "leapfrog", save_every=100)
    rk = evolve(system, q0, p0, 0.1, 100_000, "rk4", save_every=100)
    e_lf, e_rk = lf.energy_error.abs(), rk.energy_error.abs()
    T = e_lf.shape[0]
    first, last = e_lf[: T // 10].max(), e_lf[-T // 10 :].max()
    assert float(e_lf.max()) < 0.01 and float(last) < 1.5 * float(first)
    ratio = float(e_rk[-1].mean() / e_rk[T // 2].mean())
    assert 1.6 < ratio < 2.4  # linear drift
    assert float(e_rk[-1].mean()) > float(e_lf[-T // 10 :].mean())


def test_blowup_is_reported_with_step_and_dt():
    system = pendulum()
    q0, p0 = torch.tensor([[3.0]], dtype=F64), torch.tensor([[1.0]], dtype=F64)
    with pytest.raises(EnergyBlowupError) as info:
        evolve(system, q0, p0, 1.5, 1000, "euler")
    assert info.value.dt == 1.5 and 1 <= info.value.step <= 1000
    assert "step size is too large" in str(info.value)


def test_evolve_outputs(tmp_path):
    system = compiled_kepler()
    q0, p0 = Z_KEPLER[:4].repeat(3, 1), Z_KEPLER[4:].repeat(3, 1)
    tr = evolve(system, q0, p0, 0.01, 100, "yoshida4", save_every=10, out_dir=tmp_path,
                prefix="kepler")  # fmt: skip
    assert tr.q.shape == (11, 3, 4) and tr.energy.shape == (11, 3) and tr.t.shape == (11,)
    data = np.load(tmp_path / "kepler.npz", allow_pickle=False)
    assert data["q"].shape == (11, 3, 4) and float(data["dt"]) == 0.01
    assert str(data["integrator"]) == "yoshida4"
    assert (tmp_path / "kepler_phase.png").stat().st_size > 0
    assert (tmp_path / "kepler_energy_error.png").stat().st_size > 0
    # momentum is conserved exactly (to rounding) by the pairwise force
    ptot = tr.p[..., :2] + tr.p[..., 2:]
    assert torch.allclose(ptot, ptot[0].expand_as(ptot), atol=1e-13)


def test_registry_options_are_validated():
    assert set(CATALOGUE.integrators.names()) >= {"leapfrog", "yoshida4", "implicit_midpoint",
                                                  "euler", "rk4"}  # fmt: skip
    with pytest.raises(pydantic.ValidationError):
        make_integrator("implicit_midpoint", tol=-1.0)
    with pytest.raises(pydantic.ValidationError):
        make_integrator("leapfrog", order=3)
    with pytest.raises(KeyError):
        make_integrator("magic")
    assert make_integrator("kepler" if False else "rk4").order == 4


def test_hand_written_kepler_matches_compiled_flow():
    a = evolve(compiled_kepler(), Z_KEPLER[:4][None], Z_KEPLER[4:][None], 0.01, 50, "leapfrog")
    b = evolve(kepler(), Z_KEPLER[:4][None], Z_KEPLER[4:][None], 0.01, 50, "leapfrog")
    assert torch.allclose(a.q, b.q, atol=1e-12) and torch.allclose(a.p, b.p, atol=1e-12)


def test_nbody_gravity_forces_match_autograd_and_symbolic():
    from physml_lang.runtime.dynamics.system import nbody_gravity

    gen = torch.Generator().manual_seed(8)
    N, dim = 5, 3
    m = torch.rand(N, generator=gen, dtype=F64) + 0.5
    system = nbody_gravity(m, dim=dim, G=1.3, softening=0.1, chunk=2)  # chunk < N on purpose
    q = torch.randn(4, N * dim, generator=gen, dtype=F64)
    p = torch.randn(4, N * dim, generator=gen, dtype=F64)
    auto = autograd_system(system.hamiltonian)
    assert torch.allclose(system.dH_dq(q, p), auto.dH_dq(q, p), atol=1e-10)
    assert torch.allclose(system.dH_dp(q, p), auto.dH_dp(q, p), atol=1e-12)
    # against the compiler's lowering of the pair sum written out symbolically
    xs = sympy.symbols(f"x0:{N * dim}")
    ps = sympy.symbols(f"p0:{N * dim}")
    H = sum(ps[dim * i + k] ** 2 / (2 * float(m[i])) for i in range(N) for k in range(dim))
    for i in range(N):
        for j in range(i + 1, N):
            r2 = sum((xs[dim * i + k] - xs[dim * j + k]) ** 2 for k in range(dim))
            H -= 1.3 * float(m[i]) * float(m[j]) / sympy.sqrt(r2 + sympy.Rational(1, 100))
    c = compile_hamiltonian(H, list(xs), list(ps))
    assert torch.allclose(c.hamiltonian(q, p), system.hamiltonian(q, p), atol=1e-10)
    assert torch.allclose(c.dH_dq(q, p), system.dH_dq(q, p), atol=1e-10)
    # Newton's third law: total force vanishes
    assert float(system.dH_dq(q, p).reshape(4, N, dim).sum(1).abs().max()) < 1e-12
