"""Field domains: the values a field takes at one site, by name."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from .registry import Catalogue, NoOptions

DOMAINS: dict[str, str] = {
    "spin": "Ising spin, values -1 and +1",
    "binary": "binary unit, values 0 and 1",
    "potts": "potts(q): values 0 .. q-1",
    "qubit": "spin-1/2 degree of freedom (Pauli operators X, Y, Z)",
    "real": "real number",
    "angle": "angle in (-pi, pi] (XY / O(2) models)",
    "z2": "Z2 gauge link, values -1 and +1",
    "u1": "U(1) gauge link exp(i theta)",
    "su2": "SU(2) gauge link, 2x2 special unitary matrix",
}
DATA_DOMAINS = ("spin", "binary", "potts", "real")
MAX_POTTS_STATES = 1024

SYMMETRIES: dict[str, str] = {
    "translation": "invariance under lattice translations",
    "spin_flip": "invariance under a global flip of every spin (s -> -s)",
    "gauge": "invariance under local gauge transformations",
    "symplectic": "canonical structure of phase space",
    "point_group": "lattice rotations and reflections",
}


class PottsOptions(BaseModel):
    """potts(q): the number of states."""

    model_config = ConfigDict(extra="forbid")
    q: int = Field(ge=2, le=MAX_POTTS_STATES, description="number of states")


def declare(catalogue: Catalogue) -> None:
    """Field domains as entries: static facts, their own implementation (DomainIR carries a
    domain's values; gauge groups are realised by the compiler's lowering)."""
    for name, doc in DOMAINS.items():
        schema = PottsOptions if name == "potts" else NoOptions
        entry = catalogue.domains.declare(name, schema, doc)
        entry.implementation = name
