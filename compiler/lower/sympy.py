"""Expression IR -> sympy: the meaning of numbers, operators and the function table in sympy.

:class:`SympyBuilder` adds the unrolled form used by phase-space Hamiltonians and continuous-
field actions: parameters stay symbols, sums over index domains are written out term by term,
definitions with indices are inlined with their actual indices.

:class:`SympyArithmetic` is the base of every lowering that goes through sympy (lattice terms,
Boltzmann set terms, phase-space Hamiltonians, continuous-field actions, measured observables):
subclasses resolve names, indexing and reductions (what a site, a bond or a particle is); the
arithmetic and the functions are the same for all. Expressions are built node by node, never
from text.
"""

from __future__ import annotations

import math
from typing import Any

import sympy
import sympy as sp

from physml_lang.compiler.instance import ModelInstance
from physml_lang.diagnostics import Diagnostic, PhysmlError, Span, clip
from physml_lang.ir import expr as E
from physml_lang.ir.functions import Function
from physml_lang.ir.walk import Arithmetic, as_call, as_list, fail, name_of

# unrolled terms (symbolic: N-body sums are O(N^2)); sympy builds, differentiates and splits
# each in ~1-2 ms, so 10,000 terms derive in ~15 s on a shared 2-core machine
MAX_TERMS = 10_000
# the functions of the table a Hamiltonian or action may use (real, smooth or piecewise)
_FUNCTIONS = ("cos", "sin", "tan", "exp", "log", "sqrt", "tanh", "cosh", "sinh", "abs", "sign",
              "min", "max")  # fmt: skip


def _int(v: sympy.Expr, span: Span, what: str) -> int:
    if not (isinstance(v, sympy.Integer) or (v.is_number and float(v).is_integer())):
        fail("P304", f"{what} must be an integer, got {v}", span)
    return int(v)


def number(v: int | float | complex | bool) -> sp.Expr:
    """A Python number (already evaluated, never text) as a sympy number."""
    if isinstance(v, complex):
        return number(v.real) + sp.I * number(v.imag)
    if isinstance(v, bool) or isinstance(v, int) or float(v).is_integer():
        return sp.Integer(int(v))
    return sp.Float(v)


def sympy_function(fn: Function, e: E.Call):
    """The sympy constructor of a function of the table (P803 where there is none)."""
    if fn.sympy is None:
        fail("P803", f"'{fn.name}' is not supported in this kind of model", e.func_span or e.span)
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
        fail("P305", f"'not' is not allowed in {self.what}", e.span)

    def logical(self, e: E.Binary, env: Any) -> sp.Expr:
        fail("P305", f"'{e.op}' is not allowed in {self.what}", e.span,
             "comparisons belong in conditions; use delta(a, b) for a Kronecker delta")

    def combine(self, op: str, a: sp.Expr, b: sp.Expr, e: E.Binary) -> sp.Expr:
        if op == "+":
            return a + b
        if op == "-":
            return a - b
        if op == "*":
            return _check_merged(a * b, e)
        if op == "/":
            if b == 0:
                fail("P417", "division by zero", e.right.span)
            return _check_merged(a / b, e)
        if op == "^":
            _check_power(a, b, e)
            return _check_merged(a**b, e)
        return sp.Mod(a, b)

    def apply(self, fn: Function, args: list[sp.Expr], e: E.Call) -> sp.Expr:
        out = sympy_function(fn, e)(*args)
        if not fn.differentiable and self.nondiff is not None:
            self.nondiff.append((out, e.span))
        return out


MAX_POWER_BITS = 4096  # exact powers of numbers: at most ~1200 digits
MAX_EXPONENT = 64  # powers of variables: beyond this no physics, only expression blow-up


def _check_power(a: sp.Expr, b: sp.Expr, e: E.Binary) -> None:
    """Refuse powers that would stall sympy (a tower 2^2^2^2^2^2 has 19729 digits) before
    computing them: a located P407 instead of a hang."""
    if not b.is_Number or not b.is_real:
        return
    if a.is_Number:
        size = abs(float(b)) * math.log2(max(abs(complex(a)), 2.0))
        if size > MAX_POWER_BITS:
            fail("P407", "this power is too large to evaluate (more than "
                 f"{MAX_POWER_BITS} bits)", e.span, "write the number it stands for, or "
                 "use exp(...) for large exponents")  # fmt: skip
    elif abs(float(b)) > MAX_EXPONENT:
        fail("P407", f"an exponent of {clip(str(b), 40)} on a variable is beyond what physml "
             f"expands (|exponent| <= {MAX_EXPONENT})", e.right.span)  # fmt: skip


