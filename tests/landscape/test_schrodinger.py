"""Grid Schrodinger evolution (runtime/landscape/schrodinger.py), D = 1/2 (atomic units).

The engine is deterministic apart from its white-noise start (a fixed seed), so the tolerances
are numerical, not statistical: the spectral grids below resolve the Gaussians to ~1e-15, the
energies are Rayleigh-Ritz values of the exact grid H (time-step bias O(dtau^4), measured
below), so what is left is the convergence of the evolution, bounded by ``tol``.
"""

from __future__ import annotations

import math

import pytest
import torch

from physml_lang.runtime.landscape.errors import LandscapeError
from physml_lang.runtime.landscape.grid import GridSpec
from physml_lang.runtime.landscape.grid_operators import grid_hamiltonian_spectrum, overlaps
from physml_lang.runtime.landscape.schrodinger import (
    imaginary_time,
    plot_densities,
    real_time,
    richardson,
)

D = 0.5
LINE = GridSpec((-10.0,), (10.0,), (256,))


def _x(grid: GridSpec) -> torch.Tensor:
    return grid.axes("cpu")[0]


def test_harmonic_oscillator_three_lowest_levels() -> None:
    # dtau = 0.01: the Ritz energies' time-step bias is ~1e-10 (measured in the dtau test)
    potential = (0.5 * _x(LINE) ** 2)[None]
    result = imaginary_time(potential, LINE, D, 0.01, 20000, states=3, tol=1e-12)
    assert result.steps < 20000 and bool(result.converged.all())
    assert torch.allclose(result.energies[0], torch.tensor([0.5, 1.5, 2.5], dtype=torch.float64),
                          atol=1e-6, rtol=0)  # fmt: skip
    gram = overlaps(result.wavefunctions, result.wavefunctions, LINE)[0]
    assert torch.allclose(gram, torch.eye(3, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(result.densities.sum(-1) * LINE.cell_volume,
                          torch.ones(1, 3, dtype=torch.float64), atol=1e-12)  # fmt: skip
    # the ground state is the Gaussian pi^-1/4 exp(-x^2/2), up to its sign
    exact = math.pi ** -0.25 * torch.exp(-0.5 * _x(LINE) ** 2)
    assert (result.wavefunctions[0, 0].abs() - exact).abs().max() < 1e-6
    assert result.trace_energy.shape == (1, 3, len(result.trace_tau))
    assert not bool(result.edge_warning.any())


def test_two_dimensional_isotropic_oscillator() -> None:
    grid = GridSpec((-8.0, -8.0), (8.0, 8.0), (48, 48))
    coords = grid.coordinates("cpu")
    potential = (0.5 * (coords**2).sum(-1))[None]
    result = imaginary_time(potential, grid, D, 0.02, 5000, states=3, tol=1e-12, refine=5)
    expected = torch.tensor([1.0, 2.0, 2.0], dtype=torch.float64)
    assert torch.allclose(result.energies[0], expected, atol=1e-8, rtol=0)


def test_batch_of_frequencies_in_one_call() -> None:
    omegas = torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64)
    potential = 0.5 * omegas[:, None] ** 2 * _x(LINE)[None] ** 2
    result = imaginary_time(potential, LINE, D, 0.01, 20000, tol=1e-12)
    assert result.energies.shape == (3, 1)
    assert torch.allclose(result.energies[:, 0], omegas / 2, atol=1e-6, rtol=0)
    # each member equals the same potential run alone (the batch does not mix potentials)
    alone = imaginary_time(potential[1:2], LINE, D, 0.01, 20000, tol=1e-12)
    assert abs(float(alone.energies[0, 0] - result.energies[1, 0])) < 1e-10


def test_double_well_against_dense_spectrum_and_time_step_bias() -> None:
    """f = 4 (x^2 - 1)^2. Measured, first excited state (dtau 0.02, 0.01, 0.005): Ritz-energy
    error 7.5e-6, 4.7e-7, 3.0e-8 (x16: O(dtau^4)); energy of the split propagator -1.4e-3,
    -3.5e-4, -8.8e-5 (x4: O(dtau^2)). The refinement on the exact grid H removes the rest."""
    grid = GridSpec((-3.0,), (3.0,), (128,))
    potential = (4 * (_x(grid) ** 2 - 1) ** 2)[None]
    exact = grid_hamiltonian_spectrum(potential, grid, D, 2)[0]
    ritz, split = [], []
    for dtau in (0.01, 0.005):
        result = imaginary_time(potential, grid, D, dtau, 40000, states=2, tol=1e-13)
        ritz.append((result.energies[0] - exact).abs().max().item())
        split.append((result.splitting_energies[0] - exact).abs().max().item())
    assert ritz[0] < 1e-6 and ritz[1] < 1e-7
    assert 12 < ritz[0] / ritz[1] < 20  # O(dtau^4): 16
    assert 3.5 < split[0] / split[1] < 4.5  # O(dtau^2): 4
    assert split[1] > 100 * ritz[1]
    refined = imaginary_time(potential, grid, D, 0.02, 40000, states=2, tol=1e-13, refine=20)
    assert torch.allclose(refined.energies[0], exact, atol=1e-11, rtol=0)
    assert float(refined.residuals.max()) < 1e-5


def test_dense_spectrum_of_a_small_2d_oscillator() -> None:
    grid = GridSpec((-7.0, -7.0), (7.0, 7.0), (32, 32))
    potential = (0.5 * (grid.coordinates("cpu") ** 2).sum(-1))[None]
    levels = grid_hamiltonian_spectrum(potential, grid, D, 6)[0]
    expected = torch.tensor([1.0, 2.0, 2.0, 3.0, 3.0, 3.0], dtype=torch.float64)
    assert torch.allclose(levels, expected, atol=1e-9, rtol=0)


def test_real_time_conserves_norm_and_energy() -> None:
    # a coherent state: the Gaussian displaced to x0 in f = x^2/2 has E = 1/2 + x0^2/2
    x0 = torch.tensor([1.0, 2.0], dtype=torch.float64)
    x = _x(LINE)
    psi0 = (math.pi ** -0.25 * torch.exp(-0.5 * (x[None] - x0[:, None]) ** 2)).to(torch.complex128)
    potential = (0.5 * x**2).expand(2, -1).contiguous()
    drifts = []
    for dt in (0.02, 0.01):
        steps = round(2 * math.pi / dt)
        result = real_time(psi0, potential, LINE, D, dt, steps, save_every=10, snapshots=4)
        assert torch.allclose(result.energies[:, 0], 0.5 + x0**2 / 2, atol=1e-12, rtol=0)
        assert float((result.norms / result.norms[:, :1] - 1).abs().max()) < 1e-12
        drifts.append(float((result.energies - result.energies[:, :1]).abs().max()))
    # Strang splitting conserves a modified energy: H itself wanders by O(dt^2)
    assert drifts[0] < 1e-3 and 3.5 < drifts[0] / drifts[1] < 4.5
    assert len(result.snapshots) == 5 and result.times[-1] == pytest.approx(2 * math.pi, 0.01)
    # after one period 2 pi the coherent state is back at x0 (up to a phase)
    back = (result.wavefunction.abs() ** 2 * x).sum(-1) * LINE.cell_volume
    assert torch.allclose(back, x0, atol=1e-3)


def test_snapshots_and_plots(tmp_path) -> None:
    potential = (0.5 * _x(LINE) ** 2)[None]
    result = imaginary_time(potential, LINE, D, 0.02, 200, snapshots=4, check_every=50)
    assert [tau for tau, _ in result.snapshots] == pytest.approx([0.0, 1.0, 2.0, 3.0, 4.0])
    assert plot_densities(tmp_path / "d1.png", LINE, result.snapshots).stat().st_size > 1000
    grid = GridSpec((-6.0,) * 3, (6.0,) * 3, (16,) * 3)
    potential3 = (0.5 * (grid.coordinates("cpu") ** 2).sum(-1))[None]
    result3 = imaginary_time(potential3, grid, D, 0.05, 40, snapshots=8, check_every=20)
    path = plot_densities(tmp_path / "d3.png", grid, result3.snapshots)
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_same_seed_same_result_and_early_stop() -> None:
    potential = (0.5 * _x(LINE) ** 2)[None]
    a = imaginary_time(potential, LINE, D, 0.02, 5000, states=2, tol=1e-10, seed=3)
    b = imaginary_time(potential, LINE, D, 0.02, 5000, states=2, tol=1e-10, seed=3)
    assert torch.equal(a.energies, b.energies) and a.steps == b.steps < 5000
    # the trace of the ground energy falls to its limit
    assert float(a.trace_energy[0, 0, 0]) > 10 * float(a.trace_energy[0, 0, -1])


def test_edge_density_flags_a_small_box() -> None:
    grid = GridSpec((-2.0,), (2.0,), (64,))
    result = imaginary_time((0.5 * _x(grid) ** 2)[None], grid, D, 0.01, 3000, tol=1e-10)
    assert bool(result.edge_warning.all()) and float(result.edge_density[0]) > 1e-3


def test_richardson_is_exact_on_its_model() -> None:
    spacings = [0.4, 0.3, 0.2, 0.1]
    energies = [-1 + 0.3 * h**2 - 0.2 * h**3 + 0.05 * h**4 for h in spacings]
    best, error, rows = richardson(spacings, energies, order=2, step=1)
    assert best == pytest.approx(-1, abs=1e-12) and error > 0
    assert [len(r) for r in rows] == [2, 3, 4, 5] and rows[0][0] == 0.4
    classic, _, _ = richardson([1.0, 0.5, 0.25], [2 + h**2 + h**4 for h in (1.0, 0.5, 0.25)],
                               order=2, step=2)  # fmt: skip
    assert classic == pytest.approx(2, abs=1e-12)
    with pytest.raises(LandscapeError, match="got 2 spacings"):
        richardson([0.2, 0.1], [1.0, 1.0])


def test_user_errors() -> None:
    x = _x(LINE)
    bad = (1 / (x - x[100]))[None]  # infinite at the grid point x[100]
    with pytest.raises(LandscapeError, match=f"x = \\({float(x[100]):.6g}\\)") as info:
        imaginary_time(bad, LINE, D, 0.01, 10)
    assert info.value.hint
    good = (0.5 * x**2)[None]
    with pytest.raises(LandscapeError, match="not positive"):
        imaginary_time(good, LINE, D, 0.0, 10)
    with pytest.raises(LandscapeError, match="fewer than 8"):
        small = GridSpec((-1.0,), (1.0,), (4,))
        imaginary_time(torch.zeros(1, 4, dtype=torch.float64), small, D, 0.01, 10)
    with pytest.raises(LandscapeError, match="shape"):
        imaginary_time(good[:, :100], LINE, D, 0.01, 10)
    with pytest.raises(LandscapeError, match="complex"):
        imaginary_time(good, LINE, D, 0.01, 10, psi0=good.to(torch.complex128))
    with pytest.raises(LandscapeError, match="not finite"):
        real_time(torch.full((1, 256), math.nan, dtype=torch.complex128), good, LINE, D, 0.01,
                  10)  # fmt: skip
    with pytest.raises(LandscapeError, match="too large"):
        big = GridSpec((-1.0,) * 2, (1.0,) * 2, (80, 80))
        grid_hamiltonian_spectrum(torch.zeros(1, 80, 80, dtype=torch.float64), big, D, 1)


def test_bad_initial_wavefunctions() -> None:
    x = _x(LINE)
    psi0 = torch.exp(-(x**2))[None].clone()
    psi0[0, 5] = math.nan
    with pytest.raises(LandscapeError, match="not finite"):
        imaginary_time((0.5 * x**2)[None], LINE, D, 0.01, 100, psi0=psi0)
    with pytest.raises(LandscapeError, match="zero everywhere"):
        imaginary_time((0.5 * x**2)[None], LINE, D, 0.01, 100, psi0=torch.zeros_like(psi0))
