"""Catalogue entries of Hamiltonian dynamics: integrators of phase-space models, samplers of
continuous lattice fields and their observables, learners of dynamics and their training
objectives, the options of the ``evolve`` / ``trajectories`` / ``train`` / ``rollout``
statements, and the tasks ``evolve``, ``sample`` (fields) and ``learn_dynamics``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt

from .columns import Columns
from .registry import Catalogue, NoOptions

CONTINUOUS = ("real", "angle")
SYMPLECTIC = ("symplectic",)


# ---------------------------------------------------------------- integrators


@dataclass(frozen=True)
class IntegratorFacts:
    """Static facts of an integrator of Hamilton's equations: ``symplectic`` (its flow map
    preserves dq ^ dp), ``requires_separable`` (symplectic only for H = T(p) + V(q): a
    kick-drift-kick splitting) and ``order`` (global error O(dt^order))."""

    symplectic: bool
    requires_separable: bool
    order: int


INTEGRATOR_FACTS: dict[str, IntegratorFacts] = {
    "leapfrog": IntegratorFacts(symplectic=True, requires_separable=True, order=2),
    "verlet": IntegratorFacts(symplectic=True, requires_separable=True, order=2),
    "yoshida4": IntegratorFacts(symplectic=True, requires_separable=True, order=4),
    "implicit_midpoint": IntegratorFacts(symplectic=True, requires_separable=False, order=2),
    "euler": IntegratorFacts(symplectic=False, requires_separable=False, order=1),
    "rk4": IntegratorFacts(symplectic=False, requires_separable=False, order=4),
}


class ImplicitMidpointOptions(BaseModel):
    """Fixed-point solver settings of the implicit midpoint rule."""

    model_config = ConfigDict(extra="forbid")
    tol: float = Field(1e-12, gt=0, le=1e-2, description="relative tolerance of the iteration")
    max_iter: int = Field(100, ge=1, le=10_000)


# ---------------------------------------------------------------- samplers of continuous fields


class FieldSamplerOptions(BaseModel):
    """Options common to the samplers of continuous fields, in the vocabulary of the lattice
    samplers: one update (an HMC trajectory, a Langevin step) moves every site, like a sweep."""

    model_config = ConfigDict(extra="forbid")
    renamed: ClassVar[dict[str, str]] = {"samples": "sweeps"}
    chains: int = Field(16, ge=1, description="independent chains per temperature")
    sweeps: int = Field(1000, ge=1, description="measured updates per chain (after burn-in); "
                        "every thin-th is recorded")  # fmt: skip
    burn_in: int = Field(100, ge=0, description="updates discarded before measuring")
    thin: int = Field(1, ge=1, description="updates between measurements")
    start: Literal["random", "ordered"] = Field(
        "random", description="random: uniform angles, N(0, 1) real fields; ordered: theta = 0, "
        "phi = 1 (at low T a random start traps vortices and windings)")  # fmt: skip


class HMCOptions(FieldSamplerOptions):
    """Options of ``hmc`` (the names of the gauge-field hmc: ``n_steps`` integrator steps of
    ``step_size`` per trajectory; a trajectory is one sweep)."""

    renamed: ClassVar[dict[str, str]] = {**FieldSamplerOptions.renamed, "n_leapfrog": "n_steps"}
    step_size: float = Field(0.1, gt=0, le=10, description="integrator step")
    n_steps: int = Field(10, ge=1, le=100_000, description="integrator steps per trajectory")
    mass: float = Field(1.0, gt=0)
    jitter: float = Field(0.0, ge=0, lt=1)
    integrator: Literal["leapfrog", "yoshida4"] = "leapfrog"


class LangevinOptions(FieldSamplerOptions):
    """Options of ``ula`` and ``mala``."""

    step_size: float = Field(0.01, gt=0, le=10)


# the built-in observables of a continuous-field run (V sites, weight exp(-beta S), beta = 1/T,
# T = 1 when the run gives none): per-configuration means (binning errors) and functions of
# averages (jackknife errors over the same time blocks)
FIELD_OBSERVABLES = {
    "action_density": "<S> / V (the action as written: the energy per site when sampled at T)",
    "magnetization": "<m>, m = mean phi (angle: |mean exp(i theta)|)",
    "abs_magnetization": "<|m|>, m = mean phi (angle: |mean exp(i theta)|)",
    "m2": "V <m^2>",
    "specific_heat": "beta^2 (<S^2> - <S>^2) / V (jackknife)",
    "susceptibility": "beta V (<m^2> - <|m|>^2) (jackknife)",
    "binder": "1 - <m^4> / (3 <m^2>^2) (jackknife)",
    "helicity_modulus": "angle fields: Upsilon = [<S''> - beta (<S'^2> - <S'>^2)] / V, S' and S'' "
    "the derivatives of S by a twist psi of the angles per lattice spacing, averaged over the "
    "lattice axes (XY: S' = J sum sin(theta_x - theta_x+e), S'' = J sum cos(...)) (jackknife)",
}

# measured by default when a field run measures nothing
FIELD_DEFAULTS = ("action_density", "abs_magnetization", "susceptibility", "binder")

# the columns of the tasks' rows: a field run's (one row per temperature; HMC adds its energy
# statistics), an evolve run's (one row per integrator) and a learn_dynamics run's (one row per
# learner)
FIELD_COLUMNS = Columns(fixed=("acceptance", "r_hat", "chain_excess"),
                        optional=("mean_dH", "mean_exp_minus_dH"), thermal=True,
                        defaults=FIELD_DEFAULTS)  # fmt: skip
EVOLVE_COLUMNS = Columns(fixed=("integrator", "symplectic", "dt", "steps", "trajectories",
                                "max_rel_energy_error", "final_energy_drift",
                                "early_energy_error", "wall_s"), scans=False, measures=False)  # fmt: skip
LEARN_COLUMNS = Columns(fixed=("learner", "kind", "objective", "parameters", "train_loss",
                               "rollout_energy_mse", "rollout_state_mse", "diverged",
                               "rollout_steps", "rollout_dt", "integrator", "train_s"),
                        optional=("rollout_momentum_drift",), scans=False,
                        measures=False)  # fmt: skip


# ---------------------------------------------------------------- learners of dynamics


class LearnerTrainingOptions(BaseModel):
    """Training options shared by the learners of dynamics (train_vector_field, train_map)."""

    model_config = ConfigDict(extra="forbid")
    steps: int = Field(2000, ge=1, description="optimisation steps")
    lr: float = Field(1e-3, gt=0, le=1.0)
    batch_size: int | None = Field(None, ge=1, description="None: full batch")


class HNNOptions(LearnerTrainingOptions):
    """Options of ``hnn``."""

    hidden: list[PositiveInt] = Field(default_factory=lambda: [200, 200], min_length=1)
    activation: Literal["tanh", "softplus", "sigmoid", "gelu"] = "tanh"
    separable: bool = False


class MLPOptions(LearnerTrainingOptions):
    """Options of ``mlp_vector_field`` (the baseline)."""

    hidden: list[PositiveInt] = Field(default_factory=lambda: [200, 200], min_length=1)
    activation: Literal["tanh", "softplus", "sigmoid", "gelu"] = "tanh"


class SympNetOptions(LearnerTrainingOptions):
    """Options of ``sympnet``."""

    layers: int = Field(4, ge=1, le=64)
    width: int = Field(32, ge=1)


class InteractionOptions(LearnerTrainingOptions):
    """Options of ``interaction`` (an N-body phase space real[N, D], n = N D): the pairwise
    force network phi (D + 1 inputs: x_i - x_j and |x_i - x_j|) and the per-particle velocity
    network psi (D inputs: p_i)."""

    hidden: list[PositiveInt] = Field(default_factory=lambda: [64, 64], min_length=1)
    activation: Literal["tanh", "softplus", "sigmoid", "gelu"] = "tanh"
    dims: int = Field(2, ge=1, le=3, description="D, the spatial dimensions of one particle "
                      "(q is real[N, D]; N = n / D)")  # fmt: skip


# the training objective that fits each learner of dynamics: vector fields (hnn, mlp) are fitted
# to time derivatives, one-step maps (sympnet) to the next state
LEARNER_OBJECTIVES: dict[str, str] = {
    "hnn": "derivative_mse",
    "mlp_vector_field": "derivative_mse",
    "mlp": "derivative_mse",
    "sympnet": "step_mse",
    "interaction": "derivative_mse",
}


# ---------------------------------------------------------------- run statements


class EvolveOptions(BaseModel):
    """Options of ``evolve``."""

    model_config = ConfigDict(extra="forbid")
    integrator: list[str] | str | None = Field(
        None, description="leapfrog, yoshida4, implicit_midpoint, verlet, euler, rk4, or a list; "
        "default: leapfrog for separable H, implicit_midpoint otherwise")  # fmt: skip
    dt: float = Field(0.01, gt=0, description="time step")
    steps: int = Field(1000, ge=1, le=10_000_000, description="integration steps")
    save_every: int | None = Field(None, ge=1, description="steps between saved states "
                                   "(default: about 2000 saved states)")  # fmt: skip
    blowup: float = Field(0.5, gt=0, description="relative energy error that stops the run")
    tol: float = Field(1e-12, gt=0, le=1e-2, description="implicit midpoint: solver tolerance")
    max_iter: int = Field(100, ge=1, le=10_000, description="implicit midpoint: iterations")


class TrajectoryOptions(BaseModel):
    """Options of ``trajectories`` (training data simulated from the declared model)."""

    model_config = ConfigDict(extra="forbid")
    count: int = Field(25, ge=1, le=100_000, description="trajectories")
    points: int = Field(30, ge=2, le=100_000, description="saved states per trajectory")
    t_span: float = Field(3.0, gt=0, description="duration of each trajectory")
    noise: float = Field(0.1, ge=0, description="std of Gaussian noise added to q and p")
    start: Literal["circle", "normal", "kepler", "orbit"] = Field(
        "circle", description="circle: each (q_k, p_k) on a circle of radius in `radius`; "
        "normal: N(0, radius[1]); kepler: near-circular two-body orbits; orbit: one body "
        "about the origin (q: real[D], D >= 2) at a distance in `radius`, 0.6 .. 1.2 x the "
        "circular speed for GM (or G M), heading within 0.5 rad of tangential: bound, "
        "eccentric orbits")  # fmt: skip
    radius: list[float] = Field(default_factory=lambda: [0.1, 1.0], min_length=2, max_length=2)
    substeps: int = Field(20, ge=1, le=10_000, description="integrator steps between points")


class RolloutOptions(BaseModel):
    """Options of ``rollout`` (evaluation of learned dynamics on fresh initial states)."""

    model_config = ConfigDict(extra="forbid")
    count: int = Field(10, ge=1, le=10_000, description="test trajectories")
    horizon: float = Field(20.0, gt=0, description="rollout duration")
    steps: int = Field(200, ge=1, le=1_000_000, description="rollout steps")
    integrator: str | None = Field(None, description="for hnn (default: yoshida4 if separable "
                                   "else implicit_midpoint) and mlp (default rk4)")  # fmt: skip


class TrainOptions(BaseModel):
    """Options of ``train ... via derivative_mse(...)`` (override the learner's)."""

    model_config = ConfigDict(extra="forbid")
    steps: int | None = Field(None, ge=1, description="optimisation steps")
    lr: float | None = Field(None, gt=0, le=1.0)
    batch_size: int | None = Field(None, ge=1)


def declare(catalogue: Catalogue) -> None:
    """Declare the integrators, field samplers and observables, learners, objectives and
    tasks of Hamiltonian dynamics."""
    # leapfrog and yoshida4 also integrate the trajectories of hmc (fields)
    integrators = catalogue.integrators
    integrators.declare("leapfrog", NoOptions,
                        "leapfrog (velocity Verlet, kick-drift-kick): order 2, symplectic and "
                        "time-reversible for separable H = T(p) + V(q)",
                        kinds=("phase_space", "field"))  # fmt: skip
    integrators.declare("verlet", NoOptions, "alias of leapfrog", kinds=("phase_space",))
    integrators.declare("yoshida4", NoOptions,
                        "order-4 Yoshida composition of three leapfrog steps: symplectic for "
                        "separable H", kinds=("phase_space", "field"))  # fmt: skip
    integrators.declare("implicit_midpoint", ImplicitMidpointOptions,
                        "implicit midpoint rule z' = z + dt J grad H((z + z') / 2): order 2, "
                        "symplectic for any H (fixed-point iteration)",
                        kinds=("phase_space",))  # fmt: skip
    integrators.declare("euler", NoOptions,
                        "explicit Euler: order 1, not symplectic (energy grows)",
                        kinds=("phase_space",))  # fmt: skip
    integrators.declare("rk4", NoOptions,
                        "classical Runge-Kutta 4: order 4, not symplectic (energy drifts)",
                        kinds=("phase_space",))  # fmt: skip

    samplers = catalogue.samplers
    samplers.declare("hmc", HMCOptions,
                     "Hamiltonian Monte Carlo of exp(-S): leapfrog/Yoshida trajectories, "
                     "Metropolis accept with the exact H (exact)",
                     family="field", domains=CONTINUOUS)  # fmt: skip
    samplers.declare("ula", LangevinOptions,
                     "unadjusted overdamped Langevin x' = x - h grad S + sqrt(2h) xi "
                     "(biased at O(h))", family="field", domains=CONTINUOUS)  # fmt: skip
    samplers.declare("langevin", LangevinOptions, "alias of ula", family="field",
                     domains=CONTINUOUS)  # fmt: skip
    samplers.declare("mala", LangevinOptions,
                     "Metropolis-adjusted Langevin: the ula proposal with a Metropolis-Hastings "
                     "correction (exact)", family="field", domains=CONTINUOUS)  # fmt: skip
    for name, doc in FIELD_OBSERVABLES.items():
        catalogue.observables.declare(name, doc=doc, family="field")

    learners = catalogue.learners
    learners.declare("hnn", HNNOptions,
                     "Hamiltonian neural network H_theta(q, p); the learned flow conserves H_theta",
                     family="phase_space", symmetries=SYMPLECTIC)  # fmt: skip
    learners.declare("mlp_vector_field", MLPOptions,
                     "unstructured baseline: (q, p) -> (qdot, pdot) with a plain MLP",
                     family="phase_space")  # fmt: skip
    learners.declare("mlp", MLPOptions, "alias of mlp_vector_field", family="phase_space")
    learners.declare("sympnet", SympNetOptions,
                     "SympNet: exactly symplectic one-step map (q, p) -> (q', p') of a fixed "
                     "time step",
                     family="phase_space", symmetries=SYMPLECTIC)  # fmt: skip

    learners.declare("interaction", InteractionOptions,
                     "interaction network of N bodies: pdot_i = sum_j F_ij with pairwise forces "
                     "F_ij = phi(x_i - x_j) - phi(x_j - x_i) = -F_ji (Newton's third law by "
                     "construction: total momentum conserved to round-off), qdot_i = psi(p_i)",
                     family="phase_space", symmetries=("translation",))  # fmt: skip

    objectives = catalogue.objectives
    objectives.declare("derivative_mse", TrainOptions,
                       "MSE of the learned vector field against dq/dt, dp/dt (hnn, mlp)",
                       task="learn_dynamics", family="phase_space")  # fmt: skip
    objectives.declare("step_mse", TrainOptions,
                       "MSE of the learned map against the next state (sympnet)",
                       task="learn_dynamics", family="phase_space")  # fmt: skip

    tasks = catalogue.tasks
    tasks.declare("evolve",
                  doc="integrate Hamilton's equations with symplectic (or reference) integrators",
                  kinds=("phase_space",), columns=EVOLVE_COLUMNS)  # fmt: skip
    tasks.declare("sample", doc="HMC / MALA / Langevin sampling of continuous lattice fields "
                  "(exp(-S/T), scans of T or beta and of model parameters)",
                  family="field", columns=FIELD_COLUMNS)  # fmt: skip
    tasks.declare("learn_dynamics",
                  doc="train Hamiltonian / vector-field / symplectic-map learners on trajectories",
                  kinds=("phase_space",), columns=LEARN_COLUMNS)  # fmt: skip
