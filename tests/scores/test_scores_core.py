"""Score models and flow matching, the numerics: equivariance of the nets, the exact density of
the discrete ODE map (against brute-force Jacobians and a closed form), and denoising score
matching / flow matching of a Gaussian free field whose score and density are known exactly.

Free field on a periodic chain of 4 sites, S = sum_<ij> (phi_j - phi_i)^2 + m2 sum phi^2 = x^T K x
with K = D + m2 I (D the graph Laplacian counted once per bond): p = N(0, C), C = (2 K)^-1; the
noised density is N(0, C + sigma^2 I), its exact eps(x, sigma) = sigma (C + sigma^2)^-1 x.
"""

from __future__ import annotations

import math

import pytest
import torch

from physml_lang.runtime.random import RandomStreams
from physml_lang.runtime.scores.diffusion import (
    dsm_loss,
    flow_matching_ode,
    fm_loss,
    ode_sample,
    ode_trace_logdet,
    probability_flow,
    rk4_step,
    step_jacobians,
)
from physml_lang.runtime.scores.nets import ScoreNet, VelocityNet

F64 = torch.float64


def _log_normal(x: torch.Tensor, std: float) -> torch.Tensor:
    """log N(x; 0, std^2) summed over sites (float64 throughout), (B, ...) -> (B,)."""
    x = x.reshape(x.shape[0], -1)
    return (-0.5 * (x / std) ** 2 - math.log(std) - 0.5 * math.log(2 * math.pi)).sum(-1)


