"""Phase-space models and continuous lattice fields: the parse tree -> sympy -> torch.

Two model kinds are compiled here (both registered by runtime/dynamics/tasks.py):

- :class:`PhaseSpaceModel`: a model with ``phase_space (q, p) [: real[N, D]]`` and a
  ``hamiltonian`` (or a ``kinetic`` plus a ``potential``). The Hamiltonian is built as a sympy
  expression node by node from the syntax tree (never from text) in the flattened canonical
  symbols ``q_k, p_k`` (k = i * D + a for ``q[i, a]``); sums over ``particles``, ``dims``,
  ``pairs`` (i < j over particles) and literal lists are unrolled. compiler/hamiltonian.py then
  derives Hamilton's equations, separability, unused pairs and non-differentiable pieces, and
  lowers them to batched torch callables over ``q, p`` of shape ``(..., n)``.
- :class:`FieldModel`: ``field phi: real on sites`` (phi^4) or ``field theta: angle on sites``
  (XY) with an ``action`` (or ``energy``/``hamiltonian``) that is a linear combination of
  ``sum(f(phi[i]) for i in sites)`` and ``sum(g(phi[i], phi[j]) for (i, j) in bonds)``. The
  densities f(a), g(a, b) and their derivatives are derived symbolically and lowered to
  shifted-tensor (roll) stencils: S(x) -> (C,), dS/dx -> (C, *lattice.shape) with no loop over
  sites.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import sympy
import torch

from physml_lang.check.constants import evaluate
from physml_lang.diagnostics import Diagnostic, PhysmlError, Span
from physml_lang.ir import expr as E
from physml_lang.ir.functions import Function
from physml_lang.ir.walk import (
    as_binary,
    as_call,
    as_index,
    as_list,
    as_reduce,
    as_unary,
    children,
    name_of,
)

from .hamiltonian import (
    CompiledHamiltonian,
    HamiltonianDerivation,
    LoweringError,
    PairSum,
    ParticleSum,
    Program,
    StructuredHamiltonian,
    derive_hamiltonian,
    is_even,
    lower_hamiltonian,
    lower_program,
)
from .instance import ModelInstance
from .lower.sympy import SympyArithmetic

Tensor = torch.Tensor
MAX_TERMS = 200_000  # unrolled terms of a phase-space H (symbolic: N-body sums are O(N^2))
MAX_PAIRS = 4096  # canonical pairs of a phase-space model (symbolic derivation per pair)

# the functions of the table a Hamiltonian or action may use (real, smooth or piecewise)
_FUNCTIONS = ("cos", "sin", "tan", "exp", "log", "sqrt", "tanh", "cosh", "sinh", "abs", "sign",
              "min", "max")  # fmt: skip
CONTINUOUS = {"real", "angle"}


def fail(code: str, message: str, span: Span | None, hint: str | None = None):
    raise PhysmlError(Diagnostic(code, message, span, hint))


def _int(v: sympy.Expr, span: Span, what: str) -> int:
    if not (isinstance(v, sympy.Integer) or (v.is_number and float(v).is_integer())):
        fail("P300", f"{what} must be an integer, got {v}", span)
    return int(v)


# --------------------------------------------------------------------------------------------
# AST -> sympy
# --------------------------------------------------------------------------------------------


class SympyBuilder(SympyArithmetic):
    """Builds a sympy expression from an expression of a model (``env``: bound loop variables).

    Parameters stay symbols (bound to numbers at lowering, so ``--emit sympy`` shows m, g, l);
    loop variables are bound to sympy Integers; subclasses resolve the model's own variables
    (coordinates, fields) in :meth:`variable` and :meth:`indexed`. Every call of a
    non-differentiable function is recorded with its span.
    """

    what = "a Hamiltonian or action"

    def __init__(self, model: ModelInstance):
        self.model = model
        self.params = {k: v for k, v in model.params.items() if isinstance(v, int | float)}
        self.nondiff: list[tuple[sympy.Expr, Span]] = []
        self.terms = 0
        self._depth = 0

    # -- hooks
    def variable(self, e: E.Name, env: dict[str, Any]) -> sympy.Expr | None:
        return None

    def indexed(self, e: E.Index, env: dict[str, Any]) -> sympy.Expr | None:
        return None

    def domain(self, loop: E.Loop, env: dict[str, Any], body: E.Expr) -> list[tuple]:
        fail("P800", "this sum is not supported here", loop.span)

    # -- the walk
    def build(self, e: E.Expr, env: dict[str, Any]) -> sympy.Expr:
        self._depth += 1
        if self._depth > 200:
            fail("P800", "definitions refer to each other too deeply (a cycle?)", e.span)
        try:
            return self.walk(e, env)
        finally:
            self._depth -= 1

    def not_here(self, e: E.Expr, what: str = "this"):
        return PhysmlError(Diagnostic("P800", "this expression is not supported here", e.span))

    def on_imaginary(self, e: E.Imag, env) -> sympy.Expr:
        fail("P300", "a real-valued expression is expected here", e.span)

    on_string = on_list = on_imaginary

    def constant(self, value, e: E.Expr) -> sympy.Expr:
        return sympy.Integer(value) if isinstance(value, int) else sympy.Float(value)

    def logical(self, e: E.Binary, env) -> sympy.Expr:
        fail("P300", f"'{e.op}' cannot appear in an energy", e.span)

    def compare(self, op: str, a, b, e: E.Binary) -> sympy.Expr:
        fail("P300", f"'{op}' cannot appear in an energy", e.span)

    def logical_not(self, a, e: E.Unary) -> sympy.Expr:
        fail("P300", f"'{e.op}' is not an arithmetic operation", e.span)

    def on_name(self, e: E.Name, env: dict[str, Any]) -> sympy.Expr:
        if e.id in env:
            return env[e.id]
        v = self.variable(e, env)
        if v is not None:
            return v
        if e.id in self.params:
            return sympy.Symbol(e.id, real=True)
        if e.id == "pi":
            return sympy.pi
        d = self.model.definitions.get(e.id)
        if d is not None:
            if d.indices:
                fail("P302", f"'{e.id}' is defined with indices: write {e.id}[...]", e.span)
            return self.build(d.expr, {})
        fail("P300", f"'{e.id}' cannot be used in this expression", e.span)

    def on_index(self, e: E.Index, env: dict[str, Any]) -> sympy.Expr:
        v = self.indexed(e, env)
        if v is not None:
            return v
        base = name_of(e.base)
        if base is not None and base in self.model.definitions:
            return self._definition_call(base, e.indices, env, e.span)
        fail("P202", "only coordinates, fields and definitions can be indexed", e.span)

    def on_call(self, e: E.Call, env: dict[str, Any]) -> sympy.Expr:
        if e.func in self.model.definitions:
            return self._definition_call(e.func, e.args, env, e.span)
        if e.func not in _FUNCTIONS or e.kwargs:
            fail("P800", f"'{e.func}' cannot be used in a Hamiltonian or action", e.func_span,
                 "functions: " + ", ".join(sorted(_FUNCTIONS)))  # fmt: skip
        return super().on_call(e, env)

    def apply(self, fn: Function, args: list[sympy.Expr], e: E.Call) -> sympy.Expr:
        if fn.name in ("min", "max") and len(args) != 2:
            fail("P302", f"{fn.name} takes 2 argument(s)", e.span)
        return super().apply(fn, args, e)

    def on_reduce(self, e: E.Reduce, env: dict[str, Any]) -> sympy.Expr:
        if e.func not in ("sum", "prod"):
            fail("P800", f"'{e.func}' over a structure is not supported", e.func_span)
        parts: list[sympy.Expr] = []
        for inner in self._loop_envs(e.loops, env, e.body):
            parts.append(self.build(e.body, inner))
            self.terms += 1
            if self.terms > MAX_TERMS:
                fail("P400", f"more than {MAX_TERMS} terms after unrolling the sums", e.span,
                     "phase-space Hamiltonians are derived symbolically; use fewer "
                     "particles")  # fmt: skip
        if e.func == "sum":
            return sympy.Add(*parts)
        return sympy.Mul(*parts)

    def _definition_call(self, name: str, args: tuple[E.Expr, ...], env: dict[str, Any],
                         span: Span) -> sympy.Expr:  # fmt: skip
        """``r[i, j]`` / ``r(i, j)`` for ``let r[i, j] = ...``: bind the indices, build the body."""
        d = self.model.definitions[name]
        if len(args) != len(d.indices):
            fail("P302", f"'{name}' takes {len(d.indices)} index(es), got {len(args)}", span)
        inner: dict[str, Any] = {}
        for formal, actual in zip(d.indices, args, strict=True):
            inner[formal] = self.build(actual, env)
        return self.build(d.expr, inner)

    def _loop_envs(self, loops: tuple[E.Loop, ...], env: dict[str, Any], body: E.Expr):
        if not loops:
            yield env
            return
        first, rest = loops[0], loops[1:]
        for values in self.domain(first, env, body):
            if len(values) != len(first.names):
                fail("P302", f"this structure binds {len(values)} name(s), the loop "
                     f"{len(first.names)}", first.span)  # fmt: skip
            inner = dict(env)
            inner.update({n: sympy.Integer(v) for n, v in zip(first.names, values, strict=True)})
            yield from self._loop_envs(rest, inner, body)

    def const_int(self, e: E.Expr, env: dict[str, Any], what: str) -> int:
        v = self.build(e, env)
        v = v.xreplace({sympy.Symbol(k, real=True): x for k, x in self.params.items()})
        return _int(v, e.span, what)

    def literal_domain(self, loop: E.Loop, env: dict[str, Any]) -> list[tuple] | None:
        """``range(a[, b])`` and ``[0, 2, 5]`` loop domains (one name)."""
        d = loop.domain
        call = as_call(d)
        if call is not None and call.func == "range":
            bounds = [self.const_int(a, env, "a range bound") for a in call.args]
            if not 1 <= len(bounds) <= 2:
                fail("P302", "range takes 1 or 2 bounds", d.span)
            return [(k,) for k in range(*bounds)]
        items = as_list(d)
        if items is not None:
            return [(self.const_int(x, env, "a list entry"),) for x in items]
        return None


# --------------------------------------------------------------------------------------------
# Phase-space models
# --------------------------------------------------------------------------------------------


def phase_shape(model: ModelInstance) -> tuple[int, ...]:
    """The shape of q (and p): () for one pair, (N,) or (N, D) (checked by the front end)."""
    assert model.phase_space is not None
    return tuple(model.phase_space.shape)


def _label(name: str, shape: tuple[int, ...], k: int) -> str:
    if not shape:
        return name
    idx = np.unravel_index(k, shape)
    return f"{name}[{', '.join(str(int(i)) for i in idx)}]"


class PhaseBuilder(SympyBuilder):
    """Resolves q, p, q[i, a], p[i, a] and the loop structures of phase-space models."""

    def __init__(self, model: ModelInstance, shape: tuple[int, ...]):
        super().__init__(model)
        assert model.phase_space is not None
        self.qname, self.pname = model.phase_space.q, model.phase_space.p
        self.shape = shape
        n = math.prod(shape)
        if shape:
            names = ["_".join(str(int(i)) for i in np.unravel_index(k, shape)) for k in range(n)]
            self.q = [sympy.Symbol(f"{self.qname}_{s}", real=True) for s in names]
            self.p = [sympy.Symbol(f"{self.pname}_{s}", real=True) for s in names]
        else:
            self.q = [sympy.Symbol(self.qname, real=True)]
            self.p = [sympy.Symbol(self.pname, real=True)]

    def _which(self, name: str) -> list[sympy.Symbol] | None:
        return self.q if name == self.qname else self.p if name == self.pname else None

    def variable(self, e: E.Name, env: dict[str, Any]) -> sympy.Expr | None:
        syms = self._which(e.id)
        if syms is None:
            return None
        if self.shape:
            dims = ", ".join("i a".split()[: len(self.shape)])
            fail("P302", f"'{e.id}' has shape {self.shape}: index it, e.g. {e.id}[{dims}]",
                 e.span)  # fmt: skip
        return syms[0]

    def indexed(self, e: E.Index, env: dict[str, Any]) -> sympy.Expr | None:
        base = name_of(e.base)
        if base is None:
            return None
        syms = self._which(base)
        if syms is None:
            return None
        if len(e.indices) != len(self.shape):
            fail("P302", f"'{base}' has shape {self.shape}: it takes {len(self.shape)} "
                 f"index(es), got {len(e.indices)}", e.span)  # fmt: skip
        idx = []
        for x, size in zip(e.indices, self.shape, strict=True):
            k = self.const_int(x, env, "an index")
            if not 0 <= k < size:
                fail("P400", f"index {k} is out of range 0 .. {size - 1}", x.span)
            idx.append(k)
        return syms[int(np.ravel_multi_index(idx, self.shape))]

    def domain(self, loop: E.Loop, env: dict[str, Any], body: E.Expr) -> list[tuple]:
        lit = self.literal_domain(loop, env)
        if lit is not None:
            return lit
        d = loop.domain
        if d is None:  # ``for i``: the range of the axis it indexes
            axis = _axis_of(loop.names[0], body, {self.qname, self.pname})
            if axis is None or axis >= len(self.shape):
                fail("P400", f"cannot tell the range of '{loop.names[0]}'", loop.span,
                     "say it: 'for i in particles', 'for a in dims' or 'for (i, j) in pairs'")
            return [(k,) for k in range(self.shape[axis])]
        dname = name_of(d)
        if dname in ("particles", "dims", "pairs"):
            if not self.shape:
                fail("P400", f"'{dname}' needs a phase space with a shape, e.g. "
                     "phase_space (q, p): real[N, 2]", d.span)  # fmt: skip
            if dname == "dims":
                return [(k,) for k in range(self.shape[-1] if len(self.shape) == 2 else 1)]
            N = self.shape[0]
            if dname == "particles":
                return [(k,) for k in range(N)]
            return [(i, j) for i in range(N) for j in range(i + 1, N)]
        fail("P200", "phase-space sums run over particles, dims, pairs, range(...) or a list",
             d.span if d is not None else loop.span)  # fmt: skip


def _axis_of(name: str, e: E.Expr, bases: set[str]) -> int | None:
    """The position at which loop variable ``name`` first indexes q or p in ``e``."""
    stack = [e]
    while stack:
        x = stack.pop(0)
        idx = as_index(x)
        if idx is not None and name_of(idx.base) in bases:
            for k, i in enumerate(idx.indices):
                if name_of(i) == name:
                    return k
        stack[:0] = children(x)
    return None


def _check_symmetries(ir: ModelInstance, allowed: set[str], what: str) -> None:
    for s in ir.symmetries:
        if s.active and s.name not in allowed:
            fail("P501", f"symmetry '{s.name}' is not supported for {what}", s.span,
                 "supported: " + ", ".join(sorted(allowed)))  # fmt: skip


def _hamiltonian_defs(ir: ModelInstance) -> tuple[list[E.Expr], Span]:
    """The expressions whose sum is H (a hamiltonian, or kinetic + potential terms)."""
    defs = ir.definitions
    for d in defs.values():
        if d.kind == "hamiltonian":
            if d.indices:
                fail("P302", "a Hamiltonian takes no indices", d.span)
            return [d.expr], d.span
    kin = [d for d in defs.values() if d.kind == "kinetic"]
    pot = [d for d in defs.values() if d.kind == "potential"]
    pname = ir.phase_space.p if ir.phase_space is not None else "p"
    if not kin and not pot:
        other = next((d for d in defs.values() if d.kind in ("energy", "action")), None)
        fail("P400", f"phase-space model {ir.name} declares no hamiltonian",
             other.span if other else ir.name_span,
             "write 'hamiltonian H = ...', or a 'kinetic T = ...' and a "
             "'potential V = ...'")  # fmt: skip
    if not kin:
        fail("P400", "a potential needs a kinetic term too (or write the whole hamiltonian)",
             pot[0].span, f"e.g. kinetic T = {pname}^2 / (2 * m)")  # fmt: skip
    return [d.expr for d in kin + pot], (kin + pot)[0].span


# ---------------------------------------------------------------- structured (any N) lowering


class _NotGeneric(Exception):
    """The Hamiltonian has a piece the structured lowering does not cover (use unrolling)."""


_I, _J = sympy.Symbol("_i", integer=True), sympy.Symbol("_j", integer=True)


class GenericBuilder(PhaseBuilder):
    """q[i, a] for a *generic* particle i (or pair (i, j)) bound to a placeholder: one symbol per
    component, q_i_a / q_j_a; dims are unrolled (D is small), particles are not."""

    def __init__(self, model: ModelInstance, shape: tuple[int, ...]):
        SympyBuilder.__init__(self, model)
        assert model.phase_space is not None
        self.qname, self.pname = model.phase_space.q, model.phase_space.p
        self.shape = shape
        self.q, self.p = [], []
        self.D = shape[1] if len(shape) == 2 else 1

        def mk(name: str, tag: str) -> tuple[sympy.Symbol, ...]:
            if len(shape) == 1:
                return (sympy.Symbol(f"{name}_{tag}", real=True),)
            return tuple(sympy.Symbol(f"{name}_{tag}_{a}", real=True) for a in range(self.D))

        self.gen = {(w, s): mk(name, tag) for w, name in (("q", self.qname), ("p", self.pname))
                    for s, tag in ((_I, "i"), (_J, "j"))}  # fmt: skip

    def indexed(self, e: E.Index, env: dict[str, Any]) -> sympy.Expr | None:
        base = name_of(e.base)
        if base not in (self.qname, self.pname):
            return None
        if len(e.indices) != len(self.shape):
            return super().indexed(e, env)  # the located shape error
        first = self.build(e.indices[0], env)
        if first not in (_I, _J):
            raise _NotGeneric  # a particular particle, or i + 1: not one generic particle
        a = 0
        if len(self.shape) == 2:
            a = self.const_int(e.indices[1], env, "an index")
            if not 0 <= a < self.D:
                fail("P400", f"index {a} is out of range 0 .. {self.D - 1}", e.indices[1].span)
        return self.gen[("q" if base == self.qname else "p", first)][a]


def _mentions(e: E.Expr, names: set[str], ir: ModelInstance, depth: int = 0) -> bool:
    """Does the expression use q or p (directly or through definitions)?"""
    if depth > 50:
        return True
    stack = [e]
    while stack:
        x = stack.pop()
        n = name_of(x)
        call, idx = as_call(x), as_index(x)
        ref = n if n is not None else (call.func if call is not None else
                                       name_of(idx.base) if idx is not None else None)
        if n is not None and n in names:
            return True
        d = ir.definitions.get(ref) if ref is not None else None
        if d is not None and _mentions(d.expr, names, ir, depth + 1):
            return True
        stack.extend(children(x))
    return False


@dataclass
class Structure:
    """H as generic pieces (see :class:`StructuredHamiltonian`) and its lowered system."""

    N: int
    D: int
    particle: sympy.Expr | None
    gq: tuple[sympy.Symbol, ...]
    gp: tuple[sympy.Symbol, ...]
    pair: PairSum | None
    rest: sympy.Expr
    system: StructuredHamiltonian

    def emit_sympy(self, name: str) -> str:
        lines = [f"# model {name}: H = sum_i h(q_i, p_i) + sum_{{i<j}} V(d), d = q_i - q_j, "
                 f"+ rest; derived once for a generic particle i and pair (i, j); "
                 f"N = {self.N}, D = {self.D}; separable={self.system.separable}"]  # fmt: skip
        if self.particle is not None:
            lines.append(f"h = {self.particle}")
            for s, t in zip(self.gq, self.gp, strict=True):
                lines.append(f"d{s}/dt = dH/d{t} = {sympy.diff(self.particle, t)}")
                force = -sympy.diff(self.particle, s)
                if self.pair is not None:
                    a = self.gq.index(s)
                    pair = f"sum_{{j != i}} dV/d{self.pair.d[a]}(q_i - q_j)"
                    force = f"-{pair}" if force == 0 else f"{force} - {pair}"
                lines.append(f"d{t}/dt = -dH/d{s} = {force}")
        if self.pair is not None:
            even = "V(-d) = V(d)" if self.pair.symmetric else "V(-d) != V(d): j > i only"
            lines.append(f"V = {self.pair.F}    ({even})")
            for s in self.pair.d:
                lines.append(f"dV/d{s} = {sympy.diff(self.pair.F, s)}")
        if self.rest != 0:
            lines.append(f"rest = {self.rest}")
        return "\n".join(lines)


def _structure(model: PhaseSpaceModel) -> Structure | None:
    """Decompose H into sums over particles, a pair sum of a function of q_i - q_j and a rest.

    Used when there is a pair sum or when the phase space is too big to unroll; None when H has
    a piece that is neither (then the unrolled symbolic path applies, for small N).
    """
    ir, shape = model.model, model.shape
    if not shape:
        return None
    exprs, span = _hamiltonian_defs(ir)
    names = {ir.phase_space.q, ir.phase_space.p}  # type: ignore[union-attr]
    gb = GenericBuilder(ir, shape)
    pieces: dict[str, list[tuple[sympy.Expr, E.Reduce]]] = {"particle": [], "pair": []}
    rest: list[tuple[sympy.Expr, E.Expr]] = []

    def collect(e: E.Expr, coef: sympy.Expr) -> None:
        binary, unary, red, n = as_binary(e), as_unary(e), as_reduce(e), name_of(e)
        if binary is not None and binary[0] in ("+", "-"):
            op, left, right = binary
            collect(left, coef)
            collect(right, coef if op == "+" else -coef)
        elif unary is not None and unary[0] == "-":
            collect(unary[1], -coef)
        elif binary is not None and binary[0] in ("*", "/"):
            op, le, ri = binary
            left, right = _mentions(le, names, ir), _mentions(ri, names, ir)
            if left and not right:
                k = gb.build(ri, {})
                collect(le, coef * k if op == "*" else coef / k)
            elif right and not left and op == "*":
                collect(ri, coef * gb.build(le, {}))
            else:
                rest.append((coef, e))
        elif n is not None and n in ir.definitions and not ir.definitions[n].indices:
            collect(ir.definitions[n].expr, coef)
        elif red is not None and red.func == "sum" and red.loops:
            d = name_of(red.loops[0].domain)
            kind = None
            if d == "pairs" and len(red.loops[0].names) == 2:
                kind = "pair"
            elif d == "particles" and len(red.loops[0].names) == 1:
                kind = "particle"
            if kind is None:
                rest.append((coef, e))
            else:
                pieces[kind].append((coef, red))
        else:
            rest.append((coef, e))

    try:
        for e in exprs:
            collect(e, sympy.Integer(1))
        if not pieces["pair"] and model.builder is not None:
            return None  # nothing to gain over the unrolled path
        if any(_mentions(e, names, ir) for _, e in rest) and model.builder is None:
            raise _NotGeneric
        qi, qj = gb.gen[("q", _I)], gb.gen[("q", _J)]
        pi, pj = gb.gen[("p", _I)], gb.gen[("p", _J)]
        psyms = {sympy.Symbol(k, real=True) for k in gb.params}

        def body(g: E.Reduce, slots: tuple[sympy.Symbol, ...]) -> sympy.Expr:
            env = dict(zip(g.loops[0].names, slots, strict=True))
            return sympy.Add(*[gb.build(g.body, inner)
                               for inner in gb._loop_envs(g.loops[1:], env, g.body)])  # fmt: skip

        particle = sympy.Add(*[c * body(g, (_I,)) for c, g in pieces["particle"]])
        if particle.free_symbols - set(qi) - set(pi) - psyms:
            raise _NotGeneric
        F = sympy.Add(*[c * body(g, (_I, _J)) for c, g in pieces["pair"]])
        if F.free_symbols - set(qi) - set(qj) - psyms:
            raise _NotGeneric  # momenta in a pair term, or something else: unroll
        D = gb.D
        dsyms = tuple(sympy.Symbol(f"d{a}" if len(shape) == 2 else "d", real=True)
                      for a in range(D))  # fmt: skip
        F = F.xreplace({qi[a]: dsyms[a] + qj[a] for a in range(D)})
        if F.free_symbols & set(qj):
            raise _NotGeneric  # not a function of q_i - q_j alone
    except (_NotGeneric, PhysmlError):
        return None  # the unrolled path handles it (or reports the error, located)
    N = shape[0]
    # non-differentiable calls on coordinates: located, as in the unrolled path
    coords = set(qi) | set(qj) | set(pi) | set(pj)
    for expr, nspan in gb.nondiff:
        if expr.free_symbols & coords:
            fail("P300", f"the Hamiltonian is not differentiable here ({type(expr).__name__}): "
                 "Hamilton's equations need dH/dq and dH/dp", nspan,
                 "use a smooth form, e.g. sqrt(x^2 + eps^2) for abs(x)")  # fmt: skip
    rest_expr = sympy.Integer(0)
    rest_sys = None
    separable = True
    if rest and model.builder is not None:
        b = model.builder
        rest_expr = sympy.Add(*[c * b.build(e, {}) for c, e in rest])
        for expr, nspan in b.nondiff:
            if expr.free_symbols & set(b.q + b.p) and expr in rest_expr.atoms(type(expr)):
                fail("P300", f"the Hamiltonian is not differentiable here ({type(expr).__name__}"
                     "): Hamilton's equations need dH/dq and dH/dp", nspan,
                     "use a smooth form, e.g. sqrt(x^2 + eps^2) for abs(x)")  # fmt: skip
    params = {sympy.Symbol(k, real=True): float(v) for k, v in gb.params.items()}
    constant = 0.0
    try:
        if rest_expr.free_symbols - psyms:
            rd = derive_hamiltonian(rest_expr, model.builder.q, model.builder.p)
            separable = rd.separable
            rest_sys = lower_hamiltonian(rd, {s: params[s] for s in rest_expr.free_symbols
                                              if s in params})  # fmt: skip
        elif rest_expr != 0:
            constant = float(rest_expr.xreplace({s: sympy.Float(v) for s, v in params.items()}))
        if particle.free_symbols & set(qi) and particle.free_symbols & set(pi):
            separable = separable and derive_hamiltonian(particle, qi, pi).separable
        pair = PairSum(F, dsyms, is_even(F, dsyms)) if F != 0 else None
        system = StructuredHamiltonian(
            N, D, ParticleSum(particle, qi, pi) if particle != 0 else None, pair, rest_sys,
            constant, params, separable, ir.name)
    except LoweringError as exc:
        fail("P800", str(exc), span)
    # every declared coordinate must enter H
    used_dims = {a for a in range(D) if {qi[a], pi[a]} & particle.free_symbols}
    if pair is not None and N >= 2:
        used_dims |= {a for a in range(D) if dsyms[a] in F.free_symbols}
    unused = [k for k in range(N * D) if k % D not in used_dims]
    if unused and rest_sys is not None:  # the rest may use some of them
        rest_unused = set(rest_sys.derivation.unused_pairs)
        unused = [k for k in unused if k in rest_unused]
    if unused:
        model._unused([gb.qname, gb.pname], unused)
    return Structure(N, D, particle if particle != 0 else None, qi, pi, pair, rest_expr, system)


class PhaseSpaceModel:
    """A compiled phase-space model: derived Hamilton's equations and torch callables.

    ``system``: the :class:`CompiledHamiltonian` (``hamiltonian(q, p) -> (B,)``,
    ``dH_dq, dH_dp -> (B, n)`` over flattened coordinates, n = prod(shape)).
    """

    kind = "phase_space"

    def __init__(self, model: ModelInstance):
        self.model = model
        self.ir = ir = model.ir
        self.shape = phase_shape(model)
        self.n = max(1, math.prod(self.shape))
        _check_symmetries(model, {"symplectic"}, "phase-space models (the canonical structure is "
                          "built in: symmetry symplectic)")  # fmt: skip
        self.builder = PhaseBuilder(model, self.shape) if self.n <= MAX_PAIRS else None
        self._derivation: HamiltonianDerivation | None = None
        self.structure: Structure | None = _structure(self)
        if self.structure is not None:
            self.system: CompiledHamiltonian | StructuredHamiltonian = self.structure.system
            return
        if self.builder is None:
            ps = ir.phase_space
            fail("P400", f"{self.n} canonical pairs is more than the symbolic compiler handles "
                 f"({MAX_PAIRS}) for this Hamiltonian", ps.span,
                 "sums over particles and 'for (i, j) in pairs' of a function of "
                 "q[i, a] - q[j, a] are compiled for any N")  # fmt: skip
        builder = self.builder
        d = self.derivation
        moving = builder.q + builder.p
        for expr, span in builder.nondiff:
            if expr.free_symbols & set(moving) and expr in self.H.atoms(type(expr)):
                fail("P300", f"the Hamiltonian is not differentiable here ({type(expr).__name__}"
                     "): Hamilton's equations need dH/dq and dH/dp", span,
                     "use a smooth form, e.g. sqrt(x^2 + eps^2) for abs(x)")  # fmt: skip
        if d.unused_pairs:
            self._unused([builder.qname, builder.pname], d.unused_pairs)
        bound = {sympy.Symbol(k, real=True): float(v) for k, v in builder.params.items()}
        used = {s for s in self.H.free_symbols if s in bound}
        try:
            self.system = lower_hamiltonian(d, {s: bound[s] for s in used})
        except LoweringError as exc:
            fail("P800", str(exc), self.H_span)
        self.system.name = ir.name  # type: ignore[attr-defined]

    def _unused(self, names: list[str], unused: tuple[int, ...] | list[int]) -> None:
        qn, pn = names
        pairs = ", ".join(f"({_label(qn, self.shape, k)}, {_label(pn, self.shape, k)})"
                          for k in unused[:4])  # fmt: skip
        more = "" if len(unused) <= 4 else f" and {len(unused) - 4} more"
        fail("P400", f"the Hamiltonian does not depend on the canonical pair(s) {pairs}{more} "
             "declared by phase_space", self.H_span,
             "use every declared coordinate in H, or declare fewer (phase_space (q, p): "
             "real[N, D])")  # fmt: skip

    @property
    def H_span(self) -> Span:
        return _hamiltonian_defs(self.model)[1]

    @property
    def H(self) -> sympy.Expr:
        """H over the flattened canonical symbols, every sum unrolled (small systems only)."""
        return self.derivation.H

    @property
    def derivation(self) -> HamiltonianDerivation:
        """Hamilton's equations over the flattened coordinates (derived on first use; the
        structured path never needs it)."""
        if self._derivation is None:
            if self.builder is None:
                fail("P400", f"{self.n} canonical pairs: too many to write Hamilton's equations "
                     "out one coordinate at a time", self.H_span)  # fmt: skip
            H, span = self._hamiltonian(self.builder)
            try:
                self._derivation = derive_hamiltonian(H, self.builder.q, self.builder.p)
            except LoweringError as exc:
                fail("P300", str(exc), span)
        return self._derivation

    def _hamiltonian(self, builder: PhaseBuilder) -> tuple[sympy.Expr, Span]:
        exprs, span = _hamiltonian_defs(self.model)
        H = sympy.Integer(0)
        for e in exprs:
            H = H + builder.build(e, {})
        return H, span

    # ---------------------------------------------------------------- conveniences
    @property
    def separable(self) -> bool:
        return bool(self.system.separable)

    @property
    def default_integrator(self) -> str:
        """Structure-preserving default: leapfrog for H = T(p) + V(q), implicit midpoint else."""
        return "leapfrog" if self.separable else "implicit_midpoint"

    def flat(self, x: Tensor) -> Tensor:
        """(B, *shape) -> (B, n)."""
        return x.reshape(x.shape[0], self.n)

    def to(self, device: Any) -> PhaseSpaceModel:
        return self  # lowered closures run on the device of their inputs

    @property
    def qname(self) -> str:
        assert self.model.phase_space is not None
        return self.model.phase_space.q

    @property
    def pname(self) -> str:
        assert self.model.phase_space is not None
        return self.model.phase_space.p

    def labels(self) -> list[str]:
        return [_label(self.qname, self.shape, k) for k in range(self.n)]

    def describe(self) -> str:
        shape = f"real{list(self.shape)}" if self.shape else "real"
        return (f"phase space ({self.qname}, {self.pname}): {shape}, "
                f"{self.n} canonical pair(s); H {'separable' if self.separable else 'non-separable'}"
                f"; integrator {self.default_integrator}")  # fmt: skip

    def emit_sympy(self) -> str:
        if self.structure is not None:
            return self.structure.emit_sympy(self.ir.name)
        d = self.derivation
        lines = [f"# model {self.ir.name}: Hamilton's equations derived from H", f"H = {d.H}"]
        if d.separable:
            lines += [f"T(p) = {d.kinetic}", f"V(q) = {d.potential}"]
        for k in range(d.n):
            lines.append(f"d{d.q[k]}/dt = dH/d{d.p[k]} = {d.qdot[k]}")
            lines.append(f"d{d.p[k]}/dt = -dH/d{d.q[k]} = {d.pdot[k]}")
        return "\n".join(lines)

    def emit_torch(self) -> str:
        return self.system.source


def compile_phase_space(model: ModelInstance, **options: Any) -> PhaseSpaceModel:
    return PhaseSpaceModel(model)


# --------------------------------------------------------------------------------------------
# Continuous lattice fields
# --------------------------------------------------------------------------------------------


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
            fail("P302", f"'{e.id}' is a field: index it by a site, {e.id}[i]", e.span)
        if e.id in ("sites", "sites_count", "N"):
            return sympy.Integer(self.model.lattice.n_sites)
        return None

    def indexed(self, e: E.Index, env: dict[str, Any]) -> sympy.Expr | None:
        base = name_of(e.base)
        if base != self.field:
            return None
        slot = name_of(e.indices[0]) if len(e.indices) == 1 else None
        if slot is None or slot not in self.slots:
            fail("P300", f"index '{base}' by the site names of the enclosing sum: "
                 f"{base}[i] for i in sites, {base}[i] * {base}[j] for (i, j) "
                 "in bonds", e.span)  # fmt: skip
        return self.slots[slot]


@dataclass
class _Term:
    kind: str  # "site" or "bond"
    shell: int
    expr: sympy.Expr  # density in a (site) or a, b (bond), coefficient included
    span: Span


class FieldModel:
    """A compiled continuous lattice field: action S(x) -> (C,) and derived dS/dx.

    Fields x have shape (C, *lattice.shape). The action's densities are derived and lowered
    once; sums over sites and bonds are roll stencils (masked on open boundaries).
    """

    kind = "continuous_field"

    def __init__(self, model: ModelInstance):
        self.model = ir = model
        self.ir = model.ir
        if len(ir.fields) != 1:
            f = list(ir.fields.values())[1]
            fail("P800", "a continuous-field model has one field", f.span)
        self.fieldir = next(iter(ir.fields.values()))
        self.field = self.fieldir.name
        self.domain = self.fieldir.domain.kind
        lat = ir.lattice
        if lat is None or lat.complete or not hasattr(lat, "shells"):
            fail("P800", "continuous fields live on a regular lattice (square, cubic, chain, ...)",
                 self.fieldir.span)  # fmt: skip
        self.lattice = lat
        self.shape = tuple(lat.shape)
        d = ir.energy
        if d is None:
            fail("P400", f"model {ir.name} declares no action", ir.name_span,
                 f"e.g. action S = sum({self.field}[i]^2 for i in sites)")  # fmt: skip
        self.definition = d
        self.builder = FieldBuilder(ir, self.field)
        self.terms: list[_Term] = []
        self._collect(d.expr, sympy.Integer(1))
        if not self.terms:
            fail("P400", f"the action does not depend on the field '{self.field}'", d.span)
        a, b = self.builder.a, self.builder.b
        for expr, span in self.builder.nondiff:
            if expr.free_symbols & {a, b}:
                fail("P300", f"the action is not differentiable here ({type(expr).__name__}): "
                     "HMC and Langevin need dS/dx", span, "use a smooth form")  # fmt: skip
        self.site = sympy.Add(*[t.expr for t in self.terms if t.kind == "site"])
        self.bonds: dict[int, sympy.Expr] = {}
        for t in self.terms:
            if t.kind == "bond":
                self.bonds[t.shell] = self.bonds.get(t.shell, sympy.Integer(0)) + t.expr
        for shell in self.bonds:
            if shell not in lat.shells:
                fail("P400", f"lattice {lat.kind} has no neighbour shell {shell}", d.span)
        params = {sympy.Symbol(k, real=True): float(v) for k, v in self.builder.params.items()}
        self._programs: dict[str, Program] = {}
        self._sources: dict[str, str] = {}
        exprs = {"site": [self.site, sympy.diff(self.site, a)]}
        for shell, g in self.bonds.items():
            exprs[f"bond{shell}"] = [g, sympy.diff(g, a), sympy.diff(g, b)]
        try:
            for key, es in exprs.items():
                es = [sympy.simplify(x) if sympy.count_ops(x) < 40 else x for x in es]
                exprs[key] = es
                # the densities only; gradients below (HMC forces never pay for the density)
                self._lower(key, es[:1], [a] if key == "site" else [a, b], params)
        except LoweringError as exc:
            fail("P800", str(exc), d.span)
        self.derived = exprs
        self._masks: dict[tuple, Tensor] = {}
        # Bond gradients linear in the neighbour, dg/da = alpha b + A(a), dg/db = beta a + B(b)
        # (phi^4 hopping): on a periodic lattice the force is f'(x) + n_e (A + B)(x) +
        # alpha sum_e x(+e) + beta sum_e x(-e) -- neighbours summed first, one stencil per shell.
        self._linear: dict[int, tuple[float, float]] = {}
        local = exprs["site"][1]
        if lat.all_periodic:
            for shell in self.bonds:
                split = _linear_bond(exprs[f"bond{shell}"], a, b, params)
                if split is not None:
                    alpha, beta, A, B = split
                    self._linear[shell] = (alpha, beta)
                    local = local + len(lat.shells[shell]) * (A + B).xreplace({b: a})
        try:
            self._lower("force_local", [local], [a], params)
            for shell in self.bonds:
                if shell not in self._linear:
                    self._lower(f"bond{shell}_grad", exprs[f"bond{shell}"][1:], [a, b], params)
        except LoweringError as exc:
            fail("P800", str(exc), d.span)
        _check_symmetries(ir, {"translation", "spin_flip"}, "continuous-field models")
        for s in ir.symmetries:
            if s.active and s.name == "spin_flip":
                flip = {a: -a, b: -b}
                for es in exprs.values():
                    if sympy.simplify(es[0].xreplace(flip) - es[0]) != 0:
                        fail("P500", f"the action is not invariant under {self.field} -> "
                             f"-{self.field}", s.span)  # fmt: skip
            if s.active and s.name == "translation" and not lat.all_periodic:
                fail("P500", "translation needs a periodic lattice", s.span)

    # ---------------------------------------------------------------- structure of S
    def _collect(self, e: E.Expr, coef: sympy.Expr) -> None:
        """S as a sum of coef * sum(body for ... in sites | bonds)."""
        b = self.builder
        binary, unary, red, n = as_binary(e), as_unary(e), as_reduce(e), name_of(e)
        if binary is not None and binary[0] in ("+", "-"):
            op, left, right = binary
            self._collect(left, coef)
            self._collect(right, coef if op == "+" else -coef)
        elif unary is not None and unary[0] == "-":
            self._collect(unary[1], -coef)
        elif binary is not None and binary[0] in ("*", "/"):
            op, le, ri = binary
            left, right = _has_field(le, self), _has_field(ri, self)
            if left and right:
                fail("P800", "an action is a sum of local terms: a product of two sums is not",
                     e.span)  # fmt: skip
            if op == "/" and right:
                fail("P800", "the field cannot appear in a denominator outside a sum", e.span)
            if left:
                k = b.build(ri, {})
                self._collect(le, coef * k if op == "*" else coef / k)
            elif right:
                self._collect(ri, coef * b.build(le, {}))
        elif n is not None and n in self.model.definitions and _has_field(e, self):
            self._collect(self.model.definitions[n].expr, coef)
        elif red is not None and red.func == "sum":
            self._sum(red, coef)
        elif _has_field(e, self):
            fail("P800", "the field must appear inside sum(... for i in sites) or "
                 "sum(... for (i, j) in bonds)", e.span)  # fmt: skip
        # else: a constant, irrelevant for sampling

    def _sum(self, e: E.Reduce, coef: sympy.Expr) -> None:
        if len(e.loops) != 1:
            fail("P800", "one loop per sum over the lattice", e.span)
        loop = e.loops[0]
        d = loop.domain
        shell = 1
        dname = name_of(d)
        call = as_call(d)
        if call is not None and call.func == "bonds" and len(call.args) == 1:
            shell = int(evaluate(call.args[0], self.model.params, "the shell"))
            dname = "bonds"
        if dname not in ("sites", "bonds"):
            fail("P800", "continuous-field actions sum over sites or bonds",
                 d.span if d is not None else loop.span)  # fmt: skip
        kind = "site" if dname == "sites" else "bond"
        need = 1 if kind == "site" else 2
        if len(loop.names) != need:
            fail("P302", f"a sum over {dname} binds {need} name(s)", loop.span)
        self.builder.slots = dict(zip(loop.names, (self.builder.a, self.builder.b)))
        try:
            body = self.builder.build(e.body, {})
        finally:
            self.builder.slots = {}
        self.terms.append(_Term(kind, shell, coef * body, e.span))

    # ---------------------------------------------------------------- evaluation
    def _mask(self, offset: tuple[int, ...], like: Tensor) -> Tensor | None:
        if self.lattice.all_periodic:
            return None
        key = (offset, like.device, like.dtype)
        if key not in self._masks:
            m = self.lattice.bond_mask(offset).reshape(self.shape)
            self._masks[key] = m.to(dtype=like.dtype, device=like.device)
        return self._masks[key]

    @staticmethod
    def _shift(x: Tensor, offset: tuple[int, ...], sign: int = 1) -> Tensor:
        """x[c, site + sign * offset] (periodic)."""
        dims = tuple(range(1, x.dim()))
        return torch.roll(x, tuple(-sign * o for o in offset), dims)

    def _lower(self, key: str, exprs: list[sympy.Expr], args: list[sympy.Symbol],
               params: dict[sympy.Symbol, float]) -> None:  # fmt: skip
        """One program per density (or its gradients) over x = phi[site] (and y = phi[site + e])."""
        names = dict(zip(args, ("x", "y")))
        prog = lower_program(exprs, args, names, params, key)
        sig = ", ".join(f"{names[s]}: torch.Tensor" for s in args)
        outs = [f"torch.full_like(x, {s})" if c else s
                for s, c in zip(prog.out_srcs, prog.constant, strict=True)]  # fmt: skip
        ret = outs[0] if len(outs) == 1 else "(" + ", ".join(outs) + ")"
        self._programs[key] = prog
        self._sources[key] = "\n".join([f"def {key}({sig}):", *prog.lines,
                                        f"    return {ret}"]) + "\n"  # fmt: skip

    @classmethod
    def _shifts(cls, x: Tensor, offsets: list[tuple[int, ...]], sign: int) -> Tensor:
        """sum_e x[site + sign * e] over the offsets of a shell."""
        out = cls._shift(x, offsets[0], sign)
        for off in offsets[1:]:
            out = out + cls._shift(x, off, sign)
        return out

    def _eval(self, key: str, *args: Tensor) -> list[Tensor]:
        """Run a lowered density program on whole fields (C, *shape); constants broadcast."""
        x, out = args[0], []
        for v in self._programs[key].run(*args):
            if not isinstance(v, Tensor):
                v = torch.full_like(x, float(v))
            elif v.shape != x.shape:
                v = v.expand(x.shape)
            out.append(v)
        return out

    def density(self, x: Tensor) -> Tensor:
        """Action density per site (C, *shape): the site term plus the bonds leaving each site."""
        (out,) = self._eval("site", x)
        for shell in self.bonds:
            for off in self.lattice.shells[shell]:
                (g,) = self._eval(f"bond{shell}", x, self._shift(x, off))
                m = self._mask(off, x)
                out = out + (g if m is None else g * m)
        return out

    def action(self, x: Tensor) -> Tensor:
        """S(x) -> (C,) for fields x of shape (C, *lattice.shape)."""
        return self.density(x).reshape(x.shape[0], -1).sum(-1)

    __call__ = action

    def grad(self, x: Tensor) -> Tensor:
        """dS/dx (C, *shape), from the derived densities: f'(x) + sum over bonds of
        dg/da at (x, x + e) and dg/db at (x - e, x)."""
        (out,) = self._eval("force_local", x)
        for shell, (alpha, beta) in self._linear.items():
            offs = self.lattice.shells[shell]
            up = self._shifts(x, offs, 1)
            if alpha == beta:
                out = out + alpha * (up + self._shifts(x, offs, -1))
            else:
                out = out + alpha * up + beta * self._shifts(x, offs, -1)
        for shell in self.bonds:
            if shell in self._linear:
                continue
            for off in self.lattice.shells[shell]:
                ga, gb = self._eval(f"bond{shell}_grad", x, self._shift(x, off))
                m = self._mask(off, x)
                if m is not None:
                    ga, gb = ga * m, gb * m
                out = out + ga + self._shift(gb, off, -1)
        return out

    def to(self, device: Any) -> FieldModel:
        return self

    def describe(self) -> str:
        shells = ", ".join(f"bonds{'' if s == 1 else f'({s})'}" for s in self.bonds)
        return (f"continuous field {self.field}: {self.domain} on {self.lattice.kind}"
                f"{list(self.shape)}; action = sites{' + ' + shells if shells else ''}; "
                "samplers hmc, mala, ula (derived dS/dx)")  # fmt: skip

    def emit_sympy(self) -> str:
        a, b = self.builder.a, self.builder.b
        lines = [f"# model {self.ir.name}: S = sum_i f({a}) + sum_<ij> g({a}, {b})",
                 f"f = {self.derived['site'][0]}", f"df/d{a} = {self.derived['site'][1]}"]
        for shell in self.bonds:
            g = self.derived[f"bond{shell}"]
            lines += [f"g (shell {shell}) = {g[0]}", f"dg/d{a} = {g[1]}", f"dg/d{b} = {g[2]}"]
        lines.append(f"dS/d{self.field}[x] = df/d{a}(x) + sum_e [dg/d{a}(x, x+e) + "
                     f"dg/d{b}(x-e, x)]")  # fmt: skip
        return "\n".join(lines)

    def emit_torch(self) -> str:
        head = ('"""Lowered action densities: x = phi (C, *lattice), y = phi at the neighbour '
                'x + e (torch.roll); S sums site(x) and, per bond direction e, bond(x, y). The '
                'force dS/dphi is force(x) below."""\n\n'
                "import torch\n\n\n")  # fmt: skip
        body = "\n\n".join(self._sources.values())
        # The force as it runs: local part, neighbour sums of linear bond shells, other shells.
        lines = ["def force(x: torch.Tensor):", "    out = force_local(x)"]
        for shell, (alpha, beta) in self._linear.items():
            ups = " + ".join(f"torch.roll(x, {tuple(-o for o in off)}, {tuple(range(1, 1 + len(off)))})"
                             for off in self.lattice.shells[shell])
            downs = " + ".join(f"torch.roll(x, {tuple(off)}, {tuple(range(1, 1 + len(off)))})"
                               for off in self.lattice.shells[shell])
            if alpha == beta:
                lines.append(f"    out = out + {alpha!r} * (({ups}) + ({downs}))")
            else:
                lines.append(f"    out = out + {alpha!r} * ({ups}) + {beta!r} * ({downs})")
        for shell in self.bonds:
            if shell not in self._linear:
                lines.append(f"    for e in SHELL{shell}:  # masked on open boundaries")
                lines.append(f"        gx, gy = bond{shell}_grad(x, torch.roll(x, -e))")
                lines.append("        out = out + gx + torch.roll(gy, e)")
        lines.append("    return out")
        return head + body + "\n\n" + "\n".join(lines) + "\n"


