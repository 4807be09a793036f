"""The Hopfield phase diagram (``phases xi via tempering(...)``): the sampler against exact
enumeration, the AGS saddle-point solver against its known numbers, the language's checks, and
(slow) T_g and alpha_c(0) against Amit-Gutfreund-Sompolinsky within the issue's tolerances.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest
import torch

import physml_lang
from physml_lang.catalogue import CATALOGUE
from physml_lang.diagnostics import PhysmlError
from physml_lang.runtime.hopfield import ags, kernels
from physml_lang.runtime.hopfield.analysis import binder, crossing
from physml_lang.runtime.hopfield.chains import PhaseChains
from physml_lang.runtime.random import RandomStreams

ROOT = Path(__file__).resolve().parents[2]
HOPFIELD = (ROOT / "stdlib" / "hopfield.phys").read_text()


# ---------------------------------------------------------------- exact enumeration


def _enumerate(xi: np.ndarray, T: float) -> dict[str, float]:
    """Exact <max_mu |m_mu|>, <q^2>, <q^4> (two independent replicas) and <E>/N of the
    Hopfield model E = -(N/2) sum_mu m_mu^2 + P/2 with patterns xi (P, N)."""
    P, N = xi.shape
    s = np.array(list(itertools.product([-1.0, 1.0], repeat=N)))
    m = s @ xi.T / N
    E = -0.5 * N * (m * m).sum(1) + 0.5 * P
    w = np.exp(-(E - E.min()) / T)
    p = w / w.sum()
    q = s @ s.T / N
    return {"m": float(p @ np.abs(m).max(1)), "q2": float(p @ (q**2) @ p),
            "q4": float(p @ (q**4) @ p), "energy": float(p @ E) / N}  # fmt: skip


def test_sampler_matches_exact_enumeration_N10_P2():
    """N = 10, P = 2 at T = 0.8 and 1.2 (a two-rung tempering ladder, so exchanges are
    exercised): <max|m|> of the retrieval chains, <q^2>, <q^4> of the replica pairs and <E>/N
    against enumeration within 4 sigma (sigma: spread over 200 independent chain sets)."""
    rng = np.random.default_rng(7)
    xi = np.where(rng.random((2, 10)) < 0.5, -1.0, 1.0)
    D = 200
    ladder = [0.8, 1.2]
    xi_t = torch.tensor(np.repeat(xi[None], D, 0))
    chains = PhaseChains(xi_t, ladder, ladder, 100, RandomStreams(3))
    chains.advance(700)
    a = chains.averages()
    assert a.measurements == 600 and float(a.acceptance[0]) > 0.3
    for k, T in enumerate(ladder):
        exact = _enumerate(xi, T)
        for name, est in (("m", a.m[:, k]), ("q2", a.q2[:, k]), ("q4", a.q4[:, k]),
                          ("energy", a.energy[:, k])):  # fmt: skip
            x = est.numpy()
            mean, err = x.mean(), x.std(ddof=1) / math.sqrt(D)
            assert abs(mean - exact[name]) < 4 * err + 1e-12, (T, name, mean, err, exact[name])


def test_numba_and_torch_sweeps_agree():
    """The compiled loop and the batched tensor loop draw the same numbers and give the same
    chains, at T > 0 and at T = 0."""
    rng = np.random.default_rng(1)
    D, P, N, B = 2, 3, 16, 6
    xi = torch.tensor(np.where(rng.random((D, N, P)) < 0.5, -1.0, 1.0))
    dis = torch.tensor([0, 1, 0, 1, 0, 1])
    s0 = torch.tensor(np.where(rng.random((B, N)) < 0.5, -1.0, 1.0))
    beta = torch.tensor([0.5, 1.0, 2.0, math.inf, 1.5, math.inf], dtype=torch.float64)
    u = torch.tensor(rng.random((5, B, N)))
    out = []
    for backend in (["numba"] if kernels.AVAILABLE else []) + ["torch"]:
        s = s0.clone()
        m = kernels.overlaps(s, xi, dis).contiguous()
        kernels.sweeps(s, m, xi, dis, beta, u, backend)
        assert torch.allclose(m, kernels.overlaps(s, xi, dis), atol=1e-12)
        out.append(s)
    assert all(torch.equal(out[0], o) for o in out)


def test_exchange_keeps_a_permutation_of_the_ladder():
    ladder = torch.tensor([1.0, 0.8, 0.6, 0.5], dtype=torch.float64)
    slots = ladder.repeat(3, 1)
    g = torch.Generator().manual_seed(0)
    for t in range(20):
        e = torch.randn(3, 4, generator=g, dtype=torch.float64)
        slots = kernels.exchange(slots, e, torch.rand(3, 3, generator=g, dtype=torch.float64), t)
        assert torch.equal(slots.sort(1).values, ladder.sort().values.repeat(3, 1))


def test_checkpoint_restores_the_chains_exactly():
    """tensors() / restore(): a restored point continues with the very same numbers."""
    rng = np.random.default_rng(2)
    xi = torch.tensor(np.where(rng.random((3, 2, 12)) < 0.5, -1.0, 1.0))
    a = PhaseChains(xi, [0.8, 1.2, 1.6], [0.0, 0.5], 5, RandomStreams(4))
    a.advance(10)
    saved = a.tensors()
    b = PhaseChains(xi, [0.8, 1.2, 1.6], [0.0, 0.5], 5, RandomStreams(4))
    b.restore(saved)
    a.advance(10)
    b.advance(10)
    assert torch.equal(a.s, b.s) and torch.equal(a.beta_slot, b.beta_slot)
    assert torch.equal(a.averages().q2, b.averages().q2)


def test_binder_and_crossing():
    q2 = np.array([[1.0, 2.0]])
    assert binder(q2, 3 * q2**2) == pytest.approx([0.0, 0.0])  # Gaussian q
    assert binder(q2, q2**2) == pytest.approx([1.0, 1.0])  # q = +-q0
    assert crossing([1, 2, 3], [0.2, 0.1, -0.1], True) == pytest.approx(2.5)
    assert crossing([1, 2, 3], [0.0, 0.1, -0.3], False) == pytest.approx(2.25)
    assert crossing([1, 2, 3], [-0.2, -0.1, -0.1], True) is None


# ---------------------------------------------------------------- the AGS lines


def test_ags_capacity_at_zero_temperature():
    """alpha_c(0) = 0.1379 with the retrieval overlap m = 0.967 there (AGS 1985)."""
    a, m = ags.capacity_zero_temperature()
    assert a == pytest.approx(0.1379, abs=1e-4)
    assert m == pytest.approx(0.967, abs=1e-3)


def test_ags_retrieval_line():
    """alpha_M(T): continuous with alpha_c(0) at low T, decreasing, -> 0 as T -> 1; at T = 0.1
    the finite-T equations agree with the T = 0 limit within 3 %."""
    T = np.array([0.1, 0.5, 0.9])
    a = ags.retrieval_alpha(T)
    a0, _ = ags.capacity_zero_temperature()
    assert abs(a[0] / a0 - 1) < 0.03
    assert np.all(np.diff(a) < 0)
    assert a[-1] < 0.01
    assert float(ags.glass_temperature(0.1)) == pytest.approx(1.316, abs=1e-3)


# ---------------------------------------------------------------- the language

TINY = """
run d {
    model Hopfield(N = 30)
    phases xi via tempering(T = [0.9, 1.2, 1.5], sweeps = 60, burn_in = 20),
        alpha = [0.1], capacity = [0.2], disorder = 4, retrieval = [0, 0.5]
    scan N in [20, 30]
}
"""


def _errors(src: str) -> list:
    with pytest.raises(PhysmlError) as exc:
        physml_lang.compile(src).check()
    return exc.value.diagnostics


@pytest.mark.parametrize("run,code,where", [
    ("run d { model Hopfield(N = 20)  phases xi via metropolis(sweeps = 10), alpha = [0.1] }",
     "P203", "metropolis"),
    ("run d { model Hopfield(N = 20)  phases xi via tempering(T = [1.0]), alpha = [0.1]\n"
     "scan P in [2, 3] }", "P205", "P"),
    ("run d { model Hopfield(N = 20)  phases eta via tempering(T = [1.0]), alpha = [0.1] }",
     "P203", "eta"),
    ("run d { model Hopfield(N = 20)  phases xi via tempering(T = [-1.0]), alpha = [0.1] }",
     "P402", "T"),
    ("run d { model Hopfield(N = 20)  phases xi via tempering(T = [1.0], sweeps = 10, "
     "burn_in = 10), alpha = [0.1] }", "P425", "burn_in"),
    ("run d { model Hopfield(N = 20)  phases xi via tempering(T = [1.0]), alpha = [0.1], "
     "disordr = 3 }", "P401", "disordr"),
    ("run d { model Ising(L = 4)  phases xi via tempering(T = [1.0]), alpha = [0.1] }",
     "P422", "Ising"),
    ("run d { model Fixed(N = 20)  phases xi via tempering(T = [1.0]), alpha = [0.1], "
     "disorder = 4 }", "P425", "disorder = 4"),
])  # fmt: skip
def test_located_errors(run, code, where):
    extra = """
