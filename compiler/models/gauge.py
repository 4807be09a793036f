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

from physml_lang.compiler.instance import ModelInstance
from physml_lang.diagnostics import Diagnostic, PhysmlError, Span
from physml_lang.ir import expr as E
from physml_lang.ir.model import GAUGE_GROUPS
from physml_lang.ir.walk import Walker, additive_terms, int_literal, name_of, names_in
from physml_lang.runtime.gauge.groups import get_group
from physml_lang.runtime.gauge.lattice import lattice_dim, planes, plaquette_field, plaquettes
from physml_lang.runtime.gauge.transforms import gauge_transform, random_gauge, translate

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


class Evaluator(Walker[Val]):
    """Evaluates a gauge-model expression on concrete link and matter tensors."""

    what = "a gauge action"

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

    def evaluate(self, e: E.Expr, env: Env) -> Val:
        return self.walk(e, env)

    def not_here(self, e: E.Expr, what: str = "this"):
        return PhysmlError(Diagnostic("P300", "this expression cannot appear in a gauge action",
                                      e.span))  # fmt: skip

    # -------------------------------------------------------------- index arithmetic
    def offset(self, e: E.Expr, env: Env) -> Offset:
        return _Offset(self, env).walk(e)

    def unit(self, name: str, env: Env, span) -> Offset | None:
        d = self.m.d
        mu: int | None = None
        if name.startswith("e_") and name[2:] in env.dirs:
            mu = env.dirs[name[2:]]
        elif len(name) >= 2 and name[0] == "e" and name[1:].isdigit():
            mu = int(name[1:])
            if mu >= d:
                fail("P400", f"{name} is not a direction of a {d}-dimensional lattice", span,
                     f"directions are 0 .. {d - 1}")
        if mu is None:
            return None
        return tuple(1 if k == mu else 0 for k in range(d))

    def direction(self, e: E.Expr, env: Env) -> int:
        name = name_of(e)
        if name is not None and name in env.dirs:
            return env.dirs[name]
        v = self.scalar(e, env)
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v < self.m.d:
            fail("P400", f"a direction is an integer 0 .. {self.m.d - 1}", e.span)
        return v

    def scalar(self, e: E.Expr, env: Env) -> Any:
        v = self.walk(e, env)
        if isinstance(v.t, Tensor):
            fail("P300", "a constant is needed here", e.span)
        return v.t

    # -------------------------------------------------------------- expressions
    def on_number(self, e: E.Num, env: Env) -> Val:
        return Val(e.value)

    def on_imaginary(self, e: E.Imag, env: Env) -> Val:
        return Val(complex(0, e.value))

    def on_name(self, e: E.Name, env: Env) -> Val:
        m = self.m
        if e.id in m.model.params:
            return Val(m.model.params[e.id])
        if e.id == "pi":
            return Val(math.pi)
        if e.id == "I":
            return Val(1j)
        if e.id in m.model.definitions and not m.model.definitions[e.id].indices:
            return self.walk(m.model.definitions[e.id].expr, Env())
        if e.id in m.model.fields:
            fail("P302", f"'{e.id}' needs indices: {e.id}[x" +
                 (", mu]" if m.model.fields[e.id].on == "links" else "]"), e.span)
        fail("P300", f"'{e.id}' cannot be used as a value here", e.span)

    def on_unary(self, e: E.Unary, env: Env) -> Val:
        if e.op != "-":
            fail("P300", f"'{e.op}' is not an arithmetic operation", e.span)
        v = self.walk(e.operand, env)
        return Val(-v.t, v.mat, v.lattice)

    def on_index(self, e: E.Index, env: Env) -> Val:
        m = self.m
        name = name_of(e.base)
        if name is None:
            fail("P300", "only fields and definitions can be indexed", e.span)
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
        d = m.model.definitions.get(name)
        if d is not None and d.indices:
            if len(e.indices) != len(d.indices):
                fail("P302", f"'{name}' takes {len(d.indices)} indices", e.span)
            inner = Env()
            for formal, actual in zip(d.indices, e.indices):
                if formal in m.site_names(d):
                    inner.sites[formal] = self.offset(actual, env)
                else:
                    inner.dirs[formal] = self.direction(actual, env)
            self.depth += 1
            if self.depth > 32:
                fail("P400", f"'{name}' refers to itself", e.span)
            try:
                return self.walk(d.expr, inner)
            finally:
                self.depth -= 1
        fail("P202", f"'{name}' cannot be indexed in a gauge action", e.span)

    def on_binary(self, e: E.Binary, env: Env) -> Val:
        a, b = self.walk(e.left, env), self.walk(e.right, env)
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
            if not isinstance(b.t, Tensor) and b.t == 0:
                fail("P400", "division by zero", e.right.span)
            return Val(_mul(a, Val(1 / b.t, False, b.lattice)), a.mat, lat)
        if e.op == "^":
            if a.mat or b.mat or isinstance(b.t, Tensor):
                fail("P300", "powers take a number and a constant exponent", e.span)
            return Val(a.t ** b.t, False, lat)
        fail("P300", f"'{e.op}' cannot appear in an action", e.span)

    def on_call(self, e: E.Call, env: Env) -> Val:
        if e.kwargs or len(e.args) != 1:
            fail("P302", f"{e.func} takes one argument", e.span)
        v = self.walk(e.args[0], env)
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
        if f not in _TORCH_FUNCTIONS:
            fail("P300", f"{f}() cannot appear in a gauge action", e.func_span)
        if not isinstance(t, Tensor):
            t = torch.as_tensor(t, dtype=torch.complex128 if isinstance(t, complex)
                                else torch.float64)
        return Val(_TORCH_FUNCTIONS[f](t), False, v.lattice)

    def on_reduce(self, e: E.Reduce, env: Env) -> Val:
        if e.func != "sum":
            fail("P800", f"{e.func}(...) is not supported in gauge actions yet", e.func_span,
                 "use sum(...)")
        d = self.m.d
        site_vars: list[str] = []
        assignments: list[dict[str, int]] = [{}]
        for loop in e.loops:
            dom = loop.domain
            dname = name_of(dom)
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
                v = self.walk(e.body, inner)
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


