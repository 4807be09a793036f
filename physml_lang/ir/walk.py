"""The one expression walker: every stage gives meaning to the expression IR by subclassing it.

:class:`Walker` is the only place that dispatches on the kind of an expression node. A subclass
(the constant evaluator, the checker's name resolution, the lowering to sympy, the Pauli
expansion, the gauge-charge analysis, ...) overrides the methods of the node kinds it accepts;
the others report a located "not allowed here" error. ``env`` is whatever a subclass binds while
walking (bound indices, sites, directions); the walker passes it through unchanged.

:class:`Arithmetic` adds the shared meaning of operators and of the function table
(:mod:`physml_lang.ir.functions`) on top of a subclass's values: ``combine(op, a, b)``,
``negate(a)`` and ``apply(function, args)``.

Small queries about the shape of an expression (is it a name? which additive terms does it have?)
are walkers too, below, so that no other module needs to look at node types.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from physml_lang.diagnostics import Diagnostic, PhysmlError, Span, did_you_mean

from .expr import (
    Binary,
    Call,
    Expr,
    Imag,
    Index,
    ListExpr,
    Loop,
    Name,
    Num,
    Reduce,
    Str,
    Unary,
)
from .functions import FUNCTIONS, Function, functions_in

V = TypeVar("V")

_DISPATCH: dict[type, str] = {
    Num: "on_number", Imag: "on_imaginary", Str: "on_string", Name: "on_name", ListExpr: "on_list",
    Unary: "on_unary", Binary: "on_binary", Index: "on_index", Call: "on_call", Reduce: "on_reduce",
}  # fmt: skip

ARITHMETIC = ("+", "-", "*", "/", "%", "^")
COMPARISONS = ("==", "!=", "<", "<=", ">", ">=")


def fail(code: str, message: str, span: Span | None, hint: str | None = None):
    raise PhysmlError(Diagnostic(code, message, span, hint))


class Walker(Generic[V]):
    """A fold over the expression IR. ``what`` names the context in messages."""

    what = "this expression"
    _table: dict[type, Any] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # node type -> the subclass's handler (resolved once per class, not per node)
        cls._table = {t: getattr(cls, name) for t, name in _DISPATCH.items()}

    def walk(self, e: Expr, env: Any = None) -> V:
        return self._table[type(e)](self, e, env)

    def __call__(self, e: Expr, env: Any = None) -> V:
        return self.walk(e, env)

    # ---------------------------------------------------------------- the node kinds
    def on_number(self, e: Num, env: Any) -> V:
        raise self.not_here(e)

    def on_imaginary(self, e: Imag, env: Any) -> V:
        raise self.not_here(e, "an imaginary number")

    def on_string(self, e: Str, env: Any) -> V:
        raise self.not_here(e, "a string")

    def on_name(self, e: Name, env: Any) -> V:
        raise self.not_here(e, f"'{e.id}'")

    def on_list(self, e: ListExpr, env: Any) -> V:
        raise self.not_here(e, "a list")

    def on_unary(self, e: Unary, env: Any) -> V:
        raise self.not_here(e, f"'{e.op}'")

    def on_binary(self, e: Binary, env: Any) -> V:
        raise self.not_here(e, f"'{e.op}'")

    def on_index(self, e: Index, env: Any) -> V:
        raise self.not_here(e, "indexing")

    def on_call(self, e: Call, env: Any) -> V:
        raise self.not_here(e, f"'{e.func}(...)'")

    def on_reduce(self, e: Reduce, env: Any) -> V:
        raise self.not_here(e, f"'{e.func}(... for ...)'")

    # ---------------------------------------------------------------- errors
    def not_here(self, e: Expr, what: str = "this") -> PhysmlError:
        return PhysmlError(Diagnostic("P305", f"{what} is not allowed in {self.what}", e.span))


class Arithmetic(Walker[V]):
    """A walker whose values combine with the language's operators and functions.

    Subclasses supply ``combine``, ``negate`` and ``apply`` on their values; the walker checks
    operators, arities and the context of each function (``context``) and locates every error.
    """

    context = "expression"

    def on_number(self, e: Num, env: Any) -> V:
        return self.constant(e.value, e)

    def on_imaginary(self, e: Imag, env: Any) -> V:
        return self.constant(complex(0, e.value), e)

    def on_unary(self, e: Unary, env: Any) -> V:
        a = self.walk(e.operand, env)
        if e.op == "-":
            return self.negate(a, e)
        return self.logical_not(a, e)

    def on_binary(self, e: Binary, env: Any) -> V:
        if e.op in ("and", "or"):
            return self.logical(e, env)
        a, b = self.walk(e.left, env), self.walk(e.right, env)
        if e.op in COMPARISONS:
            return self.compare(e.op, a, b, e)
        return self.combine(e.op, a, b, e)

    def on_call(self, e: Call, env: Any) -> V:
        fn = self.function(e)
        if e.kwargs:
            fail("P316", f"'{e.func}' takes no named arguments", e.kwargs[0].span)
        return self.apply(fn, [self.walk(a, env) for a in e.args], e)

    def function(self, e: Call) -> Function:
        """The table entry of a call, checked against this walker's context and arity."""
        allowed = functions_in(self.context)
        fn = allowed.get(e.func)
        if fn is None:
            hint = did_you_mean(e.func, set(allowed))
            if e.func in FUNCTIONS:
                hint = f"'{e.func}' is not available in {self.what}"
            fail("P200", f"unknown function '{e.func}' in {self.what}", e.func_span or e.span,
                 hint)  # fmt: skip
        if not fn.accepts(len(e.args)):
            low, high = fn.arity
            n = f"{low}" if low == high else f"{low} or more" if high is None else f"{low}-{high}"
            fail("P316", f"{e.func} takes {n} argument(s), got {len(e.args)}", e.span, fn.usage)
        return fn

    # ---------------------------------------------------------------- value semantics
    def constant(self, value: int | float | complex, e: Expr) -> V:
        raise self.not_here(e, "a number")

    def negate(self, a: V, e: Expr) -> V:
        raise self.not_here(e, "'-'")

    def combine(self, op: str, a: V, b: V, e: Binary) -> V:
        raise self.not_here(e, f"'{op}'")

    def compare(self, op: str, a: V, b: V, e: Binary) -> V:
        fail("P305", f"'{op}' is not allowed in {self.what}", e.span,
             "comparisons belong in conditions; use delta(a, b) for a Kronecker delta")

    def logical(self, e: Binary, env: Any) -> V:
        raise self.not_here(e, f"'{e.op}'")

    def logical_not(self, a: V, e: Unary) -> V:
        raise self.not_here(e, "'not'")

    def apply(self, fn: Function, args: list[V], e: Call) -> V:
        raise self.not_here(e, f"'{fn.name}(...)'")


