"""Static plans of tasks: what a run would reject, checked without torch.

Each module validates one family's tasks from their IR -- names, options against the catalogue's
schemas, scans, overrides, sizes -- and derives the models they use (``program.derive``), so that
``physml check`` finds every static mistake without loading torch. The runtime's tasks start
from the same plans. ``bind(catalogue)`` attaches the checks to the task entries (top layer only).
"""

from __future__ import annotations

from physml_lang.catalogue import Catalogue

from . import (
    discovery,
    dynamics,
    flows,
    gauge,
    gauge_flows,
    generative,
    hopfield,
    landscape,
    learners,
    phases,
    propagation,
    quantum,
    sample,
    scores,
    topology,
)


def bind(catalogue: Catalogue) -> None:
    """Attach every family's static task checks to the catalogue's task entries."""
    for family in (sample, quantum, gauge, dynamics, learners, generative, flows, gauge_flows,
                   scores, hopfield, landscape, discovery, phases, topology, propagation):
        family.bind_checks(catalogue)


__all__ = ["bind"]
