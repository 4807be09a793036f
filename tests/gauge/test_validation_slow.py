"""Long validations against exact / strong-coupling results (pytest -m slow)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from physml_lang.runtime.gauge import (
    exact,
    hot_start,
    make_sampler,
    mean_plaquette,
    run_chains,
    topological_charge,
)
from physml_lang.runtime.random import RandomStreams
from physml_lang.runtime.statistics import binning_analysis

pytestmark = pytest.mark.slow


def test_u1_l8_beta2_hmc_plaquette_and_topology():
    """2D U(1), L = 8, beta = 2 by HMC: <cos P> vs the torus value (0.697775 in infinite
    volume) and <Q^2> vs the exact 1.2393; reports tau_int of Q."""
    streams = RandomStreams(11)
    s = make_sampler("hmc", "u1", 2.0, step_size=0.1, n_steps=10)
    U = hot_start("u1", 32, (8, 8), streams)
    obs = {"p": lambda V: mean_plaquette(V, "u1"), "Q": topological_charge,
           "Q2": lambda V: topological_charge(V) ** 2}  # fmt: skip
    U, ser, acc = run_chains(s, U, streams, 3000, obs, burn_in=200)
    p, q2, q = (binning_analysis(ser[k]) for k in ("p", "Q2", "Q"))
    p_ref = exact.u1_plaquette_torus(2.0, 8)
    q2_ref = exact.u1_topological_susceptibility_torus(2.0, 8)
    print(f"\n<cos P> = {p.mean:.5f} +- {p.stderr:.5f} (torus {p_ref:.6f}, inf 0.697775); "
          f"<Q^2> = {q2.mean:.4f} +- {q2.stderr:.4f} (exact {q2_ref:.4f}); "
          f"tau_int(Q) = {q.tau_int:.2f}, tau_int(Q^2) = {q2.tau_int:.2f} trajectories; "
          f"acceptance {acc.mean():.3f}")  # fmt: skip
    assert abs(p.mean - p_ref) < 4 * p.stderr
    assert abs(q2.mean - q2_ref) < 4 * q2.stderr
    assert abs(q.mean) < 4 * math.sqrt(q2_ref / (ser["Q"].size / (2 * q.tau_int)))


@pytest.mark.parametrize("kind", ["heatbath", "metropolis", "hmc"])
def test_su2_2d_l8(kind):
    """2D SU(2), beta = 4 on 8x8: <Re tr P / 2> vs the exact torus value."""
    streams = RandomStreams(5)
    opts = {"hmc": {"step_size": 0.15, "n_steps": 7}, "metropolis": {"step_size": 0.8, "hits": 4},
            "heatbath": {}}[kind]  # fmt: skip
    s = make_sampler(kind, "su2", 4.0, **opts)
    U = hot_start("su2", 16, (8, 8), streams)
    U, ser, _ = run_chains(s, U, streams, 800, {"p": lambda V: mean_plaquette(V, "su2")},
                           burn_in=100)  # fmt: skip
    est = binning_analysis(ser["p"])
    ref = exact.su2_plaquette_torus(4.0, 8)
    print(f"\n2D SU(2) {kind}: {est.mean:.5f} +- {est.stderr:.5f} vs {ref:.5f}")
    assert abs(est.mean - ref) < 4 * est.stderr


@pytest.mark.parametrize("group,beta,kind", [("su2", 0.8, "heatbath"), ("z2", 0.2, "heatbath"),
                                             ("su2", 0.8, "hmc")])  # fmt: skip
def test_4d_strong_coupling(group, beta, kind):
    """4D pure gauge at small beta: <p> = u + 4 u^5 + ..., u = I2/I1 (su2) or tanh (z2)."""
    streams = RandomStreams(9)
    opts = {"step_size": 0.25, "n_steps": 4} if kind == "hmc" else {}
    s = make_sampler(kind, group, beta, **opts)
    U = hot_start(group, 8, (4, 4, 4, 4), streams)
    U, ser, _ = run_chains(s, U, streams, 300, {"p": lambda V: mean_plaquette(V, group)},
                           burn_in=50)  # fmt: skip
    est = binning_analysis(ser["p"])
    u = exact.su2_plaquette_infinite(beta) if group == "su2" else math.tanh(beta)
    ref = u + 4 * u**5
    print(f"\n4D {group} beta={beta}: {est.mean:.5f} +- {est.stderr:.5f} vs strong coupling "
          f"{ref:.5f} (u^9 ~ {u**9:.1e})")  # fmt: skip
    assert abs(est.mean - ref) < 4 * est.stderr + 10 * u**9


def test_z2_2d_l8_metropolis():
    streams = RandomStreams(2)
    s = make_sampler("metropolis", "z2", 0.8, hits=2)
    U = hot_start("z2", 32, (8, 8), streams)
    U, ser, _ = run_chains(s, U, streams, 1000, {"p": lambda V: mean_plaquette(V, "z2")},
                           burn_in=100)  # fmt: skip
    est = binning_analysis(ser["p"])
    ref = exact.z2_plaquette_torus(0.8, 8)
    print(f"\n2D Z2: {est.mean:.5f} +- {est.stderr:.5f} vs {ref:.5f}")
    assert abs(est.mean - ref) < 4 * est.stderr
    assert np.isfinite(est.tau_int)
