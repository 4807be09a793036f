"""Catalogue entries of generative learners of classical lattice models: autoregressive networks
(exactly normalised, exact sampling), their training by the variational free energy (VAN), and
the unbiased estimates (neural importance sampling, neural MCMC) made on top of them.

    learner q = made(hidden = 64, depth = 2) respecting spin_flip
    run van {
        model Ising(L = 6)
        train q via free_energy(beta = 0.44, steps = 2000, batch = 1000, anneal = 0.998)
        reference exact
    }

Learners: ``made`` (masked dense), ``pixelcnn`` (masked convolutions), ``rnn`` (a GRU over the
unit cells). ``respecting spin_flip, translation, point_group`` averages q over the declared
group (q_G(s) = mean_g q(g s): exact, normalised, invariant). ``sampler nmcmc(...)`` with
``measure ...`` in a van run measures observables with independence-Metropolis chains that
propose fresh samples of the trained q.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from .columns import Columns
from .registry import Catalogue

FAMILY = "lattice"  # learners of the distributions of classical lattice models
DISCRETE = ("spin", "z2", "binary", "potts", "integer")


class MADEOptions(BaseModel):
    """Options of ``made``: a masked autoencoder over the sites in their flat order."""

    model_config = ConfigDict(extra="forbid")
    hidden: int = Field(64, ge=1, le=65536, description="hidden units per layer")
    depth: int = Field(2, ge=1, le=64, description="hidden layers")
    dtype: str = Field("float64", pattern="^(float32|float64)$",
                       description="parameters and log-probabilities (float64: F to 1e-6)")  # fmt: skip


class PixelCNNOptions(BaseModel):
    """Options of ``pixelcnn``: masked convolutions over a 2D grid of cells in raster order."""

    model_config = ConfigDict(extra="forbid")
    width: int = Field(64, ge=1, le=4096, description="channels of the hidden layers")
    depth: int = Field(3, ge=1, le=64, description="masked convolution layers")
    kernel: int = Field(3, ge=3, le=31, description="kernel size (odd)")
    dtype: str = Field("float64", pattern="^(float32|float64)$",
                       description="parameters and log-probabilities (float64: F to 1e-6)")  # fmt: skip


class RNNOptions(BaseModel):
    """Options of ``rnn``: a recurrent (GRU) autoregressive network over the unit cells (or the
    sites) in their flat order."""

    model_config = ConfigDict(extra="forbid")
    hidden: int = Field(32, ge=1, le=8192, description="GRU hidden units")
    layers: int = Field(1, ge=1, le=16, description="stacked GRU layers")
    cells: bool = Field(True, description="one recurrent step per unit cell, emitting its basis "
                        "sites one after the other (false: one step per site)")  # fmt: skip
    dtype: str = Field("float64", pattern="^(float32|float64)$",
                       description="parameters and log-probabilities (float64: F to 1e-6)")  # fmt: skip


class NMCMCOptions(BaseModel):
    """``sampler nmcmc(...)`` in a van run: independent independence-Metropolis chains, each
    proposing fresh samples of the trained learner (the proposal), measuring the run's
    ``measure`` observables after ``burn_in`` steps."""

    model_config = ConfigDict(extra="forbid")
    chains: int = Field(16, ge=1, le=1_000_000, description="independent chains")
    sweeps: int = Field(1000, ge=2, le=100_000_000, description="measured steps per chain "
                        "(each proposes one fresh configuration of q)")  # fmt: skip
    burn_in: int = Field(100, ge=0, le=100_000_000, description="steps per chain before measuring")
    proposal: str | None = Field(None, description="the trained learner proposing (default: "
                                 "the one of the run's train statement)")  # fmt: skip


class FreeEnergyOptions(BaseModel):
    """``train q via free_energy(...)``: minimise F_q = <E + T log q>_q, a variational upper
    bound of the free energy, by the score-function gradient with a batch-mean baseline; then
    estimate F without bias by importance sampling and an independence-Metropolis chain."""

    model_config = ConfigDict(extra="forbid")
    beta: float = Field(..., gt=0, le=1e6, description="inverse temperature")
    steps: int = Field(1000, ge=1, le=10_000_000, description="training steps")
    batch: int = Field(1000, ge=2, le=10_000_000, description="samples per step")
    lr: float = Field(1e-3, gt=0, le=10, description="Adam learning rate")
    anneal: float = Field(0.998, ge=0, lt=1, description="beta_t = beta (1 - anneal^(t+1)); "
                          "0: no annealing")  # fmt: skip
    clip: float = Field(1.0, ge=0, description="gradient-norm clipping; 0: off")
    samples: int = Field(100_000, ge=2, le=100_000_000, description="samples of the final "
                         "estimates (importance sampling and neural MCMC)")  # fmt: skip
    symmetry_draws: int = Field(0, ge=0, le=1_000_000, description="for a learner respecting "
                                "translation or point_group: 0 averages the training gradient over "
                                "the whole group; k > 0 over k random elements per sample (cheaper, "
                                "biased; the final estimates always average over the whole group)")  # fmt: skip


# what every van row holds; the exact free energy where a reference is known
VAN_COLUMNS = ("free_energy_q", "free_energy_nis", "energy_per_site", "ess_per_sample",
               "var_log_w", "nmcmc_acceptance", "nmcmc_energy_per_site", "steps")  # fmt: skip
VAN_OPTIONAL = ("exact_free_energy", "acceptance", "r_hat")  # the last two: with sampler nmcmc
SYMMETRIES = ("spin_flip", "translation", "point_group")  # what every autoregressive learner
# respects by averaging over the group


def declare(catalogue: Catalogue) -> None:
    """Declare the generative learners, their objective and the van task."""
    catalogue.learners.declare(
        "made", MADEOptions, "masked autoregressive network (MADE) over the sites: exactly "
        "normalised q(s), exact independent samples; respecting spin_flip averages q(s) and "
        "q(-s), translation / point_group average over the group", family=FAMILY,
        domains=DISCRETE, symmetries=SYMMETRIES)  # fmt: skip
    catalogue.learners.declare(
        "pixelcnn", PixelCNNOptions, "masked convolutional autoregressive network (PixelCNN) "
        "over a 2D lattice of cells in raster order: exactly normalised, exact samples; "
        "respecting spin_flip averages q(s) and q(-s), translation / point_group average over "
        "the group", family=FAMILY, domains=DISCRETE, symmetries=SYMMETRIES)  # fmt: skip
    catalogue.learners.declare(
        "rnn", RNNOptions, "recurrent (GRU) autoregressive network over the unit cells, each "
        "step emitting the cell's basis sites one after the other (cells = false: one step per "
        "site): exactly normalised, exact samples", family=FAMILY, domains=DISCRETE,
        symmetries=SYMMETRIES)  # fmt: skip
    catalogue.objectives.declare(
        "free_energy", FreeEnergyOptions, "variational free energy F_q = <E + T log q>_q "
        "(VAN), then unbiased estimates: F by importance sampling, neural MCMC",
        task="van", family=FAMILY, domains=DISCRETE)  # fmt: skip
    catalogue.tasks.declare(
        "van", doc="train an autoregressive learner by the variational free energy and "
        "estimate F without bias", kinds=(FAMILY,),
        columns=Columns(fixed=VAN_COLUMNS, optional=VAN_OPTIONAL, measures=True))  # fmt: skip


__all__ = ["DISCRETE", "FreeEnergyOptions", "MADEOptions", "NMCMCOptions", "PixelCNNOptions",
           "RNNOptions", "SYMMETRIES", "VAN_COLUMNS", "declare"]
