"""Catalogue entries: normalising flows of continuous lattice fields (scalar phi^4): coupling flows
trained by reverse KL, then neural importance sampling and neural MCMC.

    learner f = coupling_flow(layers = 8, kind = affine, width = 16) respecting translation, spin_flip
    run flow {
        model Phi4Lattice(L = 8, m2 = -4, lam = 8)
        train f via reverse_kl(steps = 2000, batch = 256, lr = 1e-3)
        measure magnetization, abs_magnetization, m2, susceptibility
    }

The flow phi = f(z) maps a standard normal prior z ~ N(0, 1) on every site through checkerboard
coupling layers whose conditioners are periodic (circularly padded) CNNs; it commutes with the
lattice translations by (a_1, .., a_d) with sum a_i even (those that keep the checkerboard), and,
``respecting spin_flip``, with phi -> -phi. log q(phi) is exact by the change of variables.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from .columns import Columns
from .registry import Catalogue

FAMILY = "field"  # continuous lattice fields
REAL = ("real",)


class CouplingFlowOptions(BaseModel):
    """Options of ``coupling_flow``: checkerboard coupling layers with periodic CNN conditioners."""

    model_config = ConfigDict(extra="forbid")
    layers: int = Field(8, ge=2, le=256, description="coupling layers (alternating checkerboard "
                        "parities; even, so that every site is updated equally often)")  # fmt: skip
    kind: Literal["affine", "spline"] = Field(
        "affine", description="affine: phi' = phi exp(s) + t, s bounded; spline: monotone "
        "rational-quadratic spline with linear tails (Durkan et al. 2019)")  # fmt: skip
    width: int = Field(16, ge=1, le=1024, description="channels of the conditioners' hidden "
                       "convolutions")  # fmt: skip
    depth: int = Field(2, ge=1, le=16, description="hidden convolutions per conditioner")
    kernel: int = Field(3, ge=1, le=31, description="convolution kernel size (odd)")
    bins: int = Field(8, ge=2, le=128, description="spline bins (kind = spline)")
    bound: float = Field(0.0, ge=0, le=1e3, description="affine: |log-scale| <= bound "
                         "(tanh-bounded; 0: 1.0); spline: the spline acts on [-bound, bound], "
                         "identity outside (0: 5.0)")  # fmt: skip
    dtype: Literal["float32", "float64"] = Field(
        "float32", description="training arithmetic; the final estimates (log q, F_NIS, the "
        "neural MCMC chain) always evaluate the trained flow in float64")  # fmt: skip
    spin_flip: Literal["odd", "mixture"] = Field(
        "odd", description="how 'respecting spin_flip' is realised: odd, every layer odd "
        "(f(-z) = -f(z)); mixture, q(phi) = (q0(phi) + q0(-phi)) / 2 of an unconstrained flow "
        "q0 and a random sign (q0 may settle in one mode of a broken phase; its warm start "
        "sees the HMC samples folded to mean phi >= 0)")  # fmt: skip


class ReverseKLOptions(BaseModel):
    """``train f via reverse_kl(...)``: minimise KL(q || p) = <log q + S>_q + log Z by the
    reparameterised gradient (optionally after a forward-KL warm start on HMC samples of the
    model), then estimate -log Z without bias by importance sampling and neural MCMC."""

    model_config = ConfigDict(extra="forbid")
    steps: int = Field(1000, ge=0, le=10_000_000, description="reverse-KL training steps")
    batch: int = Field(256, ge=2, le=10_000_000, description="samples per step")
    lr: float = Field(1e-3, gt=0, le=10, description="Adam learning rate")
    clip: float = Field(1.0, ge=0, description="gradient-norm clipping; 0: off")
    anneal: float = Field(0.0, ge=0, lt=1, description="beta_t = 1 - anneal^(t+1) multiplies "
                          "the action during training; 0: off")  # fmt: skip
    warm_start: int = Field(0, ge=0, le=1_000_000, description="forward-KL steps on HMC samples "
                            "of the model (physml's hmc) before the reverse-KL steps")  # fmt: skip
    hmc_step: float = Field(0.1, gt=0, le=10, description="warm start: HMC leapfrog step")
    hmc_steps: int = Field(10, ge=1, le=10_000, description="warm start: leapfrog steps per "
                           "trajectory")  # fmt: skip
    samples: int = Field(50_000, ge=16, le=100_000_000, description="samples of the final "
                         "estimates (importance sampling and the neural MCMC chain)")  # fmt: skip
    train_extent: int = Field(0, ge=0, le=1_000_000, description="train on a periodic torus "
                              "of this extent in every direction, then apply the same weights "
                              "(the conditioners are periodic CNNs) at the model's own size, "
                              "where the estimates are always made; the small torus's action "
                              "is the model's on the field tiled over its lattice, divided by "
                              "the number of tiles; 0: train at the model's size")  # fmt: skip


FLOW_OBSERVABLES = ("action_density", "magnetization", "abs_magnetization", "m2",
                    "susceptibility", "binder")  # fmt: skip
FLOW_DEFAULTS = ("magnetization", "abs_magnetization", "m2", "susceptibility")
FLOW_COLUMNS = ("free_energy_q", "free_energy_nis", "ess_per_sample", "var_log_w",
                "nmcmc_acceptance", "steps", "train_s")  # fmt: skip


def declare(catalogue: Catalogue) -> None:
    """Declare the coupling flow, its reverse-KL objective and the flow task of fields."""
    catalogue.learners.declare(
        "coupling_flow", CouplingFlowOptions, "normalising flow of a real lattice field: "
        "checkerboard affine or rational-quadratic-spline coupling layers with periodic CNN "
        "conditioners, N(0, 1) prior, exact log q; commutes with translations by even shifts "
        "(sum of the shift's components even); respecting spin_flip makes it odd, f(-z) = -f(z)",
        family=FAMILY, domains=REAL, symmetries=("translation", "spin_flip"))  # fmt: skip
    catalogue.objectives.declare(
        "reverse_kl", ReverseKLOptions, "reverse KL(q || p) = <log q + S>_q + log Z "
        "(reparameterised), optional forward-KL warm start on HMC samples; then F by importance "
        "sampling and observables by neural MCMC", task="flow", family=FAMILY,
        domains=REAL)  # fmt: skip
    catalogue.tasks.declare(
        "flow", doc="train a normalising flow of a continuous field by reverse KL, then estimate "
        "-log Z / V (NIS) and observables (neural MCMC) without bias", family=FAMILY,
        columns=Columns(fixed=FLOW_COLUMNS, defaults=FLOW_DEFAULTS))  # fmt: skip


__all__ = ["FAMILY", "FLOW_COLUMNS", "FLOW_DEFAULTS", "FLOW_OBSERVABLES", "CouplingFlowOptions",
           "ReverseKLOptions", "declare"]
