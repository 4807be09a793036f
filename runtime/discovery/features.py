"""Feature libraries over a state x = (q, p): monomials, trig terms for angles, central-force terms.

A library is a list of sympy expressions in internal symbols x0..x{d-1} (user names are only put in
for display, never evaluated), lowered once to numpy for values and their gradients.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np
import sympy

from physml_lang.compiler.lower.backends import NUMPY
from physml_lang.compiler.lower.program import lower_program


def monomials(variables: list[sympy.Symbol], degree: int,
              min_degree: int = 1) -> list[sympy.Expr]:  # fmt: skip
    """All monomials of ``variables`` of total degree min_degree..degree, degree ascending."""
    terms: list[sympy.Expr] = []
    for k in range(min_degree, degree + 1):
        for combo in itertools.combinations_with_replacement(variables, k):
            terms.append(sympy.Mul(*combo))
    return terms


def numpy_columns(expressions: list[sympy.Expr], variables: list[sympy.Symbol]):
    """A function x (N, d) -> (N, len(expressions)); constants broadcast to every row. Lowered
    by the compiler's one lowering (numpy backend, common subexpressions shared)."""
    program = lower_program(expressions, variables, what="a feature library", backend=NUMPY)

    def evaluate(x: np.ndarray) -> np.ndarray:
        columns = program.run(*np.asarray(x, dtype=np.float64).T)
        rows = x.shape[0]
        return np.stack([np.broadcast_to(np.asarray(c, dtype=float), (rows,))
                         for c in columns], axis=1)  # fmt: skip

    return evaluate


@dataclass
class FeatureLibrary:
    """Features f_j(x) of a d-dimensional state; ``expressions`` in the user's names.

    ``degrees[j]``: the polynomial degree of feature j (trig and 1/r count as 0 and 1), used to
    prefer simpler quantities among equally sparse ones.
    """

    names: list[str]
    expressions: list[sympy.Expr]
    internal: list[sympy.Expr]
    degrees: list[int]
    variables: list[sympy.Symbol] = field(repr=False)
    _values: object = field(default=None, repr=False)
    _gradient: object = field(default=None, repr=False)

    @property
    def labels(self) -> list[str]:
        return [sympy.sstr(e) for e in self.expressions]

    def __len__(self) -> int:
        return len(self.internal)

    def values(self, x: np.ndarray) -> np.ndarray:
        """Feature values: x (N, d) -> (N, n_features)."""
        if self._values is None:
            self._values = numpy_columns(self.internal, self.variables)
        return self._values(np.asarray(x, dtype=float))

    def jacobian(self, x: np.ndarray) -> np.ndarray:
        """Feature gradients: x (N, d) -> (N, n_features, d)."""
        if self._gradient is None:
            flat = [sympy.diff(f, v) for f in self.internal for v in self.variables]
            self._gradient = numpy_columns(flat, self.variables)
        x = np.asarray(x, dtype=float)
        return self._gradient(x).reshape(x.shape[0], len(self.internal), len(self.variables))


def _separations(q: list[sympy.Symbol], dimensions: int | None) -> list[list[sympy.Expr]]:
    """The vectors whose length is a radius: q itself, or q_i - q_j for bodies i < j."""
    if dimensions is None or dimensions == len(q):
        return [list(q)]
    if dimensions < 1 or len(q) % dimensions:
        raise ValueError(f"{len(q)} coordinates are not bodies of {dimensions} dimensions")
    bodies = [q[k : k + dimensions] for k in range(0, len(q), dimensions)]
    return [[a - b for a, b in zip(bi, bj, strict=True)]
            for bi, bj in itertools.combinations(bodies, 2)]  # fmt: skip


def feature_library(names: list[str], degree: int = 2, *, trig: bool = False,
                    inverse_radius: bool = False,
                    dimensions: int | None = None) -> FeatureLibrary:  # fmt: skip
    """The library of ``find_conserved``; the constant feature is never included.

    - monomials of the whole state of degree 1..degree;
    - ``trig``: sin and cos of each coordinate q_i and of each difference q_i - q_j, each alone
      and times the monomials of the momenta up to ``degree`` (a pendulum's energy has cos q and
      p_i p_j cos(q_i - q_j));
    - ``inverse_radius``: 1/r and q_a/r with r = |q| (a central force: E and Runge-Lenz); with
      ``dimensions`` = D and q holding N bodies of D coordinates each (body-major), 1/r_ij and
      (q_ia - q_ja)/r_ij for every pair i < j instead.
    The state is q then p, half each, when ``trig`` or ``inverse_radius`` is asked for.
    """
    d = len(names)
    if degree < 1:
        raise ValueError(f"the feature degree must be at least 1, got {degree}")
    if (trig or inverse_radius) and d % 2:
        raise ValueError(f"trig and inverse_radius features need a state (q, p) of even "
                         f"dimension, got {d} components")  # fmt: skip
    variables = list(sympy.symbols(f"x0:{d}", real=True))
    shown = [sympy.Symbol(n, real=True) for n in names]
    internal = monomials(variables, degree)
    degrees = [sympy.Poly(m, *variables).total_degree() for m in internal]
    if trig:
        q, p = variables[: d // 2], variables[d // 2 :]
        angles = list(q) + [a - b for a, b in itertools.combinations(q, 2)]
        momenta = [sympy.Integer(1)] + monomials(p, degree)
        for angle in angles:
            for func in (sympy.sin, sympy.cos):
                for m in momenta:
                    internal.append(func(angle) * m)
                    degrees.append(sympy.Poly(m, *variables).total_degree())
    if inverse_radius:
        for separation in _separations(variables[: d // 2], dimensions):
            r = sympy.sqrt(sum(c**2 for c in separation))
            internal.append(1 / r)
            degrees.append(1)
            for c in separation:
                internal.append(c / r)
                degrees.append(1)
    substitution = dict(zip(variables, shown, strict=True))
    expressions = [e.xreplace(substitution) for e in internal]
    return FeatureLibrary(names=list(names), expressions=expressions, internal=internal,
                          degrees=degrees, variables=variables)  # fmt: skip


__all__ = ["FeatureLibrary", "feature_library", "monomials"]
