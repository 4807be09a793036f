"""Diffusion Monte Carlo validations against exact energies, with the time-step bias removed by
extrapolation over three time steps (runtime.landscape.dmc_analysis) and the population-control
bias shown to be below the error bars.

Each run's error is the binning stderr of its per-step mixed energy after burn-in; the runs at
different dtau are independent (separate seeds), so the weighted least-squares extrapolation
E(dtau) = E0 + a dtau gives E0 with an honest stderr (scaled up by the Birge ratio if the line
does not fit). Pass criterion: |E0 - E_exact| < 4 stderr(E0), with stderr(E0) at most the
precision stated per test. The numbers measured on one CPU thread (a shared 2-core machine)
are in each docstring.

The range of time steps matters: E(dtau) is linear only for small dtau. For H2+ and H2 the
curve bends between 0.04 and 0.08 (H2+ with a = 1.25, without the energy cutoff, measured
+1.9e-4 at 0.02 and -1.9e-4 at 0.08 relative to exact; with the cusp-satisfying a = 1.11 it
is flat to 0.02 and rises by 1.1e-3 at 0.08), and a line through (0.02, 0.04, 0.08) missed
E0 by 2-2.5 sigma (3e-4 to 6e-4); H2+ therefore uses (0.01, 0.02, 0.04). Hydrogen's E(dtau) is
linear up to 0.08, and so is H2's (its trial has both cusps): H2 runs at 0.005 (-1.174607(203)
total, 300 a.u.), 0.01 to 0.04 and 0.08 (-1.173356(192)) fit one line, chi2/dof 1.2, slope
~ +0.01 Ha per a.u. Over (0.01, 0.02, 0.04) alone that slope (2e-4 to 4e-4 above exact) was
hidden by the scatter, so those fits sat high; H2 uses (0.01, 0.02, 0.04, 0.08).
"""

from __future__ import annotations

import numpy as np
import pytest

from physml_lang.runtime.landscape.dmc import Trial, diffusion_monte_carlo
from physml_lang.runtime.landscape.dmc_analysis import (
    Extrapolation,
    extrapolate_population,
    extrapolate_timestep,
)
from physml_lang.runtime.random import RandomStreams

from .test_dmc import HYDROGEN, MolecularTrial, coulomb, harmonic

pytestmark = pytest.mark.slow


def timestep_scan(potential, n: int, trial: Trial | None, dtaus: tuple[float, ...],
                  walkers: int, imaginary_time: float, burn_in_time: float, seed: int,
                  **options) -> Extrapolation:  # fmt: skip
    """One run per dtau (steps = imaginary_time / dtau, burn-in likewise), extrapolated to 0."""
    means, errors = [], []
    for i, dtau in enumerate(dtaus):
        steps, burn_in = round(imaginary_time / dtau), round(burn_in_time / dtau)
        r = diffusion_monte_carlo(potential, n, walkers, dtau, steps + burn_in, burn_in,
                                  RandomStreams(seed, path=(i,)), trial=trial, **options)  # fmt: skip
        print(f"dtau {dtau}: E = {r.energy.mean:.6f} +- {r.energy.stderr:.6f} "
              f"(growth {r.growth_energy.mean:.6f}), acceptance {r.acceptance:.4f}, "
              f"{r.walker_steps} walker-steps in {r.walltime:.1f} s")  # fmt: skip
        means.append(r.energy.mean)
        errors.append(r.energy.stderr)
    fit = extrapolate_timestep(dtaus, means, errors)
    print(f"E0 = {fit.value:.6f} +- {fit.stderr:.6f}, slope {fit.coefficients[1]:.4f}, "
          f"chi2/dof {fit.chi2_per_dof:.2f}")  # fmt: skip
    return fit


def statistical_stderr(fit: Extrapolation) -> float:
    """The stderr of E0 from the error bars alone (before the Birge scaling by sqrt(chi2/dof)):
    the precision the run sizes buy, which the tests require; the pass criterion uses the
    scaled, larger one."""
    return fit.stderr / max(1.0, float(np.sqrt(fit.chi2_per_dof)))


def test_hydrogen_without_trial():
    """Plain diffusion on V = -1/r (no importance sampling, E_L = V has variance 1 Ha^2), the
    branching energies clipped at E +- 2/sqrt(dtau) (without it a walker landing at r << dtau
    gets weight exp(dtau / r) and the population explodes). 4000 walkers, 600 a.u. after 5 of
    burn-in per dtau in (0.02, 0.04, 0.08) (1.2e8, 6e7, 3e7 walker-steps): measured
    E = -0.49949(120), -0.49656(129), -0.49398(120) -> E0 = -0.50084 +- 0.00149 (exact -1/2,
    slope 0.088 / a.u., chi2/dof 0.48), 34 s."""
    fit = timestep_scan(coulomb(HYDROGEN, 1), 3, None, (0.02, 0.04, 0.08), 4000, 600.0, 5.0, 31,
                        energy_cutoff=2.0)  # fmt: skip
    assert statistical_stderr(fit) < 2.5e-3
    assert abs(fit.value + 0.5) < 4 * fit.stderr


def test_hydrogen_with_trial():
    """psi_T = exp(-0.9 r) (not the exact exp(-r)): E_L = -0.405 - 0.1/r, which diverges at the
    nucleus (no cusp), so the branching energies are clipped at E +- 2/sqrt(dtau) (at dtau = 0.08
    a walker near the nucleus otherwise started a population explosion). 4000 walkers, 150 a.u.
    per dtau in (0.02, 0.04, 0.08): measured E = -0.499927(96), -0.500149(111), -0.500275(130)
    -> E0 = -0.499847 +- 0.000126 (exact -1/2, chi2/dof 0.63), acceptance 0.9985-0.990, 24 s."""
    fit = timestep_scan(coulomb(HYDROGEN, 1), 3, MolecularTrial(HYDROGEN, 0.9),
                        (0.02, 0.04, 0.08), 4000, 150.0, 3.0, 32, energy_cutoff=2.0)  # fmt: skip
    assert statistical_stderr(fit) < 3e-4
    assert abs(fit.value + 0.5) < 4 * fit.stderr


