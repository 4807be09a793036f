"""PixelCNN (runtime/generative/pixelcnn.py), validated against exact enumeration: normalised,
autoregressive in raster order (bitwise), log_prob consistent with the conditional logits, exact
ancestral sampling (also through the cone-cropped evaluations of ``sample``), no tensor created on
the default device, and VAN training of the symmetrised network on the periodic 3x3 Ising model
at beta = 0.44 approaching the exact free energy. Fixed seeds throughout."""

from __future__ import annotations

import math

import pytest
import torch

from physml_lang.runtime.generative.estimates import importance_estimate
from physml_lang.runtime.generative.pixelcnn import PixelCNN
from physml_lang.runtime.generative.symmetry import FlipSymmetrised
from physml_lang.runtime.generative.van import anneal_beta, van_step

from .small_ising import BETA, F64, N_ISING, Exact, L, all_configs, config_index, ising_energy


def gen(seed: int) -> torch.Generator:
    return torch.Generator(device="cpu").manual_seed(seed)


def uniforms(g: torch.Generator, *shape: int) -> torch.Tensor:
    return torch.rand(*shape, generator=g, dtype=F64, device="cpu")


def sharpen(net: PixelCNN, factor: float = 3.0) -> None:
    """Scale the output layer: a markedly non-uniform q."""
    with torch.no_grad():
        net.output.weight.mul_(factor)
        net.output.bias.mul_(factor)


# ------------------------------------------------------------------------- the distribution
@pytest.mark.parametrize("cells, q", [((3, 3), 2), ((2, 3), 3), ((3, 2), 2)])
@pytest.mark.parametrize("depth", [1, 3])
def test_pixelcnn_is_normalised(cells: tuple[int, int], q: int, depth: int) -> None:
    net = PixelCNN(cells, q, width=16, depth=depth, generator=gen(10 + q + depth))
    assert net.n_sites == cells[0] * cells[1]
    with torch.no_grad():
        logp = net.log_prob(all_configs(net.n_sites, q))
    assert logp.dtype == F64 and logp.shape == (q**net.n_sites,)
    assert abs(float(logp.exp().sum()) - 1.0) < 1e-10
    assert float(logp.std()) > 0.05  # not trivially uniform


@pytest.mark.parametrize("cells, q, depth, kernel", [((3, 4), 2, 3, 3), ((3, 3), 3, 2, 3),
                                                     ((4, 3), 2, 2, 5), ((1, 5), 3, 1, 3)])
def test_pixelcnn_is_autoregressive(cells: tuple[int, int], q: int, depth: int,
                                    kernel: int) -> None:  # fmt: skip
    g = gen(20)
    net = PixelCNN(cells, q, width=12, depth=depth, kernel=kernel, generator=g)
    n, b = net.n_sites, 64
    s = torch.randint(q, (b, n), generator=g, device="cpu")
    with torch.no_grad():
        logits = net.conditional_logits(s)
        assert logits.shape == (b, n, q) and logits.dtype == F64
        assert torch.equal(logits[:, 0], logits[:1, 0].expand(b, q))  # site 0: a constant
        for j in range(n):
            t = s.clone()
            t[:, j] = (t[:, j] + 1 + torch.randint(q - 1, (b,), generator=g, device="cpu")) % q
            changed = net.conditional_logits(t)
            assert torch.equal(changed[:, : j + 1], logits[:, : j + 1])
            if j + 1 < n:  # and some later site does see s_j
                assert not torch.allclose(changed[:, j + 1 :], logits[:, j + 1 :])


@pytest.mark.parametrize("q", [2, 4])
def test_log_prob_is_the_sum_of_the_conditionals(q: int) -> None:
    g = gen(25)
    net = PixelCNN((3, 4), q, width=8, depth=2, generator=g)
    s = torch.randint(q, (50, 12), generator=g, device="cpu")
    with torch.no_grad():
        ref = torch.log_softmax(net.conditional_logits(s), -1).gather(-1, s[..., None]).sum((1, 2))
        assert torch.allclose(net.log_prob(s), ref, rtol=0, atol=1e-12)


def test_construction_is_deterministic_and_validated() -> None:
    a = PixelCNN((3, 4), 3, 16, 3, generator=gen(5))
    b = PixelCNN((3, 4), 3, 16, 3, generator=gen(5))
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)
    assert a.device.type == "cpu" and a.output.weight.dtype == F64
    assert all(p.dtype == F64 for p in a.parameters())
    assert PixelCNN((2, 2), dtype=torch.float32).output.weight.dtype == torch.float32
    for kernel in (1, 2, 4, 0, -3, 3.0):
        with pytest.raises(ValueError, match="kernel"):
            PixelCNN((3, 3), kernel=kernel)
    for kw in ({"q": 1}, {"depth": 0}, {"width": 0}, {"cells": (0, 3)}):
        with pytest.raises(ValueError):
            PixelCNN(**{"cells": (3, 3), **kw})
    with pytest.raises(ValueError):
        a.sample(torch.rand(4, 11, dtype=F64, device="cpu"))
    with pytest.raises(ValueError):
        a.log_prob(torch.zeros(4, 11, dtype=torch.int64, device="cpu"))


