"""Sympy -> arrays: the one lowering of derived expressions to batched array code.

A walk over the (CSE'd) sympy tree turns every node into a closure over an environment and,
from the same walk, its source text, so what ``physml compile --emit torch`` prints is a
transcript of what runs -- no ``lambdify``, ``exec`` or ``eval``. The closures call a backend
(:mod:`.backends`): torch for runs, numpy for the static checks of ``physml check``, which
therefore evaluate exactly the program that runs. Every compiled model uses it:
lattice stencils and local energies (:class:`Kernel`, inputs read lazily from the state),
Boltzmann set and pair terms, measured observables, Hamilton's equations and continuous-field
actions (:func:`lower_program`, positional tensor arguments).

Operands may be tensors or Python numbers (constants, a candidate value): every operation
accepts both. Integer and half-integer powers of a common base can share temporaries
(``share_powers``): 24 r2^-4 - 48 r2^-7 becomes five products instead of two generic pows.
"""

from __future__ import annotations

import keyword
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

import sympy

from ..errors import CompileError, as_sympy
from .backends import Backend

Env = dict[str, object]
NodeFn = Callable[[Env], object]


LoweringError = CompileError  # an expression that cannot be lowered


class Parameter(sympy.Symbol):
    """A numeric model parameter kept as a symbol (a coupling, a field strength): lowered as
    an input of the kernels, so a new value is a rebound tensor, not a new lowering."""


@dataclass(frozen=True)
class ParameterValue:
    """Kernel input: the current value of the numeric model parameter ``name``."""

    name: str

# sympy node type -> backend op
_UNARY: dict[type, str] = {
    sympy.sin: "sin", sympy.cos: "cos", sympy.tan: "tan", sympy.exp: "exp", sympy.log: "log",
    sympy.tanh: "tanh", sympy.sinh: "sinh", sympy.cosh: "cosh", sympy.asin: "asin",
    sympy.acos: "acos", sympy.atan: "atan", sympy.asinh: "asinh", sympy.acosh: "acosh",
    sympy.atanh: "atanh", sympy.Abs: "abs", sympy.sign: "sign", sympy.floor: "floor",
    sympy.ceiling: "ceil", sympy.erf: "erf", sympy.re: "real", sympy.im: "imag",
    sympy.conjugate: "conj",
}  # fmt: skip

_RELATIONAL: dict[type, str] = {
    sympy.StrictLessThan: "lt",
    sympy.LessThan: "le",
    sympy.StrictGreaterThan: "gt",
    sympy.GreaterThan: "ge",
    sympy.Equality: "eq",
    sympy.Unequality: "ne",
}

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _square(x: object) -> object:
    return x * x


_as_expr = as_sympy


def _paren(src: str, atomic: bool) -> str:
    return src if atomic else f"({src})"


def _is_atomic(expr: sympy.Expr) -> bool:
    return (
        expr.is_Symbol
        or isinstance(expr, sympy.Function)
        or (expr.is_Number and not expr.is_negative)
        or not expr.free_symbols
        and not expr.is_negative
    )


def _force(value):
    """Inputs may be thunks (zero-argument functions), so that a neighbour value is read only
    when the expression needs it, and freed right after when it is used once."""
    return value() if callable(value) else value


