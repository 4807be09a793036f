"""Exact free energy of the finite 2D Ising model on a torus (B. Kaufman, Phys. Rev. 76, 1232 (1949)).

For E = -J sum_<ij> s_i s_j on an L1 x L2 square lattice, periodic in both directions (every site
has a bond to its right and to its upper neighbour, so on a 2-wide torus the two bonds joining a
pair of neighbours both count), with K = beta J:

    Z = 1/2 (2 sinh 2K)^(N/2) (Z1 + Z2 + Z3 + Z4),    N = L1 L2,
    Z1 = prod_{r=0}^{L1-1} 2 cosh(L2 gamma_{2r+1} / 2),  Z2 = prod_r 2 sinh(L2 gamma_{2r+1} / 2),
    Z3 = prod_{r=0}^{L1-1} 2 cosh(L2 gamma_{2r} / 2),    Z4 = prod_r 2 sinh(L2 gamma_{2r} / 2),

    cosh gamma_k = cosh 2K cosh 2K* - cos(pi k / L1) sinh 2K sinh 2K*,   tanh K* = exp(-2K),

with gamma_k >= 0 for k >= 1 and gamma_0 = 2 (K - K*) (= 2K + log tanh K), which is negative
above the critical temperature (K < K_c = log(1 + sqrt 2) / 2): Z4 then is negative. This is the
form of Beale, Phys. Rev. Lett. 76, 78 (1996), Eq. (1)-(3), and of Wu, Wang, Zhang, Phys. Rev.
Lett. 122, 080602 (2019) (F/N = -2.11636 at L = 16, beta = 0.44). The formula holds for odd sizes
too (checked against exact enumeration and the transfer matrix, tests/learners/test_kaufman.py).

The four products are formed in mpmath at 50 significant digits (exponent range unbounded), so
neither overflow of cosh(L2 gamma / 2) at large sizes nor the signs of Z2, Z4 cost precision;
the result is rounded to a float only at the end.
"""

from __future__ import annotations

import mpmath

__all__ = ["ising2d_torus_free_energy", "ising2d_torus_log_z"]

_DPS = 50


def _check(L1: int, L2: int, beta: float, J: float) -> None:
    for name, L in (("L1", L1), ("L2", L2)):
        if int(L) != L or L < 2:
            raise ValueError(f"{name} must be an integer >= 2, got {L!r}")
    if not beta > 0:
        raise ValueError(f"beta must be > 0, got {beta!r}")
    if J == 0:
        raise ValueError("J must be nonzero")
    if J < 0 and (L1 % 2 or L2 % 2):
        raise ValueError(
            "the antiferromagnet (J < 0) is supported on even L1, L2 only "
            "(an odd torus is frustrated)"
        )


def ising2d_torus_log_z(L1: int, L2: int, beta: float, J: float = 1.0) -> float:
    """log Z of the nearest-neighbour Ising model E = -J sum_<ij> s_i s_j on an L1 x L2 torus.

    Kaufman's formula (1949), evaluated in mpmath at 50 digits and returned as a float. Every
    site is joined to its neighbour in +e1 and in +e2, so N = L1 L2 sites carry 2N bonds (on a
    2-wide torus a pair of neighbours is joined twice). Valid for J > 0 and any beta > 0, on both
    sides of the critical point, and for any L1, L2 >= 2, even or odd. J < 0 is accepted for even
    L1, L2, where flipping one sublattice maps it onto J > 0 (Z is unchanged). Z is symmetric in
    L1 <-> L2 (the formula is not manifestly so; the tests check it).
    """
    _check(L1, L2, beta, J)
    L1, L2 = int(L1), int(L2)
    with mpmath.workdps(_DPS):
        K = mpmath.mpf(beta) * abs(mpmath.mpf(J))
        # dual coupling tanh K* = exp(-2K), in the form that keeps its digits at either end
        Kd = mpmath.atanh(mpmath.exp(-2 * K)) if K > 1 else -mpmath.log(mpmath.tanh(K)) / 2
        c = mpmath.cosh(2 * K) * mpmath.cosh(2 * Kd)
        s = mpmath.sinh(2 * K) * mpmath.sinh(2 * Kd)  # = 1 exactly, kept for clarity
        gamma = [2 * (K - Kd)]
        for k in range(1, 2 * L1):
            gamma.append(mpmath.acosh(c - mpmath.cospi(mpmath.mpf(k) / L1) * s))
        half = mpmath.mpf(L2) / 2
        z1 = z2 = z3 = z4 = mpmath.mpf(1)
        for r in range(L1):
            odd, even = half * gamma[2 * r + 1], half * gamma[2 * r]
            z1 *= 2 * mpmath.cosh(odd)
            z2 *= 2 * mpmath.sinh(odd)
            z3 *= 2 * mpmath.cosh(even)
            z4 *= 2 * mpmath.sinh(even)
        total = z1 + z2 + z3 + z4
        if not total > 0:  # cannot happen for a valid Z; guards against a wrong branch
            raise ArithmeticError(f"Kaufman sum is not positive: {total}")
        N = L1 * L2
        log_z = (
            -mpmath.log(2)
            + mpmath.mpf(N) / 2 * mpmath.log(2 * mpmath.sinh(2 * K))
            + mpmath.log(total)
        )
        return float(log_z)


def ising2d_torus_free_energy(L1: int, L2: int, beta: float, J: float = 1.0) -> float:
    """Free energy per site F/N = -log Z / (beta N) of the L1 x L2 torus (see ising2d_torus_log_z)."""
    return -ising2d_torus_log_z(L1, L2, beta, J) / (beta * L1 * L2)