model Ising(L: int = 4) {
    lattice square(L, L, boundary = periodic)
    field s: spin on sites
    energy E = -sum(s[i] * s[j] for (i, j) in bonds)
}
model Fixed(N: int = 20, P: int = 2) {
    graph complete(N)
    field s: spin on sites
    data xi: spin[P, N] = random(seed = 3)
    param W[i, j] = sum(xi[mu, i] * xi[mu, j] for mu) / N, W[i, i] = 0
    energy E = -sum(W[i, j] * s[i] * s[j] for (i, j) in pairs)
}
"""
    src = HOPFIELD + extra + run
    (d,) = _errors(src)
    assert d.code == code, d
    assert d.span is not None, d
    line = src.splitlines()[d.span.line - 1]
    assert where in line[d.span.column - 1:], (line, d.span, where)


def test_a_model_without_the_hebb_energy_is_refused_when_it_runs(tmp_path):
    src = """
model Twice(N: int = 20, P: int = 2, seed: int = 1) {
    graph complete(N)
    field s: spin on sites
    data xi: spin[P, N] = random(seed = seed)
    param W[i, j] = 2 * sum(xi[mu, i] * xi[mu, j] for mu) / N, W[i, i] = 0
    energy E = -sum(W[i, j] * s[i] * s[j] for (i, j) in pairs)
}
run d { model Twice(N = 20)  phases xi via tempering(T = [1.0], sweeps = 4, burn_in = 1), alpha = [0.1] }
"""
    with pytest.raises(PhysmlError) as exc:
        physml_lang.compile(src).run("d", out=tmp_path, progress=False)
    (d,) = exc.value.diagnostics
    assert d.code == "P422" and "Hebb" in d.message


def test_a_phases_run_end_to_end(tmp_path):
    """Rows per (N, alpha, T), the located crossings in the summary, both plots."""
    p = physml_lang.compile(HOPFIELD + TINY)
    p.check()
    result = p.run("d", out=tmp_path, progress=False)
    rows = result.summary["rows"]
    glass = [r for r in rows if "binder" in r]
    assert len(glass) == 2 * 3 and all(r["alpha"] == pytest.approx(0.1, abs=0.02) for r in glass)
    zero = [r for r in rows if r["T"] == 0]
    assert len(zero) == 4 and all(0 <= r["m"]["mean"] <= 1 for r in zero)
    assert {"T_g", "alpha_c"} <= set(result.summary["phases"])
    assert (tmp_path / "phase_diagram.png").is_file() and (tmp_path / "binder.png").is_file()
    columns = CATALOGUE.tasks.get("phases").facts.columns.of(["N"], [], [])
    assert all(set(r) <= set(columns) for r in rows)
    again = physml_lang.compile(HOPFIELD + TINY).run("d", progress=False).summary["rows"]
    assert again == rows  # reproducible at a fixed seed


# ---------------------------------------------------------------- against AGS (slow)


@pytest.mark.slow
def test_glass_temperature_at_alpha_0_1_within_5_percent():
    """T_g(0.1) from N = 50 and 100 (128 pattern sets, 2000 sweeps of an 11-temperature
    ladder): the crossing of the scaled spin-glass susceptibility N^(2/3) [<q^2>] within 5 % of
    AGS 1 + sqrt(0.1) = 1.316. Measured (seed 0): 1.334 +- 0.040 (+1.4 %). The Binder
    cumulant's crossing at these sizes is 1.17 +- 0.04 (-11 %; g dips below 0 above T_g from the
    sample-to-sample spread of <q^2>), the per-sample cumulant's 1.38 +- 0.11 (+4.8 %): reported
    in the summary, not asserted."""
    src = HOPFIELD + """
