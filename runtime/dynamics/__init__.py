"""Hamiltonian dynamics: integrators, samplers for continuous fields, learned dynamics.

Registries (name -> (pydantic options schema, factory)): ``INTEGRATORS``, ``SAMPLERS``,
``LEARNERS``; builders ``make_integrator``, ``make_sampler``, ``make_learner``.
"""

from .data import DynamicsData, make_dataset, simulate, standard_system
from .integrators import (
    INTEGRATORS,
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
    LEARNERS,
    MLPVectorField,
    SympNet,
    make_learner,
    rollout,
    train_map,
    train_vector_field,
)
from .samplers import (
    SAMPLERS,
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
    "HNN", "INTEGRATORS", "LEARNERS", "SAMPLERS", "ConvergenceError", "DynamicsData",
    "EnergyBlowupError", "HamiltonianSystem", "Integrator", "IntegratorError", "MLPVectorField",
    "NotSeparableError", "Phi4Action", "SamplerResult", "SympNet", "Trajectory", "XYAction",
    "as_system", "autograd_grad", "autograd_system", "evolve", "hmc", "langevin", "make_dataset",
    "make_integrator", "make_learner", "make_sampler", "nbody_gravity", "rollout", "simulate",
    "standard_system", "train_map", "train_vector_field",
]
