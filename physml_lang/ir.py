"""The checked model IR: what the front end hands to the compiler.

Names are resolved, parameters have values, lattices and arrays are built, and every piece keeps
the span it came from so that later stages can still point at the source.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from physml_lang.compiler.lattices import Lattice

from . import ast
from .diagnostics import Span

SPIN_DOMAINS = {"spin", "binary", "potts", "qubit"}
CONTINUOUS_DOMAINS = {"real", "angle"}
GAUGE_GROUPS = {"z2", "u1", "su2"}


@dataclass(frozen=True)
class Domain:
    """The values a field takes at one site: spin (±1), binary (0/1), potts(q) (0..q-1), ..."""

    kind: str
    q: int | None = None

    @property
    def discrete(self) -> bool:
        return self.kind in ("spin", "binary", "potts", "qubit", "z2")

    def values(self) -> list[float]:
        if self.kind in ("spin", "qubit", "z2"):
            return [-1.0, 1.0]
        if self.kind == "binary":
            return [0.0, 1.0]
        if self.kind == "potts":
            assert self.q is not None
            return [float(k) for k in range(self.q)]
        raise ValueError(f"{self.kind} is not a discrete domain")

    def __str__(self) -> str:
        return f"{self.kind}({self.q})" if self.q is not None else self.kind


@dataclass
class FieldIR:
    name: str
    domain: Domain
    on: str  # "sites" or "links"
    span: Span


@dataclass
class ArrayIR:
    """A coupling or parameter array.

    ``on`` is "sites", "bonds", "bonds2" or "pairs". ``values`` has shape lattice.shape for
    sites, (*lattice.shape, n_directions) for bonds, (N, N) symmetric with zero diagonal for
    pairs. ``uniform`` arrays hold one number everywhere and lower to that number.
    """

    name: str
    on: str
    values: np.ndarray
    uniform: bool
    learnable: bool
    span: Span
    init: str = "constant"

    @property
    def uniform_value(self) -> float:
        if self.on == "pairs":  # the diagonal is zero by construction: read an off-diagonal entry
            return float(self.values[0, 1]) if self.values.shape[0] > 1 else 0.0
        return float(self.values.reshape(-1)[0]) if self.values.size else 0.0


@dataclass
class DefinitionIR:
    kind: str
    name: str
    indices: list[ast.Expr]
    expr: ast.Expr
    span: Span


@dataclass
class SymmetryIR:
    name: str
    span: Span
    active: bool
    condition: ast.Expr | None = None
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class ModelIR:
    """One model instantiated with concrete parameter values."""

    name: str
    params: dict[str, Any]
    param_types: dict[str, str]
    lattice: Lattice | None
    fields: dict[str, FieldIR]
    arrays: dict[str, ArrayIR]
    definitions: dict[str, DefinitionIR]
    symmetries: list[SymmetryIR]
    node: ast.Model
    phase_space: ast.PhaseSpaceStmt | None = None
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def energy(self) -> DefinitionIR | None:
        for kind in ("energy", "hamiltonian", "action"):
            for d in self.definitions.values():
                if d.kind == kind:
                    return d
        return None

    @property
    def span(self) -> Span:
        return self.node.span
