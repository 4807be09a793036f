"""The array libraries the one lowering targets: numpy here (static checks), torch in
``torch_backend.py`` (runs).

A :class:`Backend` supplies the operations a lowered program calls -- each accepts the backend's
arrays and Python numbers alike, so constant sub-expressions stay numbers -- and the spelling of
each operation in printed source. The lowering (``program.py``) is the same walk for every
backend; only these tables differ. Callers name their backend explicitly, so a static check that
lowers for numpy never loads torch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

Op = Callable[..., Any]

# Elementary functions of one argument: the op name is torch's; numpy's spelling differs for
# the inverse functions.
ELEMENTARY = ("sin", "cos", "tan", "exp", "log", "tanh", "sinh", "cosh",
              "asin", "acos", "atan", "asinh", "acosh", "atanh")  # fmt: skip
_NUMPY_NAMES = {"asin": "arcsin", "acos": "arccos", "atan": "arctan", "asinh": "arcsinh",
                "acosh": "arccosh", "atanh": "arctanh", "ceil": "ceil"}  # fmt: skip


@dataclass(frozen=True)
class Backend:
    """An array library: ``ops`` (built on first use) and the printed form of each op.

    ``templates`` maps an op to a format string over its printed arguments (``{0}``, ``{1}``);
    an op without one prints as ``prefix.name(args)``."""

    name: str
    prefix: str
    build: Callable[[], dict[str, Op]] = field(repr=False, compare=False)
    templates: dict[str, str] = field(default_factory=dict, repr=False, compare=False)
    names: dict[str, str] = field(default_factory=dict, repr=False, compare=False)

    @cached_property
    def ops(self) -> dict[str, Op]:
        return self.build()

    def src(self, op: str, *args: str) -> str:
        """The printed call of ``op`` on printed arguments."""
        if op in self.templates:
            return self.templates[op].format(*args)
        return f"{self.prefix}.{self.names.get(op, op)}({', '.join(args)})"


# numpy
# --------------------------------------------------------------------------------------------

def _numpy_ops() -> dict[str, Op]:
    import numpy as np
    from scipy import special

    def delta(a, b):
        return np.asarray(a == b, dtype=float)

    ops: dict[str, Op] = {name: getattr(np, _NUMPY_NAMES.get(name, name)) for name in ELEMENTARY}
    ops |= {
        "abs": np.abs, "sign": np.sign, "floor": np.floor, "ceil": np.ceil, "erf": special.erf,
        "real": np.real, "imag": np.imag, "conj": np.conj, "angle": np.angle,
        "sqrt": np.sqrt, "rsqrt": lambda x: 1.0 / np.sqrt(x), "reciprocal": lambda x: 1.0 / x,
        "pow": np.power, "atan2": np.arctan2, "maximum": np.maximum, "minimum": np.minimum,
        "lt": np.less, "le": np.less_equal, "gt": np.greater, "ge": np.greater_equal,
        "eq": np.equal, "ne": np.not_equal,
        "logical_and": np.logical_and, "logical_or": np.logical_or,
        "logical_not": np.logical_not,
        "where": lambda c, a, b: np.where(c, a, b), "delta": delta,
        "heaviside": lambda x: 0.5 * (np.sign(x) + 1.0),
    }  # fmt: skip
    return ops


NUMPY = Backend(
    "numpy", "np", _numpy_ops,
    templates={"delta": "({0} == {1}).astype(float)", "heaviside": "0.5 * (np.sign({0}) + 1.0)",
               "rsqrt": "1.0 / np.sqrt({0})", "reciprocal": "1.0 / {0}",
               "erf": "scipy.special.erf({0})", "atan2": "np.arctan2({0}, {1})",
               "lt": "np.less({0}, {1})", "le": "np.less_equal({0}, {1})",
               "gt": "np.greater({0}, {1})", "ge": "np.greater_equal({0}, {1})",
               "eq": "np.equal({0}, {1})", "ne": "np.not_equal({0}, {1})", "pow": "np.power({0}, {1})"},
    names=_NUMPY_NAMES,
)  # fmt: skip

__all__ = ["ELEMENTARY", "NUMPY", "Backend"]
