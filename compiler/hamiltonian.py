"""Hamilton's equations from a declared Hamiltonian, and their lowering to batched torch code.

Given ``H(q_1..q_n, p_1..p_n)`` as a sympy expression (built by the front end from the parse tree,
never from text), :func:`derive_hamiltonian` derives

    qdot_k = dH/dp_k,    pdot_k = -dH/dq_k,

detects separability (``H = T(p) + V(q)``, i.e. every mixed derivative d2H/dq_i dp_j vanishes),
lists the canonical pairs ``H`` does not depend on and the non-differentiable pieces (Abs, sign,
floor, Heaviside, Max/Min, Piecewise, ...).

:func:`lower_hamiltonian` turns the derived expressions into torch callables by walking the
sympy tree (after ``sympy.cse``) into composed torch operations -- no ``lambdify``, ``exec`` or
``eval``. The same walk prints readable torch source (``physml compile --emit torch``), so the text
shown is a transcript of the closures that run.

Shapes: the callables take ``q, p`` of shape ``(..., n)`` (usually ``(B, n)``) and return
``hamiltonian -> (...)``, ``dH_dq -> (..., n)``, ``dH_dp -> (..., n)``.
"""

from __future__ import annotations

import keyword
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import sympy
import torch

Env = dict[str, object]
NodeFn = Callable[[Env], object]

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


class HamiltonianError(ValueError):
    """A Hamiltonian (or its derivatives) that cannot be derived or lowered."""


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
    return sympy.simplify(expr) if sympy.count_ops(expr) <= _SIMPLIFY_MAX_OPS else expr


def _is_zero(expr: sympy.Expr) -> bool:
    """Zero test for mixed partials. Conservative: an expression not *shown* to vanish counts
    as non-zero (H is then treated as non-separable, which only costs speed)."""
    if expr == 0 or sympy.expand(expr) == 0:
        return True
    return sympy.count_ops(expr) <= 4 * _SIMPLIFY_MAX_OPS and sympy.simplify(expr) == 0


def _split_separable(
    H: sympy.Expr, q: Sequence[sympy.Symbol], p: Sequence[sympy.Symbol]
) -> tuple[sympy.Expr, sympy.Expr] | None:
    """H = T(p) + V(q) by splitting the (expanded) sum into p-only and q-only terms."""
    qs, ps = set(q), set(p)
    for form in (H, sympy.expand(H)):
        T, V, ok = sympy.Integer(0), sympy.Integer(0), True
        for term in sympy.Add.make_args(form):
            fs = term.free_symbols
            if fs & ps and fs & qs:
                ok = False
                break
            if fs & ps:
                T += term
            else:
                V += term  # q-only terms and constants
        if ok:
            return T, V
    return None


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

    dq = [_tidy(sympy.diff(Hr, s)) for s in qr]
    dp = [_tidy(sympy.diff(Hr, s)) for s in pr]

    # Separable iff all mixed partials vanish; then H = T(p) + V(q) up to a constant. The
    # syntactic split (cheap, no simplify) decides most cases; mixed partials the rest.
    split = _split_separable(Hr, qr, pr)
    separable = split is not None or all(
        _is_zero(sympy.diff(d, s)) for d in dq for s in pr
    )
    kinetic = potential = None
    if separable:
        if split is None:
            # Mixed partials vanish but no syntactic split: T(p) = H(q=0, p) - H(0, 0).
            zq = {s: 0 for s in qr}
            zp = {s: 0 for s in pr}
            T = sympy.simplify(Hr.subs(zq) - Hr.subs(zq).subs(zp))
            split = (T, sympy.simplify(Hr.subs(zp)))
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


# --------------------------------------------------------------------------------------------
# Lowering: a walk over the sympy tree producing (closure, source text) for every node.
# --------------------------------------------------------------------------------------------

_UNARY: dict[type, tuple[Callable[[torch.Tensor], torch.Tensor], str]] = {
    sympy.sin: (torch.sin, "torch.sin"),
    sympy.cos: (torch.cos, "torch.cos"),
    sympy.tan: (torch.tan, "torch.tan"),
    sympy.exp: (torch.exp, "torch.exp"),
    sympy.log: (torch.log, "torch.log"),
    sympy.tanh: (torch.tanh, "torch.tanh"),
    sympy.sinh: (torch.sinh, "torch.sinh"),
    sympy.cosh: (torch.cosh, "torch.cosh"),
    sympy.asin: (torch.asin, "torch.asin"),
    sympy.acos: (torch.acos, "torch.acos"),
    sympy.atan: (torch.atan, "torch.atan"),
    sympy.asinh: (torch.asinh, "torch.asinh"),
    sympy.acosh: (torch.acosh, "torch.acosh"),
    sympy.atanh: (torch.atanh, "torch.atanh"),
    sympy.Abs: (torch.abs, "torch.abs"),
    sympy.sign: (torch.sign, "torch.sign"),
    sympy.floor: (torch.floor, "torch.floor"),
    sympy.ceiling: (torch.ceil, "torch.ceil"),
    sympy.erf: (torch.erf, "torch.erf"),
}

