"""Slow validations of spin annealing on the SK model: exact ground states at N = 20 and the
energy per spin at large N against the Parisi value e0 = -0.7633."""

from __future__ import annotations

import numpy as np
import pytest

from physml_lang.runtime.landscape.spin_annealing import (
    anneal_spins,
    exact_ground_state,
    sk_instance,
)
from physml_lang.runtime.random import RandomStreams

pytestmark = pytest.mark.slow

PARISI_E0 = -0.7633


@pytest.mark.parametrize("instance", range(4))
def test_sa_finds_sk20_ground_state(instance: int) -> None:
    """Four N = 20 SK instances: 8 replicas x 500 sweeps find the enumerated ground state."""
    J = sk_instance(20, 1000 + instance)
    _, e0 = exact_ground_state(J)
    r = anneal_spins(J, streams=RandomStreams(instance), replicas=8, sweeps=500)
    assert abs(r.best_energy - e0) < 1e-9, (r.best_energy, e0)


def test_sa_large_sk_energy_per_spin() -> None:
    """N = 500, three instances, 8 replicas x 1000 sweeps: the best energy per spin lies above
    e0 = -0.7633 (a ground state cannot be below it by more than sample-to-sample fluctuations,
    ~0.01 at N = 500) and within 0.03 of it (finite-N corrections ~ N^(-2/3) and an imperfect
    anneal make it higher; measured -0.762, -0.746, ...)."""
    found = []
    for instance in range(3):
        J = sk_instance(500, 100 + instance)
        r = anneal_spins(J, streams=RandomStreams(instance), replicas=8, sweeps=1000)
        found.append(r.best_energy_per_spin)
    mean = float(np.mean(found))
    assert PARISI_E0 - 0.02 < mean < PARISI_E0 + 0.03, found
