"""Catalogue entries of the quantum capability: qubit models by exact diagonalisation and
variational Monte Carlo (neural quantum states).

The options schemas here are the language's vocabulary of a vmc run (``learner psi =
rbm(alpha = 2)``, ``sampler metropolis(chains = 16)``, ``optimize psi via sr(lr = 0.02)``); the
runtime translates them into its own configuration (``runtime/quantum/vmc.py``).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt

from .columns import Columns
from .registry import Catalogue

QUANTUM = "quantum"  # the model kind, and the family of every entry below
SYMMETRIES = ("translation", "spin_flip")  # what every quantum learner can respect

# Declaration order, which the runtime's hints list (``learners: rbm, cnn, rnn``); the catalogue
# itself lists entries sorted.


class _Opts(BaseModel):
    """Options of a quantum entry: unknown names are errors."""

    model_config = ConfigDict(extra="forbid")


# ---------------------------------------------------------------- learners


class RBMOptions(_Opts):
    """Options of ``rbm``: a restricted Boltzmann machine, real or complex."""

    alpha: float = Field(
        1.0, gt=0, description="hidden units per site (features per site if symmetric)"
    )
    complex: bool = False
    init_std: float = Field(0.01, ge=0)
    sign_rule: Literal["none", "marshall"] = "none"


class ConvNetOptions(_Opts):
    """Options of ``cnn``: a translation-invariant convolutional network."""

    channels: list[PositiveInt] = Field(default_factory=lambda: [8, 8])
    kernel_size: int = Field(3, ge=1)
    phase: bool = False
    sign_rule: Literal["none", "marshall"] = "none"


class RNNOptions(_Opts):
    """Options of ``rnn``: a normalised autoregressive GRU over unit cells."""

    hidden: int = Field(32, ge=1)
    cell_size: int | None = Field(None, ge=1, description="sites per autoregressive step "
                                  "(default: the sites of one unit cell)")
    magnetization: int | None = None
    phase: Literal["none", "head", "marshall"] = "none"


def marshall_sign(options: BaseModel) -> bool:
    """Whether a learner's options ask for the Marshall sign (-1)^(down spins on sublattice A)
    (``sign_rule = marshall``, ``phase = marshall``): it needs a bipartite lattice."""
    return (getattr(options, "sign_rule", "none") == "marshall"
            or getattr(options, "phase", None) == "marshall")  # fmt: skip


def learner_conflict(options: BaseModel, symmetries: Collection[str],
                     bipartite: bool) -> str | None:  # fmt: skip
    """Why a quantum learner with ``options``, respecting ``symmetries``, cannot act on a model
    (None: it can), from static facts alone: spin flip maps a fixed magnetisation m to -m; the
    Marshall sign needs a bipartite lattice (``bipartite``: the model has an A sublattice)."""
    if "spin_flip" in symmetries and getattr(options, "magnetization", None) not in (None, 0):
        return "spin flip maps magnetization m to -m: use magnetization 0 or none"
    if marshall_sign(options) and not bipartite:
        return "the Marshall sign rule needs a bipartite lattice (sublattice mask)"
    return None


# ---------------------------------------------------------------- samplers of a vmc run


class MetropolisSpec(_Opts):
    """``sampler metropolis(...)`` of a VMC run: persistent chains over |psi|^2."""

    chains: int = Field(16, ge=1, le=1_000_000)
    # bounded: beyond these a chain never decorrelates faster, and the counts overflow the
    # random streams' counters
    sweeps: float = Field(1.0, gt=0, le=10_000, description="sweeps (N proposals) between samples")
    burn_in: int = Field(2, ge=0, le=1_000_000, description="sweeps discarded at every iteration")
    initial_burn_in: int = Field(50, ge=0, le=10_000_000,
                                 description="sweeps before the first iteration")
    move: Literal["auto", "flip", "exchange"] = Field(
        "auto", description="auto: exchange when the model conserves sum(Z), else flip"
    )
    magnetization: int | None = Field(None, description="sector sum(Z) of exchange moves")
    compile: bool = Field(False, description="torch.compile the RBM Metropolis kernel (for "
                          "GPUs; on the CPU the default numba loop is faster)")  # fmt: skip


class AutoregressiveSpec(_Opts):
    """``sampler autoregressive``: exact independent draws from a normalised learner (rnn)."""


# ---------------------------------------------------------------- optimisers of a vmc run


class SRSpec(_Opts):
    """``optimize psi via sr(...)``: stochastic reconfiguration (natural gradient) steps."""

    lr: float = Field(0.02, gt=0)
    diag_shift: float = Field(0.01, ge=0)
    solver: Literal["auto", "dense", "cg"] = "auto"
    momentum: float = Field(0.0, ge=0, lt=1)
    lr_decay: float = Field(1.0, gt=0, le=1, description="lr times this every iteration")
    min_lr: float = Field(0.0, ge=0)


class SGDSpec(_Opts):
    """``optimize psi via sgd(...)``: plain gradient steps (with momentum)."""

    lr: float = Field(0.02, gt=0)
    momentum: float = Field(0.0, ge=0, lt=1)
    lr_decay: float = Field(1.0, gt=0, le=1)
    min_lr: float = Field(0.0, ge=0)


class AdamSpec(_Opts):
    """``optimize psi via adam(...)``: Adam steps on the energy gradient."""

    lr: float = Field(0.01, gt=0)
    lr_decay: float = Field(1.0, gt=0, le=1)
    min_lr: float = Field(0.0, ge=0)


# ---------------------------------------------------------------- observables

# Built-in observables of quantum runs (their documentation names the runs that report them).
OBSERVABLES: dict[str, str] = {
    "energy": "ground-state energy: E0 (exact runs) or the final estimate of <H> (vmc runs)",
    "energy_per_site": "energy / N",
    "gap": "E1 - E0 (exact runs with levels >= 2)",
    "variance": "variance of the local energy over the final samples (vmc runs)",
    "r_hat": "split R-hat of the final local energies over the chains (vmc runs)",
    "magnetization": "<sum_i Z_i> / N",
    "abs_magnetization": "<|sum_i Z_i|> / N",
    "staggered_magnetization": "<|sum_i (+-1)_i Z_i|> / N on a bipartite lattice",
    "structure_factor": "S(q) = <|sum_i e^{i q.r_i} Z_i|^2> / N at q = 0 and q = (pi, ..., pi)",
}
# The quantum tasks whose runs report each observable (a static fact: ``measure gap`` in a vmc
# run is a located error from ``physml check``).
OBSERVABLE_RUNS: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(OBSERVABLES, ("exact", "vmc")),
    "gap": ("exact",), "variance": ("vmc",), "r_hat": ("vmc",),
}  # fmt: skip
# what a vmc row always holds (its energy statistics), whatever the measure statement lists
VMC_ENERGY_COLUMNS = ("energy", "energy_per_site", "variance", "r_hat")
# the structure factor is written as two columns, S(0) and S(pi, ..., pi)
STRUCTURE_FACTOR = (("structure_factor", ("structure_factor_q0", "structure_factor_qpi")),)


def declare(catalogue: Catalogue) -> None:
    """Declare this capability's entries."""
    learners = catalogue.learners
    for name, schema, doc in (
        ("rbm", RBMOptions, "restricted Boltzmann machine log psi(s) = a . s + sum_j "
         "lncosh(b_j + W_j . s), real or complex; translation-symmetric when it respects "
         "translation"),
        ("cnn", ConvNetOptions, "translation-invariant CNN on a periodic lattice (circular "
         "convolutions and a sum over sites)"),
        ("rnn", RNNOptions, "normalised autoregressive GRU over unit cells: exact sampling "
         "(sampler autoregressive)"),
    ):  # fmt: skip
        learners.declare(name, schema, doc, family=QUANTUM, domains=("qubit",),
                         symmetries=SYMMETRIES)  # fmt: skip
    samplers = catalogue.samplers
    samplers.declare("metropolis", MetropolisSpec,
                     "Metropolis chains over |psi|^2, batched over chains (vmc runs)",
                     family=QUANTUM, domains=("qubit",))  # fmt: skip
    samplers.declare("autoregressive", AutoregressiveSpec,
                     "exact independent draws from a normalised (autoregressive) learner",
                     family=QUANTUM, domains=("qubit",))  # fmt: skip
    updates = catalogue.updates
    updates.declare("flip", doc="flip one random qubit (a Metropolis move of vmc runs)",
                    family=QUANTUM, domains=("qubit",))  # fmt: skip
    updates.declare("exchange",
                    doc="swap a random qubit with a random one of opposite spin: keeps sum(Z)",
                    family=QUANTUM, domains=("qubit",))  # fmt: skip
    optimisers = catalogue.optimisers
    optimisers.declare("sr", SRSpec, "stochastic reconfiguration: (S + diag_shift) x = F, "
                       "steps along x", family=QUANTUM)  # fmt: skip
    optimisers.declare("sgd", SGDSpec, "gradient descent on the energy (with momentum)",
                       family=QUANTUM)  # fmt: skip
    optimisers.declare("adam", AdamSpec, "Adam on the energy gradient", family=QUANTUM)
    for name, doc in OBSERVABLES.items():
        catalogue.observables.declare(name, doc=doc, family=QUANTUM)
    tasks = catalogue.tasks
    tasks.declare("sample", doc="classical sampling does not apply to quantum models (a located "
                  "error)", family=QUANTUM)  # fmt: skip
    tasks.declare("exact", doc="exact diagonalisation (Lanczos) of a qubit model", kinds=(QUANTUM,),
                  columns=Columns(fixed=("energy", "energy_per_site", "levels"),
                                  optional=("gap", "sectors"), expands=STRUCTURE_FACTOR))  # fmt: skip
    tasks.declare("vmc", doc="variational Monte Carlo: optimise a neural quantum state",
                  kinds=(QUANTUM,),
                  columns=Columns(fixed=(*VMC_ENERGY_COLUMNS, "acceptance", "iterations"),
                                  optional=("exact_energy", "relative_error", "reference"),
                                  expands=STRUCTURE_FACTOR))  # fmt: skip


__all__ = ["AdamSpec", "AutoregressiveSpec", "ConvNetOptions", "MetropolisSpec", "OBSERVABLES",
           "OBSERVABLE_RUNS", "QUANTUM", "RBMOptions", "RNNOptions", "SGDSpec", "SRSpec",
           "SYMMETRIES", "declare", "learner_conflict", "marshall_sign"]  # fmt: skip
