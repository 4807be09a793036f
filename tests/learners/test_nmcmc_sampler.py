"""``sampler nmcmc(...)`` in a van run: independent independence-Metropolis chains proposing
fresh samples of the trained learner, measuring the run's observables with binned errors.
Checked: the compiled multi-chain loop is the single-chain one chain by chain, the static check
locates misuse, and the measured <E>/N, <m^2> and specific heat of the periodic 3x3 Ising model
at beta = 0.44 agree with exact enumeration within 4 standard errors."""

from __future__ import annotations

import pytest
import torch

import physml_lang
from physml_lang.diagnostics import PhysmlError
from physml_lang.runtime.generative.estimates import nmcmc, nmcmc_chains

from .small_ising import BETA, F64, N_ISING, Exact

ISING = """
model Ising(L: int = 3, J: real = 1.0) {
    lattice square(L, L, boundary = periodic)
    field s: spin on sites
    energy E = -J * sum(s[i] * s[j] for (i, j) in bonds)
    symmetry translation, spin_flip
}
learner q = made(hidden = 16, depth = 1) respecting spin_flip
"""
TRAIN = "train q via free_energy(beta = 0.44, steps = 15, batch = 200, lr = 0.01, anneal = 0.9, " \
    "samples = 2000)"  # fmt: skip


def test_chains_match_the_single_chain_loop() -> None:
    g = torch.Generator().manual_seed(3)
    log_w = torch.randn(500, 4, generator=g, dtype=F64)
    u = torch.rand(500, 4, generator=g, dtype=F64)
    at, acceptance = nmcmc_chains(log_w, u)
    accepted = 0
    for c in range(4):
        one = nmcmc(log_w[:, c], u[:, c])
        assert torch.equal(at[:, c], one.chain)
        accepted += round(one.acceptance * 499)
    assert acceptance == pytest.approx(accepted / (4 * 499), abs=1e-15)


@pytest.mark.parametrize("run, code, where", [
    ("sampler metropolis(chains = 4)", "P206", "metropolis"),
    ("sampler nmcmc(chains = 4, proposal = p)", "P207", "proposal"),
    ("sampler nmcmc(chain = 4)", "P401", "chain"),
    ("sampler nmcmc(chains = 4)  measure energy, magnetisation", "P208", "magnetisation"),
    ("measure energy", "P103", "energy"),
])  # fmt: skip
def test_check_locates_misuse_of_nmcmc(run: str, code: str, where: str) -> None:
    src = ISING + f"run v {{ model Ising  {TRAIN}  {run} }}"
    with pytest.raises(PhysmlError) as err:
        physml_lang.compile(src).check()
    d = err.value.diagnostics[0]
    assert d.code == code, d.render()
    line = src.splitlines()[d.span.line - 1]
    assert line[d.span.column - 1:].startswith(where), d.render()


def test_a_van_run_with_nmcmc_is_still_a_van_run() -> None:
    p = physml_lang.compile(ISING + f"run v {{ model Ising  {TRAIN}  sampler nmcmc(chains = 4) "
                            "measure energy }")  # fmt: skip
    p.check()
    assert p.runs["v"].kind == "van"


def _exact_mean(values: torch.Tensor) -> float:
    return float((Exact.log_p.exp() * values).sum())


def test_nmcmc_measures_agree_with_exact_enumeration() -> None:
    """16 chains x 2000 steps after 100 of burn-in, proposals from a MADE trained for only 15
    steps (a poor proposal: ESS per sample ~0.06, acceptance ~0.14, tau_int ~18; the chains
    correct it): <E>/N, <m^2> (m = M / N) and the specific heat beta^2 var(E) / N within 4
    binned standard errors of their exact values."""
    src = ISING + (f"run v {{ model Ising  {TRAIN}\n  sampler nmcmc(chains = 16, sweeps = 2000, "
                   "burn_in = 100, proposal = q)\n  measure e = energy / sites, "
                   "m2 = (magnetization / sites)^2, specific_heat }")  # fmt: skip
    row = physml_lang.compile(src).run().rows[0]
    x = (2 * Exact.s - 1).to(F64)
    e_exact = _exact_mean(Exact.e) / N_ISING
    m2_exact = _exact_mean((x.sum(1) / N_ISING) ** 2)
    c_exact = BETA**2 * (_exact_mean(Exact.e**2) - _exact_mean(Exact.e) ** 2) / N_ISING
    for name, exact in (("e", e_exact), ("m2", m2_exact), ("specific_heat", c_exact)):
        got = row[name]
        assert 0 < got["stderr"] < 0.05 * abs(exact), (name, got)
        assert abs(got["mean"] - exact) < 4 * got["stderr"], (name, got, exact)
    assert 0.05 < row["acceptance"] <= 1 and row["r_hat"] < 1.1


@pytest.mark.slow
def test_nmcmc_with_a_symmetrised_rnn_on_4x4_agrees_with_enumeration() -> None:
    """4x4 torus at beta = 0.44, a GRU averaged over translations and the spin flip (32
    elements), 16 chains x 4000 steps: <E>/N and <m^2> within 4 standard errors of exact
    enumeration of the 65 536 states; F_NIS within 4 sigma of Kaufman's exact F."""
    import itertools

    src = ISING.replace("made(hidden = 16, depth = 1) respecting spin_flip",
                        "rnn(hidden = 16) respecting spin_flip, translation") + (
        "run v { model Ising(L = 4)  train q via free_energy(beta = 0.44, steps = 100, "
        "batch = 100, lr = 0.01, anneal = 0.9, samples = 5000)\n  sampler nmcmc(chains = 16, "
        "sweeps = 4000, burn_in = 100)\n  measure e = energy / sites, "
        "m2 = (magnetization / sites)^2\n  reference exact }")  # fmt: skip
    row = physml_lang.compile(src).run().rows[0]
    x = torch.tensor(list(itertools.product((-1.0, 1.0), repeat=16)), dtype=F64).reshape(-1, 4, 4)
    e = -(x * torch.roll(x, 1, 1) + x * torch.roll(x, 1, 2)).sum((1, 2))
    p = torch.softmax(-BETA * e, 0)
    exact = {"e": float((p * e).sum()) / 16, "m2": float((p * (x.sum((1, 2)) / 16) ** 2).sum())}
    for name, value in exact.items():
        got = row[name]
        assert abs(got["mean"] - value) < 4 * got["stderr"], (name, got, value)
    nis = row["free_energy_nis"]
    assert abs(nis["mean"] - row["exact_free_energy"]) < 4 * nis["stderr"]
