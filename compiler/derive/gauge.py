"""A lattice gauge model derived without torch: group, links and lattice, matter fields, the
action's terms, which action it is (Wilson or generic), and every declared symmetry verified.

What ``physml check`` reports for a gauge model, and what the compiled
:class:`~physml_lang.compiler.models.gauge.GaugeModel` builds on. A gauge model has one field on
``links`` with a group domain (z2, u1, su2) and optionally matter fields on ``sites`` (spin/z2
with z2 links, u1 phases with u1 links), on a periodic hypercubic lattice with d >= 2.

Every additive term of the action is evaluated separately by the lowering's evaluator
(``compiler/lower/gauge.py``) with numpy, on random links in linear form (``links.py``), so that
a type error (a matrix, a complex number, a term not summed over the lattice) or a term that
breaks ``symmetry gauge`` is reported at its own span. Gauge invariance is decided structurally
where the abelian charge decides it (below: under U_mu(x) -> w_x U_mu(x) w_{x+mu}^*, a link
carries charge +1 at x and -1 at x + e_mu, a matter field +1 at its site; conjugation flips
charges and products add them, mod 2 for z2; a term whose charge vanishes at every symbolic site
is invariant for every x and direction), numerically otherwise (random gauge transformations).
The pure-gauge terms are *matched* against the Wilson form: if their sum equals
c * sum_{x, mu<nu} Re tr P / N on random configurations (to rounding) the model is a Wilson model
with beta = -c, and the runtime samples it with its staple kernels; other actions are sampled by
local updates from the declared action's densities (``local_stencils``).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from physml_lang.compiler.geometry import Lattice
from physml_lang.compiler.instance import ModelInstance
from physml_lang.compiler.lower.gauge import NUMPY_LINKS, Env, Evaluator, LinkArrays, fail, planes
from physml_lang.diagnostics import PhysmlError, Span
from physml_lang.ir import expr as E
from physml_lang.ir.model import GAUGE_GROUPS, DefinitionIR
from physml_lang.ir.walk import Walker, additive_terms, int_literal, name_of, names_in

from .links import gauge_transform, plaquette_sum, plaquettes, random_elements

MATTER = {"z2": {"spin", "z2"}, "u1": {"u1"}, "su2": set()}  # matter domains per link group
GAUGE_LATTICES = {"square", "cubic", "hypercubic", "chain"}
Offset = tuple[int, ...]
Kind = tuple[str, int | None]  # (link field name, mu) or (matter field name, None)


def span_text(span: Span) -> str:
    """The source text of a span (for naming terms in diagnostics)."""
    lines = span.source.text.splitlines()
    if span.line == span.end_line:
        return lines[span.line - 1][span.column - 1 : span.end_column - 1]
    parts = [lines[span.line - 1][span.column - 1 :]]
    parts += lines[span.line : span.end_line - 1]
    parts.append(lines[span.end_line - 1][: span.end_column - 1])
    return " ".join(p.strip() for p in parts)


@dataclass
class Term:
    """One additive term of the action: sign * expr; ``pure_gauge`` when it has no matter."""

    sign: int
    expr: E.Expr
    text: str
    pure_gauge: bool


@dataclass
class LocalStencils:
    """The action as local densities: S = sum_x rho(x), every term a site sum. For each
    variable kind k (the links of direction mu, or a matter field) the offsets o at which k(x + o)
    enters a term's density (``term_stencils``), their union over terms (``stencil``), and the
    terms that depend on k (``terms_of``)."""

    kinds: list[Kind]
    term_stencils: list[dict[Kind, set[Offset]]]
    stencil: dict[Kind, set[Offset]]
    terms_of: dict[Kind, list[int]]


def term_value(term: Term, ev: Evaluator) -> Any:
    """sign * the term's value per configuration, (B,), on the evaluator's links and matter;
    P312 when it is a matrix or not summed over the lattice."""
    v = ev.evaluate(term.expr, Env())
    t = v.t
    if v.mat:
        fail("P312", f"the action term '{term.text}' is a matrix", term.expr.span,
             "take the trace: re(trace(P)) / 2")  # fmt: skip
    if not ev.xp.is_array(t):
        t = ev.xp.ones((ev.B,), ev.lin) * complex(t).real
    if v.lattice or ev.xp.ndim(t) != 1:
        fail("P312", f"the action term '{term.text}' is not summed over the lattice",
             term.expr.span, "wrap it in sum(... for x in sites)")  # fmt: skip
    return term.sign * t


class GaugeDerivation:
    """A gauge model derived (see the module docstring). ``group``: z2, u1 or su2;
    ``matter_domains``: matter field -> its group (z2 or u1); ``terms``: the action's additive
    terms; ``wilson_beta``: beta when the pure-gauge terms are the Wilson action, else None;
    ``plaquette_defs``: plaquette definition -> standard (equals P_{mu nu}(x)) or custom;
    ``symmetry_report``: one line per verified symmetry."""

    kind = "gauge"

    def __init__(self, model: ModelInstance):
        self.model = model
        self.ir = ir = model.ir
        self.name = model.name
        links = [f for f in model.fields.values() if f.on == "links"]
        if len(links) != 1:
            fail("P415", "a gauge model has exactly one link field",
                 links[1].span if len(links) > 1 else model.name_span)  # fmt: skip
        lf = links[0]
        if lf.domain.kind not in GAUGE_GROUPS:
            fail("P301", f"a link field takes a gauge group, not '{lf.domain}'", lf.span,
                 "groups: " + ", ".join(sorted(GAUGE_GROUPS)))  # fmt: skip
        self.link_field = lf.name
        self.group: str = lf.domain.kind
        lat = model.lattice
        if lat is None or lat.complete or lat.kind not in GAUGE_LATTICES:
            fail("P415", "gauge fields live on hypercubic lattices", lf.span,
                 "lattice square(L, L), cubic(L, L, L) or hypercubic(L, L, L, T)")  # fmt: skip
        if not lat.all_periodic:
            fail("P415", "gauge models need periodic boundaries", lf.span)
        self.d: int = lat.dim
        if self.d < 2:
            fail("P415", "a gauge model needs at least 2 dimensions (plaquettes)", lf.span)
        self.shape: tuple[int, ...] = tuple(lat.shape)
        self.n_sites: int = lat.n_sites
        self.matter_domains: dict[str, str] = {}
        for f in model.fields.values():
            if f.on != "sites":
                continue
            if f.domain.kind not in MATTER[self.group]:
                ok = ", ".join(sorted(MATTER[self.group])) or "none yet"
                fail("P301", f"matter field '{f.name}: {f.domain}' cannot couple to "
                     f"{self.group} links", f.span, f"matter domains for {self.group}: {ok}")  # fmt: skip
            self.matter_domains[f.name] = "u1" if f.domain.kind == "u1" else "z2"
        act = ir.energy
        if act is None:
            fail("P420", f"gauge model {ir.name} declares no action", ir.span,
                 "add e.g. 'action S = -beta * sum(re(P[x]) for x in sites)'")  # fmt: skip
        self.action_def: DefinitionIR = act
        self.terms = [Term(s, e, span_text(e.span), not (names_in(e) & set(self.matter_domains)))
                      for s, e in additive_terms(act.expr, keep_negations=True)]  # fmt: skip
        # Evaluate once on a random configuration: type errors surface here, located.
        rng = np.random.default_rng(0)
        lin, matter = self.random_configuration(2, rng)
        for t in self.terms:
            v = term_value(t, self.evaluator(lin, matter))
            if np.iscomplexobj(v) and float(np.abs(v.imag).max()) > 1e-9 * (
                    1 + float(np.abs(v).max())):  # fmt: skip
                fail("P312", f"the action term '{t.text}' is complex", t.expr.span,
                     "take the real part: re(...)")  # fmt: skip
        self.wilson_beta: float | None = self._match_wilson(rng)
        self.plaquette_defs: dict[str, str] = self._match_plaquettes(rng)
        self.symmetry_report: list[str] = self._check_symmetries()
        self._local: LocalStencils | None = None

    # -------------------------------------------------------------- the model
    @property
    def lattice(self) -> Lattice:
        return self.model.lattice

    @property
    def pure(self) -> bool:
        return not self.matter_domains

    @property
    def is_wilson(self) -> bool:
        return self.wilson_beta is not None and self.pure

    def site_names(self, d: DefinitionIR) -> set[str]:
        """Index names of a definition that are sites: the first index; the rest directions."""
        return {d.indices[0]} if d.indices else set()

    def random_configuration(self, batch: int, rng: np.random.Generator,
                             shape: tuple[int, ...] | None = None):  # fmt: skip
        """Haar-random links (B, L..., d, *lin_shape) and matter {name: (B, L...)}, in linear
        form (numpy)."""
        shape = shape or self.shape
        lin = random_elements(self.group, (batch, *shape, len(shape)), rng)
        matter = {name: random_elements(dom, (batch, *shape), rng)
                  for name, dom in self.matter_domains.items()}  # fmt: skip
        return lin, matter

    def evaluator(self, lin: Any, matter: dict[str, Any], xp: LinkArrays = NUMPY_LINKS
                  ) -> Evaluator:  # fmt: skip
        """The lowering's evaluator on links (B, L..., d, *lin_shape) and matter in linear form."""
        return Evaluator(self, lin, matter, xp)

    def generic_action(self, lin: Any, matter: dict[str, Any]) -> np.ndarray:
        """S per configuration (B,), term by term from the declared expression (numpy)."""
        total = sum(term_value(t, self.evaluator(lin, matter)) for t in self.terms)
        return np.real(total)

    # -------------------------------------------------------------- matching
    def _match_wilson(self, rng: np.random.Generator) -> float | None:
        """beta if the pure-gauge terms sum to -beta sum Re tr P / N (checked on 3 random
        configurations, relative 1e-10), else None."""
        pure = [t for t in self.terms if t.pure_gauge]
        if not pure:
            return None
        lin, matter = self.random_configuration(3, rng)
        s = np.real(sum(term_value(t, self.evaluator(lin, matter)) for t in pure))
        w = plaquette_sum(self.group, lin, self.d)
        ww = float(w @ w)
        if ww == 0:
            return None
        c = float(s @ w) / ww  # least squares; the check below validates
        if not math.isfinite(c):
            return None
        c = float(f"{c:.12g}")  # the ratio carries rounding noise
        err = float(np.abs(s - c * w).max())
        if err > 1e-10 * (1 + float(np.abs(s).max())):
            return None
        return -c

    def _match_plaquettes(self, rng: np.random.Generator) -> dict[str, str]:
        """Which plaquette definitions equal P_{mu nu}(x) (every plane)."""
        out = {}
        lin, matter = self.random_configuration(2, rng)
        ref = plaquettes(self.group, lin, self.d)  # (B, L..., n_planes, *lin_shape)
        for name, d in self.model.definitions.items():
            if d.kind != "plaquette":
                continue
            n = len(d.indices)
            if n not in (1, 3) or (n == 1 and self.d != 2):
                out[name] = "custom"
                continue
            ok = True
            ev = self.evaluator(lin, matter)
            try:
                for k, (mu, nu) in enumerate(planes(self.d)):
                    env = Env({d.indices[0]: (0,) * self.d},
                              {} if n == 1 else {d.indices[1]: mu, d.indices[2]: nu})  # fmt: skip
                    v = ev.evaluate(d.expr, env)
                    r = np.take(ref, k, axis=1 + self.d)
                    if not ev.xp.is_array(v.t) or v.t.shape != r.shape or \
                            float(np.abs(v.t - r).max()) > 1e-10:  # fmt: skip
                        ok = False
            except PhysmlError:
                ok = False
            out[name] = "standard" if ok else "custom"
        return out

    # -------------------------------------------------------------- symmetries
    def _check_symmetries(self) -> list[str]:
        """Verify the declared symmetries; P500 naming the first term that breaks one."""
        report = []
        for sym in self.model.symmetries:
            if not sym.active:
                continue
            if sym.name == "gauge":
                report.append(self._check_gauge())
            elif sym.name == "translation":
                report.append(self._check_translation(sym.span))
            else:
                fail("P501", f"symmetry {sym.name} is not available for gauge models", sym.span,
                     "gauge models declare: gauge, translation")  # fmt: skip
        return report

    def _check_gauge(self) -> str:
        """Each term: symbolically (abelian charge balance of monomials) where possible,
        numerically otherwise (3 random configurations x 3 random gauge transformations
        U_mu(x) -> w_x U_mu(x) w_{x+mu}^dag, phi_x -> w_x phi_x)."""
        symbolic, numeric = 0, 0
        rng = np.random.default_rng(12345)
        for t in self.terms:
            ch = (charges(t.expr, self.group, self.link_field, self.matter_domains,
                          self.model.params, self.model.definitions)
                  if self.group in ("u1", "z2") else None)  # fmt: skip
            if ch is not None and all(v == 0 for v in ch.values()):
                symbolic += 1
                continue
            lin, matter = self.random_configuration(3, rng)
            base = term_value(t, self.evaluator(lin, matter))
            worst = 0.0
            for _ in range(3):
                om = random_elements(self.group, (3, *self.shape), rng)
                glin = gauge_transform(self.group, lin, om, self.d)
                gmatter = {k: om * v for k, v in matter.items()}  # abelian: z2 sign, u1 phase
                val = term_value(t, self.evaluator(glin, gmatter))
                worst = max(worst, float(np.abs(val - base).max()))
            scale = 1 + float(np.abs(base).max())
            if worst > 1e-8 * scale:
                fail("P500", f"symmetry gauge does not hold: the term '{t.text}' changes by "
                     f"{worst:.3g} under a random gauge transformation", t.expr.span,
                     "gauge-invariant terms are traces of closed loops of links (plaquettes, "
                     "Wilson loops) or matter fields joined by links: phi[x] * U[x, mu] * "
                     "phi[x + e_mu]")  # fmt: skip
            numeric += 1
        return (f"gauge invariance verified ({symbolic} term(s) symbolically, {numeric} "
                f"numerically)")  # fmt: skip

    def _check_translation(self, span: Span | None) -> str:
        """S(U(x + a), phi(x + a)) = S(U, phi) for a = (1, 2, .., d), on random configurations."""
        rng = np.random.default_rng(54321)
        lin, matter = self.random_configuration(2, rng)
        base = self.generic_action(lin, matter)
        a = tuple(1 + k for k in range(self.d))
        moved = NUMPY_LINKS.translate
        val = self.generic_action(moved(lin, a), {k: moved(v, a) for k, v in matter.items()})
        if float(np.abs(val - base).max()) > 1e-8 * (1 + float(np.abs(base).max())):
            fail("P500", "symmetry translation does not hold for the action", span)
        return "translation invariance verified numerically"

    # -------------------------------------------------------------- local updates
    def local_stencils(self) -> LocalStencils:
        """The action's terms as local densities with their stencils (see
        ``runtime/gauge/local.py``), each checked on random links: P502 for a term that is not
        a sum of a local density over the lattice."""
        if self._local is not None:
            return self._local
        kinds: list[Kind] = ([(self.link_field, mu) for mu in range(self.d)]
                             + [(name, None) for name in self.matter_domains])  # fmt: skip
        lin, matter = self.random_configuration(2, np.random.default_rng(2024))
        term_stencils: list[dict[Kind, set[Offset]]] = []
        for t in self.terms:
            ev = self.evaluator(lin, matter)
            ev.keep_sites, ev.record = True, set()
            v = ev.evaluate(t.expr, Env())
            ok = (v.lattice and ev.xp.is_array(v.t) and not v.mat
                  and np.ndim(v.t) == 1 + self.d)  # fmt: skip
            if ok:
                dens = np.real(v.t)
                ref = np.real(term_value(t, self.evaluator(lin, matter)))
                ok = bool((np.abs(t.sign * dens.reshape(dens.shape[0], -1).sum(1) - ref)
                           <= 1e-9 * (1 + np.abs(ref))).all())  # fmt: skip
            if not ok:
                fail("P504", f"the action term '{t.text}' is not a sum of a local density over "
                     "the lattice, so it cannot be updated locally", t.expr.span,
                     "write each term as c * sum(... for x in sites / links / plaquettes)")  # fmt: skip
            st: dict[Kind, set[Offset]] = {}
            for name, off, mu in ev.record:
                st.setdefault((name, mu), set()).add(off)
            term_stencils.append(st)
        stencil = {k: set().union(*[st.get(k, set()) for st in term_stencils]) for k in kinds}
        terms_of = {k: [i for i, st in enumerate(term_stencils) if k in st] for k in kinds}
        self._local = LocalStencils(kinds, term_stencils, stencil, terms_of)
        return self._local

    # -------------------------------------------------------------- presentation
    def describe(self) -> str:
        """One line for ``physml check``."""
        dims = "x".join(str(n) for n in self.shape)
        kind = (f"Wilson action (beta = {self.wilson_beta:g}, matched to runtime wilson_action)"
                if self.wilson_beta is not None else "generic action (evaluated from the "
                "declared expression)")  # fmt: skip
        if self.matter_domains:
            kind += f" + matter {', '.join(self.matter_domains)}"
        checks = "; ".join(self.symmetry_report)
        return (f"gauge model, {self.group} links on a periodic {dims} lattice (d = "
                f"{self.d}), {kind}" + (f"; {checks}" if checks else ""))  # fmt: skip


def derive_gauge(model: ModelInstance) -> GaugeDerivation:
    """The derivation of a gauge model: structure, terms, Wilson matching, symmetries verified
    (located diagnostics)."""
    return GaugeDerivation(model)


# ---------------------------------------------------------------- structural gauge charges


def charges(e: E.Expr, group: str, link_field: str, matter: Collection[str],
            constants: Collection[str], definitions: Mapping[str, Any]) -> dict | None:  # fmt: skip
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


__all__ = ["GAUGE_LATTICES", "MATTER", "GaugeDerivation", "Kind", "LocalStencils", "Offset",
           "Term", "charges", "derive_gauge", "span_text", "term_value"]  # fmt: skip
