"""Catalogue entries of the data capability (options schemas, docs, static facts)."""

from __future__ import annotations

from .registry import Catalogue


def declare(catalogue: Catalogue) -> None:
    """Declare this capability's entries."""
