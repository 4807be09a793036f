"""Helpers shared by the compiled models."""

from __future__ import annotations

from physml_lang.diagnostics import Diagnostic, PhysmlError, Span


def fail(code: str, message: str, span: Span | None, hint: str | None = None):
    raise PhysmlError(Diagnostic(code, message, span, hint))
