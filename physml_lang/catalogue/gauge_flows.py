"""Catalogue entries: gauge-equivariant normalising flows of 2D U(1) link fields (plaquette
couplings, Kanwar et al., PRL 125, 121601 (2020)), trained by reverse KL (optionally warm
started by forward KL on HMC configurations), then neural importance sampling and neural MCMC.

    import U1
    learner f = gauge_flow(layers = 16, width = 8, kernel = 3, bins = 8) respecting gauge, translation
    run flow {
        model U1(L = 8, beta = 2.0)
        train f via reverse_kl(steps = 1000, batch = 64, lr = 0.002, samples = 20000)
        measure plaquette, Q = topological_charge, Q2 = topological_charge^2
        reference exact
    }

At large beta (topological freezing of HMC) train on a small torus and sample a large one:
``model U1(L = 16, beta = 6.0)`` with ``reverse_kl(..., lr_schedule = cosine, train_extent = 8)``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from .columns import Columns
from .registry import Catalogue

FAMILY = "gauge"  # the model kind the learner, objective and task belong to
GROUPS = ("u1",)


class GaugeFlowOptions(BaseModel):
    """Options of ``gauge_flow``: coupling layers of plaquette angles conditioned by circular
    CNNs of the frozen plaquettes; circular rational-quadratic splines; float64."""

    model_config = ConfigDict(extra="forbid")
    layers: int = Field(16, ge=1, le=512, description="coupling layers (cycling through the "
                        "2 link directions x 4 stripe offsets)")  # fmt: skip
    width: int = Field(8, ge=1, le=1024, description="channels of the conditioner's convolutions")
    depth: int = Field(2, ge=1, le=32, description="convolutions per conditioner")
    kernel: int = Field(3, ge=1, le=15, description="kernel size of the convolutions (odd)")
    bins: int = Field(8, ge=2, le=64, description="bins of the circular splines")


class ReverseKLOptions(BaseModel):
    """``train f via reverse_kl(...)``: minimise F_q = <S + log q>_q (reverse KL up to log Z),
    by the reparametrised (path) gradient; optionally first fit forward KL -<log q> to HMC
    configurations (``warm_start`` steps); then estimate log Z without bias by importance
    sampling and measure with an independence-Metropolis chain (neural MCMC)."""

    model_config = ConfigDict(extra="forbid")
    steps: int = Field(1000, ge=0, le=10_000_000, description="reverse-KL training steps")
    batch: int = Field(64, ge=2, le=1_000_000, description="configurations per step")
    lr: float = Field(1e-3, gt=0, le=10, description="Adam learning rate")
    lr_schedule: Literal["constant", "cosine"] = Field(
        "constant", description="the reverse-KL steps' learning rate: constant, or cosine decay "
        "from lr to 0 over the steps (the warm start's is constant)")  # fmt: skip
    clip: float = Field(1.0, ge=0, description="gradient-norm clipping; 0: off")
    anneal: float = Field(0.0, ge=0, lt=1, description="beta_t = beta (1 - anneal^(t+1)); "
                          "0: no annealing")  # fmt: skip
    warm_start: int = Field(0, ge=0, le=1_000_000, description="forward-KL steps on HMC "
                            "configurations before the reverse-KL training; 0: none")  # fmt: skip
    samples: int = Field(20_000, ge=16, le=100_000_000, description="samples of the final "
                         "estimates (importance sampling and neural MCMC)")  # fmt: skip
    train_extent: int = Field(0, ge=0, le=1_000_000, description="train on the "
                              "train_extent x train_extent torus (a multiple of 4 dividing "
                              "every extent; its action is the model's on the links tiled over "
                              "its lattice, divided by the number of tiles), then estimate with "
                              "the same weights on the model's lattice (circular CNNs, masks of "
                              "period 4: the same kind of flow there, exactly normalised); 0: "
                              "train on the model's lattice")  # fmt: skip


# what every flow [gauge] row holds; F is -log Z per site (Haar measure normalised per link)
FLOW_COLUMNS = ("free_energy_q", "free_energy_nis", "ess_per_sample", "var_log_w",
                "nmcmc_acceptance", "tau_int_Q", "steps")  # fmt: skip
FLOW_OPTIONAL = ("exact_free_energy", "plaquette_exact", "Q2_exact")


def declare(catalogue: Catalogue) -> None:
    """Declare the gauge flow learner, its reverse-KL objective and the flow [gauge] task."""
    catalogue.learners.declare(
        "gauge_flow", GaugeFlowOptions, "gauge-equivariant normalising flow of 2D U(1) links "
        "(Kanwar et al. 2020): plaquette coupling layers with circular splines, exact log-det, "
        "Haar prior; trained by reverse_kl in a flow run", family=FAMILY, domains=GROUPS,
        symmetries=("gauge", "translation"))  # fmt: skip
    catalogue.objectives.declare(
        "reverse_kl", ReverseKLOptions, "reverse KL F_q = <S + log q>_q of a gauge flow "
        "(optional forward-KL warm start from HMC), then log Z by importance sampling and "
        "observables by neural MCMC", task="flow", family=FAMILY, domains=GROUPS)  # fmt: skip
    catalogue.tasks.declare(
        "flow", doc="train a gauge-equivariant flow of 2D U(1) links by reverse KL; estimate "
        "log Z without bias (NIS) and measure by neural MCMC", family=FAMILY,
        columns=Columns(fixed=FLOW_COLUMNS, optional=FLOW_OPTIONAL,
                        defaults=("plaquette",)))  # fmt: skip


__all__ = ["FAMILY", "FLOW_COLUMNS", "GaugeFlowOptions", "ReverseKLOptions", "declare"]
