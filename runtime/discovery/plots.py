"""The picture of a discovered law: log y against the fitted log predictor, with the fit."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..outputs import save_figure
from .laws import LawFit


def _label(name: str, units: dict[str, str]) -> str:
    unit = units.get(name, "")
    return f"ln({name} / {unit})" if unit else f"ln {name}"


def law_plot(path: Path, fit: LawFit, units: dict[str, str]) -> Path:
    """One predictor: ln y against ln x with the fitted line; several: ln y against the fitted
    ln c + sum a_i ln x_i, with the identity line. Written atomically."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.5, 4.2))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    a = np.array([e.value for e in fit.exponents])
    if len(a) == 1:
        x = fit.log_x[:, 0]
        grid = np.linspace(x.min(), x.max(), 50)
        ax.plot(x, fit.log_y, "o", label="data")
        ax.plot(grid, fit.log_prefactor + a[0] * grid, "-", label=fit.formula)
        ax.set_xlabel(_label(fit.predictors[0], units))
    else:
        pred = fit.log_prefactor + fit.log_x @ a
        grid = np.linspace(pred.min(), pred.max(), 50)
        ax.plot(pred, fit.log_y, "o", label="data")
        ax.plot(grid, grid, "-", label=fit.formula)
        terms = " + ".join(f"{e.value:.3g} ln {e.name}" for e in fit.exponents)
        ax.set_xlabel(f"ln c + {terms}")
    ax.set_ylabel(_label(fit.target, units))
    ax.set_title(f"R² = {fit.r2:.6f}, {fit.n_points} points")
    ax.legend(fontsize=8)
    return save_figure(fig, path)


__all__ = ["law_plot"]