class _Lowerer:
    """Translates sympy nodes into (closure over an environment, torch source) pairs.

    ``names``: the environment key (and printed name) of every symbol. ``lazy``: keys whose
    values may be thunks, forced on first read and cached, except those in ``once`` (read once
    in the whole program: forced without keeping the value). ``complex``: complex constants
    are allowed (real programs refuse them). ``backend``: the array library the closures call
    and the source names."""

    def __init__(self, names: Mapping[sympy.Symbol, str], lazy: frozenset[str] = frozenset(),
                 once: frozenset[str] = frozenset(), complex: bool = False, *,
                 backend: Backend):  # fmt: skip
        self.names = names
        self.lazy = lazy
        self.once = once
        self.complex = complex
        self.backend = backend
        self.ops = backend.ops

    def _call(self, op: str, *args: sympy.Expr) -> tuple[NodeFn, str]:
        """``op`` applied to lowered arguments."""
        parts = [self.lower(a) for a in args]
        fn = self.ops[op]
        src = self.backend.src(op, *(s for _, s in parts))
        if len(parts) == 1:
            f0 = parts[0][0]
            return (lambda env: fn(f0(env))), src
        if len(parts) == 2:
            f0, f1 = parts[0][0], parts[1][0]
            return (lambda env: fn(f0(env), f1(env))), src
        return (lambda env: fn(*(f(env) for f, _ in parts))), src

    def lower(self, expr: sympy.Expr) -> tuple[NodeFn, str]:
        if expr is sympy.true or expr is sympy.false:
            return self._constant(expr)
        if not expr.free_symbols and not isinstance(expr, sympy.logic.boolalg.Boolean):
            return self._constant(expr)
        if expr.is_Symbol:
            if expr not in self.names:
                raise LoweringError(f"unbound symbol {expr} in lowered expression")
            name = self.names[expr]
            if name in self.once:
                return (lambda env, _n=name: _force(env[_n])), name
            if name in self.lazy:

                def cached(env: Env, _n=name) -> object:
                    v = env[_n]
                    if callable(v):
                        v = env[_n] = v()
                    return v

                return cached, name
            return (lambda env, _n=name: env[_n]), name
        if expr.is_Add:
            return self._add(expr)
        if expr.is_Mul:
            return self._mul(expr)
        if expr.is_Pow:
            return self._pow(expr)
        if type(expr) in _UNARY and len(expr.args) == 1:
            return self._call(_UNARY[type(expr)], expr.args[0])
        if isinstance(expr, sympy.atan2):
            return self._call("atan2", *expr.args)
        if isinstance(expr, sympy.Heaviside):
            # H(x) with H(0) = 1/2, the sympy default convention for a symbolic argument.
            return self._call("heaviside", expr.args[0])
        if isinstance(expr, sympy.KroneckerDelta):
            return self._call("delta", *expr.args)
        if isinstance(expr, (sympy.Max, sympy.Min)):
            return self._fold("maximum" if isinstance(expr, sympy.Max) else "minimum", expr.args)
        if isinstance(expr, sympy.Piecewise):
            return self._piecewise(expr)
        if type(expr) in _RELATIONAL:
            return self._call(_RELATIONAL[type(expr)], expr.lhs, expr.rhs)
        if isinstance(expr, (sympy.And, sympy.Or)):
            return self._fold("logical_and" if isinstance(expr, sympy.And) else "logical_or",
                              expr.args)  # fmt: skip
        if isinstance(expr, sympy.Not):
            return self._call("logical_not", expr.args[0])
        raise LoweringError(f"cannot lower '{type(expr).__name__}' to {self.backend.name} "
                            f"(in {sympy.sstr(expr)})")  # fmt: skip

    def _constant(self, expr: sympy.Expr) -> tuple[NodeFn, str]:
        if expr is sympy.true or expr is sympy.false:
            value = bool(expr)
            return (lambda env, _v=value: _v), repr(value)
        v = self._number(expr)
        return (lambda env, _v=v: _v), repr(v)

    def _add(self, expr: sympy.Expr) -> tuple[NodeFn, str]:
        # Terms with their signs pulled out, numbers folded into one constant: `c - cos(q)` is
        # one torch op (rsub), not a negation followed by an addition.
        const = 0.0
        pos: list[tuple[NodeFn, str, sympy.Expr]] = []
        neg: list[tuple[NodeFn, str, sympy.Expr]] = []
        for term in sympy.Add.make_args(expr):
            if not term.free_symbols:
                const += self._number(term)
                continue
            coeff, rest = term.as_coeff_Mul()
            if coeff.is_negative:  # lowered as -term without building -term in sympy
                if coeff == -1:
                    f, s = self.lower(rest)
                    neg.append((f, s, rest))
                else:
                    f, s = self._mul_parts(-coeff, rest)
                    neg.append((f, s, term))
            else:
                f, s = self.lower(term)
                pos.append((f, s, term))
        head = pos[0] if pos else None
        rest_pos, rest_neg = pos[1:], neg if pos else neg[1:]
        negate_first = not pos and const == 0.0  # -(a + ...): a negation is unavoidable
        c = const

        def add(env: Env) -> object:
            if head is not None:
                acc = head[0](env)
            elif negate_first:
                acc = -neg[0][0](env)
            else:
                acc = c - neg[0][0](env)
            for f, _, _ in rest_pos:
                acc = acc + f(env)
            for f, _, _ in rest_neg:
                acc = acc - f(env)
            if head is not None and c != 0.0:
                acc = acc + c
            return acc

        if head is not None:
            src = head[1]
        elif negate_first:
            src = "-" + _paren(neg[0][1], _is_atomic(neg[0][2]) or neg[0][2].is_Pow)
        else:
            src = f"{c!r} - " + _paren(neg[0][1], not neg[0][2].is_Add)
        for _, s, t in rest_pos:
            src += " + " + _paren(s, not t.is_Add)
        for _, s, t in rest_neg:
            src += " - " + _paren(s, not t.is_Add)
        if head is not None and c != 0.0:
            src += f" + {c!r}" if c > 0 else f" - {-c!r}"
        return add, src

    def _number(self, expr: sympy.Expr) -> float | complex:
        if expr.is_Integer or expr.is_Float or expr.is_Rational:
            return float(expr)  # exact enough and 50x cheaper than numerical evaluation
        value = complex(sympy.N(expr, 17))
        if value.real != value.real or abs(value.real) == float("inf") or (
                value.imag != 0 and not self.complex):  # fmt: skip
            raise LoweringError(f"constant {sympy.sstr(expr)} is not a finite real number")
        return value if value.imag != 0 else value.real

    def _mul(self, expr: sympy.Expr) -> tuple[NodeFn, str]:
        return self._mul_parts(*expr.as_coeff_Mul())

    def _mul_parts(self, coeff: sympy.Expr, rest: sympy.Expr) -> tuple[NodeFn, str]:
        num: list[sympy.Expr] = []
        den: list[sympy.Expr] = []
        for factor in sympy.Mul.make_args(rest):
            base, exp = factor.as_base_exp()
            if exp == -1 and factor.is_Pow:
                den.append(base)  # other negative powers stay x ** -k: one op, not two
            else:
                num.append(factor)
        num.sort(key=lambda t: not t.free_symbols)
        parts_num = [self.lower(f) for f in num]
        parts_den = [self.lower(f) for f in den]
        c = self._number(coeff)

        def mul(env: Env) -> object:
            acc = parts_num[0][0](env) if parts_num else 1.0
            for f, _ in parts_num[1:]:
                acc = acc * f(env)
            if parts_den:
                d = parts_den[0][0](env)
                for f, _ in parts_den[1:]:
                    d = d * f(env)
                acc = acc / d
            return acc * c if c != 1.0 else acc

        def square(e: sympy.Expr) -> bool:  # printed "x * x": not atomic after a factor
            return bool(e.is_Pow and e.exp == 2 and e.base.is_Symbol)

        def join(parts: list[tuple[NodeFn, str]], exprs: list[sympy.Expr]) -> str:
            return " * ".join(
                _paren(s, _is_atomic(e) or (e.is_Pow and not (i and square(e))))
                for i, ((_, s), e) in enumerate(zip(parts, exprs, strict=True))
            )

        src = join(parts_num, num) if parts_num else "1.0"
        if parts_den:
            dsrc = join(parts_den, den)
            src += " / " + (
                dsrc if len(den) == 1 and (_is_atomic(den[0]) or den[0].is_Pow) else f"({dsrc})"
            )
        # The closure multiplies by c last: print c * (...) unless that order is the same.
        single = len(num) == 1 and not parts_den and not square(num[0])
        if c == -1.0:
            src = "-" + (src if single else f"({src})")
        elif c != 1.0:
            src = f"{c!r} * " + (src if single else f"({src})")
        return mul, src

    def _pow(self, expr: sympy.Expr) -> tuple[NodeFn, str]:
        base, exp = expr.args
        fb, sb = self.lower(base)
        sbp = _paren(sb, _is_atomic(base))
        if exp.free_symbols:
            return self._call("pow", base, exp)
        if exp == sympy.Rational(1, 2):
            return self._call("sqrt", base)
        if exp == sympy.Rational(-1, 2):
            return self._call("rsqrt", base)
        if exp == -1:
            return self._call("reciprocal", base)
        if exp == 2:
            # x * x is cheaper than pow and has the same autograd.
            src = f"{sbp} * {sbp}" if base.is_Symbol else self.backend.src("square", sb)
            return (lambda env: _square(fb(env))), src
        e: int | float = int(exp) if exp.is_Integer else float(exp)
        return (lambda env, _e=e: fb(env) ** _e), f"{sbp} ** {e!r}"

    def _fold(self, op: str, args: Sequence[sympy.Expr]) -> tuple[NodeFn, str]:
        """A binary ``op`` folded left over ``args`` (max, min, and, or)."""
        parts = [self.lower(a) for a in args]
        fn = self.ops[op]

        def fold(env: Env) -> object:
            acc = parts[0][0](env)
            for f, _ in parts[1:]:
                acc = fn(acc, f(env))
            return acc

        src = parts[0][1]
        for _, s in parts[1:]:
            src = self.backend.src(op, src, s)
        return fold, src

    def _piecewise(self, expr: sympy.Expr) -> tuple[NodeFn, str]:
        pieces = [(self.lower(e), self.lower(c)) for e, c in expr.args]
        where = self.ops["where"]

        def pw(env: Env) -> object:
            (fe, _), _ = pieces[-1]
            out = fe(env)
            for (fe, _), (fc, _) in reversed(pieces[:-1]):
                out = where(fc(env), fe(env), out)
            return out

        src = pieces[-1][0][1]
        for (_, se), (_, sc) in reversed(pieces[:-1]):
            src = self.backend.src("where", sc, se, src)
        return pw, src


