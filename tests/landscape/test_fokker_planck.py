"""Fokker-Planck on a grid, Langevin walkers and the seed's eq. (16): fast checks."""

from __future__ import annotations

import math

import pytest
import torch
from scipy import special

from physml_lang.runtime.landscape.errors import LandscapeError
from physml_lang.runtime.landscape.fokker_planck import (
    fokker_planck,
    fokker_planck_generator,
    fokker_planck_max_dtau,
    taylor_diffusion,
    taylor_stability,
)
from physml_lang.runtime.landscape.grid import GridSpec
from physml_lang.runtime.landscape.langevin import histogram_chi2, langevin_walkers
from physml_lang.runtime.random import RandomStreams

F64 = torch.float64


def double_well(x: torch.Tensor) -> torch.Tensor:
    """f = (x^2 - 1)^2 summed over coordinates: (W, n) -> (W,)."""
    return ((x * x - 1) ** 2).sum(dim=1)


def double_well_force(x: torch.Tensor) -> torch.Tensor:
    return -4 * x * (x * x - 1)


# --- Fokker-Planck -------------------------------------------------------------------------


def test_fp_conserves_mass_to_round_off_in_2d():
    grid = GridSpec((-2.0, -1.5), (2.0, 2.5), (24, 20))
    xy = grid.coordinates("cpu")
    f = torch.stack([(xy**2).sum(-1), torch.sin(3 * xy[..., 0]) + xy[..., 1] ** 4 / 4])
    p0 = torch.rand(2, 24, 20, generator=torch.Generator().manual_seed(0), dtype=F64)
    dtau = 0.9 * fokker_planck_max_dtau(f, grid, 0.3)
    out = fokker_planck(f, grid, 0.3, dtau, 3000, p0=p0, save_every=500)
    assert out.mass_trace.shape == (2, 7) and out.snapshots.shape == (7, 2, 24, 20)
    assert (out.mass_trace - 1).abs().max() < 1e-12
    assert bool((out.density >= 0).all())


def test_fp_double_well_relaxes_to_boltzmann():
    """From a packet in the right well, across the barrier to exp(-f/D)/Z: the slowest mode
    decays as exp(-lambda_1 tau), lambda_1 = 0.43 at D = 0.7, so tau = 25 leaves ~1e-5."""
    D, grid = 0.7, GridSpec((-2.2,), (2.2,), (100,))
    x = grid.axes("cpu")[0]
    f = (x * x - 1) ** 2
    p0 = torch.exp(-((x - 1) ** 2) / 0.02)
    dtau = fokker_planck_max_dtau(f, grid, D)
    out = fokker_planck(f, grid, D, dtau, math.ceil(25 / dtau), p0=p0)
    l1 = out.l1_distance_trace[0]
    assert l1[0] > 0.5 and l1[-1] < 1e-3
    # the explicit step is a stochastic matrix: an L1 contraction, so the distance never grows
    assert bool((l1[1:] <= l1[:-1] + 1e-14).all())
    # Scharfetter-Gummel: exp(-f/D) is the grid operator's null vector, to round-off: a few
    # eps x (the largest rate 1/dtau) x max p; a 1% tilt of it gives 1e-2
    generator = fokker_planck_generator(f, grid, D)
    round_off = 10 * torch.finfo(F64).eps / dtau * float(out.stationary.max())
    assert generator(out.stationary).abs().max() < round_off
    assert generator(out.stationary * (1 + 0.01 * x)).abs().max() > 1e-3
    boltzmann = torch.exp(-f / D) / (torch.exp(-f / D).sum() * grid.spacing[0])
    assert torch.allclose(out.stationary[0], boltzmann, rtol=1e-12)


