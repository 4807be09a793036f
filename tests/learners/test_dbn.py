"""Deep belief networks: greedy layer-wise stacking raises the variational bound on log p(v)
(exact, by enumeration), generated samples reproduce the data's statistics, and the language
side: rows, per-layer losses, files, and located errors of `physml check`."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import physml_lang
from physml_lang.api import bind_runtime
from physml_lang.catalogue.boltzmann import AdamOptions, CDOptions, ConstantOptions
from physml_lang.runtime.learners.dbn import DBN, LayerTrainer, Units, exact_bound
from physml_lang.runtime.random import RandomStreams


def correlated_data(n=2000, seed=0) -> torch.Tensor:
    """Binary data of 6 units with two hidden causes: units 0-2 copy cause A and 3-5 cause B,
    each unit flipped with probability 0.1; A and B agree with probability 0.8."""
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 2, n)
    b = np.where(rng.random(n) < 0.8, a, 1 - a)
    x = np.concatenate([np.repeat(a[:, None], 3, 1), np.repeat(b[:, None], 3, 1)], 1)
    flip = rng.random(x.shape) < 0.1
    return torch.tensor(np.where(flip, 1 - x, x), dtype=torch.float64)


def train(layer, data, epochs, streams, lr=0.02):
    bind_runtime()
    t = LayerTrainer(layer, data, ("cd", CDOptions(k=1)), ("adam", AdamOptions(lr=lr)),
                     ("constant", ConstantOptions()), epochs, 50, streams)  # fmt: skip
    return [t.run_epoch() for _ in range(epochs)]


def test_greedy_second_layer_raises_the_variational_bound():
    """Hinton, Osindero & Teh (2006): with the second RBM initialised as the first one turned
    upside down, the bound equals the first RBM's log p(v) (to 1e-10: an exact identity), and
    training the second RBM on samples h ~ q(h|v) does not lower it. Measured (seed 0):
    bound -3.0539 -> -3.0437 nats per example (exact: no sampling error in the evaluation)."""
    data = correlated_data()
    streams = RandomStreams(0, "cpu")
    dbn = DBN(Units("binary"), [6, 4, 6], 0.1, torch.Generator().manual_seed(0))
    lower, upper = dbn.layers
    hist = train(lower, data, 20, streams.fork(1))
    assert hist[-1]["reconstruction"] < hist[0]["reconstruction"]
    with torch.no_grad():  # the flip of the first layer
        upper.W.copy_(lower.W.T)
        upper.a.copy_(lower.b)
        upper.b.copy_(lower.a)
        log_p1 = (-lower.free_energy(data) - lower.exact_log_z()).mean()
    before = exact_bound(lower, upper, data).mean()
    assert float(before) == pytest.approx(float(log_p1), abs=1e-10)
    with torch.no_grad():
        h = lower.sample_hidden(data, streams.fork(2))
    train(upper, h, 20, streams.fork(3), lr=0.01)
    after = exact_bound(lower, upper, data).mean()
    assert float(after) > float(before), (float(before), float(after))


TEXT = """
import Ising
data S: spin = sample(Ising(L = 3), n = 3000, T = 2.5, chains = 100, thin = 5, seed = 3)
learner deep = dbn(layers = LAYERS, sigma = 0.1)
run fit {
    train deep via cd(k = 1), data = S, epochs = 30, batch = 50, test = 0.2
    optimizer adam(lr = 0.02)
    generate chains = 4000, burn_in = 200, sweeps = 1
    measure MEASURES
}
"""


def program(layers="[9, 16, 16]", measures="reconstruction, pca_reconstruction", extra=""):
    text = TEXT.replace("LAYERS", layers).replace("MEASURES", measures) + extra
    return physml_lang.load(text)


def test_dbn_samples_reproduce_the_data_statistics(tmp_path):
    """A two-layer DBN trained greedily on 3 x 3 Ising configurations at T = 2.5 generates
    (Gibbs in the top RBM, then a down-pass) samples whose nearest-neighbour correlation and
    |m| match the data's within 4 sigma (combined standard errors of both sample means;
    measured, seed 0: nn 0.728 vs 0.743 +- 0.008, |m| 0.816 vs 0.832 +- 0.006: 1.8 and 2.5
    sigma, the DBN slightly more ordered than its data);
    the run writes per-layer losses, summary.json, the training curves and samples."""
    p = program()
    p.check()
    bind_runtime()
    out = tmp_path / "out"
    res, samples = _run_capturing_samples(p, out)
    row = res.rows[0]
    assert {"loss_layer1", "loss_layer2", "loss", "reconstruction", "pca_reconstruction"} <= set(row)
    summary = json.loads((out / "summary.json").read_text())
    assert len(summary["history"][0]["layers"]) == 2
    assert len(summary["history"][0]["layers"][1]) == 30
    for name in ("training.png", "samples.png", "results.csv"):
        assert (out / name).is_file(), name
    # compare the statistics of generated and data configurations
    data = torch.as_tensor(p.data_loader(p.data["S"], {}).values.reshape(-1, 9))

    def stats(x):
        s = x.reshape(-1, 3, 3)
        nn = (s * s.roll(1, 1) + s * s.roll(1, 2)).mean((1, 2)) / 2
        return nn, s.mean((1, 2)).abs()

    for a, b in zip(stats(data), stats(samples)):
        se = np.hypot(float(a.std() / len(a) ** 0.5), float(b.std() / len(b) ** 0.5))
        assert abs(float(a.mean() - b.mean())) < 4 * se, (float(a.mean()), float(b.mean()), se)


def _run_capturing_samples(p, out):
    """Run ``p`` (seed 0) and keep the generated samples of its point (chains, n)."""
    from physml_lang.runtime.learners import deep

    captured = {}
    original = deep.StackPoint.rows

    def rows(self):
        result = original(self)
        captured["samples"] = self.samples
        return result

    deep.StackPoint.rows = rows
    try:
        res = p.run(out=out, seed=0)
    finally:
        deep.StackPoint.rows = original
    return res, captured["samples"].double()


@pytest.mark.parametrize("layers,extra,code,text", [
    ("[16, 8]", "", "P405", "first layer has 16 units"),
    ("[9, 8, 4]", "", "P414", "computed for one RBM"),
    ("[9]", "", "P402", "layers"),
    ("[9, 8]", "run other {\n train deep via cd(k = 1), data = S\n scan width in [1, 2]\n}\n",
     "P205", "not an option of learner dbn"),
    ("[9, 8]", "run other {\n train deep via cd(k = 1), data = S\n measure energy\n}\n",
     "P208", "not a measure of a dbn"),
    ("[9, 8]", "run other {\n train deep via cd(k = 1), data = S\n measure pca_reconstruction\n}\n",
     "P412", "hold out data"),
    ("[9, 8]", "run other {\n model Ising(L = 3)\n train deep via cd(k = 1), data = S\n}\n",
     "P503", "is a learner of boltzmann models"),
    ("[9, 8], width = 3", "", "P401", "width"),
])  # fmt: skip
def test_located_errors(layers, extra, code, text):
    measures = "log_likelihood" if code == "P414" else "reconstruction"
    with pytest.raises(physml_lang.PhysmlError) as err:
        program(layers, measures, extra).check()
    msg = str(err.value)
    assert f"error[{code}]" in msg and text in msg, msg
    assert ":" in msg.splitlines()[0]  # located: FILE:LINE:COL


def test_data_without_a_discrete_domain_is_refused(tmp_path):
    np.save(tmp_path / "x.npy", np.random.default_rng(0).normal(size=(20, 4)))
    (tmp_path / "f.phys").write_text(
        'import Ising\ndata X = load("x.npy")\nlearner deep = dbn(layers = [4, 2])\n'
        "run fit {\n train deep via cd(k = 1), data = X\n}\n")
    with pytest.raises(physml_lang.PhysmlError) as err:
        physml_lang.load(tmp_path / "f.phys").check()
    assert "error[P601]" in str(err.value) and "binary, spin or potts" in str(err.value)


RESUME = """
import Ising
data S: spin = sample(Ising(L = 3), n = 600, T = 2.5, chains = 50, thin = 5, seed = 3)
learner ae = autoencoder(layers = [9, 8, 3], finetune = 3)
run fit {
    train ae via pcd(k = 1, chains = 32), data = S, epochs = 3, batch = 50, test = 0.2
    scan code in [2, 3]
    measure reconstruction, pca_reconstruction
}
"""


@pytest.mark.parametrize("stop", [5, pytest.param(8, marks=pytest.mark.slow),
                                  pytest.param(14, marks=pytest.mark.slow)])  # fmt: skip
# epoch 5: layer 2 of point 0 (PCD chains); 8: its fine-tuning; 14: point 1
def test_interrupted_run_resumes_bit_identically(tmp_path, monkeypatch, stop):
    """Ctrl-C in the middle of a layer's training or of fine-tuning: --resume continues from
    the checkpoint written after the last epoch and gives the rows and histories of an
    uninterrupted run exactly (CPU)."""
    from physml_lang.diagnostics import RunInterrupted
    from physml_lang.runtime.learners import autoencoder, dbn

    p = physml_lang.load(RESUME)
    reference = p.run(out=tmp_path / "ref", seed=1)
    calls = {"n": 0}

    def flaky(original):
        def run_epoch(self):
            calls["n"] += 1
            if calls["n"] == stop:
                raise KeyboardInterrupt
            return original(self)
        return run_epoch

    out = tmp_path / "out"
    with monkeypatch.context() as m:
        m.setattr(dbn.LayerTrainer, "run_epoch", flaky(dbn.LayerTrainer.run_epoch))
        m.setattr(autoencoder.FineTuner, "run_epoch", flaky(autoencoder.FineTuner.run_epoch))
        with pytest.raises(RunInterrupted):
            p.run(out=out, seed=1)
    assert (out / "checkpoint.safetensors").is_file()
    res = p.run(out=out, seed=1, resume=True)
    assert res.summary["resumed"]
    assert json.dumps(res.rows) == json.dumps(reference.rows)
    assert res.summary["history"] == reference.summary["history"]