@dataclass
class Program:
    """A CSE'd sympy program over positional tensor arguments, run as composed torch closures.

    ``run(*tensors)`` binds ``arguments[k]`` to ``tensors[k]`` and returns the outputs (tensors,
    or Python floats for constant outputs). ``lines`` is the readable torch source of the body.
    """

    arguments: tuple[sympy.Symbol, ...]
    _keys: tuple[str, ...]
    _steps: list[tuple[str, NodeFn]]
    _outputs: list[NodeFn]
    lines: list[str]
    out_srcs: list[str]
    constant: list[bool]

    def run(self, *tensors: object) -> list[object]:
        env: Env = dict(zip(self._keys, tensors, strict=True))
        for key, fn in self._steps:
            env[key] = fn(env)
        return [fn(env) for fn in self._outputs]

    def run_env(self, env: Env) -> list[object]:
        """Run with the arguments given by environment key (values may be thunks)."""
        for key, fn in self._steps:
            env[key] = fn(env)
        return [fn(env) for fn in self._outputs]


def lower_program(
    exprs: Sequence[sympy.Expr],
    arguments: Sequence[sympy.Symbol],
    names: Mapping[sympy.Symbol, str] | None = None,
    params: Mapping[sympy.Symbol, float] | None = None,
    what: str = "expression",
    *,
    backend: Backend,
    share_powers: bool = False,
    lazy: bool = False,
    complex: bool = False,
) -> Program:
    """Lower ``exprs`` over ``arguments`` (bound positionally at :meth:`Program.run`).

    ``names`` gives the printed (and environment) name of each argument; ``params`` binds every
    other free symbol to a number. ``share_powers`` computes the integer and half-integer powers
    of a common base as products of shared temporaries (see :func:`_share_powers`). ``lazy``:
    arguments may be thunks (forced on first read). ``complex``: complex constants are allowed.
    ``backend``: ``torch_backend.TORCH`` (runs) or ``backends.NUMPY`` (static checks): the same
    program, calling that library.
    Raises :class:`LoweringError` for an unbound symbol or an operation with no lowering.

    Programs are pure (closures over an environment passed per run), so identical requests --
    a model recompiled for each lattice size of a scan -- share one lowering.
    """
    key = (tuple(_as_expr(e) for e in exprs), tuple(arguments),
           tuple(sorted((names or {}).items(), key=lambda kv: str(kv[0]))),
           tuple(sorted((params or {}).items(), key=lambda kv: str(kv[0]))),
           what, share_powers, lazy, complex, backend)  # fmt: skip
    return _lower_cached(key)


