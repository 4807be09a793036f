"""What a plot overlays on measured rows: exact or reference curves and labelled marks."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ReferenceCurve:
    """An exact or reference value of ``observable`` along the plot's x axis: ``x`` dense,
    ``y`` its values, ``label`` the legend entry (which result it is, and from whom)."""

    observable: str
    x: tuple[float, ...]
    y: tuple[float, ...]
    label: str


@dataclass(frozen=True)
class Mark:
    """A vertical line at ``x`` (a critical point, a declared mark) with its legend entry."""

    x: float
    label: str


__all__ = ["Mark", "ReferenceCurve"]
