"""Lattices and graphs the language knows: static facts (dimension, primitive vectors, basis,
neighbour shells) read by the checker and, to build the geometry, by the compiler.

A shell is given by its *half* offset list in lattice coordinates: the bonds of shell k are
{(x, x + o) : x a site, o in shells[k]}, each unordered bond counted once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .options import LatticeOptions
from .registry import Catalogue

Offset = tuple[int, ...]


@dataclass(frozen=True)
class LatticeSpec:
    """A Bravais lattice: dimension, primitive vectors, basis sites (fractional coordinates)
    and neighbour shells. ``bonds[k]``: the bond types (a, b, offset) of shell k, bonds from
    sublattice a of cell n to sublattice b of cell n + offset, each unordered bond once."""

    name: str
    dim: int
    vectors: tuple[tuple[float, ...], ...]
    basis: tuple[tuple[float, ...], ...]
    bonds: dict[int, tuple[tuple[int, int, Offset], ...]]
    doc: str

    @property
    def shells(self) -> dict[int, tuple[Offset, ...]]:
        """Half offset lists of a one-site lattice's shells."""
        return {k: tuple(o for _, _, o in types) for k, types in self.bonds.items()}


def _unit(d: int) -> tuple[tuple[float, ...], ...]:
    return tuple(tuple(1.0 if i == j else 0.0 for j in range(d)) for i in range(d))


def _one_site(name: str, dim: int, vectors, shells: dict[int, tuple[Offset, ...]],
              doc: str) -> LatticeSpec:  # fmt: skip
    bonds = {k: tuple((0, 0, o) for o in offs) for k, offs in shells.items()}
    return LatticeSpec(name, dim, vectors, ((0.0,) * dim,), bonds, doc)


_S3 = math.sqrt(3) / 2
_TRIANGULAR = ((1.0, 0.0), (0.5, _S3))

LATTICES: dict[str, LatticeSpec] = {
    "chain": _one_site("chain", 1, _unit(1), {1: ((1,),), 2: ((2,),)}, "1D chain of L sites"),
    "square": _one_site("square", 2, _unit(2), {1: ((1, 0), (0, 1)), 2: ((1, 1), (1, -1))},
                        "square lattice L1 x L2"),
    "triangular": _one_site(
        "triangular", 2, _TRIANGULAR,
        {1: ((1, 0), (0, 1), (1, -1)), 2: ((1, 1), (2, -1), (1, -2))},
        "triangular lattice L1 x L2 (axial coordinates: 6 neighbours)"),
    "honeycomb": LatticeSpec(
        "honeycomb", 2, _TRIANGULAR, ((0.0, 0.0), (1 / 3, 1 / 3)),
        {1: ((0, 1, (0, 0)), (0, 1, (-1, 0)), (0, 1, (0, -1))),
         2: ((0, 0, (1, 0)), (0, 0, (0, 1)), (0, 0, (1, -1)),
             (1, 1, (1, 0)), (1, 1, (0, 1)), (1, 1, (1, -1)))},
        "honeycomb lattice of L1 x L2 cells, sublattices A and B (2 L1 L2 sites, 3 neighbours)"),
    "kagome": LatticeSpec(
        "kagome", 2, _TRIANGULAR, ((0.0, 0.0), (0.5, 0.0), (0.0, 0.5)),
        {1: ((0, 1, (0, 0)), (0, 2, (0, 0)), (1, 2, (0, 0)),
             (1, 0, (1, 0)), (2, 0, (0, 1)), (1, 2, (1, -1))),
         2: ((0, 1, (-1, 1)), (0, 1, (0, -1)), (0, 2, (-1, 0)),
             (0, 2, (1, -1)), (1, 2, (0, -1)), (1, 2, (1, 0)))},
        "kagome lattice of L1 x L2 cells, three sublattices (3 L1 L2 sites, 4 neighbours)"),
    "cubic": _one_site(
        "cubic", 3, _unit(3),
        {1: ((1, 0, 0), (0, 1, 0), (0, 0, 1)),
         2: ((1, 1, 0), (1, -1, 0), (1, 0, 1), (1, 0, -1), (0, 1, 1), (0, 1, -1))},
        "simple cubic lattice L1 x L2 x L3"),
    "hypercubic": _one_site(
        "hypercubic", 4, _unit(4),
        {1: ((1, 0, 0, 0), (0, 1, 0, 0), (0, 0, 1, 0), (0, 0, 0, 1))},
        "4D hypercubic lattice L1 x L2 x L3 x L4 (lattice gauge theory)"),
}  # fmt: skip


@dataclass(frozen=True)
class GraphSpec:
    """A graph: its sizes (arguments), site sets and pair structures.

    ``sets``: names of the site sets, one size argument each (a complete graph has one set,
    ``sites``); ``pairs``: pair structure -> (set of i, set of j); i < j inside one set.
    """

    name: str
    sets: tuple[str, ...]
    pairs: dict[str, tuple[str, str]]
    doc: str


GRAPHS: dict[str, GraphSpec] = {
    "complete": GraphSpec("complete", ("sites",), {"pairs": ("sites", "sites"),
                                                   "bonds": ("sites", "sites")},
                          "complete graph on N vertices: every pair interacts"),
    "bipartite": GraphSpec("bipartite", ("visible", "hidden"),
                           {"edges": ("visible", "hidden")},
                           "bipartite graph: site sets visible (Nv) and hidden (Nh), pairs "
                           "'edges'"),
    "boltzmann": GraphSpec("boltzmann", ("visible", "hidden"),
                           {"edges": ("visible", "hidden"), "visible_pairs": ("visible", "visible"),
                            "hidden_pairs": ("hidden", "hidden")},
                           "layered all-to-all graph: site sets visible (Nv) and hidden (Nh), "
                           "pairs 'edges' (visible x hidden), 'visible_pairs', 'hidden_pairs'"),
    "edges": GraphSpec("edges", ("sites",), {"bonds": ("sites", "sites"),
                                             "pairs": ("sites", "sites")},
                       "a graph whose bonds are read from a file: edges(\"graph.csv\"), one "
                       "'i, j' line per bond (sites from 0; optionally sites = N)"),
}  # fmt: skip


def declare(catalogue: Catalogue) -> None:
    """Lattices and graphs as entries: static data, their own implementation (the geometry is
    built from these specs by ``compiler/geometry.py``)."""
    for spec in LATTICES.values():
        entry = catalogue.lattices.declare(spec.name, LatticeOptions, spec.doc)
        entry.implementation = spec
    for graph in GRAPHS.values():
        entry = catalogue.lattices.declare(graph.name, doc=graph.doc, family="graph")
        entry.implementation = graph