@lru_cache(maxsize=512)
def _lower_cached(key: tuple) -> Program:
    exprs, arguments, names, params, what, share_powers, lazy, complex, backend = key
    return _lower(list(exprs), list(arguments), dict(names), dict(params), what, share_powers,
                  lazy, complex, backend)  # fmt: skip


def _lower(
    exprs: list[sympy.Expr],
    arguments: list[sympy.Symbol],
    names: Mapping[sympy.Symbol, str] | None,
    params: Mapping[sympy.Symbol, float] | None,
    what: str,
    share_powers: bool,
    lazy: bool,
    complex: bool,
    backend: Backend,
) -> Program:
    exprs = [_as_expr(e) for e in exprs]
    if params:
        binding = {s: sympy.Float(float(v), 17) for s, v in params.items()}
        exprs = [e.xreplace(binding) for e in exprs]
    unbound = set().union(*(e.free_symbols for e in exprs)) - set(arguments) if exprs else set()
    if unbound:
        listed = ", ".join(sorted(str(s) for s in unbound))
        raise LoweringError(f"{what}: no value for parameter(s) {listed}")
    taken: set[str] = {"torch", "np", "out"}
    env_names: dict[sympy.Symbol, str] = {}
    for s in arguments:
        want = (names or {}).get(s)
        if want is not None and want not in taken:
            taken.add(want)
            env_names[s] = want
        else:
            env_names[s] = _py_name(s.name, taken)
    tmp = (sympy.Symbol(_py_name(f"t{i}", taken)) for i in range(10**9))
    replacements, reduced = sympy.cse(exprs, symbols=tmp) if exprs else ([], [])
    if share_powers:
        replacements, reduced = _share_powers(replacements, list(reduced), taken)
    lazy_keys: frozenset[str] = frozenset()
    once: frozenset[str] = frozenset()
    if lazy:  # arguments may be thunks; those read once are not kept
        lazy_keys = frozenset(env_names[s] for s in arguments)
        program = [e for _, e in replacements] + list(reduced)
        counts = _leaf_counts(program)
        once = frozenset(env_names[s] for s in arguments if counts.get(s, 0) == 1)
    lowerer = _Lowerer(env_names, lazy_keys, once, complex, backend=backend)
    steps: list[tuple[str, NodeFn]] = []
    lines: list[str] = []
    for sym, sub in replacements:
        fn, s = lowerer.lower(sub)
        env_names[sym] = sym.name
        steps.append((sym.name, fn))
        lines.append(f"    {sym.name} = {s}")
    outputs: list[NodeFn] = []
    out_srcs: list[str] = []
    constant: list[bool] = []
    for e in reduced:
        fn, s = lowerer.lower(e)
        outputs.append(fn)
        out_srcs.append(s)
        constant.append(not e.free_symbols)
    keys = tuple(env_names[s] for s in arguments)
    return Program(tuple(arguments), keys, steps, outputs, lines, out_srcs, constant)


