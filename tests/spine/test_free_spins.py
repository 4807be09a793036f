"""Couplings that vanish: J = 0 is a model of free spins, sampled correctly by every update
(regression: colour-parallel Metropolis crashed when the flip energy change was the constant 0).
"""

from __future__ import annotations

import math

import pytest

import physml_lang

FREE = """
model Ising(L: int = 4, J: real = 1.0) {
    lattice LATTICE
    field s: spin on sites
    energy E = -J * sum(s[i] * s[j] for (i, j) in bonds)
}
run r {
    model Ising(J = 0.0)
    sampler SAMPLER(chains = 32, sweeps = 400, burn_in = 20)
    let T = 2.0
    measure e = energy / sites, m = abs(magnetization) / sites
}
"""


@pytest.mark.parametrize("sampler", ["metropolis", "heatbath", "metropolis(update = random, "])
@pytest.mark.parametrize("lattice", ["square(L, L)", "honeycomb(2, 2)"])
def test_zero_coupling_gives_free_spins(sampler, lattice):
    text = FREE.replace("LATTICE", lattice)
    text = text.replace("SAMPLER(", sampler) if sampler.endswith(", ") else \
        text.replace("SAMPLER", sampler)  # fmt: skip
    row = physml_lang.compile(text).run(seed=3).rows[0]
    n = 16 if lattice.startswith("square") else 8
    # free spins: E = 0 exactly; <|M|> / N from the binomial distribution of M
    abs_m = sum(math.comb(n, k) * abs(2 * k - n) for k in range(n + 1)) / 2**n / n
    assert row["e"]["mean"] == 0.0
    assert abs(row["m"]["mean"] - abs_m) < 4 * row["m"]["stderr"], (row["m"], abs_m)
