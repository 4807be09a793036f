"""Static plans of the gauge tasks (torch-free)."""

from __future__ import annotations

from physml_lang.catalogue import Catalogue


def bind_checks(catalogue: Catalogue) -> None:
    """Attach the static checks of the gauge tasks to their catalogue entries."""
