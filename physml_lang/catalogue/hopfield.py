"""Catalogue entries: The Hopfield network's phase diagram in (alpha, T): paramagnet, retrieval and spin glass,
against the Amit-Gutfreund-Sompolinsky lines."""

from __future__ import annotations

from .registry import Catalogue


def declare(catalogue: Catalogue) -> None:
    """Declare this family's learners, objectives and tasks."""


__all__ = ["declare"]
