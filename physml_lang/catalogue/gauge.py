"""Catalogue entries of lattice gauge theory: link samplers and the options of a gauge sampling
run, the built-in gauge observables, gauge-equivariant learners, and the ``sample`` [gauge] and
``gauge_regress`` tasks."""

from __future__ import annotations

import math
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt

from .columns import Columns
from .registry import Catalogue

GROUPS = ("z2", "u1", "su2")
REGRESSORS = ("lcnn", "gauge_cnn")  # the learners a gauge_regress run trains
CONTINUOUS = ("u1", "su2")
GROUP_NAMES = {"z2": "Z2", "u1": "U(1)", "su2": "SU(2)"}
# link samplers that update the two parity classes of each direction's links in parallel: they
# need even extents orthogonal to every direction (hmc moves every link at once)
CHECKERBOARD = ("metropolis", "heatbath")


# ---------------------------------------------------------------- link samplers


class MetropolisOptions(BaseModel):
    """Checkerboard Metropolis: ``hits`` proposals per link per sweep; ``step_size`` is the u1
    angle half-width / the su2 rotation angle bound (ignored for z2, which proposes a random
    sign). Formerly ``step``."""

    model_config = ConfigDict(extra="forbid")
    renamed: ClassVar[dict[str, str]] = {"step": "step_size"}
    hits: int = Field(4, ge=1, description="proposals per link per sweep")
    step_size: float = Field(1.0, gt=0, le=math.pi, description="u1 angle half-width, su2 "
                             "rotation angle bound")  # fmt: skip


class HeatbathOptions(BaseModel):
    """Checkerboard heat-bath (exact for z2, u1 via von Mises, su2 via Kennedy-Pendleton)."""

    model_config = ConfigDict(extra="forbid")


class HMCOptions(BaseModel):
    """HMC with leapfrog; ``trajectory length = step_size * n_steps``."""

    model_config = ConfigDict(extra="forbid")
    step_size: float = Field(0.1, gt=0)
    n_steps: int = Field(10, ge=1)
    reunitarize: bool = True


class RunControls(BaseModel):
    """Chains, sweeps, burn-in, thinning and start of a gauge sampling run (any sampler). The
    lattice samplers' vocabulary: one sweep updates every link once (one trajectory for hmc)."""

    model_config = ConfigDict(extra="forbid")
    chains: int = Field(8, ge=1, le=65536, description="independent chains")
    sweeps: int = Field(1000, ge=1, description="measured sweeps (hmc: trajectories)")
    burn_in: int = Field(100, ge=0, description="sweeps discarded before measuring")
    thin: int = Field(1, ge=1, description="sweeps between measurements")
    start: Literal["hot", "cold"] = Field("hot", description="hot (Haar random) or cold (unit)")


class MetropolisRun(MetropolisOptions, RunControls):
    """Options of ``sampler metropolis(...)`` in a gauge run: the sampler's and the run's."""


class HeatbathRun(HeatbathOptions, RunControls):
    """Options of ``sampler heatbath(...)`` in a gauge run: the run's (heat-bath has none)."""


class HMCRun(HMCOptions, RunControls):
    """Options of ``sampler hmc(...)`` in a gauge run: the sampler's and the run's; a sweep is
    one trajectory (formerly counted as ``trajectories``)."""

    renamed: ClassVar[dict[str, str]] = {"trajectories": "sweeps"}


# ---------------------------------------------------------------- learners


class LCNNOptions(BaseModel):
    """Options of the ``lcnn`` learner."""

    model_config = ConfigDict(extra="forbid")
    channels: list[PositiveInt] = Field(default_factory=lambda: [4, 8], min_length=1)
    kernel_size: int = Field(1, ge=1)
    hidden: int = Field(16, ge=1)
    out_features: int = Field(1, ge=1)
    readout: str = Field("mean", pattern="^(mean|sum|none)$")


class PlainCNNOptions(BaseModel):
    """Options of the ``gauge_cnn`` baseline learner."""

    model_config = ConfigDict(extra="forbid")
    channels: list[PositiveInt] = Field(default_factory=lambda: [16, 32], min_length=1)
    kernel_size: int = Field(3, ge=1)
    out_features: int = Field(1, ge=1)
    readout: str = Field("mean", pattern="^(mean|sum|none)$")


# ---------------------------------------------------------------- the regress task


