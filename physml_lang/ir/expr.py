"""The expression IR: a small, frozen, typed tree, independent of lark and of sympy.

Every expression of a checked program (energies, Hamiltonians, actions, definitions, conditions,
measured observables, data sources) is one of these nodes. Nodes are immutable and hashable;
each keeps the span it came from (``span``, not part of equality), so later stages still point
at the source. Nothing here evaluates: meaning is given by :class:`physml_lang.ir.walk.Walker`
subclasses, the only code that tells node kinds apart.

    Num(2)                     2, 1.5               numbers (int or float)
    Imag(0.5)                  0.5i                 imaginary literals
    Str("x.npz")               "x.npz"              strings (file names)
    Name("J")                  J                    names of parameters, fields, indices, ...
    ListExpr((a, b))           [a, b]
    Unary("-", a)              -a, not a
    Binary("+", a, b)          a + b, a == b, a and b       (+ - * / % ^ == != < <= > >= and or)
    Index(s, (i,))             s[i], U[x + e0, mu]
    Call("exp", (a,), kws)     exp(a), normal(0, 1, seed = 1)
    Reduce("sum", body, loops) sum(s[i] * s[j] for (i, j) in bonds)
"""

from __future__ import annotations

from dataclasses import dataclass, field

from physml_lang.diagnostics import Span

BINARY_OPS = ("+", "-", "*", "/", "%", "^", "==", "!=", "<", "<=", ">", ">=", "and", "or")
UNARY_OPS = ("-", "not")
REDUCTIONS = ("sum", "prod")


def _span() -> Span | None:
    return field(default=None, compare=False, repr=False, kw_only=True)


@dataclass(frozen=True)
class Expr:
    """An expression node; ``span`` locates it in the source (not part of equality)."""

    span: Span | None = _span()


@dataclass(frozen=True)
class Num(Expr):
    value: int | float


@dataclass(frozen=True)
class Imag(Expr):
    value: float


@dataclass(frozen=True)
class Str(Expr):
    value: str


@dataclass(frozen=True)
class Name(Expr):
    id: str


@dataclass(frozen=True)
class ListExpr(Expr):
    items: tuple[Expr, ...]


@dataclass(frozen=True)
class Unary(Expr):
    op: str
    operand: Expr


@dataclass(frozen=True)
class Binary(Expr):
    op: str
    left: Expr
    right: Expr


@dataclass(frozen=True)
class Index(Expr):
    base: Expr
    indices: tuple[Expr, ...]


@dataclass(frozen=True)
class Keyword:
    """``name = value`` inside a call."""

    name: str
    value: Expr
    span: Span | None = _span()


@dataclass(frozen=True)
class Call(Expr):
    func: str
    args: tuple[Expr, ...] = ()
    kwargs: tuple[Keyword, ...] = ()
    func_span: Span | None = _span()

    def kwarg(self, name: str) -> Keyword | None:
        return next((k for k in self.kwargs if k.name == name), None)


@dataclass(frozen=True)
class Loop:
    """``for (i, j) in bonds`` / ``for mu``: the names a reduction binds and their domain."""

    names: tuple[str, ...]
    domain: Expr | None = None
    span: Span | None = _span()


@dataclass(frozen=True)
class Reduce(Expr):
    """``sum(body for ... in ...)`` (also ``prod``) over lattice structures or index ranges."""

    func: str
    body: Expr
    loops: tuple[Loop, ...]
    func_span: Span | None = _span()


NODE_TYPES: tuple[type[Expr], ...] = (
    Num, Imag, Str, Name, ListExpr, Unary, Binary, Index, Call, Reduce,
)  # fmt: skip
