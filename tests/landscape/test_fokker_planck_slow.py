"""Fokker-Planck, Langevin walkers and eq. (16): longer physics validations."""

from __future__ import annotations

import math

import pytest
import torch

from physml_lang.runtime.landscape.fokker_planck import (
    fokker_planck,
    fokker_planck_generator,
    fokker_planck_max_dtau,
    forward_slope,
    taylor_diffusion,
)
from physml_lang.runtime.landscape.grid import GridSpec
from physml_lang.runtime.landscape.langevin import histogram_chi2, langevin_walkers
from physml_lang.runtime.random import RandomStreams

pytestmark = pytest.mark.slow
F64 = torch.float64


def tilted_double_well(x: torch.Tensor) -> torch.Tensor:
    """f(x, y) = (x^2 - 1)^2 + (y - 0.5 x)^2 + 0.2 x: two coupled, unequal wells."""
    return (x[:, 0] ** 2 - 1) ** 2 + (x[:, 1] - 0.5 * x[:, 0]) ** 2 + 0.2 * x[:, 0]


def tilted_force(x: torch.Tensor) -> torch.Tensor:
    dy = x[:, 1] - 0.5 * x[:, 0]
    fx = 4 * x[:, 0] * (x[:, 0] ** 2 - 1) - dy + 0.2
    return -torch.stack([fx, 2 * dy], dim=1)


def _spectrum(potential: torch.Tensor, grid: GridSpec, D: float) -> torch.Tensor:
    """The grid generator's eigenvalues, largest first (real: it is similar to a symmetric
    matrix by detailed balance)."""
    n = grid.points[0]
    matrix = fokker_planck_generator(potential, grid, D)(torch.eye(n, dtype=F64)).T
    return torch.linalg.eigvals(matrix).real.sort(descending=True).values


@pytest.mark.parametrize("adjust, dtau, steps", [(True, 0.04, 500), (False, 0.003, 6700)])
def test_langevin_2d_histogram_matches_boltzmann(adjust, dtau, steps):
    """20 000 independent walkers from x = (1, 0.5) over tau = 20 (the slow inter-well mode
    decays at ~0.4 at D = 0.7, so the start is forgotten to e^-8), histogram 12 x 12 against
    exp(-f/D)/Z by per-bin Simpson quadrature. ULA's O(dtau) bias at dtau = 0.003 is below the
    per-bin resolution (1 / sqrt(~140 counts) ~ 8%)."""
    D, W = 0.7, 20_000
    x0 = torch.tensor([[1.0, 0.5]], dtype=F64).repeat(W, 1)
    out = langevin_walkers(tilted_force, x0, D, dtau, steps, RandomStreams(3),
                           f=tilted_double_well, adjust=adjust)  # fmt: skip
    chi2, dof, p = histogram_chi2(out.positions, tilted_double_well, D, (12, 12), (-2.2, -2.2),
                                  (2.2, 2.2))  # fmt: skip
    print(f"2D Langevin adjust={adjust}: chi2 = {chi2:.1f} on {dof} dof, p = {p:.3g}")
    assert p > 1e-3
    wrong = histogram_chi2(out.positions, tilted_double_well, 0.85 * D, (12, 12), (-2.2, -2.2),
                           (2.2, 2.2))  # fmt: skip
    assert wrong[2] < 1e-6  # the same walkers against the wrong temperature: rejected


