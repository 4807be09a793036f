"""Pauli-operator algebra for spin-1/2 Hamiltonians: the single interface to the quantum runtime.

Conventions (Z basis, one spin-1/2 per site):

- A configuration ``s`` has ``s_i = +1`` (spin up, qubit ``|0>``) or ``s_i = -1`` (down, ``|1>``).
  ``Z|s> = s|s>``; ``X`` flips a spin; ``Y = [[0, -i], [i, 0]]`` in the (up, down) basis, so
  ``<s|Y|-s> = -i s``.
- ``"+"`` = sigma^+ = (X + iY)/2 = |up><down| (raises Z); ``"-"`` = sigma^- = (X - iY)/2.
- ``"N"`` = (1 - Z)/2 = |down><down| = sigma^- sigma^+: the qubit occupation ``|1><1|``
  (a down spin counts as occupied).
- Operators are Pauli matrices, not spin-1/2 matrices: S = sigma/2, so the Heisenberg model
  ``sum X X + Y Y + Z Z`` is ``4 sum S.S``.

A :class:`PauliTerm` is ``coefficient * op_1 op_2 ...`` (operator product left to right, any sites,
repeats allowed). :meth:`PauliSum.simplify` brings a sum into canonical form: every term a product
of X/Y/Z on distinct sites in site order (``+``, ``-``, ``N`` expanded; same-site products reduced
with X Y = iZ, Y Z = iX, Z X = iY, P P = 1), equal strings combined, zeros dropped. In canonical
form a sum is Hermitian iff every coefficient is real, and two sums are equal iff their canonical
terms are equal -- which makes commutator checks (symmetries) exact.

No sympy and no text parsing here: the compiler builds these objects from its own IR.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

PAULI_OPS = ("X", "Y", "Z")
ALL_OPS = ("I", "X", "Y", "Z", "+", "-", "N")

# Single-site operators expanded in the Pauli basis: op -> ((coefficient, pauli), ...).
_EXPANSION: dict[str, tuple[tuple[complex, str], ...]] = {
    "I": ((1.0, "I"),),
    "X": ((1.0, "X"),),
    "Y": ((1.0, "Y"),),
    "Z": ((1.0, "Z"),),
    "+": ((0.5, "X"), (0.5j, "Y")),
    "-": ((0.5, "X"), (-0.5j, "Y")),
    "N": ((0.5, "I"), (-0.5, "Z")),
}

# Product of two Pauli matrices: (a, b) -> (phase, a*b).
_PAULI_PRODUCT: dict[tuple[str, str], tuple[complex, str]] = {}
for _p in ("I", "X", "Y", "Z"):
    _PAULI_PRODUCT[("I", _p)] = (1.0, _p)
    _PAULI_PRODUCT[(_p, "I")] = (1.0, _p)
    _PAULI_PRODUCT[(_p, _p)] = (1.0, "I")
for _a, _b, _c in (("X", "Y", "Z"), ("Y", "Z", "X"), ("Z", "X", "Y")):
    _PAULI_PRODUCT[(_a, _b)] = (1j, _c)
    _PAULI_PRODUCT[(_b, _a)] = (-1j, _c)

_MATRICES = {
    "I": np.eye(2, dtype=complex),
    "X": np.array([[0, 1], [1, 0]], dtype=complex),
    "Y": np.array([[0, -1j], [1j, 0]], dtype=complex),
    "Z": np.array([[1, 0], [0, -1]], dtype=complex),
    "+": np.array([[0, 1], [0, 0]], dtype=complex),
    "-": np.array([[0, 0], [1, 0]], dtype=complex),
    "N": np.array([[0, 0], [0, 1]], dtype=complex),
}


class PauliError(ValueError):
    """An invalid operator, site index or model specification."""


def multiply_site(a: str, b: str) -> tuple[complex, str]:
    """Product of two Pauli matrices (``I``, ``X``, ``Y``, ``Z``) on one site: a*b = phase * op."""
    return _PAULI_PRODUCT[(a, b)]


@dataclass(frozen=True)
class PauliTerm:
    """``coefficient * prod(op on site)`` with ``ops = ((op, site), ...)`` multiplied in order."""

    coefficient: complex
    ops: tuple[tuple[str, int], ...] = ()

    def __post_init__(self) -> None:
        for op, site in self.ops:
            if op not in ALL_OPS:
                raise PauliError(f"unknown single-site operator {op!r}; expected one of {ALL_OPS}")
            if int(site) != site or site < 0:
                raise PauliError(f"site index must be a non-negative integer, got {site!r}")

    @property
    def sites(self) -> tuple[int, ...]:
        return tuple(sorted({int(site) for _, site in self.ops}))

    def expand(self) -> list[PauliTerm]:
        """Canonical Pauli strings whose sum equals this term (same-site products reduced)."""
        if all(op in PAULI_OPS for op, _ in self.ops):  # one string: reduce it site by site
            coef, string = complex(self.coefficient), {}
            for op, site in self.ops:
                phase, prod = multiply_site(string.get(site, "I"), op)
                string[site] = prod
                coef = coef * 1.0 * phase  # the arithmetic of the general case below
            return [PauliTerm(coef, tuple((p, s) for s, p in sorted(string.items()) if p != "I"))]
        # Distribute over the Pauli expansions of +, -, N; then reduce each product per site.
        partial: list[tuple[complex, dict[int, str]]] = [(complex(self.coefficient), {})]
        for op, site in self.ops:
            new: list[tuple[complex, dict[int, str]]] = []
            for coef, string in partial:
                for c, pauli in _EXPANSION[op]:
                    phase, prod = multiply_site(string.get(site, "I"), pauli)
                    updated = dict(string)
                    updated[site] = prod
                    new.append((coef * c * phase, updated))
            partial = new
        out = []
        for coef, string in partial:
            ops = tuple((p, s) for s, p in sorted(string.items()) if p != "I")
            out.append(PauliTerm(coef, ops))
        return out

    def key(self) -> tuple[tuple[str, int], ...]:
        return self.ops


@dataclass
class PauliSum:
    """A Hamiltonian (or observable) ``sum_t c_t P_t`` on ``n_sites`` spins-1/2."""

    terms: list[PauliTerm]
    n_sites: int

    def __post_init__(self) -> None:
        self.terms = list(self.terms)
        for term in self.terms:
            for _, site in term.ops:
                if site >= self.n_sites:
                    raise PauliError(f"site {site} out of range for {self.n_sites} sites")

    # --- algebra -------------------------------------------------------------------------
    def simplify(self, tol: float = 1e-12) -> PauliSum:
        """Canonical form: distinct X/Y/Z strings in site order, combined, |c| <= tol dropped."""
        acc: dict[tuple[tuple[str, int], ...], complex] = {}
        for term in self.terms:
            for t in term.expand():
                acc[t.ops] = acc.get(t.ops, 0.0) + t.coefficient
        keys = sorted(acc, key=lambda k: (len(k), [(s, p) for p, s in k]))
        terms = []
        for k in keys:
            c = complex(acc[k])
            c = complex(c.real if abs(c.real) > tol else 0.0, c.imag if abs(c.imag) > tol else 0.0)
            if c != 0:
                terms.append(PauliTerm(c, k))
        return PauliSum(terms, self.n_sites)

    def _check(self, other: PauliSum) -> int:
        if self.n_sites != other.n_sites:
            raise PauliError(f"sites differ: {self.n_sites} vs {other.n_sites}")
        return self.n_sites

    def __add__(self, other: PauliSum) -> PauliSum:
        return PauliSum(self.terms + other.terms, self._check(other))

    def __sub__(self, other: PauliSum) -> PauliSum:
        return self + (-1.0) * other

    def __neg__(self) -> PauliSum:
        return (-1.0) * self

    def __mul__(self, other: PauliSum | complex | float) -> PauliSum:
        if isinstance(other, PauliSum):
            n = self._check(other)
            return PauliSum(
                [
                    PauliTerm(a.coefficient * b.coefficient, a.ops + b.ops)
                    for a in self.terms
                    for b in other.terms
                ],
                n,
            )
        return PauliSum([PauliTerm(other * t.coefficient, t.ops) for t in self.terms], self.n_sites)

    def __rmul__(self, other: complex | float) -> PauliSum:
        return self * other

    def adjoint(self) -> PauliSum:
        """Hermitian conjugate: reversed products, conjugated coefficients, + <-> -."""
        swap = {"+": "-", "-": "+"}
        return PauliSum(
            [
                PauliTerm(
                    complex(t.coefficient).conjugate(),
                    tuple((swap.get(op, op), s) for op, s in reversed(t.ops)),
                )
                for t in self.terms
            ],
            self.n_sites,
        )

    def is_zero(self, tol: float = 1e-10) -> bool:
        return len(self.simplify(tol).terms) == 0

    def is_hermitian(self, tol: float = 1e-10) -> bool:
        """Canonical Pauli strings are Hermitian, so H is iff every coefficient is real."""
        return all(abs(complex(t.coefficient).imag) <= tol for t in self.simplify(tol).terms)

    def commutator(self, other: PauliSum) -> PauliSum:
        """[self, other] in canonical form."""
        return (self * other - other * self).simplify()

    def commutes_with(self, other: PauliSum, tol: float = 1e-10) -> bool:
        return self.commutator(other).is_zero(tol)

    def conserves_magnetization(self, tol: float = 1e-10) -> bool:
        """Exact check of [H, sum_i Z_i] = 0 (e.g. true for XXZ, false for TFIM)."""
        return self.commutes_with(total_z(self.n_sites), tol)

    def is_real(self, tol: float = 1e-12) -> bool:
        """All matrix elements in the Z basis real: each string's c * (-i)^(#Y) is real."""
        for t in self.simplify(tol).terms:
            n_y = sum(1 for op, _ in t.ops if op == "Y")
            if abs((complex(t.coefficient) * (-1j) ** n_y).imag) > tol:
                return False
        return True

    def to_dense(self) -> np.ndarray:
        """(2^N, 2^N) complex matrix by Kronecker products, site 0 most significant.

        Independent of the runtime's bit tricks; meant as a reference for small N (<= 12).
        """
        n = self.n_sites
        if n > 14:
            raise PauliError("to_dense is a reference for small systems (n_sites <= 14)")
        out = np.zeros((2**n, 2**n), dtype=complex)
        for t in self.terms:
            mats = [np.eye(2, dtype=complex) for _ in range(n)]
            for op, site in t.ops:
                mats[site] = mats[site] @ _MATRICES[op]
            full = np.ones((1, 1), dtype=complex)
            for m in mats:
                full = np.kron(full, m)
            out += t.coefficient * full
        return out

    def __repr__(self) -> str:
        body = " + ".join(
            f"({complex(t.coefficient):g})" + "".join(f"{op}{s}" for op, s in t.ops)
            for t in self.terms
        )
        return f"PauliSum(n_sites={self.n_sites}: {body or '0'})"


