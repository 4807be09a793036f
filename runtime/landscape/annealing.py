"""Simulated annealing and population annealing of a continuous objective f over a box.

- :func:`simulated_annealing` (Kirkpatrick, Gelatt & Vecchi 1983): Metropolis chains at
  temperature T(t), Gaussian proposals x' = x + s N(0, I) reflected into the box (a symmetric
  proposal, so the chain is exact at fixed T), accepted with min(1, exp(-(f' - f) / T)). The
  step s of each chain is adapted every ``adapt_every`` steps towards an acceptance of 0.3-0.5.
  T0 defaults to the standard deviation of f over an initial uniform sample of the box.
- :func:`population_annealing` (Hukushima & Iba 2003; Machta 2010): a population sampled
  uniformly at beta = 0 is carried through beta_1 < beta_2 < ...: reweight by
  exp(-(beta_{t+1} - beta_t) f), resample systematically, then Metropolis sweeps at beta_{t+1}.
  The mean weight estimates Z(beta_{t+1}) / Z(beta_t), so the run measures the free energy
  log Z(beta) / Z(0) with Z(beta) = int_box exp(-beta f) dx.

Shapes: R independent runs of C chains (or a population of P) are (R, C, n).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from ..random import RandomStreams
from .errors import LandscapeError
from .grid import reflect_into_box
from .optimisers import (
    Objective,
    OptimiseResult,
    Runs,
    check_box,
    check_positive,
    evaluate,
    uniform_in_box,
)

SCHEDULES = ("geometric", "log")
_BLOCK = 64  # annealing steps per draw of random numbers


def _check_count(name: str, value: int, minimum: int, hint: str) -> None:
    if not (isinstance(value, int) and value >= minimum):
        raise LandscapeError(f"{name} must be an integer >= {minimum}, got {value!r}", hint)


def simulated_annealing(f: Objective, lower: torch.Tensor, upper: torch.Tensor,
                        streams: RandomStreams, *, max_evaluations: int,
                        T0: float | None = None, schedule: str = "geometric",
                        final_temperature_ratio: float = 1e-10, chains: int = 1,
                        f_target: float | None = None, tol: float = 1e-4,
                        initial_samples: int = 100, adapt_every: int = 20,
                        runs: int | None = None) -> OptimiseResult | list[OptimiseResult]:  # fmt: skip
    """Minimise f over [lower, upper] (n,) by simulated annealing with ``chains`` parallel
    Metropolis chains (one evaluation each per step).

    Schedules over the S steps the budget pays for: ``geometric`` T_t = T0 r^(t / S), with r the
    ``final_temperature_ratio``; ``log`` T_t = T0 ln 2 / ln(2 + t) (Geman & Geman: convergence
    in probability, far too slow to reach small T in practice). ``initial_samples`` uniform
    points (counted) give T0 when it is None; the chains start at the first of them.
    ``runs``: R independent runs batched (returns a list); None returns one result."""
    lower, upper = check_box(lower, upper)
    device, dtype, n = lower.device, lower.dtype, lower.numel()
    if schedule not in SCHEDULES:
        raise LandscapeError(f"unknown annealing schedule {schedule!r}",
                             f"use one of {', '.join(SCHEDULES)}")  # fmt: skip
    _check_count("chains", chains, 1, "use chains = 1 or a few tens")
    _check_count("adapt_every", adapt_every, 1, "adapt the step every 20 steps")
    check_positive("final_temperature_ratio", final_temperature_ratio, "use 1e-10")
    R = 1 if runs is None else runs
    _check_count("runs", R, 1, "use runs = 1")
    if T0 is not None:
        check_positive("T0", T0, "leave T0 unset: the spread of f over the box")
    init = max(initial_samples, chains)
    if init >= max_evaluations:
        raise LandscapeError(
            f"the budget of {max_evaluations} evaluations does not pay for the {init} initial "
            "samples and any annealing step", f"give max_evaluations >> {init}")  # fmt: skip
    book = Runs(R, n, max_evaluations, f_target, tol, device, dtype)
    x0 = uniform_in_box(streams, (R, init), lower, upper)
    f0 = evaluate(f, x0)
    if T0 is None:
        spread = f0.std(1)
        T_first = torch.where(spread > 0, spread, torch.ones_like(spread))
    else:
        T_first = torch.full((R,), float(T0), device=device, dtype=dtype)
    book.record(book.active(), f0, x0, scale=T_first)
    x, fx = x0[:, :chains].clone(), f0[:, :chains].clone()
    width = upper - lower
    step = torch.full((R, chains), 0.1, device=device, dtype=dtype)  # in units of the width
    accepted = torch.zeros(R, chains, device=device, dtype=dtype)
    steps = (max_evaluations - init) // chains
    log_ratio = math.log(final_temperature_ratio)
    moves = streams.fork(2)
    for t in range(steps):
        book.can_afford(chains)
        rows = book.active()
        if rows.size == 0:
            break
        if schedule == "geometric":
            factor = math.exp(log_ratio * t / max(steps - 1, 1))
        else:
            factor = math.log(2.0) / math.log(2.0 + t)
        if t % _BLOCK == 0:  # random numbers for _BLOCK steps at once (fewer small draws)
            z_block = moves.normal((R * chains, _BLOCK * n), dtype).reshape(R, chains, _BLOCK, n)
            u_block = moves.uniform((R * chains, _BLOCK), dtype).reshape(R, chains, _BLOCK)
        z, u = z_block[:, :, t % _BLOCK], u_block[:, :, t % _BLOCK]
        idx = torch.as_tensor(rows, device=device)
        xa, fa, T = x[idx], fx[idx], T_first[idx, None] * factor
        proposal = reflect_into_box(xa + step[idx, :, None] * width * z[idx], lower, upper)
        fp = evaluate(f, proposal)
        # Metropolis: log u < -(f' - f) / T (NaN f' is caught by record before it is kept)
        accept = torch.log(u[idx]) * T < -(fp - fa)
        x[idx] = torch.where(accept[..., None], proposal, xa)
        fx[idx] = torch.where(accept, fp, fa)
        accepted[idx] += accept.to(dtype)
        book.record(rows, fp, proposal, scale=T[:, 0])
        if (t + 1) % adapt_every == 0:
            # acceptance within [0.3, 0.5]: keep; else widen or shrink the step
            rate = accepted / adapt_every
            step = step * torch.where(rate > 0.5, 1.5, torch.where(rate < 0.3, 0.6, 1.0))
            step = step.clamp(1e-15, 1.0)
            accepted.zero_()
    results = book.results([{"T0": float(t0)} for t0 in T_first.tolist()])
    return results[0] if runs is None else results


def _systematic_resample(log_w: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Systematic resampling: indices (R, P) of the members that survive, member j copied about
    P w_j times (exactly floor or ceil). log_w (R, P) unnormalised; u (R,) uniform in [0, 1)."""
    R, P = log_w.shape
    w = torch.softmax(log_w, 1)
    cdf = torch.cumsum(w, 1)
    cdf[:, -1] = 1.0  # rounding: the last member closes the interval
    points = (u[:, None] + torch.arange(P, device=log_w.device, dtype=log_w.dtype)) / P
    return torch.searchsorted(cdf, points).clamp_(max=P - 1)