# torch.pow has fast paths for these exponents; any other (e.g. r2 ** -7) goes through the
# generic, ~10x slower pow kernel.
_FAST_EXPONENTS = {sympy.Rational(k, 2) for k in (1, -1, -2, 4, -4, 6)}


def _addition_chain(targets: set[int]) -> list[tuple[int, int, int]]:
    """Steps (e, a, b), x^e = x^a * x^b, building every x^t (t in targets) from x; squares first
    so that x^4, x^7 cost 4 products (x^2, x^4, x^6, x^7), not 6."""
    known: set[int] = {1}
    steps: list[tuple[int, int, int]] = []

    def ensure(t: int) -> None:
        if t in known:
            return
        for a in sorted(known, reverse=True):
            if t - a in known:
                steps.append((t, a, t - a))
                known.add(t)
                return
        half = t // 2
        ensure(half)
        ensure(t - half)
        steps.append((t, half, t - half))
        known.add(t)

    for t in sorted(targets):
        ensure(t)
    return steps


def _share_powers(
    replacements: list[tuple[sympy.Symbol, sympy.Expr]],
    reduced: list[sympy.Expr],
    taken: set[str],
) -> tuple[list[tuple[sympy.Symbol, sympy.Expr]], list[sympy.Expr]]:
    """Rewrite b ** k (k an integer or half-integer; b a base with some k that is not a fast
    torch.pow exponent) of a CSE'd program as products of shared powers of b: x = 1 / b (or sqrt(b), rsqrt(b) for half
    integers), x^2, x^4, ... by an addition chain, defined right before their first use. So
    24 r2^-4 - 48 r2^-7 is inv = 1 / r2; inv^2; inv^4; inv^6; inv^7: five cheap products where
    torch.pow would run its generic kernel twice."""
    exprs = [e for _, e in replacements] + reduced
    exps: dict[sympy.Expr, set[sympy.Rational]] = {}
    for e in exprs:
        for node in sympy.preorder_traversal(e):
            if (node.is_Pow and node.exp.is_Rational and node.exp.q in (1, 2)
                    and node.base.free_symbols):
                exps.setdefault(node.base, set()).add(node.exp)
    bases = [b for b, es in exps.items() if es - _FAST_EXPONENTS]
    if not bases:
        return replacements, reduced

    def fresh(stem: str) -> sympy.Symbol:
        return sympy.Symbol(_py_name(stem, taken))

    # per base: the definitions (symbol, expr) and the map Pow(b, k) -> symbol
    defs: dict[sympy.Expr, list[tuple[sympy.Symbol, sympy.Expr]]] = {}
    swap: dict[sympy.Expr, sympy.Symbol] = {}
    for k, b in enumerate(bases):
        out: list[tuple[sympy.Symbol, sympy.Expr]] = []
        stem = b.name if b.is_Symbol else f"b{k}"
        if not b.is_Symbol:  # name the base once, e.g. r2 + eps^2
            sb = fresh(stem)
            out.append((sb, b))
        else:
            sb = b
        es = sorted(exps[b])
        pos = {int(e) for e in es if e.q == 1 and e > 0}
        neg = {int(-e) for e in es if e.q == 1 and e < 0}
        halves_p = {int(e - sympy.Rational(1, 2)) for e in es if e.q == 2 and e > 0}
        halves_n = {int(-e - sympy.Rational(1, 2)) for e in es if e.q == 2 and e < 0}
        root = rroot = inv = None
        if halves_p:
            root = fresh(f"{stem}_sqrt")
            out.append((root, sympy.sqrt(sb)))
        if halves_n:
            rroot = fresh(f"{stem}_rsqrt")
            out.append((rroot, 1 / sympy.sqrt(sb)))
        up = {sympy.Integer(1): sb}
        down: dict[sympy.Expr, sympy.Expr] = {}
        for e, a, c in _addition_chain((pos | halves_p) - {0}):
            s = fresh(f"{stem}_{e}")
            out.append((s, up[sympy.Integer(a)] * up[sympy.Integer(c)]))
            up[sympy.Integer(e)] = s
        need_down = (neg | halves_n) - {0}
        if need_down and need_down != {1}:
            inv = fresh(f"{stem}_inv")
            out.append((inv, rroot * rroot if rroot is not None else 1 / sb))
            down[sympy.Integer(1)] = inv
            for e, a, c in _addition_chain(need_down):
                s = fresh(f"{stem}_inv{e}")
                out.append((s, down[sympy.Integer(a)] * down[sympy.Integer(c)]))
                down[sympy.Integer(e)] = s
        elif need_down:  # only b^-1 is needed: a division where it is used, no temporary
            down[sympy.Integer(1)] = 1 / sb
        for e in es:
            if e.q == 1:
                val = up[e] if e > 0 else down[-e]
            elif e > 0:
                m = e - sympy.Rational(1, 2)
                val = root * up[m] if m else root
            else:
                m = -e - sympy.Rational(1, 2)
                val = rroot * down[m] if m else rroot
            if val.is_Symbol:
                swap[sympy.Pow(b, e)] = val
            else:
                s = fresh(f"{stem}_pow")
                out.append((s, val))
                swap[sympy.Pow(b, e)] = s
        defs[b] = out

    def first_use(b: sympy.Expr) -> int:
        for i, e in enumerate(exprs):
            if any(sympy.Pow(b, k) in e.atoms(sympy.Pow) for k in exps[b]):
                return i
        return len(exprs)

    where = {b: first_use(b) for b in bases}
    new_repl: list[tuple[sympy.Symbol, sympy.Expr]] = []
    for i, (s, e) in enumerate(replacements):
        for b in bases:
            if where[b] == i:
                new_repl += defs[b]
        new_repl.append((s, e.xreplace(swap)))
    for b in bases:
        if where[b] >= len(replacements):
            new_repl += defs[b]
    return new_repl, [e.xreplace(swap) for e in reduced]


