"""Conserved quantities found as the sparse null space of feature changes (issue #20, point 2).

Against known invariants: the oscillator's energy, Kepler's E, L and Runge-Lenz vector (4 null
vectors, 3 functionally independent: |A|^2 = 1 + 2 E L^2), the chaotic double pendulum's energy,
and 1D inelastic collisions (momentum conserved, kinetic energy not). Cosines are taken in
normalised feature coordinates (each feature divided by its std over the data).
"""

from __future__ import annotations

import numpy as np
import pytest
import sympy
from threadpoolctl import threadpool_limits

from physml_lang.runtime.discovery.conserved import (
    ConservedQuantity,
    ConservedResult,
    find_conserved,
    find_conserved_pairs,
    null_dimension,
)
from physml_lang.runtime.discovery.features import feature_library

from .conserved_systems import (
    double_pendulum,
    in_library,
    kepler,
    kepler_invariants,
    oscillator,
    oscillator_energy,
    pendulum_energy,
)


@pytest.fixture(autouse=True)
def one_blas_thread():
    """Small matrices: a BLAS thread pool only costs (and on a loaded machine, a lot)."""
    with threadpool_limits(limits=1):
        yield


def cosine(known: np.ndarray, quantity: ConservedQuantity, result: ConservedResult) -> float:
    """|cos| between a known raw coefficient vector and a found one, in normalised coordinates."""
    k = known * result.feature_scales
    return float(abs(k @ quantity.normalised) / np.linalg.norm(k))


def null_projection(known: np.ndarray, result: ConservedResult) -> float:
    """|cos| between a known vector and its projection on the found null space."""
    k = known * result.feature_scales
    basis = np.array([q.normalised for q in result.basis]).T
    if basis.size == 0:
        return 0.0
    projected = basis @ np.linalg.lstsq(basis, k, rcond=None)[0]
    return float(np.linalg.norm(projected) / np.linalg.norm(k))


def test_oscillator_energy_is_the_one_quantity():
    names = ["q", "p"]
    result = find_conserved(oscillator(seed=1), names, degree=2)
    assert (result.all_null, result.count, result.count_from_data) == (1, 1, 1)
    energy = in_library(oscillator_energy(), feature_library(names, 2))
    assert cosine(energy, result.quantities[0], result) >= 0.999
    assert result.quantities[0].residual < 1e-6
    q, p = sympy.symbols("q p", real=True)
    assert result.quantities[0].expression.free_symbols == {q, p}


def test_energy_squared_is_not_a_second_quantity():
    """At degree 4 the null space holds E and E^2; the Jacobian rank counts one."""
    result = find_conserved(oscillator(seed=2), ["q", "p"], degree=4)
    assert result.all_null == 2
    assert result.count == 1
    assert result.quantities[0].terms == 2  # E, the sparsest, is the one kept


@pytest.mark.parametrize("noise", [1e-6, 1e-3])
def test_noisy_oscillator_still_one_quantity(noise):
    x = oscillator(seed=3)
    x = x + noise * np.random.default_rng(3).standard_normal(x.shape)
    result = find_conserved(x, ["q", "p"], degree=2)
    assert (result.all_null, result.count) == (1, 1)
    energy = in_library(oscillator_energy(), feature_library(["q", "p"], 2))
    assert cosine(energy, result.quantities[0], result) >= 0.999


def test_noisy_kepler_keeps_sparse_invariants():
    """Noise 1e-5 on the states: null singular values ~1e-5 against 1e-3 for the last non-null
    one (the degree-3 library is nearly collinear); thresholded refits recover E, L and A."""
    names = ["x", "y", "px", "py"]
    x = kepler(seed=0)
    x = x + 1e-5 * np.random.default_rng(0).standard_normal(x.shape)
    result = find_conserved(x, names, degree=3, inverse_radius=True)
    assert (result.all_null, result.count) == (4, 3)
    library = feature_library(names, 3, inverse_radius=True)
    for name, expression in kepler_invariants().items():
        best = max(cosine(in_library(expression, library), q, result) for q in result.basis)
        assert best >= 0.999, name


def test_kepler_energy_momentum_and_runge_lenz():
    names = ["x", "y", "px", "py"]
    result = find_conserved(kepler(seed=0), names, degree=3, inverse_radius=True)
    assert result.all_null == 4  # E, L, A_x, A_y
    assert result.count == 3  # |A|^2 = 1 + 2 E L^2
    assert result.count_from_data == 3  # each orbit is a closed curve in 4D
    library = feature_library(names, 3, inverse_radius=True)
    known = {name: in_library(e, library) for name, e in kepler_invariants().items()}
    for name, vector in known.items():
        best = max(cosine(vector, q, result) for q in result.basis)
        assert best >= 0.999, name
    matched = {max(known, key=lambda n: cosine(known[n], q, result)) for q in result.quantities}
    assert {"E", "L"} <= matched and len(matched) == 3
    assert all(max(cosine(v, q, result) for v in known.values()) >= 0.999
               for q in result.quantities)  # fmt: skip
    assert result.quantities[0].formula == "-px*y + py*x"  # L, the sparsest


