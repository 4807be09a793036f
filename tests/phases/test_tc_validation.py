"""The physics validation of ``classify phases via supervised``: the 2D Ising T_c from the
P(ordered | T) = 1/2 crossings of five lattice sizes, extrapolated in L (slow: 30-60 s on one
core).

Recipe: 64 Metropolis chains per temperature (burn-in 1000 sweeps from an ordered start, 4
configurations 10 sweeps apart), a grid of step 0.025 over 2.15..2.45 and two temperatures in
each training window; T_c(L) from a weighted line through logit P(T) over 0.1 < P < 0.9, its
error from a bootstrap over chains. The CNN (translation-invariant, size-agnostic) is trained
once at L = 16 and read at every size: one function of the configuration across the finite-
size analysis; the fully connected net is retrained at every size (Carrasquilla & Melko).

What it shows (seed 0): the CNN's T_c(L) falls from 2.36 (L = 8) to 2.250 +- 0.002 (L = 32);
T_c + a L^-w with w fitted gives 2.246 +- 0.003 (-1.0 %), w = 1 gives 2.216 (-2.3 %, a poor
fit: chi2/dof ~ 3). What it does not show: T_c within 1 % for every training. A classifier of
the two windows thresholds an order-parameter-like feature at some m*, and its crossing tends
to the T where m(T) = m*, below T_c by a margin set by m* (m ~ (T_c - T)^(1/8) is steep but not
a step): over seven trainings (seeds, epochs, ensembles) the fitted-w extrapolation ranged from
-0.2 % to -2.4 %, a systematic far beyond the bootstrap error (0.1-0.5 %). The fully connected
net, retrained per size on 768 configurations, stays at +3 to +5 % for L <= 32. The asserts
below are what holds across those trainings. The crossings of successive sizes' curves and a
data collapse (finite_size = crossing | collapse) do no better on these raw-configuration
classifiers (seed 1: crossings -2.5 % to -3.7 %, collapse -2.8 %): P(T, L) is not a function of
L^(1/nu) (T - T_c) alone. The remedy, block spins on a fixed grid read by the classifiers
(coarse_grain), is validated over four seeds in tests/phases/test_tc_crossing.py.
"""

from __future__ import annotations

import pytest
import torch

import physml_lang

ONSAGER = 2.269185
GRID = ", ".join(f"{2.15 + 0.025 * i:.3f}" for i in range(13))
SOURCE = f"""
import Ising
learner cnn_net = classifier(channels = [8, 8]) respecting translation
learner fc_net = classifier(hidden = [64])
run tc {{
    model Ising
    sampler metropolis(update = checkerboard, start = ordered, chains = 64, sweeps = 40,
                       burn_in = 1000, thin = 10)
    scan T in [1.7, 1.9, {GRID}, 2.7, 2.9]
    classify phases via supervised(epochs = 100, lr = 1e-3, batch = 64),
        learners = [cnn_net, fc_net], sizes = [8, 12, 16, 24, 32], train_size = 16,
        ordered_below = 2.0, disordered_above = 2.6, controls = false, bootstrap = 100,
        exact = {ONSAGER}
}}
"""


@pytest.mark.slow
def test_ising_tc_from_five_sizes_finite_size_analysis(tmp_path):
    torch.set_num_threads(1)
    res = physml_lang.load(SOURCE).run("tc", out=tmp_path, seed=0, progress=False)
    rows = res.rows
    for r in rows:
        print({k: r.get(k) for k in ("kind", "learner", "L", "fit", "T_c", "T_c_err", "nu",
                                     "deviation", "accuracy")})  # fmt: skip
    sized = {(r["learner"], r["L"]): r for r in rows if r["kind"] == "size"}
    cnn = [sized["cnn_net", L]["T_c"] for L in (8, 12, 16, 24, 32)]
    assert all(a > b for a, b in zip(cnn, cnn[1:], strict=False))  # T_c(L) falls with L
    assert all(r["accuracy"] > 0.88 for r in sized.values())
    assert abs(sized["cnn_net", 32]["deviation"]) < 0.015
    assert sized["cnn_net", 32]["T_c_err"] < 0.005
    fits = {(r["learner"], r["fit"]): r for r in rows if r["kind"] == "extrapolated"}
    assert abs(fits["cnn_net", "nu fitted"]["deviation"]) < 0.025
    assert abs(fits["cnn_net", "nu fixed"]["deviation"]) < 0.03
    fc = [sized["fc_net", L]["deviation"] for L in (8, 12, 16, 24, 32)]
    assert all(0 < d < 0.06 for d in fc)  # the per-size dense nets sit above T_c
