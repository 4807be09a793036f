"""The pure-torch core of variational autoregressive networks (runtime/generative), validated
against exact enumeration: MADE is normalised and autoregressive, samples exactly, the flip
symmetrisation is exact, VAN training on the periodic 3x3 Ising model at beta = 0.44 approaches
the exact free energy from above, and the unbiased estimates (NIS, reweighting, neural MCMC)
agree with the exact values within their error bars. Fixed seeds throughout."""

from __future__ import annotations

import math

import pytest
import torch

from physml_lang.runtime.generative.estimates import (
    importance_estimate,
    nmcmc,
    reweighted_mean,
)
from physml_lang.runtime.generative.made import MADE
from physml_lang.runtime.generative.symmetry import FlipSymmetrised, value_flip
from physml_lang.runtime.generative.van import VANStep, anneal_beta, van_step
from physml_lang.runtime.statistics import binning_analysis

from .small_ising import BETA, F64, N_ISING, Exact, all_configs, config_index, ising_energy


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def uniforms(g: torch.Generator, *shape: int) -> torch.Tensor:
    return torch.rand(*shape, generator=g, dtype=F64)


def boltzmann_samples(beta: float, m: int, g: torch.Generator) -> torch.Tensor:
    """m exact samples of the 3x3 Ising model at beta (indices into Exact.s)."""
    p = torch.softmax(-beta * Exact.e, 0)
    return torch.multinomial(p, m, replacement=True, generator=g)


# ------------------------------------------------------------------------------------ MADE
@pytest.mark.parametrize("q", [2, 3])
@pytest.mark.parametrize("depth", [0, 1, 2])
def test_made_is_normalised(q: int, depth: int) -> None:
    made = MADE(8, q, hidden=32, depth=depth, generator=gen(10 + q))
    with torch.no_grad():
        logp = made.log_prob(all_configs(8, q))
    assert logp.dtype == F64 and logp.shape == (q**8,)
    assert abs(float(logp.exp().sum()) - 1.0) < 1e-10
    assert float(logp.std()) > 0.1  # not trivially uniform


@pytest.mark.parametrize("q", [2, 3])
def test_made_is_autoregressive(q: int) -> None:
    n = 6
    g = gen(20)
    made = MADE(n, q, hidden=24, depth=2, generator=g)
    s = torch.randint(q, (64, n), generator=g)
    with torch.no_grad():
        logits = made.conditional_logits(s)
        assert logits.shape == (64, n, q)
        assert torch.equal(logits[:, 0], logits[:1, 0].expand(64, q))  # site 0: a bias only
        for j in range(n):
            t = s.clone()
            t[:, j] = (t[:, j] + 1 + torch.randint(q - 1, (64,), generator=g)) % q
            changed = made.conditional_logits(t)
            assert torch.equal(changed[:, : j + 1], logits[:, : j + 1])
            if j + 1 < n:  # and the later sites do see s_j
                assert not torch.allclose(changed[:, j + 1], logits[:, j + 1])


def test_made_construction_is_deterministic() -> None:
    a, b = MADE(7, 3, 16, 2, generator=gen(5)), MADE(7, 3, 16, 2, generator=gen(5))
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)
    assert a.output.weight.device.type == "cpu" and a.output.weight.dtype == F64


def _assert_frequencies(s: torch.Tensor, log_p: torch.Tensor, q: int) -> None:
    """Per-state 5-sigma check of the counts of samples s against probabilities exp(log_p)."""
    m = s.shape[0]
    counts = torch.bincount(config_index(s, q), minlength=log_p.numel()).to(F64)
    p = log_p.exp()
    sigma = (m * p * (1 - p)).sqrt()
    assert bool(((counts - m * p).abs() <= 5 * sigma + 1e-9).all())
    chi2 = float(((counts - m * p) ** 2 / (m * p)).sum())
    dof = log_p.numel() - 1
    assert chi2 < dof + 5 * math.sqrt(2 * dof)


@pytest.mark.parametrize("q, n", [(2, 4), (3, 3)])
def test_made_sample_matches_log_prob(q: int, n: int) -> None:
    g = gen(30)
    made = MADE(n, q, hidden=16, depth=2, generator=g)
    with torch.no_grad():
        made.output.weight.mul_(3.0)  # a markedly non-uniform q
        log_p = made.log_prob(all_configs(n, q))
        s = made.sample(uniforms(g, 200_000, n))
    assert s.dtype == torch.int64 and s.shape == (200_000, n)
    assert int(s.min()) >= 0 and int(s.max()) <= q - 1
    _assert_frequencies(s, log_p, q)
    # float32 uniforms, and u at the edges of [0, 1), give valid values
    edge = torch.tensor([[0.0] * n, [1.0 - 2.0**-53] * n], dtype=F64)
    assert int(made.sample(edge.float()).max()) <= q - 1


