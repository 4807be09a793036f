"""Lowering of lattice gauge models: link fields, plaquettes, Wilson loops and actions.

A gauge model has one field on ``links`` with a group domain (z2, u1, su2) and optionally matter
fields on ``sites`` (spin/z2 with z2 links, u1 phases with u1 links). Its ``action`` is lowered
from the syntax tree (never from text) to torch functions of the link tensor
U (B, L_1..L_d, d, *group_shape) in the runtime's storage form (runtime/gauge/groups.py) and of
the matter tensors (B, L_1..L_d).

Expression semantics (all vectorised over the batch and the lattice; loops run only over
directions):

- ``U[x + e0 - e1, mu]`` is the link x+e0-e1 -> x+e0-e1+e_mu in its *linear* form: the float
  +-1 (z2), the phase exp(i theta) (u1) or the 2x2 matrix (su2). ``e_mu`` is the unit vector of
  a bound direction ``mu``; ``e0``, ``e1``, ... are fixed unit vectors.
- ``*`` multiplies (matrix product for su2), ``conj`` conjugates elementwise, ``dagger`` is the
  conjugate transpose, ``trace`` the matrix trace (plain, not normalised: write
  ``re(trace(P)) / 2`` for the SU(2) Wilson action), ``re``/``im`` real/imaginary parts.
- ``plaquette P[x] = ...`` / ``plaquette P[x, mu, nu] = ...`` (any definition with indices) is a
  function of a site and directions, inlined where it is used.
- Sums: ``for x in sites`` (site x), ``for (x, mu) in links`` (site and direction, mu = 0..d-1),
  ``for (x, mu, nu) in plaquettes`` (site and plane, mu < nu), ``for mu`` (a direction).

Every additive term of the action is compiled separately, so a term that breaks ``symmetry gauge``
is reported at its own span. The pure-gauge terms are then *matched* against the runtime's Wilson
action: if their sum equals c * sum_{x, mu<nu} Re tr P / N on random configurations (to rounding)
the model is a Wilson model with beta = -c, and samplers use the runtime's staple kernels
(heat-bath, checkerboard Metropolis, HMC with analytic forces).
Other actions (matter fields, improved actions) are sampled by runtime/gauge/local.py, which
evaluates each term in *density mode* (``Evaluator.keep_sites``: site sums return their summand
as a lattice field) and records the stencil of every variable (``Evaluator.record``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from physml_lang.runtime.gauge.groups import get_group
from physml_lang.runtime.gauge.lattice import lattice_dim, planes, plaquette_field, plaquettes
from physml_lang.runtime.gauge.transforms import gauge_transform, random_gauge, translate

from physml_lang import ast
from physml_lang.diagnostics import Diagnostic, PhysmlError, Span
from physml_lang.ir import GAUGE_GROUPS, ModelIR

Tensor = torch.Tensor
Offset = tuple[int, ...]

MATTER = {"z2": {"spin", "z2"}, "u1": {"u1"}, "su2": set()}
GAUGE_LATTICES = {"square", "cubic", "hypercubic", "chain"}


def fail(code: str, msg: str, span: Span | None, hint: str | None = None):
    raise PhysmlError(Diagnostic(code, msg, span, hint))


def span_text(span: Span) -> str:
    """The source text of a span (for naming terms in diagnostics)."""
    lines = span.source.text.splitlines()
    if span.line == span.end_line:
        return lines[span.line - 1][span.column - 1:span.end_column - 1]
    parts = [lines[span.line - 1][span.column - 1:]]
    parts += lines[span.line:span.end_line - 1]
    parts.append(lines[span.end_line - 1][:span.end_column - 1])
    return " ".join(p.strip() for p in parts)


def is_gauge_model(ir: ModelIR) -> bool:
    return any(f.on == "links" for f in ir.fields.values())


def is_gauge_node(node: ast.Model) -> bool:
    """Syntactic test (no instantiation): does the model declare a field on links?"""
    return any(isinstance(s, ast.FieldStmt) and s.on == "links" for s in node.body)


# ---------------------------------------------------------------- values


@dataclass
class Val:
    """An evaluated expression: a lattice field (B, L..., [N, N]) when ``lattice``, else a
    per-configuration value (B, [N, N]) or a plain number (``t`` a Python scalar)."""

    t: Any
    mat: bool = False
    lattice: bool = False


@dataclass
class Env:
    sites: dict[str, Offset] = field(default_factory=dict)
    dirs: dict[str, int] = field(default_factory=dict)


class Evaluator:
    """Evaluates a gauge-model expression on concrete link and matter tensors."""

    def __init__(self, model: GaugeModel, U: Tensor, matter: dict[str, Tensor]):
        self.m = model
        self.lin = model.group.to_lin(U)  # (B, L..., d, *lin_shape)
        self.matter = {k: (model.group.to_lin(v) if model.matter_domains[k] == "u1" else v)
                       for k, v in matter.items()}
        self.B = U.shape[0]
        self.depth = 0
        # Density mode (runtime/gauge/local.py): a site sum keeps its summand as a lattice field
        # (B, L...) instead of summing it, and every field access (name, offset, direction) is
        # recorded, giving the local action density and its stencil.
        self.keep_sites = False
        self.record: set[tuple[str, Offset, int | None]] | None = None
        self.site_sums = 0

    # -------------------------------------------------------------- index arithmetic
    def offset(self, e: ast.Expr, env: Env) -> Offset:
        d = self.m.d
        if isinstance(e, ast.Name):
            if e.id in env.sites:
                return env.sites[e.id]
            unit = self.unit(e, env)
            if unit is not None:
                return unit
            fail("P202", f"'{e.id}' is not a site here", e.span,
                 "a site index is a bound site plus unit vectors: x + e0 or x + e_mu")
        if isinstance(e, ast.Binary) and e.op in "+-":
            a, b = self.offset(e.left, env), self.offset(e.right, env)
            s = 1 if e.op == "+" else -1
            return tuple(p + s * q for p, q in zip(a, b))
        if isinstance(e, ast.Unary) and e.op == "-":
            return tuple(-p for p in self.offset(e.operand, env))
        if isinstance(e, ast.Binary) and e.op == "*" and isinstance(e.left, ast.Number):
            k = e.left.value
            if isinstance(k, int):
                return tuple(k * p for p in self.offset(e.right, env))
        if isinstance(e, ast.Number) and e.value == 0:
            return (0,) * d
        fail("P300", "this is not a site index", e.span,
             "write a bound site plus unit vectors: x, x + e0, x - e_mu + e_nu, x + 2 * e1")

    def unit(self, e: ast.Name, env: Env) -> Offset | None:
        d = self.m.d
        name = e.id
        mu: int | None = None
        if name.startswith("e_") and name[2:] in env.dirs:
            mu = env.dirs[name[2:]]
        elif len(name) >= 2 and name[0] == "e" and name[1:].isdigit():
            mu = int(name[1:])
            if mu >= d:
                fail("P400", f"{name} is not a direction of a {d}-dimensional lattice", e.span,
                     f"directions are 0 .. {d - 1}")
        if mu is None:
            return None
        return tuple(1 if k == mu else 0 for k in range(d))

    def direction(self, e: ast.Expr, env: Env) -> int:
        if isinstance(e, ast.Name) and e.id in env.dirs:
            return env.dirs[e.id]
        v = self.scalar(e, env)
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v < self.m.d:
            fail("P400", f"a direction is an integer 0 .. {self.m.d - 1}", e.span)
        return v

    def scalar(self, e: ast.Expr, env: Env) -> Any:
        v = self.evaluate(e, env)
        if isinstance(v.t, Tensor):
            fail("P300", "a constant is needed here", e.span)
        return v.t

    # -------------------------------------------------------------- expressions
    def evaluate(self, e: ast.Expr, env: Env) -> Val:
        m = self.m
        if isinstance(e, ast.Number):
            return Val(e.value)
        if isinstance(e, ast.Imaginary):
            return Val(complex(0, e.value))
        if isinstance(e, ast.Name):
            if e.id in m.ir.params:
                return Val(m.ir.params[e.id])
            if e.id == "pi":
                return Val(math.pi)
            if e.id == "I":
                return Val(1j)
            if e.id in m.ir.definitions and not m.ir.definitions[e.id].indices:
                return self.evaluate(m.ir.definitions[e.id].expr, Env())
            if e.id in m.ir.fields:
                fail("P302", f"'{e.id}' needs indices: {e.id}[x" +
                     (", mu]" if m.ir.fields[e.id].on == "links" else "]"), e.span)
            fail("P300", f"'{e.id}' cannot be used as a value here", e.span)
        if isinstance(e, ast.Index):
            return self.index(e, env)
        if isinstance(e, ast.Unary):
            if e.op != "-":
                fail("P300", f"'{e.op}' is not an arithmetic operation", e.span)
            v = self.evaluate(e.operand, env)
            return Val(-v.t, v.mat, v.lattice)
        if isinstance(e, ast.Binary):
            return self.binary(e, env)
        if isinstance(e, ast.Call):
            return self.call(e, env)
        if isinstance(e, ast.Generator):
            return self.generator(e, env)
        fail("P300", "this expression cannot appear in a gauge action", e.span)

    def index(self, e: ast.Index, env: Env) -> Val:
        m = self.m
        if not isinstance(e.base, ast.Name):
            fail("P300", "only fields and definitions can be indexed", e.span)
        name = e.base.id
        if name == m.link_field:
            if len(e.indices) != 2:
                fail("P302", f"a link is indexed by a site and a direction: {name}[x, mu]",
                     e.span)
            off = self.offset(e.indices[0], env)
            mu = self.direction(e.indices[1], env)
            t = self.lin.select(1 + m.d, mu)
            if self.record is not None:
                self.record.add((name, off, mu))
            return Val(translate(t, off), m.group.name == "su2", True)
        if name in m.matter_domains:
            if len(e.indices) != 1:
                fail("P302", f"a site field is indexed by one site: {name}[x]", e.span)
            off = self.offset(e.indices[0], env)
            if self.record is not None:
                self.record.add((name, off, None))
            return Val(translate(self.matter[name], off), False, True)
        d = m.ir.definitions.get(name)
        if d is not None and d.indices:
            if len(e.indices) != len(d.indices):
                fail("P302", f"'{name}' takes {len(d.indices)} indices", e.span)
            inner = Env()
            for formal, actual in zip(d.indices, e.indices):
                if not isinstance(formal, ast.Name):
                    fail("P300", "definition indices must be names", formal.span)
                if formal.id in m.site_names(d):
                    inner.sites[formal.id] = self.offset(actual, env)
                else:
                    inner.dirs[formal.id] = self.direction(actual, env)
            self.depth += 1
            if self.depth > 32:
                fail("P400", f"'{name}' refers to itself", e.span)
            try:
                return self.evaluate(d.expr, inner)
            finally:
                self.depth -= 1
        fail("P202", f"'{name}' cannot be indexed in a gauge action", e.span)

    def binary(self, e: ast.Binary, env: Env) -> Val:
        a, b = self.evaluate(e.left, env), self.evaluate(e.right, env)
        lat = a.lattice or b.lattice
        if e.op == "*":
            if a.mat and b.mat:
                return Val(a.t @ b.t, True, lat)
            return Val(_mul(a, b), a.mat or b.mat, lat)
        if e.op in "+-":
            if a.mat != b.mat:
                fail("P300", "cannot add a matrix and a number", e.span,
                     "take a trace first: re(trace(P)) / 2")
            ta, tb = _broadcast(a, b)
            return Val(ta + tb if e.op == "+" else ta - tb, a.mat, lat)
        if e.op == "/":
            if b.mat:
                fail("P300", "cannot divide by a matrix", e.right.span)
            return Val(_mul(a, Val(1 / b.t if not isinstance(b.t, Tensor) else 1 / b.t,
                                   False, b.lattice)), a.mat, lat)
        if e.op == "^":
            if a.mat or b.mat or isinstance(b.t, Tensor):
                fail("P300", "powers take a number and a constant exponent", e.span)
            return Val(a.t ** b.t, False, lat)
        fail("P300", f"'{e.op}' cannot appear in an action", e.span)

    def call(self, e: ast.Call, env: Env) -> Val:
        if e.kwargs or len(e.args) != 1:
            fail("P302", f"{e.func} takes one argument", e.span)
        v = self.evaluate(e.args[0], env)
        f = e.func
        t = v.t
        if f == "trace":
            if not v.mat:
                return v
            return Val(t[..., 0, 0] + t[..., 1, 1], False, v.lattice)
        if f == "dagger":
            if v.mat:
                return Val(t.conj().transpose(-1, -2), True, v.lattice)
            return Val(_conj(t), False, v.lattice)
        if f == "conj":
            return Val(_conj(t), v.mat, v.lattice)
        if v.mat:
            fail("P300", f"{f}() of an SU(2) matrix", e.span,
                 "take the trace first: re(trace(P)) / 2 is Re tr P / N")
        if f == "re":
            return Val(t.real if isinstance(t, Tensor) else complex(t).real, False, v.lattice)
        if f == "im":
            return Val(t.imag if isinstance(t, Tensor) and t.is_complex()
                       else (torch.zeros_like(t) if isinstance(t, Tensor) else complex(t).imag),
                       False, v.lattice)
        fns: dict[str, Callable] = {
            "abs": torch.abs, "exp": torch.exp, "log": torch.log, "sqrt": torch.sqrt,
            "cos": torch.cos, "sin": torch.sin, "tan": torch.tan, "tanh": torch.tanh,
            "cosh": torch.cosh, "sinh": torch.sinh, "arg": torch.angle, "sign": torch.sign,
        }
        if f not in fns:
            fail("P300", f"{f}() cannot appear in a gauge action", e.func_span)
        if not isinstance(t, Tensor):
            t = torch.as_tensor(t, dtype=torch.complex128 if isinstance(t, complex)
                                else torch.float64)
        return Val(fns[f](t), False, v.lattice)

    def generator(self, e: ast.Generator, env: Env) -> Val:
        if e.func != "sum":
            fail("P800", f"{e.func}(...) is not supported in gauge actions yet", e.func_span,
                 "use sum(...)")
        d = self.m.d
        site_vars: list[str] = []
        assignments: list[dict[str, int]] = [{}]
        for loop in e.loops:
            dom = loop.domain
            dname = dom.id if isinstance(dom, ast.Name) else None
            names = loop.names
            if dom is None:
                if len(names) != 1:
                    fail("P300", "a bare 'for' binds one direction: for mu", loop.span)
                new = [{names[0]: mu} for mu in range(d)]
            elif dname == "sites":
                if len(names) != 1:
                    fail("P302", "sites bind one name: for x in sites", loop.span)
                site_vars.append(names[0])
                new = [{}]
            elif dname == "links":
                if len(names) != 2:
                    fail("P302", "links bind a site and a direction: for (x, mu) in links",
                         loop.span)
                site_vars.append(names[0])
                new = [{names[1]: mu} for mu in range(d)]
            elif dname == "plaquettes":
                if len(names) == 1 and d == 2:
                    site_vars.append(names[0])
                    new = [{}]
                elif len(names) == 3:
                    site_vars.append(names[0])
                    new = [{names[1]: mu, names[2]: nu} for mu, nu in planes(d)]
                else:
                    fail("P302", "plaquettes bind a site and a plane: "
                         "for (x, mu, nu) in plaquettes (mu < nu)", loop.span)
            else:
                fail("P300", "gauge sums run over sites, links, plaquettes or directions",
                     loop.span, "for x in sites / for (x, mu) in links / "
                     "for (x, mu, nu) in plaquettes / for mu")
            assignments = [{**a, **b} for a in assignments for b in new]
        if len(site_vars) > 1:
            fail("P800", "a sum binds at most one site", e.span)
        total: Any = 0
        lattice = False
        keep = self.keep_sites and bool(site_vars)
        if keep:
            if self.site_sums:
                fail("P502", "nested sums over sites are not a local action density", e.span)
            self.site_sums += 1
        try:
            for a in assignments:
                inner = Env(dict(env.sites), {**env.dirs, **a})
                for s in site_vars:
                    inner.sites[s] = (0,) * d
                v = self.evaluate(e.body, inner)
                if v.mat:
                    fail("P300", "the sum of matrices is not a number", e.body.span,
                         "take the trace: re(trace(P)) / 2")
                t = v.t
                if keep:
                    # density mode: the summand as a field (B, L...), constants broadcast
                    if not v.lattice:
                        if isinstance(t, Tensor):
                            t = t.reshape(t.shape + (1,) * d)
                        t = t * torch.ones((self.B, *self.m.shape), dtype=torch.float64,
                                           device=self.lin.device)
                    lattice = True
                elif site_vars:
                    t = t.flatten(1, d).sum(1) if v.lattice else t * self.m.n_sites
                else:
                    lattice = lattice or v.lattice
                total = total + t
        finally:
            if keep:
                self.site_sums -= 1
        return Val(total, False, lattice)


def _conj(t: Any) -> Any:
    if isinstance(t, Tensor):
        return t.conj() if t.is_complex() else t
    return complex(t).conjugate() if isinstance(t, complex) else t


def _broadcast(a: Val, b: Val) -> tuple[Any, Any]:
    """Per-configuration values (B,) against lattice fields (B, L...)."""
    ta, tb = a.t, b.t
    if isinstance(ta, Tensor) and isinstance(tb, Tensor) and ta.dim() != tb.dim():
        if a.lattice and not b.lattice:
            tb = tb.reshape(tb.shape + (1,) * (ta.dim() - tb.dim()))
        elif b.lattice and not a.lattice:
            ta = ta.reshape(ta.shape + (1,) * (tb.dim() - ta.dim()))
    return ta, tb


def _mul(a: Val, b: Val) -> Any:
    ta, tb = _broadcast(a, b)
    if a.mat and not b.mat and isinstance(tb, Tensor):
        tb = tb[..., None, None]
    if b.mat and not a.mat and isinstance(ta, Tensor):
        ta = ta[..., None, None]
    return ta * tb


# ---------------------------------------------------------------- the compiled model


@dataclass
class Term:
    """One additive term of the action: sign * expr."""

    sign: int
    expr: ast.Expr
    text: str
    pure_gauge: bool


def split_terms(e: ast.Expr, sign: int = 1) -> list[tuple[int, ast.Expr]]:
    if isinstance(e, ast.Binary) and e.op in "+-":
        return split_terms(e.left, sign) + split_terms(e.right, sign if e.op == "+" else -sign)
    return [(sign, e)]


def _names(e: Any) -> set[str]:
    out: set[str] = set()
    if isinstance(e, ast.Name):
        out.add(e.id)
    elif isinstance(e, ast.Expr | ast.Loop | ast.Keyword):
        for v in vars(e).values():
            if isinstance(v, list):
                for x in v:
                    out |= _names(x)
            else:
                out |= _names(v)
    return out


class GaugeModel:
    """A compiled lattice gauge model (see the module docstring)."""

    def __init__(self, ir: ModelIR, **_options: Any):
        self.ir = ir
        links = [f for f in ir.fields.values() if f.on == "links"]
        if len(links) != 1:
            fail("P400", "a gauge model has exactly one link field", links[1].span)
        lf = links[0]
        if lf.domain.kind not in GAUGE_GROUPS:
            fail("P301", f"a link field takes a gauge group, not '{lf.domain}'", lf.span,
                 "groups: " + ", ".join(sorted(GAUGE_GROUPS)))
        self.link_field = lf.name
        self.group = get_group(lf.domain.kind)
        lat = ir.lattice
        if lat is None or lat.complete or lat.kind not in GAUGE_LATTICES:
            fail("P400", "gauge fields live on hypercubic lattices", lf.span,
                 "lattice square(L, L), cubic(L, L, L) or hypercubic(L, L, L, T)")
        if not lat.all_periodic:
            fail("P400", "gauge models need periodic boundaries", lf.span)
        self.d = lat.dim
        if self.d < 2:
            fail("P400", "a gauge model needs at least 2 dimensions (plaquettes)", lf.span)
        self.shape = tuple(lat.shape)
        self.n_sites = lat.n_sites
        self.matter_domains: dict[str, str] = {}
        for f in ir.fields.values():
            if f.on != "sites":
                continue
            if f.domain.kind not in MATTER[self.group.name]:
                ok = ", ".join(sorted(MATTER[self.group.name])) or "none yet"
                fail("P301", f"matter field '{f.name}: {f.domain}' cannot couple to "
                     f"{self.group.name} links", f.span, f"matter domains for "
                     f"{self.group.name}: {ok}")
            self.matter_domains[f.name] = "u1" if f.domain.kind == "u1" else "z2"
        act = ir.energy
        if act is None:
            fail("P400", f"gauge model {ir.name} declares no action", ir.span,
                 "add e.g. 'action S = -beta * sum(re(P[x]) for x in sites)'")
        self.action_def = act
        self.terms = [Term(s, e, span_text(e.span),
                           not (_names(e) & set(self.matter_domains)))
                      for s, e in split_terms(act.expr)]
        self.real_dtype = torch.float64
        # Evaluate once on a random configuration: type errors surface at compile time.
        g = torch.Generator().manual_seed(0)
        U, matter = self.random_configuration(2, g)
        for t in self.terms:
            v = self.term_value(t, U, matter)
            if v.is_complex() and float(v.imag.abs().max()) > 1e-9 * (1 + float(v.abs().max())):
                fail("P300", f"the action term '{t.text}' is complex", t.expr.span,
                     "take the real part: re(...)")
        self.wilson_beta = self._match_wilson(g)
        self.plaquette_defs = self._match_plaquettes(g)
        self.symmetry_report = self.check_symmetries()

    # -------------------------------------------------------------- helpers
    def site_names(self, d) -> set[str]:
        """Index names of a definition that are sites: the first index; the rest directions."""
        return {d.indices[0].id} if d.indices and isinstance(d.indices[0], ast.Name) else set()

    @property
    def pure(self) -> bool:
        return not self.matter_domains

    @property
    def is_wilson(self) -> bool:
        return self.wilson_beta is not None and self.pure

    def random_configuration(self, batch: int, generator: torch.Generator,
                             shape: tuple[int, ...] | None = None):
        shape = shape or self.shape
        U = self.group.random((batch, *shape, len(shape)), generator)
        matter = {}
        for name, dom in self.matter_domains.items():
            matter[name] = get_group(dom).random((batch, *shape), generator)
        return U, matter

    def term_value(self, term: Term, U: Tensor, matter: dict[str, Tensor]) -> Tensor:
        v = Evaluator(self, U, matter).evaluate(term.expr, Env())
        t = v.t
        if v.mat:
            fail("P300", f"the action term '{term.text}' is a matrix", term.expr.span,
                 "take the trace: re(trace(P)) / 2")
        if not isinstance(t, Tensor):
            t = torch.full((U.shape[0],), complex(t).real, dtype=torch.float64)
        if v.lattice or t.dim() != 1:
            fail("P300", f"the action term '{term.text}' is not summed over the lattice",
                 term.expr.span, "wrap it in sum(... for x in sites)")
        return term.sign * t

    def action(self, U: Tensor, matter: dict[str, Tensor] | None = None) -> Tensor:
        """S(U, matter) per configuration: (B,) real."""
        matter = matter or {}
        if self.is_wilson:
            from physml_lang.runtime.gauge.lattice import wilson_action

            return wilson_action(U, self.group, self.wilson_beta)
        total = sum(self.term_value(t, U, matter) for t in self.terms)
        return total.real if total.is_complex() else total

    def generic_action(self, U: Tensor, matter: dict[str, Tensor] | None = None) -> Tensor:
        """The action evaluated term by term from the declared expression (no matching)."""
        total = sum(self.term_value(t, U, matter or {}) for t in self.terms)
        return total.real if total.is_complex() else total

    # -------------------------------------------------------------- matching
    def _match_wilson(self, g: torch.Generator) -> float | None:
        """beta if the pure-gauge terms sum to -beta sum Re tr P / N (checked on 3 random
        configurations, relative 1e-10), else None."""
        pure = [t for t in self.terms if t.pure_gauge]
        if not pure:
            return None
        U, matter = self.random_configuration(3, g)
        s = sum(self.term_value(t, U, matter) for t in pure)
        s = s.real if s.is_complex() else s
        w = plaquette_field(U, self.group).flatten(1).sum(1)
        c = float(s[0] / w[0])
        if not math.isfinite(c):
            return None
        c = float(f"{c:.12g}")  # the ratio carries rounding noise; the check below validates
        err = float((s - c * w).abs().max())
        if err > 1e-10 * (1 + float(s.abs().max())):
            return None
        return -c

    def _match_plaquettes(self, g: torch.Generator) -> dict[str, str]:
        """Which plaquette definitions equal the runtime's P_{mu nu}(x) (every plane)."""
        out = {}
        U, matter = self.random_configuration(2, g)
        ref = plaquettes(U, self.group)  # (B, L..., n_planes, *lin)
        for name, d in self.ir.definitions.items():
            if d.kind != "plaquette":
                continue
            n = len(d.indices)
            if n not in (1, 3) or (n == 1 and self.d != 2):
                out[name] = "custom"
                continue
            ok = True
            ev = Evaluator(self, U, matter)
            try:
                for k, (mu, nu) in enumerate(planes(self.d)):
                    env = Env({d.indices[0].id: (0,) * self.d},
                              {} if n == 1 else {d.indices[1].id: mu, d.indices[2].id: nu})
                    v = ev.evaluate(d.expr, env)
                    r = ref.select(1 + self.d, k)
                    if not isinstance(v.t, Tensor) or v.t.shape != r.shape or \
                            float((v.t - r).abs().max()) > 1e-10:
                        ok = False
            except PhysmlError:
                ok = False
            out[name] = "standard" if ok else "custom"
        return out

    # -------------------------------------------------------------- symmetries
    def check_symmetries(self) -> list[str]:
        """Verify the declared symmetries; P500 naming the first term that breaks one."""
        report = []
        for sym in self.ir.symmetries:
            if not sym.active:
                continue
            if sym.name == "gauge":
                report.append(self.check_gauge(sym.span))
            elif sym.name == "translation":
                report.append(self.check_translation(sym.span))
            else:
                fail("P501", f"symmetry {sym.name} is not available for gauge models", sym.span,
                     "gauge models declare: gauge, translation")
        return report

    def gauge_transform_matter(self, matter: dict[str, Tensor], omega: Tensor):
        out = {}
        for k, v in matter.items():
            out[k] = self.group.multiply(omega, v)  # z2: sign; u1: angle shift
        return out

    def check_gauge(self, span: Span | None) -> str:
        """Each term: symbolically (abelian charge balance of monomials) where possible,
        numerically otherwise (3 random configurations x 3 random gauge transformations)."""
        symbolic, numeric = 0, 0
        g = torch.Generator().manual_seed(12345)
        for t in self.terms:
            ch = charges(t.expr, self) if self.group.name in ("u1", "z2") else None
            if ch is not None and all(v == 0 for v in ch.values()):
                symbolic += 1
                continue
            U, matter = self.random_configuration(3, g)
            base = self.term_value(t, U, matter)
            worst = 0.0
            for _ in range(3):
                om = random_gauge(self.group, (3, *self.shape), g)
                gU = gauge_transform(U, om, self.group)
                val = self.term_value(t, gU, self.gauge_transform_matter(matter, om))
                worst = max(worst, float((val - base).abs().max()))
            scale = 1 + float(base.abs().max())
            if worst > 1e-8 * scale:
                fail("P500", f"symmetry gauge does not hold: the term '{t.text}' changes by "
                     f"{worst:.3g} under a random gauge transformation", t.expr.span,
                     "gauge-invariant terms are traces of closed loops of links (plaquettes, "
                     "Wilson loops) or matter fields joined by links: phi[x] * U[x, mu] * "
                     "phi[x + e_mu]")
            numeric += 1
        return (f"gauge invariance verified ({symbolic} term(s) symbolically, {numeric} "
                f"numerically)")

    def check_translation(self, span: Span | None) -> str:
        g = torch.Generator().manual_seed(54321)
        U, matter = self.random_configuration(2, g)
        base = self.generic_action(U, matter)
        shift = tuple(1 + k for k in range(self.d))
        val = self.generic_action(translate(U, shift),
                                  {k: translate(v, shift) for k, v in matter.items()})
        if float((val - base).abs().max()) > 1e-8 * (1 + float(base.abs().max())):
            fail("P500", "symmetry translation does not hold for the action", span)
        return "translation invariance verified numerically"

    # -------------------------------------------------------------- presentation
    def describe(self) -> str:
        dims = "x".join(str(n) for n in self.shape)
        kind = (f"Wilson action (beta = {self.wilson_beta:g}, matched to runtime wilson_action)"
                if self.wilson_beta is not None else "generic action (evaluated from the "
                "declared expression)")
        if self.matter_domains:
            kind += f" + matter {', '.join(self.matter_domains)}"
        checks = "; ".join(self.symmetry_report)
        return (f"gauge model, {self.group.name} links on a periodic {dims} lattice (d = "
                f"{self.d}), {kind}" + (f"; {checks}" if checks else ""))

    def emit_torch(self) -> str:
        lines = ["import torch", "from physml_lang.runtime.gauge import wilson_action",
                 "from physml_lang.runtime.gauge.lattice import plaquette_field", ""]
        if self.is_wilson:
            lines += ["def action(U):",
                      f"    # U: (B, {', '.join(f'L{k}' for k in range(self.d))}, {self.d}"
                      f"{', 2, 2' if self.group.name == 'su2' else ''}) in "
                      f"{self.group.name} storage form",
                      f"    return wilson_action(U, {self.group.name!r}, "
                      f"{float(self.wilson_beta)!r})"]
        else:
            lines += ["# generic action: evaluated term by term from the declared expression",
                      "# by physml_lang.compiler.gauge.Evaluator (shifted-tensor stencils)"]
            for t in self.terms:
                lines.append(f"#   {'+' if t.sign > 0 else '-'} {t.text}")
        return "\n".join(lines) + "\n"

    def emit_sympy(self) -> str:
        out = [f"action {self.action_def.name} = {span_text(self.action_def.expr.span)}"]
        if self.wilson_beta is not None:
            out.append(f"  = -{self.wilson_beta:g} * Sum(Re tr P_mu_nu(x) / {self.group.N}, "
                       "(x, mu < nu))")
        for name, how in self.plaquette_defs.items():
            out.append(f"plaquette {name}: {how}")
        return "\n".join(out) + "\n"


