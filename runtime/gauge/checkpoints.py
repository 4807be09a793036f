"""Gauge tensors as a checkpoint holds them: safetensors has no complex dtype, so complex links
(su2) and complex learner weights are stored as real and imaginary parts in a trailing axis, and
every tensor is checked against the one it replaces (a located P602 otherwise)."""

from __future__ import annotations

from pathlib import Path

import torch

from physml_lang.diagnostics import Diagnostic, PhysmlError, Span

Tensor = torch.Tensor


def stored(t: Tensor) -> Tensor:
    """``t`` as a checkpoint holds it: complex (..., ) -> real (..., 2)."""
    return torch.view_as_real(t) if t.is_complex() else t


def loaded(tensors: dict[str, Tensor], name: str, like: Tensor, path: Path | None,
           span: Span | None) -> Tensor:  # fmt: skip
    """The checkpoint's ``name`` in the shape, dtype and device of ``like`` (P602 otherwise)."""
    t = tensors.get(name)
    want = stored(torch.empty(like.shape, dtype=like.dtype, device="meta"))
    if t is None or tuple(t.shape) != tuple(want.shape) or t.dtype != want.dtype:
        got = "absent" if t is None else f"{tuple(t.shape)} {t.dtype}"
        raise PhysmlError(Diagnostic(
            "P602", f"checkpoint {path}: tensor '{name}' is {got}, expected "
            f"{tuple(want.shape)} {want.dtype}", span,
            "delete it, or run without --resume to start afresh"))  # fmt: skip
    t = t.to(like.device)
    return torch.view_as_complex(t.contiguous()) if like.is_complex() else t


__all__ = ["loaded", "stored"]
