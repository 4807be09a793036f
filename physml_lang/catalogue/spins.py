"""Catalogue entries of spin models on lattices: Markov-chain samplers of discrete fields,
the observables of a sampling run, and the shared ``sample`` task."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from .columns import Columns
from .registry import Catalogue

DISCRETE = ("spin", "binary", "potts", "integer", "z2")


class SamplerOptions(BaseModel):
    """Options common to the Markov-chain samplers."""

    model_config = ConfigDict(extra="forbid")
    chains: int = Field(64, ge=1, le=1_000_000, description="independent chains per point")
    sweeps: int = Field(2000, ge=1, description="measured sweeps (after burn-in)")
    burn_in: int = Field(500, ge=0, description="sweeps discarded before measuring")
    thin: int = Field(1, ge=1, description="sweeps between measurements")
    start: Literal["random", "ordered"] = Field("random", description="random or ordered start")
    exchange: int = Field(0, ge=0, description="parallel tempering: sweeps between replica "
                          "exchanges of neighbouring temperatures of the scan (0: none)")


class MetropolisOptions(SamplerOptions):
    """Options of single-site Metropolis."""

    update: Literal["auto", "checkerboard", "random"] = Field(
        "auto",
        description="auto: checkerboard where a colouring exists; or checkerboard, random",
    )
    kernel: Literal["auto", "numba", "triton", "torch"] = Field(
        "auto",
        description="auto: a kernel generated from the local energy where the model allows "
        "(numba on the CPU, Triton on CUDA), else torch; the same chains either way",
    )


class HeatbathOptions(MetropolisOptions):
    """Options of the heat-bath (Glauber) sampler."""


class WolffOptions(SamplerOptions):
    """Options of Wolff cluster updates."""


# per-sample observables and functions of averages of a sampling run (lattice models)
SAMPLE_OBSERVABLES = {
    "energy": "total energy E of a configuration",
    "magnetization": "total magnetisation M (sum of spins; Potts order parameter x N)",
}
FLUCTUATION_OBSERVABLES = {
    "specific_heat": "beta^2 var(E) / N",
    "susceptibility": "beta (<M^2> - <|M|>^2) / N",
    "binder": "1 - <M^4> / (3 <M^2>^2)",
}


def declare(catalogue: Catalogue) -> None:
    """Declare the samplers, observables and task of spin models."""
    samplers = catalogue.samplers
    samplers.declare("metropolis", MetropolisOptions,
                     "single-site Metropolis: checkerboard where a colouring exists",
                     family="lattice", domains=DISCRETE)  # fmt: skip
    samplers.declare("heatbath", HeatbathOptions,
                     "heat-bath (Glauber) single-site: s_x drawn from its local Boltzmann weight",
                     family="lattice", domains=DISCRETE)  # fmt: skip
    samplers.declare("glauber", HeatbathOptions, "alias of heatbath", family="lattice",
                     domains=DISCRETE)  # fmt: skip
    samplers.declare("wolff", WolffOptions,
                     "Wolff single-cluster updates of E = -sum K_ij s_i s_j (spin-flip symmetric)",
                     family="lattice", domains=("spin", "z2"), symmetries=("spin_flip",))  # fmt: skip
    for name, doc in {**SAMPLE_OBSERVABLES, **FLUCTUATION_OBSERVABLES}.items():
        catalogue.observables.declare(name, doc=doc, family="lattice")
    catalogue.tasks.declare(
        "sample",
        doc="Markov-chain sampling of lattice fields over a scan (temperatures, parameters)",
        kinds=("lattice",),
        columns=Columns(fixed=("acceptance", "r_hat", "chain_excess"),
                        optional=("exchange_acceptance",), thermal=True, defaults=("energy",)),
    )
