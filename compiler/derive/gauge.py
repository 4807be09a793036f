"""Structural gauge invariance: the abelian charge of each term, decided without numbers.

Under U_mu(x) -> w_x U_mu(x) w_{x+mu}^*, a link carries charge +1 at x and -1 at x + e_mu, a
matter field +1 at its site; conjugation flips charges and products add them (mod 2 for z2).
A term whose charge vanishes at every (symbolic) site is gauge invariant for every x and every
direction; anything this cannot decide is left to the numerical check of the compiled model.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from physml_lang.diagnostics import PhysmlError
from physml_lang.ir import expr as E
from physml_lang.ir.walk import Walker, int_literal, name_of


def charges(e: E.Expr, group: str, link_field: str, matter: Collection[str],
            constants: Collection[str], definitions: Mapping[str, Any]) -> dict | None:
    """Abelian gauge charge of an expression, or None when not decidable structurally.

    Under U_mu(x) -> w_x U w_{x+mu}^* a link carries +1 at x and -1 at x + e_mu; matter +1 at
    its site; conj/dagger flip; products add (mod 2 for z2). Offsets stay symbolic (sums of the
    bound site and unit vectors e0, e_mu, ...), and definitions with indices (plaquettes) are
    inlined with their actual indices, so one check covers every x and every direction. Zero
    charge everywhere proves invariance; anything else is left to the numerical check.

    ``group``: z2, u1 (others are never decided here). ``constants``: names that carry no
    charge (parameters). ``definitions``: name -> definition IR (inlined with their indices).
    """
    walker = _Charges(group, link_field, frozenset(matter), frozenset(constants), definitions)
    return walker.walk(e, {"sites": {}, "dirs": {}, "depth": 0})


def _combine(a: tuple, b: tuple, s: int) -> tuple:
    acc: dict = dict(a)
    for k, v in b:
        acc[k] = acc.get(k, 0) + s * v
    return tuple(sorted((k, v) for k, v in acc.items() if v))


class _SymbolicOffset(Walker[tuple | None]):
    """A site index as a formal sum of named vectors ((token, coefficient), ...), or None."""

    def not_here(self, e: E.Expr, what: str = "this"):
        return _Undecided()

    def on_name(self, e: E.Name, sub) -> tuple | None:
        if e.id in sub["sites"]:
            return sub["sites"][e.id]
        if e.id.startswith("e_"):
            return ((sub["dirs"].get(e.id[2:], e.id), 1),)
        return ((e.id, 1),)

    def on_binary(self, e: E.Binary, sub) -> tuple | None:
        if e.op not in ("+", "-"):
            raise _Undecided()
        a, b = self.walk(e.left, sub), self.walk(e.right, sub)
        return _combine(a, b, 1 if e.op == "+" else -1)


class _Undecided(PhysmlError):
    """Control flow: the structural charge is not decidable (never shown)."""

    def __init__(self) -> None:
        Exception.__init__(self, "undecided")


def _dir_token(x: E.Expr, sub: dict) -> str | None:
    k = int_literal(x)
    if k is not None:
        return f"e{k}"
    name = name_of(x)
    if name is not None:
        return sub["dirs"].get(name, f"e_{name}")
    return None


class _Charges(Walker[dict | None]):
    def __init__(self, group: str, link_field: str, matter: frozenset[str],
                 constants: frozenset[str], definitions: Mapping[str, Any]):  # fmt: skip
        self.link_field = link_field
        self.matter = matter
        self.constants = constants
        self.definitions = definitions
        self.mod = 2 if group == "z2" else 0

    def walk(self, e: E.Expr, env=None) -> dict | None:
        try:
            return super().walk(e, env)
        except _Undecided:
            return None

    def not_here(self, e: E.Expr, what: str = "this"):
        return _Undecided()

    def norm(self, c: dict) -> dict:
        out = {}
        for k, v in c.items():
            v = v % self.mod if self.mod else v
            if v:
                out[k] = v
        return out

    def on_number(self, e, sub) -> dict:
        return {}

    def on_imaginary(self, e, sub) -> dict:
        return {}

    def on_name(self, e: E.Name, sub) -> dict | None:
        if e.id in self.constants or e.id in ("pi", "I"):
            return {}
        return None

    def on_index(self, x: E.Index, sub) -> dict | None:
        if sub["depth"] > 16:
            return None
        name = name_of(x.base)
        if name is None:
            return None
        off = _SymbolicOffset()
        if name == self.link_field and len(x.indices) == 2:
            try:
                o = off.walk(x.indices[0], sub)
            except _Undecided:
                return None
            u = _dir_token(x.indices[1], sub)
            if u is None:
                return None
            return self.norm({o: 1, _combine(o, ((u, 1),), 1): -1})
        if name in self.matter and len(x.indices) == 1:
            try:
                return {off.walk(x.indices[0], sub): 1}
            except _Undecided:
                return None
        d = self.definitions.get(name)
        if d is None or len(d.indices) != len(x.indices) or not d.indices:
            return None
        try:
            o = off.walk(x.indices[0], sub)
        except _Undecided:
            return None
        dirs = [_dir_token(i, sub) for i in x.indices[1:]]
        if None in dirs:
            return None
        inner = {"sites": {d.indices[0]: o}, "dirs": dict(zip(d.indices[1:], dirs)),
                 "depth": sub["depth"] + 1}  # fmt: skip
        return self.walk(d.expr, inner)

    def on_unary(self, x: E.Unary, sub) -> dict | None:
        return self.walk(x.operand, sub) if x.op == "-" else None

    def on_binary(self, x: E.Binary, sub) -> dict | None:
        a, b = self.walk(x.left, sub), self.walk(x.right, sub)
        if a is None or b is None:
            return None
        if x.op == "*":
            c = dict(a)
            for k, v in b.items():
                c[k] = c.get(k, 0) + v
            return self.norm(c)
        if x.op in ("+", "-"):
            return a if a == b else None
        if x.op == "/":
            return a if not b else None
        if x.op == "^":
            return a if not a and not b else None
        return None

    def on_call(self, x: E.Call, sub) -> dict | None:
        if len(x.args) != 1:
            return None
        a = self.walk(x.args[0], sub)
        if a is None:
            return None
        if x.func in ("conj", "dagger"):
            return self.norm({k: -v for k, v in a.items()})
        if x.func == "trace":
            return a
        return a if not a else None  # f(invariant) is invariant; f(charged): numerics

    def on_reduce(self, x: E.Reduce, sub) -> dict | None:
        return self.walk(x.body, sub)


__all__ = ["charges"]
