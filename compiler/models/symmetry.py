"""Verification of declared symmetries against the energy, with the actual parameters.

- ``translation``: every term's coefficients must be the same at every site. Symbolically, a
  term that reads a non-uniform array (random couplings, site-dependent fields) breaks it.
- ``spin_flip``: the energy must be invariant under s -> -s (spin), s -> 1 - s (binary) or
  s -> s + 1 mod q (potts). Checked symbolically term by term with the domain algebra; a term
  that changes is named. Potts terms are checked numerically on random configurations.

A declared symmetry that does not hold is a compile error pointing at the offending term.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import sympy as sp
import torch

from physml_lang.compiler.derive import local as derive
from physml_lang.compiler.lower.terms import PairTerm
from physml_lang.diagnostics import Diagnostic, PhysmlError

if TYPE_CHECKING:
    from physml_lang.compiler.models.lattice import LatticeModel


def verify_symmetries(cm: LatticeModel) -> None:
    for sym in cm.model.symmetries:
        if not sym.active:
            continue
        if sym.name == "translation":
            _translation(cm, sym)
        elif sym.name == "spin_flip":
            _spin_flip(cm, sym)
        elif sym.name in ("gauge", "symplectic"):
            raise PhysmlError(Diagnostic(
                "P501", f"symmetry '{sym.name}' does not apply to a classical spin model",
                sym.span))  # fmt: skip


def _translation(cm: LatticeModel, sym) -> None:
    for t in cm.energy_sum.terms:
        for a in t.accesses.values():
            if a.kind == "array":
                arr = cm.model.arrays[a.name]
                raise PhysmlError(Diagnostic(
                    "P500",
                    f"symmetry 'translation' does not hold: this term reads '{a.name}', which "
                    f"varies from {arr.on[:-1] if arr.on != 'pairs' else 'pair'} to "
                    f"{arr.on[:-1] if arr.on != 'pairs' else 'pair'}",
                    t.span,
                    "remove 'symmetry translation', or make the couplings uniform",
                    notes=[f"declared at {sym.span!r}"],
                ))  # fmt: skip
        if isinstance(t, PairTerm) and not cm.lattice.complete:
            continue


def _flip_map(domain, symbol):
    if domain.kind in ("spin", "z2"):
        return -symbol
    if domain.kind == "binary":
        return 1 - symbol
    return None


def _spin_flip(cm: LatticeModel, sym) -> None:
    fields = {n: f.domain for n, f in cm.model.fields.items() if f.domain.discrete}
    for t in cm.energy_sum.terms:
        subs, syms, potts = {}, [], False
        for s, a in t.accesses.items():
            if a.kind == "field" and a.name in fields:
                m = _flip_map(fields[a.name], s)
                if m is None:
                    potts = True
                else:
                    subs[s] = m
                    syms.append(s)
        if potts:
            if not _potts_invariant(cm, t):
                _broken(t, sym)
            continue
        diff = sp.expand(t.body.xreplace(subs) - t.body)
        for name, dom in fields.items():
            diff = derive.reduce_domain(diff, [s for s in syms if t.accesses[s].name == name], dom)
        if sp.simplify(diff) != 0:
            _broken(t, sym)


def _potts_invariant(cm: LatticeModel, term) -> bool:
    """Numerical check of s -> s + 1 mod q on random configurations, for one term."""
    from physml_lang.compiler.lower.lattice import LatticeSumModule
    from physml_lang.compiler.lower.terms import LatticeSum

    module = LatticeSumModule(cm.model, LatticeSum([term]), cm.kernels, "check")
    g = torch.Generator().manual_seed(0)
    name, f = next((n, f) for n, f in cm.model.fields.items() if f.domain.kind == "potts")
    q = f.domain.q
    s = torch.randint(0, q, (8, *cm.lattice.shape), generator=g).to(cm.dtype)
    e0 = module({name: s})
    e1 = module({name: torch.remainder(s + 1, q)})
    return bool(torch.allclose(e0, e1, atol=1e-4))


def _broken(term, sym) -> None:
    raise PhysmlError(Diagnostic(
        "P500",
        "symmetry 'spin_flip' does not hold: this term changes sign under a global spin flip",
        term.span,
        "remove 'symmetry spin_flip', or make it conditional: 'symmetry spin_flip if h == 0'",
        notes=[f"declared at {sym.span!r}"],
    ))  # fmt: skip
