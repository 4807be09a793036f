"""Catalogue entries: Score models (denoising score matching, annealed Langevin, reverse SDE, probability-flow
ODE) and flow matching of continuous lattice fields."""

from __future__ import annotations

from .registry import Catalogue


def declare(catalogue: Catalogue) -> None:
    """Declare this family's learners, objectives and tasks."""


__all__ = ["declare"]