def _py_name(name: str, taken: set[str]) -> str:
    """A safe, unique Python identifier for a symbol (display only; closures use it as a key)."""
    base = name if _IDENT.match(name) and not keyword.iskeyword(name) else "v"
    base = re.sub(r"[^A-Za-z0-9_]", "_", base)
    if base in {"torch", "np", "q", "p", "out"} or base.startswith("_"):
        base = f"v_{base.lstrip('_')}"
    cand, k = base, 1
    while cand in taken:
        cand, k = f"{base}_{k}", k + 1
    taken.add(cand)
    return cand




def _leaf_counts(exprs: Sequence[sympy.Expr]) -> dict[sympy.Symbol, int]:
    """How many times each symbol appears as a leaf of ``exprs`` (repeated factors count once
    per power node, which is all the closures read)."""
    counts: dict[sympy.Symbol, int] = {}
    stack = list(exprs)
    while stack:
        e = stack.pop()
        if e.is_Symbol:
            counts[e] = counts.get(e, 0) + 1
        else:
            stack.extend(e.args)
    return counts


class Kernel:
    """A lowered expression over named inputs: ``kernel(env)`` with env {symbol: value or thunk}.

    ``inputs`` maps each input symbol to what it reads (a field at an offset, an array, a
    validity mask, "candidate", ...); the caller provides the values. ``source(describe)``
    prints the same program as a function of ``state``. ``backend``: see :func:`lower_program`.
    """

    def __init__(self, name: str, expr: sympy.Expr, inputs: Mapping[sympy.Symbol, object], *,
                 backend: Backend):  # fmt: skip
        self.name = name
        self.expr = expr
        self.inputs = dict(inputs)
        for s in getattr(expr, "free_symbols", ()):
            if isinstance(s, Parameter) and s not in self.inputs:
                self.inputs[s] = ParameterValue(s.name)
        args = sorted(self.inputs, key=str)
        self.program = lower_program([expr], args, {s: s.name for s in args}, lazy=True,
                                     complex=True, what=name, backend=backend)  # fmt: skip
        self._keys = dict(zip(args, self.program._keys, strict=True))

    def __call__(self, env: Mapping[sympy.Symbol, object]):
        keys = self._keys
        return self.program.run_env({keys[s]: v for s, v in env.items() if s in keys})[0]

    def source(self, describe: Callable[[sympy.Symbol, object], str | None]) -> str:
        """Readable, runnable source for this kernel.

        ``describe`` prints how each input is read from ``state``; inputs it returns None for
        (a candidate value, a site value) become arguments of the function.
        """
        reads, arguments = [], []
        for sym in sorted(self.inputs, key=str):
            how = describe(sym, self.inputs[sym])
            if how is None:
                arguments.append(self._keys[sym])
            else:
                reads.append(f"    {self._keys[sym]} = {how}")
        out = self.program.out_srcs[0]
        lines = [f"def {self.name}({', '.join(['state', *arguments])}):", *reads,
                 *self.program.lines, f"    return {out}"]  # fmt: skip
        return "\n".join(lines)


def source_of(expr: sympy.Expr, names: Mapping[sympy.Symbol, str] | None = None, *,
              backend: Backend) -> str:  # fmt: skip
    """The source of one expression, inline (no temporaries): for printed code."""
    names = names or {s: s.name for s in expr.free_symbols}
    return _Lowerer(names, complex=True, backend=backend).lower(expr)[1]


__all__ = ["Kernel", "LoweringError", "Program", "lower_program", "source_of"]
