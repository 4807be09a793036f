"""Name resolution of a model's expressions: every name is a parameter, field, array, data
array, definition, bound index, lattice structure, unit vector or a name the model's kind
provides (Pauli operators, phase-space coordinates, ...); every call a known function or a
definition. Unknown names are located errors with did-you-mean hints.
"""

from __future__ import annotations

from typing import Any

from physml_lang.diagnostics import did_you_mean
from physml_lang.ir import expr as E
from physml_lang.ir.functions import functions_in
from physml_lang.ir.walk import Walker, as_call, fail, name_of

STRUCTURES = {"sites", "bonds", "pairs", "links", "plaquettes"}
REDUCTIONS = {"sum", "prod"}
CONSTANT_NAMES = {"pi", "I", "N", "sites_count", "true", "false", "inf"}
QUANTUM_OPERATORS = {"X", "Y", "Z", "Sp", "Sm", "Sz", "Nop"}


def is_unit_vector(name: str) -> bool:
    """Unit lattice vectors e0, e1, ... used in index arithmetic (x + e0)."""
    return len(name) >= 2 and name[0] == "e" and name[1:].isdigit()


class NameChecker(Walker[None]):
    """Checks the names of one model's expressions; ``env`` is the set of bound indices."""

    def __init__(self, known: set[str], scalars: set[str], definitions: set[str],
                 gauge: bool = False):  # fmt: skip
        self.known = known
        self.scalars = scalars
        self.definitions = definitions
        self.gauge = gauge
        self.functions = set(functions_in("expression")) | set(functions_in("matrix"))

    def check(self, e: E.Expr, bound: set[str] | None = None) -> None:
        self.walk(e, frozenset(bound or ()))

    def on_number(self, e: E.Num, env: Any) -> None:
        return None

    def on_imaginary(self, e: E.Imag, env: Any) -> None:
        return None

    def on_string(self, e: E.Str, env: Any) -> None:
        return None

    def on_name(self, e: E.Name, env: Any) -> None:
        n = e.id
        if n in env or n in self.known or n in STRUCTURES or is_unit_vector(n):
            return None
        if self.gauge and n.startswith("e_"):
            return None  # e_mu: the unit vector of a bound direction, checked when lowered
        hint = did_you_mean(n, self.known | set(env) | STRUCTURES)
        fail("P200", f"unknown name '{n}'", e.span, hint)

    def on_list(self, e: E.ListExpr, env: Any) -> None:
        for x in e.items:
            self.walk(x, env)

    def on_unary(self, e: E.Unary, env: Any) -> None:
        self.walk(e.operand, env)

    def on_binary(self, e: E.Binary, env: Any) -> None:
        self.walk(e.left, env)
        self.walk(e.right, env)

    def on_index(self, e: E.Index, env: Any) -> None:
        self.walk(e.base, env)
        for x in e.indices:
            self.walk(x, env)
        base = name_of(e.base)
        if base is not None and base in self.scalars:
            fail("P202", f"'{base}' is a scalar parameter and cannot be indexed", e.span)

    def on_call(self, e: E.Call, env: Any) -> None:
        if e.func not in self.functions and e.func not in self.definitions:
            fail("P200", f"unknown function '{e.func}'", e.func_span,
                 did_you_mean(e.func, self.functions))  # fmt: skip
        for a in e.args:
            self.walk(a, env)

    def on_reduce(self, e: E.Reduce, env: Any) -> None:
        if e.func not in REDUCTIONS:
            fail("P200", f"unknown reduction '{e.func}'", e.func_span,
                 did_you_mean(e.func, REDUCTIONS) or "use sum(...) or prod(...)")  # fmt: skip
        inner = set(env)
        for loop in e.loops:
            d = loop.domain
            if d is not None:
                self._domain(d, env)
            inner |= set(loop.names)
        self.walk(e.body, frozenset(inner))

    def _domain(self, d: E.Expr, env: Any) -> None:
        """``bonds(2)``: a structure with arguments, ``range(a, b)``: integers; anything else is
        an expression."""

        call = as_call(d)
        if call is not None and (call.func in STRUCTURES or call.func == "range"):
            for a in call.args:
                self.walk(a, env)
        else:
            self.walk(d, env)
