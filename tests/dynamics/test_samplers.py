"""HMC / MALA exactness, ULA's known bias, acceptance -> 1, lattice identities."""

import numpy as np
import pydantic
import pytest
import sympy
import torch
from scipy import integrate

from physml_lang.compiler.lower.hamiltonian import compile_hamiltonian
from physml_lang.runtime.dynamics.samplers import (
    Phi4Action,
    XYAction,
    autograd_grad,
    hmc,
    langevin,
    make_sampler,
)
from physml_lang.runtime.random import RandomStreams
from physml_lang.runtime.statistics import binning_analysis

F64 = torch.float64
A = torch.tensor([[2.0, 0.6, 0.2], [0.6, 1.5, 0.3], [0.2, 0.3, 1.0]], dtype=F64)
SIGMA = torch.linalg.inv(A)


def gauss_S(x):
    return 0.5 * torch.einsum("ci,ij,cj->c", x, A, x)


def gauss_grad(x):
    return x @ A


def gauss_measure(x):
    return {"x0": x[:, 0], "x1": x[:, 1], "x0x0": x[:, 0] ** 2, "x1x1": x[:, 1] ** 2,
            "x2x2": x[:, 2] ** 2, "x0x1": x[:, 0] * x[:, 1], "x1x2": x[:, 1] * x[:, 2]}  # fmt: skip


GAUSS_EXACT = {"x0": 0.0, "x1": 0.0, "x0x0": SIGMA[0, 0], "x1x1": SIGMA[1, 1],
               "x2x2": SIGMA[2, 2], "x0x1": SIGMA[0, 1], "x1x2": SIGMA[1, 2]}  # fmt: skip


def check_moments(result, exact, n_sigma=4.0):
    for name, value in exact.items():
        est = result.estimate(name)
        assert abs(est.mean - float(value)) < n_sigma * est.stderr, (name, est, float(value))
        assert est.stderr < 0.05  # the test has power


def test_hmc_gaussian_moments():
    streams = RandomStreams(11)
    x0 = torch.zeros(64, 3, dtype=F64)
    res = hmc(gauss_S, gauss_grad, x0, streams, n_samples=600, step_size=0.25, n_leapfrog=6,
              burn_in=50, jitter=0.2, measure=gauss_measure)  # fmt: skip
    assert 0.8 < res.acceptance < 1.0
    check_moments(res, GAUSS_EXACT)
    assert abs(res.info["mean_exp_minus_dH"] - 1.0) < 0.05  # Creutz identity <exp(-dH)> = 1


def anharmonic_exact():
    """S(x) = x^4 + x / 2: moments by quadrature."""
    w = lambda x: np.exp(-(x**4) - 0.5 * x)  # noqa: E731
    Z = integrate.quad(w, -np.inf, np.inf)[0]
    return {f"x{k}": integrate.quad(lambda x, k=k: x**k * w(x), -np.inf, np.inf)[0] / Z
            for k in (1, 2, 3, 4)}  # fmt: skip


def anharmonic_action():
    """The action via the compiler's lowering (H = S(q) + p^2/2, read at p = 0)."""
    q, p = sympy.symbols("q p")
    c = compile_hamiltonian(q**4 + q / 2 + p**2 / 2, [q], [p])
    return (lambda x: c.hamiltonian(x, torch.zeros_like(x))), (
        lambda x: c.dH_dq(x, torch.zeros_like(x)))  # fmt: skip


def anharmonic_measure(x):
    return {f"x{k}": x[:, 0] ** k for k in (1, 2, 3, 4)}


def test_hmc_anharmonic_moments_against_quadrature():
    S, grad = anharmonic_action()
    streams = RandomStreams(12)
    x0 = torch.zeros(64, 1, dtype=F64)
    res = hmc(S, grad, x0, streams, n_samples=600, step_size=0.2, n_leapfrog=5, burn_in=50,
              jitter=0.3, measure=anharmonic_measure)  # fmt: skip
    check_moments(res, anharmonic_exact())


def test_mala_anharmonic_moments_against_quadrature():
    S, _ = anharmonic_action()
    streams = RandomStreams(13)
    x0 = torch.zeros(64, 1, dtype=F64)
    res = langevin(S, autograd_grad(S), x0, streams, n_samples=1500, step_size=0.1, burn_in=100,
                   thin=2, metropolis=True, measure=anharmonic_measure)  # fmt: skip
    assert 0.5 < res.acceptance < 1.0
    check_moments(res, anharmonic_exact())


def test_ula_has_its_known_bias():
    """For S = x^2/2, ULA's stationary variance is 1 / (1 - h/2), not 1; MALA removes it."""
    streams = RandomStreams(14)
    h = 0.4
    S = lambda x: 0.5 * (x * x).sum(-1)  # noqa: E731
    g = lambda x: x  # noqa: E731
    meas = lambda x: {"x2": x[:, 0] ** 2}  # noqa: E731
    x0 = torch.zeros(128, 1, dtype=F64)
    ula = langevin(S, g, x0, streams, n_samples=1000, step_size=h, burn_in=50, measure=meas)
    est = ula.estimate("x2")
    assert abs(est.mean - 1 / (1 - h / 2)) < 4 * est.stderr
    assert abs(est.mean - 1.0) > 4 * est.stderr
    mala = langevin(S, g, x0, streams, n_samples=1000, step_size=h, burn_in=50, metropolis=True,
                    measure=meas)  # fmt: skip
    est = mala.estimate("x2")
    assert abs(est.mean - 1.0) < 4 * est.stderr


