"""The array libraries the one lowering targets: torch for runs, numpy for static checks.

A :class:`Backend` supplies the operations a lowered program calls -- each accepts the backend's
arrays and Python numbers alike, so constant sub-expressions stay numbers -- and the spelling of
each operation in printed source. The lowering (``program.py``) is the same walk for every
backend; only these tables differ. Nothing here imports torch or scipy until a program of that
backend is built, so the static checks never load torch.
"""

from __future__ import annotations

import cmath
import math
from collections.abc import Callable, Sequence
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


# torch
# --------------------------------------------------------------------------------------------

def _torch_ops() -> dict[str, Op]:
    import torch

    def is_tensor(x: object) -> bool:
        return isinstance(x, torch.Tensor)

    def scalar_or_tensor(fn_tensor: Op, fn_scalar: Op) -> Op:
        return lambda x: fn_tensor(x) if is_tensor(x) else fn_scalar(x)

    def real_or_complex(real: Op, cplx: Op) -> Op:
        return lambda x: cplx(x) if isinstance(x, complex) else real(x)

    def first_tensor(values: Sequence[object]) -> object:
        return next((v for v in values if is_tensor(v)), None)

    def as_tensor(x: object, like: object) -> object:
        """A Python number as a tensor matching ``like`` (for ops that need tensor operands)."""
        if is_tensor(x) or not is_tensor(like):
            return x
        return torch.as_tensor(x, dtype=like.dtype, device=like.device)

    def binary(fn: Op, scalar: Op) -> Op:
        def apply(a, b):
            ref = first_tensor([a, b])
            return scalar(a, b) if ref is None else fn(as_tensor(a, ref), as_tensor(b, ref))
        return apply

    def delta(a, b):
        eq = a == b
        return eq.to(torch.get_default_dtype()) if is_tensor(eq) else float(eq)

    def real(x):
        if is_tensor(x):
            return torch.real(x) if x.is_complex() else x
        return complex(x).real

    def imag(x):
        if is_tensor(x):
            return torch.imag(x) if x.is_complex() else torch.zeros_like(x)
        return complex(x).imag

    def conj(x):
        if is_tensor(x):
            return torch.conj(x)
        return complex(x).conjugate() if isinstance(x, complex) else x

    def where(cond, a, b):
        ref = first_tensor([a, b])
        if ref is None:  # both branches numbers: the result takes their type, not cond's bool
            if not is_tensor(cond):
                return a if cond else b
            cplx = isinstance(a, complex) or isinstance(b, complex)
            ref = torch.zeros((), device=cond.device,
                              dtype=torch.complex128 if cplx else torch.get_default_dtype())
        return torch.where(as_tensor(cond, ref).bool(), as_tensor(a, ref), as_tensor(b, ref))

    def heaviside(x):
        return 0.5 * (torch.sign(x) + 1.0) if is_tensor(x) else 0.5 * (_sign(x) + 1.0)

    ops: dict[str, Op] = {
        name: scalar_or_tensor(getattr(torch, name), real_or_complex(
            getattr(math, name), getattr(cmath, name, getattr(math, name))))
        for name in ELEMENTARY
    }  # fmt: skip
    ops |= {
        "abs": scalar_or_tensor(torch.abs, abs),
        "sign": scalar_or_tensor(torch.sign, _sign),
        "floor": scalar_or_tensor(torch.floor, math.floor),
        "ceil": scalar_or_tensor(torch.ceil, math.ceil),
        "erf": scalar_or_tensor(torch.erf, math.erf),
        "real": real, "imag": imag, "conj": conj,
        "angle": scalar_or_tensor(torch.angle, lambda x: cmath.phase(complex(x))),
        "sqrt": scalar_or_tensor(torch.sqrt, lambda x: x**0.5),
        "rsqrt": scalar_or_tensor(torch.rsqrt, lambda x: x**-0.5),
        "reciprocal": scalar_or_tensor(torch.reciprocal, lambda x: 1.0 / x),
        "pow": binary(torch.pow, lambda b, e: b**e),
        "atan2": binary(torch.atan2, math.atan2),
        "maximum": binary(torch.maximum, max),
        "minimum": binary(torch.minimum, min),
        "lt": binary(torch.lt, lambda a, b: a < b), "le": binary(torch.le, lambda a, b: a <= b),
        "gt": binary(torch.gt, lambda a, b: a > b), "ge": binary(torch.ge, lambda a, b: a >= b),
        "eq": binary(torch.eq, lambda a, b: a == b), "ne": binary(torch.ne, lambda a, b: a != b),
        "logical_and": torch.logical_and, "logical_or": torch.logical_or,
        "logical_not": torch.logical_not,
        "where": where, "delta": delta, "heaviside": heaviside,
    }  # fmt: skip
    return ops


def _sign(x: float) -> float:
    return float((x > 0) - (x < 0))


TORCH = Backend(
    "torch", "torch", _torch_ops,
    templates={"delta": "({0} == {1}).to(dtype)", "heaviside": "0.5 * (torch.sign({0}) + 1.0)"},
)  # fmt: skip


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

BACKENDS: dict[str, Backend] = {b.name: b for b in (TORCH, NUMPY)}


def backend(name: str) -> Backend:
    """The backend called ``name`` (``torch`` or ``numpy``)."""
    try:
        return BACKENDS[name]
    except KeyError:
        raise ValueError(f"unknown lowering backend '{name}' (known: {', '.join(BACKENDS)})") \
            from None


__all__ = ["BACKENDS", "NUMPY", "TORCH", "Backend", "backend"]
