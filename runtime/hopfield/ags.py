"""The Amit-Gutfreund-Sompolinsky lines of the Hopfield model (numpy only, torch-free).

Replica-symmetric saddle point (AGS, Phys. Rev. Lett. 55, 1530 (1985); Ann. Phys. 173, 30
(1987)) for a state condensed on one pattern, with Dz the unit Gaussian measure:

    m = int Dz tanh(beta (m + sqrt(alpha r) z)),
    q = int Dz tanh^2(beta (m + sqrt(alpha r) z)),
    r = q / (1 - beta (1 - q))^2.

- spin-glass line (m = 0 solutions with q > 0 appear): T_g(alpha) = 1 + sqrt(alpha);
- retrieval line T_M(alpha): the highest temperature at which the retrieval solution (m > 0)
  exists, found here as alpha_M(T) by bisection in alpha at fixed T, the saddle point followed by
  damped fixed-point iteration from m = q = 1;
- T = 0: with y = m / sqrt(2 alpha r), m = erf(y) and
  alpha(y) = (erf(y) / y - (2 / sqrt(pi)) exp(-y^2))^2 / 2; alpha_c = max_y alpha(y) = 0.1379
  (at m = 0.967).
"""

from __future__ import annotations

import functools
import math

import numpy as np
from scipy.special import erf

GAUSS_NODES = 160  # Gauss-Hermite nodes of the Gaussian averages (T >= 0.05)


def glass_temperature(alpha: float | np.ndarray) -> float | np.ndarray:
    """T_g = 1 + sqrt(alpha): the paramagnet -> spin-glass line."""
    return 1.0 + np.sqrt(alpha)


def _alpha_of_y(y: np.ndarray) -> np.ndarray:
    return 0.5 * (erf(y) / y - (2.0 / math.sqrt(math.pi)) * np.exp(-y * y)) ** 2


def capacity_zero_temperature() -> tuple[float, float]:
    """(alpha_c, m_c) at T = 0: the largest alpha with a retrieval solution, and its overlap."""
    y = np.linspace(0.5, 3.0, 200_001)
    a = _alpha_of_y(y)
    k = int(np.argmax(a))
    lo, hi = y[max(k - 1, 0)], y[min(k + 1, len(y) - 1)]
    for _ in range(100):  # golden section on the bracket
        y1, y2 = lo + 0.382 * (hi - lo), hi - 0.382 * (hi - lo)
        if _alpha_of_y(np.array(y1)) > _alpha_of_y(np.array(y2)):
            hi = y2
        else:
            lo = y1
    yc = 0.5 * (lo + hi)
    return float(_alpha_of_y(np.array(yc))), float(erf(yc))


def _gauss() -> tuple[np.ndarray, np.ndarray]:
    z, w = np.polynomial.hermite_e.hermegauss(GAUSS_NODES)
    return z, w / w.sum()


def retrieval_overlap(alpha: np.ndarray, T: np.ndarray, iterations: int = 1000,
                      damping: float = 0.5) -> np.ndarray:  # fmt: skip
    """m of the retrieval saddle point followed from m = q = 1 (0 where none survives), for
    arrays alpha and T of one shape (T > 0)."""
    alpha, T = np.broadcast_arrays(np.asarray(alpha, float), np.asarray(T, float))
    beta = 1.0 / T[..., None]
    z, w = _gauss()
    a = alpha[..., None]
    m = np.ones(alpha.shape + (1,))
    q = np.ones_like(m)
    for _ in range(iterations):
        c = np.minimum(beta * (1.0 - q), 1.0 - 1e-9)
        r = q / (1.0 - c) ** 2
        t = np.tanh(beta * (m + np.sqrt(a * r) * z))
        m_new = (w * t).sum(-1, keepdims=True)
        q_new = (w * t * t).sum(-1, keepdims=True)
        m = damping * m + (1.0 - damping) * m_new
        q = damping * q + (1.0 - damping) * q_new
    return m[..., 0]


def retrieval_alpha(T: np.ndarray, threshold: float = 0.02, steps: int = 16) -> np.ndarray:
    """alpha_M(T) for 0 < T < 1: the largest alpha with a retrieval solution (m > threshold),
    by bisection vectorised over T (1000 damped iterations per trial: alpha_M to about 1e-4
    for 0.1 <= T <= 0.95; 3000 iterations change it by less than 2e-5)."""
    T = np.asarray(T, float)
    lo = np.zeros_like(T)
    hi = np.full_like(T, 0.16)
    for _ in range(steps):
        mid = 0.5 * (lo + hi)
        ok = retrieval_overlap(mid, T) > threshold
        lo = np.where(ok, mid, lo)
        hi = np.where(ok, hi, mid)
    return 0.5 * (lo + hi)


@functools.lru_cache(maxsize=4)
def retrieval_line(points: int = 24) -> tuple[np.ndarray, np.ndarray]:
    """(alpha_M, T) along the AGS retrieval boundary, from (alpha_c(0), 0) to (0, 1)."""
    T = np.linspace(0.1, 0.95, points)
    a = retrieval_alpha(T)
    a0, _ = capacity_zero_temperature()
    return np.concatenate([[a0], a, [0.0]]), np.concatenate([[0.0], T, [1.0]])


__all__ = ["capacity_zero_temperature", "glass_temperature", "retrieval_alpha",
           "retrieval_line", "retrieval_overlap"]
