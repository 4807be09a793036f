"""Fast tests of the optimisers as dynamics: MQHOA, simulated and population annealing of a
continuous f over a box, and annealing of Ising spins against exact enumeration."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from physml_lang.runtime.landscape.annealing import population_annealing, simulated_annealing
from physml_lang.runtime.landscape.errors import LandscapeError
from physml_lang.runtime.landscape.grid import reflect_into_box
from physml_lang.runtime.landscape.mqhoa import mqhoa, mqhoa_runs
from physml_lang.runtime.landscape.spin_annealing import (
    anneal_spins,
    energies,
    exact_ground_state,
    exact_log_z,
    population_anneal_spins,
    sk_instance,
)
from physml_lang.runtime.landscape.test_functions import TEST_FUNCTIONS
from physml_lang.runtime.random import RandomStreams


class Counting:
    """f wrapped: counts the points it is called on, keeps every value in call order, and checks
    that every point lies in the box."""

    def __init__(self, f, lower: torch.Tensor, upper: torch.Tensor):
        self.f, self.lower, self.upper = f, lower, upper
        self.calls, self.values = 0, []

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        assert x.ndim == 2 and x.shape[1] == self.lower.numel()
        assert bool(((x >= self.lower) & (x <= self.upper)).all()), "a point left the box"
        self.calls += x.shape[0]
        v = self.f(x)
        self.values.append(v.clone())
        return v

    def first_hit(self, target: float, tol: float) -> int | None:
        v = torch.cat(self.values)
        hits = torch.nonzero((v - target).abs() < tol)
        return int(hits[0, 0]) + 1 if len(hits) else None


def _sphere_box(n: int, half: float = 5.0) -> tuple[torch.Tensor, torch.Tensor]:
    return (torch.full((n,), -half, dtype=torch.float64),
            torch.full((n,), half, dtype=torch.float64))  # fmt: skip


# ------------------------------------------------------------------------- test functions


@pytest.mark.parametrize("name", sorted(TEST_FUNCTIONS))
@pytest.mark.parametrize("n", [2, 5, 30])
def test_test_functions_minimum(name: str, n: int) -> None:
    tf = TEST_FUNCTIONS[name]
    lower, upper = tf.box(n)
    assert bool(((tf.x_star(n) >= lower) & (tf.x_star(n) <= upper)).all())
    assert abs(float(tf(tf.x_star(n)[None])[0]) - tf.f_star) < 1e-6 * n
    x = lower + (upper - lower) * RandomStreams(n).uniform((1000, n), torch.float64)
    values = tf(x)
    assert values.shape == (1000,)
    assert bool((values > tf.f_star).all())  # random points of the box are above the minimum


def test_reflect_into_box() -> None:
    lower, upper = torch.tensor([-1.0, 0.0], dtype=torch.float64), torch.tensor([1.0, 3.0],
                                                                                dtype=torch.float64)  # fmt: skip
    x = torch.tensor([[0.5, 2.0], [1.5, -1.0], [-4.5, 7.5], [9.0, 3.0]], dtype=torch.float64)
    y = reflect_into_box(x, lower, upper)
    expected = torch.tensor([[0.5, 2.0], [0.5, 1.0], [-0.5, 1.5], [1.0, 3.0]],
                            dtype=torch.float64)  # fmt: skip
    assert torch.allclose(y, expected)


# ------------------------------------------------------------------- continuous optimisers


def _run(method: str, f, lower, upper, seed: int, budget: int, **kw):
    streams = RandomStreams(seed)
    if method == "mqhoa":
        return mqhoa(f, lower, upper, streams, max_evaluations=budget, **kw)
    if method == "sa":
        return simulated_annealing(f, lower, upper, streams, max_evaluations=budget, **kw)
    return population_annealing(f, lower, upper, streams, population=100,
                                max_evaluations=budget, **kw)  # fmt: skip


@pytest.mark.parametrize("method", ["mqhoa", "sa", "pa"])
@pytest.mark.parametrize("n", [2, 5])
def test_sphere_minimum_found(method: str, n: int) -> None:
    lower, upper = _sphere_box(n)
    f = Counting(TEST_FUNCTIONS["sphere"].f, lower, upper)
    r = _run(method, f, lower, upper, seed=11, budget=10_000 * n, f_target=0.0, tol=1e-4)
    assert r.success and r.best_f < 1e-4
    assert float(r.best_x.abs().max()) < 1e-2 + 1e-12  # |x|^2 < 1e-4
    # exact counting: every point f saw is counted, and the first hit is the recorded one
    assert f.calls == r.evaluations <= 10_000 * n
    assert r.evaluations_to_target == f.first_hit(0.0, 1e-4)
    assert r.trace and r.trace[-1][0] == r.evaluations and r.trace[-1][1] == r.best_f


@pytest.mark.parametrize("method", ["mqhoa", "sa", "pa"])
def test_budget_and_counting_without_target(method: str) -> None:
    """Without a target the run spends at most the budget, counted point by point."""
    tf = TEST_FUNCTIONS["rastrigin"]
    lower, upper = tf.box(3)
    f = Counting(tf.f, lower, upper)
    r = _run(method, f, lower, upper, seed=3, budget=3001)
    assert f.calls == r.evaluations <= 3001
    assert r.evaluations_to_target is None and not r.success
    assert abs(float(torch.cat(f.values).min()) - r.best_f) == 0.0
    assert abs(float(tf.f(r.best_x[None])[0]) - r.best_f) < 1e-12


@pytest.mark.parametrize("name", ["rastrigin", "ackley"])
def test_mqhoa_multimodal_2d(name: str) -> None:
    tf = TEST_FUNCTIONS[name]
    lower, upper = tf.box(2)
    r = mqhoa(tf.f, lower, upper, RandomStreams(2), max_evaluations=20_000, f_target=0.0)
    assert r.success, r.best_f
    assert float((r.best_x - tf.x_star(2)).abs().max()) < 0.01
    # the scale halves: the rows of the trace at scale changes carry sigma_0 / 2^j
    scales = {row[2] for row in r.trace}
    assert 2 * 32.768 / 4 in scales or 2 * 5.12 / 4 in scales


def test_mqhoa_runs_batched_are_independent_results() -> None:
    tf = TEST_FUNCTIONS["ackley"]
    lower, upper = tf.box(2)
    f = Counting(tf.f, lower, upper)
    rs = mqhoa_runs(f, lower, upper, RandomStreams(4), runs=6, max_evaluations=20_000,
                    f_target=0.0)  # fmt: skip
    assert len(rs) == 6 and all(r.success for r in rs)
    assert f.calls == sum(r.evaluations for r in rs)
    assert len({round(r.best_f, 12) for r in rs}) == 6  # different runs, different points


def test_population_annealing_free_energy_of_a_gaussian_well() -> None:
    """f = |x|^2 on [-2, 2]^2: Z(beta) / Z(0) = (sqrt(pi / beta) erf(2 sqrt(beta)) / 4)^2.
    8 independent runs give the mean and its standard error; the PA bias (equilibration lag at
    10 sweeps per beta) is below it; we allow 4 standard errors."""
    lower, upper = _sphere_box(2, 2.0)
    betas = torch.linspace(0.0, 5.0, 41, dtype=torch.float64)
    rs = population_annealing(TEST_FUNCTIONS["sphere"].f, lower, upper, RandomStreams(3),
                              population=1000, betas=betas, sweeps_per_beta=10,
                              max_evaluations=10**7, runs=8)  # fmt: skip
    log_z = np.array([r.extras["log_z"][-1] for r in rs])
    exact = 2 * math.log(math.sqrt(math.pi / 5.0) * math.erf(2 * math.sqrt(5.0)) / 4)
    se = log_z.std(ddof=1) / math.sqrt(len(log_z))
    assert abs(log_z.mean() - exact) < 4 * se + 1e-3, (log_z.mean(), exact, se)
    r = rs[0]
    assert len(r.extras["betas"]) == 41 and r.extras["betas"][-1] == 5.0
    assert 1 < r.extras["families"][-1] < 1000
    assert all(1.0 <= e <= 1000 + 1e-9 for e in r.extras["effective_population"])


def test_user_errors_are_landscape_errors() -> None:
    lower, upper = _sphere_box(2)
    sphere = TEST_FUNCTIONS["sphere"].f
    with pytest.raises(LandscapeError, match="empty"):
        mqhoa(sphere, upper, lower, RandomStreams(0), max_evaluations=100)
    with pytest.raises(LandscapeError, match=r"returned nan"):
        mqhoa(lambda x: torch.where(x[:, 0] > 0, math.nan, 1.0), lower, upper, RandomStreams(0),
              max_evaluations=1000)  # fmt: skip
    with pytest.raises(LandscapeError, match=r"values \(M,\)"):
        simulated_annealing(lambda x: x, lower, upper, RandomStreams(0), max_evaluations=1000)
    with pytest.raises(LandscapeError, match="schedule"):
        simulated_annealing(sphere, lower, upper, RandomStreams(0), max_evaluations=1000,
                            schedule="fast")  # fmt: skip
    with pytest.raises(LandscapeError, match="increasing"):
        population_annealing(sphere, lower, upper, RandomStreams(0), population=10,
                             max_evaluations=1000, betas=[0.0, 2.0, 1.0])  # fmt: skip
    with pytest.raises(LandscapeError, match="budget"):
        mqhoa(sphere, lower, upper, RandomStreams(0), max_evaluations=10, k=20)


# --------------------------------------------------------------------------------- spins


def test_exact_enumeration_matches_itertools() -> None:
    J = sk_instance(7, 2)
    h = RandomStreams(9).normal((1, 7), torch.float64)[0] * 0.3
    states = torch.tensor(list(itertools.product([-1.0, 1.0], repeat=7)), dtype=torch.float64)
    e = energies(states, J, h)
    s, e0 = exact_ground_state(J, h)
    assert abs(e0 - float(e.min())) < 1e-12 and abs(float(energies(s, J, h)) - e0) < 1e-12
    betas = [0.0, 0.5, 2.0]
    ref = torch.stack([torch.logsumexp(-b * e, 0) for b in betas])
    assert torch.allclose(exact_log_z(J, betas, h), ref, atol=1e-10)
    assert abs(float(exact_log_z(J, [0.0])[0]) - 7 * math.log(2)) < 1e-12


def test_sk_instance_statistics() -> None:
    J = sk_instance(200, 1)
    assert torch.equal(J, J.T) and float(J.diagonal().abs().max()) == 0.0
    off = J[torch.triu_indices(200, 200, 1).unbind()]
    # var = 1/N from 19900 couplings: relative standard error sqrt(2 / 19900) = 1 %
    assert abs(float(off.var()) * 200 - 1.0) < 0.05


def test_sa_finds_sk16_ground_state() -> None:
    """20 seeded restarts on one N = 16 SK instance: the exact ground state (by enumeration) in
    >= 90 % (measured: 20 / 20 at 300 sweeps)."""
    J = sk_instance(16, 5)
    _, e0 = exact_ground_state(J)
    found = sum(abs(anneal_spins(J, streams=RandomStreams(seed), replicas=1,
                                 sweeps=300).best_energy - e0) < 1e-9
                for seed in range(20))  # fmt: skip
    assert found >= 18, found


def test_spin_annealing_bookkeeping() -> None:
    J = sk_instance(12, 3)
    _, e0 = exact_ground_state(J)
    r = anneal_spins(J, streams=RandomStreams(1), replicas=4, sweeps=200, order="random",
                     target_energy=e0, check_every=10)  # fmt: skip
    assert abs(r.best_energy - e0) < 1e-9 and r.trace[-1][0] < 200  # stopped at the target
    assert abs(float(energies(r.best_spins, J)) - r.best_energy) < 1e-12
    assert r.energies.shape == (4,) and bool((r.energies >= e0 - 1e-9).all())
    with pytest.raises(LandscapeError, match="symmetric"):
        anneal_spins(J + torch.eye(12, dtype=J.dtype), streams=RandomStreams(0))


def test_population_annealing_spins_log_z_against_enumeration() -> None:
    """log Z(beta) of a 10-spin SK instance at beta = 0.5, 1, 2 from 6 independent PA runs
    (P = 1000): the mean within 4 standard errors (t with 5 dof: 4 is beyond its 99.5 %
    two-sided quantile) plus 2e-3 for the small O(1/P) bias of a log of a mean."""
    J = sk_instance(10, 7)
    betas = torch.linspace(0.0, 2.0, 41, dtype=torch.float64)
    exact = exact_log_z(J, betas)
    picks = [10, 20, 40]
    runs = np.array([[population_anneal_spins(J, streams=RandomStreams(seed), population=1000,
                                              betas=betas, sweeps_per_beta=3
                                              ).extras["log_z"][i] for i in picks]
                     for seed in range(6)])  # fmt: skip
    se = runs.std(0, ddof=1) / math.sqrt(6)
    err = np.abs(runs.mean(0) - exact[picks].numpy())
    assert (err < 4 * se + 2e-3).all(), (err, se)


def test_anneal_spins_with_an_energy_function() -> None:
    """The generic path (one energy call per flip) is the same Markov chain as the local-field
    path: with the same streams, the same energies sweep by sweep. A periodic ferromagnetic
    chain given as a function anneals to its ground state E = -N (domain walls diffuse freely
    in 1D, so a short ring and many sweeps; a random order: in sequential order every dE = 0
    flip is accepted, so all walls march around the ring in lockstep and never annihilate)."""
    J = sk_instance(12, 8)
    r_fn = anneal_spins(energy_fn=lambda s: energies(s, J), spins=12, streams=RandomStreams(6),
                        replicas=4, sweeps=200, check_every=10)  # fmt: skip
    r_j = anneal_spins(J, streams=RandomStreams(6), replicas=4, sweeps=200, check_every=10)
    assert torch.allclose(r_fn.energies, r_j.energies, atol=1e-9)
    assert [row[1] for row in r_fn.trace] == pytest.approx([row[1] for row in r_j.trace])
    chain = lambda s: -(s * torch.roll(s, 1, 1)).sum(1)  # noqa: E731
    r = anneal_spins(energy_fn=chain, spins=10, streams=RandomStreams(5), replicas=8,
                     sweeps=1000, order="random")  # fmt: skip
    assert r.best_energy == -10.0 and abs(float(r.best_spins.sum())) == 10.0
    with pytest.raises(LandscapeError, match="either"):
        anneal_spins(J, energy_fn=chain, spins=12, streams=RandomStreams(0))


@pytest.mark.parametrize("method", ["mqhoa", "sa", "pa"])
def test_batched_run_does_not_depend_on_the_batch(method: str) -> None:
    """Run r draws from its own streams: the same result in a batch of 2 or of 3 runs (with
    MQHOA restarts, which draw from a family named by run and restart)."""
    tf = TEST_FUNCTIONS["rastrigin"]
    lower, upper = tf.box(2)
    results = []
    for runs in (2, 3):
        streams = RandomStreams(12)
        if method == "mqhoa":
            rs = mqhoa_runs(tf.f, lower, upper, streams, runs=runs, max_evaluations=4000,
                            sigma_min=1e-2)  # fmt: skip
            assert rs[1].extras["restarts"] >= 1
        elif method == "sa":
            rs = simulated_annealing(tf.f, lower, upper, streams, max_evaluations=2000,
                                     chains=2, runs=runs)  # fmt: skip
        else:
            rs = population_annealing(tf.f, lower, upper, streams, population=50,
                                      max_evaluations=2000, runs=runs)  # fmt: skip
        results.append(rs[1])
    a, b = results
    assert a.best_f == b.best_f and a.evaluations == b.evaluations and a.trace == b.trace
    assert torch.equal(a.best_x, b.best_x)
