"""Parse tree -> sympy: an energy as a sum of lattice terms.

An energy (or any extensive observable) is a linear combination of sums over lattice structures.
Each sum becomes one or more *terms*:

- a :class:`StencilTerm` for a sum over ``sites`` or ``bonds``: a sympy body in *access
  symbols*, each naming a field or array value at a fixed offset from a base site x; the term
  stands for sum_x body(x). ``sum(s[i] * s[j] for (i, j) in bonds)`` on a square lattice gives
  two stencil terms, ``s * s_e0`` and ``s * s_e1``.
- a :class:`PairTerm` for a sum over all ``pairs`` i < j (complete graphs): a body in the values
  at i and at j and in pair arrays W_ij.

Expressions are built node by node from the syntax tree: no text is ever parsed by sympy.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sympy as sp

from physml_lang.compiler import limits
from physml_lang.compiler.arrays import RealArray
from physml_lang.compiler.instance import ModelInstance
from physml_lang.compiler.lower.program import Parameter
from physml_lang.compiler.lower.sympy import SympyArithmetic, number
from physml_lang.diagnostics import Diagnostic, PhysmlError, Span, did_you_mean
from physml_lang.ir import expr as E
from physml_lang.ir.walk import as_call, as_shift, int_literal, name_of

Offset = tuple[int, ...]


@dataclass(frozen=True)
class Access:
    """A value read by a term: field or array ``name`` at base + ``offset``.

    ``offset`` is in unit cells; ``basis``: the sublattice read (lattices with a basis).
    ``component``: the bond type of a per-bond array, or the link direction of a link
    field. ``slot``: for pair terms, "i" or "j" (offset unused).
    """

    kind: str  # "field" or "array"
    name: str
    offset: Offset = ()
    component: int | None = None
    slot: str | None = None
    basis: int = 0

    def shifted(self, shift: Offset) -> Access:
        moved = tuple(a - b for a, b in zip(self.offset, shift))
        return Access(self.kind, self.name, moved, self.component, basis=self.basis)


def access_symbol(acc: Access) -> sp.Symbol:
    """The sympy symbol of an access, with a readable, mangled name (s_e0, J_c1_me1, W_ij)."""
    if acc.slot is not None:
        return sp.Symbol(f"{acc.name}_{acc.slot}", real=True)
    parts = []
    for axis, o in enumerate(acc.offset):
        if o:
            parts.append(("m" if o < 0 else "") + (str(abs(o)) if abs(o) != 1 else "") + f"e{axis}")
    name = acc.name
    if acc.component is not None:
        name += f"_c{acc.component}"
    if acc.basis:
        name += f"_b{acc.basis}"
    if parts:
        name += "_" + "_".join(parts)
    return sp.Symbol(name, real=True)


@dataclass
class StencilTerm:
    """sum over sites x of ``body``; ``accesses`` maps body symbols to what they read."""

    body: sp.Expr
    accesses: dict[sp.Symbol, Access]
    span: Span
    structure: str

    def field_offsets(self, name: str) -> list[Offset]:
        return [a.offset for a in self.accesses.values() if a.kind == "field" and a.name == name]


@dataclass
class PairTerm:
    """sum over pairs i < j of ``body`` (values at i, at j, and pair arrays W_ij)."""

    body: sp.Expr
    accesses: dict[sp.Symbol, Access]
    span: Span
    structure: str = "pairs"


Term = StencilTerm | PairTerm


@dataclass
class LatticeSum:
    """An extensive quantity: constant + sum of terms. ``symbolic`` keeps parameters as symbols."""

    terms: list[Term] = field(default_factory=list)
    constant: sp.Expr = sp.Integer(0)


def fail(code: str, message: str, span: Span | None, hint: str | None = None):
    raise PhysmlError(Diagnostic(code, message, span, hint))


@dataclass
class _Slot:
    """An index variable bound by a sum: the site of sublattice ``basis`` at ``offset`` cells
    from the base cell, or a pair slot."""

    offset: Offset = ()
    pair_slot: str | None = None
    direction: int | None = None  # for bonds: which bond type of the shell this term is
    basis: int = 0


class TermBuilder(SympyArithmetic):
    """Builds :class:`LatticeSum` objects from expressions of one realised model; ``env`` holds
    the index variables bound so far (slots).

    ``symbolic=True`` keeps model parameters as sympy symbols (for display); otherwise their
    values are substituted.
    """

    what = "an energy"

    def __init__(self, model: ModelInstance, symbolic: bool = False,
                 numeric: frozenset[str] = frozenset()):  # fmt: skip
        self.model = model
        self.lattice = model.lattice
        self.symbolic = symbolic
        self.numeric = numeric  # parameters lowered as kernel inputs (see Parameter)
        self._terms: dict[sp.Symbol, list[Term]] = {}
        self._current: dict[sp.Symbol, Access] = {}

    # ---------------------------------------------------------------- entry point
    def lattice_sum(self, expr: E.Expr) -> LatticeSum:
        self._terms = {}
        total = limits.expand(self.walk(expr, {}), expr.span, "this energy")
        placeholders = list(self._terms)
        if total.has(sp.I):
            fail("P312", "this energy is complex; an energy must be real", expr.span,
                 "complex coefficients belong in a quantum 'hamiltonian'")  # fmt: skip
        out = LatticeSum()
        out.constant = total.subs({p: 0 for p in placeholders})
        for p in placeholders:
            coeff = sp.expand(total.diff(p))
            if coeff.free_symbols & set(placeholders):
                terms = self._terms[p]
                fail(
                    "P802",
                    "an energy must be a sum of local terms; this sum is multiplied by another sum",
                    terms[0].span,
                    "a product of two lattice sums is a global (all-to-all) interaction: write it "
                    "as one sum over pairs",
                )
            if coeff == 0:
                continue
            for t in self._terms[p]:
                body = limits.expand(coeff * t.body, t.span, "this term")
                if body != 0:
                    out.terms.append(type(t)(body, t.accesses, t.span, t.structure))
        return out

    def scalar(self, e: E.Expr, slots: dict[str, _Slot]) -> sp.Expr:
        """Sympy expression of ``e``; ``slots`` are the index variables bound so far."""
        return self.walk(e, slots)

    def not_here(self, e: E.Expr, what: str = "this"):
        return PhysmlError(Diagnostic("P305", "this expression is not allowed in an energy",
                                      e.span))  # fmt: skip

    # ---------------------------------------------------------------- names
    def on_name(self, e: E.Name, slots: dict[str, _Slot]) -> sp.Expr:
        m = self.model
        if e.id in m.params:
            v = m.params[e.id]
            if self.symbolic:
                return sp.Symbol(e.id, real=not isinstance(v, complex))
            if e.id in self.numeric:
                return Parameter(e.id, real=True)
            return number(v)
        if e.id == "pi":
            return sp.pi
        if e.id == "I":
            return sp.I
        if e.id in ("N", "sites_count") and self.lattice is not None:
            return sp.Integer(self.lattice.n_sites)
        if e.id in m.fields:
            fail("P314", f"field '{e.id}' needs an index", e.span,
                 f"write {e.id}[i] inside a sum, e.g. sum({e.id}[i] for i in sites)")  # fmt: skip
        if e.id in m.arrays:
            arr = m.arrays[e.id]
            if arr.uniform:
                return sp.Float(arr.uniform_value)
            fail("P314", f"'{e.id}' varies over {arr.on} and needs an index", e.span)
        if e.id in m.definitions:
            d = m.definitions[e.id]
            if d.indices:
                fail("P314", f"'{e.id}' needs {len(d.indices)} index(es)", e.span)
            return self.walk(d.expr, slots)
        if e.id in slots:
            fail("P309", f"the index '{e.id}' cannot be used as a number", e.span,
                 f"index a field with it: s[{e.id}]")  # fmt: skip
        fail("P200", f"unknown name '{e.id}'", e.span, did_you_mean(e.id, set(m.params)))

    # ---------------------------------------------------------------- indexing
    def on_index(self, e: E.Index, slots: dict[str, _Slot]) -> sp.Expr:
        m = self.model
        name = name_of(e.base)
        if name is None:
            fail("P311", "only fields and arrays can be indexed", e.span)
        if name in m.fields:
            f = m.fields[name]
            if f.on == "links":
                fail("P804", "link fields are lowered by the gauge compiler", e.span)
            if len(e.indices) != 1:
                fail("P302", f"field '{name}' on sites takes one index, got {len(e.indices)}",
                     e.span, f"e.g. {name}[i]")  # fmt: skip
            slot = self._site_index(e.indices[0], slots)
            a = Access("field", name, slot.offset, None, slot.pair_slot, slot.basis)
            return self._record(a)
        if name in m.arrays:
            return self._array(m.arrays[name], e, slots)
        if name in m.params:
            fail("P202", f"'{name}' is a scalar parameter and cannot be indexed", e.span)
        fail("P200", f"unknown name '{name}'", e.base.span,
             did_you_mean(name, set(m.fields) | set(m.arrays)))  # fmt: skip

    def _site_index(self, e: E.Expr, slots: dict[str, _Slot]) -> _Slot:
        """An index expression: a bound slot, optionally shifted by unit vectors (x + e0)."""
        name = name_of(e)
        if name is not None:
            if name in slots:
                return slots[name]
            fail("P200", f"'{name}' is not an index bound by an enclosing sum", e.span,
                 did_you_mean(name, set(slots)) or f"write the field inside sum(... for {name} in sites)")  # fmt: skip
        shift = as_shift(e)
        if shift is not None and name_of(shift[2]) is not None:
            left, op, right = shift
            base = self._site_index(left, slots)
            if base.pair_slot is None and self.lattice is not None and not self.lattice.graph:
                axis = _unit_axis(name_of(right))
                if axis is not None and axis < self.lattice.dim:
                    sign = 1 if op == "+" else -1
                    off = list(base.offset)
                    off[axis] += sign
                    return _Slot(tuple(off), basis=base.basis)
        fail("P310", "an index must be an index variable, optionally shifted (x + e0)", e.span)

    def _array(self, arr: RealArray, e: E.Index, slots: dict[str, _Slot]) -> sp.Expr:
        n = len(e.indices)
        if arr.on == "sites":
            if n != 1:
                fail("P323", f"'{arr.name}' lives on sites and takes one index", e.span)
            slot = self._site_index(e.indices[0], slots)
            if arr.uniform:
                return sp.Float(arr.uniform_value)
            return self._record(Access("array", arr.name, slot.offset, None, slot.pair_slot,
                                       slot.basis))  # fmt: skip
        if n != 2:
            fail("P323", f"'{arr.name}' lives on {arr.on} and takes two indices: "
                 f"{arr.name}[i, j]", e.span)  # fmt: skip
        a, b = (self._site_index(x, slots) for x in e.indices)
        if arr.uniform:
            return sp.Float(arr.uniform_value)
        if arr.on == "pairs":
            if a.pair_slot is None or b.pair_slot is None or a.pair_slot == b.pair_slot:
                fail("P310", f"'{arr.name}' is indexed by the two ends of a pair: "
                     f"{arr.name}[i, j] inside sum(... for (i, j) in pairs)", e.span)  # fmt: skip
            return self._record(Access("array", arr.name, (), None, a.pair_slot + b.pair_slot))
        # per-bond array: its indices must be the two ends of the bond being summed
        if a.direction is None and b.direction is None:
            fail("P310", f"'{arr.name}' lives on {arr.on}: index it by a bond, {arr.name}[i, j] "
                 f"inside sum(... for (i, j) in {arr.on})", e.span)  # fmt: skip
        d = b.direction if b.direction is not None else a.direction
        base = a.offset if b.direction is not None else b.offset
        return self._record(Access("array", arr.name, base, d))

    def _record(self, a: Access) -> sp.Symbol:
        sym = access_symbol(a)
        self._current[sym] = a
        return sym

    # ---------------------------------------------------------------- sums
    def on_reduce(self, e: E.Reduce, slots: dict[str, _Slot]) -> sp.Expr:
        if e.func != "sum":
            fail("P803", f"'{e.func}' over a lattice structure is not supported in an energy",
                 e.func_span, "use sum(...)")  # fmt: skip
        if len(e.loops) != 1:
            fail("P802", "one 'for' per sum: nest sums instead", e.loops[1].span)
        if slots:
            fail("P802", "nested lattice sums are not supported in an energy", e.span)
        loop = e.loops[0]
        structure, shell = self._structure(loop)
        lat = self.lattice
        if lat is None:
            fail("P411", "a sum over a lattice structure needs a lattice", loop.span)
        terms: list[Term] = []
        names = loop.names
        if structure == "sites":
            if len(names) != 1:
                fail("P315", "sites are summed with one index: for i in sites", loop.span)
            zero = (0,) * lat.dim
            for b in range(lat.basis):  # one term per sublattice
                body, accesses = self._body(e.body, {names[0]: _Slot(zero, basis=b)})
                terms.append(StencilTerm(body, accesses, e.span, "sites"))
        elif structure == "pairs" or (structure == "bonds" and lat.graph):
            if lat.edge_list is not None and shell != 1:
                fail("P408", "a graph read from an edge list has one shell of bonds", loop.span)
            if len(names) != 2:
                fail("P315", f"{structure} are summed with two indices: for (i, j) in {structure}",
                     loop.span)  # fmt: skip
            body, accesses = self._body(
                e.body, {names[0]: _Slot(pair_slot="i"), names[1]: _Slot(pair_slot="j")}
            )
            # on an edge list, bonds are the listed pairs: the lowering masks the pair matrix
            edges = lat.edge_list is not None and structure == "bonds"
            terms.append(PairTerm(body, accesses, e.span, "bonds" if edges else "pairs"))
        else:  # bonds of a shell, one term per bond type
            if len(names) != 2:
                fail("P315", "bonds are summed with two indices: for (i, j) in bonds", loop.span)
            if shell not in lat.bond_types:
                fail("P408", f"{lat.kind} lattices have neighbour shells "
                     f"{', '.join(map(str, sorted(lat.bond_types)))}, not {shell}",
                     loop.span)  # fmt: skip
            zero = (0,) * lat.dim
            for k, t in enumerate(lat.bond_types[shell]):
                d = t.offset
                for axis, (o, n, per) in enumerate(zip(d, lat.cells, lat.periodic)):
                    if per and abs(o) > 0 and n <= abs(o) and (t.a == t.b or n < abs(o)):
                        fail("P408", f"bonds({shell}) wrap onto themselves: axis {axis} has "
                             f"L = {n}", loop.span, f"use L > {abs(o)}")  # fmt: skip
                body, accesses = self._body(
                    e.body, {names[0]: _Slot(zero, direction=k, basis=t.a),
                             names[1]: _Slot(d, direction=k, basis=t.b)}
                )  # fmt: skip
                terms.append(
                    StencilTerm(body, accesses, e.span, f"bonds({shell})" if shell > 1 else "bonds")
                )
        placeholder = sp.Symbol(f"__sum{len(self._terms)}")
        self._terms[placeholder] = terms
        return placeholder

    def _structure(self, loop: E.Loop) -> tuple[str, int]:
        d = loop.domain
        if d is None:
            fail("P411", "say what the sum runs over: for i in sites", loop.span)
        name = name_of(d)
        if name in ("sites", "bonds", "pairs"):
            return name, 1
        call = as_call(d)
        if call is not None and call.func == "bonds" and len(call.args) == 1:
            shell = int_literal(call.args[0])
            if shell is not None:
                return "bonds", shell
        if name in ("links", "plaquettes"):
            fail("P804", f"sums over {name} are lowered by the gauge compiler", d.span)
        hint = did_you_mean(name, {"sites", "bonds", "pairs"}) if name is not None else None
        fail("P209", "a lattice sum runs over sites, bonds, bonds(2) or pairs", d.span,
             hint or "e.g. for (i, j) in bonds")  # fmt: skip

    def _body(self, e: E.Expr, slots: dict[str, _Slot]) -> tuple[sp.Expr, dict]:
        outer = getattr(self, "_current", None)
        self._current: dict[sp.Symbol, Access] = {}
        body = self.walk(e, slots)
        accesses = self._current
        self._current = outer
        return body, accesses


def _unit_axis(name: str) -> int | None:
    if len(name) >= 2 and name[0] == "e" and name[1:].isdigit():
        return int(name[1:])
    return None
