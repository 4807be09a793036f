"""Energy-based models on dense graphs derived, without torch: Hopfield networks, Boltzmann
machines and RBMs.

A model on a complete graph (one site set, ``sites``, pairs i < j) or on a graph of named site
sets (``visible`` and ``hidden``; pairs ``edges``, ``visible_pairs``, ``hidden_pairs``) has an
energy that is a sum of

- *set terms* sum_{i in S} body(x_i, a_i) (fields and arrays of one site), and
- *pair pieces* sum_{(i, j) in P} c(W_ij) f(x_i) g(y_j), from :func:`decompose_pair`; the
  compiled model lowers each to matrix products (F @ C) * G, F (B, n_i), C (n_i, n_j),
  G (B, n_j). Pairs of one set use the strict upper triangle of C.

Derived from these, not written per model:

- the local energy E_loc(x_k = v | rest) of every field at every site;
- the *blocks*: a field with no interaction with itself has conditionals that factorise over
  its sites, so block Gibbs updates all its sites at once (the colouring of a bipartite graph
  is its two site sets). A field that interacts with itself is updated site by site;
- the free energy with such fields summed analytically,
  beta F(rest) = beta E_rest - sum_k log sum_{v in domain} exp(-beta E_loc(x_k = v | rest)),
  printed in closed form (softplus for binary units, log 2 cosh for spins).

What ``physml check`` reports for a Boltzmann model, and what the compiled
:class:`~physml_lang.compiler.models.boltzmann.BoltzmannModel` lowers to torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import sympy as sp

from physml_lang.compiler.derive.local import CANDIDATE, decompose_pair, expand_deltas
from physml_lang.compiler.geometry import Lattice
from physml_lang.compiler.instance import ModelInstance
from physml_lang.compiler.lower.terms import (
    Access,
    LatticeSum,
    PairTerm,
    TermBuilder,
    _Slot,
    access_symbol,
    fail,
)
from physml_lang.compiler.sitesets import pair_structures, site_sets
from physml_lang.diagnostics import Diagnostic, PhysmlError, Span, did_you_mean
from physml_lang.ir import expr as E
from physml_lang.ir.model import DomainIR as Domain
from physml_lang.ir.walk import name_of

BETA = sp.Symbol("beta", positive=True)
VALUE = sp.Symbol("x", real=True)  # the value of a site, in printed derivations


@dataclass
class SetTerm:
    """sum over the sites i of one set of ``body`` (values of fields and arrays at i)."""

    body: sp.Expr
    accesses: dict[sp.Symbol, Access]
    span: object
    structure: str


class SetTermBuilder(TermBuilder):
    """Energy terms of a dense graph: sums over site sets and over pair structures."""

    def __init__(self, model: ModelInstance, symbolic: bool = False):
        super().__init__(model, symbolic)
        self.sets = site_sets(model.lattice)
        self.pairs = pair_structures(model.lattice)
        self._slot_sets: dict[str, str] = {}

    def on_reduce(self, e: E.Reduce, slots):
        if e.func != "sum":
            fail("P803", f"'{e.func}' is not supported in an energy", e.func_span, "use sum(...)")
        if len(e.loops) != 1:
            fail("P802", "one 'for' per sum: nest sums instead", e.loops[1].span)
        if slots:
            fail("P802", "nested sums are not supported in an energy", e.span)
        loop = e.loops[0]
        d = loop.domain
        name = name_of(d)
        known = set(self.sets) | set(self.pairs)
        if name not in known:
            fail("P209", "a sum here runs over " + ", ".join(sorted(known)),
                 (d or loop).span, derive_hint(name, known))  # fmt: skip
        if name in self.sets:
            if len(loop.names) != 1:
                fail("P315", f"{name} is summed with one index: for i in {name}", loop.span)
            self._slot_sets = {"i": name}
            body, acc = self._body(e.body, {loop.names[0]: _Slot(pair_slot="i")})
            term: object = SetTerm(body, acc, e.span, name)
        else:
            if len(loop.names) != 2:
                fail("P315", f"{name} are summed with two indices: for (i, j) in {name}",
                     loop.span)  # fmt: skip
            a, b = self.pairs[name]
            self._slot_sets = {"i": a, "j": b}
            self._structure_now = name
            slot_map = {loop.names[0]: _Slot(pair_slot="i"), loop.names[1]: _Slot(pair_slot="j")}
            body, acc = self._body(e.body, slot_map)
            term = PairTerm(body, acc, e.span, "pairs" if name == "bonds" else name)
        placeholder = sp.Symbol(f"__sum{len(self._terms)}")
        self._terms[placeholder] = [term]
        return placeholder

    def on_index(self, e: E.Index, slots):
        m = self.model
        base = name_of(e.base)
        if base is not None and base in m.fields:
            f = m.fields[base]
            if len(e.indices) != 1:
                fail("P302", f"field '{f.name}' takes one index", e.span)
            slot = self._site_index(e.indices[0], slots)
            where = self._slot_sets.get(slot.pair_slot)
            if where != f.on:
                fail("P310", f"field '{f.name}' lives on {f.on}, but this index runs over "
                     f"{where}", e.span)  # fmt: skip
            return self._record(Access("field", f.name, (), None, slot.pair_slot))
        return super().on_index(e, slots)

    def _array(self, arr, e: E.Index, slots):
        slots_used = [self._site_index(x, slots) for x in e.indices]
        if arr.on in self.sets:
            if len(slots_used) != 1:
                fail("P323", f"'{arr.name}' lives on {arr.on} and takes one index", e.span)
            slot = slots_used[0].pair_slot
            if self._slot_sets.get(slot) != arr.on:
                fail("P310", f"'{arr.name}' lives on {arr.on}, but this index runs over "
                     f"{self._slot_sets.get(slot)}", e.span)  # fmt: skip
            if arr.uniform:
                return sp.Float(arr.uniform_value)
            return self._record(Access("array", arr.name, (), None, slot))
        if arr.on in self.pairs or arr.on == "pairs":
            order = [s.pair_slot for s in slots_used]
            same = self.pairs.get(arr.on, ("sites", "sites"))
            ok = order == ["i", "j"] or (order == ["j", "i"] and same[0] == same[1])
            now = getattr(self, "_structure_now", None)
            if len(order) != 2 or not ok or now not in (arr.on, "bonds" if arr.on == "pairs" else arr.on):  # fmt: skip
                fail("P310", f"'{arr.name}' lives on {arr.on}: index it by the two ends of a "
                     f"pair, {arr.name}[i, j] inside sum(... for (i, j) in {arr.on})", e.span)  # fmt: skip
            if arr.uniform:
                return sp.Float(arr.uniform_value)
            return self._record(Access("array", arr.name, (), None, "ij"))
        fail("P310", f"'{arr.name}' lives on {arr.on}, which this graph does not have", e.span)


def derive_hint(name: str | None, known: set[str]) -> str:
    return (did_you_mean(name, known) if name else None) or "e.g. for (i, j) in " + sorted(known)[0]


# ---------------------------------------------------------------- derived pieces


@dataclass(frozen=True)
class SiteExpr:
    """A derived expression of one site's values and what each of its symbols reads
    (``inputs``: symbol -> an :class:`Access` of a field or array, or "candidate" for the
    value v tried at the site). The compiled model lowers it to a kernel of the same name."""

    name: str
    expr: sp.Expr
    inputs: dict[sp.Symbol, Any]


def _site_expr(name: str, expr: sp.Expr, accesses: dict[sp.Symbol, Access]) -> SiteExpr:
    """``expr`` with its inputs: the accesses it reads, and the candidate value v."""
    inputs: dict[sp.Symbol, Any] = {s: accesses[s] for s in expr.free_symbols if s in accesses}
    for s in expr.free_symbols:
        if s == CANDIDATE:
            inputs[s] = "candidate"
    return SiteExpr(name, expr, inputs)


# a site expression: derived (SiteExpr) or lowered (a kernel of the compiled model)
X = TypeVar("X")


@dataclass
class PairPiece(Generic[X]):
    """sum over a pair structure of c(W_ij) f(x_i) g(y_j): ``c`` reads pair arrays, ``f`` the
    values at i (set ``set_i``), ``g`` those at j; ``f_local``/``g_local``: f (g) with one
    field's value at its site replaced by the candidate v, per field it reads.
    ``symmetric``: f == g on one set, so E = 1/2 F S G with S = C + C^T symmetric."""

    structure: str
    set_i: str
    set_j: str
    same_set: bool
    c: X
    f: X
    g: X
    f_fields: set[str]
    g_fields: set[str]
    f_local: dict[str, X]
    g_local: dict[str, X]
    symmetric: bool
    span: Span | None


def _swap_slot(expr: sp.Expr, accesses: dict[sp.Symbol, Access]) -> sp.Expr:
    subs = {}
    for s, a in accesses.items():
        if a.slot in ("i", "j"):
            other = Access(a.kind, a.name, a.offset, a.component, "j" if a.slot == "i" else "i")
            subs[s] = access_symbol(other)
    return expr.xreplace(subs)


@dataclass
class BoltzmannDerivation:
    """A Boltzmann model derived: site sets (name -> size n_set), pair structures
    (name -> (set of i, set of j)), the discrete fields (domains, the set each lives on), the
    learnable arrays, the energy's set terms and pair pieces, each field's set-term local
    energy E_set(x_k = v) and the block fields (no self-interaction)."""

    model: ModelInstance
    sets: dict[str, int]
    structures: dict[str, tuple[str, str]]
    domains: dict[str, Domain]
    field_sets: dict[str, str]
    learnable: list[str]
    energy: LatticeSum
    constant: float
    set_terms: list[SetTerm]
    pieces: list[PairPiece[SiteExpr]]
    set_local: dict[str, SiteExpr]
    blocks: list[str]

    @property
    def lattice(self) -> Lattice:
        return self.model.lattice

    def self_interacting(self, field: str) -> bool:
        """Does the field interact with itself (then its sites are not independent given the
        other fields, and it is updated site by site)?"""
        return any(field in p.f_fields and field in p.g_fields for p in self.pieces)

    def summable(self, summed: list[str] | None = None) -> list[str]:
        """Check (or choose) fields that can be summed analytically: block fields that do not
        interact with each other (default: every block field but the first field)."""
        if summed is None:
            summed = [f for f in self.blocks if f != next(iter(self.domains))]
        for f in summed:
            if f not in self.blocks:
                raise PhysmlError(Diagnostic("P504", f"field '{f}' interacts with itself; it "
                                             "cannot be summed analytically", self.model.fields[f].span))  # fmt: skip
        for p in self.pieces:
            if p.f_fields & set(summed) and p.g_fields & set(summed):
                raise PhysmlError(Diagnostic("P504", "summed fields interact with each other",
                                             p.span))  # fmt: skip
        return summed

    def describe(self) -> str:
        """One line for ``physml check``."""
        sets = ", ".join(f"{k} ({n})" for k, n in self.sets.items())
        learn = ", ".join(self.learnable) or "none"
        blocks = ", ".join(self.blocks) or "none"
        return (f"{self.lattice.kind} graph [{sets}], {len(self.set_terms)} set terms, "
                f"{len(self.pieces)} pair pieces; block-updatable fields: {blocks}; "
                f"learnable: {learn}")  # fmt: skip

    # ---------------------------------------------------------------- shown derivations
    def symbolic_local(self, field: str) -> sp.Expr:
        """E_loc(x_k = v) with each pair part's matrix product as a symbol phi."""
        expr = self.set_local[field].expr
        for p in self.pieces:
            if field in p.f_fields:
                c = p.c.expr * (2 if p.symmetric else 1)
                phi = sp.Symbol(f"[sum_j ({c}) * ({p.g.expr})]", real=True)
                expr += p.f_local[field].expr * phi
            if field in p.g_fields and not p.symmetric:
                phi = sp.Symbol(f"[sum_i ({p.c.expr}) * ({p.f.expr})]", real=True)
                expr += p.g_local[field].expr * phi
        return sp.expand(expr.xreplace({CANDIDATE: VALUE}))

    def symbolic_free_energy(self, field: str) -> sp.Expr:
        """beta F_k from summing field ``field`` at one site, in closed form."""
        e = self.symbolic_local(field).xreplace({VALUE: CANDIDATE})
        dom = self.domains[field]
        vals = [sp.Integer(int(v)) for v in dom.values()]
        if dom.ising and sp.expand(e).is_polynomial(CANDIDATE) \
                and sp.degree(e, CANDIDATE) <= 1:  # fmt: skip
            A, B = e.subs(CANDIDATE, 0), e.coeff(CANDIDATE)
            return sp.expand(BETA * A) - sp.log(2 * sp.cosh(sp.factor_terms(BETA * B)))
        if dom.kind == "binary":
            e0, e1 = e.subs(CANDIDATE, 0), e.subs(CANDIDATE, 1)
            return sp.expand(BETA * e0) - sp.log(1 + sp.exp(-sp.factor_terms(BETA * (e1 - e0))))
        return -sp.log(sp.Add(*[sp.exp(-BETA * e.subs(CANDIDATE, v)) for v in vals]))

    def emit_sympy(self) -> str:
        """The derivation in print: terms, local energies, conditionals, blocks, free energies."""
        ir = self.model.ir
        sym = SetTermBuilder(self.model, symbolic=True).lattice_sum(ir.energy.expr)
        lines = [f"# model {ir.name}: derived by sympy", f"# graph: {self.describe()}"]
        lines.append(f"energy {ir.energy.name} = constant + sum over terms")
        lines.append(f"  constant: {sym.constant}")
        for t in sym.terms:
            over = "sum_i in" if isinstance(t, SetTerm) else "sum_(i,j) in"
            lines.append(f"  {over} {t.structure}: {t.body}")
        for f in self.domains:
            e = self.symbolic_local(f)
            lines.append(f"local energy of {f}[k] = x: E_loc = {e}")
            vals = self.domains[f].values()
            if len(vals) == 2:
                d = sp.expand(e.subs(VALUE, int(vals[1])) - e.subs(VALUE, int(vals[0])))
                lines.append(f"  P({f}[k] = {vals[1]:g} | rest) = 1 / (1 + exp(beta * ({d})))")
            if f in self.blocks:
                lines.append(f"  {f} does not interact with itself: block update of all its "
                             "sites at once")  # fmt: skip
                if f != next(iter(self.domains)):
                    lines.append(f"  summed out, per site: beta F = {self.symbolic_free_energy(f)}")
            else:
                lines.append(f"  {f} interacts with itself: site-by-site updates")
        return "\n".join(lines)