_RELATIONAL: dict[type, tuple[Callable[..., torch.Tensor], str]] = {
    sympy.StrictLessThan: (torch.lt, "torch.lt"),
    sympy.LessThan: (torch.le, "torch.le"),
    sympy.StrictGreaterThan: (torch.gt, "torch.gt"),
    sympy.GreaterThan: (torch.ge, "torch.ge"),
    sympy.Equality: (torch.eq, "torch.eq"),
    sympy.Unequality: (torch.ne, "torch.ne"),
}

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _as_tensor(x: object, like: object) -> object:
    """Make a Python number a tensor matching ``like`` (for ops that need tensor arguments)."""
    if isinstance(x, torch.Tensor) or not isinstance(like, torch.Tensor):
        return x
    return torch.as_tensor(x, dtype=like.dtype, device=like.device)


def _square(x: object) -> object:
    return x * x


def _as_expr(H: object) -> sympy.Expr:
    """Accept a sympy expression (or a plain number); never parse text."""
    if isinstance(H, sympy.Basic):
        return H
    if isinstance(H, bool) or not isinstance(H, (int, float)):
        raise HamiltonianError(f"expected a sympy expression, got {type(H).__name__}")
    return sympy.Integer(H) if isinstance(H, int) else sympy.Float(H)


def _first_tensor(values: Sequence[object]) -> object:
    for v in values:
        if isinstance(v, torch.Tensor):
            return v
    return None


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


