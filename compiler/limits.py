"""Bounds on the sympy work a user's expression can ask for: estimated before sympy starts.

``expand``, ``simplify`` and the Pauli algebra are exact, and their cost grows with the size of
what they produce, not of what was written: ``(s1 + ... + s5 + 1)^20`` is one line and 53,130
monomials; ``((x + 2)^64)^64`` merges into ``(x + 2)^4096``. Where the compiler expands or
simplifies an expression built from a ``.phys`` file whose size nothing upstream bounds (an
energy's terms, a pair interaction, a Hamiltonian, an action, a radial profile), it goes
through this module, which estimates the cost first (:func:`expansion_cost`, linear in the
expression's distinct nodes) and then

- refuses with a located ``P410`` ("expression too large to derive") where the expanded form
  is what the compiler needs (:func:`expand`), or
- falls back where that is correct: no simplification (:func:`simplify_small`), or a zero test
  by evaluation at random points instead of symbolic proof (:func:`is_zero`).

The unit of cost is roughly one product term of ``sympy.expand`` (~0.1 ms on a shared 2-core
machine); multinomial terms cost more (:data:`MULTINOMIAL_UNIT`) and more again with large
exponents, whose integer coefficients grow.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable

import sympy

from physml_lang.diagnostics import Diagnostic, PhysmlError, Span

MAX_EXPAND_COST = 50_000  # ~5 s of sympy.expand at worst; the examples stay below 100
SIMPLIFY_MAX_COST = 2_000  # simplify() expands, factors and cancels: only small inputs
SIMPLIFY_MAX_OPS = 40  # operations (count_ops) of an expression given to simplify()
MULTINOMIAL_UNIT = 5  # a term of (a + b + ...)^n costs ~5 product terms
_CAP = 1 << 62

TOO_LARGE = "P410"
HINT = ("simplify the expression by hand: fewer terms inside a power, lower powers of sums, or "
        "products of fewer sums")  # fmt: skip


def _multinomial(k: int, n: int) -> int:
    """Monomials of (t_1 + ... + t_k)^n, C(n + k - 1, k - 1), saturating at the cap."""
    if k <= 1 or n <= 0:
        return 1
    m = min(n, k - 1)
    out = 1
    for i in range(1, m + 1):
        out = out * (n + k - 1 - m + i) // i
        if out >= _CAP:
            return _CAP
    return out


def _terms_of_power(base_terms: int, exponent: sympy.Expr) -> tuple[int, int]:
    """(terms after expansion, work of expanding) for base^exponent with a base of
    ``base_terms`` terms: integer and half-integer exponents expand the base's power (negative
    ones in the denominator: one term)."""
    if not exponent.is_Rational:
        return 1, 0
    n = int(abs(exponent))  # (a + b)^(5/2) = (a + b)^2 sqrt(a + b), expanded
    if n == 0 or base_terms <= 1:
        return 1, 0
    monomials = _multinomial(base_terms, n)
    work = monomials if n == 1 else min(_CAP, monomials * MULTINOMIAL_UNIT * (1 + n // 64))
    return (1 if exponent < 0 else monomials), work  # coefficients grow with n


def expansion_cost(expr: sympy.Basic, limit: int = _CAP) -> int:
    """Estimated work of ``sympy.expand(expr)``: the terms of every expanded subexpression,
    multinomials weighted (an upper bound for sums and products; ``limit``: stop counting once
    it is exceeded). Linear in the distinct subexpressions (a shared subtree counts once)."""
    if not isinstance(expr, sympy.Basic):
        return 1
    size: dict[sympy.Basic, int] = {}
    cost = 0
    stack: list[tuple[sympy.Basic, bool]] = [(expr, False)]
    while stack:
        node, ready = stack.pop()
        if node in size:
            continue
        args = node.args
        if not ready and args:
            stack.append((node, True))
            stack.extend((a, False) for a in args if a not in size)
            continue
        work = 0
        if not args:
            terms = 1
        elif node.is_Add:
            terms = min(_CAP, sum(size[a] for a in args))
        elif node.is_Mul:
            terms = 1
            for a in args:
                terms = min(_CAP, terms * size[a])
        elif node.is_Pow:
            terms, work = _terms_of_power(size[args[0]], args[1])
        else:  # functions, relations: expanded inside, one term outside
            terms = 1
        size[node] = terms
        cost = min(_CAP, cost + terms + work)
        if cost > limit:
            return cost
    return cost


def too_large(what: str, span: Span | None, hint: str = HINT) -> PhysmlError:
    """The located P410 of an expression that is too large to derive."""
    return PhysmlError(Diagnostic(TOO_LARGE, f"{what} is too large to derive (expanded, it "
                                  "would have more terms than physml derives)", span, hint))  # fmt: skip


def check_expandable(expr: sympy.Basic, span: Span | None, what: str = "this expression",
                     hint: str = HINT) -> None:  # fmt: skip
    """Raise a located P410 when expanding ``expr`` would cost more than the bound."""
    if expansion_cost(expr, MAX_EXPAND_COST) > MAX_EXPAND_COST:
        raise too_large(what, span, hint)


def expand(expr: sympy.Basic, span: Span | None, what: str = "this expression",
           hint: str = HINT) -> sympy.Expr:  # fmt: skip
    """``sympy.expand(expr)``, or a located P410 before starting when it would be too large."""
    check_expandable(expr, span, what, hint)
    return sympy.expand(expr)


def expandable(expr: sympy.Basic, limit: int = MAX_EXPAND_COST) -> bool:
    """Whether expanding ``expr`` stays within ``limit`` (for callers with a fallback)."""
    return expansion_cost(expr, limit) <= limit


HUGE = 2**53  # integers a double holds exactly


def _huge(n: sympy.Number) -> bool:
    if isinstance(n, sympy.Rational):
        return abs(n.p) > HUGE or n.q > HUGE
    if not n.is_real:  # infinities, nan
        return False
    v = abs(float(n))
    return v != 0 and not 1 / HUGE < v < HUGE


def simplifiable(expr: sympy.Basic, max_ops: int = SIMPLIFY_MAX_OPS) -> bool:
    """Whether ``sympy.simplify(expr)`` is cheap enough to try: few operations and a small
    expansion (``count_ops`` alone misses ``(a + b + 1)^64``: 4 operations, seconds)."""
    if not isinstance(expr, sympy.Basic):
        return True
    if expansion_cost(expr, SIMPLIFY_MAX_COST) > SIMPLIFY_MAX_COST:
        return False
    # simplify factors polynomials, with floats turned into rationals: numbers far beyond
    # double precision's integers (1e308, 1e-300) send it into primality tests that take minutes
    if any(_huge(n) for n in expr.atoms(sympy.Number)):
        return False
    return sympy.count_ops(expr) <= max_ops


def simplify_small(expr: sympy.Basic, max_ops: int = SIMPLIFY_MAX_OPS) -> sympy.Basic:
    """``sympy.simplify(expr)`` when it is cheap (:func:`simplifiable`), else ``expr`` as is:
    simplification only shortens what is lowered, cse() shares common parts anyway."""
    return sympy.simplify(expr) if simplifiable(expr, max_ops) else expr


def _random_values(symbols: Iterable[sympy.Symbol], rng: random.Random,
                   values: dict[sympy.Symbol, list] | None) -> dict[sympy.Symbol, sympy.Expr]:  # fmt: skip
    out: dict[sympy.Symbol, sympy.Expr] = {}
    for s in sorted(symbols, key=str):
        choices = (values or {}).get(s)
        if choices:
            v = rng.choice(list(choices))
            out[s] = sympy.Integer(v) if float(v).is_integer() else sympy.Float(float(v), 30)
        elif s.is_positive:
            out[s] = sympy.Float(rng.uniform(0.5, 2.0), 30)
        else:
            out[s] = sympy.Float(rng.uniform(-1.5, 1.5), 30)
    return out


def numerically_zero(expr: sympy.Basic, points: int = 4, tol: float = 1e-9, seed: int = 0,
                     values: dict[sympy.Symbol, list] | None = None) -> bool:  # fmt: skip
    """Whether ``expr`` vanishes at ``points`` random points (30 significant digits; relative
    to the size of its terms). ``values``: the values a symbol may take (a discrete field's
    domain); other symbols are drawn in [-1.5, 1.5] (positive ones in [0.5, 2]). Points where
    the expression is undefined are skipped; with none left it does not count as zero."""
    if not isinstance(expr, sympy.Basic) or not expr.free_symbols:
        try:
            return abs(complex(sympy.N(expr, 30))) <= tol
        except (TypeError, ValueError):
            return False
    rng = random.Random(seed)
    checked = 0
    for _ in range(3 * points):
        at = _random_values(expr.free_symbols, rng, values)
        try:
            parts = [complex(sympy.N(t.xreplace(at), 30)) for t in sympy.Add.make_args(expr)]
        except (TypeError, ValueError, ZeroDivisionError, OverflowError):
            continue
        if any(not (math.isfinite(p.real) and math.isfinite(p.imag)) for p in parts):
            continue
        scale = max([1.0] + [abs(p) for p in parts])
        if abs(sum(parts)) > tol * scale:
            return False
        checked += 1
        if checked >= points:
            return True
    return False


def is_zero(expr: sympy.Basic, *, max_ops: int = 4 * SIMPLIFY_MAX_OPS, numeric: bool = True,
            values: dict[sympy.Symbol, list] | None = None) -> bool:  # fmt: skip
    """Whether ``expr`` is identically zero (as a function of real symbols): exactly when
    that is cheap (expanded; then simplified when it has at most ``max_ops`` operations);
    else, with ``numeric``, by evaluation at random points (:func:`numerically_zero`, on
    ``values`` where given), and without it conservatively False (not shown to vanish)."""
    if not isinstance(expr, sympy.Basic):
        return expr == 0
    if expr == 0:
        return True
    if expandable(expr):
        if sympy.expand(expr) == 0:
            return True
        if simplifiable(expr, max_ops):
            return sympy.simplify(expr) == 0
    return numeric and numerically_zero(expr, values=values)


__all__ = ["MAX_EXPAND_COST", "SIMPLIFY_MAX_COST", "TOO_LARGE", "check_expandable",
           "expand", "expandable", "expansion_cost", "is_zero", "numerically_zero",
           "simplifiable", "simplify_small", "too_large"]  # fmt: skip
