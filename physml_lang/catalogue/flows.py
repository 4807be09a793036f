"""Catalogue entries: Normalising flows of continuous lattice fields (scalar phi^4): coupling flows trained by
reverse KL, then neural importance sampling and neural MCMC."""

from __future__ import annotations

from .registry import Catalogue


def declare(catalogue: Catalogue) -> None:
    """Declare this family's learners, objectives and tasks."""


__all__ = ["declare"]