# ---------------------------------------------------------------- symbolic gauge check


def charges(e: ast.Expr, m: GaugeModel) -> dict | None:
    """Abelian gauge charge of an expression, or None when not decidable structurally.

    Under U_mu(x) -> w_x U w_{x+mu}^* a link carries +1 at x and -1 at x + e_mu; matter +1 at
    its site; conj/dagger flip; products add (mod 2 for z2). Offsets stay symbolic (sums of the
    bound site and unit vectors e0, e_mu, ...), and definitions with indices (plaquettes) are
    inlined with their actual indices, so one check covers every x and every direction. Zero
    charge everywhere proves invariance; anything else is left to the numerical check.
    """
    mod = 2 if m.group.name == "z2" else 0

    def norm(c: dict) -> dict:
        out = {}
        for k, v in c.items():
            v = v % mod if mod else v
            if v:
                out[k] = v
        return out

    def combine(a: tuple, b: tuple, s: int) -> tuple:
        acc: dict = dict(a)
        for k, v in b:
            acc[k] = acc.get(k, 0) + s * v
        return tuple(sorted((k, v) for k, v in acc.items() if v))

    def dir_token(x: ast.Expr, sub: dict) -> str | None:
        if isinstance(x, ast.Number) and isinstance(x.value, int):
            return f"e{x.value}"
        if isinstance(x, ast.Name):
            return sub["dirs"].get(x.id, f"e_{x.id}")
        return None

    def off(x: ast.Expr, sub: dict) -> tuple | None:
        if isinstance(x, ast.Name):
            if x.id in sub["sites"]:
                return sub["sites"][x.id]
            if x.id.startswith("e_"):
                return ((sub["dirs"].get(x.id[2:], x.id), 1),)
            return ((x.id, 1),)
        if isinstance(x, ast.Binary) and x.op in "+-":
            a, b = off(x.left, sub), off(x.right, sub)
            if a is None or b is None:
                return None
            return combine(a, b, 1 if x.op == "+" else -1)
        return None

    def rec(x: ast.Expr, sub: dict, depth: int = 0) -> dict | None:
        if depth > 16:
            return None
        if isinstance(x, ast.Number | ast.Imaginary):
            return {}
        if isinstance(x, ast.Name):
            if x.id in m.ir.params or x.id in ("pi", "I"):
                return {}
            return None
        if isinstance(x, ast.Index) and isinstance(x.base, ast.Name):
            name = x.base.id
            if name == m.link_field and len(x.indices) == 2:
                o, u = off(x.indices[0], sub), dir_token(x.indices[1], sub)
                if o is None or u is None:
                    return None
                return norm({o: 1, combine(o, ((u, 1),), 1): -1})
            if name in m.matter_domains and len(x.indices) == 1:
                o = off(x.indices[0], sub)
                return None if o is None else {o: 1}
            d = m.ir.definitions.get(name)
            if d is None or len(d.indices) != len(x.indices) or not d.indices:
                return None
            if not all(isinstance(i, ast.Name) for i in d.indices):
                return None
            o = off(x.indices[0], sub)
            dirs = [dir_token(i, sub) for i in x.indices[1:]]
            if o is None or None in dirs:
                return None
            inner = {"sites": {d.indices[0].id: o},
                     "dirs": {f.id: t for f, t in zip(d.indices[1:], dirs)}}
            return rec(d.expr, inner, depth + 1)
        if isinstance(x, ast.Unary) and x.op == "-":
            return rec(x.operand, sub, depth)
        if isinstance(x, ast.Binary):
            a, b = rec(x.left, sub, depth), rec(x.right, sub, depth)
            if a is None or b is None:
                return None
            if x.op == "*":
                c = dict(a)
                for k, v in b.items():
                    c[k] = c.get(k, 0) + v
                return norm(c)
            if x.op in "+-":
                return a if a == b else None
            if x.op == "/":
                return a if not b else None
            if x.op == "^":
                return a if not a and not b else None
            return None
        if isinstance(x, ast.Call) and len(x.args) == 1:
            a = rec(x.args[0], sub, depth)
            if a is None:
                return None
            if x.func in ("conj", "dagger"):
                return norm({k: -v for k, v in a.items()})
            if x.func == "trace":
                return a
            return a if not a else None  # f(invariant) is invariant; f(charged): numerics
        if isinstance(x, ast.Generator):
            return rec(x.body, sub, depth)
        return None

    return rec(e, {"sites": {}, "dirs": {}})


def compile_gauge(ir: ModelIR, **options: Any) -> GaugeModel:
    return GaugeModel(ir, **options)


__all__ = ["GaugeModel", "Evaluator", "compile_gauge", "is_gauge_model", "is_gauge_node",
           "lattice_dim"]