def test_fp_2d_harmonic_mean_and_variance():
    """f = (x^2 + 2 y^2)/2 (an Ornstein-Uhlenbeck process): <x> = x0 e^{-tau},
    <y> = y0 e^{-2 tau}, var -> D/k. The grid (h = 0.167) moves these by O(h^2) ~ 1%."""
    D, grid = 0.5, GridSpec((-4.0, -4.0), (4.0, 4.0), (48, 48))
    xy = grid.coordinates("cpu")
    f = (xy[..., 0] ** 2 + 2 * xy[..., 1] ** 2) / 2
    p0 = torch.exp(-((xy[..., 0] - 1.5) ** 2 + (xy[..., 1] + 1.0) ** 2) / (2 * 0.3))
    dtau = 0.95 * fokker_planck_max_dtau(f, grid, D)
    steps = math.ceil(10 / dtau)
    out = fokker_planck(f, grid, D, dtau, steps, p0=p0, save_every=steps // 10)
    cell = grid.cell_volume
    snaps = out.snapshots[:, 0]
    mean_x = (snaps * xy[..., 0]).sum((1, 2)) * cell
    mean_y = (snaps * xy[..., 1]).sum((1, 2)) * cell
    early = out.times < 2.5  # while the means are large against the O(h^2) offsets
    assert torch.allclose(mean_x[early], mean_x[0] * torch.exp(-out.times[early]), atol=0.02)
    assert torch.allclose(mean_y[early], mean_y[0] * torch.exp(-2 * out.times[early]),
                          atol=0.02)  # fmt: skip
    p = out.density[0]
    var_x = (p * xy[..., 0] ** 2).sum() * cell
    var_y = (p * xy[..., 1] ** 2).sum() * cell
    assert abs(var_x / D - 1) < 0.02 and abs(var_y / (D / 2) - 1) < 0.02
    assert out.l1_distance_trace[0, -1] < 1e-3


def test_fp_refuses_dtau_above_the_explicit_limit():
    grid = GridSpec((-1.0,), (1.0,), (50,))
    f = torch.zeros(50, dtype=F64)
    limit = fokker_planck_max_dtau(f, grid, 1.0)
    assert limit == pytest.approx(grid.spacing[0] ** 2 / 2, rel=1e-12)  # flat: h^2 / (2 d D)
    fokker_planck(f, grid, 1.0, limit, 10)
    with pytest.raises(LandscapeError) as err:
        fokker_planck(f, grid, 1.0, 1.5 * limit, 10)
    assert f"{limit:.4g}" in err.value.message and "explicit" in err.value.message
    assert err.value.hint


def test_fp_names_the_non_finite_point():
    grid = GridSpec((0.0, 0.0), (1.0, 2.0), (10, 20))
    f = torch.zeros(1, 10, 20, dtype=F64)
    f[0, 3, 7] = float("inf")
    with pytest.raises(LandscapeError) as err:
        fokker_planck(f, grid, 1.0, 1e-4, 1)
    assert "x = (0.35, 0.75)" in err.value.message and "inf" in err.value.message
    with pytest.raises(LandscapeError):
        fokker_planck(torch.zeros(10, 19), grid, 1.0, 1e-4, 1)  # wrong shape
    with pytest.raises(LandscapeError):
        fokker_planck(torch.zeros(10, 20), grid, -1.0, 1e-4, 1)  # D <= 0
    with pytest.raises(LandscapeError):
        fokker_planck(torch.zeros(10, 20), grid, 1.0, 1e-4, 1, p0=-torch.ones(10, 20))


# --- Langevin walkers ------------------------------------------------------------------------
# Independent walkers' last positions are independent draws, so Pearson's chi^2 needs no
# autocorrelation correction. The runs start every walker at x = +1 (one well) and last
# tau = 20 ~ 8.7 / lambda_1 (lambda_1 = 0.43 at D = 0.7): the memory of the start is e^-8.7 of
# the well imbalance, ~1e-4, far under the 1 / sqrt(10^4) resolution.


@pytest.mark.parametrize("adjust, dtau", [(False, 0.004), (True, 0.05)])
def test_langevin_double_well_matches_boltzmann(adjust, dtau):
    """ULA's O(dtau) bias at dtau = 0.004: 2e5 walkers at dtau = 0.002 gave chi2 = 33 on 25
    dof, so at 1e4 walkers the bias adds ~1 to chi2, well under its sd sqrt(2 dof) ~ 7."""
    D, W = 0.7, 10_000
    x0 = torch.ones(W, 1, dtype=F64)
    out = langevin_walkers(double_well_force, x0, D, dtau, round(20 / dtau), RandomStreams(1),
                           f=double_well, adjust=adjust)  # fmt: skip
    chi2, dof, p = histogram_chi2(out.positions, double_well, D, 30, -2.2, 2.2)
    assert p > 1e-3, (chi2, dof)
    if adjust:
        assert 0.8 < out.acceptance < 1.0
    # <f> under exp(-f/D)/Z by quadrature; walkers' sd of f ~ 0.5 -> stderr 0.005
    xs = torch.linspace(-3, 3, 6001, dtype=F64)[:, None]
    w = torch.exp(-double_well(xs) / D)
    assert abs(float(out.mean_f[-1]) - float((w * double_well(xs)).sum() / w.sum())) < 0.025


def test_chi2_rejects_the_wrong_temperature_and_ulas_bias():
    """The test has power: the MALA walkers (exact at dtau = 0.05) against D = 0.6 instead of
    0.7 fail, and so do ULA walkers at the same dtau (their O(dtau) bias; chi2 ~ 600)."""
    x0 = torch.ones(10_000, 1, dtype=F64)
    out = langevin_walkers(double_well_force, x0, 0.7, 0.05, 400, RandomStreams(1),
                           f=double_well, adjust=True)  # fmt: skip
    assert histogram_chi2(out.positions, double_well, 0.6, 30, -2.2, 2.2)[2] < 1e-6
    ula = langevin_walkers(double_well_force, x0, 0.7, 0.05, 400, RandomStreams(1))
    assert histogram_chi2(ula.positions, double_well, 0.7, 30, -2.2, 2.2)[2] < 1e-6


def test_langevin_reflecting_box_and_recorded_samples():
    """Free diffusion (F = 0) between walls at 0 and 1 is uniform; the recorded (T, W, n)
    samples are thinned by their autocorrelation time before the chi^2."""
    W = 2000
    x0 = torch.full((W, 1), 0.5, dtype=F64)
    out = langevin_walkers(torch.zeros_like, x0, 0.5, 0.01, 400, RandomStreams(2), lower=[0.0],
                           upper=[1.0], record_every=20)  # fmt: skip
    assert out.samples.shape == (21, W, 1)
    assert bool(((out.samples >= 0) & (out.samples <= 1)).all())
    flat = lambda x: torch.zeros(x.shape[0], dtype=F64)  # noqa: E731
    assert histogram_chi2(out.positions, flat, 0.5, 20, 0.0, 1.0)[2] > 1e-3
    assert histogram_chi2(out.samples[5:], flat, 0.5, 20, 0.0, 1.0)[2] > 1e-3
    # MALA with a box rejects moves out of it
    mala = langevin_walkers(torch.zeros_like, x0, 0.5, 0.05, 100, RandomStreams(2),
                            lower=[0.0], upper=[1.0], f=flat, adjust=True)  # fmt: skip
    assert bool(((mala.positions >= 0) & (mala.positions <= 1)).all())
    assert 0.3 < mala.acceptance < 0.9


def test_walker_paths_do_not_depend_on_the_population():
    x0 = torch.linspace(-1, 1, 100, dtype=F64)[:, None].repeat(1, 2)
    big = langevin_walkers(double_well_force, x0, 0.5, 0.01, 50, RandomStreams(7))
    small = langevin_walkers(double_well_force, x0[:10], 0.5, 0.01, 50, RandomStreams(7))
    assert torch.equal(big.positions[:10], small.positions)


def test_langevin_errors():
    x0 = torch.ones(16, 1, dtype=F64)
    with pytest.raises(LandscapeError) as err:  # an explosive force: walkers run off
        langevin_walkers(lambda x: x**3, x0, 0.5, 0.1, 200, RandomStreams(0))
    assert "stopped being finite" in err.value.message and "dtau" in err.value.hint
    with pytest.raises(LandscapeError):
        langevin_walkers(double_well_force, x0, 0.5, 0.1, 10, RandomStreams(0), adjust=True)
    with pytest.raises(LandscapeError):
        langevin_walkers(lambda x: x[:, 0], x0, 0.5, 0.1, 10, RandomStreams(0))
    with pytest.raises(LandscapeError):  # f must give one value per walker
        langevin_walkers(double_well_force, x0, 0.5, 0.1, 10, RandomStreams(0), f=lambda x: x)
    with pytest.raises(LandscapeError):
        langevin_walkers(double_well_force, x0, 0.5, 0.1, 10, RandomStreams(0), lower=[2.0],
                         upper=[3.0])  # fmt: skip


# --- the seed's eq. (16) -----------------------------------------------------------------


def test_taylor_stability_limit():
    assert taylor_stability(1.0, 0.0025, 0.1) == pytest.approx(0.25)
    with pytest.raises(LandscapeError) as err:
        taylor_stability(1.0, 0.0073, 0.1)
    assert "D dtau / dx^2 = 0.73 > 1/2" in err.value.message
    assert "take dtau <= 0.005" in err.value.hint


def _quadratic(points: int, lower: float = -6.0, upper: float = 6.0):
    grid = GridSpec((lower,), (upper,), (points,))
    x = grid.axes("cpu")[0]
    return grid, x, (x - 1) ** 2 / 2


def test_taylor_limit_is_real():
    """At D dtau/dx^2 = 0.55 the highest grid mode grows by |1 - 4r| = 1.2 a step: from
    round-off to e^30 in 600 steps; at 0.45 the same run stays bounded. A gentle slope
    (f = 0.05 (x - 1)^2 / 2, |f'| < 0.4) keeps the physical growth of the norm below e^1."""
    grid, x, f = _quadratic(120)
    f = 0.05 * f
    psi0 = torch.exp(-((x - 1) ** 2))
    h, D = grid.spacing[0], 0.5
    with pytest.raises(LandscapeError):
        taylor_diffusion(f, grid, D, 0.55 * h * h / D, 600, psi0=psi0)
    grows = taylor_diffusion(f, grid, D, 0.55 * h * h / D, 600, psi0=psi0,
                             check_stability=False, renormalise=True)  # fmt: skip
    stays = taylor_diffusion(f, grid, D, 0.45 * h * h / D, 600, psi0=psi0)
    assert grows.log_norm_trace[0, -1] > 30  # > 13 orders of magnitude
    assert (grows.psi[0, 1:] * grows.psi[0, :-1] < 0).float().mean() > 0.5  # sawtooth
    assert stays.log_norm_trace[0].abs().max() < 2 and bool((stays.psi >= 0).all())


def test_taylor_converges_at_first_order():
    """Fixed tau = 1, dx -> dx/2 -> dx/4 at fixed D dtau/dx^2 = 0.4. The forward slope
    (f_{i+1} - f_i)/dx = f'(x_i + dx/2) + O(dx^2) makes the scheme first order: successive
    differences shrink by ~2^1 (the Laplacian and the time step alone would give 2^2)."""
    D, r, tau = 0.5, 0.4, 1.0
    solutions = []
    for n in (100, 200, 400):
        grid = GridSpec((-4.0,), (4.0,), (n,))
        x = grid.axes("cpu")[0]
        f = torch.cos(2 * x) + x**2 / 4  # |f'| <= 4: the reaction is a small part of a step
        dtau = r * grid.spacing[0] ** 2 / D
        out = taylor_diffusion(f, grid, D, dtau, round(tau / dtau),
                               psi0=torch.exp(-(x**2) / 0.5))  # fmt: skip
        solutions.append(out.psi[0])

    def coarse(psi: torch.Tensor) -> torch.Tensor:
        return psi.reshape(-1, 2).mean(1)  # two fine cells -> their parent: O(dx^2)

    e1 = (coarse(solutions[1]) - solutions[0]).abs().max()
    e2 = (coarse(solutions[2]) - solutions[1]).abs().max()
    order = math.log2(e1 / e2)
    print(f"eq. (16): successive differences {e1:.3e}, {e2:.3e}; observed order {order:.2f}")
    assert 0.8 < order < 1.3


def test_taylor_peak_passes_the_minimum_and_ends_at_the_airy_ground_state():
    """f = (x - 1)^2 / 2 in [-6, 6]: the seed's peak does move downhill to the minimum x = 1,
    but the scheme's limit d psi/dtau = D psi'' - f' psi is imaginary time in the linear
    potential f' = x - 1, whose ground state with psi = 0 at the wall is an Airy function: the
    peak runs on to x_w + (|a_1| - |a_1'|) D^(1/3) next to the left wall, and the norm grows at
    -E_0 = 1 - x_w - |a_1| D^(1/3). On the grid the wall sits at x_w = -6 - h/2 (the first
    zero ghost) and the forward slope is x + h/2 - 1; the O(dtau) + O(h^2) offsets of the
    growth rate are ~0.02 here, so 0.05 is the tolerance."""
    grid, x, f = _quadratic(240)
    D, h = 0.5, grid.spacing[0]
    dtau = 0.4 * h * h / D
    out = taylor_diffusion(f, grid, D, dtau, round(15 / dtau), psi0=torch.exp(-2 * (x - 3) ** 2),
                           save_every=125, renormalise=True)  # fmt: skip
    peak = out.argmax_trace[0]
    crossed = int(torch.nonzero(peak < 1)[0])
    assert 0 < crossed and abs(float(peak[crossed - 1]) - 1) < 1.0  # it passed x = 1
    ell = D ** (1 / 3)
    a1, a1p = -special.ai_zeros(1)[0][0], -special.ai_zeros(1)[1][0]
    wall, c = -6 - h / 2, 1 - h / 2
    energy = wall - c + a1 * ell
    assert abs(float(peak[-1]) - (wall + (a1 - a1p) * ell)) <= h
    late = out.times > 10
    rate = torch.diff(out.log_norm_trace[0][late]) / torch.diff(out.times[late])
    assert (rate + energy).abs().max() < 0.05
    airy = torch.as_tensor(special.airy(((x - c - energy) / ell).numpy())[0]).clamp_min(0)
    airy = airy / (airy.sum() * h)
    assert (out.psi[0] - airy).abs().sum() * h < 5e-3  # the shape: L1 distance
