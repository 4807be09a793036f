"""A classical lattice model derived, without torch: its energy as a sum of lattice terms,
with every declared symmetry verified for the actual parameters.

What ``physml check`` reports for a lattice model, and what the compiled
:class:`~physml_lang.compiler.models.lattice.LatticeModel` lowers to torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from physml_lang.compiler.derive.local import interaction_pairs
from physml_lang.compiler.derive.symmetry import verify_symmetries
from physml_lang.compiler.geometry import Lattice
from physml_lang.compiler.instance import ModelInstance
from physml_lang.compiler.lower.terms import LatticeSum, PairTerm, TermBuilder
from physml_lang.compiler.sitesets import SiteSetGraph
from physml_lang.diagnostics import Diagnostic, PhysmlError
from physml_lang.ir import expr as E


@dataclass
class LatticeDerivation:
    """``energy``: E as stencil and pair terms over the lattice; symmetries verified."""

    model: ModelInstance
    energy: LatticeSum
    _colourings: dict[str, np.ndarray | None] = field(default_factory=dict)

    @property
    def lattice(self) -> Lattice:
        return self.model.lattice

    def colouring(self, field: str) -> np.ndarray | None:
        """(N,) colour of each site such that sites of one colour do not interact through
        the energy (their updates commute), or None: no colouring (a complete graph, pair
        terms between arbitrary sites), and single-site samplers pick random sites."""
        if field not in self._colourings:
            table = None
            lat = self.lattice
            pairs = [t for t in self.energy.terms if isinstance(t, PairTerm)]
            if lat.edge_list is not None and all(t.structure == "bonds" for t in pairs):
                # a graph's pair terms live on its edges: colour the graph itself
                table = lat.greedy_colouring([])
            elif not lat.complete and not pairs:
                table = lat.colouring(interaction_pairs(self.energy, field))
            self._colourings[field] = table
        return self._colourings[field]

    def lattice_sum(self, expr: E.Expr, name: str) -> LatticeSum:
        """An extensive sum over the lattice (an observable), derived into lattice terms."""
        return TermBuilder(self.model).lattice_sum(expr)

    def describe(self) -> str:
        """One line for ``physml check``."""
        syms = [s.name for s in self.model.symmetries if s.active]
        return (f"{describe_lattice(self.lattice)}, {len(self.energy.terms)} energy terms; "
                f"symmetries verified: {', '.join(syms) or 'none declared'}")  # fmt: skip


def derive_lattice(model: ModelInstance) -> LatticeDerivation:
    """The energy's lattice terms, symmetries verified (located P500 when one fails)."""
    if model.lattice is None or not model.fields:
        raise PhysmlError(Diagnostic("P804", f"model {model.name} has no lattice field to "
                                     "sample", model.name_span))  # fmt: skip
    if isinstance(model.lattice, SiteSetGraph):
        raise PhysmlError(Diagnostic(
            "P502", f"model {model.name} lives on a {model.lattice.kind} graph: the lattice "
            "samplers do not apply; it is sampled by its derived block Gibbs sampler",
            model.name_span, "train it in a run: 'train NAME via pcd(k = 1), data = X', "
            "then 'generate chains = 64'"))  # fmt: skip
    if model.energy is None:
        raise PhysmlError(Diagnostic(
            "P420", f"model {model.name} declares no energy", model.name_span,
            "add e.g. 'energy E = -J * sum(s[i] * s[j] for (i, j) in bonds)'"))  # fmt: skip
    derivation = LatticeDerivation(model, TermBuilder(model).lattice_sum(model.energy.expr))
    verify_symmetries(model, derivation.energy)
    return derivation


def describe_lattice(lat: Lattice) -> str:
    if lat.complete:
        return f"complete graph, N = {lat.n_sites}"
    if lat.edge_list is not None:
        return f"graph of {lat.n_sites} sites and {len(lat.edge_list)} edges"
    bc = ("periodic" if lat.all_periodic else "open" if not any(lat.periodic)
          else "boundary " + ", ".join("periodic" if p else "open" for p in lat.periodic))
    cells = f"{'x'.join(map(str, lat.cells))}"
    if lat.basis > 1:
        return f"{lat.kind} {cells} cells of {lat.basis} sites, {bc}"
    return f"{lat.kind} {cells}, {bc}"


__all__ = ["LatticeDerivation", "derive_lattice", "describe_lattice"]
