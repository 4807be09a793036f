"""The tasks: Gauge-equivariant normalising flows of U(1) link fields (plaquette couplings), trained by
reverse KL, then neural importance sampling and neural MCMC."""

from __future__ import annotations

from physml_lang.catalogue import Catalogue


def bind(catalogue: Catalogue) -> None:
    """Attach the implementations to their catalogue entries."""


__all__ = ["bind"]
