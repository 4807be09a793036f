"""The model IR: one model declaration, checked and instantiated with concrete parameter values.

Frozen and declarative: the lattice is its description (kind, extent, boundary, primitive
vectors and basis), arrays and data are their declared sources (expressions), energies are
:mod:`expression IR <physml_lang.ir.expr>`. The compiler realises it (geometry, coupling arrays,
data) and lowers it; nothing downstream reads the syntax tree. ``print_ir``/``parse_ir``
(:mod:`physml_lang.ir.text`) give it a text form that round-trips exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from physml_lang.diagnostics import Span

from .expr import Expr

Scalar = int | float | bool | complex

MODEL_KINDS = ("lattice", "boltzmann", "quantum", "gauge", "phase_space", "field", "landscape")
ENERGY_KINDS = ("energy", "hamiltonian", "action")
DISCRETE_DOMAINS = ("spin", "binary", "potts", "integer", "qubit", "z2")
CONTINUOUS_DOMAINS = ("real", "angle")
GAUGE_GROUPS = ("z2", "u1", "su2")


def _span() -> Span | None:
    return field(default=None, compare=False, repr=False, kw_only=True)


@dataclass(frozen=True)
class ParamIR:
    """A model parameter with its declared type and its value in this instance."""

    name: str
    type: str  # int, real, bool, complex
    value: Scalar
    unit: Expr | None = None  # its unit as declared (l: real [m]): physml_lang/check/units.py
    span: Span | None = _span()


@dataclass(frozen=True)
class LatticeIR:
    """A Bravais lattice with a basis: ``extent`` unit cells along each primitive vector.

    ``vectors``: the primitive vectors (Cartesian); ``basis``: the sites of a unit cell in
    fractional coordinates (one site at the origin for chain, square, triangular, cubic).
    """

    kind: str
    extent: tuple[int, ...]
    periodic: tuple[bool, ...]
    vectors: tuple[tuple[float, ...], ...]
    basis: tuple[tuple[float, ...], ...]
    span: Span | None = _span()

    @property
    def dim(self) -> int:
        return len(self.extent)

    @property
    def n_sites(self) -> int:
        n = len(self.basis)
        for e in self.extent:
            n *= e
        return n


@dataclass(frozen=True)
class GraphIR:
    """A graph given by its kind and sizes: ``complete(N)``, ``bipartite(Nv, Nh)``, or
    ``edges(path)``: N = sizes[0] sites and the bonds ``edges`` (i < j) read from ``path``."""

    kind: str
    sizes: tuple[int, ...]
    edges: tuple[tuple[int, int], ...] = field(default=(), repr=False)
    path: str | None = None
    span: Span | None = _span()

    @property
    def n_sites(self) -> int:
        return sum(self.sizes)


@dataclass(frozen=True)
class DomainIR:
    """The values a field takes at one site: ``spin``, ``spin(S)`` (args = (2S,)),
    ``potts(q)`` (args = (q,)), ``integer(lo, hi)`` (args = (lo, hi)), ``u1``, ..."""

    kind: str
    args: tuple[int, ...] = ()

    @property
    def q(self) -> int | None:
        """The number of values of a discrete domain (potts: q)."""
        if self.kind == "potts":
            return self.args[0]
        return len(self.values()) if self.discrete else None

    @property
    def discrete(self) -> bool:
        return self.kind in DISCRETE_DOMAINS

    @property
    def ising(self) -> bool:
        """Two values -1 and +1 (an Ising spin, a Z2 variable, a qubit's Z basis)."""
        return self.kind in ("spin", "qubit", "z2") and not self.args

    def values(self) -> list[float]:
        if self.ising:
            return [-1.0, 1.0]
        if self.kind == "spin":  # spin S: m = -S, -S + 1, ..., S
            return [(2 * k - self.args[0]) / 2 for k in range(self.args[0] + 1)]
        if self.kind == "binary":
            return [0.0, 1.0]
        if self.kind == "potts":
            return [float(k) for k in range(self.args[0])]
        if self.kind == "integer":
            return [float(k) for k in range(self.args[0], self.args[1] + 1)]
        raise ValueError(f"{self.kind} is not a discrete domain")

    def __str__(self) -> str:
        if self.kind == "spin" and self.args:
            twice = self.args[0]
            return f"spin({twice // 2})" if twice % 2 == 0 else f"spin({twice}/2)"
        return f"{self.kind}({', '.join(map(str, self.args))})" if self.args else self.kind


@dataclass(frozen=True)
class FieldIR:
    name: str
    domain: DomainIR
    on: str  # sites, links, or a site set of a graph (visible, hidden)
    span: Span | None = _span()


@dataclass(frozen=True)
class ArrayIR:
    """A coupling or parameter array (``param J on bonds = normal(0, 1, seed = 1)``).

    ``value`` is its source: a constant expression, a random draw, ``load(...)``, or, when
    ``indices`` are given (``param W[i, j] = ...``), the body of an index definition;
    ``diagonal`` holds later assignments of repeated indices (``W[i, i] = 0``).
    """

    name: str
    on: str | None
    value: Expr
    learnable: bool = False
    indices: tuple[str, ...] = ()
    diagonal: tuple[DiagonalIR, ...] = ()
    span: Span | None = _span()


@dataclass(frozen=True)
class DiagonalIR:
    """``W[i, i] = value``: the entries whose indices repeat."""

    indices: tuple[str, ...]
    value: Expr
    span: Span | None = _span()


@dataclass(frozen=True)
class ColumnIR:
    """A column of a data table and its unit as declared (``table(a = AU, P = yr)``)."""

    name: str
    unit: Expr | None = None
    span: Span | None = _span()


@dataclass(frozen=True)
class DataIR:
    """``data xi: spin[P, N] = random(seed = 1)``: a data array and where it comes from;
    ``data planets: table(a = AU, P = yr) = load("planets.csv")``: a table, rows by columns."""

    name: str
    domain: DomainIR | None
    shape: tuple[Expr, ...] | None
    source: Expr
    columns: tuple[ColumnIR, ...] | None = None
    span: Span | None = _span()


@dataclass(frozen=True)
class DefinitionIR:
    """``energy E = ...``, ``plaquette P[x] = ...``, ``let r[i, j] = ...``, ``observable M = ...``."""

    kind: str
    name: str
    indices: tuple[str, ...]
    expr: Expr
    span: Span | None = _span()


@dataclass(frozen=True)
class SymmetryIR:
    """A declared symmetry; ``active`` is its condition evaluated with this instance's values."""

    name: str
    active: bool = True
    condition: Expr | None = None
    args: tuple[Expr, ...] = ()
    span: Span | None = _span()


@dataclass(frozen=True)
class PhaseSpaceIR:
    """``phase_space (q, p)`` or ``phase_space (q, p): real[N, D]`` (shape () for one pair)."""

    q: str
    p: str
    shape: tuple[int, ...] = ()
    span: Span | None = _span()


@dataclass(frozen=True)
class CoordinatesIR:
    """``coordinates x: real[N, D] in [lower, upper]``: continuous coordinates (shape () for one)
    of a potential; ``lower``/``upper`` bound every coordinate (None: unbounded)."""

    name: str
    shape: tuple[int, ...] = ()
    lower: float | None = None
    upper: float | None = None
    span: Span | None = _span()


@dataclass(frozen=True)
class ConservedIR:
    """``conserve sum(Z[i] for i in sites)``."""

    expr: Expr
    span: Span | None = _span()


@dataclass(frozen=True)
class ModelIR:
    """One model instantiated with concrete parameter values."""

    name: str
    kind: str
    params: tuple[ParamIR, ...]
    lattice: LatticeIR | GraphIR | None = None
    fields: tuple[FieldIR, ...] = ()
    arrays: tuple[ArrayIR, ...] = ()
    data: tuple[DataIR, ...] = ()
    definitions: tuple[DefinitionIR, ...] = ()
    symmetries: tuple[SymmetryIR, ...] = ()
    phase_space: PhaseSpaceIR | None = None
    conserved: tuple[ConservedIR, ...] = ()
    coordinates: CoordinatesIR | None = None
    span: Span | None = _span()
    name_span: Span | None = _span()

    # ---------------------------------------------------------------- lookups
    @cached_property
    def values(self) -> dict[str, Scalar]:
        """Parameter name -> value."""
        return {p.name: p.value for p in self.params}

    @cached_property
    def param_types(self) -> dict[str, str]:
        return {p.name: p.type for p in self.params}

    @cached_property
    def field_map(self) -> dict[str, FieldIR]:
        return {f.name: f for f in self.fields}

    @cached_property
    def array_map(self) -> dict[str, ArrayIR]:
        return {a.name: a for a in self.arrays}

    @cached_property
    def data_map(self) -> dict[str, DataIR]:
        return {d.name: d for d in self.data}

    @cached_property
    def definition_map(self) -> dict[str, DefinitionIR]:
        return {d.name: d for d in self.definitions}

    @property
    def energy(self) -> DefinitionIR | None:
        """The energy, Hamiltonian or action (in that order of preference)."""
        for kind in ENERGY_KINDS:
            for d in self.definitions:
                if d.kind == kind:
                    return d
        return None