class _Lowerer:
    """Translates sympy nodes into (closure over an environment, torch source) pairs."""

    def __init__(self, names: Mapping[sympy.Symbol, str]):
        self.names = names

    def lower(self, expr: sympy.Expr) -> tuple[NodeFn, str]:
        if expr is sympy.true or expr is sympy.false:
            return self._constant(expr)
        if not expr.free_symbols and not isinstance(expr, sympy.logic.boolalg.Boolean):
            return self._constant(expr)
        if expr.is_Symbol:
            if expr not in self.names:
                raise HamiltonianError(f"unbound symbol {expr} in lowered expression")
            name = self.names[expr]
            return (lambda env, _n=name: env[_n]), name
        if expr.is_Add:
            return self._add(expr)
        if expr.is_Mul:
            return self._mul(expr)
        if expr.is_Pow:
            return self._pow(expr)
        if type(expr) in _UNARY and len(expr.args) == 1:
            op, name = _UNARY[type(expr)]
            fa, sa = self.lower(expr.args[0])
            return (lambda env, _f=fa, _op=op: _op(_f(env))), f"{name}({sa})"
        if isinstance(expr, sympy.atan2):
            (fy, sy), (fx, sx) = self.lower(expr.args[0]), self.lower(expr.args[1])

            def atan2(env: Env) -> object:
                y, x = fy(env), fx(env)
                ref = _first_tensor([y, x])
                return torch.atan2(_as_tensor(y, ref), _as_tensor(x, ref))

            return atan2, f"torch.atan2({sy}, {sx})"
        if isinstance(expr, sympy.Heaviside):
            # H(x) with H(0) = 1/2, the sympy default convention for a symbolic argument.
            fa, sa = self.lower(expr.args[0])
            return (lambda env, _f=fa: 0.5 * (torch.sign(_f(env)) + 1.0)), (
                f"0.5 * (torch.sign({sa}) + 1.0)"
            )
        if isinstance(expr, (sympy.Max, sympy.Min)):
            return self._extremum(expr)
        if isinstance(expr, sympy.Piecewise):
            return self._piecewise(expr)
        if type(expr) in _RELATIONAL:
            op, name = _RELATIONAL[type(expr)]
            (fa, sa), (fb, sb) = self.lower(expr.lhs), self.lower(expr.rhs)

            def rel(env: Env, _op=op) -> object:
                a, b = fa(env), fb(env)
                ref = _first_tensor([a, b])
                return _op(_as_tensor(a, ref), _as_tensor(b, ref))

            return rel, f"{name}({sa}, {sb})"
        if isinstance(expr, (sympy.And, sympy.Or)):
            parts = [self.lower(a) for a in expr.args]
            op = torch.logical_and if isinstance(expr, sympy.And) else torch.logical_or
            opname = "torch.logical_and" if isinstance(expr, sympy.And) else "torch.logical_or"

            def logic(env: Env, _op=op) -> object:
                acc = parts[0][0](env)
                for f, _ in parts[1:]:
                    acc = _op(acc, f(env))
                return acc

            src = parts[0][1]
            for _, s in parts[1:]:
                src = f"{opname}({src}, {s})"
            return logic, src
        if isinstance(expr, sympy.Not):
            fa, sa = self.lower(expr.args[0])
            return (lambda env: torch.logical_not(fa(env))), f"torch.logical_not({sa})"
        raise HamiltonianError(
            f"cannot lower '{type(expr).__name__}' to torch (in {sympy.sstr(expr)})"
        )

    @staticmethod
    def _constant(expr: sympy.Expr) -> tuple[NodeFn, str]:
        if expr is sympy.true or expr is sympy.false:
            value = bool(expr)
            return (lambda env, _v=value: _v), repr(value)
        value = complex(sympy.N(expr, 17))
        if value.imag != 0 or value.real != value.real or abs(value.real) == float("inf"):
            raise HamiltonianError(f"constant {sympy.sstr(expr)} is not a finite real number")
        v = value.real
        return (lambda env, _v=v: _v), repr(v)

    def _add(self, expr: sympy.Expr) -> tuple[NodeFn, str]:
        terms = list(sympy.Add.make_args(expr))
        # Put symbolic terms first so the accumulator is a tensor from the start.
        terms.sort(key=lambda t: not t.free_symbols)
        fns: list[tuple[NodeFn, int]] = []
        src = ""
        for i, term in enumerate(terms):
            coeff, _ = term.as_coeff_Mul()
            sign = 1
            if coeff.is_negative and i > 0:
                term, sign = -term, -1
            f, s = self.lower(term)
            fns.append((f, sign))
            if i == 0:
                src = s
            else:
                src += (" - " if sign < 0 else " + ") + _paren(s, not term.is_Add)

        def add(env: Env) -> object:
            acc = fns[0][0](env)
            for f, sign in fns[1:]:
                acc = acc - f(env) if sign < 0 else acc + f(env)
            return acc

        return add, src

    def _mul(self, expr: sympy.Expr) -> tuple[NodeFn, str]:
        num: list[sympy.Expr] = []
        den: list[sympy.Expr] = []
        coeff, rest = expr.as_coeff_Mul()
        for factor in sympy.Mul.make_args(rest):
            base, exp = factor.as_base_exp()
            if exp.is_Number and exp.is_negative and factor.is_Pow:
                den.append(base if exp == -1 else sympy.Pow(base, -exp, evaluate=False))
            else:
                num.append(factor)
        num.sort(key=lambda t: not t.free_symbols)
        parts_num = [self.lower(f) for f in num]
        parts_den = [self.lower(f) for f in den]
        c = float(coeff)

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

        def join(parts: list[tuple[NodeFn, str]], exprs: list[sympy.Expr]) -> str:
            return " * ".join(
                _paren(s, _is_atomic(e) or e.is_Pow) for (_, s), e in zip(parts, exprs, strict=True)
            )

        src = join(parts_num, num) if parts_num else "1.0"
        if parts_den:
            dsrc = join(parts_den, den)
            src += " / " + (
                dsrc if len(den) == 1 and (_is_atomic(den[0]) or den[0].is_Pow) else f"({dsrc})"
            )
        if c == -1.0:
            src = "-" + (src if parts_den or len(num) == 1 else f"({src})")
        elif c != 1.0:
            src = f"{c!r} * {src}"
        return mul, src

    def _pow(self, expr: sympy.Expr) -> tuple[NodeFn, str]:
        base, exp = expr.args
        fb, sb = self.lower(base)
        sbp = _paren(sb, _is_atomic(base))
        if exp.free_symbols:
            fe, se = self.lower(exp)

            def power(env: Env) -> object:
                b, e = fb(env), fe(env)
                ref = _first_tensor([b, e])
                return torch.pow(_as_tensor(b, ref), _as_tensor(e, ref))

            return power, f"torch.pow({sb}, {se})"
        if exp == sympy.Rational(1, 2):
            return (lambda env: torch.sqrt(fb(env))), f"torch.sqrt({sb})"
        if exp == sympy.Rational(-1, 2):
            return (lambda env: torch.rsqrt(fb(env))), f"torch.rsqrt({sb})"
        if exp == -1:
            return (lambda env: torch.reciprocal(fb(env))), f"torch.reciprocal({sb})"
        if exp == 2:
            # x * x is cheaper than pow and has the same autograd.
            src = f"{sbp} * {sbp}" if base.is_Symbol else f"torch.square({sb})"
            return (lambda env: _square(fb(env))), src
        e: int | float = int(exp) if exp.is_Integer else float(exp)
        return (lambda env, _e=e: fb(env) ** _e), f"{sbp} ** {e!r}"

    def _extremum(self, expr: sympy.Expr) -> tuple[NodeFn, str]:
        parts = [self.lower(a) for a in expr.args]
        is_max = isinstance(expr, sympy.Max)
        op, name = (torch.maximum, "torch.maximum") if is_max else (torch.minimum, "torch.minimum")

        def ext(env: Env) -> object:
            vals = [f(env) for f, _ in parts]
            ref = _first_tensor(vals)
            acc = _as_tensor(vals[0], ref)
            for v in vals[1:]:
                acc = op(acc, _as_tensor(v, ref))
            return acc

        src = parts[0][1]
        for _, s in parts[1:]:
            src = f"{name}({src}, {s})"
        return ext, src

    def _piecewise(self, expr: sympy.Expr) -> tuple[NodeFn, str]:
        pieces = [(self.lower(e), self.lower(c)) for e, c in expr.args]

        def pw(env: Env) -> object:
            (fe, _), _ = pieces[-1]
            out = fe(env)
            for (fe, _), (fc, _) in reversed(pieces[:-1]):
                val, cond = fe(env), fc(env)
                ref = _first_tensor([val, out, cond])
                out = torch.where(
                    _as_tensor(cond, ref).bool(), _as_tensor(val, ref), _as_tensor(out, ref)
                )
            return out

        src = pieces[-1][0][1]
        for (_, se), (_, sc) in reversed(pieces[:-1]):
            src = f"torch.where({sc}, {se}, {src})"
        return pw, src


