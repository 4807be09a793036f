"""A qubit model derived, without torch: its Hamiltonian as a Pauli sum, symmetries verified.

A model with a ``qubit`` field and a ``hamiltonian`` becomes a :class:`QuantumDerivation`: its
Hamiltonian as a canonical :class:`~physml_lang.compiler.derive.pauli.PauliSum`, its verified
symmetries and conserved quantities, and the lattice facts learners need (translation table,
bipartite sublattice) as numpy arrays. What ``physml check`` reports for a quantum model, and
what the compiled :class:`~physml_lang.compiler.models.quantum.QuantumModel` builds on.

The walk is node by node over the checked syntax tree (never text): a value is either a complex
number (parameters, constants, functions of them) or a PauliSum. Operators:

- ``X[i]``, ``Y[i]``, ``Z[i]``: Pauli matrices; ``Sp[i]``/``Sm[i]`` = sigma^+/sigma^- = (X +- iY)/2;
  ``Sz[i]`` = Z/2; ``Nop[i]`` = (1 - Z)/2 (a down spin is occupied); ``s[i]`` of the qubit
  field itself is its Z-basis value, i.e. Z[i].
- Products multiply operators in written order (same-site products reduced: XY = iZ, ...).
- ``sum``/``prod`` over ``sites``, ``bonds``, ``bonds(2)``, ``pairs``; site indices are bound
  names, their shifts ``i + e0`` or integer literals (flat index, or d coordinates).
- Arrays declared ``on sites``/``bonds``/``bonds2``/``pairs`` are read at the bound sites.

Bonds come from :class:`~physml_lang.compiler.geometry.Lattice` neighbour tables (the spine's
convention: on a periodic axis of extent 2 a bond and its wrap-around are two bonds).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field

import numpy as np
import sympy as sp

from physml_lang.compiler.derive.pauli import PauliSum, PauliTerm, total_z
from physml_lang.compiler.geometry import Lattice
from physml_lang.compiler.instance import ModelInstance
from physml_lang.compiler.limits import SIMPLIFY_MAX_OPS, simplify_small
from physml_lang.diagnostics import Diagnostic, PhysmlError, Span, did_you_mean
from physml_lang.ir import expr as E
from physml_lang.ir.functions import FUNCTIONS, Function
from physml_lang.ir.walk import Arithmetic, Walker, as_call, int_literal, name_of, to_text

Value = complex | PauliSum

# Language operator name -> (single-site op, factor): Sz = Z / 2 (spin-1/2 units).
OPERATORS: dict[str, tuple[str, float]] = {
    "X": ("X", 1.0), "Y": ("Y", 1.0), "Z": ("Z", 1.0), "Sp": ("+", 1.0), "Sm": ("-", 1.0),
    "Sz": ("Z", 0.5), "Nop": ("N", 1.0),
}  # fmt: skip
QUANTUM_SYMMETRIES = ("translation", "spin_flip", "point_group")
MAX_TERMS = 2_000_000  # a product of sums beyond this is a mistake, not a Hamiltonian
# The work of multiplying Pauli sums out (:func:`product_work`, ~5 us a unit): one product at
# most MAX_PRODUCT (~0.5 s; (sum of 200 strings) * (sum of 200 strings) is 60,000), all
# products of one operator at most MAX_PRODUCT_WORK (~10 s).
MAX_PRODUCT = 100_000
MAX_PRODUCT_WORK = 2_000_000
PRODUCT_HINT = ("a product of sums multiplies out every pair of their terms: write the operator "
                "as one sum (e.g. sum(X[i] * X[j] for (i, j) in pairs) for (sum X)^2), or use "
                "fewer or smaller factors")  # fmt: skip


def fail(code: str, message: str, span: Span | None, hint: str | None = None):
    raise PhysmlError(Diagnostic(code, message, span, hint))


def _sizes(s: PauliSum) -> tuple[int, int]:
    """(strings, single-site operators) of a sum once its ``+``, ``-`` and ``N`` factors are
    expanded (each doubles a term)."""
    strings = ops = 0
    for t in s.terms:
        w = 1 << sum(op in "+-N" for op, _ in t.ops)
        strings += w
        ops += w * len(t.ops)
    return strings, ops


def product_work(a: PauliSum, b: PauliSum) -> int:
    """The work of multiplying ``a`` by ``b`` out and combining equal strings: one unit per
    pair of strings and one per four operators they carry (~5 us a unit)."""
    (sa, oa), (sb, ob) = _sizes(a), _sizes(b)
    return sa * sb + (sa * ob + oa * sb) // 4


# ---------------------------------------------------------------- sites and bonds


@dataclass(frozen=True)
class SiteRef:
    """A site named by cell coordinates (before boundary handling) and its sublattice."""

    coords: tuple[int, ...]
    basis: int = 0


class Geometry:
    """Sites and bonds of the model's lattice (complete and edge-list graphs included), as the
    lattice geometry derives them; site references by cell coordinates and sublattice."""

    def __init__(self, model: ModelInstance):
        lat = model.lattice
        assert lat is not None
        self.lattice = lat
        self.n_sites = lat.n_sites
        self.coords = lat.coords()  # (n_cells, d)
        self._bonds: dict[int, list[tuple[int, int, int]]] = {}
        self._bond_index: dict[int, dict[tuple[int, int], tuple[int, int]]] = {}

    def bonds(self, shell: int, span: Span) -> list[tuple[int, int, int]]:
        """(i, j, type) for every bond of a shell: i its first end, ``type`` its bond type."""
        if shell in self._bonds:
            return self._bonds[shell]
        lat = self.lattice
        if lat.graph and shell != 1:
            fail("P408", f"a {'complete' if lat.complete else lat.kind} graph has one shell of "
                 "bonds", span)  # fmt: skip
        if not lat.graph and shell not in lat.bond_types:
            fail("P408", f"lattice {lat.kind} has neighbour shells "
                 f"{sorted(lat.bond_types)}, not {shell}", span)  # fmt: skip
        out = [(i, j, k) for i, j, k in lat.bond_list(shell).tolist()]
        self._bonds[shell] = out
        self._bond_index[shell] = {}
        for i, j, d in out:
            self._bond_index[shell].setdefault((i, j), (i, d))
            self._bond_index[shell].setdefault((j, i), (i, d))
        return out

    def bond_of(self, i: int, j: int, shell: int, span: Span) -> tuple[int, int]:
        """(first end, bond type) of the bond (i, j) of a shell."""
        self.bonds(shell, span)
        found = self._bond_index[shell].get((i, j))
        if found is None:
            fail("P408", f"sites {i} and {j} are not joined by a bond of shell {shell}", span)
        return found

    def resolve(self, ref: SiteRef, span: Span) -> int | None:
        """Flat index of a coordinate reference; None outside an open boundary."""
        lat = self.lattice
        if lat.graph:
            (c,) = ref.coords
            if not 0 <= c < self.n_sites:
                fail("P405", f"site {c} is outside the graph of {self.n_sites} sites", span)
            return c
        return lat.site_index(ref.coords, ref.basis)

    def ref(self, site: int) -> SiteRef:
        nb = self.lattice.basis
        if self.lattice.graph:
            return SiteRef((site,))
        return SiteRef(tuple(int(x) for x in self.coords[site // nb]), site % nb)


# ---------------------------------------------------------------- the builder


class PauliBuilder(Arithmetic[Value]):
    """Builds PauliSums from expressions of one realised qubit model; ``env`` maps bound site
    names to site references."""

    what = "a Hamiltonian"
    context = "operator"

    def __init__(self, model: ModelInstance, geometry: Geometry | None = None):
        self.model = model
        self.geo = geometry or Geometry(model)
        self.n = self.geo.n_sites
        self.qubits = {n for n, f in model.fields.items() if f.domain.kind == "qubit"}
        self._depth = 0
        self._sites: _SiteWalker | None = None
        self._work = 0  # the work of the products of the operator being built so far

    def operator(self, e: E.Expr) -> PauliSum:
        """The PauliSum of an expression (numbers become multiples of the identity)."""
        self._work = 0
        return self._as_sum(self.walk(e, {})).simplify()

    def value(self, e: E.Expr, env: dict[str, SiteRef]) -> Value:
        return self.walk(e, env)

    # ---------------------------------------------------------------- helpers
    def _as_sum(self, v: Value) -> PauliSum:
        if isinstance(v, PauliSum):
            return v
        return PauliSum([PauliTerm(complex(v), ())] if v != 0 else [], self.n)

    def _product(self, a: PauliSum, b: PauliSum, span: Span) -> PauliSum:
        """a * b in canonical form, refused (P410) before it starts when multiplying it out
        would cost more than MAX_PRODUCT (:func:`product_work`), or all products of the operator
        together more than MAX_PRODUCT_WORK."""
        work = product_work(a, b)
        self._work += work
        if work > MAX_PRODUCT or self._work > MAX_PRODUCT_WORK:
            fail("P410", "this product of operators is too large to derive: multiplying it out "
                 f"costs {work} units, {len(a.terms)} x {len(b.terms)} Pauli strings (at most "
                 f"{MAX_PRODUCT} per product, {MAX_PRODUCT_WORK} per operator)", span,
                 PRODUCT_HINT)  # fmt: skip
        return self._check_size((a * b).simplify(), span)

    def _check_size(self, v: Value, span: Span) -> Value:
        if isinstance(v, PauliSum) and len(v.terms) > MAX_TERMS:
            self._too_many_strings(span)
        return v

    @staticmethod
    def _too_many_strings(span: Span) -> None:
        fail("P407", f"this operator has more than {MAX_TERMS} Pauli strings", span,
             "a product of lattice sums is an all-to-all operator; write one sum instead")

    def not_here(self, e: E.Expr, what: str = "this"):
        return PhysmlError(Diagnostic("P306", "this expression is not allowed in a Hamiltonian",
                                      e.span))  # fmt: skip

    # ---------------------------------------------------------------- values
    def constant(self, value, e: E.Expr) -> Value:
        return complex(value)

    def negate(self, a: Value, e: E.Unary) -> Value:
        return -a

    def logical_not(self, a: Value, e: E.Unary) -> Value:
        fail("P306", "'not' is not allowed in a Hamiltonian", e.span)

    def logical(self, e: E.Binary, env) -> Value:
        fail("P306", f"'{e.op}' is not allowed in a Hamiltonian", e.span)

    def compare(self, op: str, a: Value, b: Value, e: E.Binary) -> Value:
        fail("P306", f"'{op}' is not allowed in a Hamiltonian", e.span)

    def on_name(self, e: E.Name, env: dict[str, SiteRef]) -> Value:
        m = self.model
        if e.id in m.params:
            v = m.params[e.id]
            if isinstance(v, bool):
                fail("P306", f"'{e.id}' is a bool, not a number", e.span)
            return complex(v)
        if e.id == "pi":
            return complex(math.pi)
        if e.id == "I":
            return 1j
        if e.id in ("N", "sites_count"):
            return complex(self.n)
        if e.id in OPERATORS or e.id in self.qubits:
            fail("P314", f"operator '{e.id}' needs a site index", e.span,
                 f"e.g. sum({e.id}[i] for i in sites)")  # fmt: skip
        if e.id in m.arrays:
            arr = m.arrays[e.id]
            if arr.uniform:
                return complex(arr.uniform_value)
            fail("P314", f"'{e.id}' varies over {arr.on} and needs an index", e.span)
        if e.id in m.definitions:
            d = m.definitions[e.id]
            if d.indices:
                fail("P314", f"'{e.id}' needs {len(d.indices)} index(es)", e.span)
            return self._definition(d.expr, {}, e.span)
        if e.id in env:
            fail("P309", f"the site index '{e.id}' cannot be used as a number", e.span,
                 f"index an operator with it: Z[{e.id}]")  # fmt: skip
        known = set(m.params) | set(m.definitions) | set(OPERATORS) | set(m.arrays)
        fail("P200", f"unknown name '{e.id}'", e.span, did_you_mean(e.id, known))

    def _definition(self, expr: E.Expr, env: dict[str, SiteRef], span: Span) -> Value:
        self._depth += 1
        if self._depth > 50:
            fail("P418", "definitions refer to each other in a cycle", span)
        try:
            return self.walk(expr, env)
        finally:
            self._depth -= 1

    def combine(self, op: str, a: Value, b: Value, e: E.Binary) -> Value:
        if op == "+":
            if isinstance(a, PauliSum) or isinstance(b, PauliSum):
                return self._as_sum(a) + self._as_sum(b)
            return a + b
        if op == "-":
            if isinstance(a, PauliSum) or isinstance(b, PauliSum):
                return self._as_sum(a) - self._as_sum(b)
            return a - b
        if op == "*":
            if isinstance(a, PauliSum) and isinstance(b, PauliSum):
                return self._product(a, b, e.span)
            if isinstance(a, PauliSum):
                return a * b
            return b * a if isinstance(b, PauliSum) else a * b
        if op == "/":
            if isinstance(b, PauliSum):
                fail("P312", "cannot divide by an operator", e.right.span)
            if b == 0:
                fail("P417", "division by zero", e.right.span)
            return a * (1.0 / b) if isinstance(a, PauliSum) else a / b
        if op == "^":
            if isinstance(b, PauliSum):
                fail("P312", "an exponent must be a number", e.right.span)
            if isinstance(a, PauliSum):
                if b.imag != 0 or b.real != int(b.real) or not 0 <= b.real <= 16:
                    fail("P312", "an operator can be raised to a whole power 0..16 only",
                         e.right.span)  # fmt: skip
                out = self._as_sum(1.0)
                for _ in range(int(b.real)):  # repeated products (compile time)
                    out = self._product(out, a, e.span)
                return out
            try:
                return a**b
            except (OverflowError, ZeroDivisionError):
                fail("P417", "this power cannot be evaluated", e.span)
        fail("P306", f"'{op}' is not allowed in a Hamiltonian", e.span)

    def on_call(self, e: E.Call, env) -> Value:
        if e.func in self.model.definitions:
            fail("P302", f"'{e.func}' is indexed with brackets: {e.func}[...]", e.func_span)
        return super().on_call(e, env)

    def function(self, e: E.Call):
        if e.func == "dagger":
            if len(e.args) != 1:
                fail("P316", "dagger takes one operator", e.span)
            return FUNCTIONS["dagger"]
        fn = FUNCTIONS.get(e.func)
        if fn is None or fn.value is None or "operator" not in fn.contexts:
            fail("P803", f"'{e.func}' is not supported in a Hamiltonian", e.func_span)
        return super().function(e)

    def apply(self, fn: Function, args: list[Value], e: E.Call) -> Value:
        if fn.name == "dagger":
            a = args[0]
            return self._as_sum(a).adjoint() if isinstance(a, PauliSum) else a.conjugate()
        if isinstance(args[0], PauliSum):
            fail("P306", f"{fn.name} of an operator is not supported", e.args[0].span,
                 "functions apply to numbers; operators combine with + - * and ^")  # fmt: skip
        try:
            return complex(fn.value(*args))
        except (ValueError, TypeError, OverflowError, ZeroDivisionError):
            fail("P417", f"{fn.name} is undefined here", e.span)

    # ---------------------------------------------------------------- sites
    def site(self, e: E.Expr, env) -> SiteRef:
        """A site reference: a bound name, name +- unit vector (or integer on a chain), literal."""
        if self._sites is None:
            self._sites = _SiteWalker(self)
        return self._sites.walk(e, env)

    def _flat(self, k: int, span: Span) -> int:
        if not 0 <= k < self.n:
            fail("P405", f"site {k} is outside the lattice of {self.n} sites", span)
        return k

    def on_index(self, e: E.Index, env) -> Value:
        name = name_of(e.base)
        if name is None:
            fail("P311", "only operators, fields, arrays and definitions can be indexed", e.span)
        m = self.model
        if name in OPERATORS or name in self.qubits:
            op, factor = OPERATORS.get(name, ("Z", 1.0))
            ref = self._single_site(e, name, env)
            site = self.geo.resolve(ref, e.span)
            if site is None:  # beyond an open boundary: the term does not exist
                return self._as_sum(0.0)
            return PauliSum([PauliTerm(factor, ((op, site),))], self.n)
        if name in m.fields:
            fail("P306", f"field '{name}' is not a qubit: it cannot appear in a Hamiltonian",
                 e.span)  # fmt: skip
        if name in m.arrays:
            return self._array(e, name, env)
        if name in m.definitions:
            d = m.definitions[name]
            if len(d.indices) != len(e.indices):
                fail("P302", f"'{name}' takes {len(d.indices)} index(es), got {len(e.indices)}",
                     e.span)  # fmt: skip
            inner: dict[str, SiteRef] = {}
            for formal, actual in zip(d.indices, e.indices):
                ref = self.site(actual, env)
                site = self.geo.resolve(ref, actual.span)
                if site is None:
                    return self._as_sum(0.0)
                inner[formal] = self.geo.ref(site)
            return self._definition(d.expr, inner, e.span)
        if name in m.params:
            fail("P202", f"'{name}' is a scalar parameter and cannot be indexed", e.span)
        fail("P200", f"unknown name '{name}'", e.base.span,
             did_you_mean(name, set(OPERATORS) | set(m.definitions) | set(m.arrays)))  # fmt: skip

    def _single_site(self, e: E.Index, name: str, env) -> SiteRef:
        geo = self.geo
        d = 1 if geo.lattice.graph else geo.lattice.dim
        if len(e.indices) == 1:
            return self.site(e.indices[0], env)
        coords = [int_literal(x) for x in e.indices]
        nb = geo.lattice.basis
        if len(e.indices) == d + (nb > 1) and None not in coords:  # cell coordinates, sublattice
            ref = SiteRef(tuple(coords[:d]), coords[d] if nb > 1 else 0)
            if any(not 0 <= c < n for c, n in zip(coords, geo.lattice.shape)):
                fail("P405", "coordinates outside the lattice", e.span)
            return ref
        fail("P302", f"'{name}' takes one site index", e.span, "e.g. Z[i], Z[i + e0], Z[0]")

    def _array(self, e: E.Index, name: str, env) -> complex:
        arr = self.model.arrays[name]
        sites = []
        for x in e.indices:
            site = self.geo.resolve(self.site(x, env), x.span)
            if site is None:
                return 0j
            sites.append(site)
        if arr.on == "sites":
            if len(sites) != 1:
                fail("P323", f"'{arr.name}' lives on sites: one index", e.span)
            return complex(arr.values.reshape(-1)[sites[0]])
        if len(sites) != 2:
            fail("P323", f"'{arr.name}' lives on {arr.on}: two indices [i, j]", e.span)
        i, j = sites
        if arr.on == "pairs":
            return complex(arr.values[i, j])
        shell = 2 if arr.on == "bonds2" else 1
        base, direction = self.geo.bond_of(i, j, shell, e.span)
        flat = arr.values.reshape(self.n, -1)
        return complex(flat[base, direction])

    # ---------------------------------------------------------------- sums
    def on_reduce(self, e: E.Reduce, env) -> Value:
        if e.func not in ("sum", "prod"):
            fail("P200", f"unknown reduction '{e.func}'", e.func_span, "use sum(...) or prod(...)")
        bindings: list[dict[str, SiteRef]] = [dict(env)]
        domains = [self._domain(loop) for loop in e.loops]
        if math.prod(len(items) for items in domains) > MAX_TERMS:  # before writing them out
            self._too_many_strings(e.span)
        for loop, items in zip(e.loops, domains):
            new = []
            for b in bindings:
                for values in items:
                    nb = dict(b)
                    nb.update(zip(loop.names, values))
                    new.append(nb)
            bindings = new
        if e.func == "sum":
            terms: list[PauliTerm] = []
            scalar = 0j
            for b in bindings:  # compile time: one body per site or bond
                v = self.walk(e.body, b)
                if isinstance(v, PauliSum):
                    terms += v.terms
                    self._check_size(PauliSum([], self.n) if len(terms) <= MAX_TERMS
                                     else PauliSum(terms, self.n), e.span)  # fmt: skip
                else:
                    scalar += v
            if not terms:
                return scalar
            out = PauliSum(terms, self.n).simplify()
            return out + self._as_sum(scalar) if scalar != 0 else out
        acc: Value = 1.0 + 0j
        for b in bindings:
            v = self.walk(e.body, b)
            if isinstance(acc, PauliSum) or isinstance(v, PauliSum):
                acc = self._product(self._as_sum(acc), self._as_sum(v), e.span)
            else:
                acc = acc * v
        return acc

    def _domain(self, loop: E.Loop) -> Collection[tuple[SiteRef, ...]]:
        d = loop.domain
        geo = self.geo
        if d is None:
            fail("P411", f"say what '{', '.join(loop.names)}' runs over", loop.span,
                 "e.g. for i in sites, for (i, j) in bonds")  # fmt: skip
        structure, shell = name_of(d), 1
        call = as_call(d)
        if call is not None and call.func == "bonds" and len(call.args) == 1 and not call.kwargs:
            structure = "bonds"
            sh = int_literal(call.args[0])
            if sh is None or sh < 1:
                fail("P304", "bonds(k) takes a shell number 1 or 2", call.args[0].span)
            shell = sh
        if structure == "sites":
            if len(loop.names) != 1:
                fail("P315", "a sum over sites binds one index: for i in sites", loop.span)
            return [(geo.ref(i),) for i in range(geo.n_sites)]
        if structure in ("bonds", "pairs"):
            if len(loop.names) != 2:
                fail("P315", f"a sum over {structure} binds two indices: for (i, j) in {structure}",
                     loop.span)  # fmt: skip
            if structure == "pairs":
                return _Pairs(geo)
            return [(geo.ref(i), geo.ref(j)) for i, j, _ in geo.bonds(shell, d.span)]
        fail("P209", "a quantum sum runs over sites, bonds, bonds(2) or pairs", d.span)


class _Pairs:
    """The pairs (i, j), i < j, of the sites, written out as they are iterated: their number
    is known at once, so a sum over too many is refused before any is built."""

    def __init__(self, geo: Geometry):
        self.geo = geo

    def __len__(self) -> int:
        n = self.geo.n_sites
        return n * (n - 1) // 2

    def __iter__(self) -> Iterator[tuple[SiteRef, SiteRef]]:
        n, ref = self.geo.n_sites, self.geo.ref
        for i in range(n):
            a = ref(i)
            for j in range(i + 1, n):
                yield a, ref(j)


class _SiteWalker(Walker[SiteRef]):
    """Site references: a bound name, an integer parameter or literal (flat index), and sums
    and differences of those with unit vectors (i + e0)."""

    def __init__(self, builder: PauliBuilder):
        self.b = builder
        geo = builder.geo
        self.d = 1 if geo.lattice.graph else geo.lattice.dim
        self.shifts = _ShiftWalker(self.d)

    def not_here(self, e: E.Expr, what: str = "this"):
        return PhysmlError(Diagnostic("P310", "a site index is a bound name, a name plus a unit "
                                      "vector (i + e0) or an integer", e.span))  # fmt: skip

    def on_name(self, e: E.Name, env) -> SiteRef:
        b = self.b
        if e.id in env:
            return env[e.id]
        p = b.model.params.get(e.id)
        if isinstance(p, int) and not isinstance(p, bool):
            return b.geo.ref(b._flat(p, e.span))
        fail("P200", f"'{e.id}' is not a site index here", e.span,
             "bind it in a sum: for i in sites, for (i, j) in bonds")  # fmt: skip

    def on_number(self, e: E.Num, env) -> SiteRef:
        if not isinstance(e.value, int):
            raise self.not_here(e)
        return self.b.geo.ref(self.b._flat(e.value, e.span))

    def on_binary(self, e: E.Binary, env) -> SiteRef:
        if e.op not in ("+", "-"):
            raise self.not_here(e)
        base = self.walk(e.left, env)
        shift = self.shifts.walk(e.right)
        sign = 1 if e.op == "+" else -1
        return SiteRef(tuple(c + sign * s for c, s in zip(base.coords, shift)), base.basis)


class _ShiftWalker(Walker[tuple[int, ...]]):
    """A shift: a unit vector e0, e1, ..., an integer multiple of one, or an integer on a chain."""

    def __init__(self, d: int):
        self.d = d

    def not_here(self, e: E.Expr, what: str = "this"):
        return PhysmlError(Diagnostic("P310", "a site shift is a unit vector e0, e1, ... (or an "
                                      "integer on a chain)", e.span))  # fmt: skip

    def on_name(self, e: E.Name, env) -> tuple[int, ...]:
        if e.id[:1] == "e" and e.id[1:].isdigit():
            axis = int(e.id[1:])
            if axis >= self.d:
                fail("P408", f"'{e.id}' points along axis {axis}, but the lattice has {self.d}",
                     e.span)  # fmt: skip
            return tuple(int(a == axis) for a in range(self.d))
        raise self.not_here(e)

    def on_number(self, e: E.Num, env) -> tuple[int, ...]:
        if isinstance(e.value, int) and self.d == 1:
            return (e.value,)
        raise self.not_here(e)

    def on_binary(self, e: E.Binary, env) -> tuple[int, ...]:
        k = int_literal(e.left)
        if e.op != "*" or k is None:
            raise self.not_here(e)
        return tuple(k * x for x in self.walk(e.right, env))


# ---------------------------------------------------------------- symmetries


def permute(h: PauliSum, perm: np.ndarray) -> PauliSum:
    """The operator with site x moved to perm[x] (canonical form)."""
    return PauliSum(
        [PauliTerm(t.coefficient, tuple((op, int(perm[s])) for op, s in t.ops)) for t in h.terms],
        h.n_sites,
    ).simplify()


def spin_flip(h: PauliSum) -> PauliSum:
    """P H P with P = prod_i X_i: Y -> -Y, Z -> -Z."""
    return PauliSum(
        [
            PauliTerm(t.coefficient * (-1) ** sum(op in ("Y", "Z") for op, _ in t.ops), t.ops)
            for t in h.terms
        ],
        h.n_sites,
    ).simplify()


def difference(a: PauliSum, b: PauliSum, tol: float = 1e-10) -> PauliSum:
    return (a - b).simplify(tol)


def describe_term(t: PauliTerm) -> str:
    c = complex(t.coefficient)
    coef = f"{c.real:g}" if abs(c.imag) < 1e-14 else f"({c.real:g}{c.imag:+g}i)"
    return f"{coef} " + " ".join(f"{op}{s}" for op, s in t.ops) if t.ops else coef


def _readable_number(x: float) -> sp.Expr:
    """An exact small rational for decimal-looking floats (0.7 -> 7/10), else a Float."""
    r = sp.Rational(repr(float(x)))
    return r if r.q <= 1000 else sp.Float(x)


# ---------------------------------------------------------------- the derivation


@dataclass
class QuantumDerivation:
    """A derived qubit model: ``hamiltonian`` H as a canonical Pauli sum over N sites, the
    declared symmetries verified against H (exact Pauli algebra), the conserved quantities Q
    with [H, Q] = 0 verified, and whether one of them is sum(Z) (magnetisation sectors)."""

    model: ModelInstance
    hamiltonian: PauliSum
    geometry: Geometry
    symmetries: list[str] = field(default_factory=list)  # verified and active
    conserved: list[tuple[str, PauliSum]] = field(default_factory=list)
    conserves_magnetization: bool = False

    @property
    def ir(self):
        return self.model.ir

    @property
    def lattice(self) -> Lattice:
        return self.geometry.lattice

    @property
    def n_sites(self) -> int:
        return self.geometry.n_sites

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.lattice.shape)

    # -------------------------------------------------------------- lattice facts
    def translations(self) -> np.ndarray | None:
        """(G, N) int: translations by whole cells (T s)_i = s[T[g, i]], or None without a
        periodic lattice."""
        lat = self.lattice
        if lat.graph or not lat.all_periodic:
            return None
        return lat.translations()

    def a_sublattice(self) -> np.ndarray | None:
        """(N,) bool: the A sublattice of a bipartite lattice or graph (the geometry's
        2-colouring of the nearest-neighbour bonds; on hypercubic lattices the sites of even
        coordinate sum), else None."""
        return self.lattice.bipartition()

    def operator(self, name: str) -> PauliSum:
        """A declared definition (observable, let) as a PauliSum."""
        d = self.model.definitions[name]
        return PauliBuilder(self.model, self.geometry).operator(d.expr)

    def observables(self) -> list[str]:
        """Definitions other than the Hamiltonian that are operators without indices."""
        return [
            d.name
            for d in self.model.definitions.values()
            if d.kind in ("observable", "let") and not d.indices
        ]

    # -------------------------------------------------------------- display
    def describe(self) -> str:
        """One line for ``physml check``: sites, Pauli strings, connected configurations per
        state (off-diagonal flip patterns), verified symmetries and conserved quantities."""
        h = self.hamiltonian
        lat = self.lattice
        if lat.complete:
            where = "complete graph"
        elif lat.edge_list is not None:
            where = f"graph of {len(lat.edge_list)} edges"
        else:
            cells = f"{lat.kind} {'x'.join(map(str, lat.cells))}"
            cells += f" cells of {lat.basis} sites" if lat.basis > 1 else ""
            where = f"{cells}, " + ("periodic" if lat.all_periodic else "open")
        groups = len({tuple(s for op, s in t.ops if op in ("X", "Y")) for t in h.terms})
        parts = [f"quantum, {self.n_sites} qubits ({where}), {len(h.terms)} Pauli strings, "
                 f"{groups - 1 if groups else 0} connected configurations per state"]  # fmt: skip
        if self.symmetries:
            parts.append("symmetries " + ", ".join(self.symmetries) + " verified")
        for text, _ in self.conserved:
            parts.append(f"conserves {text}")
        return "; ".join(parts)

    def flip_patterns(self) -> list[tuple[tuple[int, ...], sp.Expr]]:
        """Derived connected configurations: per flip pattern F (s' = s with the sites F
        flipped; () the diagonal) the matrix element <s|H|s'> as a polynomial in the Z-basis
        values s_k = +-1 (sympy symbols s0..s{N-1}). For c X/Y/Z string:
        <s|P|s'> = c (-i)^#Y prod_{k in Y or Z} s_k. Sorted by (|F|, F)."""
        s = sp.symbols(f"s0:{self.n_sites}", real=True)
        groups: dict[tuple[int, ...], list[sp.Expr]] = {(): []}
        for t in self.hamiltonian.terms:
            flips = tuple(site for op, site in t.ops if op in ("X", "Y"))
            n_y = sum(1 for op, _ in t.ops if op == "Y")
            c = complex(t.coefficient) * (-1j) ** n_y
            coef = _readable_number(c.real) + (
                sp.I * _readable_number(c.imag) if abs(c.imag) >= 1e-14 else 0
            )
            term = coef * sp.Mul(*[s[site] for op, site in t.ops if op in ("Y", "Z")])
            groups.setdefault(flips, []).append(term)
        # one Add per pattern (adding term by term is quadratic in a pattern's terms)
        out = [(flips, sp.Add(*terms)) for flips, terms in groups.items()]
        return sorted(out, key=lambda x: (len(x[0]), x[0]))

    def emit_sympy(self, max_terms: int = 60) -> str:
        """The Pauli strings and, per flip pattern, the matrix element <s|H|s'> in sympy."""
        h = self.hamiltonian
        n = self.n_sites
        lines = [f"# model {self.ir.name}: {self.describe()}",
                 f"# H = sum of {len(h.terms)} Pauli strings (canonical: X/Y/Z on distinct sites)"]  # fmt: skip
        for t in h.terms[:max_terms]:
            lines.append("  " + describe_term(t))
        if len(h.terms) > max_terms:
            lines.append(f"  ... ({len(h.terms) - max_terms} more)")
        s = sp.symbols(f"s0:{n}", real=True)
        groups: dict[tuple[int, ...], list[sp.Expr]] = {}
        for t in h.terms:
            flips = tuple(site for op, site in t.ops if op in ("X", "Y"))
            n_y = sum(1 for op, _ in t.ops if op == "Y")
            c = complex(t.coefficient) * (-1j) ** n_y
            coef = (
                sp.Float(c.real)
                if abs(c.imag) < 1e-14
                else sp.Float(c.real) + sp.I * sp.Float(c.imag)
            )
            term = coef * sp.Mul(*[s[site] for op, site in t.ops if op in ("Y", "Z")])
            groups.setdefault(flips, []).append(term)
        lines.append(f"# <s|H|s'> for s' = s with the listed sites flipped ({len(groups)} "
                     "patterns, s_k = +-1 the Z-basis values)")  # fmt: skip
        for k, (flips, terms) in enumerate(sorted(groups.items(),
                                                  key=lambda x: (len(x[0]), x[0]))):  # fmt: skip
            if k >= max_terms:
                lines.append(f"  ... ({len(groups) - max_terms} more patterns)")
                break
            what = "diagonal" if not flips else "flip " + ",".join(map(str, flips))
            shown = sp.Add(*terms[:max_terms])  # display: simplified when that is cheap
            more = f" + ... ({len(terms) - max_terms} more terms)" if len(terms) > max_terms else ""
            lines.append(f"  {what}: {simplify_small(shown, 4 * SIMPLIFY_MAX_OPS)}{more}")
        for text, q in self.conserved:
            lines.append(f"# conserved: {text} = " + " + ".join(describe_term(t) for t in q.terms[:8])
                         + (" ..." if len(q.terms) > 8 else ""))  # fmt: skip
        return "\n".join(lines)


