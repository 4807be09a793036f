"""A model IR derived without torch, per model kind: what ``physml check`` verifies (geometry,
derivations, declared symmetries, sizes) and what the compiled models build on.

``derive_model(ir, data)`` returns a :class:`Derivation`; ``DERIVATIONS`` maps a model kind to
its derivation (``kind`` overrides the model's own, as in ``compile_model``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from physml_lang.compiler.instance import DataResolver, ModelInstance
from physml_lang.ir.model import ModelIR

from .boltzmann import derive_boltzmann
from .field import derive_field
from .gauge import derive_gauge
from .landscape import derive_landscape
from .lattice import derive_lattice
from .phase_space import derive_phase_space
from .quantum import derive_quantum
from .table import derive_table


class Derivation(Protocol):
    """A derived model: its geometry (None for phase spaces) and one line for ``check``."""

    lattice: Any

    def describe(self) -> str: ...


DERIVATIONS: dict[str, Callable[[ModelInstance], Derivation]] = {
    "lattice": derive_lattice,
    "boltzmann": derive_boltzmann,
    "quantum": derive_quantum,
    "phase_space": derive_phase_space,
    "field": derive_field,
    "gauge": derive_gauge,
    "landscape": derive_landscape,
    "table": derive_table,
}


def derive_model(ir: ModelIR, data: DataResolver | None = None,
                 kind: str | None = None) -> Derivation:  # fmt: skip
    """The derivation of ``ir`` by its kind (``kind`` overrides)."""
    return DERIVATIONS[kind or ir.kind](ModelInstance(ir, data))


__all__ = ["Derivation", "DERIVATIONS", "derive_model"]
