"""Expression IR -> sympy: the meaning of numbers, operators and the function table in sympy.

:class:`SympyArithmetic` is the base of every lowering that goes through sympy (lattice terms,
Boltzmann set terms, phase-space Hamiltonians, continuous-field actions, measured observables):
subclasses resolve names, indexing and reductions (what a site, a bond or a particle is); the
arithmetic and the functions are the same for all. Expressions are built node by node, never
from text.
"""

from __future__ import annotations

from typing import Any

import sympy as sp

from physml_lang.ir import expr as E
from physml_lang.ir.functions import Function
from physml_lang.ir.walk import Arithmetic, fail


def number(v: int | float | complex | bool) -> sp.Expr:
    """A Python number (already evaluated, never text) as a sympy number."""
    if isinstance(v, complex):
        return number(v.real) + sp.I * number(v.imag)
    if isinstance(v, bool) or isinstance(v, int) or float(v).is_integer():
        return sp.Integer(int(v))
    return sp.Float(v)


def sympy_function(fn: Function, e: E.Call):
    """The sympy constructor of a function of the table (P800 where there is none)."""
    if fn.sympy is None:
        fail("P800", f"'{fn.name}' is not supported in this kind of model", e.func_span or e.span)
    return getattr(sp, fn.sympy)


class SympyArithmetic(Arithmetic[sp.Expr]):
    """Numbers, operators and functions in sympy; names, indexing and sums are the subclass's."""

    what = "an energy"
    #: functions whose value is recorded with its span (non-differentiable pieces)
    nondiff: list | None = None

    def constant(self, value, e: E.Expr) -> sp.Expr:
        if isinstance(value, complex):
            return sp.Float(value.imag) * sp.I
        return sp.Integer(value) if isinstance(value, int) else sp.Float(value)

    def negate(self, a: sp.Expr, e: E.Unary) -> sp.Expr:
        return -a

    def logical_not(self, a: sp.Expr, e: E.Unary) -> sp.Expr:
        fail("P300", f"'not' is not allowed in {self.what}", e.span)

    def logical(self, e: E.Binary, env: Any) -> sp.Expr:
        fail("P300", f"'{e.op}' is not allowed in {self.what}", e.span,
             "comparisons belong in conditions; use delta(a, b) for a Kronecker delta")

    def combine(self, op: str, a: sp.Expr, b: sp.Expr, e: E.Binary) -> sp.Expr:
        if op == "+":
            return a + b
        if op == "-":
            return a - b
        if op == "*":
            return a * b
        if op == "/":
            if b == 0:
                fail("P400", "division by zero", e.right.span)
            return a / b
        if op == "^":
            return a**b
        return sp.Mod(a, b)

    def apply(self, fn: Function, args: list[sp.Expr], e: E.Call) -> sp.Expr:
        out = sympy_function(fn, e)(*args)
        if not fn.differentiable and self.nondiff is not None:
            self.nondiff.append((out, e.span))
        return out