_TORCH_FUNCTIONS: dict[str, Callable] = {
    "abs": torch.abs, "exp": torch.exp, "log": torch.log, "sqrt": torch.sqrt,
    "cos": torch.cos, "sin": torch.sin, "tan": torch.tan, "tanh": torch.tanh,
    "cosh": torch.cosh, "sinh": torch.sinh, "arg": torch.angle, "sign": torch.sign,
}  # fmt: skip


class _Offset(Walker[Offset]):
    """A site index as an offset from the bound site: x, x + e0, x - e_mu + e_nu, x + 2 * e1."""

    def __init__(self, ev: Evaluator, env: Env):
        self.ev = ev
        self.env = env
        self.d = ev.m.d

    def not_here(self, e: E.Expr, what: str = "this"):
        return PhysmlError(Diagnostic(
            "P300", "this is not a site index", e.span,
            "write a bound site plus unit vectors: x, x + e0, x - e_mu + e_nu, x + 2 * e1"))

    def on_name(self, e: E.Name, env) -> Offset:
        if e.id in self.env.sites:
            return self.env.sites[e.id]
        unit = self.ev.unit(e.id, self.env, e.span)
        if unit is not None:
            return unit
        fail("P202", f"'{e.id}' is not a site here", e.span,
             "a site index is a bound site plus unit vectors: x + e0 or x + e_mu")

    def on_binary(self, e: E.Binary, env) -> Offset:
        if e.op in ("+", "-"):
            a, b = self.walk(e.left), self.walk(e.right)
            s = 1 if e.op == "+" else -1
            return tuple(p + s * q for p, q in zip(a, b))
        k = int_literal(e.left)
        if e.op == "*" and k is not None:
            return tuple(k * p for p in self.walk(e.right))
        raise self.not_here(e)

    def on_unary(self, e: E.Unary, env) -> Offset:
        if e.op != "-":
            raise self.not_here(e)
        return tuple(-p for p in self.walk(e.operand))

    def on_number(self, e: E.Num, env) -> Offset:
        if e.value == 0:
            return (0,) * self.d
        raise self.not_here(e)


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
    expr: E.Expr
    text: str
    pure_gauge: bool


