"""Exact results for two-dimensional pure gauge theories (character expansion).

In 2D the plaquettes of an L1 x L2 torus are independent except for one global constraint
(the product of all plaquettes is the identity), so with V = L1 L2 plaquettes

    Z = sum_r d_r^{chi} F_r^V,   F_r = int dU e^{-s(U)} chi_r(U)^* / d_r,

(genus 1: the d_r factors cancel). Per group, with the Wilson action s(U) = -beta Re tr U / N:

- U(1): F_n = I_n(beta), n in Z.
- Z2:   F_0 = cosh(beta), F_1 = sinh(beta).
- SU(2) (s = -beta/2 Re tr U): F_j = 2 I_{2j+1}(beta) / beta, j = 0, 1/2, 1, ...

and <Re tr P / N> = (1/V) d ln Z / d beta.

U(1) topological charge. With wrapped plaquette angles phi_p in (-pi, pi] the constraint is
sum_p phi_p = 2 pi Q, Q integer, and Q = sum_p phi_p / 2 pi. Adding i theta Q to the action,

    Z(theta) = sum_n f(n + theta / 2 pi)^V,  f(nu) = (1/2pi) int_{-pi}^{pi} e^{beta cos phi}
               e^{i nu phi} d phi = (1/pi) int_0^pi e^{beta cos phi} cos(nu phi) d phi,

(the periodic delta (1/2pi) sum_n e^{i n sum phi} turned every plaquette integral into f(n + t)
with t = theta / 2pi), f(n) = I_n(beta). Then <Q^2> = -Z''(theta)/Z at theta = 0:

    <Q^2> = -(1/4pi^2) sum_n [V(V-1) f^{V-2} f'^2 + V f^{V-1} f''](n) / sum_n f(n)^V,
    f'(nu) = -(1/pi) int_0^pi phi sin(nu phi) e^{beta cos phi} d phi,
    f''(nu) = -(1/pi) int_0^pi phi^2 cos(nu phi) e^{beta cos phi} d phi.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import integrate, special

N_TERMS = 40  # sum over |n| <= N_TERMS (I_n decays factorially, V >= 1)


def _log_sum_exp(logs: np.ndarray, weights: np.ndarray | None = None) -> tuple[float, float]:
    """log |sum w_i e^{l_i}| and its sign."""
    m = float(np.max(logs))
    w = np.ones_like(logs) if weights is None else weights
    s = float(np.sum(w * np.exp(logs - m)))
    return m + math.log(abs(s)) if s != 0 else -math.inf, math.copysign(1.0, s)


def u1_plaquette_infinite(beta: float) -> float:
    """<cos P> = I_1(beta)/I_0(beta) for 2D U(1) in infinite volume."""
    return float(special.ive(1, beta) / special.ive(0, beta))


def u1_partition_function_log(beta: float, L1: int, L2: int | None = None) -> float:
    """ln Z for 2D U(1) on the L1 x L2 torus (Haar measure normalised to 1 per link)."""
    V = L1 * (L2 or L1)
    n = np.arange(-N_TERMS, N_TERMS + 1)
    logs = V * (np.log(special.ive(n, beta)) + beta)
    return _log_sum_exp(logs)[0]


def u1_plaquette_torus(beta: float, L1: int, L2: int | None = None) -> float:
    """<cos P> = sum_n I_n^(V-1) (I_(n-1) + I_(n+1))/2 / sum_n I_n^V on the L1 x L2 torus."""
    V = L1 * (L2 or L1)
    n = np.arange(-N_TERMS, N_TERMS + 1)
    i_n = special.ive(n, beta)
    di = (special.ive(n - 1, beta) + special.ive(n + 1, beta)) / 2
    logs = V * np.log(i_n)
    w = np.exp(logs - logs.max())
    return float(np.sum(w * di / i_n) / np.sum(w))


def _f_derivs(nu: float, beta: float) -> tuple[float, float, float]:
    """f(nu), f'(nu), f''(nu) scaled by e^{-beta} (see module docstring)."""

    def g(phi: float) -> float:
        return math.exp(beta * (math.cos(phi) - 1))

    opts = {"limit": 200, "epsabs": 1e-13, "epsrel": 1e-10}
    if float(nu).is_integer():
        f0 = float(special.ive(nu, beta))  # f(n) = I_n(beta) exactly
    else:
        f0 = integrate.quad(lambda p: g(p) * math.cos(nu * p), 0, math.pi, **opts)[0] / math.pi
    f1 = -integrate.quad(lambda p: p * g(p) * math.sin(nu * p), 0, math.pi, **opts)[0] / math.pi
    f2 = -integrate.quad(lambda p: p * p * g(p) * math.cos(nu * p), 0, math.pi,
                         **opts)[0] / math.pi  # fmt: skip
    return f0, f1, f2


