"""Lattice helpers of the quantum runtime as tensors: bonds, translation tables, sublattices.

The geometry is derived in ``compiler/geometry.py`` (numpy); these wrap its tables as tensors. A
translation table ``T`` of shape (G, N) acts on configurations as ``s[:, T[g]]``.
"""

from __future__ import annotations

import torch

from physml_lang.compiler import geometry
from physml_lang.compiler.geometry import coords, diagonal_bonds, nearest_bonds, periodic_bonds


def translation_table(shape: tuple[int, ...]) -> torch.Tensor:
    """(G = N, N) long: T[g, i] = index of site x_i + t_g, for all lattice translations t_g."""
    return torch.as_tensor(geometry.translation_table(shape), dtype=torch.long,
                           device="cpu")


def sublattice(shape: tuple[int, ...]) -> torch.Tensor:
    """(N,) bool: the A sublattice (even coordinate sum) of a bipartite hypercubic lattice."""
    return torch.as_tensor(geometry.sublattice(shape), device="cpu")


def inverse_table(table: torch.Tensor) -> torch.Tensor:
    """(G, N) inverse permutations: s[:, inv[g]] undoes s[:, T[g]]."""
    return torch.argsort(table, dim=1)


__all__ = ["coords", "diagonal_bonds", "inverse_table", "nearest_bonds", "periodic_bonds",
           "sublattice", "translation_table"]  # fmt: skip