class GaugeModel:
    """A compiled lattice gauge model (see the module docstring)."""

    kind = "gauge"

    def __init__(self, model: ModelInstance, **_options: Any):
        self.model = model
        self.ir = ir = model.ir
        links = [f for f in model.fields.values() if f.on == "links"]
        if len(links) != 1:
            fail("P400", "a gauge model has exactly one link field", links[1].span)
        lf = links[0]
        if lf.domain.kind not in GAUGE_GROUPS:
            fail("P301", f"a link field takes a gauge group, not '{lf.domain}'", lf.span,
                 "groups: " + ", ".join(sorted(GAUGE_GROUPS)))
        self.link_field = lf.name
        self.group = get_group(lf.domain.kind)
        lat = model.lattice
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
        for f in model.fields.values():
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
                           not (names_in(e) & set(self.matter_domains)))
                      for s, e in additive_terms(act.expr, keep_negations=True)]
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
        return {d.indices[0]} if d.indices else set()

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
        for name, d in self.model.definitions.items():
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
                    env = Env({d.indices[0]: (0,) * self.d},
                              {} if n == 1 else {d.indices[1]: mu, d.indices[2]: nu})
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
        for sym in self.model.symmetries:
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
                      "# by physml_lang.compiler.models.gauge.Evaluator (shifted-tensor stencils)"]
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


def charges(e: E.Expr, m: GaugeModel) -> dict | None:
    """Abelian gauge charge of an expression, or None when not decidable structurally.

    Under U_mu(x) -> w_x U w_{x+mu}^* a link carries +1 at x and -1 at x + e_mu; matter +1 at
    its site; conj/dagger flip; products add (mod 2 for z2). Offsets stay symbolic (sums of the
    bound site and unit vectors e0, e_mu, ...), and definitions with indices (plaquettes) are
    inlined with their actual indices, so one check covers every x and every direction. Zero
    charge everywhere proves invariance; anything else is left to the numerical check.
    """
    return _Charges(m).walk(e, {"sites": {}, "dirs": {}, "depth": 0})


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
    def __init__(self, m: GaugeModel):
        self.m = m
        self.mod = 2 if m.group.name == "z2" else 0

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
        if e.id in self.m.model.params or e.id in ("pi", "I"):
            return {}
        return None

    def on_index(self, x: E.Index, sub) -> dict | None:
        if sub["depth"] > 16:
            return None
        m = self.m
        name = name_of(x.base)
        if name is None:
            return None
        off = _SymbolicOffset()
        if name == m.link_field and len(x.indices) == 2:
            try:
                o = off.walk(x.indices[0], sub)
            except _Undecided:
                return None
            u = _dir_token(x.indices[1], sub)
            if u is None:
                return None
            return self.norm({o: 1, _combine(o, ((u, 1),), 1): -1})
        if name in m.matter_domains and len(x.indices) == 1:
            try:
                return {off.walk(x.indices[0], sub): 1}
            except _Undecided:
                return None
        d = m.model.definitions.get(name)
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


def compile_gauge(model: ModelInstance, **options: Any) -> GaugeModel:
    return GaugeModel(model, **options)


__all__ = ["GaugeModel", "Evaluator", "compile_gauge",
           "lattice_dim"]
