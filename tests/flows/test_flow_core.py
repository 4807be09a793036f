"""Coupling flows of real lattice fields (runtime/flows): exact log-densities, invertibility and
the declared symmetries, to float64 precision.

- log q by the change of variables equals log N(z) - log |det J| with J the brute-force Jacobian
  (torch.autograd.functional.jacobian) of the whole flow on a 4 x 4 field;
- forward then inverse is the identity, and both give the same log q;
- the flow commutes with the translations by (a, b), a + b even (those that keep the
  checkerboard), and not with a unit shift; respecting spin_flip it is odd, f(-z) = -f(z),
  and log q(-phi) = log q(phi) (1e-12);
- the rational-quadratic spline: monotone, identity outside [-B, B], exact inverse, and
  ``reflect`` gives x -> -g(-x).
"""

from __future__ import annotations

import math

import pytest
import torch

from physml_lang.runtime.flows.coupling import CouplingFlow, checkerboard
from physml_lang.runtime.flows.splines import reflect, rq_spline

F64 = torch.float64


def _flow(kind: str, odd: bool, shape=(4, 4), layers: int = 4, seed: int = 0,
          noise: float = 0.3) -> CouplingFlow:  # fmt: skip
    """A flow with perturbed (far from identity) parameters."""
    g = torch.Generator().manual_seed(seed)
    f = CouplingFlow(shape, layers, kind, width=4, depth=2, kernel=3, bins=6,
                     bound=3.0 if kind == "spline" else 0.0, odd=odd, generator=g)  # fmt: skip
    with torch.no_grad():
        for p in f.parameters():
            p.add_(noise * torch.randn(p.shape, generator=g, dtype=F64))
    return f


def _z(shape=(4, 4), n: int = 5, seed: int = 1) -> torch.Tensor:
    return torch.randn(n, *shape, generator=torch.Generator().manual_seed(seed), dtype=F64)


CASES = [(k, o) for k in ("affine", "spline") for o in (False, True)]


@pytest.mark.parametrize("kind,odd", CASES)
def test_log_q_equals_brute_force_jacobian(kind, odd):
    f, z = _flow(kind, odd), _z(n=3)
    with torch.no_grad():
        _, logq = f(z)
    for c in range(3):
        J = torch.autograd.functional.jacobian(
            lambda v: f(v.reshape(1, 4, 4))[0].reshape(-1), z[c].reshape(-1))  # fmt: skip
        brute = f.prior_log_prob(z[c:c + 1])[0] - torch.linalg.slogdet(J)[1]
        assert abs(float(brute - logq[c].detach())) < 1e-9 * (1 + abs(float(brute)))


@pytest.mark.parametrize("kind,odd", CASES)
def test_flow_is_invertible(kind, odd):
    """(Splines with derivatives near their floor 1e-3 make the inverse ill-conditioned, error
    ~ eps / g'; moderate parameters keep it at float64 precision.)"""
    f, z = _flow(kind, odd, noise=0.1), _z()
    with torch.no_grad():
        phi, logq = f(z)
        back, logq_inv = f.inverse(phi)
    assert float((back - z).abs().max()) < 1e-9
    assert float((logq - logq_inv).abs().max()) < 1e-9


@pytest.mark.parametrize("kind,odd", CASES)
def test_flow_commutes_with_even_translations(kind, odd):
    f, z = _flow(kind, odd, shape=(4, 6)), _z((4, 6))
    f.requires_grad_(False)
    phi, logq = f(z)
    for shift in ((1, 1), (2, 0), (0, 2), (3, 1), (1, 5), (2, 4)):
        ps, lqs = f(torch.roll(z, shift, (1, 2)))
        assert float((ps - torch.roll(phi, shift, (1, 2))).abs().max()) < 1e-12
        assert float((lqs - logq).abs().max()) < 1e-12
    ps, _ = f(torch.roll(z, (1, 0), (1, 2)))  # an odd shift swaps the checkerboard
    assert float((ps - torch.roll(phi, (1, 0), (1, 2))).abs().max()) > 1e-3


@pytest.mark.parametrize("kind", ["affine", "spline"])
def test_odd_flow_commutes_with_spin_flip(kind):
    f, z = _flow(kind, True), _z()
    f.requires_grad_(False)
    phi, logq = f(z)
    pm, lqm = f(-z)
    assert float((pm + phi).abs().max()) < 1e-12
    assert float((lqm - logq).abs().max()) < 1e-12
    g = _flow(kind, False).requires_grad_(False)  # without spin_flip it is not odd
    assert float((g(-z)[0] + g(z)[0]).abs().max()) > 1e-3


@pytest.mark.parametrize("shape", [(6,), (4, 2, 2)])
def test_flows_of_1d_and_3d_lattices(shape):
    f, z = _flow("affine", True, shape=shape), _z(shape)
    with torch.no_grad():
        phi, logq = f(z)
    n = z[0].numel()
    J = torch.autograd.functional.jacobian(lambda v: f(v.reshape(1, *shape))[0].reshape(-1),
                                           z[0].reshape(-1))  # fmt: skip
    brute = float(f.prior_log_prob(z[:1])[0] - torch.linalg.slogdet(J)[1])
    assert abs(brute - float(logq[0].detach())) < 1e-9 * (1 + abs(brute))
    assert J.shape == (n, n)
    shift = (1, 1) + (0,) * (len(shape) - 2) if len(shape) > 1 else (2,)
    dims = tuple(range(1, len(shape) + 1))
    with torch.no_grad():
        moved = f(torch.roll(z, shift, dims))[0]
    assert float((moved - torch.roll(phi, shift, dims)).abs().max()) < 1e-12


