"""RBMs with categorical (Potts, softmax) visible units: exact log Z two ways and by AIS, the
dense layer against the language's compiled PottsRBM (stdlib), and learning a small
multi-valued distribution (samples of a 2 x 2 three-state Potts model) to a stated KL."""

from __future__ import annotations

import math

import pytest
import torch

import physml_lang
from physml_lang.api import bind_runtime
from physml_lang.runtime.learners.ais import ais_log_z, exact_log_z
from physml_lang.runtime.learners.dbn import RBMLayer, Units
from physml_lang.runtime.random import RandomStreams

Q = 3


def layer(n=4, m=3, q=Q, seed=0, sigma=0.8) -> RBMLayer:
    """A random categorical RBM with visible and hidden biases."""
    g = torch.Generator().manual_seed(seed)
    L = RBMLayer(Units("potts", q), n, m, sigma, g)
    with torch.no_grad():
        L.a.copy_(torch.randn(L.a.shape, generator=g, dtype=torch.float64) * 0.5)
        L.b.copy_(torch.randn(L.b.shape, generator=g, dtype=torch.float64) * 0.5)
    return L


def brute_log_z(L: RBMLayer) -> float:
    """log sum_{v, h} exp(-E(v, h)) over every joint state."""
    import itertools

    n, m, q = L.n_visible, L.n_hidden, L.units.q
    v = torch.tensor(list(itertools.product(range(q), repeat=n)), dtype=torch.float64)
    h = torch.tensor(list(itertools.product([0.0, 1.0], repeat=m)), dtype=torch.float64)
    V = v.repeat_interleave(len(h), 0)
    H = h.repeat(len(v), 1)
    with torch.no_grad():
        return float(torch.logsumexp(-L.energy(V, H), 0))


@pytest.mark.parametrize("n,m", [(4, 3), (2, 6)])  # enumerate the visible, then the hidden side
def test_exact_log_z_agrees_with_brute_force(n, m):
    L = layer(n, m)
    assert L.exact_log_z() == pytest.approx(brute_log_z(L), abs=1e-10)


def test_ais_agrees_with_exact_log_z():
    """AIS from the uniform distribution (Z_0 = q^n 2^m) within 4 of its standard errors."""
    torch.manual_seed(0)
    L = layer(5, 4, sigma=1.0)
    exact = L.exact_log_z()
    est, se = L.ais_log_z(1000, 200, RandomStreams(3, "cpu"))
    assert se < 0.05
    assert abs(est - exact) < 4 * se + 1e-3, (est, exact, se)


def test_softmax_conditional_and_free_energy():
    """p(v_i | h) is a softmax over the q values; F(v) = -log sum_h exp(-E(v, h))."""
    import itertools

    L = layer(3, 4)
    v = torch.tensor([[0.0, 1.0, 2.0], [2.0, 2.0, 0.0]], dtype=torch.float64)
    h = torch.tensor(list(itertools.product([0.0, 1.0], repeat=4)), dtype=torch.float64)
    with torch.no_grad():
        for b in range(2):
            e = L.energy(v[b : b + 1].expand(len(h), 3), h)
            assert float(L.free_energy(v[b : b + 1])) == pytest.approx(
                float(-torch.logsumexp(-e, 0)), abs=1e-10)  # fmt: skip
    # the sampled values follow the softmax: a site with a strong field on value 2
    hs = torch.zeros(20000, 4, dtype=torch.float64)
    with torch.no_grad():
        L.a.zero_()
        L.a.view(3, Q)[0] = torch.tensor([0.0, math.log(2.0), math.log(7.0)])
    x = L.sample_visible(hs, RandomStreams(1, "cpu"))[:, 0]
    freq = torch.stack([(x == k).double().mean() for k in range(Q)])
    expected = torch.tensor([0.1, 0.2, 0.7], dtype=torch.float64)
    se = (expected * (1 - expected) / len(x)).sqrt()
    assert bool(((freq - expected).abs() < 4 * se).all()), freq


def compiled_potts_rbm(n=4, m=3):
    """The stdlib PottsRBM compiled (float32: its delta kernels are float32)."""
    p = physml_lang.load("import PottsRBM\n")
    bind_runtime()
    return p.compile_ir(p.instantiate("PottsRBM", {"Nv": n, "Nh": m, "sigma": 0.7}),
                        kind="boltzmann")  # fmt: skip


