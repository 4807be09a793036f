"""Lowering of gauge-model expressions to arrays: link-valued stencils on shifted arrays.

The action of a gauge model is a function of the links in their *linear* form, lin (B, L_1..L_d,
d, *lin_shape): the float +-1 (z2), the phase exp(i theta) (u1) or the 2x2 matrix (su2), and of
matter fields (B, L_1..L_d) (u1 matter as phases). :class:`Evaluator` walks an expression of the
IR and returns its value on concrete arrays, vectorised over the batch and the lattice (loops run
only over directions). It is the same walk for every array library: :class:`LinkArrays` supplies
the operations, numpy here (``NUMPY_LINKS``: the torch-free checks of
``compiler/derive/gauge.py``), torch in ``compiler/models/gauge.py`` (runs).

- ``U[x + e0 - e1, mu]`` is the link x+e0-e1 -> x+e0-e1+e_mu in linear form, read by
  translating lin.
- ``*`` multiplies (matrix product for su2), ``conj`` conjugates elementwise, ``dagger`` is the
  conjugate transpose, ``trace`` the matrix trace, ``re``/``im`` real/imaginary parts; other
  functions are the lowering's backend ops (backends.py), so there is one function table.
- A definition with indices (a plaquette ``P[x, mu, nu]``) is inlined where it is used.
- Sums: ``for x in sites``, ``for (x, mu) in links``, ``for (x, mu, nu) in plaquettes``
  (mu < nu), ``for mu`` (a direction).

Matrix-valued links have no sympy counterpart that derivation needs (forces come from the
runtime's staples or autograd), so this lowering goes from the IR straight to arrays, with
the same walker as every other stage. Density mode (``keep_sites``) keeps a site sum's summand
as a lattice field and records the stencil of every access, for local updates.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from physml_lang.compiler.geometry import plaquette_planes, roll_arguments
from physml_lang.diagnostics import Diagnostic, PhysmlError, Span
from physml_lang.ir import expr as E
from physml_lang.ir.walk import Walker, int_literal, name_of

from .backends import NUMPY, Backend

if TYPE_CHECKING:
    from physml_lang.compiler.derive.gauge import GaugeDerivation

Offset = tuple[int, ...]


planes = plaquette_planes


def fail(code: str, msg: str, span: Span | None, hint: str | None = None):
    raise PhysmlError(Diagnostic(code, msg, span, hint))


@dataclass(frozen=True)
class LinkArrays:
    """The array operations the evaluator calls, for one array library.

    ``functions`` is the lowering's backend (elementary functions, ``real``, ``imag``);
    ``arrays`` the array types (a value of another type is a plain number); ``roll(f, k,
    axis)``, ``take(f, i, axis)``; ``lattice_sum(t, d)`` sums a field (B, L_1..L_d, ...) over
    its d lattice axes to (B, ...); ``ones(shape, like)``; ``as_array(number)`` a 0-d float64 or
    complex128 array; ``apply(op, t)`` a backend op on an array (an array out);
    ``conj``/``dagger`` of arrays (dagger: conjugate transpose of the last two axes);
    ``ndim``; ``is_complex``."""

    functions: Backend
    arrays: tuple[type, ...]
    roll: Callable[[Any, int, int], Any]
    take: Callable[[Any, int, int], Any]
    lattice_sum: Callable[[Any, int], Any]
    ones: Callable[[tuple[int, ...], Any], Any]
    as_array: Callable[[complex | float], Any]
    apply: Callable[[str, Any], Any]
    conj: Callable[[Any], Any]
    dagger: Callable[[Any], Any]
    ndim: Callable[[Any], int]
    is_complex: Callable[[Any], bool]

    def is_array(self, t: Any) -> bool:
        return isinstance(t, self.arrays)

    def translate(self, f: Any, offsets: Offset) -> Any:
        """f(x + a) at x for a site- or link-indexed field (B, L_1..L_d, ...)."""
        out = f
        for shift, axis in zip(*roll_arguments(offsets)):
            out = self.roll(out, shift, axis)
        return out


NUMPY_LINKS = LinkArrays(
    NUMPY, (np.ndarray, np.generic),
    roll=lambda f, k, axis: np.roll(f, k, axis),
    take=lambda f, i, axis: np.take(f, i, axis=axis),
    lattice_sum=lambda t, d: t.reshape(t.shape[0], -1, *t.shape[1 + d:]).sum(1),
    ones=lambda shape, like: np.ones(shape, dtype=np.float64),
    as_array=lambda t: np.asarray(t, dtype=np.complex128 if isinstance(t, complex)
                                  else np.float64),
    apply=lambda op, t: np.asarray(NUMPY.ops[op](t)),
    conj=np.conj,
    dagger=lambda t: np.conj(t).swapaxes(-1, -2),
    ndim=np.ndim,
    is_complex=np.iscomplexobj,
)  # fmt: skip


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
    """Evaluates a gauge-model expression on concrete links and matter.

    ``model``: the derivation of the gauge model (group, dimension, fields, definitions).
    ``lin``: the links in linear form (B, L..., d, *lin_shape); ``matter``: {name: (B, L...)},
    u1 matter as phases exp(i phi); ``xp``: the array library of both."""

    what = "a gauge action"

    def __init__(self, model: GaugeDerivation, lin: Any, matter: dict[str, Any],
                 xp: LinkArrays = NUMPY_LINKS):  # fmt: skip
        self.m = model
        self.xp = xp
        self.lin = lin  # (B, L..., d, *lin_shape)
        self.matter = matter
        self.B = lin.shape[0]
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
        return PhysmlError(Diagnostic("P307", "this expression cannot appear in a gauge action",
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
                fail("P405", f"{name} is not a direction of a {d}-dimensional lattice", span,
                     f"directions are 0 .. {d - 1}")  # fmt: skip
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
            fail("P405", f"a direction is an integer 0 .. {self.m.d - 1}", e.span)
        return v

    def scalar(self, e: E.Expr, env: Env) -> Any:
        v = self.walk(e, env)
        if self.xp.is_array(v.t):
            fail("P307", "a constant is needed here", e.span)
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
            fail("P314", f"'{e.id}' needs indices: {e.id}[x" +
                 (", mu]" if m.model.fields[e.id].on == "links" else "]"), e.span)  # fmt: skip
        fail("P307", f"'{e.id}' cannot be used as a value here", e.span)

    def on_unary(self, e: E.Unary, env: Env) -> Val:
        if e.op != "-":
            fail("P307", f"'{e.op}' is not an arithmetic operation", e.span)
        v = self.walk(e.operand, env)
        return Val(-v.t, v.mat, v.lattice)

    def on_index(self, e: E.Index, env: Env) -> Val:
        m = self.m
        name = name_of(e.base)
        if name is None:
            fail("P311", "only fields and definitions can be indexed", e.span)
        if name == m.link_field:
            if len(e.indices) != 2:
                fail("P323", f"a link is indexed by a site and a direction: {name}[x, mu]",
                     e.span)  # fmt: skip
            off = self.offset(e.indices[0], env)
            mu = self.direction(e.indices[1], env)
            t = self.xp.take(self.lin, mu, 1 + m.d)
            if self.record is not None:
                self.record.add((name, off, mu))
            return Val(self.xp.translate(t, off), m.group == "su2", True)
        if name in m.matter_domains:
            if len(e.indices) != 1:
                fail("P323", f"a site field is indexed by one site: {name}[x]", e.span)
            off = self.offset(e.indices[0], env)
            if self.record is not None:
                self.record.add((name, off, None))
            return Val(self.xp.translate(self.matter[name], off), False, True)
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
                fail("P418", f"'{name}' refers to itself", e.span)
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
            return Val(self.mul(a, b), a.mat or b.mat, lat)
        if e.op in "+-":
            if a.mat != b.mat:
                fail("P312", "cannot add a matrix and a number", e.span,
                     "take a trace first: re(trace(P)) / 2")  # fmt: skip
            ta, tb = self.broadcast(a, b)
            return Val(ta + tb if e.op == "+" else ta - tb, a.mat, lat)
        if e.op == "/":
            if b.mat:
                fail("P312", "cannot divide by a matrix", e.right.span)
            if not self.xp.is_array(b.t) and b.t == 0:
                fail("P417", "division by zero", e.right.span)
            return Val(self.mul(a, Val(1 / b.t, False, b.lattice)), a.mat, lat)
        if e.op == "^":
            if a.mat or b.mat or self.xp.is_array(b.t):
                fail("P312", "powers take a number and a constant exponent", e.span)
            return Val(a.t**b.t, False, lat)
        fail("P307", f"'{e.op}' cannot appear in an action", e.span)

    def on_call(self, e: E.Call, env: Env) -> Val:
        if e.kwargs or len(e.args) != 1:
            fail("P316", f"{e.func} takes one argument", e.span)
        v = self.walk(e.args[0], env)
        f = e.func
        t = v.t
        xp = self.xp
        if f == "trace":
            if not v.mat:
                return v
            return Val(t[..., 0, 0] + t[..., 1, 1], False, v.lattice)
        if f == "dagger":
            if v.mat:
                return Val(xp.dagger(t), True, v.lattice)
            return Val(self.conj(t), False, v.lattice)
        if f == "conj":
            return Val(self.conj(t), v.mat, v.lattice)
        if v.mat:
            fail("P307", f"{f}() of an SU(2) matrix", e.span,
                 "take the trace first: re(trace(P)) / 2 is Re tr P / N")  # fmt: skip
        if f in ("re", "im"):
            return Val(xp.functions.ops["real" if f == "re" else "imag"](t), False, v.lattice)
        if f not in _FUNCTIONS:
            fail("P307", f"{f}() cannot appear in a gauge action", e.func_span)
        if not xp.is_array(t):
            t = xp.as_array(t)
        return Val(xp.apply(_FUNCTIONS[f], t), False, v.lattice)

    def on_reduce(self, e: E.Reduce, env: Env) -> Val:
        if e.func != "sum":
            fail("P803", f"{e.func}(...) is not supported in gauge actions yet", e.func_span,
                 "use sum(...)")  # fmt: skip
        d = self.m.d
        site_vars: list[str] = []
        assignments: list[dict[str, int]] = [{}]
        for loop in e.loops:
            dom = loop.domain
            dname = name_of(dom)
            names = loop.names
            if dom is None:
                if len(names) != 1:
                    fail("P310", "a bare 'for' binds one direction: for mu", loop.span)
                new = [{names[0]: mu} for mu in range(d)]
            elif dname == "sites":
                if len(names) != 1:
                    fail("P315", "sites bind one name: for x in sites", loop.span)
                site_vars.append(names[0])
                new = [{}]
            elif dname == "links":
                if len(names) != 2:
                    fail("P315", "links bind a site and a direction: for (x, mu) in links",
                         loop.span)  # fmt: skip
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
                    fail("P315", "plaquettes bind a site and a plane: "
                         "for (x, mu, nu) in plaquettes (mu < nu)", loop.span)  # fmt: skip
            else:
                fail("P307", "gauge sums run over sites, links, plaquettes or directions",
                     loop.span, "for x in sites / for (x, mu) in links / "
                     "for (x, mu, nu) in plaquettes / for mu")  # fmt: skip
            assignments = [{**a, **b} for a in assignments for b in new]
        if len(site_vars) > 1:
            fail("P802", "a sum binds at most one site", e.span)
        total: Any = 0
        lattice = False
        keep = self.keep_sites and bool(site_vars)
        if keep:
            if self.site_sums:
                fail("P504", "nested sums over sites are not a local action density", e.span)
            self.site_sums += 1
        try:
            for a in assignments:
                inner = Env(dict(env.sites), {**env.dirs, **a})
                for s in site_vars:
                    inner.sites[s] = (0,) * d
                v = self.walk(e.body, inner)
                if v.mat:
                    fail("P312", "the sum of matrices is not a number", e.body.span,
                         "take the trace: re(trace(P)) / 2")  # fmt: skip
                t = v.t
                if keep:
                    # density mode: the summand as a field (B, L...), constants broadcast
                    if not v.lattice:
                        if self.xp.is_array(t):
                            t = t.reshape(t.shape + (1,) * d)
                        t = t * self.xp.ones((self.B, *self.m.shape), self.lin)
                    lattice = True
                elif site_vars:
                    t = self.xp.lattice_sum(t, d) if v.lattice else t * self.m.n_sites
                else:
                    lattice = lattice or v.lattice
                total = total + t
        finally:
            if keep:
                self.site_sums -= 1
        return Val(total, False, lattice)

    # -------------------------------------------------------------- arithmetic of values
    def conj(self, t: Any) -> Any:
        if self.xp.is_array(t):
            return self.xp.conj(t)
        return complex(t).conjugate() if isinstance(t, complex) else t

    def broadcast(self, a: Val, b: Val) -> tuple[Any, Any]:
        """Per-configuration values (B,) against lattice fields (B, L...)."""
        ta, tb = a.t, b.t
        xp = self.xp
        if xp.is_array(ta) and xp.is_array(tb) and xp.ndim(ta) != xp.ndim(tb):
            if a.lattice and not b.lattice:
                tb = tb.reshape(tb.shape + (1,) * (xp.ndim(ta) - xp.ndim(tb)))
            elif b.lattice and not a.lattice:
                ta = ta.reshape(ta.shape + (1,) * (xp.ndim(tb) - xp.ndim(ta)))
        return ta, tb

    def mul(self, a: Val, b: Val) -> Any:
        ta, tb = self.broadcast(a, b)
        if a.mat and not b.mat and self.xp.is_array(tb):
            tb = tb[..., None, None]
        if b.mat and not a.mat and self.xp.is_array(ta):
            ta = ta[..., None, None]
        return ta * tb


# physml function -> backend op (the one function table of the lowering, backends.py)
_FUNCTIONS: dict[str, str] = {
    "abs": "abs", "exp": "exp", "log": "log", "sqrt": "sqrt", "cos": "cos", "sin": "sin",
    "tan": "tan", "tanh": "tanh", "cosh": "cosh", "sinh": "sinh", "arg": "angle",
    "sign": "sign",
}  # fmt: skip


class _Offset(Walker[Offset]):
    """A site index as an offset from the bound site: x, x + e0, x - e_mu + e_nu, x + 2 * e1."""

    def __init__(self, ev: Evaluator, env: Env):
        self.ev = ev
        self.env = env
        self.d = ev.m.d

    def not_here(self, e: E.Expr, what: str = "this"):
        return PhysmlError(Diagnostic(
            "P310", "this is not a site index", e.span,
            "write a bound site plus unit vectors: x, x + e0, x - e_mu + e_nu, x + 2 * e1"))  # fmt: skip

    def on_name(self, e: E.Name, env) -> Offset:
        if e.id in self.env.sites:
            return self.env.sites[e.id]
        unit = self.ev.unit(e.id, self.env, e.span)
        if unit is not None:
            return unit
        fail("P202", f"'{e.id}' is not a site here", e.span,
             "a site index is a bound site plus unit vectors: x + e0 or x + e_mu")  # fmt: skip

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


__all__ = ["NUMPY_LINKS", "Env", "Evaluator", "LinkArrays", "Offset", "Val", "fail",
           "planes"]  # fmt: skip
