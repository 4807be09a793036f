"""Derived quantities, by sympy, from an energy's lattice terms alone.

- :func:`local_energy`: the energy of the terms touching one site x as a function of the value
  v at x: every single-site sampler (Metropolis, heat-bath, Glauber, any discrete domain) uses it.
- :func:`flip_delta`: E_loc(flip(s_x)) - E_loc(s_x), simplified, for two-valued domains.
- :func:`interaction_pairs`: the sublattices and cell offsets through which sites of a field
  interact, from which the geometry derives the colouring for parallel (checkerboard) updates.
- :func:`decompose_pair`: a pair body as a sum of c_ij f(s_i) g(s_j) (dense lowering).
- :func:`pair_couplings`: E = -sum K_ij s_i s_j, for cluster algorithms.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from physml_lang.compiler import limits
from physml_lang.compiler.geometry import BondType
from physml_lang.compiler.lower.terms import (
    Access,
    LatticeSum,
    Offset,
    PairTerm,
    StencilTerm,
    access_symbol,
)
from physml_lang.diagnostics import Diagnostic, PhysmlError, Span
from physml_lang.ir.model import DomainIR as Domain

CANDIDATE = sp.Symbol("v", real=True)
VALUE = sp.Symbol("val", real=True)


@dataclass(frozen=True)
class Valid:
    """Input: 1 where x + offset is a site of the lattice (open boundaries), else 0."""

    offset: Offset


def valid_symbol(offset: Offset) -> sp.Symbol:
    return sp.Symbol("valid_" + access_symbol(Access("field", "", offset)).name.lstrip("_"))


@dataclass
class LocalEnergy:
    """E_loc(x, v) for one field: stencil part (sympy, with inputs) and dense pair parts.

    ``exprs[b]``: the stencil part for x on sublattice b (one entry on a one-site lattice)."""

    field: str
    exprs: tuple[sp.Expr, ...]
    inputs: dict[sp.Symbol, object]
    pairs: list[PairTerm]


def shifted_parts(term: StencilTerm, field: str,
                  basis: int = 0) -> list[tuple[sp.Expr, dict, set[Offset]]]:  # fmt: skip
    """For every access of ``field`` on sublattice ``basis`` in ``term``: the term re-based so
    that access sits at x, with that access replaced by the candidate value v; and the (cell)
    offsets it reads."""
    out = []
    for acc in term.accesses.values():
        if acc.kind != "field" or acc.name != field or acc.basis != basis:
            continue
        subs, inputs, offsets = {}, {}, set()
        for s2, a2 in term.accesses.items():
            if a2 == acc:
                subs[s2] = CANDIDATE
                continue
            moved = a2.shifted(acc.offset)
            new = access_symbol(moved)
            subs[s2] = new
            inputs[new] = moved
        for a2 in term.accesses.values():
            offsets.add(tuple(o - s for o, s in zip(a2.offset, acc.offset)))
        out.append((term.body.xreplace(subs), inputs, offsets))
    return out


def local_energy(energy: LatticeSum, field: str, masked: bool, basis: int = 1) -> LocalEnergy:
    """E_loc(x, v) = sum of every term containing site x, with s_x -> v, for x on each of the
    ``basis`` sublattices.

    ``masked``: multiply each part by the validity of the sites it reads (open boundaries).
    """
    exprs = [sp.Integer(0)] * basis
    inputs: dict[sp.Symbol, object] = {CANDIDATE: "candidate"}
    pairs = []
    for term in energy.terms:
        if isinstance(term, PairTerm):
            if any(a.kind == "field" and a.name == field for a in term.accesses.values()):
                pairs.append(term)
            continue
        for b in range(basis):
            for body, ins, offsets in shifted_parts(term, field, b):
                if masked:
                    for o in sorted(offsets):
                        if any(o):
                            v = valid_symbol(o)
                            inputs[v] = Valid(o)
                            body = body * v
                inputs.update(ins)
                exprs[b] += body
    return LocalEnergy(field, tuple(sp.expand(e) for e in exprs), inputs, pairs)


def reduce_domain(expr: sp.Expr, symbols: list[sp.Symbol], domain: Domain) -> sp.Expr:
    """Use the algebra of the domain: s^2 = 1 for spins, s^2 = s for binary units."""
    if domain.ising:
        for s in symbols:
            expr = expr.replace(lambda e, s=s: e.is_Pow and e.base == s and e.exp.is_Integer,
                                lambda e, s=s: s ** (int(e.exp) % 2))  # fmt: skip
    elif domain.kind == "binary":
        for s in symbols:
            expr = expr.replace(lambda e, s=s: e.is_Pow and e.base == s and e.exp.is_Integer and e.exp > 0,
                                lambda e, s=s: s)  # fmt: skip
    return expr


def flip(domain: Domain, value: sp.Expr) -> sp.Expr:
    """The other value of a two-valued domain."""
    return -value if domain.kind in ("spin", "z2", "qubit") else 1 - value  # spin(1/2): -m


def flip_delta(local: LocalEnergy, domain: Domain, current: sp.Symbol, basis: int = 0) -> sp.Expr:
    """Delta E of flipping s_x (x on sublattice ``basis``), symbolically:
    E_loc(flip(s)) - E_loc(s), simplified."""
    e_new = local.exprs[basis].subs(CANDIDATE, flip(domain, current))
    e_old = local.exprs[basis].subs(CANDIDATE, current)
    delta = reduce_domain(sp.expand(e_new - e_old), [current], domain)
    return sp.factor_terms(sp.expand(delta))


def interaction_pairs(energy: LatticeSum, field: str) -> list[BondType]:
    """(a, b, offset): the local energy at a site of sublattice a reads ``field`` on sublattice
    b, ``offset`` cells away (on a one-site lattice, a = b = 0: the interaction offsets)."""
    out: set[BondType] = set()
    for term in energy.terms:
        if isinstance(term, StencilTerm):
            accs = [a for a in term.accesses.values() if a.kind == "field" and a.name == field]
            for p in accs:
                for q in accs:
                    d = tuple(x - y for x, y in zip(q.offset, p.offset))
                    if any(d) or p.basis != q.basis:
                        out.add(BondType(p.basis, q.basis, d))
    return sorted(out, key=lambda t: (t.a, t.b, t.offset))


def expand_deltas(body: sp.Expr, accesses: dict, domains: dict[str, Domain]) -> sp.Expr:
    """delta(a_i, b_j) -> sum_v delta(a_i, v) delta(b_j, v) over the field's values."""

    def one_hot(e: sp.KroneckerDelta) -> sp.Expr:
        a, b = e.args
        fa = accesses.get(a)
        if fa is None or fa.kind != "field" or not domains[fa.name].discrete:
            return e
        return sp.Add(*[sp.KroneckerDelta(a, v) * sp.KroneckerDelta(b, v)
                        for v in map(sp.Integer, map(int, domains[fa.name].values()))])  # fmt: skip

    return body.replace(lambda e: isinstance(e, sp.KroneckerDelta), one_hot)


