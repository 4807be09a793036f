"""Catalogue entries of the spins capability (options schemas, docs, static facts)."""

from __future__ import annotations

from .registry import Catalogue


def declare(catalogue: Catalogue) -> None:
    """Declare this capability's entries."""
    catalogue.tasks.declare(
        "sample",
        doc=(
        "Markov-chain sampling of lattice fields over a scan (temperatures, "
        "parameters)"
        ), kinds=("lattice",),
    )