# --- constructors ------------------------------------------------------------------------
def pauli(op: str, site: int, n_sites: int, coefficient: complex = 1.0) -> PauliSum:
    """``coefficient * op[site]`` as a PauliSum."""
    return PauliSum([PauliTerm(coefficient, ((op, site),))], n_sites)


def total_z(n_sites: int) -> PauliSum:
    """sum_i Z_i (twice the total S^z)."""
    return PauliSum([PauliTerm(1.0, (("Z", i),)) for i in range(n_sites)], n_sites)


def _bonds(bonds: Iterable[Sequence[int]] | np.ndarray, n_sites: int) -> list[tuple[int, int]]:
    arr = np.asarray(list(bonds) if not isinstance(bonds, np.ndarray) else bonds, dtype=np.int64)
    if arr.size == 0:
        return []
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise PauliError(f"bonds must have shape (n_bonds, 2), got {arr.shape}")
    if (arr < 0).any() or (arr >= n_sites).any():
        raise PauliError("bond site index out of range")
    if (arr[:, 0] == arr[:, 1]).any():
        raise PauliError("a bond joins a site to itself")
    return [(int(i), int(j)) for i, j in arr]


def two_site(ops: Sequence[tuple[str, str, float]], bonds, n_sites: int) -> PauliSum:
    """sum over bonds (i, j) of sum_k c_k A_k[i] B_k[j] for ops = [(A, B, c), ...]."""
    terms = [PauliTerm(c, ((a, i), (b, j))) for i, j in _bonds(bonds, n_sites) for a, b, c in ops]
    return PauliSum(terms, n_sites)


