"""Kaufman's exact log Z of the 2D Ising torus against enumeration, transfer matrix and Onsager."""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
from scipy.integrate import quad
from scipy.special import logsumexp

from physml_lang.runtime.generative.kaufman import (
    ising2d_torus_free_energy,
    ising2d_torus_log_z,
)

BETA_C = math.log(1 + math.sqrt(2)) / 2  # 0.44068679...


def bond_sum_histogram(L1: int, L2: int) -> tuple[np.ndarray, np.ndarray]:
    """Values and multiplicities of sum_x s(x)s(x+e1) + s(x)s(x+e2) over all 2^N states.

    On a 2-wide torus x+e and x-e coincide: the two bonds joining them both count.
    """
    N = L1 * L2
    assert N <= 16
    codes = np.arange(2**N, dtype=np.int64)[:, None]
    s = (1 - 2 * ((codes >> np.arange(N)) & 1)).astype(np.int8).reshape(-1, L1, L2)
    bonds = (s * np.roll(s, -1, axis=1)).sum(axis=(1, 2), dtype=np.int64)
    bonds += (s * np.roll(s, -1, axis=2)).sum(axis=(1, 2), dtype=np.int64)
    values, counts = np.unique(bonds, return_counts=True)
    return values.astype(np.float64), counts.astype(np.float64)


def enumerated_log_z(L1: int, L2: int, beta: float, J: float = 1.0) -> float:
    values, counts = bond_sum_histogram(L1, L2)
    return float(logsumexp(beta * J * values, b=counts))


def transfer_matrix_log_z(width: int, length: int, beta: float) -> float:
    """log trace(T^length) for rows of `width` periodic spins, T symmetric (2^width square)."""
    codes = np.arange(2**width, dtype=np.int64)[:, None]
    s = (1 - 2 * ((codes >> np.arange(width)) & 1)).astype(np.float64)
    intra = (s * np.roll(s, -1, axis=1)).sum(axis=1)
    # shift every exponent by -2 width beta (the largest bond sum) so that T stays below 1
    T = np.exp(beta * (intra[:, None] / 2 + intra[None, :] / 2 + s @ s.T - 2 * width))
    lam = np.linalg.eigvalsh(T)
    top = np.abs(lam).max()  # the Perron eigenvalue (positive)
    return length * (math.log(top) + 2 * width * beta) + math.log(np.sum((lam / top) ** length))


def onsager_free_energy(beta: float, J: float = 1.0) -> float:
    """Infinite-lattice f = -(1/beta) [log(2 cosh 2K) + 1/(2 pi) int_0^pi log((1 + sqrt(1 - k^2
    sin^2 t)) / 2) dt], k = 2 sinh 2K / cosh^2 2K."""
    K = beta * J
    k2 = (2 * math.sinh(2 * K) / math.cosh(2 * K) ** 2) ** 2
    integral, _ = quad(
        lambda t: math.log((1 + math.sqrt(max(0.0, 1 - k2 * math.sin(t) ** 2))) / 2),
        0,
        math.pi,
        epsabs=1e-14,
        epsrel=1e-14,
        limit=200,
    )
    return -(math.log(2 * math.cosh(2 * K)) + integral / (2 * math.pi)) / beta


BETAS = [0.1, 0.3, 0.4406868, 0.44, 0.6, 1.0]


@pytest.mark.parametrize("L1,L2", [(4, 4), (2, 4), (4, 2), (2, 2)])
def test_even_tori_match_enumeration(L1, L2):
    values, counts = bond_sum_histogram(L1, L2)
    assert counts.sum() == 2 ** (L1 * L2) and values.max() == 2 * L1 * L2
    for beta in BETAS:
        exact = float(logsumexp(beta * values, b=counts))
        assert ising2d_torus_log_z(L1, L2, beta) == pytest.approx(exact, rel=1e-10, abs=0)


@pytest.mark.parametrize(
    "L1,L2", [(3, 3), (3, 4), (4, 3), (2, 3), (3, 2), (3, 5), (5, 3), (2, 5), (5, 2), (2, 7)]
)
def test_odd_tori_match_enumeration(L1, L2):
    values, counts = bond_sum_histogram(L1, L2)
    for beta in BETAS:
        exact = float(logsumexp(beta * values, b=counts))
        assert ising2d_torus_log_z(L1, L2, beta) == pytest.approx(exact, rel=1e-10, abs=0)


