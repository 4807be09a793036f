"""Hamilton's equations from a declared Hamiltonian (sympy only; lowered by lower/hamiltonian).

Given ``H(q_1..q_n, p_1..p_n)`` as a sympy expression (built by the front end from the parse tree,
never from text), :func:`derive_hamiltonian` derives

    qdot_k = dH/dp_k,    pdot_k = -dH/dq_k,

detects separability (``H = T(p) + V(q)``, i.e. every mixed derivative d2H/dq_i dp_j vanishes),
lists the canonical pairs ``H`` does not depend on and the non-differentiable pieces (Abs, sign,
floor, Heaviside, Max/Min, Piecewise, ...).

Structured Hamiltonians (any number of particles) are derived once for a generic particle
(:class:`ParticleSum`) and a generic pair (:class:`PairSum`); radial pair potentials are
recognised (:func:`radial_profile`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import sympy

from .. import limits
from ..errors import CompileError, as_sympy

_as_expr = as_sympy

# sympy classes whose derivative is undefined somewhere (or which are piecewise constant).
_NONDIFFERENTIABLE: tuple[type, ...] = (
    sympy.Abs,
    sympy.sign,
    sympy.floor,
    sympy.ceiling,
    sympy.frac,
    sympy.Heaviside,
    sympy.Max,
    sympy.Min,
    sympy.Piecewise,
    sympy.DiracDelta,
)


# A Hamiltonian (or its derivatives) that cannot be derived or lowered.
HamiltonianError = CompileError


@dataclass(frozen=True)
class NonDifferentiable:
    """A piece of H whose derivative is undefined or zero almost everywhere."""

    kind: str  # sympy class name, e.g. "Abs"
    expr: sympy.Expr


@dataclass(frozen=True)
class HamiltonianDerivation:
    """Hamilton's equations and structural facts about a declared H(q, p)."""

    H: sympy.Expr
    q: tuple[sympy.Symbol, ...]
    p: tuple[sympy.Symbol, ...]
    dH_dq: tuple[sympy.Expr, ...]
    dH_dp: tuple[sympy.Expr, ...]
    separable: bool
    kinetic: sympy.Expr | None  # T(p) when separable
    potential: sympy.Expr | None  # V(q) when separable
    unused_pairs: tuple[int, ...]  # pair indices k with neither q_k nor p_k in H
    unused_q: tuple[int, ...]  # k with q_k absent from H (p_k conserved)
    unused_p: tuple[int, ...]  # k with p_k absent from H (q_k frozen)
    nondifferentiable: tuple[NonDifferentiable, ...]

    @property
    def n(self) -> int:
        return len(self.q)

    @property
    def qdot(self) -> tuple[sympy.Expr, ...]:
        return self.dH_dp

    @property
    def pdot(self) -> tuple[sympy.Expr, ...]:
        return tuple(-e for e in self.dH_dq)


def _realify(
    H: sympy.Expr, q: Sequence[sympy.Symbol], p: Sequence[sympy.Symbol]
) -> tuple[sympy.Expr, dict[sympy.Symbol, sympy.Symbol], dict[sympy.Symbol, sympy.Symbol]]:
    """Replace every free symbol by a real one, so d|x|/dx = sign(x) rather than re/im noise."""
    to_real: dict[sympy.Symbol, sympy.Symbol] = {}
    for s in list(q) + list(p) + sorted(H.free_symbols, key=str):
        if s not in to_real:
            to_real[s] = s if s.is_real else sympy.Symbol(s.name, real=True)
    back = {v: k for k, v in to_real.items()}
    return H.xreplace(to_real), to_real, back


# sympy.simplify() is unpredictable in cost (minutes on a 45-op N-body force term), so it is
# only used on small expressions; cse() at lowering shares common parts anyway.
_SIMPLIFY_MAX_OPS = 24


def _tidy(expr: sympy.Expr) -> sympy.Expr:
    """Cheap normalisation of a derivative; simplify() only when it is small."""
    return limits.simplify_small(expr, _SIMPLIFY_MAX_OPS)