def tfim(n_sites: int, bonds, g: float, J: float = 1.0) -> PauliSum:
    """Transverse-field Ising: H = -J sum_<ij> Z_i Z_j - g sum_i X_i."""
    h = two_site([("Z", "Z", -J)], bonds, n_sites)
    h = h + PauliSum([PauliTerm(-g, (("X", i),)) for i in range(n_sites)], n_sites)
    return h.simplify()


def xxz(n_sites: int, bonds, delta: float, J: float = 1.0) -> PauliSum:
    """XXZ: H = J sum_<ij> (X_i X_j + Y_i Y_j + delta Z_i Z_j) (Pauli units)."""
    return two_site(
        [("X", "X", J), ("Y", "Y", J), ("Z", "Z", J * delta)], bonds, n_sites
    ).simplify()


def heisenberg(n_sites: int, bonds, J: float = 1.0) -> PauliSum:
    """Heisenberg: H = J sum_<ij> sigma_i . sigma_j (= 4 J sum S_i . S_j)."""
    return xxz(n_sites, bonds, 1.0, J)


def j1j2(n_sites: int, bonds1, bonds2, J2: float, J1: float = 1.0) -> PauliSum:
    """J1-J2 Heisenberg: J1 sum_<ij> sigma.sigma + J2 sum_<<ij>> sigma.sigma."""
    return (heisenberg(n_sites, bonds1, J1) + heisenberg(n_sites, bonds2, J2)).simplify()


def sublattice_rotation(h: PauliSum, sublattice: Sequence[bool] | np.ndarray) -> PauliSum:
    """U H U^dag with U = prod_{i in A} Z_i: X, Y -> -X, -Y on sublattice A.

    On a bipartite lattice this maps the Heisenberg/XXZ model to one with a positive ground state
    (Marshall sign rule absorbed into the basis): psi_rotated(s) = (-1)^(N_up on A) psi(s) up to a
    global sign.
    """
    mask = np.asarray(sublattice, dtype=bool)
    if mask.shape != (h.n_sites,):
        raise PauliError(f"sublattice mask must have shape ({h.n_sites},)")
    out = []
    for t in h.simplify().terms:
        flips = sum(1 for op, s in t.ops if op in ("X", "Y") and mask[s])
        out.append(PauliTerm(t.coefficient * (-1) ** flips, t.ops))
    return PauliSum(out, h.n_sites)