H2_PLUS = [[0.0, 0.0, -1.0], [0.0, 0.0, 1.0]]
H2 = [[0.0, 0.0, -0.7], [0.0, 0.0, 0.7]]


def test_h2_plus_electronic_energy():
    """H2+ at R = 2 bohr, psi_T = exp(-1.25 r_A) + exp(-1.25 r_B): electronic energy
    -1.1026342 Ha. The trial lacks the cusp (E_L ~ +0.155 / r at a nucleus); the default energy
    cutoff trims that tail. 8000 walkers, 90 a.u. per dtau in (0.01, 0.02, 0.04) (7.4e7, 3.7e7,
    1.9e7 walker-steps): measured E = -1.102599(204), -1.102464(207), -1.102992(193) -> E0 =
    -1.102334 +- 0.000259 (+3.0e-4, 1.2 sigma; chi2/dof 1.09), 51 s. (Before the engine's
    one-gather step, whose rounding differs, the same seeds gave -1.102472(190) at 0.04 and
    E0 = -1.102594(248); without the cutoff E0 = -1.102585 +- 0.000598, chi2/dof 7.4. 24
    independent 2000-walker runs at dtau = 0.04 scattered by 1.07 +- 0.15 times their binning
    stderr: the error bars are honest.)"""
    fit = timestep_scan(coulomb(H2_PLUS, 1), 3, MolecularTrial(H2_PLUS, 1.25),
                        (0.01, 0.02, 0.04), 8000, 90.0, 3.0, 33)  # fmt: skip
    assert statistical_stderr(fit) <= 3e-4
    assert abs(fit.value + 1.1026342) < 4 * fit.stderr


def test_h2_total_energy():
    """H2 at R = 1.4 bohr, two electrons (n = 6), psi_T = phi(r1) phi(r2) exp(r12/(2(1 + 0.4
    r12))), phi = exp(-1.2 r_A) + exp(-1.2 r_B): the singlet is nodeless, so DMC is exact. Total
    energy (electronic + 1/R) -1.1744757 Ha. 4000 walkers, 250 a.u. per dtau in
    (0.01, 0.02, 0.04, 0.08) (1.0e8, 5.1e7, 2.5e7, 1.3e7 walker-steps): measured electronic
    E = -1.888158(233), -1.888511(197), -1.888457(197), -1.888002(237) -> E0 = -1.888475 +-
    0.000217 (Birge-scaled, chi2/dof 1.33), total -1.174189 (+2.9e-4, 1.3 sigma), 182 s on a
    loaded machine (the slowest test; near the 3 min budget of `slow`). The runs at 0.01-0.04
    all sit 2e-4 to 6e-4 above exact: the time-step error (module docstring), not population
    control (16 runs of 2000 and 10 of 500 walkers at dtau 0.02 agree: +3.9(1.9)e-4 and
    +2.5(2.0)e-4; their scatter is 1.35 and 0.66 times the binning stderr)."""
    fit = timestep_scan(coulomb(H2, 2), 6, MolecularTrial(H2, 1.2, electrons=2, b=0.4),
                        (0.01, 0.02, 0.04, 0.08), 4000, 250.0, 3.0, 34)  # fmt: skip
    total, stderr = fit.value + 1 / 1.4, fit.stderr
    assert stderr <= 3e-4  # the precision, after the Birge scaling
    assert abs(total + 1.1744757) < 4 * stderr


def test_population_control_bias_below_error():
    """1D oscillator without trial, strong feedback (5 / a.u.) to magnify the ~1/N bias of
    population control: runs at N = 25, 50, 100, 200 with equal walker-steps, fitted
    E(N) = E_inf + c / N. E_inf matches 1/2 within 4 stderr, and the bias c / N at N = 2000 is
    below the stderr a 2000-walker run of the same length reaches. Measured: E = 0.5141(58),
    0.5095(49), 0.4987(58), 0.4967(39) -> E_inf = 0.4949 +- 0.0039, c = 0.53 (bias 2.7e-4 at
    N = 2000, whose run has stderr 1.8e-3), 5 s."""
    sizes, means, errors = (25, 50, 100, 200), [], []
    for i, n in enumerate(sizes):
        steps = 400 * 200 * 4 // n
        r = diffusion_monte_carlo(harmonic, 1, n, 0.05, steps + 200, 200,
                                  RandomStreams(35, path=(i,)), feedback=5.0)  # fmt: skip
        means.append(r.energy.mean)
        errors.append(r.energy.stderr)
        print(f"N {n}: E = {r.energy.mean:.5f} +- {r.energy.stderr:.5f}")
    fit = extrapolate_population(sizes, means, errors)
    print(f"E_inf = {fit.value:.5f} +- {fit.stderr:.5f}, c = {fit.coefficients[1]:.4f}")
    assert abs(fit.value - 0.5) < 4 * fit.stderr
    big = diffusion_monte_carlo(harmonic, 1, 2000, 0.05, 600, 200, RandomStreams(36), feedback=5.0)
    print(f"N 2000: E = {big.energy.mean:.5f} +- {big.energy.stderr:.5f}")
    assert abs(fit.coefficients[1]) / 2000 < big.energy.stderr
    assert np.isfinite(fit.chi2_per_dof)
