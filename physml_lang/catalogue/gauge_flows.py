"""Catalogue entries: Gauge-equivariant normalising flows of U(1) link fields (plaquette couplings), trained by
reverse KL, then neural importance sampling and neural MCMC."""

from __future__ import annotations

from .registry import Catalogue


def declare(catalogue: Catalogue) -> None:
    """Declare this family's learners, objectives and tasks."""


__all__ = ["declare"]