def test_double_pendulum_chaotic_has_only_energy():
    names = ["t1", "t2", "w1", "w2"]
    result = find_conserved(double_pendulum(seed=0), names, degree=2, trig=True)
    assert (result.all_null, result.count) == (1, 1)
    energy = in_library(pendulum_energy(), feature_library(names, 2, trig=True))
    assert cosine(energy, result.quantities[0], result) >= 0.999
    assert result.quantities[0].formula == (
        "2*w1**2 + 2*w1*w2*cos(t1 - t2) + w2**2 - 4*cos(t1) - 2*cos(t2)")


def collisions(seed: int, events: int, restitution: tuple[float, float]):
    """1D two-body collisions: states (m1, m2, v1, v2) before and after, random masses, e."""
    rng = np.random.default_rng(seed)
    m1, m2 = rng.uniform(0.5, 2.0, (2, events))
    v1, v2 = rng.normal(0.0, 1.0, (2, events))
    e = rng.uniform(*restitution, events)
    momentum = m1 * v1 + m2 * v2
    u1 = (momentum + m2 * e * (v2 - v1)) / (m1 + m2)
    u2 = (momentum + m1 * e * (v1 - v2)) / (m1 + m2)
    return np.stack([m1, m2, v1, v2], axis=1), np.stack([m1, m2, u1, u2], axis=1)


def test_inelastic_collisions_conserve_momentum_not_energy():
    names = ["m1", "m2", "v1", "v2"]
    m1, m2, v1, v2 = sympy.symbols("m1 m2 v1 v2", real=True)
    before, after = collisions(0, 200, (0.2, 0.8))
    result = find_conserved_pairs(before, after, names, degree=3)
    assert result.count == 3  # m1, m2 (unchanged) and the momentum
    assert result.count_from_data is None
    library = feature_library(names, 3)
    momentum = in_library(m1 * v1 + m2 * v2, library)
    kinetic = in_library((m1 * v1**2 + m2 * v2**2) / 2, library)
    assert max(cosine(momentum, q, result) for q in result.quantities) >= 0.999
    assert null_projection(kinetic, result) < 0.5
    assert {q.formula for q in result.quantities} >= {"m1", "m2", "m1*v1 + m2*v2"}


def test_elastic_collisions_conserve_kinetic_energy_too():
    names = ["m1", "m2", "v1", "v2"]
    m1, m2, v1, v2 = sympy.symbols("m1 m2 v1 v2", real=True)
    result = find_conserved_pairs(*collisions(1, 200, (1.0, 1.0)), names, degree=3)
    assert result.count == 4
    kinetic = in_library((m1 * v1**2 + m2 * v2**2) / 2, feature_library(names, 3))
    assert max(cosine(kinetic, q, result) for q in result.quantities) >= 0.999


def test_null_dimension_from_gap_and_tolerance():
    singular = np.array([1.0, 0.5, 0.2, 1e-9, 1e-10])
    assert null_dimension(singular)[0] == 2
    assert null_dimension(np.array([1.0, 0.5, 0.2, 0.1]))[0] == 0
    assert null_dimension(singular, tol=1e-9 * 0.5)[0] == 1


def test_bad_data_raises_clear_errors():
    x = oscillator(seed=0)
    with pytest.raises(ValueError, match="names"):
        find_conserved(x, ["q"], degree=2)
    with pytest.raises(ValueError, match="too few samples"):
        find_conserved(x[:1, :4], ["q", "p"], degree=2)
    constant = np.concatenate([x, np.ones(x.shape[:2] + (1,))], axis=2)
    with pytest.raises(ValueError, match="constant feature"):
        find_conserved(constant, ["q", "p", "c"], degree=1)
    with pytest.raises(ValueError, match="even"):
        find_conserved(constant, ["q", "p", "c"], degree=1, trig=True)
    with pytest.raises(ValueError, match="never move"):
        find_conserved(np.repeat(x[:, :1], 20, axis=1), ["q", "p"], degree=2)
    with pytest.raises(ValueError, match="non-finite"):
        find_conserved(np.where(x > 0.5, np.nan, x), ["q", "p"], degree=2)
