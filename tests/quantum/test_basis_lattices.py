"""Qubit models and learners on lattices with a basis and on graphs from edge lists: the
Hamiltonian's bonds from the geometry against an independent Cartesian construction (exact
diagonalisation), learners whose symmetry group is the geometry's translations by whole cells,
and a short VMC run against the exact ground state (slow).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.sparse as sps
import scipy.sparse.linalg as sla
import torch

import physml_lang
from physml_lang.catalogue.lattices import LATTICES
from physml_lang.compiler.geometry import make_lattice
from physml_lang.runtime.quantum.learners import (
    AutoregressiveGRU,
    ConvNet,
    SymmetrizedAutoregressive,
)
from physml_lang.runtime.quantum.operator import LocalOperator

HONEYCOMB = """
model H(L1: int = 3, L2: int = 2, J: real = 1.0) {
    lattice honeycomb(L1, L2, boundary = periodic)
    field s: qubit on sites
    hamiltonian H = J * sum(X[i] * X[j] + Y[i] * Y[j] + Z[i] * Z[j] for (i, j) in bonds)
    symmetry translation, spin_flip
    conserve sum(Z[i] for i in sites)
}
learner psi = cnn(channels = [8, 8], kernel_size = 3, sign_rule = marshall) respecting translation, spin_flip
run exact {
    exact levels = 1, sector = 0
    measure energy, staggered_magnetization
}
run vmc {
    learner psi
    sampler metropolis(chains = 64, sweeps = 0.5, move = exchange, magnetization = 0)
    optimize psi via sr(lr = 0.03, diag_shift = 0.05)
    iterations 200
    samples 512, final = 8000
    measure energy
}
"""


def cartesian_bonds(kind: str, cells: tuple[int, int]) -> list[tuple[int, int]]:
    """Nearest-neighbour bonds from positions alone (every periodic image at that distance)."""
    spec = LATTICES[kind]
    V, B = np.array(spec.vectors), np.array(spec.basis) @ np.array(spec.vectors)
    sites = [np.array(n) @ V + B[b] for n in itertools.product(*map(range, cells))
             for b in range(len(B))]  # fmt: skip
    r = min(np.linalg.norm(B[b] - B[0] + np.array(o) @ V) for b in range(len(B))
            for o in itertools.product((-1, 0, 1), repeat=2) if b or any(o))  # fmt: skip
    images = [np.array(k) * np.array(cells) @ V for k in itertools.product((-1, 0, 1), repeat=2)]
    return [(i, j) for i, j in itertools.combinations(range(len(sites)), 2) for shift in images
            if abs(np.linalg.norm(sites[j] + shift - sites[i]) - r) < 1e-9]  # fmt: skip


def heisenberg_ground_energy(n: int, bonds: list[tuple[int, int]]) -> float:
    paulis = [sps.csr_matrix(m) for m in ([[0, 1], [1, 0]], [[0, -1j], [1j, 0]], [[1, 0], [0, -1]])]

    def at(p, i):
        return sps.kron(sps.kron(sps.identity(2**i), p), sps.identity(2 ** (n - i - 1)), "csr")

    H = sum(at(p, i) @ at(p, j) for i, j in bonds for p in paulis)
    return float(sla.eigsh(H, k=1, which="SA")[0][0])


def test_honeycomb_heisenberg_exact_against_an_independent_hamiltonian():
    program = physml_lang.compile(HONEYCOMB)
    row = program.run("exact").rows[0]
    reference = heisenberg_ground_energy(12, cartesian_bonds("honeycomb", (3, 2)))
    assert abs(row["energy"]["mean"] - reference) < 1e-8
    assert abs(reference - (-27.7234459531)) < 1e-8
    # the Marshall sublattice of a bipartite lattice with a basis is the A sublattice
    qm = program.model()
    assert qm.sublattice().tolist() == [True, False] * 6


@pytest.mark.parametrize("kind, cells", [("honeycomb", (3, 2)), ("kagome", (2, 2))])
@pytest.mark.parametrize("flip", [False, True])
def test_cnn_over_cells_is_invariant_under_the_lattice_translations(kind, cells, flip):
    lat = make_lattice(kind, cells)
    table = torch.as_tensor(lat.translations())
    g = torch.Generator().manual_seed(5)
    m = ConvNet(cells, channels=(4, 4), spin_flip=flip, generator=g, basis=lat.basis)
    with torch.no_grad():
        for layer in m.layers:
            if layer.bias is not None:
                layer.bias.normal_(generator=g)
    s = torch.where(torch.rand(32, lat.n_sites, generator=g) < 0.5, -1.0, 1.0).double()
    out = m(s)
    for t in table:
        torch.testing.assert_close(m(s[:, t]), out)
    if flip:
        torch.testing.assert_close(m(-s), out)
    # a permutation that is no translation (swap the sublattices of one cell) changes it
    swap = torch.arange(lat.n_sites)
    swap[[0, 1]] = swap[[1, 0]]
    assert float((m(s[:, swap]) - out).detach().abs().max()) > 1e-6


def test_autoregressive_over_unit_cells_symmetrised_by_cell_translations():
    lat = make_lattice("kagome", (2, 1))  # 6 sites, cells of 3
    table = torch.as_tensor(lat.translations())
    g = torch.Generator().manual_seed(11)
    base = AutoregressiveGRU(6, hidden=8, cell_size=lat.basis, generator=g)
    m = SymmetrizedAutoregressive(base, table)
    s = LocalOperator.codes_to_configs(torch.arange(64), 6)
    lp = m(s)
    assert abs(float(torch.exp(2 * lp).sum()) - 1.0) < 1e-10
    for t in table:
        torch.testing.assert_close(m(s[:, t]), lp)


def test_quantum_models_on_an_edge_list_graph(tmp_path):
    """A 6-site ring given as an edge list equals the periodic chain."""
    (tmp_path / "ring.csv").write_text("".join(f"{i}, {(i + 1) % 6}\n" for i in range(6)))
    text = """
    model R(J: real = 1.0) {
        GEOMETRY
        field s: qubit on sites
        hamiltonian H = J * sum(X[i] * X[j] + Y[i] * Y[j] + Z[i] * Z[j] for (i, j) in bonds)
    }
    run exact { exact levels = 1 }
    """
    path = tmp_path / "ring.phys"
    energies = []
    for geometry in ('graph edges("ring.csv")', "lattice chain(6, boundary = periodic)"):
        path.write_text(text.replace("GEOMETRY", geometry))
        energies.append(physml_lang.compile(path).run().rows[0]["energy"]["mean"])
    assert abs(energies[0] - energies[1]) < 1e-9
    assert abs(energies[0] - heisenberg_ground_energy(6, [(i, (i + 1) % 6) for i in range(6)])) < 1e-9


@pytest.mark.slow
def test_honeycomb_vmc_with_a_cell_cnn_reaches_the_exact_energy():
    row = physml_lang.compile(HONEYCOMB).run("vmc", seed=0).rows[0]
    assert row["relative_error"] < 1e-3, row