# ---------------------------------------------------------------------------- symmetrising
@pytest.mark.parametrize("q", [2, 3])
def test_flip_symmetrised_is_exactly_symmetric_and_normalised(q: int) -> None:
    net = FlipSymmetrised(MADE(8, q, 16, 2, generator=gen(40 + q)), value_flip(q))
    s = all_configs(8, q)
    with torch.no_grad():
        logp = net.log_prob(s)
        assert torch.equal(logp, net.log_prob((q - 1) - s))
        assert abs(float(logp.exp().sum()) - 1.0) < 1e-10
        base = net.base.log_prob(s)
    assert not torch.equal(base, net.base.log_prob((q - 1) - s))  # the base is not symmetric


def test_flip_symmetrised_sample_matches_log_prob() -> None:
    g = gen(50)
    net = FlipSymmetrised(MADE(4, 2, 16, 2, generator=g), value_flip(2))
    with torch.no_grad():
        net.base.output.weight.mul_(3.0)
        log_p = net.log_prob(all_configs(4, 2))
        s = net.sample(uniforms(g, 200_000, 4), uniforms(g, 200_000))
    _assert_frequencies(s, log_p, 2)


# ------------------------------------------------------------------------------------ VAN
def test_anneal_beta() -> None:
    assert anneal_beta(0.5, 0.0, 0) == 0.5
    assert anneal_beta(0.5, 0.9, 0) == pytest.approx(0.05)
    assert anneal_beta(0.5, 0.9, 9) == pytest.approx(0.5 * (1 - 0.9**10))
    with pytest.raises(ValueError):
        anneal_beta(0.5, 1.0, 0)


def test_van_step_reports_consistent_statistics() -> None:
    g = gen(60)
    net = FlipSymmetrised(MADE(N_ISING, 2, 16, 1, generator=g), value_flip(2))
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    before = [p.detach().clone() for p in net.parameters()]
    r = van_step(net, ising_energy, 0.3, uniforms(g, 200, N_ISING), opt, N_ISING,
                 u_flip=uniforms(g, 200))  # fmt: skip
    assert isinstance(r, VANStep) and r.beta == 0.3
    assert r.free_energy == pytest.approx(r.energy - r.entropy / 0.3, abs=1e-12)
    assert 0 < r.free_energy_err < 1 and 0 < r.entropy <= math.log(2) + 1e-12
    assert any(not torch.equal(a, b) for a, b in zip(before, net.parameters()))
    with pytest.raises(ValueError):
        van_step(net, ising_energy, 0.3, uniforms(g, 200, N_ISING), opt, N_ISING)


@pytest.fixture(scope="module")
def trained() -> FlipSymmetrised:
    """A symmetrised MADE trained on the 3x3 Ising model at BETA (~2 s)."""
    g = gen(1)
    net = FlipSymmetrised(MADE(N_ISING, 2, hidden=32, depth=2, generator=g), value_flip(2))
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for step in range(300):
        r = van_step(net, ising_energy, anneal_beta(BETA, 0.9, step), uniforms(g, 500, N_ISING),
                     opt, N_ISING, clip=1.0, u_flip=uniforms(g, 500))  # fmt: skip
    # the last steps' report: at (almost exactly) BETA, above the bound up to noise
    assert r.beta == pytest.approx(BETA, rel=1e-9)
    assert r.free_energy >= Exact.f - 3 * r.free_energy_err
    return net


