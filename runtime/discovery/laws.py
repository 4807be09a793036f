"""Power laws from data: y = c * prod_i x_i^a_i fitted by least squares on logarithms.

    log y = log c + sum_i a_i log x_i

Each exponent comes with its standard error and a t-based confidence interval, and with the
simplest rational p/q (q <= ``max_denominator``) inside that interval, when there is one. With
the dimensions of the columns (7 exponents over the SI bases) and of the model's constant
parameters, a dimensional analysis says whether some product of the constants can make the
prefactor c carry the right dimensions, which exponents of the constants that implies, and
whether the fitted exponents are consistent with dimensions at all.

numpy/scipy/sympy only (no torch): the data are small tables (rows, columns).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np
import sympy as sp
from scipy import stats

BASES = ("m", "kg", "s", "A", "K", "mol", "cd")
Dims = tuple[Fraction, ...]  # exponents over BASES
DIMENSIONLESS: Dims = (Fraction(0),) * 7
# A rational exponent is accepted within its confidence interval widened to at least this
# half-width: exact simulated data fit to ~1e-9 with intervals narrower than their bias.
NUMERICAL_FLOOR = 1e-6


class DataError(ValueError):
    """The data cannot support the fit (P428): ``column`` names the culprit where there is one."""

    def __init__(self, message: str, column: str | None = None, hint: str | None = None):
        super().__init__(message)
        self.message, self.column, self.hint = message, column, hint


def as_dims(d: Sequence | None) -> Dims:
    """7 Fractions over :data:`BASES` from a tuple (or a Unit's ``dims``); None: dimensionless."""
    if d is None:
        return DIMENSIONLESS
    d = getattr(d, "dims", d)
    if len(d) != 7:
        raise ValueError(f"dimensions have 7 entries over {BASES}, got {len(d)}")
    return tuple(Fraction(x).limit_denominator(1000) for x in d)


def dims_text(d: Dims) -> str:
    """``m^3 s^-2`` (``1`` when dimensionless)."""
    parts = [b if e == 1 else f"{b}^{e}" for b, e in zip(BASES, d) if e != 0]
    return " ".join(parts) or "1"


@dataclass
class Exponent:
    """The fitted exponent of one predictor: value, standard error, confidence interval, and
    the simplest rational in the interval widened to +- NUMERICAL_FLOOR at least (None where
    it holds none with a small denominator)."""

    name: str
    value: float
    stderr: float
    ci: tuple[float, float]
    rational: Fraction | None


@dataclass
class DimensionCheck:
    """Dimensional analysis of a law y = c prod x_i^a_i.

    ``constants``: exponents b_j of the constants k_j such that c = C * prod k_j^b_j with C
    dimensionless, as implied by dimensions at the rounded (or fitted) exponents; None when no
    such choice exists (``possible`` False). ``consistent``: the fitted exponents (rounded where
    possible) leave dimensions that the constants can carry. ``residual``: the dimensions of c
    that no constant explains (zero when consistent)."""

    possible: bool
    consistent: bool
    constants: dict[str, Fraction] | None
    prefactor_dims: Dims
    residual: Dims
    unique: bool
    note: str = ""


@dataclass
class LawFit:
    """A fitted power law: ``target`` = ``prefactor`` * prod ``exponents``; ``r2`` on log y;
    ``formula`` printed with the rounded exponents where every one rounds, ``expression`` the
    same as a sympy expression (symbols named by the columns)."""

    target: str
    predictors: list[str]
    exponents: list[Exponent]
    log_prefactor: float
    log_prefactor_stderr: float
    r2: float
    n_points: int
    confidence: float
    formula: str
    expression: sp.Expr
    rounded_prefactor: float | None = None  # c refitted with the exponents fixed at rationals
    dimensions: DimensionCheck | None = None
    residual_std: float = 0.0
    log_x: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    log_y: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @property
    def prefactor(self) -> float:
        return math.exp(self.log_prefactor)

    @property
    def all_rational(self) -> bool:
        return all(e.rational is not None for e in self.exponents)


def simplest_rational(lo: float, hi: float, max_denominator: int = 6) -> Fraction | None:
    """The rational p/q in [lo, hi] with the smallest q <= max_denominator (the smallest |p| at
    that q); None when there is none."""
    for q in range(1, max_denominator + 1):
        p_lo, p_hi = math.ceil(lo * q - 1e-12), math.floor(hi * q + 1e-12)
        if p_lo <= p_hi:
            p = 0 if p_lo <= 0 <= p_hi else (p_lo if p_lo > 0 else p_hi)
            return Fraction(p, q)
    return None


def _check_columns(y: np.ndarray, x: np.ndarray, target: str, predictors: list[str]) -> None:
    """Located-by-name refusals: non-finite values, values <= 0 under the log, constant
    columns, too few points (P428)."""
    n, k = x.shape
    for name, col in [(target, y), *zip(predictors, x.T)]:
        bad = np.flatnonzero(~np.isfinite(col))
        if bad.size:
            raise DataError(f"column '{name}' holds a non-finite value (row {bad[0] + 1})", name,
                            "remove or repair that row")  # fmt: skip
        bad = np.flatnonzero(col <= 0)
        if bad.size:
            raise DataError(f"column '{name}' holds {col[bad[0]]:g} (row {bad[0] + 1}): a power "
                            "law fits logarithms, which need positive values", name,
                            "take |x|, shift the origin, or drop the rows")  # fmt: skip
    for name, col in zip(predictors, x.T):
        if np.ptp(np.log(col)) <= 1e-12 * max(1.0, abs(float(np.log(col[0])))):
            raise DataError(f"column '{name}' is constant over the data: its exponent cannot be "
                            "fitted", name, "vary it (scan it), or leave it out")  # fmt: skip
    if n < k + 2:
        raise DataError(f"{n} points cannot fit {k + 1} parameters (the prefactor and {k} "
                        f"exponent(s)) with an error estimate: at least {k + 2} are needed",
                        target, "more data points (a longer scan, more trajectories)")  # fmt: skip


def _dimension_check(exponents: list[Exponent], values: np.ndarray, target_dims: Dims,
                     predictor_dims: list[Dims], constants: dict[str, Dims]
                     ) -> DimensionCheck:  # fmt: skip
    """c = y / prod x^a has dims D = dim(y) - sum a_i dim(x_i); it is carried by constants when
    D = sum_j b_j dim(k_j) has a solution b (exact rational arithmetic with sympy)."""
    a = [e.rational if e.rational is not None else Fraction(v).limit_denominator(1000)
         for e, v in zip(exponents, values)]  # fmt: skip
    D = [target_dims[i] - sum(ai * d[i] for ai, d in zip(a, predictor_dims)) for i in range(7)]
    names = [n for n, d in constants.items() if any(d)]
    Dvec = sp.Matrix([sp.Rational(x.numerator, x.denominator) for x in D])
    if not names:
        ok = not any(D)
        return DimensionCheck(ok, ok, {} if ok else None, tuple(D), tuple(D), True,
                              "" if ok else "no dimensional constant can absorb the prefactor's "
                              f"dimensions {dims_text(tuple(D))}")  # fmt: skip
    K = sp.Matrix([[sp.Rational(constants[n][i].numerator, constants[n][i].denominator)
                    for n in names] for i in range(7)])  # fmt: skip
    try:
        sol, params = K.gauss_jordan_solve(Dvec)
    except ValueError:
        return DimensionCheck(False, False, None, tuple(D), tuple(D), False,
                              f"the prefactor has dimensions {dims_text(tuple(D))}, which no "
                              "product of the constants " + ", ".join(names) + " has")  # fmt: skip
    sol = sol.subs({p: 0 for p in params})  # free directions: dimensionless groups, set to 0
    b = {n: Fraction(int(sp.fraction(v)[0]), int(sp.fraction(v)[1])) for n, v in zip(names, sol)}
    consistent = all(e.rational is not None for e in exponents) or not any(D)
    return DimensionCheck(True, consistent, b, tuple(D), DIMENSIONLESS, len(params) == 0,
                          "" if not params else "dimensionless groups of the constants leave "
                          "the exponents of the constants undetermined")  # fmt: skip


def implied_exponents(target_dims: Dims, predictor_dims: list[Dims]) -> list[Fraction] | None:
    """The exponents dimensions alone force (dim(y) = sum a_i dim(x_i) with a unique solution),
    or None when they do not determine them."""
    A = sp.Matrix([[sp.Rational(d[i].numerator, d[i].denominator) for d in predictor_dims]
                   for i in range(7)])  # fmt: skip
    y = sp.Matrix([sp.Rational(target_dims[i].numerator, target_dims[i].denominator)
                   for i in range(7)])  # fmt: skip
    try:
        sol, params = A.gauss_jordan_solve(y)
    except ValueError:
        return None
    if params.shape[0]:
        return None
    return [Fraction(int(sp.fraction(v)[0]), int(sp.fraction(v)[1])) for v in sol]


def _number(x: float) -> sp.Float:
    return sp.Float(float(f"{x:.6g}"), 6)


def law_expression(target: str, predictors: list[str], exponents: list[Exponent],
                   prefactor: float, rounded: bool) -> tuple[str, sp.Expr]:  # fmt: skip
    """The printed formula ``P = 1.000 * a^(3/2)`` and the sympy expression of the right side
    (built from sympy objects; exponents as Rationals when ``rounded``)."""
    expr: sp.Expr = _number(prefactor)
    parts = [f"{prefactor:.4g}"]
    for name, e in zip(predictors, exponents):
        sym = sp.Symbol(name, positive=True)
        if rounded and e.rational is not None:
            r = e.rational
            power = sp.Rational(r.numerator, r.denominator)
            text = str(r.numerator) if r.denominator == 1 else f"({r})"
        else:
            power = _number(e.value)
            text = f"{e.value:.4g}" if e.value >= 0 else f"({e.value:.4g})"
        if power == 0:
            continue
        expr = expr * sym**power
        parts.append(name if text == "1" else f"{name}^{text}")
    return f"{target} = " + " * ".join(parts), expr


def fit_power_law(y: np.ndarray, x: np.ndarray, target: str, predictors: list[str], *,
                  confidence: float = 0.95, max_denominator: int = 6,
                  target_dims: Dims | None = None, predictor_dims: list[Dims] | None = None,
                  constants: dict[str, Dims] | None = None) -> LawFit:  # fmt: skip
    """Fit ``y`` (n,) = c * prod_i ``x[:, i]``^a_i by least squares on logarithms.

    ``x``: (n, k). Exponents with standard errors, t-based ``confidence`` intervals and the
    simplest rationals (denominator <= ``max_denominator``) inside them; R^2 of log y. With
    dimensions (``target_dims``, ``predictor_dims``; ``constants``: name -> dims of the model's
    constant parameters) the dimensional analysis of :class:`DimensionCheck`. Raises
    :class:`DataError` for data that cannot support the fit."""
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    x = np.asarray(x, dtype=np.float64).reshape(len(y), -1)
    n, k = x.shape
    _check_columns(y, x, target, predictors)
    lx, ly = np.log(x), np.log(y)
    # centred columns: the intercept decouples and the normal equations stay well conditioned
    mx, my = lx.mean(0), ly.mean()
    A = lx - mx
    coef, *_ = np.linalg.lstsq(A, ly - my, rcond=None)
    rank = np.linalg.matrix_rank(A)
    if rank < k:
        raise DataError("the predictors are collinear on a log scale (one is a power of "
                        "another over the data): their exponents are not determined",
                        predictors[-1], "vary them independently")  # fmt: skip
    resid = ly - my - A @ coef
    dof = n - k - 1
    sse = float(resid @ resid)
    s2 = sse / dof
    cov = s2 * np.linalg.inv(A.T @ A)
    se = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    intercept = my - float(mx @ coef)
    se_int = math.sqrt(max(s2 / n + float(mx @ cov @ mx), 0.0))
    sst = float(((ly - my) ** 2).sum())
    r2 = 1.0 - sse / sst if sst > 0 else 1.0
    tq = float(stats.t.ppf(0.5 + confidence / 2, dof))
    exps = []
    for name, a, s in zip(predictors, coef, se):
        lo, hi = float(a - tq * s), float(a + tq * s)
        half = max(tq * s, NUMERICAL_FLOOR)
        exps.append(Exponent(name, float(a), float(s), (lo, hi),
                             simplest_rational(a - half, a + half, max_denominator)))  # fmt: skip
    rounded_c = None
    if all(e.rational is not None for e in exps):
        fixed = np.array([float(e.rational) for e in exps])
        rounded_c = math.exp(float(np.mean(ly - lx @ fixed)))
    rounded = rounded_c is not None
    shown_c = rounded_c if rounded else math.exp(intercept)
    formula, expr = law_expression(target, predictors, exps, shown_c, rounded)
    fit = LawFit(target, list(predictors), exps, float(intercept), se_int, float(r2), n,
                 confidence, formula, expr, rounded_c, residual_std=math.sqrt(s2),
                 log_x=lx, log_y=ly)  # fmt: skip
    if target_dims is not None or predictor_dims is not None:
        td = as_dims(target_dims)
        pd = [as_dims(d) for d in (predictor_dims or [None] * k)]
        cd = {name: as_dims(d) for name, d in (constants or {}).items()}
        fit.dimensions = _dimension_check(exps, coef, td, pd, cd)
    return fit


def powers_text(powers: dict[str, Fraction]) -> str:
    """``G^(-1/2) M^(-1/2)`` (``1`` when every power is 0)."""
    parts = [k if v == 1 else f"{k}^({v})" if v.denominator != 1 or v < 0 else f"{k}^{v}"
             for k, v in powers.items() if v != 0]  # fmt: skip
    return " ".join(parts) or "1"


def fit_rows(fit: LawFit) -> list[dict]:
    """Results rows of a fitted law (JSON-friendly), one per predictor (its ``exponent`` with
    stderr, ``ci`` and ``rational``) beside the law's own columns: a long table whose columns
    do not depend on the predictors' names."""
    law: dict = {
        "law": fit.formula, "target": fit.target, "expression": str(fit.expression),
        "prefactor": fit.rounded_prefactor if fit.rounded_prefactor is not None
        else fit.prefactor,
        "fitted_prefactor": fit.prefactor, "r2": fit.r2, "n_points": fit.n_points,
        "confidence": fit.confidence,
    }  # fmt: skip
    d = fit.dimensions
    if d is not None:
        law["dimensions_possible"] = d.possible
        law["dimensions_consistent"] = d.consistent
        law["prefactor_dims"] = dims_text(d.prefactor_dims)
        if d.constants is not None:
            law["constant_exponents"] = powers_text(d.constants)
        if d.note:
            law["dimensions_note"] = d.note
    return [{**law, "predictor": e.name, "exponent": {"mean": e.value, "stderr": e.stderr},
             "ci": [e.ci[0], e.ci[1]],
             "rational": str(e.rational) if e.rational is not None else None}
            for e in fit.exponents]  # fmt: skip


__all__ = ["BASES", "DIMENSIONLESS", "DataError", "DimensionCheck", "Exponent", "LawFit",
           "as_dims", "dims_text", "fit_power_law", "fit_rows", "implied_exponents",
           "law_expression", "powers_text", "simplest_rational"]  # fmt: skip
