"""Sympy -> torch. A :class:`Kernel` is a sympy expression (common subexpressions eliminated)
over *inputs* (field values at offsets, arrays, validity masks, dense local fields, a candidate
value); it runs as composed torch operations on whole batches of configurations.

Three lowering paths read neighbour values, and must agree to rounding:

- ``roll``: periodic lattices; the value at x + o is ``torch.roll(s, -o)``;
- ``gather``: any boundary; a neighbour table gives the flat index of x + o, and a validity
  mask removes terms that would cross an open boundary;
- ``dense``: pair interactions as matrix products, sum_{x,y} f(s_x) U_{xy} g(s_y).

The same program is printed as readable torch source by :func:`Kernel.source`, so what
``physml compile --emit torch`` shows is what runs. No source text is executed.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass
from functools import reduce

import sympy as sp
import torch
from sympy.printing.pycode import PythonCodePrinter

Env = dict[sp.Symbol, object]


# ---------------------------------------------------------------- sympy -> closures


def _force(value):
    """Inputs may be thunks (zero-argument functions) so that a neighbour value is read only when
    the expression needs it, and freed right after when it is used once."""
    return value() if callable(value) else value


def _compile_node(e: sp.Expr, once: frozenset = frozenset()) -> Callable[[Env], object]:
    """A closure computing ``e`` from an environment of input tensors (or thunks of them).

    Symbols in ``once`` occur once in the program: they are read without being cached.
    """
    if e.is_Symbol:
        if e in once:
            return lambda env: _force(env[e])

        def cached(env):
            v = env[e]
            if callable(v):
                v = env[e] = v()
            return v

        return cached
    if e.is_Number or e in (sp.pi, sp.E):
        c = complex(e) if e.is_complex and not e.is_real else float(e)
        return lambda env: c
    if e is sp.I:
        return lambda env: 1j
    args = [_compile_node(a, once) for a in e.args]
    if isinstance(e, sp.Add):
        return lambda env: reduce(operator.add, (f(env) for f in args))
    if isinstance(e, sp.Mul):
        return lambda env: reduce(operator.mul, (f(env) for f in args))
    if isinstance(e, sp.Pow):
        base, exp = args
        p = e.args[1]
        if p == 2:
            return lambda env: (lambda b: b * b)(base(env))
        if p == -1:
            return lambda env: 1.0 / base(env)
        if p == sp.Rational(1, 2):
            return lambda env: _sqrt(base(env))
        return lambda env: base(env) ** exp(env)
    if isinstance(e, sp.KroneckerDelta):
        a, b = args
        return lambda env: _delta(a(env), b(env))
    fn = _FUNCTIONS.get(type(e))
    if fn is not None:
        (a,) = args
        return lambda env: fn(a(env))
    if isinstance(e, sp.Min | sp.Max):
        op = torch.minimum if isinstance(e, sp.Min) else torch.maximum
        return lambda env: reduce(lambda x, y: op(_t(x), _t(y)), (f(env) for f in args))
    raise NotImplementedError(f"cannot lower {type(e).__name__} to torch")


def _t(x):
    return x if isinstance(x, torch.Tensor) else torch.tensor(x)


def _sqrt(x):
    return torch.sqrt(x) if isinstance(x, torch.Tensor) else x**0.5


def _delta(a, b):
    eq = a == b
    return eq.to(torch.get_default_dtype()) if isinstance(eq, torch.Tensor) else float(eq)


def _wrap(fn_tensor, fn_scalar):
    return lambda x: fn_tensor(x) if isinstance(x, torch.Tensor) else fn_scalar(x)


_FUNCTIONS = {
    sp.exp: _wrap(torch.exp, lambda x: complex(sp.exp(x))),
    sp.log: _wrap(torch.log, lambda x: float(sp.log(x))),
    sp.cos: _wrap(torch.cos, lambda x: float(sp.cos(x))),
    sp.sin: _wrap(torch.sin, lambda x: float(sp.sin(x))),
    sp.tan: _wrap(torch.tan, lambda x: float(sp.tan(x))),
    sp.tanh: _wrap(torch.tanh, lambda x: float(sp.tanh(x))),
    sp.cosh: _wrap(torch.cosh, lambda x: float(sp.cosh(x))),
    sp.sinh: _wrap(torch.sinh, lambda x: float(sp.sinh(x))),
    sp.Abs: _wrap(torch.abs, abs),
    sp.sign: _wrap(torch.sign, lambda x: float(sp.sign(x))),
    sp.re: _wrap(torch.real, lambda x: complex(x).real),
    sp.im: _wrap(torch.imag, lambda x: complex(x).imag),
    sp.conjugate: _wrap(torch.conj, lambda x: complex(x).conjugate()),
}


class _TorchPrinter(PythonCodePrinter):
    """Prints sympy as torch source, mirroring :func:`_compile_node` op for op."""

    _kf = {
        "exp": "torch.exp", "log": "torch.log", "cos": "torch.cos", "sin": "torch.sin",
        "tan": "torch.tan", "tanh": "torch.tanh", "cosh": "torch.cosh", "sinh": "torch.sinh",
        "Abs": "torch.abs", "sign": "torch.sign", "re": "torch.real", "im": "torch.imag",
        "conjugate": "torch.conj",
    }  # fmt: skip

    def _print_Function(self, e):
        name = self._kf.get(type(e).__name__)
        if name:
            return f"{name}({', '.join(self._print(a) for a in e.args)})"
        return super()._print_Function(e)

    def _print_KroneckerDelta(self, e):
        a, b = (self._print(x) for x in e.args)
        return f"({a} == {b}).to(dtype)"

    def _print_Pow(self, e, rational=False):
        if e.exp == 2:
            b = self.parenthesize(e.base, 1000)
            return f"{b} * {b}"
        if e.exp == -1:
            return f"1.0 / {self.parenthesize(e.base, 1000)}"
        if e.exp == sp.Rational(1, 2):
            return f"torch.sqrt({self._print(e.base)})"
        return super()._print_Pow(e, rational)

    def _print_Exp1(self, e):
        return "math.e"

    def _print_Pi(self, e):
        return "math.pi"


_printer = _TorchPrinter({"fully_qualified_modules": False})


def _occurrences(expr: sp.Expr, symbol: sp.Symbol) -> int:
    """How many times ``symbol`` appears as a leaf of ``expr`` (repeated factors count once per
    power node, which is all the evaluator reads)."""
    if expr == symbol:
        return 1
    return sum(_occurrences(a, symbol) for a in expr.args)


@dataclass
class Kernel:
    """A lowered expression: inputs by symbol, a CSE'd program, and its compiled closure."""

    name: str
    expr: sp.Expr
    inputs: dict[sp.Symbol, object]

    def __post_init__(self) -> None:
        replacements, reduced = sp.cse(self.expr, symbols=sp.numbered_symbols("t"))
        program = [v for _, v in replacements] + [reduced[0]]
        counts = {s: sum(_occurrences(p, s) for p in program) for s in self.inputs}
        once = frozenset(s for s, n in counts.items() if n == 1)
        self.steps = [(s, _compile_node(v, once)) for s, v in replacements]
        self.result = _compile_node(reduced[0], once)
        self._program = (replacements, reduced[0])

    def __call__(self, env: Env):
        env = dict(env)
        for s, f in self.steps:
            env[s] = f(env)
        return self.result(env)

    def source(self, describe: Callable[[sp.Symbol, object], str | None]) -> str:
        """Readable, runnable torch source for this kernel.

        ``describe`` prints how each input is read from ``state``; inputs it returns None for
        (a candidate value, a site value) become arguments of the function.
        """
        reads, arguments = [], []
        for sym in sorted(self.inputs, key=str):
            how = describe(sym, self.inputs[sym])
            if how is None:
                arguments.append(str(sym))
            else:
                reads.append(f"    {sym} = {how}")
        lines = [f"def {self.name}({', '.join(['state', *arguments])}):", *reads]
        replacements, reduced = self._program
        for s, v in replacements:
            lines.append(f"    {s} = {_printer.doprint(v)}")
        lines.append(f"    return {_printer.doprint(reduced)}")
        return "\n".join(lines)
