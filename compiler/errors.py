"""Errors of the compiler's own (not the user's) making, and the one way sympy input enters."""

from __future__ import annotations

import sympy


class CompileError(ValueError):
    """An expression that cannot be derived or lowered (an unbound symbol, an operation without
    a torch form, mismatched coordinates). Callers turn it into a located diagnostic."""


def as_sympy(value: object) -> sympy.Expr:
    """A sympy expression (or a plain number); never text."""
    if isinstance(value, sympy.Basic):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CompileError(f"expected a sympy expression, got {type(value).__name__}")
    return sympy.Integer(value) if isinstance(value, int) else sympy.Float(value)
