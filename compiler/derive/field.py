"""A continuous lattice field derived, without torch: the action's site and bond densities and
dS/dx in sympy, with its declared symmetries verified.

A model with ``field phi: real on sites`` (phi^4) or ``field theta: angle on sites`` (XY) and an
``action`` (or ``energy``/``hamiltonian``) that is a linear combination of
``sum(f(phi[i]) for i in sites)`` and ``sum(g(phi[i], phi[j]) for (i, j) in bonds(k))``.
:func:`derive_field` derives the densities f(a), g_k(a, b) and their derivatives f'(a),
dg/da, dg/db, so that on a lattice

    dS/dx[s] = f'(x[s]) + sum_k sum_{e in shell k} [dg_k/da(x[s], x[s + e]) + dg_k/db(x[s - e], x[s])],

and splits bond gradients linear in the neighbour (phi^4 hopping). What ``physml check``
reports, and what the compiled :class:`~physml_lang.compiler.models.field.FieldModel` lowers to
roll stencils over fields of shape (C, *lattice.shape).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

import sympy

from physml_lang.catalogue.lattices import LATTICES
from physml_lang.check.constants import evaluate
from physml_lang.compiler import limits
from physml_lang.compiler.derive.common import allowed_symmetries
from physml_lang.compiler.derive.measures import MeasuredExpressions
from physml_lang.compiler.geometry import Lattice
from physml_lang.compiler.instance import ModelInstance
from physml_lang.compiler.lower.sympy import SympyBuilder
from physml_lang.compiler.lower.terms import LatticeSum, TermBuilder
from physml_lang.diagnostics import Span
from physml_lang.ir import expr as E
from physml_lang.ir.model import DefinitionIR, FieldIR, ModelIR
from physml_lang.ir.walk import as_binary, as_call, as_reduce, as_unary, children, fail, name_of


class FieldBuilder(SympyBuilder):
    """phi[i] -> a, phi[j] -> b inside ``sum(... for i in sites)`` / ``for (i, j) in bonds``."""

    def __init__(self, model: ModelInstance, field: str):
        super().__init__(model)
        self.field = field
        self.a = sympy.Symbol(f"{field}_i", real=True)
        self.b = sympy.Symbol(f"{field}_j", real=True)
        self.slots: dict[str, sympy.Symbol] = {}

    def variable(self, e: E.Name, env: dict[str, Any]) -> sympy.Expr | None:
        if e.id == self.field:
            fail("P314", f"'{e.id}' is a field: index it by a site, {e.id}[i]", e.span)
        if e.id in ("sites", "sites_count", "N"):
            return sympy.Integer(self.model.lattice.n_sites)
        return None

    def indexed(self, e: E.Index, env: dict[str, Any]) -> sympy.Expr | None:
        base = name_of(e.base)
        if base != self.field:
            return None
        slot = name_of(e.indices[0]) if len(e.indices) == 1 else None
        if slot is None or slot not in self.slots:
            fail("P310", f"index '{base}' by the site names of the enclosing sum: "
                 f"{base}[i] for i in sites, {base}[i] * {base}[j] for (i, j) "
                 "in bonds", e.span)  # fmt: skip
        return self.slots[slot]


@dataclass
class _Term:
    kind: str  # "site" or "bond"
    shell: int
    expr: sympy.Expr  # density in a (site) or a, b (bond), coefficient included
    span: Span


@dataclass
class FieldDerivation:
    """The action of a continuous field as densities, with their derivatives.

    ``site``: f(a); ``bonds``: neighbour shell -> g(a, b); ``derived``: ``"site"`` -> [f, df/da],
    ``"bond{k}"`` -> [g_k, dg_k/da, dg_k/db] (simplified when small); ``linear``: shell ->
    (alpha, beta) for the shells with dg/da = alpha b + A(a), dg/db = beta a + B(b) on a periodic
    lattice, whose A + B is folded into ``force_local`` (f' + n_e (A + B)); alpha and beta are
    numbers, or expressions of the ``numeric`` parameters (kept as symbols, see
    ``FieldModel``); ``params``: parameter symbol -> value."""

    model: ModelInstance
    fieldir: FieldIR
    definition: DefinitionIR
    builder: FieldBuilder
    terms: list[_Term]
    site: sympy.Expr
    bonds: dict[int, sympy.Expr]
    derived: dict[str, list[sympy.Expr]]
    linear: dict[int, tuple[sympy.Expr, sympy.Expr]]
    force_local: sympy.Expr
    params: dict[sympy.Symbol, float]
    _twist: dict[int, list[sympy.Expr]] | None = field(default=None, repr=False)

    @property
    def ir(self) -> ModelIR:
        return self.model.ir

    @property
    def lattice(self) -> Lattice:
        return self.model.lattice

    @property
    def field(self) -> str:
        return self.fieldir.name

    @property
    def domain(self) -> str:
        """``real`` or ``angle``."""
        return self.fieldir.domain.kind

    @property
    def shape(self) -> tuple[int, ...]:
        """The lattice shape: fields are (C, *shape)."""
        return tuple(self.lattice.shape)

    def describe(self) -> str:
        """One line for ``physml check``."""
        shells = ", ".join(f"bonds{'' if s == 1 else f'({s})'}" for s in self.bonds)
        return (f"continuous field {self.field}: {self.domain} on {self.lattice.kind}"
                f"{list(self.shape)}; action = sites{' + ' + shells if shells else ''}; "
                "samplers hmc, mala, ula (derived dS/dx)")  # fmt: skip

    def lattice_sum(self, expr: E.Expr, name: str) -> LatticeSum:
        """An extensive sum over the lattice of the field (a measured observable), derived
        into lattice terms: ``sum(cos(theta[i] - theta[i + e0]) for i in sites)``."""
        return TermBuilder(self.model).lattice_sum(expr)

    def twist(self, span: Span | None = None) -> dict[int, list[sympy.Expr]]:
        """Bond shell -> [dg/db, d2g/db2]: how each bond term changes when the angle at its far
        end is twisted, theta_{x+e} -> theta_{x+e} + psi (per lattice spacing: a bond along e
        turns by psi e_mu along axis mu). The helicity modulus is built from their lattice sums;
        it needs an angle field, an action invariant under theta -> theta + c (bond terms of
        theta_i - theta_j only, no site term that depends on the angle) and a periodic
        hypercubic lattice. Located P414 otherwise (at ``span``: where it is measured)."""
        if self._twist is not None:
            return self._twist
        where = "the helicity modulus"
        if self.domain != "angle":
            fail("P414", f"{where} is defined for angle fields; '{self.field}' is "
                 f"{self.domain}", span, "declare 'field theta: angle on sites'")  # fmt: skip
        lat = self.lattice
        spec = LATTICES.get(lat.kind)
        unit = tuple(tuple(1.0 if i == j else 0.0 for j in range(lat.dim)) for i in range(lat.dim))
        if spec is None or tuple(spec.vectors) != unit or not lat.all_periodic:
            fail("P414", f"{where} is measured on periodic chain, square, cubic or hypercubic "
                 f"lattices; this is a {'periodic' if lat.all_periodic else 'open'} "
                 f"{lat.kind} lattice", span)  # fmt: skip
        b = self.builder.b
        bind = {k: sympy.Float(v, 17) for k, v in self.params.items()}  # at these parameters
        if not limits.is_zero(self.derived["site"][1].xreplace(bind)):
            fail("P414", f"{where} needs an action invariant under {self.field} -> "
                 f"{self.field} + c; its site term {self.site} is not", span,
                 "an external field (h cos theta) breaks the rotation symmetry")  # fmt: skip
        if not self.bonds:
            fail("P414", f"{where} needs bond terms in the action; it has none", span)
        out: dict[int, list[sympy.Expr]] = {}
        for shell, g in self.bonds.items():
            ga, gb = self.derived[f"bond{shell}"][1:]
            if not limits.is_zero((ga + gb).xreplace(bind)):
                fail("P414", f"{where} needs bond terms of {self.field}_i - {self.field}_j only; "
                     f"{g} is not", span)  # fmt: skip
            gbb = sympy.diff(gb, b)
            out[shell] = [gb, limits.simplify_small(gbb, 39)]
        self._twist = out
        return out

    def emit_sympy(self) -> str:
        """The densities and their derivatives, and dS/dx assembled from them."""
        a, b = self.builder.a, self.builder.b
        lines = [f"# model {self.ir.name}: S = sum_i f({a}) + sum_<ij> g({a}, {b})",
                 f"f = {self.derived['site'][0]}", f"df/d{a} = {self.derived['site'][1]}"]  # fmt: skip
        for shell in self.bonds:
            g = self.derived[f"bond{shell}"]
            lines += [f"g (shell {shell}) = {g[0]}", f"dg/d{a} = {g[1]}", f"dg/d{b} = {g[2]}"]
        lines.append(f"dS/d{self.field}[x] = df/d{a}(x) + sum_e [dg/d{a}(x, x+e) + "
                     f"dg/d{b}(x-e, x)]")  # fmt: skip
        return "\n".join(lines)


class _Collector:
    """S as a sum of coef * sum(body for ... in sites | bonds): the terms, in source order."""

    def __init__(self, model: ModelInstance, field: str, builder: FieldBuilder):
        self.model, self.field, self.builder = model, field, builder
        self.terms: list[_Term] = []

    def collect(self, e: E.Expr, coef: sympy.Expr) -> None:
        b = self.builder
        binary, unary, red, n = as_binary(e), as_unary(e), as_reduce(e), name_of(e)
        if binary is not None and binary[0] in ("+", "-"):
            op, left, right = binary
            self.collect(left, coef)
            self.collect(right, coef if op == "+" else -coef)
        elif unary is not None and unary[0] == "-":
            self.collect(unary[1], -coef)
        elif binary is not None and binary[0] in ("*", "/"):
            op, le, ri = binary
            left, right = self.has_field(le), self.has_field(ri)
            if left and right:
                fail("P802", "an action is a sum of local terms: a product of two sums is not",
                     e.span)  # fmt: skip
            if op == "/" and right:
                fail("P802", "the field cannot appear in a denominator outside a sum", e.span)
            if left:
                k = b.build(ri, {})
                self.collect(le, coef * k if op == "*" else coef / k)
            elif right:
                self.collect(ri, coef * b.build(le, {}))
        elif n is not None and n in self.model.definitions and self.has_field(e):
            self.collect(self.model.definitions[n].expr, coef)
        elif red is not None and red.func == "sum":
            self.sum(red, coef)
        elif self.has_field(e):
            fail("P802", "the field must appear inside sum(... for i in sites) or "
                 "sum(... for (i, j) in bonds)", e.span)  # fmt: skip
        # else: a constant, irrelevant for sampling

    def sum(self, e: E.Reduce, coef: sympy.Expr) -> None:
        if len(e.loops) != 1:
            fail("P802", "one loop per sum over the lattice", e.span)
        loop = e.loops[0]
        d = loop.domain
        shell = 1
        dname = name_of(d)
        call = as_call(d)
        if call is not None and call.func == "bonds" and len(call.args) == 1:
            shell = int(evaluate(call.args[0], self.model.params, "the shell"))
            dname = "bonds"
        if dname not in ("sites", "bonds"):
            fail("P802", "continuous-field actions sum over sites or bonds",
                 d.span if d is not None else loop.span)  # fmt: skip
        kind = "site" if dname == "sites" else "bond"
        need = 1 if kind == "site" else 2
        if len(loop.names) != need:
            fail("P315", f"a sum over {dname} binds {need} name(s)", loop.span)
        self.builder.slots = dict(zip(loop.names, (self.builder.a, self.builder.b)))
        try:
            body = self.builder.build(e.body, {})
        finally:
            self.builder.slots = {}
        self.terms.append(_Term(kind, shell, coef * body, e.span))

    def has_field(self, e: E.Expr) -> bool:
        """Does ``e`` use the field (directly, through a definition, or a definition call)?"""
        stack = [e]
        while stack:
            x = stack.pop()
            n = name_of(x)
            if n is not None:
                if n == self.field:
                    return True
                d = self.model.definitions.get(n)
                if d is not None and self.has_field(d.expr):
                    return True
            call = as_call(x)
            if call is not None and call.func in self.model.definitions:
                return True
            stack.extend(children(x))
        return False


def linear_bond(es: list[sympy.Expr], a: sympy.Symbol, b: sympy.Symbol,
                params: dict[sympy.Symbol, float],
                keep: frozenset[sympy.Symbol] = frozenset()) -> tuple | None:  # fmt: skip
    """(alpha, beta, A(a), B(b)) when dg/da = alpha b + A(a) and dg/db = beta a + B(b): alpha
    and beta numbers, or expressions of the parameters in ``keep`` (left unbound)."""
    bind = {s: sympy.Float(v, 17) for s, v in params.items() if s not in keep}
    da, db = (e.xreplace(bind) for e in es[1:])
    # not linear in the neighbour (seen before expanding), or too large to expand: the
    # general stencil, which is correct for any bond term
    if (sympy.diff(da, b).free_symbols | sympy.diff(db, a).free_symbols) & {a, b}:
        return None
    if not (limits.expandable(da) and limits.expandable(db)):
        return None
    ga, gb = sympy.expand(da), sympy.expand(db)
    alpha, beta = sympy.diff(ga, b), sympy.diff(gb, a)
    if not (alpha.free_symbols | beta.free_symbols) <= keep:
        return None
    A, B = sympy.expand(ga - alpha * b), sympy.expand(gb - beta * a)
    if b in A.free_symbols or a in B.free_symbols:
        return None
    return alpha, beta, A, B


def derive_field(model: ModelInstance, numeric: frozenset[str] = frozenset()) -> FieldDerivation:
    """The action's densities and dS/dx of a continuous field on a regular lattice, its declared
    symmetries verified (spin_flip: S(-x) = S(x) density by density; translation: a periodic
    lattice). Located diagnostics for an action that is not a sum of site and bond terms.
    ``numeric``: parameters the linear-bond split keeps as symbols (rebound by the model)."""
    ir = model
    if len(ir.fields) != 1:
        f = list(ir.fields.values())[1]
        fail("P804", "a continuous-field model has one field", f.span)
    fieldir = next(iter(ir.fields.values()))
    field = fieldir.name
    lat = ir.lattice
    if lat is None or lat.graph or lat.basis > 1:
        fail("P804", "continuous fields live on a lattice of one site per cell (chain, square, "
             "triangular, cubic, ...)" + (f", not {lat.kind}" if lat is not None else ""),
             fieldir.span, "lattices with a basis and graphs take discrete fields and qubits")  # fmt: skip
    d = ir.energy
    if d is None:
        fail("P420", f"model {ir.name} declares no action", ir.name_span,
             f"e.g. action S = sum({field}[i]^2 for i in sites)")  # fmt: skip
    builder = FieldBuilder(ir, field)
    collector = _Collector(ir, field, builder)
    collector.collect(d.expr, sympy.Integer(1))
    terms = collector.terms
    if not terms:
        fail("P419", f"the action does not depend on the field '{field}'", d.span)
    a, b = builder.a, builder.b
    for expr, span in builder.nondiff:
        if expr.free_symbols & {a, b}:
            fail("P313", f"the action is not differentiable here ({type(expr).__name__}): "
                 "HMC and Langevin need dS/dx", span, "use a smooth form")  # fmt: skip
    site = sympy.Add(*[t.expr for t in terms if t.kind == "site"])
    bonds: dict[int, sympy.Expr] = {}
    for t in terms:
        if t.kind == "bond":
            bonds[t.shell] = bonds.get(t.shell, sympy.Integer(0)) + t.expr
    for shell in bonds:
        if shell not in lat.shells:
            fail("P408", f"lattice {lat.kind} has no neighbour shell {shell}", d.span)
    params = {sympy.Symbol(k, real=True): float(v) for k, v in builder.params.items()}
    exprs = {"site": [site, sympy.diff(site, a)]}
    for shell, g in bonds.items():
        exprs[f"bond{shell}"] = [g, sympy.diff(g, a), sympy.diff(g, b)]
    for key, es in exprs.items():
        exprs[key] = [limits.simplify_small(x, 39) for x in es]
    # Bond gradients linear in the neighbour, dg/da = alpha b + A(a), dg/db = beta a + B(b)
    # (phi^4 hopping): on a periodic lattice the force is f'(x) + n_e (A + B)(x) +
    # alpha sum_e x(+e) + beta sum_e x(-e) -- neighbours summed first, one stencil per shell.
    linear: dict[int, tuple[sympy.Expr, sympy.Expr]] = {}
    local = exprs["site"][1]
    keep = frozenset(s for s in params if s.name in numeric)
    if lat.all_periodic:
        for shell in bonds:
            split = linear_bond(exprs[f"bond{shell}"], a, b, params, keep)
            if split is not None:
                alpha, beta, A, B = split
                linear[shell] = (alpha, beta)
                local = local + len(lat.shells[shell]) * (A + B).xreplace({b: a})
    allowed_symmetries(ir, {"translation", "spin_flip"}, "continuous-field models")
    for s in ir.symmetries:
        if s.active and s.name == "spin_flip":
            flip = {a: -a, b: -b}
            for es in exprs.values():
                if not limits.is_zero(es[0].xreplace(flip) - es[0]):
                    fail("P500", f"the action is not invariant under {field} -> -{field}",
                         s.span)  # fmt: skip
        if s.active and s.name == "translation" and not lat.all_periodic:
            fail("P500", "translation needs a periodic lattice", s.span)
    return FieldDerivation(ir, fieldir, d, builder, terms, site, bonds, exprs, linear, local,
                           params)  # fmt: skip


class FieldMeasures(MeasuredExpressions):
    """Measured expressions of a continuous field: those of lattice models, with ``action``
    (S as written, extensive; ``energy`` is the same number: the sampled weight is exp(-S/T)),
    ``magnetization`` (M = sum phi; angle fields: |sum exp(i theta)|), ``pi``, T, beta,
    parameters and lattice sums of the field (``sum(cos(theta[i] - theta[i + e0]) for i in
    sites)``). ``env(state, S, M, beta)`` reads a batch of fields {name: (C, *shape)}."""

    def on_name(self, e: E.Name, env: Any) -> sympy.Expr:
        if e.id == "action":
            return sympy.Symbol("energy")
        if e.id == "pi":
            return sympy.pi
        return super().on_name(e, env)


def field_measures(derivation: FieldDerivation, lattice_sum: Callable[[E.Expr, str], Any],
                   params: Mapping[str, Any], functions: Collection[str]) -> FieldMeasures:  # fmt: skip
    """The walker of a field run's measured expressions; ``lattice_sum`` is the derivation's
    (``check``) or the compiled model's (a torch module per sum); ``functions``: the built-in
    functions of averages (named in an expression, they get a hint to measure them alone)."""
    return FieldMeasures(derivation.lattice, derivation.model.definitions, lattice_sum, params,
                         functions)  # fmt: skip


__all__ = ["FieldBuilder", "FieldDerivation", "FieldMeasures", "derive_field", "field_measures",
           "linear_bond"]  # fmt: skip
