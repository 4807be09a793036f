"""The recurrent autoregressive network (GRU over cells or sites, runtime/generative/rnn.py),
validated against exact enumeration: exactly normalised (spin, Potts q = 3, a 2-site basis in
cell mode), autoregressive, sampled exactly (per-state 5-sigma and chi-square checks of the
sample frequencies against q), and VAN-trainable to the exact free energy of the periodic 3x3
Ising model at beta = 0.44. Fixed seeds throughout."""

from __future__ import annotations

import math

import pytest
import torch

import physml_lang
from physml_lang.runtime.generative.estimates import importance_estimate
from physml_lang.runtime.generative.rnn import RecurrentAR
from physml_lang.runtime.generative.symmetry import FlipSymmetrised, value_flip
from physml_lang.runtime.generative.van import anneal_beta, van_step

from .small_ising import BETA, F64, N_ISING, Exact, all_configs, config_index, ising_energy


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def uniforms(g: torch.Generator, *shape: int) -> torch.Tensor:
    return torch.rand(*shape, generator=g, dtype=F64)


# (cells, basis, q, layers): per site (basis 1), Potts q = 3, a 2-site cell, a 3-site cell
SHAPES = [(9, 1, 2, 1), (6, 1, 3, 2), (4, 2, 2, 1), (3, 2, 3, 1), (2, 3, 2, 2)]


@pytest.mark.parametrize("cells, basis, q, layers", SHAPES)
def test_rnn_is_exactly_normalised(cells: int, basis: int, q: int, layers: int) -> None:
    net = RecurrentAR(cells, basis, q, hidden=16, layers=layers, generator=gen(3 + q))
    with torch.no_grad():
        logp = net.log_prob(all_configs(cells * basis, q))
    assert logp.dtype == F64 and logp.shape == (q ** (cells * basis),)
    assert abs(float(torch.logsumexp(logp, 0).exp()) - 1.0) < 1e-12
    assert float(logp.std()) > 0.05  # not trivially uniform


@pytest.mark.parametrize("cells, basis, q, layers", SHAPES)
def test_rnn_is_autoregressive(cells: int, basis: int, q: int, layers: int) -> None:
    """Changing s_j leaves the conditionals of the sites i <= j unchanged (bitwise), and changes
    that of site j + 1."""
    n = cells * basis
    net = RecurrentAR(cells, basis, q, hidden=16, layers=layers, generator=gen(7))
    g = gen(8)
    s = torch.randint(0, q, (32, n), generator=g)
    with torch.no_grad():
        logits = net.conditional_logits(s)
        assert logits.shape == (32, n, q)
        for j in range(n):
            t = s.clone()
            t[:, j] = (t[:, j] + 1) % q
            changed = net.conditional_logits(t)
            assert torch.equal(changed[:, : j + 1], logits[:, : j + 1])
            if j + 1 < n:
                assert not torch.allclose(changed[:, j + 1], logits[:, j + 1])


def test_rnn_construction_is_deterministic() -> None:
    a = RecurrentAR(4, 2, 3, hidden=8, generator=gen(5))
    b = RecurrentAR(4, 2, 3, hidden=8, generator=gen(5))
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)


@pytest.mark.parametrize("cells, basis, q", [(4, 1, 2), (2, 2, 3), (2, 2, 2)])
def test_rnn_samples_follow_log_prob(cells: int, basis: int, q: int) -> None:
    """200 000 exact samples: every state's count within 5 sigma of m q(s); chi-square below
    dof + 5 sqrt(2 dof)."""
    n = cells * basis
    net = RecurrentAR(cells, basis, q, hidden=16, generator=gen(11))
    with torch.no_grad():
        log_p = net.log_prob(all_configs(n, q))
        s = net.sample(uniforms(gen(12), 200_000, n))
    assert s.dtype == torch.int64 and s.shape == (200_000, n)
    m = s.shape[0]
    counts = torch.bincount(config_index(s, q), minlength=q**n).to(F64)
    p = log_p.exp()
    sigma = (m * p * (1 - p)).sqrt()
    assert bool(((counts - m * p).abs() <= 5 * sigma + 1e-9).all())
    chi2 = float(((counts - m * p) ** 2 / (m * p)).sum())
    dof = q**n - 1
    assert chi2 < dof + 5 * math.sqrt(2 * dof)


def test_rnn_sample_edges_stay_in_range() -> None:
    net = RecurrentAR(3, 2, 3, hidden=8, generator=gen(1))
    for u in (torch.zeros(4, 6, dtype=F64), torch.full((4, 6), 1 - 2**-53, dtype=F64)):
        s = net.sample(u)
        assert int(s.min()) >= 0 and int(s.max()) <= 2


