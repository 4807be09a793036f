"""Catalogue entries: learned quantum dynamics (``train U via propagation(...)``: a recurrent
network trained on the real-time Schrodinger evolution of a landscape model)::

    learner U = rnn(unitary = true)
    learner plain = rnn(hidden = 128)
    run learn {
        model Oscillator
        train U, plain via propagation(steps = 2000, lr = 1e-2, dt = 0.05, horizon = 40)
    }

The model is a one-dimensional landscape model with a box (``coordinates x: real in [-8, 8]``,
``potential V = ...``); H = -D d^2/dx^2 + V on ``points`` cell-centred grid points (spectral
kinetic energy on the periodic box, as ``evolve real_time``). The exact propagator
exp(-i H t) = W exp(-i E t) W^T comes from the eigenvectors W of the grid H. Training data:
Gaussian packets with random centres, widths and momenta, evolved exactly; each learner is a
recurrent cell psi_t -> psi_(t + dt), trained by backpropagation through ``unroll`` steps, then
rolled out from held-out packets to ``horizon`` and compared with the exact evolution.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .columns import Columns
from .registry import Catalogue

FAMILY = "landscape"
TASK = "learn_propagation"
MAX_POINTS = 512  # grid points of the dense H (its eigendecomposition, the unitary cell's G x G)


class RNNOptions(BaseModel):
    """Options of ``rnn`` (family landscape): a recurrent cell psi_t -> psi_(t + dt) on the grid.
    ``unitary = true``: psi' = exp(-i Theta) psi with a learned Hermitian G x G generator Theta
    (= dt H_learned), norm-preserving by construction. ``unitary = false``: a residual cell on
    x = (Re psi, Im psi), x' = x + L x + W2 act(W1 x + b1) + b2, with ``hidden`` units."""

    model_config = ConfigDict(extra="forbid")
    hidden: int = Field(128, ge=1, le=65536, description="units of the plain cell's nonlinear "
                        "layer (the unitary cell's generator is G x G; hidden is unused)")  # fmt: skip
    unitary: bool = Field(False, description="exp(-i Theta) with Theta Hermitian: |psi| kept")
    activation: Literal["tanh", "softplus", "sigmoid", "gelu"] = "tanh"


class PropagationOptions(BaseModel):
    """Options of ``train ... via propagation(...)``."""

    model_config = ConfigDict(extra="forbid")
    steps: int = Field(2000, ge=1, le=10_000_000, description="Adam steps (full batch)")
    lr: float = Field(1e-3, gt=0, le=1.0, description="initial learning rate (cosine decay to "
                      "lr / 1000)")  # fmt: skip
    dt: float = Field(0.05, gt=0, description="time step of one recurrent step")
    horizon: float = Field(40.0, gt=0, description="duration of the held-out rollouts")
    packets: int = Field(64, ge=1, le=1_000_000, description="training sequences (packets)")
    unroll: int = Field(10, ge=1, le=10_000, description="recurrent steps per training sequence "
                        "(backpropagation through time)")  # fmt: skip
    test: int = Field(16, ge=1, le=100_000, description="held-out packets")
    points: int = Field(64, ge=8, le=MAX_POINTS, description="grid points")
    D: float = Field(0.5, gt=0, le=1e6, description="H = -D d^2/dx^2 + V (D = 1/2: mass 1)")
    width: list[float] = Field(default_factory=lambda: [0.5, 1.5], min_length=2, max_length=2,
                               description="range of the packets' widths sigma (|psi|^2 has "
                               "standard deviation sigma)")  # fmt: skip
    momentum: float = Field(2.0, ge=0, description="packets' mean momenta uniform in "
                            "[-momentum, momentum]")  # fmt: skip
    spread: float = Field(0.5, gt=0, le=1, description="packets' centres uniform in the middle "
                          "spread of the box")  # fmt: skip
    start: float | None = Field(None, ge=0, description="training sequences start at a time "
                                "uniform in [0, start] of each packet's exact evolution "
                                "(default: the horizon)")  # fmt: skip

    @model_validator(mode="after")
    def _ranges(self) -> PropagationOptions:
        lo, hi = self.width
        if not 0 < lo <= hi:
            raise ValueError("width = [lo, hi] needs 0 < lo <= hi")
        if self.horizon < self.dt:
            raise ValueError("horizon must be at least one step dt")
        if self.horizon / self.dt > 10_000_000:
            raise ValueError("horizon / dt: at most 10^7 rollout steps")
        return self


# one row per learner
PROPAGATION_COLUMNS = ("learner", "kind", "unitary", "parameters", "train_loss", "fidelity",
                       "min_fidelity", "norm_drift", "one_step_error", "diverged", "horizon", "steps",
                       "dt", "points", "train_s")  # fmt: skip


def declare(catalogue: Catalogue) -> None:
    """Declare the propagation learners, objective and task."""
    catalogue.learners.declare(
        "rnn", RNNOptions, "recurrent cell psi_t -> psi_(t + dt) of a wavefunction on the grid "
        "of a 1D landscape model (unitary = true: exp(-i Theta), Theta Hermitian)",
        family=FAMILY)  # fmt: skip
    catalogue.objectives.declare(
        "propagation", PropagationOptions, "MSE of the learned recurrent steps against the exact "
        "real-time Schrodinger evolution of Gaussian packets (backpropagation through time)",
        task=TASK, family=FAMILY)  # fmt: skip
    catalogue.tasks.declare(
        TASK, PropagationOptions, "train recurrent networks on real-time Schrodinger evolution "
        "and compare them with the exact propagator on held-out packets", kinds=(FAMILY,),
        columns=Columns(fixed=PROPAGATION_COLUMNS, scans=False, measures=False))  # fmt: skip


__all__ = ["FAMILY", "MAX_POINTS", "PROPAGATION_COLUMNS", "PropagationOptions", "RNNOptions",
           "TASK", "declare"]
