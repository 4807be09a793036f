"""What a plotted quantity is, as an axis label with its unit: one table for every plot.

Energies are in units of the model's coupling (``energy_unit``, "J" for spin models) and
temperatures in units of that coupling over k_B; quantities without a known meaning are
labelled by their name.
"""

from __future__ import annotations

# name -> (symbol, how it scales with the energy unit: 1 energy, -1 inverse energy, 0 none)
QUANTITIES: dict[str, tuple[str, int]] = {
    "T": ("T", 1),
    "beta": ("β", -1),
    "energy": ("E", 1),
    "energy_per_site": ("E/N", 1),
    "magnetization": ("M", 0),
    "magnetization_per_site": ("M/N", 0),
    "abs_magnetization": ("|M|/N", 0),
    "specific_heat": ("C/N", 0),
    "susceptibility": ("χ/N", -1),
    "binder": ("U_4", 0),
    "helicity_modulus": ("Υ", 1),
    "free_energy": ("F/N", 1),
    "exact_free_energy": ("F/N", 1),
    "plaquette": ("⟨U_P⟩ (plaquette)", 0),
    "action": ("S", 0),
    "topological_charge": ("Q", 0),
    "topological_charge_squared": ("⟨Q²⟩", 0),
    "abs_polyakov_loop": ("|P| (Polyakov loop)", 0),
    "acceptance": ("acceptance rate", 0),
    "r_hat": ("R-hat", 0),
    "chain_excess": ("between-chain excess", 0),
    "L": ("L (lattice size)", 0),
}

# a measure's text (as the IR prints it) -> the quantity it is
EXPRESSIONS: dict[str, str] = {
    "energy": "energy",
    "energy / sites": "energy_per_site",
    "magnetization / sites": "magnetization_per_site",
    "abs(magnetization) / sites": "abs_magnetization",
    "abs(magnetization / sites)": "abs_magnetization",
    "plaquette": "plaquette",
    "topological_charge": "topological_charge",
    "topological_charge ^ 2": "topological_charge_squared",
    "abs_polyakov_loop": "abs_polyakov_loop",
}


def quantity_of(name: str, expression: str | None = None) -> str | None:
    """The known quantity a measure is: by its text where it has one, else by its name (a
    built-in observable); None where neither is known."""
    if expression is not None:
        return EXPRESSIONS.get(expression)
    return name if name in QUANTITIES else None


def axis_label(name: str, expression: str | None = None, energy_unit: str | None = None,
               unit: str | None = None) -> str:  # fmt: skip
    """The axis label of ``name``: ``unit`` (a declared one) where given, else its symbol with
    the unit it has in ``energy_unit`` (T [J/k_B], E/N [J], χ/N [1/J]); a name not in the
    table is its own label."""
    if unit:
        return f"{name} [{unit}]"
    kind = quantity_of(name, expression)
    if kind is None:
        return name
    symbol, power = QUANTITIES[kind]
    if not energy_unit or power == 0:
        return symbol
    if kind == "T":
        return f"T [{energy_unit}/k_B]"
    return f"{symbol} [{energy_unit}]" if power > 0 else f"{symbol} [1/{energy_unit}]"


__all__ = ["EXPRESSIONS", "QUANTITIES", "axis_label", "quantity_of"]