def test_odd_lattice_is_refused():
    with pytest.raises(ValueError, match="even"):
        CouplingFlow((5, 4))
    assert checkerboard((2, 2), 0, F64).tolist() == [[1.0, 0.0], [0.0, 1.0]]


def _spline_params(n: int, k: int = 7, seed: int = 2):
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(n, m, generator=g, dtype=F64) for m in (k, k, k - 1))


def test_rq_spline_monotone_invertible_identity_tails():
    n = 4000
    w, h, d = _spline_params(n)
    x = torch.linspace(-4, 4, n, dtype=F64)
    y, ld = rq_spline(x, w, h, d, 3.0)
    back, ld_inv = rq_spline(y, w, h, d, 3.0, inverse=True)
    assert float((back - x).abs().max()) < 1e-10 and float((ld + ld_inv).abs().max()) < 1e-9
    out = x.abs() >= 3
    assert torch.equal(y[out], x[out]) and torch.equal(ld[out], torch.zeros_like(ld[out]))
    # the derivative from autograd equals exp(log-det); one parameter set, increasing in x
    w1, h1, d1 = (p[:1].expand(n, -1) for p in (w, h, d))
    xs = x.clone().requires_grad_()
    ys, lds = rq_spline(xs, w1, h1, d1, 3.0)
    (grad,) = torch.autograd.grad(ys.sum(), xs)
    assert torch.allclose(grad, lds.exp(), rtol=1e-9, atol=1e-12)
    assert bool((ys[1:] > ys[:-1]).all())


def test_reflected_spline_is_the_mirror_image():
    n = 500
    w, h, d = _spline_params(n)
    x = torch.linspace(-3.5, 3.5, n, dtype=F64)
    y, ld = rq_spline(x, w, h, d, 3.0)
    ym, ldm = rq_spline(-x, *reflect(w, h, d), 3.0)
    assert float((ym + y).abs().max()) < 1e-12 and float((ldm - ld).abs().max()) < 1e-12


def test_sign_mixture_is_normalised_even_and_exact():
    """q(phi) = (q0(phi) + q0(-phi)) / 2 of an unconstrained flow q0 on a 2-site chain: it
    integrates to 1 (a Riemann sum on a grid, to 1e-4), is even, and ``sign_mixture`` returns the flipped
    samples with exactly that log q."""
    from physml_lang.runtime.flows.task import fold_sign, sign_mixture

    g = torch.Generator().manual_seed(0)
    f = CouplingFlow((2,), 4, "affine", width=4, depth=2, kernel=3, odd=False, generator=g)
    with torch.no_grad():
        for p in f.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=g, dtype=F64))
        t = torch.linspace(-9, 9, 361, dtype=F64)
        grid = torch.stack(torch.meshgrid(t, t, indexing="ij"), -1).reshape(-1, 2)
        mix = torch.logaddexp(f.log_prob(grid), f.log_prob(-grid)) - torch.log(
            torch.tensor(2.0, dtype=F64))  # fmt: skip
        h = float(t[1] - t[0])
        assert abs(float(mix.exp().sum()) * h * h - 1) < 1e-4
        z = torch.randn(6, 2, generator=g, dtype=F64)
        phi0, lq0 = f(z)
        u = torch.tensor([0.1, 0.9, 0.4, 0.6, 0.2, 0.7], dtype=F64)
        phi, lq = sign_mixture(f, phi0, lq0, u)
        sign = torch.where(u < 0.5, -1.0, 1.0).to(F64)[:, None]
        assert torch.equal(phi, sign * phi0)
        direct = torch.logaddexp(f.log_prob(phi), f.log_prob(-phi)) - math.log(2)
        assert torch.allclose(lq, direct, atol=1e-10, rtol=0)
        assert bool((fold_sign(phi).mean(-1) >= 0).all())


def test_a_flow_on_a_small_torus_is_the_same_flow_tiled():
    """``transfer``: the weights of a flow on 4 x 4 applied at 8 x 8 map the tiled prior draw
    to the tiled field, with log q multiplied by the number of tiles (4) - the conditioners are
    periodic CNNs; ``tiled``/``tiled_grad`` give the small torus's action and its gradient."""
    from physml_lang.runtime.flows.task import tiled, tiled_grad, transfer

    opts = type("Opts", (), dict(layers=4, kind="spline", width=4, depth=2, kernel=3, bins=6,
                                 bound=3.0))  # fmt: skip
    for odd in (False, True):
        small = _flow("spline", odd)
        big = transfer(small, (8, 8), odd, opts, dtype=F64)
        z = _z()
        with torch.no_grad():
            phi, lq = small(z)
            phi_big, lq_big = big(z.repeat(1, 2, 2))
        assert torch.allclose(phi_big, phi.repeat(1, 2, 2), atol=1e-12, rtol=0)
        assert torch.allclose(lq_big, 4 * lq, atol=1e-9, rtol=0)

    def action(x):  # nearest-neighbour phi^4 on any periodic square lattice
        nb = sum((torch.roll(x, 1, d) - x) ** 2 for d in (1, 2))
        return (nb + x**2 + 0.3 * x**4).sum((1, 2))

    def grad(x):
        return torch.func.vmap(torch.func.grad(lambda y: action(y[None])[0]))(x)

    x = _z()
    assert torch.allclose(tiled(action, (8, 8))(x), action(x), atol=1e-12, rtol=0)
    assert torch.allclose(tiled_grad(grad, (8, 8))(x), grad(x), atol=1e-12, rtol=0)
