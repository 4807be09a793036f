"""Closed-form RBM paths (cached-theta Metropolis, local energies, analytic O, SR solvers)
against the generic autograd / full-forward paths and dense linear algebra."""

import numpy as np
import pytest
import torch

from physml_lang.compiler.derive.pauli import PauliSum, PauliTerm, heisenberg, tfim
from physml_lang.runtime.quantum import rbm_chains_cpu, rbm_kernels
from physml_lang.runtime.quantum.lattice import nearest_bonds, sublattice, translation_table
from physml_lang.runtime.quantum.learners import (
    RBM,
    ConvNet,
    MarshallSign,
    SymmetricRBM,
    rbm_form,
)
from physml_lang.runtime.quantum.operator import LocalOperator
from physml_lang.runtime.quantum.rbm_kernels import (
    PhasedRBMChains,
    RBMChains,
    local_energy_rbm,
    rbm_jacobian,
)
from physml_lang.runtime.quantum.vmc import (
    MetropolisOptions,
    MetropolisSampler,
    SROptions,
    log_psi_jacobian,
    sr_direction,
)
from physml_lang.runtime.random import RandomStreams

SHAPE = (2, 4)
N = 8


def all_configs(n):
    return LocalOperator.codes_to_configs(torch.arange(2**n), n)


def models(g):
    table = translation_table(SHAPE)
    yield RBM(N, 1.5, init_std=0.3, generator=g)
    yield RBM(N, 1, spin_flip=True, init_std=0.3, generator=g)
    yield SymmetricRBM(table, 2, init_std=0.3, generator=g)
    yield SymmetricRBM(table, 2, spin_flip=True, init_std=0.3, generator=g)
    yield MarshallSign(SymmetricRBM(table, 2, init_std=0.3, generator=g), sublattice(SHAPE))
    yield MarshallSign(RBM(N, 1, init_std=0.3, generator=g), sublattice(SHAPE))


HAMILTONIANS = {
    "heisenberg": heisenberg(N, nearest_bonds(SHAPE)),
    "tfim": tfim(N, nearest_bonds(SHAPE), 0.7),
    # multi-site flips, Y terms (imaginary elements), a diagonal field
    "mixed": tfim(N, nearest_bonds(SHAPE), 0.3)
    + PauliSum([PauliTerm(0.4, (("X", 0), ("Y", 3), ("Z", 5))), PauliTerm(0.2, (("Z", 2),))], N),
}


@pytest.mark.parametrize("backend", ["numba", "torch"])
@pytest.mark.parametrize("name", list(HAMILTONIANS))
def test_local_energy_and_jacobian_match_generic_paths(name, backend, monkeypatch):
    """Both ratio paths (compiled product form on the CPU, lncosh in torch elsewhere)."""
    if backend == "torch":
        monkeypatch.setattr(rbm_chains_cpu, "AVAILABLE", False)
    elif not rbm_chains_cpu.AVAILABLE:
        pytest.skip("numba is not installed")
    op = LocalOperator(HAMILTONIANS[name])
    s = all_configs(N)
    for model in models(torch.Generator().manual_seed(0)):
        form = rbm_form(model)
        e0 = op.local_energy(model, s)
        torch.testing.assert_close(local_energy_rbm(op, form, s, chunk_size=100).to(e0.dtype), e0)
        j0 = log_psi_jacobian(model, s)
        torch.testing.assert_close(rbm_jacobian(form, s).to(j0.dtype), j0)
        with torch.no_grad():  # the canonical form reproduces |psi|
            th = s @ form.W + form.b
            torch.testing.assert_close(
                s @ form.a + torch.log(torch.cosh(th)).sum(-1), model(s).real
            )


def test_flip_ratios_near_the_product_bound_and_three_site_groups():
    """Large weights (sum_m |2 W_im| = 280, ratios up to e^100) and a three-site flip group:
    the compiled product form equals the lncosh form."""
    g = torch.Generator().manual_seed(6)
    model = RBM(N, 2, init_std=1.0, generator=g)
    with torch.no_grad():
        w = model.W["re"]  # (M, N)
        w.mul_(140.0 / w.abs().sum(0).max())
    h = tfim(N, nearest_bonds(SHAPE), 0.5) + PauliSum(
        [PauliTerm(0.3, (("X", 0), ("X", 2), ("Y", 5)))], N
    )
    op, form, s = LocalOperator(h), rbm_form(model), all_configs(N)
    mels = op.matrix_elements(s)
    nz = mels[:, 1:] != 0
    masks = op.flip_masks[1:].to(torch.float64)
    fast = rbm_kernels._flip_ratios(form, s, masks, nz)
    slow = rbm_kernels._lncosh_ratios(form, s, masks, nz)
    assert bool(torch.isfinite(fast).all()) and float(fast.max()) > 1e20
    torch.testing.assert_close(fast, slow, rtol=1e-9, atol=0.0)