def test_van_training_of_an_rnn_approaches_the_exact_free_energy() -> None:
    """A flip-symmetrised GRU (one step per site) trained by the variational free energy on the
    periodic 3x3 Ising model at beta = 0.44: F_q above the exact F within 3 sigma and within 1 %
    of it; F_NIS within 4 sigma of it (20 000 fresh samples)."""
    g = gen(2)
    net = FlipSymmetrised(RecurrentAR(N_ISING, 1, 2, hidden=16, generator=g), value_flip(2))
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for step in range(150):
        van_step(net, ising_energy, anneal_beta(BETA, 0.9, step), uniforms(g, 200, N_ISING),
                 opt, N_ISING, clip=1.0, u_flip=uniforms(g, 200))  # fmt: skip
    with torch.no_grad():
        s = net.sample(uniforms(g, 20_000, N_ISING), uniforms(g, 20_000))
        est = importance_estimate(ising_energy(s), net.log_prob(s), BETA, N_ISING)
    assert est.free_energy_q >= Exact.f - 3 * est.free_energy_q_err
    assert (est.free_energy_q - Exact.f) / abs(Exact.f) < 1e-2
    assert abs(est.free_energy_nis - Exact.f) < 4 * est.free_energy_nis_err


HONEYCOMB = """
model Honeycomb(L: int = 2) {
    lattice honeycomb(L, L, boundary = periodic)
    field s: potts(q = 3) on sites
    energy E = -sum(delta(s[i], s[j]) for (i, j) in bonds)
}
learner q = rnn(hidden = 8)
run van {
    model Honeycomb(L = 2)
    train q via free_energy(beta = 0.5, steps = 3, batch = 50, samples = 500)
    reference exact
}
"""


def test_rnn_in_cell_mode_on_a_honeycomb_lattice_from_the_language() -> None:
    """``rnn(...)`` over the 4 two-site cells of a periodic 2x2 honeycomb lattice (Potts q = 3):
    one GRU step a cell, exactly normalised over the 3^8 configurations; the van run gives its
    rows."""
    from physml_lang.catalogue import CATALOGUE
    from physml_lang.runtime.plans.generative import plan_van
    from physml_lang.runtime.tasks import RunState

    program = physml_lang.compile(HONEYCOMB)
    program.check()
    run = RunState.of(program.runs["van"])
    plan = plan_van(run, program, {}, lambda ir: program.compile_ir(ir, dtype=torch.float64))
    point = plan.points[0]
    build = CATALOGUE.learners.lookup("rnn", "lattice").implementation
    net = build(point, plan.learner_options, generator=gen(0))
    assert (net.n_cells, net.basis, net.q) == (4, 2, 3)
    with torch.no_grad():
        logp = net.log_prob(all_configs(8, 3))
    assert abs(float(torch.logsumexp(logp, 0).exp()) - 1.0) < 1e-12
    row = program.run().rows[0]
    assert row["steps"] == 3 and math.isfinite(row["free_energy_nis"]["mean"])


BLUME_CAPEL = """
model BlumeCapel(L: int = 2) {
    lattice kagome(L, L, boundary = periodic)
    field s: spin(1) on sites
    energy E = -sum(s[i] * s[j] for (i, j) in bonds) + 0.5 * sum(s[i] * s[i] for i in sites)
    symmetry translation, spin_flip
}
learner q = rnn(hidden = 8, layers = 2) respecting spin_flip, translation
run van {
    model BlumeCapel(L = 2)
    train q via free_energy(beta = 0.3, steps = 40, batch = 100, lr = 0.01, anneal = 0.9,
                            samples = 4000)
    reference exact
}
"""


def test_a_spin_one_kagome_van_run_with_a_cell_rnn() -> None:
    """Spin-1 (3 values, s -> -s the flip) on a periodic 2x2 kagome lattice (3-site cells, 12
    sites, 3^12 states enumerated for the reference), a 2-layer GRU over cells averaged over
    translations and the flip: F_q above the exact F within 3 sigma, F_NIS within 4 sigma."""
    row = physml_lang.compile(BLUME_CAPEL).run(progress=False).rows[0]
    fq, nis, exact = row["free_energy_q"], row["free_energy_nis"], row["exact_free_energy"]
    assert fq["mean"] >= exact - 3 * fq["stderr"]
    assert abs(nis["mean"] - exact) < 4 * nis["stderr"], (nis, exact)
