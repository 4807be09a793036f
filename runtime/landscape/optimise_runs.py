"""The optimise task's unit: ``restarts`` independent runs of MQHOA, simulated annealing or
population annealing on the model's potential over its box (batched), summarised in one row."""

from __future__ import annotations

import math

import numpy as np
import torch

from ..plans.landscape import LandscapePlan
from ..random import RandomStreams
from .annealing import population_annealing, simulated_annealing
from .evolutions import Artefact
from .mqhoa import mqhoa_runs
from .optimisers import OptimiseResult

F64 = torch.float64


def _mqhoa(f, lower, upper, streams, o, budget: dict) -> list[OptimiseResult]:
    return mqhoa_runs(f, lower, upper, streams, k=o.k, sigma_min=o.sigma_min,
                      sigma_initial=o.sigma0, **budget)  # fmt: skip


def _annealing(f, lower, upper, streams, o, budget: dict) -> list[OptimiseResult]:
    return simulated_annealing(f, lower, upper, streams, T0=o.T0, schedule=o.schedule,
                               final_temperature_ratio=o.final_temperature_ratio,
                               chains=o.chains, **budget)  # fmt: skip


def _population(f, lower, upper, streams, o, budget: dict) -> list[OptimiseResult]:
    return population_annealing(f, lower, upper, streams, population=o.population,
                                sweeps_per_beta=o.sweeps, **budget)  # fmt: skip


OPTIMISERS = {"mqhoa": _mqhoa, "simulated_annealing": _annealing,
              "population_annealing": _population}  # fmt: skip


def optimise_rows(plan: LandscapePlan, cm, streams: RandomStreams, device):
    """One row: the best value over the restarts, the median, the success rate (with its
    binomial standard error) and the median evaluations to success where a target is given."""
    g = plan.optimise
    assert g is not None
    lower = torch.full((cm.n,), cm.lower, dtype=F64, device=device)
    upper = torch.full((cm.n,), cm.upper, dtype=F64, device=device)
    budget = {"runs": g.restarts, "max_evaluations": g.evaluations, "f_target": g.target,
              "tol": g.tol}  # fmt: skip
    results = OPTIMISERS[plan.method](cm.potential, lower, upper, streams, plan.options, budget)
    fs = np.array([r.best_f for r in results])
    best = int(np.argmin(fs))
    row = {"method": plan.method, "restarts": g.restarts, "best_f": float(fs[best]),
           "median_f": float(np.median(fs)),
           "evaluations": float(np.mean([r.evaluations for r in results])),
           "best_x": results[best].best_x.detach().cpu().tolist(),
           "success_rate": None, "median_evaluations": None}  # fmt: skip
    if g.target is not None:
        ok = np.array([r.success for r in results], dtype=float)
        rate = float(ok.mean())
        row["success_rate"] = {"mean": rate,
                               "stderr": math.sqrt(rate * (1 - rate) / len(ok))}  # fmt: skip
        hits = [r.evaluations_to_target for r in results if r.success]
        row["median_evaluations"] = float(np.median(hits)) if hits else None
    if plan.method == "population_annealing":
        log_z = results[best].extras.get("log_z")
        if log_z is not None:
            row["log_z"] = float(np.asarray(log_z, dtype=float).reshape(-1)[-1])
    traces = [r.trace for r in results]
    return [row], [Artefact("trace", plan.method, traces)]


__all__ = ["OPTIMISERS", "optimise_rows"]
