"""Slow validations of the grid Schrodinger engine in 3D (D = 1/2, atomic units)."""

from __future__ import annotations

import pytest
import torch

from physml_lang.runtime.landscape.grid import GridSpec
from physml_lang.runtime.landscape.schrodinger import imaginary_time, richardson

pytestmark = pytest.mark.slow

D = 0.5


def test_three_dimensional_oscillator_ground_and_triplet() -> None:
    # spectral grid, h = 0.5: the Gaussians are resolved to ~1e-15; the refinement removes the
    # time-step distortion, so the levels are exact to the convergence of LOBPCG
    grid = GridSpec((-8.0,) * 3, (8.0,) * 3, (32,) * 3)
    potential = (0.5 * (grid.coordinates("cpu") ** 2).sum(-1))[None]
    result = imaginary_time(potential, grid, D, 0.05, 3000, states=4, tol=1e-9, refine=20)
    expected = torch.tensor([1.5, 2.5, 2.5, 2.5], dtype=torch.float64)
    assert torch.allclose(result.energies[0], expected, atol=1e-9, rtol=0)
    # without the refinement the Ritz energies carry the O(dtau^4) bias, still below 1e-6
    plain = imaginary_time(potential, grid, D, 0.05, 3000, states=4, tol=1e-9)
    assert torch.allclose(plain.energies[0], expected, atol=1e-6, rtol=0)
    assert float(result.residuals.max()) < 1e-6


def test_hydrogen_without_softening_richardson() -> None:
    """f = -1/r on the box [-12, 12]^3 (an even number of points: the nucleus sits on a cell
    corner, h sqrt(3)/2 from the nearest points), E(h) the refined ground level of the grid H.
    Measured (single thread; ~30 s in all):

        points   h        E(h)          E(h) + 1/2
        48       0.5      -0.46052813   3.947e-2
        64       0.375    -0.47487371   2.513e-2
        80       0.3      -0.48266714   1.733e-2
        96       0.25     -0.48734748   1.265e-2
        (112     0.2143   -0.49036925   9.631e-3;  128  0.1875  -0.49242972  7.570e-3)

    The local order ln(e1/e2)/ln(h1/h2) climbs 1.57, 1.67, 1.73, 1.77, 1.80 towards 2: the
    midpoint sampling of the 1/r singularity gives c2 h^2 (its next terms, from the cusp
    e^-r ~ 1 - r, h^3 and h^4), so E = E0 + c2 h^2 + c3 h^3 + c4 h^4 fits all six grids from
    h = 0.5 to 7e-8 (c2 = 0.26, c3 = -0.25, c4 = 0.10). Extrapolated with order 2, step 1
    through the four grids above: E0 = -0.5000155 (any four consecutive grids: -1.6e-5 to
    -2.1e-5 off; error estimate 2.8e-4); a polynomial in h^2 (step 2) is off by 5.7e-4.
    The box: at h = 0.25, [-10, 10]^3 gives E(h) 1.6e-7 lower (edge density 2e-8 against
    4e-10), so [-12, 12]^3 is ~3e-9 from the infinite box (e^-2L); the -1.6e-5 left is the
    truncation of the h-series."""
    spacings, energies = [], []
    for n in (48, 64, 80, 96):
        grid = GridSpec((-12.0,) * 3, (12.0,) * 3, (n,) * 3)
        r = grid.coordinates("cpu").norm(dim=-1)
        result = imaginary_time((-1 / r)[None], grid, D, 0.1, 2000, tol=1e-7, check_every=20,
                                psi0=torch.exp(-r)[None], refine=20)  # fmt: skip
        assert float(result.residuals[0, 0]) < 1e-8
        assert not bool(result.edge_warning.any())
        spacings.append(grid.spacing[0])
        energies.append(float(result.energies[0, 0]))
    best, error, rows = richardson(spacings, energies, order=2, step=1)
    for row in rows:
        print(f"h = {row[0]:.4f}  E = {row[1]:.8f}  extrapolations {row[2:]}")
    print(f"E0 = {best:.8f} +- {error:.1e}")
    assert abs(energies[-1] + 0.5) > 1e-2  # the finest grid alone is far off
    assert abs(best + 0.5) < 1e-4
    assert error < 1e-3
    even, _, _ = richardson(spacings, energies, order=2, step=2)
    assert abs(even + 0.5) > 3 * abs(best + 0.5)
