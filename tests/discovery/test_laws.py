"""The power-law engine: exponents with confidence intervals, rationals, dimensional analysis,
the refusals of data that cannot support a fit, and the symbolic output."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import sympy as sp

from physml_lang.runtime.discovery.laws import (
    DataError,
    fit_power_law,
    fit_rows,
    implied_exponents,
    simplest_rational,
)

PLANETS = Path(__file__).resolve().parents[2] / "examples" / "data" / "planets.csv"
S = (0, 0, 1, 0, 0, 0, 0)
M = (1, 0, 0, 0, 0, 0, 0)
KG = (0, 1, 0, 0, 0, 0, 0)
ACC = (1, 0, -2, 0, 0, 0, 0)
G_NEWTON = (3, -1, -2, 0, 0, 0, 0)


def test_planets_give_keplers_third_law():
    """The eight planets: exponent 1.50 +- 0.01 (1.4990 +- 0.0005), 3/2 inside the interval,
    and dimensions carried by G^(-1/2) M^(-1/2)."""
    d = np.loadtxt(PLANETS, delimiter=",", comments="#", skiprows=3)
    fit = fit_power_law(d[:, 1], d[:, :1], "P", ["a"], target_dims=S, predictor_dims=[M],
                        constants={"G": G_NEWTON, "M": KG})  # fmt: skip
    e = fit.exponents[0]
    assert abs(e.value - 1.5) < 0.01 and e.stderr < 1e-3
    assert e.ci[0] < 1.5 < e.ci[1] and e.rational == Fraction(3, 2)
    assert fit.r2 > 0.99999 and fit.n_points == 8
    assert fit.rounded_prefactor == pytest.approx(1.0, abs=0.01)  # years and AU: c = 1
    dc = fit.dimensions
    assert dc.possible and dc.consistent and dc.unique
    assert dc.constants == {"G": Fraction(-1, 2), "M": Fraction(-1, 2)}
    assert fit.formula == "P = 0.9984 * a^(3/2)"


def test_exponents_and_intervals_of_a_noisy_law():
    """y = 2 x1^0.5 x2^-1.5 with 1 % log-normal noise: exponents within their intervals, which
    cover the truth about 95 % of the time over repeated draws."""

    def fit(seed: int):
        rng = np.random.default_rng(seed)
        x = rng.uniform(1, 10, size=(30, 2))
        y = 2 * x[:, 0] ** 0.5 * x[:, 1] ** -1.5 * np.exp(0.01 * rng.normal(size=30))
        return fit_power_law(y, x, "y", ["x1", "x2"])

    hits = sum(all(e.ci[0] <= t <= e.ci[1] for e, t in zip(fit(s).exponents, (0.5, -1.5)))
               for s in range(200))  # fmt: skip
    assert 0.85 < hits / 200 < 0.95  # joint coverage of two 95 % intervals: ~0.90
    for seed in range(20):  # where an interval holds the truth, its simplest rational is it
        f = fit(seed)
        for e, truth in zip(f.exponents, (Fraction(1, 2), Fraction(-3, 2))):
            if e.ci[0] <= truth <= e.ci[1]:
                assert e.rational == truth
        if f.all_rational:
            assert f.rounded_prefactor == pytest.approx(2.0, rel=0.02)


def test_the_simplest_rational_in_an_interval():
    assert simplest_rational(1.49, 1.51) == Fraction(3, 2)
    assert simplest_rational(-0.51, -0.49) == Fraction(-1, 2)
    assert simplest_rational(-0.1, 0.1) == 0
    assert simplest_rational(0.32, 0.34) == Fraction(1, 3)
    assert simplest_rational(0.141, 0.142) is None  # no p/q with q <= 6 there
    assert simplest_rational(0.141, 0.1429, max_denominator=7) == Fraction(1, 7)


def test_dimensions_imply_the_pendulum_exponents():
    """P [s] = c l^a g^b: dimensions alone give a = 1/2, b = -1/2."""
    assert implied_exponents(S, [M, ACC]) == [Fraction(1, 2), Fraction(-1, 2)]
    assert implied_exponents(S, [M]) is None  # no power of a length is a time
    assert implied_exponents(S, [M, M]) is None  # two lengths: not determined


def test_inconsistent_dimensions_are_reported():
    """A 'law' P ~ l^1 cannot have a dimensionless prefactor without a constant of dimension
    s m^-1; the model's constants (a mass) cannot carry it."""
    rng = np.random.default_rng(1)
    x = rng.uniform(1, 5, size=(10, 1))
    fit = fit_power_law(3 * x[:, 0], x, "P", ["l"], target_dims=S, predictor_dims=[M],
                        constants={"m": KG})  # fmt: skip
    d = fit.dimensions
    assert not d.possible and not d.consistent and d.constants is None
    assert "s" in fit_rows(fit)[0]["prefactor_dims"]


def test_symbolic_output_is_sympy():
    x = np.linspace(1, 4, 10)[:, None]
    fit = fit_power_law(2 * np.pi * x[:, 0] ** 0.5, x, "T", ["l"])
    assert isinstance(fit.expression, sp.Expr)
    l_ = sp.Symbol("l", positive=True)
    assert sp.simplify(fit.expression / sp.sqrt(l_)).is_number
    assert fit.formula == "T = 6.283 * l^(1/2)"
    assert str(fit.expression) == "6.28319*sqrt(l)"


@pytest.mark.parametrize("case, column, words", [
    ("nonpositive", "x", "positive"),
    ("nonfinite", "y", "non-finite"),
    ("constant", "x", "constant"),
    ("few", "y", "points"),
])  # fmt: skip
def test_data_that_cannot_support_the_fit_name_the_column(case, column, words):
    x = np.linspace(1, 3, 6)[:, None]
    y = x[:, 0] ** 2
    if case == "nonpositive":
        x[2, 0] = 0.0
    elif case == "nonfinite":
        y[3] = np.nan
    elif case == "constant":
        x[:, 0] = 2.0
    else:
        x, y = x[:2], y[:2]
    with pytest.raises(DataError) as err:
        fit_power_law(y, x, "y", ["x"])
    assert err.value.column == column and words in err.value.message
