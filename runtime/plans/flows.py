"""Static plans (torch-free): Normalising flows of continuous lattice fields (scalar phi^4): coupling flows trained by
reverse KL, then neural importance sampling and neural MCMC."""

from __future__ import annotations

from physml_lang.catalogue import Catalogue


def bind_checks(catalogue: Catalogue) -> None:
    """Attach the static checks of this family's tasks."""


__all__ = ["bind_checks"]
