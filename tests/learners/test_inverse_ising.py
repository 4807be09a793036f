"""Inverse Ising: Boltzmann learning recovers the couplings of a known SK instance, with an
error that shrinks with the number of samples."""

from __future__ import annotations

import pytest

import physml_lang

TEXT = """
import SK, BoltzmannIsing
data S: spin = sample(SK(N = 8, seed = 3), n = n, T = 1.0, chains = 50, thin = 4, seed = 5, burn_in = BURN)
run fit {
    model BoltzmannIsing(N = 8)
    train BoltzmannIsing via pcd(k = 2, chains = 200), data = S, epochs = EPOCHS, batch = 100,
          truth = SK(N = 8, seed = 3)
    optimizer adam(lr = 0.03)
    schedule cosine(min_factor = 0.05)
    scan n in [300, 6000]
    measure coupling_error
}
"""


def errors(epochs: int, burn_in: int = 500, scan: str = "[300, 6000]") -> list[float]:
    text = TEXT.replace("EPOCHS", str(epochs)).replace("BURN", str(burn_in))
    rows = physml_lang.load(text.replace("[300, 6000]", scan)).run(seed=1).rows
    return [r["coupling_error"]["mean"] for r in rows]


@pytest.mark.slow
def test_couplings_recovered_error_shrinks_with_samples():
    small, large = errors(12)
    # J_true / T has rms 1/sqrt(8) = 0.35; the statistical error scales as n^(-1/2)
    assert large < 0.08
    assert large < 0.6 * small


@pytest.mark.slow
@pytest.mark.long
def test_couplings_recovered_long_training(record_property):
    small, large = errors(40)
    record_property("rms coupling error (small, large n)", f"{small:.4f}, {large:.4f}")
    assert large < 0.05 and large < 0.45 * small


def test_couplings_recovered_quick():
    small, large = errors(5, burn_in=100, scan="[200, 3000]")
    assert large < 0.12 and large < 0.8 * small