def _pieces(t: PairTerm, structures: dict[str, tuple[str, str]],
            domains: dict[str, Domain]) -> list[PairPiece[SiteExpr]]:  # fmt: skip
    """A pair term as pieces c(W_ij) f(x_i) g(y_j) (a located P802 when it does not separate)."""
    a, b = structures.get(t.structure, ("sites", "sites"))
    slot_of = {s: acc.slot for s, acc in t.accesses.items()}
    body = expand_deltas(t.body, t.accesses, domains)
    parts = decompose_pair(body, slot_of, span=t.span)
    if parts is None:
        raise PhysmlError(Diagnostic("P802", "this pair interaction is not a sum of products "
                                     "f(x_i) g(y_j)", t.span))  # fmt: skip
    out = []
    for k, (c, f, g) in enumerate(parts):
        fields_f = {t.accesses[s].name for s in f.free_symbols
                    if s in t.accesses and t.accesses[s].kind == "field"}  # fmt: skip
        fields_g = {t.accesses[s].name for s in g.free_symbols
                    if s in t.accesses and t.accesses[s].kind == "field"}  # fmt: skip
        ce = SiteExpr(f"coupling_{k}", c, {s: t.accesses[s] for s in c.free_symbols
                                           if s in t.accesses})  # fmt: skip
        fe = _site_expr(f"f_{k}", f, t.accesses)
        ge = _site_expr(f"g_{k}", g, t.accesses)
        f_local, g_local = {}, {}
        for name in fields_f:
            sym = access_symbol(Access("field", name, (), None, "i"))
            f_local[name] = _site_expr(f"f_{k}_{name}", f.xreplace({sym: CANDIDATE}), t.accesses)
        for name in fields_g:
            sym = access_symbol(Access("field", name, (), None, "j"))
            g_local[name] = _site_expr(f"g_{k}_{name}", g.xreplace({sym: CANDIDATE}), t.accesses)
        symmetric = a == b and sp.expand(_swap_slot(f, t.accesses) - g) == 0
        out.append(PairPiece(t.structure, a, b, a == b, ce, fe, ge, fields_f, fields_g, f_local,
                             g_local, symmetric, t.span))  # fmt: skip
    return out


