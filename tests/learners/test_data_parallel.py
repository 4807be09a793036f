"""Data-parallel training (issue 21, point 4) of Boltzmann machines (cd, pcd), VANs and
normalising flows on several processes (torch.distributed, gloo on the CPU).

Each family's small run is made on one process and on two (``physml run --nproc 2``): every
rank must hold the same parameters after training (the digests of their bits, gathered into
the summary), and the rows must agree with one process's: to float round-off for VAN and flow
(the same samples, gradients summed in another order), within their error bars for the
Boltzmann machines (a Gibbs draw on the edge of its threshold, or Adam's sign-like first steps
on a gradient that cancels to round-off, can send a chain elsewhere after a few steps). The
one-process results of these families are pinned bit for bit elsewhere
(tests/spine/test_example_pins.py); the multi-process tests are slow."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest
import torch

from physml_lang.runtime.distributed import SINGLE
from physml_lang.runtime.learners.parallel import drawing, parameter_digest, reduce_gradients
from physml_lang.runtime.random import RandomStreams

VAN = """
model Ising(L: int = 4, J: real = 1.0) {
    lattice square(L, L, boundary = periodic)
    field s: spin on sites
    energy E = -J * sum(s[i] * s[j] for (i, j) in bonds)
    symmetry translation, spin_flip
}

learner q = made(hidden = 16, depth = 2) respecting spin_flip

run van {
    model Ising(L = 4)
    train q via free_energy(beta = 0.44, steps = 30, batch = 101, lr = 0.005, anneal = 0.99,
                            samples = 3001)
    reference exact
    sampler nmcmc(chains = 5, sweeps = 300, burn_in = 20, proposal = q)
    measure e = energy / sites, m2 = (magnetization / sites)^2, specific_heat
}
"""

FLOW = """
model Phi4Lattice(L: int = 4, m2: real = -4, lam: real = 8) {
    lattice square(L, L, boundary = periodic)
    field phi: real on sites
    action S = sum((phi[j] - phi[i])^2 for (i, j) in bonds)
               + sum(m2 * phi[i]^2 + lam * phi[i]^4 for i in sites)
    symmetry translation, spin_flip
}

learner f = coupling_flow(layers = 2, kind = spline, width = 4, bins = 4, bound = 5)
            respecting translation, spin_flip

run tutorial {
    model Phi4Lattice(L = 4, m2 = -4, lam = 8)
    train f via reverse_kl(steps = 20, warm_start = 6, batch = 33, lr = 2e-3, samples = 2001)
    measure abs_magnetization, m2, magnetization
}
"""

RBM = """
import Ising, SpinRBM

data S: spin = sample(Ising(L = 3), n = 300, T = T, chains = 20, thin = 2, seed = 1)

run rbm {
    model SpinRBM(Nv = 9, Nh = 6, sigma = 0.1)
    train SpinRBM via cd(k = 2), data = S, epochs = 3, batch = 25,
          physical = Ising(L = 3)
    optimizer adam(lr = 0.01)
    schedule cosine(min_factor = 0.01)
    generate chains = 13, burn_in = 20, sweeps = 40, thin = 2
    scan T in [2.0, 3.0]
    measure e = energy / sites, m = abs(magnetization) / sites, reconstruction, log_likelihood
}
"""

# a general Boltzmann machine: latent units (persistent positive chains per example, gathered
# after each step), sequential Gibbs sweeps, pcd chains split 19 + 18 over two ranks
BM = """
import SpinBoltzmannMachine

model Plaquette(L: int = 3, K: real = 1.0) {
    lattice square(L, L, boundary = periodic)
    field s: spin on sites
    energy E = -K * sum(s[x] * s[x + e0] * s[x + e1] * s[x + e0 + e1] for x in sites)
}

data D: spin = sample(Plaquette(L = 3), n = 300, T = 2.0, chains = 20, thin = 5, seed = 2)
learner bm = SpinBoltzmannMachine(Nv = 9, Nh = 3, sigma = 0.1)

