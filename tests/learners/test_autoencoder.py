"""Deep autoencoders from DBNs (Hinton & Salakhutdinov 2006): PCA's error is the discarded
variance, the unrolled network starts as the DBN's up-down pass (tied weights), and the
fine-tuned autoencoder beats PCA's held-out reconstruction error at the same code size on a
synthetic binary data set with nonlinear structure (no optional dependency), and on
scikit-learn's digits (skipped without scikit-learn)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import physml_lang
from physml_lang.api import bind_runtime
from physml_lang.runtime.learners.autoencoder import DeepAutoencoder
from physml_lang.runtime.learners.dbn import DBN, Units, pca_reconstruction


def test_pca_error_is_the_discarded_variance():
    """On its own training data, PCA with k components leaves sum_{i > k} s_i^2 / N."""
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(300, 12, generator=g, dtype=torch.float64) < 0.3).double()
    s = torch.linalg.svdvals(x - x.mean(0))
    for k in (1, 4, 11):
        err = pca_reconstruction(x, x, k).mean()
        assert float(err) == pytest.approx(float((s[k:] ** 2).sum() / len(x)), rel=1e-10)


@pytest.mark.parametrize("kind", ["binary", "spin", "potts"])
def test_unrolled_network_starts_as_the_up_down_pass(kind):
    """Encoder and decoder start from the DBN's weights (decoder = transposes): before
    fine-tuning, the autoencoder's reconstruction is the DBN's deterministic up-down pass."""
    units = Units(kind, 3)
    dbn = DBN(units, [5, 7, 3], 0.5, torch.Generator().manual_seed(1))
    net = DeepAutoencoder(dbn)
    v = torch.tensor(np.random.default_rng(0).integers(0, 2, (8, 5)), dtype=torch.float64)
    if kind == "spin":
        v = 2 * v - 1
    with torch.no_grad():
        assert torch.allclose(net.reconstruct(v), dbn.updown(v), atol=1e-12)
    for W, Wd in zip(net.enc_W, net.dec_W):
        assert torch.equal(W.detach().T, Wd.detach())


def bars(n=1500, side=8, seed=0) -> np.ndarray:
    """Binary images of a line through the centre at a random angle (a one-dimensional
    circle of configurations embedded nonlinearly in {0, 1}^64), each pixel flipped with
    probability 0.02."""
    rng = np.random.default_rng(seed)
    theta = rng.uniform(0, math.pi, n)
    c = (side - 1) / 2
    y, x = np.mgrid[0:side, 0:side]
    d = np.abs((x[None] - c) * np.sin(theta)[:, None, None]
               - (y[None] - c) * np.cos(theta)[:, None, None])  # fmt: skip
    img = (d < 0.8).astype(np.float64)
    flip = rng.random(img.shape) < 0.02
    return np.where(flip, 1 - img, img).reshape(n, side, side)


TEXT = """
import Ising
data bars: binary = load("bars.npy")
learner ae = autoencoder(layers = [64, 32, 2], finetune = 40, finetune_lr = 0.003)
run fit {
    train ae via cd(k = 1), data = bars, epochs = 10, batch = 32, test = 0.2
    optimizer adam(lr = 0.01)
    measure reconstruction, pca_reconstruction, reconstruction_gain
}
"""


def test_autoencoder_beats_pca_on_a_nonlinear_manifold(tmp_path):
    """Lines at a random angle: a 2-unit code can hold the angle (cos, sin), two principal
    components only its first harmonics. The fine-tuned autoencoder's held-out squared
    error per image is below PCA's by more than 5 standard errors of the paired difference
    (measured, seed 0: 1.78 +- 0.06 vs 5.61 +- 0.06, gain 3.83 +- 0.05, 77 sigma)."""
    np.save(tmp_path / "bars.npy", bars())
    (tmp_path / "ae.phys").write_text(TEXT)
    p = physml_lang.load(tmp_path / "ae.phys")
    p.check()
    bind_runtime()
    out = tmp_path / "out"
    row = p.run(out=out, seed=0).rows[0]
    gain = row["reconstruction_gain"]
    msg = {k: row[k] for k in ("reconstruction", "pca_reconstruction", "reconstruction_gain")}
    assert gain["mean"] > 5 * gain["stderr"], msg
    assert row["reconstruction"]["mean"] < row["pca_reconstruction"]["mean"], msg
    assert (out / "reconstructions.png").is_file() and (out / "training.png").is_file()


DIGITS = """
data digits: binary = digits(threshold = 8)
learner ae = autoencoder(layers = [64, 64, 32, 4], finetune = 100)
run fit {
    train ae via cd(k = 1), data = digits, epochs = 20, batch = 32, test = 0.2
    optimizer adam(lr = 0.01)
    schedule cosine(min_factor = 0.1)
    measure reconstruction, pca_reconstruction, reconstruction_gain
}
"""


@pytest.mark.slow
def test_autoencoder_beats_pca_on_digits():
    """Binarised 8 x 8 digits, code 4: the deep autoencoder (64-64-32-4, linear code)
    reconstructs held-out digits better than 4 principal components by more than 5 standard
    errors (measured, seed 0: 3.73 +- 0.08 vs 5.28 +- 0.08 squared error per image, gain
    1.55 +- 0.05, 30 sigma; ~20 s)."""
    pytest.importorskip("sklearn", reason="digits need scikit-learn (pip install scikit-learn)")
    row = physml_lang.load(DIGITS).run(seed=0).rows[0]
    gain = row["reconstruction_gain"]
    assert gain["mean"] > 5 * gain["stderr"], row
