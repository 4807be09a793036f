"""Helpers shared by the derivations of model kinds (torch-free)."""

from __future__ import annotations

from physml_lang.compiler.instance import ModelInstance
from physml_lang.ir.walk import fail


def allowed_symmetries(model: ModelInstance, allowed: set[str], what: str) -> None:
    """Every active declared symmetry is one this kind of model can verify (P501 otherwise)."""
    for s in model.symmetries:
        if s.active and s.name not in allowed:
            fail("P501", f"symmetry '{s.name}' is not supported for {what}", s.span,
                 "supported: " + ", ".join(sorted(allowed)))  # fmt: skip


__all__ = ["allowed_symmetries"]
