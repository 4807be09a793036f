"""Every sampler against exact enumeration: 4x4 periodic Ising and 3x3 q = 3 Potts.

Tolerance: |estimate - exact| < 4 standard errors (binning analysis), fixed seeds.
"""

from __future__ import annotations

import pytest

import physml_lang

from .conftest import enumerate_states, exact_averages

ISING = """
model Ising(L: int = 4) {
    lattice square(L, L)
    field s: spin on sites
    energy E = -sum(s[i] * s[j] for (i, j) in bonds)
    symmetry translation, spin_flip
}
run point {
    sampler SAMPLER(chains = 64, sweeps = 1000, burn_in = 200)
    scan T in [1.8, 2.4, 3.2]
    measure u = energy / sites, m = abs(magnetization) / sites, specific_heat
}
"""

POTTS = """
model Potts(L: int = 3, q: int = 3) {
    lattice square(L, L)
    field s: potts(q) on sites
    energy E = -sum(delta(s[i], s[j]) for (i, j) in bonds)
    symmetry translation, spin_flip
}
run point {
    sampler SAMPLER(chains = 64, sweeps = 1000, burn_in = 200)
    scan T in [0.7, 1.0, 1.5]
    measure u = energy / sites
}
"""


def _exact(program, values, T):
    cm = program.model()
    confs = enumerate_states(values, cm.lattice.shape).float()
    energies = cm.energy({"s": confs})
    mags = cm.magnetization({"s": confs})
    return exact_averages(energies, mags, T, cm.lattice.n_sites)


@pytest.mark.parametrize("sampler", ["metropolis", "heatbath", "wolff"])
def test_ising_4x4_against_exact_enumeration(sampler):
    program = physml_lang.compile(ISING.replace("SAMPLER", sampler))
    result = program.run(seed=11)
    for row in result.rows:
        exact = _exact(program, [-1.0, 1.0], row["T"])
        for key, obs in (("u", "u"), ("m", "m"), ("c", "specific_heat")):
            est = row[obs]
            assert abs(est["mean"] - exact[key]) < 4 * est["stderr"], (
                sampler,
                row["T"],
                obs,
                est,
                exact[key],
            )


@pytest.mark.parametrize("sampler", ["metropolis", "heatbath"])
def test_potts_3x3_against_exact_enumeration(sampler):
    program = physml_lang.compile(POTTS.replace("SAMPLER", sampler))
    result = program.run(seed=5)
    for row in result.rows:
        exact = _exact(program, [0.0, 1.0, 2.0], row["T"])
        est = row["u"]
        assert abs(est["mean"] - exact["u"]) < 4 * est["stderr"], (sampler, row["T"], est, exact)


def test_random_site_updates_against_exact_enumeration():
    program = physml_lang.compile(
        ISING.replace("SAMPLER(", "metropolis(update = random, ").replace("1000", "400")
    )
    result = program.run(seed=3)
    for row in result.rows:
        exact = _exact(program, [-1.0, 1.0], row["T"])
        assert abs(row["u"]["mean"] - exact["u"]) < 4 * row["u"]["stderr"]


def test_curie_weiss_complete_graph_against_exact_sum():
    """Complete graph (dense path, random-site updates): exact by summing over magnetisation."""
    import math

    text = """
    model CW(N: int = 12) {
        graph complete(N)
        field s: spin on sites
        energy E = -(1 / N) * sum(s[i] * s[j] for (i, j) in pairs)
        symmetry spin_flip
    }
    run r {
        sampler metropolis(chains = 64, sweeps = 400, burn_in = 100)
        let T = 0.8
        measure u = energy / sites
    }
    """
    program = physml_lang.compile(text)
    row = program.run(seed=2).rows[0]
    N, T = 12, 0.8
    z = e = 0.0
    for k in range(N + 1):  # k up spins: M = 2k - N, E = -(M^2 - N) / (2N)
        M = 2 * k - N
        energy = -(M * M - N) / (2 * N)
        w = math.comb(N, k) * math.exp(-energy / T)
        z += w
        e += w * energy
    exact = e / z / N
    assert abs(row["u"]["mean"] - exact) < 4 * row["u"]["stderr"]