def _randomised(net: torch.nn.Module, seed: int, scale: float = 0.3) -> torch.nn.Module:
    """Give the (zero-initialised) output layer random weights: a nonlinear net."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.F.out.parameters():
            p.copy_(scale * torch.randn(p.shape, generator=g, dtype=F64).to(p.dtype))
    return net


@pytest.mark.parametrize("cls", [ScoreNet, VelocityNet])
@pytest.mark.parametrize("shape", [(6,), (4, 5)])
def test_nets_are_translation_equivariant_and_odd_when_asked(cls, shape):
    st = RandomStreams(1)
    dim = len(shape)
    for odd in (False, True):
        net = _randomised(cls(dim, 6, 2, 3, 0.7, odd, dtype=F64,
                              generator=st.host_generator()), 2)  # fmt: skip
        x = st.normal((3, *shape), F64)
        c = torch.tensor([0.3, 0.5, 0.9], dtype=F64)
        y = net(x, c)
        for shift in range(1, shape[-1]):
            moved = net(x.roll(shift, -1), c)
            assert torch.allclose(moved, y.roll(shift, -1), atol=1e-12)
        if dim == 2:
            assert torch.allclose(net(x.roll(1, 1), c), y.roll(1, 1), atol=1e-12)
        if odd:
            assert torch.allclose(net(-x, c), -y, atol=1e-12)
        else:
            assert not torch.allclose(net(-x, c), -y, atol=1e-6)


def test_step_jacobians_equal_brute_force_autograd():
    st = RandomStreams(3)
    net = _randomised(VelocityNet(2, 6, 2, 3, 0.8, False, dtype=F64,
                                  generator=st.host_generator()), 4, 0.5)  # fmt: skip
    x = st.normal((3, 3, 3), F64)
    J = step_jacobians(net, x, 0.25, 0.2)
    for b in range(3):
        def one(y):
            return rk4_step(net, y.reshape(1, 3, 3), 0.25, 0.2).reshape(-1)

        ref = torch.autograd.functional.jacobian(one, x[b].reshape(-1))
        assert torch.allclose(J[b], ref, atol=1e-12)


def test_log_q_of_the_discrete_map_and_its_continuous_limit():
    """log q = log p0(z) - sum_k log det J_k equals brute force, and the RK4-integrated exact
    divergence (the continuous-time log-likelihood) converges to it as the steps grow."""
    st = RandomStreams(5)
    net = _randomised(ScoreNet(1, 6, 2, 3, 0.8, False, dtype=F64,
                               generator=st.host_generator()), 6, 0.5)  # fmt: skip
    z = st.normal((4, 5), F64) * math.sqrt(2.0**2 + 0.8**2)
    ode = probability_flow(net, 2.0, 0.05, 6)
    x, log_q = ode_sample(ode, z)
    # brute force: the composed map's Jacobian, one sample at a time
    def whole(y):
        v = y.reshape(1, 5)
        for c in ode.times():
            v = rk4_step(ode.drift, v, c, ode.h)
        return v.reshape(-1)

    for b in range(4):
        J = torch.autograd.functional.jacobian(whole, z[b])
        log_p0 = _log_normal(z[b:b + 1], ode.prior_std)[0]
        assert float(log_q[b]) == pytest.approx(float(log_p0 - torch.linalg.slogdet(J)[1]),
                                                abs=1e-10)  # fmt: skip
        assert torch.allclose(x[b], whole(z[b]), atol=1e-12)
    logdet = {}
    for steps in (6, 48):
        fine = probability_flow(net, 2.0, 0.05, steps)
        _, lq = ode_sample(fine, z)
        _, integral = ode_trace_logdet(fine, z)
        log_p0 = _log_normal(z, fine.prior_std)
        logdet[steps] = (log_p0 - lq, integral)
    # discrete log det vs integrated trace: the gap closes with the step (RK4 local errors)
    gap6 = (logdet[6][0] - logdet[6][1]).abs().max()
    gap48 = (logdet[48][0] - logdet[48][1]).abs().max()
    # measured: 0.143 at 6 steps, 1.0e-4 at 48 (fourth order: 8^4 = 4096 would be 3.5e-5)
    assert gap48 < 3e-4 and gap48 < gap6 / 300, (gap6, gap48)


def test_log_q_is_the_exact_density_of_a_linear_map():
    """With the residual zero (an untrained net), the flow-matching ODE is linear, x = c z with
    c the RK4 product: q must be the Gaussian N(0, c^2) exactly, normalisation included."""
    net = VelocityNet(2, 4, 1, 3, 0.6, False, dtype=F64)
    st = RandomStreams(7)
    z = st.normal((5, 3, 4), F64)
    x, log_q = ode_sample(flow_matching_ode(net, 5), z)
    c = float((x / z).mean())
    assert torch.allclose(x, c * z, atol=1e-12)
    assert c == pytest.approx(0.6, rel=1e-3)  # the flow ends at the data's scale sd
    exact = _log_normal(x, abs(c))
    assert torch.allclose(log_q, exact, atol=1e-10)


# ---------------------------------------------------------------- the Gaussian free field


def _free_field(L: int = 4, m2: float = 0.5) -> torch.Tensor:
    """The covariance C of exp(-S), S = sum_<ij> (phi_j - phi_i)^2 + m2 sum phi^2 on a periodic
    chain of L sites (each bond once)."""
    K = torch.eye(L, dtype=F64) * m2
    for i in range(L):
        j = (i + 1) % L
        K[i, i] += 1
        K[j, j] += 1
        K[i, j] -= 1
        K[j, i] -= 1
    return torch.linalg.inv(2 * K)


@pytest.fixture(scope="module")
def trained_gaussian():
    """A score_net and a velocity_net trained on exact samples of the free field (L = 4)."""
    torch.manual_seed(0)
    C = _free_field()
    chol = torch.linalg.cholesky(C)
    st = RandomStreams(11)
    data = st.normal((20000, 4), F64) @ chol.T
    sd = float(data.pow(2).mean().sqrt())
    nets = {}
    for name, cls in (("score", ScoreNet), ("flow", VelocityNet)):
        net = cls(1, 8, 2, 3, sd, True, dtype=F64, generator=st.fork(1).host_generator())
        opt = torch.optim.Adam(net.parameters(), lr=3e-3)
        ts = st.fork(2)
        steps = 400
        for k in range(steps):
            for g in opt.param_groups:
                g["lr"] = 3e-3 * 0.5 * (1 + math.cos(math.pi * k / steps))
            batch = data[ts.integers(0, data.shape[0], (128,))]
            loss = dsm_loss(net, batch, 2.0, 0.02, ts) if name == "score" else fm_loss(net, batch, ts)
            opt.zero_grad()
            loss.backward()
            opt.step()
        nets[name] = net
    return C, nets


def test_dsm_learns_the_exact_score_of_the_free_field(trained_gaussian):
    C, nets = trained_gaussian
    net = nets["score"]
    st = RandomStreams(13)
    for sigma in (0.05, 0.3, 1.0):
        cov = C + sigma**2 * torch.eye(4, dtype=F64)
        x = st.normal((4000, 4), F64) @ torch.linalg.cholesky(cov).T
        exact = -x @ torch.linalg.inv(cov)  # grad log N(0, C + sigma^2)
        s = torch.full((4000,), sigma, dtype=F64)
        with torch.no_grad():
            learned = net.score(x, s)
            untrained = -x / (sigma**2 + float(net.sd) ** 2)  # the net's start: isotropic
        err = ((learned - exact) ** 2).sum(-1).mean() / (exact**2).sum(-1).mean()
        start = ((untrained - exact) ** 2).sum(-1).mean() / (exact**2).sum(-1).mean()
        # relative mean-square error of the score: a few per cent (measured 0.040, 0.0052, 0.0022
        # at sigma = 0.05, 0.3, 1), far below the isotropic start (0.47, 0.33, 0.053)
        print(f"sigma = {sigma}: relative score error {float(err):.4f} (start {float(start):.3f})")
        assert err < 0.08 and err < start / 5, (sigma, float(err), float(start))


@pytest.mark.parametrize("name", ["score", "flow"])
def test_ode_log_likelihood_matches_the_exact_gaussian_density(trained_gaussian, name):
    """log q of the ODE samples (exact for the discrete map) against the exact log density of
    the free field (smeared by sigma_min^2 for the score model): log w = log p - log q has a
    mean (-KL(q|p)) of a few 1e-3 and a spread of about 0.1, and the ESS is near 1."""
    C, nets = trained_gaussian
    net = nets[name]
    ode = probability_flow(net, 2.0, 0.02, 8) if name == "score" else flow_matching_ode(net, 8)
    st = RandomStreams(17)
    z = ode.prior_std * st.normal((1000, 4), F64)
    x, log_q = ode_sample(ode, z)
    cov = C + (0.02**2 * torch.eye(4, dtype=F64) if name == "score" else 0)
    log_p = torch.distributions.MultivariateNormal(torch.zeros(4, dtype=F64), cov).log_prob(x)
    log_w = log_p - log_q
    assert abs(float(log_w.mean())) < 0.03 and float(log_w.std()) < 0.2, (
        float(log_w.mean()), float(log_w.std()))
    w = torch.exp(log_w - log_w.max())
    ess = float(w.sum() ** 2 / (w * w).sum()) / len(w)
    print(f"{name}: mean log w {float(log_w.mean()):.4f}, std {float(log_w.std()):.4f}, ESS {ess:.4f}")
    assert ess > 0.95, ess


def test_spectral_prior_is_the_exact_gaussian_field():
    """ODE.prior with a power spectrum maps white noise linearly, w -> A w; ``log_prior`` is
    the density of N(0, A A^T) (a circulant covariance: translation-invariant) on a 4 x 2
    lattice, and the probability-flow ODE's spectral prior has variance sigma_max^2 + P(k)."""
    from physml_lang.runtime.scores.diffusion import ODE
    from physml_lang.runtime.scores.nets import power_spectrum

    g = torch.Generator().manual_seed(0)
    data = torch.randn(50, 4, 2, generator=g, dtype=F64) + torch.randn(50, 1, 1, generator=g,
                                                                        dtype=F64)  # fmt: skip
    var = 0.3 + power_spectrum(data)
    ode = ODE(lambda x, c: x, 0.0, 1.0, 1, 1.0, var)
    A = ode.prior(torch.eye(8, dtype=F64).reshape(8, 4, 2)).reshape(8, 8).T
    z = ode.prior(torch.randn(5, 4, 2, generator=g, dtype=F64))
    mvn = torch.distributions.MultivariateNormal(torch.zeros(8, dtype=F64), A @ A.T)
    assert torch.allclose(ode.log_prior(z), mvn.log_prob(z.reshape(5, 8)), atol=1e-10, rtol=0)
    assert torch.allclose(A, A.T, atol=1e-12)  # circulant and symmetric: real modes
