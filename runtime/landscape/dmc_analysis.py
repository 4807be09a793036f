"""The biases of diffusion Monte Carlo, removed by extrapolation: the time-step error
E(dtau) = E0 + a dtau (+ b dtau^2) of the short-time Green's function, and the population-control
bias E(N) = E_inf + c / N of a finite walker population. Both are weighted least-squares fits of
independent estimates with their standard errors."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from physml_lang.runtime.landscape.errors import LandscapeError


class Extrapolation(NamedTuple):
    """``value``: the fit at zero (E0 at dtau -> 0, or E_inf at 1/N -> 0); ``stderr``: its
    standard error, scaled up by sqrt(chi2/dof) when the fit is worse than the error bars
    (Birge ratio; never scaled down); ``coefficients``: (E0, a[, b]); ``chi2_per_dof``: NaN when
    the fit has no degrees of freedom; ``rows``: one dict per input point, with its fitted value
    and pull (residual / stderr)."""

    value: float
    stderr: float
    coefficients: tuple[float, ...]
    chi2_per_dof: float
    rows: list[dict[str, float]]


def _weighted_fit(x: Sequence[float], y: Sequence[float], s: Sequence[float], order: int,
                  what: str, name: str) -> Extrapolation:  # fmt: skip
    """Fit y = c0 + c1 x (+ c2 x^2) with weights 1/s^2; the covariance is (X^T W X)^-1."""
    xs, ys, ss = (np.asarray(v, dtype=np.float64).reshape(-1) for v in (x, y, s))
    if order not in (1, 2):
        raise LandscapeError(f"{what} extrapolation: order must be 1 or 2, got {order}",
                             "use order=1 (linear) or order=2 (quadratic)")  # fmt: skip
    if not len(xs) == len(ys) == len(ss):
        raise LandscapeError(f"{what} extrapolation: {len(xs)} {name}s, {len(ys)} means and "
                             f"{len(ss)} stderrs", "give one mean and one stderr per run")  # fmt: skip
    params = order + 1
    if len(np.unique(xs)) < params:
        raise LandscapeError(f"{what} extrapolation of order {order} needs at least {params} "
                             f"distinct {name}s, got {sorted(set(xs.tolist()))}",
                             f"run at {params + 1} or more {name}s (one more than the parameters, "
                             "so that the fit can be checked)")  # fmt: skip
    if not (np.all(np.isfinite(ys)) and np.all(np.isfinite(ss)) and np.all(ss > 0)):
        raise LandscapeError(f"{what} extrapolation: means {ys.tolist()} and stderrs "
                             f"{ss.tolist()} must be finite, stderrs positive",
                             "a run with zero stderr (an exact trial function) has no bias to "
                             "extrapolate; drop it or use its value directly")  # fmt: skip
    design = np.vander(xs, params, increasing=True)  # (m, params): 1, x, x^2
    weights = 1.0 / ss**2
    normal = design.T @ (weights[:, None] * design)
    cov = np.linalg.inv(normal)
    coef = cov @ (design.T @ (weights * ys))
    fitted = design @ coef
    pulls = (ys - fitted) / ss
    dof = len(xs) - params
    chi2 = float(np.sum(pulls**2) / dof) if dof > 0 else float("nan")
    scale = np.sqrt(max(1.0, chi2)) if dof > 0 else 1.0
    rows = [{name: float(a), "mean": float(b), "stderr": float(c), "fit": float(f), "pull": float(p)}
            for a, b, c, f, p in zip(xs, ys, ss, fitted, pulls, strict=True)]  # fmt: skip
    return Extrapolation(float(coef[0]), float(np.sqrt(cov[0, 0]) * scale),
                         tuple(float(c) for c in coef), chi2, rows)  # fmt: skip


def extrapolate_timestep(dtaus: Sequence[float], means: Sequence[float],
                         stderrs: Sequence[float], order: int = 1) -> Extrapolation:  # fmt: skip
    """E0 from runs at several time steps: weighted least squares of E(dtau) = E0 + a dtau
    (order 1) or + b dtau^2 (order 2). With importance sampling and the Metropolis step the
    leading error is linear in dtau for the energy; use order 2 over a wide dtau range."""
    return _weighted_fit(dtaus, means, stderrs, order, "time-step", "dtau")


def extrapolate_population(walkers: Sequence[int], means: Sequence[float],
                           stderrs: Sequence[float]) -> Extrapolation:  # fmt: skip
    """E_inf from runs at several target populations: the population-control bias is ~ 1/N,
    so fit E(N) = E_inf + c / N (weighted least squares in x = 1/N). ``rows`` carry x = 1/N
    under the key "1/N"."""
    if any(not float(n) > 0 for n in walkers):
        raise LandscapeError(f"population extrapolation: walker counts must be positive, got "
                             f"{list(walkers)}", "pass the target populations of the runs")  # fmt: skip
    inverse = [1.0 / float(n) for n in walkers]
    return _weighted_fit(inverse, means, stderrs, 1, "population", "1/N")


__all__ = ["Extrapolation", "extrapolate_population", "extrapolate_timestep"]
