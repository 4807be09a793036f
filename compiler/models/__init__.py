"""Compiled models, one kind each: what the compiler hands the runtime.

``compile_model(ir)`` realises a :class:`~physml_lang.ir.model.ModelIR` (geometry, arrays,
data) and lowers it with its kind's compiler; the kind was decided by the checker from the
model's declarations (``ir.kind``).
"""

from __future__ import annotations

from typing import Any

from physml_lang.ir.model import ModelIR

from ..instance import DataResolver, ModelInstance
from .boltzmann import BoltzmannModel
from .field import FieldModel
from .gauge import GaugeModel
from .landscape import LandscapeModel
from .lattice import LatticeModel
from .phase_space import PhaseSpaceModel
from .quantum import compile_quantum
from .table import TableModel


def compile_model(ir: ModelIR, data: DataResolver | None = None, kind: str | None = None,
                  **options: Any):  # fmt: skip
    """The compiled model of ``ir``: a lattice, boltzmann, quantum, gauge, phase-space or
    continuous-field model. ``kind`` overrides the model's own (a Hopfield network on a
    complete graph is a lattice model to sample and a Boltzmann model to recall with)."""
    model = ModelInstance(ir, data)
    kind = kind or ir.kind
    if kind == "phase_space":
        return PhaseSpaceModel(model)
    if kind == "landscape":
        return LandscapeModel(model)
    if kind == "table":
        return TableModel(model)
    if kind == "field":
        return FieldModel(model, options.get("numeric", frozenset()))
    if kind == "gauge":
        return GaugeModel(model)
    if kind == "quantum":
        return compile_quantum(model, **options)
    if kind == "boltzmann":
        options.pop("path", None)
        return BoltzmannModel(model, **options)
    return LatticeModel(model, **options)
