"""Wolff cluster growth checks for its fixed point every few steps on a GPU (each check waits
for the device): the clusters, and so the chains, must not depend on how often it checks."""

from __future__ import annotations

import torch

import physml_lang

ISING = """
model Ising(L: int = 8) {
    lattice square(L, L)
    field s: spin on sites
    energy E = -sum(s[i] * s[j] for (i, j) in bonds)
    symmetry spin_flip
}
"""


def test_wolff_chains_do_not_depend_on_how_often_growth_is_checked():
    program = physml_lang.compile(ISING)
    runs = []
    for every in (1, 8):
        smp = program.sampler("wolff", T=2.2, chains=6, seed=4)
        smp.check_every = every
        state = smp.initial_state()
        for _ in range(40):
            state = smp.sweep(state)
        runs.append((state["s"], smp.accepted.clone()))
    assert torch.equal(runs[0][0], runs[1][0])
    assert torch.equal(runs[0][1], runs[1][1])
    assert runs[0][1].sum() > 6 * 40  # clusters of more than one site were grown
