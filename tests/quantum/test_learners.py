"""Symmetric learners are exactly invariant; autoregressive ones are normalised, sample exactly."""

import numpy as np
import pytest
import torch

from physml_lang.compiler.derive.pauli import heisenberg
from physml_lang.runtime.quantum.lattice import nearest_bonds, sublattice, translation_table
from physml_lang.runtime.quantum.learners import (
    RBM,
    AutoregressiveGRU,
    ConvNet,
    MarshallSign,
    SpinFlipSymmetric,
    SymmetricRBM,
    SymmetrizedAutoregressive,
)
from physml_lang.runtime.quantum.operator import LocalOperator
from physml_lang.runtime.random import RandomStreams


def random_s(b, n, seed):
    g = torch.Generator().manual_seed(seed)
    return (1 - 2 * torch.randint(0, 2, (b, n), generator=g)).double()


def check_invariance(model, table, spin_flip, seed=0, tol=1e-10):
    n = table.shape[1]
    s = random_s(64, n, seed)
    g = torch.Generator().manual_seed(seed + 1)
    base = model(s).detach()
    for idx in torch.randint(0, table.shape[0], (5,), generator=g):
        torch.testing.assert_close(model(s[:, table[idx]]), base, atol=tol, rtol=tol)
    if spin_flip:
        torch.testing.assert_close(model(-s), base, atol=tol, rtol=tol)
    # and the model is not trivially constant
    assert float((base - base.mean()).abs().max()) > 1e-6


SHAPES = [(8,), (4, 4), (3, 5)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("complex_", [False, True])
@pytest.mark.parametrize("flip", [False, True])
def test_symmetric_rbm_invariance(shape, complex_, flip):
    table = translation_table(shape)
    g = torch.Generator().manual_seed(4)
    m = SymmetricRBM(table, alpha=2, complex=complex_, spin_flip=flip, init_std=0.3, generator=g)
    check_invariance(m, table, flip)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("flip", [False, True])
@pytest.mark.parametrize("phase", [False, True])
def test_convnet_invariance(shape, flip, phase):
    table = translation_table(shape)
    g = torch.Generator().manual_seed(5)
    m = ConvNet(shape, channels=(4, 4), phase=phase, spin_flip=flip, generator=g)
    with torch.no_grad():  # random biases so that invariance is not an accident of zero biases
        for layer in m.layers:
            if layer.bias is not None:
                layer.bias.normal_(generator=g)
    check_invariance(m, table, flip)


def test_plain_rbm_is_not_translation_invariant_but_flip_symmetrisation_is_exact():
    table = translation_table((8,))
    g = torch.Generator().manual_seed(6)
    m = RBM(8, alpha=1, init_std=0.5, generator=g)
    s = random_s(32, 8, 0)
    assert float((m(s[:, table[1]]) - m(s)).detach().abs().max()) > 1e-3
    sym = SpinFlipSymmetric(m)
    torch.testing.assert_close(sym(-s), sym(s))
    odd = SpinFlipSymmetric(m, parity=-1)
    torch.testing.assert_close(torch.exp(odd(-s)), -torch.exp(odd(s)))
    flip_rbm = RBM(8, alpha=1, spin_flip=True, init_std=0.5, generator=g)
    torch.testing.assert_close(flip_rbm(-s), flip_rbm(s))


def all_configs(n):
    return LocalOperator.codes_to_configs(torch.arange(2**n), n)


@pytest.mark.parametrize("cell_size", [1, 2])
@pytest.mark.parametrize("phase", ["none", "head"])
def test_autoregressive_normalised(cell_size, phase):
    g = torch.Generator().manual_seed(7)
    order = torch.randperm(8, generator=g)
    m = AutoregressiveGRU(8, hidden=8, cell_size=cell_size, order=order, phase=phase, generator=g)
    lp = m(all_configs(8))
    assert abs(float(torch.exp(2 * lp.real).sum()) - 1.0) < 1e-10


def test_autoregressive_magnetisation_sector():
    g = torch.Generator().manual_seed(8)
    m = AutoregressiveGRU(8, hidden=8, cell_size=2, magnetization=2, generator=g)
    s = all_configs(8)
    p = torch.exp(2 * m(s))
    inside = s.sum(1) == 2
    assert abs(float(p[inside].sum()) - 1.0) < 1e-10 and float(p[~inside].max()) == 0.0
    assert torch.all(m.sample(500, RandomStreams(8)).sum(1) == 2)


def sample_distribution_matches(model, n, draws, seed):
    s = model.sample(draws, RandomStreams(seed))
    codes = LocalOperator.configs_to_codes(s)
    freq = np.bincount(codes.numpy(), minlength=2**n) / draws
    p = torch.exp(2 * model(all_configs(n)).real).detach().numpy()
    # binomial error per state; allow 5 sigma plus a tiny floor
    sigma = np.sqrt(p * (1 - p) / draws)
    assert np.all(np.abs(freq - p) <= 5 * sigma + 2e-4)


def test_autoregressive_exact_sampling():
    g = torch.Generator().manual_seed(9)
    m = AutoregressiveGRU(6, hidden=8, cell_size=2, generator=g)
    with torch.no_grad():
        m.out.mul_(20.0)  # a far-from-uniform distribution
    sample_distribution_matches(m, 6, 40000, 10)


@pytest.mark.parametrize("flip", [False, True])
def test_symmetrized_autoregressive(flip):
    n = 6
    table = translation_table((n,))
    g = torch.Generator().manual_seed(11)
    base = AutoregressiveGRU(n, hidden=8, generator=g)
    with torch.no_grad():
        base.out.mul_(20.0)
    m = SymmetrizedAutoregressive(base, table, spin_flip=flip)
    lp = m(all_configs(n))
    assert abs(float(torch.exp(2 * lp).sum()) - 1.0) < 1e-10
    check_invariance(m, table, flip)
    sample_distribution_matches(m, n, 40000, 12)


def test_marshall_sign_matches_heisenberg_ground_state():
    n = 8
    op = LocalOperator(heisenberg(n, nearest_bonds((n,))))
    _, v = op.exact_ground_state()
    v = v[:, 0]
    s = all_configs(n)
    sign = MarshallSign(RBM(n, alpha=1, init_std=0.0), sublattice((n,)))
    with torch.no_grad():
        phase = torch.exp(1j * sign(s).imag).real.numpy()
    big = np.abs(v) > 1e-8
    ratio = np.sign(v[big]) * phase[big]
    assert np.all(ratio == ratio[0])
