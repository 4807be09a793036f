"""A model IR realised: its geometry built, its data and arrays evaluated.

The compiler's view of one :class:`~physml_lang.ir.model.ModelIR`: the declarations by name
(fields, definitions, symmetries), the lattice or graph as geometry (neighbour tables, shells),
coupling arrays as numpy values and data arrays as given by the caller's data resolver (the
runtime loads files and samples models; the compiler never does).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from physml_lang.compiler.arrays import RealArray, realise_array
from physml_lang.compiler.geometry import (
    Lattice,
    make_complete_graph,
    make_edge_graph,
    make_lattice,
)
from physml_lang.compiler.sitesets import GRAPH_BUILDERS
from physml_lang.diagnostics import Diagnostic, PhysmlError, Span
from physml_lang.ir.model import (
    CoordinatesIR,
    DataIR,
    DefinitionIR,
    DomainIR,
    FieldIR,
    GraphIR,
    LatticeIR,
    ModelIR,
    PhaseSpaceIR,
    SymmetryIR,
)

Domain = DomainIR


@dataclass
class RealData:
    """A data array with its values (float64) and what the source says about it (e.g. the
    temperature of sampled configurations)."""

    name: str
    values: np.ndarray
    domain: DomainIR | None
    span: Span | None
    source: str
    meta: dict

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.values.shape)


# (data declaration, parameter values) -> realised data
DataResolver = Callable[[DataIR, dict[str, Any]], RealData]


def build_geometry(lattice: LatticeIR | GraphIR | None) -> Lattice | None:
    """The geometry of a declared lattice or graph."""
    if lattice is None:
        return None
    if isinstance(lattice, GraphIR):
        if lattice.kind == "complete":
            return make_complete_graph(lattice.sizes[0])
        if lattice.kind == "edges":
            return make_edge_graph(lattice.sizes[0], lattice.edges)
        return GRAPH_BUILDERS[lattice.kind](*lattice.sizes)
    return make_lattice(lattice.kind, lattice.extent, lattice.periodic)


class ModelInstance:
    """A realised model. ``ir`` is the frozen IR; the rest are its parts by name, with values."""

    def __init__(self, ir: ModelIR, data: DataResolver | None = None):
        self.ir = ir
        self.name = ir.name
        self.kind = ir.kind
        self.params: dict[str, Any] = dict(ir.values)
        self.param_types: dict[str, str] = dict(ir.param_types)
        self.lattice: Lattice | None = build_geometry(ir.lattice)
        self.fields: dict[str, FieldIR] = dict(ir.field_map)
        self.definitions: dict[str, DefinitionIR] = dict(ir.definition_map)
        self.symmetries: list[SymmetryIR] = list(ir.symmetries)
        self.phase_space: PhaseSpaceIR | None = ir.phase_space
        self.coordinates: CoordinatesIR | None = ir.coordinates
        self.span = ir.span
        self.name_span = ir.name_span
        self.data: dict[str, RealData] = {}
        for d in ir.data:
            if data is None:

                raise PhysmlError(Diagnostic("P800", f"data '{d.name}' cannot be realised here",
                                             d.span))  # fmt: skip
            self.data[d.name] = data(d, self.params)
        self.arrays: dict[str, RealArray] = {}
        known = {k: v.values for k, v in self.data.items()}
        for a in ir.arrays:
            arr = realise_array(a, self.lattice, self.params, known)
            self.arrays[a.name] = arr
            known[a.name] = arr.values

    @property
    def energy(self) -> DefinitionIR | None:
        return self.ir.energy


def numeric_variant(current: ModelInstance, ir: ModelIR,
                    numeric: frozenset[str]) -> ModelInstance | None:  # fmt: skip
    """``ir`` realised, when it is ``current``'s model with other values of the ``numeric``
    parameters only (same declarations, same other values, same realised arrays, no data);
    None otherwise: a value that changes the structure is compiled again."""
    if not numeric or ir.data or ir != replace(current.ir, params=ir.params):
        return None
    if any(ir.values[k] != v for k, v in current.ir.values.items() if k not in numeric):
        return None
    model = ModelInstance(ir)
    if any(not np.array_equal(a.values, current.arrays[n].values)
           for n, a in model.arrays.items()):  # fmt: skip
        return None  # an array drawn or computed from a scanned parameter
    return model
