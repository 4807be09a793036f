"""A phase-space model derived, without torch: Hamilton's equations from its Hamiltonian.

A model with ``phase_space (q, p) [: real[N, D]]`` and a ``hamiltonian`` (or a ``kinetic`` plus
a ``potential``). H is built as a sympy expression node by node (never from text) in the
flattened canonical symbols ``q_k, p_k`` (k = i * D + a for ``q[i, a]``); sums over
``particles``, ``dims``, ``pairs`` (i < j over particles) and literal lists are unrolled, or, for
sums over particles and pairs of a function of q_i - q_j, derived once for a generic particle
and pair (any N). :func:`derive_phase_space` derives

    dq_k/dt = dH/dp_k,    dp_k/dt = -dH/dq_k,

separability (H = T(p) + V(q)), the parity of the pair potential, and rejects canonical pairs H
does not depend on and non-differentiable pieces (located). It is what ``physml check`` reports
and what the compiled :class:`~physml_lang.compiler.models.phase_space.PhaseSpaceModel` lowers
to batched torch callables over ``q, p`` of shape ``(..., n)``, n = prod(shape).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import sympy

from physml_lang.compiler.derive.common import allowed_symmetries
from physml_lang.compiler.derive.hamiltonian import (
    HamiltonianDerivation,
    HamiltonianError,
    PairSum,
    derive_hamiltonian,
    is_even,
)
from physml_lang.compiler.instance import ModelInstance
from physml_lang.compiler.lower.sympy import SympyBuilder
from physml_lang.diagnostics import PhysmlError, Span
from physml_lang.ir import expr as E
from physml_lang.ir.model import ModelIR
from physml_lang.ir.walk import (
    as_binary,
    as_call,
    as_index,
    as_reduce,
    as_unary,
    children,
    fail,
    name_of,
)

MAX_PAIRS = 4096  # canonical pairs of a phase-space model (symbolic derivation per pair)


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
            fail("P314", f"'{e.id}' has shape {self.shape}: index it, e.g. {e.id}[{dims}]",
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
                fail("P405", f"index {k} is out of range 0 .. {size - 1}", x.span)
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
                     "say it: 'for i in particles', 'for a in dims' or 'for (i, j) in pairs'")  # fmt: skip
            return [(k,) for k in range(self.shape[axis])]
        dname = name_of(d)
        if dname in ("particles", "dims", "pairs"):
            if not self.shape:
                fail("P411", f"'{dname}' needs a phase space with a shape, e.g. "
                     "phase_space (q, p): real[N, 2]", d.span)  # fmt: skip
            if dname == "dims":
                return [(k,) for k in range(self.shape[-1] if len(self.shape) == 2 else 1)]
            N = self.shape[0]
            if dname == "particles":
                return [(k,) for k in range(N)]
            return [(i, j) for i in range(N) for j in range(i + 1, N)]
        fail("P209", "phase-space sums run over particles, dims, pairs, range(...) or a list",
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
        fail("P420", f"phase-space model {ir.name} declares no hamiltonian",
             other.span if other else ir.name_span,
             "write 'hamiltonian H = ...', or a 'kinetic T = ...' and a "
             "'potential V = ...'")  # fmt: skip
    if not kin:
        fail("P420", "a potential needs a kinetic term too (or write the whole hamiltonian)",
             pot[0].span, f"e.g. kinetic T = {pname}^2 / (2 * m)")  # fmt: skip
    return [d.expr for d in kin + pot], (kin + pot)[0].span


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
                fail("P405", f"index {a} is out of range 0 .. {self.D - 1}", e.indices[1].span)
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
                                       name_of(idx.base) if idx is not None else None)  # fmt: skip
        if n is not None and n in names:
            return True
        d = ir.definitions.get(ref) if ref is not None else None
        if d is not None and _mentions(d.expr, names, ir, depth + 1):
            return True
        stack.extend(children(x))
    return False


def _nondifferentiable(expr: sympy.Expr, span: Span) -> None:
    """P313: H has a piece whose derivative is undefined (abs, sign, max, ...)."""
    fail("P313", f"the Hamiltonian is not differentiable here ({type(expr).__name__}): "
         "Hamilton's equations need dH/dq and dH/dp", span,
         "use a smooth form, e.g. sqrt(x^2 + eps^2) for abs(x)")  # fmt: skip


def _unused(model: ModelInstance, shape: tuple[int, ...], unused: tuple[int, ...] | list[int],
            total: int | None = None) -> None:  # fmt: skip
    """P419: H does not depend on the canonical pairs ``unused`` (flattened indices; the first
    few of ``total``)."""
    assert model.phase_space is not None
    qn, pn = model.phase_space.q, model.phase_space.p
    total = len(unused) if total is None else total
    pairs = ", ".join(f"({_label(qn, shape, k)}, {_label(pn, shape, k)})" for k in unused[:4])
    more = "" if total <= 4 else f" and {total - 4} more"
    fail("P419", f"the Hamiltonian does not depend on the canonical pair(s) {pairs}{more} "
         "declared by phase_space", _hamiltonian_defs(model)[1],
         "use every declared coordinate in H, or declare fewer (phase_space (q, p): "
         "real[N, D])")  # fmt: skip


@dataclass
class Structure:
    """H = sum_i h(q_i, p_i) + sum_{i<j} V(q_i - q_j) + rest(q, p), derived once for a generic
    particle i (``particle`` in the symbols ``gq``, ``gp`` of one particle, D each) and a generic
    pair (``pair``: V in the separation symbols d_a); ``rest`` over the flattened coordinates
    (``rest_equations`` its Hamilton's equations, None when it is a constant, ``constant``).
    ``params``: parameter symbol -> value; ``separable``: H = T(p) + V(q)."""

    N: int
    D: int
    particle: sympy.Expr | None
    gq: tuple[sympy.Symbol, ...]
    gp: tuple[sympy.Symbol, ...]
    pair: PairSum | None
    rest: sympy.Expr
    rest_equations: HamiltonianDerivation | None
    constant: float
    params: dict[sympy.Symbol, float]
    separable: bool

    def emit_sympy(self, name: str) -> str:
        lines = [f"# model {name}: H = sum_i h(q_i, p_i) + sum_{{i<j}} V(d), d = q_i - q_j, "
                 f"+ rest; derived once for a generic particle i and pair (i, j); "
                 f"N = {self.N}, D = {self.D}; separable={self.separable}"]  # fmt: skip
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


def derive_structure(model: ModelInstance, shape: tuple[int, ...],
                     builder: PhaseBuilder | None) -> Structure | None:  # fmt: skip
    """Decompose H into sums over particles, a pair sum of a function of q_i - q_j and a rest.

    Used when there is a pair sum or when the phase space is too big to unroll (``builder`` is
    None); None when H has a piece that is neither (then the unrolled symbolic path applies,
    for small N).
    """
    ir = model
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
        if not pieces["pair"] and builder is not None:
            return None  # nothing to gain over the unrolled path
        if any(_mentions(e, names, ir) for _, e in rest) and builder is None:
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
            _nondifferentiable(expr, nspan)
    rest_expr = sympy.Integer(0)
    rest_equations = None
    separable = True
    if rest and builder is not None:
        b = builder
        rest_expr = sympy.Add(*[c * b.build(e, {}) for c, e in rest])
        for expr, nspan in b.nondiff:
            if expr.free_symbols & set(b.q + b.p) and expr in rest_expr.atoms(type(expr)):
                _nondifferentiable(expr, nspan)
    params = {sympy.Symbol(k, real=True): float(v) for k, v in gb.params.items()}
    constant = 0.0
    try:
        if rest_expr.free_symbols - psyms:
            rest_equations = derive_hamiltonian(rest_expr, builder.q, builder.p)
            separable = rest_equations.separable
        elif rest_expr != 0:
            constant = float(rest_expr.xreplace({s: sympy.Float(v) for s, v in params.items()}))
        if particle.free_symbols & set(qi) and particle.free_symbols & set(pi):
            separable = separable and derive_hamiltonian(particle, qi, pi).separable
        pair = PairSum(F, dsyms, is_even(F, dsyms)) if F != 0 else None
    except HamiltonianError as exc:
        fail("P800", str(exc), span)
    # every declared coordinate must enter H
    used_dims = {a for a in range(D) if {qi[a], pi[a]} & particle.free_symbols}
    if pair is not None and N >= 2:
        used_dims |= {a for a in range(D) if dsyms[a] in F.free_symbols}
    unused_axes = [a for a in range(D) if a not in used_dims]
    if unused_axes and rest_equations is not None:  # unrolled (few pairs): the rest may use some
        rest_unused = set(rest_equations.unused_pairs)
        unused = [k for k in range(N * D) if k % D in unused_axes and k in rest_unused]
        if unused:
            _unused(model, shape, unused, len(unused))
    elif unused_axes:  # an axis no term uses, for every particle: name the first few
        first = [i * D + a for i in range(min(N, 4)) for a in unused_axes][:4]
        _unused(model, shape, first, N * len(unused_axes))
    return Structure(N, D, particle if particle != 0 else None, qi, pi, pair, rest_expr,
                     rest_equations, constant, params, separable)  # fmt: skip


@dataclass
class PhaseSpaceDerivation:
    """A phase-space model derived: canonical pairs ``q, p`` of shape ``shape`` (n = prod(shape)
    pairs, flattened), and H either as a :class:`Structure` (sums over particles and pairs,
    any N) or unrolled over the flattened coordinates (``builder``; Hamilton's equations in
    :attr:`equations`)."""

    model: ModelInstance
    shape: tuple[int, ...]
    n: int
    builder: PhaseBuilder | None
    structure: Structure | None
    _equations: HamiltonianDerivation | None = field(default=None, repr=False)

    lattice = None  # a phase space has no geometry

    @property
    def ir(self) -> ModelIR:
        return self.model.ir

    @property
    def qname(self) -> str:
        assert self.model.phase_space is not None
        return self.model.phase_space.q

    @property
    def pname(self) -> str:
        assert self.model.phase_space is not None
        return self.model.phase_space.p

    @property
    def H_span(self) -> Span:
        return _hamiltonian_defs(self.model)[1]

    @property
    def equations(self) -> HamiltonianDerivation:
        """Hamilton's equations over the flattened coordinates, every sum unrolled (derived on
        first use; the structured path never needs them)."""
        if self._equations is None:
            if self.builder is None:
                fail("P407", f"{self.n} canonical pairs: too many to write Hamilton's equations "
                     "out one coordinate at a time", self.H_span)  # fmt: skip
            exprs, span = _hamiltonian_defs(self.model)
            H = sympy.Integer(0)
            for e in exprs:
                H = H + self.builder.build(e, {})
            try:
                self._equations = derive_hamiltonian(H, self.builder.q, self.builder.p)
            except HamiltonianError as exc:
                fail("P313", str(exc), span)
        return self._equations

    @property
    def H(self) -> sympy.Expr:
        """H over the flattened canonical symbols, every sum unrolled (small systems only)."""
        return self.equations.H

    @property
    def separable(self) -> bool:
        """H = T(p) + V(q)."""
        if self.structure is not None:
            return self.structure.separable
        return bool(self.equations.separable)

    @property
    def default_integrator(self) -> str:
        """Structure-preserving default: leapfrog for H = T(p) + V(q), implicit midpoint else."""
        return "leapfrog" if self.separable else "implicit_midpoint"

    def labels(self) -> list[str]:
        """``q[i, a]`` for every flattened coordinate."""
        return [_label(self.qname, self.shape, k) for k in range(self.n)]

    def describe(self) -> str:
        """One line for ``physml check``."""
        shape = f"real{list(self.shape)}" if self.shape else "real"
        return (f"phase space ({self.qname}, {self.pname}): {shape}, "
                f"{self.n} canonical pair(s); H {'separable' if self.separable else 'non-separable'}"
                f"; integrator {self.default_integrator}")  # fmt: skip

    def emit_sympy(self) -> str:
        """Hamilton's equations as derived (generic particle and pair when structured)."""
        if self.structure is not None:
            return self.structure.emit_sympy(self.ir.name)
        d = self.equations
        lines = [f"# model {self.ir.name}: Hamilton's equations derived from H", f"H = {d.H}"]
        if d.separable:
            lines += [f"T(p) = {d.kinetic}", f"V(q) = {d.potential}"]
        for k in range(d.n):
            lines.append(f"d{d.q[k]}/dt = dH/d{d.p[k]} = {d.qdot[k]}")
            lines.append(f"d{d.p[k]}/dt = -dH/d{d.q[k]} = {d.pdot[k]}")
        return "\n".join(lines)


