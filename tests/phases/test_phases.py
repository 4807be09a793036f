"""classify phases end to end on small lattices, and its located errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import physml_lang
from physml_lang.diagnostics import PhysmlError
from physml_lang.runtime.phases import analysis, supervised
from physml_lang.runtime.phases.sampling import Configurations, block_spins
from physml_lang.runtime.random import RandomStreams

HEAD = """
import Ising
import TriangularIsing
learner cnn_net = classifier(channels = [4]) respecting translation
learner fc_net = classifier(hidden = [16])
"""
SAMPLER = ("sampler metropolis(update = checkerboard, start = ordered, chains = 8, sweeps = 40, "
           "burn_in = 200, thin = 5)")


def _program(body: str):
    return physml_lang.load(HEAD + body)


def _run(body: str, name: str, tmp_path):
    torch.set_num_threads(1)
    return _program(body).run(name, out=tmp_path, seed=0, progress=False)


def test_supervised_rows_controls_transfer(tmp_path):
    res = _run(f"""run phases {{ model Ising {SAMPLER}
        scan T in linspace(1.6, 3.2, 9)
        classify phases via supervised(epochs = 30, batch = 32, lr = 3e-3),
            learners = [cnn_net, fc_net], sizes = [8, 10, 12],
            exact = 2.269185, noise = 0.1, one_side = true, bootstrap = 20,
            transfer = [TriangularIsing], transfer_T = [[3.0, 4.4]] }}""", "phases", tmp_path)
    rows = res.rows
    sized = [r for r in rows if r["kind"] == "size"]
    assert [(r["learner"], r["L"]) for r in sized] == [
        (n, L) for L in (8, 10, 12) for n in ("cnn_net", "fc_net")]
    for r in sized:  # smoke sizes: T_c(L) within 20 % of Onsager's
        assert r["accuracy"] > 0.75 and abs(r["deviation"]) < 0.2
    controls = {r["learner"]: r for r in rows if r["kind"] == "control"}
    assert controls["logistic(m)"]["accuracy"] < 0.7  # the sign symmetry defeats m alone
    assert all(r["accuracy"] < 0.75 for r in controls.values())
    assert {r["learner"] for r in rows if r["kind"] == "extrapolated"} == {"cnn_net", "fc_net"}
    (t,) = [r for r in rows if r["kind"] == "transfer" and r["learner"] == "cnn_net"]
    assert not t["retrained"] and abs(t["T_c"] - 3.640957) / 3.640957 < 0.1
    assert any(r["kind"] == "noise" for r in rows) and any(r["kind"] == "one_side" for r in rows)
    assert (tmp_path / "tc_vs_inverse_size.png").exists()
    assert (tmp_path / "summary.json").exists()


def test_pca_and_confusion(tmp_path):
    res = _run(f"""run pca {{ model Ising {SAMPLER}
        scan T in linspace(1.6, 3.2, 9)
        classify phases via pca, sizes = [8], exact = 2.269185, bootstrap = 10 }}""", "pca",
               tmp_path)
    (r,) = res.rows
    assert r["explained"] > 0.3 and abs(r["deviation"]) < 0.15
    res = _run(f"""run confusion {{ model Ising {SAMPLER}
        scan T in linspace(1.6, 3.2, 9)
        classify phases via confusion(epochs = 10, batch = 32, lr = 3e-3), learners = [fc_net], sizes = [8] }}""",
               "confusion", tmp_path / "c")
    (r,) = res.rows
    assert 1.6 < r["T_c"] < 3.2 and r["peak_accuracy"] > 0.7  # smoke: 9 temperatures, L = 8


@pytest.mark.parametrize("body, code, words", [
    ("classify phases via supervised, learners = [nope]", "P207", "unknown learner"),
    ("classify phases via supervised", "P109", "learners"),
    ("classify phases via pca, ordered_below = 3.0, disordered_above = 2.0", "P402", ""),
    ("classify phases via supervised, learners = [fc_net], ordered_below = 1.0", "P429",
     "ordered phase"),
    ("classify phases via magic", "P203", "unknown method"),
    ("classify phases via supervised, learners = [cnn_net], train_size = 8", "P429", "sizes"),
])
def test_located_errors(body, code, words):
    with pytest.raises(PhysmlError) as err:
        _program(f"run r {{ model Ising {SAMPLER} scan T in linspace(1.6, 3.2, 9) {body} }}").check()
    assert err.value.diagnostics[0].code == code and words in err.value.diagnostics[0].message


def test_dense_classifier_cannot_respect_translation():
    prog = physml_lang.load(HEAD.replace("classifier(hidden = [16])",
                                         "classifier(hidden = [16]) respecting translation")
                            + f"run r {{ model Ising {SAMPLER} scan T in linspace(1.6, 3.2, 9)"
                            " classify phases via supervised, learners = [fc_net] }")
    with pytest.raises(PhysmlError) as err:
        prog.check()
    assert err.value.diagnostics[0].code == "P501"


def test_logistic_crossing_and_chain_bootstrap():
    """The logit-line crossing recovers a logistic curve's midpoint from noisy chain means
    better than two-point interpolation, and the bootstrap over chains gives its spread."""
    gen = np.random.default_rng(0)
    ts = np.linspace(2.1, 2.5, 17)
    truth = 1 / (1 + np.exp((ts - 2.3) / 0.05))
    means = [np.clip(p + 0.15 * gen.standard_normal(64), 0, 1) for p in truth]
    p, err = analysis.curve(means)
    tc = analysis.crossing(ts, p, err, "logistic")
    assert abs(tc - 2.3) < 0.01 and np.all(err > 0.01)
    reps = analysis.bootstrap_crossings(ts, means, 50, gen, "logistic")
    assert 0.001 < np.std(reps) < 0.02
    assert analysis.crossing(ts, np.full(17, 0.9), None, "logistic") is None


def test_shared_cnn_and_ensemble(tmp_path):
    """train_size: the CNN trained once (an ensemble of two) and read at every size, the
    dense net retrained per size; the fitted-exponent row only where the sizes fix it."""
    res = _run(f"""run phases {{ model Ising {SAMPLER}
        scan T in linspace(1.6, 3.2, 9)
        classify phases via supervised(epochs = 15, batch = 32, lr = 3e-3),
            learners = [cnn_net, fc_net], sizes = [8, 12, 16], train_size = 10, ensemble = 2,
            controls = false, bootstrap = 20, exact = 2.269185 }}""", "phases", tmp_path)
    sized = [r for r in res.rows if r["kind"] == "size"]
    assert len(sized) == 6 and all(r["accuracy"] > 0.75 and r["T_c_err"] for r in sized)
    assert all(abs(r["deviation"]) < 0.2 for r in sized)
    fits = [r for r in res.rows if r["kind"] == "extrapolated"]
    assert {r["fit"] for r in fits} == {"nu fixed"}  # three sizes: nu is not fitted


def test_block_spins_majority_rule():
    """Majority-rule block spins: the sign of each block's sum, ties a random sign."""
    x = torch.ones(2, 3, 8, 8, device="cpu")
    x[0, 0, :4, :4] = -1.0  # one block all down
    x[0, 1, :4, :2] = -1.0  # a tie: 8 down, 8 up
    conf = Configurations(x, torch.tensor([1.0, 2.0], dtype=torch.float64, device="cpu"), 1, 3)
    y = block_spins(conf, 2, RandomStreams(0, torch.device("cpu"))).x
    assert y.shape == (2, 3, 2, 2)
    assert y[0, 0, 0, 0] == -1 and (y[0, 0].flatten()[1:] == 1).all()
    assert y[0, 1, 0, 0].abs() == 1 and (y[1] == 1).all()


