"""The catalogue: every name the language resolves -- lattices, field domains, samplers,
updates, learners, optimisers, schedules, objectives, integrators, observables, data sources
and tasks -- with its options schema, documentation and static facts.

Front-end data: no torch, no runtime imports, so ``physml check`` validates every option of a
program without loading either. Implementations are attached by ``bind(catalogue)`` of each
implementation package, called by the top layer only (``physml_lang/api.py``).
"""

from __future__ import annotations

from . import (
    boltzmann,
    data,
    discovery,
    domains,
    dynamics,
    flows,
    gauge,
    gauge_flows,
    generative,
    hopfield,
    landscape,
    lattices,
    phases,
    propagation,
    quantum,
    scores,
    spins,
    topology,
)
from .registry import Catalogue, Entry, Facts, NoOptions, Registry

FAMILIES = (lattices, domains, spins, quantum, gauge, dynamics, boltzmann, generative, flows,
            gauge_flows, scores, hopfield, landscape, discovery, phases, topology, propagation,
            data)


def declare_catalogue() -> Catalogue:
    """A catalogue with every entry declared (no implementation bound yet)."""
    catalogue = Catalogue()
    for family in FAMILIES:
        family.declare(catalogue)
    return catalogue


CATALOGUE = declare_catalogue()

__all__ = ["CATALOGUE", "Catalogue", "Entry", "Facts", "NoOptions", "Registry",
           "declare_catalogue"]