def u1_topological_susceptibility_torus(beta: float, L1: int, L2: int | None = None,
                                         n_terms: int = 12) -> float:  # fmt: skip
    """Exact <Q^2> of 2D U(1) (Wilson action, wrapped-angle charge) on the L1 x L2 torus."""
    V = L1 * (L2 or L1)
    num, den = 0.0, 0.0
    vals = [_f_derivs(float(n), beta) for n in range(-n_terms, n_terms + 1)]
    ref = max(abs(v[0]) for v in vals)
    for f0, f1, f2 in vals:
        # Scale by ref^V to avoid overflow/underflow: f^V -> (f/ref)^V.
        r = f0 / ref
        if r <= 0:
            continue
        num += V * (V - 1) * r ** (V - 2) * (f1 / ref) ** 2 + V * r ** (V - 1) * (f2 / ref)
        den += r**V
    return -num / den / (4 * math.pi**2)


def z2_plaquette_infinite(beta: float) -> float:
    """2D Z2 gauge theory <P> = tanh(beta) in infinite volume."""
    return math.tanh(beta)


def z2_plaquette_torus(beta: float, L1: int, L2: int | None = None) -> float:
    """2D Z2 on the torus: Z ~ cosh^V + sinh^V, <P> = (1/V) d ln Z / d beta."""
    V = L1 * (L2 or L1)
    t = math.tanh(beta)
    return (t + t ** (V - 1)) / (1 + t**V)


def su2_plaquette_infinite(beta: float) -> float:
    """2D SU(2), action -beta/2 sum Re tr P: <Re tr P / 2> = I_2(beta) / I_1(beta)."""
    return float(special.ive(2, beta) / special.ive(1, beta))


def su2_plaquette_torus(beta: float, L1: int, L2: int | None = None) -> float:
    """2D SU(2) on the torus: Z = sum_{n>=1} F_n^V with F_n = 2 I_n(beta) / beta (n = 2j+1),
    <Re tr P / 2> = sum_n F_n^V (I_n'/I_n - 1/beta) / sum_n F_n^V."""
    V = L1 * (L2 or L1)
    n = np.arange(1, N_TERMS + 1)
    i_n = special.ive(n, beta)
    logs = V * np.log(i_n)
    w = np.exp(logs - logs.max())
    dlog = (special.ive(n - 1, beta) + special.ive(n + 1, beta)) / (2 * i_n) - 1 / beta
    return float(np.sum(w * dlog) / np.sum(w))


def su2_plaquette_strong_coupling_4d(beta: float) -> float:
    """4D SU(2) strong coupling: <Re tr P/2> = u + 4 u^5 + O(u^9)... with u = I_2/I_1.

    The leading O(u^5) correction comes from the 2(d-2) = 4 elementary cubes through each
    plaquette. Use at small beta (u^5 << statistical errors) only.
    """
    u = su2_plaquette_infinite(beta)
    return u + 4 * u**5


def torus_references(group: str, beta: float, L1: int, L2: int,
                     topological: bool = False) -> dict[str, float]:  # fmt: skip
    """The exact values a sampled 2D Wilson-action point is compared with: the plaquette
    (``plaquette_exact``) and, for U(1) runs that measure the topological charge, <Q^2>
    (``Q2_exact``), on the L1 x L2 torus at ``beta``."""
    plaquette = {"u1": u1_plaquette_torus, "z2": z2_plaquette_torus,
                 "su2": su2_plaquette_torus}[group]  # fmt: skip
    ref = {"plaquette_exact": plaquette(beta, L1, L2)}
    if group == "u1" and topological:
        ref["Q2_exact"] = u1_topological_susceptibility_torus(beta, L1, L2)
    return ref