def test_form_is_none_for_complex_and_other_learners():
    assert rbm_form(RBM(4, complex=True)) is None
    assert rbm_form(ConvNet((4,))) is None
    assert rbm_form(MarshallSign(RBM(4, complex=True), sublattice((4,)))) is None


def test_kernel_dense_and_cg_sr_agree():
    g = torch.Generator().manual_seed(1)
    model = RBM(6, alpha=4, init_std=0.3, generator=g)  # P = 174 > B = 40: kernel trick
    s = all_configs(6)[torch.randint(0, 64, (40,), generator=g)]
    e = LocalOperator(tfim(6, nearest_bonds((6,)), 1.0)).local_energy(model, s)
    o = log_psi_jacobian(model, s)
    dense, _ = sr_direction(o, e, SROptions(diag_shift=1e-2, solver="dense"))
    kernel, _ = sr_direction(o, e, SROptions(diag_shift=1e-2, solver="kernel"))
    auto, _ = sr_direction(o, e, SROptions(diag_shift=1e-2))
    cg, _ = sr_direction(o, e, SROptions(diag_shift=1e-2, solver="cg", cg_tol=1e-12))
    ob, eb = (o - o.mean(0)).numpy(), (e - e.mean()).numpy()
    ref = np.linalg.solve(ob.T @ ob / 40 + 1e-2 * np.eye(o.shape[1]), ob.T @ eb / 40)
    for x in (dense, kernel, auto, cg):
        np.testing.assert_allclose(x.numpy(), ref, rtol=1e-6, atol=1e-9)


def _chains(model, s0, move, backend):
    chains = RBMChains(rbm_form(model), s0, move)
    if backend == "torch":  # what other devices run, here on CPU tensors
        chains.xp = torch
        for k in ("s", "theta", "ups", "downs", "w2", "a2", "a2_flip", "rows", "lc"):
            v = getattr(chains, k)
            if isinstance(v, np.ndarray):
                setattr(chains, k, torch.from_numpy(v))
        chains.rows_col = chains.rows[:, None]
    elif backend == "numba" and not rbm_chains_cpu.AVAILABLE:
        pytest.skip("numba is not installed")
    chains.backend = backend
    return chains