def decompose_pair(
    body: sp.Expr, slot_of: dict[sp.Symbol, str], domains_expand=None, span: Span | None = None
) -> list[tuple[sp.Expr, sp.Expr, sp.Expr]] | None:
    """body = sum_r c_r * f_r(i-values) * g_r(j-values), or None when not separable.

    ``slot_of`` maps each symbol to "i", "j" or "ij" (pair arrays); other symbols are constants.
    A body whose expansion is too large (deltas of many-valued fields multiplied together) is a
    P410 located at ``span``.
    """
    pieces: dict[tuple[sp.Expr, sp.Expr], sp.Expr] = {}
    for mono in sp.Add.make_args(limits.expand(body, span, "this pair interaction")):
        c, f, g = sp.Integer(1), sp.Integer(1), sp.Integer(1)
        for factor in sp.Mul.make_args(mono):
            slots = {slot_of.get(s) for s in factor.free_symbols} - {None}
            if not slots or slots == {"ij"}:
                c *= factor
            elif slots == {"i"}:
                f *= factor
            elif slots == {"j"}:
                g *= factor
            else:
                return None
        key = (f, g)
        pieces[key] = pieces.get(key, sp.Integer(0)) + c
    return [(c, f, g) for (f, g), c in pieces.items() if c != 0]


def pair_couplings(energy: LatticeSum, field: str) -> list[tuple[object, sp.Expr]]:
    """Write E = -sum_<ij> K_ij s_i s_j (+ const): returns, per term, (term, K expression).

    Raises a located error naming the first term that is not of this form.
    """
    out = []
    for term in energy.terms:
        fields = {s: a for s, a in term.accesses.items() if a.kind == "field"}
        syms = list(fields)
        body = sp.expand(term.body)
        ok = len(syms) == 2 and all(a.name == field for a in fields.values())
        if ok:
            k = -body.coeff(syms[0] * syms[1])
            ok = sp.expand(body + k * syms[0] * syms[1]) == 0 and not (k.free_symbols & set(syms))
        if not ok:
            raise PhysmlError(
                Diagnostic(
                    "P504",
                    "cluster updates need an energy of the form -sum K_ij s_i s_j; this term is not",
                    term.span,
                    "use metropolis or heatbath for this model",
                )
            )
        out.append((term, k))
    return out
