"""A landscape model derived, without torch: a potential f(x) over continuous coordinates.

A model with ``coordinates x: real[N, D] [in [lower, upper]]`` and one ``potential`` (or
``energy``): the objective of an optimiser, or the potential of particles (H = -D lap + f).
f is built node by node from the IR (never from text) in the flattened symbols x_k
(k = i * D + a for ``x[i, a]``); sums over ``dims``, ``particles``, ``pairs`` and literal lists
are unrolled. Derived: the gradient df/dx_k (forces of Langevin, Fokker-Planck and of the
drift of diffusion Monte Carlo) and, for a declared ``trial psi = ...``, grad log psi and
lap log psi (importance sampling). Pieces with no derivative (abs, sign, ...) are recorded
with their spans; a task that needs the gradient reports them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import sympy

from physml_lang.compiler.derive.phase_space import PhaseBuilder, _label
from physml_lang.compiler.instance import ModelInstance
from physml_lang.compiler.lower.sympy import SympyBuilder
from physml_lang.diagnostics import Span
from physml_lang.ir import expr as E
from physml_lang.ir.model import DefinitionIR
from physml_lang.ir.walk import fail, name_of

MAX_COORDINATES = 256  # flattened coordinates of a landscape (symbolic derivation per one)
OBJECTIVE_KINDS = ("potential", "energy")


class LandscapeBuilder(PhaseBuilder):
    """Resolves x, x[i], x[i, a] and the sums over ``dims``, ``particles``, ``pairs``: for
    ``real[n]`` every one of the n coordinates is a dim (and a particle); for ``real[N, D]``
    dims run over D and particles over N."""

    what = "a potential"

    def __init__(self, model: ModelInstance, shape: tuple[int, ...]):
        SympyBuilder.__init__(self, model)
        assert model.coordinates is not None
        self.qname, self.pname = model.coordinates.name, ""
        self.shape = shape
        n = math.prod(shape)
        if shape:
            names = ["_".join(str(int(i)) for i in np.unravel_index(k, shape)) for k in range(n)]
            self.q = [sympy.Symbol(f"{self.qname}_{s}", real=True) for s in names]
        else:
            self.q = [sympy.Symbol(self.qname, real=True)]
        self.p = []

    def _which(self, name: str) -> list[sympy.Symbol] | None:
        return self.q if name == self.qname else None

    def domain(self, loop: E.Loop, env: dict[str, Any], body: E.Expr) -> list[tuple]:
        d = name_of(loop.domain) if loop.domain is not None else None
        if len(self.shape) == 1 and d in ("dims", "particles"):
            return [(k,) for k in range(self.shape[0])]
        if d in ("particles", "dims", "pairs") and not self.shape:
            fail("P411", f"'{d}' needs coordinates with a shape, e.g. coordinates "
                 f"{self.qname}: real[3]", loop.domain.span)  # fmt: skip
        return super().domain(loop, env, body)


def _objective(model: ModelInstance) -> DefinitionIR:
    """The one ``potential`` (or ``energy``) definition: what is minimised / the potential."""
    defs = [d for d in model.definitions.values() if d.kind in OBJECTIVE_KINDS]
    if not defs:
        other = next((d for d in model.definitions.values() if d.kind in ("hamiltonian",
                                                                           "kinetic")), None)  # fmt: skip
        fail("P420", f"model {model.name} declares coordinates but no potential",
             other.span if other else model.name_span,
             "write 'potential f = ...' over the coordinates (the kinetic energy of the "
             "quantum tasks is -D lap, set by their option D)")  # fmt: skip
    if len(defs) > 1:
        fail("P420", f"model {model.name} declares {len(defs)} potentials; a landscape has one",
             defs[1].span, "sum them into one: potential f = V1 + V2")  # fmt: skip
    d = defs[0]
    if d.indices:
        fail("P302", "a potential takes no indices", d.span)
    return d


@dataclass
class LandscapeDerivation:
    """f over the flattened coordinates ``x`` (n = prod(shape)), its gradient, and a declared
    trial function's log-derivatives. ``lower``/``upper``: the box (None: unbounded);
    ``params``: parameter symbol -> value (bound at lowering)."""

    name: str
    coordinate: str
    shape: tuple[int, ...]
    x: list[sympy.Symbol]
    f: sympy.Expr
    f_name: str
    f_span: Span | None
    lower: float | None
    upper: float | None
    params: dict[sympy.Symbol, float]
    nondifferentiable: list[tuple[sympy.Expr, Span]] = field(default_factory=list)
    trial: sympy.Expr | None = None
    trial_name: str | None = None
    trial_span: Span | None = None
    lattice: Any = None

    @property
    def n(self) -> int:
        return len(self.x)

    @property
    def bounded(self) -> bool:
        return self.lower is not None

    @cached_property
    def gradient(self) -> list[sympy.Expr]:
        """df/dx_k, k = 0 .. n-1."""
        return [sympy.diff(self.f, s) for s in self.x]

    @cached_property
    def trial_derivatives(self) -> tuple[sympy.Expr, list[sympy.Expr], sympy.Expr]:
        """(log psi, grad log psi (n), lap log psi) of the trial function psi:
        grad log psi = grad psi / psi, lap log psi = lap psi / psi - |grad log psi|^2."""
        assert self.trial is not None
        psi = self.trial
        grads = [sympy.diff(psi, s) for s in self.x]
        g = [gk / psi for gk in grads]
        lap = sympy.Add(*[sympy.diff(gk, s) for gk, s in zip(grads, self.x, strict=True)])
        log_psi = sympy.expand_log(sympy.log(psi), force=True)
        return log_psi, g, lap / psi - sympy.Add(*[gk**2 for gk in g])

    def labels(self) -> list[str]:
        return [_label(self.coordinate, self.shape, k) for k in range(self.n)]

    def describe(self) -> str:
        box = (f" in [{self.lower:g}, {self.upper:g}]" if self.bounded else " (unbounded)")
        shape = f"real[{', '.join(map(str, self.shape))}]" if self.shape else "real"
        trial = f"; trial function {self.trial_name}" if self.trial is not None else ""
        return (f"landscape model {self.name}: coordinates {self.coordinate}: {shape}{box}, "
                f"{self.n} coordinate(s); potential {self.f_name}{trial}")  # fmt: skip

    def emit_sympy(self) -> str:
        lines = [f"# model {self.name}: {self.describe()}", f"{self.f_name} = {self.f}"]
        for s, g in zip(self.x, self.gradient, strict=True):
            lines.append(f"d{self.f_name}/d{s} = {g}")
        if self.trial is not None:
            log_psi, g, lap = self.trial_derivatives
            lines.append(f"log {self.trial_name} = {log_psi}")
            lines += [f"d log {self.trial_name}/d{s} = {gk}" for s, gk in zip(self.x, g,
                                                                              strict=True)]  # fmt: skip
            lines.append(f"lap log {self.trial_name} = {lap}")
        return "\n".join(lines)


def derive_landscape(model: ModelInstance) -> LandscapeDerivation:
    """The potential of a landscape model in sympy (located errors: no potential, too many
    coordinates, shapes, unknown sums)."""
    c = model.coordinates
    assert c is not None
    shape = tuple(c.shape)
    n = math.prod(shape)
    if n > MAX_COORDINATES:
        fail("P426", f"{n} coordinates: a landscape model has at most {MAX_COORDINATES} "
             "(each is derived symbolically)", c.span)  # fmt: skip
    d = _objective(model)
    b = LandscapeBuilder(model, shape)
    f = b.build(d.expr, {})
    trial = next((t for t in model.definitions.values() if t.kind == "trial"), None)
    psi = None
    if trial is not None:
        if trial.indices:
            fail("P302", "a trial function takes no indices", trial.span)
        psi = LandscapeBuilder(model, shape).build(trial.expr, {})
    params = {sympy.Symbol(k, real=True): float(v) for k, v in b.params.items()}
    used = set(b.q)
    if not f.free_symbols & used:
        fail("P419", f"the potential {d.name} does not depend on the coordinates "
             f"{c.name}", d.span)  # fmt: skip
    nondiff = [(e, s) for e, s in b.nondiff if e.free_symbols & used]
    return LandscapeDerivation(model.name, c.name, shape, b.q, f, d.name, d.span, c.lower,
                               c.upper, params, nondiff, psi, trial.name if trial else None,
                               trial.span if trial else None)  # fmt: skip


__all__ = ["LandscapeDerivation", "MAX_COORDINATES", "derive_landscape"]
