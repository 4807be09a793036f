"""Catalogue entries: optimisation as dynamics on a potential f(x) over continuous coordinates
(a ``landscape`` model: ``coordinates x: real[n] in [lower, upper]`` and ``potential f = ...``).

    run ground  { model DoubleWell   evolve imaginary_time(points = 256, dtau = 0.01, steps = 4000) }
    run walkers { model DoubleWell   evolve langevin(walkers = 100000, dtau = 1e-3, steps = 5000) }
    run atom    { model Hydrogen     evolve dmc(walkers = 4000, dtau = [0.02, 0.01, 0.005]) }
    run search  { model Rastrigin    optimise f via mqhoa(k = 20), evaluations = 20000, restarts = 30 }

The evolutions (``evolve METHOD(...)``, entries of ``integrators``) and their tasks:
``imaginary_time``/``real_time`` (task ``schrodinger``: d psi/d tau = D lap psi - f psi on a
grid, split-operator FFT), ``fokker_planck`` (dp/dtau = D lap p + div(p grad f) on a grid),
``langevin`` (its particle form), ``taylor_diffusion`` (the explicit scheme of the seed's
eq. (16), its own task), ``dmc`` (diffusion Monte Carlo). The optimisers (``optimise f via
METHOD(...)``, entries of ``optimisers``): ``mqhoa``, ``simulated_annealing``,
``population_annealing``, and active learning with a surrogate, ``gaussian_process`` and
``ensemble`` (task ``optimise``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .columns import Columns
from .registry import Catalogue

FAMILY = "landscape"
SPINS = "lattice"  # spin models minimised by the annealers (E quadratic in s = +-1)
MAX_GRID_POINTS = 1 << 24  # grid points of one wavefunction or density (d-dimensional)


def _positive_list(v: float | list[float], what: str) -> list[float]:
    vs = v if isinstance(v, list) else [v]
    if not vs or any(not x > 0 for x in vs):
        raise ValueError(f"{what} must be positive")
    if len(set(vs)) != len(vs):
        raise ValueError(f"{what}: values repeat")
    return [float(x) for x in vs]


class GridOptions(BaseModel):
    """The grid of the box the coordinates declare (``in [lower, upper]``): ``points`` per axis,
    cell-centred; a list of sizes runs each grid (a refinement table)."""

    model_config = ConfigDict(extra="forbid")
    points: int | list[int] = Field(128, description="grid points per axis (a list: one row "
                                    "per grid, extrapolated in the spacing)")  # fmt: skip
    D: float = Field(0.5, gt=0, le=1e6, description="the diffusion constant: H = -D lap + f "
                     "(D = 1/2: atomic units, mass 1)")  # fmt: skip
    snapshots: int = Field(6, ge=0, le=100, description="density snapshots over time (plot)")

    @field_validator("points")
    @classmethod
    def _points(cls, v: int | list[int]) -> int | list[int]:
        vs = v if isinstance(v, list) else [v]
        if not vs or any(not 4 <= n <= 1 << 20 for n in vs):
            raise ValueError("points per axis must be between 4 and 2^20")
        if len(set(vs)) != len(vs):
            raise ValueError("points: grid sizes repeat")
        return sorted(vs) if isinstance(v, list) else v


class ImaginaryTimeOptions(GridOptions):
    """``evolve imaginary_time(...)``: the lowest ``states`` eigenstates of H = -D lap + f
    (ground state by imaginary-time projection, excited states by orthogonalisation)."""

    dtau: float = Field(0.01, gt=0, le=100, description="imaginary-time step")
    steps: int = Field(2000, ge=1, le=100_000_000, description="most steps (stops earlier "
                       "once converged to tol)")  # fmt: skip
    states: int = Field(1, ge=1, le=64, description="eigenstates: the ground state and "
                        "states - 1 excited states")  # fmt: skip
    tol: float = Field(1e-10, ge=0, le=1, description="stop when every energy changes by less "
                       "than this per check (0: run every step)")  # fmt: skip
    extrapolate: int = Field(2, ge=1, le=8, description="the leading order p of the grid "
                             "error, E(h) = E0 + c_p h^p + c_(p+1) h^(p+1) + ..., for Richardson "
                             "extrapolation over three or more grids")  # fmt: skip
    refine: int = Field(0, ge=0, le=10_000, description="iterations of a final eigensolver "
                        "(LOBPCG) on the exact grid H: removes the O(dtau^2) splitting bias "
                        "(singular potentials need it)")  # fmt: skip
    levels: int = Field(0, ge=0, le=16, description="also evolve the equal superposition of "
                        "the lowest levels and record their weights over tau (the seed's "
                        "time-dependent softmax, eq. (23))")  # fmt: skip


class RealTimeOptions(GridOptions):
    """``evolve real_time(...)``: i d psi/dt = H psi from a Gaussian wave packet (norm and
    energy conserved by the unitary split-operator step)."""

    dt: float = Field(0.01, gt=0, le=100)
    steps: int = Field(1000, ge=1, le=100_000_000)
    center: float | list[float] = Field(0.0, description="centre of the initial packet")
    width: float = Field(1.0, gt=0, description="its standard deviation in position")
    momentum: float | list[float] = Field(0.0, description="its mean momentum")


class FokkerPlanckOptions(GridOptions):
    """``evolve fokker_planck(...)``: dp/dtau = D lap p + div(p grad f) on the grid from a
    uniform density, with reflecting walls; stationary density exp(-f/D)/Z."""

    dtau: float = Field(1e-4, gt=0, le=100)
    steps: int = Field(10000, ge=1, le=100_000_000)


class TaylorDiffusionOptions(GridOptions):
    """``evolve taylor_diffusion(...)``: the seed's explicit scheme (its eq. (16)),
    psi_i += D dtau (psi_{i+1} - 2 psi_i + psi_{i-1}) / dx^2 - (df/dx) dtau psi_i, stable only
    for D dtau / dx^2 <= 1/2."""

    dtau: float = Field(1e-4, gt=0, le=100)
    steps: int = Field(10000, ge=1, le=100_000_000)


class LangevinOptions(BaseModel):
    """``evolve langevin(...)``: overdamped Langevin walkers x += -grad f dtau + sqrt(2 D dtau)
    xi (``adjust = true``: Metropolis-adjusted, exact for any dtau), reflected at the box."""

    model_config = ConfigDict(extra="forbid")
    walkers: int = Field(10000, ge=1, le=1 << 28)
    D: float = Field(1.0, gt=0, le=1e6, description="temperature: stationary exp(-f/D)/Z")
    dtau: float = Field(1e-3, gt=0, le=100)
    steps: int = Field(5000, ge=1, le=100_000_000)
    burn_in: int = Field(1000, ge=0, le=100_000_000, description="steps before recording")
    record_every: int = Field(10, ge=1, description="steps between recorded positions")
    adjust: bool = Field(False, description="Metropolis-adjusted Langevin (MALA)")
    bins: int = Field(40, ge=2, le=10_000, description="histogram bins per axis (chi^2 test "
                      "against exp(-f/D)/Z, 1 and 2 coordinates)")  # fmt: skip


class DMCOptions(BaseModel):
    """``evolve dmc(...)``: diffusion Monte Carlo of H = -D lap + f: walkers diffuse (drift by
    grad log psi_T when the model declares a trial function), branch, and the reference energy
    keeps the population; each dtau of a list is a row, then the dtau -> 0 extrapolation."""

    model_config = ConfigDict(extra="forbid")
    walkers: int | list[int] = Field(2000, description="target population (a list: one row "
                                     "each, then the 1/N -> 0 extrapolation of the "
                                     "population-control bias)")  # fmt: skip
    dtau: float | list[float] = Field(0.01, description="time step(s) (a list: one row each, "
                                      "then dtau -> 0)")  # fmt: skip
    steps: int = Field(4000, ge=1, le=100_000_000, description="measured steps")
    burn_in: int = Field(1000, ge=0, le=100_000_000)
    D: float = Field(0.5, gt=0, le=1e6)
    trial: bool = Field(True, description="importance sampling with the model's trial "
                        "function (false: plain diffusion)")  # fmt: skip
    feedback: float = Field(1.0, gt=0, le=100, description="population-control gain")
    max_factor: float = Field(10.0, gt=1, le=1000, description="the population may grow to "
                              "this many times the target before the run stops")  # fmt: skip
    energy_cutoff: float = Field(2.0, ge=0, description="clip the branching energies to "
                                 "E_est +- c / sqrt(dtau) (tames walkers near a singularity the "
                                 "trial lacks; 0: off)")  # fmt: skip
    extrapolate: Literal[1, 2] = Field(1, description="order of the fit E(dtau) = E0 + a dtau "
                                       "(+ b dtau^2)")  # fmt: skip

    @field_validator("dtau")
    @classmethod
    def _dtau(cls, v: float | list[float]) -> float | list[float]:
        vs = _positive_list(v, "dtau")
        return sorted(vs, reverse=True) if isinstance(v, list) else vs[0]

    @field_validator("walkers")
    @classmethod
    def _walkers(cls, v: int | list[int]) -> int | list[int]:
        vs = v if isinstance(v, list) else [v]
        if not vs or any(not 10 <= n <= 1 << 26 for n in vs) or len(set(vs)) != len(vs):
            raise ValueError("walkers: distinct target populations between 10 and 2^26")
        return sorted(vs) if isinstance(v, list) else v

    @model_validator(mode="after")
    def _one_list(self) -> DMCOptions:
        if isinstance(self.walkers, list) and isinstance(self.dtau, list):
            raise ValueError("extrapolate one bias at a time: a list of dtau or of walkers, "
                             "not both")  # fmt: skip
        return self


# ---------------------------------------------------------------- optimisers


class OptimiseOptions(BaseModel):
    """Named options of ``optimise f via METHOD(...)``: the budget and what counts as success."""

    model_config = ConfigDict(extra="forbid")
    evaluations: int = Field(10000, ge=1, le=10**12, description="objective evaluations per "
                             "restart (the budget)")  # fmt: skip
    restarts: int = Field(1, ge=1, le=100_000, description="independent runs (seeds)")
    target: float | None = Field(None, description="the known minimum f*: a restart succeeds "
                                 "when |f - f*| < tol (and stops there)")  # fmt: skip
    tol: float = Field(1e-4, gt=0)
    noise: float = Field(0.0, ge=0, description="standard deviation of Gaussian measurement "
                         "noise added to the potential (testing noisy objectives; success is "
                         "judged on the noise-free value)")  # fmt: skip


class ActiveOptions(BaseModel):
    """Options shared by the active learners: ``initial`` Latin-hypercube points, then each
    measurement where the acquisition of the surrogate is largest; failed points are steered
    away from; ``warm_start = Model`` pre-trains the surrogate's prior mean on a simulated
    model of the same file (its evaluations are not counted)."""

    model_config = ConfigDict(extra="forbid")
    initial: int = Field(10, ge=1, le=100_000, description="initial points (Latin hypercube)")
    acquisition: Literal["ei", "ucb", "local"] = Field(
        "ei", description="ei: expected improvement over the best posterior mean; ucb: lower "
        "confidence bound mu - sqrt(beta) sigma; local: the posterior mean within radius of "
        "the incumbent")  # fmt: skip
    beta: float = Field(4.0, gt=0, le=1e4, description="exploration weight of ucb")
    local_every: int = Field(0, ge=0, le=100_000, description="every k-th proposal local "
                             "(refinement near the optimum; 0: never)")  # fmt: skip
    radius: float = Field(0.1, gt=0, le=1, description="local search radius, in units of the "
                          "box width")  # fmt: skip
    candidates: int = Field(2000, ge=10, le=1 << 20, description="random candidates per "
                            "proposal (then gradient steps from the best)")  # fmt: skip
    warm_start: str | None = Field(None, description="a landscape model of this file with the "
                                   "same coordinates and box: a simulation of the "
                                   "experiment")  # fmt: skip
    warm_evaluations: int = Field(200, ge=2, le=100_000, description="evaluations of the "
                                  "warm-start model")  # fmt: skip


class GaussianProcessOptions(ActiveOptions):
    """``gaussian_process(...)``: a GP surrogate (Matern-5/2, one length per coordinate,
    output scale and noise by maximum marginal likelihood)."""

    fit_steps: int = Field(60, ge=1, le=100_000, description="Adam steps of a hyperparameter "
                           "fit")  # fmt: skip
    refit_every: int = Field(10, ge=1, le=100_000, description="proposals between full fits "
                             "(from several initial guesses); short fits between")  # fmt: skip
    guesses: int = Field(4, ge=1, le=64, description="initial guesses of a full fit")


class EnsembleOptions(ActiveOptions):
    """``ensemble(...)``: a deep ensemble of fully connected networks; their spread is the
    uncertainty."""

    members: int = Field(5, ge=2, le=256, description="networks")
    hidden: list[int] = Field([64, 64], description="hidden widths")
    epochs: int = Field(200, ge=1, le=1_000_000, description="Adam steps of a full fit")
    refit_every: int = Field(10, ge=1, le=100_000, description="proposals between full fits")

    @field_validator("hidden")
    @classmethod
    def _hidden(cls, v: list[int]) -> list[int]:
        if not v or any(not 1 <= h <= 4096 for h in v):
            raise ValueError("hidden: one or more widths between 1 and 4096")
        return v


class MQHOAOptions(BaseModel):
    """``mqhoa(...)``: k Gaussian samplers of scale sigma around k centres; at each scale the
    energy-level stabilisation loop, then sigma halves, down to sigma_min."""

    model_config = ConfigDict(extra="forbid")
    k: int = Field(20, ge=2, le=1 << 20, description="samplers (centres)")
    sigma_min: float = Field(1e-6, gt=0, description="the scale at which the search stops")
    sigma0: float | None = Field(None, gt=0, description="the first scale (default: the box "
                                 "width)")  # fmt: skip


class AnnealingOptions(BaseModel):
    """``simulated_annealing(...)``: Metropolis moves with Gaussian proposals (their step adapted
    to an acceptance of 0.3-0.5) while the temperature falls over the budget."""

    model_config = ConfigDict(extra="forbid")
    T0: float | None = Field(None, gt=0, description="initial temperature (default: from the "
                             "spread of f over random points)")  # fmt: skip
    schedule: Literal["geometric", "log"] = Field(
        "geometric", description="geometric: T0 r^(t/S), r = final_temperature_ratio; log: "
        "T0 ln 2 / ln(2 + t)")  # fmt: skip
    final_temperature_ratio: float = Field(1e-10, gt=0, lt=1)
    chains: int = Field(1, ge=1, le=1 << 20, description="parallel chains (one evaluation each "
                        "per step)")  # fmt: skip


class PopulationAnnealingOptions(BaseModel):
    """``population_annealing(...)``: a population reweighted by exp(-dbeta f) and resampled at
    each beta of a geometric schedule (as long as the budget pays for), with Metropolis sweeps
    between; log Z(beta) is measured on the way."""

    model_config = ConfigDict(extra="forbid")
    population: int = Field(1000, ge=2, le=1 << 26)
    sweeps: int = Field(5, ge=1, le=100_000, description="Metropolis sweeps per beta")


class SpinAnnealingOptions(BaseModel):
    """``simulated_annealing(...)`` of an Ising spin model (E quadratic in s = +-1): one
    Metropolis sweep at each temperature of the schedule, every restart a replica."""

    model_config = ConfigDict(extra="forbid")
    sweeps: int = Field(1000, ge=1, le=10_000_000, description="sweeps (temperatures)")
    T0: float = Field(5.0, gt=0, description="first temperature")
    T_final: float = Field(0.05, gt=0, description="last temperature")
    schedule: Literal["geometric", "linear"] = Field("geometric", description="in beta = 1/T")
    order: Literal["sequential", "random"] = Field(
        "sequential", description="site order of a sweep (random: a fresh order every sweep; "
        "needed where flips cost nothing, e.g. a chain's domain walls)")  # fmt: skip


class SpinPopulationAnnealingOptions(BaseModel):
    """``population_annealing(...)`` of an Ising spin model: reweight, resample and sweep along
    ``temperatures`` betas from 0 to 1/T_final (log Z(beta) measured)."""

    model_config = ConfigDict(extra="forbid")
    population: int = Field(1000, ge=2, le=1 << 24)
    temperatures: int = Field(100, ge=2, le=1_000_000, description="steps of the schedule")
    T_final: float = Field(0.05, gt=0)
    sweeps: int = Field(5, ge=1, le=100_000, description="Metropolis sweeps per temperature")


EVOLVE_TASKS = {"imaginary_time": "schrodinger", "real_time": "schrodinger",
                "fokker_planck": "fokker_planck", "langevin": "langevin",
                "taylor_diffusion": "taylor_diffusion", "dmc": "dmc"}  # fmt: skip
EVOLVE_SCHEMAS: dict[str, type[BaseModel]] = {
    "imaginary_time": ImaginaryTimeOptions, "real_time": RealTimeOptions,
    "fokker_planck": FokkerPlanckOptions, "langevin": LangevinOptions,
    "taylor_diffusion": TaylorDiffusionOptions, "dmc": DMCOptions}  # fmt: skip
OPTIMISER_SCHEMAS: dict[str, type[BaseModel]] = {
    "mqhoa": MQHOAOptions, "simulated_annealing": AnnealingOptions,
    "population_annealing": PopulationAnnealingOptions,
    "gaussian_process": GaussianProcessOptions, "ensemble": EnsembleOptions}  # fmt: skip
ACTIVE_METHODS = ("gaussian_process", "ensemble")  # surrogates: the experiment in the loop
SPIN_OPTIMISER_SCHEMAS: dict[str, type[BaseModel]] = {
    "simulated_annealing": SpinAnnealingOptions,
    "population_annealing": SpinPopulationAnnealingOptions}  # fmt: skip

SCHRODINGER_COLUMNS = ("method", "points", "spacing", "energy")
SCHRODINGER_OPTIONAL = ("state", "steps_run", "converged", "edge_density", "residual", "exact",
                        "softmax_deviation", "norm_drift", "energy_drift", "extrapolated",
                        "order", "energy_error")  # fmt: skip
FOKKER_PLANCK_COLUMNS = ("method", "points", "spacing", "steps_run", "tau",
                         "l1_to_stationary", "mass_drift", "peak")  # fmt: skip
TAYLOR_COLUMNS = ("method", "points", "spacing", "steps_run", "tau", "peak", "stability",
                  "growth_rate")  # fmt: skip
LANGEVIN_COLUMNS = ("walkers", "dtau", "mean_f", "chi2", "dof", "p_value", "acceptance",
                    "walker_steps_per_s")  # fmt: skip
DMC_COLUMNS = ("dtau", "walkers", "energy", "growth_energy", "population", "acceptance",
               "walker_steps_per_s", "extrapolated")  # fmt: skip
OPTIMISE_COLUMNS = ("method", "restarts", "best_f", "median_f", "success_rate",
                    "median_evaluations", "evaluations", "best_x")  # fmt: skip
SPIN_OPTIMISE_COLUMNS = ("energy_per_spin", "exact", "sweeps")
ACTIVE_COLUMNS = ("bad_evaluations", "recommended_f", "median_recommended_f")


def declare(catalogue: Catalogue) -> None:
    """Declare this family's evolutions, optimisers and tasks."""
    docs = {
        "imaginary_time": "imaginary-time Schrodinger evolution d psi/d tau = D lap psi - f psi "
        "(split-operator FFT): ground and excited states, Richardson over grids",
        "real_time": "real-time Schrodinger evolution i d psi/dt = (-D lap + f) psi from a "
        "Gaussian packet (unitary split-operator FFT)",
        "fokker_planck": "Fokker-Planck dp/dtau = D lap p + div(p grad f) on the grid "
        "(conservative, reflecting walls): relaxation to exp(-f/D)/Z",
        "langevin": "overdamped Langevin walkers (optionally Metropolis-adjusted): samples of "
        "exp(-f/D)/Z, chi^2 against it",
        "taylor_diffusion": "the seed's explicit diffusion-reaction scheme (eq. (16)): stable "
        "for D dtau/dx^2 <= 1/2",
        "dmc": "diffusion Monte Carlo (branching walkers, optional importance sampling by the "
        "model's trial function), extrapolated in dtau",
    }
    for name, schema in EVOLVE_SCHEMAS.items():
        catalogue.integrators.declare(name, schema, docs[name], family=FAMILY)
    optimisers = {
        (FAMILY, "mqhoa"): "multi-scale quantum harmonic oscillator algorithm: k Gaussian "
        "samplers, energy-level stabilisation, scale halving",
        (FAMILY, "simulated_annealing"): "simulated annealing: Metropolis with a falling "
        "temperature",
        (FAMILY, "population_annealing"): "population annealing: reweight, resample and "
        "Metropolis along a beta schedule",
        (FAMILY, "gaussian_process"): "active learning with a Gaussian-process surrogate "
        "(Matern-5/2 ARD) and an acquisition (ei, ucb, local): noisy, failing objectives or "
        "an experiment in the loop",
        (FAMILY, "ensemble"): "active learning with a deep-ensemble surrogate (networks' spread "
        "as uncertainty) and an acquisition",
        (SPINS, "simulated_annealing"): "simulated annealing of an Ising spin model: Metropolis "
        "sweeps along a falling temperature",
        (SPINS, "population_annealing"): "population annealing of an Ising spin model",
    }
    for (family, name), doc in optimisers.items():
        schemas = OPTIMISER_SCHEMAS if family == FAMILY else SPIN_OPTIMISER_SCHEMAS
        catalogue.optimisers.declare(name, schemas[name], doc, family=family)
    tasks = catalogue.tasks
    kinds = (FAMILY,)
    tasks.declare("schrodinger", ImaginaryTimeOptions, "imaginary- or real-time Schrodinger "
                  "evolution on a grid", kinds=kinds,
                  columns=Columns(fixed=SCHRODINGER_COLUMNS,
                                  optional=SCHRODINGER_OPTIONAL))  # fmt: skip
    tasks.declare("fokker_planck", FokkerPlanckOptions, "Fokker-Planck evolution on a grid",
                  kinds=kinds, columns=Columns(fixed=FOKKER_PLANCK_COLUMNS))  # fmt: skip
    tasks.declare("taylor_diffusion", TaylorDiffusionOptions, "the seed's eq. (16) scheme",
                  kinds=kinds, columns=Columns(fixed=TAYLOR_COLUMNS))  # fmt: skip
    tasks.declare("langevin", LangevinOptions, "overdamped Langevin walkers", kinds=kinds,
                  columns=Columns(fixed=LANGEVIN_COLUMNS, optional=("exact_mean_f",)))  # fmt: skip
    tasks.declare("dmc", DMCOptions, "diffusion Monte Carlo", kinds=kinds,
                  columns=Columns(fixed=DMC_COLUMNS, optional=("order", "bias")))  # fmt: skip
    tasks.declare("optimise", OptimiseOptions, "minimise the potential (MQHOA, simulated or "
                  "population annealing) or the energy of an Ising spin model",
                  kinds=(FAMILY, SPINS),
                  columns=Columns(fixed=OPTIMISE_COLUMNS,
                                  optional=("log_z", *SPIN_OPTIMISE_COLUMNS,
                                            *ACTIVE_COLUMNS)))  # fmt: skip


__all__ = ["ACTIVE_METHODS", "EVOLVE_SCHEMAS", "EVOLVE_TASKS", "FAMILY", "MAX_GRID_POINTS", "OPTIMISER_SCHEMAS",
           "SPINS", "SPIN_OPTIMISER_SCHEMAS", "OptimiseOptions", "declare"]