def _point_group_generators(geo: Geometry, span: Span) -> list[np.ndarray]:
    lat = geo.lattice
    gens = lat.point_group_generators()
    if gens is None:
        fail("P501", "point-group symmetry is checked on periodic chains and 2D lattices whose "
             f"periodic boundary the rotations keep, not {lat.kind} "
             f"{'x'.join(map(str, lat.cells))}", span)  # fmt: skip
    return gens


def verify_symmetry(name: str, h: PauliSum, geo: Geometry, span: Span) -> None:
    """Raise a located P500 when H does not have the symmetry (exact Pauli algebra)."""
    lat = geo.lattice
    if name not in QUANTUM_SYMMETRIES:
        fail("P501", f"symmetry '{name}' does not apply to qubit models", span,
             "qubit models check: " + ", ".join(QUANTUM_SYMMETRIES))  # fmt: skip
    if name == "spin_flip":
        images = [spin_flip(h)]
    else:
        if lat.graph or not lat.all_periodic:
            fail("P500", f"{name} symmetry needs a periodic lattice", span,
                 "declare the lattice with boundary = periodic")  # fmt: skip
        gens = (
            lat.translation_generators() if name == "translation"
            else _point_group_generators(geo, span)
        )  # fmt: skip
        images = [permute(h, p) for p in gens]
    for image in images:
        diff = difference(image, h)
        if diff.terms:
            worst = max(diff.terms, key=lambda t: abs(t.coefficient))
            fail("P500", f"the Hamiltonian does not have {name} symmetry", span,
                 f"e.g. the Pauli string {describe_term(worst)} changes under it")  # fmt: skip


