"""Observables: per-sample quantities and functions of averages, with honest error bars.

Per-sample quantities (energy, magnetisation, user expressions) are averaged with a binning
analysis. Fluctuation observables are functions of several averages and get jackknife errors:

- specific_heat  c = beta^2 (<E^2> - <E>^2) / N
- susceptibility chi = beta (<M^2> - <|M|>^2) / N       (finite-size convention with |M|)
- binder         U = 1 - <M^4> / (3 <M^2>^2)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .statistics import Estimate, binning_analysis, jackknife


@dataclass(frozen=True)
class Fluctuation:
    """An observable that is a function of averages of per-sample series."""

    series: tuple[str, ...]  # names of per-sample series: E, E2, M, absM, M2, M4
    function: Callable[..., float]  # (beta, N, *means) -> value
    doc: str


FLUCTUATIONS: dict[str, Fluctuation] = {
    "specific_heat": Fluctuation(
        ("E", "E2"), lambda b, n, e, e2: b * b * (e2 - e * e) / n, "beta^2 var(E) / N"
    ),
    "susceptibility": Fluctuation(
        ("absM", "M2"), lambda b, n, am, m2: b * (m2 - am * am) / n, "beta (<M^2> - <|M|>^2) / N"
    ),
    "binder": Fluctuation(
        ("M2", "M4"), lambda b, n, m2, m4: 1 - m4 / (3 * m2 * m2), "1 - <M^4> / (3 <M^2>^2)"
    ),
}

def _energy(cm: Any, state: dict) -> Any:
    return cm.energy(state)


def _magnetization(cm: Any, state: dict) -> Any:
    return cm.magnetization(state)


# per-sample series of a lattice model: (compiled model, state) -> (B,)
SERIES: dict[str, Callable[[Any, dict], Any]] = {
    "energy": _energy,
    "magnetization": _magnetization,
}


def base_series(energy: np.ndarray, magnetization: np.ndarray) -> dict[str, np.ndarray]:
    """The per-sample series fluctuation observables need; inputs (T, chains)."""
    e = energy.astype(np.float64)
    m = magnetization.astype(np.float64)
    m2 = m * m
    return {"E": e, "E2": e * e, "M": m, "absM": np.abs(m), "M2": m2, "M4": m2 * m2}


def estimate_fluctuation(name: str, series: dict[str, np.ndarray], beta: float, n: int) -> Estimate:
    fl = FLUCTUATIONS[name]
    return jackknife(lambda *means: fl.function(beta, n, *means), [series[s] for s in fl.series])


def estimate_mean(series: np.ndarray) -> Estimate:
    return binning_analysis(series)
