"""The tasks: The Hopfield network's phase diagram in (alpha, T): paramagnet, retrieval and spin glass,
against the Amit-Gutfreund-Sompolinsky lines."""

from __future__ import annotations

from physml_lang.catalogue import Catalogue


def bind(catalogue: Catalogue) -> None:
    """Attach the implementations to their catalogue entries."""


__all__ = ["bind"]
