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
from physml_lang.runtime.statistics import binning_analysis

EXACT = {
    "u1": (2.0, exact.u1_plaquette_torus),
    "z2": (0.5, exact.z2_plaquette_torus),
    "su2": (2.5, exact.su2_plaquette_torus),
}


def _check(group, kind, opts, L=4, chains=16, n=300, burn=40, seed=7):
    beta, fn = EXACT[group]
    gen = torch.Generator().manual_seed(seed)
    s = make_sampler(kind, group, beta, **opts)
    U = hot_start(group, chains, (L, L), gen)
    U, ser, acc = run_chains(s, U, gen, n, {"p": lambda V: mean_plaquette(V, group)},
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
    gen = torch.Generator().manual_seed(3)
    s = make_sampler("hmc", "su2", 2.0, step_size=0.2, n_steps=5, reunitarize=False)
    U = hot_start("su2", 4, (4, 4, 4), gen)
    for _ in range(100):
        U = s.step(U, gen)
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
