"""SINDy: the library, thresholded least squares, and equations recovered exactly."""

from __future__ import annotations

import numpy as np
import sympy as sp

from physml_lang.runtime.discovery.sparse import (
    discover_equations,
    feature_library,
    finite_differences,
    stlsq,
)


def _oscillator(count: int = 6, points: int = 100):
    t = np.linspace(0, 10, points)
    amp = np.linspace(0.5, 2.0, count)[:, None, None]
    phase = np.linspace(0, 3, count)[:, None, None]
    q = amp * np.cos(t[None, :, None] + phase)
    p = -amp * np.sin(t[None, :, None] + phase)
    return t, q, p


def test_library_of_degree_two_with_trig():
    lib = feature_library(["q", "p"], 2, ["q"])
    assert lib.names == ["1", "q", "p", "q**2", "p*q", "p**2", "sin(q)", "cos(q)"]
    theta = lib.evaluate(np.array([[0.5, 2.0]]))
    assert np.allclose(theta, [[1, 0.5, 2, 0.25, 1, 4, np.sin(0.5), np.cos(0.5)]])


def test_harmonic_oscillator_recovered_exactly():
    t, q, p = _oscillator()
    z = np.concatenate([q, p], -1).reshape(-1, 2)
    dz = np.concatenate([p, -q], -1).reshape(-1, 2)
    eqs, _ = discover_equations(z, dz, ["q", "p"], degree=3, threshold=0.05)
    assert eqs[0].coefficients == {"p": 1.0} or np.allclose(eqs[0].coefficients["p"], 1.0)
    assert set(eqs[0].coefficients) == {"p"} and set(eqs[1].coefficients) == {"q"}
    assert abs(eqs[1].coefficients["q"] + 1) < 1e-12
    q_, p_ = sp.symbols("q p", real=True)
    assert sp.simplify(eqs[0].expression - p_) == 0 and sp.simplify(eqs[1].expression + q_) == 0
    assert eqs[1].formula == "dp/dt = -1.0*q"


def test_pendulum_needs_the_trig_features():
    """dp/dt = -(g/l) sin q with g/l = 3 over large orbits: found with sin, cos in the library;
    without them the polynomial fit is dense and inexact."""
    rng = np.random.default_rng(0)
    z = np.stack([rng.uniform(-2.5, 2.5, 2000), rng.uniform(-3, 3, 2000)], 1)
    dz = np.stack([z[:, 1], -3.0 * np.sin(z[:, 0])], 1)
    eqs, _ = discover_equations(z, dz, ["q", "p"], degree=3, threshold=0.05, trig_names=["q"])
    assert set(eqs[1].coefficients) == {"sin(q)"}
    assert abs(eqs[1].coefficients["sin(q)"] + 3.0) < 1e-10
    poly, _ = discover_equations(z, dz, ["q", "p"], degree=3, threshold=0.05)
    assert len(poly[1].coefficients) > 1 and poly[1].residual > 1e-3


def test_thresholding_zeroes_small_terms_and_normalised_columns():
    rng = np.random.default_rng(2)
    theta = rng.normal(size=(500, 4))
    xi_true = np.array([[1.0], [0.0], [-2.0], [0.0]])
    dz = theta @ xi_true + 1e-3 * rng.normal(size=(500, 1))
    xi = stlsq(theta, dz, threshold=0.1)
    assert np.flatnonzero(xi[:, 0]).tolist() == [0, 2]
    assert np.allclose(xi[[0, 2], 0], [1.0, -2.0], atol=1e-3)
    xi_n = stlsq(theta * [1, 100, 1, 1], dz, threshold=0.1, normalize=True)
    assert np.flatnonzero(xi_n[:, 0]).tolist() == [0, 2]


def test_finite_differences_of_noiseless_trajectories():
    t, q, p = _oscillator(points=400)
    dq = finite_differences(t, q)
    assert np.abs(dq - p).max() < 2e-3