# -------------------------------------------------------------------- queries on expressions


def name_of(e: Expr | None) -> str | None:
    """The identifier of a bare name, else None."""
    return e.id if type(e) is Name else None


def int_literal(e: Expr | None) -> int | None:
    """The value of an integer literal, else None."""
    if type(e) is Num and isinstance(e.value, int) and not isinstance(e.value, bool):
        return e.value
    return None


def as_call(e: Expr | None) -> Call | None:
    """A call node (``bonds(2)``, ``load("x.npz")``), else None."""
    return e if type(e) is Call else None


def as_index(e: Expr | None) -> Index | None:
    return e if type(e) is Index else None


def as_reduce(e: Expr | None) -> Reduce | None:
    return e if type(e) is Reduce else None


def as_string(e: Expr | None) -> str | None:
    return e.value if type(e) is Str else None


def as_list(e: Expr | None) -> tuple[Expr, ...] | None:
    return e.items if type(e) is ListExpr else None


def as_binary(e: Expr | None) -> tuple[str, Expr, Expr] | None:
    """A binary operation as (op, left, right), else None."""
    if type(e) is Binary:
        return e.op, e.left, e.right
    return None


def as_unary(e: Expr | None) -> tuple[str, Expr] | None:
    """A unary operation as (op, operand), else None."""
    if type(e) is Unary:
        return e.op, e.operand
    return None


