"""Equations of motion by sparse regression (SINDy: Brunton, Proctor & Kutz, PNAS 2016).

    dz_k/dt = sum_j Theta_j(z) xi_jk,    Theta: a library of candidate features

The library holds the monomials of the state variables up to ``degree`` (the constant 1
included) and, with ``trig``, sin and cos of the coordinates. Sequentially thresholded least
squares (STLSQ) solves for xi, zeroes every coefficient smaller than ``threshold`` and refits on
the survivors until the support stops changing. Columns are scaled to unit norm for the solves
(conditioning); with ``normalize`` the threshold applies to the coefficients of those unit
columns, otherwise to the coefficients in the data's own units.

Features are sympy expressions built from sympy symbols (never from text), so that every
equation found prints as a formula and exists as a sympy expression. numpy only.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import sympy as sp

from .features import numpy_columns


@dataclass
class Library:
    """Candidate features: ``names`` (printable), ``expressions`` (sympy) over ``symbols``."""

    symbols: list[sp.Symbol]
    names: list[str]
    expressions: list[sp.Expr]
    functions: Callable[[np.ndarray], np.ndarray]

    def evaluate(self, z: np.ndarray) -> np.ndarray:
        """Theta(z): (N, n_vars) -> (N, n_features)."""
        return self.functions(z)


def feature_library(names: list[str], degree: int, trig_names: list[str] = ()) -> Library:
    """Monomials of the variables ``names`` up to ``degree`` (1 first), then sin and cos of
    each variable in ``trig_names`` (the coordinates)."""
    symbols = [sp.Symbol(n, real=True) for n in names]
    exprs: list[sp.Expr] = [sp.Integer(1)]
    for d in range(1, degree + 1):
        for combo in itertools.combinations_with_replacement(symbols, d):
            exprs.append(sp.Mul(*combo))
    for n in trig_names:
        s = symbols[names.index(n)]
        exprs += [sp.sin(s), sp.cos(s)]
    return Library(symbols, [str(e) for e in exprs], exprs, numpy_columns(exprs, symbols))


def stlsq(theta: np.ndarray, dz: np.ndarray, threshold: float, max_iterations: int = 20,
          normalize: bool = False) -> np.ndarray:  # fmt: skip
    """Sequentially thresholded least squares: xi (n_features, n_targets) with
    theta @ xi ~ dz ((N, n_features), (N, n_targets))."""
    norms = np.linalg.norm(theta, axis=0)
    norms = np.where(norms > 0, norms, 1.0)
    A = theta / norms
    xi = np.linalg.lstsq(A, dz, rcond=None)[0]  # coefficients of the unit columns
    support = np.ones_like(xi, dtype=bool)
    for _ in range(max_iterations):
        size = np.abs(xi) if normalize else np.abs(xi / norms[:, None])
        new = size >= threshold
        if np.array_equal(new, support):
            break
        support = new
        for k in range(dz.shape[1]):  # a handful of targets (the state's dimension)
            xi[:, k] = 0.0
            cols = np.flatnonzero(support[:, k])
            if cols.size:
                xi[cols, k] = np.linalg.lstsq(A[:, cols], dz[:, k], rcond=None)[0]
    return xi / norms[:, None]


@dataclass
class Equation:
    """One equation found: d``variable``/dt = ``expression``; ``coefficients``: feature ->
    value of the nonzero terms; ``residual``: rms of the fit's error; ``r2``."""

    variable: str
    formula: str
    expression: sp.Expr
    coefficients: dict[str, float]
    residual: float
    r2: float


def _coefficient(c: float) -> sp.Float:
    return sp.Float(float(f"{c:.6g}"), 6)


def discover_equations(z: np.ndarray, dz: np.ndarray, names: list[str], *, degree: int = 3,
                       threshold: float = 0.05, trig_names: list[str] = (),
                       max_iterations: int = 20, normalize: bool = False
                       ) -> tuple[list[Equation], Library]:  # fmt: skip
    """SINDy on states ``z`` (N, n) and their time derivatives ``dz`` (N, n): one
    :class:`Equation` per variable of ``names``."""
    lib = feature_library(names, degree, trig_names)
    theta = lib.evaluate(z)
    xi = stlsq(theta, dz, threshold, max_iterations, normalize)
    out = []
    for k, name in enumerate(names):
        nz = np.flatnonzero(xi[:, k])
        expr = sp.Add(*[_coefficient(xi[j, k]) * lib.expressions[j] for j in nz])
        err = dz[:, k] - theta @ xi[:, k]
        var = float(np.var(dz[:, k]))
        rms = float(np.sqrt(np.mean(err**2)))
        r2 = 1.0 - float(np.mean(err**2)) / var if var > 0 else float(rms == 0)
        out.append(Equation(name, f"d{name}/dt = {expr}", expr,
                            {lib.names[j]: float(xi[j, k]) for j in nz}, rms, r2))  # fmt: skip
    return out, lib


def finite_differences(t: np.ndarray, x: np.ndarray) -> np.ndarray:
    """d x/dt along axis 1 of (B, T, n) at the times t (T,): second-order central differences
    (one-sided at the ends)."""
    return np.gradient(x, t, axis=1, edge_order=2)


__all__ = ["Equation", "Library", "discover_equations", "feature_library",
           "finite_differences", "stlsq"]  # fmt: skip
