"""Pauli algebra: same-site products, canonical form, hermiticity, symmetry checks, models."""

import numpy as np
import pytest

from physml_lang.compiler.derive.pauli import (
    PauliError,
    PauliSum,
    PauliTerm,
    heisenberg,
    j1j2,
    pauli,
    sublattice_rotation,
    tfim,
    xxz,
)
from physml_lang.runtime.quantum.lattice import diagonal_bonds, nearest_bonds


def single(*ops, n=2, c=1.0):
    return PauliSum([PauliTerm(c, tuple(ops))], n)


@pytest.mark.parametrize(
    "a,b,phase,res",
    [
        ("X", "Y", 1j, "Z"),
        ("Y", "X", -1j, "Z"),
        ("Y", "Z", 1j, "X"),
        ("Z", "Y", -1j, "X"),
        ("Z", "X", 1j, "Y"),
        ("X", "Z", -1j, "Y"),
    ],
)
def test_same_site_products(a, b, phase, res):
    t = single((a, 0), (b, 0)).simplify().terms
    assert len(t) == 1 and t[0].ops == ((res, 0),) and t[0].coefficient == phase


def test_square_is_identity_and_products_on_other_sites_commute():
    t = single(("X", 1), ("Z", 0), ("X", 1)).simplify().terms
    assert len(t) == 1 and t[0].ops == (("Z", 0),) and t[0].coefficient == 1


def test_ladder_and_number_operators_match_matrices():
    n = 1
    sp, sm, num = pauli("+", 0, n), pauli("-", 0, n), pauli("N", 0, n)
    np.testing.assert_allclose(sp.to_dense(), [[0, 1], [0, 0]])
    np.testing.assert_allclose((sm * sp).simplify().to_dense(), num.to_dense())
    np.testing.assert_allclose(num.simplify().to_dense(), [[0, 0], [0, 1]])
    np.testing.assert_allclose((sp * sm).simplify().to_dense(), [[1, 0], [0, 0]])


def test_simplify_preserves_matrix_for_random_products():
    rng = np.random.default_rng(3)
    ops = ["X", "Y", "Z", "+", "-", "N"]
    terms = [
        PauliTerm(
            complex(rng.normal(), rng.normal()),
            tuple((ops[rng.integers(6)], int(rng.integers(3))) for _ in range(rng.integers(1, 5))),
        )
        for _ in range(12)
    ]
    h = PauliSum(terms, 3)
    np.testing.assert_allclose(h.simplify().to_dense(), h.to_dense(), atol=1e-12)
    # equal strings are combined: every canonical string appears once
    keys = [t.ops for t in h.simplify().terms]
    assert len(keys) == len(set(keys))


def test_hermiticity():
    assert tfim(4, nearest_bonds((4,)), 0.7).is_hermitian()
    assert not (1j * pauli("X", 0, 2)).is_hermitian()
    assert (
        pauli("+", 0, 2) * pauli("-", 1, 2) + pauli("-", 0, 2) * pauli("+", 1, 2)
    ).is_hermitian()
    assert not pauli("+", 0, 2).is_hermitian()
    h = PauliSum([PauliTerm(1j, (("X", 0), ("Y", 0)))], 1)  # i X Y = -Z: Hermitian
    assert h.is_hermitian()
    d = h.to_dense()
    np.testing.assert_allclose(d, d.conj().T)


def test_adjoint_matches_dense():
    h = PauliSum([PauliTerm(0.3 + 0.2j, (("+", 0), ("Y", 1), ("N", 0)))], 2)
    np.testing.assert_allclose(h.adjoint().to_dense(), h.to_dense().conj().T, atol=1e-12)


def test_magnetization_conservation():
    b = nearest_bonds((6,))
    assert heisenberg(6, b).conserves_magnetization()
    assert xxz(6, b, 0.3).conserves_magnetization()
    assert not tfim(6, b, 1.0).conserves_magnetization()
    assert not (pauli("X", 0, 2) * pauli("X", 1, 2)).conserves_magnetization()
    hop = pauli("+", 0, 2) * pauli("-", 1, 2) + pauli("-", 0, 2) * pauli("+", 1, 2)
    assert hop.conserves_magnetization()
    assert (
        pauli("X", 0, 2) * pauli("X", 1, 2) + pauli("Y", 0, 2) * pauli("Y", 1, 2)
    ).conserves_magnetization()


def test_model_builders():
    b = nearest_bonds((4, 4))
    assert len(b) == 32
    assert len(tfim(16, b, 1.0).terms) == 48
    assert len(heisenberg(16, b).terms) == 96
    h = j1j2(16, b, diagonal_bonds((4, 4)), J2=0.5)
    assert len(h.terms) == 96 + 96 and h.is_hermitian()
    with pytest.raises(PauliError):
        tfim(4, [(0, 4)], 1.0)
    with pytest.raises(PauliError):
        PauliTerm(1.0, (("Q", 0),))


def test_sublattice_rotation_flips_xy_couplings():
    h = heisenberg(4, nearest_bonds((4,)))
    r = sublattice_rotation(h, np.array([1, 0, 1, 0], bool))
    u = np.diag([np.prod([(-1) ** ((k >> (3 - i)) & 1) for i in (0, 2)]) for k in range(16)])
    np.testing.assert_allclose(r.to_dense(), u @ h.to_dense() @ u, atol=1e-12)
