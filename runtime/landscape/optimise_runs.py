"""The optimise task's unit: ``restarts`` independent runs of MQHOA, simulated annealing,
population annealing or active learning (``gaussian_process``, ``ensemble``) on the model's
potential over its box (batched), summarised in one row. ``noise = s`` adds N(0, s^2) to every
evaluation; an experiment (a Python callable or a command, never named in the file) replaces
the potential of the active learners."""

from __future__ import annotations

import math

import numpy as np
import torch

from physml_lang.catalogue.landscape import ACTIVE_METHODS
from physml_lang.compiler.models import compile_model
from physml_lang.diagnostics import Diagnostic, PhysmlError

from ..plans.landscape import LandscapePlan
from ..random import RandomStreams
from .active import ActiveSettings, active_learning
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


def _settings(surrogate: str, o) -> ActiveSettings:
    names = ActiveSettings.__dataclass_fields__
    return ActiveSettings(surrogate=surrogate,
                          **{k: v for k, v in o.model_dump().items() if k in names})  # fmt: skip


def _gaussian_process(f, lower, upper, streams, o, budget: dict, **active) -> list[OptimiseResult]:
    return active_learning(f, lower, upper, streams, settings=_settings("gaussian_process", o),
                           runs=budget["runs"], max_evaluations=budget["max_evaluations"],
                           f_target=budget["f_target"], tol=budget["tol"], **active)  # fmt: skip


def _ensemble(f, lower, upper, streams, o, budget: dict, **active) -> list[OptimiseResult]:
    return active_learning(f, lower, upper, streams, settings=_settings("ensemble", o),
                           runs=budget["runs"], max_evaluations=budget["max_evaluations"],
                           f_target=budget["f_target"], tol=budget["tol"], **active)  # fmt: skip


OPTIMISERS = {"mqhoa": _mqhoa, "simulated_annealing": _annealing,
              "population_annealing": _population, "gaussian_process": _gaussian_process,
              "ensemble": _ensemble}  # fmt: skip


def _noisy(f, noise: float, streams: RandomStreams):
    """f plus N(0, noise^2) per evaluated point (the annealers judge success on what they see)."""
    def noisy(x: torch.Tensor) -> torch.Tensor:
        v = f(x)
        return v + noise * streams.normal((x.shape[0],), v.dtype).to(v.device)

    return noisy


def active_memory_need(plan: LandscapePlan) -> int:
    """Bytes of the active learners' largest temporaries (float64): kernel matrices of the
    guesses, and candidates against measured points."""
    o, g, n = plan.options, plan.optimise, max(plan.size, 1)
    N = g.evaluations
    per_run = max(getattr(o, "guesses", 1), 1) * N * N * 3 + o.candidates * (N + 2 * n)
    if plan.method == "ensemble":
        width = max(o.hidden)
        per_run += o.members * (o.candidates + N) * width * 4
    return 8 * g.restarts * per_run


def optimise_rows(plan: LandscapePlan, cm, streams: RandomStreams, device, experiment=None):
    """One row: the best value over the restarts, the median, the success rate (with its
    binomial standard error) and the median evaluations to success where a target is given;
    the active learners add the failed evaluations and the recommended point's value."""
    g = plan.optimise
    assert g is not None
    lower = torch.full((cm.n,), cm.lower, dtype=F64, device=device)
    upper = torch.full((cm.n,), cm.upper, dtype=F64, device=device)
    budget = {"runs": g.restarts, "max_evaluations": g.evaluations, "f_target": g.target,
              "tol": g.tol}  # fmt: skip
    active = plan.method in ACTIVE_METHODS
    if experiment is not None and not active:
        raise PhysmlError(Diagnostic(
            "P432", f"{plan.method} cannot drive an experiment: it needs thousands of "
            "evaluations", plan.method_span,
            "optimise f via gaussian_process(...) or ensemble(...)"))  # fmt: skip
    if experiment is not None and g.noise > 0:
        raise PhysmlError(Diagnostic(
            "P432", "noise simulates measurement noise on a declared potential; an "
            "experiment's noise is its own", plan.span_of("optimise.noise"),
            "remove noise = ... when running with an experiment"))  # fmt: skip
    f = cm.potential
    if active:
        warm = None
        if plan.warm_ir is not None:
            warm = compile_model(plan.warm_ir).potential
        results = OPTIMISERS[plan.method](
            f, lower, upper, streams, plan.options, budget, noise=g.noise, experiment=experiment,
            warm=warm, warm_evaluations=plan.options.warm_evaluations)  # fmt: skip
    else:
        if g.noise > 0:
            f = _noisy(f, g.noise, streams.fork(1 << 20))
        results = OPTIMISERS[plan.method](f, lower, upper, streams, plan.options, budget)
    fs = np.array([r.best_f for r in results])
    fs = np.where(np.isnan(fs), np.inf, fs)  # an active run whose every measurement failed
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
    if active:
        rec = np.array([r.extras["recommended_f"] for r in results])
        row["bad_evaluations"] = int(sum(r.extras["bad"] for r in results))
        row["recommended_f"] = float(rec[best])
        row["median_recommended_f"] = float(np.nanmedian(rec)) if np.isfinite(rec).any() \
            else None
    traces = [r.trace for r in results]
    return [row], [Artefact("trace", plan.method, traces)]


__all__ = ["OPTIMISERS", "active_memory_need", "optimise_rows"]
