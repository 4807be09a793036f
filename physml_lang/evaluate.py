"""Evaluation of constant expressions (parameter defaults, lattice sizes, options, scan ranges).

Walks the syntax tree directly; nothing from the file is ever handed to Python's evaluator.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import ast
from .diagnostics import Diagnostic, PhysmlError, Span, did_you_mean


@dataclass(frozen=True)
class Ident:
    """A bare word used as an option value (``update = checkerboard``)."""

    name: str
    span: Span

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class CallValue:
    """A call used as a value (``cd(1)``, ``adam(lr = 0.01)``): resolved by a registry later."""

    name: str
    args: tuple
    kwargs: dict
    span: Span


def _count(n: float) -> int:
    if isinstance(n, float) and not n.is_integer() or not 0 <= n <= MAX_POINTS:
        raise ValueError(f"the number of points must be an integer in 0 .. {MAX_POINTS}")
    return int(n)


def _linspace(a: float, b: float, n: int) -> list[float]:
    # 15 significant digits: 2.9, not 2.9000000000000004, in summaries and file names
    return [float(f"{x:.15g}") for x in np.linspace(a, b, _count(n))]


def _logspace(a: float, b: float, n: int) -> list[float]:
    return [float(x) for x in np.logspace(a, b, _count(n))]


MAX_POINTS = 100_000


def _range(*a: int) -> list[int]:
    r = range(*[int(x) for x in a])
    if len(r) > MAX_POINTS:
        raise ValueError(f"more than {MAX_POINTS} values")
    return list(r)


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "sqrt": math.sqrt, "exp": math.exp, "log": math.log, "cos": math.cos, "sin": math.sin,
    "tan": math.tan, "tanh": math.tanh, "cosh": math.cosh, "sinh": math.sinh, "abs": abs,
    "min": min, "max": max, "floor": math.floor, "ceil": math.ceil, "round": round,
    "linspace": _linspace, "logspace": _logspace, "range": _range, "int": int, "float": float,
    "acosh": math.acosh, "asinh": math.asinh, "atanh": math.atanh,
}  # fmt: skip
CONSTANTS = {"pi": math.pi, "true": True, "false": False, "inf": math.inf}


class ConstEvaluator:
    """Evaluates an expression to a Python value given named values.

    ``allow_idents``: bare unknown names become :class:`Ident` (for option values) instead of an
    unknown-name error. ``allow_calls``: unknown calls become :class:`CallValue`.
    """

    def __init__(
        self,
        values: dict[str, Any],
        allow_idents: bool = False,
        allow_calls: bool = False,
        what: str = "a constant",
    ):
        self.values = values
        self.allow_idents = allow_idents
        self.allow_calls = allow_calls
        self.what = what

    def fail(self, message: str, span: Span, hint: str | None = None, code: str = "P300"):
        raise PhysmlError(Diagnostic(code, message, span, hint))

    def __call__(self, e: ast.Expr) -> Any:
        method = getattr(self, "_" + type(e).__name__)
        return method(e)

    def _Number(self, e: ast.Number):
        return e.value

    def _Imaginary(self, e: ast.Imaginary):
        return complex(0, e.value)

    def _String(self, e: ast.String):
        return e.value

    def _ListExpr(self, e: ast.ListExpr):
        return [self(x) for x in e.items]

    def _Name(self, e: ast.Name):
        if e.id in self.values:
            return self.values[e.id]
        if e.id in CONSTANTS:
            return CONSTANTS[e.id]
        if self.allow_idents:
            return Ident(e.id, e.span)
        hint = did_you_mean(e.id, set(self.values) | set(CONSTANTS))
        self.fail(f"unknown name '{e.id}' in {self.what}", e.span, hint, code="P200")

    def _Unary(self, e: ast.Unary):
        v = self(e.operand)
        if e.op == "not":
            return not v
        self._number(v, e.operand.span)
        return -v

    def _number(self, v: Any, span: Span) -> None:
        if isinstance(v, bool) or not isinstance(v, int | float | complex):
            self.fail(f"expected a number here, got {_describe(v)}", span)

    def _Binary(self, e: ast.Binary):
        if e.op == "and":
            return bool(self(e.left)) and bool(self(e.right))
        if e.op == "or":
            return bool(self(e.left)) or bool(self(e.right))
        a, b = self(e.left), self(e.right)
        if e.op in ("==", "!="):
            eq = math.isclose(a, b, rel_tol=0, abs_tol=1e-12) if _num(a) and _num(b) else a == b
            return eq if e.op == "==" else not eq
        self._number(a, e.left.span)
        self._number(b, e.right.span)
        try:
            if e.op == "+":
                return a + b
            if e.op == "-":
                return a - b
            if e.op == "*":
                return a * b
            if e.op == "/":
                if b == 0:
                    self.fail("division by zero", e.right.span, code="P400")
                out = a / b
                return int(out) if isinstance(a, int) and isinstance(b, int) and a % b == 0 else out
            if e.op == "%":
                return a % b
            if e.op == "^":
                if abs(b) > 1024 or (
                    isinstance(a, int) and isinstance(b, int) and abs(a) > 1 and b > 64
                ):
                    self.fail("power too large to evaluate", e.span, code="P400")
                return a**b
            return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[e.op]
        except (OverflowError, ValueError, ZeroDivisionError) as exc:
            self.fail(f"cannot evaluate: {exc}", e.span, code="P400")

    def _Call(self, e: ast.Call):
        fn = FUNCTIONS.get(e.func)
        if fn is None:
            if self.allow_calls:
                return CallValue(
                    e.func,
                    tuple(self(a) for a in e.args),
                    {k.name: self(k.value) for k in e.kwargs},
                    e.span,
                )
            hint = did_you_mean(e.func, set(FUNCTIONS))
            self.fail(f"unknown function '{e.func}' in {self.what}", e.func_span, hint, "P200")
        if e.kwargs:
            self.fail(f"'{e.func}' takes no named arguments", e.kwargs[0].span, code="P302")
        args = [self(a) for a in e.args]
        try:
            return fn(*args)
        except (TypeError, ValueError, OverflowError) as exc:
            self.fail(f"cannot evaluate {e.func}(...): {exc}", e.span, code="P400")

    def _Index(self, e: ast.Index):
        base = self(e.base)
        if isinstance(base, list) and len(e.indices) == 1:
            i = self(e.indices[0])
            if isinstance(i, int) and -len(base) <= i < len(base):
                return base[i]
        self.fail(f"cannot index {_describe(base)} in {self.what}", e.span)

    def _Generator(self, e: ast.Generator):
        self.fail(f"'{e.func}(... for ...)' is not allowed in {self.what}", e.span, code="P800")


def _num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _describe(v: Any) -> str:
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, Ident):
        return f"the name '{v.name}'"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, list):
        return "a list"
    if isinstance(v, CallValue):
        return f"a call to '{v.name}'"
    return type(v).__name__
