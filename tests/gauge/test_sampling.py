"""Samplers against exact 2D results (fast), group-manifold preservation, option schemas."""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError

from physml_lang.runtime.gauge import (
    exact,
    get_group,
    hot_start,
    make_sampler,
    mean_plaquette,
    run_chains,
)
from physml_lang.runtime.random import RandomStreams
from physml_lang.runtime.statistics import binning_analysis

EXACT = {
    "u1": (2.0, exact.u1_plaquette_torus),
    "z2": (0.5, exact.z2_plaquette_torus),
    "su2": (2.5, exact.su2_plaquette_torus),
}


def _check(group, kind, opts, L=4, chains=16, n=300, burn=40, seed=7):
    beta, fn = EXACT[group]
    streams = RandomStreams(seed)
    s = make_sampler(kind, group, beta, **opts)
    U = hot_start(group, chains, (L, L), streams)
    U, ser, acc = run_chains(s, U, streams, n, {"p": lambda V: mean_plaquette(V, group)},
                             burn_in=burn)  # fmt: skip
    est = binning_analysis(ser["p"])
    ref = fn(beta, L)
    assert abs(est.mean - ref) < 4 * est.stderr, (group, kind, est, ref)
    return est, acc.mean(), U


@pytest.mark.parametrize("group,kind,opts", [
    ("u1", "metropolis", {"hits": 2, "step_size": 1.5}),
    ("u1", "heatbath", {}),
    ("u1", "hmc", {"step_size": 0.2, "n_steps": 5}),
    ("z2", "metropolis", {"hits": 2}),
    ("z2", "heatbath", {}),
    ("su2", "metropolis", {"hits": 2, "step_size": 1.0}),
    ("su2", "heatbath", {}),
    ("su2", "hmc", {"step_size": 0.2, "n_steps": 5}),
])  # fmt: skip
def test_plaquette_2d_exact(group, kind, opts):
    est, acc, U = _check(group, kind, opts, n=200 if group == "su2" else 300)
    assert 0.3 < acc <= 1.0
    assert float(get_group(group).distance_from_group(U)) < 1e-12


def test_su2_stays_in_group_without_reunitarisation():
    streams = RandomStreams(3)
    s = make_sampler("hmc", "su2", 2.0, step_size=0.2, n_steps=5, reunitarize=False)
    U = hot_start("su2", 4, (4, 4, 4), streams)
    for _ in range(100):
        U = s.step(U, streams)
    G = get_group("su2")
    # 100 trajectories x 5 exact SU(2) exponentials: rounding drift only
    assert float(G.distance_from_group(U)) < 1e-11
    det = torch.linalg.det(U)
    assert float((det - 1).abs().max()) < 1e-11


def test_options_validated():
    with pytest.raises(ValidationError):
        make_sampler("hmc", "u1", 1.0, step_size=-0.1)
    with pytest.raises(ValidationError):
        make_sampler("metropolis", "u1", 1.0, sweeps=3)
    with pytest.raises(ValueError):
        make_sampler("hmc", "z2", 1.0)
    with pytest.raises(KeyError):
        make_sampler("gibbs", "u1", 1.0)


@pytest.mark.parametrize("group,kind,opts", [
    ("u1", "metropolis", {"hits": 2, "step_size": 1.5}),
    ("u1", "heatbath", {}),  # von Mises rejection rounds
    ("u1", "hmc", {"step_size": 0.2, "n_steps": 3}),
    ("z2", "heatbath", {}),
    ("z2", "metropolis", {"hits": 2}),
    ("su2", "metropolis", {"hits": 2, "step_size": 1.0}),
    ("su2", "heatbath", {}),  # Kennedy-Pendleton rejection rounds
])  # fmt: skip
def test_a_chain_does_not_depend_on_its_batch(group, kind, opts):
    """Chain b evolves identically (to the last bit) in a batch of 2 and as stream b of a batch
    of 5, and as the only chain of a slice starting at b: its numbers are keyed by its global
    index, and a rejection sampler's rounds do not move the other chains' counters."""
    s = make_sampler(kind, group, 1.5, **opts)

    def chains(n: int, first: int = 0) -> torch.Tensor:
        streams = RandomStreams(11).streams(first)
        U = hot_start(group, n, (4, 4), streams)
        for _ in range(5):
            U = s.step(U, streams)
        return U

    five = chains(5)
    assert torch.equal(chains(2), five[:2])
    assert torch.equal(chains(1, first=3), five[3:4])