def test_hmc_acceptance_tends_to_one():
    """Fixed trajectory length 1 on a 4x4 phi^4 lattice; leapfrog: 1 - acc = O(eps^2)."""
    act = Phi4Action(kappa=0.2, lam=0.5)
    rates = []
    for eps in (0.4, 0.2, 0.1, 0.05):
        streams = RandomStreams(15)
        x0 = 0.3 * streams.normal((32, 4, 4), F64)
        res = hmc(act, act.grad, x0, streams, n_samples=40, step_size=eps,
                  n_leapfrog=int(round(1 / eps)), burn_in=10)  # fmt: skip
        rates.append(res.acceptance)
    assert all(a < b for a, b in zip(rates, rates[1:], strict=False)), rates
    assert rates[-1] > 0.98
    assert (1 - rates[-1]) < 0.5 * (1 - rates[-2])


def test_phi4_schwinger_dyson_identity():
    """<phi . grad S> = V (integration by parts) on a 6x6 lattice; HMC, MALA agree on <phi^2>."""
    act = Phi4Action(kappa=0.18, lam=1.0)
    V = 36

    def meas(phi):
        return {"sd": (phi * act.grad(phi)).sum((1, 2)) / V, "phi2": (phi * phi).mean((1, 2))}

    streams = RandomStreams(16)
    x0 = streams.normal((32, 6, 6), F64)
    res = make_sampler("hmc", chains=32, sweeps=300, burn_in=30, step_size=0.15,
                       n_steps=7, jitter=0.2).run(act, act.grad, x0, streams, meas)  # fmt: skip
    est = res.estimate("sd")
    assert abs(est.mean - 1.0) < 4 * est.stderr and est.stderr < 0.02
    mala = make_sampler("mala", chains=32, sweeps=2400, burn_in=300, thin=3,
                        step_size=0.02).run(act, act.grad, x0, streams, meas)  # fmt: skip
    a, b = res.estimate("phi2"), mala.estimate("phi2")
    assert abs(a.mean - b.mean) < 4 * np.hypot(a.stderr, b.stderr)


def test_xy_identity_and_autograd_gradient():
    """XY model: <sum_x d2S/dtheta_x^2> = <|grad S|^2>; symbolic-style grad = autograd grad."""
    act = XYAction(beta=0.9)
    streams = RandomStreams(17)
    x0 = 2 * np.pi * streams.uniform((32, 6, 6), F64)
    assert torch.allclose(act.grad(x0), autograd_grad(act)(x0), atol=1e-12)

    def meas(theta):
        g = act.grad(theta)
        return {"diff": (act.laplacian(theta) - (g * g).sum((1, 2))) / 36}

    res = hmc(act, act.grad, x0, streams, n_samples=300, step_size=0.2, n_leapfrog=5, burn_in=30,
              jitter=0.2, measure=meas)  # fmt: skip
    est = res.estimate("diff")
    assert abs(est.mean) < 4 * est.stderr and est.stderr < 0.05


def test_sampler_registry_and_samples_shape():
    streams = RandomStreams(18)
    s = make_sampler("hmc", chains=4, sweeps=5, burn_in=0, n_steps=2)
    res = s.run(gauss_S, gauss_grad, torch.zeros(4, 3, dtype=F64), streams)
    assert res.samples.shape == (5, 4, 3) and res.acceptance_per_chain.shape == (4,)
    with pytest.raises(pydantic.ValidationError):
        make_sampler("hmc", step_size=-1.0)
    with pytest.raises(pydantic.ValidationError):
        make_sampler("mala", n_leapfrog=3)
    with pytest.raises(ValueError):
        s.run(gauss_S, gauss_grad, torch.zeros(5, 3, dtype=F64), streams)
    # same seed, same numbers
    r1 = s.run(gauss_S, gauss_grad, torch.zeros(4, 3, dtype=F64), RandomStreams(1))
    r2 = s.run(gauss_S, gauss_grad, torch.zeros(4, 3, dtype=F64), RandomStreams(1))
    assert torch.equal(r1.samples, r2.samples)


@pytest.mark.parametrize("name", ["hmc", "mala"])
def test_a_chain_draws_the_same_numbers_in_any_batch(name):
    """Chain c of a batch of 6 follows the same trajectory as chain c of the first 3 or of
    the streams that start at chain 3: its momenta, noise and accept draws are its own."""
    s = make_sampler(name, chains=6, sweeps=8, burn_in=2, step_size=0.2)
    x0 = torch.linspace(-1, 1, 18, dtype=F64).reshape(6, 3)
    full = s.run(gauss_S, gauss_grad, x0, RandomStreams(5)).samples
    half = make_sampler(name, chains=3, sweeps=8, burn_in=2, step_size=0.2)
    first = half.run(gauss_S, gauss_grad, x0[:3], RandomStreams(5)).samples
    last = half.run(gauss_S, gauss_grad, x0[3:], RandomStreams(5).streams(3)).samples
    torch.testing.assert_close(torch.cat([first, last], 1), full, rtol=0, atol=1e-12)


def test_binning_used():
    # keep an explicit reference to the shared statistics (no second implementation here)
    assert binning_analysis(np.ones((32, 2))).mean == 1.0
