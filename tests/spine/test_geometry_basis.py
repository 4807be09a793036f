"""Lattices with a basis, graphs from edge lists and spin-S domains, against references built
independently of the geometry: bonds found from Cartesian positions (every periodic image at
the nearest-neighbour distance), exact enumeration of every state, and samplers within 4
standard errors (binning analysis) at fixed seeds.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest
import torch

import physml_lang
from physml_lang.catalogue.lattices import LATTICES
from physml_lang.compiler.geometry import make_lattice

from .conftest import enumerate_states, exact_averages

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def cartesian_bonds(kind: str, cells: tuple[int, int], shell_distance: float,
                    periodic: tuple[bool, bool] = (True, True)) -> list[tuple]:  # fmt: skip
    """Bonds (i, j) of a lattice at a distance, from positions alone: site (n, b) has index
    ravel(n) * basis + b; every periodic image (along periodic axes) at that distance is one
    bond, so on small lattices a pair may be bonded more than once (the geometry's convention)."""
    spec = LATTICES[kind]
    V, B = np.array(spec.vectors), np.array(spec.basis) @ np.array(spec.vectors)
    nb = len(B)
    sites = [(np.array(n) @ V + B[b]) for n in itertools.product(*map(range, cells))
             for b in range(nb)]  # fmt: skip
    images = [np.array(k) * np.array(cells) @ V for k in itertools.product((-1, 0, 1), repeat=2)
              if all(p or not x for p, x in zip(periodic, k))]  # fmt: skip
    bonds = []
    for i, j in itertools.combinations(range(len(sites)), 2):
        for shift in images:
            if abs(np.linalg.norm(sites[j] + shift - sites[i]) - shell_distance) < 1e-9:
                bonds.append((i, j))
    return bonds


def test_catalogue_shells_are_the_distance_shells():
    """Every shell of every lattice is exactly the set of (a, b, offset) at the k-th distance."""
    for spec in LATTICES.values():
        V, B = np.array(spec.vectors), np.array(spec.basis) @ np.array(spec.vectors)
        d, nb = spec.dim, len(B)
        by_distance: dict[float, set] = {}
        for a, b in itertools.product(range(nb), repeat=2):
            for o in itertools.product(range(-3, 4), repeat=d):
                if a == b and not any(o):
                    continue
                r = round(float(np.linalg.norm(np.array(o) @ V + B[b] - B[a])), 6)
                by_distance.setdefault(r, set()).add((a, b, o))
        distances = sorted(by_distance)
        for k, types in spec.bonds.items():
            both = set(types) | {(b, a, tuple(-x for x in o)) for a, b, o in types}
            assert len(both) == 2 * len(types), (spec.name, k)
            assert both == by_distance[distances[k - 1]], (spec.name, k)


@pytest.mark.parametrize("kind, cells, shell, r", [("honeycomb", (3, 3), 1, 1 / math.sqrt(3)),
                                                   ("honeycomb", (3, 4), 2, 1.0),
                                                   ("kagome", (3, 3), 1, 0.5),
                                                   ("kagome", (4, 3), 2, math.sqrt(3) / 2),
                                                   ("triangular", (4, 3), 1, 1.0)])  # fmt: skip
def test_bonds_equal_the_cartesian_construction(kind, cells, shell, r):
    lat = make_lattice(kind, cells)
    got = sorted(tuple(sorted(b)) for b in lat.bond_list(shell)[:, :2].tolist())
    assert got == sorted(cartesian_bonds(kind, cells, r))


@pytest.mark.parametrize("kind", ["honeycomb", "kagome", "triangular"])
@pytest.mark.parametrize("periodic", [(True, False), (False, True), (False, False)])
def test_open_and_mixed_boundaries_per_axis(kind, periodic):
    """``boundary = [periodic, open]``: bonds across an open axis are dropped; the energy of
    the compiled model is the sum over the Cartesian bonds."""
    bc = ", ".join("periodic" if p else "open" for p in periodic)
    r = {"honeycomb": 1 / math.sqrt(3), "kagome": 0.5, "triangular": 1.0}[kind]
    text = (ISING.replace("KIND", kind).replace("CELLS", f"3, 4, boundary = [{bc}]")
            .replace("JVALUE", "1.0").replace("symmetry translation, ", "symmetry ")
            .split("run point")[0])  # fmt: skip
    cm = physml_lang.compile(text).model()
    assert cm.lattice.periodic == periodic
    bonds = np.array(cartesian_bonds(kind, (3, 4), r, periodic))
    g = torch.Generator().manual_seed(1)
    s = torch.where(torch.rand(16, cm.lattice.n_sites, generator=g) < 0.5, -1.0, 1.0)
    expected = -(s[:, bonds[:, 0]] * s[:, bonds[:, 1]]).sum(1)
    torch.testing.assert_close(cm.energy({"s": s.reshape(16, *cm.lattice.shape)}), expected)
    # local energies agree with energy differences of single flips
    fk = cm.fields["s"]
    state = {"s": s.reshape(16, *cm.lattice.shape)}
    delta = fk.flip_delta(state).reshape(16, -1)
    for x in range(cm.lattice.n_sites):
        flipped = s.clone()
        flipped[:, x] *= -1
        e = cm.energy({"s": flipped.reshape(16, *cm.lattice.shape)})
        torch.testing.assert_close(delta[:, x], e - expected)


@pytest.mark.parametrize("kind", ["honeycomb", "kagome", "triangular", "square"])
def test_colourings_are_proper_and_use_the_sublattices(kind):
    lat = make_lattice(kind, (6, 6))  # 3-colourings of the triangular lattice need L = 0 mod 3
    colours = lat.colouring(list(lat.bond_types[1]))
    b = lat.bond_list(1)
    assert (colours[b[:, 0]] != colours[b[:, 1]]).all()
    expected = {"honeycomb": 2, "kagome": 3, "triangular": 3, "square": 2}[kind]
    assert colours.max() + 1 == expected
    if kind == "honeycomb":  # the two sublattices, and a bipartition
        assert (colours == np.tile([0, 1], 36)).all()
        assert lat.bipartition() is not None
    if kind == "kagome":
        assert lat.bipartition() is None


def test_translations_move_cells_and_keep_sublattices():
    lat = make_lattice("kagome", (3, 2))
    T = lat.translations()
    assert T.shape == (6, 18)
    assert (T[0] == np.arange(18)).all()
    assert (T % 3 == np.arange(18) % 3).all()  # the sublattice is kept
    for g, h in itertools.product(range(6), repeat=2):  # closed under composition
        assert any((T[g][T[h]] == T[k]).all() for k in range(6))
    # a translation maps bonds to bonds
    bonds = {tuple(sorted(b)) for b in lat.bond_list(1)[:, :2].tolist()}
    for g in range(6):
        moved = {tuple(sorted((int(T[g][i]), int(T[g][j])))) for i, j in bonds}
        assert moved == bonds


ISING = """
model M(J: real = JVALUE) {
    lattice KIND(CELLS)
    field s: spin on sites
    energy E = -J * sum(s[i] * s[j] for (i, j) in bonds)
    symmetry translation, spin_flip
}
run point {
    sampler SAMPLER(chains = 64, sweeps = 800, burn_in = 200)
    scan T in TEMPERATURES
    measure u = energy / sites, m = abs(magnetization) / sites, specific_heat
}
"""


def _check_against(program, rows, reference):
    for row in rows:
        exact = reference(row["T"])
        for key, obs in (("u", "u"), ("m", "m"), ("c", "specific_heat")):
            est = row[obs]
            assert abs(est["mean"] - exact[key]) < 4 * est["stderr"] + 1e-9, (
                row["T"], obs, est, exact[key])


def _ising_reference(kind: str, cells: tuple[int, int], r: float, J: float):
    bonds = np.array(cartesian_bonds(kind, cells, r))
    n = len(LATTICES[kind].basis) * cells[0] * cells[1]
    confs = enumerate_states([-1.0, 1.0], (n,))
    energies = -J * (confs[:, bonds[:, 0]] * confs[:, bonds[:, 1]]).sum(1)
    return lambda T: exact_averages(energies, confs.sum(1), T, n)


@pytest.mark.parametrize("sampler", ["metropolis", "heatbath", "wolff"])
def test_honeycomb_ising_against_exact_enumeration(sampler):
    text = (ISING.replace("KIND", "honeycomb").replace("CELLS", "3, 3").replace("JVALUE", "1.0")
            .replace("SAMPLER", sampler).replace("TEMPERATURES", "[1.0, 1.5, 2.5]"))  # fmt: skip
    program = physml_lang.compile(text)
    assert program.model().fields["s"].n_colours == 2
    rows = program.run(seed=7).rows
    _check_against(program, rows, _ising_reference("honeycomb", (3, 3), 1 / math.sqrt(3), 1.0))


@pytest.mark.parametrize("sampler", ["metropolis", "heatbath"])
def test_kagome_antiferromagnet_against_exact_enumeration(sampler):
    text = (ISING.replace("KIND", "kagome").replace("CELLS", "2, 3").replace("JVALUE", "-1.0")
            .replace("SAMPLER", sampler).replace("TEMPERATURES", "[0.5, 1.0, 2.0]"))  # fmt: skip
    program = physml_lang.compile(text)
    assert program.model().fields["s"].n_colours == 3
    rows = program.run(seed=3).rows
    _check_against(program, rows, _ising_reference("kagome", (2, 3), 0.5, -1.0))


def test_random_site_updates_on_a_lattice_with_a_basis():
    text = (ISING.replace("KIND", "kagome").replace("CELLS", "2, 2").replace("JVALUE", "1.0")
            .replace("SAMPLER(", "metropolis(update = random, ").replace("800", "300")
            .replace("TEMPERATURES", "[1.5, 3.0]"))  # fmt: skip
    program = physml_lang.compile(text)
    _check_against(program, program.run(seed=2).rows,
                   _ising_reference("kagome", (2, 2), 0.5, 1.0))  # fmt: skip


BLUME_CAPEL = """
model BC(L: int = 3, J: real = 1.0, D: real = 0.7) {
    lattice square(L, L)
    field s: spin(1) on sites
    energy E = -J * sum(s[i] * s[j] for (i, j) in bonds) + D * sum(s[i]^2 for i in sites)
    symmetry translation, spin_flip
}
run point {
    sampler SAMPLER(chains = 64, sweeps = 800, burn_in = 200)
    scan T in [0.8, 1.4, 2.5]
    measure u = energy / sites, m = abs(magnetization) / sites, specific_heat,
            q = sum(s[i]^2 for i in sites) / sites
}
"""


@pytest.mark.parametrize("sampler", ["metropolis", "heatbath"])
def test_blume_capel_against_exact_enumeration(sampler):
    program = physml_lang.compile(BLUME_CAPEL.replace("SAMPLER", sampler))
    confs = enumerate_states([-1.0, 0.0, 1.0], (3, 3))
    bonds = (confs * confs.roll(1, 1)).sum((1, 2)) + (confs * confs.roll(1, 2)).sum((1, 2))
    energies = -bonds + 0.7 * (confs**2).sum((1, 2))
    mags = confs.sum((1, 2))  # magnetization of spin(1) is the sum of s
    cm = program.model()
    assert torch.allclose(cm.energy({"s": confs.float()}).double(), energies)
    assert torch.allclose(cm.magnetization({"s": confs.float()}).double(), mags)
    rows = program.run(seed=5).rows
    _check_against(program, rows, lambda T: exact_averages(energies, mags, T, 9))
    for row in rows:
        w = torch.exp(-(energies - energies.min()) / row["T"])
        q = float((w * (confs**2).sum((1, 2))).sum() / w.sum() / 9)
        assert abs(row["q"]["mean"] - q) < 4 * row["q"]["stderr"], (row["T"], row["q"], q)


def test_spin_three_halves_values_and_proposals():
    text = BLUME_CAPEL.replace("spin(1)", "spin(3/2)").split("run point")[0]
    cm = physml_lang.compile(text).model()
    from physml_lang.compiler.lower.domains import site_domain
    from physml_lang.runtime.random import RandomStreams

    dom = site_domain(cm.model.fields["s"].domain, torch.float64)
    assert dom.values.tolist() == [-1.5, -0.5, 0.5, 1.5]
    s = dom.values[torch.arange(4)].repeat(500)
    new = dom.propose(s, RandomStreams(1))
    assert set(new.tolist()) <= {-1.5, -0.5, 0.5, 1.5}
    assert not (new == s).any()  # always another value
    counts = torch.stack([(new[s == v][:, None] == dom.values).sum(0) for v in dom.values])
    assert (counts.sum(1) == 500).all()
    assert (counts[~torch.eye(4, dtype=torch.bool)] > 120).all()  # uniform over the other 3


def test_edge_list_graph_against_exact_enumeration(tmp_path):
    """The Petersen graph example, its energy from the file's bonds, every sampler."""
    text = (EXAMPLES / "graph_edges.phys").read_text()
    edges = np.loadtxt(EXAMPLES / "data" / "petersen.csv", delimiter=",", comments="#",
                       skiprows=2, dtype=np.int64)  # fmt: skip
    confs = enumerate_states([-1.0, 1.0], (10,))
    energies = (confs[:, edges[:, 0]] * confs[:, edges[:, 1]]).sum(1)  # J = -1
    program = physml_lang.compile(EXAMPLES / "graph_edges.phys")
    cm = program.model()
    assert torch.allclose(cm.energy({"s": confs.float()}).double(), energies)
    assert cm.fields["s"].n_colours == 3
    assert float(energies.min()) == -9.0
    for sampler in ("metropolis", "heatbath", "wolff"):
        src = text.replace("metropolis(chains = 64, sweeps = 2000", f"{sampler}(chains = 64, "
                           "sweeps = 600").replace("[0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0]",
                                                   "[0.5, 1.5]")  # fmt: skip
        path = EXAMPLES / "graph_edges.phys"
        program = physml_lang.compile(src.replace('"data/petersen.csv"',
                                                  f'"{path.parent / "data" / "petersen.csv"}"'))
        for row in program.run(seed=4).rows:
            exact = exact_averages(energies, confs.sum(1), row["T"], 10)
            est = row["energy_per_site"]
            assert abs(est["mean"] - exact["u"]) < 4 * est["stderr"], (sampler, row["T"], est)


def test_integer_range_domain_against_exact_enumeration():
    """integer(-1, 2) with a Gaussian-like bond energy (n_i - n_j)^2: heat-bath and Metropolis
    (uniform proposals among the other three values) against all 4^9 states."""
    text = """
    model Z(L: int = 3) {
        lattice square(L, L)
        field n: integer(-1, 2) on sites
        energy E = sum((n[i] - n[j])^2 for (i, j) in bonds)
    }
    run r {
        sampler SAMPLER(chains = 64, sweeps = 600, burn_in = 100)
        scan T in [1.0, 3.0]
        measure u = energy / sites, m = magnetization / sites
    }
    """
    confs = enumerate_states([-1.0, 0.0, 1.0, 2.0], (3, 3))
    energies = (((confs - confs.roll(1, 1)) ** 2).sum((1, 2))
                + ((confs - confs.roll(1, 2)) ** 2).sum((1, 2)))  # fmt: skip
    mags = confs.sum((1, 2))
    for sampler in ("heatbath", "metropolis"):
        program = physml_lang.compile(text.replace("SAMPLER", sampler))
        for row in program.run(seed=6).rows:
            w = torch.exp(-(energies - energies.min()) / row["T"])
            w = w / w.sum()
            for key, exact in (("u", float(w @ energies) / 9), ("m", float(w @ mags) / 9)):
                est = row[key]
                assert abs(est["mean"] - exact) < 4 * est["stderr"], (sampler, row["T"], key,
                                                                      est, exact)  # fmt: skip


def test_random_regular_graph_paramagnet_is_the_bethe_lattice(tmp_path):
    """A random 3-regular graph of 4000 sites from an edge list (sparse couplings: O(bonds)
    memory): locally a tree, so in the paramagnet each bond has <s_i s_j> = tanh(beta J) and
    u = -(3/2) tanh(beta J) per site (corrections O(1/N) from the few short loops)."""
    rng = np.random.default_rng(0)
    n = 4000
    while True:
        stubs = rng.permutation(np.repeat(np.arange(n), 3)).reshape(-1, 2)
        stubs = np.sort(stubs, axis=1)
        if (stubs[:, 0] != stubs[:, 1]).all() and len(np.unique(stubs, axis=0)) == len(stubs):
            break
    np.savetxt(tmp_path / "rr.csv", stubs, fmt="%d", delimiter=",")
    (tmp_path / "rr.phys").write_text("""
    model G(J: real = 1.0) {
        graph edges("rr.csv")
        field s: spin on sites
        energy E = -J * sum(s[i] * s[j] for (i, j) in bonds)
        symmetry spin_flip
    }
    run r {
        sampler metropolis(chains = 16, sweeps = 300, burn_in = 100)
        scan T in [2.5, 4.0]
        measure u = energy / sites
    }
    """)
    program = physml_lang.compile(tmp_path / "rr.phys")
    assert program.model().energy.dense[0].matrix.is_sparse
    for row in program.run(seed=1).rows:
        exact = -1.5 * math.tanh(1 / row["T"])
        assert abs(row["u"]["mean"] - exact) < 4 * row["u"]["stderr"] + 2e-4, (row["T"], row["u"])
