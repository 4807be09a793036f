"""Catalogue entries of the dynamics capability (options schemas, docs, static facts)."""

from __future__ import annotations

from .registry import Catalogue


def declare(catalogue: Catalogue) -> None:
    """Declare this capability's entries."""
    catalogue.tasks.declare(
        "evolve",
        doc="integrate Hamilton's equations with symplectic (or reference) integrators",
        kinds=("phase_space",),
    )
    catalogue.tasks.declare(
        "sample",
        doc=(
        "HMC / MALA / Langevin sampling of continuous lattice fields"
        ), family="field",
    )
    catalogue.tasks.declare(
        "learn_dynamics",
        doc=(
        "train Hamiltonian / vector-field / symplectic-map learners on "
        "trajectories"
        ), kinds=("phase_space",),
    )
