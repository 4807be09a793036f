"""The compiled form of a table model: its tables and parameters (no torch modules)."""

from __future__ import annotations

from physml_lang.compiler.derive.table import TableDerivation
from physml_lang.compiler.instance import ModelInstance


class TableModel(TableDerivation):
    """Measured tables and parameters with their units, handed to the learning tasks."""

    kind = "table"

    def __init__(self, model: ModelInstance):
        super().__init__(model.name, model)
        self.ir = model.ir

    def emit_sympy(self) -> str:
        return f"# table model {self.name}: nothing to derive"

    def emit_torch(self) -> str:
        return f"# table model {self.name}: nothing to lower"


__all__ = ["TableModel"]
