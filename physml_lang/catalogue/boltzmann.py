"""Catalogue entries of energy-based learners (Hopfield networks, Boltzmann machines, RBMs): the
Gibbs sampler and the Glauber dynamics of recall, training objectives, optimisers and
learning-rate schedules, the observables of train and sample runs, and the tasks recall, train
and sample."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from .columns import Columns
from .registry import Catalogue

FAMILY = "boltzmann"
# the field domains of Boltzmann models (discrete units)
DISCRETE = ("spin", "binary", "potts")


# ---------------------------------------------------------------- sampling and recall


class GibbsOptions(BaseModel):
    """Options of Glauber / Gibbs dynamics."""

    model_config = ConfigDict(extra="forbid")
    T: float = Field(1.0, ge=0.0, description="temperature; 0: zero-temperature dynamics")
    update: Literal["sequential", "parallel"] = Field(
        "sequential", description="self-interacting fields: site by site or all at once"
    )
    sweeps: int = Field(20, ge=1, le=1_000_000, description="sweeps (at most, at T = 0)")


class GibbsSampleOptions(BaseModel):
    """``sampler gibbs(...)`` of a Boltzmann model (RBM, general BM, Hopfield with learnables)."""

    model_config = ConfigDict(extra="forbid")
    chains: int = Field(64, ge=1, le=1_000_000, description="independent chains")
    sweeps: int = Field(1000, ge=1, description="measured sweeps")
    burn_in: int = Field(200, ge=0, description="sweeps before measuring")
    thin: int = Field(1, ge=1, description="sweeps between measurements")
    update: str = Field("sequential", pattern="^(sequential|parallel)$",
                        description="self-interacting fields: site by site or all at once")  # fmt: skip


class RecallOptions(BaseModel):
    """Named options of ``recall``: the corruption of the cues and how many patterns."""

    model_config = ConfigDict(extra="forbid")
    flip: float = Field(0.0, ge=0, le=1, description="fraction of sites flipped in each cue")
    patterns: int | None = Field(None, ge=1, description="how many stored patterns to recall")
    seed: int = Field(0, ge=0, description="seed of the corruption")


# ---------------------------------------------------------------- training


class _Strict(BaseModel):
    """Options that reject unknown names."""

    model_config = ConfigDict(extra="forbid")


class _Positive(_Strict):
    """Positive phase of general Boltzmann machines (latent units that are not summed out)."""

    positive_sweeps: int = Field(1, ge=1, le=10_000, description="general BMs: sweeps of the "
                                 "hidden units with the data clamped, per step (persistent "
                                 "per example)")  # fmt: skip
    positive: Literal["gibbs", "meanfield"] = Field(
        "gibbs", description="general BMs: Gibbs sampling or mean-field updates of the hidden "
        "units given the data")  # fmt: skip


class CDOptions(_Positive):
    """Options of contrastive divergence, ``cd(k)``."""

    k: int = Field(1, ge=1, le=10_000, description="Gibbs sweeps from the data")


class PCDOptions(_Positive):
    """Options of persistent contrastive divergence, ``pcd(k, chains)``."""

    k: int = Field(1, ge=1, le=10_000, description="Gibbs sweeps of the persistent chains per step")
    chains: int = Field(100, ge=1, le=1_000_000, description="persistent chains")


class SGDOptions(_Strict):
    """Options of stochastic gradient descent."""

    lr: float = Field(0.01, gt=0, description="learning rate")
    momentum: float = Field(0.0, ge=0, lt=1, description="momentum")
    weight_decay: float = Field(0.0, ge=0, description="L2 weight decay")


class AdamOptions(_Strict):
    """Options of Adam."""

    lr: float = Field(0.001, gt=0, description="learning rate")
    beta1: float = Field(0.9, ge=0, lt=1)
    beta2: float = Field(0.999, ge=0, lt=1)
    weight_decay: float = Field(0.0, ge=0, description="L2 weight decay")


class ConstantOptions(_Strict):
    """A constant learning rate has no options."""


class CosineOptions(_Strict):
    """Options of cosine decay."""

    min_factor: float = Field(0.0, ge=0, le=1, description="final lr / initial lr")


class ExponentialOptions(_Strict):
    """Options of exponential decay."""

    gamma: float = Field(0.95, gt=0, le=1, description="lr factor per epoch")


class StepOptions(_Strict):
    """Options of step decay."""

    every: int = Field(10, ge=1, description="epochs between steps")
    factor: float = Field(0.5, gt=0, le=1, description="lr factor per step")


class TrainOptions(BaseModel):
    """Named options of ``train``: epochs, minibatches, the data and what is held out."""

    model_config = ConfigDict(extra="forbid")
    epochs: int = Field(10, ge=1, le=1_000_000, description="passes over the data")
    batch: int = Field(64, ge=1, description="minibatch size")
    data: str | None = Field(None, description="the data declaration to train on")
    test: float = Field(0.0, ge=0, lt=1, description="fraction held out for evaluation")
    max_weight: float = Field(1e4, gt=0, description="stop when a parameter exceeds this")
    resume: bool | None = Field(None, description="deprecated: continue from the checkpoint in "
                                "the output folder with the command's --resume")  # fmt: skip
    visible: int | str | None = Field(None, description="general Boltzmann machines: the data "
                                      "are the first `visible` sites of the first field (a "
                                      "number or a model parameter, e.g. visible = Nv); the "
                                      "rest are hidden units")  # fmt: skip


class GenerateOptions(BaseModel):
    """Options of ``generate``: Gibbs chains of a trained model."""

    model_config = ConfigDict(extra="forbid")
    chains: int = Field(64, ge=1, le=100_000, description="independent chains")
    burn_in: int = Field(200, ge=0, description="Gibbs sweeps before measuring")
    sweeps: int = Field(200, ge=1, description="measured sweeps")
    thin: int = Field(1, ge=1, description="sweeps between measurements")


class AISOptions(BaseModel):
    """Options of ``ais``: annealed importance sampling of log Z."""

    model_config = ConfigDict(extra="forbid")
    betas: int = Field(1000, ge=10, le=10_000_000, description="intermediate temperatures")
    chains: int = Field(100, ge=2, le=100_000, description="AIS chains")


# ---------------------------------------------------------------- deep belief networks


class DBNOptions(BaseModel):
    """``dbn(layers = [64, 32, 16])``: a stack of RBMs trained greedily, layer by layer."""

    model_config = ConfigDict(extra="forbid")
    layers: list[int] = Field(..., min_length=2, max_length=16,
                              description="units per layer, the data's sites first (each "
                              "layer's hidden units are the visible units of the next)")  # fmt: skip
    activations: Literal["sample", "mean"] = Field(
        "sample", description="what the layer above is trained on: samples of h ~ p(h|v) "
        "(the variational bound) or their probabilities")  # fmt: skip
    sigma: float = Field(0.01, gt=0, le=10, description="spread of the initial weights")
    code: int | None = Field(None, ge=1, le=65536, description="size of the top layer "
                             "(replaces the last entry of layers; may be scanned)")  # fmt: skip


class AutoencoderOptions(DBNOptions):
    """``autoencoder(layers = [64, 32, 8], finetune = 50)``: a DBN unrolled into encoder and
    decoder (Hinton & Salakhutdinov 2006), fine-tuned by backpropagation."""

    finetune: int = Field(50, ge=0, le=1_000_000, description="epochs of backpropagation on "
                          "the reconstruction error after pretraining")  # fmt: skip
    finetune_lr: float = Field(1e-3, gt=0, le=10, description="Adam learning rate of "
                               "fine-tuning")  # fmt: skip
    linear_code: bool = Field(True, description="linear code units, as in Hinton & "
                              "Salakhutdinov: the top RBM's hidden units are Gaussian (unit "
                              "variance, trained at a tenth of the learning rate) and the "
                              "encoder's last layer is linear; false: logistic codes")  # fmt: skip


# measured by train runs of dbn and autoencoder learners
DEEP_OBSERVABLES = {
    "pca_reconstruction": "held-out squared reconstruction error of PCA with as many "
    "components as the code (the top layer) has units, per example",
    "reconstruction_gain": "pca_reconstruction - reconstruction, paired over the held-out "
    "examples (positive: the network reconstructs better)",
}


# ---------------------------------------------------------------- observables

# measured on the Gibbs chains of a sample run
GIBBS_OBSERVABLES = {
    "energy": "E(state), all fields",
    "magnetization": "sum of the first field's units",
    "mean_<field>": "mean of a field's units (e.g. mean_v, mean_h)",
}
# measured on a trained model by a train run
LEARNER_OBSERVABLES = {
    "log_likelihood": "mean log p(v) of the held-out (else training) data, log Z by AIS",
    "log_z": "log Z by annealed importance sampling",
    "exact_log_likelihood": "mean log p(v) with log Z by exact enumeration (small models)",
    "reconstruction": "mean squared one-step reconstruction error (cd)",
    "loss": "final mean F(data) - F(model samples)",
    "coupling_error": "rms difference of learned and true couplings (train ..., truth = Model())",
    "exact_kl": "KL(empirical data distribution || model) in nats, by enumeration (small models)",
}
# (deep learners: 'reconstruction' is the held-out squared error per example of the up-down
# pass (dbn) or of the fine-tuned autoencoder, on the [0, 1] representation of the units)
# learner observables that need the marginal F(v): for a general Boltzmann machine (latent
# units) a sum over the latent units by enumeration
ENUMERATED_OBSERVABLES = ("log_likelihood", "exact_log_likelihood", "exact_kl")
# measured by a recall run, per scan point (means and standard errors over the patterns)
RECALL_OBSERVABLES = {
    "overlap": "m = (1/N) sum_i xi_i s_i after the dynamics",
    "overlap_initial": "m of the corrupted cue",
    "retrieved": "fraction of patterns retrieved (m > 0.9)",
    "energy_stored": "E(xi) / N of the stored patterns",
    "energy_final": "E(s) / N after the dynamics",
}
# the other columns of a recall row (besides the scan variables and lets)
RECALL_COLUMNS = {
    "alpha": "P / N: stored patterns per site",
    "sweeps": "sweeps run (fewer at T = 0 when a fixed point is reached)",
}


def declare(catalogue: Catalogue) -> None:
    """Declare the samplers, dynamics, training methods, observables and tasks of Boltzmann
    models."""
    catalogue.samplers.declare(
        "gibbs", GibbsSampleOptions,
        "Gibbs sampling of Boltzmann models: block updates of fields that do not interact with "
        "themselves, site by site otherwise", family=FAMILY, domains=DISCRETE)  # fmt: skip
    # the dynamics of 'recall ... via glauber(...)': a namespace of its own, apart from the
    # samplers of sample runs ('sampler glauber' stays the lattice heat-bath sampler)
    catalogue.updates.declare(
        "glauber", GibbsOptions,
        "Glauber dynamics of Hopfield recall: heat-bath updates at temperature T (T = 0: "
        "zero-temperature dynamics), site by site or all at once", family=FAMILY,
        domains=DISCRETE)  # fmt: skip

    objectives = catalogue.objectives
    objectives.declare("cd", CDOptions, "contrastive divergence: k Gibbs sweeps from the data",
                       task="train", family=FAMILY, domains=DISCRETE)  # fmt: skip
    objectives.declare("pcd", PCDOptions,
                       "persistent contrastive divergence (also Boltzmann learning)",
                       task="train", family=FAMILY, domains=DISCRETE)  # fmt: skip
    optimisers = catalogue.optimisers
    optimisers.declare("sgd", SGDOptions, "stochastic gradient descent with momentum",
                       family=FAMILY)  # fmt: skip
    optimisers.declare("adam", AdamOptions, "Adam", family=FAMILY)
    # learning-rate schedules are not tied to a model kind; Boltzmann training applies them
    schedules = catalogue.schedules
    schedules.declare("constant", ConstantOptions, "constant learning rate", kinds=(FAMILY,))
    schedules.declare("cosine", CosineOptions, "cosine decay over the epochs", kinds=(FAMILY,))
    schedules.declare("exponential", ExponentialOptions, "lr * gamma^epoch", kinds=(FAMILY,))
    schedules.declare("step", StepOptions, "lr * factor^(epoch // every)", kinds=(FAMILY,))

    catalogue.learners.declare(
        "dbn", DBNOptions, "deep belief network: a stack of RBMs trained greedily layer by "
        "layer (each by the train statement's cd/pcd on the hidden activations of the one "
        "below), samples by Gibbs in the top RBM and down-passes; visible units from the "
        "data's domain (binary, spin, potts(q): softmax units); layers = [n, m] is one RBM",
        family=FAMILY, domains=DISCRETE)  # fmt: skip
    catalogue.learners.declare(
        "autoencoder", AutoencoderOptions, "deep autoencoder from a pretrained DBN (Hinton & "
        "Salakhutdinov 2006): unrolled into encoder and decoder with tied initial weights, "
        "fine-tuned by backpropagation of the reconstruction error; compared with PCA at "
        "the same code size", family=FAMILY, domains=DISCRETE)  # fmt: skip
    for name, doc in {**GIBBS_OBSERVABLES, **LEARNER_OBSERVABLES, **DEEP_OBSERVABLES}.items():
        catalogue.observables.declare(name, doc=doc, family=FAMILY)

    tasks = catalogue.tasks
    tasks.declare("recall", RecallOptions, "Hopfield retrieval from corrupted cues",
                  kinds=("lattice", FAMILY),
                  columns=Columns(fixed=(*RECALL_COLUMNS, *RECALL_OBSERVABLES), lets=True,
                                  measures=False))  # fmt: skip
    tasks.declare("train", TrainOptions, "training energy-based learners (CD, PCD)",
                  kinds=(FAMILY,),
                  columns=Columns(fixed=("epochs", "loss"), lets=True, defaults=("loss",),
                                  expands=(("log_likelihood", ("log_likelihood", "log_z")),)))  # fmt: skip
    tasks.declare("sample",
                  doc="Gibbs sampling of Boltzmann models (RBMs, general Boltzmann machines)",
                  family=FAMILY, columns=Columns(lets=True, defaults=("energy",)))  # fmt: skip
