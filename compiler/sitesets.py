"""Graphs made of named site sets: the bipartite graph of a restricted Boltzmann machine.

``graph bipartite(Nv, Nh)`` has two site sets, ``visible`` (Nv sites) and ``hidden`` (Nh sites),
and one pair structure, ``edges`` = visible x hidden (every visible unit meets every hidden
unit, no visible-visible or hidden-hidden pairs). A field lives on one set
(``field v: binary on visible``) and its configurations are tensors of shape (B, n_set).

A complete graph is the one-set case: set ``sites`` and structure ``pairs`` (i < j).
"""

from __future__ import annotations

from dataclasses import dataclass

from physml_lang.compiler.geometry import Lattice


@dataclass(frozen=True)
class SiteSetGraph(Lattice):
    """A dense graph over named site sets.

    ``sets``: ((name, size), ...). ``edges``: ((structure, set_i, set_j), ...): the pair
    structures (all of set_i x set_j; i < j when the two sets are the same).
    """

    sets: tuple[tuple[str, int], ...] = ()
    edges: tuple[tuple[str, str, str], ...] = ()

    def set_size(self, name: str) -> int:
        return dict(self.sets)[name]

    @property
    def set_names(self) -> list[str]:
        return [n for n, _ in self.sets]


def make_bipartite_graph(n_visible: int, n_hidden: int) -> SiteSetGraph:
    """visible (Nv) x hidden (Nh), all edges between the two sets and none inside them."""
    return SiteSetGraph(
        "bipartite", (n_visible + n_hidden,), (False,), complete=True,
        sets=(("visible", n_visible), ("hidden", n_hidden)),
        edges=(("edges", "visible", "hidden"),),
    )  # fmt: skip


def make_boltzmann_graph(n_visible: int, n_hidden: int) -> SiteSetGraph:
    """The graph of a general (layered) Boltzmann machine: site sets visible (Nv) and hidden
    (Nh); pair structures ``edges`` (visible x hidden), ``visible_pairs`` and ``hidden_pairs``
    (i < j inside a set): every unit meets every other."""
    return SiteSetGraph(
        "boltzmann", (n_visible + n_hidden,), (False,), complete=True,
        sets=(("visible", n_visible), ("hidden", n_hidden)),
        edges=(("edges", "visible", "hidden"), ("visible_pairs", "visible", "visible"),
               ("hidden_pairs", "hidden", "hidden")),
    )  # fmt: skip


def site_sets(lattice: Lattice) -> dict[str, int]:
    """Site sets of any dense graph (a complete graph has one: ``sites``)."""
    if isinstance(lattice, SiteSetGraph):
        return dict(lattice.sets)
    return {"sites": lattice.n_sites}


def pair_structures(lattice: Lattice) -> dict[str, tuple[str, str]]:
    """Pair structures of a dense graph: name -> (set of i, set of j)."""
    if isinstance(lattice, SiteSetGraph):
        return {name: (a, b) for name, a, b in lattice.edges}
    return {"pairs": ("sites", "sites"), "bonds": ("sites", "sites")}


GRAPH_DOCS = {
    "bipartite": "bipartite graph: site sets visible (Nv) and hidden (Nh), pairs 'edges'",
    "boltzmann": "layered all-to-all graph: site sets visible (Nv) and hidden (Nh), pairs "
    "'edges' (visible x hidden), 'visible_pairs', 'hidden_pairs'",
}
GRAPH_BUILDERS = {"bipartite": make_bipartite_graph, "boltzmann": make_boltzmann_graph}
