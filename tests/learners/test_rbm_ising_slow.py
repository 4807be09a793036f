"""RBM learns 2D Ising thermodynamics (Torlai & Melko, PRB 94, 165134 (2016)), one temperature.

A SpinRBM (36 spin visible, 144 binary hidden units: an exact representation of the 6 x 6
Ising model needs two binary hidden units per bond) is trained by CD-10 (10^4 Adam steps of
batch 100, cosine decay to lr / 100) on 10^4 Metropolis configurations at T = 3.0, the
example's hardest temperature away from T_c; energy and |m| of its block-Gibbs samples must
agree with the exact 6 x 6 values (transfer matrix). The error bar combines the RBM's
sampling error with the training set's own sampling error (the RBM can at best reproduce the
finite data set).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import physml_lang
from physml_lang.runtime.statistics import binning_analysis

# exact periodic 6 x 6 Ising, T = 3.0 (transfer matrix with the magnetisation tracked)
E_EXACT, M_EXACT = -0.886879, 0.448925

TEXT = """
import Ising, SpinRBM
data S: spin = sample(Ising(L = 6), n = 10000, T = 3.0, chains = 100, thin = 10, seed = 1)
run rbm {
    model SpinRBM(Nv = 36, Nh = 144, sigma = 0.1)
    train SpinRBM via cd(k = 10), data = S, epochs = 100, batch = 100, physical = Ising(L = 6)
    optimizer adam(lr = 0.01)
    schedule cosine(min_factor = 0.01)
    generate chains = 64, burn_in = 500, sweeps = 2000, thin = 2
    measure e = energy / sites, m = abs(magnetization) / sites
}
"""


@pytest.mark.slow
def test_rbm_reproduces_ising_energy_and_magnetisation(tmp_path):
    import torch

    torch.set_num_threads(1)
    path = tmp_path / "rbm.phys"
    path.write_text(TEXT)
    p = physml_lang.load(path)
    res = p.run("rbm", out=tmp_path / "out", seed=0)
    row = res.rows[0]
    # the training set's own error bars (chain-major layout: 100 chains x 100 samples)
    from physml_lang.runtime.plans.learners import training_data

    x = training_data(p.data_loader, p, "S", None, {}).values.reshape(100, 100, 6, 6)
    e_data = -(x * np.roll(x, 1, 2) + x * np.roll(x, 1, 3)).sum((2, 3)) / 36
    m_data = np.abs(x.sum((2, 3))) / 36
    for name, exact, series in (("e", E_EXACT, e_data), ("m", M_EXACT, m_data)):
        data = binning_analysis(series.T)
        sigma = math.hypot(row[name]["stderr"], data.stderr)
        assert abs(row[name]["mean"] - exact) < 4 * sigma, (name, row[name], data, exact)