class RegressOptions(BaseModel):
    """Options of ``regress``: data, training and evaluation."""

    model_config = ConfigDict(extra="forbid")
    samples: int = Field(384, ge=8, le=100_000, description="training configurations")
    test_samples: int = Field(64, ge=4, le=100_000, description="test configurations per L")
    test_L: list[PositiveInt] = Field(default_factory=lambda: [16, 32], description="test lattice sizes")
    sweeps: int = Field(30, ge=1, description="heat-bath sweeps per configuration (hot start)")
    epochs: int = Field(40, ge=1)
    batch_size: int = Field(32, ge=1)
    lr: float = Field(3e-3, gt=0, le=1.0)


# regression targets of ``regress`` (a name, or wilson_loop(R, T))
TARGETS = {"wilson_loop": "wilson_loop(R, T): lattice mean of the R x T Wilson loops",
           "plaquette": "mean Re tr P / N",
           "topological_charge_density": "2D U(1): Q / V"}  # fmt: skip

# observables and targets defined on some gauge models only: name -> (link groups, dimension d)
DEFINED_ON = {"topological_charge": (("u1",), 2), "topological_charge_density": (("u1",), 2)}

# observables measured by a call, with the names of their arguments (loop extents 1 .. min(L))
CALLS = {"wilson_loop": ("R", "T")}

# built-in observables of gauge models, measured by name (wilson_loop by a call)
OBSERVABLES = {
    "plaquette": "mean Re tr P / N over sites and planes",
    "action": "the action S per configuration (also: energy)",
    "topological_charge": "2D U(1): Q = sum_x wrap(P_x) / 2 pi",
    "polyakov_loop": "Re of the lattice-averaged Polyakov loop along the last direction",
    "abs_polyakov_loop": "|lattice-averaged Polyakov loop| along the last direction",
    "sites": "number of sites",
    "wilson_loop": "wilson_loop(R, T): lattice mean of the R x T Wilson loops",
}


def declare(catalogue: Catalogue) -> None:
    """Declare the link samplers, gauge observables, gauge learners and tasks."""
    samplers = catalogue.samplers
    # The same names choose coloured local updates of links and matter when the action is not
    # the bare Wilson action (runtime/gauge/local.py): the model decides, not the name.
    samplers.declare("metropolis", MetropolisRun,
                     "checkerboard Metropolis of links (z2 random sign, u1 angle shift, su2 "
                     "rotation near 1; hits per link); local updates of links and matter for "
                     "other actions", family="gauge", domains=GROUPS)  # fmt: skip
    samplers.declare("heatbath", HeatbathRun,
                     "checkerboard heat-bath (exact for z2, u1 via von Mises, su2 via "
                     "Kennedy-Pendleton); local z2 heat-bath of links and matter for other "
                     "actions", family="gauge", domains=GROUPS)  # fmt: skip
    samplers.declare("hmc", HMCRun,
                     "HMC with leapfrog on the Wilson action, forces from the staples; "
                     "trajectory length = step_size * n_steps", family="gauge",
                     domains=CONTINUOUS)  # fmt: skip
    for name, doc in OBSERVABLES.items():
        groups = DEFINED_ON.get(name, ((), 0))[0]
        catalogue.observables.declare(name, doc=doc, family="gauge", domains=groups)
    catalogue.observables.declare("energy", doc="alias of action", family="gauge")
    learners = catalogue.learners
    learners.declare("lcnn", LCNNOptions,
                     "lattice gauge-equivariant CNN (L-CNN, Favoni et al. 2022): parallel-"
                     "transport convolutions of plaquette channels, traced readout",
                     family="gauge", domains=GROUPS, symmetries=("gauge", "translation"))  # fmt: skip
    learners.declare("gauge_cnn", PlainCNNOptions,
                     "baseline: circular CNN on raw link components (d = 1..3), translation "
                     "equivariant but not gauge equivariant", family="gauge", domains=GROUPS,
                     symmetries=("translation",))  # fmt: skip
    catalogue.tasks.declare(
        "sample",
        doc="link updates (metropolis, heatbath, hmc) for Wilson gauge models; local "
        "metropolis / heatbath (z2) updates of links and matter for other actions",
        family="gauge",
        # exact 2D torus references of Wilson actions: the plaquette, and <Q^2> for U(1)
        columns=Columns(fixed=("acceptance",), optional=("plaquette_exact", "Q2_exact"),
                        defaults=("plaquette",)),
    )
    catalogue.tasks.declare(
        "gauge_regress",
        RegressOptions,
        "train gauge learners on sampled configurations; test on larger lattices",
        kinds=("gauge",),
        # one row per learner and test lattice size
        columns=Columns(fixed=("learner", "kind", "L", "mse", "relative_rmse", "target_std",
                               "train_loss"), scans=False, measures=False),
    )
