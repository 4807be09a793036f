"""Conserved quantities from trajectories: the sparse null space of the feature-change matrix.

A combination c . f(x) of library features is conserved when c . (f(x_t) - f(x_0)) = 0 along every
trajectory: c lies in the null space of the stacked feature changes. The null space is found by SVD
(dimension from the singular-value gap), a sparsest basis by one L1 program per feature, and the
functionally independent quantities by the rank of their gradients at sample states (E^2 is not a
second quantity beside E). A count from the data alone, without a library (in the spirit of AI
Poincare): d minus the local dimension of each trajectory's point cloud.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np
import sympy
from scipy.optimize import linprog
from scipy.spatial import cKDTree

from .features import FeatureLibrary, feature_library

NULL_CUTOFF = 1e-2  # largest relative singular value a null direction may have (without tol)
MIN_GAP = 10.0  # smallest ratio between the last non-null and the first null singular value
SNAP_THRESHOLDS = (0.1, 0.03, 0.01, 1e-3, 1e-4, 1e-7)  # tried in turn by _refine


@dataclass
class ConservedQuantity:
    """One conserved combination of features.

    coefficients: (n_features,) in raw feature units, scaled to readable numbers;
    normalised: (n_features,) unit vector in normalised feature coordinates (features / their std);
    residual: std over all samples of the quantity divided by its std across the data set's states
    (0 for exact conservation; 1 for a quantity that changes as much along as across trajectories).
    """

    coefficients: np.ndarray
    formula: str
    expression: sympy.Expr
    residual: float
    normalised: np.ndarray = field(repr=False)
    terms: int = 0


@dataclass
class ConservedResult:
    """Quantities found, sparsest first; ``basis`` holds every null vector (dependent ones too)."""

    quantities: list[ConservedQuantity]
    all_null: int
    count: int
    count_from_data: int | None
    feature_names: list[str]
    singular_values: np.ndarray
    basis: list[ConservedQuantity] = field(default_factory=list)
    feature_scales: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)
    local_dimensions: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)


# ---------------------------------------------------------------------------------- validation


def _check_states(x: np.ndarray, names: list[str], what: str) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    if x.shape[-1] != len(names):
        raise ValueError(f"{what} have {x.shape[-1]} state components but {len(names)} names "
                         f"were given ({', '.join(names)})")  # fmt: skip
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{what} contain non-finite values (nan or inf)")
    return x


def _feature_scales(values: np.ndarray, library: FeatureLibrary) -> np.ndarray:
    """Std of each feature over all states (N, n) -> (n,); a constant feature is an error."""
    scales = values.std(axis=0)
    size = np.abs(values).mean(axis=0)
    constant = scales <= 1e-12 * np.maximum(size, 1e-300)
    if np.any(constant):
        which = ", ".join(library.labels[j] for j in np.flatnonzero(constant)[:5])
        raise ValueError(f"constant feature over the whole data set: {which}; it cannot be "
                         "told apart from the trivially conserved constant (vary the states "
                         "or lower the degree)")  # fmt: skip
    return scales


# ---------------------------------------------------------------------------------- null space


def null_dimension(singular: np.ndarray, tol: float | None = None) -> tuple[int, float]:
    """(k, cutoff): the number of null directions from descending singular values (n,).

    With ``tol``: those below tol * s_max. Without: the largest gap s_{n-k-1}/s_{n-k} of at least
    MIN_GAP whose null side lies below NULL_CUTOFF * s_max; none such -> k = 0.
    """
    relative = singular / singular[0]
    if tol is not None:
        k = int(np.sum(relative < tol))
        return k, tol
    best, k = MIN_GAP, 0
    for j in range(1, len(relative)):  # relative[j] the candidate largest null value
        if relative[j] >= NULL_CUTOFF:
            continue
        gap = relative[j - 1] / max(relative[j], 1e-300)
        if gap >= best:
            best, k = gap, len(relative) - j
    cutoff = float(relative[len(relative) - k] * np.sqrt(best)) if k else NULL_CUTOFF
    return k, cutoff


def _sparse_candidate(null: np.ndarray, pivot: int) -> np.ndarray | None:
    """min |N a|_1 subject to (N a)_pivot = 1, for a null basis N (n, k); None if infeasible."""
    n, k = null.shape
    cost = np.concatenate([np.zeros(k), np.ones(n)])
    eye = np.eye(n)
    upper = np.hstack([null, -eye])  # N a - t <= 0
    lower = np.hstack([-null, -eye])  # -N a - t <= 0
    a_ub = np.vstack([upper, lower])
    a_eq = np.concatenate([null[pivot], np.zeros(n)])[None, :]
    bounds = [(None, None)] * k + [(0, None)] * n
    out = linprog(cost, A_ub=a_ub, b_ub=np.zeros(2 * n), A_eq=a_eq, b_eq=[1.0], bounds=bounds,
                  method="highs")  # fmt: skip
    if out.status != 0:
        return None
    return null @ out.x[:k]


def _refine(triangle: np.ndarray, vector: np.ndarray, limit: float) -> np.ndarray:
    """Snap small entries of a null vector to 0 and refit it on its support: (n,) -> (n,).

    triangle: R (n, n) of the change matrix's QR, whose columns have the same right singular
    vectors on any support as the (M, n) matrix itself, at a fraction of the cost. Entries are
    dropped below the largest threshold (relative to the largest entry) at which the refit stays
    null (singular value <= ``limit``): a null basis from noisy data carries a contamination of
    about s_null / s_gap in every entry, which no fixed small threshold removes.
    """
    scale = np.abs(vector).max()
    for snap in SNAP_THRESHOLDS:
        support = np.abs(vector) > snap * scale
        _, singular, vt = np.linalg.svd(triangle[:, support], full_matrices=False)
        if singular[-1] <= limit:
            break
    refined = np.zeros_like(vector)
    refined[support] = vt[-1]
    if refined @ vector < 0:
        refined = -refined
    return refined / np.linalg.norm(refined)


def sparse_null_basis(triangle: np.ndarray, null: np.ndarray, degrees: list[int],
                      limit: float) -> list[np.ndarray]:  # fmt: skip
    """A sparsest basis of span(null) (n, k): unit vectors in normalised coordinates.

    triangle: R (n, n) of the QR of the normalised change matrix; limit: the largest singular
    value of a null direction.

    One L1 program per feature that the null space touches gives a sparse candidate; candidates
    are taken sparsest first (then of lower degree) while they add to the span (a greedy pick is
    optimal on a matroid).
    """
    n, k = null.shape
    if k == 0:
        return []
    candidates: dict[bytes, np.ndarray] = {}  # by support: many pivots give one vector
    for pivot in np.flatnonzero(np.linalg.norm(null, axis=1) > 1e-8):
        vector = _sparse_candidate(null, pivot)
        if vector is None:
            continue
        support = (np.abs(vector) > 1e-4 * np.abs(vector).max()).tobytes()
        if support not in candidates:
            candidates[support] = _refine(triangle, vector, limit)
    weight = np.asarray(degrees, dtype=float)

    def key(v: np.ndarray) -> tuple[int, float]:
        support = np.abs(v) > 0
        return int(support.sum()), float(weight[support].max())

    basis: list[np.ndarray] = []
    for vector in sorted(candidates.values(), key=key):
        trial = np.array(basis + [vector])
        s = np.linalg.svd(trial, compute_uv=False)
        if s[-1] > 1e-6 * s[0]:
            basis.append(vector)
        if len(basis) == k:
            break
    if len(basis) < k:  # the L1 candidates missed a direction: complete with the SVD basis
        for column in null.T:
            trial = np.array(basis + [column])
            if np.linalg.svd(trial, compute_uv=False)[-1] > 1e-6:
                basis.append(column / np.linalg.norm(column))
            if len(basis) == k:
                break
    return basis


# ---------------------------------------------------------------------------------- independence


def independent_subset(gradients: list[np.ndarray], tol: float) -> list[int]:
    """Indices of functionally independent quantities, greedy in the given order.

    gradients[i]: (P, d) gradient of quantity i at P sample states. A quantity is kept when it
    raises the rank of the kept quantities' Jacobian at most sample states (a generic rank).
    """
    kept: list[int] = []
    for i, grad in enumerate(gradients):
        rows = np.stack([gradients[j] for j in kept] + [grad], axis=1)  # (P, K, d)
        norms = np.linalg.norm(rows, axis=2, keepdims=True)
        rows = rows / np.where(norms > 0, norms, 1.0)
        singular = np.linalg.svd(rows, compute_uv=False)  # (P, min(K, d))
        if rows.shape[1] > rows.shape[2]:
            continue  # more quantities than dimensions: cannot be independent
        full = singular[:, -1] > tol * np.maximum(singular[:, 0], 1e-300)
        if np.mean(full) > 0.5:
            kept.append(i)
    return kept


# ---------------------------------------------------------------------------------- count from data


def local_dimensions(trajectories: np.ndarray, *, angles: int = 0, neighbours: int = 16,
                     references: int = 32, window: int = 3,
                     threshold: float = 0.08) -> np.ndarray:  # fmt: skip
    """Local dimension of each trajectory's point cloud, (B, T, d) -> (B, references) ints.

    For each reference state: PCA of its ``neighbours`` nearest states from other passages (more
    than ``window`` samples away in time: a chaotic orbit fills its energy shell only across
    passages) together with its own +-``window`` samples (the tangent of the orbit). The
    dimension counts principal variances of at least ``threshold`` times the largest; curvature
    adds a variance of order (patch size / radius)^2, so the trajectories must be dense enough
    that a patch of neighbours is small. The first ``angles`` coordinates are angles: distances
    are taken modulo 2 pi. Other coordinates are scaled to unit std per trajectory.
    """
    b, t, d = trajectories.shape
    out = np.zeros((b, references), dtype=int)
    chosen = np.linspace(0, t - 1, references + 2).astype(int)[1:-1]
    for i, path in enumerate(trajectories):
        path = path.copy()
        spread = path[:, angles:].std(axis=0)
        path[:, angles:] /= np.where(spread > 0, spread, 1.0)
        path[:, :angles] = np.mod(path[:, :angles], 2 * np.pi)
        path[:, angles:] -= path[:, angles:].min(axis=0)
        # periodic box on the angles; the other sides are long enough that nothing wraps there
        box = np.concatenate([np.full(angles, 2 * np.pi),
                              3 * path[:, angles:].max(axis=0) + 1.0])  # fmt: skip
        tree = cKDTree(path, boxsize=box)
        _, index = tree.query(path[chosen], k=min(neighbours + 2 * window + 1, t))  # (R, K)
        # nearest states of other passages first (stable sort keeps distance order)
        other = np.abs(index - chosen[:, None]) > window
        index = np.take_along_axis(index, np.argsort(~other, axis=1, kind="stable"), axis=1)
        own = np.clip(chosen[:, None] + np.arange(-window, window + 1), 0, t - 1)
        rows = np.concatenate([index[:, :neighbours], own], axis=1)  # (R, k')
        cloud = path[rows] - path[chosen][:, None, :]  # (R, k', d)
        cloud[..., :angles] = (cloud[..., :angles] + np.pi) % (2 * np.pi) - np.pi
        variance = np.linalg.svd(cloud, compute_uv=False) ** 2  # (R, min(k', d))
        out[i] = np.sum(variance >= threshold * variance[:, :1], axis=1)
    return out


# ---------------------------------------------------------------------------------- formulas


def _readable(coefficients: np.ndarray) -> tuple[np.ndarray, list[sympy.Expr]]:
    """Scale raw coefficients so the smallest nonzero one is +-1, the first positive; a
    coefficient within 1e-4 of a simple rational (denominator <= 12, numerator <= 1000) becomes
    that rational, the others print with 4 significant figures.
    Returns (scaled (n,), sympy numbers (n,))."""
    nonzero = np.flatnonzero(coefficients)
    scaled = coefficients / np.abs(coefficients[nonzero]).min()
    if scaled[nonzero[0]] < 0:
        scaled = -scaled
    numbers: list[sympy.Expr] = [sympy.Integer(0)] * len(scaled)
    for j in nonzero:
        c = float(scaled[j])
        f = Fraction(c).limit_denominator(12)
        if abs(float(f) - c) <= 1e-4 * abs(c) and abs(f.numerator) <= 1000:
            numbers[j] = sympy.Rational(f.numerator, f.denominator)
            scaled[j] = float(f)
        else:
            numbers[j] = sympy.Float(float(f"{c:.4g}"), 4)
    return scaled, numbers


def _quantity(unit: np.ndarray, scales: np.ndarray, library: FeatureLibrary,
              values: np.ndarray, within: np.ndarray) -> ConservedQuantity:  # fmt: skip
    """A quantity from a unit null vector in normalised coordinates; residual from the data."""
    raw = np.where(unit != 0, unit / scales, 0.0)
    coefficients, numbers = _readable(raw)
    expression = sympy.Add(*[c * f for c, f in zip(numbers, library.expressions, strict=True)
                             if c != 0])  # fmt: skip
    along = float(np.sqrt(np.mean((within @ (unit / scales)) ** 2)))
    across = float(np.std(values @ (unit / scales)))
    residual = along / across if across > 0 else 0.0
    return ConservedQuantity(coefficients=coefficients, formula=sympy.sstr(expression),
                             expression=expression, residual=residual, normalised=unit,
                             terms=int(np.count_nonzero(unit)))  # fmt: skip


# ---------------------------------------------------------------------------------- entry points


def _solve(changes_raw: np.ndarray, values: np.ndarray, within: np.ndarray, states: np.ndarray,
           library: FeatureLibrary, tol: float | None) -> ConservedResult:  # fmt: skip
    """The common engine. changes_raw (M, n): feature changes; values (N, n): features at all
    states; within (M', n): deviations from each trajectory's mean; states (N, d)."""
    n = len(library)
    if changes_raw.shape[0] < n + 1:
        raise ValueError(f"too few samples: {changes_raw.shape[0]} feature changes for {n} "
                         f"features (need at least {n + 1}; add states or lower the degree)")
    scales = _feature_scales(values, library)
    changes = changes_raw / scales
    changes = changes / np.sqrt(changes.shape[0])  # singular values independent of sample count
    triangle = np.linalg.qr(changes, mode="r")  # (n, n): same singular values and vectors
    _, singular, vt = np.linalg.svd(triangle)
    if singular[0] == 0:
        raise ValueError("no feature changes along any trajectory: the states never move, so "
                         "every feature is trivially conserved")  # fmt: skip
    k, cutoff = null_dimension(singular, tol)
    null = vt[n - k :].T
    basis_vectors = sparse_null_basis(triangle, null, library.degrees, cutoff * singular[0])
    basis = [_quantity(v, scales, library, values, within) for v in basis_vectors]
    rng = np.random.default_rng(0)
    sample = states[rng.choice(len(states), size=min(32, len(states)), replace=False)]
    jac = library.jacobian(sample)  # (P, n, d)
    gradients = [np.einsum("pnd,n->pd", jac, v / scales) for v in basis_vectors]
    rank_tol = max(1e-6, float(np.sqrt(min(cutoff, 1.0))) * 1e-2)
    kept = independent_subset(gradients, rank_tol)
    quantities = [basis[i] for i in kept]
    return ConservedResult(quantities=quantities, all_null=k, count=len(quantities),
                           count_from_data=None, feature_names=library.labels,
                           singular_values=singular, basis=basis,
                           feature_scales=scales)  # fmt: skip


def find_conserved(trajectories: np.ndarray, names: list[str], *, degree: int = 2,
                   trig: bool = False, inverse_radius: bool = False, tol: float | None = None,
                   dimensions: int | None = None) -> ConservedResult:  # fmt: skip
    """Conserved quantities of trajectories (B, T, d), state q then p, names (d,).

    ``tol``: relative singular value below which a direction is null (default: from the gap).
    ``dimensions``: the space dimension D when q holds several bodies (1/r of each pair).
    With ``trig`` the coordinates q are angles (also for the count from data).
    Raises ValueError on too few samples, constant features, non-finite data.
    """
    x = _check_states(trajectories, names, "the trajectories")
    if x.ndim != 3:
        raise ValueError(f"trajectories must be (trajectories, times, state), got shape {x.shape}")
    b, t, d = x.shape
    if t < 2:
        raise ValueError("each trajectory needs at least 2 states to show a change")
    library = feature_library(names, degree, trig=trig, inverse_radius=inverse_radius,
                              dimensions=dimensions)  # fmt: skip
    states = x.reshape(b * t, d)
    values = library.values(states).reshape(b, t, -1)
    changes = (values[:, 1:] - values[:, :1]).reshape(b * (t - 1), -1)
    within = (values - values.mean(axis=1, keepdims=True)).reshape(b * t, -1)
    result = _solve(changes, values.reshape(b * t, -1), within, states, library, tol)
    dims = local_dimensions(x, angles=d // 2 if trig else 0)
    result.local_dimensions = dims
    result.count_from_data = max(0, int(d - round(float(np.median(dims)))))
    return result


def find_conserved_pairs(before: np.ndarray, after: np.ndarray, names: list[str],
                         degree: int = 2, *,
                         tol: float | None = None) -> ConservedResult:  # fmt: skip
    """Quantities conserved from each state before (N, d) to the one after (N, d) (collisions).

    ``count_from_data`` is None: a single pair per event traces no manifold to measure.
    """
    x0 = _check_states(before, names, "the states before")
    x1 = _check_states(after, names, "the states after")
    if x0.shape != x1.shape or x0.ndim != 2:
        raise ValueError(f"before and after must both be (events, state) of one shape, got "
                         f"{x0.shape} and {x1.shape}")  # fmt: skip
    library = feature_library(names, degree)
    f0, f1 = library.values(x0), library.values(x1)
    values = np.concatenate([f0, f1])
    within = np.concatenate([f1 - f0, f0 - f1]) / 2
    return _solve(f1 - f0, values, within, np.concatenate([x0, x1]), library, tol)


__all__ = ["ConservedQuantity", "ConservedResult", "find_conserved", "find_conserved_pairs",
           "independent_subset", "local_dimensions", "null_dimension", "sparse_null_basis"]
