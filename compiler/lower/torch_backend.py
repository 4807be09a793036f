"""The torch backend of the one lowering (runs): the ops of a lowered program on tensors, each
also accepting Python numbers, and their printed spelling (``torch.sin``, ...)."""

from __future__ import annotations

import cmath
import math
from collections.abc import Sequence

import torch

from .backends import ELEMENTARY, Backend, Op


def _torch_ops() -> dict[str, Op]:
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

__all__ = ["TORCH"]
