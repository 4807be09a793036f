"""Diffusion Monte Carlo (runtime.landscape.dmc): ground-state energies against exact values,
the zero-variance property of an exact trial function, population-control failures, and the
time-step / population extrapolations.

Tolerances: |E - E_exact| < 4 stderr + the known time-step bias of the setting (stated at each
test); the stderr is the binning-analysis plateau of the per-step mixed energy, which is a
conservative error (the largest blocked error), so 4 sigma fails about 1 run in 10^4."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from physml_lang.runtime.landscape.dmc import autograd_trial, diffusion_monte_carlo
from physml_lang.runtime.landscape.dmc_analysis import (
    extrapolate_population,
    extrapolate_timestep,
)
from physml_lang.runtime.landscape.errors import LandscapeError
from physml_lang.runtime.random import RandomStreams


def harmonic(x: torch.Tensor) -> torch.Tensor:
    """V = |x|^2 / 2 (unit frequency): E0 = n / 2."""
    return 0.5 * (x * x).sum(dim=1)


def coulomb(nuclei: list[list[float]], electrons: int):
    """V of ``electrons`` electrons (x: (W, 3 electrons)) around unit charges at ``nuclei``
    (M, 3), with the electron-electron repulsion (no nuclear repulsion)."""
    centres = torch.tensor(nuclei, dtype=torch.float64)

    def potential(x: torch.Tensor) -> torch.Tensor:
        w = x.shape[0]
        r = (x.reshape(w, electrons, 1, 3) - centres.to(x)).norm(dim=-1)  # (W, E, M)
        v = -(1 / r).sum(dim=(1, 2))
        if electrons == 2:
            y = x.reshape(w, 2, 3)
            v = v + 1 / (y[:, 0] - y[:, 1]).norm(dim=-1)
        return v

    return potential


class HarmonicTrial:
    """The exact ground state of the 3D oscillator, log psi = -|x|^2 / 2: E_L = 3/2 everywhere."""

    def log_psi(self, x: torch.Tensor) -> torch.Tensor:
        return -0.5 * (x * x).sum(dim=1)

    def grad_log_psi(self, x: torch.Tensor) -> torch.Tensor:
        return -x

    def laplacian_log_psi(self, x: torch.Tensor) -> torch.Tensor:
        return torch.full((x.shape[0],), -float(x.shape[1]), device=x.device, dtype=x.dtype)


class MolecularTrial:
    """psi_T = prod_electrons phi(r_e) [* exp(r12 / (2 (1 + b r12))) for two electrons], with the
    LCAO orbital phi(r) = sum_I exp(-a |r - R_I|) over the nuclei R_I (M, 3). One nucleus at the
    origin is hydrogen's exp(-a r). Derivatives by hand:
    grad log phi = sum_I -a e_I u_I / phi (u_I unit vectors), lap phi = sum_I e_I (a^2 - 2a/r_I);
    Jastrow u(r) = r / (2 (1 + b r)): u' = 1 / (2 (1 + b r)^2), u'' = -b / (1 + b r)^3,
    lap u = 2 (u'' + 2 u' / r) summed over both electrons."""

    def __init__(self, nuclei: list[list[float]], a: float, electrons: int = 1,
                 b: float | None = None):  # fmt: skip
        self.nuclei = torch.tensor(nuclei, dtype=torch.float64)
        self.a, self.electrons, self.b = a, electrons, b

    def _orbital(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """log phi (W, E), grad log phi (W, E, 3), lap log phi (W, E)."""
        r = x.reshape(x.shape[0], self.electrons, 1, 3) - self.nuclei.to(x)  # (W, E, M, 3)
        d = r.norm(dim=-1)
        e = torch.exp(-self.a * d)
        phi = e.sum(dim=-1)
        grad = ((-self.a * e / d).unsqueeze(-1) * r).sum(dim=-2) / phi.unsqueeze(-1)
        lap = (e * (self.a**2 - 2 * self.a / d)).sum(dim=-1) / phi - (grad * grad).sum(dim=-1)
        return torch.log(phi), grad, lap

    def _jastrow(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        y = x.reshape(x.shape[0], 2, 3)
        r12 = y[:, 0] - y[:, 1]
        r = r12.norm(dim=-1)
        q = 1 + self.b * r
        du, ddu = 1 / (2 * q * q), -self.b / q**3
        g1 = (du / r).unsqueeze(-1) * r12
        return r / (2 * q), torch.cat([g1, -g1], dim=1), 2 * (ddu + 2 * du / r)

    def derivatives(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """log psi, grad log psi, lap log psi in one pass (the engine's fast path)."""
        log_phi, grad, lap = self._orbital(x)
        log_psi, grad, lap = log_phi.sum(dim=-1), grad.reshape(x.shape[0], -1), lap.sum(dim=-1)
        if self.b is None:
            return log_psi, grad, lap
        u, grad_u, lap_u = self._jastrow(x)
        return log_psi + u, grad + grad_u, lap + lap_u

    def log_psi(self, x: torch.Tensor) -> torch.Tensor:
        value = self._orbital(x)[0].sum(dim=-1)
        return value if self.b is None else value + self._jastrow(x)[0]

    def grad_log_psi(self, x: torch.Tensor) -> torch.Tensor:
        grad = self._orbital(x)[1].reshape(x.shape[0], -1)
        return grad if self.b is None else grad + self._jastrow(x)[1]

    def laplacian_log_psi(self, x: torch.Tensor) -> torch.Tensor:
        lap = self._orbital(x)[2].sum(dim=-1)
        return lap if self.b is None else lap + self._jastrow(x)[2]


HYDROGEN = [[0.0, 0.0, 0.0]]


def test_harmonic_oscillator_1d_without_trial():
    """V = x^2/2, plain diffusion: E0 = 1/2. The symmetric (V + V')/2 branching has an
    O(dtau^2) time-step error, ~1e-5 at dtau = 0.01, far below the error bar (~2e-3)."""
    r = diffusion_monte_carlo(harmonic, 1, 4000, 0.01, 3000, 500, RandomStreams(11))
    assert r.energy.stderr < 5e-3
    assert abs(r.energy.mean - 0.5) < 4 * r.energy.stderr
    assert abs(r.growth_energy.mean - 0.5) < 4 * r.growth_energy.stderr
    assert r.acceptance == 1.0 and r.effective_dtau == pytest.approx(0.01)
    # population control keeps N near the target (log N fluctuates by O(1/sqrt(N)) only)
    assert np.all(np.abs(np.log(r.population[500:] / 4000)) < 0.1)
    assert r.walker_steps == 4000 + int(r.population[:-1].sum())
    assert r.positions.shape == (r.population[-1], 1)


def test_harmonic_oscillator_3d_exact_trial_has_zero_variance():
    """With psi_T = psi_0, E_L = 3/2 at every walker: the mixed and growth estimators are exactly
    3/2 with zero error, whatever the time step."""
    r = diffusion_monte_carlo(harmonic, 3, 500, 0.05, 300, 50, RandomStreams(12),
                              trial=HarmonicTrial(), record_every=100)  # fmt: skip
    assert r.energy.mean == pytest.approx(1.5, abs=1e-12)
    assert r.energy.stderr < 1e-12
    assert r.growth_energy.mean == pytest.approx(1.5, abs=1e-9)
    assert np.allclose(r.energy_trace, 1.5, atol=1e-12)
    # the drift-diffusion Green's function is not exact at dtau = 0.05: some rejections
    assert 0.95 < r.acceptance < 1.0
    assert r.effective_dtau < 0.05
    assert len(r.snapshots) == 3 and r.snapshots[0].shape[1] == 3
    # walkers sample psi_0^2: <x^2> = 1/2 per coordinate (3 * 500 values, error ~0.02)
    assert float((r.positions**2).mean()) == pytest.approx(0.5, abs=0.08)


def test_hydrogen_with_trial_quick():
    """Hydrogen with psi_T = exp(-0.9 r): E_L = -0.405 - 0.1 / r. At dtau = 0.02 the time-step
    bias measured in test_dmc_slow is below 3e-4; allow it on top of 4 sigma."""
    r = diffusion_monte_carlo(coulomb(HYDROGEN, 1), 3, 1000, 0.02, 2000, 400, RandomStreams(13),
                              trial=MolecularTrial(HYDROGEN, 0.9))  # fmt: skip
    assert r.energy.stderr < 1e-3
    assert abs(r.energy.mean + 0.5) < 4 * r.energy.stderr + 3e-4
    assert r.acceptance > 0.99


def test_hydrogen_without_trial_needs_energy_cutoff():
    """Plain diffusion on -1/r at dtau = 0.1: a walker landing at r << dtau gets weight
    exp(dtau / r), and this seed's population explodes; with the branching energies clipped at
    E +- 2/sqrt(dtau) (the default) the run is stable. Its time-step bias at dtau = 0.1 is about +8e-3 (slope
    0.066 / a.u. measured in test_dmc_slow, plus curvature): allow 1e-2 on top of 4 sigma."""
    args = (coulomb(HYDROGEN, 1), 3, 1000, 0.1, 1500, 100)
    with pytest.raises(LandscapeError, match="population grew") as err:
        diffusion_monte_carlo(*args, RandomStreams(0), energy_cutoff=None)
    assert "energy_cutoff" in err.value.hint
    r = diffusion_monte_carlo(*args, RandomStreams(0))  # the default cutoff, 2
    assert abs(r.energy.mean + 0.5) < 4 * r.energy.stderr + 1e-2


def test_same_seed_same_run():
    runs = [diffusion_monte_carlo(harmonic, 2, 200, 0.05, 100, 20, RandomStreams(7)) for _ in "ab"]
    assert np.array_equal(runs[0].energy_trace, runs[1].energy_trace)
    assert np.array_equal(runs[0].population, runs[1].population)
    other = diffusion_monte_carlo(harmonic, 2, 200, 0.05, 100, 20, RandomStreams(8))
    assert not np.array_equal(runs[0].energy_trace, other.energy_trace)


def test_fixed_reference_too_high_explodes():
    """feedback = 0 keeps E_ref fixed: 5 above E0 = 1/2, N grows like exp(4.5 tau)."""
    with pytest.raises(LandscapeError, match="population grew to") as err:
        diffusion_monte_carlo(harmonic, 1, 200, 0.05, 1000, 10, RandomStreams(1), feedback=0.0,
                              e_ref=5.0)  # fmt: skip
    assert "feedback" in err.value.hint


def test_fixed_reference_too_low_dies_out():
    with pytest.raises(LandscapeError, match="died out") as err:
        diffusion_monte_carlo(harmonic, 1, 200, 0.05, 1000, 10, RandomStreams(1), feedback=0.0,
                              e_ref=-5.0)  # fmt: skip
    assert err.value.hint


def test_potential_unbounded_below_raises():
    """V = -1/r^3 has no ground state: without the energy cutoff, walkers near the origin branch
    without limit; with it, their energies drag E_ref down until the population dies out."""

    def falling(x: torch.Tensor) -> torch.Tensor:
        return -1 / x.norm(dim=1) ** 3

    for cutoff, message in ((None, "population grew"), (2.0, "died out")):
        with pytest.raises(LandscapeError, match=message) as err:
            diffusion_monte_carlo(falling, 3, 500, 0.01, 2000, 10, RandomStreams(2),
                                  energy_cutoff=cutoff)  # fmt: skip
        assert "unbounded below" in err.value.hint


def test_nan_potential_names_step_and_position():
    def broken(x: torch.Tensor) -> torch.Tensor:
        v = 0.5 * (x * x).sum(dim=1)
        return torch.where(x[:, 0] > 2.5, torch.nan, v)

    with pytest.raises(LandscapeError, match=r"local energy nan at step \d+, walker position"):
        diffusion_monte_carlo(broken, 2, 500, 0.05, 400, 10, RandomStreams(3),
                              x0=torch.zeros(500, 2, dtype=torch.float64))  # fmt: skip


def test_bad_settings_raise():
    for kwargs in (dict(dtau=0.0), dict(burn_in=100), dict(walkers=0), dict(feedback=-1.0)):
        args = dict(walkers=10, dtau=0.1, steps=100, burn_in=10) | kwargs
        with pytest.raises(LandscapeError):
            diffusion_monte_carlo(harmonic, 1, streams=RandomStreams(0), **args)


def test_wrong_shapes_raise():
    with pytest.raises(LandscapeError, match=r"V / E_L has shape \(50, 1\), expected \(50,\)"):
        diffusion_monte_carlo(lambda x: 0.5 * x * x, 1, 50, 0.1, 10, 2, RandomStreams(0))


def test_autograd_trial_matches_hand_derivatives():
    """The H2 trial (two electrons, Jastrow) differentiated by autograd vs by hand."""
    trial = MolecularTrial([[0, 0, -0.7], [0, 0, 0.7]], 1.2, electrons=2, b=0.4)
    auto = autograd_trial(trial.log_psi)
    x = RandomStreams(5).normal((64, 6), torch.float64)
    assert torch.allclose(auto.log_psi(x), trial.log_psi(x))
    assert torch.allclose(auto.grad_log_psi(x), trial.grad_log_psi(x), atol=1e-12)
    assert torch.allclose(auto.laplacian_log_psi(x), trial.laplacian_log_psi(x), atol=1e-10)
    for combined, separate in zip(trial.derivatives(x), (trial.log_psi(x), trial.grad_log_psi(x),
                                                          trial.laplacian_log_psi(x)), strict=True):
        assert torch.equal(combined, separate)
    # and against central finite differences of the hand-written gradient (h^2 error ~ 1e-8)
    h = 1e-5
    lap_fd = sum((trial.grad_log_psi(x + h * e)[:, i] - trial.grad_log_psi(x - h * e)[:, i])
                 / (2 * h) for i, e in enumerate(torch.eye(6, dtype=torch.float64)))  # fmt: skip
    assert torch.allclose(lap_fd, trial.laplacian_log_psi(x), atol=1e-6)


def test_autograd_trial_runs_dmc():
    """The same 3D oscillator with its exact trial through autograd: still zero variance."""
    r = diffusion_monte_carlo(harmonic, 3, 200, 0.05, 60, 10, RandomStreams(4),
                              trial=autograd_trial(lambda x: -0.5 * (x * x).sum(dim=1)))  # fmt: skip
    assert r.energy.mean == pytest.approx(1.5, abs=1e-12)


class GaussianTrial:
    """psi_T = exp(-0.4 |x|^2) for the 3D oscillator (exact: 0.5): E_L = 1.2 + 0.18 |x|^2."""

    def log_psi(self, x: torch.Tensor) -> torch.Tensor:
        return -0.4 * (x * x).sum(dim=1)

    def grad_log_psi(self, x: torch.Tensor) -> torch.Tensor:
        return -0.8 * x

    def laplacian_log_psi(self, x: torch.Tensor) -> torch.Tensor:
        return torch.full((x.shape[0],), -0.8 * x.shape[1], device=x.device, dtype=x.dtype)


def test_timestep_extrapolation_of_dmc_runs():
    """3D oscillator with an inexact Gaussian trial at dtau = 0.05, 0.1, 0.2 (smooth V: the
    time-step error is linear here; measured slope ~0.016): the extrapolated E0 matches 3/2
    within 4 of its stderrs (~1.2e-3)."""
    dtaus, means, errors = (0.05, 0.1, 0.2), [], []
    for i, dtau in enumerate(dtaus):
        r = diffusion_monte_carlo(harmonic, 3, 1000, dtau, round(63 / dtau), round(3 / dtau),
                                  RandomStreams(5, path=(i,)), trial=GaussianTrial())  # fmt: skip
        means.append(r.energy.mean)
        errors.append(r.energy.stderr)
    fit = extrapolate_timestep(dtaus, means, errors)
    assert fit.stderr < 2.5e-3
    assert abs(fit.value - 1.5) < 4 * fit.stderr


def test_timestep_extrapolation_recovers_intercept():
    """E = E0 + a dtau + noise of known sigma: the fitted E0 lies within 4 of its stderrs, the
    stderr matches the analytic one, and noise-free data fit exactly."""
    dtaus = np.array([0.01, 0.02, 0.04, 0.08])
    exact = -0.5 + 0.3 * dtaus
    fit = extrapolate_timestep(dtaus, exact, np.full(4, 1e-4))
    assert fit.value == pytest.approx(-0.5, abs=1e-12)
    assert fit.coefficients[1] == pytest.approx(0.3, abs=1e-9)
    assert fit.chi2_per_dof == pytest.approx(0.0, abs=1e-12)
    rng = np.random.default_rng(0)
    sigma = np.array([2e-4, 2e-4, 3e-4, 4e-4])
    pulls = []
    for _ in range(200):
        fit = extrapolate_timestep(dtaus, exact + sigma * rng.standard_normal(4), sigma)
        pulls.append((fit.value + 0.5) / fit.stderr)
    # the Birge scaling only inflates errors: |pull| <= 4 always and std(pull) <= ~1
    assert np.max(np.abs(pulls)) < 4.5 and 0.6 < np.std(pulls) < 1.1
    quad = extrapolate_timestep(dtaus, -0.5 + 0.3 * dtaus - 2 * dtaus**2, np.full(4, 1e-4), 2)
    assert quad.value == pytest.approx(-0.5, abs=1e-10) and len(quad.rows) == 4
    assert quad.rows[0]["dtau"] == 0.01 and abs(quad.rows[0]["pull"]) < 1e-6


def test_population_extrapolation_fits_inverse_n():
    walkers = [250, 500, 1000, 2000]
    means = [-0.5 - 2.0 / n for n in walkers]
    fit = extrapolate_population(walkers, means, [1e-4] * 4)
    assert fit.value == pytest.approx(-0.5, abs=1e-10)
    assert fit.coefficients[1] == pytest.approx(-2.0, abs=1e-6)


def test_extrapolation_errors():
    with pytest.raises(LandscapeError, match="distinct"):
        extrapolate_timestep([0.01, 0.01], [-0.5, -0.5], [1e-3, 1e-3])
    with pytest.raises(LandscapeError, match="stderrs"):
        extrapolate_timestep([0.01, 0.02], [-0.5, -0.5], [0.0, 1e-3])
    with pytest.raises(LandscapeError, match="order"):
        extrapolate_timestep([0.01, 0.02, 0.03, 0.04], [-0.5] * 4, [1e-3] * 4, order=3)
    with pytest.raises(LandscapeError, match="positive"):
        extrapolate_population([0, 100], [-0.5, -0.5], [1e-3, 1e-3])
    assert math.isnan(extrapolate_timestep([0.01, 0.02], [-0.5, -0.4], [1e-3, 1e-3]).chi2_per_dof)
