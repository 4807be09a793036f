"""Hamiltonian dynamics: integrators, samplers for continuous fields, learned dynamics.

Integrators, samplers, learners, objectives and observables are catalogue entries
(``physml_lang/catalogue/dynamics.py``: names, options schemas, static facts); ``tasks.bind``
attaches their implementations. Builders by name (the catalogue bound first, e.g. by
``physml_lang.api.bind_runtime``): ``make_integrator``, ``make_sampler``, ``make_learner``.
"""

from .data import DynamicsData, make_dataset, simulate, standard_system
from .integrators import (
    ConvergenceError,
    EnergyBlowupError,
    Integrator,
    IntegratorError,
    NotSeparableError,
    Trajectory,
    evolve,
    make_integrator,
)
from .learners import (
    HNN,
    MLPVectorField,
    SympNet,
    make_learner,
    rollout,
    train_map,
    train_vector_field,
)
from .samplers import (
    Phi4Action,
    SamplerResult,
    XYAction,
    autograd_grad,
    hmc,
    langevin,
    make_sampler,
)
from .system import HamiltonianSystem, as_system, autograd_system, nbody_gravity

__all__ = [
    "HNN", "ConvergenceError", "DynamicsData", "EnergyBlowupError", "HamiltonianSystem",
    "Integrator", "IntegratorError", "MLPVectorField", "NotSeparableError", "Phi4Action",
    "SamplerResult", "SympNet", "Trajectory", "XYAction", "as_system", "autograd_grad",
    "autograd_system", "evolve", "hmc", "langevin", "make_dataset", "make_integrator",
    "make_learner", "make_sampler", "nbody_gravity", "rollout", "simulate", "standard_system",
    "train_map", "train_vector_field",
]  # fmt: skip
