"""Catalogue entries: The Hopfield network's phase diagram in (alpha, T): paramagnet, retrieval and spin glass,
against the Amit-Gutfreund-Sompolinsky lines.

    run diagram {
        model Hopfield(N = 100)
        phases xi via tempering(T = linspace(0.9, 1.9, 11), sweeps = 2000, burn_in = 500),
            alpha = [0.05, 0.1, 0.2], disorder = 64, retrieval = [0, 0.5]
        scan N in [50, 100, 200]
    }

For each model size N and each alpha (P = round(alpha N) patterns), ``disorder`` pattern sets
(the model's data realised with its parameter ``seed`` = seed, seed + 1, ...) each run two
replicas of a parallel-tempering ladder from random starts (replica overlap q, its Binder
cumulant g) and one chain per retrieval temperature from pattern 1 (the retrieval overlap m).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .columns import Columns
from .registry import Catalogue

FAMILY = "lattice"  # the Hopfield network is a lattice model on the complete graph


def _temperatures(values: list[float], what: str, zero: bool) -> list[float]:
    if not values:
        raise ValueError(f"{what}: give at least one temperature")
    for t in values:
        if t < 0 or (t == 0 and not zero) or t > 1e6:
            raise ValueError(f"{what}: temperature {t:g} is out of range "
                             f"({'T >= 0' if zero else 'T > 0'})")  # fmt: skip
    if len(set(values)) != len(values):
        raise ValueError(f"{what}: temperatures repeat")
    return sorted(float(t) for t in values)


class TemperingOptions(BaseModel):
    """``phases xi via tempering(T = [...], sweeps = 2000, burn_in = 500)``: sequential
    Metropolis sweeps of every chain, and parallel-tempering exchanges between neighbouring
    temperatures of the ladder ``T`` after every ``exchange_every`` sweeps."""

    model_config = ConfigDict(extra="forbid")
    T: list[float] = Field(..., min_length=1, max_length=256,
                           description="the tempering ladder (T > 0)")  # fmt: skip
    sweeps: int = Field(2000, ge=1, le=100_000_000, description="sweeps of every chain")
    burn_in: int = Field(500, ge=0, le=100_000_000, description="sweeps before measuring")
    exchange_every: int = Field(1, ge=1, le=10_000, description="sweeps between exchanges")

    @field_validator("T")
    @classmethod
    def _ladder(cls, v: list[float]) -> list[float]:
        return _temperatures(v, "the tempering ladder", zero=False)


class PhasesOptions(BaseModel):
    """Named options of ``phases``: which alphas, how many disorder samples, the retrieval
    temperatures, and the alphas of the zero-temperature capacity scan."""

    model_config = ConfigDict(extra="forbid")
    alpha: list[float] = Field([], max_length=256,
                               description="alpha = P / N of the tempering runs")  # fmt: skip
    disorder: int = Field(32, ge=1, le=1_000_000, description="pattern sets per point: the "
                          "model's data with seed = seed, seed + 1, ...")  # fmt: skip
    retrieval: list[float] = Field([0.0], max_length=256, description="temperatures of the "
                                   "retrieval chains started at pattern 1 (0: T = 0 dynamics)")  # fmt: skip
    capacity: list[float] = Field([], max_length=256, description="further alphas where only "
                                  "the retrieval chains run (the T = 0 capacity scan)")  # fmt: skip
    bootstrap: int = Field(200, ge=10, le=100_000, description="bootstrap resamples of the "
                           "disorder samples for the errors of crossings")  # fmt: skip

    @field_validator("alpha", "capacity")
    @classmethod
    def _alphas(cls, v: list[float]) -> list[float]:
        for a in v:
            if not 0 < a <= 100:
                raise ValueError(f"alpha = {a:g} is out of range (0 < alpha <= 100)")
        return sorted(float(a) for a in v)

    @field_validator("retrieval")
    @classmethod
    def _retrieval(cls, v: list[float]) -> list[float]:
        return _temperatures(v, "the retrieval temperatures", zero=True) if v else []


# every phases row: its point and temperature, and what was measured there
PHASES_COLUMNS = ("N", "P", "alpha", "T", "disorder")
PHASES_OPTIONAL = ("m", "retrieved", "q2", "q4", "q_abs", "binder", "binder_per_sample", "chi_sg", "energy",
                   "exchange_acceptance")
PHASES_OBSERVABLES = {
    "m": "retrieval overlap max_mu |m_mu| of chains started at pattern 1 (thermal, then "
    "disorder average)",
    "retrieved": "fraction of pattern sets whose retrieval chain ends (T = 0) or stays (thermal "
    "average) at m > 0.9",
    "q2": "[<q^2>], q = (1/N) sum_i s^a_i s^b_i between two independent replicas",
    "q4": "[<q^4>]",
    "q_abs": "[<|q|>]",
    "binder": "g = (3 - [<q^4>] / [<q^2>]^2) / 2, error by bootstrap over disorder samples",
    "binder_per_sample": "[g]: (3 - <q^4> / <q^2>^2) / 2 of each disorder sample, averaged",
    "chi_sg": "spin-glass susceptibility N [<q^2>]",
    "energy": "energy per spin of the tempering chains",
    "exchange_acceptance": "acceptance of exchanges with the next higher temperature",
}


def declare(catalogue: Catalogue) -> None:
    """Declare this family's learners, objectives and tasks."""
    catalogue.updates.declare(
        "tempering", TemperingOptions, "parallel tempering of Hopfield networks: sequential "
        "Metropolis sweeps from the pattern overlaps, exchanges along a temperature ladder",
        family="hopfield")  # fmt: skip
    catalogue.tasks.declare(
        "phases", PhasesOptions, "the Hopfield phase diagram in (alpha, T): retrieval overlap, "
        "replica overlap and its Binder cumulant, T_g and alpha_c(0) against the AGS lines",
        kinds=(FAMILY,),
        columns=Columns(fixed=PHASES_COLUMNS, optional=PHASES_OPTIONAL, scans=True,
                        measures=False))  # fmt: skip


__all__ = ["FAMILY", "PHASES_COLUMNS", "PHASES_OBSERVABLES", "PHASES_OPTIONAL", "PhasesOptions",
           "TemperingOptions", "declare"]