def test_language_potts_rbm_is_the_dense_categorical_layer():
    """The compiled PottsRBM (deltas expanded by the compiler) and the dense layer with the
    same weights have the same free energy, exact log Z, and (AIS of the compiled model)
    log Z within error."""
    cm = compiled_potts_rbm()
    L = layer(4, 3)
    with torch.no_grad():
        for k in range(Q):
            L.W.view(4, Q, 3)[:, k, :] = cm.params[f"W{k}"].double()
            cm.params[f"a{k}"].copy_(torch.linspace(-0.5, 0.5, 4) * (k - 1))
            L.a.view(4, Q)[:, k] = cm.params[f"a{k}"].double()
        cm.params["b"].copy_(torch.tensor([0.3, -0.2, 0.1]))
        L.b.copy_(cm.params["b"].double())
    v = torch.tensor([[0, 1, 2, 0], [2, 2, 1, 1], [1, 0, 0, 2]], dtype=torch.float64)
    with torch.no_grad():
        f_lang = cm.free_energy({"v": v.float()}, ["h"]).double()
        f_dense = L.free_energy(v)
    assert torch.allclose(f_lang, f_dense, atol=1e-5)  # float32 rounding
    assert exact_log_z(cm) == pytest.approx(L.exact_log_z(), abs=1e-4)
    est, se = ais_log_z(cm, 500, 200, RandomStreams(5, "cpu"))
    assert abs(est - L.exact_log_z()) < 4 * se + 1e-3


POTTS_TEXT = """
import IMPORTS
data S: potts(3) = sample(Potts(L = 2, q = 3), n = 2000, T = 1.0, chains = 100, thin = 5,
                          seed = 4)
learner LEARNER
run fit {
    train crbm via cd(k = 1), data = S, epochs = 20, batch = 100
    optimizer adam(lr = 0.05)
    schedule cosine(min_factor = 0.1)
    measure exact_kl, exact_log_likelihood, log_likelihood
    ais betas = 400, chains = 100
}
"""


@pytest.mark.parametrize("imports,learner", [
    pytest.param("Potts, PottsRBM", "crbm = PottsRBM(Nv = 4, Nh = 6, sigma = 0.1)",
                 marks=pytest.mark.slow),  # the compiled model: ~13 s under load
    ("Potts", "crbm = dbn(layers = [4, 6], sigma = 0.1)")])  # fmt: skip
def test_learns_a_small_potts_distribution(imports, learner):
    """2000 samples of the 2 x 2 periodic three-state Potts model at T = 1 (81 states; each
    bond counted twice on a 2 x 2 torus, so the distribution is far from uniform): the
    trained categorical RBM -- the language's PottsRBM and a one-layer dbn on potts(3) data
    -- reaches KL(data || model) < 0.1 nats by exact enumeration (measured, seed 2: 0.061
    and 0.066; the uniform model: 2.27 nats; the finite sample alone gives about
    (81 - 1) / (2 * 2000) = 0.02), and its AIS log Z agrees with the exact one within 4 of
    AIS's standard errors (measured: 1.1 and 0.4 sigma)."""
    p = physml_lang.load(POTTS_TEXT.replace("LEARNER", learner).replace("IMPORTS", imports))
    p.check()
    row = p.run(seed=2).rows[0]
    kl = row["exact_kl"]
    uniform = 4 * math.log(3) - kl["data_entropy"]
    assert uniform > 2.0
    assert kl["mean"] < 0.1, kl
    # log Z_exact - log Z_AIS = ll_AIS - ll_exact (the same data, the same F)
    ll, exact = row["log_likelihood"], row["exact_log_likelihood"]
    assert abs(ll["mean"] - exact["mean"]) < 4 * row["log_z"]["stderr"] + 1e-3


def test_potts_data_feed_checks():
    """Data of another domain, or of other widths, are located errors."""
    text = POTTS_TEXT.replace("LEARNER", "crbm = dbn(layers = [5, 6])").replace("IMPORTS",
                                                                                "Potts")
    with pytest.raises(physml_lang.PhysmlError) as err:
        physml_lang.load(text).check()
    assert "P405" in str(err.value) and "first layer has 5 units" in str(err.value)