def test_no_tensor_is_created_on_the_default_device() -> None:
    g = gen(6)
    u, uf = uniforms(g, 7, 12), uniforms(g, 7)
    torch.set_default_device("meta")
    try:
        net = FlipSymmetrised(PixelCNN((3, 4), 2, 8, 3, device="cpu", generator=g), lambda s: 1 - s)
        net3 = PixelCNN((3, 4), 3, 8, 2, device="cpu", generator=g)
        s = net.sample(u, uf)
        lp = net.log_prob(s)
        lp3 = net3.log_prob(net3.sample(u))
        lp.sum().backward()
    finally:
        torch.set_default_device(None)
    assert all(p.device.type == "cpu" for p in net.parameters())
    assert s.device.type == lp.device.type == lp3.device.type == "cpu"
    assert bool(torch.isfinite(lp).all()) and bool(torch.isfinite(lp3).all())


# --------------------------------------------------------------------------------- sampling
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


@pytest.mark.parametrize("cells, q", [((2, 2), 2), ((1, 3), 3)])
def test_sample_matches_log_prob(cells: tuple[int, int], q: int) -> None:
    g = gen(30)
    net = PixelCNN(cells, q, width=8, depth=2, generator=g)
    n = net.n_sites
    sharpen(net)
    with torch.no_grad():
        log_p = net.log_prob(all_configs(n, q))
        assert float(log_p.std()) > 0.3
        u = uniforms(g, 200_000, n)
        s = torch.cat([net.sample(c) for c in u.split(25_000)])  # bounded memory
    assert s.dtype == torch.int64 and s.shape == (200_000, n)
    assert int(s.min()) >= 0 and int(s.max()) <= q - 1
    _assert_frequencies(s, log_p, q)
    # float32 uniforms, and u at the edges of [0, 1), give valid values
    edge = torch.tensor([[0.0] * n, [1.0 - 2.0**-53] * n], dtype=F64, device="cpu")
    assert int(net.sample(edge.float()).max()) <= q - 1
    assert net.sample(edge)[1].tolist() == [q - 1] * n


def _reference_sample(net: PixelCNN, u: torch.Tensor) -> torch.Tensor:
    """Ancestral sampling with the logits of the whole grid at every site (MADE's loop)."""
    s = torch.zeros(u.shape, dtype=torch.int64, device="cpu")
    with torch.no_grad():
        for x in range(net.n_sites):
            cdf = torch.softmax(net.conditional_logits(s)[:, x], -1).cumsum(-1)
            s[:, x] = (cdf[:, :-1] <= u[:, x : x + 1]).sum(-1)
    return s


@pytest.mark.parametrize("cells, q, depth, kernel", [((5, 6), 2, 3, 3), ((4, 7), 3, 2, 5),
                                                     ((6, 2), 2, 1, 3)])
def test_cone_sampling_equals_whole_grid_sampling(cells: tuple[int, int], q: int, depth: int,
                                                      kernel: int) -> None:  # fmt: skip
    """``sample`` evaluates each site on the cone of cells its logits depend on (cropped layer
    by layer); the same samples (and, up to rounding, the same logits) as with the whole grid."""
    g = gen(35)
    net = PixelCNN(cells, q, width=12, depth=depth, kernel=kernel, generator=g)
    sharpen(net)
    u = uniforms(g, 300, net.n_sites)
    s = net.sample(u)
    assert torch.equal(s, _reference_sample(net, u))
    assert len(set(map(tuple, s.tolist()))) > 100  # a non-trivial test


# ------------------------------------------------------------------------------------- VAN
def test_van_training_with_pixelcnn_approaches_exact_free_energy() -> None:
    g = gen(1)
    net = FlipSymmetrised(PixelCNN((L, L), 2, width=8, depth=3, generator=g), lambda s: 1 - s)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for step in range(200):  # ~4 s
        r = van_step(net, ising_energy, anneal_beta(BETA, 0.9, step), uniforms(g, 400, N_ISING),
                     opt, N_ISING, clip=1.0, u_flip=uniforms(g, 400))  # fmt: skip
    assert r.beta == pytest.approx(BETA, rel=1e-9)
    g = gen(2)
    with torch.no_grad():
        s = net.sample(uniforms(g, 20_000, N_ISING), uniforms(g, 20_000))
        e, log_q = ising_energy(s), net.log_prob(s)
        lq_all = net.log_prob(Exact.s)
    est = importance_estimate(e, log_q, BETA, N_ISING)
    # F_q is a variational upper bound, and close to F
    assert est.free_energy_q >= Exact.f - 3 * est.free_energy_q_err
    assert (est.free_energy_q - Exact.f) / abs(Exact.f) < 1e-2
    # NIS is unbiased (up to O(1/M))
    assert abs(est.free_energy_nis - Exact.f) < 4 * est.free_energy_nis_err
    assert est.free_energy_nis_err < 1e-3 * abs(Exact.f)
    # exactly normalised after training, and close to p in KL
    assert abs(float(lq_all.exp().sum()) - 1) < 1e-12
    assert float((lq_all.exp() * (lq_all - Exact.log_p)).sum()) < 1e-2