def derive_phase_space(model: ModelInstance) -> PhaseSpaceDerivation:
    """Hamilton's equations of a phase-space model: structured (any N) when H is sums over
    particles and pairs, else unrolled (at most :data:`MAX_PAIRS` canonical pairs); located
    P313 for a non-differentiable H, P419 for canonical pairs H does not use."""
    shape = phase_shape(model)
    n = max(1, math.prod(shape))
    allowed_symmetries(model, {"symplectic"}, "phase-space models (the canonical structure is "
                       "built in: symmetry symplectic)")  # fmt: skip
    builder = PhaseBuilder(model, shape) if n <= MAX_PAIRS else None
    derived = PhaseSpaceDerivation(model, shape, n, builder, derive_structure(model, shape, builder))  # fmt: skip
    if derived.structure is not None:
        return derived
    if builder is None:
        fail("P407", f"{n} canonical pairs is more than the symbolic compiler handles "
             f"({MAX_PAIRS}) for this Hamiltonian", model.phase_space.span,
             "sums over particles and 'for (i, j) in pairs' of a function of "
             "q[i, a] - q[j, a] are compiled for any N")  # fmt: skip
    d = derived.equations
    moving = builder.q + builder.p
    for expr, span in builder.nondiff:
        if expr.free_symbols & set(moving) and expr in d.H.atoms(type(expr)):
            _nondifferentiable(expr, span)
    if d.unused_pairs:
        _unused(model, shape, d.unused_pairs)
    return derived


__all__ = ["MAX_PAIRS", "PhaseSpaceDerivation", "Structure", "derive_phase_space",
           "derive_structure", "phase_shape"]  # fmt: skip
