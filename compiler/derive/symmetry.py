"""Verification of declared symmetries against the energy, with the actual parameters.

- ``translation``: every term's coefficients must be the same at every site. Symbolically, a
  term that reads a non-uniform array (random couplings, site-dependent fields) breaks it.
- ``spin_flip``: the energy must be invariant under s -> -s (spin), s -> 1 - s (binary) or
  s -> s + 1 mod q (potts). Checked symbolically term by term with the domain algebra; a term
  that changes is named. A Potts term is checked exactly on every joint value of the spins it
  reads, by evaluating its lowered body with the numpy backend (the program a run executes,
  on numpy arrays: no torch).
- ``point_group``: the energy must be unchanged by the rotations and reflections that map the
  periodic lattice onto itself (the geometry's site permutations). Checked exactly: the energy
  at one base cell is expanded into addends over explicit sites, each addend put in a canonical
  form up to translations, and the coefficients of the images compared with the originals.

A declared symmetry that does not hold is a compile error pointing at the offending term.
"""

from __future__ import annotations

import itertools

import numpy as np
import sympy as sp

from physml_lang.compiler import limits
from physml_lang.compiler.derive import local as derive
from physml_lang.compiler.instance import ModelInstance
from physml_lang.compiler.lower.backends import NUMPY
from physml_lang.compiler.lower.program import Kernel
from physml_lang.compiler.lower.terms import LatticeSum, StencilTerm, Term
from physml_lang.diagnostics import Diagnostic, PhysmlError

# Joint Potts values checked exhaustively up to this many; beyond, a seeded random subset.
MAX_JOINT_VALUES = 1 << 16
# Draws of the other values a term reads (couplings from the model's arrays, other fields).
OTHER_DRAWS = 16


def verify_symmetries(model: ModelInstance, energy: LatticeSum) -> None:
    """Raise a located P500 when a declared, active symmetry does not hold for ``energy``."""
    for sym in model.symmetries:
        if not sym.active:
            continue
        if sym.name == "translation":
            _translation(model, energy, sym)
        elif sym.name == "spin_flip":
            _spin_flip(model, energy, sym)
        elif sym.name == "point_group":
            _point_group(model, energy, sym)
        elif sym.name in ("gauge", "symplectic"):
            raise PhysmlError(Diagnostic(
                "P501", f"symmetry '{sym.name}' does not apply to a classical spin model",
                sym.span))  # fmt: skip


def _translation(model: ModelInstance, energy: LatticeSum, sym) -> None:
    lat = model.lattice
    if lat is not None and (lat.graph or not lat.all_periodic):
        why = (f"a {lat.kind} graph has no translations" if lat.graph
               else "translations do not map an open boundary onto itself")  # fmt: skip
        raise PhysmlError(Diagnostic(
            "P500", f"symmetry 'translation' needs a periodic lattice: {why}", sym.span,
            "declare the lattice with boundary = periodic, or remove 'symmetry translation'"))  # fmt: skip
    for t in energy.terms:
        for a in t.accesses.values():
            if a.kind == "array":
                arr = model.arrays[a.name]
                raise PhysmlError(Diagnostic(
                    "P500",
                    f"symmetry 'translation' does not hold: this term reads '{a.name}', which "
                    f"varies from {arr.on[:-1] if arr.on != 'pairs' else 'pair'} to "
                    f"{arr.on[:-1] if arr.on != 'pairs' else 'pair'}",
                    t.span,
                    "remove 'symmetry translation', or make the couplings uniform",
                    notes=[f"declared at {sym.span!r}"],
                ))  # fmt: skip


def _point_group(model: ModelInstance, energy: LatticeSum, sym) -> None:
    lat = model.lattice
    gens = None if lat is None else lat.point_group_generators()
    if gens is None:
        raise PhysmlError(Diagnostic(
            "P500", "symmetry 'point_group' needs a periodic chain or a periodic 2D lattice whose "
            "boundary the rotations keep", sym.span,
            "declare the lattice with boundary = periodic and equal sizes, or remove "
            "'symmetry point_group'"))  # fmt: skip
    addends = _site_addends(model, energy, sym)
    pattern = _canonical_sum(lat, addends)
    for perm in gens:
        image = _canonical_sum(lat, [(c, expr, {k: (int(perm[x]), f) for k, (x, f) in reads.items()})
                                     for c, expr, reads in addends])  # fmt: skip
        keys = set(pattern) | set(image)
        if any(not _zero(pattern.get(k, 0) - image.get(k, 0)) for k in keys):
            raise PhysmlError(Diagnostic(
                "P500", "symmetry 'point_group' does not hold: the energy changes under a "
                "rotation or reflection of the lattice", sym.span,
                "remove 'symmetry point_group', or make the couplings the same along every "
                "direction the rotations exchange"))  # fmt: skip