# ---------------------------------------------------------------- derive


def derive_quantum(m: ModelInstance) -> QuantumDerivation:
    """Derive a qubit model: H as a Hermitian, nonzero Pauli sum over at most 4096 qubits, every
    active symmetry verified, every conserved Q verified by [H, Q] = 0 (all failures are located
    diagnostics)."""
    for f in m.fields.values():
        if f.domain.kind != "qubit":
            fail("P804", f"a quantum model's fields are qubits; '{f.name}' is {f.domain}", f.span)
        if f.on != "sites":
            fail("P415", f"qubit field '{f.name}' lives on sites, not {f.on}", f.span)
    hams = [d for d in m.definitions.values() if d.kind == "hamiltonian"]
    if len(hams) > 1:
        fail("P201", "a quantum model has one hamiltonian", hams[1].span)
    hdef = hams[0]
    if hdef.indices:
        fail("P311", "the hamiltonian is a sum over the lattice, not indexed", hdef.span)
    geo = Geometry(m)
    if geo.n_sites > 4096:
        fail("P407", f"{geo.n_sites} qubits is more than the quantum runtime handles (4096)",
             m.lattice and hdef.span)  # fmt: skip
    builder = PauliBuilder(m, geo)
    h = builder.operator(hdef.expr)
    if not h.is_hermitian():
        bad = next(t for t in h.terms if abs(complex(t.coefficient).imag) > 1e-10)
        fail("P312", "the hamiltonian is not Hermitian", hdef.span,
             f"the Pauli string {describe_term(bad)} has a complex coefficient; add the Hermitian "
             "conjugate (e.g. Sp[i] * Sm[j] + Sm[i] * Sp[j])")  # fmt: skip
    if not h.terms:
        fail("P419", "the hamiltonian is zero", hdef.span)
    derivation = QuantumDerivation(m, h, geo)
    for sym in m.symmetries:
        if not sym.active:
            continue
        verify_symmetry(sym.name, h, geo, sym.span)
        if sym.name not in derivation.symmetries:
            derivation.symmetries.append(sym.name)
    for c in m.ir.conserved:
        q = builder.operator(c.expr)
        text = _text(c.expr)
        if not q.terms:
            fail("P419", "the conserved quantity is zero", c.expr.span)
        work = 2 * product_work(h, q)  # [H, Q] = HQ - QH, multiplied out
        if work > MAX_PRODUCT_WORK:
            fail("P410", f"checking that {text} is conserved is too large to derive: [H, Q] "
                 f"costs {work} units (at most {MAX_PRODUCT_WORK})", c.expr.span,
                 "conserve a quantity with fewer terms (e.g. sum(Z[i] for i in sites)), or "
                 "declare the symmetry instead")  # fmt: skip
        if not h.commutes_with(q):
            comm = h.commutator(q)
            worst = max(comm.terms, key=lambda t: abs(t.coefficient))
            fail("P500", f"the Hamiltonian does not conserve {text}", c.expr.span,
                 f"[H, Q] contains {describe_term(worst)}")  # fmt: skip
        derivation.conserved.append((text, q))
        if _proportional_to_total_z(q):
            derivation.conserves_magnetization = True
    return derivation


def _proportional_to_total_z(q: PauliSum) -> bool:
    z = total_z(q.n_sites).simplify()
    terms = [t for t in q.simplify().terms if t.ops]  # a constant shift does not matter
    if len(terms) != len(z.terms):
        return False
    c0 = terms[0].coefficient
    return all(t.ops == u.ops and abs(t.coefficient - c0) < 1e-12 for t, u in zip(terms, z.terms))


def _text(e: E.Expr) -> str:
    """The source text of an expression (for messages only; never evaluated)."""
    span = e.span
    try:
        lines = span.source.text.splitlines()
        if span.line == span.end_line:
            return lines[span.line - 1][span.column - 1 : span.end_column - 1]
    except (AttributeError, IndexError):
        pass
    return to_text(e)


__all__ = ["Geometry", "OPERATORS", "PauliBuilder", "QUANTUM_SYMMETRIES", "QuantumDerivation",
           "SiteRef", "derive_quantum", "describe_term", "verify_symmetry"]  # fmt: skip
