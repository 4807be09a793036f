"""The optimise task of an Ising spin model: its energy read as E(s) = c - 1/2 s^T J s - h^T s
(s = +-1; checked on random configurations, a located P413 when it is not quadratic), then
simulated or population annealing of that form (``spin_annealing``), with the exact ground state
by enumeration beside it for N <= 20."""

from __future__ import annotations

import math

import numpy as np
import torch

from physml_lang.diagnostics import Diagnostic, PhysmlError

from ..plans.landscape import LandscapePlan
from ..random import RandomStreams
from .evolutions import Artefact
from .spin_annealing import anneal_spins, energies, exact_ground_state, population_anneal_spins

F64 = torch.float64
EXACT_SPINS = 20  # enumerate the ground state (2^N states) up to this size


def flip_deltas(cm, field: str, s: torch.Tensor) -> torch.Tensor:
    """E(s with site i flipped) - E(s) for every site i: (B, N), from the model's local
    energies (s: (B, *lattice.shape) of +-1)."""
    le = cm.fields[field].local_energy
    state = {field: s}
    return (le(state, -s) - le(state, s)).reshape(s.shape[0], -1)


def ising_form(cm, field: str, span, device) -> tuple[torch.Tensor, torch.Tensor, float]:
    """(J (N, N), h (N,), c) with E(s) = c - 1/2 s^T J s - h^T s, read off the flip energies of
    all-up and of all-up with one spin down: dE_i(up) = 2 (sum_j J_ij + h_i), and flipping j
    first changes it by -4 J_ij. Refused (P413) unless E matches the form on random spins."""
    shape = tuple(cm.lattice.shape)
    N = math.prod(shape)
    up = torch.ones(1, N, dtype=F64, device=device)
    one_down = up.repeat(N, 1) - 2 * torch.eye(N, dtype=F64, device=device)
    configs = torch.cat([up, one_down]).reshape(N + 1, *shape)
    d = flip_deltas(cm, field, configs)
    J = (d[0][:, None] - d[1:].T) / 4  # J[i, j] from the change of dE_i when j is down
    J.fill_diagonal_(0.0)
    J = (J + J.T) / 2
    h = d[0] / 2 - J.sum(1)
    c = float(cm.energy({field: configs[:1]})[0]) + 0.5 * float(J.sum()) + float(h.sum())
    g = torch.Generator(device="cpu").manual_seed(12345)
    s = torch.where(torch.rand(8, N, generator=g, dtype=F64, device="cpu") < 0.5, -1.0,
                    1.0).to(device, F64)  # fmt: skip
    want = cm.energy({field: s.reshape(8, *shape)}).to(F64)
    got = c + energies(s, J, h)
    scale = float(want.abs().max()) + float(J.abs().sum()) / 2 + 1.0
    if not torch.allclose(got, want, rtol=0, atol=1e-9 * scale):
        raise PhysmlError(Diagnostic(
            "P427", f"the annealers minimise Ising energies, quadratic in s = +-1; the energy of "
            f"model {cm.ir.name} is not (it differs from its quadratic form by "
            f"{float((got - want).abs().max()):.3g} on random spins)", span,
            "sample it instead: sampler metropolis(...) with a scan of T down to low "
            "temperature"))  # fmt: skip
    return J, h, c


def spin_rows(plan: LandscapePlan, cm, streams: RandomStreams, device):
    """One row: the lowest energy over the restarts (replicas or the population), per spin,
    against the exact ground state for N <= 20 (then ``success_rate`` counts the restarts
    that reached it)."""
    g, o = plan.optimise, plan.options
    J, h, c = ising_form(cm, plan.field, plan.method_span, device)
    N = J.shape[0]
    exact = None
    if N <= EXACT_SPINS:
        exact = exact_ground_state(J, h)[1] + c
    target = g.target if g.target is not None else exact
    if plan.method == "simulated_annealing":
        res = anneal_spins(J, h, streams=streams, replicas=g.restarts, sweeps=o.sweeps,
                           beta_initial=1 / o.T0, beta_final=1 / o.T_final,
                           schedule=o.schedule, order=o.order)  # fmt: skip
        finals = res.energies.double() + c
        sweeps, restarts = o.sweeps, g.restarts
    else:
        betas = torch.linspace(0.0, 1 / o.T_final, o.temperatures, dtype=F64, device="cpu")
        res = population_anneal_spins(J, h, streams=streams, population=o.population,
                                      betas=betas, sweeps_per_beta=o.sweeps)  # fmt: skip
        finals = res.energies.double() + c
        sweeps, restarts = o.temperatures * o.sweeps, o.population
    best = res.best_energy + c
    row = {"method": plan.method, "restarts": restarts, "best_f": best,
           "energy_per_spin": best / N, "median_f": float(finals.median()),
           "evaluations": float(sweeps * N * restarts), "sweeps": sweeps,
           "best_x": res.best_spins.cpu().tolist(), "exact": exact,
           "success_rate": None, "median_evaluations": None}  # fmt: skip
    if target is not None:
        ok = (finals - target).abs() < g.tol
        rate = float(ok.double().mean())
        row["success_rate"] = {"mean": rate, "stderr": math.sqrt(rate * (1 - rate) / len(ok))}
    if "log_z" in res.extras:
        row["log_z"] = float(np.asarray(res.extras["log_z"], dtype=float).reshape(-1)[-1])
    trace = [(int(s) * N * restarts, float(e) * N + c, float(b)) for s, e, b in res.trace]
    return [row], [Artefact("trace", plan.method, [trace])]


__all__ = ["flip_deltas", "ising_form", "spin_rows"]
