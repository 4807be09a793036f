"""Measured expressions of lattice models: ``measure energy^2 / sites``, ``measure abs(M)``,
``measure sum(s[i] * s[i + e0] for i in sites)``. An expression of the per-sample energy E, the
magnetisation M, beta, T, parameters and lattice sums is built into sympy by the one IR walker
and lowered by the one lowering; each lattice sum becomes what the model's ``lattice_sum(expr,
name)`` gives: a torch module when compiled, the derived lattice terms when checked."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Any

import sympy as sp

from physml_lang.compiler.geometry import Lattice
from physml_lang.compiler.lower.backends import Backend
from physml_lang.compiler.lower.program import Kernel
from physml_lang.compiler.lower.sympy import SympyArithmetic
from physml_lang.diagnostics import Diagnostic, PhysmlError, Span, did_you_mean
from physml_lang.ir import expr as E
from physml_lang.ir.model import DefinitionIR


def fail(code: str, msg: str, span: Span | None, hint: str | None = None):
    raise PhysmlError(Diagnostic(code, msg, span, hint))


class MeasuredExpressions(SympyArithmetic):
    """Measured expressions of one lattice model, lowered to kernels of (E, M, beta, T) and of
    lattice sums: ``compile(expr, name)`` gives a kernel; ``env(state, E, M, beta)`` the values
    it reads, each (B,) for a batch of states {field: (B, *lattice.shape)}.

    ``lattice_sum(expr, name)``: the model's extensive sum of ``expr`` over the lattice (a module
    of states when compiled; ``check`` passes the derived lattice terms and only walks).
    ``fluctuations``: names of observables that are not per-sample (specific heat, ...): named
    in an expression, they get a hint to measure them on their own."""

    what = "a measured expression"

    def __init__(self, lattice: Lattice, definitions: Mapping[str, DefinitionIR],
                 lattice_sum: Callable[[E.Expr, str], Any], params: Mapping[str, Any],
                 fluctuations: Collection[str] = ()):  # fmt: skip
        self.lattice = lattice
        self.definitions = definitions
        self.lattice_sum = lattice_sum
        self.params = params
        self.fluctuations = frozenset(fluctuations)
        self.modules: dict[sp.Symbol, Any] = {}

    def compile(self, e: E.Expr, name: str, backend: Backend) -> Kernel:
        expr = self.walk(e)
        return Kernel(f"measure_{name}", expr, {s: "sample" for s in expr.free_symbols},
                      backend=backend)  # fmt: skip

    def not_here(self, e: E.Expr, what: str = "this") -> PhysmlError:
        return PhysmlError(Diagnostic(
            "P308", "this expression cannot be measured", e.span,
            "measured expressions combine energy, magnetization, sums over the lattice, "
            "sites, T and parameters with + - * / ^ and abs, sqrt, exp, log"))  # fmt: skip

    def constant(self, value, e: E.Expr) -> sp.Expr:
        if isinstance(value, complex):
            raise self.not_here(e)
        return sp.Float(value) if isinstance(value, float) else sp.Integer(value)

    def on_name(self, e: E.Name, env: Any) -> sp.Expr:
        if e.id in ("energy", "magnetization", "T", "beta"):
            return sp.Symbol(e.id)
        if e.id == "sites":
            return sp.Integer(self.lattice.n_sites)
        if e.id == "bonds":
            return sp.Integer(self.lattice.n_bonds(1))
        if e.id in self.params and isinstance(self.params[e.id], int | float):
            return sp.Float(self.params[e.id])
        if e.id in self.definitions and not self.definitions[e.id].indices:
            return self._lattice_sum(self.definitions[e.id].expr, e.id)
        if e.id in self.fluctuations:
            fail("P308", f"'{e.id}' is a fluctuation observable; measure it on its own",
                  e.span, f"measure {e.id}")  # fmt: skip
        known = {"energy", "magnetization", "T", "beta", "sites", "bonds"} | set(self.params)
        known |= set(self.definitions)
        fail("P200", f"unknown name '{e.id}' in a measured expression", e.span,
              did_you_mean(e.id, known))  # fmt: skip

    def on_reduce(self, e: E.Reduce, env: Any) -> sp.Expr:
        return self._lattice_sum(e, f"sum{len(self.modules)}")

    def combine(self, op: str, a: sp.Expr, b: sp.Expr, e: E.Binary) -> sp.Expr:
        if op == "%":
            raise self.not_here(e)
        return super().combine(op, a, b, e)

    def on_call(self, e: E.Call, env: Any) -> sp.Expr:
        if e.func not in ("abs", "sqrt", "exp", "log", "cos", "sin", "tanh") or e.kwargs \
                or len(e.args) != 1:  # fmt: skip
            raise self.not_here(e)
        return super().on_call(e, env)

    def _lattice_sum(self, e: E.Expr, name: str) -> sp.Symbol:
        sym = sp.Symbol(f"__{name}")
        self.modules[sym] = self.lattice_sum(e, name)
        return sym

    def env(self, state, energy, magnetization, beta) -> dict:
        env = {sp.Symbol("energy"): energy, sp.Symbol("magnetization"): magnetization,
               sp.Symbol("beta"): beta, sp.Symbol("T"): 1.0 / beta}  # fmt: skip
        for sym, module in self.modules.items():
            env[sym] = module(state)
        return env


__all__ = ["MeasuredExpressions"]
