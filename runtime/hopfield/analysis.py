"""Disorder averages, Binder cumulants and finite-size crossings of the phases task (numpy).

- Binder cumulant of the replica overlap, disorder-averaged numerator and denominator:
  g = (3 - [<q^4>] / [<q^2>]^2) / 2 (0 for Gaussian q, the paramagnet as N -> inf; 1 for
  q = +-q0); at small N it dips below 0 above T_g, where <q^2> varies from sample to sample
  (a mixture of Gaussians of different widths has [<q^4>] > 3 [<q^2>]^2). Two further
  estimators: the per-sample cumulant averaged, [g], and the scaled spin-glass susceptibility
  N^(2/3) [<q^2>] (mean-field finite-size scaling: chi_SG ~ N^(1/3) at T_g);
- T_g: the temperature where the curves of two sizes cross (each grows with N below T_g):
  scanning T upward from the lowest T, the first T where large - small < 0, linear
  interpolation with the T before;
- alpha_c(0): where the fractions retrieved at T = 0 (m > 0.9) of two sizes cross (-> 1 below
  alpha_c and -> 0 above as N grows), or the mean overlaps [m] (flat below alpha_c, so their
  crossing is poorly determined): scanning alpha downward from the largest, the first alpha
  where large - small > 0, linear interpolation with the alpha after;
- errors: bootstrap over the disorder samples of each size (independent resamples); the
  standard error is the standard deviation of the crossings of the resamples that have one.
"""

from __future__ import annotations

import numpy as np


def binder(q2: np.ndarray, q4: np.ndarray) -> np.ndarray:
    """g = (3 - [<q^4>] / [<q^2>]^2) / 2 from per-disorder averages (D, K) -> (K,)."""
    return 0.5 * (3.0 - q4.mean(0) / q2.mean(0) ** 2)


def binder_per_sample(q2: np.ndarray, q4: np.ndarray) -> np.ndarray:
    """[g] = [(3 - <q^4> / <q^2>^2) / 2]: the cumulant of each disorder sample, then averaged
    (no negative bias from the sample-to-sample spread of <q^2>), (D, K) -> (K,)."""
    return (0.5 * (3.0 - q4 / q2**2)).mean(0)


def scaled_susceptibility(q2: np.ndarray, N: int) -> np.ndarray:
    """N^(2/3) [<q^2>] = chi_SG / N^(1/3), size-independent at T_g in mean-field (SK-type)
    spin glasses (chi_SG = N [<q^2>] ~ N^(1/3) there), (D, K) -> (K,)."""
    return N ** (2.0 / 3.0) * q2.mean(0)


def crossing(x: np.ndarray, diff: np.ndarray, from_low: bool) -> float | None:
    """Where ``diff`` (of the larger minus the smaller size) changes sign along sorted ``x``:
    from the low end, the first negative value after positive ones (``from_low``), else from
    the high end the first positive value after negative ones. None without a sign change."""
    x, diff = np.asarray(x, float), np.asarray(diff, float)

    def at(a: int, b: int) -> float:
        return float(x[a] + (x[b] - x[a]) * diff[a] / (diff[a] - diff[b]))

    if from_low:
        for k in range(1, len(x)):
            if diff[k] <= 0:
                return at(k - 1, k) if diff[k - 1] > 0 else None
        return None
    for k in range(len(x) - 2, -1, -1):
        if diff[k] > 0:
            return at(k, k + 1) if diff[k + 1] <= 0 else None
    return None


def bootstrap_crossing(x: np.ndarray, small: np.ndarray | tuple, large: np.ndarray | tuple,
                       curve, from_low: bool, resamples: int,
                       seed: int) -> dict[str, float | int | None]:  # fmt: skip
    """A crossing and its bootstrap error. ``small``/``large``: per-disorder data of the two
    sizes (arrays (D, K) or tuples of them), ``curve``: data -> (K,) curve."""
    def take(data, idx):
        return tuple(a[idx] for a in data) if isinstance(data, tuple) else data[idx]

    curve_small, curve_large = curve if isinstance(curve, tuple) else (curve, curve)

    def apply(f, data):
        return f(*data) if isinstance(data, tuple) else f(data)

    def diff(s, la):
        return apply(curve_large, la) - apply(curve_small, s)

    first = crossing(x, diff(small, large), from_low)
    rng = np.random.default_rng(seed)
    d_small = (small[0] if isinstance(small, tuple) else small).shape[0]
    d_large = (large[0] if isinstance(large, tuple) else large).shape[0]
    values = []
    for _ in range(resamples):
        i = rng.integers(0, d_small, d_small)
        j = rng.integers(0, d_large, d_large)
        c = crossing(x, diff(take(small, i), take(large, j)), from_low)
        if c is not None:
            values.append(c)
    err = float(np.std(values, ddof=1)) if len(values) > 1 else None
    return {"mean": first, "stderr": err, "resamples_with_crossing": len(values),
            "resamples": resamples}


def mean_stderr(x: np.ndarray) -> dict[str, float]:
    """Mean and standard error over the disorder samples (axis 0)."""
    x = np.asarray(x, float)
    err = x.std(0, ddof=1) / np.sqrt(x.shape[0]) if x.shape[0] > 1 else np.full(x.shape[1:], np.nan)
    return {"mean": x.mean(0), "stderr": err}


def binder_stderr(q2: np.ndarray, q4: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    """Bootstrap standard error of g over the disorder samples, (K,)."""
    rng = np.random.default_rng(seed)
    D = q2.shape[0]
    gs = np.array([binder(q2[i], q4[i]) for i in (rng.integers(0, D, D)
                                                 for _ in range(resamples))])  # fmt: skip
    return gs.std(0, ddof=1)


__all__ = ["binder", "binder_per_sample", "binder_stderr", "bootstrap_crossing", "crossing",
           "mean_stderr", "scaled_susceptibility"]
