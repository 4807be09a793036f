"""Constant expressions (parameter defaults, lattice sizes, options, scan ranges) evaluated to
Python values by the one expression walker. Nothing from the file is handed to Python's
evaluator.
"""

from __future__ import annotations

import math
from typing import Any

from physml_lang.diagnostics import Diagnostic, PhysmlError, Poisoned, Span, did_you_mean
from physml_lang.ir import expr as E
from physml_lang.ir.functions import CONSTANTS, Function, functions_in
from physml_lang.ir.task import CallValue, Option, Word
from physml_lang.ir.walk import Arithmetic, fail


class _PoisonedValue:
    """The value of a parameter whose declaration failed (reported there): evaluating an
    expression that uses it raises :class:`Poisoned`, so the check that needs it is skipped."""

    def __repr__(self) -> str:
        return "<poisoned>"


POISONED = _PoisonedValue()


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float | complex) and not isinstance(v, bool)


def describe(v: Any) -> str:
    """A value as a message names it."""
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, Word):
        return f"the name '{v.name}'"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, list | tuple):
        return "a list"
    if isinstance(v, CallValue):
        return f"a call to '{v.name}'"
    return type(v).__name__


class ConstEvaluator(Arithmetic[Any]):
    """Evaluates an expression to a Python value given named values.

    ``allow_words``: unknown bare names become :class:`Word` (option values such as
    ``update = checkerboard``) instead of an unknown-name error; ``allow_calls``: calls of
    functions the table does not know become :class:`CallValue` (``cd(1)``, ``adam(lr = 0.01)``).
    Lists evaluate to Python lists.
    """

    context = "constant"

    def __init__(self, values: dict[str, Any], allow_words: bool = False,
                 allow_calls: bool = False, what: str = "a constant"):  # fmt: skip
        self.values = values
        self.allow_words = allow_words
        self.allow_calls = allow_calls
        self.what = what

    # ---------------------------------------------------------------- leaves
    def constant(self, value, e: E.Expr) -> Any:
        return value

    def on_string(self, e: E.Str, env: Any) -> Any:
        return e.value

    def on_list(self, e: E.ListExpr, env: Any) -> Any:
        return [self.walk(x) for x in e.items]

    def on_name(self, e: E.Name, env: Any) -> Any:
        if e.id in self.values:
            if self.values[e.id] is POISONED:
                raise Poisoned(e.id)
            return self.values[e.id]
        if e.id in CONSTANTS:
            return CONSTANTS[e.id]
        if self.allow_words:
            return Word(e.id, span=e.span)
        hint = did_you_mean(e.id, set(self.values) | set(CONSTANTS))
        fail("P200", f"unknown name '{e.id}' in {self.what}", e.span, hint)

    def on_index(self, e: E.Index, env: Any) -> Any:
        base = self.walk(e.base)
        if isinstance(base, list) and len(e.indices) == 1:
            i = self.walk(e.indices[0])
            if isinstance(i, int) and not isinstance(i, bool) and -len(base) <= i < len(base):
                return base[i]
        fail("P311", f"cannot index {describe(base)} in {self.what}", e.span)

    def on_reduce(self, e: E.Reduce, env: Any) -> Any:
        fail("P803", f"'{e.func}(... for ...)' is not allowed in {self.what}", e.span)

    # ---------------------------------------------------------------- operators
    def _number(self, v: Any, e: E.Expr) -> None:
        if not _is_number(v):
            fail("P303", f"expected a number here, got {describe(v)}", e.span)

    def negate(self, a: Any, e: E.Unary) -> Any:
        self._number(a, e.operand)
        return -a

    def logical_not(self, a: Any, e: E.Unary) -> Any:
        return not a

    def logical(self, e: E.Binary, env: Any) -> Any:
        if e.op == "and":
            return bool(self.walk(e.left)) and bool(self.walk(e.right))
        return bool(self.walk(e.left)) or bool(self.walk(e.right))

    def compare(self, op: str, a: Any, b: Any, e: E.Binary) -> Any:
        if op in ("==", "!="):
            if _is_number(a) and _is_number(b) and not (isinstance(a, complex)
                                                          or isinstance(b, complex)):
                eq = math.isclose(a, b, rel_tol=0, abs_tol=1e-12)
            else:
                eq = a == b
            return eq if op == "==" else not eq
        self._number(a, e.left)
        self._number(b, e.right)
        if isinstance(a, complex) or isinstance(b, complex):
            fail("P303", f"complex numbers cannot be compared with '{op}'", e.span)
        return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]

    def combine(self, op: str, a: Any, b: Any, e: E.Binary) -> Any:
        self._number(a, e.left)
        self._number(b, e.right)
        try:
            if op == "+":
                return a + b
            if op == "-":
                return a - b
            if op == "*":
                return a * b
            if op == "/":
                if b == 0:
                    fail("P417", "division by zero", e.right.span)
                out = a / b
                return int(out) if isinstance(a, int) and isinstance(b, int) and a % b == 0 else out
            if op == "%":
                if isinstance(a, complex) or isinstance(b, complex):
                    fail("P303", "'%' takes real numbers", e.span)
                if b == 0:
                    fail("P417", "modulo by zero", e.right.span)
                return a % b
            if abs(b) > 1024 or (isinstance(a, int) and isinstance(b, int) and abs(a) > 1
                                 and b > 64):  # fmt: skip
                fail("P407", "power too large to evaluate", e.span)
            return a**b
        except (OverflowError, ValueError, ZeroDivisionError) as exc:
            fail("P417", f"cannot evaluate: {exc}", e.span)

    # ---------------------------------------------------------------- calls
    def on_call(self, e: E.Call, env: Any) -> Any:
        known = functions_in(self.context)
        if e.func not in known and self.allow_calls:
            return CallValue(
                e.func,
                tuple(_value(self.walk(a)) for a in e.args),
                tuple(Option(k.name, _value(self.walk(k.value)), span=k.span) for k in e.kwargs),
                span=e.span,
                name_span=e.func_span,
            )
        return super().on_call(e, env)

    def apply(self, fn: Function, args: list[Any], e: E.Call) -> Any:
        try:
            return fn.value(*args)
        except (TypeError, ValueError, OverflowError) as exc:
            fail("P417", f"cannot evaluate {fn.name}(...): {exc}", e.span)


def _value(v: Any) -> Any:
    """A Python value as an IR value: lists become tuples."""
    if isinstance(v, list):
        return tuple(_value(x) for x in v)
    return v


def as_value(v: Any) -> Any:
    return _value(v)


def evaluate(e: E.Expr, values: dict[str, Any] | None = None, what: str = "a constant",
             words: bool = False, calls: bool = False) -> Any:  # fmt: skip
    """Shorthand: the value of a constant expression."""
    return ConstEvaluator(values or {}, words, calls, what).walk(e)


def integer(e: E.Expr, values: dict[str, Any], what: str, low: int | None = None) -> int:
    """An integer-valued constant (2.0 is accepted as 2); located errors otherwise."""
    v = evaluate(e, values, what)
    if isinstance(v, float) and v.is_integer() and abs(v) < 2**63:
        v = int(v)
    if isinstance(v, bool) or not isinstance(v, int):
        fail("P304", f"{what} must be an integer, got {v!r}", e.span)
    if low is not None and v < low:
        fail("P405", f"{what} must be at least {low}, got {v}", e.span)
    return v


def raise_at(code: str, message: str, span: Span | None, hint: str | None = None):
    raise PhysmlError(Diagnostic(code, message, span, hint))