def _is_zero(expr: sympy.Expr) -> bool:
    """Zero test for mixed partials, even parts and radial profiles. Conservative: an
    expression not *shown* to vanish (or too large to expand) counts as non-zero (H is then
    treated as non-separable, a pair potential as general: that only costs speed)."""
    return limits.is_zero(expr, max_ops=4 * _SIMPLIFY_MAX_OPS, numeric=False)


def _split_separable(
    H: sympy.Expr, q: Sequence[sympy.Symbol], p: Sequence[sympy.Symbol]
) -> tuple[sympy.Expr, sympy.Expr] | None:
    """H = T(p) + V(q) by splitting the (expanded) sum into p-only and q-only terms."""
    qs, ps = set(q), set(p)

    def forms():  # the written form; expanded (when not too large) only if that fails
        yield H
        if limits.expandable(H):
            yield sympy.expand(H)

    for form in forms():
        T: list[sympy.Expr] = []
        V: list[sympy.Expr] = []
        ok = True
        for term in sympy.Add.make_args(form):
            fs = term.free_symbols
            if fs & ps and fs & qs:
                ok = False
                break
            if fs & ps:
                T.append(term)
            else:
                V.append(term)  # q-only terms and constants
        if ok:  # one Add each: adding term by term is quadratic in the terms
            return sympy.Add(*T), sympy.Add(*V)
    return None


def _gradient(H: sympy.Expr, symbols: Sequence[sympy.Symbol]) -> list[sympy.Expr]:
    """dH/ds for every s in ``symbols``, each term of a sum differentiated by the symbols it
    contains only: linear in the terms (sympy.diff of a whole N-body sum per coordinate is
    quadratic, minutes for a few thousand pair terms)."""
    if not H.is_Add:
        return [sympy.diff(H, s) for s in symbols]
    wanted = set(symbols)
    terms: dict[sympy.Symbol, list[sympy.Expr]] = {s: [] for s in symbols}
    for term in H.args:
        for s in term.free_symbols & wanted:
            terms[s].append(term)
    return [sympy.Add(*[_term_derivative(t, s) for t in terms[s]]) for s in symbols]


def _term_derivative(t: sympy.Expr, s: sympy.Symbol) -> sympy.Expr:
    """d t / d s, directly for a product with one factor s^n (a monomial term such as
    0.5 p_i p_j: ~5 us instead of ~0.4 ms for sympy.diff), by sympy.diff otherwise."""
    if t == s:
        return sympy.Integer(1)
    if t.is_Mul:
        args = t.args
        hits = [k for k, a in enumerate(args) if s in a.free_symbols]
        if len(hits) == 1:
            k = hits[0]
            rest = args[:k] + args[k + 1:]
            f = args[k]
            if f == s:
                return sympy.Mul(*rest)
            if f.is_Pow and f.base == s and f.exp.is_Number:
                return sympy.Mul(f.exp, s ** (f.exp - 1), *rest)
    return sympy.diff(t, s)


