"""The tasks: Score models (denoising score matching, annealed Langevin, reverse SDE, probability-flow
ODE) and flow matching of continuous lattice fields."""

from __future__ import annotations

from physml_lang.catalogue import Catalogue


def bind(catalogue: Catalogue) -> None:
    """Attach the implementations to their catalogue entries."""


__all__ = ["bind"]