def fresh_samples(net: FlipSymmetrised, m: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Energies and log q (m,) of m fresh samples of net."""
    g = gen(seed)
    with torch.no_grad():
        s = net.sample(uniforms(g, m, N_ISING), uniforms(g, m))
        return ising_energy(s), net.log_prob(s)


def test_van_training_approaches_exact_free_energy(trained: FlipSymmetrised) -> None:
    e, log_q = fresh_samples(trained, 20_000, seed=2)
    est = importance_estimate(e, log_q, BETA, N_ISING)
    assert est.samples == 20_000
    # F_q is a variational upper bound, and close to F
    assert est.free_energy_q >= Exact.f - 3 * est.free_energy_q_err
    assert (est.free_energy_q - Exact.f) / abs(Exact.f) < 1e-2
    # NIS is unbiased (up to O(1/M)) and precise
    assert abs(est.free_energy_nis - Exact.f) < 4 * est.free_energy_nis_err
    assert est.free_energy_nis_err < 1e-3 * abs(Exact.f)
    assert est.ess_per_sample > 0.3
    # and the trained q is close to p by the exact KL divergence too
    with torch.no_grad():
        lq = trained.log_prob(Exact.s)
    assert abs(float(lq.exp().sum()) - 1) < 1e-12
    assert float((lq.exp() * (lq - Exact.log_p)).sum()) < 1e-2


# ------------------------------------------------------------------------------ estimates
def test_importance_estimate_with_the_exact_distribution() -> None:
    idx = boltzmann_samples(BETA, 5000, gen(70))
    e, log_q = Exact.e[idx], Exact.log_p[idx]
    est = importance_estimate(e, log_q, BETA, N_ISING)
    assert est.var_log_w < 1e-24
    assert est.free_energy_nis == pytest.approx(Exact.f, abs=1e-13)
    assert est.free_energy_nis_err < 1e-13
    assert est.ess_per_sample == pytest.approx(1.0, abs=1e-12)
    # f = E + log p / beta = F N for every sample: F_q is exact as well
    assert est.free_energy_q == pytest.approx(Exact.f, abs=1e-13)


def test_importance_estimate_and_reweighting_with_an_imperfect_q() -> None:
    beta_q = 0.3  # q: the Boltzmann distribution at a higher temperature
    log_q_all = -beta_q * Exact.e - torch.logsumexp(-beta_q * Exact.e, 0)
    idx = boltzmann_samples(beta_q, 20_000, gen(80))
    e, log_q = Exact.e[idx], log_q_all[idx]
    est = importance_estimate(e, log_q, BETA, N_ISING)
    assert abs(est.free_energy_nis - Exact.f) < 4 * est.free_energy_nis_err
    assert est.free_energy_q > Exact.f + 3 * est.free_energy_q_err  # a strict bound here
    assert 0.1 < est.ess_per_sample < 0.99 and est.var_log_w > 0.01
    log_w = -BETA * e - log_q
    mean, err = reweighted_mean(e, log_w)
    assert abs(mean - Exact.mean_e) < 4 * err and err < 0.05
    # weights shifted by a huge constant change nothing (overflow safety)
    est2 = importance_estimate(e - 1e4, log_q, BETA, N_ISING)
    assert est2.free_energy_nis == pytest.approx(est.free_energy_nis - 1e4 / N_ISING, abs=1e-9)
    assert reweighted_mean(e, log_w + 1e5)[0] == pytest.approx(mean, abs=1e-10)


def _nmcmc_reference(log_w: list[float], u: list[float]) -> tuple[list[int], int]:
    chain, cur, accepted = [0], 0, 0
    for i in range(1, len(log_w)):
        if u[i] < min(1.0, math.exp(log_w[i] - log_w[cur])):
            cur, accepted = i, accepted + 1
        chain.append(cur)
    return chain, accepted


def test_nmcmc_basic_cases() -> None:
    g = gen(90)
    m = 1000
    r = nmcmc(torch.full((m,), -3.7, dtype=F64), uniforms(g, m))
    assert r.acceptance == 1.0 and torch.equal(r.chain, torch.arange(m))
    # exact q: log w = log Z up to rounding
    idx = boltzmann_samples(BETA, m, g)
    r = nmcmc(-BETA * Exact.e[idx] - Exact.log_p[idx], uniforms(g, m))
    assert r.acceptance == 1.0 and torch.equal(r.chain, torch.arange(m))
    # a generic case against a plain loop; the chain moves only forward, to the proposal
    log_w, u = 2.0 * torch.randn(m, generator=g, dtype=F64), uniforms(g, m)
    r = nmcmc(log_w, u)
    chain, accepted = _nmcmc_reference(log_w.tolist(), u.tolist())
    assert r.chain.dtype == torch.int64 and r.chain.tolist() == chain
    assert r.acceptance == accepted / (m - 1) and 0.1 < r.acceptance < 0.9
    i = torch.arange(1, m)
    assert bool(((r.chain[1:] == r.chain[:-1]) | (r.chain[1:] == i)).all())
    assert nmcmc(torch.zeros(1, dtype=F64), torch.zeros(1, dtype=F64)).chain.tolist() == [0]


def test_nmcmc_with_an_imperfect_q_samples_the_boltzmann_distribution() -> None:
    beta_q = 0.3
    log_q_all = -beta_q * Exact.e - torch.logsumexp(-beta_q * Exact.e, 0)
    g = gen(100)
    idx = boltzmann_samples(beta_q, 40_000, g)
    log_w = -BETA * Exact.e[idx] - log_q_all[idx]
    r = nmcmc(log_w, uniforms(g, idx.numel()))
    assert 0.3 < r.acceptance < 0.95
    est = binning_analysis(Exact.e[idx][r.chain].numpy())
    assert abs(est.mean - Exact.mean_e) < 4 * est.stderr


def test_nmcmc_with_the_trained_network(trained: FlipSymmetrised) -> None:
    e, log_q = fresh_samples(trained, 20_000, seed=3)
    r = nmcmc(-BETA * e - log_q, uniforms(gen(4), 20_000))
    assert r.acceptance > 0.9
    est = binning_analysis(e[r.chain].numpy())
    assert abs(est.mean - Exact.mean_e) < 4 * est.stderr
