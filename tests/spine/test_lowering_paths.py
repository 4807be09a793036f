"""The roll, gather and dense lowerings of one energy give the same energies and local energies."""

from __future__ import annotations

import pytest
import torch

import physml_lang

MODELS = {
    "ising_periodic": (
        "square(L, L)",
        "spin",
        "-sum(s[i] * s[j] for (i, j) in bonds) - 0.3 * sum(s[i] for i in sites)",
        "",
    ),
    "ising_open": (
        "square(L, L, boundary = open)",
        "spin",
        "-sum(s[i] * s[j] for (i, j) in bonds)",
        "",
    ),
    "j1j2": (
        "square(L, L)",
        "spin",
        "-sum(s[i] * s[j] for (i, j) in bonds) + 0.5 * sum(s[i] * s[j] for (i, j) in bonds(2))",
        "",
    ),
    "triangular": ("triangular(L, L)", "spin", "-sum(s[i] * s[j] for (i, j) in bonds)", ""),
    "chain_open": (
        "chain(L, boundary = open)",
        "spin",
        "-sum(s[i] * s[j] for (i, j) in bonds)",
        "",
    ),
    "cubic": ("cubic(L, L, L)", "spin", "-sum(s[i] * s[j] for (i, j) in bonds)", ""),
    "potts": ("square(L, L)", "potts(3)", "-sum(delta(s[i], s[j]) for (i, j) in bonds)", ""),
    "edwards_anderson": (
        "square(L, L)",
        "spin",
        "-sum(J[i, j] * s[i] * s[j] for (i, j) in bonds) - sum(h[i] * s[i] for i in sites)",
        "param J on bonds = normal(0, 1, seed = 4)\n param h on sites = uniform(-1, 1, seed = 5)",
    ),
    "binary_open": (
        "square(L, L, boundary = open)",
        "binary",
        "-sum(s[i] * s[j] for (i, j) in bonds) + 0.7 * sum(s[i] for i in sites)",
        "",
    ),
}


def _program(lattice, domain, energy, extra, L):
    return physml_lang.compile(f"""
    model M(L: int = {L}) {{
        lattice {lattice}
        field s: {domain} on sites
        {extra}
        energy E = {energy}
    }}""")


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("L", [3, 4])
def test_three_paths_agree(name, L):
    program = _program(*MODELS[name], L)
    models = {p: program.model(path=p) for p in ("roll", "gather", "dense")}
    cm = models["gather"]
    domain = cm.model.fields["s"].domain
    values = torch.tensor(domain.values())
    g = torch.Generator().manual_seed(L)
    s = values[torch.randint(0, len(values), (5, *cm.lattice.shape), generator=g)]
    energies = {p: m.energy({"s": s}) for p, m in models.items()}
    torch.testing.assert_close(energies["roll"], energies["gather"], rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(energies["dense"], energies["gather"], rtol=1e-5, atol=1e-4)
    for v in values:
        local = {p: m.fields["s"].local_energy({"s": s}, v) for p, m in models.items()}
        torch.testing.assert_close(local["roll"], local["gather"], rtol=1e-5, atol=1e-4)
        torch.testing.assert_close(local["dense"], local["gather"], rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("name", ["ising_periodic", "potts", "edwards_anderson", "ising_open"])
def test_local_energy_is_the_energy_difference(name):
    """E(s with s_x = v) - E(s with s_x = w) = E_loc(x, v) - E_loc(x, w), for every site x."""
    program = _program(*MODELS[name], 4)
    cm = program.model()
    domain = cm.model.fields["s"].domain
    values = torch.tensor(domain.values())
    g = torch.Generator().manual_seed(0)
    s = values[torch.randint(0, len(values), (2, *cm.lattice.shape), generator=g)]
    N = cm.lattice.n_sites
    v, w = values[0], values[-1]
    for x in range(N):
        a = s.clone().reshape(2, -1)
        b = s.clone().reshape(2, -1)
        a[:, x], b[:, x] = v, w
        a, b = a.reshape(s.shape), b.reshape(s.shape)
        de = cm.energy({"s": a}) - cm.energy({"s": b})
        le = cm.fields["s"].local_energy({"s": s}, v) - cm.fields["s"].local_energy({"s": s}, w)
        torch.testing.assert_close(de, le.reshape(2, -1)[:, x], rtol=1e-4, atol=1e-4)


def test_random_site_local_energy_matches_all_sites():
    program = _program(*MODELS["edwards_anderson"], 4)
    cm = program.model()
    g = torch.Generator().manual_seed(1)
    s = torch.randint(0, 2, (6, 4, 4), generator=g).float() * 2 - 1
    sites = torch.randint(0, 16, (6,), generator=g)
    v = torch.ones(6)
    at = cm.fields["s"].local_energy({"s": s}, v, sites)
    full = cm.fields["s"].local_energy({"s": s}, 1.0).reshape(6, -1)
    torch.testing.assert_close(at, full[torch.arange(6), sites])


def test_sk_dense_energy_matches_matrix_form():
    program = physml_lang.compile("import SK\nmodel Dummy { }", N=10)
    cm = program.model("SK", N=10)
    J = torch.as_tensor(cm.model.arrays["J"].values, dtype=torch.float32)
    s = torch.randint(0, 2, (4, 10)).float() * 2 - 1
    expected = -0.5 * torch.einsum("bi,ij,bj->b", s, J, s)
    torch.testing.assert_close(cm.energy({"s": s}), expected, rtol=1e-5, atol=1e-5)


def test_colourings():
    def colours(lattice, energy, L=6):
        cm = _program(lattice, "spin", energy, "", L).model()
        return cm.fields["s"].n_colours

    nn = "-sum(s[i] * s[j] for (i, j) in bonds)"
    assert colours("square(L, L)", nn) == 2
    assert colours("triangular(L, L)", nn) == 3
    assert colours("square(L, L)", nn + " - sum(s[i] * s[j] for (i, j) in bonds(2))") == 4
    assert colours("cubic(L, L, L)", nn, L=4) == 2
    assert colours("square(L, L)", nn, L=5) > 2  # odd periodic lattice: not bipartite
    sk = physml_lang.compile("import SK\nmodel D { }").model("SK", N=8)
    assert sk.fields["s"].colours is None  # complete graph: random-site updates
