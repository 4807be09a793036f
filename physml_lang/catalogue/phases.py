"""Catalogue entries: recognising phases from configurations (``classify phases via ...``).

    learner cnn_net = classifier(channels = [8, 8]) respecting translation
    learner fc_net = classifier(hidden = [64])
    run phases {
        model Ising
        sampler metropolis(update = checkerboard, chains = 32, sweeps = 200, burn_in = 400)
        scan T in linspace(1.6, 3.2, 17)
        classify phases via supervised(epochs = 20), learners = [cnn_net, fc_net],
            sizes = [8, 12, 16], ordered_below = 2.0, disordered_above = 2.6
    }

Methods: ``supervised`` (Carrasquilla & Melko 2017: labels from the two training windows,
P(ordered | T) per size on every configuration not trained on, T_c(L) at P = 1/2 (a line
through logit P, or interpolated), T_c(L) = T_c + a L^(-1/nu) extrapolated with bootstrap
errors over chains; ``train_size``: convolutional learners trained once and read at every size;
``coarse_grain``: the classifiers read majority-rule block spins on a fixed grid, so that
P(T, L) is scale-invariant; ``finite_size``: the extrapolation, the crossings of successive
sizes' curves and their common crossing, or a data collapse; ``one_side``: a physics-blind
regression of T trained below T_c beside the pseudo-likelihood T; ``perturbed``: the trained
classifiers read a model with a changed parameter, accuracy and calibration there),
``pca`` (the first principal component of the configurations, |PC1| ~ |m|), ``confusion``
(learning by confusion, van Nieuwenburg et al. 2017: the W of accuracy against a proposed T_c).
The learner ``classifier`` is a convolutional net (``channels``: circular convolutions, global
average pooling; translation-equivariant by construction, declared ``respecting translation``)
or a fully connected one on the flattened lattice (``hidden`` only).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .columns import Columns
from .registry import Catalogue

FAMILY = "lattice"  # classifiers of configurations of classical lattice models
CLASSIFY_TASKS = {"supervised": "classify", "pca": "classify", "confusion": "classify"}
MAX_SIZE = 256  # the largest L of a size list


def _widths(v: list[int] | None, what: str) -> list[int] | None:
    if v is not None and (len(v) > 16 or any(not 1 <= w <= 4096 for w in v)):
        raise ValueError(f"{what}: at most 16 layers of 1 to 4096 units")
    return v


class ClassifierOptions(BaseModel):
    """``classifier(...)``: ``channels`` = [c1, c2, ...] makes it convolutional (circular
    ``kernel`` x ``kernel`` convolutions with ReLU, global average pooling, then a head of
    ``hidden`` units: translation-invariant, any lattice size); without channels it is fully
    connected on the flattened lattice (``hidden`` layers, ReLU)."""

    model_config = ConfigDict(extra="forbid")
    channels: list[int] | None = Field(None, description="convolution channels per layer "
                                       "(convolutional form)")  # fmt: skip
    hidden: list[int] | None = Field(None, description="hidden units of the fully connected "
                                     "layers (default [64]; after pooling for the convolutional "
                                     "form, default [16])")  # fmt: skip
    kernel: int = Field(3, ge=1, le=15, description="odd kernel size of the convolutions")

    @field_validator("channels")
    @classmethod
    def _channels(cls, v: list[int] | None) -> list[int] | None:
        if v is not None and not v:
            raise ValueError("channels: give at least one layer, or leave it out for a fully "
                             "connected classifier")  # fmt: skip
        return _widths(v, "channels")

    @field_validator("hidden")
    @classmethod
    def _hidden(cls, v: list[int] | None) -> list[int] | None:
        return _widths(v, "hidden")

    @field_validator("kernel")
    @classmethod
    def _kernel(cls, v: int) -> int:
        if v % 2 == 0:
            raise ValueError("kernel must be odd")
        return v

    @property
    def convolutional(self) -> bool:
        return self.channels is not None


class SupervisedOptions(BaseModel):
    """``supervised(...)``: train each learner to tell the ordered window from the disordered
    one (binary cross-entropy, Adam); P(ordered | T) is its mean output at every T."""

    model_config = ConfigDict(extra="forbid")
    epochs: int = Field(20, ge=1, le=100_000)
    lr: float = Field(1e-3, gt=0, le=10, description="Adam learning rate")
    batch: int = Field(128, ge=1, le=1 << 20)
    weight_decay: float = Field(0.0, ge=0, le=1)


class PCAOptions(BaseModel):
    """``pca(...)``: principal components of the configurations of every T at once."""

    model_config = ConfigDict(extra="forbid")
    components: int = Field(2, ge=1, le=64, description="components reported")


class ConfusionOptions(BaseModel):
    """``confusion(...)``: for each proposed T_c between scan temperatures, train the first
    learner to label T < T_c against T > T_c and record its held-out accuracy (a W whose
    middle peak is the transition) and balanced accuracy (one peak: a configuration-blind
    guess scores 1/2), whose top gives T_c."""

    model_config = ConfigDict(extra="forbid")
    epochs: int = Field(8, ge=1, le=100_000)
    lr: float = Field(1e-3, gt=0, le=10)
    batch: int = Field(128, ge=1, le=1 << 20)
    proposals: int = Field(0, ge=0, le=1000, description="proposed T_c (0: every midpoint "
                           "between neighbouring scan temperatures)")  # fmt: skip


class ClassifyOptions(BaseModel):
    """The named options of a classify statement."""

    model_config = ConfigDict(extra="forbid")
    sizes: list[int] | None = Field(None, description="lattice sizes L (the model's L "
                                    "re-instantiated); default: the model's own L")  # fmt: skip
    ordered_below: float | None = Field(None, description="training window: T below is "
                                        "ordered (default: the lowest quarter of the scan)")  # fmt: skip
    disordered_above: float | None = Field(None, description="training window: T above is "
                                           "disordered (default: the highest quarter)")  # fmt: skip
    test_fraction: float = Field(0.25, gt=0, lt=1, description="chains held out of training "
                                 "(accuracy, calibration); P(T) reads every configuration not "
                                 "trained on")  # fmt: skip
    crossing_fit: Literal["logistic", "linear"] = Field(
        "logistic", description="T_c(L) where P = 1/2: a weighted line through logit P(T) over "
        "0.1 < P < 0.9 (logistic), or interpolated between two temperatures (linear)")
    train_size: int | None = Field(None, ge=2, le=MAX_SIZE, description="convolutional "
                                   "learners are trained once, on configurations of this L, and "
                                   "read every size (one size-agnostic function across the "
                                   "finite-size analysis); fully connected ones are trained per "
                                   "size. Default: every learner trained per size")  # fmt: skip
    ensemble: int = Field(1, ge=1, le=64, description="independently initialised classifiers "
                          "per learner and size, P(T) averaged over them")  # fmt: skip
    controls: bool = Field(True, description="shuffled labels and magnetisation alone, trained "
                           "with the same recipe")  # fmt: skip
    noise: float = Field(0.0, ge=0, lt=0.5, description="sim-to-reality: test on configurations "
                         "with each spin flipped with this probability (0: off)")  # fmt: skip
    one_side: bool = Field(False, description="a physics-blind control: a dense net "
                           "regressing T from the configuration, trained only on T < T_c "
                           "(``exact``, else below the ordered window's edge) and scored on "
                           "both sides, beside a physics-aware estimate of T (the model's "
                           "energy, maximum pseudo-likelihood) that has nothing "
                           "to fit")  # fmt: skip
    perturbed: str | None = Field(None, description="sim-to-reality: a parameter of the model "
                                  "(e.g. J) set to ``perturbed_value`` for configurations the "
                                  "trained classifiers read without retraining, at the largest "
                                  "size")  # fmt: skip
    perturbed_value: float | None = Field(None, description="the perturbed model's value of "
                                          "``perturbed``")  # fmt: skip
    perturbed_exact: float | None = Field(None, gt=0, description="the perturbed model's "
                                          "known T_c (J' = 1.05 J: 1.05 x 2.269185): labels "
                                          "the true phase at every T for accuracy and "
                                          "calibration")  # fmt: skip
    coarse_grain: int | None = Field(None, ge=1, le=MAX_SIZE, description="classifiers read "
                                     "majority-rule block spins on a fixed grid of this many "
                                     "blocks per side (every size divisible by it; one site "
                                     "per cell): a renormalisation step that makes P(T, L) a "
                                     "scale-invariant function, so the curves of successive "
                                     "sizes cross at T_c (finite_size = crossing)")  # fmt: skip
    finite_size: Literal["extrapolate", "crossing", "collapse", "all"] = Field(
        "extrapolate", description="the finite-size analysis of the supervised sizes: "
        "extrapolate T_c(L) = T_c + a L^(-1/nu) (rows kind = extrapolated), the crossings of "
        "successive sizes' P(T) curves and their common crossing, the estimate of T_c "
        "(kind = crossing), a data collapse P(T, L) = f(L^(1/nu) (T - T_c) / T_c) with T_c and "
        "nu fitted (kind = collapse), or all three; the common crossing and the collapse leave "
        "out the smallest size when there are >= 4; errors from a bootstrap over chains")
    nu: float = Field(1.0, gt=0, le=10, description="the correlation-length exponent of the "
                      "fixed-nu extrapolation (2D Ising: 1); a fitted-nu row is added with >= 4 "
                      "sizes")  # fmt: skip
    bootstrap: int = Field(200, ge=0, le=100_000, description="bootstrap resamples of the "
                           "chains for the error bars (0: none)")  # fmt: skip
    exact: float | None = Field(None, gt=0, description="the known T_c, reported beside the "
                                "estimates (relative deviation)")  # fmt: skip
    transfer: list[str] | None = Field(None, description="other models (imported or "
                                       "declared) the trained learners are applied to")  # fmt: skip
    transfer_T: list[list[float]] | None = Field(None, description="[T_low, T_high] scanned for "
                                                 "each transfer model (as many points as the "
                                                 "scan)")  # fmt: skip
    transfer_exact: list[float] | None = Field(None, description="known T_c of each transfer "
                                               "model")  # fmt: skip

    @model_validator(mode="after")
    def _perturbed(self) -> ClassifyOptions:
        if (self.perturbed is None) != (self.perturbed_value is None):
            raise ValueError("perturbed and perturbed_value come together: perturbed = J, "
                             "perturbed_value = 1.05")  # fmt: skip
        if self.perturbed_exact is not None and self.perturbed is None:
            raise ValueError("perturbed_exact needs perturbed = PARAMETER, perturbed_value = v")
        return self

    @field_validator("sizes")
    @classmethod
    def _sizes(cls, v: list[int] | None) -> list[int] | None:
        if v is not None:
            if not v or any(not 2 <= n <= MAX_SIZE for n in v) or len(set(v)) != len(v):
                raise ValueError(f"sizes: distinct lattice sizes between 2 and {MAX_SIZE}")
            return sorted(v)
        return v

    @field_validator("transfer_T")
    @classmethod
    def _ranges(cls, v: list[list[float]] | None) -> list[list[float]] | None:
        if v is not None and any(len(r) != 2 or not 0 < r[0] < r[1] for r in v):
            raise ValueError("transfer_T: one [T_low, T_high] with 0 < T_low < T_high per "
                             "transfer model")  # fmt: skip
        return v

    @model_validator(mode="after")
    def _windows(self) -> ClassifyOptions:
        a, b = self.ordered_below, self.disordered_above
        if a is not None and b is not None and not a < b:
            raise ValueError("ordered_below must lie below disordered_above")
        n = len(self.transfer or [])
        if self.transfer_T is not None and len(self.transfer_T) != n:
            raise ValueError("transfer_T: one range per transfer model")
        if self.transfer_exact is not None and len(self.transfer_exact) != n:
            raise ValueError("transfer_exact: one T_c per transfer model")
        return self


METHOD_SCHEMAS: dict[str, type[BaseModel]] = {
    "supervised": SupervisedOptions, "pca": PCAOptions, "confusion": ConfusionOptions}
CLASSIFY_COLUMNS = ("kind", "method", "learner", "L")
CLASSIFY_OPTIONAL = ("T_c", "T_c_err", "accuracy", "exact", "deviation", "nu", "nu_err",
                     "fit", "sizes", "model", "retrained", "noise", "accuracy_clean", "ece",
                     "ece_scaled", "scale", "confidence", "accuracy_ordered",
                     "accuracy_disordered", "confidence_disordered", "explained",
                     "peak_accuracy", "balanced_accuracy", "crossing")  # fmt: skip


def declare(catalogue: Catalogue) -> None:
    """Declare the classifiers, methods and the classify task."""
    catalogue.learners.declare(
        "classifier", ClassifierOptions, "phase classifier of lattice configurations: "
        "convolutional (channels = [...]: circular convolutions and global average pooling, "
        "translation-invariant, any size; respecting translation) or fully connected on the "
        "flattened lattice (hidden = [...])", family=FAMILY, domains=("spin",),
        symmetries=("translation",))  # fmt: skip
    docs = {
        "supervised": "supervised phase classification (Carrasquilla & Melko 2017): P(ordered "
        "| T) per size, T_c(L) at P = 1/2, finite-size extrapolation, controls",
        "pca": "principal component analysis of the configurations: PC1 against T, its "
        "explained variance, T_c from the peak of its fluctuations",
        "confusion": "learning by confusion (van Nieuwenburg et al. 2017): held-out accuracy "
        "against a proposed T_c (the W) and the peak of the balanced accuracy",
    }
    for name, schema in METHOD_SCHEMAS.items():
        catalogue.analyses.declare(name, schema, docs[name], family=FAMILY, task="classify")
    catalogue.tasks.declare(
        "classify", ClassifyOptions, "recognise phases from sampled configurations: "
        + "; ".join(f"{k}: {v}" for k, v in docs.items()),
        kinds=(FAMILY,), columns=Columns(fixed=CLASSIFY_COLUMNS, optional=CLASSIFY_OPTIONAL,
                                         scans=False, measures=False))  # fmt: skip


__all__ = ["CLASSIFY_TASKS", "ClassifierOptions", "ClassifyOptions", "ConfusionOptions",
           "FAMILY", "METHOD_SCHEMAS", "PCAOptions", "SupervisedOptions", "declare"]
