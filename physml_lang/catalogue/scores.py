"""Catalogue entries: score models (denoising score matching; annealed Langevin, reverse SDE and
probability-flow ODE samplers) and flow matching of continuous lattice fields, with exact
densities of the ODE samplers, so that their samples are Metropolis-corrected.

    learner s = score_net(width = 16, depth = 3) respecting spin_flip
    run diffusion {
        model Phi4Tutorial(L = 8, m2 = -4, lam = 8)
        sampler hmc(chains = 8, sweeps = 400, burn_in = 100, step_size = 0.1, n_steps = 10)
        train s via score_matching(sigmas = geometric(3, 0.01, 10), steps = 2000)
    }

The training data are the run's ``sampler hmc(...)`` samples of its model (physml's own HMC,
which also gives the reference row), or a declared array named by ``data NAME``.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .columns import Columns
from .registry import Catalogue

FAMILY = "field"  # continuous lattice fields
TASK = "diffusion"
CONTINUOUS = ("real",)


class _NetOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    width: int = Field(16, ge=1, le=1024, description="channels of the hidden convolutions")
    depth: int = Field(3, ge=1, le=32, description="hidden circular-convolution layers")
    kernel: int = Field(3, ge=3, le=15, description="kernel size (odd)")
    dtype: str = Field("float32", pattern="^(float32|float64)$",
                       description="network arithmetic (log q is accumulated in float64)")  # fmt: skip
    skip: str = Field("spectral", pattern="^(spectral|isotropic)$",
                      description="the linear part: the Gaussian field with the data's power "
                      "spectrum P(k) (spectral), or with P(k) = <phi^2> (isotropic)")  # fmt: skip

    @model_validator(mode="after")
    def _odd_kernel(self):
        if self.kernel % 2 == 0:
            raise ValueError("kernel must be odd (a centred stencil)")
        return self


class ScoreNetOptions(_NetOptions):
    """Options of ``score_net``: a noise-conditional epsilon-predictor eps(x, sigma) (score
    -eps / sigma), a periodic CNN (translation-equivariant by circular padding)."""


class VelocityNetOptions(_NetOptions):
    """Options of ``velocity_net``: the velocity v(x, t) of flow matching, the same backbone."""


class _TrainOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    steps: int = Field(2000, ge=1, le=10_000_000, description="training steps")
    batch: int = Field(128, ge=1, le=1_000_000, description="data per step")
    lr: float = Field(2e-3, gt=0, le=10, description="Adam learning rate (cosine decay to 0)")
    clip: float = Field(1.0, ge=0, description="gradient-norm clipping; 0: off")
    samples: int = Field(1000, ge=2, le=10_000_000,
                         description="samples drawn by each sampler for the final estimates")  # fmt: skip
    ode_steps: int = Field(8, ge=1, le=10_000, description="RK4 steps of the ODE sampler")


class ScoreMatchingOptions(_TrainOptions):
    """``train s via score_matching(...)``: sigma^2-weighted denoising score matching over
    noise levels log-uniform in [sigma_min, sigma_max] (``sigmas = geometric(max, min,
    levels)`` sets the three at once); then samples by annealed Langevin dynamics, the reverse
    VE SDE and the probability-flow ODE (exact density: reweighted and Metropolis-corrected)."""

    sigma_max: float = Field(1.0, gt=0, le=1e6, description="largest noise level (prior std)")
    sigma_min: float = Field(0.01, gt=0, le=1e6, description="smallest noise level")
    levels: int = Field(10, ge=2, le=100_000,
                        description="levels of the geometric ladder of annealed Langevin")  # fmt: skip
    langevin_sweeps: int = Field(100, ge=1, le=100_000, description="Langevin steps per level "
                                 "(Song & Ermon 2019: 100)")  # fmt: skip
    langevin_step: float = Field(0.2, gt=0, le=10, description="alpha_i = langevin_step "
                                 "sigma_i^2 (Song & Ermon 2019: 2e-5 / 0.01^2 = 0.2)")  # fmt: skip
    sde_steps: int = Field(100, ge=1, le=1_000_000, description="Euler-Maruyama steps of the reverse SDE")
    prior: str = Field("isotropic", pattern="^(isotropic|spectral)$", description="the "
                       "probability-flow ODE's prior at sigma_max: N(0, sigma_max^2 + sd^2) per "
                       "site (isotropic), or N(0, sigma_max^2 + P(k)) per Fourier mode with the "
                       "data's power spectrum P(k) (spectral: a broken phase's zero mode)")  # fmt: skip


class FlowMatchingOptions(_TrainOptions):
    """``train v via flow_matching(...)``: conditional flow matching with straight paths
    x_t = (1 - t) x0 + t x1 from x0 ~ N(0, 1) to the data; then samples by the ODE (exact
    density: reweighted and Metropolis-corrected)."""


# every row: which sampler, its measurements; acceptance and the effective sample size where
# the sampler has them (HMC, the Metropolis-corrected and reweighted ODE)
DIFFUSION_COLUMNS = ("method", "action_density", "magnetization", "abs_magnetization", "m2",
                     "samples")  # fmt: skip
DIFFUSION_OPTIONAL = ("acceptance", "ess_per_sample", "var_log_w", "loss")


def declare(catalogue: Catalogue) -> None:
    """Declare the score and velocity learners, their objectives and the diffusion task."""
    catalogue.learners.declare(
        "score_net", ScoreNetOptions, "noise-conditional score model of a continuous lattice "
        "field: eps(x, sigma), score -eps/sigma, a periodic CNN (translation-equivariant); "
        "respecting spin_flip makes it odd in phi", family=FAMILY, domains=CONTINUOUS,
        symmetries=("translation", "spin_flip"))  # fmt: skip
    catalogue.learners.declare(
        "velocity_net", VelocityNetOptions, "velocity field v(x, t) of flow matching of a "
        "continuous lattice field, a periodic CNN (translation-equivariant); respecting "
        "spin_flip makes it odd in phi", family=FAMILY, domains=CONTINUOUS,
        symmetries=("translation", "spin_flip"))  # fmt: skip
    catalogue.objectives.declare(
        "score_matching", ScoreMatchingOptions, "denoising score matching over geometric noise "
        "levels, then annealed Langevin, reverse-SDE and probability-flow-ODE samples, the ODE's "
        "Metropolis-corrected", task=TASK, family=FAMILY, domains=CONTINUOUS)  # fmt: skip
    catalogue.objectives.declare(
        "flow_matching", FlowMatchingOptions, "conditional flow matching with straight paths, "
        "then ODE samples with exact densities, Metropolis-corrected", task=TASK, family=FAMILY,
        domains=CONTINUOUS)  # fmt: skip
    catalogue.tasks.declare(
        TASK, doc="train a score model or a flow-matching velocity on HMC samples (or loaded "
        "data) of a continuous field, sample it, and correct the ODE's samples by their exact "
        "density", kinds=(FAMILY,),
        columns=Columns(fixed=DIFFUSION_COLUMNS, optional=DIFFUSION_OPTIONAL, measures=False))  # fmt: skip


__all__ = ["DIFFUSION_COLUMNS", "FAMILY", "FlowMatchingOptions", "ScoreMatchingOptions",
           "ScoreNetOptions", "TASK", "VelocityNetOptions", "declare"]
