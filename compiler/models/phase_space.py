"""Phase-space models: Hamilton's equations (derive/phase_space) lowered to torch.

:class:`PhaseSpaceModel`: a model with ``phase_space (q, p) [: real[N, D]]`` and a
``hamiltonian`` (or a ``kinetic`` plus a ``potential``). :func:`derive_phase_space` derives
Hamilton's equations in sympy (structured for sums over particles and pairs, else unrolled),
separability, unused pairs and non-differentiable pieces; lower/hamiltonian lowers them to
batched torch callables over ``q, p`` of shape ``(..., n)``, n = prod(shape).
"""

from __future__ import annotations

from typing import Any

import sympy
import torch

from physml_lang.compiler.derive.hamiltonian import HamiltonianDerivation, ParticleSum
from physml_lang.compiler.derive.phase_space import (
    PhaseBuilder,
    PhaseSpaceDerivation,
    Structure,
    derive_phase_space,
    phase_shape,
)
from physml_lang.compiler.instance import ModelInstance
from physml_lang.compiler.lower.hamiltonian import (
    CompiledHamiltonian,
    LoweringError,
    StructuredHamiltonian,
    lower_hamiltonian,
)
from physml_lang.compiler.models.common import fail
from physml_lang.diagnostics import Span

Tensor = torch.Tensor


def lower_structure(s: Structure, name: str, span: Span) -> StructuredHamiltonian:
    """The structured Hamiltonian's torch callables: the generic particle and pair pieces
    lowered once, the rest unrolled (P800 at ``span`` for an expression with no torch form)."""
    try:
        rest = None
        if s.rest_equations is not None:
            rest = lower_hamiltonian(s.rest_equations, {k: s.params[k] for k in s.rest.free_symbols
                                                        if k in s.params})  # fmt: skip
        particles = ParticleSum(s.particle, s.gq, s.gp) if s.particle is not None else None
        return StructuredHamiltonian(s.N, s.D, particles, s.pair, rest, s.constant, s.params,
                                     s.separable, name)  # fmt: skip
    except LoweringError as exc:
        fail("P800", str(exc), span)


class PhaseSpaceModel:
    """A compiled phase-space model: derived Hamilton's equations and torch callables.

    ``derived``: the :class:`PhaseSpaceDerivation`; ``system``: the :class:`CompiledHamiltonian`
    or :class:`StructuredHamiltonian` (``hamiltonian(q, p) -> (B,)``, ``dH_dq, dH_dp -> (B, n)``
    over flattened coordinates, n = prod(shape)).
    """

    kind = "phase_space"

    def __init__(self, model: ModelInstance):
        self.model = model
        self.ir = ir = model.ir
        self.derived = derived = derive_phase_space(model)
        self.shape: tuple[int, ...] = derived.shape
        self.n: int = derived.n
        self.builder: PhaseBuilder | None = derived.builder
        self.structure: Structure | None = derived.structure
        if self.structure is not None:
            self.system: CompiledHamiltonian | StructuredHamiltonian = lower_structure(
                self.structure, ir.name, self.H_span)  # fmt: skip
            return
        d = self.derivation
        bound = {sympy.Symbol(k, real=True): float(v) for k, v in self.builder.params.items()}
        used = {s for s in self.H.free_symbols if s in bound}
        try:
            self.system = lower_hamiltonian(d, {s: bound[s] for s in used})
        except LoweringError as exc:
            fail("P800", str(exc), self.H_span)
        self.system.name = ir.name  # type: ignore[attr-defined]

    @property
    def H_span(self) -> Span:
        return self.derived.H_span

    @property
    def H(self) -> sympy.Expr:
        """H over the flattened canonical symbols, every sum unrolled (small systems only)."""
        return self.derived.H

    @property
    def derivation(self) -> HamiltonianDerivation:
        """Hamilton's equations over the flattened coordinates (derived on first use; the
        structured path never needs them)."""
        return self.derived.equations

    # ---------------------------------------------------------------- conveniences
    @property
    def separable(self) -> bool:
        return bool(self.system.separable)

    @property
    def default_integrator(self) -> str:
        """Structure-preserving default: leapfrog for H = T(p) + V(q), implicit midpoint else."""
        return self.derived.default_integrator

    def flat(self, x: Tensor) -> Tensor:
        """(B, *shape) -> (B, n)."""
        return x.reshape(x.shape[0], self.n)

    def to(self, device: Any) -> PhaseSpaceModel:
        return self  # lowered closures run on the device of their inputs

    @property
    def qname(self) -> str:
        return self.derived.qname

    @property
    def pname(self) -> str:
        return self.derived.pname

    def labels(self) -> list[str]:
        return self.derived.labels()

    def describe(self) -> str:
        return self.derived.describe()

    def emit_sympy(self) -> str:
        return self.derived.emit_sympy()

    def emit_torch(self) -> str:
        return self.system.source


def compile_phase_space(model: ModelInstance, **options: Any) -> PhaseSpaceModel:
    return PhaseSpaceModel(model)


__all__ = ["PhaseSpaceDerivation", "PhaseSpaceModel", "compile_phase_space", "phase_shape"]