run glass {
    model Hopfield(N = 100)
    phases xi via tempering(T = linspace(0.9, 1.9, 11), sweeps = 2000, burn_in = 500),
        alpha = [0.1], disorder = 128, retrieval = []
    scan N in [50, 100]
}
"""
    found = physml_lang.compile(src).run("glass", progress=False).summary["phases"]["T_g"]
    assert {c["method"] for c in found} == {"binder", "binder_per_sample",
                                            "scaled_susceptibility"}  # fmt: skip
    (c,) = [x for x in found if x["method"] == "scaled_susceptibility"]
    assert c["mean"] is not None and c["stderr"] is not None
    assert abs(c["mean"] / 1.3162 - 1) < 0.05, c


@pytest.mark.slow
def test_capacity_at_zero_temperature_within_10_percent():
    """alpha_c(0) from the crossing of the fraction retrieved at T = 0 (m > 0.9 after
    zero-temperature sequential dynamics from the pattern) of N = 400 and 800, 200 pattern sets:
    within 10 % of AGS 0.1379. Measured (seed 0): 0.134 +- 0.007 (-2.8 %)."""
    src = HOPFIELD + """
run capacity {
    model Hopfield(N = 400)
    phases xi via tempering(T = [1.0], sweeps = 60, burn_in = 59),
        capacity = [0.11, 0.12, 0.13, 0.14, 0.15, 0.16, 0.17], disorder = 200, retrieval = [0]
    scan N in [400, 800]
}
"""
    found = physml_lang.compile(src).run("capacity", progress=False).summary["phases"]["alpha_c"]
    (c,) = [x for x in found if x["method"] == "retrieved"]
    assert c["mean"] is not None and c["stderr"] is not None
    assert abs(c["mean"] / 0.1379 - 1) < 0.10, c


@pytest.mark.slow
@pytest.mark.long
def test_the_full_phase_diagram(tmp_path):
    """The diagram at alpha = 0.05, 0.1, 0.2 (N = 50, 100, 200; 128 pattern sets) and the T = 0
    capacity (N = 400, 800, 1600): every T_g from the crossing of the scaled spin-glass
    susceptibility of the two largest sizes within 5 % of 1 + sqrt(alpha), every alpha_c(0)
    from the crossing of the fraction retrieved within 10 % of 0.1379, and the plot."""
    src = HOPFIELD + """
