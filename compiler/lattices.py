"""Lattice geometry: sites, neighbour shells, neighbour tables, and the lattice registry.

Sites of a d-dimensional lattice are stored as tensors of shape (batch, L_1, ..., L_d) so that a
translation is a ``torch.roll``; a complete graph's sites as (batch, N). Bonds of a shell are
given by their *half* offset list: the bond set is {(x, x + o) : x a site, o in offsets}, each
unordered bond counted once (on a periodic lattice of extent 2 a bond and its wrap-around are two
bonds, as in the usual convention).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import product

import numpy as np
import torch

from physml_lang.catalogue.lattices import LATTICES

Offset = tuple[int, ...]


@dataclass(frozen=True)
class Lattice:
    """A lattice (or complete graph) with its neighbour shells.

    ``shells[k]`` is the half offset list of the k-th neighbour shell (k = 1, 2).
    """

    kind: str
    shape: tuple[int, ...]
    periodic: tuple[bool, ...]
    shells: dict[int, tuple[Offset, ...]] = field(default_factory=dict)
    complete: bool = False

    @property
    def dim(self) -> int:
        return len(self.shape)

    @property
    def n_sites(self) -> int:
        return int(np.prod(self.shape))

    @property
    def all_periodic(self) -> bool:
        return all(self.periodic)

    def n_bonds(self, shell: int = 1) -> int:
        if self.complete:
            n = self.n_sites
            return n * (n - 1) // 2
        return sum(self.bond_mask(o).sum() for o in self.shells[shell]).item()

    def coords(self) -> np.ndarray:
        """(N, d) integer coordinates in row-major (flattened) site order."""
        grids = np.meshgrid(*[np.arange(n) for n in self.shape], indexing="ij")
        return np.stack([g.reshape(-1) for g in grids], axis=1)

    def neighbour_table(self, offset: Offset) -> tuple[torch.Tensor, torch.Tensor]:
        """Flat index of x + offset for every site x, and whether that site exists.

        Returns (index (N,) int64, valid (N,) bool); invalid entries point at site 0.
        """
        c = self.coords() + np.asarray(offset)[None, :]
        valid = np.ones(len(c), dtype=bool)
        for axis, (n, per) in enumerate(zip(self.shape, self.periodic)):
            if per:
                c[:, axis] %= n
            else:
                valid &= (c[:, axis] >= 0) & (c[:, axis] < n)
                c[:, axis] = np.clip(c[:, axis], 0, n - 1)
        index = np.ravel_multi_index(tuple(c.T), self.shape)
        index[~valid] = 0
        return torch.as_tensor(index, dtype=torch.long), torch.as_tensor(valid)

    def bond_mask(self, offset: Offset) -> torch.Tensor:
        """(N,) bool: does the bond (x, x + offset) exist?"""
        return self.neighbour_table(offset)[1]

    def linear_colouring(self, offsets: list[Offset], max_colours: int = 12) -> torch.Tensor | None:
        """A periodic colouring with no two interacting sites of one colour.

        Interacting sites differ by one of ``offsets`` (either sign). Tries, by increasing number
        of colours, c(x) = (a . x) mod k and products (a . x mod k1, b . x mod k2) (e.g. the
        4-colouring of the king's graph); each must be consistent across periodic boundaries
        (a_i L_i = 0 mod k). Returns the (N,) colour of every site, or None.
        """
        offsets = [o for o in offsets if any(o)]
        if not offsets:
            return torch.zeros(self.n_sites, dtype=torch.long)
        coords = self.coords()
        for total in range(2, max_colours + 1):
            for k1 in range(2, total + 1):
                if total % k1:
                    continue
                k2 = total // k1
                for a in self._periodic_vectors(k1):
                    if k2 == 1:
                        if all(np.dot(a, o) % k1 for o in offsets):
                            return torch.as_tensor((coords @ a) % k1, dtype=torch.long)
                        continue
                    if k2 < 2:
                        continue
                    for b in self._periodic_vectors(k2):
                        if all(np.dot(a, o) % k1 or np.dot(b, o) % k2 for o in offsets):
                            c = (coords @ a) % k1 + k1 * ((coords @ b) % k2)
                            return torch.as_tensor(c, dtype=torch.long)
        return None

    def _periodic_vectors(self, k: int):
        """Integer vectors a (mod k) with a_i L_i = 0 mod k on every periodic axis."""
        for a in product(range(k), repeat=self.dim):
            if any(per and (ai * n) % k for ai, n, per in zip(a, self.shape, self.periodic)):
                continue
            yield np.asarray(a)

    def greedy_colouring(
        self, offsets: list[Offset], max_sites: int = 200_000
    ) -> torch.Tensor | None:
        """Greedy colouring of the interaction graph, for lattices with no linear colouring.

        Compile-time only (a loop over sites); None for very large lattices.
        """
        if self.n_sites > max_sites:
            return None
        tables = []
        for o in offsets:
            for sign in (1, -1):
                idx, valid = self.neighbour_table(tuple(sign * x for x in o))
                tables.append((idx.numpy(), valid.numpy()))
        colours = -np.ones(self.n_sites, dtype=np.int64)
        for x in range(self.n_sites):
            used = {colours[idx[x]] for idx, valid in tables if valid[x] and idx[x] != x}
            c = 0
            while c in used:
                c += 1
            colours[x] = c
        return torch.as_tensor(colours)


# ---------------------------------------------------------------- construction


def make_lattice(kind: str, sizes: list[int] | tuple[int, ...],
                 boundary: str | tuple[bool, ...] = "periodic") -> Lattice:  # fmt: skip
    """A lattice of the catalogue; ``sizes`` has one entry (used for every axis) or d entries;
    ``boundary`` is "periodic", "open", or whether each axis is periodic."""
    spec = LATTICES[kind]
    sizes = tuple(sizes) * spec.dim if len(sizes) == 1 else tuple(sizes)
    periodic = (boundary == "periodic",) * len(sizes) if isinstance(boundary, str) else boundary
    return Lattice(kind, sizes, tuple(periodic), dict(spec.shells))


def make_complete_graph(n: int) -> Lattice:
    return Lattice("complete", (n,), (False,), {}, complete=True)