def test_pseudo_likelihood_temperature():
    """The maximum pseudo-likelihood T of independent spins in a field (delta_i = 2 h s_i,
    P(s_i = 1) = sigmoid(2 h / T)) recovers T."""
    gen = torch.Generator().manual_seed(0)
    T = torch.tensor([0.8, 1.5, 3.0], dtype=torch.float64, device="cpu")
    up = torch.rand(3, 20000, generator=gen, dtype=torch.float64, device="cpu") \
        < torch.sigmoid(2.0 / T)[:, None]
    delta = torch.where(up, 2.0, -2.0)
    est = supervised.pseudo_likelihood_temperature(delta)
    assert torch.allclose(est, T, rtol=0.05)


def test_crossing_of_scale_invariant_curves():
    """P(T, L) = f(L (T - T_c)): the successive sizes' curves and their common crossing
    recover T_c; the collapse recovers T_c and nu = 1."""
    gen = np.random.default_rng(1)
    ts = np.linspace(2.15, 2.45, 13)
    sizes = [8, 12, 16, 24]
    per = [[np.clip(1 / (1 + np.exp(L * (t - 2.27) / 2.27 * 8 - 0.3))
                    + 0.05 * gen.standard_normal(64), 0, 1) for t in ts] for L in sizes]
    tcs, reps = analysis.size_crossings(ts, per, 30, gen)
    assert len(tcs) == len(sizes) and all(abs(t - 2.27) < 0.01 for t in tcs)
    assert reps.shape == (30, len(sizes)) and np.nanstd(reps[:, -1]) < 0.01
    p = np.stack([analysis.curve(m)[0] for m in per])
    err = np.stack([analysis.curve(m)[1] for m in per])
    f = analysis.collapse(ts, np.array(sizes, dtype=float), p, err, (2.3, 1.0))
    assert abs(f["T_c"] - 2.27) < 0.005 and abs(f["nu"] - 1) < 0.25


