"""The exact grid propagator exp(-i H t) = W exp(-i E t) W^T of runtime/propagation/exact.py,
validated against the harmonic oscillator's exact spectrum and Ehrenfest motion and against the
split-operator engine of ``evolve real_time`` (D = 1/2, mass 1)."""

from __future__ import annotations

import math

import torch

from physml_lang.runtime.landscape.grid import GridSpec
from physml_lang.runtime.landscape.schrodinger import real_time
from physml_lang.runtime.propagation.exact import (
    ExactPropagator,
    coherent_centre,
    fidelity,
    gaussian_packets,
    inner,
)

F64 = torch.float64
GRID = GridSpec((-10.0,), (10.0,), (128,))


def _oscillator(grid: GridSpec = GRID, w: float = 1.0) -> ExactPropagator:
    x = grid.axes("cpu", F64)[0]
    return ExactPropagator.of(grid, 0.5 * w**2 * x**2, 0.5)


def test_oscillator_levels_and_unitary_step():
    """E_n = n + 1/2 on the spectral grid (the box and grid resolve the low states to 1e-10);
    exp(-i H dt) is unitary to round-off."""
    ex = _oscillator()
    n = torch.arange(8, dtype=F64)
    torch.testing.assert_close(ex.energies[:8], n + 0.5, rtol=0, atol=1e-10)
    U = ex.step(0.37)
    eye = torch.eye(128, dtype=torch.complex128)
    assert float((U.mH @ U - eye).abs().max()) < 1e-12
    torch.testing.assert_close(ex.hamiltonian, ex.hamiltonian.T, rtol=0, atol=1e-12)


def test_packet_centres_follow_the_classical_orbit():
    """<x>(t) = x0 cos t + k0 sin t for any packet in V = x^2 / 2 (Ehrenfest is exact for a
    quadratic potential), norm kept, energy constant, over many periods."""
    ex = _oscillator()
    x0 = torch.tensor([1.5, -2.0, 0.0], dtype=F64)
    k0 = torch.tensor([0.0, 1.0, -2.5], dtype=F64)
    psi0 = gaussian_packets(ex.x, ex.h, x0, torch.tensor([0.6, 1.0, 0.8], dtype=F64), k0)
    t = torch.linspace(0, 40, 81, dtype=F64)
    psi = ex.evolve(psi0, t)  # (3, 81, G)
    density = psi.abs() ** 2 * ex.h
    centre = (density * ex.x).sum(-1)
    for b in range(3):
        expected = coherent_centre(float(x0[b]), float(k0[b]), 1.0, t)
        assert float((centre[b] - expected).abs().max()) < 1e-8
    torch.testing.assert_close(density.sum(-1), torch.ones(3, 81, dtype=F64), rtol=0, atol=1e-12)
    E = ex.energy(psi)
    assert float((E - E[:, :1]).abs().max()) < 1e-10


def test_exact_evolution_equals_the_split_operator_engine():
    """A packet in a double well evolved to t = 5: the Strang split-operator engine with dt =
    1e-3 agrees with the exact propagator to fidelity 1 - 1e-9 (its error is O(dt^2))."""
    grid = GridSpec((-6.0,), (6.0,), (96,))
    x = grid.axes("cpu", F64)[0]
    V = 0.5 * (x**2 - 2.0) ** 2
    ex = ExactPropagator.of(grid, V, 0.5)
    psi0 = gaussian_packets(x, ex.h, torch.tensor([1.2], dtype=F64),
                            torch.tensor([0.5], dtype=F64), torch.tensor([0.8], dtype=F64))
    split = real_time(psi0.clone(), V[None], grid, 0.5, 1e-3, 5000, save_every=5000)
    exact = ex.evolve(psi0, torch.tensor([5.0], dtype=F64))[:, 0]
    f = float(fidelity(exact, split.wavefunction, ex.h)[0])
    assert 1 - f < 1e-9, 1 - f
    assert abs(float(inner(exact, exact, ex.h).real[0]) - 1) < 1e-12
    assert math.isclose(float(ex.energy(exact)[0]), float(ex.energy(psi0)[0]), rel_tol=1e-11)


def test_packet_sequences_determine_the_propagator():
    """The training data of a propagation run (random packets evolved exactly to random times,
    then steps of dt) span the grid: the unitary that best maps each state to the next
    (orthogonal Procrustes, U = P Q^H from the SVD of Y X^H) is the exact step to round-off."""
    from physml_lang.runtime.propagation.exact import random_packets
    from physml_lang.runtime.random import RandomStreams

    grid = GridSpec((-8.0,), (8.0,), (32,))
    ex = _oscillator(grid)
    streams = RandomStreams(0).fork(-1)
    psi0 = random_packets(32, -8.0, 8.0, [0.5, 1.5], 2.0, 0.5, ex.x, ex.h, streams)
    t0 = 40 * streams.uniform((32,), F64)
    seq = ex.evolve(psi0, t0[:, None] + 0.05 * torch.arange(6, dtype=F64))
    X, Y = seq[:, :-1].reshape(-1, 32).T, seq[:, 1:].reshape(-1, 32).T
    P, _, Qh = torch.linalg.svd(Y @ X.mH)
    assert float((P @ Qh - ex.step(0.05)).abs().max()) < 1e-8