run glass {
    model Hopfield(N = 100)
    phases xi via tempering(T = linspace(0.9, 1.9, 11), sweeps = 2000, burn_in = 500),
        alpha = [0.05, 0.1, 0.2], disorder = 128, retrieval = [0, 0.3, 0.6]
    scan N in [50, 100, 200]
}
run capacity {
    model Hopfield(N = 400)
    phases xi via tempering(T = [1.0], sweeps = 60, burn_in = 59),
        capacity = [0.11, 0.12, 0.13, 0.14, 0.15, 0.16, 0.17], disorder = 200, retrieval = [0]
    scan N in [400, 800, 1600]
}
"""
    p = physml_lang.compile(src)
    glass = p.run("glass", out=tmp_path / "glass", progress=False).summary["phases"]["T_g"]
    for alpha in (0.05, 0.1, 0.2):
        (c,) = [x for x in glass if x["alpha"] == alpha and x["N"] == [100, 200]
                and x["method"] == "scaled_susceptibility"]  # fmt: skip
        assert abs(c["mean"] / (1 + math.sqrt(alpha)) - 1) < 0.05, c
    cap = p.run("capacity", out=tmp_path / "capacity", progress=False).summary["phases"]
    for c in (x for x in cap["alpha_c"] if x["method"] == "retrieved"):
        assert abs(c["mean"] / 0.1379 - 1) < 0.10, c
    assert (tmp_path / "glass" / "phase_diagram.png").is_file()


def test_an_interrupted_run_resumes_to_the_same_results(tmp_path, monkeypatch):
    """Killed after its first point, a run resumed with --resume gives the rows and the
    crossings of an uninterrupted run (the finished points' disorder samples are kept)."""
    from physml_lang.runtime.hopfield import task as hopfield_task

    full = physml_lang.compile(HOPFIELD + TINY).run("d", out=tmp_path / "a", progress=False)
    calls = {"n": 0}
    original = hopfield_task.PhasesPoint.step

    def interrupted(self):
        calls["n"] += 1
        if calls["n"] == 5:  # during the second point
            raise KeyboardInterrupt
        original(self)

    monkeypatch.setattr(hopfield_task.PhasesPoint, "step", interrupted)
    with pytest.raises(PhysmlError):
        physml_lang.compile(HOPFIELD + TINY).run("d", out=tmp_path / "b", progress=False,
                                                 checkpoint_seconds=0.0)  # fmt: skip
    monkeypatch.setattr(hopfield_task.PhasesPoint, "step", original)
    resumed = physml_lang.compile(HOPFIELD + TINY).run("d", out=tmp_path / "b", progress=False,
                                                       resume=True)  # fmt: skip
    assert resumed.summary["rows"] == full.summary["rows"]
    assert resumed.summary["phases"] == full.summary["phases"]
