"""Catalogue entries of the boltzmann capability (options schemas, docs, static facts)."""

from __future__ import annotations

from .registry import Catalogue


def declare(catalogue: Catalogue) -> None:
    """Declare this capability's entries."""
    catalogue.tasks.declare(
        "recall",
        doc=(
        "Hopfield retrieval from corrupted cues"
        ), kinds=("lattice", "boltzmann"),
    )
    catalogue.tasks.declare(
        "train",
        doc=(
        "training energy-based learners (CD, PCD)"
        ), kinds=("boltzmann",),
    )
    catalogue.tasks.declare(
        "sample",
        doc=(
        "Gibbs sampling of Boltzmann models (RBMs, general Boltzmann machines)"
        ), family="boltzmann",
    )
