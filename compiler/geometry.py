"""Lattice geometry: sites, neighbour shells, neighbour tables, colourings, translations.

Pure numpy (no torch: ``physml check`` derives geometry without loading it); the lowering turns
these tables into tensors on the run's device. Sites of a d-dimensional lattice are numbered
row-major over (L_1, ..., L_d), matching states of shape (batch, L_1, ..., L_d) so that a
translation is a roll; a complete graph's sites as (batch, N). Bonds of a shell are
given by their *half* offset list: the bond set is {(x, x + o) : x a site, o in offsets}, each
unordered bond counted once (on a periodic lattice of extent 2 a bond and its wrap-around are two
bonds, as in the usual convention).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import product

import numpy as np

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
        return int(sum(self.bond_mask(o).sum() for o in self.shells[shell]))

    def coords(self) -> np.ndarray:
        """(N, d) integer coordinates in row-major (flattened) site order."""
        return coords(self.shape)

    def neighbour_table(self, offset: Offset) -> tuple[np.ndarray, np.ndarray]:
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
        return index.astype(np.int64), valid

    def bond_mask(self, offset: Offset) -> np.ndarray:
        """(N,) bool: does the bond (x, x + offset) exist?"""
        return self.neighbour_table(offset)[1]

    def linear_colouring(self, offsets: list[Offset], max_colours: int = 12) -> np.ndarray | None:
        """A periodic colouring with no two interacting sites of one colour.

        Interacting sites differ by one of ``offsets`` (either sign). Tries, by increasing number
        of colours, c(x) = (a . x) mod k and products (a . x mod k1, b . x mod k2) (e.g. the
        4-colouring of the king's graph); each must be consistent across periodic boundaries
        (a_i L_i = 0 mod k). Returns the (N,) colour of every site, or None.
        """
        offsets = [o for o in offsets if any(o)]
        if not offsets:
            return np.zeros(self.n_sites, dtype=np.int64)
        coords = self.coords()
        for total in range(2, max_colours + 1):
            for k1 in range(2, total + 1):
                if total % k1:
                    continue
                k2 = total // k1
                for a in self._periodic_vectors(k1):
                    if k2 == 1:
                        if all(np.dot(a, o) % k1 for o in offsets):
                            return ((coords @ a) % k1).astype(np.int64)
                        continue
                    if k2 < 2:
                        continue
                    for b in self._periodic_vectors(k2):
                        if all(np.dot(a, o) % k1 or np.dot(b, o) % k2 for o in offsets):
                            c = (coords @ a) % k1 + k1 * ((coords @ b) % k2)
                            return c.astype(np.int64)
        return None

    def _periodic_vectors(self, k: int):
        """Integer vectors a (mod k) with a_i L_i = 0 mod k on every periodic axis."""
        for a in product(range(k), repeat=self.dim):
            if any(per and (ai * n) % k for ai, n, per in zip(a, self.shape, self.periodic)):
                continue
            yield np.asarray(a)

    def greedy_colouring(
        self, offsets: list[Offset], max_sites: int = 200_000
    ) -> np.ndarray | None:
        """Greedy colouring of the interaction graph, for lattices with no linear colouring.

        Compile-time only (a loop over sites); None for very large lattices.
        """
        if self.n_sites > max_sites:
            return None
        tables = []
        for o in offsets:
            for sign in (1, -1):
                idx, valid = self.neighbour_table(tuple(sign * x for x in o))
                tables.append((idx, valid))
        colours = -np.ones(self.n_sites, dtype=np.int64)
        for x in range(self.n_sites):
            used = {colours[idx[x]] for idx, valid in tables if valid[x] and idx[x] != x}
            c = 0
            while c in used:
                c += 1
            colours[x] = c
        return colours


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


# Periodic hypercubic lattices as sets of sites: bonds, translations and sublattices (for qubit
# models and symmetric learners).
# --------------------------------------------------------------------------------------------

def coords(shape: tuple[int, ...]) -> np.ndarray:
    """(N, d) integer coordinates, row-major."""
    grids = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    return np.stack([g.reshape(-1) for g in grids], axis=1)


def _wrapped_index(c: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
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
        dst = _wrapped_index(c + np.asarray(o), shape)
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


def translation_table(shape: tuple[int, ...]) -> np.ndarray:
    """(G = N, N) int64: T[g, i] = index of site x_i + t_g, for all lattice translations t_g.

    Acts on configurations as (T_g s)_i = s[T[g, i]]; row 0 is the identity and the rows form a
    group, which is what makes symmetrised learners exactly invariant."""
    c = coords(shape)
    rows = [_wrapped_index(c + np.asarray(t), shape) for t in product(*[range(n) for n in shape])]
    return np.stack(rows).astype(np.int64)


def sublattice(shape: tuple[int, ...]) -> np.ndarray:
    """(N,) bool: the A sublattice (even coordinate sum) of a bipartite hypercubic lattice."""
    if any(n % 2 for n in shape):
        raise ValueError("a periodic hypercubic lattice is bipartite only for even extents")
    return coords(shape).sum(axis=1) % 2 == 0
