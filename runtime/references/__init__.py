"""Exact and reference curves to overlay on a run's plot, decided from the compiled model.

``reference_curves(cm, tvar, names, x_range)`` gives, for each plotted observable that has one,
the exact curve along the temperature axis (``tvar``: ``T`` or ``beta``); ``critical_marks``
gives the known critical points on that axis. Only models recognised numerically get curves
(see :mod:`.ising2d`); any other model gets none.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from .curves import Mark, ReferenceCurve
from .ising2d import IsingTorus, ising_torus
from .labels import axis_label, quantity_of

_POINTS = 100  # of a dense curve (5 evaluations of log Z each)
_MAX_BETA_J = 50.0


def reference_curves(cm, tvar: str, names: Sequence[str], x_range: tuple[float, float],
                     expressions: Mapping[str, str | None] | None = None) -> list[ReferenceCurve]:
    """The exact curves of ``names`` (observables measured per temperature; ``expressions``:
    name -> its measure's text, None for a built-in) for the compiled model ``cm`` over
    ``x_range`` of ``tvar``; empty where the model or the axis has none."""
    lo, hi = sorted(float(v) for v in x_range)
    if tvar not in ("T", "beta") or not lo > 0 or lo == hi:
        return []
    torus = ising_torus(cm)
    if torus is None:
        return []
    kinds = {n: quantity_of(n, (expressions or {}).get(n)) for n in names}
    wanted = {k for k in kinds.values() if k is not None}
    if not wanted & {"energy", "energy_per_site", "specific_heat", "abs_magnetization"}:
        return []
    xs = np.linspace(lo, hi, _POINTS)
    with np.errstate(divide="ignore", over="ignore"):
        betas = 1 / xs if tvar == "T" else xs
    # far below T_c the curves are flat and log Z's terms overflow: draw where beta J <= 50
    keep = np.isfinite(betas) & (betas > 0) & (betas * abs(torus.J) <= _MAX_BETA_J)
    xs, betas = xs[keep], betas[keep]
    if len(xs) < 2:
        return []
    try:
        return [c for n, k in kinds.items() if k is not None
                for c in _ising_curves(torus, n, k, tuple(xs), betas)]
    except (ValueError, OverflowError, FloatingPointError):  # an overlay never stops a run
        return []


def _ising_curves(torus: IsingTorus, name: str, kind: str, xs: tuple[float, ...],
                  betas: np.ndarray) -> list[ReferenceCurve]:  # fmt: skip
    size = f"L = {torus.L1}" if torus.L1 == torus.L2 else f"{torus.L1} x {torus.L2}"
    if kind in ("energy", "energy_per_site", "specific_heat"):
        pairs = [torus.energy_and_heat(float(b)) for b in betas]
        if kind == "specific_heat":
            ys = [c for _, c in pairs]
        else:
            ys = [e * (torus.sites if kind == "energy" else 1) for e, _ in pairs]
        return [ReferenceCurve(name, xs, tuple(ys), f"exact, {size} (Ferdinand-Fisher)")]
    if kind == "abs_magnetization" and torus.J > 0:
        ys = tuple(torus.magnetisation(float(b)) for b in betas)
        return [ReferenceCurve(name, xs, ys, "exact, L = ∞ (Onsager-Yang)")]
    return []


def critical_marks(cm, tvar: str) -> list[Mark]:
    """The known critical points of ``cm`` on the ``tvar`` axis (T or beta)."""
    if tvar not in ("T", "beta"):
        return []
    torus = ising_torus(cm)
    if torus is None:
        return []
    t_c = torus.critical_temperature
    return [Mark(t_c if tvar == "T" else 1 / t_c,
                 "T_c (Onsager)" if tvar == "T" else "β_c (Onsager)")]


def labelled_marks(marks: Sequence[float], known: Sequence[Mark], x: str,
                   rel: float = 1e-4) -> list[Mark]:  # fmt: skip
    """The plot statement's marks with legend labels: a known critical point's name where a
    mark is one (within ``rel``), else ``x = value``."""
    out = []
    for m in marks:
        hit = next((k for k in known if abs(k.x - m) <= rel * abs(k.x)), None)
        out.append(Mark(float(m), hit.label if hit else f"{x} = {m:g}"))
    return out


__all__ = ["Mark", "ReferenceCurve", "axis_label", "critical_marks", "labelled_marks",
           "quantity_of", "reference_curves"]
