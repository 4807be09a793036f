"""Lattice gauge theory runtime: groups, observables, gauge transformations, exact 2D results,
samplers (Metropolis / heat-bath / HMC) and gauge-equivariant learners (L-CNN).

Conventions: site fields (B, L_1..L_d); link fields (B, L_1..L_d, d, *group_shape); U[b, x, mu]
is the link x -> x + e_mu; x + e_mu is ``torch.roll(f, -1, dims=1 + mu)``.
"""

from physml_lang.compiler.lower.gauge_transforms import (
    gauge_invariance_violation,
    gauge_transform,
    gauge_transform_adjoint,
    gauge_transform_sites,
    gauge_violations,
    random_gauge,
    translate,
)
from physml_lang.compiler.lower.groups import GROUPS, SU2, U1, Z2, GaugeGroup, get_group, wrap_angle
from physml_lang.compiler.lower.links import (
    mean_plaquette,
    planes,
    plaquette_field,
    plaquettes,
    polyakov_loops,
    staples,
    topological_charge,
    topological_charge_density,
    u1_plaquette_angles,
    wilson_action,
    wilson_loops,
)

from .local import LocalAction, LocalSampler, kind_colouring
from .sampling import (
    GaugeSampler,
    LinkSampler,
    cold_start,
    gauge_force,
    heatbath_sweep,
    hmc_trajectory,
    hot_start,
    link_colouring,
    make_sampler,
    metropolis_sweep,
    run_chains,
)

__all__ = [
    "GROUPS", "SU2", "U1", "Z2", "GaugeGroup", "get_group", "wrap_angle",
    "mean_plaquette", "planes", "plaquette_field", "plaquettes", "polyakov_loops", "staples",
    "topological_charge", "topological_charge_density", "u1_plaquette_angles", "wilson_action",
    "wilson_loops",
    "LocalAction", "LocalSampler", "kind_colouring",
    "GaugeSampler", "LinkSampler", "cold_start", "gauge_force", "heatbath_sweep", "hmc_trajectory",
    "hot_start", "link_colouring", "make_sampler", "metropolis_sweep", "run_chains",
    "gauge_invariance_violation", "gauge_transform", "gauge_transform_adjoint",
    "gauge_transform_sites", "gauge_violations", "random_gauge", "translate",
]  # fmt: skip