def test_antiferromagnet_on_even_torus_and_errors():
    for beta in (0.3, 0.6):
        exact = enumerated_log_z(4, 4, beta, J=-1.0)
        assert ising2d_torus_log_z(4, 4, beta, J=-1.0) == pytest.approx(exact, rel=1e-10, abs=0)
        assert ising2d_torus_log_z(4, 2, beta, J=-0.5) == pytest.approx(
            enumerated_log_z(4, 2, beta, J=-0.5), rel=1e-10, abs=0
        )
    with pytest.raises(ValueError):
        ising2d_torus_log_z(3, 4, 0.3, J=-1.0)
    with pytest.raises(ValueError):
        ising2d_torus_log_z(1, 4, 0.3)
    with pytest.raises(ValueError):
        ising2d_torus_log_z(4, 4, 0.0)


def test_extreme_temperatures_match_enumeration():
    for L1, L2 in ((4, 4), (3, 5)):
        for beta in (1e-4, 3.0, 20.0, 200.0):
            exact = enumerated_log_z(L1, L2, beta)
            assert ising2d_torus_log_z(L1, L2, beta) == pytest.approx(exact, rel=1e-12, abs=0)


def test_coupling_enters_as_beta_times_j():
    assert ising2d_torus_log_z(4, 4, 0.2, J=2.0) == pytest.approx(
        enumerated_log_z(4, 4, 0.4), rel=1e-12
    )


@pytest.mark.parametrize("L1,L2", [(6, 6), (8, 6), (6, 8), (5, 7), (7, 6)])
def test_transfer_matrix_width_6_and_odd(L1, L2):
    # rows of L2 spins (2^L2 transfer matrix), L1 of them
    for beta in (0.3, 0.44, 0.7):
        tm = transfer_matrix_log_z(L2, L1, beta)
        assert ising2d_torus_log_z(L1, L2, beta) == pytest.approx(tm, rel=1e-9, abs=0)
        assert ising2d_torus_log_z(L2, L1, beta) == pytest.approx(tm, rel=1e-9, abs=0)


def test_transfer_matrix_10x10():
    for beta in (0.3, 0.44, 0.7):
        tm = transfer_matrix_log_z(10, 10, beta)
        assert ising2d_torus_log_z(10, 10, beta) == pytest.approx(tm, rel=1e-10, abs=0)


def test_published_16x16_at_beta_044():
    # Wu, Wang, Zhang, PRL 122, 080602 (2019): F/N = -2.11636 (16 x 16, beta = 0.44)
    assert abs(ising2d_torus_free_energy(16, 16, 0.44) - (-2.11636405544)) < 1e-10
    assert ising2d_torus_free_energy(16, 16, 0.44) == pytest.approx(-2.11636, abs=5e-6)


def test_onsager_limit_at_l64():
    # above T_c the finite-size corrections are exponentially small
    assert abs(ising2d_torus_free_energy(64, 64, 0.3) - onsager_free_energy(0.3)) < 1e-6
    # below T_c the torus has two ordered states: Z = 2 exp(-beta N f) up to exponentially small
    # corrections, so f_L = f - log 2 / (beta N)
    beta, N = 0.6, 64 * 64
    f_l = ising2d_torus_free_energy(64, 64, beta)
    assert abs(f_l - onsager_free_energy(beta)) > 1e-4
    assert abs(f_l + math.log(2) / (beta * N) - onsager_free_energy(beta)) < 1e-10


def test_critical_torus_matches_the_ising_cft_partition_function():
    # at beta_c, log Z_L - N (-beta_c f) -> log[(theta2 + theta3 + theta4) / (2 eta)] of the
    # square torus (tau = i; Ferdinand & Fisher 1969, Di Francesco, Saleur, Zuber 1987), ~ 1/L^2
    nome = mpmath.exp(-mpmath.pi)
    eta = nome ** (mpmath.mpf(1) / 12) * mpmath.qp(nome**2)
    thetas = sum(mpmath.jtheta(n, 0, nome) for n in (2, 3, 4))
    universal = float(mpmath.log(thetas / (2 * eta)))  # 0.6399119...
    assert universal == pytest.approx(0.63991194719, abs=1e-10)
    L = 128
    excess = (
        BETA_C * L * L * (onsager_free_energy(BETA_C) - ising2d_torus_free_energy(L, L, BETA_C))
    )
    assert abs(excess - universal) < 1e-5  # 5.0e-6 at L = 128, 2.0e-5 at L = 64
