"""Static plans (torch-free): The Hopfield network's phase diagram in (alpha, T): paramagnet, retrieval and spin glass,
against the Amit-Gutfreund-Sompolinsky lines."""

from __future__ import annotations

from physml_lang.catalogue import Catalogue


def bind_checks(catalogue: Catalogue) -> None:
    """Attach the static checks of this family's tasks."""


__all__ = ["bind_checks"]
