"""Lattice geometry, derived once for every sampler, learner, symmetry check and kernel:
sites, bonds by shell and type, neighbour tables, colourings, translations, sublattices.

Pure numpy (no torch: ``physml check`` derives geometry without loading it); the lowering turns
these tables into tensors on the run's device. A Bravais lattice with a basis has unit cells
numbered row-major over (L_1, ..., L_d) and sites (cell, sublattice), matching states of shape
(batch, L_1, ..., L_d[, basis]) so that a translation is a roll over the cell axes; a graph's
sites as (batch, N). The bonds of a shell are given by their *bond types* (a, b, offset): the
bond set is {((n, a), (n + offset, b)) : n a cell}, each unordered bond counted once (on a
periodic lattice of extent 2 a bond and its wrap-around are two bonds, as in the usual
convention).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from itertools import product

import numpy as np

from physml_lang.catalogue.lattices import LATTICES

Offset = tuple[int, ...]


@dataclass(frozen=True)
class BondType:
    """Bonds from sublattice ``a`` of cell n to sublattice ``b`` of cell n + ``offset``."""

    a: int
    b: int
    offset: Offset


@dataclass(frozen=True)
class Lattice:
    """A Bravais lattice with a basis, a complete graph, or a graph given by its edges.

    ``cells``: unit cells along each primitive vector; ``basis``: sites per cell. A field's
    configurations have shape (B, *shape): ``shape`` is ``cells``, with a trailing axis of
    ``basis`` sites when a cell holds more than one, so site (n, b) has flat index
    ``ravel(n) * basis + b`` and a translation by cells is a roll over the cell axes.
    ``bond_types[k]``: the bonds of neighbour shell k, each unordered bond once. ``edge_list``:
    the (i, j) bonds of a graph read from a data file (``cells = (N,)``, no cell structure).
    """

    kind: str
    cells: tuple[int, ...]
    periodic: tuple[bool, ...]
    bond_types: dict[int, tuple[BondType, ...]] = field(default_factory=dict)
    complete: bool = False
    basis: int = 1
    edge_list: tuple[tuple[int, int], ...] | None = None

    @property
    def dim(self) -> int:
        return len(self.cells)

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape of one configuration of a field on the sites."""
        return self.cells if self.basis == 1 else (*self.cells, self.basis)

    @property
    def n_cells(self) -> int:
        return int(np.prod(self.cells))

    @property
    def n_sites(self) -> int:
        return self.n_cells * self.basis

    @property
    def graph(self) -> bool:
        """Sites are the vertices of a graph (complete or an edge list): no cells, no offsets."""
        return self.complete or self.edge_list is not None

    @property
    def shells(self) -> dict[int, tuple[Offset, ...]]:
        """Half offset lists of the neighbour shells of a one-site lattice (empty otherwise)."""
        if self.basis != 1 or self.graph:
            return {}
        return {k: tuple(t.offset for t in types) for k, types in self.bond_types.items()}

    @property
    def all_periodic(self) -> bool:
        return all(self.periodic)

    def n_bonds(self, shell: int = 1) -> int:
        if self.complete:
            n = self.n_sites
            return n * (n - 1) // 2
        if self.edge_list is not None:
            return len(self.edge_list)
        return int(sum(self.bond_mask(t.offset).sum() for t in self.bond_types[shell]))

    def coords(self) -> np.ndarray:
        """(n_cells, d) integer cell coordinates in row-major (flattened) order."""
        return coords(self.cells)

    def site_coords(self) -> np.ndarray:
        """(N, d) integer coordinates of every site's cell, in site order."""
        return np.repeat(self.coords(), self.basis, axis=0)

    def neighbour_table(self, offset: Offset) -> tuple[np.ndarray, np.ndarray]:
        """Flat cell index of n + offset for every cell n, and whether that cell exists.

        Returns (index (n_cells,) int64, valid (n_cells,) bool); invalid entries point at 0.
        On a one-site lattice cells are sites.
        """
        c = self.coords() + np.asarray(offset)[None, :]
        valid = np.ones(len(c), dtype=bool)
        for axis, (n, per) in enumerate(zip(self.cells, self.periodic)):
            if per:
                c[:, axis] %= n
            else:
                valid &= (c[:, axis] >= 0) & (c[:, axis] < n)
                c[:, axis] = np.clip(c[:, axis], 0, n - 1)
        index = np.ravel_multi_index(tuple(c.T), self.cells)
        index[~valid] = 0
        return index.astype(np.int64), valid

    def bond_mask(self, offset: Offset) -> np.ndarray:
        """(n_cells,) bool: does the cell n + offset exist?"""
        return self.neighbour_table(offset)[1]

    def site_table(self, bond: BondType) -> tuple[np.ndarray, np.ndarray]:
        """For every site x: the site at the other end of its bond of this type, and whether
        x has one (x on sublattice ``bond.a`` with cell n + offset inside the lattice).

        Returns (index (N,) int64, valid (N,) bool); invalid entries point at site 0."""
        idx, valid = self.neighbour_table(bond.offset)
        nb = self.basis
        index = np.zeros((self.n_cells, nb), dtype=np.int64)
        ok = np.zeros((self.n_cells, nb), dtype=bool)
        index[:, bond.a] = np.where(valid, idx * nb + bond.b, 0)
        ok[:, bond.a] = valid
        return index.reshape(-1), ok.reshape(-1)

    def reversed(self, bond: BondType) -> BondType:
        return BondType(bond.b, bond.a, tuple(-o for o in bond.offset))

    def bond_list(self, shell: int = 1) -> np.ndarray:
        """(n_bonds, 3) int64 rows (i, j, type): every bond of a shell, i its first end and
        ``type`` its index in ``bond_types[shell]`` (0 on graphs)."""
        if self.complete:
            i, j = np.triu_indices(self.n_sites, 1)
            return np.stack([i, j, np.zeros_like(i)], 1).astype(np.int64)
        if self.edge_list is not None:
            e = np.asarray(self.edge_list, dtype=np.int64).reshape(-1, 2)
            return np.concatenate([e, np.zeros((len(e), 1), np.int64)], 1)
        rows = []
        for k, t in enumerate(self.bond_types[shell]):
            idx, valid = self.site_table(t)
            src = np.nonzero(valid)[0]
            rows.append(np.stack([src, idx[src], np.full_like(src, k)], 1))
        return np.concatenate(rows).astype(np.int64) if rows else np.zeros((0, 3), np.int64)

    # ---------------------------------------------------------------- colourings
    def colouring(self, pairs: list[BondType]) -> np.ndarray | None:
        """(N,) colour of every site such that no two sites of one colour interact, where x on
        sublattice a interacts with the site of sublattice b in cell n + offset for every
        (a, b, offset) in ``pairs`` (either direction). Sublattice colours first, times a
        periodic linear colouring of the cells where sites of one sublattice interact; a
        greedy colouring of the interaction graph otherwise. None when none is found."""
        if self.graph:
            return self.greedy_colouring(pairs)
        same = sorted({t.offset for t in pairs if t.a == t.b and any(t.offset)})
        if any(t.a == t.b and not any(t.offset) for t in pairs):
            return None
        if self.basis == 1:
            cells = self.linear_colouring(same)
            return cells if cells is not None else self.greedy_colouring(pairs)
        cells = self.linear_colouring(same) if same else np.zeros(self.n_cells, np.int64)
        if cells is None:
            return self.greedy_colouring(pairs)
        return (cells[:, None] * self.basis + np.arange(self.basis)[None, :]).reshape(-1)

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

    def greedy_colouring(self, pairs: list[BondType],
                         max_sites: int = 200_000) -> np.ndarray | None:  # fmt: skip
        """Greedy colouring of the interaction graph (a graph's own bonds when it has no
        cells), for lattices with no sublattice-times-linear colouring.

        Compile-time only (a loop over sites); None for very large lattices or complete graphs.
        """
        if self.n_sites > max_sites or self.complete:
            return None
        if self.edge_list is not None:
            bonds = self.bond_list(1)[:, :2]
        else:
            rows = []
            for t in pairs:
                idx, valid = self.site_table(t)
                src = np.nonzero(valid)[0]
                rows.append(np.stack([src, idx[src]], 1))
            bonds = np.concatenate(rows) if rows else np.zeros((0, 2), np.int64)
        neighbours: list[set[int]] = [set() for _ in range(self.n_sites)]
        for i, j in bonds.tolist():
            if i != j:
                neighbours[i].add(j)
                neighbours[j].add(i)
        colours = -np.ones(self.n_sites, dtype=np.int64)
        for x in range(self.n_sites):
            used = {int(colours[y]) for y in neighbours[x]}
            c = 0
            while c in used:
                c += 1
            colours[x] = c
        return colours

    # ---------------------------------------------------------------- symmetry group
    def translations(self) -> np.ndarray:
        """(G = n_cells, N) int64: T[g, x] = the site x translated by cell vector t_g, on a
        periodic lattice; a translation moves whole cells and keeps the sublattice. Acts on
        configurations as (T_g s)_x = s[T[g, x]]; row 0 is the identity, rows form a group."""
        cells = translation_table(self.cells)
        nb = self.basis
        return (cells[:, :, None] * nb + np.arange(nb)[None, None, :]).reshape(len(cells), -1)

    def site_index(self, cell: tuple[int, ...], basis: int = 0) -> int | None:
        """The flat index of site (cell, sublattice); periodic axes wrap, None outside an
        open boundary."""
        c = list(cell)
        for axis, (n, per) in enumerate(zip(self.cells, self.periodic)):
            if per:
                c[axis] %= n
            elif not 0 <= c[axis] < n:
                return None
        return int(np.ravel_multi_index(tuple(c), self.cells)) * self.basis + basis

    def translation_generators(self) -> list[np.ndarray]:
        """(N,) permutations perm[x] = the site x moved by one cell along each axis."""
        T = self.translations()
        strides = np.cumprod((1, *self.cells[::-1]))[:-1][::-1]  # row-major index of e_a
        return [T[int(k)] for k in strides]

    def point_group_generators(self) -> list[np.ndarray] | None:
        """(N,) site permutations generating the point group of a periodic lattice: the
        reflection of a chain; in 2D the smallest rotation about the origin that maps the
        lattice (with its basis and its periodic boundary) onto itself, and one such
        reflection. Found from the primitive vectors and basis positions; None where no
        rotation is a symmetry (or in 3D and beyond)."""
        if self.graph or not self.all_periodic or self.dim > 2:
            return None
        if self.dim == 1:
            return [self._site_map(np.array([[-1.0]]))]
        gens = []
        for k in (6, 4, 3, 2):
            c, s = np.cos(2 * np.pi / k), np.sin(2 * np.pi / k)
            perm = self._site_map(np.array([[c, -s], [s, c]]))
            if perm is not None:
                gens.append(perm)
                break
        for angle in (0.0, np.pi / 2, np.pi / 6, np.pi / 3, np.pi / 4, 2 * np.pi / 3):
            c, s = np.cos(2 * angle), np.sin(2 * angle)  # the mirror line at ``angle``
            perm = self._site_map(np.array([[-c, -s], [-s, c]]))
            if perm is not None:
                gens.append(perm)
                break
        return gens if gens else None

    def _site_map(self, R: np.ndarray) -> np.ndarray | None:
        """perm[x] = the site at R r_x (Cartesian map R about the origin), or None when R does
        not map the periodic lattice onto itself."""
        spec = LATTICES[self.kind]
        V = np.asarray(spec.vectors)  # rows: primitive vectors
        basis = np.asarray(spec.basis) @ V
        inv = np.linalg.inv(V)
        periods = np.diag(self.cells).astype(float) @ V  # rows: L_a a_a
        images = periods @ R.T @ inv  # the periods mapped, in cell coordinates
        if not np.allclose(images, np.round(images), atol=1e-9):
            return None
        images = np.round(images).astype(np.int64)
        if (images % np.asarray(self.cells)[None, :]).any():
            return None  # the torus is not mapped onto itself
        cells = self.coords()
        out = np.empty(self.n_sites, dtype=np.int64)
        for b in range(self.basis):
            pos = (cells @ V + basis[b]) @ R.T
            for b2 in range(self.basis):
                frac = (pos - basis[b2]) @ inv
                whole = np.round(frac)
                if np.allclose(frac, whole, atol=1e-9):
                    n = whole.astype(np.int64) % np.asarray(self.cells)
                    out[cells_index(cells, self.cells) * self.basis + b] = (
                        np.ravel_multi_index(tuple(n.T), self.cells) * self.basis + b2)
                    break
            else:
                return None
        return out

    def bipartition(self) -> np.ndarray | None:
        """(N,) bool: the A sublattice of a bipartite nearest-neighbour graph (the colour
        class of site 0 in its 2-colouring), or None when not bipartite."""
        if self.complete:
            return None
        if self.edge_list is not None:
            return _two_colouring(self.n_sites, self.bond_list(1))
        colours = self.colouring(list(self.bond_types.get(1, ())))
        if colours is None or colours.max() != 1:
            return None
        return colours == colours[0]