def as_shift(e: Expr) -> tuple[Expr, str, Expr] | None:
    """``a + b`` / ``a - b`` as (a, op, b), else None (index arithmetic such as x + e0)."""
    if type(e) is Binary and e.op in ("+", "-"):
        return e.left, e.op, e.right
    return None


def as_scaled(e: Expr) -> tuple[Expr, Expr] | None:
    """``k * a`` as (k, a), else None."""
    if type(e) is Binary and e.op == "*":
        return e.left, e.right
    return None


def as_negation(e: Expr) -> Expr | None:
    """``-a`` as a, else None."""
    if type(e) is Unary and e.op == "-":
        return e.operand
    return None


class _Terms(Walker[list[tuple[int, Expr]]]):
    """An expression as signed additive terms: a - (b + c) -> [(+1, a), (-1, b), (-1, c)]."""

    def walk(self, e: Expr, env: Any = 1) -> list[tuple[int, Expr]]:
        sign = 1 if env is None else env
        if type(e) is Binary and e.op in ("+", "-"):
            return self.walk(e.left, sign) + self.walk(e.right, sign if e.op == "+" else -sign)
        if type(e) is Unary and e.op == "-":
            return self.walk(e.operand, -sign)
        return [(sign, e)]


def additive_terms(e: Expr, keep_negations: bool = False) -> list[tuple[int, Expr]]:
    """Signed additive terms of ``e``. ``keep_negations``: -a stays one term (+1, -a)."""
    if keep_negations:
        out: list[tuple[int, Expr]] = []

        def split(x: Expr, sign: int) -> None:
            if type(x) is Binary and x.op in ("+", "-"):
                split(x.left, sign)
                split(x.right, sign if x.op == "+" else -sign)
            else:
                out.append((sign, x))

        split(e, 1)
        return out
    return _Terms().walk(e, 1)


def factors(e: Expr) -> list[Expr]:
    """A product a * b * c as its factors [a, b, c]."""
    if type(e) is Binary and e.op == "*":
        return factors(e.left) + factors(e.right)
    return [e]


def children(e: Expr) -> list[Expr]:
    """The direct sub-expressions of a node (loop domains included)."""
    t = type(e)
    if t is ListExpr:
        return list(e.items)
    if t is Unary:
        return [e.operand]
    if t is Binary:
        return [e.left, e.right]
    if t is Index:
        return [e.base, *e.indices]
    if t is Call:
        return [*e.args, *(k.value for k in e.kwargs)]
    if t is Reduce:
        return [e.body, *(lp.domain for lp in e.loops if lp.domain is not None)]
    return []


def names_in(e: Expr) -> set[str]:
    """Every identifier that occurs in ``e`` (names, called functions not included)."""
    out: set[str] = set()
    stack = [e]
    while stack:
        x = stack.pop()
        if type(x) is Name:
            out.add(x.id)
        stack.extend(children(x))
    return out


def loops_of(e: Reduce) -> tuple[Loop, ...]:
    return e.loops


def depth(e: Expr) -> int:
    """The nesting depth of an expression (1 for a leaf), without recursion."""
    best = 0
    stack = [(e, 1)]
    while stack:
        x, d = stack.pop()
        best = max(best, d)
        stack.extend((c, d + 1) for c in children(x))
    return best


def size(e: Expr) -> int:
    """The number of nodes of an expression."""
    n = 0
    stack = [e]
    while stack:
        x = stack.pop()
        n += 1
        stack.extend(children(x))
    return n


