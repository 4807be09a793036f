"""Small lattice helpers for the quantum runtime: bonds, translation tables, sublattices.

Sites are numbered row-major over ``shape`` (as ``compiler.lattices.Lattice.coords``). A
translation table ``T`` of shape (G, N) acts on configurations as ``(T_g s)_i = s[T[g, i]]``,
i.e. ``s[:, T[g]]``; row 0 is the identity and the rows form a group (closed under composition),
which is what makes the symmetrised learners exactly invariant.
"""

from __future__ import annotations

from itertools import product

import numpy as np
import torch


def coords(shape: tuple[int, ...]) -> np.ndarray:
    """(N, d) integer coordinates, row-major."""
    grids = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    return np.stack([g.reshape(-1) for g in grids], axis=1)


def _index(c: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    return np.ravel_multi_index(tuple((c % np.asarray(shape)).T), shape)


def periodic_bonds(shape: tuple[int, ...], offsets: list[tuple[int, ...]]) -> np.ndarray:
    """(n_bonds, 2) bonds {(x, x + o)} on a periodic lattice, each unordered pair once.

    Duplicate pairs (extent-2 wraps) are kept once here, unlike the classical convention, since a
    doubled quantum bond is just a doubled coupling; pass the bonds you want explicitly otherwise.
    """
    c = coords(shape)
    src = np.arange(len(c))
    pairs = set()
    for o in offsets:
        dst = _index(c + np.asarray(o), shape)
        for i, j in zip(src, dst):
            if i != j:
                pairs.add((min(i, j), max(i, j)))
    return np.array(sorted(pairs), dtype=np.int64).reshape(-1, 2)


def nearest_bonds(shape: tuple[int, ...]) -> np.ndarray:
    """Nearest-neighbour bonds of a periodic chain / square / cubic lattice."""
    d = len(shape)
    return periodic_bonds(shape, [tuple(int(k == a) for k in range(d)) for a in range(d)])


def diagonal_bonds(shape: tuple[int, ...]) -> np.ndarray:
    """Next-nearest (diagonal) bonds of a periodic square lattice (J2 of the J1-J2 model)."""
    if len(shape) != 2:
        raise ValueError("diagonal bonds are defined for 2D lattices")
    return periodic_bonds(shape, [(1, 1), (1, -1)])


def translation_table(shape: tuple[int, ...]) -> torch.Tensor:
    """(G = N, N) long: T[g, i] = index of site x_i + t_g, for all lattice translations t_g."""
    c = coords(shape)
    rows = [_index(c + np.asarray(t), shape) for t in product(*[range(n) for n in shape])]
    return torch.as_tensor(np.stack(rows), dtype=torch.long)


def sublattice(shape: tuple[int, ...]) -> torch.Tensor:
    """(N,) bool: the A sublattice (even coordinate sum) of a bipartite hypercubic lattice."""
    if any(n % 2 for n in shape):
        raise ValueError("a periodic hypercubic lattice is bipartite only for even extents")
    return torch.as_tensor(coords(shape).sum(axis=1) % 2 == 0)


def inverse_table(table: torch.Tensor) -> torch.Tensor:
    """(G, N) inverse permutations: s[:, inv[g]] undoes s[:, T[g]]."""
    return torch.argsort(table, dim=1)