def roll_arguments(offset: Offset, lead: int = 1) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(shifts, dims) such that roll(f, shifts, dims) holds f(x + offset) at every cell x of a
    periodic lattice, for arrays whose cell axes follow ``lead`` leading (batch) axes."""
    moved = [(-o, lead + a) for a, o in enumerate(offset) if o]
    return tuple(m[0] for m in moved), tuple(m[1] for m in moved)


def plaquette_planes(d: int) -> list[tuple[int, int]]:
    """The d(d-1)/2 lattice planes (mu, nu), mu < nu, in lexicographic order: the plaquettes of
    a hypercubic lattice are the unit squares (x, x + e_mu, x + e_mu + e_nu, x + e_nu)."""
    return [(mu, nu) for mu in range(d) for nu in range(mu + 1, d)]


def cells_index(cells: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Row-major flat index of integer cell coordinates (n, d)."""
    return np.ravel_multi_index(tuple(cells.T), shape)


def _two_colouring(n: int, bonds: np.ndarray) -> np.ndarray | None:
    """(n,) bool: the colour class of site 0 in each component's 2-colouring (breadth-first),
    or None when the graph has an odd cycle. Compile-time only."""
    neighbours: list[list[int]] = [[] for _ in range(n)]
    for i, j in bonds[:, :2].tolist():
        neighbours[i].append(j)
        neighbours[j].append(i)
    colour = -np.ones(n, dtype=np.int64)
    for start in range(n):
        if colour[start] >= 0:
            continue
        colour[start] = 0
        queue = [start]
        while queue:
            x = queue.pop()
            for y in neighbours[x]:
                if colour[y] < 0:
                    colour[y] = 1 - colour[x]
                    queue.append(y)
                elif colour[y] == colour[x]:
                    return None
    return colour == 0