def _zero(c) -> bool:
    return bool(sp.expand(c) == 0) if isinstance(c, sp.Expr) else c == 0


def _site_addends(model: ModelInstance, energy: LatticeSum, sym):
    """The energy of the base cell as addends ``(coefficient, body, {symbol: (site, field)})``
    over the explicit sites its field reads touch (stencil terms of site fields only)."""
    lat = model.lattice
    out = []
    for t in energy.terms:
        if not isinstance(t, StencilTerm) or any(
                a.kind != "field" or a.component is not None for a in t.accesses.values()):  # fmt: skip
            raise PhysmlError(Diagnostic(
                "P500", "symmetry 'point_group' is verified for energies of site fields with "
                "uniform couplings; this term reads site-dependent arrays or links", t.span,
                "remove 'symmetry point_group'", notes=[f"declared at {sym.span!r}"]))  # fmt: skip
        reads = {s: (lat.site_index(tuple(o % c for o, c in zip(a.offset, lat.cells)), a.basis),
                     a.name) for s, a in t.accesses.items()}  # fmt: skip
        for addend in sp.Add.make_args(sp.expand(t.body)):
            coeff, body = addend.as_independent(*t.accesses, as_Add=False)
            out.append((coeff, body, reads))
    return out


def _canonical_sum(lat, addends) -> dict:
    """Coefficient per addend in canonical form up to translations: the sites an addend reads,
    moved so that each in turn sits in cell 0, the smallest sorted (cell, basis, field) tuple
    kept; the body's symbols renamed by their place in it."""
    cells = np.asarray(lat.cells)
    total: dict = {}
    for coeff, body, reads in addends:
        used = [s for s in reads if body.has(s)]
        site = np.array([reads[s][0] for s in used], dtype=np.int64)
        cell = np.stack(np.unravel_index(site // lat.basis, tuple(cells)), axis=1) if used \
            else np.zeros((0, len(cells)), dtype=np.int64)  # fmt: skip
        best = None
        for k in range(len(used)) or [0]:
            rel = (cell - cell[k]) % cells if used else cell
            where = [(tuple(int(v) for v in rel[j]), int(site[j] % lat.basis), reads[used[j]][1])
                     for j in range(len(used))]  # fmt: skip
            order = sorted(range(len(used)), key=lambda j: where[j])
            names = {used[j]: sp.Symbol(f"v{n}", real=True) for n, j in enumerate(order)}
            key = (tuple(where[j] for j in order), sp.srepr(body.xreplace(names)))
            best = key if best is None or key < best else best
        total[best] = total.get(best, 0) + coeff
    return total


def _symmetric(domain) -> bool:
    """Whether the domain's values are closed under m -> -m."""
    values = domain.values()
    return sorted(-v for v in values) == values


def _flip_map(domain, symbol):
    if domain.kind in ("spin", "z2", "integer") and _symmetric(domain):
        return -symbol  # m -> -m
    if domain.kind == "binary":
        return 1 - symbol
    return None


def _spin_flip(model: ModelInstance, energy: LatticeSum, sym) -> None:
    fields = {n: f.domain for n, f in model.fields.items() if f.domain.discrete}
    for t in energy.terms:
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
            if not potts_invariant(model, t):
                _broken(t, sym, "changes under the global shift s -> s + 1 mod q")
            continue
        diff = sp.expand(t.body.xreplace(subs) - t.body)
        for name, dom in fields.items():
            diff = derive.reduce_domain(diff, [s for s in syms if t.accesses[s].name == name], dom)
        if diff != 0 and not _vanishes(model, t, diff, syms, fields):
            _broken(t, sym)


def _vanishes(model: ModelInstance, term: Term, diff: sp.Expr, syms: list[sp.Symbol],
              fields: dict) -> bool:  # fmt: skip
    """Whether the expanded, domain-reduced change ``diff`` of a term under the flip is zero:
    by simplify() when that is cheap; else, for a polynomial in two-valued fields (reduced:
    s^2 = 1, b^2 = b, so a nonzero expansion takes nonzero values), no; else by evaluation on
    the domains' values (:func:`potts_invariant`)."""
    if limits.simplifiable(diff):
        return sp.simplify(diff) == 0
    two_valued = all(fields[term.accesses[s].name].ising
                     or fields[term.accesses[s].name].kind == "binary" for s in syms)  # fmt: skip
    if two_valued and diff.is_polynomial(*syms):
        return False
    return potts_invariant(model, term)


def potts_invariant(model: ModelInstance, term: Term, seed: int = 0) -> bool:
    """Whether the global flip (s -> s + 1 mod q for Potts fields, at once with the flip of
    every other discrete field) leaves ``term`` unchanged.

    The term's body is lowered with the numpy backend and evaluated on every joint value of the
    Potts spins it reads (q^k for k reads; a seeded random subset beyond ``MAX_JOINT_VALUES``),
    each with ``OTHER_DRAWS`` draws of everything else it reads: couplings drawn from the
    model's own array values, other discrete fields from their domains, continuous fields from
    a normal distribution."""
    rng = np.random.default_rng(seed)
    potts: list[tuple[sp.Symbol, int]] = []
    other: dict[sp.Symbol, np.ndarray] = {}
    flipped: dict[sp.Symbol, np.ndarray] = {}  # the other discrete fields, flipped
    for s, a in term.accesses.items():
        domain = model.fields[a.name].domain if a.kind == "field" else None
        if domain is not None and domain.kind == "potts":
            potts.append((s, int(domain.q)))
        elif domain is not None and domain.discrete:
            other[s] = rng.choice(np.asarray(domain.values()), OTHER_DRAWS)
            flipped[s] = 1.0 - other[s] if domain.kind == "binary" else -other[s]
        elif domain is not None:
            other[s] = rng.standard_normal(OTHER_DRAWS)
        else:  # an array: any of its values
            values = np.asarray(model.arrays[a.name].values, dtype=float).reshape(-1)
            other[s] = rng.choice(values, OTHER_DRAWS) if values.size else np.zeros(OTHER_DRAWS)
    qs = [q for _, q in potts]
    n_joint = int(np.prod(qs, dtype=np.int64))
    if n_joint <= MAX_JOINT_VALUES:
        joint = np.array(list(itertools.product(*(range(q) for q in qs))), dtype=float)
    else:
        joint = np.stack([rng.integers(0, q, MAX_JOINT_VALUES) for q in qs], axis=1).astype(float)
    n = joint.shape[0]
    # every joint Potts value with every draw of the rest: (n * OTHER_DRAWS,) per symbol
    values = {s: np.repeat(joint[:, k], OTHER_DRAWS) for k, (s, _) in enumerate(potts)}
    shifted = {s: np.remainder(values[s] + 1.0, q) for s, q in potts}
    rest = {s: np.tile(v, n) for s, v in other.items()}
    rest_flipped = {**rest, **{s: np.tile(v, n) for s, v in flipped.items()}}
    kernel = Kernel("spin_flip_check", term.body, term.accesses, backend=NUMPY)
    before = np.asarray(kernel({**values, **rest}))
    after = np.asarray(kernel({**shifted, **rest_flipped}))
    scale = max(1.0, float(np.max(np.abs(before), initial=0.0)))
    return bool(np.allclose(before, after, rtol=0.0, atol=1e-9 * scale))


def _broken(term, sym, how: str = "changes sign under a global spin flip") -> None:
    raise PhysmlError(Diagnostic(
        "P500",
        f"symmetry 'spin_flip' does not hold: this term {how}",
        term.span,
        "remove 'symmetry spin_flip', or make it conditional: 'symmetry spin_flip if h == 0'",
        notes=[f"declared at {sym.span!r}"],
    ))  # fmt: skip
