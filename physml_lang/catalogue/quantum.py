"""Catalogue entries of the quantum capability (options schemas, docs, static facts)."""

from __future__ import annotations

from .registry import Catalogue


def declare(catalogue: Catalogue) -> None:
    """Declare this capability's entries."""
    catalogue.tasks.declare(
        "sample",
        doc=(
        "classical sampling does not apply to quantum models (a located error)"
        ), family="quantum",
    )
    catalogue.tasks.declare(
        "exact",
        doc=(
        "exact diagonalisation (Lanczos) of a qubit model"
        ), kinds=("quantum",),
    )
    catalogue.tasks.declare(
        "vmc",
        doc=(
        "variational Monte Carlo: optimise a neural quantum state"
        ), kinds=("quantum",),
    )