def _set_local(field: str, on: str, set_terms: list[SetTerm]) -> SiteExpr:
    """The set terms of E_loc(x_k = v): every set term of the field's set that reads it."""
    expr = sp.Integer(0)
    sym = access_symbol(Access("field", field, (), None, "i"))
    inputs: dict[sp.Symbol, Any] = {CANDIDATE: "candidate"}
    for t in set_terms:
        if t.structure != on or sym not in t.body.free_symbols:
            continue
        expr += t.body.xreplace({sym: CANDIDATE})
        inputs.update({s: a for s, a in t.accesses.items() if s != sym})
    return SiteExpr(f"set_local_{field}", sp.expand(expr), inputs)


def derive_boltzmann(model: ModelInstance) -> BoltzmannDerivation:
    """The set terms, pair pieces, local energies and blocks of a model on a dense graph
    (located P8xx/P4xx/P2xx/P3xx diagnostics when it is not a Boltzmann model)."""
    if model.lattice is None or not model.lattice.complete:
        raise PhysmlError(Diagnostic("P804", f"model {model.name}: Boltzmann models live on "
                                     "complete or bipartite graphs", model.name_span))  # fmt: skip
    if model.energy is None:
        raise PhysmlError(Diagnostic("P420", f"model {model.name} declares no energy",
                                     model.name_span))  # fmt: skip
    domains: dict[str, Domain] = {}
    field_sets: dict[str, str] = {}
    for name, f in model.fields.items():
        if not f.domain.discrete or f.domain.kind == "qubit":
            raise PhysmlError(Diagnostic("P804", f"field '{name}': Boltzmann models have "
                                         "discrete fields (spin, binary, potts)", f.span))  # fmt: skip
        domains[name] = f.domain
        field_sets[name] = f.on
    structures = pair_structures(model.lattice)
    energy = SetTermBuilder(model).lattice_sum(model.energy.expr)
    constant = float(energy.constant) if energy.constant.is_number else 0.0
    set_terms = [t for t in energy.terms if isinstance(t, SetTerm)]
    pieces = [p for t in energy.terms if isinstance(t, PairTerm)
              for p in _pieces(t, structures, domains)]  # fmt: skip
    set_local = {f: _set_local(f, field_sets[f], set_terms) for f in domains}
    learnable = [name for name, arr in model.arrays.items() if arr.learnable]
    derivation = BoltzmannDerivation(model, site_sets(model.lattice), structures, domains,
                                     field_sets, learnable, energy, constant, set_terms, pieces,
                                     set_local, [])  # fmt: skip
    derivation.blocks = [f for f in domains if not derivation.self_interacting(f)]
    return derivation


__all__ = ["BoltzmannDerivation", "PairPiece", "SetTerm", "SetTermBuilder", "SiteExpr",
           "derive_boltzmann"]  # fmt: skip