# ---------------------------------------------------------------- construction


def make_lattice(kind: str, sizes: list[int] | tuple[int, ...],
                 boundary: str | tuple[bool, ...] = "periodic") -> Lattice:  # fmt: skip
    """A lattice of the catalogue; ``sizes`` (cells per axis) has one entry (used for every
    axis) or d entries; ``boundary`` is "periodic", "open", or whether each axis is periodic."""
    spec = LATTICES[kind]
    sizes = tuple(sizes) * spec.dim if len(sizes) == 1 else tuple(sizes)
    periodic = (boundary == "periodic",) * len(sizes) if isinstance(boundary, str) else boundary
    types = {k: tuple(BondType(a, b, tuple(o)) for a, b, o in shell)
             for k, shell in spec.bonds.items()}  # fmt: skip
    return Lattice(kind, sizes, tuple(periodic), types, basis=len(spec.basis))


def make_complete_graph(n: int) -> Lattice:
    return Lattice("complete", (n,), (False,), {}, complete=True)


def make_edge_graph(n: int, edges: list[tuple[int, int]] | tuple[tuple[int, int], ...]) -> Lattice:
    """A graph of ``n`` sites whose bonds are ``edges`` (i < j, each once)."""
    return Lattice("edges", (n,), (False,), {}, edge_list=tuple(map(tuple, edges)))


