"""Syntax tree -> expression IR: the one place where syntax nodes become IR nodes.

The conversion is structural (one IR node per syntax node, spans kept); it drops what only the
syntax needs (unary plus is already gone) and turns lists into tuples. Expressions nested deeper
than :data:`MAX_DEPTH` are refused here, with their location, before any later stage recurses.
"""

from __future__ import annotations

from collections import OrderedDict

from physml_lang.diagnostics import Diagnostic, PhysmlError
from physml_lang.ir import expr as E
from physml_lang.syntax import ast

MAX_DEPTH = 200


_CACHE: OrderedDict[int, tuple[ast.Expr, E.Expr]] = OrderedDict()
_CACHE_SIZE = 4096


def to_ir(e: ast.Expr) -> E.Expr:
    """The IR of a syntax-tree expression (deep nesting is a located error).

    A model is instantiated once per parameter value of a scan: the conversion of each syntax
    node is remembered (by identity, for the most recent nodes), so that it is done once."""
    hit = _CACHE.get(id(e))
    if hit is not None and hit[0] is e:
        _CACHE.move_to_end(id(e))
        return hit[1]
    out = _Converter().convert(e, 0)
    _CACHE[id(e)] = (e, out)
    if len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return out


class _Converter:
    def convert(self, e: ast.Expr, depth: int) -> E.Expr:
        if depth > MAX_DEPTH:
            raise PhysmlError(Diagnostic(
                "P801", f"this expression is nested more than {MAX_DEPTH} levels deep", e.span,
                "split the expression: define parts with 'let' and combine them"))  # fmt: skip
        d = depth + 1
        t = type(e)
        if t is ast.Number:
            return E.Num(e.value, span=e.span)
        if t is ast.Imaginary:
            return E.Imag(e.value, span=e.span)
        if t is ast.String:
            return E.Str(e.value, span=e.span)
        if t is ast.Name:
            return E.Name(e.id, span=e.span)
        if t is ast.ListExpr:
            return E.ListExpr(tuple(self.convert(x, d) for x in e.items), span=e.span)
        if t is ast.Unary:
            return E.Unary(e.op, self.convert(e.operand, d), span=e.span)
        if t is ast.Binary:
            return E.Binary(e.op, self.convert(e.left, d), self.convert(e.right, d), span=e.span)
        if t is ast.Index:
            return E.Index(self.convert(e.base, d), tuple(self.convert(x, d) for x in e.indices),
                           span=e.span)  # fmt: skip
        if t is ast.Call:
            return E.Call(
                e.func,
                tuple(self.convert(a, d) for a in e.args),
                tuple(E.Keyword(k.name, self.convert(k.value, d), span=k.span) for k in e.kwargs),
                span=e.span,
                func_span=e.func_span,
            )
        if t is ast.Generator:
            loops = tuple(
                E.Loop(tuple(lp.names), None if lp.domain is None else self.convert(lp.domain, d),
                       span=lp.span)
                for lp in e.loops
            )  # fmt: skip
            return E.Reduce(e.func, self.convert(e.body, d), loops, span=e.span,
                            func_span=e.func_span)  # fmt: skip
        raise TypeError(f"unknown syntax node {t.__name__}")
