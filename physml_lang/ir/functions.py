"""The one table of functions the language knows.

Every stage reads this table: the checker (names and arities, where a function is allowed), the
constant evaluator (its value on Python numbers), the lowering to sympy (``sympy``: the name of
the sympy constructor) and, through sympy, the lowering to torch. A function is added here once.

Contexts say where a function may appear:

- ``constant``: option values, parameter defaults, lattice sizes, scan ranges (evaluated at once);
- ``expression``: energies, Hamiltonians, actions, definitions and measured observables;
- ``operator``: Hamiltonians of qubit models (complex scalars), ``matrix``: gauge links.
"""

from __future__ import annotations

import cmath
import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import numpy as np

MAX_POINTS = 100_000  # values a range or linspace may produce


@dataclass(frozen=True)
class Function:
    """A named function: its arities, contexts, documentation and its meanings per stage."""

    name: str
    arity: tuple[int, int | None]  # (fewest, most) positional arguments; None: any number
    doc: str
    contexts: frozenset[str]
    value: Callable | None = None  # on Python numbers (constant folding)
    sympy: str | None = None  # the sympy constructor (sympy.<name>)
    differentiable: bool = True

    def accepts(self, n: int) -> bool:
        low, high = self.arity
        return n >= low and (high is None or n <= high)

    @property
    def usage(self) -> str:
        low, high = self.arity
        if high == low == 1:
            return f"{self.name}(x)"
        if high == low == 2:
            return f"{self.name}(a, b)"
        return f"{self.name}(...)"


def _count(n: float) -> int:
    if isinstance(n, float) and not n.is_integer() or not 0 <= n <= MAX_POINTS:
        raise ValueError(f"the number of points must be an integer in 0 .. {MAX_POINTS}")
    return int(n)


def _linspace(a: float, b: float, n: int) -> list[float]:
    # 15 significant digits: 2.9, not 2.9000000000000004, in summaries and file names
    return [float(f"{x:.15g}") for x in np.linspace(a, b, _count(n))]


def _logspace(a: float, b: float, n: int) -> list[float]:
    return [float(x) for x in np.logspace(a, b, _count(n))]


def _range(*a: int) -> list[int]:
    r = range(*[int(x) for x in a])
    if len(r) > MAX_POINTS:
        raise ValueError(f"more than {MAX_POINTS} values")
    return list(r)


def _complex_or_real(fn_real: Callable, fn_complex: Callable) -> Callable:
    def apply(x):
        return fn_complex(x) if isinstance(x, complex) else fn_real(x)

    return apply


def _wrap_angle(x: float) -> float:
    """An angle wrapped into (-pi, pi]."""
    y = math.remainder(x, 2 * math.pi)
    return math.pi if y == -math.pi else y


_C = frozenset({"constant"})
_E = frozenset({"expression", "operator", "matrix"})
_CE = _C | _E
_ELEMENTARY = [
    ("exp", "exponential", math.exp, cmath.exp, "exp"),
    ("log", "natural logarithm", math.log, cmath.log, "log"),
    ("sqrt", "square root", math.sqrt, cmath.sqrt, "sqrt"),
    ("cos", "cosine", math.cos, cmath.cos, "cos"),
    ("sin", "sine", math.sin, cmath.sin, "sin"),
    ("tan", "tangent", math.tan, cmath.tan, "tan"),
    ("tanh", "hyperbolic tangent", math.tanh, cmath.tanh, "tanh"),
    ("cosh", "hyperbolic cosine", math.cosh, cmath.cosh, "cosh"),
    ("sinh", "hyperbolic sine", math.sinh, cmath.sinh, "sinh"),
]

FUNCTIONS: dict[str, Function] = {
    name: Function(name, (1, 1), doc, _CE, _complex_or_real(real, cplx), sym)
    for name, doc, real, cplx, sym in _ELEMENTARY
}
FUNCTIONS.update({
    "abs": Function("abs", (1, 1), "absolute value |x|", _CE, abs, "Abs", differentiable=False),
    "sign": Function("sign", (1, 1), "sign of x: -1, 0 or 1", _E, None, "sign",
                     differentiable=False),
    "min": Function("min", (2, None), "smallest argument", _CE, min, "Min", differentiable=False),
    "max": Function("max", (2, None), "largest argument", _CE, max, "Max", differentiable=False),
    "delta": Function("delta", (2, 2), "Kronecker delta: 1 if a == b else 0", _E, None,
                      "KroneckerDelta"),
    "re": Function("re", (1, 1), "real part", _E, lambda z: complex(z).real, "re"),
    "im": Function("im", (1, 1), "imaginary part", _E, lambda z: complex(z).imag, "im"),
    "conj": Function("conj", (1, 1), "complex conjugate (elementwise for matrices)", _E,
                     lambda z: complex(z).conjugate(), "conjugate"),
    "arg": Function("arg", (1, 1), "phase of a complex number, in (-pi, pi]", _E,
                    lambda z: cmath.phase(z), "arg"),
    "wrap": Function("wrap", (1, 1), "an angle wrapped into (-pi, pi]", _E, _wrap_angle, None),
    "trace": Function("trace", (1, 1), "trace of a gauge-link matrix (numbers: themselves)",
                      frozenset({"matrix"})),
    "dagger": Function("dagger", (1, 1), "conjugate transpose of a gauge-link matrix",
                       frozenset({"matrix"})),
    "floor": Function("floor", (1, 1), "largest integer <= x", _C, math.floor),
    "ceil": Function("ceil", (1, 1), "smallest integer >= x", _C, math.ceil),
    "round": Function("round", (1, 1), "nearest integer", _C, round),
    "int": Function("int", (1, 1), "integer part", _C, int),
    "float": Function("float", (1, 1), "as a real number", _C, float),
    "acosh": Function("acosh", (1, 1), "inverse hyperbolic cosine", _C, math.acosh),
    "asinh": Function("asinh", (1, 1), "inverse hyperbolic sine", _C, math.asinh),
    "atanh": Function("atanh", (1, 1), "inverse hyperbolic tangent", _C, math.atanh),
    "linspace": Function("linspace", (3, 3), "n evenly spaced values from a to b", _C,
                         _linspace),
    "logspace": Function("logspace", (3, 3), "n values from 10^a to 10^b, evenly in log", _C,
                         _logspace),
    "range": Function("range", (1, 3), "the integers a .. b - 1 (step c)", _C, _range),
})  # fmt: skip

CONSTANTS: dict[str, object] = {"pi": math.pi, "true": True, "false": False, "inf": math.inf}


@cache
def functions_in(context: str) -> dict[str, Function]:
    """The functions allowed in a context ("constant", "expression", "operator", "matrix")."""
    return {k: f for k, f in FUNCTIONS.items() if context in f.contexts}