run fit {
    train bm via pcd(k = 2, chains = 37, positive_sweeps = 2), data = D, visible = Nv,
          epochs = 4, batch = 30
    optimizer adam(lr = 0.02)
    schedule cosine(min_factor = 0.05)
    measure exact_kl, exact_log_likelihood
}
"""

# VAN: the samples of training and of the estimates (the nmcmc chains' proposals too) split
# 51 + 50, 1501 + 1500 and 1600 + 1600 per chunk; flow: the warm start's HMC chains 17 + 16
SOURCES = {"van": VAN, "flow": FLOW, "rbm": RBM, "bm": BM}
TIMING = {"train_s"}  # wall-clock numbers, not results


# ---------------------------------------------------------------- one process: the helpers


def test_one_process_reduces_nothing():
    p = torch.nn.Parameter(torch.tensor([1.0, -2.0], device="cpu"))
    p.grad = torch.tensor([0.5, 0.25], device="cpu")
    assert reduce_gradients([p], SINGLE, [3.0, 4.0], scale=0.5) == [3.0, 4.0]
    assert torch.equal(p.grad, torch.tensor([0.5, 0.25], device="cpu"))  # untouched


def test_a_block_draws_the_rows_of_the_whole_batch():
    whole = RandomStreams(7, "cpu", path=(3,)).uniform((10, 4), torch.float64)
    streams = RandomStreams(7, "cpu", path=(3,))
    with drawing(streams, 6):
        block = streams.uniform((4, 4), torch.float64)
    assert streams.first == 0 and streams.draws == 1
    assert torch.equal(block, whole[6:])


def test_parameter_digest_sees_one_bit():
    a = torch.tensor([1.0, 2.0], device="cpu")
    b = a.clone()
    b[1] = torch.nextafter(b[1], torch.tensor(3.0, device="cpu"))
    assert parameter_digest([a]) == parameter_digest([a.clone()])
    assert parameter_digest([a]) != parameter_digest([b])


# ---------------------------------------------------------------- 1 vs 2 processes (slow)


def _physml(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    return subprocess.run([sys.executable, "-m", "physml_lang.cli", *args], capture_output=True,
                          text=True, timeout=timeout, env=env)  # fmt: skip


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """name -> (summary on one process, summary on two), made on first use."""
    root = tmp_path_factory.mktemp("data_parallel")
    made: dict[str, tuple[dict, dict]] = {}

    def get(name: str) -> tuple[dict, dict]:
        if name not in made:
            src = root / f"{name}.phys"
            src.write_text(SOURCES[name])
            out = []
            for n in (1, 2):
                folder = root / f"{name}-{n}"
                # a checkpoint at every step: the gathered chains and collectives of tensors()
                r = _physml("run", str(src), "--out", str(folder), "--quiet", "--nproc", str(n),
                            "--checkpoint-every", "0.001")  # fmt: skip
                assert r.returncode == 0, r.stderr[-3000:]
                out.append(json.loads((folder / "summary.json").read_text()))
            made[name] = (out[0], out[1])
        return made[name]

    return get


def _ranks_agree(two: dict, points: int) -> None:
    assert two["processes"] == 2
    digests = two["data_parallel"]["digests"]
    assert len(digests) == points
    for d in digests:
        assert len(d) == 2 and d[0] == d[1], f"parameters differ across ranks: {d}"


def _numbers(row: dict, prefix: str = ""):
    for k, v in row.items():
        if k in TIMING:
            continue
        if isinstance(v, dict):
            yield from _numbers(v, f"{prefix}{k}.")
        elif isinstance(v, int | float) and not isinstance(v, bool):
            yield f"{prefix}{k}", float(v)


def _round_off(one: list[dict], two: list[dict], rel: float, abs_tol: float = 1e-12) -> None:
    """Every number alike to ``rel`` (``abs_tol`` for numbers that cancel to near 0: a loss
    that is a difference of O(1) terms)."""
    assert len(one) == len(two)
    for a, b in zip(one, two):
        na, nb = dict(_numbers(a)), dict(_numbers(b))
        assert na.keys() == nb.keys()
        for k, x in na.items():
            y = nb[k]
            if math.isnan(x):
                assert math.isnan(y), k
                continue
            assert math.isclose(x, y, rel_tol=rel, abs_tol=abs_tol), f"{k}: {x} != {y}"


def _statistical(one: list[dict], two: list[dict], sigmas: float = 4.0) -> None:
    """Observables with an error bar within ``sigmas`` combined standard errors; the training
    loss, which has none, within 25 % or 0.05."""
    assert len(one) == len(two)
    for a, b in zip(one, two):
        for k, x in a.items():
            y = b[k]
            if isinstance(x, dict) and x.get("stderr") and y.get("stderr"):
                bar = math.hypot(x["stderr"], y["stderr"])
                assert abs(x["mean"] - y["mean"]) <= sigmas * bar, f"{k}: {x} vs {y}"
            elif k == "loss":
                assert math.isclose(x["mean"], y["mean"], rel_tol=0.25, abs_tol=0.05), k
            elif not isinstance(x, dict):
                assert x == y, k  # scan values, epochs


@pytest.mark.slow
def test_van_trains_data_parallel_to_round_off(runs):
    one, two = runs("van")
    _ranks_agree(two, 1)
    _round_off(one["rows"], two["rows"], 1e-6)
    _round_off(one["history"][0], two["history"][0], 1e-6, 1e-9)


@pytest.mark.slow
def test_flow_trains_data_parallel_to_round_off(runs):
    one, two = runs("flow")
    _ranks_agree(two, 1)
    _round_off(one["rows"], two["rows"], 1e-5)
    _round_off(one["history"][0], two["history"][0], 1e-5, 1e-6)


@pytest.mark.slow
def test_rbm_cd_trains_data_parallel(runs):
    one, two = runs("rbm")
    _ranks_agree(two, 2)
    _statistical(one["rows"], two["rows"])
    for h1, h2 in zip(one["history"], two["history"]):  # the first epoch: the same minibatches
        assert math.isclose(h1[0]["loss"], h2[0]["loss"], rel_tol=0.1, abs_tol=0.01)
        assert h1[0]["lr"] == h2[0]["lr"]


@pytest.mark.slow
def test_general_boltzmann_machine_pcd_trains_data_parallel(runs):
    one, two = runs("bm")
    _ranks_agree(two, 1)
    _statistical(one["rows"], two["rows"])
    assert math.isclose(one["history"][0][0]["loss"], two["history"][0][0]["loss"],
                        rel_tol=0.1, abs_tol=0.01)  # fmt: skip


@pytest.mark.slow
def test_one_process_summary_has_no_parallel_entries(runs):
    one, _ = runs("van")
    assert "data_parallel" not in one and "processes" not in one