def _py_name(name: str, taken: set[str]) -> str:
    """A safe, unique Python identifier for a symbol (display only; closures use it as a key)."""
    base = name if _IDENT.match(name) and not keyword.iskeyword(name) else "v"
    base = re.sub(r"[^A-Za-z0-9_]", "_", base)
    if base in {"torch", "q", "p", "out"} or base.startswith("_"):
        base = f"v_{base.lstrip('_')}"
    cand, k = base, 1
    while cand in taken:
        cand, k = f"{base}_{k}", k + 1
    taken.add(cand)
    return cand


@dataclass
class LoweredFunction:
    """Batched torch callable ``f(q, p)`` built from sympy; ``source`` is the same program."""

    name: str
    n: int
    kind: str  # "scalar" -> (...); "vector" -> (..., len(outputs))
    _inputs: list[tuple[str, str, int]]  # (env name, "q" or "p", index)
    _steps: list[tuple[str, NodeFn]]
    _outputs: list[NodeFn]
    source: str = field(default="")

    def __call__(self, q: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        if q.shape != p.shape or q.shape[-1] != self.n:
            raise ValueError(
                f"{self.name}: q, p must both have shape (..., {self.n}); "
                f"got {tuple(q.shape)} and {tuple(p.shape)}"
            )
        env: Env = {}
        for key, which, k in self._inputs:
            env[key] = (q if which == "q" else p)[..., k]
        for key, fn in self._steps:
            env[key] = fn(env)
        batch = q.shape[:-1]
        outs = []
        for fn in self._outputs:
            v = fn(env)
            if not isinstance(v, torch.Tensor) or v.shape != batch:
                # Constant (or lower-rank) outputs, e.g. dH/dq_k = 0: broadcast to the batch.
                v = torch.as_tensor(v, dtype=q.dtype, device=q.device).expand(batch)
            outs.append(v)
        return outs[0] if self.kind == "scalar" else torch.stack(outs, dim=-1)


def lower_expressions(
    name: str,
    exprs: Sequence[sympy.Expr],
    q: Sequence[sympy.Symbol],
    p: Sequence[sympy.Symbol],
    params: Mapping[sympy.Symbol, float] | None = None,
    kind: str = "vector",
) -> LoweredFunction:
    """Lower ``exprs`` (in q, p and bound parameters) to one batched torch function.

    ``params`` binds every other free symbol to a number (printed as a literal). Common
    subexpressions are shared via ``sympy.cse``. Raises :class:`HamiltonianError` for an unbound
    symbol or an operation with no torch lowering.
    """
    params = dict(params or {})
    exprs = [_as_expr(e) for e in exprs]
    if params:
        binding = {s: sympy.Float(float(v), 17) for s, v in params.items()}
        exprs = [e.xreplace(binding) for e in exprs]
    allowed = set(q) | set(p)
    unbound = set().union(*(e.free_symbols for e in exprs)) - allowed
    if unbound:
        names = ", ".join(sorted(str(s) for s in unbound))
        raise HamiltonianError(f"{name}: no value for parameter(s) {names}")

    taken: set[str] = set()
    names: dict[sympy.Symbol, str] = {}
    inputs: list[tuple[str, str, int]] = []
    lines: list[str] = []
    used = set().union(*(e.free_symbols for e in exprs)) if exprs else set()
    for which, syms in (("q", q), ("p", p)):
        for k, s in enumerate(syms):
            key = _py_name(s.name, taken)
            names[s] = key
            if s in used:
                inputs.append((key, which, k))
                lines.append(f"    {key} = {which}[..., {k}]")

    tmp = (sympy.Symbol(_py_name(f"t{i}", taken)) for i in range(10**9))
    replacements, reduced = sympy.cse(exprs, symbols=tmp)
    lowerer = _Lowerer(names)
    steps: list[tuple[str, NodeFn]] = []
    for sym, sub in replacements:
        fn, src = lowerer.lower(sub)
        names[sym] = sym.name
        steps.append((sym.name, fn))
        lines.append(f"    {sym.name} = {src}")
    outputs: list[NodeFn] = []
    out_srcs: list[str] = []
    for e in reduced:
        fn, src = lowerer.lower(e)
        outputs.append(fn)
        out_srcs.append(
            src
            if e.free_symbols
            else f"torch.full(q.shape[:-1], {src}, dtype=q.dtype, device=q.device)"
        )
    if kind == "scalar":
        lines.append(f"    return {out_srcs[0]}")
    else:
        lines.append("    return torch.stack([")
        lines += [f"        {s}," for s in out_srcs]
        lines.append("    ], dim=-1)")
    header = f"def {name}(q: torch.Tensor, p: torch.Tensor) -> torch.Tensor:"
    source = "\n".join([header] + lines) + "\n"
    return LoweredFunction(name, len(q), kind, inputs, steps, outputs, source)


@dataclass
class CompiledHamiltonian:
    """Torch callables of a declared Hamiltonian (the runtime's HamiltonianSystem protocol).

    ``hamiltonian(q, p) -> (...)``, ``dH_dq(q, p) -> (..., n)``, ``dH_dp(q, p) -> (..., n)``.
    """

    derivation: HamiltonianDerivation
    hamiltonian: LoweredFunction
    dH_dq: LoweredFunction
    dH_dp: LoweredFunction

    @property
    def n(self) -> int:
        return self.derivation.n

    @property
    def separable(self) -> bool:
        return self.derivation.separable

    @property
    def source(self) -> str:
        """Readable torch source of the three callables (``physml compile --emit torch``)."""
        d = self.derivation
        pairs = ", ".join(f"({a}, {b})" for a, b in zip(d.q, d.p, strict=True))
        head = (
            f'"""Lowered Hamiltonian; canonical pairs {pairs}; '
            f'separable={self.separable}."""\n\nimport torch\n\n\n'
        )
        return head + "\n\n".join(f.source for f in (self.hamiltonian, self.dH_dq, self.dH_dp))


def lower_hamiltonian(
    derivation: HamiltonianDerivation, params: Mapping[sympy.Symbol, float] | None = None
) -> CompiledHamiltonian:
    """Lower H and its gradients to batched torch callables with parameters bound to numbers."""
    q, p = derivation.q, derivation.p
    return CompiledHamiltonian(
        derivation,
        lower_expressions("hamiltonian", [derivation.H], q, p, params, kind="scalar"),
        lower_expressions("dH_dq", derivation.dH_dq, q, p, params),
        lower_expressions("dH_dp", derivation.dH_dp, q, p, params),
    )


def compile_hamiltonian(
    H: sympy.Expr,
    q: Sequence[sympy.Symbol],
    p: Sequence[sympy.Symbol],
    params: Mapping[sympy.Symbol, float] | None = None,
) -> CompiledHamiltonian:
    """derive_hamiltonian + lower_hamiltonian in one call."""
    return lower_hamiltonian(derive_hamiltonian(H, q, p), params)
