"""Static plans (torch-free): Gauge-equivariant normalising flows of U(1) link fields (plaquette couplings), trained by
reverse KL, then neural importance sampling and neural MCMC."""

from __future__ import annotations

from physml_lang.catalogue import Catalogue


def bind_checks(catalogue: Catalogue) -> None:
    """Attach the static checks of this family's tasks."""


__all__ = ["bind_checks"]
