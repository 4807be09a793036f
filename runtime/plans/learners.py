"""Static plans of the learners tasks (torch-free)."""

from __future__ import annotations

from physml_lang.catalogue import Catalogue


def bind_checks(catalogue: Catalogue) -> None:
    """Attach the static checks of the learners tasks to their catalogue entries."""