def _check_merged(v: sp.Expr, e: E.Binary) -> sp.Expr:
    """``v``, refused (P410) when powers merged into an exponent beyond MAX_EXPONENT on a
    variable: ((x + 1)^64)^64 is (x + 1)^4096, x^64 * x^64 is x^128, and their expansion stalls
    sympy as a written exponent would."""
    for f in sp.Mul.make_args(v):
        if (f.is_Pow and f.exp.is_Number and abs(f.exp) > MAX_EXPONENT
                and not f.base.is_Number):  # fmt: skip
            fail("P410", "this power is too large to derive: powers combine into an exponent "
                 f"of {clip(str(f.exp), 40)} (|exponent| <= {MAX_EXPONENT})", e.span,
                 "write the power once, with a smaller exponent")  # fmt: skip
    return v


class SympyBuilder(SympyArithmetic):
    """Builds a sympy expression from an expression of a model (``env``: bound loop variables).

    Parameters stay symbols (bound to numbers at lowering, so ``--emit sympy`` shows m, g, l);
    loop variables are bound to sympy Integers; subclasses resolve the model's own variables
    (coordinates, fields) in :meth:`variable` and :meth:`indexed`. Every call of a
    non-differentiable function is recorded with its span.
    """

    what = "a Hamiltonian or action"

    def __init__(self, model: ModelInstance):
        self.model = model
        self.params = {k: v for k, v in model.params.items() if isinstance(v, int | float)}
        self.nondiff: list[tuple[sympy.Expr, Span]] = []
        self.terms = 0
        self._depth = 0

    # -- hooks
    def variable(self, e: E.Name, env: dict[str, Any]) -> sympy.Expr | None:
        return None

    def indexed(self, e: E.Index, env: dict[str, Any]) -> sympy.Expr | None:
        return None

    def domain(self, loop: E.Loop, env: dict[str, Any], body: E.Expr) -> list[tuple]:
        fail("P803", "this sum is not supported here", loop.span)

    # -- the walk
    def build(self, e: E.Expr, env: dict[str, Any]) -> sympy.Expr:
        self._depth += 1
        if self._depth > 200:
            fail("P801", "definitions refer to each other too deeply (a cycle?)", e.span)
        try:
            return self.walk(e, env)
        finally:
            self._depth -= 1

    def not_here(self, e: E.Expr, what: str = "this"):
        return PhysmlError(Diagnostic("P803", "this expression is not supported here", e.span))

    def on_imaginary(self, e: E.Imag, env) -> sympy.Expr:
        fail("P305", "a real-valued expression is expected here", e.span)

    on_string = on_list = on_imaginary

    def constant(self, value, e: E.Expr) -> sympy.Expr:
        return sympy.Integer(value) if isinstance(value, int) else sympy.Float(value)

    def logical(self, e: E.Binary, env) -> sympy.Expr:
        fail("P305", f"'{e.op}' cannot appear in an energy", e.span)

    def compare(self, op: str, a, b, e: E.Binary) -> sympy.Expr:
        fail("P305", f"'{op}' cannot appear in an energy", e.span)

    def logical_not(self, a, e: E.Unary) -> sympy.Expr:
        fail("P305", f"'{e.op}' is not an arithmetic operation", e.span)

    def on_name(self, e: E.Name, env: dict[str, Any]) -> sympy.Expr:
        if e.id in env:
            return env[e.id]
        v = self.variable(e, env)
        if v is not None:
            return v
        if e.id in self.params:
            return sympy.Symbol(e.id, real=True)
        if e.id == "pi":
            return sympy.pi
        d = self.model.definitions.get(e.id)
        if d is not None:
            if d.indices:
                fail("P314", f"'{e.id}' is defined with indices: write {e.id}[...]", e.span)
            return self.build(d.expr, {})
        fail("P305", f"'{e.id}' cannot be used in this expression", e.span)

    def on_index(self, e: E.Index, env: dict[str, Any]) -> sympy.Expr:
        v = self.indexed(e, env)
        if v is not None:
            return v
        base = name_of(e.base)
        if base is not None and base in self.model.definitions:
            return self._definition_call(base, e.indices, env, e.span)
        fail("P202", "only coordinates, fields and definitions can be indexed", e.span)

    def on_call(self, e: E.Call, env: dict[str, Any]) -> sympy.Expr:
        if e.func in self.model.definitions:
            return self._definition_call(e.func, e.args, env, e.span)
        if e.func not in _FUNCTIONS or e.kwargs:
            fail("P803", f"'{e.func}' cannot be used in a Hamiltonian or action", e.func_span,
                 "functions: " + ", ".join(sorted(_FUNCTIONS)))  # fmt: skip
        return super().on_call(e, env)

    def apply(self, fn: Function, args: list[sympy.Expr], e: E.Call) -> sympy.Expr:
        if fn.name in ("min", "max") and len(args) != 2:
            fail("P316", f"{fn.name} takes 2 argument(s)", e.span)
        return super().apply(fn, args, e)

    def on_reduce(self, e: E.Reduce, env: dict[str, Any]) -> sympy.Expr:
        if e.func not in ("sum", "prod"):
            fail("P803", f"'{e.func}' over a structure is not supported", e.func_span)
        parts: list[sympy.Expr] = []
        # the outer loop's length first: 45,000 pairs are refused before any is built
        if e.loops and self.terms + len(self.domain(e.loops[0], env, e.body)) > MAX_TERMS:
            self._too_many_terms(e.span)
        for inner in self._loop_envs(e.loops, env, e.body):
            parts.append(self.build(e.body, inner))
            self.terms += 1
            if self.terms > MAX_TERMS:
                self._too_many_terms(e.span)
        if e.func == "sum":
            return sympy.Add(*parts)
        return sympy.Mul(*parts)

    @staticmethod
    def _too_many_terms(span: Span) -> None:
        fail("P407", f"more than {MAX_TERMS} terms after unrolling the sums", span,
             "phase-space Hamiltonians are derived symbolically; use fewer particles")

    def _definition_call(self, name: str, args: tuple[E.Expr, ...], env: dict[str, Any],
                         span: Span) -> sympy.Expr:  # fmt: skip
        """``r[i, j]`` / ``r(i, j)`` for ``let r[i, j] = ...``: bind the indices, build the body."""
        d = self.model.definitions[name]
        if len(args) != len(d.indices):
            fail("P302", f"'{name}' takes {len(d.indices)} index(es), got {len(args)}", span)
        inner: dict[str, Any] = {}
        for formal, actual in zip(d.indices, args, strict=True):
            inner[formal] = self.build(actual, env)
        return self.build(d.expr, inner)

    def _loop_envs(self, loops: tuple[E.Loop, ...], env: dict[str, Any], body: E.Expr):
        if not loops:
            yield env
            return
        first, rest = loops[0], loops[1:]
        for values in self.domain(first, env, body):
            if len(values) != len(first.names):
                fail("P315", f"this structure binds {len(values)} name(s), the loop "
                     f"{len(first.names)}", first.span)  # fmt: skip
            inner = dict(env)
            inner.update({n: sympy.Integer(v) for n, v in zip(first.names, values, strict=True)})
            yield from self._loop_envs(rest, inner, body)

    def const_int(self, e: E.Expr, env: dict[str, Any], what: str) -> int:
        v = self.build(e, env)
        v = v.xreplace({sympy.Symbol(k, real=True): x for k, x in self.params.items()})
        return _int(v, e.span, what)

    def literal_domain(self, loop: E.Loop, env: dict[str, Any]) -> list[tuple] | None:
        """``range(a[, b])`` and ``[0, 2, 5]`` loop domains (one name)."""
        d = loop.domain
        call = as_call(d)
        if call is not None and call.func == "range":
            bounds = [self.const_int(a, env, "a range bound") for a in call.args]
            if not 1 <= len(bounds) <= 2:
                fail("P316", "range takes 1 or 2 bounds", d.span)
            return [(k,) for k in range(*bounds)]
        items = as_list(d)
        if items is not None:
            return [(self.const_int(x, env, "a list entry"),) for x in items]
        return None