def derive_hamiltonian(
    H: sympy.Expr, q: Sequence[sympy.Symbol], p: Sequence[sympy.Symbol]
) -> HamiltonianDerivation:
    """Derive Hamilton's equations of ``H`` in canonical pairs ``(q[k], p[k])``.

    Parameters (m, g, ...) may stay symbolic; they are bound at :func:`lower_hamiltonian`.
    Raises :class:`HamiltonianError` for mismatched or repeated coordinates.
    """
    q, p = list(q), list(p)
    if len(q) != len(p):
        raise HamiltonianError(f"{len(q)} coordinates but {len(p)} momenta")
    if len(set(q) | set(p)) != 2 * len(q):
        raise HamiltonianError("canonical coordinates and momenta must be distinct symbols")
    H = _as_expr(H)
    Hr, to_real, back = _realify(H, q, p)
    qr, pr = [to_real[s] for s in q], [to_real[s] for s in p]

    dq = [_tidy(d) for d in _gradient(Hr, qr)]
    dp = [_tidy(d) for d in _gradient(Hr, pr)]

    # Separable iff all mixed partials vanish; then H = T(p) + V(q) up to a constant. The
    # syntactic split (cheap, no simplify) decides most cases; mixed partials the rest.
    split = _split_separable(Hr, qr, pr)
    separable = split is not None or all(_is_zero(sympy.diff(d, s)) for d in dq for s in pr)
    kinetic = potential = None
    if separable:
        if split is None:
            # Mixed partials vanish but no syntactic split: T(p) = H(q=0, p) - H(0, 0).
            zq = {s: 0 for s in qr}
            zp = {s: 0 for s in pr}
            T = limits.simplify_small(Hr.subs(zq) - Hr.subs(zq).subs(zp), 4 * _SIMPLIFY_MAX_OPS)
            split = (T, limits.simplify_small(Hr.subs(zp), 4 * _SIMPLIFY_MAX_OPS))
        kinetic, potential = (e.xreplace(back) for e in split)

    free = Hr.free_symbols
    unused_q = tuple(k for k, s in enumerate(qr) if s not in free)
    unused_p = tuple(k for k, s in enumerate(pr) if s not in free)
    unused_pairs = tuple(k for k in unused_q if k in unused_p)

    found: list[NonDifferentiable] = []
    seen: set[sympy.Expr] = set()
    for node in sympy.preorder_traversal(H):
        if isinstance(node, _NONDIFFERENTIABLE) and node not in seen:
            seen.add(node)
            found.append(NonDifferentiable(type(node).__name__, node))

    return HamiltonianDerivation(
        H=H,
        q=tuple(q),
        p=tuple(p),
        dH_dq=tuple(e.xreplace(back) for e in dq),
        dH_dp=tuple(e.xreplace(back) for e in dp),
        separable=separable,
        kinetic=kinetic,
        potential=potential,
        unused_pairs=unused_pairs,
        unused_q=unused_q,
        unused_p=unused_p,
        nondifferentiable=tuple(found),
    )


@dataclass
class ParticleSum:
    """sum_i f(q_i, p_i) with q_i = (q_i_0, ..., q_i_{D-1}) generic symbols of particle i."""

    body: sympy.Expr
    q: tuple[sympy.Symbol, ...]
    p: tuple[sympy.Symbol, ...]


@dataclass
class PairSum:
    """sum_{i<j} F(d) with d = q_i - q_j, F built for a generic pair; ``symmetric`` when
    F(-d) = F(d) (then the force on i is sum_{j != i} dF/dd(q_i - q_j))."""

    F: sympy.Expr
    d: tuple[sympy.Symbol, ...]
    symmetric: bool


def is_even(F: sympy.Expr, d: Sequence[sympy.Symbol]) -> bool:
    """F(-d) == F(d), shown symbolically (expand, then simplify when small); False if unsure."""
    diff = F.xreplace({s: -s for s in d}) - F
    return _is_zero(diff)


R2 = sympy.Symbol("r2", positive=True)  # the squared separation of a radial pair potential


def radial_profile(F: sympy.Expr, d: Sequence[sympy.Symbol]) -> sympy.Expr | None:
    """f with F(d) = f(r2), r2 = sum_a d_a^2 (f in the symbol :data:`R2`), or None when F is not
    shown to depend on d through r2 alone.

    f is read off along an axis, f(r2) = F(sqrt(r2), 0, ..., 0), and accepted when f(d . d)
    equals F identically (so (sigma^2 / r2)^6 or 1 / sqrt(d . d + eps^2) qualify, while
    d0^2 + 2 d1^2, cos(d0) + cos(d1) or an odd F do not).
    """
    if not d or not (F.free_symbols & set(d)):
        return None
    f = F.xreplace({d[0]: sympy.sqrt(R2), **{s: sympy.Integer(0) for s in d[1:]}})
    if f.free_symbols & set(d) or f.has(sympy.nan, sympy.zoo, sympy.oo, -sympy.oo):
        return None
    back = f.xreplace({R2: sympy.Add(*[s * s for s in d])})
    return f if _is_zero(back - F) else None
