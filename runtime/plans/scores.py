"""Static plans (torch-free): Score models (denoising score matching, annealed Langevin, reverse SDE, probability-flow
ODE) and flow matching of continuous lattice fields."""

from __future__ import annotations

from physml_lang.catalogue import Catalogue


def bind_checks(catalogue: Catalogue) -> None:
    """Attach the static checks of this family's tasks."""


__all__ = ["bind_checks"]
