"""The tasks: Normalising flows of continuous lattice fields (scalar phi^4): coupling flows trained by
reverse KL, then neural importance sampling and neural MCMC."""

from __future__ import annotations

from physml_lang.catalogue import Catalogue


def bind(catalogue: Catalogue) -> None:
    """Attach the implementations to their catalogue entries."""


__all__ = ["bind"]
