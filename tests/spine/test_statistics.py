"""Binning analysis and jackknife on processes with known autocorrelation."""

from __future__ import annotations

import numpy as np

from physml_lang.runtime.statistics import binning_analysis, jackknife


def _ar1(phi: float, n: int, chains: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = np.zeros((n, chains))
    noise = rng.normal(size=(n, chains))
    for t in range(1, n):
        x[t] = phi * x[t - 1] + noise[t]
    return x


def test_binning_recovers_ar1_autocorrelation_time():
    phi = 0.8
    x = _ar1(phi, 2**15, 4, 0)
    est = binning_analysis(x)
    tau_exact = 0.5 * (1 + phi) / (1 - phi)  # integrated autocorrelation time of AR(1)
    assert abs(est.tau_int - tau_exact) / tau_exact < 0.25
    # the error bar is honest: the true mean 0 lies within a few standard errors
    assert abs(est.mean) < 4 * est.stderr


def test_error_bars_cover_the_truth_at_the_nominal_rate():
    hits = 0
    for seed in range(100):
        x = _ar1(0.5, 2048, 2, seed)
        est = binning_analysis(x)
        hits += abs(est.mean) < est.stderr
    assert 55 <= hits <= 85  # ~68% for one standard error


def test_jackknife_of_variance():
    rng = np.random.default_rng(1)
    x = rng.normal(2.0, 3.0, size=(4096, 8))
    est = jackknife(lambda a, b: b - a * a, [x, x * x])
    assert abs(est.mean - 9.0) < 4 * est.stderr
    assert est.stderr < 0.2