# Periodic hypercubic lattices given by their shape alone: bonds, translations and sublattices
# (for qubit operators and symmetric learners built without a model), read off a Lattice.
# --------------------------------------------------------------------------------------------

def coords(shape: tuple[int, ...]) -> np.ndarray:
    """(N, d) integer coordinates, row-major."""
    grids = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    return np.stack([g.reshape(-1) for g in grids], axis=1)


def _wrapped_index(c: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    return np.ravel_multi_index(tuple((c % np.asarray(shape)).T), shape)


def _periodic(shape: tuple[int, ...], offsets: list[tuple[int, ...]]) -> Lattice:
    types = tuple(BondType(0, 0, tuple(o)) for o in offsets)
    return Lattice("hypercubic", tuple(shape), (True,) * len(shape), {1: types})


def periodic_bonds(shape: tuple[int, ...], offsets: list[tuple[int, ...]]) -> np.ndarray:
    """(n_bonds, 2) bonds {(x, x + o)} on a periodic lattice, each unordered pair once, sorted.

    Duplicate pairs (extent-2 wraps) are kept once here, unlike the classical convention, since a
    doubled quantum bond is just a doubled coupling; pass the bonds you want explicitly otherwise.
    """
    bonds = _periodic(shape, offsets).bond_list(1)[:, :2]
    bonds = np.sort(bonds[bonds[:, 0] != bonds[:, 1]], axis=1)
    return np.unique(bonds, axis=0).astype(np.int64).reshape(-1, 2)


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
    d = len(shape)
    part = _periodic(shape, [tuple(int(k == a) for k in range(d)) for a in range(d)]).bipartition()
    if part is None:
        raise ValueError("a periodic hypercubic lattice is bipartite only for even extents")
    return part


# Colourings of link variables on periodic hypercubic lattices (lattice gauge theory)
# --------------------------------------------------------------------------------------------

def check_link_parity(shape: tuple[int, ...]) -> None:
    """The checkerboard link samplers colour U_mu(x) by (mu, parity of sum_{nu != mu} x_nu),
    which needs L_nu even for every nu != mu: ValueError otherwise."""
    d = len(shape)
    for mu in range(d):
        for nu in range(d):
            if nu != mu and shape[nu] % 2:
                raise ValueError(
                    f"parallel link updates need even extents orthogonal to each direction; "
                    f"L_{nu} = {shape[nu]} is odd")  # fmt: skip


@dataclass(frozen=True)
class Colouring:
    """Classes of sites updated in parallel: by the parity of w . y (``parity`` = w), by
    y mod p in every component (``modulus`` = p, p^d classes), or all at once (neither)."""

    parity: tuple[int, ...] | None = None
    modulus: int | None = None

    def masks(self, shape: tuple[int, ...]) -> list[np.ndarray]:
        """Boolean masks (L...) of the colour classes: two parity classes of w . y, p^d
        classes of y mod p, or one class."""
        c = coords(shape)
        w, p = self.parity, self.modulus
        if w is not None:
            par = (c @ np.asarray(w)).reshape(shape) % 2
            return [par == 0, par == 1]
        if p is None:
            return [np.ones(shape, dtype=bool)]
        cls = (c % p).reshape(*shape, len(shape))
        return [(cls == np.asarray(r)).all(-1) for r in itertools.product(range(p), repeat=len(shape))]


def local_colouring(offsets: set[Offset], shape: tuple[int, ...]) -> Colouring:
    """The cheapest colouring whose classes hold no two sites sharing a density location, given
    the stencil offsets of one variable kind (runtime/gauge/local.py explains the rule).
    ValueError when the lattice is too small or no colouring is found."""
    d = len(shape)
    red = {tuple(o[i] % shape[i] for i in range(d)) for o in offsets}
    if len(red) != len(offsets):
        raise ValueError(f"the lattice {'x'.join(map(str, shape))} is too small for the action's "
                         "stencil (a local term contains the same variable twice)")  # fmt: skip
    diffs = {tuple((a[i] - b[i]) % shape[i] for i in range(d)) for a in red for b in red}
    diffs.discard((0,) * d)
    for w in sorted(itertools.product((0, 1), repeat=d), key=sum):
        if not any(w) or any(w[i] and shape[i] % 2 for i in range(d)):
            continue
        # (w . y) mod 2 is well defined on the torus when L_i is even wherever w_i = 1
        if all(sum(w[i] * (dl[i] % shape[i]) for i in range(d)) % 2 == 1 for dl in diffs):
            return Colouring(parity=w)
    if not diffs:
        return Colouring()
    for p in (2, 3, 4):
        if any(n % p for n in shape):
            continue
        if all(any(dl[i] % p for i in range(d)) for dl in diffs):
            return Colouring(modulus=p)
    raise ValueError("no parallel colouring found for the action's stencil on the "
                     f"{'x'.join(map(str, shape))} lattice; use extents divisible by 2")  # fmt: skip


def link_colouring(shape: tuple[int, ...]) -> list[tuple[int, np.ndarray]]:
    """The 2d colours (mu, mask) of the links of the plaquette action; mask (L_1..L_d) bool
    selects x for U_mu(x): direction mu and the parity of sum_{nu != mu} x_nu (the staple
    sum of a link holds no other link of its colour). Requires L_nu even for every nu != mu."""
    check_link_parity(shape)  # ValueError for an odd extent
    c = coords(shape)
    colours = []
    for mu in range(len(shape)):
        parity = (c.sum(axis=1) - c[:, mu]).reshape(shape) % 2
        for p in (0, 1):
            colours.append((mu, parity == p))
    return colours