def test_fp_relaxation_rate_is_the_first_nonzero_eigenvalue():
    """Double well, D = 0.7: the late L1 distance decays as (1 - dtau lambda_1)^k, lambda_1 the
    grid operator's first nonzero eigenvalue (explicit Euler's own rate, not the continuum's)."""
    D, grid = 0.7, GridSpec((-2.2,), (2.2,), (120,))
    x = grid.axes("cpu")[0]
    f = (x * x - 1) ** 2
    eigen = _spectrum(f, grid, D)
    assert abs(float(eigen[0])) < 1e-10  # the stationary state
    lam1 = -float(eigen[1])
    dtau = 0.9 * fokker_planck_max_dtau(f, grid, D)
    p0 = torch.exp(-((x - 1) ** 2) / 0.02)
    out = fokker_planck(f, grid, D, dtau, math.ceil(30 / dtau), p0=p0)
    late = (out.times > 15) & (out.l1_distance_trace[0] > 1e-11)
    t, log_l1 = out.times[late], torch.log(out.l1_distance_trace[0][late])
    slope = float(torch.diff(log_l1).sum() / torch.diff(t).sum())
    expected = -math.log(1 - dtau * lam1) / dtau
    print(f"FP relaxation: measured rate {-slope:.6f}, grid lambda_1 {lam1:.6f}")
    assert abs(-slope / expected - 1) < 1e-3


def test_fp_spectrum_converges_to_the_harmonic_rate():
    """f = x^2/2 (k = 1): the continuum FP eigenvalues are 0, 1, 2, ...; the grid's lambda_1
    approaches 1 at O(h^2) (the ratio of successive errors ~4)."""
    errors = []
    for n in (40, 80, 160):
        grid = GridSpec((-5.0,), (5.0,), (n,))
        x = grid.axes("cpu")[0]
        eigen = _spectrum(x * x / 2, grid, 0.5)
        errors.append(abs(-float(eigen[1]) - 1))
    assert abs(-float(eigen[2]) - 2) < 0.01  # lambda_2 = 2 at h = 1/16
    order = math.log2(errors[0] / errors[1]), math.log2(errors[1] / errors[2])
    print(f"harmonic lambda_1 errors {errors}, orders {order}")
    assert all(1.8 < p < 2.2 for p in order)


def test_fp_3d_harmonic_variance():
    """d = 3: f = |x|^2 / 2 from an off-centre packet; var -> D per axis, mass conserved."""
    D, grid = 0.5, GridSpec((-4.0,) * 3, (4.0,) * 3, (24,) * 3)
    xyz = grid.coordinates("cpu")
    f = (xyz**2).sum(-1) / 2
    p0 = torch.exp(-((xyz - torch.tensor([1.0, -0.5, 0.5], dtype=F64)) ** 2).sum(-1) / 0.5)
    dtau = fokker_planck_max_dtau(f, grid, D)
    out = fokker_planck(f, grid, D, dtau, math.ceil(12 / dtau), p0=p0)
    assert (out.mass_trace - 1).abs().max() < 1e-12
    var = (out.density[0, ..., None] * xyz**2).sum((0, 1, 2)) * grid.cell_volume
    assert torch.allclose(var, torch.full((3,), D, dtype=F64), rtol=0.03)  # O(h^2), h = 1/3
    assert out.l1_distance_trace[0, -1] < 1e-3


def test_taylor_long_run_is_the_top_eigenvector_of_its_step():
    """Eq. (16) is psi <- M psi with M = I + dtau L (tridiagonal, Dirichlet): after long tau
    psi is M's top eigenvector and log |psi| grows by log(mu_top) a step, to round-off."""
    D, grid = 0.5, GridSpec((-3.0,), (3.0,), (90,))
    x = grid.axes("cpu")[0]
    f = torch.cos(3 * x) + x**2 / 2
    h = grid.spacing[0]
    dtau = 0.3 * h * h / D
    r = D * dtau / h**2
    step = torch.diag(1 - 2 * r - dtau * forward_slope(f, h))
    ones = torch.ones(89, dtype=F64)
    step += r * (torch.diag(ones, 1) + torch.diag(ones, -1))
    values, vectors = torch.linalg.eig(step)
    top = int(values.real.argmax())
    mu, vec = float(values.real[top]), vectors[:, top].real
    vec = vec.abs() / (vec.abs().sum() * h)
    out = taylor_diffusion(f, grid, D, dtau, 40_000, save_every=1000, renormalise=True)
    assert (out.psi[0] - vec).abs().max() < 1e-8 * vec.max()
    growth = torch.diff(out.log_norm_trace[0][-5:]) / 1000
    assert (growth - math.log(mu)).abs().max() < 1e-10
