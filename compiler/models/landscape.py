"""Landscape models: a potential f(x) over continuous coordinates (derive/landscape) lowered to
batched torch callables over x of shape (..., n), n = prod(shape).

:class:`LandscapeModel` gives ``potential(x) -> (...)``, ``gradient(x) -> (..., n)`` (lowered on
first use: optimisers need no gradient) and, for a declared trial function, :class:`Trial`
(log psi, grad log psi, lap log psi) for importance-sampled diffusion Monte Carlo.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

import sympy
import torch

from physml_lang.compiler.derive.landscape import LandscapeDerivation, derive_landscape
from physml_lang.compiler.instance import ModelInstance
from physml_lang.compiler.lower.hamiltonian import LoweredFunction, lower_expressions
from physml_lang.compiler.lower.program import LoweringError
from physml_lang.compiler.models.common import fail
from physml_lang.diagnostics import Span

Tensor = torch.Tensor


class _Lowered:
    """A lowered function of x alone: the lowering's (q, p) signature with p unused."""

    def __init__(self, fn: LoweredFunction):
        self.fn = fn

    def __call__(self, x: Tensor) -> Tensor:
        return self.fn(x, x)

    @property
    def source(self) -> str:
        return self.fn.source


def _lower(d: LandscapeDerivation, name: str, exprs: list[sympy.Expr], kind: str,
           span: Span | None) -> _Lowered:  # fmt: skip
    dummy = [sympy.Symbol(f"_unused_{k}", real=True) for k in range(d.n)]
    try:
        return _Lowered(lower_expressions(name, exprs, d.x, dummy, d.params, kind=kind))
    except LoweringError as exc:
        fail("P800", str(exc), span)


class Trial:
    """A trial wavefunction psi_T > 0: ``log_psi(x) -> (W,)``, ``grad_log_psi(x) -> (W, n)``,
    ``laplacian_log_psi(x) -> (W,)``, derived symbolically from the declared ``trial``."""

    def __init__(self, d: LandscapeDerivation):
        log_psi, g, lap = d.trial_derivatives
        self.n = d.n
        self.log_psi = _lower(d, "log_psi", [log_psi], "scalar", d.trial_span)
        self.grad_log_psi = _lower(d, "grad_log_psi", g, "vector", d.trial_span)
        self.laplacian_log_psi = _lower(d, "laplacian_log_psi", [lap], "scalar", d.trial_span)
        # all three in one program: their common subexpressions (distances, exponentials)
        # computed once per step of a walker
        self._all = _lower(d, "trial_derivatives", [log_psi, *g, lap], "vector", d.trial_span)

    def derivatives(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(log psi (W,), grad log psi (W, n), lap log psi (W,)) in one pass."""
        out = self._all(x)
        return out[..., 0], out[..., 1:1 + self.n], out[..., 1 + self.n]


class LandscapeModel:
    """A compiled landscape model. ``derived``: the :class:`LandscapeDerivation`; ``n``
    coordinates of shape ``shape``; ``lower``/``upper`` the box (None: unbounded)."""

    kind = "landscape"

    def __init__(self, model: ModelInstance):
        self.model = model
        self.ir = model.ir
        self.derived = d = derive_landscape(model)
        self.shape: tuple[int, ...] = d.shape
        self.n: int = d.n
        self.lower, self.upper = d.lower, d.upper
        self.potential = _lower(d, "potential", [d.f], "scalar", d.f_span)

    @cached_property
    def gradient(self) -> _Lowered:
        """grad f: (..., n) -> (..., n) (derived symbolically)."""
        return _lower(self.derived, "gradient", self.derived.gradient, "vector",
                      self.derived.f_span)  # fmt: skip

    def force(self, x: Tensor) -> Tensor:
        """-grad f (the drift of overdamped Langevin dynamics): (..., n)."""
        return -self.gradient(x)

    @cached_property
    def trial(self) -> Trial | None:
        return Trial(self.derived) if self.derived.trial is not None else None

    def to(self, device: Any) -> LandscapeModel:
        return self  # lowered closures run on the device of their inputs

    def describe(self) -> str:
        return self.derived.describe()

    def emit_sympy(self) -> str:
        return self.derived.emit_sympy()

    def emit_torch(self) -> str:
        parts = [self.potential.source, self.gradient.source]
        if self.trial is not None:
            t = self.trial
            parts += [t.log_psi.source, t.grad_log_psi.source, t.laplacian_log_psi.source,
                      t._all.source]
        head = (f'"""Lowered landscape {self.ir.name}: x = ({", ".join(self.derived.labels())})'
                f' flattened."""\n\nimport torch\n\n\n')  # fmt: skip
        return head + "\n\n".join(parts)


__all__ = ["LandscapeModel", "Trial"]
