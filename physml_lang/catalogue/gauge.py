"""Catalogue entries of the gauge capability (options schemas, docs, static facts)."""

from __future__ import annotations

from .registry import Catalogue


def declare(catalogue: Catalogue) -> None:
    """Declare this capability's entries."""
    catalogue.tasks.declare(
        "sample",
        doc=(
        "link updates (metropolis, heatbath, hmc) for Wilson gauge models; local "
        "metropolis / heatbath (z2) updates of links and matter for other actions"
        ), family="gauge",
    )
    catalogue.tasks.declare(
        "gauge_regress",
        doc=(
        "train gauge learners on sampled configurations; test on larger lattices"
        ), kinds=("gauge",),
    )
