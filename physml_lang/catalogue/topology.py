"""Catalogue entries: learning topological invariants of band Hamiltonians (``invariant``) and
locating impurities in simulated microscope images (``locate``).

    learner cnn_net = classifier(channels = [16, 16]) respecting translation
    learner fc_net = classifier(hidden = [128])
    run winding  { invariant winding(train = [-1, 0, 1], test = [-3, -2, 2, 3]), learners = [cnn_net, fc_net] }
    run defects  { locate impurities(size = 24, noise = 0.3), learners = [cnn_net, fc_net] }

These runs need no model (a model-free run's model is an empty ``table``). ``classifier`` of
the table family: ``respecting translation``, a convolutional net (circular padding) whose
output is summed over the grid (invariants: an extensive sum of local contributions) or kept as
a map (impurities: a logit per pixel); otherwise a fully connected net on the flattened input.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .columns import Columns
from .registry import Catalogue

FAMILY = "table"
INVARIANT_TASKS = {"winding": "topology", "chern": "topology"}
LOCATE_TASKS = {"impurities": "images"}
MAX_INVARIANT = 8  # the largest |winding| or |Chern number| a data set may ask for


class ClassifierOptions(BaseModel):
    """``classifier(...)`` of the table family: ``channels`` of a convolutional net (with
    ``respecting translation``) or ``hidden`` widths of a fully connected one."""

    model_config = ConfigDict(extra="forbid")
    channels: list[int] = Field(default_factory=lambda: [16, 16], description="channels of the "
                                "convolutions (respecting translation)")  # fmt: skip
    hidden: list[int] = Field(default_factory=lambda: [128], description="widths of the hidden "
                              "layers of the fully connected net")  # fmt: skip
    kernel: int = Field(3, ge=1, le=15, description="convolution kernel size (odd: centred "
                        "on its site; even: the window from the site on, 2 = one plaquette)")
    pointwise: bool = Field(False, description="convolutions after the first are 1 x 1 (the "
                            "net is a local function of one kernel window, summed)")
    order: int = Field(1, ge=1, le=4, description="the first convolution's features are "
                       "products of this many linear maps of its window (1: linear + "
                       "activation; 3: cubic, the lowest order of an oriented solid angle)")

    @field_validator("channels", "hidden")
    @classmethod
    def _widths(cls, v: list[int]) -> list[int]:
        if not v or any(not 1 <= w <= 4096 for w in v):
            raise ValueError("layer widths are between 1 and 4096, at least one layer")
        return v


class TrainingOptions(BaseModel):
    """Options shared by the learning tasks of this family."""

    model_config = ConfigDict(extra="forbid")
    epochs: int = Field(30, ge=1, le=100_000, description="passes over the training set")
    batch: int = Field(64, ge=1, le=1 << 20, description="minibatch size")
    lr: float = Field(3e-3, gt=0, le=10, description="Adam learning rate (cosine schedule)")
    tests: int = Field(250, ge=1, le=1 << 20, description="test samples per class or condition")


def _distinct(v: list[int], what: str) -> list[int]:
    if len(set(v)) != len(v):
        raise ValueError(f"{what}: values repeat")
    if any(abs(w) > MAX_INVARIANT for w in v):
        raise ValueError(f"{what}: invariants between -{MAX_INVARIANT} and {MAX_INVARIANT}")
    return sorted(v)


class WindingOptions(TrainingOptions):
    """``invariant winding(...)``: 1D chiral (AIII) h(k) = d_x sigma_x + d_y sigma_y with
    random Fourier d(k) up to ``harmonics``, sampled at ``k_points``; labels: exact windings."""

    train: list[int] = Field(default_factory=lambda: [-1, 0, 1], description="winding "
                             "numbers of the training set")  # fmt: skip
    test: list[int] = Field(default_factory=lambda: [-3, -2, 2, 3], description="winding "
                            "numbers of the test set (beyond the training range)")  # fmt: skip
    samples: int = Field(1000, ge=1, le=1 << 20, description="training models per class")
    k_points: int = Field(64, ge=4, le=4096, description="k-grid points (input length)")
    harmonics: int = Field(4, ge=1, le=32, description="highest Fourier harmonic of d(k)")
    disorder: float = Field(1.0, ge=0, le=10, description="total modulus of the non-dominant "
                            "Fourier terms, times a uniform draw (below 1: winding = the "
                            "dominant harmonic)")  # fmt: skip

    @field_validator("train", "test")
    @classmethod
    def _sets(cls, v: list[int], info) -> list[int]:
        return _distinct(v, info.field_name)


class ChernOptions(TrainingOptions):
    """``invariant chern(...)``: 2D two-band h(k) = d(k) . sigma on a points x points
    Brillouin zone (rotated, shifted, Fourier-perturbed Qi-Wu-Zhang models and a family with
    harmonics up to 2), resolved by the grid; labels: the Fukui-Hatsugai-Suzuki Chern number of
    the lower band. Training augmented by the symmetries of the torus and of d-space."""

    train: list[int] = Field(default_factory=lambda: [-1, 0, 1])
    test: list[int] = Field(default_factory=lambda: [-2, 2])
    samples: int = Field(600, ge=1, le=1 << 20, description="training models per class")
    points: int = Field(16, ge=4, le=256, description="k-grid points per axis")
    perturbation: float = Field(0.3, ge=0, le=10, description="amplitude of the random "
                                "Fourier terms added to d(k)")  # fmt: skip

    @field_validator("train", "test")
    @classmethod
    def _sets(cls, v: list[int], info) -> list[int]:
        return _distinct(v, info.field_name)


class ImpurityOptions(TrainingOptions):
    """``locate impurities(...)``: size x size images of atoms on a square lattice (spacing
    pixels, Gaussian blobs of width psf), one impurity, Gaussian noise; tested on the training
    distribution, on shifted lattices, on noisier images and on images of another size."""

    size: int = Field(24, ge=4, le=512, description="image side (pixels), a multiple of "
                      "spacing")  # fmt: skip
    spacing: int = Field(3, ge=2, le=64, description="lattice spacing (pixels)")
    psf: float = Field(0.8, gt=0, le=64, description="point-spread width (pixels)")
    noise: float = Field(0.3, ge=0, le=100, description="pixel noise (standard deviation; "
                         "an atom's peak is 1)")  # fmt: skip
    jitter: float = Field(0.1, ge=0, lt=1, description="atoms' brightness spread (+-)")
    impurity: str = Field("missing", description="missing (a vacancy) or bright (twice as "
                          "bright)")  # fmt: skip
    samples: int = Field(4000, ge=1, le=1 << 20, description="training images")
    test_noise: float = Field(0.45, ge=0, le=100, description="pixel noise of the noisy test")
    test_size: int = Field(30, ge=4, le=512, description="image side of the other-size test")
    epochs: int = Field(20, ge=1, le=100_000)
    tests: int = Field(1000, ge=1, le=1 << 20, description="test images per condition")

    @field_validator("impurity")
    @classmethod
    def _kind(cls, v: str) -> str:
        if str(v) not in ("missing", "bright"):
            raise ValueError("impurity is missing or bright")
        return str(v)

    @model_validator(mode="after")
    def _lattice_fits(self) -> ImpurityOptions:
        for name in ("size", "test_size"):
            if getattr(self, name) % self.spacing:
                raise ValueError(f"{name} = {getattr(self, name)} is not a multiple of spacing "
                                 f"= {self.spacing} (the lattice fills the image)")
        return self


INVARIANT_SCHEMAS: dict[str, type[BaseModel]] = {"winding": WindingOptions,
                                                 "chern": ChernOptions}  # fmt: skip
TOPOLOGY_COLUMNS = ("invariant", "learner", "architecture", "split", "label", "samples",
                    "accuracy", "mean_abs_error")  # fmt: skip
IMAGE_COLUMNS = ("learner", "architecture", "condition", "size", "noise", "samples", "accuracy",
                 "confidence", "ece")  # fmt: skip


def declare(catalogue: Catalogue) -> None:
    """Declare the table classifier and the invariant and image tasks."""
    catalogue.learners.declare(
        "classifier", ClassifierOptions, "a classifier of tabulated inputs (functions on a "
        "k-grid, images): a convolutional net (respecting translation: circular convolutions, "
        "sum pooling or a logit map) or a fully connected net", family=FAMILY,
        symmetries=("translation",))  # fmt: skip
    docs = {"winding": "the winding number of 1D chiral (AIII) two-band h(k) on a k-grid, "
            "labels exact; tested on windings beyond the training range",
            "chern": "the Chern number of 2D two-band h(k) (Fukui-Hatsugai-Suzuki labels); "
            "tested on Chern numbers beyond the training range",
            "impurities": "an impurity located in simulated noisy microscope images; tested on "
            "shifted, noisier and other-size images"}  # fmt: skip
    for name, schema in (*INVARIANT_SCHEMAS.items(), ("impurities", ImpurityOptions)):
        task = INVARIANT_TASKS.get(name) or LOCATE_TASKS[name]
        catalogue.analyses.declare(name, schema, docs[name], family=FAMILY, task=task)
    tasks, kinds = catalogue.tasks, (FAMILY,)
    tasks.declare("topology", WindingOptions, "learn a winding or Chern number from h(k) on a "
                  "grid; test on invariants beyond the training range", kinds=kinds,
                  columns=Columns(fixed=TOPOLOGY_COLUMNS))  # fmt: skip
    tasks.declare("images", ImpurityOptions, "locate an impurity in simulated microscope "
                  "images; test on shifted, noisier and other-size images", kinds=kinds,
                  columns=Columns(fixed=IMAGE_COLUMNS))  # fmt: skip


__all__ = ["ChernOptions", "ClassifierOptions", "FAMILY", "IMAGE_COLUMNS", "INVARIANT_SCHEMAS",
           "INVARIANT_TASKS", "ImpurityOptions", "LOCATE_TASKS", "TOPOLOGY_COLUMNS",
           "TrainingOptions", "WindingOptions", "declare"]
