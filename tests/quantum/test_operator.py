"""Batched matrix elements and local energies against dense matrices; ED against exact energies."""

import numpy as np
import pytest
import torch

from physml_lang.compiler.derive.pauli import PauliSum, PauliTerm, heisenberg, tfim
from physml_lang.runtime.quantum.lattice import nearest_bonds
from physml_lang.runtime.quantum.learners import RBM
from physml_lang.runtime.quantum.operator import LocalOperator


def random_hamiltonian(n: int, seed: int, hermitian: bool = True) -> PauliSum:
    rng = np.random.default_rng(seed)
    ops = ["X", "Y", "Z", "+", "-", "N"]
    terms = []
    for _ in range(25):
        k = int(rng.integers(1, 4))
        sites = rng.choice(n, size=k, replace=False)
        terms.append(
            PauliTerm(
                complex(rng.normal(), rng.normal()),
                tuple((ops[rng.integers(6)], int(s)) for s in sites),
            )
        )
    h = PauliSum(terms, n)
    return (h + h.adjoint()) if hermitian else h


def all_configs(n: int) -> torch.Tensor:
    return LocalOperator.codes_to_configs(torch.arange(2**n), n)


@pytest.mark.parametrize("hermitian", [True, False])
def test_sparse_matches_dense_kron(hermitian):
    h = random_hamiltonian(6, 1, hermitian)
    op = LocalOperator(h)
    np.testing.assert_allclose(op.to_sparse().toarray(), h.to_dense(), atol=1e-12)


def test_connected_configurations_and_elements():
    h = random_hamiltonian(5, 2)
    op, dense = LocalOperator(h), h.to_dense()
    s = all_configs(5)
    sp, mel = op.connected(s)
    assert sp.shape == (32, op.n_groups, 5) and mel.shape == (32, op.n_groups)
    rows = LocalOperator.configs_to_codes(s)
    cols = LocalOperator.configs_to_codes(sp)
    np.testing.assert_allclose(mel.numpy(), dense[rows.numpy()[:, None], cols.numpy()], atol=1e-12)


@pytest.mark.parametrize("seed", [0, 1])
def test_local_energy_complex_amplitudes_vs_dense(seed):
    n = 6
    h = random_hamiltonian(n, 10 + seed)
    op, dense = LocalOperator(h), h.to_dense()
    rng = np.random.default_rng(seed)
    psi = rng.normal(size=2**n) + 1j * rng.normal(size=2**n)
    table = torch.as_tensor(np.log(psi))

    def log_psi(s):
        return table[LocalOperator.configs_to_codes(s)]

    s = all_configs(n)
    e = op.local_energy(log_psi, s)
    np.testing.assert_allclose(e.numpy(), (dense @ psi) / psi, rtol=1e-10, atol=1e-10)


def test_local_energy_complex_rbm_vs_dense_heisenberg_with_y():
    n = 8
    h = heisenberg(n, nearest_bonds((n,))) + PauliSum([PauliTerm(0.3, (("Y", 2),))], n)
    g = torch.Generator().manual_seed(0)
    model = RBM(n, alpha=1, complex=True, init_std=0.3, generator=g)
    s = all_configs(n)
    with torch.no_grad():
        psi = torch.exp(model(s)).numpy()
    e = LocalOperator(h).local_energy(model, s)
    np.testing.assert_allclose(e.numpy(), (h.to_dense() @ psi) / psi, rtol=1e-9, atol=1e-9)
    # variational energy from |psi|^2-weighted local energies equals <psi|H|psi>
    p = np.abs(psi) ** 2
    exact = np.vdot(psi, h.to_dense() @ psi) / np.vdot(psi, psi)
    np.testing.assert_allclose((p * e.numpy()).sum() / p.sum(), exact, atol=1e-10)


def test_real_hamiltonian_keeps_real_dtype():
    op = LocalOperator(heisenberg(4, nearest_bonds((4,))))
    assert op.is_real and op.dtype == torch.float64
    assert not LocalOperator(PauliSum([PauliTerm(1.0, (("Y", 0),))], 2)).is_real


@pytest.mark.parametrize("L,E0", [(10, -12.7849064430), (16, -20.4045944748)])
def test_ed_tfim_critical(L, E0):
    w, _ = LocalOperator(tfim(L, nearest_bonds((L,)), 1.0)).exact_ground_state()
    assert abs(w[0] - E0) < 1e-8


@pytest.mark.parametrize("g", [0.5, 2.0])
def test_ed_tfim_l16_other_fields(g):
    ref = {0.5: -17.0167124963, 2.0: -34.0334249927}[g]
    w, _ = LocalOperator(tfim(16, nearest_bonds((16,)), g)).exact_ground_state()
    assert abs(w[0] - ref) < 1e-8


def test_ed_tfim_analytic_formula_l12():
    L, g = 12, 0.8
    k = np.pi * (2 * np.arange(L) + 1) / L
    exact = -np.sum(np.sqrt(1 + g * g - 2 * g * np.cos(k)))
    w, _ = LocalOperator(tfim(L, nearest_bonds((L,)), g)).exact_ground_state()
    assert abs(w[0] - exact) < 1e-8


def test_ed_heisenberg_chain_and_sector():
    op = LocalOperator(heisenberg(10, nearest_bonds((10,))))
    full, _ = op.exact_ground_state(k=3)
    sector, vec = op.exact_ground_state(k=1, magnetization=0)
    assert abs(full[0] + 18.0617854180) < 1e-8
    assert abs(sector[0] + 18.0617854180) < 1e-8
    assert vec.shape == (252, 1)
    assert np.all(np.diff(full) >= -1e-10)


def test_ed_heisenberg_4x4_sector():
    op = LocalOperator(heisenberg(16, nearest_bonds((4, 4))))
    w, _ = op.exact_ground_state(magnetization=0)
    assert abs(w[0] + 44.9139328337) < 1e-8


def test_sector_requires_conservation():
    op = LocalOperator(tfim(6, nearest_bonds((6,)), 1.0))
    with pytest.raises(ValueError):
        op.to_sparse(magnetization=0)


def test_sector_matrix_is_block_of_full():
    h = heisenberg(6, nearest_bonds((6,))) + PauliSum([PauliTerm(0.4, (("Z", 1),))], 6)
    op = LocalOperator(h)
    full = op.to_sparse().toarray()
    codes = op.sector_codes(2)
    np.testing.assert_allclose(op.to_sparse(magnetization=2).toarray(), full[np.ix_(codes, codes)])


def test_sector_codes_are_every_code_with_that_many_ones_in_order():
    """The vectorised sector basis equals the codes with k ones among n bits, enumerated from
    itertools.combinations, sorted, for every (n, k) up to 12 bits; and sizes C(n, k) beyond."""
    from itertools import combinations
    from math import comb

    from physml_lang.runtime.quantum.operator import codes_with_ones

    for n in range(13):
        for k in range(n + 1):
            expected = sorted(sum(1 << b for b in c) for c in combinations(range(n), k))
            assert codes_with_ones(n, k).tolist() == expected, (n, k)
    big = codes_with_ones(24, 12)
    assert len(big) == comb(24, 12) and bool((np.diff(big) > 0).all())
    assert all(bin(int(c)).count("1") == 12 for c in big[::9973])