def _linear_bond(es: list[sympy.Expr], a: sympy.Symbol, b: sympy.Symbol,
                 params: dict[sympy.Symbol, float]) -> tuple[float, float, sympy.Expr, sympy.Expr] | None:  # fmt: skip
    """(alpha, beta, A(a), B(b)) when dg/da = alpha b + A(a) and dg/db = beta a + B(b)."""
    bind = {s: sympy.Float(v, 17) for s, v in params.items()}
    ga, gb = (sympy.expand(e.xreplace(bind)) for e in es[1:])
    alpha, beta = sympy.diff(ga, b), sympy.diff(gb, a)
    if alpha.free_symbols or beta.free_symbols:
        return None
    A, B = sympy.expand(ga - alpha * b), sympy.expand(gb - beta * a)
    if b in A.free_symbols or a in B.free_symbols:
        return None
    return float(alpha), float(beta), A, B


def _has_field(e: E.Expr, model: FieldModel) -> bool:
    stack = [e]
    while stack:
        x = stack.pop()
        n = name_of(x)
        if n is not None:
            if n == model.field:
                return True
            d = model.model.definitions.get(n)
            if d is not None and _has_field(d.expr, model):
                return True
        call = as_call(x)
        if call is not None and call.func in model.model.definitions:
            return True
        stack.extend(children(x))
    return False


def compile_field(model: ModelInstance, **options: Any) -> FieldModel:
    return FieldModel(model)


__all__ = ["FieldModel", "PhaseSpaceModel", "compile_field", "compile_phase_space", "phase_shape"]