_PRECEDENCE = {"or": 1, "and": 2, "==": 4, "!=": 4, "<": 4, "<=": 4, ">": 4, ">=": 4,
               "+": 5, "-": 5, "*": 6, "/": 6, "%": 6, "^": 8}  # fmt: skip


class Text(Walker[str]):
    """An expression printed back as language text (fully parenthesised where needed)."""

    def walk(self, e: Expr, env: Any = 0) -> str:
        return super().walk(e, 0 if env is None else env)

    def on_number(self, e: Num, env: Any) -> str:
        return repr(e.value)

    def on_imaginary(self, e: Imag, env: Any) -> str:
        return f"{e.value!r}i"

    def on_string(self, e: Str, env: Any) -> str:
        return f'"{e.value}"'

    def on_name(self, e: Name, env: Any) -> str:
        return e.id

    def on_list(self, e: ListExpr, env: Any) -> str:
        return "[" + ", ".join(self.walk(x) for x in e.items) + "]"

    def on_unary(self, e: Unary, env: Any) -> str:
        inner = self.walk(e.operand, 7)
        text = f"-{inner}" if e.op == "-" else f"not {inner}"
        return f"({text})" if env > 7 else text

    def on_binary(self, e: Binary, env: Any) -> str:
        p = _PRECEDENCE[e.op]
        right_assoc = e.op == "^"
        left = self.walk(e.left, p + 1 if right_assoc else p)
        right = self.walk(e.right, p if right_assoc else p + 1)
        text = f"{left} {e.op} {right}"
        return f"({text})" if env > p else text

    def on_index(self, e: Index, env: Any) -> str:
        return f"{self.walk(e.base, 9)}[{', '.join(self.walk(x) for x in e.indices)}]"

    def on_call(self, e: Call, env: Any) -> str:
        args = [self.walk(a) for a in e.args] + [f"{k.name} = {self.walk(k.value)}"
                                                 for k in e.kwargs]  # fmt: skip
        return f"{e.func}({', '.join(args)})"

    def on_reduce(self, e: Reduce, env: Any) -> str:
        loops = []
        for lp in e.loops:
            names = lp.names[0] if len(lp.names) == 1 else f"({', '.join(lp.names)})"
            loops.append(f"for {names}" + (f" in {self.walk(lp.domain)}" if lp.domain else ""))
        return f"{e.func}({self.walk(e.body)} {' '.join(loops)})"


def to_text(e: Expr) -> str:
    """Language text of an expression: ``-J * sum(s[i] * s[j] for (i, j) in bonds)``."""
    return Text().walk(e)


_OP_WORDS = {"+": "plus", "-": "minus", "*": "times", "/": "over", "^": "pow"}


class _ColumnName(Walker[str]):
    """A column name for an unnamed measured expression: abs(magnetization) / sites ->
    abs_magnetization_per_site."""

    def on_number(self, e: Num, env: Any) -> str:
        return str(e.value)

    def on_name(self, e: Name, env: Any) -> str:
        return e.id

    def on_call(self, e: Call, env: Any) -> str:
        return "_".join([e.func] + [self.walk(a) for a in e.args])

    def on_binary(self, e: Binary, env: Any) -> str:
        if e.op == "/" and name_of(e.right) == "sites":
            return self.walk(e.left) + "_per_site"
        return f"{self.walk(e.left)}_{_OP_WORDS.get(e.op, 'op')}_{self.walk(e.right)}"

    def on_unary(self, e: Unary, env: Any) -> str:
        return "minus_" + self.walk(e.operand)

    def not_here(self, e: Expr, what: str = "this") -> PhysmlError:
        return _Observable()


class _Observable(PhysmlError):
    def __init__(self) -> None:  # a control-flow signal, never shown
        Exception.__init__(self, "observable")


def column_name(e: Expr) -> str:
    try:
        return _ColumnName().walk(e)
    except _Observable:
        return "observable"