def test_one_side_perturbed_and_finite_size_rows(tmp_path):
    """Smoke: block spins and the crossing / collapse rows, the one-side regression control
    beside the pseudo-likelihood estimate, the perturbed model (J' = 1.05 J)."""
    res = _run(f"""run phases {{ model Ising {SAMPLER}
        scan T in linspace(1.6, 3.2, 9)
        classify phases via supervised(epochs = 20, batch = 32, lr = 3e-3),
            learners = [cnn_net, fc_net], sizes = [8, 12, 16], train_size = 12,
            coarse_grain = 4, finite_size = all, exact = 2.269185, one_side = true,
            bootstrap = 10, controls = false, perturbed = J, perturbed_value = 1.05,
            perturbed_exact = 2.382644 }}""", "phases", tmp_path)
    kinds = {r["kind"] for r in res.rows}
    assert {"size", "crossing", "collapse", "extrapolated", "one_side", "perturbed"} <= kinds
    side = {r["method"]: r for r in res.rows if r["kind"] == "one_side"}
    assert side["regression_of_T"]["rmse_outside"] > 2 * side["regression_of_T"]["rmse_inside"]
    assert side["pseudo_likelihood"]["rmse_outside"] < 0.2
    pert = [r for r in res.rows if r["kind"] == "perturbed"]
    assert len(pert) == 2 and all(0 <= r["ece"] <= 1 and r["accuracy"] > 0.6 for r in pert)


@pytest.mark.parametrize("body, code, words", [
    ("sizes = [8, 10], coarse_grain = 4", "P429", "does not divide"),
    ("sizes = [8, 12], perturbed = K, perturbed_value = 1.0", "P429", "perturbed"),
])
def test_located_errors_of_new_options(body, code, words):
    with pytest.raises(PhysmlError) as err:
        _program(f"run r {{ model Ising {SAMPLER} scan T in linspace(1.6, 3.2, 9) classify "
                 f"phases via supervised, learners = [fc_net], {body} }}").check()
    assert err.value.diagnostics[0].code == code and words in err.value.diagnostics[0].message


def test_perturbed_needs_its_value():
    with pytest.raises(PhysmlError) as err:
        _program(f"run r {{ model Ising {SAMPLER} scan T in linspace(1.6, 3.2, 9) classify "
                 "phases via supervised, learners = [fc_net], perturbed = J }").check()
    assert "perturbed_value" in err.value.diagnostics[0].message