@pytest.mark.parametrize("move", ["flip", "exchange"])
def test_chain_backends_agree(move):
    """Same random stream: the compiled CPU loop (numba), the numpy loop and the torch loop
    (other devices) of the cached-theta kernel make identical accept/reject decisions, also
    across chunks of random numbers and with a burn-in that is not a whole number of blocks."""
    g = torch.Generator().manual_seed(2)
    model = MarshallSign(SymmetricRBM(translation_table(SHAPE), 2, init_std=0.2, generator=g),
                         sublattice(SHAPE))  # fmt: skip
    s0 = torch.tensor([[1.0, -1.0] * (N // 2)] * 32)
    runs = {}
    for backend in ("numba", "numpy", "torch"):
        chains = _chains(model, s0, move, backend)
        chains.CHUNK_STEPS = 4 * 7  # several chunks in this run
        first = chains.run(15, 50, 4, RandomStreams(7))
        runs[backend] = (first, chains.run(0, 9, 4, RandomStreams(8)))
    (samples, acc), _ = runs["numpy"]
    assert samples.shape == (50, 32, N) and 0.05 < acc < 1.0
    if move == "exchange":
        assert torch.all(samples.sum(-1) == 0)
    for backend in ("numba", "torch"):
        for (x, a), (y, b) in zip(runs[backend], runs["numpy"]):
            torch.testing.assert_close(x.to(y.dtype), y)
            assert a == b


def test_numba_backend_is_the_cpu_default_within_range():
    """The compiled loop runs where its product formula cannot overflow; otherwise numpy."""
    if not rbm_chains_cpu.AVAILABLE:
        pytest.skip("numba is not installed")
    model = RBM(6, alpha=1, init_std=0.1, generator=torch.Generator().manual_seed(0))
    s0 = torch.ones(4, 6)
    assert RBMChains(rbm_form(model), s0, "flip").backend == "numba"
    with torch.no_grad():
        model.W["re"].mul_(1e4)  # sum_m |2 W_im| far beyond exp's range
    assert RBMChains(rbm_form(model), s0, "flip").backend == "numpy"


def test_large_weights_give_finite_ratios():
    """Weights near the product form's bound: the numba chain equals the lncosh (numpy) chain."""
    g = torch.Generator().manual_seed(5)
    model = RBM(6, alpha=2, init_std=1.0, generator=g)
    with torch.no_grad():
        w = model.W["re"]  # (M, N)
        w.mul_(140.0 / w.abs().sum(0).max())  # sum_m |2 W_im| = 280: just inside the bound
    s0 = torch.tensor([[1.0, -1.0] * 3] * 8)
    runs = [_chains(model, s0, "flip", b).run(6, 30, 6, RandomStreams(1))
            for b in ("numba", "numpy")]  # fmt: skip
    torch.testing.assert_close(runs[0][0], runs[1][0])


def test_fast_and_generic_samplers_sample_the_same_distribution():
    """Exchange moves in the S^z = 0 sector of 8 sites: the fast kernel's histogram matches
    |psi|^2 (the generic path is tested in test_vmc.py)."""
    g = torch.Generator().manual_seed(3)
    model = SymmetricRBM(translation_table(SHAPE), 2, init_std=0.15, generator=g)
    opts = MetropolisOptions(n_chains=200, sweeps_per_sample=1, move="exchange", magnetization=0)
    s = MetropolisSampler(N, opts).sample(model, 200 * 60, RandomStreams(3)).reshape(-1, N)
    conf = all_configs(N)
    with torch.no_grad():
        p = torch.exp(2 * model(conf)).numpy()
    p = np.where(conf.sum(1).numpy() == 0, p, 0.0)
    p /= p.sum()
    freq = np.bincount(LocalOperator.configs_to_codes(s).numpy(), minlength=2**N) / len(s)
    sigma = np.sqrt(2 * p * (1 - p) / len(s))
    assert np.all(np.abs(freq - p) <= 5 * sigma + 1e-4)


@pytest.mark.slow
def test_compiled_kernel_matches_eager():
    """torch.compile'd blocks (slow: compiles) make the same chain as the eager numpy loop."""
    g = torch.Generator().manual_seed(4)
    model = RBM(6, alpha=1, init_std=0.4, generator=g)
    s0 = torch.tensor([[1.0, -1.0] * 3] * 16)
    for move in ("flip", "exchange"):
        runs = [RBMChains(rbm_form(model), s0, move, compile=c) for c in (False, True)]
        out = [r.run(12, 20, 6, RandomStreams(0)) for r in runs]
        torch.testing.assert_close(out[0][0], out[1][0])


@pytest.mark.parametrize("move", ["flip", "exchange"])
def test_phased_chains_equal_real_chains_for_real_weights(move):
    """Complex-weight kernel with zero imaginary parts: the same chain as the real kernel."""
    if not rbm_chains_cpu.AVAILABLE:
        pytest.skip("numba is not installed")
    g = torch.Generator().manual_seed(8)
    model = RBM(N, 1.5, init_std=0.3, generator=g)
    s0 = torch.tensor([[1.0, -1.0] * (N // 2)] * 16)
    w, b, a = model.rbm_weights()
    weights = (w.to(torch.complex128), b.to(torch.complex128), a.to(torch.complex128))
    phased = PhasedRBMChains(weights, s0, move).run(9, 40, 4, RandomStreams(3))
    real = _chains(model, s0, move, "numpy").run(9, 40, 4, RandomStreams(3))
    torch.testing.assert_close(phased[0], real[0])
    assert phased[1] == real[1]


@pytest.mark.parametrize("move", ["flip", "exchange"])
def test_complex_rbm_chains_sample_psi_squared(move):
    """Complex RBM and complex translation-symmetric RBM with the Marshall sign: the compiled
    chains' histogram over all configurations matches |psi|^2 (within 5 sigma + 1e-4)."""
    if not rbm_chains_cpu.AVAILABLE:
        pytest.skip("numba is not installed")
    g = torch.Generator().manual_seed(9)
    table = translation_table(SHAPE)
    learners = [RBM(N, 1, complex=True, init_std=0.15, generator=g),
                MarshallSign(SymmetricRBM(table, 2, complex=True, init_std=0.15, generator=g),
                             sublattice(SHAPE))]  # fmt: skip
    mag = 0 if move == "exchange" else None
    conf = all_configs(N)
    streams = RandomStreams(9)
    for model in learners:
        opts = MetropolisOptions(n_chains=200, sweeps_per_sample=1, move=move, magnetization=mag)
        sampler = MetropolisSampler(N, opts)
        s = sampler.sample(model, 200 * 60, streams).reshape(-1, N)
        chains = sampler._phased_chains(model, sampler.chains)
        assert isinstance(chains, PhasedRBMChains)
        with torch.no_grad():
            p = torch.exp(2 * model(conf).real).numpy()
        if mag is not None:
            p = np.where(conf.sum(1).numpy() == 0, p, 0.0)
        p /= p.sum()
        freq = np.bincount(LocalOperator.configs_to_codes(s).numpy(), minlength=2**N) / len(s)
        sigma = np.sqrt(2 * p * (1 - p) / len(s))
        assert np.all(np.abs(freq - p) <= 5 * sigma + 1e-4)