def population_annealing(f: Objective, lower: torch.Tensor, upper: torch.Tensor,
                         streams: RandomStreams, *, population: int, max_evaluations: int,
                         betas: Sequence[float] | torch.Tensor | None = None,
                         sweeps_per_beta: int = 5, f_target: float | None = None,
                         tol: float = 1e-4, runs: int | None = None
                         ) -> OptimiseResult | list[OptimiseResult]:  # fmt: skip
    """Population annealing of f over [lower, upper] (n,): P members start uniform at
    beta = 0 (P evaluations), then at each beta of ``betas`` (increasing, >= 0): reweight,
    resample (systematic), ``sweeps_per_beta`` Metropolis moves of every member (P evaluations
    each; Gaussian proposals whose step adapts per run to an acceptance of 0.3-0.5).

    ``betas`` None: geometric from 0.01 / T0 to 1e8 / T0 (T0 the spread of f over the run's
    initial population), as many as the budget pays for. The run stops at the end of the schedule, at the
    budget, or at the target. ``extras``: ``betas`` (the temperatures reached), ``log_z``
    (log Z(beta) / Z(0) at each, Z(0) the box volume), ``families`` (distinct beta = 0
    ancestors left), ``effective_population`` (P / (P sum w^2) before each resampling, w
    normalised: 1 / sum w^2). One result, or a list with ``runs``."""
    lower, upper = check_box(lower, upper)
    device, dtype, n = lower.device, lower.dtype, lower.numel()
    _check_count("population", population, 2, "use a population of a few hundred or more")
    _check_count("sweeps_per_beta", sweeps_per_beta, 1, "use 5-10 sweeps per temperature")
    R = 1 if runs is None else runs
    _check_count("runs", R, 1, "use runs = 1")
    P = population
    if P >= max_evaluations:
        raise LandscapeError(f"the budget of {max_evaluations} evaluations does not pay for the "
                             f"initial population of {P}", f"give max_evaluations >> {P}")  # fmt: skip
    book = Runs(R, n, max_evaluations, f_target, tol, device, dtype)
    x = uniform_in_box(streams, (R, P), lower, upper)
    fx = evaluate(f, x)
    book.record(book.active(), fx, x, scale=torch.full((R,), math.inf, device=device,
                                                        dtype=dtype))  # fmt: skip
    if betas is None:
        T0 = fx.std(1).clamp_min(1e-300)  # (R,): each run its own schedule
        temperatures = (max_evaluations - P) // (P * sweeps_per_beta)
        if temperatures < 2:
            raise LandscapeError(
                f"the budget of {max_evaluations} evaluations pays for {temperatures} "
                f"temperatures of {P} x {sweeps_per_beta} sweeps",
                "raise max_evaluations or lower the population or sweeps_per_beta")  # fmt: skip
        unit = torch.as_tensor(np.geomspace(0.01, 1e8, temperatures), device=device,
                               dtype=dtype)  # fmt: skip
        table = unit[None] / T0[:, None]  # (R, T)
    else:
        schedule = [float(b) for b in torch.as_tensor(betas, device="cpu").reshape(-1).tolist()]
        if not schedule or any(b < 0 or not math.isfinite(b) for b in schedule) or any(
                b1 <= b0 for b0, b1 in zip(schedule, schedule[1:])):  # fmt: skip
            raise LandscapeError(f"betas must be finite, >= 0 and increasing, got "
                                 f"{schedule[:5]}{' ...' if len(schedule) > 5 else ''}",
                                 "give an increasing schedule such as linspace(0, 10, 50)")  # fmt: skip
        table = torch.tensor(schedule, device=device, dtype=dtype).expand(R, -1)
    width = upper - lower
    step = torch.full((R,), 0.1, device=device, dtype=dtype)
    ancestor = torch.arange(P, device=device).expand(R, P).clone()
    log_z = torch.zeros(R, device=device, dtype=dtype)
    moves = streams.fork(3)
    extras: list[dict] = [{"betas": [], "log_z": [], "families": [], "effective_population": []}
                          for _ in range(R)]  # fmt: skip
    beta_prev = torch.zeros(R, device=device, dtype=dtype)
    for t in range(table.shape[1]):
        book.can_afford(P * sweeps_per_beta)
        rows = book.active()
        if rows.size == 0:
            break
        idx = torch.as_tensor(rows, device=device)
        xa, fa, beta = x[idx], fx[idx], table[idx, t]
        # reweight: w_j = exp(-(beta - beta_prev) f_j); mean w = Z(beta) / Z(beta_prev)
        log_w = -(beta - beta_prev[idx])[:, None] * fa
        log_z[idx] += torch.logsumexp(log_w, 1) - math.log(P)
        w = torch.softmax(log_w, 1)
        ess = 1.0 / (w * w).sum(1)
        keep = _systematic_resample(log_w, moves.uniform((R,), dtype)[idx])
        xa, fa = xa.gather(1, keep[..., None].expand(-1, -1, n)), fa.gather(1, keep)
        anc = ancestor[idx].gather(1, keep)
        ancestor[idx] = anc
        families = (torch.diff(anc.sort(1).values, dim=1) != 0).sum(1) + 1
        for sweep in range(sweeps_per_beta):
            if sweep:
                book.can_afford(P)
                if not book.running[rows].all():  # a target hit within the sweeps: stop those
                    alive = book.running[rows]
                    rows, xa, fa = rows[alive], xa[alive], fa[alive]
                    idx, anc, beta = idx[alive], anc[alive], beta[alive]
                    ess, families = ess[alive], families[alive]
                    if rows.size == 0:
                        break
            z = moves.normal((R * P, n), dtype).reshape(R, P, n)[idx]
            u = moves.uniform((R * P,), dtype).reshape(R, P)[idx]
            proposal = reflect_into_box(xa + step[idx, None, None] * width * z, lower, upper)
            fp = evaluate(f, proposal)
            accept = torch.log(u) < -beta[:, None] * (fp - fa)
            xa = torch.where(accept[..., None], proposal, xa)
            fa = torch.where(accept, fp, fa)
            rate = accept.to(dtype).mean(1)
            step[idx] = (step[idx] * torch.where(rate > 0.5, 1.5, torch.where(
                rate < 0.3, 0.6, 1.0))).clamp(1e-15, 1.0)  # fmt: skip
            book.record(rows, fp, proposal, scale=torch.where(beta > 0, 1.0 / beta, math.inf))
        if rows.size == 0:
            break
        x[idx], fx[idx] = xa, fa
        host = torch.stack([log_z[idx], families.to(dtype), ess, beta], 1).cpu().numpy()
        for a, r in enumerate(rows):
            extras[r]["betas"].append(float(host[a, 3]))
            extras[r]["log_z"].append(float(host[a, 0]))
            extras[r]["families"].append(int(host[a, 1]))
            extras[r]["effective_population"].append(float(host[a, 2]))
        beta_prev[idx] = beta
    results = book.results(extras)
    return results[0] if runs is None else results
