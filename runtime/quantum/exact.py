"""Exact diagonalisation of qubit models: the lowest levels by Lanczos over magnetisation
sectors, expectation values in an exact state, and the reference energy of a vmc run.

A state psi is a vector over a sorted basis of codes (integers whose bits are the spins, see
``LocalOperator.codes_to_configs``): the whole 2^N space, or one sector sum(Z) = m.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from physml_lang.compiler.derive.pauli import PauliSum
from physml_lang.compiler.models.quantum import QuantumModel

from ..plans.quantum import sector_dim, sectors
from .operator import LocalOperator

AUTO_REFERENCE_DIM = 2**16  # VMC runs compute the exact energy themselves below this


@dataclass
class Spectrum:
    """The lowest levels (ascending, with the sector of each) and the ground state."""

    energies: list[float]
    sectors: list[int | None]
    ground: np.ndarray  # ground-state vector in the basis of codes
    codes: np.ndarray  # (dim,) sorted basis indices of the ground state's sector


def exact_spectrum(qm: QuantumModel, levels: int, sectors: list[int | None]) -> Spectrum:
    """Lowest ``levels`` energies over the magnetisation sectors sum(Z) = m (None: the whole
    space), Lanczos per sector, merged."""
    op = LocalOperator(qm.hamiltonian)
    found: list[tuple[float, int | None, int]] = []
    vectors = {}
    for m in sectors:  # one Lanczos per magnetisation sector
        dim = sector_dim(qm.n_sites, m)
        k = min(levels, dim)
        if dim > 64 and k >= dim - 1:
            k = dim - 2
        w, v = op.exact_ground_state(k=max(k, 1), magnetization=m)
        vectors[m] = v[:, 0]
        found += [(float(e), m, j) for j, e in enumerate(w)]
    found.sort(key=lambda x: x[0])
    found = found[:levels]
    m0 = found[0][1]
    return Spectrum([f[0] for f in found], [f[1] for f in found], vectors[m0],
                    op.sector_codes(m0))  # fmt: skip


def exact_expectation(h: PauliSum, codes: np.ndarray, psi: np.ndarray, chunk: int = 1 << 15):
    """<psi|O|psi> for psi on the sorted basis ``codes`` (zero elsewhere), batched over rows."""
    op = LocalOperator(h)
    n = h.n_sites
    num = 0j
    masks = op.mask_codes.cpu().numpy()
    for start in range(0, len(codes), chunk):
        c = codes[start : start + chunk]
        s = LocalOperator.codes_to_configs(torch.as_tensor(c, device=op.device), n)
        mels = op.matrix_elements(s).cpu().numpy()  # (M, K)
        cols = c[:, None] ^ masks[None, :]
        idx = np.clip(np.searchsorted(codes, cols), 0, len(codes) - 1)
        psi_col = np.where(codes[idx] == cols, psi[idx], 0.0)
        num += np.sum(np.conj(psi[start : start + chunk])[:, None] * mels * psi_col)
    return complex(num / np.vdot(psi, psi))


def reference_energy(reference: float | str, qm: QuantumModel,
                     sector: int | None) -> tuple[float | None, str]:  # fmt: skip
    """The reference energy of a vmc run and how it was found: given (a number), none, or
    exact (Lanczos in the sampler's sector; ``auto``: when that sector has at most
    AUTO_REFERENCE_DIM states)."""
    if isinstance(reference, float):
        return reference, "given"
    if reference == "none":
        return None, "none"
    space = sectors(qm, sector, None)
    dim = max(sector_dim(qm.n_sites, m) for m in space)
    if reference == "auto" and dim > AUTO_REFERENCE_DIM:
        return None, "none"
    spec = exact_spectrum(qm, 1, space)
    return spec.energies[0], "exact" + (f" (sector sum(Z) = {sector})" if sector is not None
                                        else "")  # fmt: skip


__all__ = ["AUTO_REFERENCE_DIM", "Spectrum", "exact_expectation", "exact_spectrum",
           "reference_energy"]  # fmt: skip
